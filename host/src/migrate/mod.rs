//! The migration engine: copy SQL tables and vector collections from one
//! loaded backend to another — streaming, resumable, verified.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use strata_host::{Strata, migrate::{MigrateOptions, migrate}};
//! let strata = Strata::load("plugins.toml")?;
//! let (from, to) = (strata.backend("local").await?, strata.backend("pg").await?);
//! let report = migrate(&from, &to, &MigrateOptions::new().batch_size(2000).resume(true)).await?;
//! for t in &report.tables {
//!     println!("{}: {} read, {} written", t.name, t.read, t.written);
//! }
//! # Ok(()) }
//! ```
//!
//! # How a table moves
//!
//! 1. Its shape is read from the source catalogue ([`schema`]) and the
//!    target table is created if missing, with the same primary key and NOT
//!    NULL columns, types translated per dialect. Secondary indexes are
//!    created after the copy (cheaper than maintaining them row by row).
//! 2. Rows are read in primary-key order by **keyset paging** — `WHERE
//!    (pk…) > (last…) ORDER BY pk… LIMIT n` — never `OFFSET`, so every page
//!    costs the same and memory holds at most two pages (the next page is
//!    read while the current one is written).
//! 3. Each page is written in **one target transaction** as multi-row
//!    `INSERT … ON CONFLICT (pk) DO UPDATE … WHERE <row differs>` statements
//!    (as many rows per statement as fit under the backend's parameter
//!    limit), together with the table's checkpoint row in
//!    `strata_migrations`. The upsert makes any page safe to write twice;
//!    the `WHERE` makes a row that is already identical cost no write, so a
//!    migration re-run over an up-to-date target reports 0 rows written.
//! 4. The checkpoint (source name, item, last key, rows, status) is what
//!    `resume` continues from: a `running` table restarts after its last
//!    committed key, a `done` table is skipped. Because the checkpoint
//!    commits with its page, a crash loses at most the page in flight.
//! 5. Verification re-reads both sides and compares row counts and an
//!    order-independent checksum of every row's normalised values
//!    ([`values`] documents what is compared); a mismatch fails the
//!    migration naming the table.
//!
//! Collections move through the vector contract (scan pages → upsert), see
//! [`collection`]. Export and import to JSON Lines are in [`jsonl`].
//!
//! Why the engine lives in the host and reads catalogues per dialect: the
//! SQL contract carries statements, not schemas, and the two catalogue
//! readers are small; a plugin of a new dialect is migrated once its dialect
//! has a reader in [`schema`].

pub mod collection;
pub mod jsonl;
pub mod schema;
pub mod table;
pub mod values;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{Error, loader::Backend};

pub use schema::{Kind, TableSchema};

/// Everything that can make a migration fail, naming what was wrong.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A backend cannot take part (opening it, a missing contract, the same backend twice).
    #[error("backend `{backend}`: {message}")]
    Backend {
        /// The backend name.
        backend: String,
        /// What is wrong.
        message: String,
    },
    /// A table cannot be migrated as it is (no primary key, an unsupported column type…).
    #[error("table `{table}` on `{backend}`: {message}")]
    Schema {
        /// The table.
        table: String,
        /// The backend it was read from.
        backend: String,
        /// What is wrong.
        message: String,
    },
    /// A statement on a table failed.
    #[error("table `{table}` on `{backend}`: {source}")]
    Table {
        /// The table.
        table: String,
        /// The backend the statement ran on.
        backend: String,
        /// The backend's error.
        #[source]
        source: Box<Error>,
    },
    /// A value cannot be written to its target column.
    #[error("table `{table}`, column `{column}`: {message}")]
    Value {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Why.
        message: String,
    },
    /// A vector collection operation failed.
    #[error("collection `{collection}` on `{backend}`: {source}")]
    Collection {
        /// The collection.
        collection: String,
        /// The backend.
        backend: String,
        /// The backend's error.
        #[source]
        source: Box<Error>,
    },
    /// Source and target differ after the copy.
    #[error("verification failed for {kind} `{name}`: {detail}")]
    Verify {
        /// `table` or `collection`.
        kind: ItemKind,
        /// Its name.
        name: String,
        /// Counts and checksums of both sides.
        detail: String,
    },
    /// An export or import file is unreadable or malformed.
    #[error("{file}: {message}")]
    File {
        /// The file (and line, when known).
        file: String,
        /// What is wrong.
        message: String,
    },
}

