//! Postgres types ↔ strata values.
//!
//! | Postgres | strata value |
//! |---|---|
//! | bool | Integer 0 / 1 |
//! | int2, int4, int8, oid | Integer |
//! | float4, float8 | Real |
//! | text, varchar, bpchar, name, char, citext, enums | Text |
//! | bytea | Blob |
//! | json, jsonb | Text (the JSON document; a `json` parameter is sent as its text, kept byte for byte) |
//! | numeric | Text (exact decimal, e.g. `"12.50"`) |
//! | uuid | Text (`8-4-4-4-12` hex) |
//! | date | Text `YYYY-MM-DD` |
//! | timestamp | Text `YYYY-MM-DD HH:MM:SS[.ffffff]` |
//! | timestamptz | Text, UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]+00:00` |
//!
//! Dates and timestamps before year 1 end with ` BC` (`0001-01-01 BC` is
//! the day before `0001-01-01`; there is no year 0), and the special values
//! are `infinity` / `-infinity` (without an offset): Postgres' own text
//! forms, so each reads back as the same value.
//! | vector (pgvector) | Text `[1,2,3]` |
//!
//! Values arrive in binary (prepared statements) or in Postgres' text
//! output (statements without parameters go by the simple protocol) and
//! read to the same strata value either way: the text forms are parsed
//! and written again as above.
//!
//! Parameters take the type the server infers for them: an Integer binds to
//! an int2/int4/int8/float/numeric/bool parameter, a Real to float, Text to
//! text-like, json/jsonb, and — through an explicit cast the plugin adds — to
//! numeric, uuid, date, timestamp(tz), vector and other types with a text
//! input form; Blob to bytea; Null to any.

use sqlx::{
    Arguments, TypeInfo, ValueRef,
    postgres::{PgArguments, PgTypeInfo, PgValueFormat, PgValueRef},
};
use strata_plugin::{ErrorKind, PluginError, PluginResult, Value};

/// How one parameter is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParamKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytea,
    Json,
    /// Sent as text and cast to this type in SQL (`$n::text::<type>`).
    CastFromText(String),
}

impl ParamKind {
    pub(crate) fn of(t: &PgTypeInfo) -> ParamKind {
        match t.name() {
            "BOOL" => ParamKind::Bool,
            "INT2" => ParamKind::Int2,
            "INT4" => ParamKind::Int4,
            "INT8" => ParamKind::Int8,
            "FLOAT4" => ParamKind::Float4,
            "FLOAT8" => ParamKind::Float8,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "UNKNOWN" | "\"CHAR\"" => {
                ParamKind::Text
            }
            "BYTEA" => ParamKind::Bytea,
            // `json` keeps its text exactly (whitespace, key order,
            // duplicate keys): sent as text and cast, never re-serialised
            // (sqlx's JSON encoding is jsonb's, whose text form differs).
            "JSON" => ParamKind::CastFromText("json".into()),
            "JSONB" => ParamKind::Json,
            other => ParamKind::CastFromText(other.to_ascii_lowercase()),
        }
    }

    /// The SQL cast this parameter needs, if any.
    pub(crate) fn cast(&self) -> Option<&str> {
        match self {
            ParamKind::CastFromText(t) => Some(t),
            _ => None,
        }
    }
}

fn mismatch(n: usize, want: &str, v: &Value) -> PluginError {
    PluginError::invalid_input(format!(
        "parameter ${n} is {want} in this statement, but a {} value was given",
        v.kind_name()
    ))
}

