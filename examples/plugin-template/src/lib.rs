//! A strata plugin template: an in-memory vector store that implements the
//! whole vector contract, written to be copied as the start of a real backend.
//!
//! Every strata plugin has the same shape, and so does this one:
//!
//! - `lib.rs` (this file): the root module the host looks up in the `.so`,
//!   the [`manifest`] (who the plugin is, which contracts and capabilities
//!   it offers, its config schema), [`open`], and the opened backend that
//!   hands out contract handles;
//! - [`config`]: the config struct, whose JSON Schema the host checks
//!   `plugins.toml` against before `open` is called;
//! - [`vector`]: the vector contract. A plugin implementing SQL or blobs adds
//!   `sql.rs` / `blob.rs` beside it.
//!
//! Two rules shape the code (both explained in `strata_plugin_api`'s docs):
//!
//! 1. **No panic may cross the boundary.** abi_stable aborts the whole host
//!    process when an `extern "C"` function or a trait-object method unwinds.
//!    So every entry point either runs its work inside
//!    [`ffi::guard`](strata_plugin_api::ffi::guard) (async: a panic becomes
//!    an `internal` error reading `plugin panicked: …`) or
//!    [`ffi::catch`](strata_plugin_api::ffi::catch) (synchronous), and does
//!    nothing before that but clone handles.
//! 2. **Every call returns a `'static` future.** The host polls it on its
//!    own executor. This store's work is short and synchronous, so it runs
//!    inline on the first poll; a backend with an async client library runs
//!    it on its own runtime (`strata_plugin_api::runtime::PluginRuntime`,
//!    feature `tokio`), never on the host's.

#![warn(missing_docs, unreachable_pub)]
// abi_stable's `#[sabi_trait]` and `#[export_root_module]` expand impls
// inside const items.
#![allow(non_local_definitions)]

pub mod config;
pub mod vector;

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
    vector::{VectorStore_TO, VectorStoreBox},
};

use crate::{config::TemplateConfig, vector::MemoryVectors};

/// The one symbol the host looks up. abi_stable checks, at load time, that
/// the host and this library agree on the plugin-api version (`0.y` must
/// match) and on the layout of every type reachable from [`PluginMod`].
#[export_root_module]
fn root_module() -> PluginModRef {
    PluginMod { manifest, open }.leak_into_prefix()
}

/// Describes the plugin. The host calls it at load time (`strata plugins`
/// prints it) and the conformance suite reads it to decide which cases apply.
pub extern "C" fn manifest() -> Manifest {
    // Generating the schema cannot fail for this struct, but `manifest` is an
    // `extern "C"` entry point: if it ever panicked, the host would abort.
    // An empty schema still leaves `open` refusing bad keys.
    let config_schema = catch(|| Ok(config::schema_json())).unwrap_or_else(|_| "{}".into());
    Manifest {
        // `plugin = "plugin-template"` in plugins.toml finds
        // `libstrata_plugin_template.so`: keep this equal to the crate name
        // without its `strata-` prefix.
        name: "plugin-template".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        description: "Template: an in-memory vector store with exact search (copy me)".into(),
        contracts: contracts::VECTOR,
        // List only what the backend really does: the conformance suite runs
        // a case only when its capability is listed, and skips it (naming
        // the capability) otherwise. This store searches exactly, so it does
        // not claim `vector.ann` (an approximate index held to recall ≥ 0.95)
        // nor `vector.persistent_index` (nothing survives `close`).
        capabilities: [cap::VECTOR_HYBRID, cap::VECTOR_SCAN]
            .into_iter()
            .map(RString::from)
            .collect(),
        // The SQL dialect name: empty without the SQL contract.
        dialect: RString::new(),
        config_schema: config_schema.into(),
    }
}

/// Opens a backend from its config (JSON text the host has already checked
/// against the manifest's schema).
///
/// Each call returns an independent backend, even for the same config: the
/// host may open one library for several `[backends.*]` entries, and the
/// conformance suite opens a fresh backend per case.
pub extern "C" fn open(config_json: RString) -> PluginFuture<BackendBox> {
    guard(async move {
        // Check again anyway (the schema is the host's courtesy, not a
        // guarantee) and map the failure to `invalid_config`, whose message
        // serde makes name the key (`unknown field `max_vector``).
        let config: TemplateConfig = serde_json::from_str(&config_json).map_err(|e| {
            PluginError::new(
                ErrorKind::InvalidConfig,
                format!("plugin-template config: {e}"),
            )
        })?;
        // A real backend connects here (and maps a refused connection to
        // `ErrorKind::Connection`, bad credentials included), so that `strata
        // check` reports an unreachable server at open time.
        Ok(Backend_TO::from_value(
            TemplateBackend {
                vectors: MemoryVectors::new(config),
            },
            TD_Opaque,
        ))
    })
}

/// An opened backend: hands out one handle per contract it implements.
struct TemplateBackend {
    /// A cheap, cloneable handle on the shared state: every `vectors()` call
    /// hands out a view of the same collections.
    vectors: MemoryVectors,
}

impl Backend for TemplateBackend {
    // These two methods are not async and cannot return an error, so they
    // must not be able to panic: they only clone a handle (or say "no").
    fn sql(&self) -> ROption<SqlConnectionBox> {
        ROption::RNone
    }

    fn vectors(&self) -> ROption<VectorStoreBox> {
        ROption::RSome(VectorStore_TO::from_value(self.vectors.clone(), TD_Opaque))
    }

    fn health(&self) -> PluginFuture<RString> {
        let vectors = self.vectors.clone();
        guard(async move { vectors.health().map(RString::from) })
    }

    fn close(&self) -> PluginFuture<()> {
        let vectors = self.vectors.clone();
        guard(async move {
            vectors.close();
            Ok(())
        })
    }

    // `blobs()` keeps its default (`RNone`): this plugin has no blob contract.
}
