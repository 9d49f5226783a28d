//! The boundary call: how the host awaits a future a plugin handed out.
//!
//! Every front end ([`crate::sql`], [`crate::vector`], [`crate::blob`]) and
//! the loader await plugin futures through [`call`], so panic containment
//! and the tokio budget are decided in one place.

use std::panic::AssertUnwindSafe;

use abi_stable::std_types::RResult;
use futures_util::FutureExt as _;
use strata_plugin_api::{ErrorKind, PluginError, error::panic_message, sql::PluginFuture};

use crate::error::{Error, Result};

/// Awaits a plugin future, turning a panic re-raised by async-ffi (the
/// plugin let one escape its own guard) into an `Internal` error.
///
/// Every call is charged to the calling task's tokio budget, as a tokio
/// channel or socket would be. Plugin futures often finish in their first
/// poll (SQLite answers without waiting), and the tokio inside a plugin is
/// its own copy, with no access to the host runtime's budget, so without
/// this a task looping over plugin calls never yields: it starves the other
/// tasks of its worker thread, including one woken into that worker's LIFO
/// slot, which no other worker may steal (a CI run hung on exactly that).
/// Outside a tokio runtime the budget is unlimited and this costs nothing.
pub(crate) async fn call<T>(fut: PluginFuture<T>) -> Result<T> {
    match tokio::task::coop::cooperative(AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(RResult::ROk(v)) => Ok(v),
        Ok(RResult::RErr(e)) => Err(Error::Plugin(e)),
        Err(payload) => Err(Error::Plugin(PluginError::new(
            ErrorKind::Internal,
            format!("plugin panicked: {}", panic_message(payload.as_ref())),
        ))),
    }
}
