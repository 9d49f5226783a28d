//! Bulk writes ([`SqlBackend::bulk_write`](strata_plugin::SqlBackend::bulk_write)):
//! binary `COPY`, the fastest way into PostgreSQL.
//!
//! One transaction per call ([`write`]), or a savepoint inside the
//! caller's transaction ([`write_in`], the interface
//! `strata.sql.transaction_bulk.v1` that a restore loads its rows through):
//!
//! 1. The target's column types are read from the catalogue (`to_regclass`
//!    on the quoted name, so the backend's `search_path` applies) and each
//!    value is encoded in the type's binary `COPY` form: bool, int2/4/8,
//!    float4/8, text-like, bytea, json/jsonb, uuid, date, timestamp(tz) and
//!    pgvector's `vector` (from little-endian `f32` blobs or `[1,2,3]`
//!    text). Any other column type (numeric, arrays, …) answers
//!    `unsupported` before anything is sent, and the host falls back to
//!    multi-row `INSERT`s.
//! 2. Without key columns the rows are `COPY`ed into the table. With key
//!    columns (an upsert) they are first `COPY`ed straight into the table
//!    inside a savepoint — the common case of a fresh copy, one pass. If a
//!    key already exists (SQLSTATE 23505) the savepoint is rolled back and
//!    the rows go through a temporary table:
//!    `INSERT … SELECT … ON CONFLICT (keys) DO UPDATE … WHERE <row differs>`,
//!    which counts only the rows inserted or changed.
//! 3. The optional `then` statement (the host's checkpoint) runs in the
//!    same transaction; its parameters are bound by value kind (Integer as
//!    int8, Real as float8, Text as text, Blob as bytea, Null as text).
//!
//! Rows are encoded in ~1 MiB chunks while they are sent, so the server
//! parses while the plugin encodes. The transaction commits with
//! `synchronous_commit = off`: a bulk write is atomic but becomes durable
//! with the connection's next synchronous commit (the migration engine's
//! final checkpoint is one); a server crash before that loses whole bulk
//! writes, each with its own `then` statement, never part of one.

use sqlx::{Arguments, AssertSqlSafe, Postgres, Row, postgres::PgArguments};
use strata_plugin::{ErrorKind, PluginError, PluginResult, Value, sql::BulkWrite};

use crate::{db::Db, error::map};

/// The binary encoding of one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Enc {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Json,
    Jsonb,
    Uuid,
    Date,
    Timestamp,
    TimestampTz,
    Vector,
}

