//! The stable plugin ABI of strata, version 1.
//!
//! strata loads storage backends as dynamic libraries that are built and
//! released apart from the host. This crate is what both sides of that
//! boundary agree on, and nothing else: it has no I/O and no runtime.
//! Plugin authors do not code against it directly: they write ordinary
//! async Rust on the plugin kit (`strata-plugin`), which generates
//! everything here. It is public so that the host, the kit and anyone
//! writing another language's binding can see the contract.
//!
//! # Design
//!
//! - **Root module.** A plugin library exports one [`PluginMod`] (a prefix
//!   type). The host loads it with
//!   `lib_header_from_path(..).init_root_module::<PluginModRef>()`, which
//!   checks this crate's version (same major) and the layout of every type
//!   reachable from the module before any plugin code runs.
//! - **The handshake goes both ways.** The plugin describes itself in its
//!   [`Manifest`] (a prefix type); the host opens a backend with
//!   [`OpenArgs`]: the config, the directory relative paths resolve
//!   against, the host's version and features.
//! - **Contracts are trait objects.** [`sql::SqlConnection`] (and its
//!   transaction and cursor), [`vector::VectorStore`] and
//!   [`blob::BlobStore`] are `#[sabi_trait]`s whose vtables are prefix types.
//! - **Async crosses as `FfiFuture`.** Every contract method returns a
//!   `'static` [`async_ffi::FfiFuture`]. The host polls it on whatever
//!   executor it runs; the plugin decides where its work runs (its own
//!   runtime, its own blocking pool, or inline).
//! - **Panics stay inside.** abi_stable aborts when a trait-object method
//!   unwinds and async-ffi re-raises a panic from `poll` on the host, so a
//!   plugin contains its panics (the kit does it for every entry point,
//!   future and drop) and reports them as [`ErrorKind::Internal`] errors
//!   reading `plugin panicked: …`. The host keeps a backstop for a plugin
//!   that does not.
//! - **`Drop` must not panic.** A raw plugin (one not written on the kit)
//!   must guard its own `Drop` impls — of backends, handles, futures and
//!   anything they own — as well as every entry point: a panic while
//!   unwinding through `extern "C"` aborts the host, and a panic during a
//!   drop that was itself caused by a panic aborts any Rust process. The
//!   kit wraps every drop it generates; `strata-conformance` runs a plugin
//!   in a child process first and names the entry point that killed it.
//! - **Values and errors are small and `repr(C)`.** [`Value`] has five
//!   storage classes; [`PluginError`] carries its kind as a wire code.
//! - **One request struct per method**, each with an [`Extensions`] slot.
//!
//! # Evolution policy (1.x)
//!
//! A plugin built against 1.0 loads into every 1.x host. abi_stable checks
//! the layout of every type reachable from the root module when a plugin
//! loads, and refuses a library whose prefix types or trait vtables have
//! *fewer* fields or methods than the host's (tried: appending one method
//! with a default body to a trait locked out the pinned 1.0 plugin with
//! "too many fields (expected 14, found 13)"). So nothing reachable from
//! the root module grows within 1.x; a release may only:
//!
//! - **add interfaces** ([`interface`]): a new entry point is a new named,
//!   immutable `StableAbi` type that a backend hands out from
//!   [`Backend::interface`]; a plugin built before it answers "none" and
//!   the host falls back to what it did before;
//! - **document keys** for the extension slots: [`Extensions`] on every
//!   request and result passed by value, [`OpenArgs::ext`] and the
//!   manifest's `ext` (a reader ignores a key it does not know);
//! - **document new codes**: capability flags, contract bits, [`ErrorKind`]
//!   codes (an older peer reads an unknown code as `Internal`, keeping the
//!   message) and metric codes (an older peer refuses an unknown one with
//!   `invalid_input`).
//!
//! It may not add a field or a method to anything reachable from
//! [`PluginMod`] (its manifest, the contract traits, the structs passed by
//! value), change or remove anything, reorder, or add a [`Value`]
//! kind: each needs a new major version, which the host refuses at load
//! time naming both versions. The five value kinds are frozen on purpose:
//! richer types (JSON, timestamps, UUIDs, decimals) travel as one of them,
//! annotated through an extension key where the type matters, so no peer
//! ever meets a value it cannot represent.
//!
//! The repository keeps a plugin built against the 1.0 sources
//! (`fixtures/abi-1.0`) in its test suite: every later 1.x host must load
//! it and pass its conformance suite. CHANGELOG.md lists what each release
//! added.

#![warn(missing_docs, unreachable_pub)]
// abi_stable's `#[sabi_trait]` expands impls inside a const item.
#![allow(non_local_definitions)]

pub mod blob;
pub mod error;
pub mod ext;
pub mod filter;
pub mod interface;
pub mod manifest;
pub mod module;
pub mod placeholders;
pub mod sql;
pub mod value;
pub mod vector;

pub use abi_stable;
pub use async_ffi;
pub use error::{ErrorKind, PluginError, PluginResult};
pub use ext::Extensions;
pub use interface::InterfaceBox;
pub use manifest::{Manifest, ManifestRef, capabilities, contracts};
pub use module::{Backend, Backend_TO, BackendBox, OpenArgs, PluginMod, PluginModRef};
pub use value::Value;

/// The version of this crate: the ABI version a plugin is built against,
/// recorded in its library header.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
