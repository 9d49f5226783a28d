//! strata's Qdrant plugin (tier 3 of the scaling path), loaded as a `.so`.
//!
//! - Written on the plugin kit (`strata-plugin`): the kit exports the
//!   library's root module and manifest, parses the config (errors name the
//!   key) and contains panics.
//! - `qdrant-client` (gRPC, tonic) on the plugin's own tokio runtime: every
//!   call answers [`Runs::Async`], so the client's sockets and timers
//!   register with the plugin's runtime while the caller's thread polls.
//! - `open` makes one authenticated round trip (listing collections), so an
//!   unreachable server or a refused API key is a `connection` error at
//!   open time (`strata check` reports it), within `timeout_ms`.
//! - Collection-per-agent isolation: every collection lives under the
//!   backend's `collection_prefix`.
//! - The vector contract (`vector.rs`): records as points with UUID v5 ids
//!   (`payload.rs`), every filter operator translated exactly (`filter.rs`),
//!   hybrid search as server-side RRF over a dense and a sparse (BM25-style)
//!   ranking (the kit's `sparse` module).

#![warn(missing_docs, unreachable_pub)]

pub mod config;
mod error;
mod filter;
mod payload;
mod vector;

use std::{sync::Arc, time::Duration};

use qdrant_client::Qdrant;
use strata_plugin::{
    Contracts, ErrorKind, OpenContext, Plugin, PluginError, PluginResult, Runs, VectorHandle,
    capabilities as cap,
};

use crate::config::QdrantConfig;

/// An opened Qdrant backend.
pub struct QdrantPlugin {
    vectors: Arc<vector::QdrantVectors>,
    url: String,
}

/// `config.url`, else `QDRANT_URL`.
fn url(cfg: &QdrantConfig) -> PluginResult<String> {
    cfg.url
        .clone()
        .or_else(|| std::env::var("QDRANT_URL").ok())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            PluginError::new(
                ErrorKind::InvalidConfig,
                "no Qdrant server: set `url` in the backend's config or QDRANT_URL (the gRPC endpoint, http://host:6334)",
            )
        })
}

impl Plugin for QdrantPlugin {
    const NAME: &'static str = "qdrant";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Qdrant over gRPC: HNSW, quantization, server-side hybrid RRF, one prefix per agent";
    const CONTRACTS: Contracts = Contracts::VECTOR;
    const CAPABILITIES: &'static [&'static str] = &[
        cap::VECTOR_HYBRID,
        cap::VECTOR_SCAN,
        cap::VECTOR_ANN,
        cap::VECTOR_PERSISTENT_INDEX,
    ];
    const RUNS: Runs = Runs::Async;
    type Config = QdrantConfig;

    async fn open(mut cfg: QdrantConfig, _ctx: OpenContext) -> PluginResult<Self> {
        let url = url(&cfg)?;
        if cfg.api_key.is_none() {
            cfg.api_key = std::env::var("QDRANT_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let client = Qdrant::from_url(&url)
            .api_key(cfg.api_key.clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| PluginError::new(ErrorKind::InvalidConfig, format!("url {url:?}: {e}")))?;
        let vectors = Arc::new(vector::QdrantVectors::new(client, cfg));
        // One authenticated round trip, bounded by the timeout even if the
        // connection hangs.
        match tokio::time::timeout(timeout + Duration::from_millis(500), vectors.names()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let kind = match e.kind() {
                    ErrorKind::Timeout | ErrorKind::Internal => ErrorKind::Connection,
                    k => k,
                };
                return Err(PluginError::new(
                    kind,
                    format!("cannot use the Qdrant server at {url}: {}", e.message()),
                ));
            }
            Err(_) => {
                return Err(PluginError::new(
                    ErrorKind::Connection,
                    format!("the Qdrant server at {url} did not answer within timeout_ms"),
                ));
            }
        }
        Ok(QdrantPlugin { vectors, url })
    }

    fn vectors(&self) -> Option<VectorHandle> {
        Some(VectorHandle::new(self.vectors.clone()))
    }

    async fn health(&self) -> PluginResult<String> {
        let n = self.vectors.names().await?.len();
        Ok(format!(
            "qdrant at {}: {n} collections under this prefix",
            self.url
        ))
    }

    async fn close(&self) -> PluginResult<()> {
        self.vectors.close();
        Ok(())
    }
}

strata_plugin::export_plugin!(QdrantPlugin);
