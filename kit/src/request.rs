//! The extension entries of the request a call is serving, for contract
//! methods whose kit signature has no request struct (the vector contract:
//! `upsert(collection, records)`, …). The kit sets them around the call's
//! future; [`extensions`] reads them from anywhere inside it.
//!
//! The SQL contract carries them on [`Statement::ext`](crate::sql::Statement::ext)
//! instead. Keys: [`crate::ext_keys`].

use std::future::Future;

use crate::Extensions;

tokio::task_local! {
    static CURRENT: Extensions;
}

/// The extension entries of the vector request whose future is running
/// (empty outside one, or when the request carried none).
pub fn extensions() -> Extensions {
    CURRENT.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `fut` with `ext` as the current request's entries (the kit does
/// this for every vector call; a plugin uses it to run part of a call as
/// the backend itself, with `Extensions::new()`).
pub fn scope<F: Future>(ext: Extensions, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(ext, fut)
}
