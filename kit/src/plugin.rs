//! The plugin itself: what it declares, how it opens, which handles an
//! opened backend hands out.

use std::{future::Future, path::PathBuf, sync::Arc};

use serde::de::DeserializeOwned;

use crate::{BlobBackend, PluginError, PluginResult, Runs, SqlBackend, VectorBackend};

/// The contracts a plugin implements, as a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Contracts(u32);

impl Contracts {
    /// None.
    pub const NONE: Contracts = Contracts(0);
    /// The SQL contract ([`SqlBackend`]).
    pub const SQL: Contracts = Contracts(strata_plugin_api::contracts::SQL);
    /// The vector contract ([`VectorBackend`]).
    pub const VECTOR: Contracts = Contracts(strata_plugin_api::contracts::VECTOR);
    /// The blob contract ([`BlobBackend`]).
    pub const BLOB: Contracts = Contracts(strata_plugin_api::contracts::BLOB);

    /// Both sets.
    pub const fn and(self, other: Contracts) -> Contracts {
        Contracts(self.0 | other.0)
    }

    /// Whether every contract of `other` is in this set.
    pub const fn contains(self, other: Contracts) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) const fn bits(self) -> u32 {
        self.0
    }
}

impl std::ops::BitOr for Contracts {
    type Output = Contracts;
    fn bitor(self, rhs: Contracts) -> Contracts {
        self.and(rhs)
    }
}

/// What the host tells a plugin when it opens a backend.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenContext {
    /// The backend's name in `plugins.toml` (`local`, `pg`, …), when the host says.
    pub backend: Option<String>,
    /// The directory relative paths in the config resolve against (the
    /// directory of `plugins.toml`), when the host says; otherwise the
    /// process's working directory.
    pub base_dir: Option<PathBuf>,
    /// The host's version, when it says.
    pub host_version: Option<String>,
    /// Features the host supports beyond plugin-api 1.0.
    pub features: Vec<String>,
}

impl OpenContext {
    /// `path` resolved against [`OpenContext::base_dir`] when relative.
    pub fn resolve(&self, path: impl Into<PathBuf>) -> PathBuf {
        let path = path.into();
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path,
        }
    }
}

/// A storage backend plugin: its declaration and its opened state.
///
/// `Self` is an *opened backend*. The associated constants are the
/// manifest the host reads before opening anything; [`Plugin::open`] turns
/// a typed config into a backend; the backend hands out one handle per
/// contract it implements. Export it with [`export_plugin!`](crate::export_plugin).
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Short name, e.g. `sqlite`: `plugin = "sqlite"` in `plugins.toml`
    /// finds `libstrata_sqlite.so`, so keep it equal to the crate name
    /// without its `strata-` prefix.
    const NAME: &'static str;
    /// The plugin's own version: `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line describing the backend.
    const DESCRIPTION: &'static str;
    /// The contracts the plugin implements. The host asks a backend for a
    /// handle only of a contract listed here.
    const CONTRACTS: Contracts;
    /// Every capability flag ([`crate::capabilities`]) a backend of this
    /// plugin may have; [`Plugin::capabilities`] narrows it per backend.
    const CAPABILITIES: &'static [&'static str] = &[];
    /// The SQL dialect name (`sqlite`, `postgres`), for the SQL contract:
    /// it decides how the host rewrites placeholders.
    const DIALECT: Option<&'static str> = None;
    /// Worker threads of the plugin's async runtime ([`Runs::Async`] and
    /// [`Runs::Task`] calls, timers); the blocking pool grows on demand.
    const WORKER_THREADS: usize = 2;
    /// Where `open`, `health` and `close` run.
    const RUNS: Runs = Runs::Blocking;

    /// The config table of `plugins.toml`: its JSON Schema (schemars) is
    /// published in the manifest and checked by the host; the kit parses
    /// the config into it with errors naming the key.
    type Config: DeserializeOwned + schemars::JsonSchema + Send + 'static;

    /// Runs once when the library is loaded, before anything else (e.g. to
    /// install a TLS crypto provider). A panic here fails the load.
    fn init() {}

    /// Opens a backend. Each call returns an independent backend, even for
    /// the same config: the host may open one library for several
    /// `[backends.*]` entries. A backend that connects to a server should
    /// connect here (an unreachable server is `connection`).
    fn open(
        config: Self::Config,
        ctx: OpenContext,
    ) -> impl Future<Output = PluginResult<Self>> + Send;

    /// This backend's capabilities: by default all of
    /// [`Plugin::CAPABILITIES`]. Narrow it when the config or the server
    /// decides (a Postgres without pgvector, a read-only file).
    fn capabilities(&self) -> Vec<String> {
        Self::CAPABILITIES.iter().map(|c| c.to_string()).collect()
    }

    /// The SQL handle (with [`Contracts::SQL`]).
    fn sql(&self) -> Option<SqlHandle> {
        None
    }

    /// The vector handle (with [`Contracts::VECTOR`]).
    fn vectors(&self) -> Option<VectorHandle> {
        None
    }

    /// The blob handle (with [`Contracts::BLOB`]).
    fn blobs(&self) -> Option<BlobHandle> {
        None
    }

    /// A cheap liveness check; the text describes what was checked.
    fn health(&self) -> impl Future<Output = PluginResult<String>> + Send {
        async { Ok("ok".to_string()) }
    }

    /// Closes the backend: every handle it gave out answers `closed` after.
    fn close(&self) -> impl Future<Output = PluginResult<()>> + Send {
        async { Ok(()) }
    }
}

