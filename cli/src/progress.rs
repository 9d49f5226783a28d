//! Progress bars on stderr: the host's [`Progress`] drawn with indicatif.
//! Bars are drawn only when stderr is a terminal and cleared when done, so
//! what a command prints on stdout is the same with or without them.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_host::progress::{ItemProgress, Phase, Progress, Step};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Migrations, exports and imports: one bar per table or collection.
pub(crate) struct ItemBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    style: ProgressStyle,
}

impl ItemBars {
    pub(crate) fn new() -> ItemBars {
        ItemBars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
            style: ProgressStyle::with_template(
                "{prefix:>28} [{bar:30}] {pos}/{len} rows {per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        }
    }
}

impl Progress for ItemBars {
    fn item(&self, p: &ItemProgress) {
        let key = format!("{}:{}", p.kind, p.name);
        let mut bars = lock(&self.bars);
        let bar = bars.entry(key).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new(p.total.unwrap_or(0)));
            b.set_style(self.style.clone());
            b.set_prefix(format!("{} {}", p.kind, p.name));
            b
        });
        match p.phase {
            Phase::Start => bar.set_position(0),
            Phase::Copy => bar.set_position(p.done),
            Phase::Verify => bar.set_message("verifying"),
            Phase::Done => {
                bar.set_position(p.done);
                bar.finish_with_message("done");
            }
        }
    }
}

/// Backups, restores and verification: a byte bar per step, a spinner for
/// the snapshot showing the table or collection being read.
#[derive(Default)]
pub(crate) struct StepBars {
    steps: Mutex<HashMap<Step, ProgressBar>>,
}

impl Progress for StepBars {
    fn start(&self, step: Step, total: Option<u64>) {
        let what = step.label();
        let bar = match total {
            Some(len) => {
                let bar = ProgressBar::new(len);
                if let Ok(style) = ProgressStyle::with_template(&format!(
                    "{what} [{{bar:30}}] {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, eta {{eta}})"
                )) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template(&format!(
                    "{{spinner}} {what} {{msg}} ({{elapsed}})"
                )) {
                    bar.set_style(style);
                }
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            }
        };
        if let Some(old) = lock(&self.steps).insert(step, bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, step: Step, bytes: u64) {
        if let Some(bar) = lock(&self.steps).get(&step) {
            bar.inc(bytes);
        }
    }

    fn finish(&self, step: Step) {
        if let Some(bar) = lock(&self.steps).remove(&step) {
            bar.finish_and_clear();
        }
    }

    fn item(&self, p: &ItemProgress) {
        if let Some(bar) = lock(&self.steps).get(&Step::Snapshot) {
            bar.set_message(format!("{} `{}`: {} rows", p.kind, p.name, p.done));
        }
    }
}
