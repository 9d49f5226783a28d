//! strata's Supabase plugin, loaded as `libstrata_supabase.so`: Supabase's
//! Postgres (with pgvector) through its transaction-mode pooler, each
//! request run as its end user so the project's row-level security
//! decides what that user sees.
//!
//! - The engine is the Postgres plugin's ([`strata_postgres_engine`], a
//!   library both plugins link), opened with its options: pooler-safe
//!   (nothing outlives a transaction: no `SET` at connect, no named
//!   prepared statements, no advisory locks, no cursor past its
//!   transaction), an optional `direct_url` for DDL and index builds, and
//!   its request scope (`auth::Auth`, below).
//! - Requests as a user (`sql.as_user(claims)` / `sql.as_user_jwt(token)`
//!   in the host): the claims cross the ABI in the statement's extension
//!   slot (`strata.auth.claims` / `strata.auth.jwt`) and are applied as
//!   PostgREST applies them: in the request's transaction,
//!   `SELECT set_config('request.jwt.claims', $1, true), set_config('role', $2, true)`
//!   with bound parameters, then the statements. With `jwt_secret`, only
//!   verified HS256 tokens are accepted. `service_role` is accepted only
//!   when the config allows it; other roles only when listed in `roles`.
//! - What is not here: Supabase's REST data path (PostgREST), Auth's own
//!   API, Storage.
//! - Vector data requests run as their user too (`vectors.as_user(claims)`):
//!   a policy on the collection's table (say on `metadata ->> 'owner'`)
//!   decides; the catalog, collection management and index builds run as
//!   the backend's own role.

#![warn(missing_docs, unreachable_pub)]

mod auth;
pub mod config;

use std::sync::Arc;

use strata_plugin::{
    Contracts, ErrorKind, OpenContext, Plugin, PluginError, PluginResult, Runs, SqlHandle,
    VectorHandle, capabilities as cap,
};
use strata_postgres_engine::{Engine, EngineOptions};

use crate::config::SupabaseConfig;

/// An opened Supabase backend.
pub struct SupabasePlugin {
    engine: Engine,
}

impl Plugin for SupabasePlugin {
    const NAME: &'static str = "supabase";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Supabase Postgres through its transaction-mode pooler, requests run as their user (RLS)";
    const CONTRACTS: Contracts = Contracts::SQL.and(Contracts::VECTOR);
    const CAPABILITIES: &'static [&'static str] = &[
        cap::SQL_TRANSACTIONS,
        cap::SQL_SAVEPOINTS,
        cap::SQL_STREAMING,
        cap::SQL_CONCURRENT,
        cap::SQL_DURABLE,
        cap::SQL_LAST_INSERT_ROWID_RETURNING,
        cap::SQL_BULK_READ,
        cap::SQL_AS_USER,
        cap::VECTOR_HYBRID,
        cap::VECTOR_SCAN,
        cap::VECTOR_ANN,
        cap::VECTOR_PERSISTENT_INDEX,
        cap::VECTOR_AS_USER,
    ];
    const DIALECT: Option<&'static str> = Some("postgres");
    const RUNS: Runs = Runs::Async;
    type Config = SupabaseConfig;

    /// Refuses unknown keys (by name), then opens the engine pooler-safe.
    async fn open(cfg: SupabaseConfig, ctx: OpenContext) -> PluginResult<Self> {
        if let Some(k) = cfg.unknown.keys().next() {
            return Err(PluginError::new(
                ErrorKind::InvalidConfig,
                format!("unknown key `{k}` in the supabase backend's config"),
            ));
        }
        let options = EngineOptions {
            pooler_safe: true,
            direct_url: cfg.direct_url.clone(),
            scope: Some(Arc::new(auth::Auth::new(&cfg))),
        };
        Ok(SupabasePlugin {
            engine: Engine::open(&cfg.postgres, &ctx, options).await?,
        })
    }

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

strata_plugin::export_plugin!(SupabasePlugin);
