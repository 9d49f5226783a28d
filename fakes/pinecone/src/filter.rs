//! Pinecone's metadata filter language, as its documentation describes it.
//!
//! A filter is a JSON object. `$and` / `$or` take a non-empty array of
//! filters; any other key is a metadata field, whose value is either a
//! bare value (`$eq`) or an object of operators: `$eq $ne` (string, number,
//! boolean), `$gt $gte $lt $lte` (number), `$in $nin` (a non-empty array of
//! strings, numbers or booleans, at most 10,000), `$exists` (boolean).
//! Several entries in one object must all hold.
//!
//! Values: a field holds a string, a number, a boolean or a list of
//! strings. On a list, `$eq` / `$in` match when an element matches and
//! `$ne` / `$nin` when none does. Numbers compare as numbers (`1 == 1.0`);
//! values of different types are never equal.
//!
//! Where the documentation is silent this fake takes the strict reading,
//! and the plugin's translation must not depend on it: **a missing field
//! matches only `$exists: false`** (not `$ne` or `$nin`).

use serde_json::{Map, Value as Json};

/// The most values in one `$in` / `$nin`.
pub const MAX_IN_VALUES: usize = 10_000;

/// A parsed filter.
#[derive(Debug)]
pub enum Filter {
    /// Every part holds.
    And(Vec<Filter>),
    /// Some part holds.
    Or(Vec<Filter>),
    /// A condition on one field.
    Cond {
        /// The metadata key.
        key: String,
        /// The operator (`$eq`, …).
        op: String,
        /// Its argument.
        arg: Json,
    },
}

fn scalar(v: &Json) -> bool {
    matches!(v, Json::String(_) | Json::Number(_) | Json::Bool(_))
}

impl Filter {
    /// Parses and checks a filter; the error is Pinecone-style text.
    pub fn parse(json: &Json) -> Result<Filter, String> {
        let Json::Object(map) = json else {
            return Err(format!("filter must be an object, got {json}"));
        };
        let mut parts = Vec::new();
        for (k, v) in map {
            match k.as_str() {
                "$and" | "$or" => {
                    let Json::Array(items) = v else {
                        return Err(format!("{k} expects an array of filters"));
                    };
                    if items.is_empty() {
                        return Err(format!("{k} expects a non-empty array"));
                    }
                    let subs = items.iter().map(Filter::parse).collect::<Result<_, _>>()?;
                    parts.push(if k == "$and" {
                        Filter::And(subs)
                    } else {
                        Filter::Or(subs)
                    });
                }
                op if op.starts_with('$') => {
                    return Err(format!("{op} is not a valid operator"));
                }
                field => match v {
                    Json::Object(ops) => {
                        if ops.is_empty() {
                            return Err(format!("field {field}: empty operator object"));
                        }
                        for (op, arg) in ops {
                            check_op(field, op, arg)?;
                            parts.push(Filter::Cond {
                                key: field.to_string(),
                                op: op.clone(),
                                arg: arg.clone(),
                            });
                        }
                    }
                    v if scalar(v) => parts.push(Filter::Cond {
                        key: field.to_string(),
                        op: "$eq".into(),
                        arg: v.clone(),
                    }),
                    other => {
                        return Err(format!("field {field}: invalid filter value {other}"));
                    }
                },
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Filter::And(parts)
        })
    }

    /// Whether a record's metadata matches.
    pub fn matches(&self, md: &Map<String, Json>) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(md)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(md)),
            Filter::Cond { key, op, arg } => cond(md.get(key), op, arg),
        }
    }
}

fn check_op(field: &str, op: &str, arg: &Json) -> Result<(), String> {
    let ok = match op {
        "$eq" | "$ne" => scalar(arg),
        "$gt" | "$gte" | "$lt" | "$lte" => arg.is_number(),
        "$in" | "$nin" => match arg {
            Json::Array(items) => {
                if items.len() > MAX_IN_VALUES {
                    return Err(format!(
                        "field {field}: {op} has {} values, the limit is {MAX_IN_VALUES}",
                        items.len()
                    ));
                }
                !items.is_empty() && items.iter().all(scalar)
            }
            _ => false,
        },
        "$exists" => arg.is_boolean(),
        other => return Err(format!("{other} is not a valid operator")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("field {field}: invalid argument {arg} for {op}"))
    }
}

fn equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Bool(x), Json::Bool(y)) => x == y,
        _ => false,
    }
}

fn cond(value: Option<&Json>, op: &str, arg: &Json) -> bool {
    if op == "$exists" {
        return value.is_some() == (arg.as_bool() == Some(true));
    }
    let Some(value) = value else {
        return false;
    };
    let contains = |needle: &Json| match value {
        Json::Array(items) => items.iter().any(|i| equal(i, needle)),
        v => equal(v, needle),
    };
    let list = || arg.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let num = |f: fn(f64, f64) -> bool| match (value.as_f64(), arg.as_f64()) {
        (Some(v), Some(a)) if !value.is_array() => f(v, a),
        _ => false,
    };
    match op {
        "$eq" => contains(arg),
        "$ne" => !contains(arg),
        "$in" => list().iter().any(contains),
        "$nin" => !list().iter().any(contains),
        "$gt" => num(|v, a| v > a),
        "$gte" => num(|v, a| v >= a),
        "$lt" => num(|v, a| v < a),
        "$lte" => num(|v, a| v <= a),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn documented_semantics() {
        let md = m(json!({"genre": ["comedy", "drama"], "year": 2020, "ok": true}));
        let yes = [
            json!({"genre": "comedy"}),
            json!({"genre": {"$in": ["x", "drama"]}}),
            json!({"genre": {"$nin": ["x"]}}),
            json!({"year": {"$gte": 2020.0}}),
            json!({"year": 2020.0}),
            json!({"ok": true}),
            json!({"$or": [{"year": 1}, {"ok": true}]}),
            json!({"missing": {"$exists": false}}),
        ];
        for f in yes {
            assert!(Filter::parse(&f).unwrap().matches(&md), "{f}");
        }
        let no = [
            json!({"genre": {"$ne": "drama"}}),
            json!({"year": "2020"}),
            json!({"missing": {"$ne": 1}}),
            json!({"missing": {"$nin": ["a"]}}),
            json!({"genre": {"$gt": 1}}),
            json!({"$and": [{"year": 2020}, {"ok": false}]}),
        ];
        for f in no {
            assert!(!Filter::parse(&f).unwrap().matches(&md), "{f}");
        }
    }

    #[test]
    fn malformed_filters_are_refused() {
        for f in [
            json!({"a": {"$gtt": 1}}),
            json!({"a": {"$gt": "x"}}),
            json!({"a": {"$in": []}}),
            json!({"$not": {"a": 1}}),
            json!({"$or": []}),
            json!({"a": null}),
            json!({"a": [1]}),
        ] {
            assert!(Filter::parse(&f).is_err(), "{f}");
        }
    }
}
