//! Where a call's work runs: the caller's thread, the plugin's blocking
//! pool, or the plugin's async runtime.
//!
//! Every contract method of the kit's traits is `async`; before the kit
//! hands a call's future to the host it asks the backend where that call
//! runs ([`SqlBackend::runs`](crate::SqlBackend::runs) and its siblings,
//! one answer per call, which may depend on the request) and places the
//! future accordingly. The host only ever polls a future that is cheap to
//! poll: nothing long runs on the caller's executor thread, so one backup
//! or index build cannot freeze an application on a one-thread runtime.
//!
//! The plugin's runtime is one multi-threaded tokio runtime per plugin
//! library (each `.so` links its own copy of tokio, and tokio's context is
//! a thread-local of each copy: the host's runtime is invisible to plugin
//! code). It starts on first use, its threads are named after the plugin,
//! and it lives as long as the process, like the library.

use std::{
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::Duration,
};

use strata_plugin_api::{PluginError, PluginResult, sql::PluginFuture};

use crate::guard::{guard, guard_inline, ready};
pub use crate::inline::is_inline;

/// Where the kit runs one call.
///
/// `Blocking` is every trait's default: it is never wrong, only a thread
/// hop slower than `Inline` for a short call.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runs {
    /// Polled on the caller's thread when the host polls it, with no thread
    /// hop. Only for work that is short and bounded (a point read, a cache
    /// lookup): it holds the caller's executor thread while it runs.
    Inline,
    /// Run to completion on a thread of the plugin's blocking pool (file
    /// I/O, a `VACUUM INTO`, loading a collection, an index build, any
    /// synchronous client). The future may still await (a lock, a timer:
    /// it runs inside the plugin's runtime context). It finishes even if
    /// the host stops awaiting it.
    Blocking,
    /// Polled on the caller's thread *inside* the plugin's runtime context:
    /// sockets and timers register with the plugin's runtime, whose threads
    /// drive the I/O and wake the caller (async network clients). Dropping
    /// the future cancels the work.
    Async,
    /// Spawned as a task on the plugin's runtime: it makes progress while
    /// the host does not poll and runs to completion even if the host drops
    /// the future (a multipart upload that must be completed or aborted).
    Task,
}

/// Worker threads of the plugin runtime, and the name its threads carry;
/// set once from the plugin's declaration when the library is loaded.
static SETTINGS: OnceLock<(&'static str, usize)> = OnceLock::new();
static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Records the runtime's thread name and size (the first call wins).
pub(crate) fn configure(thread_name: &'static str, worker_threads: usize) {
    let _ = SETTINGS.set((thread_name, worker_threads));
}

/// The plugin's runtime, started now if it was not yet. An error names why
/// it could not start (it is not retried).
pub fn runtime() -> PluginResult<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            let (name, workers) = SETTINGS.get().copied().unwrap_or(("strata-plugin", 2));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .thread_name(name)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PluginError::internal(format!("cannot start the plugin's runtime: {e}")))
}

/// Runs `fut` in the background on the plugin's runtime (from a `Drop`
/// impl, say); nothing happens when the runtime cannot start. A panic in
/// it ends only the task.
pub fn detach(fut: impl Future<Output = ()> + Send + 'static) {
    if let Ok(rt) = runtime() {
        rt.spawn(fut);
    }
}

/// `fut`'s output, or `Err(())` once `limit` has passed without it. The
/// deadline is kept by the plugin's runtime, so this works wherever the
/// future is polled (inline on the host's thread too). Should the runtime
/// fail to start, the wait is unbounded.
pub async fn timeout<F: Future>(limit: Duration, fut: F) -> Result<F::Output, ()> {
    let Ok(rt) = runtime() else {
        return Ok(fut.await);
    };
    let bounded = {
        let _entered = rt.enter();
        tokio::time::timeout(limit, fut)
    };
    bounded.await.map_err(|_| ())
}

