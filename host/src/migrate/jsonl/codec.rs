//! The encoding of an export's lines: values, rows and table headers as
//! JSON (see the format in [`super`]).

use std::io::Write;

use serde_json::{Value as Json, json};
use strata_plugin_api::Value;

use crate::migrate::{
    error::MigrateError,
    schema::{self, Column, Index, Kind, TableSchema},
    values::{self, base64_decode, base64_encode},
};

pub(super) fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(r) => match serde_json::Number::from_f64(*r) {
            Some(n) => Json::Number(n),
            None => json!({ "f": r.to_string() }),
        },
        Value::Text(t) => Json::String(t.to_string()),
        Value::Blob(b) => json!({ "b64": base64_encode(b) }),
    }
}

/// Appends `{"row":[…]}` and a newline for one row: the bytes
/// `serde_json::to_writer(&json!({"row": values.map(value_json)}))` writes,
/// without building the JSON tree (the hot loop of exports and logical
/// backups). Vector columns are written as little-endian `f32` blobs.
pub(super) fn row_line(buf: &mut Vec<u8>, values: &[Value], columns: &[Column]) {
    buf.extend_from_slice(b"{\"row\":[");
    for (i, (v, c)) in values.iter().zip(columns).enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        match (c.kind, v) {
            // Little-endian `f32`s already: written as they are.
            (Kind::Vector(_), Value::Blob(b)) if b.len().is_multiple_of(4) => write_value(buf, v),
            (Kind::Vector(_), Value::Blob(_) | Value::Text(_)) => match values::vector_of(v) {
                Some(f) => write_value(buf, &Value::from(values::f32_to_blob(&f))),
                None => write_value(buf, v),
            },
            _ => write_value(buf, v),
        }
    }
    buf.extend_from_slice(b"]}\n");
}

fn write_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Integer(i) => {
            let _ = write!(buf, "{i}");
        }
        Value::Real(r) if r.is_finite() => {
            let _ = serde_json::to_writer(&mut *buf, r);
        }
        Value::Text(t) => {
            let _ = serde_json::to_writer(&mut *buf, t.as_str());
        }
        _ => {
            let _ = serde_json::to_writer(&mut *buf, &value_json(v));
        }
    }
}

/// A value from its JSON form (the reference [`parse_table_line`] is
/// tested against).
#[cfg(test)]
pub(super) fn json_value(j: &Json) -> Option<Value> {
    Some(match j {
        Json::Null => Value::Null,
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Integer(i),
            _ => Value::Real(n.as_f64()?),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Object(m) => {
            if let Some(b) = m.get("b64") {
                Value::Blob(base64_decode(b.as_str()?)?.into())
            } else {
                Value::Real(m.get("f")?.as_str()?.parse().ok()?)
            }
        }
        _ => return None,
    })
}

/// A line inside a table's rows: `{"row":[…]}` or the table's end line.
pub(super) enum TableLine {
    /// The row's values.
    Row(Vec<Value>),
    /// The end line's object (`{"end": {…}}`).
    End(Json),
}

/// Parses a line inside a table's rows straight into values: the same
/// values as `serde_json::from_str` then [`json_value`] on each element,
/// without the JSON tree (the hot loop of imports and logical restores:
/// an ordered map per line and each string copied twice were most of the
/// parse).
pub(super) fn parse_table_line(line: &str) -> Result<TableLine, String> {
    use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct Cell;
    impl<'de> DeserializeSeed<'de> for Cell {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(CellVisitor)
        }
    }
    struct CellVisitor;
    impl<'de> Visitor<'de> for CellVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("null, a number, a string, {\"b64\": …} or {\"f\": …}")
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::Integer(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(match i64::try_from(v) {
                Ok(i) => Value::Integer(i),
                Err(_) => Value::Real(v as f64),
            })
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::Real(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
                return Err(A::Error::custom("an empty object is not a value"));
            };
            let text: std::borrow::Cow<'de, str> = map.next_value()?;
            let v = match &*key {
                "b64" => Value::Blob(
                    base64_decode(&text)
                        .ok_or_else(|| A::Error::custom("unreadable base64"))?
                        .into(),
                ),
                "f" => Value::Real(
                    text.parse()
                        .map_err(|_| A::Error::custom(format!("unreadable float {text:?}")))?,
                ),
                other => return Err(A::Error::custom(format!("unknown value object {other:?}"))),
            };
            if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                return Err(A::Error::custom("a value object has one key"));
            }
            Ok(v)
        }
    }

    struct Cells;
    impl<'de> DeserializeSeed<'de> for Cells {
        type Value = Vec<Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Cells {
        type Value = Vec<Value>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of values")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(8));
            while let Some(v) = seq.next_element_seed(Cell)? {
                out.push(v);
            }
            Ok(out)
        }
    }

    struct LineVisitor;
    impl<'de> Visitor<'de> for LineVisitor {
        type Value = Option<TableLine>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a row or the table's end line")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                match &*key {
                    "row" if found.is_none() => {
                        found = Some(TableLine::Row(map.next_value_seed(Cells)?));
                    }
                    "end" if found.is_none() => {
                        found = Some(TableLine::End(map.next_value()?));
                    }
                    _ => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = de.deserialize_map(LineVisitor).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    parsed.ok_or_else(|| "expected a row or the table's end line".to_string())
}

