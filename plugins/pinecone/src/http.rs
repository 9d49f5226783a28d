//! HTTP to one index's data plane: headers, retries, and Pinecone's errors
//! mapped onto strata's error kinds.
//!
//! A request answered 429 or 5xx, or not answered (connect error,
//! timeout), is retried up to `max_retries` times after a backoff drawn
//! uniformly from `[0, min(retry_base_ms · 2^attempt, 20 s)]` ("full
//! jitter"), or after the `Retry-After` seconds the answer asked for
//! (capped at 60 s). Every other 4xx is the request's fault and returned
//! at once: a 400 is `invalid_input` with Pinecone's message, 401 / 403
//! `connection` (the key was refused), 404 `not_found`. Messages never
//! contain the API key (it travels only in the `Api-Key` header).

use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value as Json;
use strata_plugin::{ErrorKind, PluginError, PluginResult};

use crate::config::PineconeConfig;

/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A client of one index host.
#[derive(Clone)]
pub(crate) struct IndexClient {
    http: reqwest::Client,
    /// `https://host` (no trailing slash).
    base: String,
    api_key: Option<String>,
    api_version: String,
    max_retries: u32,
    retry_base: Duration,
}

/// `host` with a scheme (`https://` when it has none), no trailing slash.
pub(crate) fn base_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("https://{host}")
    }
}

impl IndexClient {
    pub(crate) fn new(http: reqwest::Client, host: &str, cfg: &PineconeConfig) -> IndexClient {
        IndexClient {
            http,
            base: base_url(host),
            api_key: cfg.api_key.clone(),
            api_version: cfg.api_version.clone(),
            max_retries: cfg.max_retries,
            retry_base: Duration::from_millis(cfg.retry_base_ms),
        }
    }

    /// The host URL (for messages).
    pub(crate) fn host(&self) -> &str {
        &self.base
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post(&self, path: &str, body: &Json, what: &str) -> PluginResult<Json> {
        let bytes = serde_json::to_vec(body).map_err(|e| PluginError::internal(e.to_string()))?;
        self.send(Method::POST, path, &[], Some(bytes), what).await
    }

    /// `POST path` with a body already serialised.
    pub(crate) async fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
        what: &str,
    ) -> PluginResult<Json> {
        self.send(Method::POST, path, &[], Some(body), what).await
    }

    /// `GET path?query`.
    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> PluginResult<Json> {
        self.send(Method::GET, path, query, None, what).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        what: &str,
    ) -> PluginResult<Json> {
        let mut url = format!("{}/{path}", self.base);
        if !query.is_empty() {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                q.append_pair(k, v);
            }
            url.push('?');
            url.push_str(&q.finish());
        }
        let mut attempt = 0u32;
        loop {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("X-Pinecone-API-Version", &self.api_version)
                .header("Accept", "application/json");
            if let Some(key) = &self.api_key {
                req = req.header("Api-Key", key);
            }
            if let Some(b) = &body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(b.clone());
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return if text.trim().is_empty() {
                            Ok(Json::Null)
                        } else {
                            serde_json::from_str(&text).map_err(|e| {
                                PluginError::internal(format!(
                                    "{what}: Pinecone's answer is not JSON: {e}"
                                ))
                            })
                        };
                    }
                    let retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    Attempt {
                        error: self.status_error(status, &text, what),
                        retry,
                        retry_after,
                    }
                }
                Err(e) => Attempt {
                    error: transport_error(&e, &self.base, what),
                    retry: true,
                    retry_after: None,
                },
            };
            if !outcome.retry || attempt >= self.max_retries {
                let mut e = outcome.error;
                if outcome.retry && attempt > 0 {
                    e = PluginError::new(
                        e.kind(),
                        format!("{} (after {} retries)", e.message(), attempt),
                    );
                }
                return Err(e);
            }
            let wait = match outcome.retry_after {
                Some(d) => d,
                None => {
                    let ceiling = self
                        .retry_base
                        .saturating_mul(1u32 << attempt.min(16))
                        .min(MAX_BACKOFF);
                    let ms = rand::rng().random_range(0..=ceiling.as_millis() as u64);
                    Duration::from_millis(ms)
                }
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn status_error(&self, status: StatusCode, body: &str, what: &str) -> PluginError {
        let parsed: Option<Json> = serde_json::from_str(body).ok();
        let message = parsed
            .as_ref()
            .and_then(|j| {
                j.get("message")
                    .or_else(|| j.get("error").and_then(|e| e.get("message")))
                    .and_then(Json::as_str)
            })
            .map(str::to_string)
            .unwrap_or_else(|| body.chars().take(300).collect());
        let (kind, text) = match status.as_u16() {
            400 | 413 | 422 => (
                ErrorKind::InvalidInput,
                format!("{what}: Pinecone refused the request: {message}"),
            ),
            401 | 403 => (
                ErrorKind::Connection,
                format!(
                    "{what}: Pinecone refused the API key ({status}: {message}); check api_key / PINECONE_API_KEY"
                ),
            ),
            404 => (
                ErrorKind::NotFound,
                format!("{what}: not found at {} ({message})", self.base),
            ),
            429 => (
                ErrorKind::Busy,
                format!("{what}: Pinecone is rate limiting ({message})"),
            ),
            s if s >= 500 => (
                ErrorKind::Connection,
                format!("{what}: Pinecone answered {status}: {message}"),
            ),
            _ => (
                ErrorKind::Internal,
                format!("{what}: Pinecone answered {status}: {message}"),
            ),
        };
        PluginError::new(kind, text).with_backend_code(status.as_u16().to_string())
    }
}

struct Attempt {
    error: PluginError,
    retry: bool,
    retry_after: Option<Duration>,
}

fn transport_error(e: &reqwest::Error, base: &str, what: &str) -> PluginError {
    if e.is_timeout() {
        PluginError::new(
            ErrorKind::Timeout,
            format!("{what}: {base} did not answer within timeout_ms"),
        )
    } else {
        // reqwest's Display names the URL and the cause, never headers.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        PluginError::new(
            ErrorKind::Connection,
            format!("{what}: cannot reach {base}: {msg}"),
        )
    }
}
