//! `OpenAiEmbedder` against a fake OpenAI embeddings server run inside the
//! test: a small HTTP/1.1 server (std::net, keep-alive) implementing the
//! documented `POST /v1/embeddings` request and response shape — bearer
//! auth, `{"model", "input": [..], "encoding_format"}` in,
//! `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
//! "model", "usage"}` out (data deliberately in reverse order: clients must
//! use `index`), and errors as `{"error": {"message", "type", "param",
//! "code"}}` with 401 for a wrong key and 404 for an unknown model. It is a
//! faithful fake of the documented shape, not the real service: nothing
//! here talks to OpenAI.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use strata_memory::{EmbedError, Embedder, OpenAiConfig, OpenAiEmbedder};

const KEY: &str = "sk-test-0123456789abcdef";
const MODEL: &str = "text-embedding-fake";

/// A scripted answer: (status, `Retry-After` value); status 0 closes the
/// connection unanswered.
type Scripted = (u16, Option<&'static str>);

/// What the fake answers with.
#[derive(Clone)]
struct Fake {
    /// Length of the vectors it returns.
    dimension: usize,
    /// Seconds to wait before answering.
    delay: Duration,
    /// Every request's body, in order.
    seen: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Answers given before the normal ones, first to last: (status,
    /// `Retry-After` value); status 0 closes the connection unanswered.
    script: Arc<Mutex<VecDeque<Scripted>>>,
    /// When each request arrived.
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Fake {
    fn start(dimension: usize, delay: Duration) -> (String, Fake) {
        let fake = Fake {
            dimension,
            delay,
            seen: Arc::default(),
            script: Arc::default(),
            arrivals: Arc::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let f = fake.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let f = f.clone();
                std::thread::spawn(move || f.serve(conn));
            }
        });
        (url, fake)
    }

    fn serve(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let (mut length, mut auth) = (0usize, None);
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap(),
                    "authorization" => auth = Some(v.trim().to_string()),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            std::thread::sleep(self.delay);
            self.arrivals.lock().unwrap().push(Instant::now());
            let scripted = self.script.lock().unwrap().pop_front();
            let (status, answer, retry_after) = match scripted {
                Some((0, _)) => return, // the connection drops unanswered
                Some((status, retry_after)) => (
                    status,
                    serde_json::json!({"error": {"message": format!("scripted {status}"),
                        "type": "server_error", "param": null, "code": null}}),
                    retry_after,
                ),
                None => {
                    let (s, a) = self.answer(&method, &path, auth.as_deref(), &body);
                    (s, a, None)
                }
            };
            let reason = match status {
                200 => "OK",
                400 => "Bad Request",
                401 => "Unauthorized",
                429 => "Too Many Requests",
                500 => "Internal Server Error",
                503 => "Service Unavailable",
                _ => "Not Found",
            };
            let answer = answer.to_string();
            let retry_after =
                retry_after.map_or(String::new(), |v| format!("retry-after: {v}\r\n"));
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{retry_after}content-length: {}\r\n\r\n",
                answer.len()
            );
            if conn.write_all(head.as_bytes()).is_err()
                || conn.write_all(answer.as_bytes()).is_err()
            {
                return;
            }
        }
    }

    fn answer(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let error = |status, message: String, code: &str| {
            (
                status,
                serde_json::json!({"error": {"message": message,
                    "type": "invalid_request_error", "param": null, "code": code}}),
            )
        };
        if (method, path) != ("POST", "/v1/embeddings") {
            return error(404, format!("Invalid URL ({method} {path})"), "unknown_url");
        }
        if auth != Some(&format!("Bearer {KEY}")) {
            return error(
                401,
                "Incorrect API key provided: sk-wr****ey. You can find your API key at https://platform.openai.com/account/api-keys.".into(),
                "invalid_api_key",
            );
        }
        let req: serde_json::Value = serde_json::from_slice(body).unwrap();
        self.seen.lock().unwrap().push(req.clone());
        if req["model"] != MODEL {
            return error(
                404,
                format!(
                    "The model `{}` does not exist or you do not have access to it.",
                    req["model"].as_str().unwrap_or("")
                ),
                "model_not_found",
            );
        }
        let inputs: Vec<String> = match &req["input"] {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => {
                a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
            }
            _ => {
                return error(
                    400,
                    "'input' is a required property".into(),
                    "invalid_input",
                );
            }
        };
        if inputs.is_empty() || inputs.len() > 2048 {
            return error(400, "'$.input' is invalid.".into(), "invalid_input");
        }
        // Vector i: [text length, 1, 0, 0, …]: recognisable per text.
        let mut data: Vec<serde_json::Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = vec![0f32; self.dimension];
                v[0] = t.len() as f32;
                v[1] = 1.0;
                serde_json::json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        data.reverse();
        (
            200,
            serde_json::json!({"object": "list", "data": data, "model": MODEL,
                "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()}}),
        )
    }

    fn batches(&self) -> Vec<usize> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r["input"].as_array().unwrap().len())
            .collect()
    }
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| "x".repeat(i + 1)).collect()
}

