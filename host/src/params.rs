//! Statement parameters and their binding to rewritten placeholders.

use abi_stable::std_types::RVec;
use strata_plugin_api::{
    Value,
    placeholders::{Expected, Rewritten, Slot},
};

use crate::error::{Error, Result};

/// Arguments for a statement: positional or named.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Params {
    /// No arguments.
    #[default]
    None,
    /// Positional arguments, for `?` / `?NNN`.
    Positional(Vec<Value>),
    /// Named arguments, for `:name` / `@name` / `$name`; keys may be given
    /// with or without their sigil.
    Named(Vec<(String, Value)>),
}

/// Anything that can be turned into [`Params`]: `()`, a `Vec<Value>`, an
/// array or tuple of values, or [`Params`] itself (see also [`crate::params!`]
/// and [`crate::named!`]).
pub trait IntoParams {
    /// The conversion.
    fn into_params(self) -> Params;
}

impl IntoParams for Params {
    fn into_params(self) -> Params {
        self
    }
}
impl IntoParams for () {
    fn into_params(self) -> Params {
        Params::None
    }
}
impl IntoParams for Vec<Value> {
    fn into_params(self) -> Params {
        Params::Positional(self)
    }
}
impl IntoParams for &[Value] {
    fn into_params(self) -> Params {
        Params::Positional(self.to_vec())
    }
}
impl<T: Into<Value>, const N: usize> IntoParams for [T; N] {
    fn into_params(self) -> Params {
        Params::Positional(self.into_iter().map(Into::into).collect())
    }
}
impl<K: Into<String>, T: Into<Value>> IntoParams for Vec<(K, T)> {
    fn into_params(self) -> Params {
        Params::Named(
            self.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

macro_rules! tuple_params {
    ($($name:ident),+) => {
        impl<$($name: Into<Value>),+> IntoParams for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_params(self) -> Params {
                let ($($name,)+) = self;
                Params::Positional(vec![$($name.into()),+])
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A, B);
tuple_params!(A, B, C);
tuple_params!(A, B, C, D);
tuple_params!(A, B, C, D, E);
tuple_params!(A, B, C, D, E, F);
tuple_params!(A, B, C, D, E, F, G);
tuple_params!(A, B, C, D, E, F, G, H);

/// Positional parameters of mixed types: `params![1, "two", 3.0, None::<i64>]`.
#[macro_export]
macro_rules! params {
    () => { $crate::Params::None };
    ($($v:expr),+ $(,)?) => {
        $crate::Params::Positional(vec![$($crate::Value::from($v)),+])
    };
}

/// Named parameters: `named!{"id" => 1, ":name" => "x"}`.
#[macro_export]
macro_rules! named {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::Params::Named(vec![$((::std::string::String::from($k), $crate::Value::from($v))),*])
    };
}

fn strip_sigil(name: &str) -> &str {
    name.strip_prefix([':', '@', '$']).unwrap_or(name)
}

/// Orders `params` into wire order for `rewritten`, checking counts and names
/// before anything reaches the database.
pub(crate) fn bind(rewritten: &Rewritten, params: Params) -> Result<RVec<Value>> {
    match (&rewritten.expected, params) {
        (Expected::Nothing, Params::None) => Ok(RVec::new()),
        (Expected::Nothing, Params::Positional(v)) if v.is_empty() => Ok(RVec::new()),
        (Expected::Nothing, Params::Named(v)) if v.is_empty() => Ok(RVec::new()),
        (Expected::Nothing, p) => Err(Error::Params(format!(
            "the statement has no placeholders, but {} parameter(s) were given",
            count(&p)
        ))),
        (Expected::Positional(n), Params::Positional(values)) => {
            if values.len() != *n {
                return Err(Error::Params(format!(
                    "the statement has {n} positional placeholder(s), but {} parameter(s) were given",
                    values.len()
                )));
            }
            if rewritten.is_identity() {
                return Ok(values.into());
            }
            Ok(rewritten
                .slots
                .iter()
                .map(|s| match s {
                    Slot::Index(i) => values[*i].clone(),
                    Slot::Name(_) => Value::Null,
                })
                .collect())
        }
        (Expected::Positional(n), Params::None) => Err(Error::Params(format!(
            "the statement has {n} positional placeholder(s), but no parameters were given"
        ))),
        (Expected::Positional(n), Params::Named(_)) => Err(Error::Params(format!(
            "the statement has {n} positional placeholder(s) (`?`), but named parameters were given"
        ))),
        (Expected::Named(names), Params::Named(given)) => {
            let mut given: Vec<(String, Option<Value>)> = given
                .into_iter()
                .map(|(k, v)| (strip_sigil(&k).to_string(), Some(v)))
                .collect();
            if let Some((extra, _)) = given.iter().find(|(k, _)| !names.contains(k)) {
                return Err(Error::Params(format!(
                    "parameter `{extra}` does not appear in the statement (it uses: {})",
                    names.join(", ")
                )));
            }
            if let Some(missing) = names.iter().find(|n| !given.iter().any(|(k, _)| k == *n)) {
                return Err(Error::Params(format!(
                    "no value given for parameter `{missing}`"
                )));
            }
            let mut out = RVec::with_capacity(rewritten.slots.len());
            for slot in &rewritten.slots {
                let Slot::Name(name) = slot else { continue };
                let entry = given
                    .iter_mut()
                    .find(|(k, _)| k == name)
                    .expect("checked above");
                // Take on first use; a slot repeated (Question dialect) clones.
                let v = match entry.1.take() {
                    Some(v) => {
                        entry.1 = Some(v.clone());
                        v
                    }
                    None => Value::Null,
                };
                out.push(v);
            }
            Ok(out)
        }
        (Expected::Named(names), _) => Err(Error::Params(format!(
            "the statement uses named parameters ({}), give them by name",
            names.join(", ")
        ))),
    }
}

fn count(p: &Params) -> usize {
    match p {
        Params::None => 0,
        Params::Positional(v) => v.len(),
        Params::Named(v) => v.len(),
    }
}
