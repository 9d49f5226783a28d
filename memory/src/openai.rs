//! An embedder calling an OpenAI-compatible `/v1/embeddings` endpoint
//! (OpenAI itself, Azure-style gateways, Ollama, vLLM, LocalAI, llama.cpp's
//! server, text-embeddings-inference, …).
//!
//! Each call sends `POST {base_url}/embeddings` with
//! `Authorization: Bearer {api_key}` (when a key is set) and the JSON body
//! `{"model": …, "input": [texts…], "encoding_format": "float"}` (plus
//! `"dimensions"` when [`OpenAiConfig::request_dimensions`] is set), in
//! batches of at most [`OpenAiConfig::batch_size`] texts, one batch after
//! the other. The answer's `data[].embedding` are put back in input order by
//! their `index`; an answer with another number of vectors, a missing or
//! repeated index, or a vector of another length than
//! [`OpenAiConfig::dimension`] is refused ([`EmbedError::BadOutput`]). An
//! HTTP error is reported with its status and the server's
//! `error.message`. The API key is never printed (not in `Debug`, not in
//! errors).
//!
//! # Retries
//!
//! A request answered with 429 (rate limited) or a 5xx status, or failing
//! in transport (connection refused or reset, timeout), is sent again, up
//! to [`OpenAiConfig::max_retries`] times (default 4; 0 never retries).
//! Before retry `n` (1, 2, …) it waits the server's `Retry-After` (seconds;
//! or OpenAI's `retry-after-ms`) when the answer has one, else a "full
//! jitter" backoff: a uniformly random time between 0 and
//! `min(retry_max, retry_base × 2^(n−1))` (defaults 500 ms and 30 s); a
//! `Retry-After` is capped at `retry_max` too. Other statuses (400, 401,
//! 404, …) fail at once. When the retries run out, the error is the last
//! answer's, saying how many attempts were made.

use std::time::Duration;

use crate::embed::{EmbedError, EmbedFuture, Embedder};

/// Where and how to call an OpenAI-compatible embeddings endpoint.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API root, as OpenAI's SDKs take it: `https://api.openai.com/v1`,
    /// `http://localhost:11434/v1` (Ollama); requests go to
    /// `{base_url}/embeddings`.
    pub base_url: String,
    /// The model, e.g. `text-embedding-3-small`.
    pub model: String,
    /// The bearer token; `None` sends no `Authorization` header (local
    /// servers). Never printed.
    pub api_key: Option<String>,
    /// The length of the vectors the model returns (1536 for
    /// `text-embedding-3-small`); other lengths are refused.
    pub dimension: u32,
    /// Also send `"dimensions": dimension` (models that can shorten their
    /// vectors, e.g. OpenAI's text-embedding-3 family). Off by default:
    /// other servers may refuse the field.
    pub request_dimensions: bool,
    /// At most this many texts per request (default 64; at least 1).
    pub batch_size: usize,
    /// The whole-request timeout (default 60 s).
    pub timeout: Duration,
    /// Retries after a 429, a 5xx or a transport error (default 4; see the
    /// [module docs](self#retries)).
    pub max_retries: u32,
    /// The first retry's backoff ceiling (default 500 ms; doubled per retry).
    pub retry_base: Duration,
    /// The longest wait before a retry, `Retry-After` included (default 30 s).
    pub retry_max: Duration,
}

impl OpenAiConfig {
    /// A configuration for `model` at `base_url`, returning `dimension`
    /// floats, without a key, batches of 64, 60 s timeout.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, dimension: u32) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimension,
            request_dimensions: false,
            batch_size: 64,
            timeout: Duration::from_secs(60),
            max_retries: 4,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
        }
    }

    /// Sets the API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("dimension", &self.dimension)
            .field("request_dimensions", &self.request_dimensions)
            .field("batch_size", &self.batch_size)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

/// The OpenAI-compatible HTTP embedder (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    config: OpenAiConfig,
    url: String,
    name: String,
    client: reqwest::Client,
}

