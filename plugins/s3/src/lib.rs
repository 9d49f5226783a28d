//! strata's S3 plugin: the blob contract on S3 and S3-compatible stores
//! (AWS S3, Cloudflare R2, MinIO, moto …), loaded as a `.so`.
//!
//! - Written on the plugin kit (`strata-plugin`): the kit exports the
//!   library's root module and manifest, parses the config (errors name the
//!   key), contains panics, and runs each call where the backend says.
//! - The client is arrow-rs [`object_store`]'s `AmazonS3` (request signing,
//!   retries with backoff, multipart uploads, paginated listing): nothing
//!   S3-specific is hand-rolled here.
//! - Every call (and `open`, `health`, `close`) runs as a task on the
//!   plugin's own tokio runtime (`Runs::Task`): it makes progress while the
//!   host does not poll, and runs to completion even if the host drops it.
//! - Addressing: path-style by default (what S3-compatible servers expect;
//!   AWS accepts it too), an `http://` endpoint is allowed as given when its
//!   host is loopback (local test servers) and otherwise only with
//!   `allow_http = true`.
//! - Errors keep the HTTP status as the backend code (see `error.rs` for the
//!   mapping). Secrets never reach a log line or an error message (the
//!   config's `Debug` redacts them).

#![warn(missing_docs, unreachable_pub)]

mod blob;
pub mod config;
mod error;
mod order;
mod uploads;

use std::sync::Arc;

use strata_plugin::{BlobHandle, Contracts, OpenContext, Plugin, PluginResult, Runs};

use crate::{blob::S3Blobs, config::S3Config};

/// An opened S3 backend: one bucket (and prefix), shared by every handle.
pub struct S3Plugin {
    blobs: Arc<S3Blobs>,
}

impl Plugin for S3Plugin {
    const NAME: &'static str = "s3";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "S3 and S3-compatible object stores (AWS S3, R2, MinIO) on object_store";
    const CONTRACTS: Contracts = Contracts::BLOB;
    // `health` lists the bucket: a request on the plugin's runtime, like
    // every blob call.
    const RUNS: Runs = Runs::Task;
    type Config = S3Config;

    /// Installs ring as the process-level rustls provider of this plugin's
    /// copy of rustls (each plugin `.so` links its own): reqwest is built
    /// without a provider of its own so that the workspace's rustls keeps
    /// exactly one (see Cargo.toml). A provider already installed is kept.
    fn init() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    /// Builds the client. No request is made: a wrong endpoint, bucket or
    /// credential shows on the first call (and in `health`).
    async fn open(config: S3Config, _ctx: OpenContext) -> PluginResult<Self> {
        Ok(S3Plugin {
            blobs: Arc::new(S3Blobs::open(config)?),
        })
    }

    fn blobs(&self) -> Option<BlobHandle> {
        Some(BlobHandle::new(self.blobs.clone()))
    }

    async fn health(&self) -> PluginResult<String> {
        Ok(self.blobs.health().await?)
    }
}

strata_plugin::export_plugin!(S3Plugin);