/// The table header. `pg_type` and `default` (per column), `checks` and
/// `foreign_keys` appear only for a PostgreSQL source (a Postgres target
/// recreates them exactly); readers of files without them use the kinds.
pub(super) fn schema_json(t: &TableSchema) -> Json {
    let constraints = |l: &[(String, String)]| {
        l.iter()
            .map(|(name, def)| json!({ "name": name, "def": def }))
            .collect::<Vec<_>>()
    };
    let mut j = json!({
        "name": t.name,
        "columns": t.columns.iter().map(|c| {
            let mut col = json!({
                "name": c.name, "kind": c.kind.name(), "not_null": c.not_null,
            });
            if let Some(p) = &c.pg_type {
                col["pg_type"] = json!(p);
            }
            if let Some(d) = &c.default {
                col["default"] = json!(d);
            }
            if let Some(g) = &c.generated {
                col["generated"] = json!({ "expr": g.expr, "stored": g.stored });
            }
            col
        }).collect::<Vec<_>>(),
        "primary_key": t.primary_key,
        "auto_key": t.auto_key,
        "indexes": t.indexes.iter().map(|i| json!({
            "name": i.name, "unique": i.unique, "columns": i.columns,
        })).collect::<Vec<_>>(),
    });
    if !t.checks.is_empty() {
        j["checks"] = json!(constraints(&t.checks));
    }
    if !t.foreign_keys.is_empty() {
        j["foreign_keys"] = json!(constraints(&t.foreign_keys));
    }
    j
}

