//! How a record's metadata and text are laid out in Pinecone's flat
//! metadata, so that every filter of the contract has an exact translation
//! ([`crate::filter`]).
//!
//! Pinecone metadata is flat: string, number, boolean or list-of-strings
//! values, no null, no nesting, numbers as `f64`. The contract's metadata
//! is any JSON object. So a record's Pinecone metadata holds:
//!
//! | key | value |
//! |---|---|
//! | `strata_m` | the metadata, as JSON text: what fetch, scan and query return, exactly as written |
//! | `strata_t` | the text, when the record has one |
//! | `strata_w` | with `read_after_write_ms`: the writing upsert's random stamp, to see when it reads back |
//! | `e~P` | for each addressable path `P` (below) holding scalars: a list of typed tokens, one per scalar (the value itself, or each scalar element of an array): `s<string>`, `n<number>` (shortest `f64` form, `-0` as `0`), `t` / `f`, and `z` for null |
//! | `x~P` | `true` when `P` is present and not null |
//! | `n<~P`, `n>~P` | the least and greatest number at `P` (the value, or among an array's elements) |
//! | `b<~P`, `b>~P` | the same for booleans, as 0 / 1 |
//! | `s<~J~P`, `s>~J~P` | chunk `J` of the least and greatest string at `P` ([`chunks`]) |
//!
//! A path `P` is a dotted chain of object keys from the top (`src.app`),
//! as filters write it; keys that a filter cannot name (containing `.`,
//! or empty) and objects inside arrays are not
//! projected — no filter can reach them. Only `strata_m` and `strata_t`
//! are read back; records written by other tools (no `strata_m`) read back
//! with their Pinecone metadata as is.

use serde_json::{Map, Value as Json};

/// The metadata JSON text.
pub(crate) const META: &str = "strata_m";
/// The text.
pub(crate) const TEXT: &str = "strata_t";
/// The write stamp of the upsert that wrote a record (with `read_after_write_ms`).
pub(crate) const STAMP: &str = "strata_w";
/// How many chunks of a string are stored ([`chunks`]): range filters are
/// exact against bounds shorter than `CHUNKS * CHUNK_BYTES` bytes.
pub(crate) const CHUNKS: usize = 8;
/// Bytes per chunk.
pub(crate) const CHUNK_BYTES: usize = 6;

/// The token of a scalar in `e~P`.
pub(crate) fn token(v: &Json) -> Option<String> {
    match v {
        Json::Null => Some("z".into()),
        Json::Bool(true) => Some("t".into()),
        Json::Bool(false) => Some("f".into()),
        Json::Number(n) => n.as_f64().map(number_token),
        Json::String(s) => Some(format!("s{s}")),
        _ => None,
    }
}

/// `n` + the shortest form of `x` that reads back as `x` (`-0` as `0`).
pub(crate) fn number_token(x: f64) -> String {
    let x = if x == 0.0 { 0.0 } else { x };
    format!("n{x}")
}

/// A string as order-preserving numbers: chunk `j` packs bytes
/// `6j .. 6j+6` in base 257, a byte `b` as the digit `b + 1` and each
/// position past the end as 0. Comparing two strings' chunk tuples
/// lexicographically is comparing the strings by bytes (a prefix sorts
/// first), and each chunk (< 257^6 < 2^53) is exact in an `f64`. Returns
/// the chunks up to and including the one holding the end, at most
/// [`CHUNKS`] (a missing chunk is 0).
pub(crate) fn chunks(s: &str) -> Vec<f64> {
    let bytes = s.as_bytes();
    let n = (bytes.len() / CHUNK_BYTES + 1).min(CHUNKS);
    (0..n)
        .map(|j| {
            let mut c: u64 = 0;
            for i in 0..CHUNK_BYTES {
                let digit = bytes
                    .get(j * CHUNK_BYTES + i)
                    .map_or(0, |b| u64::from(*b) + 1);
                c = c * 257 + digit;
            }
            c as f64
        })
        .collect()
}

/// Whether a filter can name `key` as a path segment.
pub(crate) fn addressable(key: &str) -> bool {
    !key.is_empty() && !key.contains('.')
}

/// The Pinecone metadata of a record: [`META`], [`TEXT`] and the projection.
pub(crate) fn encode(metadata: &Map<String, Json>, text: Option<&str>) -> Map<String, Json> {
    let mut out = Map::new();
    out.insert(
        META.into(),
        Json::String(Json::Object(metadata.clone()).to_string()),
    );
    if let Some(t) = text {
        out.insert(TEXT.into(), Json::String(t.to_string()));
    }
    project(metadata, "", &mut out);
    out
}

fn project(obj: &Map<String, Json>, prefix: &str, out: &mut Map<String, Json>) {
    for (k, v) in obj {
        if !addressable(k) {
            continue;
        }
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        leaf(&path, v, out);
        if let Json::Object(inner) = v {
            project(inner, &path, out);
        }
    }
}

