//! strata's SQLite plugin: the embedded default backend, loaded as a `.so`.
//!
//! - bundled SQLite (FTS5, JSON1), WAL journal, busy timeout, prepared
//!   statement cache, `BEGIN IMMEDIATE` write transactions, savepoints for
//!   nesting, read-only and in-memory modes;
//! - the connection model and the no-thread-hop read path are described in
//!   [`sql`];
//! - every SQLite error keeps its extended result code as the backend code
//!   and maps to a strata [`ErrorKind`](strata_plugin_api::ErrorKind).
//!
//! Type mapping: SQLite's storage classes are strata's value kinds one to one
//! (NULL, INTEGER, REAL, TEXT, BLOB); booleans are integers 0/1 and JSON is text.

#![warn(missing_docs, unreachable_pub)]
#![allow(non_local_definitions)]

pub mod config;
mod error;
mod filter_sql;
mod hnsw;
mod index;
pub mod sql;
mod timer;
pub mod vector;

use std::sync::Arc;

use abi_stable::{
    export_root_module,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RString},
};
use strata_plugin_api::{
    API_VERSION, Backend, Backend_TO, BackendBox, ErrorKind, Manifest, PluginError, PluginMod,
    PluginModRef, capabilities as cap, contracts,
    ffi::{catch, guard},
    sql::{PluginFuture, SqlConnectionBox},
};

use crate::{config::SqliteConfig, sql::Shared};

#[export_root_module]
fn root_module() -> PluginModRef {
    PluginMod { manifest, open }.leak_into_prefix()
}

/// The plugin's manifest.
pub extern "C" fn manifest() -> Manifest {
    Manifest {
        name: "sqlite".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        description: "Embedded SQLite (bundled, WAL, FTS5): one file, zero configuration".into(),
        contracts: contracts::SQL | contracts::VECTOR,
        capabilities: [
            cap::SQL_TRANSACTIONS,
            cap::SQL_SAVEPOINTS,
            cap::SQL_STREAMING,
            cap::SQL_LAST_INSERT_ROWID,
            cap::SQL_CONCURRENT,
            cap::VECTOR_HYBRID,
            cap::VECTOR_SCAN,
            cap::VECTOR_ANN,
            cap::VECTOR_PERSISTENT_INDEX,
        ]
        .into_iter()
        .map(RString::from)
        .collect(),
        dialect: "sqlite".into(),
        config_schema: config::schema_json().into(),
    }
}

/// Opens a backend from its JSON config.
pub extern "C" fn open(config_json: RString) -> PluginFuture<BackendBox> {
    guard(async move {
        let cfg: SqliteConfig = catch(|| {
            serde_json::from_str(&config_json).map_err(|e| {
                PluginError::new(ErrorKind::InvalidConfig, format!("sqlite config: {e}"))
            })
        })?;
        let shared = Shared::open(cfg)?;
        let vectors = Arc::new(vector::SqliteVectors::new(shared.clone()));
        Ok(Backend_TO::from_value(
            SqliteBackend { shared, vectors },
            TD_Opaque,
        ))
    })
}

struct SqliteBackend {
    shared: Arc<Shared>,
    /// One vector store per backend, so every handle shares its caches and indexes.
    vectors: Arc<vector::SqliteVectors>,
}

impl Backend for SqliteBackend {
    fn sql(&self) -> ROption<SqlConnectionBox> {
        ROption::RSome(sql::SqliteSql::boxed(self.shared.clone()))
    }

    fn vectors(&self) -> ROption<strata_plugin_api::vector::VectorStoreBox> {
        ROption::RSome(strata_plugin_api::vector::VectorStore_TO::from_value(
            self.vectors.clone_handle(),
            TD_Opaque,
        ))
    }

    fn health(&self) -> PluginFuture<RString> {
        let shared = self.shared.clone();
        guard(async move { shared.health().await.map(RString::from) })
    }

    fn close(&self) -> PluginFuture<()> {
        let shared = self.shared.clone();
        let vectors = self.vectors.clone();
        guard(async move {
            // Flush first: it waits for every collection's slot, so a load
            // in flight has started its build by the time builds are cancelled.
            vectors.flush().await;
            vectors.cancel_builds();
            shared.close().await
        })
    }
}
