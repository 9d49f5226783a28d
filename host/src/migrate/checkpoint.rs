//! Checkpoints: how far each item of a migration got, kept in the target's
//! `strata_migrations` table so an interrupted run resumes.

use crate::{error::Result, sql::Sql};

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
    sql: &Sql,
    source: &str,
    item: &str,
) -> Result<Option<Checkpoint>> {
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
