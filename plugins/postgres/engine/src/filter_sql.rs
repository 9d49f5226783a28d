//! The shared filter language translated to PostgreSQL `jsonb` SQL, exactly.
//!
//! A field path becomes `metadata #> $n::text[]` (a bound `text[]`), so
//! names are never spliced into SQL. Each condition checks the JSON type
//! alongside the value, as [`Filter::matches`] does: `{"flag": true}` never
//! matches the number 1 and `{"n": "5"}` never matches the number 5.
//! Numbers compare as `float8` (the reference compares `f64`), strings by
//! bytes (`COLLATE "C"`). An array-valued field matches when any element
//! does (`jsonb_array_elements`). Every expression yields `true` or `false`,
//! never NULL, which keeps `$not`, `$ne` and `$nin` exact for missing fields.
//!
//! Equality on strings and booleans is written as two `jsonb` containment
//! tests (`metadata @> {"a":{"b":v}}` or `… {"a":{"b":[v]}}`), which is the
//! same predicate and lets PostgreSQL use the collection's GIN index. Numbers
//! keep the `float8` form: `@>` compares `numeric` values, which differs
//! from `f64` equality past 17 significant digits.
//!
//! `#>` indexes into arrays when a path segment is an integer, where the
//! reference semantics only walk objects; such segments get a guard that
//! their parent is an object.

use serde_json::{Map, Value as Json};
use strata_plugin::{
    PluginResult,
    filter::{FieldOp, Filter, Scalar},
};

/// A bound parameter of generated SQL.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(String),
    Float(f64),
    Int(i64),
    Jsonb(Json),
    TextArray(Vec<String>),
}

/// Collects SQL parameters, numbering them `$1, $2, …` in push order.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub(crate) values: Vec<Arg>,
    /// Parameters bound before the first one pushed here (e.g. the query vector).
    pub(crate) offset: usize,
}

impl Args {
    pub(crate) fn starting_after(offset: usize) -> Args {
        Args {
            values: Vec::new(),
            offset,
        }
    }

    /// Adds a parameter and returns its placeholder (`$n`).
    pub(crate) fn push(&mut self, a: Arg) -> String {
        self.values.push(a);
        format!("${}", self.offset + self.values.len())
    }
}

/// Translates `filter` over the `jsonb` column `column`; `true` for [`Filter::All`].
pub(crate) fn translate(filter: &Filter, column: &str, args: &mut Args) -> PluginResult<String> {
    Ok(match filter {
        Filter::All => "true".to_string(),
        Filter::And(fs) => join(fs, " AND ", column, args)?,
        Filter::Or(fs) => join(fs, " OR ", column, args)?,
        Filter::Not(f) => format!("(NOT {})", translate(f, column, args)?),
        Filter::Field { path, op } => field(path, op, column, args),
    })
}

fn join(fs: &[Filter], sep: &str, col: &str, args: &mut Args) -> PluginResult<String> {
    let parts = fs
        .iter()
        .map(|f| translate(f, col, args))
        .collect::<PluginResult<Vec<_>>>()?;
    Ok(format!("({})", parts.join(sep)))
}

