//! strata's PostgreSQL plugin (tier 2 of the scaling path), loaded as a `.so`.
//!
//! - sqlx with a runtime owned by the plugin: tokio's context is a
//!   thread-local of each copy of tokio, so the host's runtime is invisible
//!   here; every call's future enters the plugin's runtime whenever the host
//!   polls or drops it ([`spawn`]).
//! - One schema per agent or tenant (`schema` config key, validated and
//!   quoted, created on demand); every connection's `search_path` is
//!   `"<schema>", public`.
//! - Type mapping and parameter encoding: see [`types`]. SQLSTATE is kept as
//!   the backend code and mapped to strata's error kinds.
//! - `last_insert_rowid` comes from `RETURNING` (the first column of the last
//!   row returned) and is absent otherwise.

#![warn(missing_docs, unreachable_pub)]
#![allow(non_local_definitions)]

mod bulk;
pub mod config;
mod error;
mod filter_sql;
mod sql;
pub mod types;
mod vector;

use std::{
    future::Future,
    str::FromStr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use abi_stable::{
    export_root_module,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RString},
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use strata_plugin_api::{
    API_VERSION, Backend, Backend_TO, BackendBox, ErrorKind, Manifest, PluginError, PluginMod,
    PluginModRef, PluginResult, capabilities as cap, contracts,
    ffi::catch,
    runtime::PluginRuntime,
    sql::{PluginFuture, SqlConnectionBox},
    vector::VectorStoreBox,
};

use crate::config::{PostgresConfig, valid_identifier};

/// The plugin's own tokio runtime (sqlx needs one; the host's is invisible
/// to this copy of tokio).
static RUNTIME: PluginRuntime = PluginRuntime::new("strata-postgres", 2);

/// Runs `fut` for the host: polled on the caller's thread inside the
/// plugin's runtime context ([`PluginRuntime::in_place`]), guarded so a
/// panic comes back as an error.
///
/// Polling in place instead of spawning a task saves two thread wake-ups
/// per call (tens of microseconds, a tenth of an HNSW query). sqlx's
/// sockets and timers register with the plugin's runtime, whose worker
/// threads drive the I/O and wake the host's task directly.
pub(crate) fn spawn<T: Send + 'static>(
    fut: impl Future<Output = PluginResult<T>> + Send + 'static,
) -> PluginFuture<T> {
    RUNTIME.in_place(fut)
}

/// Closes `pool`: new work fails at once, and connections still checked out
/// (an open transaction, a stream not read to its end) are waited for as
/// long as a connection is (`connect_timeout_ms`), then `busy`: a close
/// awaited while the caller's own transaction is open would otherwise
/// wait for itself forever. Those connections close when dropped.
pub(crate) async fn close_pool(pool: &sqlx::PgPool) -> PluginResult<()> {
    let wait = pool.options().get_acquire_timeout();
    if tokio::time::timeout(wait, pool.close()).await.is_ok() {
        return Ok(());
    }
    let held = (pool.size() as usize).saturating_sub(pool.num_idle());
    Err(PluginError::new(
        ErrorKind::Busy,
        format!(
            "close: {held} connection(s) still in use after {} ms (connect_timeout_ms) by an \
             open transaction or a stream not read to its end; the backend takes no new work, \
             and they close when dropped (commit, roll back or drop them before closing)",
            wait.as_millis()
        ),
    ))
}

/// Fire-and-forget on the plugin's runtime (used by `Drop` impls).
pub(crate) fn runtime_spawn(fut: impl Future<Output = ()> + Send + 'static) {
    RUNTIME.detach(fut);
}

#[export_root_module]
fn root_module() -> PluginModRef {
    PluginMod { manifest, open }.leak_into_prefix()
}

/// The plugin's manifest.
pub extern "C" fn manifest() -> Manifest {
    Manifest {
        name: "postgres".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        description: "PostgreSQL through sqlx: pooled, one schema per tenant".into(),
        contracts: contracts::SQL | contracts::VECTOR,
        capabilities: [
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
        ]
        .into_iter()
        .map(RString::from)
        .collect(),
        dialect: "postgres".into(),
        config_schema: config::schema_json().into(),
    }
}

