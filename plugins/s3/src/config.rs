//! The S3 plugin's configuration, and the object_store client it describes.

use std::time::Duration;

use object_store::{ClientOptions, RetryConfig, aws::AmazonS3, aws::AmazonS3Builder};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::S3Error;

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

impl S3Config {
    /// The client this config describes, after the checks the schema cannot
    /// express (each error names its key). No request is made: a wrong
    /// endpoint, bucket or credential shows on the first call (and in
    /// `health`).
    pub(crate) fn client(&self) -> Result<AmazonS3, S3Error> {
        if self.bucket.trim().is_empty() {
            return Err(S3Error::Config("key `bucket` must not be empty".into()));
        }
        let mut client = ClientOptions::new()
            .with_connect_timeout(Duration::from_millis(self.connect_timeout_ms));
        client = if self.request_timeout_ms == 0 {
            client.with_timeout_disabled()
        } else {
            client.with_timeout(Duration::from_millis(self.request_timeout_ms))
        };
        // Credentials and region fall back to the AWS_* environment variables.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_retry(RetryConfig {
                max_retries: self.max_retries as usize,
                retry_timeout: Duration::from_secs(60),
                ..Default::default()
            });
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint).map_err(|e| {
                S3Error::Config(format!("key `endpoint`: {endpoint:?} is not a URL: {e}"))
            })?;
            let host = url.host().ok_or_else(|| {
                S3Error::Config(format!("key `endpoint`: {endpoint:?} has no host"))
            })?;
            match url.scheme() {
                "https" => {}
                "http" if self.allow_http || is_loopback(&host) => {
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
        b = b.with_region(self.region());
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &self.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if let Some(t) = &self.session_token {
            b = b.with_token(t);
        }
        if !self.prefix.is_empty() && (self.prefix.starts_with('/') || self.prefix.contains("//")) {
            return Err(S3Error::Config(format!(
                "key `prefix`: {:?} must not start with `/` or contain `//`",
                self.prefix
            )));
        }
        b.with_client_options(client)
            .build()
            .map_err(|e| S3Error::Config(e.to_string()))
    }
}

impl S3Config {
    /// The region: the config's, else `AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// then `us-east-1`.
    pub(crate) fn region(&self) -> String {
        self.region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into())
    }

    /// The bucket's URL, ending in `/`, as object_store addresses it:
    /// `endpoint/bucket/` in path style, `scheme://bucket.host/` otherwise;
    /// AWS itself without an endpoint.
    pub(crate) fn bucket_url(&self) -> Result<url::Url, S3Error> {
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region()));
        let bad = |e: String| S3Error::Config(format!("key `endpoint`: {endpoint:?}: {e}"));
        let mut url =
            url::Url::parse(endpoint.trim_end_matches('/')).map_err(|e| bad(e.to_string()))?;
        if self.path_style {
            url.path_segments_mut()
                .map_err(|()| bad("cannot be a base URL".into()))?
                .pop_if_empty()
                .push(&self.bucket)
                .push("");
        } else {
            let host = url
                .host_str()
                .ok_or_else(|| bad("no host".into()))?
                .to_string();
            url.set_host(Some(&format!("{}.{host}", self.bucket)))
                .map_err(|e| bad(e.to_string()))?;
            url.set_path("/");
        }
        Ok(url)
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

/// Whether `host` (from a URL) is a loopback address or `localhost`.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}
