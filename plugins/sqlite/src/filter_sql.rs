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
    Ok(format!("({})", parts.join(sep)))
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
        FieldOp::In(list) => in_list(list, params, eq),
        FieldOp::Nin(list) => format!("(NOT {})", in_list(list, params, eq)),
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

fn in_list(
    list: &[Scalar],
    params: &mut Vec<Value>,
    eq: impl Fn(&Scalar, &mut Vec<Value>) -> String,
) -> String {
    if list.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = list.iter().map(|s| eq(s, params)).collect();
    format!("({})", parts.join(" OR "))
}
