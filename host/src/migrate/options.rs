//! [`MigrateOptions`]: what to copy and how, shared by migrations, exports,
//! imports and logical backups.

use std::sync::Arc;

use crate::progress::{ItemKind, ItemProgress, NoProgress, Phase, Progress};

/// How to migrate. Build with [`MigrateOptions::new`] and the setters.
#[derive(Clone)]
#[non_exhaustive]
pub struct MigrateOptions {
    /// Tables to copy (`None` = every user table of the source).
    pub tables: Option<Vec<String>>,
    /// Collections to copy (`None` = every collection, when both backends have the vector contract).
    pub collections: Option<Vec<String>>,
    /// Rows per page and per target transaction (default 2,000).
    pub batch_size: usize,
    /// Count what would move; write nothing (no tables, no checkpoints).
    pub dry_run: bool,
    /// Continue from the checkpoints of an earlier run (skip finished items).
    pub resume: bool,
    /// Verify counts and checksums after copying (default on).
    pub verify: bool,
    /// Treat SQLite BLOB columns named like `embedding`/`vector` holding
    /// same-length blobs as `f32` vectors (default on).
    pub detect_vectors: bool,
    /// Name of the source in checkpoints (default: the source backend's name).
    pub source_id: Option<String>,
    /// Told as items progress (default: [`NoProgress`]).
    pub progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for MigrateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateOptions")
            .field("tables", &self.tables)
            .field("collections", &self.collections)
            .field("batch_size", &self.batch_size)
            .field("dry_run", &self.dry_run)
            .field("resume", &self.resume)
            .field("verify", &self.verify)
            .field("detect_vectors", &self.detect_vectors)
            .field("source_id", &self.source_id)
            .finish_non_exhaustive()
    }
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            tables: None,
            collections: None,
            batch_size: 2000,
            dry_run: false,
            resume: false,
            verify: true,
            detect_vectors: true,
            source_id: None,
            progress: Arc::new(NoProgress),
        }
    }
}

impl MigrateOptions {
    /// The defaults: everything, batches of 2,000, verified.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only these tables.
    pub fn tables<S: Into<String>>(mut self, tables: impl IntoIterator<Item = S>) -> Self {
        self.tables = Some(tables.into_iter().map(Into::into).collect());
        self
    }
    /// Only these collections.
    pub fn collections<S: Into<String>>(mut self, c: impl IntoIterator<Item = S>) -> Self {
        self.collections = Some(c.into_iter().map(Into::into).collect());
        self
    }
    /// Rows per page and transaction (at least 1).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
    /// Count only.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }
    /// Continue from checkpoints.
    pub fn resume(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }
    /// Verify after copying.
    pub fn verify(mut self, yes: bool) -> Self {
        self.verify = yes;
        self
    }
    /// Detect `f32` embedding blobs on SQLite.
    pub fn detect_vectors(mut self, yes: bool) -> Self {
        self.detect_vectors = yes;
        self
    }
    /// The checkpoint name of the source.
    pub fn source_id(mut self, id: impl Into<String>) -> Self {
        self.source_id = Some(id.into());
        self
    }
    /// Reports item progress to `progress` (an `Arc<dyn Progress>` is one too).
    pub fn progress(mut self, progress: impl Progress + 'static) -> Self {
        self.progress = Arc::new(progress);
        self
    }

    pub(crate) fn report(&self, p: ItemProgress) {
        self.progress.item(&p);
    }

    /// Reports `done` rows of `kind` `name` copied (total unknown).
    pub(crate) fn copied(&self, kind: ItemKind, name: &str, done: u64) {
        self.report(ItemProgress::new(kind, name, Phase::Copy, done, None));
    }
}
