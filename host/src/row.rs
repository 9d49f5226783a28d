//! Result rows: by column name, by index, or deserialised into serde structs.

use std::sync::Arc;

use abi_stable::std_types::RVec;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use strata_plugin_api::{Value, sql::Rows};

use crate::error::{Error, Result};

/// Column names shared by every row of one result.
pub type Columns = Arc<[String]>;

/// One result row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    columns: Columns,
    // Kept in the plugin's own vector: a one-row result moves in without a copy.
    values: RVec<Value>,
}

impl Row {
    /// A row from parts (the lengths must match).
    pub fn new(columns: Columns, values: Vec<Value>) -> Row {
        debug_assert_eq!(columns.len(), values.len());
        Row {
            columns,
            values: values.into(),
        }
    }

    pub(crate) fn from_parts(columns: Columns, values: RVec<Value>) -> Row {
        Row { columns, values }
    }

    /// Column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Values in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, to change in place (the engines' own conversions).
    pub(crate) fn values_mut(&mut self) -> &mut [Value] {
        &mut self.values
    }

    /// Takes the values.
    pub fn into_values(self) -> Vec<Value> {
        self.values.into_vec()
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a zero-column row.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of column `name` (the first one, if names repeat).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.columns
            .iter()
            .position(|c| c == name)
            .map(|i| &self.values[i])
    }

    /// Column `name` converted to `T`.
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T> {
        let v = self.value(name).ok_or_else(|| Error::Decode {
            column: name.to_string(),
            message: format!("no such column (columns: {})", self.columns.join(", ")),
        })?;
        T::from_value(v).map_err(|message| Error::Decode {
            column: name.to_string(),
            message,
        })
    }

    /// Column `index` converted to `T`.
    pub fn get_idx<T: FromValue>(&self, index: usize) -> Result<T> {
        let v = self.values.get(index).ok_or_else(|| Error::Decode {
            column: format!("#{index}"),
            message: format!("the row has {} columns", self.values.len()),
        })?;
        T::from_value(v).map_err(|message| Error::Decode {
            column: self.columns[index].clone(),
            message,
        })
    }

    /// Deserialises the row into `T` (a struct whose fields are column names,
    /// a tuple in column order, or a map).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(RowDeserializer(self)).map_err(|e| Error::Decode {
            column: e.column.unwrap_or_else(|| "*".into()),
            message: e.message,
        })
    }

    /// The row as a JSON object (blobs as `\x<hex>` strings).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.columns
                .iter()
                .zip(&self.values)
                .map(|(c, v)| (c.clone(), v.to_json()))
                .collect(),
        )
    }
}

/// Column names of a result block, as the host's shared type.
pub(crate) fn columns_of(rows: &Rows) -> Columns {
    rows.columns
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .into()
}

/// Splits a plugin result block into rows sharing `columns`.
pub(crate) fn split_rows(rows: Rows, columns: Columns) -> Vec<Row> {
    let width = columns.len();
    let n = rows.row_count as usize;
    if n == 1 {
        return vec![Row {
            columns,
            values: rows.values,
        }];
    }
    let mut out = Vec::with_capacity(n);
    if width == 0 {
        out.extend((0..n).map(|_| Row::new(columns.clone(), Vec::new())));
        return out;
    }
    let mut iter = rows.values.into_iter();
    for _ in 0..n {
        out.push(Row {
            columns: columns.clone(),
            values: iter.by_ref().take(width).collect(),
        });
    }
    out
}

