//! The Qdrant plugin's configuration (`[backends.NAME.config]`).

use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of one Qdrant backend.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QdrantConfig {
    /// The server's gRPC endpoint (`http://host:6334`). Unset: the
    /// `QDRANT_URL` environment variable, as AgentOS reads it.
    #[serde(default)]
    pub url: Option<String>,
    /// The API key (never printed). Unset: `QDRANT_API_KEY` when set.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Prepended to every collection name on the server: one prefix per
    /// agent or tenant isolates their collections (`agent7_`). A backend
    /// lists, opens and drops only the collections under its prefix.
    #[serde(default)]
    pub collection_prefix: String,
    /// Deadline of each request (and of connecting), in milliseconds.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1))]
    pub timeout_ms: u64,
    /// New collections keep vectors and the HNSW graph on disk (memory-mapped).
    #[serde(default)]
    pub on_disk: bool,
    /// Quantization of new collections' dense vectors: `none`, `scalar`
    /// (int8) or `binary`; searches rescore with the original vectors.
    #[serde(default)]
    pub quantization: Quantization,
    /// HNSW `m` of new collections (links per node).
    #[serde(default = "default_hnsw_m")]
    #[schemars(range(min = 4, max = 128))]
    pub hnsw_m: u32,
    /// HNSW `ef_construct` of new collections.
    #[serde(default = "default_hnsw_ef_construction")]
    #[schemars(range(min = 4, max = 4096))]
    pub hnsw_ef_construction: u32,
    /// `hnsw_ef` of every query (candidates explored); a query may ask for
    /// another with the `ef_search` option.
    #[serde(default = "default_hnsw_ef_search")]
    #[schemars(range(min = 1, max = 65536))]
    pub hnsw_ef_search: u32,
    /// Shards of new collections.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub shard_number: u32,
    /// Replicas of each shard of new collections (a cluster's setting).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replication_factor: u32,
    /// Most points sent in one upsert request; larger upserts are split.
    #[serde(default = "default_batch_points")]
    #[schemars(range(min = 1))]
    pub batch_max_points: usize,
    /// Most bytes (estimated) sent in one upsert request; larger upserts are
    /// split (the server's gRPC limit is 32 MiB by default).
    #[serde(default = "default_batch_bytes")]
    #[schemars(range(min = 1024))]
    pub batch_max_bytes: usize,
}

/// Quantization of new collections.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// Full `f32` vectors only.
    #[default]
    None,
    /// int8 scalar quantization (4× smaller), rescored.
    Scalar,
    /// 1-bit binary quantization (32× smaller), oversampled and rescored.
    Binary,
}

impl Quantization {
    /// The name used in config and stats.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Scalar => "scalar",
            Quantization::Binary => "binary",
        }
    }
}

impl std::fmt::Debug for QdrantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: say whether there is one, never what it is.
        f.debug_struct("QdrantConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("collection_prefix", &self.collection_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("quantization", &self.quantization)
            .finish_non_exhaustive()
    }
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_hnsw_m() -> u32 {
    16
}
fn default_hnsw_ef_construction() -> u32 {
    128
}
fn default_hnsw_ef_search() -> u32 {
    128
}
fn one() -> u32 {
    1
}
fn default_batch_points() -> usize {
    512
}
fn default_batch_bytes() -> usize {
    16 << 20
}

#[cfg(test)]
mod tests {
    use strata_plugin::{ErrorKind, parse_config};

    use super::*;

    #[test]
    fn defaults_apply_and_unknown_keys_are_named() {
        let c = parse_config::<QdrantConfig>("qdrant", "{}").unwrap();
        assert_eq!(c.quantization, Quantization::None);
        assert_eq!(c.timeout_ms, 10_000);
        let e = parse_config::<QdrantConfig>("qdrant", r#"{"apikey": "x"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("apikey"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = parse_config::<QdrantConfig>("qdrant", r#"{"api_key": "s3cret-key"}"#).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
