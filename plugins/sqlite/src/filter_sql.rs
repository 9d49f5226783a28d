//! The shared filter language translated to SQLite JSON SQL, exactly.
//!
//! Each field condition becomes an expression over `json_type(metadata, P)`
//! and `json_extract(metadata, P)` (or `json_each` rows for array fields, so
//! that any element can match), with the JSON type checked alongside the
//! value: `{"flag": true}` never matches the number 1 and `{"n": "5"}` never
//! matches the number 5, as in [`Filter::matches`]. Every expression is
//! wrapped so it yields 0 or 1, never NULL, which keeps `$not`, `$ne` and
//! `$nin` exact for missing fields. Values are bound parameters; paths are
//! string literals built from validated segments.
//!
//! Two SQLite limits shape the text. An `$in` / `$nin` list is bound as one
//! JSON array per value type and matched with `IN (SELECT value FROM
//! json_each(?))`, however long it is: spelt out as one `OR` per value it
//! would hit SQLite's expression depth limit (1,000) and its parameter limit.
//! And `$and` / `$or` lists are nested as a balanced tree of small flat
//! groups, so a thousand clauses nest about ten deep, not a thousand.

use strata_plugin::{
    PluginError, Value,
    filter::{FieldOp, Filter, Scalar},
};

/// A SQL boolean expression and its parameters (positional `?`).
#[derive(Debug, Default)]
pub(crate) struct SqlFilter {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

/// Translates `filter` over the JSON column `column`.
pub(crate) fn translate(filter: &Filter, column: &str) -> Result<SqlFilter, PluginError> {
    let mut out = SqlFilter::default();
    out.sql = expr(filter, column, &mut out.params)?;
    Ok(out)
}

/// The JSON path of `path` as a SQL string literal (`'$."a"."b"'`).
fn json_path(path: &[String]) -> Result<String, PluginError> {
    let mut p = String::from("'$");
    for seg in path {
        if seg.contains('"') || seg.contains('\\') {
            return Err(PluginError::unsupported(format!(
                "filter path segment {seg:?}: quotes and backslashes in field names are not supported by the sqlite backend"
            )));
        }
        p.push_str(".\"");
        p.push_str(&seg.replace('\'', "''"));
        p.push('"');
    }
    p.push('\'');
    Ok(p)
}

fn expr(filter: &Filter, col: &str, params: &mut Vec<Value>) -> Result<String, PluginError> {
    Ok(match filter {
        Filter::All => "1".to_string(),
        Filter::And(fs) => join(fs, " AND ", col, params)?,
        Filter::Or(fs) => join(fs, " OR ", col, params)?,
        Filter::Not(f) => format!("(NOT {})", expr(f, col, params)?),
        Filter::Field { path, op } => field(&json_path(path)?, op, col, params),
    })
}

fn join(
    fs: &[Filter],
    sep: &str,
    col: &str,
    params: &mut Vec<Value>,
) -> Result<String, PluginError> {
    let parts = fs
        .iter()
        .map(|f| expr(f, col, params))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(balanced(&parts, sep))
}

/// At most this many terms are joined flat; longer lists are split in two.
const FLAT_TERMS: usize = 8;

/// `parts` joined by `sep` (AND / OR, associative, so the grouping does
/// not change the meaning) as a balanced tree: SQLite parses a flat `a OR
/// b OR c …` into a chain as deep as it is long and refuses one deeper than
/// 1,000 ("Expression tree is too large"). The parameters were pushed in
/// the order of `parts`, which this keeps.
fn balanced(parts: &[String], sep: &str) -> String {
    if parts.len() <= FLAT_TERMS {
        format!("({})", parts.join(sep))
    } else {
        let (a, b) = parts.split_at(parts.len() / 2);
        format!("({}{sep}{})", balanced(a, sep), balanced(b, sep))
    }
}

/// The predicate "the JSON element with type `t` and value `v` compares to `s` by `cmp`".
fn element(t: &str, v: &str, cmp: &str, s: &Scalar, params: &mut Vec<Value>) -> String {
    match s {
        Scalar::Null => {
            if cmp == "=" {
                format!("{t} = 'null'")
            } else {
                "0".into()
            }
        }
        Scalar::Bool(b) => {
            if cmp == "=" {
                format!("{t} = '{}'", if *b { "true" } else { "false" })
            } else {
                "0".into()
            }
        }
        Scalar::Number(n) if n.is_finite() => {
            // Read by SQLite's JSON parser, as the stored metadata was: its
            // reading of a long decimal may differ from the exact double
            // by an ULP (8.914289636593238e212), so a bound real would not
            // equal the stored value it was written from.
            params.push(Value::Text(json_number(*n).to_string()));
            format!("({t} IN ('integer', 'real') AND {v} {cmp} json_extract(?, '$'))")
        }
        Scalar::Number(n) => {
            params.push(Value::Real(*n));
            format!("({t} IN ('integer', 'real') AND {v} {cmp} ?)")
        }
        Scalar::String(x) => {
            params.push(Value::Text(x.as_str().into()));
            format!("({t} = 'text' AND {v} {cmp} ?)")
        }
    }
}

/// "Some element of the field (or the field itself, when it is not an
/// array) satisfies `pred`". Parameters are pushed in text order: the array
/// branch's, then the scalar branch's.
fn any(
    path: &str,
    col: &str,
    params: &mut Vec<Value>,
    pred: impl Fn(&str, &str, &mut Vec<Value>) -> String,
) -> String {
    let array_pred = pred("je.type", "je.value", params);
    let scalar_pred = pred(
        &format!("json_type({col}, {path})"),
        &format!("json_extract({col}, {path})"),
        params,
    );
    format!(
        "COALESCE(CASE WHEN json_type({col}, {path}) = 'array' THEN EXISTS (SELECT 1 FROM json_each({col}, {path}) AS je WHERE {array_pred}) ELSE ({scalar_pred}) END, 0)"
    )
}

fn field(path: &str, op: &FieldOp, col: &str, params: &mut Vec<Value>) -> String {
    let eq = |s: &Scalar, params: &mut Vec<Value>| {
        let matched = any(path, col, params, |t, v, p| element(t, v, "=", s, p));
        if *s == Scalar::Null {
            format!("({matched} OR json_type({col}, {path}) IS NULL)")
        } else {
            matched
        }
    };
    match op {
        FieldOp::Eq(s) => eq(s, params),
        FieldOp::Ne(s) => format!("(NOT {})", eq(s, params)),
        FieldOp::Gt(s) => any(path, col, params, |t, v, p| element(t, v, ">", s, p)),
        FieldOp::Gte(s) => any(path, col, params, |t, v, p| element(t, v, ">=", s, p)),
        FieldOp::Lt(s) => any(path, col, params, |t, v, p| element(t, v, "<", s, p)),
        FieldOp::Lte(s) => any(path, col, params, |t, v, p| element(t, v, "<=", s, p)),
        FieldOp::In(list) => in_list(list, path, col, params, eq),
        FieldOp::Nin(list) => format!("(NOT {})", in_list(list, path, col, params, eq)),
        FieldOp::Exists(want) => {
            let present = format!("COALESCE(json_type({col}, {path}) <> 'null', 0)");
            if *want {
                present
            } else {
                format!("(NOT {present})")
            }
        }
    }
}

/// "The field (or some element of it) equals one of `list`", with the
/// types checked as `$eq` checks them: the numbers and the strings of the
/// list are each bound as one JSON array (numbers as JSON numbers, so SQLite
/// compares them numerically with integer and real fields alike, as `$eq`
/// does with its bound real), and `true` / `false` / `null` are type tests.
/// The numbers are read by SQLite's JSON parser, as the stored metadata and
/// `$eq`'s operand are. A non-finite number (only a filter built in code can
/// hold one, JSON has none) is compared through `$eq`'s bound real instead.
fn in_list(
    list: &[Scalar],
    path: &str,
    col: &str,
    params: &mut Vec<Value>,
    eq: impl Fn(&Scalar, &mut Vec<Value>) -> String,
) -> String {
    let mut numbers = Vec::new();
    let mut strings = Vec::new();
    let mut literals: Vec<&str> = Vec::new();
    let mut others = Vec::new();
    for s in list {
        match s {
            Scalar::Number(n) if n.is_finite() => numbers.push(json_number(*n)),
            Scalar::String(x) => strings.push(serde_json::Value::String(x.clone())),
            Scalar::Null => literals.push("null"),
            Scalar::Bool(true) => literals.push("true"),
            Scalar::Bool(false) => literals.push("false"),
            Scalar::Number(_) => others.push(s),
        }
    }
    literals.sort_unstable();
    literals.dedup();
    let numbers = (!numbers.is_empty()).then(|| serde_json::Value::Array(numbers).to_string());
    let strings = (!strings.is_empty()).then(|| serde_json::Value::Array(strings).to_string());
    let mut parts = Vec::new();
    if numbers.is_some() || strings.is_some() || !literals.is_empty() {
        parts.push(any(path, col, params, |t, v, p| {
            let mut terms = Vec::new();
            if let Some(json) = &numbers {
                p.push(Value::Text(json.clone()));
                terms.push(format!(
                    "({t} IN ('integer', 'real') AND {v} IN (SELECT value FROM json_each(?)))"
                ));
            }
            if let Some(json) = &strings {
                p.push(Value::Text(json.clone()));
                terms.push(format!(
                    "({t} = 'text' AND {v} IN (SELECT value FROM json_each(?)))"
                ));
            }
            if !literals.is_empty() {
                let quoted: Vec<String> = literals.iter().map(|l| format!("'{l}'")).collect();
                terms.push(format!("{t} IN ({})", quoted.join(", ")));
            }
            balanced(&terms, " OR ")
        }));
        if literals.contains(&"null") {
            // `$eq: null` also matches a missing field.
            parts.push(format!("json_type({col}, {path}) IS NULL"));
        }
    }
    parts.extend(others.into_iter().map(|s| eq(s, params)));
    if parts.is_empty() {
        return "0".into();
    }
    balanced(&parts, " OR ")
}

/// `n` as a JSON number: an integral value within ±2^53 as an integer
/// (exact in both SQLite's and serde's JSON), any other as the shortest
/// decimal that reads back as `n`.
fn json_number(n: f64) -> serde_json::Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

#[cfg(test)]
mod tests {
    //! The translation against [`Filter::matches`] (the reference), on a
    //! real SQLite database: fixed cases, long lists, and generated
    //! filters over generated documents.

