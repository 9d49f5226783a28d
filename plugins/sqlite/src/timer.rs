//! Deadlines for the plugin's async waits.
//!
//! The plugin's futures are polled by the host's executor, whose timer the
//! plugin cannot reach: the tokio inside this library is its own copy. A
//! deadline is therefore kept by a runtime of the plugin's own, plugin-api's
//! [`PluginRuntime`] with one thread that only drives timers (started on
//! first use, alive as long as the process, like the library itself). A
//! [`timeout`] created under that runtime's context can be polled from any
//! thread; its expiry wakes the host task that awaits it.

use std::{future::Future, time::Duration};

use strata_plugin_api::runtime::PluginRuntime;

static TIMERS: PluginRuntime = PluginRuntime::new("strata-sqlite-timer", 1);

/// `fut`'s output, or `Err(())` once `limit` has passed without it. Should
/// the timer thread fail to start, the wait is unbounded, as it was before
/// deadlines existed.
pub(crate) async fn timeout<F: Future>(limit: Duration, fut: F) -> Result<F::Output, ()> {
    let Ok(rt) = TIMERS.get() else {
        return Ok(fut.await);
    };
    let bounded = {
        let _entered = rt.enter();
        tokio::time::timeout(limit, fut)
    };
    bounded.await.map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn expires_and_passes_through() {
        // No runtime here: a plain executor polls the futures.
        let start = Instant::now();
        let r = block_on(timeout(
            Duration::from_millis(50),
            std::future::pending::<()>(),
        ));
        assert!(r.is_err());
        assert!(start.elapsed() >= Duration::from_millis(50));
        let r = block_on(timeout(Duration::from_secs(5), async { 7 }));
        assert_eq!(r, Ok(7));
    }

    /// A minimal executor: parks the thread until woken.
    fn block_on<F: Future>(fut: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}
