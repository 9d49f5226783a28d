//! The filter language translated to a Qdrant filter, exactly.
//!
//! Built on the payload layout of [`crate::payload`] (`f.<path>` values,
//! `_present` / `_hasnull` path lists, `s.<path>` string chunks), each
//! operator has a translation that agrees with [`Filter::matches`], the
//! reference semantics, on every document:
//!
//! | contract | Qdrant |
//! | --- | --- |
//! | `$and` / `$or` / `$not` | `must` / `should` / `must_not` of nested filters |
//! | `$eq` string | `match: keyword` on `f.<path>` (any array element) |
//! | `$eq` boolean | `match: boolean` |
//! | `$eq` number | `range: gte = lte = n` (numbers compare as `f64`, integer or not; `match: integer` would miss `5.0`) |
//! | `$eq: null` | path not in `_present`, or in `_hasnull` |
//! | `$ne`, `$nin` | `must_not` of `$eq`, `$in` |
//! | `$in` | `should` of `$eq`s |
//! | `$gt` … number | `range` |
//! | `$gt` … string | `nested` over `s.<path>`: the lexicographic comparison of the chunk tuples |
//! | `$exists` | path in `_present` (or not) |
//!
//! Type strictness comes free: Qdrant's keyword match sees only strings,
//! its boolean match only booleans, its ranges only numbers. What has no
//! exact translation answers `unsupported` naming the operator: a string
//! range on a path where some record holds a string longer than
//! [`MAX_CHUNKED`] bytes (checked by the caller with [`Translation::long_paths`]).

use qdrant_client::qdrant::{
    Condition, FieldCondition, Filter as QFilter, Match, NestedCondition, Range,
    condition::ConditionOneOf, r#match::MatchValue,
};
use strata_plugin::{
    PluginError, PluginResult,
    filter::{FieldOp, Filter, Scalar},
};

use crate::payload::{HASNULL, MAX_CHUNKED, PRESENT, chunks, encode_path};

/// A translated filter, and the paths whose string ranges it relies on.
#[derive(Debug, Default)]
pub(crate) struct Translation {
    /// `None` for the match-everything filter.
    pub(crate) filter: Option<QFilter>,
    /// Paths compared as strings by a range (`$gt` …): encoded, dotted.
    pub(crate) long_paths: Vec<(String, String)>,
}

/// Parses and translates filter JSON (`""` = none).
pub(crate) fn translate_str(text: &str) -> PluginResult<Translation> {
    translate(&Filter::parse_str(text)?)
}

/// Translates a parsed filter.
pub(crate) fn translate(f: &Filter) -> PluginResult<Translation> {
    let mut t = Translation::default();
    if !f.is_all() {
        t.filter = Some(as_filter(node(f, &mut t.long_paths)?));
    }
    Ok(t)
}

fn node(f: &Filter, longs: &mut Vec<(String, String)>) -> PluginResult<Condition> {
    Ok(match f {
        Filter::All => filter_cond(QFilter::default()),
        Filter::And(fs) => filter_cond(QFilter {
            must: fs
                .iter()
                .map(|x| node(x, longs))
                .collect::<PluginResult<_>>()?,
            ..Default::default()
        }),
        Filter::Or(fs) => any(fs
            .iter()
            .map(|x| node(x, longs))
            .collect::<PluginResult<_>>()?),
        Filter::Not(x) => not(node(x, longs)?),
        Filter::Field { path, op } => field(&encode_path(path), &path.join("."), op, longs)?,
    })
}