    use super::*;
    use crate::sql::Bind;
    use proptest::prelude::*;
    use rusqlite::{Connection, params_from_iter};
    use serde_json::{Value as Json, json};

    fn db(docs: &[Json]) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (pk INTEGER PRIMARY KEY, metadata TEXT NOT NULL)")
            .unwrap();
        for (i, d) in docs.iter().enumerate() {
            c.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                rusqlite::params![i as i64, d.to_string()],
            )
            .unwrap();
        }
        c
    }

    /// The documents `filter` selects through SQL, and through the reference.
    fn both(c: &Connection, docs: &[Json], filter: &Filter) -> (Vec<usize>, Vec<usize>) {
        let f = translate(filter, "metadata").unwrap();
        let mut stmt = c
            .prepare(&format!("SELECT pk FROM t WHERE {} ORDER BY pk", f.sql))
            .unwrap_or_else(|e| panic!("{e}: {:.300}", f.sql));
        let sql: Vec<usize> = stmt
            .query_map(params_from_iter(f.params.iter().map(Bind)), |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
            .map(|r| r.unwrap() as usize)
            .collect();
        let reference = (0..docs.len())
            .filter(|&i| filter.matches(&docs[i]))
            .collect();
        (sql, reference)
    }

    fn docs() -> Vec<Json> {
        vec![
            json!({"n": 1}),
            json!({"n": 1.0}),
            json!({"n": 2.5, "s": "x"}),
            json!({"n": "1", "s": "y"}),
            json!({"n": true}),
            json!({"n": null}),
            json!({}),
            json!({"n": [1, "x", null, false]}),
            json!({"n": [[1], {"a": 1}]}),
            json!({"n": {"a": 1}}),
            json!({"n": 9_007_199_254_740_992_i64}),
            json!({"s": "x", "n": -0.0}),
        ]
    }

    #[test]
    fn in_lists_keep_the_types_of_eq() {
        let docs = docs();
        let c = db(&docs);
        for f in [
            json!({"n": {"$in": [1]}}),
            json!({"n": {"$in": [1.0, "x"]}}),
            json!({"n": {"$in": ["1"]}}),
            json!({"n": {"$in": [true]}}),
            json!({"n": {"$in": [false, null]}}),
            json!({"n": {"$in": [null]}}),
            json!({"n": {"$in": [0, 2.5]}}),
            json!({"n": {"$in": [9_007_199_254_740_992_i64, 0.0]}}),
            json!({"n": {"$in": []}}),
            json!({"n": {"$nin": []}}),
            json!({"n": {"$nin": [1, null]}}),
            json!({"n": {"$nin": ["x", true]}}),
            json!({"s": {"$nin": ["x"]}}),
        ] {
            let filter = Filter::parse(&f).unwrap();
            let (sql, reference) = both(&c, &docs, &filter);
            assert_eq!(sql, reference, "{f}");
        }
    }

    /// Issue 16 #15: 20,000 values in `$in` / `$nin` and 1,000 (and 5,000)
    /// `$or` clauses failed with "Expression tree is too large".
    #[test]
    fn long_in_lists_and_or_chains_run() {
        let docs: Vec<Json> = (0..300)
            .map(|i| json!({"n": i, "s": format!("s{i}")}))
            .collect();
        let c = db(&docs);
        let evens: Vec<Json> = (0..20_000).map(|i| json!(i * 2)).collect();
        let names: Vec<Json> = (0..20_000).map(|i| json!(format!("s{}", i * 3))).collect();
        for f in [
            json!({"n": {"$in": evens}}),
            json!({"n": {"$nin": evens}}),
            json!({"s": {"$in": names}}),
            json!({"$or": (0..1000).map(|i| json!({"n": i * 5})).collect::<Vec<_>>()}),
            json!({"$and": (0..1000).map(|i| json!({"n": {"$ne": i * 5}})).collect::<Vec<_>>()}),
            json!({"$or": (0..5000).map(|i| json!({"s": format!("s{}", i * 7)})).collect::<Vec<_>>()}),
        ] {
            let filter = Filter::parse(&f).unwrap();
            let (sql, reference) = both(&c, &docs, &filter);
            assert!(!reference.is_empty());
            assert_eq!(sql, reference);
        }
    }

    fn scalar() -> impl Strategy<Value = Scalar> {
        prop_oneof![
            Just(Scalar::Null),
            prop::bool::ANY.prop_map(Scalar::Bool),
            (-3i32..4).prop_map(|n| Scalar::Number(f64::from(n))),
            prop_oneof![Just(0.5), Just(-0.0), Just(2.5)].prop_map(Scalar::Number),
            "[xy1]{0,2}".prop_map(Scalar::String),
        ]
    }

    fn json_leaf() -> impl Strategy<Value = Json> {
        prop_oneof![
            Just(Json::Null),
            prop::bool::ANY.prop_map(Json::Bool),
            (-3i64..4).prop_map(|n| json!(n)),
            prop_oneof![Just(0.5), Just(1.0), Just(2.5), Just(-0.0)].prop_map(|n| json!(n)),
            "[xy1]{0,2}".prop_map(Json::String),
        ]
    }

    const KEYS: [&str; 4] = ["a", "b", "it's", "c d"];

    fn doc() -> impl Strategy<Value = Json> {
        let value = prop_oneof![
            3 => json_leaf(),
            1 => prop::collection::vec(json_leaf(), 0..4).prop_map(Json::Array),
            1 => prop::collection::vec((prop::sample::select(&KEYS[..]), json_leaf()), 0..3)
                .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ];
        prop::collection::vec((prop::sample::select(&KEYS[..]), value), 0..4)
            .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let path = prop::collection::vec(prop::sample::select(&KEYS[..]), 1..3)
            .prop_map(|p| p.into_iter().map(str::to_string).collect::<Vec<_>>());
        let ordered = prop_oneof![
            (-3i32..4).prop_map(|n| Scalar::Number(f64::from(n))),
            Just(Scalar::Number(0.5)),
            "[xy1]{0,2}".prop_map(Scalar::String),
        ];
        let op = prop_oneof![
            scalar().prop_map(FieldOp::Eq),
            scalar().prop_map(FieldOp::Ne),
            ordered.clone().prop_map(FieldOp::Gt),
            ordered.clone().prop_map(FieldOp::Gte),
            ordered.clone().prop_map(FieldOp::Lt),
            ordered.prop_map(FieldOp::Lte),
            prop::collection::vec(scalar(), 0..5).prop_map(FieldOp::In),
            prop::collection::vec(scalar(), 0..5).prop_map(FieldOp::Nin),
            prop::bool::ANY.prop_map(FieldOp::Exists),
        ];
        let leaf = prop_oneof![
            1 => Just(Filter::All),
            8 => (path, op).prop_map(|(path, op)| Filter::Field { path, op }),
        ];
        leaf.prop_recursive(3, 24, 12, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..12).prop_map(Filter::And),
                prop::collection::vec(inner.clone(), 1..12).prop_map(Filter::Or),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any float, stored in metadata and looked up by `$eq` (a bound
        /// real) and by `$in` (a JSON array): both find it.
        #[test]
        fn any_float_is_found_by_eq_and_in(
            x in prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        ) {
            let docs = vec![json!({"n": x}), json!({"n": [x]})];
            let c = db(&docs);
            for f in [json!({"n": x}), json!({"n": {"$in": [x, "x"]}})] {
                let (sql, reference) = both(&c, &docs, &Filter::parse(&f).unwrap());
                prop_assert_eq!(&reference, &vec![0, 1]);
                prop_assert_eq!(sql, reference, "{}", f);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn sql_selects_what_the_reference_matches(
            docs in prop::collection::vec(doc(), 1..12),
            filters in prop::collection::vec(filter(), 1..6),
        ) {
            let c = db(&docs);
            for f in &filters {
                let (sql, reference) = both(&c, &docs, f);
                prop_assert_eq!(sql, reference, "{:?} over {:?}", f, docs);
            }
        }
    }
}
