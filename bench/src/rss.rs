//! Resident memory of the bench process: now, and its peak over a phase.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// The process's resident set, in KiB (0 where `/proc` has no answer).
pub(crate) fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak RSS above the starting RSS while it runs (sampled every 5 ms).
pub(crate) struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    start: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub(crate) fn start() -> Sampler {
        let start = rss_kb();
        let peak = Arc::new(AtomicU64::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kb(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Sampler {
            peak,
            stop,
            start,
            thread: Some(thread),
        }
    }

    /// Peak growth in MiB.
    pub(crate) fn finish(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.fetch_max(rss_kb(), Ordering::Relaxed);
        (self.peak.load(Ordering::Relaxed).saturating_sub(self.start)) as f64 / 1024.0
    }
}

impl Sampler {
    /// RSS now above the RSS at start, in MiB.
    pub(crate) fn growth_now(&self) -> f64 {
        rss_kb().saturating_sub(self.start) as f64 / 1024.0
    }
}
