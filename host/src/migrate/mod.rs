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
//! 5. Verification compares row counts and an order-independent checksum
//!    of every row's normalised values ([`values`] documents what is
//!    compared); a mismatch fails the migration naming the table and the
//!    columns that differ. The source's checksum is taken from the rows as
//!    the copy reads them when this run read the whole table; a table
//!    resumed or already done is read again (concurrently with the
//!    target). The target is always read again, after the copy — a
//!    pgvector column in its binary form (`vector_send`), which costs no
//!    float printing or parsing. Verification runs once every table and
//!    collection is copied, finished ones of an earlier run included, so a
//!    resumed run spends its time copying what is left first (a run
//!    interrupted before verifying re-verifies nothing it has not copied).
//!
//! An existing target table must have a primary key or unique index on
//! the source's key columns, else the table is refused before anything is
//! written (also in a dry run): rows could not be matched, and a re-run
//! would copy them again.
//!
//! Collections move through the vector contract (scan pages → upsert), see
//! [`collection`]. Export and import to JSON Lines are in [`jsonl`].
//!
//! Why the engine lives in the host and reads catalogues per dialect: the
//! SQL contract carries statements, not schemas, and the two catalogue
//! readers are small; a plugin of a new dialect is migrated once its dialect
//! has a reader in [`schema`].

mod checkpoint;
pub mod collection;
mod error;
pub mod jsonl;
mod options;
mod report;
pub mod schema;
pub mod table;
pub mod values;

use std::time::Instant;

use crate::{error::Error, loader::Backend, sql::Sql, vector::Vectors};

pub use crate::progress::{ItemKind, ItemProgress, Phase};
pub use checkpoint::CHECKPOINTS;
pub use error::MigrateError;
pub use options::MigrateOptions;
pub use report::{ItemReport, Report, Verification};
pub use schema::{Kind, TableSchema};

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
    let mut copied_tables = Vec::new();
    let mut table_sides = None;
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
            // Names the target would change are refused before anything is
            // written (Postgres cuts identifiers at 63 bytes).
            schema::check_target_names(dst.dialect(), dst.backend(), &names, None)?;
            for name in &names {
                let t =
                    schema::read_table(&src, name, options.detect_vectors, &mut Vec::new()).await?;
                schema::check_target_names(dst.dialect(), dst.backend(), &[], Some(&t))?;
            }
            let ctx = table::Context::new(&src, &dst, &source_id, options).await?;
            for name in &names {
                let copied = table::migrate_table(&ctx, name, &mut report.warnings).await?;
                report.tables.push(copied.report);
                copied_tables.push((copied.table, copied.source));
            }
            // Foreign keys once every table exists (a key may reference a
            // table copied after its own); Postgres targets only.
            if !options.dry_run {
                for (t, _) in &copied_tables {
                    for stmt in schema::foreign_key_sql(&dst, t).await? {
                        dst.exec(&stmt)
                            .await
                            .map_err(|source| MigrateError::Table {
                                table: t.name.clone(),
                                backend: dst.backend().to_string(),
                                source: Box::new(source),
                            })?;
                    }
                }
            }
            table_sides = Some((src, dst));
        }
    }

    // Collections through the vector contract.
    let wants_collections = options.collections.as_ref().is_none_or(|c| !c.is_empty());
    let mut collection_sides = None;
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
            collection_sides = Some((src, dst));
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

    // Verification, once every item is copied: a resumed run copies what
    // is left first, so a run interrupted again still makes progress
    // instead of re-reading finished tables every time.
    if options.verify && !options.dry_run {
        if let Some((src, dst)) = &table_sides {
            for (item, (t, source)) in report.tables.iter_mut().zip(&copied_tables) {
                table::verify_table(src, dst, t, *source, options, item).await?;
            }
        }
        if let Some((src, dst)) = &collection_sides {
            for item in report.collections.iter_mut() {
                let name = item.name.clone();
                collection::verify_collection(src, dst, &name, options, item).await?;
            }
        }
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

/// The row count and order-independent checksum of `table` on `sql`, as
/// verification computes them (columns normalised by the table's own
/// kinds; see [`values`]). Two sides of a migration give equal results.
pub async fn table_checksum(sql: &Sql, table: &str) -> Result<values::Checksum, MigrateError> {
    let t = schema::read_table(sql, table, true, &mut Vec::new()).await?;
    table::checksum(sql, &t, 2000, false)
        .await
        .map(|(sum, _)| sum)
}

/// The record count and checksum of a vector collection, as verification computes them.
pub async fn collection_checksum(
    v: &Vectors,
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
