//! The blob-store contract suite.
//!
//! Every case works under its own key prefix ([`Ctx::key_prefix`](crate::ctx::Ctx::key_prefix)),
//! which the runner empties afterwards, so cases never see each other's
//! objects and a shared bucket stays clean. Expected bytes are generated
//! here from a seed and compared byte for byte, reporting the first
//! differing offset.

mod keys;
mod lifecycle;
mod listing;
mod multipart;
mod objects;
mod ranges;
mod support;

use crate::case::Case;

/// Every blob case, in run order.
pub fn cases() -> Vec<Case> {
    [
        objects::cases(),
        ranges::cases(),
        listing::cases(),
        keys::cases(),
        multipart::cases(),
        lifecycle::cases(),
    ]
    .concat()
}