/// A SQL handle given to the host ([`Plugin::sql`]).
pub struct SqlHandle {
    pub(crate) conn: strata_plugin_api::sql::SqlConnectionBox,
    /// Makes the `strata.sql.transaction_bulk.v1` interface, when the
    /// backend's transactions implement it ([`SqlBackend::TRANSACTION_BULK`]).
    pub(crate) transaction_bulk: Option<Box<dyn FnOnce() -> strata_plugin_api::InterfaceBox>>,
}

impl SqlHandle {
    /// Wraps a backend; every handle of one backend shares its `Arc`.
    pub fn new<B: SqlBackend>(backend: Arc<B>) -> SqlHandle {
        let transaction_bulk = B::TRANSACTION_BULK.then(|| {
            let b = backend.clone();
            Box::new(move || {
                strata_plugin_api::InterfaceBox::new(crate::ffi::sql::transaction_bulk(b))
            }) as Box<dyn FnOnce() -> strata_plugin_api::InterfaceBox>
        });
        SqlHandle {
            conn: crate::ffi::sql::connection(backend),
            transaction_bulk,
        }
    }
}

/// A vector handle given to the host ([`Plugin::vectors`]).
pub struct VectorHandle(pub(crate) strata_plugin_api::vector::VectorStoreBox);

impl VectorHandle {
    /// Wraps a backend; every handle of one backend shares its `Arc`.
    pub fn new<B: VectorBackend>(backend: Arc<B>) -> VectorHandle {
        VectorHandle(crate::ffi::vector::store(backend))
    }
}

/// A blob handle given to the host ([`Plugin::blobs`]).
pub struct BlobHandle {
    pub(crate) store: strata_plugin_api::blob::BlobStoreBox,
    /// Makes the `strata.blob.uploads.v1` interface, when the backend
    /// implements it ([`BlobBackend::LISTS_UPLOADS`]).
    pub(crate) uploads: Option<Box<dyn FnOnce() -> strata_plugin_api::InterfaceBox>>,
}

impl BlobHandle {
    /// Wraps a backend; every handle of one backend shares its `Arc`.
    pub fn new<B: BlobBackend>(backend: Arc<B>) -> BlobHandle {
        let uploads = B::LISTS_UPLOADS.then(|| {
            let b = backend.clone();
            Box::new(move || strata_plugin_api::InterfaceBox::new(crate::ffi::blob::uploads(b)))
                as Box<dyn FnOnce() -> strata_plugin_api::InterfaceBox>
        });
        BlobHandle {
            store: crate::ffi::blob::store(backend),
            uploads,
        }
    }
}

/// Parses a plugin's config from JSON, with an `invalid_config` error that
/// names the plugin and the key (`sqlite config: key `hnsw_m`: invalid
/// type: string "x", expected u32`).
pub fn parse_config<C: DeserializeOwned>(plugin: &str, json: &str) -> PluginResult<C> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path.is_empty() || path == "." {
            format!("{plugin} config: {inner}")
        } else {
            format!("{plugin} config: key `{path}`: {inner}")
        };
        PluginError::new(crate::ErrorKind::InvalidConfig, message)
    })
}

/// The JSON Schema of a config type, as published in the manifest.
pub fn config_schema<C: schemars::JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(C)).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        path: String,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema, Debug, Default)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        #[serde(default)]
        m: u32,
    }

    #[test]
    fn config_errors_name_the_key() {
        let e =
            parse_config::<Cfg>("demo", r#"{"path": "x", "nested": {"m": "many"}}"#).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert!(
            e.message().starts_with("demo config: key `nested.m`:"),
            "{e}"
        );
        let e = parse_config::<Cfg>("demo", r#"{"path": "x", "pth": 1}"#).unwrap_err();
        assert!(e.message().contains("unknown field `pth`"), "{e}");
        let e = parse_config::<Cfg>("demo", r#"{}"#).unwrap_err();
        assert!(e.message().contains("missing field `path`"), "{e}");
        assert!(config_schema::<Cfg>().contains("\"path\""));
    }

    #[test]
    fn relative_paths_resolve_against_the_base_dir() {
        let ctx = OpenContext {
            base_dir: Some("/etc/strata".into()),
            ..OpenContext::default()
        };
        assert_eq!(
            ctx.resolve("data/x.db"),
            PathBuf::from("/etc/strata/data/x.db")
        );
        assert_eq!(ctx.resolve("/abs/x.db"), PathBuf::from("/abs/x.db"));
        assert_eq!(
            OpenContext::default().resolve("x.db"),
            PathBuf::from("x.db")
        );
    }
}
