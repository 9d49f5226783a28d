//! How a record is laid out in a Qdrant point, and back.
//!
//! A point's id is the UUID v5 of the record's string id ([`point_id`]);
//! its payload holds:
//!
//! | key | what |
//! | --- | --- |
//! | `_id` | the record's id |
//! | `_meta` | the metadata, as the JSON text written (returned byte for byte) |
//! | `_text` | the text, when there is one |
//! | `f.<path>` | each metadata value reachable by a dotted path: a scalar, or an array's scalar elements |
//! | `_present` | the paths whose value is present and not null |
//! | `_hasnull` | the paths whose value is an array holding a null |
//! | `s.<path>` | each string at a path (or in its array) as order-preserving chunks, for `$gt`… on strings |
//! | `_long` | the paths holding a string too long to chunk |
//!
//! Paths are encoded into keys of ASCII letters, digits and `_`
//! ([`encode_path`]), so a metadata key of any spelling is one Qdrant key
//! and never a nested or quoted path. The derived keys let every operator of
//! the filter language translate exactly (see [`crate::filter`]): Qdrant's
//! own `is_null` / `is_empty` conflate a missing field, `null` and `[]`,
//! which the contract tells apart, and Qdrant ranges compare numbers only.

use std::collections::HashMap;

use qdrant_client::qdrant::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Value as Json};

/// Payload key of the record's id.
pub(crate) const ID: &str = "_id";
/// Payload key of the metadata text.
pub(crate) const META: &str = "_meta";
/// Payload key of the text.
pub(crate) const TEXT: &str = "_text";
/// Payload key of the paths present and not null.
pub(crate) const PRESENT: &str = "_present";
/// Payload key of the paths whose array holds a null.
pub(crate) const HASNULL: &str = "_hasnull";
/// Payload key of the paths holding a string too long to chunk.
pub(crate) const LONG: &str = "_long";
/// Strings longer than this (bytes) are not chunked: a string range on
/// their path is refused (`unsupported`) while one is stored.
pub(crate) const MAX_CHUNKED: usize = 512;

/// Bytes per chunk: 6 bytes (48 bits) and a 3-bit length fit an `f64` exactly.
const CHUNK: usize = 6;

/// The namespace of point ids (a fixed, random UUID: ids are stable forever).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x8f0c_5a1e_93d4_4b6e_a2f1_7c3e_91d0_b4a7);

/// The point id of a record id: UUID v5, so the same id is the same point.
pub(crate) fn point_id(id: &str) -> String {
    uuid::Uuid::new_v5(&NAMESPACE, id.as_bytes()).to_string()
}

/// A dotted path as one Qdrant key: ASCII letters and digits kept, every
/// other byte (`.`, `_`, non-ASCII) as `_XX` (hex). Injective.
pub(crate) fn encode_path(path: &[String]) -> String {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            out.push_str("_2E");
        }
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() {
                out.push(b as char);
            } else {
                out.push_str(&format!("_{b:02X}"));
            }
        }
    }
    out
}

/// Order-preserving chunks of a string: chunk `i` is bytes `6i..6i+6`
/// (zero-padded, big-endian) × 8 + how many of them are real. There are
/// `len / 6 + 1` chunks, so the last holds fewer than 6 real bytes;
/// comparing chunk tuples lexicographically is comparing the strings by
/// UTF-8 bytes, and every chunk is an integer below 2^51 (exact in `f64`).
pub(crate) fn chunks(s: &str) -> Vec<i64> {
    let b = s.as_bytes();
    (0..=b.len() / CHUNK)
        .map(|i| {
            let part = &b[(i * CHUNK).min(b.len())..((i + 1) * CHUNK).min(b.len())];
            let mut v: i64 = 0;
            for k in 0..CHUNK {
                v = (v << 8) | i64::from(part.get(k).copied().unwrap_or(0));
            }
            v * 8 + part.len() as i64
        })
        .collect()
}

/// The payload of one record.
pub(crate) fn record_payload(
    id: &str,
    metadata_json: &str,
    metadata: &Map<String, Json>,
    text: Option<&str>,
) -> HashMap<String, Value> {
    let mut d = Derived::default();
    d.walk(metadata, &mut Vec::new());
    let mut p = HashMap::new();
    p.insert(ID.into(), string(id));
    let meta = if metadata_json.is_empty() {
        "{}"
    } else {
        metadata_json
    };
    p.insert(META.into(), string(meta));
    if let Some(t) = text {
        p.insert(TEXT.into(), string(t));
    }
    p.insert("f".into(), object(d.fields));
    p.insert("s".into(), object(d.strings));
    p.insert(PRESENT.into(), strings(d.present));
    p.insert(HASNULL.into(), strings(d.hasnull));
    p.insert(LONG.into(), strings(d.long));
    p
}

