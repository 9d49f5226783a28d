//! Panic containment at the boundary.
//!
//! abi_stable aborts the process when an `extern "C"` function or a
//! `#[sabi_trait]` method unwinds, async-ffi re-raises a panic from `poll`
//! on the host, and a panic in a future's or a handle's `Drop` aborts too.
//! So the kit wraps every entry point it generates: synchronous ones in
//! [`catch`], futures in [`guard`] (which also guards their drop), and every
//! plugin object the host holds in [`Guarded`] (which guards its drop).

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll},
};

use abi_stable::std_types::RResult;
use async_ffi::{FfiFuture, FutureExt as _};
use strata_plugin_api::{PluginError, sql::PluginFuture};

/// Runs a synchronous entry point, turning a panic into an `internal` error.
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(PluginError::from_panic(payload.as_ref())),
    }
}

/// Runs `f`, swallowing a panic (for drops: there is nobody to tell).
pub(crate) fn quietly(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// An already-finished FFI future.
pub(crate) fn ready<T: Send + 'static>(result: Result<T, PluginError>) -> PluginFuture<T> {
    FfiFuture::new(std::future::ready(RResult::from(result)))
}

/// Wraps plugin work into an FFI future that reports a panic in `poll` as
/// an error and contains a panic in the work's drop.
pub(crate) fn guard<T, F>(fut: F) -> PluginFuture<T>
where
    F: Future<Output = Result<T, PluginError>> + Send + 'static,
    T: Send + 'static,
{
    guarded(fut, false)
}

/// [`guard`] for a call placed [`Runs::Inline`](crate::Runs::Inline): its
/// polls run with [`crate::inline::is_inline`] set.
pub(crate) fn guard_inline<T, F>(fut: F) -> PluginFuture<T>
where
    F: Future<Output = Result<T, PluginError>> + Send + 'static,
    T: Send + 'static,
{
    guarded(fut, true)
}

fn guarded<T, F>(fut: F, inline: bool) -> PluginFuture<T>
where
    F: Future<Output = Result<T, PluginError>> + Send + 'static,
    T: Send + 'static,
{
    CatchPanic {
        inner: Some(Box::pin(fut)),
        inline,
    }
    .into_ffi()
}

struct CatchPanic<F> {
    // Boxed so the future can be taken out and dropped on its own, without
    // any pin projection.
    inner: Option<Pin<Box<F>>>,
    /// Polled on the host's thread as an inline call.
    inline: bool,
}

impl<T, F> Future for CatchPanic<F>
where
    F: Future<Output = Result<T, PluginError>>,
{
    type Output = RResult<T, PluginError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inline = self.inline;
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(RResult::RErr(PluginError::internal(
                "future polled after completion",
            )));
        };
        let polled = if inline {
            crate::inline::polled_inline(|| {
                catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)))
            })
        } else {
            catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)))
        };
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => {
                let finished = self.inner.take();
                quietly(move || drop(finished));
                Poll::Ready(r.into())
            }
            Err(payload) => {
                let poisoned = self.inner.take();
                quietly(move || drop(poisoned));
                Poll::Ready(RResult::RErr(PluginError::from_panic(payload.as_ref())))
            }
        }
    }
}

impl<F> Drop for CatchPanic<F> {
    fn drop(&mut self) {
        // A future dropped before it finished (the host stopped awaiting it).
        if let Some(inner) = self.inner.take() {
            quietly(move || drop(inner));
        }
    }
}

/// A value whose drop cannot unwind out of the plugin.
pub(crate) struct Guarded<T>(Option<T>);

impl<T> Guarded<T> {
    pub(crate) fn new(value: T) -> Self {
        Guarded(Some(value))
    }

    pub(crate) fn get(&self) -> &T {
        // Only `Drop` takes the value out.
        match &self.0 {
            Some(v) => v,
            None => unreachable!("a Guarded value is only taken by its drop"),
        }
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            quietly(move || drop(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;

    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop panicked");
        }
    }

    #[test]
    fn a_panic_while_polling_is_an_internal_error() {
        let e = block_on(guard::<(), _>(async { panic!("boom") }))
            .into_result()
            .unwrap_err();
        assert_eq!(e.kind(), strata_plugin_api::ErrorKind::Internal);
        assert_eq!(e.message(), "plugin panicked: boom");
    }

    #[test]
    fn panics_in_drops_are_contained() {
        // A pending future dropped by the host, whose state panics on drop.
        let fut = guard::<(), _>(async {
            let _p = PanicOnDrop;
            std::future::pending::<()>().await;
            Ok(())
        });
        let mut fut = Box::pin(fut);
        let waker = std::task::Waker::noop();
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(fut);
        drop(Guarded::new(PanicOnDrop));
        assert!(catch(|| -> Result<(), _> { panic!("sync") }).is_err());
    }
}
