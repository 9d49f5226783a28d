//! Progress of long operations, for whoever shows it.
//!
//! The engines — [`crate::migrate`] (migrate, export, import) and
//! [`crate::backup`] (backup, restore, verify) — tell a [`Progress`] what
//! they are doing. It is passed in with their options
//! ([`MigrateOptions::progress`](crate::migrate::MigrateOptions::progress),
//! [`BackupManager::with_progress`](crate::backup::BackupManager::with_progress));
//! without one they report to [`NoProgress`]. Every method has a no-op
//! default, so an implementation overrides only what it shows: the `strata`
//! CLI draws progress bars, an application may log or feed its own UI.
//!
//! Two kinds of report:
//!
//! - **Steps** ([`Step`]): a phase of a backup or restore, measured in bytes
//!   (upload, download, restore, verify) or not measured (the snapshot).
//!   [`Progress::start`] comes first, then any number of
//!   [`Progress::advance`], then [`Progress::finish`] — always, also when the
//!   step fails.
//! - **Items** ([`ItemProgress`]): a table or collection of a migration,
//!   export, import or logical backup, moving through its [`Phase`]s.
//!
//! Reports may come from any thread (a backup compresses on a thread of its
//! own), hence `Send + Sync`; they come once per page or chunk, so an
//! implementation should return quickly.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use strata_host::progress::{Progress, Step};
//!
//! /// Counts the bytes uploaded.
//! #[derive(Default)]
//! struct Uploaded(AtomicU64);
//!
//! impl Progress for Uploaded {
//!     fn advance(&self, step: Step, bytes: u64) {
//!         if step == Step::Upload {
//!             self.0.fetch_add(bytes, Ordering::Relaxed);
//!         }
//!     }
//! }
//! ```

use std::sync::Arc;

/// Receives progress reports; every method defaults to doing nothing.
pub trait Progress: Send + Sync {
    /// `step` begins; `total` is its size in bytes when known (`None` for
    /// the snapshot step, which is not measured).
    fn start(&self, step: Step, total: Option<u64>) {
        let _ = (step, total);
    }

    /// `bytes` more of `step` are done.
    fn advance(&self, step: Step, bytes: u64) {
        let _ = (step, bytes);
    }

    /// `step` ended, done or failed.
    fn finish(&self, step: Step) {
        let _ = step;
    }

    /// A table or collection moved on.
    fn item(&self, item: &ItemProgress) {
        let _ = item;
    }
}

/// Reports nothing: what the engines use unless given a [`Progress`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

impl<P: Progress + ?Sized> Progress for Arc<P> {
    fn start(&self, step: Step, total: Option<u64>) {
        (**self).start(step, total);
    }
    fn advance(&self, step: Step, bytes: u64) {
        (**self).advance(step, bytes);
    }
    fn finish(&self, step: Step) {
        (**self).finish(step);
    }
    fn item(&self, item: &ItemProgress) {
        (**self).item(item);
    }
}

/// A phase of a backup or restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Taking the snapshot of a backup (`VACUUM INTO`, or a logical export
    /// whose tables and collections are reported as items). Not measured.
    Snapshot,
    /// Compressing, hashing and uploading the snapshot (bytes of the snapshot).
    Upload,
    /// Downloading, checking and decompressing a backup (bytes of the object).
    Download,
    /// Loading a logical backup into a backend (bytes of the snapshot read).
    Restore,
    /// Reading stored backups back to check their SHA-256 (bytes of the objects).
    Verify,
}

impl Step {
    /// What the step is doing, as a progress display would label it:
    /// `snapshot`, `uploading`, `downloading`, `restoring` or `verifying`.
    pub fn label(self) -> &'static str {
        match self {
            Step::Snapshot => "snapshot",
            Step::Upload => "uploading",
            Step::Download => "downloading",
            Step::Restore => "restoring",
            Step::Verify => "verifying",
        }
    }
}

/// A table or a vector collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// A SQL table.
    Table,
    /// A vector collection.
    Collection,
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ItemKind::Table => "table",
            ItemKind::Collection => "collection",
        })
    }
}

/// What is happening to one table or collection right now.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ItemProgress {
    /// Table or collection.
    pub kind: ItemKind,
    /// Its name.
    pub name: String,
    /// `start`, `copy`, `verify` or `done`.
    pub phase: Phase,
    /// Rows (records) handled so far in this phase, including those a resumed run skipped.
    pub done: u64,
    /// Rows in the source, when known.
    pub total: Option<u64>,
}

impl ItemProgress {
    /// A report of `kind` `name` in `phase` with `done` rows of `total`.
    pub fn new(kind: ItemKind, name: &str, phase: Phase, done: u64, total: Option<u64>) -> Self {
        ItemProgress {
            kind,
            name: name.to_string(),
            phase,
            done,
            total,
        }
    }
}

/// The phase of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Counted, about to copy.
    Start,
    /// Copying.
    Copy,
    /// Verifying.
    Verify,
    /// Finished.
    Done,
}

/// Reports `step` started on creation and finished on drop, so the finish
/// is reported on every path out of the step, errors included.
pub(crate) struct StepGuard<'a> {
    progress: &'a dyn Progress,
    step: Step,
}

impl<'a> StepGuard<'a> {
    pub(crate) fn start(progress: &'a dyn Progress, step: Step, total: Option<u64>) -> Self {
        progress.start(step, total);
        StepGuard { progress, step }
    }
}

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        self.progress.finish(self.step);
    }
}

/// A reader that reports the bytes read through it as `step`.
pub(crate) struct ProgressRead<R> {
    pub(crate) inner: R,
    pub(crate) progress: Arc<dyn Progress>,
    pub(crate) step: Step,
}

impl<R: std::io::Read> std::io::Read for ProgressRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(self.step, n as u64);
        Ok(n)
    }
}