/// Adds `v` to `args` as `kind` (parameter number `n`, 1-based, for messages).
pub(crate) fn bind(
    args: &mut PgArguments,
    n: usize,
    kind: &ParamKind,
    v: &Value,
) -> PluginResult<()> {
    let enc =
        |e: sqlx::error::BoxDynError| PluginError::invalid_input(format!("parameter ${n}: {e}"));
    let int = |v: &Value| -> Option<i64> {
        match v {
            Value::Integer(i) => Some(*i),
            Value::Real(r) if r.fract() == 0.0 && r.abs() < 9.2e18 => Some(*r as i64),
            _ => None,
        }
    };
    match (kind, v) {
        (ParamKind::Bool, Value::Null) => args.add(None::<bool>),
        (ParamKind::Int2, Value::Null) => args.add(None::<i16>),
        (ParamKind::Int4, Value::Null) => args.add(None::<i32>),
        (ParamKind::Int8, Value::Null) => args.add(None::<i64>),
        (ParamKind::Float4, Value::Null) => args.add(None::<f32>),
        (ParamKind::Float8, Value::Null) => args.add(None::<f64>),
        (ParamKind::Text | ParamKind::CastFromText(_), Value::Null) => args.add(None::<String>),
        (ParamKind::Bytea, Value::Null) => args.add(None::<Vec<u8>>),
        (ParamKind::Json, Value::Null) => args.add(None::<sqlx::types::Json<serde_json::Value>>),
        (ParamKind::Bool, v) => {
            let b = match v {
                Value::Integer(0) => false,
                Value::Integer(1) => true,
                Value::Text(t) if t.as_str() == "true" => true,
                Value::Text(t) if t.as_str() == "false" => false,
                _ => return Err(mismatch(n, "boolean (0/1)", v)),
            };
            args.add(b)
        }
        (ParamKind::Int2, v) => {
            let i = int(v).ok_or_else(|| mismatch(n, "int2", v))?;
            args.add(i16::try_from(i).map_err(|_| {
                PluginError::invalid_input(format!("parameter ${n}: {i} does not fit in int2"))
            })?)
        }
        (ParamKind::Int4, v) => {
            let i = int(v).ok_or_else(|| mismatch(n, "int4", v))?;
            args.add(i32::try_from(i).map_err(|_| {
                PluginError::invalid_input(format!("parameter ${n}: {i} does not fit in int4"))
            })?)
        }
        (ParamKind::Int8, v) => args.add(int(v).ok_or_else(|| mismatch(n, "int8", v))?),
        (ParamKind::Float4, v) => {
            args.add(v.as_f64().ok_or_else(|| mismatch(n, "float4", v))? as f32)
        }
        (ParamKind::Float8, v) => args.add(v.as_f64().ok_or_else(|| mismatch(n, "float8", v))?),
        (ParamKind::Bytea, Value::Blob(b)) => args.add(b.as_slice()),
        (ParamKind::Bytea, v) => return Err(mismatch(n, "bytea", v)),
        (ParamKind::Json, Value::Text(t)) => {
            let doc: serde_json::Value = serde_json::from_str(t).map_err(|e| {
                PluginError::invalid_input(format!(
                    "parameter ${n} is json, but the text is not JSON: {e}"
                ))
            })?;
            args.add(sqlx::types::Json(doc))
        }
        (ParamKind::Json, v) => args.add(sqlx::types::Json(v.to_json())),
        (ParamKind::Text | ParamKind::CastFromText(_), Value::Text(t)) => args.add(t.as_str()),
        (ParamKind::Text | ParamKind::CastFromText(_), Value::Integer(i)) => {
            args.add(i.to_string())
        }
        (ParamKind::Text | ParamKind::CastFromText(_), Value::Real(r)) => args.add(r.to_string()),
        (ParamKind::Text | ParamKind::CastFromText(_), v) => return Err(mismatch(n, "text", v)),
    }
    .map_err(enc)
}

/// How the values of one result column are read, worked out once per
/// result from the column's type (not once per value).
#[derive(Clone, Debug)]
pub(crate) struct ColumnType {
    /// The type's name as sqlx gives it (`INT4`, `vector`, `my_enum`).
    ty: String,
    read: ReadAs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadAs {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Bytea,
    Jsonb,
    Uuid,
    Numeric,
    Date,
    Timestamp,
    Timestamptz,
    Vector,
    Text,
    Unsupported,
}

impl ColumnType {
    /// The reader of a column of type `t`; `None` when sqlx has not
    /// resolved `t` (a type it does not know by OID, seen in a
    /// simple-protocol result before anything looked it up): then
    /// [`ColumnType::named`] with the server's name for it.
    pub(crate) fn of(t: &PgTypeInfo) -> Option<ColumnType> {
        let ty = t.name();
        if ty == "?" {
            return None;
        }
        let enumerated = matches!(t.kind(), sqlx::postgres::PgTypeKind::Enum(_));
        Some(ColumnType::named(ty, enumerated))
    }