#[derive(Default)]
struct Derived {
    fields: HashMap<String, Value>,
    strings: HashMap<String, Value>,
    present: Vec<String>,
    hasnull: Vec<String>,
    long: Vec<String>,
}

impl Derived {
    fn walk(&mut self, obj: &Map<String, Json>, path: &mut Vec<String>) {
        for (k, v) in obj {
            // A key holding `.` (or empty) is unreachable by a dotted path.
            if k.is_empty() || k.contains('.') {
                continue;
            }
            path.push(k.clone());
            let key = encode_path(path);
            if !v.is_null() {
                self.present.push(key.clone());
            }
            match v {
                Json::Null => {}
                Json::Object(inner) => self.walk(inner, path),
                Json::Array(items) => {
                    let mut scalars = Vec::new();
                    let mut strs = Vec::new();
                    for x in items {
                        match x {
                            Json::Null => {
                                if !self.hasnull.contains(&key) {
                                    self.hasnull.push(key.clone());
                                }
                            }
                            // Nested arrays and objects never equal a scalar.
                            Json::Array(_) | Json::Object(_) => {}
                            Json::String(s) => {
                                scalars.push(scalar(x));
                                strs.push(s.as_str());
                            }
                            _ => scalars.push(scalar(x)),
                        }
                    }
                    if !scalars.is_empty() {
                        self.fields.insert(
                            key.clone(),
                            Value {
                                kind: Some(Kind::ListValue(ListValue { values: scalars })),
                            },
                        );
                    }
                    self.add_strings(&key, &strs);
                }
                Json::String(s) => {
                    self.fields.insert(key.clone(), scalar(v));
                    self.add_strings(&key, &[s.as_str()]);
                }
                _ => {
                    self.fields.insert(key.clone(), scalar(v));
                }
            }
            path.pop();
        }
    }

    fn add_strings(&mut self, key: &str, strs: &[&str]) {
        let mut elems = Vec::new();
        for s in strs {
            if s.len() > MAX_CHUNKED {
                if !self.long.iter().any(|k| k == key) {
                    self.long.push(key.to_string());
                }
                continue;
            }
            let fields = chunks(s)
                .into_iter()
                .enumerate()
                .map(|(i, c)| (format!("c{i}"), int(c)))
                .collect();
            elems.push(Value {
                kind: Some(Kind::StructValue(Struct { fields })),
            });
        }
        if !elems.is_empty() {
            self.strings.insert(
                key.to_string(),
                Value {
                    kind: Some(Kind::ListValue(ListValue { values: elems })),
                },
            );
        }
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn int(i: i64) -> Value {
    Value {
        kind: Some(Kind::IntegerValue(i)),
    }
}

fn strings(v: Vec<String>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue {
            values: v.iter().map(|s| string(s)).collect(),
        })),
    }
}

fn object(fields: HashMap<String, Value>) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct { fields })),
    }
}

/// A JSON scalar (not null) as a payload value. Integers beyond `i64` go
/// as doubles: the server compares numbers as `f64`, like the contract.
fn scalar(v: &Json) -> Value {
    let kind = match v {
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        _ => Kind::NullValue(0),
    };
    Value { kind: Some(kind) }
}

/// A string value of a returned payload.
pub(crate) fn get_str<'a>(payload: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    match payload.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_order_like_bytes() {
        let words = [
            "",
            "a",
            "a\0",
            "a\0\0\0\0\0\0",
            "ab",
            "abcdef",
            "abcdefg",
            "abcdef\0",
            "b",
            "item-10",
            "item-09",
            "item-1",
            "ÿ",
            "é",
            "zzzzzzzzzzzzz",
            "zzzzzz",
        ];
        for x in words {
            for y in words {
                assert_eq!(
                    chunks(x).cmp(&chunks(y)),
                    x.as_bytes().cmp(y.as_bytes()),
                    "{x:?} vs {y:?}"
                );
            }
        }
        assert!(
            chunks(&"\u{10FFFF}".repeat(200))
                .iter()
                .all(|c| *c < (1 << 51))
        );
    }

    #[test]
    fn paths_encode_injectively_into_plain_keys() {
        let p = |s: &[&str]| encode_path(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&["kind"]), "kind");
        assert_ne!(p(&["a", "b"]), p(&["a_2Eb"]));
        assert_ne!(p(&["a_b"]), p(&["a", "b"]));
        assert!(
            p(&["日本", "x y"])
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        );
    }

    #[test]
    fn point_ids_are_stable_uuids() {
        assert_eq!(point_id("a"), point_id("a"));
        assert_ne!(point_id("a"), point_id("b"));
        assert!(uuid::Uuid::parse_str(&point_id("mémoire")).is_ok());
    }
}
