//! strata's PostgreSQL plugin (tier 2 of the scaling path), loaded as a
//! `.so`: the engine of [`strata_postgres_engine`] (sqlx on the plugin
//! kit's runtime, one schema per tenant; see its docs) with the default
//! [`EngineOptions`].

#![warn(missing_docs, unreachable_pub)]

use strata_plugin::{
    Contracts, OpenContext, Plugin, PluginResult, Runs, SqlHandle, VectorHandle,
    capabilities as cap,
};
pub use strata_postgres_engine::{Engine, EngineOptions, config, types};

use crate::config::PostgresConfig;

/// An opened Postgres backend: one pool, shared by its SQL and vector handles.
pub struct PostgresPlugin {
    engine: Engine,
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
        cap::SQL_BULK_READ,
        cap::VECTOR_HYBRID,
        cap::VECTOR_SCAN,
        cap::VECTOR_ANN,
        cap::VECTOR_PERSISTENT_INDEX,
    ];
    const DIALECT: Option<&'static str> = Some("postgres");
    const RUNS: Runs = Runs::Async;
    type Config = PostgresConfig;

    /// Opens the [`Engine`] with the default options.
    async fn open(cfg: PostgresConfig, ctx: OpenContext) -> PluginResult<Self> {
        Ok(PostgresPlugin {
            engine: Engine::open(&cfg, &ctx, EngineOptions::default()).await?,
        })
    }

    /// Without pgvector (known at open) the vector capabilities are not
    /// claimed. The vector handle is still handed out: its calls answer
    /// `unsupported` naming what is missing.
    fn capabilities(&self) -> Vec<String> {
        self.engine.capabilities(Self::CAPABILITIES)
    }

    fn sql(&self) -> Option<SqlHandle> {
        Some(SqlHandle::new(self.engine.sql.clone()))
    }

    fn vectors(&self) -> Option<VectorHandle> {
        Some(VectorHandle::new(self.engine.vectors.clone()))
    }

    async fn health(&self) -> PluginResult<String> {
        self.engine.sql.health().await
    }

    async fn close(&self) -> PluginResult<()> {
        self.engine.sql.shutdown().await
    }
}

strata_plugin::export_plugin!(PostgresPlugin);
