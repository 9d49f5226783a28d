//! strata's Pinecone plugin (the managed cloud tier), loaded as a `.so`.
//!
//! - Written on the plugin kit (`strata-plugin`): the kit exports the
//!   library's root module and manifest, parses the config (errors name the
//!   key) and contains panics.
//! - Pinecone's REST data plane over `reqwest` + rustls (ring), with a
//!   pinned `X-Pinecone-API-Version` (`api_version`), on the plugin's own
//!   tokio runtime: every call answers [`Runs::Async`]. Retries, backoff and
//!   error mapping live in `http.rs`.
//! - `open` asks each configured index for its `describe_index_stats`
//!   (one authenticated round trip each): an unreachable host or a refused
//!   key is a `connection` error at open time (`strata check` reports it),
//!   and the answer gives each index's dimension and metric.
//! - The vector contract (`vector.rs`): a collection is a namespace of the
//!   index of its dimension and metric; metadata laid out for exact filters
//!   (`layout.rs`, `filter.rs`). Hybrid search is not offered: a dense
//!   index has no lexical side.

#![warn(missing_docs, unreachable_pub)]

pub mod config;
mod filter;
mod http;
mod layout;
mod vector;

use std::{collections::HashSet, sync::Arc, time::Duration};

use serde_json::Value as Json;
use strata_plugin::{
    Contracts, ErrorKind, OpenContext, Plugin, PluginError, PluginResult, Runs, VectorHandle,
    capabilities as cap,
};

use crate::{
    config::PineconeConfig,
    http::IndexClient,
    vector::{Index, PineconeVectors, metric_name, parse_metric},
};

/// An opened Pinecone backend.
pub struct PineconePlugin {
    vectors: Arc<PineconeVectors>,
    hosts: Vec<String>,
}

fn invalid(msg: impl Into<String>) -> PluginError {
    PluginError::new(ErrorKind::InvalidConfig, msg)
}

/// Checks what the config's types cannot say.
fn check(cfg: &PineconeConfig) -> PluginResult<()> {
    if cfg.timeout_ms == 0 {
        return Err(invalid(
            "pinecone config: key `timeout_ms`: must be at least 1",
        ));
    }
    if cfg.max_retries > 20 {
        return Err(invalid("pinecone config: key `max_retries`: at most 20"));
    }
    if !(1..=1000).contains(&cfg.batch_max_records) {
        return Err(invalid(
            "pinecone config: key `batch_max_records`: 1 to 1000 (Pinecone's limit per upsert)",
        ));
    }
    if !(64 * 1024..=2 * 1024 * 1024).contains(&cfg.batch_max_bytes) {
        return Err(invalid(
            "pinecone config: key `batch_max_bytes`: 65536 to 2097152 (Pinecone's 2 MB per request)",
        ));
    }
    if cfg.api_version.trim().is_empty() {
        return Err(invalid(
            "pinecone config: key `api_version`: must not be empty",
        ));
    }
    Ok(())
}

impl Plugin for PineconePlugin {
    const NAME: &'static str = "pinecone";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Pinecone over its REST data plane: one namespace per collection, exact filters, retries";
    const CONTRACTS: Contracts = Contracts::VECTOR;
    const CAPABILITIES: &'static [&'static str] = &[
        cap::VECTOR_SCAN,
        cap::VECTOR_ANN,
        cap::VECTOR_EVENTUALLY_CONSISTENT,
    ];
    const RUNS: Runs = Runs::Async;
    type Config = PineconeConfig;

    async fn open(mut cfg: PineconeConfig, _ctx: OpenContext) -> PluginResult<Self> {
        check(&cfg)?;
        if cfg.api_key.is_none() {
            cfg.api_key = std::env::var("PINECONE_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
        }
        let first = cfg
            .index_host
            .clone()
            .or_else(|| std::env::var("PINECONE_INDEX_HOST").ok())
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    "no Pinecone index: set `index_host` in the backend's config or PINECONE_INDEX_HOST (the index's host, from the Pinecone console)",
                )
            })?;
        let mut hosts = vec![first];
        hosts.extend(cfg.extra_index_hosts.iter().cloned());
        // Installs ring as this plugin's rustls provider (each .so links
        // its own rustls; reqwest is built without one).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| PluginError::internal(format!("HTTP client: {e}")))?;
        let mut indexes = Vec::new();
        let mut seen = HashSet::new();
        for host in &hosts {
            let client = IndexClient::new(http.clone(), host, &cfg);
            let stats = client
                .post(
                    "describe_index_stats",
                    &serde_json::json!({}),
                    "describe_index_stats",
                )
                .await
                .map_err(|e| {
                    let kind = match e.kind() {
                        ErrorKind::Timeout | ErrorKind::Internal | ErrorKind::NotFound => {
                            ErrorKind::Connection
                        }
                        k => k,
                    };
                    PluginError::new(
                        kind,
                        format!(
                            "cannot use the Pinecone index at {}: {}",
                            client.host(),
                            e.message()
                        ),
                    )
                })?;
            let dimension = stats
                .get("dimension")
                .and_then(Json::as_u64)
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| *d > 0)
                .ok_or_else(|| {
                    PluginError::new(
                        ErrorKind::Connection,
                        format!(
                            "the index at {} did not report its dimension",
                            client.host()
                        ),
                    )
                })?;
            let metric_text = stats.get("metric").and_then(Json::as_str).unwrap_or("");
            let metric = parse_metric(metric_text).ok_or_else(|| {
                invalid(format!(
                    "the index at {} reported metric {metric_text:?}: strata needs a dense index \
                     (cosine, dotproduct or euclidean) and an api_version (2025-01 or later) that \
                     reports it",
                    client.host()
                ))
            })?;
            if stats
                .get("vectorType")
                .and_then(Json::as_str)
                .is_some_and(|t| t != "dense")
            {
                return Err(invalid(format!(
                    "the index at {} is not a dense index: the vector contract needs dense vectors",
                    client.host()
                )));
            }
            if !seen.insert((dimension, metric.code())) {
                return Err(invalid(format!(
                    "two of the configured indexes have dimension {dimension} and metric {}: a \
                     collection's index must be unambiguous (extra_index_hosts)",
                    metric_name(metric)
                )));
            }
            indexes.push(Index {
                client,
                dimension,
                metric,
            });
        }
        let hosts = indexes
            .iter()
            .map(|i| i.client.host().to_string())
            .collect();
        Ok(PineconePlugin {
            vectors: Arc::new(PineconeVectors::new(cfg, indexes)),
            hosts,
        })
    }

    /// `vector.eventually_consistent` unless writes wait until they read back.
    fn capabilities(&self) -> Vec<String> {
        Self::CAPABILITIES
            .iter()
            .filter(|c| {
                **c != cap::VECTOR_EVENTUALLY_CONSISTENT || !self.vectors.waits_for_writes()
            })
            .map(|c| c.to_string())
            .collect()
    }

    fn vectors(&self) -> Option<VectorHandle> {
        Some(VectorHandle::new(self.vectors.clone()))
    }

    async fn health(&self) -> PluginResult<String> {
        let n = self.vectors.collection_count().await?;
        Ok(format!(
            "pinecone: {} index(es) ({}), {n} collections under this prefix",
            self.hosts.len(),
            self.hosts.join(", ")
        ))
    }

    async fn close(&self) -> PluginResult<()> {
        self.vectors.close();
        Ok(())
    }
}

strata_plugin::export_plugin!(PineconePlugin);