/// Whether `#>` would read `seg` as an array index.
fn index_like(seg: &str) -> bool {
    let digits = seg.strip_prefix('-').unwrap_or(seg);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The field's value as a `jsonb` expression (SQL NULL when missing).
fn extract(path: &[String], col: &str, args: &mut Args) -> String {
    let p = args.push(Arg::TextArray(path.to_vec()));
    let value = format!("({col} #> {p}::text[])");
    let guards: Vec<String> = (1..path.len())
        .filter(|&i| index_like(&path[i]))
        .map(|i| {
            let parent = args.push(Arg::TextArray(path[..i].to_vec()));
            format!("jsonb_typeof({col} #> {parent}::text[]) = 'object'")
        })
        .collect();
    if guards.is_empty() {
        value
    } else {
        format!("(CASE WHEN {} THEN {value} END)", guards.join(" AND "))
    }
}

/// "The JSON element `v` compares to `s` by `cmp`" (false for other types).
fn element(v: &str, cmp: &str, s: &Scalar, args: &mut Args) -> String {
    match s {
        Scalar::Null if cmp == "=" => format!("(jsonb_typeof({v}) IS NOT DISTINCT FROM 'null')"),
        Scalar::Bool(b) if cmp == "=" => format!("({v} IS NOT DISTINCT FROM '{b}'::jsonb)"),
        Scalar::Null | Scalar::Bool(_) => "false".into(),
        Scalar::Number(n) => {
            let p = args.push(Arg::Float(*n));
            format!(
                "(CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v})::float8 {cmp} {p}::float8 ELSE false END)"
            )
        }
        Scalar::String(x) => {
            let p = args.push(Arg::Text(x.clone()));
            format!(
                "(CASE WHEN jsonb_typeof({v}) = 'string' THEN ({v} #>> '{{}}') COLLATE \"C\" {cmp} {p}::text COLLATE \"C\" ELSE false END)"
            )
        }
    }
}

/// "Some element of the field (or the field itself, when it is not an
/// array) satisfies `pred`"; false when the field is missing.
fn any(x: &str, args: &mut Args, pred: impl Fn(&str, &mut Args) -> String) -> String {
    let in_array = pred("e.v", args);
    let scalar = pred(x, args);
    format!(
        "COALESCE(CASE WHEN jsonb_typeof({x}) = 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({x}) AS e(v) WHERE {in_array}) ELSE {scalar} END, false)"
    )
}

/// `{"a": {"b": leaf}}` for the path `a.b`.
fn nest(path: &[String], leaf: Json) -> Json {
    path.iter().rev().fold(leaf, |inner, seg| {
        let mut m = Map::new();
        m.insert(seg.clone(), inner);
        Json::Object(m)
    })
}

fn eq(path: &[String], s: &Scalar, col: &str, args: &mut Args) -> String {
    match s {
        Scalar::String(_) | Scalar::Bool(_) => {
            let v = s.to_json();
            let a = args.push(Arg::Jsonb(nest(path, v.clone())));
            let b = args.push(Arg::Jsonb(nest(path, Json::Array(vec![v]))));
            format!("({col} @> {a}::jsonb OR {col} @> {b}::jsonb)")
        }
        Scalar::Number(_) => {
            let x = extract(path, col, args);
            any(&x, args, |v, a| element(v, "=", s, a))
        }
        Scalar::Null => {
            let x = extract(path, col, args);
            let matched = any(&x, args, |v, a| element(v, "=", s, a));
            format!("({matched} OR {x} IS NULL)")
        }
    }
}

fn field(path: &[String], op: &FieldOp, col: &str, args: &mut Args) -> String {
    let ordered = |cmp: &str, s: &Scalar, args: &mut Args| {
        let x = extract(path, col, args);
        any(&x, args, |v, a| element(v, cmp, s, a))
    };
    let in_list = |list: &[Scalar], args: &mut Args| {
        if list.is_empty() {
            return "false".to_string();
        }
        let parts: Vec<String> = list.iter().map(|s| eq(path, s, col, args)).collect();
        format!("({})", parts.join(" OR "))
    };
    match op {
        FieldOp::Eq(s) => eq(path, s, col, args),
        FieldOp::Ne(s) => format!("(NOT {})", eq(path, s, col, args)),
        FieldOp::Gt(s) => ordered(">", s, args),
        FieldOp::Gte(s) => ordered(">=", s, args),
        FieldOp::Lt(s) => ordered("<", s, args),
        FieldOp::Lte(s) => ordered("<=", s, args),
        FieldOp::In(list) => in_list(list, args),
        FieldOp::Nin(list) => format!("(NOT {})", in_list(list, args)),
        FieldOp::Exists(want) => {
            let x = extract(path, col, args);
            let present = format!("COALESCE(jsonb_typeof({x}) <> 'null', false)");
            if *want {
                present
            } else {
                format!("(NOT {present})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(f: serde_json::Value) -> (String, usize) {
        let mut args = Args::starting_after(1);
        let s = translate(&Filter::parse(&f).unwrap(), "m", &mut args).unwrap();
        (s, args.values.len())
    }

    #[test]
    fn string_equality_uses_containment() {
        let (s, n) = sql(serde_json::json!({"kind": "fact"}));
        assert_eq!(s, "(m @> $2::jsonb OR m @> $3::jsonb)");
        assert_eq!(n, 2);
    }

    #[test]
    fn index_like_segments_are_guarded() {
        let (s, _) = sql(serde_json::json!({"a.0": {"$gt": 1}}));
        assert!(s.contains("= 'object'"), "{s}");
        let (s, _) = sql(serde_json::json!({"a.b": {"$gt": 1}}));
        assert!(!s.contains("= 'object'"), "{s}");
    }

    #[test]
    fn empty_in_is_false() {
        let (s, n) = sql(serde_json::json!({"a": {"$in": []}}));
        assert_eq!((s.as_str(), n), ("false", 0));
    }
}
