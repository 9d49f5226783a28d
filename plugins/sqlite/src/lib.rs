//! strata's SQLite plugin: the embedded default backend, loaded as a `.so`.
//!
//! - bundled SQLite (FTS5, JSON1), WAL journal, busy timeout, prepared
//!   statement cache, `BEGIN IMMEDIATE` write transactions, savepoints for
//!   nesting, read-only and in-memory modes;
//! - the connection model, and which calls run inline (point reads) or on
//!   the plugin's blocking pool (everything else), are described in [`sql`]
//!   and [`vector`];
//! - every SQLite error keeps its extended result code as the backend code
//!   and maps to a strata [`ErrorKind`](strata_plugin::ErrorKind).
//!
//! Type mapping: SQLite's storage classes are strata's value kinds one to one
//! (NULL, INTEGER, REAL, TEXT, BLOB); booleans are integers 0/1 and JSON is text.
//!
//! Written on the plugin kit (`strata-plugin`): the kit exports the library,
//! parses the config, guards against panics and places each call where the
//! `runs` methods say.

#![warn(missing_docs, unreachable_pub)]

mod commits;
pub mod config;
mod error;
mod filter_sql;
mod inline;
pub mod sql;
pub mod vector;

use std::sync::Arc;

use strata_plugin::{
    Contracts, OpenContext, Plugin, PluginResult, SqlHandle, VectorHandle, capabilities as cap,
};

use crate::{config::SqliteConfig, sql::Shared};

/// An opened SQLite database: its SQL handle and its vector store, shared
/// by every handle the backend hands out.
pub struct SqlitePlugin {
    sql: Arc<sql::SqliteSql>,
    /// One vector store per backend, so every handle shares its caches and indexes.
    vectors: Arc<vector::SqliteVectors>,
    /// A database file (not `:memory:`): what is written survives a reopen.
    on_disk: bool,
}

impl Plugin for SqlitePlugin {
    const NAME: &'static str = "sqlite";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Embedded SQLite (bundled, WAL, FTS5): one file, zero configuration";
    const CONTRACTS: Contracts = Contracts::SQL.and(Contracts::VECTOR);
    const CAPABILITIES: &'static [&'static str] = &[
        cap::SQL_TRANSACTIONS,
        cap::SQL_SAVEPOINTS,
        cap::SQL_STREAMING,
        cap::SQL_LAST_INSERT_ROWID,
        cap::SQL_CONCURRENT,
        cap::SQL_DURABLE,
        cap::VECTOR_HYBRID,
        cap::VECTOR_SCAN,
        cap::VECTOR_ANN,
        cap::VECTOR_PERSISTENT_INDEX,
    ];
    const DIALECT: Option<&'static str> = Some("sqlite");
    type Config = SqliteConfig;

    // `open`, `health` and `close` run on the blocking pool (the kit's
    // default `RUNS`): they open, query and close files.

    async fn open(config: SqliteConfig, ctx: OpenContext) -> PluginResult<Self> {
        let file = config.file(&ctx);
        // `file:…?mode=memory` URIs are in memory too.
        let on_disk = file
            .as_ref()
            .is_some_and(|f| !f.to_string_lossy().contains("mode=memory"));
        let shared = Shared::open(config, file)?;
        Ok(SqlitePlugin {
            sql: Arc::new(sql::SqliteSql {
                shared: shared.clone(),
            }),
            vectors: Arc::new(vector::SqliteVectors::new(shared)),
            on_disk,
        })
    }

    /// Per opened database: an in-memory one keeps nothing across a close,
    /// so it claims neither durability nor a persistent index.
    fn capabilities(&self) -> Vec<String> {
        Self::CAPABILITIES
            .iter()
            .filter(|c| {
                self.on_disk || ![cap::SQL_DURABLE, cap::VECTOR_PERSISTENT_INDEX].contains(c)
            })
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
        self.sql.shared.health().await
    }

    async fn close(&self) -> PluginResult<()> {
        // Flush first: it waits for every collection's slot, so a load in
        // flight has started its build by the time builds are cancelled.
        self.vectors.flush().await;
        self.vectors.cancel_builds();
        self.sql.shared.close().await
    }
}

strata_plugin::export_plugin!(SqlitePlugin);
