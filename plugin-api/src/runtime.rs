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
//!   work makes progress even while the host does not poll, and it **runs
//!   to completion even if the host drops the future** — what a call that
//!   must not stop half-way needs (completing or aborting a multipart
//!   upload, handing back a handle whose `Drop` cleans up).
//!
//! Both are guarded ([`crate::ffi::guard`]): a panic comes back as an
//! `internal` error. Dropping an `in_place` future cancels the work.
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
    /// (a panic in the task comes back as an `internal` error). Dropping the
    /// returned future does not stop the task.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = PluginResult<T>> + Send + 'static,
    ) -> PluginFuture<T> {
        match self.get() {
            Ok(rt) => {
                let task = rt.spawn(fut);
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

    /// The host side: a minimal executor that is *not* tokio (so a tokio
    /// context inside the future can only come from the plugin's runtime).
    fn host<T>(f: impl Future<Output = T>) -> T {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return v,
                Poll::Pending => std::thread::park(),
            }
        }
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
    fn a_spawned_task_finishes_even_when_its_future_is_dropped() {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let fut = RT.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            r.store(true, Ordering::SeqCst);
            Ok(())
        });
        drop(fut);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ran.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "the task was stopped");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn dropping_an_in_place_future_cancels_its_work() {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let mut fut = RT.in_place(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            r.store(true, Ordering::SeqCst);
            Ok(())
        });
        // Polled once (the sleep is registered), then dropped.
        let waker = std::task::Waker::noop();
        assert!(
            Pin::new(&mut fut)
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(fut);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !ran.load(Ordering::SeqCst),
            "the work went on after the drop"
        );
    }
}
