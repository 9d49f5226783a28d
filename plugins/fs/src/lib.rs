//! strata's fs plugin: the blob contract on a directory of a local or
//! mounted file system (a second disk, NFS, a USB drive), loaded as a
//! `.so`. Backups, retention and restores work as on S3, with no object
//! store to run.
//!
//! - Written on the plugin kit (`strata-plugin`): the kit exports the
//!   library's root module and manifest, parses the config (errors name the
//!   key), contains panics, and runs every call on the plugin's blocking
//!   pool (the kit's default: file I/O is synchronous).
//! - **Keys are paths** under `root`, readable as they are (see `keys.rs`
//!   for the marks and escapes that make every key map to exactly one
//!   path, long segments included).
//! - **Writes are atomic.** A put or a multipart upload writes a file under
//!   `root/.strata/` and renames it over the object's path once complete
//!   (and `fsync`ed, with `sync = true`): a reader sees the old object or
//!   the new one whole, never part of one, and a killed process leaves no
//!   partial object. Writes to one key are applied in the order they
//!   started, so a put abandoned by its caller (it still runs to the end
//!   on the pool) cannot land after a newer one.
//! - **Uploads left open** by a killed process are files under
//!   `root/.strata/uploads/`: listed and aborted through
//!   `strata.blob.uploads.v1`, which backup prune uses.
//! - **Listings** read the directories under the prefix and sort the keys
//!   on every page: right for backup directories (thousands of objects),
//!   not meant for millions of keys.
//! - `close` closes the store: every later call (an open writer's too) is
//!   `closed`, and an upload cut by it never becomes an object.

#![warn(missing_docs, unreachable_pub)]

pub mod config;
mod keys;
mod store;

use std::sync::Arc;

use strata_plugin::{BlobHandle, Contracts, OpenContext, Plugin, PluginResult};

use crate::{config::FsConfig, store::FsStore};

/// An opened fs backend: one directory, shared by every handle.
pub struct FsPlugin {
    store: Arc<FsStore>,
}

impl Plugin for FsPlugin {
    const NAME: &'static str = "fs";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "a directory of a local or mounted file system as a blob store (backups without S3)";
    const CONTRACTS: Contracts = Contracts::BLOB;
    type Config = FsConfig;

    /// Creates `root` (and `root/.strata/`) when missing; a root that is a
    /// file, or cannot be created or written, is `invalid_config` naming it.
    async fn open(config: FsConfig, ctx: OpenContext) -> PluginResult<Self> {
        let root = ctx.resolve(&config.root);
        Ok(FsPlugin {
            store: Arc::new(FsStore::open(root, config.sync)?),
        })
    }

    fn blobs(&self) -> Option<BlobHandle> {
        Some(BlobHandle::new(self.store.clone()))
    }

    async fn health(&self) -> PluginResult<String> {
        self.store.health()
    }

    async fn close(&self) -> PluginResult<()> {
        self.store.close();
        Ok(())
    }
}

strata_plugin::export_plugin!(FsPlugin);
