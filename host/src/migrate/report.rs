//! What a migration, export or import did, per table and collection.

use std::time::Duration;

use crate::progress::ItemKind;

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
    pub(crate) fn new(kind: ItemKind, name: &str) -> ItemReport {
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
