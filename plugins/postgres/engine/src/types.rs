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
//! Parameters take the type the server infers for them: an Integer binds to
//! an int2/int4/int8/float/numeric/bool parameter, a Real to float, Text to
//! text-like, json/jsonb, and — through an explicit cast the plugin adds — to
//! numeric, uuid, date, timestamp(tz), vector and other types with a text
//! input form; Blob to bytea; Null to any.

use sqlx::{
    Arguments, Column, Row, TypeInfo, ValueRef,
    postgres::{PgArguments, PgRow, PgTypeInfo},
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

/// Reads column `i` of `row`.
pub(crate) fn read(row: &PgRow, i: usize) -> PluginResult<Value> {
    let raw = row.try_get_raw(i).map_err(crate::error::map)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let ty = raw.type_info().name().to_string();
    let bytes = raw
        .as_bytes()
        .map_err(|e| PluginError::internal(format!("column {}: {e}", row.columns()[i].name())))?;
    let bad = || {
        PluginError::internal(format!(
            "column {}: malformed {ty} value",
            row.columns()[i].name()
        ))
    };
    let be = |n: usize| -> PluginResult<&[u8]> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(bad())
        }
    };
    Ok(match ty.as_str() {
        "BOOL" => Value::Integer(i64::from(be(1)?[0] != 0)),
        "INT2" => Value::Integer(i64::from(i16::from_be_bytes(
            be(2)?.try_into().map_err(|_| bad())?,
        ))),
        "INT4" => Value::Integer(i64::from(i32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        "INT8" => Value::Integer(i64::from_be_bytes(be(8)?.try_into().map_err(|_| bad())?)),
        "OID" => Value::Integer(i64::from(u32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        "FLOAT4" => Value::Real(f64::from(f32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        "FLOAT8" => Value::Real(f64::from_be_bytes(be(8)?.try_into().map_err(|_| bad())?)),
        "BYTEA" => Value::Blob(bytes.to_vec()),
        "JSONB" => Value::Text(text(bytes.get(1..).ok_or_else(bad)?, &ty)?),
        "UUID" => Value::Text(uuid(be(16)?)),
        "NUMERIC" => Value::Text(numeric(bytes).ok_or_else(bad)?),
        "DATE" => Value::Text(date(i32::from_be_bytes(
            be(4)?.try_into().map_err(|_| bad())?,
        ))),
        "TIMESTAMP" => Value::Text(timestamp(i64::from_be_bytes(
            be(8)?.try_into().map_err(|_| bad())?,
        ))),
        "TIMESTAMPTZ" => Value::Text(timestamp_with(
            i64::from_be_bytes(be(8)?.try_into().map_err(|_| bad())?),
            "+00:00",
        )),
        "VECTOR" | "vector" => Value::Text(vector(bytes).ok_or_else(bad)?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "\"CHAR\"" | "JSON" | "CITEXT"
        | "XML" | "UNKNOWN" => Value::Text(text(bytes, &ty)?),
        other if raw.type_info().kind_is_enum() => Value::Text(text(bytes, other)?),
        other => {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "column {} has type {other}, which strata does not read yet; select it as text (`::text`)",
                    row.columns()[i].name()
                ),
            ));
        }
    })
}

trait EnumCheck {
    fn kind_is_enum(&self) -> bool;
}
impl EnumCheck for PgTypeInfo {
    fn kind_is_enum(&self) -> bool {
        matches!(self.kind(), sqlx::postgres::PgTypeKind::Enum(_))
    }
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
    let mut out = String::from("[");
    for i in 0..dim {
        let x = f32::from_be_bytes(b.get(4 + 4 * i..8 + 4 * i)?.try_into().ok()?);
        if i > 0 {
            out.push(',');
        }
        out.push_str(&x.to_string());
    }
    out.push(']');
    Some(out)
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
