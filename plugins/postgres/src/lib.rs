//! strata's PostgreSQL plugin (tier 2 of the scaling path), loaded as a `.so`.
//!
//! - Written on the plugin kit (`strata-plugin`): the kit exports the
//!   library's root module and manifest, parses the config (errors name the
//!   key) and contains panics.
//! - sqlx on the plugin's own tokio runtime (the kit's; the host's runtime
//!   is invisible to this copy of tokio). Every call — SQL, transaction,
//!   cursor, vector, and `open` / `health` / `close` — answers
//!   [`Runs::Async`]: its future is polled on the caller's thread inside
//!   the plugin's runtime context, so sqlx's sockets and timers register
//!   with the plugin's runtime, whose worker threads drive the I/O and wake
//!   the caller directly. That saves two thread wake-ups per call over
//!   spawning a task (tens of microseconds, a tenth of an HNSW query), and
//!   dropping the future cancels the call.
//! - One schema per agent or tenant (`schema` config key, validated and
//!   quoted, created on demand); every connection's `search_path` is
//!   `"<schema>", public`.
//! - Type mapping and parameter encoding: see [`types`]. SQLSTATE is kept as
//!   the backend code and mapped to strata's error kinds.
//! - `last_insert_rowid` comes from `RETURNING` (the first column of the last
//!   row returned) and is absent otherwise.

#![warn(missing_docs, unreachable_pub)]

mod bulk;
pub mod config;
mod connect;
mod error;
mod filter_sql;
mod params;
mod sql;
pub mod types;
mod vector;

use std::sync::Arc;

use strata_plugin::{
    Contracts, OpenContext, Plugin, PluginResult, Runs, SqlHandle, VectorHandle,
    capabilities as cap,
};

use crate::config::PostgresConfig;

/// An opened Postgres backend: one pool, shared by its SQL and vector handles.
pub struct PostgresPlugin {
    sql: Arc<sql::PgSql>,
    vectors: Arc<vector::PgVectors>,
    /// Whether pgvector can serve the vector contract, as `open` saw it.
    pgvector: bool,
}

impl Plugin for PostgresPlugin {
    const NAME: &'static str = "postgres";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "PostgreSQL through sqlx: pooled, one schema per tenant";
    const CONTRACTS: Contracts = Contracts::SQL.and(Contracts::VECTOR);
    const CAPABILITIES: &'static [&'static str] = &[
        cap::SQL_TRANSACTIONS,
        cap::SQL_SAVEPOINTS,
        cap::SQL_STREAMING,
        cap::SQL_CONCURRENT,
        cap::SQL_DURABLE,
        cap::SQL_LAST_INSERT_ROWID_RETURNING,
        cap::VECTOR_HYBRID,
        cap::VECTOR_SCAN,
        cap::VECTOR_ANN,
        cap::VECTOR_PERSISTENT_INDEX,
    ];
    const DIALECT: Option<&'static str> = Some("postgres");
    const RUNS: Runs = Runs::Async;
    type Config = PostgresConfig;

    /// Connects (an unreachable server is `connection`, a slow one
    /// `timeout`), creates the schema, and asks the server whether pgvector
    /// can serve the vector contract.
    async fn open(cfg: PostgresConfig, ctx: OpenContext) -> PluginResult<Self> {
        let pool = connect::connect(&cfg, &ctx).await?;
        let pgvector = connect::pgvector_usable(&pool).await;
        Ok(PostgresPlugin {
            vectors: Arc::new(vector::PgVectors::new(
                pool.clone(),
                vector::Defaults {
                    threshold: cfg.hnsw_threshold,
                    build_memory_mb: cfg.hnsw_build_memory_mb,
                    m: cfg.hnsw_m,
                    ef_construction: cfg.hnsw_ef_construction,
                    ef_search: cfg.hnsw_ef_search,
                    language: cfg.text_search_config,
                },
            )),
            sql: Arc::new(sql::PgSql::new(pool, cfg.isolation.sql())),
            pgvector,
        })
    }

    /// Without pgvector (known at open) the vector capabilities are not
    /// claimed. The vector handle is still handed out: its calls answer
    /// `unsupported` naming what is missing.
    fn capabilities(&self) -> Vec<String> {
        Self::CAPABILITIES
            .iter()
            .filter(|c| self.pgvector || !c.starts_with("vector."))
            .map(|c| c.to_string())
            .collect()
    }

    fn sql(&self) -> Option<SqlHandle> {
        Some(SqlHandle::new(self.sql.clone()))
    }

    fn vectors(&self) -> Option<VectorHandle> {
        Some(VectorHandle::new(self.vectors.clone()))
    }

    async fn health(&self) -> PluginResult<String> {
        self.sql.health().await
    }

    async fn close(&self) -> PluginResult<()> {
        self.sql.shutdown().await
    }
}

strata_plugin::export_plugin!(PostgresPlugin);
