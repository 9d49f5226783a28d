//! Helpers for plugin authors: keep panics on the plugin side of the boundary.
//!
//! abi_stable aborts the process when a `#[sabi_trait]` method or an
//! `extern "C"` function unwinds, and async-ffi turns a panic inside `poll`
//! into a panic on the host. So every plugin entry point does its work inside
//! [`guard`] (for futures) or [`catch`] (for synchronous calls), which turn a
//! panic into an [`ErrorKind::Internal`](crate::ErrorKind::Internal) error
//! reading `plugin panicked: …`.

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll},
};

use abi_stable::std_types::RResult;
use async_ffi::{FfiFuture, FutureExt as _};

use crate::{PluginError, sql::PluginFuture};

/// Wraps plugin work into an FFI future that reports a panic as an error.
pub fn guard<T, F>(fut: F) -> PluginFuture<T>
where
    F: Future<Output = Result<T, PluginError>> + Send + 'static,
    T: Send + 'static,
{
    CatchPanic {
        inner: Some(Box::pin(fut)),
    }
    .into_ffi()
}

/// An already-finished FFI future.
pub fn ready<T: Send + 'static>(result: Result<T, PluginError>) -> PluginFuture<T> {
    FfiFuture::new(std::future::ready(RResult::from(result)))
}

/// Runs a synchronous entry point, turning a panic into an error.
pub fn catch<T>(f: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(PluginError::from_panic(payload.as_ref())),
    }
}

struct CatchPanic<F> {
    // Boxed so the future can be taken out and dropped on its own after a
    // panic, without any unsafe pin projection.
    inner: Option<Pin<Box<F>>>,
}

impl<T, F> Future for CatchPanic<F>
where
    F: Future<Output = Result<T, PluginError>>,
{
    type Output = RResult<T, PluginError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(RResult::RErr(PluginError::internal(
                "future polled after completion",
            )));
        };
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => {
                let finished = self.inner.take();
                let _ = catch_unwind(AssertUnwindSafe(move || drop(finished)));
                Poll::Ready(r.into())
            }
            Err(payload) => {
                // Dropping a future that panicked may panic again; contain that too.
                let poisoned = self.inner.take();
                let _ = catch_unwind(AssertUnwindSafe(move || drop(poisoned)));
                Poll::Ready(RResult::RErr(PluginError::from_panic(payload.as_ref())))
            }
        }
    }
}
