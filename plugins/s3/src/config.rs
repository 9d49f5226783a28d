//! The S3 plugin's configuration.

use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of one S3 backend (`[backends.NAME.config]`).
///
/// Credentials and region may be left out: they then come from the usual
/// AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`), and failing
/// those from the instance metadata service. Secrets are never logged or
/// put into error messages.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (it must exist; the plugin never creates buckets).
    pub bucket: String,
    /// The region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`;
    /// R2 takes `auto`).
    #[serde(default)]
    pub region: Option<String>,
    /// A custom endpoint for S3-compatible stores, e.g.
    /// `https://<account>.r2.cloudflarestorage.com` or `http://127.0.0.1:9000`.
    /// An `http://` endpoint on a loopback host works as given; another
    /// `http://` endpoint needs `allow_http = true`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Prepended to every key (e.g. `strata/`); keys seen through the
    /// contract are relative to it.
    #[serde(default)]
    pub prefix: String,
    /// Access key id (default: `AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key (default: `AWS_SECRET_ACCESS_KEY`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials (default: `AWS_SESSION_TOKEN`).
    #[serde(default)]
    pub session_token: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which S3-compatible
    /// servers expect; `false` = virtual-hosted style (`bucket.endpoint/key`).
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Allow plain `http://` to a non-loopback endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// Multipart part size in MiB (S3's minimum is 5).
    #[serde(default = "default_part_size_mib")]
    #[schemars(range(min = 5, max = 512))]
    pub part_size_mib: u32,
    /// Parts uploaded at once by one multipart write.
    #[serde(default = "default_upload_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub upload_concurrency: u32,
    /// Retries of a failed request (with backoff) before giving up.
    #[serde(default = "default_max_retries")]
    #[schemars(range(max = 20))]
    pub max_retries: u32,
    /// Time allowed to connect, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    #[schemars(range(min = 1))]
    pub connect_timeout_ms: u64,
    /// Time allowed for one request, in milliseconds (`0` = none).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

// Hand-written so `{:?}` can never print a secret.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("access_key_id", &redact(&self.access_key_id))
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("part_size_mib", &self.part_size_mib)
            .field("upload_concurrency", &self.upload_concurrency)
            .finish_non_exhaustive()
    }
}

fn yes() -> bool {
    true
}
fn default_part_size_mib() -> u32 {
    8
}
fn default_upload_concurrency() -> u32 {
    4
}
fn default_max_retries() -> u32 {
    3
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    300_000
}

/// The config's JSON Schema, as published in the manifest.
pub fn schema_json() -> String {
    serde_json::to_string(&schemars::schema_for!(S3Config)).unwrap_or_else(|_| "{}".into())
}

/// Whether `host` (from a URL) is a loopback address or `localhost`.
pub(crate) fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}
