//! What a case is: a named async check of one behaviour of a contract,
//! the capabilities it needs, and what to read when it fails.

use std::{future::Future, pin::Pin};

use crate::{ctx::Ctx, failure::CaseResult};

/// A contract suite.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// The SQL contract.
    Sql,
    /// The vector-store contract.
    Vector,
    /// The blob-store contract.
    Blob,
}

impl Suite {
    /// Every suite, in run order.
    pub const ALL: [Suite; 3] = [Suite::Sql, Suite::Vector, Suite::Blob];

    /// `sql`, `vector` or `blob`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Sql => "sql",
            Suite::Vector => "vector",
            Suite::Blob => "blob",
        }
    }

    /// The suite called `name`.
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The contract bit ([`strata_plugin_api::contracts`]) a plugin sets to
    /// implement this suite's contract.
    pub fn contract_bit(self) -> u32 {
        match self {
            Suite::Sql => strata_plugin_api::contracts::SQL,
            Suite::Vector => strata_plugin_api::contracts::VECTOR,
            Suite::Blob => strata_plugin_api::contracts::BLOB,
        }
    }
}

/// A case body: an async function of its [`Ctx`].
pub type CaseFn = fn(Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One conformance case.
#[derive(Clone)]
pub struct Case {
    /// The suite it belongs to.
    pub suite: Suite,
    /// A stable snake_case name, unique in its suite.
    pub name: &'static str,
    /// Capabilities the backend must report for the case to run.
    pub requires: &'static [&'static str],
    /// What the contract requires here and where it is written down:
    /// printed under a failure, so a plugin author knows what to fix.
    pub help: &'static str,
    /// The case body.
    pub run: CaseFn,
}

impl Case {
    /// `suite::name`, the id expectations and filters use.
    pub fn id(&self) -> String {
        format!("{}::{}", self.suite.name(), self.name)
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("id", &self.id())
            .field("requires", &self.requires)
            .finish()
    }
}

/// Builds a [`Case`] from an async function of the same name:
/// `case!(Suite::Sql, name, "help", capability…)`.
macro_rules! case {
    ($suite:expr, $name:ident, $help:expr $(, $req:expr)* $(,)?) => {
        $crate::case::Case {
            suite: $suite,
            name: stringify!($name),
            requires: &[$($req),*],
            help: $help,
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

pub(crate) use case;