    /// The reader of a column whose type is named `ty` (as sqlx names it:
    /// upper case for built-in types, `oid::regtype::text` for others).
    pub(crate) fn named(ty: &str, enumerated: bool) -> ColumnType {
        let read = match ty {
            "BOOL" => ReadAs::Bool,
            "INT2" => ReadAs::Int2,
            "INT4" => ReadAs::Int4,
            "INT8" => ReadAs::Int8,
            "OID" => ReadAs::Oid,
            "FLOAT4" => ReadAs::Float4,
            "FLOAT8" => ReadAs::Float8,
            "BYTEA" => ReadAs::Bytea,
            "JSONB" => ReadAs::Jsonb,
            "UUID" => ReadAs::Uuid,
            "NUMERIC" => ReadAs::Numeric,
            "DATE" => ReadAs::Date,
            "TIMESTAMP" => ReadAs::Timestamp,
            "TIMESTAMPTZ" => ReadAs::Timestamptz,
            "VECTOR" | "vector" => ReadAs::Vector,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "\"CHAR\"" | "JSON" | "CITEXT"
            | "XML" | "UNKNOWN" => ReadAs::Text,
            _ if enumerated => ReadAs::Text,
            _ => ReadAs::Unsupported,
        };
        ColumnType {
            ty: ty.to_string(),
            read,
        }
    }
}

/// Reads one value of the column named `column`, of type `col`, in the
/// format the server sent it — binary (prepared statements) or text (the
/// simple protocol) — to the same strata value either way.
pub(crate) fn read_value(
    raw: PgValueRef<'_>,
    col: &ColumnType,
    column: &str,
) -> PluginResult<Value> {
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let bytes = raw
        .as_bytes()
        .map_err(|e| PluginError::internal(format!("column {column}: {e}")))?;
    if raw.format() == PgValueFormat::Text {
        refuse_unsupported(col, column)?;
        let bad = || PluginError::internal(format!("column {column}: malformed {} value", col.ty));
        return read_text(bytes, col.read, &col.ty).ok_or_else(bad)?;
    }
    read_binary(bytes, col, column)
}

pub(crate) fn refuse_unsupported(col: &ColumnType, column: &str) -> PluginResult<()> {
    if col.read == ReadAs::Unsupported {
        return Err(PluginError::new(
            ErrorKind::Unsupported,
            format!(
                "column {column} has type {}, which strata does not read yet; select it as text (`::text`)",
                col.ty
            ),
        ));
    }
    Ok(())
}

/// A non-null value in its binary form (an extended-protocol result
/// column, or a field of binary `COPY` output) as strata's value.
pub(crate) fn read_binary(bytes: &[u8], col: &ColumnType, column: &str) -> PluginResult<Value> {
    refuse_unsupported(col, column)?;
    let ty = col.ty.as_str();
    let bad = || PluginError::internal(format!("column {column}: malformed {ty} value"));
    let be = |n: usize| -> PluginResult<&[u8]> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(bad())
        }
    };
    Ok(match col.read {
        ReadAs::Bool => Value::Integer(i64::from(be(1)?[0] != 0)),
        ReadAs::Int2 => Value::Integer(i64::from(i16::from_be_bytes(
            be(2)?.try_into().map_err(|_| bad())?,
        ))),
        ReadAs::Int4 => Value::Integer(i64::from(i32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        ReadAs::Int8 => Value::Integer(i64::from_be_bytes(be(8)?.try_into().map_err(|_| bad())?)),
        ReadAs::Oid => Value::Integer(i64::from(u32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        ReadAs::Float4 => Value::Real(f64::from(f32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        ReadAs::Float8 => Value::Real(f64::from_be_bytes(be(8)?.try_into().map_err(|_| bad())?)),
        ReadAs::Bytea => Value::Blob(bytes.to_vec()),
        ReadAs::Jsonb => Value::Text(text(bytes.get(1..).ok_or_else(bad)?, ty)?),
        ReadAs::Uuid => Value::Text(uuid(be(16)?)),
        ReadAs::Numeric => Value::Text(numeric(bytes).ok_or_else(bad)?),
        ReadAs::Date => Value::Text(date(i32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        ReadAs::Timestamp => Value::Text(timestamp(i64::from_be_bytes(
            be(8)?.try_into().map_err(|_| bad())?,
        ))),
        ReadAs::Timestamptz => Value::Text(timestamp_with(
            i64::from_be_bytes(be(8)?.try_into().map_err(|_| bad())?),
            "+00:00",
        )),
        ReadAs::Vector => Value::Text(vector(bytes).ok_or_else(bad)?),
        ReadAs::Text => Value::Text(text(bytes, ty)?),
        ReadAs::Unsupported => unreachable!("refused above"),
    })
}

/// A value in Postgres' text output (the simple protocol; `DateStyle` ISO
/// as sqlx sets it, any `TimeZone`) read to the value its binary form
/// gives; `None` when malformed. Dates, times and vectors are parsed and
/// written again in the binary path's form (Postgres trims trailing
/// fractional zeros and prints the session's offset; pgvector prints
/// `1e-07` where Rust prints `0.0000001`).
fn read_text(bytes: &[u8], read: ReadAs, ty: &str) -> Option<PluginResult<Value>> {
    let s = std::str::from_utf8(bytes).ok();
    Some(Ok(match read {
        ReadAs::Bool => match s? {
            "t" => Value::Integer(1),
            "f" => Value::Integer(0),
            _ => return None,
        },
        ReadAs::Int2 => Value::Integer(i64::from(s?.parse::<i16>().ok()?)),
        ReadAs::Int4 => Value::Integer(i64::from(s?.parse::<i32>().ok()?)),
        ReadAs::Int8 => Value::Integer(s?.parse::<i64>().ok()?),
        ReadAs::Oid => Value::Integer(i64::from(s?.parse::<u32>().ok()?)),
        ReadAs::Float4 => Value::Real(f64::from(s?.parse::<f32>().ok()?)),
        ReadAs::Float8 => Value::Real(s?.parse::<f64>().ok()?),
        ReadAs::Bytea => Value::Blob(bytea_text(bytes)?),
        ReadAs::Jsonb | ReadAs::Numeric => Value::Text(s?.to_string()),
        ReadAs::Uuid => {
            let s = s?;
            if s.len() != 36 {
                return None;
            }
            Value::Text(s.to_ascii_lowercase())
        }
        ReadAs::Date => Value::Text(date(parse_date(s?)?)),
        ReadAs::Timestamp => Value::Text(timestamp(parse_timestamp(s?, false)?)),
        ReadAs::Timestamptz => Value::Text(timestamp_with(parse_timestamp(s?, true)?, "+00:00")),
        ReadAs::Vector => {
            let inner = s?.strip_prefix('[')?.strip_suffix(']')?;
            let xs: Vec<f32> = if inner.trim().is_empty() {
                Vec::new()
            } else {
                inner
                    .split(',')
                    .map(|x| x.trim().parse::<f32>().ok())
                    .collect::<Option<_>>()?
            };
            Value::Text(vector_text(xs))
        }
        ReadAs::Text => return Some(text(bytes, ty).map(Value::Text)),
        ReadAs::Unsupported => return None,
    }))
}

/// `bytea` text output: hex (`\x0a1b`, the default) or the escape format.
fn bytea_text(b: &[u8]) -> Option<Vec<u8>> {
    if let Some(h) = b.strip_prefix(b"\\x") {
        return hex::decode(h).ok();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = std::str::from_utf8(b.get(i + 1..i + 4)?).ok()?;
            out.push(u8::from_str_radix(oct, 8).ok()?);
            i += 4;
        }
    }
    Some(out)
}

/// Days since 1970-01-01 of a date in `YYYY-MM-DD[ BC]` (a year of four or
/// more digits; year n BC is the proleptic year 1 - n).
fn ymd_days(s: &str) -> Option<i64> {
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let mut it = s.splitn(3, '-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if y.len() < 4 || m.len() != 2 || d.len() != 2 || !y.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(if bc { 1 - y } else { y }, m, d))
}

/// A `date`'s text → days since 2000-01-01 (`i32::MAX` / `MIN` for the infinities).
fn parse_date(s: &str) -> Option<i32> {
    match s {
        "infinity" => Some(i32::MAX),
        "-infinity" => Some(i32::MIN),
        _ => i32::try_from(ymd_days(s)? - 10_957).ok(),
    }
}

/// A `timestamp[tz]`'s text → microseconds since 2000-01-01 00:00:00 UTC
/// (`i64::MAX` / `MIN` for the infinities); with `offset`, the session's
/// UTC offset (`+00`, `-03:30`, `+05:53:28`) follows the time.
fn parse_timestamp(s: &str, offset: bool) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, " BC"),
        None => (s, ""),
    };
    let (day, time) = s.split_once(' ')?;
    let days = ymd_days(&format!("{day}{bc}"))? - 10_957;
    let (clock, off_secs) = if offset {
        let at = time.rfind(['+', '-'])?;
        let (clock, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let mut secs = 0i64;
        for (k, part) in off[1..].split(':').enumerate() {
            if k > 2 || part.len() != 2 {
                return None;
            }
            secs += part.parse::<i64>().ok()? * [3600, 60, 1][k];
        }
        (clock, sign * secs)
    } else {
        (time, 0)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let (h, m, sec): (i64, i64, i64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    if parts.next().is_some() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    let secs = days * 86_400 + h * 3600 + m * 60 + sec - off_secs;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// (year, month, day), proleptic Gregorian → days since 1970-01-01 (the
/// inverse of [`civil`]; Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn text(bytes: &[u8], ty: &str) -> PluginResult<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|e| PluginError::internal(format!("{ty} value is not UTF-8: {e}")))
}

fn uuid(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Binary numeric: ndigits, weight, sign, dscale (i16 each), then base-10000 digits.
fn numeric(b: &[u8]) -> Option<String> {
    let r =
        |i: usize| -> Option<i16> { Some(i16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let (ndigits, weight, sign, dscale) = (r(0)? as usize, r(2)?, r(4)? as u16, r(6)? as usize);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| r(8 + 2 * i)).collect::<Option<_>>()?;
    let mut int = String::new();
    let mut frac = String::new();
    for (i, d) in digits.iter().enumerate() {
        let pos = weight as i64 - i as i64; // power of 10000
        let chunk = format!("{d:04}");
        if pos >= 0 {
            int.push_str(&chunk);
        } else {
            // Fill skipped fractional groups with zeros.
            while (frac.len() as i64) < (-pos - 1) * 4 {
                frac.push_str("0000");
            }
            frac.push_str(&chunk);
        }
    }
    // Integer groups below the last digit group are zero.
    let last_int_pos = weight as i64 - digits.len() as i64 + 1;
    if weight >= 0 && last_int_pos > 0 {
        for _ in 0..last_int_pos {
            int.push_str("0000");
        }
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac: String = frac.chars().take(dscale).collect();
    while frac.len() < dscale {
        frac.push('0');
    }
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if dscale > 0 {
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}{int}")
    })
}

/// Days since 2000-01-01 → `YYYY-MM-DD` (proleptic Gregorian).
/// Days since 2000-01-01 → `YYYY-MM-DD`, `YYYY-MM-DD BC` before year 1
/// (Postgres' own text form: there is no year 0, 1 BC precedes 1 AD), or
/// `infinity` / `-infinity`.
fn date(days: i32) -> String {
    match days {
        i32::MAX => return "infinity".into(),
        i32::MIN => return "-infinity".into(),
        _ => {}
    }
    let (y, m, d) = civil(i64::from(days) + 10_957);
    let (y, era) = year_era(y);
    format!("{y:04}-{m:02}-{d:02}{era}")
}

/// A proleptic year (0 = 1 BC) → the year as written and its era suffix.
fn year_era(y: i64) -> (i64, &'static str) {
    if y <= 0 { (1 - y, " BC") } else { (y, "") }
}

/// Microseconds since 2000-01-01 00:00:00 → `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// (with `offset`, e.g. `+00:00`, after the time), ` BC` after it all
/// before year 1, or `infinity` / `-infinity` (never with an offset).
fn timestamp_with(micros: i64, offset: &str) -> String {
    if micros == i64::MAX {
        return "infinity".into();
    }
    if micros == i64::MIN {
        return "-infinity".into();
    }
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days + 10_957);
    let (y, era) = year_era(y);
    // Written digit by digit: `format!` with padding was a visible share
    // of reading a table with a timestamp column (a logical backup).
    let mut out = String::with_capacity(36);
    push_digits(&mut out, y as u64, 4);
    out.push('-');
    push_digits(&mut out, u64::from(m), 2);
    out.push('-');
    push_digits(&mut out, u64::from(d), 2);
    out.push(' ');
    push_digits(&mut out, (sod / 3600) as u64, 2);
    out.push(':');
    push_digits(&mut out, (sod / 60 % 60) as u64, 2);
    out.push(':');
    push_digits(&mut out, (sod % 60) as u64, 2);
    if frac != 0 {
        out.push('.');
        push_digits(&mut out, frac as u64, 6);
    }
    out.push_str(offset);
    out.push_str(era);
    out
}

/// `v` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut String, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend(buf[start..].iter().map(|&b| b as char));
}

/// [`timestamp_with`] without an offset (a plain `timestamp`).
fn timestamp(micros: i64) -> String {
    timestamp_with(micros, "")
}

/// Days since 1970-01-01 → (year, month, day). Howard Hinnant's algorithm.
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// pgvector binary: dim (u16), unused (u16), dim × f32, big-endian.
fn vector(b: &[u8]) -> Option<String> {
    let dim = u16::from_be_bytes(b.get(0..2)?.try_into().ok()?) as usize;
    let xs: Vec<f32> = (0..dim)
        .map(|i| {
            Some(f32::from_be_bytes(
                b.get(4 + 4 * i..8 + 4 * i)?.try_into().ok()?,
            ))
        })
        .collect::<Option<_>>()?;
    Some(vector_text(xs))
}

/// A vector as strata writes it: `[1,2.5,-0.1]` (each element in Rust's
/// shortest round-trip form).
fn vector_text(xs: Vec<f32>) -> String {
    let mut out = String::from("[");
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16 #4: the special values and dates before year 1 are read
    /// in Postgres' own text form, which reads back as the same value.
    #[test]
    fn infinity_and_bc_dates_read_as_postgres_writes_them() {
        assert_eq!(date(i32::MAX), "infinity");
        assert_eq!(date(i32::MIN), "-infinity");
        assert_eq!(date(0), "2000-01-01");
        // 0001-01-01 is day -730119; the day before is 1 BC's last.
        assert_eq!(date(-730_119), "0001-01-01");
        assert_eq!(date(-730_120), "0001-12-31 BC");
        assert_eq!(date(-730_120 - 365), "0001-01-01 BC");
        // Digit by digit, as `format!` with padding writes them.
        let reference = |micros: i64, offset: &str| {
            let secs = micros.div_euclid(1_000_000);
            let frac = micros.rem_euclid(1_000_000);
            let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
            let (y, m, d) = civil(days + 10_957);
            let (y, era) = year_era(y);
            let base = format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
                sod / 3600,
                sod / 60 % 60,
                sod % 60
            );
            if frac == 0 {
                format!("{base}{offset}{era}")
            } else {
                format!("{base}.{frac:06}{offset}{era}")
            }
        };
        let mut x: i64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Years ±300,000 around 2000, whole seconds a quarter of the time.
            let micros = (x % 9_500_000_000_000_000).max(-9_400_000_000_000_000);
            let micros = if x & 3 == 0 {
                micros - micros % 1_000_000
            } else {
                micros
            };
            assert_eq!(
                timestamp_with(micros, "+00:00"),
                reference(micros, "+00:00"),
                "{micros}"
            );
            assert_eq!(timestamp(micros), reference(micros, ""), "{micros}");
        }
        assert_eq!(timestamp(0), "2000-01-01 00:00:00");
        assert_eq!(timestamp_with(i64::MAX, "+00:00"), "infinity");
        assert_eq!(timestamp(i64::MIN), "-infinity");
        assert_eq!(
            timestamp_with(-730_120 * 86_400 * 1_000_000 + 500_000, "+00:00"),
            "0001-12-31 00:00:00.500000+00:00 BC"
        );
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(9190), "2025-02-28");
        assert_eq!(timestamp(0), "2000-01-01 00:00:00");
        assert_eq!(timestamp(1_500_000), "2000-01-01 00:00:01.500000");
        assert_eq!(timestamp(-1), "1999-12-31 23:59:59.999999");
    }

    /// Issue 17: Postgres' text output (the simple protocol) parses back
    /// to the binary value, so both print alike.
    #[test]
    fn text_dates_and_times_read_as_their_binary_values() {
        for days in (-800_000..3_000_000)
            .step_by(997)
            .chain([0, -1, -730_119, -730_120])
        {
            assert_eq!(parse_date(&date(days)), Some(days), "{}", date(days));
        }
        for micros in [
            0,
            1,
            -1,
            1_500_000,
            -730_120 * 86_400 * 1_000_000 + 250_000,
            9_000_000_000_000_000,
        ] {
            assert_eq!(parse_timestamp(&timestamp(micros), false), Some(micros));
        }
        // As Postgres writes them: trailing fractional zeros trimmed, the
        // session's offset, ` BC` last.
        assert_eq!(
            parse_timestamp("2000-01-01 00:00:01.5", false),
            Some(1_500_000)
        );
        assert_eq!(parse_timestamp("2000-01-01 05:30:00+05:30", true), Some(0));
        assert_eq!(
            parse_timestamp("1999-12-31 20:29:08-03:30:52", true),
            Some(0)
        );
        assert_eq!(
            timestamp_with(
                parse_timestamp("0001-01-01 00:00:00+00 BC", true).unwrap(),
                "+00:00"
            ),
            "0001-01-01 00:00:00+00:00 BC"
        );
        assert_eq!(
            parse_date("10000-01-01").map(date).as_deref(),
            Some("10000-01-01")
        );
        assert_eq!(parse_date("infinity"), Some(i32::MAX));
        assert_eq!(parse_timestamp("-infinity", true), Some(i64::MIN));
        for bad in ["2000-13-01", "20-01-01", "2000-01-01 BCE", "yesterday"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(parse_timestamp("2000-01-01 00:00:00.1234567", false), None);
    }

    #[test]
    fn text_numbers_bytes_and_vectors() {
        let col = |ty: &str| ColumnType::named(ty, false);
        let read =
            |ty: &str, s: &str| read_text(s.as_bytes(), col(ty).read, ty).map(|r| r.unwrap());
        assert_eq!(read("BOOL", "t"), Some(Value::Integer(1)));
        assert_eq!(read("BOOL", "f"), Some(Value::Integer(0)));
        assert_eq!(
            read("OID", "4294967295"),
            Some(Value::Integer(4_294_967_295))
        );
        assert_eq!(read("FLOAT4", "0.1"), Some(Value::Real(f64::from(0.1f32))));
        assert_eq!(
            read("FLOAT8", "-Infinity"),
            Some(Value::Real(f64::NEG_INFINITY))
        );
        assert!(matches!(read("FLOAT8", "NaN"), Some(Value::Real(x)) if x.is_nan()));
        assert_eq!(
            read("BYTEA", "\\x00ff10"),
            Some(Value::Blob(vec![0, 255, 16]))
        );
        assert_eq!(
            read("BYTEA", "a\\\\b\\001"),
            Some(Value::Blob(b"a\\b\x01".to_vec()))
        );
        assert_eq!(
            read("vector", "[1e-07,2.5,-3]"),
            Some(Value::Text("[0.0000001,2.5,-3]".into()))
        );
        assert_eq!(read("INT2", "70000"), None);
    }

    #[test]
    fn numerics() {
        // 12.50: ndigits 2, weight 0, sign 0, dscale 2, digits [12, 5000]
        let b = [0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88];
        assert_eq!(numeric(&b).unwrap(), "12.50");
        // -100000: ndigits 1, weight 1, sign 0x4000, dscale 0, digits [10]
        let b = [0, 1, 0, 1, 0x40, 0, 0, 0, 0, 10];
        assert_eq!(numeric(&b).unwrap(), "-100000");
        // 0.0001: ndigits 1, weight -1, dscale 4, digits [1]
        let b = [0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1];
        assert_eq!(numeric(&b).unwrap(), "0.0001");
        // 0: ndigits 0
        let b = [0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(numeric(&b).unwrap(), "0");
    }
}
