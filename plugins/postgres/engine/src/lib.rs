//! The PostgreSQL engine shared by strata's Postgres and Supabase plugins
//! (an rlib both cdylibs link: a plugin crate cannot be both, since each
//! `.so` exports its own root module under one symbol name).
//!
//! - Written on the plugin kit (`strata-plugin`): the kit exports the
//!   library's root module and manifest, parses the config (errors name the
//!   key) and contains panics.
//! - sqlx on the plugin's own tokio runtime (the kit's; the host's runtime
//!   is invisible to this copy of tokio). Every call — SQL, transaction,
//!   cursor, vector, and `open` / `health` / `close` — answers
//!   [`Runs::Async`](strata_plugin::Runs::Async): its future is polled on the caller's thread inside
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
//! - [`EngineOptions`]: what differs between the plugins built on it
//!   (pooler-safe mode, a direct connection for DDL, requests run as a
//!   user): see [`db`].

#![warn(missing_docs, unreachable_pub)]

mod bulk;
pub mod config;
mod connect;
mod copy_out;
pub mod db;
mod error;
mod filter_sql;
mod oneshot;
mod params;
mod sql;
pub mod types;
mod vector;

use std::sync::Arc;

use strata_plugin::{OpenContext, PluginResult};

use crate::config::PostgresConfig;
pub use crate::{
    db::{EngineOptions, LocalSettings, RequestScope},
    sql::{Cursor, PgSql, Tx},
    vector::PgVectors,
};

/// The Postgres engine as a library: one pool, its SQL and vector
/// contracts. The Postgres plugin is this engine with the default
/// [`EngineOptions`]; other plugins (Supabase) open it with theirs
/// (pooler-safe, requests as a user) instead of copying it.
pub struct Engine {
    /// The SQL contract.
    pub sql: Arc<PgSql>,
    /// The vector contract.
    pub vectors: Arc<PgVectors>,
    /// Whether pgvector can serve the vector contract, as `open` saw it.
    pub pgvector: bool,
}

impl Engine {
    /// Connects (an unreachable server is `connection`, a slow one
    /// `timeout`), creates the schema, and asks the server whether pgvector
    /// can serve the vector contract. With [`EngineOptions::direct_url`],
    /// a second, small pool connects there (DDL and index builds).
    pub async fn open(
        cfg: &PostgresConfig,
        ctx: &OpenContext,
        options: EngineOptions,
    ) -> PluginResult<Engine> {
        let (pool, settings) = connect::connect(cfg, ctx, &cfg.url, options.pooler_safe).await?;
        let direct = match &options.direct_url {
            Some(url) => {
                let small = PostgresConfig {
                    pool_size: cfg.pool_size.clamp(1, 4),
                    ..cfg.clone()
                };
                Some(connect::connect(&small, ctx, url, false).await?.0)
            }
            None => None,
        };
        let pgvector = connect::pgvector_usable(direct.as_ref().unwrap_or(&pool)).await;
        let db = db::Db::new(
            pool,
            direct,
            options.pooler_safe,
            settings,
            options.scope.clone(),
        );
        Ok(Engine {
            vectors: Arc::new(vector::PgVectors::new(
                db.clone(),
                vector::Defaults {
                    threshold: cfg.hnsw_threshold,
                    build_memory_mb: cfg.hnsw_build_memory_mb,
                    m: cfg.hnsw_m,
                    ef_construction: cfg.hnsw_ef_construction,
                    ef_search: cfg.hnsw_ef_search,
                    language: cfg.text_search_config.clone(),
                },
            )),
            sql: Arc::new(sql::PgSql::new(db, cfg.isolation.sql())),
            pgvector,
        })
    }

    /// `all` without the vector capabilities when pgvector is not usable.
    pub fn capabilities(&self, all: &[&str]) -> Vec<String> {
        all.iter()
            .filter(|c| self.pgvector || !c.starts_with("vector."))
            .map(|c| c.to_string())
            .collect()
    }
}
