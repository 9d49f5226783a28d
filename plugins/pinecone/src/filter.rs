//! The filter language translated to Pinecone's, exactly.
//!
//! Built on the metadata layout of [`crate::layout`]. Pinecone has `$eq
//! $ne $gt $gte $lt $lte $in $nin $exists $and $or` but no `$not`, and its
//! documentation does not say whether `$ne` / `$nin` match a record that
//! lacks the field. So negation is pushed down to the leaves (De Morgan),
//! and a negated leaf says what a missing field does explicitly:
//! `¬(k $in T)` is `k $nin T  ∨  k $exists false`, whichever reading the
//! server takes. Each contract operator:
//!
//! | contract | Pinecone |
//! | --- | --- |
//! | `$and` / `$or` / `$not` | `$and` / `$or` / De Morgan down to negated leaves |
//! | `$eq v` (string, number, boolean) | `e~P $in [token(v)]` (any element, type-strict, numbers as `f64`) |
//! | `$eq null` | `x~P $exists false  ∨  e~P $in ["z"]` (missing, null, or an array holding null) |
//! | `$ne`, `$nin` | the negation of `$eq`, `$in` |
//! | `$in` | one `e~P $in tokens` (+ the `$eq null` form when the list holds null) |
//! | `$gt` / `$gte` number | `n>~P $gt` / `$gte` (the greatest number at `P`: some element is greater iff it is) |
//! | `$lt` / `$lte` number | `n<~P $lt` / `$lte` (the least) |
//! | ranges on booleans | the same on `b>~P` / `b<~P` (0 / 1) |
//! | ranges on strings | the lexicographic comparison of the greatest / least string's chunk tuple ([`crate::layout::chunks`]), nested `$or` / `$and` |
//! | `$gt` / `$lt` null | matches nothing; `$gte` / `$lte` null is `$eq null` without the missing case |
//! | `$exists` | `x~P $exists` |
//!
//! The one operator without an exact translation answers `unsupported`
//! naming its clause: a string range whose bound is
//! `CHUNKS · CHUNK_BYTES` = 48 bytes or longer (the first 48 bytes of each
//! string are laid out).

use serde_json::{Value as Json, json};
use strata_plugin::{
    PluginError, PluginResult,
    filter::{FieldOp, Filter, Scalar},
};

use crate::layout::{CHUNK_BYTES, CHUNKS, chunks, number_token, token};

/// Pinecone's largest `$in` / `$nin` list.
const MAX_IN: usize = 10_000;

/// A Pinecone filter under construction.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Pf {
    /// Matches everything.
    True,
    /// Matches nothing.
    False,
    /// All of.
    And(Vec<Pf>),
    /// Any of.
    Or(Vec<Pf>),
    /// `{key: {op: arg}}`.
    Leaf(String, &'static str, Json),
}

fn leaf(key: String, op: &'static str, arg: Json) -> Pf {
    Pf::Leaf(key, op, arg)
}

fn missing(key: &str) -> Pf {
    leaf(key.to_string(), "$exists", json!(false))
}

fn and(parts: Vec<Pf>) -> Pf {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Pf::True => {}
            Pf::False => return Pf::False,
            Pf::And(inner) => out.extend(inner),
            p => out.push(p),
        }
    }
    match out.len() {
        0 => Pf::True,
        1 => out.pop().expect("one"),
        _ => Pf::And(out),
    }
}

fn or(parts: Vec<Pf>) -> Pf {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Pf::False => {}
            Pf::True => return Pf::True,
            Pf::Or(inner) => out.extend(inner),
            p => out.push(p),
        }
    }
    match out.len() {
        0 => Pf::False,
        1 => out.pop().expect("one"),
        _ => Pf::Or(out),
    }
}

/// The negation, pushed to the leaves.
fn negate(p: Pf) -> Pf {
    match p {
        Pf::True => Pf::False,
        Pf::False => Pf::True,
        Pf::And(ps) => or(ps.into_iter().map(negate).collect()),
        Pf::Or(ps) => and(ps.into_iter().map(negate).collect()),
        Pf::Leaf(k, "$exists", arg) => leaf(k, "$exists", json!(arg != json!(true))),
        Pf::Leaf(k, op, arg) => {
            let flipped = match op {
                "$in" => "$nin",
                "$nin" => "$in",
                "$eq" => "$ne",
                "$ne" => "$eq",
                "$gt" => "$lte",
                "$lte" => "$gt",
                "$gte" => "$lt",
                "$lt" => "$gte",
                other => unreachable!("no leaf uses {other}"),
            };
            let gone = missing(&k);
            or(vec![leaf(k, flipped, arg), gone])
        }
    }
}