/// Conversion from a [`Value`] to a Rust type, with a message on mismatch.
pub trait FromValue: Sized {
    /// The conversion.
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

fn mismatch(want: &str, v: &Value) -> String {
    format!("expected {want}, found {}", v.kind_name())
}

impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_i64().ok_or_else(|| mismatch("integer", v))
    }
}
macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> std::result::Result<Self, String> {
                let i = v.as_i64().ok_or_else(|| mismatch("integer", v))?;
                <$t>::try_from(i).map_err(|_| format!("{i} does not fit in {}", stringify!($t)))
            }
        }
    )*};
}
int_from_value!(i8, i16, i32, u8, u16, u32, u64, usize);
impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_f64().ok_or_else(|| mismatch("number", v))
    }
}
impl FromValue for f32 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| mismatch("number", v))
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Integer(0) => Ok(false),
            Value::Integer(1) => Ok(true),
            Value::Text(t) if t.as_str() == "true" => Ok(true),
            Value::Text(t) if t.as_str() == "false" => Ok(false),
            _ => Err(mismatch("boolean (0 or 1)", v)),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| mismatch("text", v))
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        v.as_blob()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| mismatch("blob", v))
    }
}
impl FromValue for serde_json::Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(t) => {
                serde_json::from_str(t).map_err(|e| format!("invalid JSON text: {e}"))
            }
            Value::Null => Ok(serde_json::Value::Null),
            other => Ok(other.to_json()),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// The error of the row deserialiser.
#[derive(Debug)]
struct DeError {
    column: Option<String>,
    message: String,
}

impl std::fmt::Display for DeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for DeError {}
impl de::Error for DeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DeError {
            column: None,
            message: msg.to_string(),
        }
    }
}

struct RowDeserializer<'a>(&'a Row);

impl<'de> de::Deserializer<'de> for RowDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        visitor.visit_map(RowMap {
            row: self.0,
            index: 0,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        visitor.visit_seq(RowSeq {
            row: self.0,
            index: 0,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct
        map struct enum identifier ignored_any
    }
}

struct RowMap<'a> {
    row: &'a Row,
    index: usize,
}

impl<'de> de::MapAccess<'de> for RowMap<'_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, DeError> {
        if self.index >= self.row.columns.len() {
            return Ok(None);
        }
        let name: &str = &self.row.columns[self.index];
        seed.deserialize(name.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, DeError> {
        let i = self.index;
        self.index += 1;
        seed.deserialize(ValueDeserializer(&self.row.values[i]))
            .map_err(|mut e| {
                e.column.get_or_insert_with(|| self.row.columns[i].clone());
                e
            })
    }
}

struct RowSeq<'a> {
    row: &'a Row,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for RowSeq<'_> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> std::result::Result<Option<T::Value>, DeError> {
        let Some(v) = self.row.values.get(self.index) else {
            return Ok(None);
        };
        let i = self.index;
        self.index += 1;
        seed.deserialize(ValueDeserializer(v))
            .map(Some)
            .map_err(|mut e| {
                e.column.get_or_insert_with(|| self.row.columns[i].clone());
                e
            })
    }
}

/// Deserialises one [`Value`]: integers also read as booleans (0/1), text
/// also reads as a JSON document when the target is a struct, map or sequence.
struct ValueDeserializer<'a>(&'a Value);

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Real(r) => visitor.visit_f64(*r),
            Value::Text(t) => visitor.visit_str(t),
            Value::Blob(b) => visitor.visit_bytes(b),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match bool::from_value(self.0) {
            Ok(b) => visitor.visit_bool(b),
            Err(m) => Err(de::Error::custom(m)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Integer(i) => visitor.visit_f64(*i as f64),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Blob(b) => visitor.visit_byte_buf(b.to_vec()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Text(t) => json_value(t)?.deserialize_seq(visitor).map_err(json_err),
            Value::Blob(b) => visitor.visit_seq(de::value::SeqDeserializer::new(b.iter().copied())),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Text(t) => json_value(t)?.deserialize_map(visitor).map_err(json_err),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Text(t) => json_value(t)?
                .deserialize_struct(name, fields, visitor)
                .map_err(json_err),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Text(t) => visitor.visit_enum(t.as_str().into_deserializer()),
            other => Err(de::Error::custom(mismatch(
                "text naming an enum variant",
                other,
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        bytes unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

fn json_value(text: &str) -> std::result::Result<serde_json::Value, DeError> {
    serde_json::from_str(text).map_err(json_err)
}

fn json_err(e: serde_json::Error) -> DeError {
    de::Error::custom(format!("JSON text: {e}"))
}