impl MigrateError {
    /// The table or collection the error is about, when it is about one.
    pub fn item(&self) -> Option<&str> {
        match self {
            MigrateError::Schema { table, .. }
            | MigrateError::Table { table, .. }
            | MigrateError::Value { table, .. } => Some(table),
            MigrateError::Collection { collection, .. } => Some(collection),
            MigrateError::Verify { name, .. } => Some(name),
            _ => None,
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

/// What a migration is doing right now, for progress displays.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Progress {
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

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

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
    /// Called as items progress.
    pub progress: Option<ProgressFn>,
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
            progress: None,
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
    /// A progress callback.
    pub fn progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    pub(crate) fn report(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }
}

/// The outcome of verifying one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Not asked for (`verify` off, or a dry run).
    NotRun,
    /// Counts and checksums equal on both sides.
    Passed {
        /// Rows on each side.
        rows: u64,
        /// The shared checksum (hex).
        checksum: String,
    },
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verification::NotRun => f.write_str("not run"),
            Verification::Passed { rows, checksum } => {
                write!(f, "ok: {rows} rows, checksum {}", &checksum[..12])
            }
        }
    }
}

/// What happened to one table or collection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ItemReport {
    /// Table or collection.
    pub kind: ItemKind,
    /// Its name.
    pub name: String,
    /// Rows read from the source by this run (in a dry run: rows that would move).
    pub read: u64,
    /// Rows inserted or changed on the target.
    pub written: u64,
    /// Rows read but already identical on the target.
    pub skipped: u64,
    /// Rows an earlier run had already copied (resume).
    pub resumed: u64,
    /// Already finished by an earlier run and skipped (resume).
    pub already_done: bool,
    /// Time spent on it, verification included.
    pub duration: Duration,
    /// The verification outcome.
    pub verification: Verification,
}

impl ItemReport {
    fn new(kind: ItemKind, name: &str) -> ItemReport {
        ItemReport {
            kind,
            name: name.to_string(),
            read: 0,
            written: 0,
            skipped: 0,
            resumed: 0,
            already_done: false,
            duration: Duration::ZERO,
            verification: Verification::NotRun,
        }
    }
}

/// The result of a migration.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// Per table, in the order copied.
    pub tables: Vec<ItemReport>,
    /// Per collection.
    pub collections: Vec<ItemReport>,
    /// Things not copied (views of unsupported indexes, virtual tables…).
    pub warnings: Vec<String>,
    /// It was a dry run.
    pub dry_run: bool,
    /// Total time.
    pub duration: Duration,
}

impl Report {
    /// Every item, tables first.
    pub fn items(&self) -> impl Iterator<Item = &ItemReport> {
        self.tables.iter().chain(&self.collections)
    }

    /// Rows written over all items.
    pub fn written(&self) -> u64 {
        self.items().map(|i| i.written).sum()
    }
}

/// Copies tables and collections from `from` to `to` (see the module docs).
pub async fn migrate(
    from: &Backend,
    to: &Backend,
    options: &MigrateOptions,
) -> Result<Report, MigrateError> {
    let started = Instant::now();
    if from.name() == to.name() {
        return Err(MigrateError::Backend {
            backend: from.name().to_string(),
            message: "source and target are the same backend".into(),
        });
    }
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let source_id = options
        .source_id
        .clone()
        .unwrap_or_else(|| from.name().to_string());

    // Tables: every user table unless a list is given (an empty list = none).
    let wants_tables = options.tables.as_ref().is_none_or(|t| !t.is_empty());
    if wants_tables && (from.sql().is_ok() || options.tables.is_some()) {
        let src = from.sql().map_err(|e| backend_err(from, e))?;
        let names = match &options.tables {
            Some(list) => list.clone(),
            None => schema::list_tables(&src, &mut report.warnings).await?,
        };
        if !names.is_empty() {
            let dst = to.sql().map_err(|e| MigrateError::Backend {
                backend: to.name().to_string(),
                message: format!(
                    "the source has {} table(s) ({}) but the target cannot store them: {e} (pass an empty table list to skip them)",
                    names.len(),
                    names.join(", ")
                ),
            })?;
            let ctx = table::Context::new(&src, &dst, &source_id, options).await?;
            for name in &names {
                let item = table::migrate_table(&ctx, name, &mut report.warnings).await?;
                report.tables.push(item);
            }
        }
    }

    // Collections through the vector contract.
    let wants_collections = options.collections.as_ref().is_none_or(|c| !c.is_empty());
    if wants_collections && let Ok(src) = from.vectors() {
        let names = match &options.collections {
            Some(list) => list.clone(),
            None => src
                .list()
                .await
                .map_err(|e| backend_err(from, e))?
                .into_iter()
                .map(|c| c.name)
                .collect(),
        };
        if !names.is_empty() {
            let dst = to.vectors().map_err(|e| MigrateError::Backend {
                backend: to.name().to_string(),
                message: format!(
                    "the source has {} vector collection(s) ({}) but the target cannot store them: {e} (pass an empty collection list to skip them)",
                    names.len(),
                    names.join(", ")
                ),
            })?;
            let checkpoints = to.sql().ok();
            for name in &names {
                let item = collection::migrate_collection(
                    &src,
                    &dst,
                    checkpoints.as_ref(),
                    &source_id,
                    name,
                    options,
                )
                .await?;
                report.collections.push(item);
            }
        }
    } else if let Some(list) = options.collections.as_ref().filter(|l| !l.is_empty()) {
        return Err(MigrateError::Backend {
            backend: from.name().to_string(),
            message: format!(
                "collections {} were asked for, but the backend has no vector contract",
                list.join(", ")
            ),
        });
    }
    report.duration = started.elapsed();
    Ok(report)
}

