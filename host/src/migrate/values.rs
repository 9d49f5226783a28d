//! Values between dialects, and the order-independent checksum that
//! verification compares.
//!
//! # What verification compares
//!
//! Every row is reduced to its *normalised* values, in source column order
//! (target columns are matched by name), hashed to 128 bits, and the hashes
//! of all rows are added (wrapping): the sum does not depend on row order and,
//! unlike xor, two equal rows do not cancel out. Both sides must also have the
//! same row count. Normalisation is by the source column's [`Kind`], so the
//! representations the two dialects legitimately differ in compare equal:
//!
//! - NULL is NULL in every kind;
//! - Integer: the integer (a real with no fraction counts as that integer);
//! - Boolean: 0 / 1 (Postgres `true`/`false` arrive as 1 / 0);
//! - Real: the `f64` bits, `-0.0` as `0.0`;
//! - Text, Uuid (lower-cased), Blob: the bytes;
//! - Json: the document re-serialised with object keys sorted and numbers as
//!   integers or shortest `f64` text (jsonb reorders keys and drops
//!   whitespace);
//! - Vector: the `f32` bits, whether stored as little-endian bytes or as
//!   pgvector's `[1,2,3]` text;
//! - Numeric: the decimal text without trailing fractional zeros (`12.50` =
//!   `12.5`);
//! - Date / Timestamp / TimestampTz: the text with `T` as a space, `Z` as
//!   `+00:00` and trailing fractional zeros dropped (other UTC offsets are
//!   compared as written; Postgres converts them to UTC, so such values are
//!   reported as a mismatch rather than silently passing).
//!
//! The hash is a non-cryptographic 128-bit mix (two 64-bit multiply-rotate
//! lanes, finalised with murmur3's fmix): it detects corruption and lost or
//! duplicated rows, not deliberate collisions.

use std::fmt::Write as _;

use abi_stable::std_types::RString;
use base64::{Engine as _, engine::general_purpose::STANDARD_PAD_INDIFFERENT as BASE64};
use strata_plugin_api::Value;

use super::schema::{Kind, VectorStorage};

/// Standard base64 with padding: how blobs are written in JSON (exports,
/// checksums). Decoding also takes unpadded input.
pub fn base64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes [`base64_encode`]; `None` on malformed input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    BASE64.decode(s).ok()
}

/// A streaming 128-bit hasher.
#[derive(Clone, Copy, Debug)]
pub struct Hasher128 {
    a: u64,
    b: u64,
    len: u64,
    tail: [u8; 8],
    tail_len: usize,
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const K3: u64 = 0x1656_67B1_9E37_79F9;

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

impl Default for Hasher128 {
    fn default() -> Self {
        Hasher128 {
            a: 0x243F_6A88_85A3_08D3,
            b: 0x1319_8A2E_0370_7344,
            len: 0,
            tail: [0; 8],
            tail_len: 0,
        }
    }
}

impl Hasher128 {
    #[inline]
    fn word(&mut self, w: u64) {
        self.a = (self.a ^ w.wrapping_mul(K1))
            .rotate_left(31)
            .wrapping_mul(K2);
        self.b = (self.b ^ w.wrapping_mul(K3))
            .rotate_left(27)
            .wrapping_add(self.a)
            .wrapping_mul(K1);
    }

