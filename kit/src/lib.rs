//! The strata plugin kit: write a storage backend as ordinary async Rust.
//!
//! strata loads backends as dynamic libraries through a stable ABI
//! (`strata-plugin-api`: `repr(C)` types, abi_stable trait objects,
//! async-ffi futures). This crate is what a plugin author codes against
//! instead, in the manner of DataFusion's `datafusion-ffi`: an ordinary
//! trait on each side of the boundary and a generated wrapper between. A
//! plugin written on the kit has no `unsafe`, imports neither abi_stable nor
//! async-ffi, and catches no panics itself; a new ABI release reaches it by
//! a recompile.
//!
//! # What the author writes
//!
//! - A config type (`serde::Deserialize + schemars::JsonSchema`). Its JSON
//!   Schema is published in the manifest (the host checks `plugins.toml`
//!   against it and names the key that is wrong); the kit parses it again
//!   with [`parse_config`], whose errors also name the key.
//! - The contracts it implements, as plain `async` traits over ordinary
//!   types: [`SqlBackend`] (+ [`SqlTransaction`], [`SqlCursor`]),
//!   [`VectorBackend`], [`BlobBackend`] (+ [`BlobWriter`]). Required
//!   methods are few; the rest have defaults. Interfaces added to the ABI
//!   after 1.0 are offered by a flag beside the methods they need:
//!   [`SqlBackend::TRANSACTION_BULK`] (bulk writes and reads inside a
//!   transaction, `strata.sql.transaction_bulk.v1`: what a restore loads
//!   through and a backup reads with), [`BlobBackend::LISTS_UPLOADS`]
//!   (`strata.blob.uploads.v1`).
//! - A [`Plugin`] impl: the manifest data as associated constants, `open`,
//!   the capabilities of an opened backend (which may depend on its config
//!   or server), and the handles it hands out. Then one line,
//!   [`export_plugin!`].
//!
//! # What the kit owns
//!
//! - **The root module and manifest** that the host looks up in the library.
//! - **Panics stay inside.** Every entry point it generates is guarded: the
//!   manifest, `open`, the synchronous accessors, every future (its polls
//!   and its drop) and every handle's drop. A panic becomes an `internal`
//!   error reading `plugin panicked: …`, never an abort of the host. Your
//!   own `Drop` impls still should not panic: a drop the kit does not
//!   reach (a value dropped on a thread of your own, a second panic while
//!   one unwinds) aborts the process like in any Rust program.
//! - **Where work runs** ([`Runs`]): before it hands a call's future to the
//!   host, the kit asks the backend's `runs` method where that call runs —
//!   inline on the caller's thread (short, bounded work: a point read), on
//!   the plugin's blocking pool (file I/O, `VACUUM INTO`, loading a
//!   collection, an index build: the default) or on the plugin's own async
//!   runtime (network clients). Nothing long runs on the caller's
//!   executor thread, and the plugin never relies on the host's runtime.
//! - **Conversions** between these types and the ABI's, on the plugin's side.
//!
//! # A whole plugin
//!
//! ```
//! use std::sync::Arc;
//! use strata_plugin::{
//!     Contracts, OpenContext, Plugin, PluginResult, VectorHandle, capabilities as cap,
//! };
//! # use strata_plugin::vector::*;
//! # struct Store;
//! # impl VectorBackend for Store {
//! #   async fn create_collection(&self, _: CollectionSpec) -> PluginResult<()> { Ok(()) }
//! #   async fn drop_collection(&self, _: String) -> PluginResult<bool> { Ok(false) }
//! #   async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> { Ok(vec![]) }
//! #   async fn collection_info(&self, _: String) -> PluginResult<Option<CollectionInfo>> { Ok(None) }
//! #   async fn upsert(&self, _: String, _: Vec<VectorRecord>) -> PluginResult<u64> { Ok(0) }
//! #   async fn query(&self, _: QueryRequest) -> PluginResult<Vec<Match>> { Ok(vec![]) }
//! #   async fn fetch(&self, _: String, _: Vec<String>, _: u32) -> PluginResult<Vec<Match>> { Ok(vec![]) }
//! #   async fn delete(&self, _: DeleteRequest) -> PluginResult<u64> { Ok(0) }
//! #   async fn count(&self, _: String, _: String) -> PluginResult<u64> { Ok(0) }
//! # }
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     #[serde(default)]
//!     max_vectors: Option<u64>,
//! }
//!
//! struct MyPlugin {
//!     store: Arc<Store>,
//! }
//!
//! impl Plugin for MyPlugin {
//!     const NAME: &'static str = "my-store";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const DESCRIPTION: &'static str = "An example store";
//!     const CONTRACTS: Contracts = Contracts::VECTOR;
//!     const CAPABILITIES: &'static [&'static str] = &[cap::VECTOR_SCAN];
//!     type Config = Config;
//!
//!     async fn open(config: Config, _ctx: OpenContext) -> PluginResult<Self> {
//!         let _ = config.max_vectors;
//!         Ok(MyPlugin { store: Arc::new(Store) })
//!     }
//!
//!     fn vectors(&self) -> Option<VectorHandle> {
//!         Some(VectorHandle::new(self.store.clone()))
//!     }
//! }
//!
//! strata_plugin::export_plugin!(MyPlugin);
//! ```
//!
//! See `examples/plugin-template` in the repository for a whole plugin with
//! its conformance test.

#![warn(missing_docs, unreachable_pub)]
// abi_stable's `#[sabi_trait]` impls expand inside const items.
#![allow(non_local_definitions)]

pub mod blob;
mod ffi;
mod guard;
mod inline;
mod plugin;
pub mod request;
pub mod runs;
pub mod sparse;
pub mod sql;
mod value;
pub mod vector;

pub use blob::{BlobBackend, BlobWriter};
pub use plugin::{
    BlobHandle, Contracts, OpenContext, Plugin, SqlHandle, VectorHandle, config_schema,
    parse_config,
};
pub use runs::Runs;
pub use sql::{CursorHandle, SqlBackend, SqlCursor, SqlTransaction};
/// The documented extension keys (`strata.*`) a request may carry, e.g.
/// [`ext_keys::AUTH_CLAIMS`] on a [`sql::Statement`]: run it as this user.
pub use strata_plugin_api::ext::keys as ext_keys;
pub use strata_plugin_api::{
    ErrorKind, Extensions, PluginError, PluginResult, capabilities, filter, placeholders::Dialect,
};
pub use value::Value;
pub use vector::VectorBackend;

/// The plugin-api version this kit builds plugins against.
pub const API_VERSION: &str = strata_plugin_api::API_VERSION;

/// Exports a [`Plugin`] as the library's root module: the one symbol the
/// host looks up. Use it once per plugin crate (a `cdylib`), at the top level.
///
/// ```ignore
/// strata_plugin::export_plugin!(SqlitePlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The library header the strata host loads (generated by `export_plugin!`).
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static STRATA_PLUGIN_ROOT_MODULE: $crate::__private::LibHeader =
            $crate::__private::lib_header::<$plugin>();
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::ffi::lib_header;
    pub use abi_stable::library::LibHeader;
}

#[cfg(test)]
pub(crate) mod testing {
    use std::{
        future::Future,
        sync::Arc,
        task::{Context, Poll},
    };

    /// A minimal executor that is *not* tokio, standing in for the host.
    pub(crate) fn block_on<T>(f: impl Future<Output = T>) -> T {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return v,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