impl Pf {
    /// The Pinecone filter document (`True` / `False` are the caller's to
    /// handle: no filter / no request at all).
    pub(crate) fn to_json(&self) -> Json {
        match self {
            Pf::True => json!({}),
            // Never sent: a key no record has.
            Pf::False => json!({"strata~never": {"$exists": true}}),
            Pf::And(ps) => json!({"$and": ps.iter().map(Pf::to_json).collect::<Vec<_>>()}),
            Pf::Or(ps) => json!({"$or": ps.iter().map(Pf::to_json).collect::<Vec<_>>()}),
            Pf::Leaf(k, op, arg) => {
                let mut inner = serde_json::Map::new();
                inner.insert((*op).to_string(), arg.clone());
                let mut outer = serde_json::Map::new();
                outer.insert(k.clone(), Json::Object(inner));
                Json::Object(outer)
            }
        }
    }
}

/// Parses and translates filter JSON (`""` = [`Pf::True`]).
pub(crate) fn translate_str(text: &str) -> PluginResult<(Filter, Pf)> {
    let f = Filter::parse_str(text)?;
    let pf = translate(&f)?;
    Ok((f, pf))
}

/// Translates a parsed filter.
pub(crate) fn translate(f: &Filter) -> PluginResult<Pf> {
    Ok(match f {
        Filter::All => Pf::True,
        Filter::And(fs) => and(fs.iter().map(translate).collect::<PluginResult<_>>()?),
        Filter::Or(fs) => or(fs.iter().map(translate).collect::<PluginResult<_>>()?),
        Filter::Not(inner) => negate(translate(inner)?),
        Filter::Field { path, op } => field(&path.join("."), op)?,
    })
}

fn eq_null(p: &str) -> Pf {
    or(vec![
        missing(&format!("x~{p}")),
        leaf(format!("e~{p}"), "$in", json!(["z"])),
    ])
}

fn scalar_token(s: &Scalar) -> Option<String> {
    match s {
        Scalar::Null => None,
        Scalar::Number(n) => Some(number_token(*n)),
        other => token(&other.to_json()),
    }
}

fn one_of(p: &str, list: &[Scalar]) -> Pf {
    let mut tokens: Vec<String> = list.iter().filter_map(scalar_token).collect();
    tokens.sort();
    tokens.dedup();
    let mut parts: Vec<Pf> = tokens
        .chunks(MAX_IN)
        .map(|c| leaf(format!("e~{p}"), "$in", json!(c)))
        .collect();
    if list.contains(&Scalar::Null) {
        parts.push(eq_null(p));
    }
    or(parts)
}

fn field(p: &str, op: &FieldOp) -> PluginResult<Pf> {
    Ok(match op {
        FieldOp::Eq(s) => one_of(p, std::slice::from_ref(s)),
        FieldOp::Ne(s) => negate(one_of(p, std::slice::from_ref(s))),
        FieldOp::In(list) => one_of(p, list),
        FieldOp::Nin(list) => negate(one_of(p, list)),
        FieldOp::Exists(true) => leaf(format!("x~{p}"), "$exists", json!(true)),
        FieldOp::Exists(false) => missing(&format!("x~{p}")),
        FieldOp::Gt(s) | FieldOp::Gte(s) | FieldOp::Lt(s) | FieldOp::Lte(s) => range(p, op, s)?,
    })
}

