//! The vector-store contract suite.
//!
//! Expected results are computed here, independently of the backend: exact
//! scores with [`Metric::score`](strata_host::Metric::score) and filter
//! matches with [`Filter::matches`](strata_plugin_api::filter::Filter::matches),
//! the reference semantics of the filter language.

mod collections;
mod filters;
mod hybrid;
mod index;
mod lifecycle;
mod queries;
mod records;
mod scan;
mod support;

pub use support::clustered;

use crate::case::Case;

/// Every vector case, in run order.
pub fn cases() -> Vec<Case> {
    [
        collections::cases(),
        records::cases(),
        queries::cases(),
        filters::cases(),
        hybrid::cases(),
        scan::cases(),
        lifecycle::cases(),
        index::cases(),
    ]
    .concat()
}
