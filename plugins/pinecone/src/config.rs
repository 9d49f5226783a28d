//! The Pinecone plugin's configuration (`[backends.NAME.config]`).

use schemars::JsonSchema;
use serde::Deserialize;

/// The `X-Pinecone-API-Version` sent unless configured: a version of the
/// data plane that serves dense vector indexes and reports the index's
/// metric in `describe_index_stats`.
pub const DEFAULT_API_VERSION: &str = "2025-04";

/// Configuration of one Pinecone backend.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PineconeConfig {
    /// The API key (never printed). Unset: `PINECONE_API_KEY`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The index's host, as the Pinecone console shows it
    /// (`my-index-abc123.svc.aped-1234.pinecone.io`; `https://` is
    /// added when no scheme is given). Unset: `PINECONE_INDEX_HOST`.
    #[serde(default)]
    pub index_host: Option<String>,
    /// Hosts of further indexes. A Pinecone index has one dimension and
    /// one metric; a collection lives in the index whose dimension and
    /// metric are the collection's (no two indexes may share both).
    #[serde(default)]
    pub extra_index_hosts: Vec<String>,
    /// Prepended to every namespace: a collection `notes` is the namespace
    /// `<namespace_prefix>notes` (one prefix per agent or tenant isolates
    /// their collections).
    #[serde(default)]
    pub namespace_prefix: String,
    /// The data plane's API version (`X-Pinecone-API-Version`).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Deadline of each HTTP request, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1))]
    pub timeout_ms: u64,
    /// Retries of a request answered 429 or 5xx, or not answered at all
    /// (exponential backoff with full jitter, honouring `Retry-After`).
    /// Other 4xx answers are the request's fault and never retried.
    #[serde(default = "default_max_retries")]
    #[schemars(range(max = 20))]
    pub max_retries: u32,
    /// The first retry's backoff ceiling, in milliseconds (doubling per retry, capped at 20 s).
    #[serde(default = "default_retry_base_ms")]
    #[schemars(range(min = 1))]
    pub retry_base_ms: u64,
    /// Pinecone acknowledges a write before every read sees it. 0: do not
    /// wait (the backend claims `vector.eventually_consistent`). Otherwise
    /// each write waits, polling `fetch` (and the namespace's stats for a
    /// delete of everything), until it reads back, for at most this many
    /// milliseconds (then a `timeout` error: the write itself happened).
    #[serde(default)]
    pub read_after_write_ms: u64,
    /// Most records in one upsert request (Pinecone's limit: 1,000).
    #[serde(default = "default_batch_records")]
    #[schemars(range(min = 1, max = 1000))]
    pub batch_max_records: usize,
    /// Most bytes in one upsert request body (Pinecone's limit: 2 MB).
    #[serde(default = "default_batch_bytes")]
    #[schemars(range(min = 65536, max = 2097152))]
    pub batch_max_bytes: usize,
}

impl std::fmt::Debug for PineconeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: say whether there is one, never what it is.
        f.debug_struct("PineconeConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("index_host", &self.index_host)
            .field("extra_index_hosts", &self.extra_index_hosts)
            .field("namespace_prefix", &self.namespace_prefix)
            .field("api_version", &self.api_version)
            .field("read_after_write_ms", &self.read_after_write_ms)
            .finish_non_exhaustive()
    }
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_retries() -> u32 {
    5
}
fn default_retry_base_ms() -> u64 {
    250
}
fn default_batch_records() -> usize {
    200
}
fn default_batch_bytes() -> usize {
    2 * 1024 * 1024 - 64 * 1024
}

#[cfg(test)]
mod tests {
    use strata_plugin::{ErrorKind, parse_config};

    use super::*;

    #[test]
    fn defaults_apply_and_unknown_keys_are_named() {
        let c = parse_config::<PineconeConfig>("pinecone", "{}").unwrap();
        assert_eq!(c.api_version, DEFAULT_API_VERSION);
        assert_eq!(c.max_retries, 5);
        let e = parse_config::<PineconeConfig>("pinecone", r#"{"index": "x"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("index"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = parse_config::<PineconeConfig>("pinecone", r#"{"api_key": "pc-s3cret"}"#).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
