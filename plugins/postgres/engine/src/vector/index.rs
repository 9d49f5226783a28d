//! The HNSW index of a collection: whether it exists, when it is due (the
//! collection reached `hnsw_threshold`), and building it on the server.
//!
//! pgvector builds a graph over existing rows many times faster than it
//! inserts rows into one, so the index is built by the first query (or
//! `collection_info`) once the collection holds `hnsw_threshold` rows, and
//! maintained by inserts from then on.

use sqlx::AssertSqlSafe;
use strata_plugin::{PluginResult, vector::CollectionInfo};

use super::catalog::{IndexState, Meta, Shared, ident};
use crate::error::map;

/// How long an index build waits for the lock on its table (see
/// `ensure_index`).
const INDEX_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Shared {
    pub(super) fn index_state(&self, meta: &Meta) -> Option<IndexState> {
        self.indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&meta.table)
            .copied()
    }

    pub(super) fn set_index_state(&self, meta: &Meta, state: IndexState) {
        self.indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(meta.table.clone(), state);
    }

    /// Looks at the server: does the index exist, else is the collection
    /// at the threshold? (On first use of a collection and after upserts.)
    /// As the backend itself: the threshold counts every row, whoever asks.
    pub(super) async fn refresh_index_state(&self, meta: &Meta) -> PluginResult<IndexState> {
        crate::db::as_backend(self.refresh_index_state_now(meta)).await
    }

    async fn refresh_index_state_now(&self, meta: &Meta) -> PluginResult<IndexState> {
        let schema = self.schema().await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("{schema}.{}", ident(&meta.hnsw_name())))
            .fetch_one(&*self.db)
            .await
            .map_err(map)?;
        let state = if exists {
            IndexState::Built
        } else if self.count_rows(meta).await? >= u64::from(self.defaults.threshold) {
            IndexState::Due
        } else {
            IndexState::Below
        };
        self.set_index_state(meta, state);
        Ok(state)
    }

    /// Whether queries on the collection can use its HNSW index, building it
    /// first when the collection has reached the threshold. The build runs
    /// in one transaction under an advisory lock (in pooler-safe mode: a
    /// lock on the collection's catalog row; a query that finds the
    /// lock taken searches exactly while the other connection builds), with
    /// `maintenance_work_mem` raised so the graph builds in memory; writes
    /// to the collection wait for it.
    ///
    /// The build waits at most [`INDEX_LOCK_WAIT`] for the table lock. An
    /// open transaction that wrote the collection holds it off, and that
    /// transaction may belong to the very task asking (on another pooled
    /// connection), a wait the server cannot see as a deadlock. The query
    /// then searches exactly and a later one builds the index.
    /// As the backend itself (an index is built by the table's owner).
    pub(super) async fn ensure_index(&self, meta: &Meta) -> PluginResult<bool> {
        crate::db::as_backend(self.ensure_index_now(meta)).await
    }

    async fn ensure_index_now(&self, meta: &Meta) -> PluginResult<bool> {
        if !meta.hnsw {
            return Ok(false);
        }
        let state = match self.index_state(meta) {
            Some(s) => s,
            None => self.refresh_index_state(meta).await?,
        };
        match state {
            IndexState::Built => Ok(true),
            IndexState::Below => Ok(false),
            IndexState::Due => {
                // On the direct connection when there is one (it bypasses
                // the pooler), else the pool; with the session settings.
                let mut tx = if self.db.has_direct() {
                    self.db.ddl.begin().await.map_err(map)?
                } else {
                    self.db.begin_with(None, &Vec::new()).await.map_err(map)?
                };
                let ours: bool = if self.db.pooler_safe {
                    // No advisory locks in pooler-safe mode (a pooler may
                    // not support them): the build lock is the collection's
                    // catalog row, locked without waiting; a row lock lives
                    // exactly as long as the transaction, on any connection.
                    let schema = self.schema().await?;
                    sqlx::query_scalar::<_, i32>(AssertSqlSafe(format!(
                        "SELECT 1 FROM {schema}.strata_collections WHERE table_name = $1 \
                         FOR NO KEY UPDATE SKIP LOCKED"
                    )))
                    .bind(&meta.table_name)
                    .fetch_optional(self.db.on(&mut tx))
                    .await
                    .map_err(map)?
                    .is_some()
                } else {
                    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
                        .bind(&meta.table)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map)?
                };
                if !ours {
                    // Another connection is building it: search exactly
                    // meanwhile rather than queue behind the build.
                    return Ok(false);
                }
                let built = sqlx::raw_sql(AssertSqlSafe(format!(
                    "SET LOCAL lock_timeout = '{}ms'; SET LOCAL maintenance_work_mem = '{}MB'; {}",
                    INDEX_LOCK_WAIT.as_millis(),
                    self.defaults.build_memory_mb,
                    meta.hnsw_ddl()
                )))
                .execute(&mut *tx)
                .await;
                if let Err(sqlx::Error::Database(db)) = &built
                    && db.code().as_deref() == Some("55P03")
                {
                    // lock_not_available: the transaction rolls back on drop.
                    return Ok(false);
                }
                built.map_err(map)?;
                tx.commit().await.map_err(map)?;
                self.set_index_state(meta, IndexState::Built);
                Ok(true)
            }
        }
    }

    pub(super) async fn count_rows(&self, meta: &Meta) -> PluginResult<u64> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            meta.table
        )))
        .fetch_one(&*self.db)
        .await
        .map_err(map)?;
        Ok(n as u64)
    }

    pub(super) async fn info(&self, meta: &Meta) -> PluginResult<CollectionInfo> {
        // As on first query: an index that is due is built, so the details are current.
        let indexed = self.ensure_index(meta).await?;
        // Count and sizes in one round trip.
        let (count, table_bytes, index_bytes): (i64, i64, Option<i64>) =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT (SELECT count(*) FROM {}), pg_total_relation_size(to_regclass($1)), \
                 pg_relation_size(to_regclass($2))",
                meta.table
            )))
            .bind(&meta.table)
            .bind(format!(
                "{}.{}",
                self.schema().await?,
                ident(&format!("{}_hnsw", meta.table_name))
            ))
            .fetch_one(&*self.db)
            .await
            .map_err(map)?;
        let mut details = serde_json::json!({
            "storage": "postgres",
            "table": meta.table,
            "index": if indexed { "hnsw" } else { "exact" },
            "language": meta.language,
            "table_bytes": table_bytes,
        });
        if meta.hnsw {
            details["hnsw_threshold"] = self.defaults.threshold.into();
        }
        if indexed {
            details["m"] = meta.m.into();
            details["ef_construction"] = meta.ef_construction.into();
            details["ef_search"] = self.defaults.ef_search.into();
            details["index_bytes"] = index_bytes.unwrap_or(0).into();
        }
        Ok(CollectionInfo {
            name: meta.name.clone(),
            dimension: meta.dimension,
            metric: meta.metric,
            count: count as u64,
            details_json: details.to_string(),
        })
    }
}
