//! The SQL contract suite.
//!
//! Statements are portable between the in-tree dialects; where types differ
//! (BLOB vs BYTEA, rowid vs identity keys) a case asks [`Types`] for the
//! dialect's spelling. What the host alone does with SQL (placeholder
//! rewriting, argument checks, deserialising rows into structs) is tested
//! in the host's own tests, not here: these cases hold the *plugin* to the
//! contract.

mod basics;
mod bulk;
mod errors;
mod lifecycle;
mod streaming;
mod support;
mod transactions;
mod values;

pub use support::Types;

use crate::case::Case;

/// Every SQL case, in run order.
pub fn cases() -> Vec<Case> {
    [
        basics::cases(),
        values::cases(),
        transactions::cases(),
        errors::cases(),
        streaming::cases(),
        lifecycle::cases(),
        bulk::cases(),
    ]
    .concat()
}