fn backend_err(b: &Backend, e: Error) -> MigrateError {
    MigrateError::Backend {
        backend: b.name().to_string(),
        message: e.to_string(),
    }
}

/// The checkpoint table, created in the target on first use.
pub const CHECKPOINTS: &str = "strata_migrations";

pub(crate) const CHECKPOINT_DDL: &str = "CREATE TABLE IF NOT EXISTS strata_migrations (\
     source TEXT NOT NULL, item TEXT NOT NULL, last_key TEXT, rows_copied BIGINT NOT NULL, \
     status TEXT NOT NULL, updated_at TEXT, PRIMARY KEY (source, item))";

pub(crate) const CHECKPOINT_UPSERT: &str = "INSERT INTO strata_migrations \
     (source, item, last_key, rows_copied, status, updated_at) \
     VALUES (?, ?, ?, ?, ?, CAST(CURRENT_TIMESTAMP AS TEXT)) \
     ON CONFLICT (source, item) DO UPDATE SET last_key = excluded.last_key, \
     rows_copied = excluded.rows_copied, status = excluded.status, updated_at = excluded.updated_at";

/// A stored checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checkpoint {
    pub(crate) last_key: Option<String>,
    pub(crate) rows: u64,
    pub(crate) done: bool,
}

pub(crate) async fn load_checkpoint(
    sql: &crate::Sql,
    source: &str,
    item: &str,
) -> crate::Result<Option<Checkpoint>> {
    let row = sql
        .get(
            "SELECT last_key, rows_copied, status FROM strata_migrations WHERE source = ? AND item = ?",
            [source, item],
        )
        .await?;
    Ok(row.map(|r| Checkpoint {
        last_key: r.get::<Option<String>>("last_key").ok().flatten(),
        rows: r.get::<i64>("rows_copied").unwrap_or(0).max(0) as u64,
        done: r.get::<String>("status").is_ok_and(|s| s == "done"),
    }))
}

/// The row count and order-independent checksum of `table` on `sql`, as
/// verification computes them (columns normalised by the table's own
/// kinds; see [`values`]). Two sides of a migration give equal results.
pub async fn table_checksum(
    sql: &crate::Sql,
    table: &str,
) -> Result<values::Checksum, MigrateError> {
    let t = schema::read_table(sql, table, true, &mut Vec::new()).await?;
    table::checksum(sql, &t, 2000)
        .await
        .map(|(sum, _)| sum)
        .map_err(|source| MigrateError::Table {
            table: table.to_string(),
            backend: sql.backend().to_string(),
            source: Box::new(source),
        })
}

/// The record count and checksum of a vector collection, as verification computes them.
pub async fn collection_checksum(
    v: &crate::Vectors,
    name: &str,
) -> Result<values::Checksum, MigrateError> {
    collection::collection_checksum(v, name, 1000)
        .await
        .map_err(|source| MigrateError::Collection {
            collection: name.to_string(),
            backend: v.backend().to_string(),
            source: Box::new(source),
        })
}