fn range(p: &str, op: &FieldOp, s: &Scalar) -> PluginResult<Pf> {
    let upper = matches!(op, FieldOp::Gt(_) | FieldOp::Gte(_));
    let strict = matches!(op, FieldOp::Gt(_) | FieldOp::Lt(_));
    let pick = if upper { ">" } else { "<" };
    let cmp = |key: String, x: f64| {
        let name = match (upper, strict) {
            (true, true) => "$gt",
            (true, false) => "$gte",
            (false, true) => "$lt",
            (false, false) => "$lte",
        };
        leaf(key, name, json!(x))
    };
    Ok(match s {
        Scalar::Null if strict => Pf::False,
        Scalar::Null => leaf(format!("e~{p}"), "$in", json!(["z"])),
        Scalar::Number(x) => cmp(format!("n{pick}~{p}"), *x),
        Scalar::Bool(b) => cmp(format!("b{pick}~{p}"), f64::from(u8::from(*b))),
        Scalar::String(x) => {
            if x.len() / CHUNK_BYTES + 1 > CHUNKS {
                return Err(PluginError::unsupported(format!(
                    "filter clause {}: Pinecone compares strings only through their first {} bytes \
                     (the plugin's metadata layout), and this bound is {} bytes long",
                    Filter::Field {
                        path: p.split('.').map(str::to_string).collect(),
                        op: op.clone()
                    }
                    .to_json(),
                    CHUNKS * CHUNK_BYTES - 1,
                    x.len()
                )));
            }
            let xs = chunks(x);
            let key = |j: usize| format!("s{pick}~{j}~{p}");
            // Chunk j of the stored string equals x's (a chunk past the
            // stored string's end is absent and means 0).
            let eq = |j: usize| {
                if xs[j] == 0.0 {
                    or(vec![leaf(key(j), "$eq", json!(0.0)), missing(&key(j))])
                } else {
                    leaf(key(j), "$eq", json!(xs[j]))
                }
            };
            // Chunk j is strictly beyond x's in the direction asked.
            let beyond = |j: usize| {
                if upper {
                    leaf(key(j), "$gt", json!(xs[j]))
                } else if xs[j] > 0.0 {
                    or(vec![leaf(key(j), "$lt", json!(xs[j])), missing(&key(j))])
                } else {
                    Pf::False
                }
            };
            let last = xs.len() - 1;
            let mut acc = if strict {
                beyond(last)
            } else {
                or(vec![beyond(last), eq(last)])
            };
            for j in (0..last).rev() {
                acc = or(vec![beyond(j), and(vec![eq(j), acc])]);
            }
            // Only records holding a string at P.
            and(vec![leaf(key(0), "$exists", json!(true)), acc])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(f: Json) -> Json {
        translate(&Filter::parse(&f).unwrap()).unwrap().to_json()
    }

    #[test]
    fn the_translation_table() {
        assert_eq!(t(json!({"k": "a"})), json!({"e~k": {"$in": ["sa"]}}));
        assert_eq!(t(json!({"k": 1.0})), json!({"e~k": {"$in": ["n1"]}}));
        assert_eq!(
            t(json!({"k": {"$ne": true}})),
            json!({"$or": [{"e~k": {"$nin": ["t"]}}, {"e~k": {"$exists": false}}]})
        );
        assert_eq!(
            t(json!({"k": null})),
            json!({"$or": [{"x~k": {"$exists": false}}, {"e~k": {"$in": ["z"]}}]})
        );
        assert_eq!(
            t(json!({"k": {"$ne": null}})),
            json!({"$and": [{"x~k": {"$exists": true}},
                            {"$or": [{"e~k": {"$nin": ["z"]}}, {"e~k": {"$exists": false}}]}]})
        );
        assert_eq!(
            t(json!({"a.b": {"$gt": 2}})),
            json!({"n>~a.b": {"$gt": 2.0}})
        );
        assert_eq!(t(json!({"a": {"$lte": 2}})), json!({"n<~a": {"$lte": 2.0}}));
        assert_eq!(
            t(json!({"a": {"$exists": false}})),
            json!({"x~a": {"$exists": false}})
        );
        assert_eq!(
            t(json!({"$not": {"a": {"$gt": 1}}})),
            json!({"$or": [{"n>~a": {"$lte": 1.0}}, {"n>~a": {"$exists": false}}]})
        );
        assert_eq!(
            t(json!({"k": {"$in": ["a", 2, null]}})),
            json!({"$or": [{"e~k": {"$in": ["n2", "sa"]}}, {"x~k": {"$exists": false}}, {"e~k": {"$in": ["z"]}}]})
        );
        // Parsed ranges compare numbers or strings; the folding of the
        // never-matching leaf still holds.
        assert_eq!(
            or(vec![Pf::False, leaf("k".into(), "$gt", json!(1))]),
            leaf("k".into(), "$gt", json!(1))
        );
        assert_eq!(and(vec![Pf::True, Pf::False]), Pf::False);
    }

    #[test]
    fn string_ranges_are_exact_or_refused() {
        let long = "x".repeat(48);
        let e = translate(&Filter::parse(&json!({"name": {"$gt": long}})).unwrap()).unwrap_err();
        assert_eq!(e.kind(), strata_plugin::ErrorKind::Unsupported);
        assert!(e.message().contains("name"), "{}", e.message());
        assert!(
            translate(&Filter::parse(&json!({"name": {"$gt": "x".repeat(47)}})).unwrap()).is_ok()
        );
    }
}