fn field(
    key: &str,
    dotted: &str,
    op: &FieldOp,
    longs: &mut Vec<(String, String)>,
) -> PluginResult<Condition> {
    Ok(match op {
        FieldOp::Eq(s) => eq(key, s),
        FieldOp::Ne(s) => not(eq(key, s)),
        FieldOp::In(list) => any(list.iter().map(|s| eq(key, s)).collect()),
        FieldOp::Nin(list) => not(any(list.iter().map(|s| eq(key, s)).collect())),
        FieldOp::Exists(true) => keyword(PRESENT, key),
        FieldOp::Exists(false) => not(keyword(PRESENT, key)),
        FieldOp::Gt(s) | FieldOp::Gte(s) | FieldOp::Lt(s) | FieldOp::Lte(s) => match s {
            Scalar::Number(n) => {
                let mut r = Range::default();
                match op {
                    FieldOp::Gt(_) => r.gt = Some(*n),
                    FieldOp::Gte(_) => r.gte = Some(*n),
                    FieldOp::Lt(_) => r.lt = Some(*n),
                    _ => r.lte = Some(*n),
                }
                range(&format!("f.{key}"), r)
            }
            Scalar::String(t) => {
                if t.len() > MAX_CHUNKED {
                    return Err(PluginError::unsupported(format!(
                        "{} on a string longer than {MAX_CHUNKED} bytes: the Qdrant plugin compares strings through stored {MAX_CHUNKED}-byte prefixes",
                        op.name()
                    )));
                }
                if !longs.iter().any(|(k, _)| k == key) {
                    longs.push((key.to_string(), dotted.to_string()));
                }
                string_range(key, op, t)
            }
            // The parser accepts only numbers and strings here.
            _ => {
                return Err(PluginError::unsupported(format!(
                    "{} compares numbers or strings only",
                    op.name()
                )));
            }
        },
        // `FieldOp` may grow: refuse what this translation does not know.
        #[allow(unreachable_patterns)]
        other => {
            return Err(PluginError::unsupported(format!(
                "filter operator {} has no Qdrant translation in this plugin",
                other.name()
            )));
        }
    })
}

/// `$eq` of one scalar.
fn eq(key: &str, s: &Scalar) -> Condition {
    let f = format!("f.{key}");
    match s {
        Scalar::String(v) => matcher(&f, MatchValue::Keyword(v.clone())),
        Scalar::Bool(b) => matcher(&f, MatchValue::Boolean(*b)),
        Scalar::Number(n) => range(
            &f,
            Range {
                gte: Some(*n),
                lte: Some(*n),
                ..Default::default()
            },
        ),
        // Missing, null, or an array holding a null.
        Scalar::Null => any(vec![not(keyword(PRESENT, key)), keyword(HASNULL, key)]),
    }
}

/// A string range as the lexicographic comparison of chunk tuples, inside
/// one element of `s.<path>` (a `nested` condition: any element matching
/// is an array's any-element rule).
fn string_range(key: &str, op: &FieldOp, t: &str) -> Condition {
    let want = chunks(t);
    let c = |i: usize, r: Range| range(&format!("c{i}"), r);
    let equal = |i: usize| {
        c(
            i,
            Range {
                gte: Some(want[i] as f64),
                lte: Some(want[i] as f64),
                ..Default::default()
            },
        )
    };
    let greater = matches!(op, FieldOp::Gt(_) | FieldOp::Gte(_));
    let mut options: Vec<Condition> = (0..want.len())
        .map(|i| {
            let bound = want[i] as f64;
            let strict = if greater {
                Range {
                    gt: Some(bound),
                    ..Default::default()
                }
            } else {
                Range {
                    lt: Some(bound),
                    ..Default::default()
                }
            };
            let mut must: Vec<Condition> = (0..i).map(equal).collect();
            must.push(c(i, strict));
            filter_cond(QFilter {
                must,
                ..Default::default()
            })
        })
        .collect();
    if matches!(op, FieldOp::Gte(_) | FieldOp::Lte(_)) {
        options.push(filter_cond(QFilter {
            must: (0..want.len()).map(equal).collect(),
            ..Default::default()
        }));
    }
    Condition {
        condition_one_of: Some(ConditionOneOf::Nested(NestedCondition {
            key: format!("s.{key}"),
            filter: Some(QFilter {
                should: options,
                ..Default::default()
            }),
        })),
    }
}

fn matcher(key: &str, m: MatchValue) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::Field(FieldCondition {
            key: key.to_string(),
            r#match: Some(Match {
                match_value: Some(m),
            }),
            ..Default::default()
        })),
    }
}

/// `key` (a list of strings) holds `value`.
fn keyword(key: &str, value: &str) -> Condition {
    matcher(key, MatchValue::Keyword(value.to_string()))
}

fn range(key: &str, r: Range) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::Field(FieldCondition {
            key: key.to_string(),
            range: Some(r),
            ..Default::default()
        })),
    }
}

fn filter_cond(f: QFilter) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::Filter(f)),
    }
}

/// At least one of `cs`; none (`$in: []`) matches nothing, whereas
/// Qdrant's empty `should` would match everything.
fn any(cs: Vec<Condition>) -> Condition {
    if cs.is_empty() {
        return not(filter_cond(QFilter::default()));
    }
    filter_cond(QFilter {
        should: cs,
        ..Default::default()
    })
}