fn constraints_from_json(j: Option<&Json>) -> Option<Vec<(String, String)>> {
    let Some(j) = j else {
        return Some(Vec::new());
    };
    j.as_array()?
        .iter()
        .map(|c| {
            Some((
                c.get("name")?.as_str()?.to_string(),
                c.get("def")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Reads a table header. Types, defaults and constraints from a file go
/// into DDL, so they must pass [`schema::plain_type_name`] and
/// [`schema::single_fragment`] (else the header is malformed).
pub(super) fn schema_from_json(j: &Json) -> Option<TableSchema> {
    let t = schema_from_json_unchecked(j)?;
    let ok = t.columns.iter().all(|c| {
        c.pg_type.as_deref().is_none_or(schema::plain_type_name)
            && c.default.as_deref().is_none_or(schema::single_fragment)
            && c.generated
                .as_ref()
                .is_none_or(|g| schema::single_fragment(&g.expr))
    }) && t
        .checks
        .iter()
        .chain(&t.foreign_keys)
        .all(|(_, def)| schema::single_fragment(def));
    ok.then_some(t)
}

fn schema_from_json_unchecked(j: &Json) -> Option<TableSchema> {
    let strings = |v: &Json| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    Some(TableSchema {
        name: j.get("name")?.as_str()?.to_string(),
        columns: j
            .get("columns")?
            .as_array()?
            .iter()
            .map(|c| {
                let kind = c.get("kind")?.as_str()?;
                let optional = |key: &str| -> Option<Option<String>> {
                    match c.get(key) {
                        None | Some(Json::Null) => Some(None),
                        Some(v) => Some(Some(v.as_str()?.to_string())),
                    }
                };
                let pg_type = optional("pg_type")?;
                let generated = match c.get("generated") {
                    None | Some(Json::Null) => None,
                    Some(g) => Some(schema::Generated {
                        expr: g.get("expr")?.as_str()?.to_string(),
                        stored: g.get("stored")?.as_bool()?,
                    }),
                };
                Some(Column {
                    name: c.get("name")?.as_str()?.to_string(),
                    kind: Kind::from_name(kind)?,
                    not_null: c.get("not_null")?.as_bool()?,
                    declared: pg_type.clone().unwrap_or_else(|| kind.to_string()),
                    pg_type,
                    default: optional("default")?,
                    generated,
                })
            })
            .collect::<Option<_>>()?,
        primary_key: strings(j.get("primary_key")?)?,
        auto_key: j.get("auto_key")?.as_bool()?,
        indexes: j
            .get("indexes")?
            .as_array()?
            .iter()
            .map(|i| {
                Some(Index {
                    name: i.get("name")?.as_str()?.to_string(),
                    unique: i.get("unique")?.as_bool()?,
                    columns: strings(i.get("columns")?)?,
                })
            })
            .collect::<Option<_>>()?,
        checks: constraints_from_json(j.get("checks"))?,
        foreign_keys: constraints_from_json(j.get("foreign_keys"))?,
    })
}

pub(super) fn io_err(file: &str) -> impl Fn(std::io::Error) -> MigrateError {
    let file = file.to_string();
    move |e| MigrateError::File {
        file: file.clone(),
        message: e.to_string(),
    }
}

pub(super) fn line(out: &mut dyn Write, file: &str, doc: &Json) -> Result<(), MigrateError> {
    serde_json::to_writer(&mut *out, doc).map_err(|e| MigrateError::File {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    out.write_all(b"\n").map_err(io_err(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines_parse_as_the_json_tree_reads_them() {
        let values = vec![
            Value::Null,
            Value::Integer(-7),
            Value::Integer(i64::MAX),
            Value::Real(0.1),
            Value::Real(-2.5e300),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::from("tab\t \"q\" ünï \\ {\"a\": 1}"),
            Value::from(""),
            Value::Blob(vec![0, 1, 255].into()),
            Value::Blob(Vec::new().into()),
        ];
        let line = serde_json::to_string(
            &json!({ "row": values.iter().map(value_json).collect::<Vec<_>>() }),
        )
        .unwrap();
        let TableLine::Row(got) = parse_table_line(&line).unwrap() else {
            panic!("not a row")
        };
        let tree: Json = serde_json::from_str(&line).unwrap();
        let want: Vec<Value> = tree["row"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| json_value(j).unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(got, values);
        // A number past i64 reads as a float, as `json_value` reads it.
        let TableLine::Row(big) =
            parse_table_line(r#"{"row":[18446744073709551615, 1.0]}"#).unwrap()
        else {
            panic!("not a row")
        };
        assert_eq!(
            big,
            vec![Value::Real(18446744073709551615.0), Value::Real(1.0)]
        );
        match parse_table_line(r#"{"end":{"table":"t","rows":3}}"#).unwrap() {
            TableLine::End(e) => assert_eq!(e["rows"], 3),
            TableLine::Row(_) => panic!("not the end"),
        }
        for bad in [
            r#"{"row":[1,"#,
            r#"{"row":[{"b64":"!!"}]}"#,
            r#"{"row":[{"x":"1"}]}"#,
            r#"{"row":[[1]]}"#,
            r#"{"other":1}"#,
            r#"{"row":[1]} x"#,
        ] {
            assert!(parse_table_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn row_lines_are_what_the_json_tree_writes() {
        let col = |kind| Column {
            name: "c".into(),
            kind,
            not_null: false,
            declared: String::new(),
            pg_type: None,
            default: None,
            generated: None,
        };
        let columns = [
            col(Kind::Integer),
            col(Kind::Real),
            col(Kind::Real),
            col(Kind::Real),
            col(Kind::Text),
            col(Kind::Blob),
            col(Kind::Json),
            col(Kind::Vector(2)),
            col(Kind::Vector(2)),
            col(Kind::Integer),
        ];
        let values = [
            Value::Integer(i64::MIN),
            Value::Real(1.0),
            Value::Real(-1e-300),
            Value::Real(f64::NAN),
            Value::from("quote \" back \\ ctl \u{1} ünï ✓"),
            Value::from(vec![0u8, 255, 7]),
            Value::from(r#"{"a": [1, 2.5]}"#),
            Value::from("[1.5,-2]"),
            Value::from(values::f32_to_blob(&[0.25, 3.0])),
            Value::Null,
        ];
        let mut fast = Vec::new();
        row_line(&mut fast, &values, &columns);
        let vals: Vec<Json> = values
            .iter()
            .zip(&columns)
            .map(|(v, c)| match c.kind {
                Kind::Vector(_) => value_json(&Value::from(values::f32_to_blob(
                    &values::vector_of(v).unwrap(),
                ))),
                _ => value_json(v),
            })
            .collect();
        let mut tree = serde_json::to_vec(&json!({ "row": vals })).unwrap();
        tree.push(b'\n');
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(tree).unwrap()
        );
    }

    #[test]
    fn values_round_trip() {
        for v in [
            Value::Null,
            Value::Integer(-7),
            Value::Real(1.0),
            Value::Real(f64::NAN),
            Value::from("x"),
            Value::from(vec![1u8, 2]),
        ] {
            let back = json_value(&value_json(&v)).unwrap();
            match (&v, &back) {
                (Value::Real(a), Value::Real(b)) if a.is_nan() => assert!(b.is_nan()),
                _ => assert_eq!(back, v),
            }
        }
    }
}
