//! The stable plugin ABI of strata.
//!
//! strata loads storage backends as dynamic libraries that are built and
//! released apart from the host. This crate is everything both sides agree
//! on, and nothing else: it has no I/O and no runtime.
//!
//! # Design
//!
//! - **Root module.** A plugin library exports one [`PluginMod`] with
//!   abi_stable's `#[export_root_module]`. The host loads it with
//!   `lib_header_from_path(..).init_root_module::<PluginModRef>()`, which
//!   checks the plugin-api version (semver: `0.y` must match) and the layout
//!   of every type reachable from the module before any plugin code runs.
//!   `PluginMod` is a prefix type: later minor versions append fields.
//! - **Contracts are trait objects.** [`sql::SqlConnection`] (and its
//!   transaction and cursor) are `#[sabi_trait]`s whose vtables are prefix
//!   types too, so methods can be appended without breaking old plugins.
//! - **Async crosses as `FfiFuture`.** Every contract method returns a
//!   `'static` [`async_ffi::FfiFuture`]. The host polls it on whatever
//!   executor it runs; a plugin that needs tokio owns its own runtime
//!   (tokio's context is a thread-local per copy of tokio, so the host's
//!   runtime is invisible to the plugin): `runtime::PluginRuntime`, behind
//!   the `tokio` feature, polls calls in place inside it or spawns them
//!   there. A backend whose calls are short and
//!   synchronous (SQLite) may do the work inline on first poll: no thread hop.
//! - **Panics stay inside.** abi_stable aborts when a trait-object method
//!   unwinds, so methods only build a future; the work runs inside
//!   [`ffi::guard`], which turns a panic into an [`ErrorKind::Internal`]
//!   error reading `plugin panicked: …`.
//! - **Values and errors are small and `repr(C)`.** [`Value`] has five
//!   kinds; [`PluginError`] carries its kind as a wire code so new kinds never
//!   become undefined behaviour in an older host.
//! - **Requests are structs.** Methods take a [`sql::Statement`] (SQL plus
//!   positional params). Placeholders are rewritten by the host for the
//!   plugin's [`placeholders::Dialect`] before a statement is sent.
//!
//! # Writing a plugin
//!
//! ```ignore
//! use abi_stable::{export_root_module, prefix_type::PrefixTypeTrait};
//! use strata_plugin_api::{PluginMod, PluginModRef};
//!
//! #[export_root_module]
//! fn root_module() -> PluginModRef {
//!     PluginMod { manifest, open }.leak_into_prefix()
//! }
//! ```
//!
//! See `examples/plugin-template` in the repository for a whole plugin.

#![warn(missing_docs, unreachable_pub)]
// abi_stable's `#[sabi_trait]` expands impls inside a const item.
#![allow(non_local_definitions)]

pub mod blob;
pub mod error;
pub mod ffi;
pub mod filter;
pub mod manifest;
pub mod module;
pub mod placeholders;
#[cfg(feature = "tokio")]
pub mod runtime;
pub mod sql;
pub mod value;
pub mod vector;

pub use abi_stable;
pub use async_ffi;
pub use error::{ErrorKind, PluginError, PluginResult};
pub use manifest::{Manifest, capabilities, contracts};
pub use module::{Backend, Backend_TO, BackendBox, PluginMod, PluginModRef};
pub use value::Value;

/// The version of this crate, which plugins record in their [`Manifest`].
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
