//! A strata plugin template: an in-memory vector store that implements the
//! whole vector contract, written to be copied as the start of a real backend.
//!
//! It is written on the plugin kit (`strata-plugin`), so it is ordinary
//! async Rust: no `unsafe`, no ABI types, no panic handling. The kit
//! generates the library's root module and manifest, parses the config
//! (errors name the key), turns a panic anywhere in the plugin into an
//! `internal` error instead of a crash of the host, and runs each call
//! where the backend says (see [`vector`]'s `runs`).
//!
//! Every strata plugin has the same shape, and so does this one:
//!
//! - `lib.rs` (this file): the [`Plugin`] declaration — who the plugin is,
//!   which contracts and capabilities it offers, its config type — `open`,
//!   and the handles an opened backend hands out;
//! - [`config`]: the config struct, whose JSON Schema the host checks
//!   `plugins.toml` against before `open` is called;
//! - [`vector`]: the vector contract. A plugin implementing SQL or blobs adds
//!   `sql.rs` / `blob.rs` beside it.

#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod vector;

use std::sync::Arc;

use strata_plugin::{
    Contracts, OpenContext, Plugin, PluginResult, VectorHandle, capabilities as cap,
};

use crate::{config::TemplateConfig, vector::MemoryVectors};

/// An opened backend: one store, shared by every handle it hands out.
pub struct TemplatePlugin {
    vectors: Arc<MemoryVectors>,
}

/// The plugin's name: `plugin = "plugin-template"` in plugins.toml finds
/// `libstrata_plugin_template.so`. Keep it equal to the package name without
/// its `strata-` prefix (`tests/conformance.rs` checks that the library it
/// tests answers to it).
pub const NAME: &str = "plugin-template";

impl Plugin for TemplatePlugin {
    const NAME: &'static str = NAME;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Template: an in-memory vector store with exact search (copy me)";
    const CONTRACTS: Contracts = Contracts::VECTOR;
    // List only what the backend really does: the conformance suite runs a
    // case only when its capability is listed, and skips it (naming the
    // capability) otherwise. This store searches exactly, so it claims
    // neither `vector.ann` (an approximate index held to recall ≥ 0.95) nor
    // `vector.persistent_index` (nothing survives `close`).
    const CAPABILITIES: &'static [&'static str] = &[cap::VECTOR_HYBRID, cap::VECTOR_SCAN];
    type Config = TemplateConfig;

    /// Each call returns an independent backend, even for the same config:
    /// the host may open one library for several `[backends.*]` entries, and
    /// the conformance suite opens a fresh backend per case. A real backend
    /// connects here (and maps a refused connection to `connection`), so
    /// that `strata check` reports an unreachable server at open time.
    async fn open(config: TemplateConfig, _ctx: OpenContext) -> PluginResult<Self> {
        Ok(TemplatePlugin {
            vectors: Arc::new(MemoryVectors::new(config)),
        })
    }

    fn vectors(&self) -> Option<VectorHandle> {
        Some(VectorHandle::new(self.vectors.clone()))
    }

    async fn health(&self) -> PluginResult<String> {
        self.vectors.health()
    }

    async fn close(&self) -> PluginResult<()> {
        self.vectors.close();
        Ok(())
    }
}

strata_plugin::export_plugin!(TemplatePlugin);