/// Opens a backend from its JSON config.
pub extern "C" fn open(config_json: RString) -> PluginFuture<BackendBox> {
    spawn(async move {
        let cfg: PostgresConfig = catch(|| {
            serde_json::from_str(&config_json).map_err(|e| {
                PluginError::new(ErrorKind::InvalidConfig, format!("postgres config: {e}"))
            })
        })?;
        if let Some(s) = &cfg.schema
            && !valid_identifier(s)
        {
            return Err(PluginError::new(
                ErrorKind::InvalidConfig,
                format!(
                    "schema {s:?} is not a valid name: use letters, digits and `_`, starting with a letter or `_`, at most 63"
                ),
            ));
        }
        let mut opts = PgConnectOptions::from_str(&cfg.url).map_err(|e| {
            PluginError::new(
                ErrorKind::InvalidConfig,
                format!(
                    "url is not a valid postgres URL: {}",
                    redact(&e.to_string(), &cfg.url)
                ),
            )
        })?;
        opts = opts.application_name(&cfg.application_name);
        if let Some(mode) = cfg.ssl_mode {
            opts = opts.ssl_mode(mode.sqlx());
        }
        if let Some(ca) = &cfg.ssl_root_cert {
            if !std::path::Path::new(ca).is_file() {
                return Err(PluginError::new(
                    ErrorKind::InvalidConfig,
                    format!("ssl_root_cert {ca:?} is not a readable file"),
                ));
            }
            opts = opts.ssl_root_cert(ca);
        }
        // Session settings, sent as `SET`s when each pooled connection opens
        // rather than as the startup packet's `options` (poolers such as
        // PgBouncer refuse startup parameters they do not know). pgvector
        // reads its two when its library loads in the session (they are
        // placeholders until then): the default ef_search, and iterative
        // index scans, so a filtered query keeps walking the graph until
        // top_k rows pass the filter, in exact distance order.
        let mut session = String::new();
        if let Some(s) = &cfg.schema {
            session.push_str(&format!("SET search_path = \"{s}\", public; "));
        }
        if cfg.statement_timeout_ms > 0 {
            session.push_str(&format!(
                "SET statement_timeout = {}; ",
                cfg.statement_timeout_ms
            ));
        }
        session.push_str(&format!(
            "SET hnsw.ef_search = {}; SET hnsw.iterative_scan = strict_order;",
            cfg.hnsw_ef_search
        ));
        let session = Arc::new(session);
        let timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let pool = tokio::time::timeout(
            timeout,
            PgPoolOptions::new()
                .max_connections(cfg.pool_size)
                .acquire_timeout(timeout)
                .after_connect(move |conn, _| {
                    let session = session.clone();
                    Box::pin(async move {
                        sqlx::raw_sql(sqlx::AssertSqlSafe(session.as_str().to_owned()))
                            .execute(conn)
                            .await
                            .map(drop)
                    })
                })
                .connect_with(opts),
        )
        .await
        .map_err(|_| {
            PluginError::new(
                ErrorKind::Timeout,
                format!("could not connect within {} ms", cfg.connect_timeout_ms),
            )
        })?
        .map_err(|e| {
            let err = error::map(e);
            PluginError::new(
                err.kind(),
                format!("cannot connect: {}", redact(err.message(), &cfg.url)),
            )
            .with_backend_code(err.backend_code().unwrap_or_default())
        })?;
        if let Some(s) = &cfg.schema {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{s}\""
            )))
            .execute(&pool)
            .await
            .map_err(error::map)?;
        }
        Ok(Backend_TO::from_value(
            PgBackend {
                vectors: vector::PgVectors::new(
                    pool.clone(),
                    vector::Defaults {
                        threshold: cfg.hnsw_threshold,
                        build_memory_mb: cfg.hnsw_build_memory_mb,
                        m: cfg.hnsw_m,
                        ef_construction: cfg.hnsw_ef_construction,
                        ef_search: cfg.hnsw_ef_search,
                        language: cfg.text_search_config.clone(),
                    },
                ),
                sql: sql::PgSql {
                    shared: sql::Shared::new(pool, cfg.isolation.sql()),
                    closed: Arc::new(AtomicBool::new(false)),
                },
            },
            TD_Opaque,
        ))
    })
}

/// Removes the password of `url` from a message.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_string(),
    }
}

struct PgBackend {
    sql: sql::PgSql,
    vectors: vector::PgVectors,
}

impl Backend for PgBackend {
    fn sql(&self) -> ROption<SqlConnectionBox> {
        ROption::RSome(self.sql.clone().boxed())
    }

    fn vectors(&self) -> ROption<VectorStoreBox> {
        ROption::RSome(strata_plugin_api::vector::VectorStore_TO::from_value(
            self.vectors.clone(),
            TD_Opaque,
        ))
    }

    fn health(&self) -> PluginFuture<RString> {
        let pool = self.sql.shared.pool.clone();
        spawn(async move {
            let (v, schema): (String, String) =
                sqlx::query_as("SELECT version(), current_schema()")
                    .fetch_one(&pool)
                    .await
                    .map_err(error::map)?;
            Ok(format!("{v}; schema {schema}").into())
        })
    }

    fn close(&self) -> PluginFuture<()> {
        let pool = self.sql.shared.pool.clone();
        let closed = self.sql.closed.clone();
        spawn(async move {
            closed.store(true, std::sync::atomic::Ordering::Release);
            close_pool(&pool).await
        })
    }
}