impl OpenAiEmbedder {
    /// Builds the client (no request is made: a wrong URL, key or model
    /// shows on the first [`embed`](Embedder::embed)). Its
    /// [`name`](Embedder::name) is `openai:{model}`.
    pub fn new(config: OpenAiConfig) -> Result<OpenAiEmbedder, EmbedError> {
        let name = format!("openai:{}", config.model);
        let fail = |message: String| EmbedError::Failed {
            embedder: name.clone(),
            message,
        };
        if config.dimension == 0 {
            return Err(fail("dimension must be at least 1".into()));
        }
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(fail(format!(
                "base_url {base:?} is not an http:// or https:// URL"
            )));
        }
        // reqwest is built without a rustls crypto provider of its own (the
        // workspace keeps exactly one, ring); install it unless one is.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(OpenAiEmbedder {
            url: format!("{base}/embeddings"),
            name,
            client,
            config: OpenAiConfig {
                batch_size: config.batch_size.max(1),
                ..config
            },
        })
    }

    /// The configuration (the key stays redacted in its `Debug`).
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// One batch, with the retries of the [module docs](self#retries).
    async fn batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut retry = 0u32;
        loop {
            match self.attempt(texts).await {
                Ok(v) => return Ok(v),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retryable { message, wait }) => {
                    if retry >= self.config.max_retries {
                        return Err(EmbedError::Failed {
                            embedder: self.name.clone(),
                            message: format!(
                                "{message} (gave up after {} attempt{})",
                                retry + 1,
                                if retry == 0 { "" } else { "s" }
                            ),
                        });
                    }
                    retry += 1;
                    let ceiling = self
                        .config
                        .retry_base
                        .saturating_mul(1u32 << (retry - 1).min(20))
                        .min(self.config.retry_max);
                    let wait = match wait {
                        Some(w) => w.min(self.config.retry_max),
                        None => ceiling.mul_f64(unit_random()),
                    };
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One request.
    async fn attempt(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Attempt> {
        let failed = |message: String| {
            Attempt::Final(EmbedError::Failed {
                embedder: self.name.clone(),
                message,
            })
        };
        let bad = |message: String| {
            Attempt::Final(EmbedError::BadOutput {
                embedder: self.name.clone(),
                message,
            })
        };
        let mut body = serde_json::json!({
            "model": self.config.model,
            "input": texts,
            "encoding_format": "float",
        });
        if self.config.request_dimensions {
            body["dimensions"] = self.config.dimension.into();
        }
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let transport = |e: reqwest::Error, what: &str| Attempt::Retryable {
            message: format!(
                "POST {}: {what}{}",
                self.url,
                if e.is_timeout() {
                    format!("no answer within {:?}", self.config.timeout)
                } else {
                    error_chain(&e)
                }
            ),
            wait: None,
        };
        let resp = req.send().await.map_err(|e| transport(e, ""))?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| transport(e, "reading the answer: "))?;
        if !status.is_success() {
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|j| {
                    j["error"]["message"]
                        .as_str()
                        .or_else(|| j["error"].as_str())
                        .or_else(|| j["message"].as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.chars().take(300).collect());
            let message = format!("POST {}: HTTP {status}: {detail}", self.url);
            if status.as_u16() == 429 || status.is_server_error() {
                return Err(Attempt::Retryable { message, wait });
            }
            return Err(failed(message));
        }
        let j: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("the answer is not JSON ({e})")))?;
        let data = j["data"]
            .as_array()
            .ok_or_else(|| bad("the answer has no \"data\" array".into()))?;
        if data.len() != texts.len() {
            return Err(bad(format!(
                "{} embeddings for {} texts",
                data.len(),
                texts.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (pos, item) in data.iter().enumerate() {
            let index = match &item["index"] {
                serde_json::Value::Null => pos,
                v => v
                    .as_u64()
                    .map(|i| i as usize)
                    .filter(|i| *i < texts.len())
                    .ok_or_else(|| {
                        bad(format!("data[{pos}].index {v} is not 0..{}", texts.len()))
                    })?,
            };
            let v: Vec<f32> = item["embedding"]
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect())
                .ok_or_else(|| {
                    bad(format!(
                        "data[{pos}].embedding is not an array of numbers (base64 answers are not supported)"
                    ))
                })?;
            if v.len() != self.config.dimension as usize {
                return Err(bad(format!(
                    "a vector of {} dimensions; this embedder is configured for {}",
                    v.len(),
                    self.config.dimension
                )));
            }
            if out[index].replace(v).is_some() {
                return Err(bad(format!("index {index} is answered twice")));
            }
        }
        Ok(out
            .into_iter()
            .map(|v| v.expect("every index answered once"))
            .collect())
    }
}

/// How one request failed.
enum Attempt {
    /// Not worth repeating (bad request, bad key, bad answer).
    Final(EmbedError),
    /// 429, 5xx or transport: try again, after `wait` if the server said.
    Retryable {
        message: String,
        wait: Option<Duration>,
    },
}

/// The server's `retry-after-ms` (OpenAI) or `Retry-After` in seconds (an
/// HTTP date is not read: the backoff applies then).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let num = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    num("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .or_else(|| num("retry-after").map(Duration::from_secs_f64))
}

/// A uniform random number in [0, 1) for the jitter (std's randomly keyed
/// SipHash, fresh keys per call: no RNG dependency for this).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// An error with its sources (reqwest's own message is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Embedder for OpenAiEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> u32 {
        self.config.dimension
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> EmbedFuture<'a> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(self.config.batch_size) {
                out.extend(self.batch(chunk).await?);
            }
            Ok(out)
        })
    }
}