fn enc_for(base: &str) -> Option<Enc> {
    Some(match base {
        "bool" => Enc::Bool,
        "int2" => Enc::Int2,
        "int4" => Enc::Int4,
        "int8" => Enc::Int8,
        "float4" => Enc::Float4,
        "float8" => Enc::Float8,
        "text" | "varchar" | "bpchar" | "name" => Enc::Text,
        "bytea" => Enc::Bytea,
        "json" => Enc::Json,
        "jsonb" => Enc::Jsonb,
        "uuid" => Enc::Uuid,
        "date" => Enc::Date,
        "timestamp" => Enc::Timestamp,
        "timestamptz" => Enc::TimestampTz,
        "vector" => Enc::Vector,
        _ => return None,
    })
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Writes `req` (see the module docs); returns rows inserted or changed.
pub(crate) async fn write(db: &Db, req: BulkWrite) -> PluginResult<u64> {
    req.check_shape()?;
    let mut tx = db.begin_with(None, &Vec::new()).await.map_err(map)?;
    // Rows and checkpoint commit together, so an asynchronous commit is safe
    // for a migration: a server crash loses whole batches with their
    // checkpoint, and the caller's next synchronous commit flushes them all.
    sqlx::raw_sql("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    let written = write_rows(db, &mut tx, req).await?;
    tx.commit().await.map_err(map)?;
    Ok(written)
}

/// A bulk write inside the caller's transaction `tx`
/// ([`SqlTransaction::bulk_write`](strata_plugin::SqlTransaction::bulk_write)):
/// under a savepoint, so a failure (a value the column's binary form
/// refuses, a key conflict the rows cannot resolve) takes back only this
/// call's rows and leaves `tx` usable. Durability is the transaction's.
pub(crate) async fn write_in(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, Postgres>,
    req: BulkWrite,
) -> PluginResult<u64> {
    req.check_shape()?;
    sqlx::raw_sql("SAVEPOINT strata_bulk_tx")
        .execute(&mut **tx)
        .await
        .map_err(map)?;
    match write_rows(db, tx, req).await {
        Ok(n) => {
            sqlx::raw_sql("RELEASE SAVEPOINT strata_bulk_tx")
                .execute(&mut **tx)
                .await
                .map_err(map)?;
            Ok(n)
        }
        Err(e) => {
            // Back to before this call; the transaction's own error, if
            // this fails too, is the one the caller meets next.
            let _ = sqlx::raw_sql(
                "ROLLBACK TO SAVEPOINT strata_bulk_tx; RELEASE SAVEPOINT strata_bulk_tx",
            )
            .execute(&mut **tx)
            .await;
            Err(e)
        }
    }
}

/// Steps 1–3 of the module docs on `tx`, which the caller commits.
async fn write_rows(
    db: &Db,
    tx: &mut sqlx::Transaction<'static, Postgres>,
    req: BulkWrite,
) -> PluginResult<u64> {
    let width = req.columns.len();
    let table = quote(&req.table);
    let types = sqlx::query(
        "SELECT a.attname::text, t.typname::text FROM pg_attribute a \
         JOIN pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(&table)
    .fetch_all(db.on(tx))
    .await
    .map_err(map)?;
    if types.is_empty() {
        return Err(PluginError::new(
            ErrorKind::NotFound,
            format!("bulk write: no table {}", req.table),
        ));
    }
    let mut encs = Vec::with_capacity(width);
    for c in &req.columns {
        let base = types
            .iter()
            .find(|r| r.get::<String, _>(0) == c.as_str())
            .map(|r| r.get::<String, _>(1))
            .ok_or_else(|| {
                PluginError::new(
                    ErrorKind::NotFound,
                    format!("bulk write: table {} has no column {c}", req.table),
                )
            })?;
        encs.push(enc_for(&base).ok_or_else(|| {
            PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "bulk write: column {c} of {} has type {base}, which binary COPY here does not encode",
                    req.table
                ),
            )
        })?);
    }
    let mut data = Encoded::default();
    let cols = req
        .columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let copy_into = |target: &str| format!("COPY {target} ({cols}) FROM STDIN (FORMAT binary)");
    let written = if req.key_columns.is_empty() {
        copy(tx, &copy_into(&table), &req, &encs, &mut data).await?
    } else {
        sqlx::raw_sql("SAVEPOINT strata_bulk")
            .execute(&mut **tx)
            .await
            .map_err(map)?;
        match copy(tx, &copy_into(&table), &req, &encs, &mut data).await {
            Ok(n) => {
                sqlx::raw_sql("RELEASE SAVEPOINT strata_bulk")
                    .execute(&mut **tx)
                    .await
                    .map_err(map)?;
                n
            }
            Err(e) if e.backend_code() == Some("23505") => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT strata_bulk; RELEASE SAVEPOINT strata_bulk")
                    .execute(&mut **tx)
                    .await
                    .map_err(map)?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP TABLE IF EXISTS pg_temp.strata_bulk; \
                     CREATE TEMP TABLE strata_bulk ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
                )))
                .execute(&mut **tx)
                .await
                .map_err(map)?;
                copy(
                    tx,
                    &copy_into("pg_temp.strata_bulk"),
                    &req,
                    &encs,
                    &mut data,
                )
                .await?;
                let keys = req
                    .key_columns
                    .iter()
                    .map(|c| quote(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rest: Vec<String> = req
                    .columns
                    .iter()
                    .filter(|c| !req.key_columns.contains(c))
                    .map(|c| quote(c))
                    .collect();
                // `json` has no equality operator: compared as text.
                let json: Vec<bool> = req
                    .columns
                    .iter()
                    .zip(&encs)
                    .filter(|(c, _)| !req.key_columns.contains(c))
                    .map(|(_, e)| *e == Enc::Json)
                    .collect();
                let side = |prefix: &str| {
                    rest.iter()
                        .zip(&json)
                        .map(|(c, j)| {
                            if *j {
                                format!("CAST({prefix}.{c} AS text)")
                            } else {
                                format!("{prefix}.{c}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let action = if rest.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!(
                        "DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
                        rest.iter()
                            .map(|c| format!("{c} = excluded.{c}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        side(&table),
                        side("excluded"),
                    )
                };
                let done = sqlx::raw_sql(AssertSqlSafe(format!(
                    "INSERT INTO {table} ({cols}) SELECT {cols} FROM pg_temp.strata_bulk \
                     ON CONFLICT ({keys}) {action}"
                )))
                .execute(&mut **tx)
                .await
                .map_err(map)?;
                done.rows_affected()
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(stmt) = req.then {
        let mut args = PgArguments::default();
        for v in stmt.params.iter() {
            match v {
                Value::Null => args.add(None::<String>),
                Value::Integer(i) => args.add(*i),
                Value::Real(r) => args.add(*r),
                Value::Text(t) => args.add(t.as_str()),
                Value::Blob(b) => args.add(b.as_slice()),
            }
            .map_err(|e| PluginError::invalid_input(e.to_string()))?;
        }
        sqlx::query_with::<Postgres, _>(AssertSqlSafe(stmt.sql), args)
            .execute(db.on(tx))
            .await
            .map_err(map)?;
    }
    Ok(written)
}

/// The binary `COPY` stream, encoded in chunks of about 1 MiB while it is
/// sent (the server parses one chunk while the next is encoded), and kept
/// for a second pass through the temporary table.
#[derive(Default)]
struct Encoded {
    chunks: Vec<Vec<u8>>,
}

const CHUNK: usize = 1 << 20;

async fn copy(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    statement: &str,
    req: &BulkWrite,
    encs: &[Enc],
    data: &mut Encoded,
) -> PluginResult<u64> {
    let mut c = tx.copy_in_raw(statement).await.map_err(map)?;
    let mut failed: Option<PluginError> = None;
    if data.chunks.is_empty() {
        let width = encs.len();
        let mut buf = Vec::with_capacity(CHUNK + 64 * 1024);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        for (r, row) in req.values.chunks(width).enumerate() {
            if let Err(e) = encode_row(&mut buf, req, encs, r, row) {
                failed = Some(e);
                break;
            }
            if buf.len() >= CHUNK {
                if let Err(e) = c.send(&buf[..]).await {
                    failed = Some(map(e));
                    break;
                }
                data.chunks.push(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(CHUNK + 64 * 1024),
                ));
            }
        }
        if failed.is_none() {
            buf.extend_from_slice(&(-1i16).to_be_bytes());
            match c.send(&buf[..]).await {
                Ok(_) => data.chunks.push(buf),
                Err(e) => failed = Some(map(e)),
            }
        }
    } else {
        for chunk in &data.chunks {
            if let Err(e) = c.send(&chunk[..]).await {
                failed = Some(map(e));
                break;
            }
        }
    }
    if let Some(e) = failed {
        data.chunks.clear();
        let _ = c.abort("strata bulk write failed").await;
        return Err(e);
    }
    c.finish().await.map_err(map)
}

fn bad(req: &BulkWrite, col: usize, row: u64, msg: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_input(format!(
        "bulk write to {}, row {row}, column {}: {msg}",
        req.table, req.columns[col]
    ))
}

/// One row of the binary `COPY` stream.
fn encode_row(
    out: &mut Vec<u8>,
    req: &BulkWrite,
    encs: &[Enc],
    r: usize,
    row: &[Value],
) -> PluginResult<()> {
    out.extend_from_slice(&(encs.len() as i16).to_be_bytes());
    for (c, v) in row.iter().enumerate() {
        if v.is_null() {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let at = out.len();
        out.extend_from_slice(&0i32.to_be_bytes());
        field(out, encs[c], v).map_err(|m| bad(req, c, r as u64, m))?;
        let len = (out.len() - at - 4) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Integer(i) => Ok(*i),
        Value::Real(r) if r.fract() == 0.0 && r.abs() < 9.2e18 => Ok(*r as i64),
        Value::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("text {t:?} is not an integer")),
        other => Err(format!("a {} value is not an integer", other.kind_name())),
    }
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| format!("text {t:?} is not a number")),
        other => other
            .as_f64()
            .ok_or_else(|| format!("a {} value is not a number", other.kind_name())),
    }
}

/// A value's text, borrowed when it is text (no copy per field).
fn text_of(v: &Value) -> Result<std::borrow::Cow<'_, str>, String> {
    match v {
        Value::Text(t) => Ok(std::borrow::Cow::Borrowed(t.as_str())),
        Value::Integer(i) => Ok(i.to_string().into()),
        Value::Real(r) => Ok(r.to_string().into()),
        other => Err(format!("a {} value is not text", other.kind_name())),
    }
}

fn field(out: &mut Vec<u8>, enc: Enc, v: &Value) -> Result<(), String> {
    match enc {
        Enc::Bool => {
            let b = match v {
                Value::Integer(i) => *i != 0,
                Value::Text(t) if t.as_str() == "true" => true,
                Value::Text(t) if t.as_str() == "false" => false,
                other => return Err(format!("a {} value is not a boolean", other.kind_name())),
            };
            out.push(u8::from(b));
        }
        Enc::Int2 => {
            let i = int(v)?;
            out.extend_from_slice(
                &i16::try_from(i)
                    .map_err(|_| format!("{i} does not fit in int2"))?
                    .to_be_bytes(),
            );
        }
        Enc::Int4 => {
            let i = int(v)?;
            out.extend_from_slice(
                &i32::try_from(i)
                    .map_err(|_| format!("{i} does not fit in int4"))?
                    .to_be_bytes(),
            );
        }
        Enc::Int8 => out.extend_from_slice(&int(v)?.to_be_bytes()),
        Enc::Float4 => out.extend_from_slice(&(float(v)? as f32).to_be_bytes()),
        Enc::Float8 => out.extend_from_slice(&float(v)?.to_be_bytes()),
        Enc::Text | Enc::Json => out.extend_from_slice(text_of(v)?.as_bytes()),
        Enc::Jsonb => {
            out.push(1);
            out.extend_from_slice(text_of(v)?.as_bytes());
        }
        Enc::Bytea => match v {
            Value::Blob(b) => out.extend_from_slice(b),
            other => return Err(format!("a {} value is not bytes", other.kind_name())),
        },
        Enc::Uuid => {
            let t = text_of(v)?;
            let hex: Vec<u8> = t.bytes().filter(|b| *b != b'-').collect();
            if hex.len() != 32 {
                return Err(format!("{t:?} is not a uuid"));
            }
            for pair in hex.chunks(2) {
                let s = std::str::from_utf8(pair).map_err(|_| format!("{t:?} is not a uuid"))?;
                out.push(u8::from_str_radix(s, 16).map_err(|_| format!("{t:?} is not a uuid"))?);
            }
        }
        Enc::Date => {
            let t = text_of(v)?;
            let days = match t.trim() {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                _ => parse_date(&t)
                    .and_then(|d| i32::try_from(d - 10_957).ok())
                    .ok_or_else(|| format!("{t:?} is not a date (YYYY-MM-DD[ BC])"))?,
            };
            out.extend_from_slice(&days.to_be_bytes());
        }
        Enc::Timestamp | Enc::TimestampTz => {
            let t = text_of(v)?;
            let micros = parse_timestamp(&t, enc == Enc::TimestampTz).ok_or_else(|| {
                format!("{t:?} is not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM])")
            })?;
            out.extend_from_slice(&micros.to_be_bytes());
        }
        Enc::Vector => {
            let floats: Vec<f32> = match v {
                Value::Blob(b) if b.len() % 4 == 0 => b
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Value::Text(t) => {
                    let inner = t
                        .trim()
                        .strip_prefix('[')
                        .and_then(|s| s.strip_suffix(']'))
                        .ok_or_else(|| format!("{t:?} is not a vector"))?;
                    inner
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| s.trim().parse::<f32>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| format!("{t:?} is not a vector"))?
                }
                other => return Err(format!("a {} value is not a vector", other.kind_name())),
            };
            let dim = u16::try_from(floats.len()).map_err(|_| "vector too long".to_string())?;
            out.extend_from_slice(&dim.to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            for f in floats {
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` → days since 1970-01-01 (Howard Hinnant's algorithm).
fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_suffix(" BC") {
        Some(rest) => parse_date_in(rest, true),
        None => parse_date_in(s, false),
    }
}

/// `YYYY-MM-DD` of era BC when `bc`.
fn parse_date_in(s: &str, bc: bool) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    // 1 BC is proleptic year 0 (there is no year 0 written).
    let y = match (bc, y) {
        (true, 1..) => 1 - y,
        (true, _) => return None,
        (false, _) => y,
    };
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.get(..2)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|±HH[:MM]]` → microseconds since
/// 2000-01-01 00:00:00 (UTC for `tz`; an offset on a plain timestamp is refused).
fn parse_timestamp(s: &str, tz: bool) -> Option<i64> {
    let s = s.trim();
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    // `… BC` (Postgres' text form before year 1): the era goes with the date.
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    // The date ends at the first space or `T` (a year past 9999 has more
    // than four digits: `10000-01-01 00:00:00+00`).
    let split = s.find([' ', 'T'])?;
    let days = parse_date_in(&s[..split], bc)?;
    let rest = &s[split + 1..];
    let (clock, offset) = match rest.find(['+', '-', 'Z']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut parts = clock.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let sec: i64 = whole.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits checked above, at most six: scaled to microseconds.
    let micros_frac = frac
        .bytes()
        .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'))
        * 10i64.pow(6 - frac.len() as u32);
    let off_secs = match offset {
        "" => 0,
        "Z" => 0,
        o => {
            if !tz {
                return None;
            }
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let o = &o[1..];
            let (oh, om) = o
                .split_once(':')
                .unwrap_or((o.get(..2)?, o.get(2..).unwrap_or("")));
            let oh: i64 = oh.parse().ok()?;
            let om: i64 = if om.is_empty() { 0 } else { om.parse().ok()? };
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = (days - 10_957) * 86_400 + h * 3600 + mi * 60 + sec - off_secs;
    Some(secs * 1_000_000 + micros_frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_date("2000-01-01"), Some(10_957));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(
            parse_timestamp("2000-01-01 00:00:01.5", false),
            Some(1_500_000)
        );
        assert_eq!(parse_timestamp("2000-01-01T01:00:00+01:00", true), Some(0));
        assert_eq!(
            parse_timestamp("1999-12-31 23:59:59.999999+00:00", true),
            Some(-1)
        );
        assert_eq!(parse_timestamp("2000-01-01 00:00:00+01:00", false), None);
        // Before year 1 and the special values (issue 16 #4).
        assert_eq!(
            parse_date("0001-12-31 BC"),
            Some(parse_date("0001-01-01").unwrap() - 1)
        );
        assert_eq!(parse_date("0000-01-01 BC"), None);
        // Years past 9999 (Postgres takes timestamps up to 294276 AD).
        assert_eq!(
            parse_timestamp("10000-01-01 00:00:00+00", true),
            parse_timestamp("9999-12-31 00:00:00+00", true).map(|t| t + 86_400_000_000)
        );
        assert_eq!(parse_timestamp("2000-01-01", false), None);
        assert_eq!(parse_timestamp("infinity", true), Some(i64::MAX));
        assert_eq!(parse_timestamp("-infinity", false), Some(i64::MIN));
        assert_eq!(
            parse_timestamp("0001-12-31 23:59:59+00:00 BC", true),
            parse_timestamp("0001-01-01 00:00:00+00:00", true).map(|t| t - 1_000_000)
        );
    }
}
