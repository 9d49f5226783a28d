//! A tokio runtime owned by a plugin (feature `tokio`).
//!
//! tokio's runtime context is a thread-local of each *copy* of tokio, and
//! every plugin `.so` links its own copy, so the host's runtime is invisible
//! to a plugin: one whose client library needs tokio (sqlx, reqwest,
//! object_store, tonic) owns a runtime. [`PluginRuntime`] is that runtime,
//! started on first use, with the two ways of running a contract call on
//! it:
//!
//! - [`PluginRuntime::in_place`] polls the call's future on the host's
//!   thread *inside* the plugin's runtime context (entered for every poll
//!   and for the drop). Sockets and timers register with the plugin's
//!   runtime, whose worker threads drive the I/O and wake the host's task
//!   directly: no task hop, which matters for sub-millisecond calls.
//! - [`PluginRuntime::spawn`] runs it as a task on the plugin's runtime and
//!   returns a future awaiting the join handle: one more thread hop, but the
//!   work makes progress even while the host does not poll.
//!
//! Both are guarded ([`crate::ffi::guard`]): a panic comes back as an
//! `internal` error, and dropping the returned future cancels the work.
//!
//! ```ignore
//! static RUNTIME: PluginRuntime = PluginRuntime::new("strata-mydb", 2);
//!
//! fn query(&self, q: Statement) -> PluginFuture<QueryResult> {
//!     let pool = self.pool.clone();
//!     RUNTIME.in_place(async move { run(&pool, q).await })
//! }
//! ```

use std::{
    future::Future,
    mem::ManuallyDrop,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
};

use crate::{
    PluginError, PluginResult,
    ffi::{guard, ready},
    sql::PluginFuture,
};

/// A plugin's own multi-threaded tokio runtime, started on first use.
pub struct PluginRuntime {
    thread_name: &'static str,
    worker_threads: usize,
    on_start: Option<fn()>,
    rt: OnceLock<Result<tokio::runtime::Runtime, String>>,
}

impl PluginRuntime {
    /// A runtime whose `worker_threads` threads are named `thread_name`.
    pub const fn new(thread_name: &'static str, worker_threads: usize) -> PluginRuntime {
        PluginRuntime {
            thread_name,
            worker_threads,
            on_start: None,
            rt: OnceLock::new(),
        }
    }

    /// Runs `f` once, before the runtime starts (e.g. installing the
    /// plugin's rustls crypto provider).
    pub const fn on_start(mut self, f: fn()) -> PluginRuntime {
        self.on_start = Some(f);
        self
    }

    /// The runtime, started now if it was not yet; an error names why it
    /// could not start (it is not retried).
    pub fn get(&self) -> PluginResult<&tokio::runtime::Runtime> {
        self.rt
            .get_or_init(|| {
                if let Some(f) = self.on_start {
                    f();
                }
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(self.worker_threads.max(1))
                    .thread_name(self.thread_name)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                PluginError::internal(format!(
                    "cannot start the plugin's runtime ({}): {e}",
                    self.thread_name
                ))
            })
    }

    /// Runs `fut` for the host, polled on the caller's thread inside this
    /// runtime's context (see the module docs).
    pub fn in_place<T: Send + 'static>(
        &self,
        fut: impl Future<Output = PluginResult<T>> + Send + 'static,
    ) -> PluginFuture<T> {
        match self.get() {
            Ok(rt) => guard(InRuntime::new(rt.handle().clone(), fut)),
            Err(e) => ready(Err(e)),
        }
    }

    /// Runs `fut` as a task on this runtime; the returned future awaits it
    /// (a panic in the task comes back as an `internal` error).
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = PluginResult<T>> + Send + 'static,
    ) -> PluginFuture<T> {
        match self.get() {
            Ok(rt) => {
                let task = AbortOnDrop(rt.spawn(fut));
                guard(async move {
                    match task.await {
                        Ok(r) => r,
                        Err(e) if e.is_panic() => {
                            Err(PluginError::from_panic(e.into_panic().as_ref()))
                        }
                        Err(e) => Err(PluginError::internal(format!("task cancelled: {e}"))),
                    }
                })
            }
            Err(e) => ready(Err(e)),
        }
    }

    /// Fire and forget on this runtime (e.g. from a `Drop` impl); nothing
    /// happens when the runtime cannot start.
    pub fn detach(&self, fut: impl Future<Output = ()> + Send + 'static) {
        if let Ok(rt) = self.get() {
            rt.spawn(fut);
        }
    }
}

/// A join handle that aborts its task when dropped (the host dropped the
/// future: the work is cancelled, as with [`PluginRuntime::in_place`]).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A future that enters the plugin's runtime for every poll and for its
/// drop: client libraries spawn tasks (returning a connection to a pool,
/// closing one) from both, and tokio needs a runtime context for that.
struct InRuntime<F> {
    handle: tokio::runtime::Handle,
    fut: ManuallyDrop<F>,
}

impl<F> InRuntime<F> {
    fn new(handle: tokio::runtime::Handle, fut: F) -> Self {
        InRuntime {
            handle,
            fut: ManuallyDrop::new(fut),
        }
    }
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of
        // `self` (only dropped in place, in `Drop`), and `InRuntime` has no
        // `Unpin` impl that would let it move.
        let this = unsafe { self.get_unchecked_mut() };
        let _entered = this.handle.enter();
        unsafe { Pin::new_unchecked(&mut *this.fut) }.poll(cx)
    }
}

impl<F> Drop for InRuntime<F> {
    fn drop(&mut self) {
        let _entered = self.handle.enter();
        // SAFETY: dropped once, here, in place (see `poll`).
        unsafe { ManuallyDrop::drop(&mut self.fut) };
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Duration,
    };

    use super::*;

    static RT: PluginRuntime = PluginRuntime::new("strata-test-rt", 1);

    /// The host side: a runtime of its own awaiting the FFI future.
    fn host<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn in_place_runs_inside_the_plugin_runtime_on_the_callers_thread() {
        let caller = std::thread::current().id();
        let (thread, ok) = host(RT.in_place(async move {
            // Timers register with the plugin's runtime (entered on poll).
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok((
                std::thread::current().id(),
                tokio::runtime::Handle::try_current().is_ok(),
            ))
        }))
        .unwrap();
        assert_eq!(thread, caller);
        assert!(ok);
    }

    #[test]
    fn spawn_runs_on_the_plugin_runtime_threads() {
        let name = host(RT.spawn(async { Ok(std::thread::current().name().map(str::to_string)) }))
            .unwrap();
        assert_eq!(name.as_deref(), Some("strata-test-rt"));
    }

    #[test]
    fn panics_come_back_as_internal_errors() {
        for fut in [
            RT.in_place::<()>(async { panic!("boom in place") }),
            RT.spawn::<()>(async { panic!("boom in a task") }),
        ] {
            let e = host(fut).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Internal);
            assert!(e.to_string().contains("boom in"), "{e}");
        }
    }

    #[test]
    fn dropping_a_spawned_future_aborts_its_task() {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let fut = RT.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.store(true, Ordering::SeqCst);
            Ok(())
        });
        drop(fut);
        std::thread::sleep(Duration::from_millis(400));
        assert!(!ran.load(Ordering::SeqCst), "the task ran to completion");
    }
}
