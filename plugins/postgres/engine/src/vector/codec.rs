//! Values on the wire: pgvector's `vector` type for sqlx, and binding
//! filter arguments.

use sqlx::{
    Arguments, Decode, Encode, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{
        PgArgumentBuffer, PgArguments, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef,
    },
};
use strata_plugin::{PluginError, PluginResult};

use crate::filter_sql::Arg;

/// A pgvector `vector` value (binary: dim u16, unused u16, dim × f32, big-endian).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PgVector(pub(super) Vec<f32>);

impl Type<Postgres> for PgVector {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("vector")
    }
}

impl PgHasArrayType for PgVector {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::array_of("vector")
    }
}

impl Encode<'_, Postgres> for PgVector {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let dim = u16::try_from(self.0.len())
            .map_err(|_| format!("a vector of {} dimensions is too long", self.0.len()))?;
        buf.reserve(4 + 4 * self.0.len());
        buf.extend_from_slice(&dim.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        for x in &self.0 {
            buf.extend_from_slice(&x.to_be_bytes());
        }
        Ok(IsNull::No)
    }
}

impl Decode<'_, Postgres> for PgVector {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let b = value.as_bytes()?;
                let dim = u16::from_be_bytes(b.get(..2).ok_or("short vector")?.try_into()?);
                let body = b.get(4..).ok_or("short vector")?;
                if body.len() != 4 * usize::from(dim) {
                    return Err("vector length does not match its dimension".into());
                }
                Ok(PgVector(
                    body.chunks_exact(4)
                        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ))
            }
            PgValueFormat::Text => {
                let s = value.as_str()?;
                let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
                if inner.is_empty() {
                    return Ok(PgVector(Vec::new()));
                }
                Ok(PgVector(
                    inner
                        .split(',')
                        .map(|x| x.trim().parse::<f32>())
                        .collect::<Result<_, _>>()?,
                ))
            }
        }
    }
}

pub(super) fn bind(args: &mut PgArguments, a: &Arg) -> PluginResult<()> {
    let r = match a {
        Arg::Text(s) => args.add(s.as_str()),
        Arg::Float(f) => args.add(*f),
        Arg::Int(i) => args.add(*i),
        Arg::Jsonb(j) => args.add(sqlx::types::Json(j)),
        Arg::TextArray(v) => args.add(v.as_slice()),
    };
    r.map_err(|e| PluginError::internal(format!("cannot bind a parameter: {e}")))
}

/// The arguments: an optional vector as `$1`, then `rest`.
pub(super) fn arguments(vector: Option<&[f32]>, rest: &[Arg]) -> PluginResult<PgArguments> {
    let mut args = PgArguments::default();
    if let Some(v) = vector {
        args.add(PgVector(v.to_vec()))
            .map_err(|e| PluginError::internal(format!("cannot bind the vector: {e}")))?;
    }
    for a in rest {
        bind(&mut args, a)?;
    }
    Ok(args)
}