#[tokio::test]
async fn batches_in_order_with_the_documented_request() {
    let (url, fake) = Fake::start(16, Duration::ZERO);
    let mut config = OpenAiConfig::new(&url, MODEL, 16).api_key(KEY);
    config.batch_size = 4;
    let e = OpenAiEmbedder::new(config).unwrap();
    assert_eq!(
        (e.name(), e.dimension()),
        ("openai:text-embedding-fake", 16)
    );
    let input = texts(10);
    let v = e.embed(&input).await.unwrap();
    assert_eq!(fake.batches(), vec![4, 4, 2]);
    assert_eq!(v.len(), 10);
    for (i, v) in v.iter().enumerate() {
        assert_eq!(v[0], (i + 1) as f32, "vector {i} is text {i}'s (by index)");
        assert_eq!(v.len(), 16);
    }
    let first = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(first["model"], MODEL);
    assert_eq!(first["encoding_format"], "float");
    assert_eq!(first["input"][0], "x");
    assert!(first.get("dimensions").is_none());
    // No texts, no request.
    assert!(e.embed(&[]).await.unwrap().is_empty());
    assert_eq!(fake.batches().len(), 3);
}

#[tokio::test]
async fn sends_dimensions_when_asked() {
    let (url, fake) = Fake::start(8, Duration::ZERO);
    let mut config = OpenAiConfig::new(format!("{url}/"), MODEL, 8).api_key(KEY);
    config.request_dimensions = true;
    OpenAiEmbedder::new(config)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap();
    assert_eq!(fake.seen.lock().unwrap()[0]["dimensions"], 8);
}

#[tokio::test]
async fn http_errors_carry_the_status_and_the_servers_message_but_never_the_key() {
    let (url, _fake) = Fake::start(8, Duration::ZERO);
    let wrong_key = "sk-wrong-secret-key";
    let e = OpenAiEmbedder::new(OpenAiConfig::new(&url, MODEL, 8).api_key(wrong_key)).unwrap();
    let err = e.embed(&texts(2)).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EmbedError::Failed { .. }), "{err:?}");
    assert!(
        msg.contains("401") && msg.contains("Incorrect API key provided"),
        "{msg}"
    );
    assert!(!msg.contains(wrong_key), "{msg}");
    assert!(!format!("{e:?} {:?}", e.config()).contains(wrong_key));
    // A 401 is not retried.
    assert_eq!(_fake.arrivals.lock().unwrap().len(), 1);

    let e = OpenAiEmbedder::new(OpenAiConfig::new(&url, "no-such-model", 8).api_key(KEY)).unwrap();
    let msg = e.embed(&texts(1)).await.unwrap_err().to_string();
    assert!(
        msg.contains("404") && msg.contains("`no-such-model` does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_vector_of_another_dimension_is_refused() {
    let (url, _fake) = Fake::start(8, Duration::ZERO);
    let e = OpenAiEmbedder::new(OpenAiConfig::new(&url, MODEL, 16).api_key(KEY)).unwrap();
    let err = e.embed(&texts(3)).await.unwrap_err();
    assert!(matches!(err, EmbedError::BadOutput { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("8 dimensions") && msg.contains("16"), "{msg}");
}

#[tokio::test]
async fn a_slow_server_times_out_and_a_bad_url_is_refused() {
    let (url, _fake) = Fake::start(8, Duration::from_secs(3));
    let mut config = OpenAiConfig::new(&url, MODEL, 8).api_key(KEY);
    config.timeout = Duration::from_millis(200);
    config.max_retries = 1;
    config.retry_base = Duration::from_millis(10);
    let msg = OpenAiEmbedder::new(config)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no answer within 200ms") && msg.contains("gave up after 2 attempts"),
        "{msg}"
    );
    let msg = OpenAiEmbedder::new(OpenAiConfig::new("localhost:1/v1", MODEL, 8))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not an http:// or https:// URL"), "{msg}");
}

fn quick_retries(url: &str, max_retries: u32) -> OpenAiEmbedder {
    let mut config = OpenAiConfig::new(url, MODEL, 8).api_key(KEY);
    config.max_retries = max_retries;
    config.retry_base = Duration::from_millis(20);
    OpenAiEmbedder::new(config).unwrap()
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let (url, fake) = Fake::start(8, Duration::ZERO);
    fake.script.lock().unwrap().push_back((429, Some("1")));
    let v = quick_retries(&url, 4).embed(&texts(2)).await.unwrap();
    assert_eq!(v.len(), 2);
    let arrivals = fake.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2, "one 429, then the 200");
    let waited = arrivals[1] - arrivals[0];
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured: retried after {waited:?}"
    );
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried_with_backoff() {
    let (url, fake) = Fake::start(8, Duration::ZERO);
    fake.script
        .lock()
        .unwrap()
        .extend([(503, None), (0, None), (500, None)]);
    let v = quick_retries(&url, 3).embed(&texts(3)).await.unwrap();
    assert_eq!(v[2][0], 3.0);
    assert_eq!(fake.arrivals.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn retries_run_out_with_the_last_answer_and_the_attempts() {
    let (url, fake) = Fake::start(8, Duration::ZERO);
    fake.script.lock().unwrap().extend([(429, None); 5]);
    let err = quick_retries(&url, 2)
        .embed(&texts(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 429")
            && err.contains("scripted 429")
            && err.contains("gave up after 3 attempts"),
        "{err}"
    );
    assert_eq!(fake.arrivals.lock().unwrap().len(), 3);
    // No retries at all when asked so.
    let err = quick_retries(&url, 0)
        .embed(&texts(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("gave up after 1 attempt)"), "{err}");
}
