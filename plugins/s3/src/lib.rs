//! strata's S3 plugin: the blob contract on S3 and S3-compatible stores
//! (AWS S3, Cloudflare R2, MinIO, moto …), loaded as a `.so`.
//!
//! - The client is arrow-rs [`object_store`]'s `AmazonS3` (request signing,
//!   retries with backoff, multipart uploads, paginated listing): nothing
//!   S3-specific is hand-rolled here.
//! - The plugin owns its tokio runtime (a `PluginRuntime` from plugin-api, two worker
//!   threads): tokio's context is a thread-local per copy of tokio, so the
//!   host's runtime is invisible in here. Every call is spawned on it and
//!   the host awaits the join handle ([`spawn`]); a panic in a task comes
//!   back as an `internal` error.
//! - Addressing: path-style by default (what S3-compatible servers expect;
//!   AWS accepts it too), an `http://` endpoint is allowed as given when its
//!   host is loopback (local test servers) and otherwise only with
//!   `allow_http = true`.
//! - Errors keep the HTTP status as the backend code; see [`error`](crate)
//!   for the mapping. Secrets never reach a log line or an error message
//!   (the config's `Debug` redacts them).

#![warn(missing_docs, unreachable_pub)]
#![allow(non_local_definitions)]

mod blob;
pub mod config;
mod error;

use std::{sync::Arc, time::Duration};

use abi_stable::{
    export_root_module,
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RString},
};
use object_store::{ClientOptions, RetryConfig, aws::AmazonS3Builder};
use strata_plugin_api::{
    API_VERSION, Backend, Backend_TO, BackendBox, ErrorKind, Manifest, PluginError, PluginMod,
    PluginModRef, PluginResult,
    blob::{BlobStore_TO, BlobStoreBox},
    contracts,
    ffi::{catch, ready},
    runtime::PluginRuntime,
    sql::{PluginFuture, SqlConnectionBox},
    vector::VectorStoreBox,
};

use crate::{blob::S3Blobs, config::S3Config, error::S3Error};

/// The plugin's own tokio runtime (object_store needs one; the host's is
/// invisible to this copy of tokio); ring becomes the rustls provider first.
static RUNTIME: PluginRuntime = PluginRuntime::new("strata-s3", 2).on_start(install_tls_provider);

/// Installs ring as the process-level rustls provider of this plugin's copy
/// of rustls (each plugin `.so` links its own): reqwest is built without a
/// provider of its own so that the workspace's rustls keeps exactly one
/// (see Cargo.toml). A provider already installed is kept.
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs `fut` as a task on the plugin's runtime
/// ([`PluginRuntime::spawn`]): an upload keeps streaming while the host is
/// busy elsewhere, and a call the host stops awaiting still finishes (a
/// multipart upload is completed or aborted, never left half-done); a
/// panic comes back as an error.
pub(crate) fn spawn<T: Send + 'static>(
    fut: impl Future<Output = PluginResult<T>> + Send + 'static,
) -> PluginFuture<T> {
    RUNTIME.spawn(fut)
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
        name: "s3".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
        description: "S3 and S3-compatible object stores (AWS S3, R2, MinIO) on object_store"
            .into(),
        contracts: contracts::BLOB,
        capabilities: Default::default(),
        dialect: "".into(),
        config_schema: config::schema_json().into(),
    }
}

/// Opens a backend from its JSON config. No request is made: a wrong
/// endpoint, bucket or credential shows on the first call (and in `health`).
pub extern "C" fn open(config_json: RString) -> PluginFuture<BackendBox> {
    let built = catch(|| {
        let cfg: S3Config = serde_json::from_str(&config_json)
            .map_err(|e| PluginError::new(ErrorKind::InvalidConfig, format!("s3 config: {e}")))?;
        build(cfg).map_err(PluginError::from)
    });
    ready(built.map(|blobs| Backend_TO::from_value(S3Backend { blobs }, TD_Opaque)))
}

fn build(cfg: S3Config) -> Result<S3Blobs, S3Error> {
    install_tls_provider();
    if cfg.bucket.trim().is_empty() {
        return Err(S3Error::Config("key `bucket` must not be empty".into()));
    }
    let mut client =
        ClientOptions::new().with_connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    client = if cfg.request_timeout_ms == 0 {
        client.with_timeout_disabled()
    } else {
        client.with_timeout(Duration::from_millis(cfg.request_timeout_ms))
    };
    // Credentials and region fall back to the AWS_* environment variables.
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&cfg.bucket)
        .with_virtual_hosted_style_request(!cfg.path_style)
        .with_retry(RetryConfig {
            max_retries: cfg.max_retries as usize,
            retry_timeout: Duration::from_secs(60),
            ..Default::default()
        });
    if let Some(endpoint) = &cfg.endpoint {
        let url = url::Url::parse(endpoint).map_err(|e| {
            S3Error::Config(format!("key `endpoint`: {endpoint:?} is not a URL: {e}"))
        })?;
        let host = url
            .host()
            .ok_or_else(|| S3Error::Config(format!("key `endpoint`: {endpoint:?} has no host")))?;
        match url.scheme() {
            "https" => {}
            "http" if cfg.allow_http || config::is_loopback(&host) => {
                client = client.with_allow_http(true);
            }
            "http" => {
                return Err(S3Error::Config(format!(
                    "key `endpoint`: {endpoint:?} is plain http on a non-loopback host; use https or set allow_http = true"
                )));
            }
            other => {
                return Err(S3Error::Config(format!(
                    "key `endpoint`: scheme {other:?} is not http or https"
                )));
            }
        }
        b = b.with_endpoint(endpoint.trim_end_matches('/'));
    }
    let region = cfg
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    b = b.with_region(region);
    if let Some(k) = &cfg.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = &cfg.secret_access_key {
        b = b.with_secret_access_key(s);
    }
    if let Some(t) = &cfg.session_token {
        b = b.with_token(t);
    }
    if !cfg.prefix.is_empty() && (cfg.prefix.starts_with('/') || cfg.prefix.contains("//")) {
        return Err(S3Error::Config(format!(
            "key `prefix`: {:?} must not start with `/` or contain `//`",
            cfg.prefix
        )));
    }
    let store = b
        .with_client_options(client)
        .build()
        .map_err(|e| S3Error::Config(e.to_string()))?;
    Ok(S3Blobs {
        store: Arc::new(store),
        bucket: cfg.bucket,
        prefix: cfg.prefix,
        part_size: cfg.part_size_mib as usize * 1024 * 1024,
        concurrency: cfg.upload_concurrency.max(1) as usize,
    })
}

struct S3Backend {
    blobs: S3Blobs,
}

impl Backend for S3Backend {
    fn sql(&self) -> ROption<SqlConnectionBox> {
        ROption::RNone
    }

    fn vectors(&self) -> ROption<VectorStoreBox> {
        ROption::RNone
    }

    fn health(&self) -> PluginFuture<RString> {
        let blobs = self.blobs.clone();
        spawn(async move { Ok(blobs.health().await.map(RString::from)?) })
    }

    fn close(&self) -> PluginFuture<()> {
        ready(Ok(()))
    }

    fn blobs(&self) -> ROption<BlobStoreBox> {
        ROption::RSome(BlobStore_TO::from_value(self.blobs.clone(), TD_Opaque))
    }
}