    /// Adds bytes.
    pub fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.tail_len > 0 {
            let take = (8 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// Adds a tag byte and a length-prefixed field.
    pub fn field(&mut self, tag: u8, bytes: &[u8]) {
        self.write(&[tag]);
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    /// The 128-bit result.
    pub fn finish(mut self) -> u128 {
        if self.tail_len > 0 {
            let mut last = [0u8; 8];
            last[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            self.word(u64::from_le_bytes(last));
        }
        self.word(self.len);
        let a = fmix(self.a ^ self.b.rotate_left(17));
        let b = fmix(self.b ^ a);
        (u128::from(a) << 64) | u128::from(b)
    }
}

/// An order-independent multiset checksum: row count and wrapping sum of row hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Rows added.
    pub rows: u64,
    /// Sum of their 128-bit hashes.
    pub sum: u128,
}

impl Checksum {
    /// Adds one row hash.
    pub fn add(&mut self, h: u128) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(h);
    }

    /// Adds every row of `other` (the checksum of both multisets together).
    pub fn merge(&mut self, other: Checksum) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// Hex of the sum.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// Parses pgvector's `[1,2,3]` text.
pub fn parse_vector_text(t: &str) -> Option<Vec<f32>> {
    let inner = t.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner.split(',').map(|x| x.trim().parse().ok()).collect()
}

/// Little-endian `f32` bytes → floats.
pub fn blob_to_f32(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
    )
}

/// Floats → little-endian bytes.
pub fn f32_to_blob(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// pgvector's binary form (`vector_send`: a big-endian `u16` dimension, a
/// `u16` left 0, then the `f32`s big-endian) → the little-endian `f32`
/// bytes of [`f32_to_blob`], in place (no allocation: the floats move
/// over the header, each one's bytes swapped): returns their length, the
/// prefix of `b` to keep. `None`, and `b` unchanged, when `b` is not that
/// form.
pub fn pgvector_binary_into_le(b: &mut [u8]) -> Option<usize> {
    let head = b.first_chunk::<4>()?;
    let dim = usize::from(u16::from_be_bytes([head[0], head[1]]));
    if b.len() - 4 != dim * 4 {
        return None;
    }
    b.copy_within(4.., 0);
    for c in b[..dim * 4].chunks_exact_mut(4) {
        c.reverse();
    }
    Some(dim * 4)
}

/// Floats → pgvector text (shortest round-trip form of each `f32`).
pub fn f32_to_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 11 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{x}");
    }
    s.push(']');
    s
}

/// The floats of a vector value in either storage.
pub fn vector_of(v: &Value) -> Option<Vec<f32>> {
    match v {
        Value::Blob(b) => blob_to_f32(b),
        Value::Text(t) => parse_vector_text(t),
        _ => None,
    }
}

/// Converts a source value for a target column of `kind`, where the target
/// stores vectors as `storage`: pgvector takes `[1,2,3]` text (the only
/// input form the SQL contract can bind), byte storage little-endian `f32`s.
pub fn to_target(v: Value, kind: Kind, storage: VectorStorage) -> Result<Value, String> {
    match (kind, v) {
        (_, Value::Null) => Ok(Value::Null),
        // Little-endian bytes kept as they are: only their length is checked
        // (no floats decoded on the copy's hot path).
        (Kind::Vector(dim), Value::Blob(b))
            if matches!(storage, VectorStorage::Blob) && b.len().is_multiple_of(4) =>
        {
            if b.len() / 4 != dim as usize {
                return Err(format!(
                    "vector has {} dimensions, the column has {dim}",
                    b.len() / 4
                ));
            }
            Ok(Value::Blob(b))
        }
        (Kind::Vector(dim), v) => {
            let floats = vector_of(&v)
                .ok_or_else(|| format!("a {} value is not a vector", v.kind_name()))?;
            if floats.len() != dim as usize {
                return Err(format!(
                    "vector has {} dimensions, the column has {dim}",
                    floats.len()
                ));
            }
            Ok(match storage {
                VectorStorage::PgVector => Value::Text(f32_to_text(&floats).into()),
                VectorStorage::Blob => match v {
                    Value::Blob(b) => Value::Blob(b),
                    _ => Value::Blob(f32_to_blob(&floats).into()),
                },
            })
        }
        // An exact decimal travels as text: SQLite would turn a REAL stored
        // in a text-affinity column into `1.0e+20`.
        (Kind::Numeric, Value::Real(r)) if r.is_finite() => Ok(Value::Text(format!("{r}").into())),
        (_, v) => Ok(v),
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') && !s.contains(['e', 'E']) {
        let t = s.trim_end_matches('0');
        t.strip_suffix('.').unwrap_or(t)
    } else {
        s
    }
}

fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    let _ = write!(out, "{}", f as i64);
                } else {
                    let _ = write!(out, "{f:?}");
                }
            }
        }
        J::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        J::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                canonical_json(&m[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

/// Canonical JSON text of a JSON document given as a value (text, or a
/// number SQLite stored with numeric affinity).
pub fn canonical_json_value(v: &Value) -> Option<String> {
    let doc: serde_json::Value = match v {
        Value::Text(t) => serde_json::from_str(t).ok()?,
        Value::Integer(i) => (*i).into(),
        Value::Real(r) => serde_json::Number::from_f64(*r)?.into(),
        _ => return None,
    };
    let mut out = String::new();
    canonical_json(&doc, &mut out);
    Some(out)
}

fn timestamp_text(t: &str) -> String {
    let mut s = t.trim().replacen('T', " ", 1);
    if let Some(x) = s.strip_suffix('Z') {
        s = format!("{x}+00:00");
    }
    // Trailing zeros of the fractional seconds, before any offset.
    let (main, offset) = match s.rfind(['+', '-']) {
        Some(i) if i > 10 => (s[..i].to_string(), s[i..].to_string()),
        _ => (s.clone(), String::new()),
    };
    let main = if main.contains('.') {
        let t = main.trim_end_matches('0');
        t.strip_suffix('.').unwrap_or(t).to_string()
    } else {
        main
    };
    let offset = if offset == "+00" {
        "+00:00".into()
    } else {
        offset
    };
    format!("{main}{offset}")
}

/// Hashes one value, normalised for `kind` (see the module docs), into `h`.
pub fn hash_value(h: &mut Hasher128, kind: Kind, v: &Value) {
    if v.is_null() {
        h.write(&[0]);
        return;
    }
    match kind {
        Kind::Integer => match v {
            Value::Integer(i) => h.field(1, &i.to_le_bytes()),
            Value::Real(r) if r.fract() == 0.0 && r.abs() < 9.2e18 => {
                h.field(1, &(*r as i64).to_le_bytes())
            }
            Value::Text(t) if t.trim().parse::<i64>().is_ok() => {
                h.field(1, &t.trim().parse::<i64>().unwrap_or(0).to_le_bytes())
            }
            other => raw(h, other),
        },
        Kind::Boolean => match v {
            Value::Integer(i) => h.field(2, &[u8::from(*i != 0)]),
            Value::Text(t) if t.as_str() == "true" => h.field(2, &[1]),
            Value::Text(t) if t.as_str() == "false" => h.field(2, &[0]),
            other => raw(h, other),
        },
        Kind::Real => match v.as_f64() {
            Some(f) => {
                let f = if f == 0.0 { 0.0 } else { f };
                h.field(3, &f.to_bits().to_le_bytes())
            }
            None => raw(h, v),
        },
        Kind::Json => match canonical_json_value(v) {
            Some(t) => h.field(6, t.as_bytes()),
            None => raw(h, v),
        },
        Kind::Vector(_) => match v {
            // Little-endian f32 bytes already: hashed as they are (what
            // decoding and encoding them again would give, bit for bit).
            Value::Blob(b) if b.len().is_multiple_of(4) => h.field(7, b),
            _ => match vector_of(v) {
                Some(f) => h.field(7, &f32_to_blob(&f)),
                None => raw(h, v),
            },
        },
        Kind::Numeric => {
            let t = match v {
                Value::Integer(i) => i.to_string(),
                // Display never uses an exponent: 1e20 is 100000000000000000000.
                Value::Real(r) => format!("{r}"),
                Value::Text(t) => t.trim().to_string(),
                other => return raw(h, other),
            };
            h.field(8, trim_fraction(&t).as_bytes())
        }
        Kind::Uuid => match v {
            Value::Text(t) => h.field(4, t.to_ascii_lowercase().as_bytes()),
            other => raw(h, other),
        },
        Kind::Date | Kind::Timestamp | Kind::TimestampTz => match v {
            Value::Text(t) => h.field(9, timestamp_text(t).as_bytes()),
            other => raw(h, other),
        },
        Kind::Text | Kind::Blob | Kind::PgText => raw(h, v),
    }
}

fn raw(h: &mut Hasher128, v: &Value) {
    match v {
        Value::Null => h.write(&[0]),
        Value::Integer(i) => h.field(1, &i.to_le_bytes()),
        Value::Real(r) => h.field(3, &r.to_bits().to_le_bytes()),
        Value::Text(t) => h.field(4, t.as_bytes()),
        Value::Blob(b) => h.field(5, b),
    }
}

/// Encodes key values for a checkpoint: a JSON array of tagged values.
pub fn encode_key(values: &[Value]) -> String {
    let items: Vec<serde_json::Value> = values
        .iter()
        .map(|v| match v {
            Value::Null => serde_json::json!({ "n": null }),
            Value::Integer(i) => serde_json::json!({ "i": i }),
            Value::Real(r) => serde_json::json!({ "r": r.to_bits() }),
            Value::Text(t) => serde_json::json!({ "t": t.as_str() }),
            Value::Blob(b) => serde_json::json!({ "b": base64_encode(b) }),
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// Decodes [`encode_key`].
pub fn decode_key(s: &str) -> Option<Vec<Value>> {
    let doc: serde_json::Value = serde_json::from_str(s).ok()?;
    doc.as_array()?
        .iter()
        .map(|item| {
            let (tag, v) = item.as_object()?.iter().next()?;
            Some(match tag.as_str() {
                "n" => Value::Null,
                "i" => Value::Integer(v.as_i64()?),
                "r" => Value::Real(f64::from_bits(v.as_u64()?)),
                "t" => Value::Text(RString::from(v.as_str()?)),
                "b" => Value::Blob(base64_decode(v.as_str()?)?.into()),
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgvector_binary_form_becomes_little_endian_floats() {
        let v = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.25e-7];
        let mut send = vec![0, 4, 0, 0];
        for x in v {
            send.extend_from_slice(&x.to_be_bytes());
        }
        let mut le = send.clone();
        let n = pgvector_binary_into_le(&mut le).unwrap();
        assert_eq!(le[..n], f32_to_blob(&v));
        // A length that disagrees with the dimension, or no header: refused
        // and left as it was.
        let mut short = send[..send.len() - 1].to_vec();
        assert_eq!(pgvector_binary_into_le(&mut short), None);
        assert_eq!(short, send[..send.len() - 1]);
        assert_eq!(pgvector_binary_into_le(&mut [0, 1]), None);
        assert_eq!(pgvector_binary_into_le(&mut [0, 0, 0, 0]), Some(0));
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..20u8 {
            let b: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&b)).unwrap(), b);
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        // Unpadded input decodes too, as the hand-written decoder took it.
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    fn hash(kind: Kind, v: Value) -> u128 {
        let mut h = Hasher128::default();
        hash_value(&mut h, kind, &v);
        h.finish()
    }

    #[test]
    fn normalisation_equates_dialect_forms() {
        assert_eq!(
            hash(Kind::Json, Value::from(r#"{"b": 1, "a": [1.0, "x"]}"#)),
            hash(Kind::Json, Value::from(r#"{"a":[1,"x"],"b":1}"#))
        );
        assert_ne!(
            hash(Kind::Json, Value::from(r#"{"a": 1}"#)),
            hash(Kind::Json, Value::from(r#"{"a": 2}"#))
        );
        let v = [0.5f32, -1.25, 3.0e-7];
        assert_eq!(
            hash(Kind::Vector(3), Value::from(f32_to_blob(&v))),
            hash(Kind::Vector(3), Value::from(f32_to_text(&v)))
        );
        assert_eq!(
            hash(Kind::Numeric, Value::from("12.50")),
            hash(Kind::Numeric, Value::Real(12.5))
        );
        assert_eq!(
            hash(Kind::TimestampTz, Value::from("2024-01-02T03:04:05.500Z")),
            hash(
                Kind::TimestampTz,
                Value::from("2024-01-02 03:04:05.5+00:00")
            )
        );
        assert_eq!(
            hash(Kind::Real, Value::Real(-0.0)),
            hash(Kind::Real, Value::Real(0.0))
        );
        assert_ne!(
            hash(Kind::Text, Value::from("1")),
            hash(Kind::Integer, Value::Integer(1))
        );
    }

    #[test]
    fn checksum_is_order_independent_and_counts_duplicates() {
        let hs: Vec<u128> = (0..5u8)
            .map(|i| {
                let mut h = Hasher128::default();
                h.write(&[i; 13]);
                h.finish()
            })
            .collect();
        let (mut a, mut b) = (Checksum::default(), Checksum::default());
        hs.iter().for_each(|h| a.add(*h));
        hs.iter().rev().for_each(|h| b.add(*h));
        assert_eq!(a, b);
        let mut c = a;
        c.add(hs[0]);
        c.add(hs[0]);
        assert_ne!(c.sum, a.sum, "duplicates must not cancel");
    }

    #[test]
    fn keys_round_trip() {
        let k = vec![
            Value::Integer(-3),
            Value::from("a\"b"),
            Value::Real(1.5),
            Value::from(vec![0u8, 255]),
        ];
        assert_eq!(decode_key(&encode_key(&k)), Some(k));
    }
}