/// Runs `fut` to completion on a thread of the plugin's blocking pool,
/// inside the plugin's runtime, as [`Runs::Blocking`] does, and awaits it:
/// for work *inside* a call that was placed elsewhere — an inline call that
/// turned out not to be short, say. A panic in `fut` is raised again in the
/// awaiting call (whose own guard turns it into an `internal` error).
/// Dropping the returned future does not stop `fut`.
pub async fn blocking<T: Send + 'static>(
    fut: impl Future<Output = PluginResult<T>> + Send + 'static,
) -> PluginResult<T> {
    let rt = runtime()?;
    let handle = rt.handle().clone();
    match rt.spawn_blocking(move || handle.block_on(fut)).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => Err(PluginError::internal(format!(
                "the plugin's blocking pool dropped a call: {e}"
            ))),
        },
    }
}

/// Places `fut` as `runs` says and hands back the FFI future the host awaits.
pub(crate) fn place<T: Send + 'static>(
    runs: Runs,
    fut: impl Future<Output = PluginResult<T>> + Send + 'static,
) -> PluginFuture<T> {
    if runs == Runs::Inline {
        return guard_inline(fut);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return ready(Err(e)),
    };
    match runs {
        Runs::Async => guard(InRuntime::new(rt.handle().clone(), fut)),
        Runs::Task => joined(rt.spawn(fut)),
        // `Inline` returned above; `Blocking` and any later kind run on the pool.
        _ => {
            let handle = rt.handle().clone();
            joined(rt.spawn_blocking(move || handle.block_on(fut)))
        }
    }
}

/// Awaits a task; a panic in it comes back as an `internal` error.
fn joined<T: Send + 'static>(task: tokio::task::JoinHandle<PluginResult<T>>) -> PluginFuture<T> {
    guard(async move {
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(PluginError::from_panic(e.into_panic().as_ref())),
            Err(e) => Err(PluginError::internal(format!("task cancelled: {e}"))),
        }
    })
}

/// A future that enters the plugin's runtime for every poll and for its
/// drop: client libraries spawn tasks (returning a connection to a pool,
/// closing one) from both, and tokio needs a runtime context for that.
struct InRuntime<F> {
    handle: tokio::runtime::Handle,
    // Boxed, so `InRuntime` is `Unpin` and needs no pin projection; an
    // `Option` so `Drop` can drop it while the runtime is entered.
    fut: Option<Pin<Box<F>>>,
}

impl<F> InRuntime<F> {
    fn new(handle: tokio::runtime::Handle, fut: F) -> Self {
        InRuntime {
            handle,
            fut: Some(Box::pin(fut)),
        }
    }
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.handle.enter();
        match this.fut.as_mut() {
            Some(fut) => fut.as_mut().poll(cx),
            // Only `Drop` takes the future out.
            None => Poll::Pending,
        }
    }
}

impl<F> Drop for InRuntime<F> {
    fn drop(&mut self) {
        let _entered = self.handle.enter();
        drop(self.fut.take());
    }
}

#[cfg(test)]
mod tests {
    use super::{Runs, blocking, is_inline, place};
    use crate::PluginError;

    #[test]
    fn is_inline_is_set_only_while_an_inline_call_is_polled() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let seen = |runs| {
            rt.block_on(place(runs, async {
                let first = is_inline();
                tokio::task::yield_now().await; // a second poll
                Ok((first, is_inline()))
            }))
            .into_result()
            .unwrap()
        };
        assert_eq!(seen(Runs::Inline), (true, true));
        assert!(!is_inline(), "cleared once the poll returned");
        assert_eq!(seen(Runs::Blocking), (false, false));
        assert_eq!(seen(Runs::Async), (false, false));
        // Work an inline call hands to the pool does not see itself inline.
        let handed = rt
            .block_on(place(Runs::Inline, async {
                blocking(async { Ok(is_inline()) }).await
            }))
            .into_result()
            .unwrap();
        assert!(!handed);
    }

    #[test]
    fn blocking_runs_on_the_plugin_pool_and_raises_its_panic_in_the_caller() {
        let caller = std::thread::current().id();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ran_on = rt
            .block_on(blocking(async { Ok(std::thread::current().id()) }))
            .unwrap();
        assert_ne!(ran_on, caller);
        let err = rt
            .block_on(blocking(async {
                Err::<(), _>(PluginError::invalid_input("passed through"))
            }))
            .unwrap_err();
        assert_eq!(err.message(), "passed through");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(blocking(async {
                if true {
                    panic!("boom in the pool");
                }
                Ok(())
            }))
        }))
        .unwrap_err();
        assert_eq!(panicked.downcast_ref::<&str>(), Some(&"boom in the pool"));
    }
}