fn not(c: Condition) -> Condition {
    filter_cond(QFilter {
        must_not: vec![c],
        ..Default::default()
    })
}

/// A condition as a top-level filter.
fn as_filter(c: Condition) -> QFilter {
    match c.condition_one_of {
        Some(ConditionOneOf::Filter(f)) => f,
        other => QFilter {
            must: vec![Condition {
                condition_one_of: other,
            }],
            ..Default::default()
        },
    }
}

/// The translation checked against the reference semantics, on the
/// conformance fixture's kind of documents, by evaluating the Qdrant filter
/// with Qdrant's rules (from its source: a condition on a missing key is
/// false; match and range test a value or any element of an array; `nested`
/// tests each object of an array; an empty `should` is no constraint).
#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use qdrant_client::qdrant::{Value, value::Kind};
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::payload::record_payload;

    fn to_json(v: &Value) -> Json {
        match v.kind.as_ref() {
            None | Some(Kind::NullValue(_)) => Json::Null,
            Some(Kind::BoolValue(b)) => json!(b),
            Some(Kind::IntegerValue(i)) => json!(i),
            Some(Kind::DoubleValue(d)) => json!(d),
            Some(Kind::StringValue(s)) => json!(s),
            Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(to_json).collect()),
            Some(Kind::StructValue(s)) => Json::Object(
                s.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), to_json(v)))
                    .collect(),
            ),
        }
    }

    fn get<'a>(doc: &'a Json, key: &str) -> Option<&'a Json> {
        key.split('.').try_fold(doc, |d, k| d.get(k))
    }

    fn any_elem(v: Option<&Json>, pred: impl Fn(&Json) -> bool) -> bool {
        match v {
            None => false,
            Some(Json::Array(items)) => items.iter().any(&pred),
            Some(x) => pred(x),
        }
    }

    fn eval(f: &QFilter, doc: &Json) -> bool {
        f.must.iter().all(|c| cond(c, doc))
            && (f.should.is_empty() || f.should.iter().any(|c| cond(c, doc)))
            && !f.must_not.iter().any(|c| cond(c, doc))
    }

    fn cond(c: &Condition, doc: &Json) -> bool {
        match c.condition_one_of.as_ref().unwrap() {
            ConditionOneOf::Filter(f) => eval(f, doc),
            ConditionOneOf::Nested(n) => match get(doc, &n.key) {
                Some(Json::Array(items)) => {
                    items.iter().any(|x| eval(n.filter.as_ref().unwrap(), x))
                }
                _ => false,
            },
            ConditionOneOf::Field(fc) => {
                let v = get(doc, &fc.key);
                if let Some(m) = &fc.r#match {
                    return any_elem(v, |x| match m.match_value.as_ref().unwrap() {
                        MatchValue::Keyword(s) => x.as_str() == Some(s.as_str()),
                        MatchValue::Boolean(b) => x.as_bool() == Some(*b),
                        other => panic!("untranslated match {other:?}"),
                    });
                }
                let r = fc.range.as_ref().unwrap();
                any_elem(v, |x| {
                    x.as_f64().is_some_and(|n| {
                        r.gt.is_none_or(|b| n > b)
                            && r.gte.is_none_or(|b| n >= b)
                            && r.lt.is_none_or(|b| n < b)
                            && r.lte.is_none_or(|b| n <= b)
                    })
                })
            }
            other => panic!("unexpected condition {other:?}"),
        }
    }

    fn docs() -> Vec<Json> {
        let kinds = ["fact", "event", "preference"];
        let mut out: Vec<Json> = (0..60)
            .map(|i| {
                let mut m = json!({
                    "kind": kinds[i % 3], "n": i, "score": (i as f64) / 10.0,
                    "tags": match i % 4 { 0 => json!(["rust", "sql"]), 1 => json!(["python"]), 2 => json!([]), _ => json!(["rust", 7]) },
                    "src": {"app": if i % 5 == 0 { "cli" } else { "web" }, "v": i % 3},
                    "ok": i % 2 == 0, "name": format!("item-{i:02}"),
                });
                if i % 7 == 0 {
                    m.as_object_mut().unwrap().remove("kind");
                }
                if i % 11 == 0 {
                    m["n"] = Json::Null;
                }
                if i % 13 == 0 {
                    m["kind"] = json!(5);
                }
                m
            })
            .collect();
        out.extend([
            json!({}),
            json!({"n": 5.0, "tags": [null, "go"], "src": [{"app": "cli"}], "kind": ""}),
            json!({"n": [1, 2.5, null], "name": "item-1", "kind": "fact\u{0}", "ok": [true]}),
            json!({"src": {"app": null}, "tags": [[7], {"a": 1}], "name": "zzzzzzzzzzzzz"}),
            json!({"a.b": 1, "a": {"b": 2}, "name": "item-10", "日本": ["大阪"]}),
        ]);
        out
    }

    fn filters() -> Vec<Json> {
        vec![
            json!({}),
            json!({"kind": "fact"}),
            json!({"kind": {"$ne": "fact"}}),
            json!({"n": {"$gt": 30}}),
            json!({"n": {"$gte": 30, "$lt": 40}}),
            json!({"n": 5}),
            json!({"n": 2.5}),
            json!({"score": {"$gt": 2.5}}),
            json!({"kind": {"$in": ["fact", "preference"]}}),
            json!({"kind": {"$nin": ["fact", "preference"]}}),
            json!({"kind": {"$in": []}}),
            json!({"kind": {"$nin": []}}),
            json!({"kind": {"$exists": false}}),
            json!({"kind": {"$exists": true}}),
            json!({"tags": {"$exists": true}}),
            json!({"n": null}),
            json!({"n": {"$ne": null}}),
            json!({"tags": null}),
            json!({"tags": {"$in": [null, "go"]}}),
            json!({"tags": "rust"}),
            json!({"tags": {"$nin": ["rust"]}}),
            json!({"tags": 7}),
            json!({"tags": {"$gt": "r"}}),
            json!({"src.app": "cli"}),
            json!({"src.app": null}),
            json!({"src.app": {"$exists": true}}),
            json!({"src.v": {"$gte": 1}}),
            json!({"src.missing": {"$exists": false}}),
            json!({"src": {"$exists": true}}),
            json!({"src": {"$ne": "x"}}),
            json!({"ok": true}),
            json!({"ok": 1}),
            json!({"kind": 5}),
            json!({"kind": {"$gt": "e"}}),
            json!({"kind": {"$lte": "fact"}}),
            json!({"kind": {"$lt": "fact\u{0}"}}),
            json!({"kind": {"$gte": ""}}),
            json!({"name": {"$gte": "item-10", "$lt": "item-20"}}),
            json!({"name": {"$gt": "item-1"}}),
            json!({"name": {"$lte": "zzzzzzzzzzzz"}}),
            json!({"a.b": 1}),
            json!({"a.b": 2}),
            json!({"日本": "大阪"}),
            json!({"$and": [{"kind": "fact"}, {"n": {"$gt": 10}}]}),
            json!({"$or": [{"kind": "event"}, {"src.app": "cli"}]}),
            json!({"$not": {"kind": "fact"}}),
            json!({"$or": [{"$and": [{"ok": true}, {"tags": "sql"}]}, {"$not": {"n": {"$lt": 50}}}]}),
            json!({"kind": "fact", "ok": false, "src.v": {"$in": [0, 2]}}),
        ]
    }

    #[test]
    fn every_operator_agrees_with_the_reference_semantics() {
        let docs: Vec<(Json, Json)> = docs()
            .into_iter()
            .map(|m| {
                let p: HashMap<String, Value> =
                    record_payload("x", &m.to_string(), m.as_object().unwrap(), None);
                let payload =
                    Json::Object(p.iter().map(|(k, v)| (k.clone(), to_json(v))).collect());
                (m, payload)
            })
            .collect();
        for f in filters() {
            let parsed = Filter::parse(&f).unwrap();
            let t = translate(&parsed).unwrap();
            for (meta, payload) in &docs {
                let want = parsed.matches(meta);
                let got = t.filter.as_ref().is_none_or(|q| eval(q, payload));
                assert_eq!(got, want, "filter {f} on {meta}");
            }
        }
    }

    #[test]
    fn string_ranges_name_the_paths_they_rely_on() {
        let t =
            translate_str(r#"{"$or": [{"src.app": {"$gt": "a"}}, {"n": {"$gt": 1}}]}"#).unwrap();
        assert_eq!(t.long_paths.len(), 1);
        assert_eq!(t.long_paths[0].1, "src.app");
        let long = "x".repeat(crate::payload::MAX_CHUNKED + 1);
        let e = translate(&Filter::parse(&json!({"a": {"$lt": long}})).unwrap()).unwrap_err();
        assert_eq!(e.kind(), strata_plugin::ErrorKind::Unsupported);
        assert!(e.message().contains("$lt"), "{e}");
    }
}