fn leaf(path: &str, v: &Json, out: &mut Map<String, Json>) {
    if !v.is_null() {
        out.insert(format!("x~{path}"), Json::Bool(true));
    }
    let scalars: Vec<&Json> = match v {
        Json::Array(items) => items.iter().filter(|i| token(i).is_some()).collect(),
        Json::Object(_) => Vec::new(),
        v => vec![v],
    };
    if scalars.is_empty() {
        return;
    }
    let mut tokens: Vec<String> = scalars.iter().filter_map(|s| token(s)).collect();
    tokens.sort();
    tokens.dedup();
    out.insert(
        format!("e~{path}"),
        Json::Array(tokens.into_iter().map(Json::String).collect()),
    );
    let numbers: Vec<f64> = scalars.iter().filter_map(|s| s.as_f64()).collect();
    if let (Some(lo), Some(hi)) = (
        numbers.iter().copied().reduce(f64::min),
        numbers.iter().copied().reduce(f64::max),
    ) {
        out.insert(format!("n<~{path}"), num(lo));
        out.insert(format!("n>~{path}"), num(hi));
    }
    let bools: Vec<f64> = scalars
        .iter()
        .filter_map(|s| s.as_bool())
        .map(|b| f64::from(u8::from(b)))
        .collect();
    if let (Some(lo), Some(hi)) = (
        bools.iter().copied().reduce(f64::min),
        bools.iter().copied().reduce(f64::max),
    ) {
        out.insert(format!("b<~{path}"), num(lo));
        out.insert(format!("b>~{path}"), num(hi));
    }
    let strings: Vec<&str> = scalars.iter().filter_map(|s| s.as_str()).collect();
    let least = strings.iter().min_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let greatest = strings.iter().max_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for (tag, s) in [("s<", least), ("s>", greatest)] {
        if let Some(s) = s {
            for (j, c) in chunks(s).into_iter().enumerate() {
                out.insert(format!("{tag}~{j}~{path}"), num(c));
            }
        }
    }
}

fn num(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// The metadata JSON text and the text of a record read back.
pub(crate) fn decode(md: Option<&Map<String, Json>>) -> (String, Option<String>) {
    let Some(md) = md else {
        return ("{}".into(), None);
    };
    let text = md.get(TEXT).and_then(Json::as_str).map(str::to_string);
    let meta = match md.get(META).and_then(Json::as_str) {
        Some(m) => m.to_string(),
        // Written by another tool: its flat metadata is the metadata.
        None => Json::Object(md.clone()).to_string(),
    };
    (meta, text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn chunks_preserve_byte_order_and_prefixes() {
        let words = [
            "",
            "a",
            "ab",
            "abcdef",
            "abcdefg",
            "abcdeg",
            "b",
            "é",
            "\u{0}",
            "zzzzzzzzzzzz",
        ];
        for a in words {
            for b in words {
                let (ca, cb) = (chunks(a), chunks(b));
                let n = ca.len().max(cb.len());
                let pad = |c: &Vec<f64>| {
                    let mut c = c.clone();
                    c.resize(n, 0.0);
                    c
                };
                let by_chunks = pad(&ca).partial_cmp(&pad(&cb)).unwrap();
                assert_eq!(by_chunks, a.as_bytes().cmp(b.as_bytes()), "{a:?} vs {b:?}");
            }
        }
        assert!(chunks(&"x".repeat(500)).len() == CHUNKS);
        assert!(257f64.powi(6) < 2f64.powi(53));
    }

    #[test]
    fn projection_of_a_record() {
        let m = json!({"kind": "fact", "n": [2, 3.0, "x", null], "src": {"app": "cli", "v": null},
                        "a.b": 1, "$p": 2, "items": [{"k": 1}], "e": []});
        let out = encode(m.as_object().unwrap(), Some("hi"));
        assert_eq!(out["strata_t"], "hi");
        assert_eq!(out["e~kind"], json!(["sfact"]));
        assert_eq!(out["e~n"], json!(["n2", "n3", "sx", "z"]));
        assert_eq!(out["n<~n"], json!(2.0));
        assert_eq!(out["n>~n"], json!(3.0));
        assert_eq!(out["x~src"], true);
        assert_eq!(out["e~src.app"], json!(["scli"]));
        assert!(out.get("x~src.v").is_none());
        assert_eq!(out["e~src.v"], json!(["z"]));
        assert!(
            !out.keys()
                .any(|k| k.contains("a.b") || k.contains("items.k"))
        );
        assert_eq!(out["e~$p"], json!(["n2"]));
        assert_eq!(out["x~e"], true);
        assert!(out.get("e~e").is_none());
        let (meta, text) = decode(Some(&out));
        assert_eq!(serde_json::from_str::<Json>(&meta).unwrap(), m);
        assert_eq!(text.as_deref(), Some("hi"));
    }
}
