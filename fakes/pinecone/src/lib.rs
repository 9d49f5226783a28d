//! **A test double, not a database**: a fake of Pinecone's REST data plane,
//! so strata's Pinecone plugin can be tested where no Pinecone server can
//! run (Pinecone Local is a Docker image; Docker does not run here).
//!
//! It serves the documented data-plane endpoints of the pinned API version
//! for any number of dense indexes, each reached at `http://127.0.0.1:PORT/<index>`
//! (a real index host is `https://<index>-<project>.svc.<region>.pinecone.io`;
//! the plugin appends the same paths to either):
//!
//! | endpoint | |
//! |---|---|
//! | `POST /vectors/upsert` | ≤ 1,000 records and ≤ 2 MB per request; id 1–512 bytes; values of the index's dimension (a cosine index refuses an all-zero vector); `sparseValues` only on a dotproduct index (unique `u32` indices, ≤ 2,048 non-zero values); metadata ≤ 40 KB, values string / number / boolean / list of strings (no null, no nesting), keys not starting with `$` |
//! | `POST /query` | `topK` 1–10,000 (≤ 1,000 with `includeValues` / `includeMetadata`), by `vector` or `id`, optional `filter` ([`filter`]) and, on a dotproduct index, `sparseVector` (its dot product with the record's `sparseValues` is added); cosine and dot product scores are similarities, euclidean scores are **squared** distances, closest first |
//! | `GET /vectors/fetch?ids=…&namespace=…` | ≤ 1,000 ids |
//! | `POST /vectors/delete` | exactly one of `ids` (≤ 1,000), `deleteAll`, `filter` |
//! | `GET /vectors/list?namespace=&prefix=&limit=&paginationToken=` | ids in byte order, `limit` ≤ 100 |
//! | `POST` / `GET /describe_index_stats` | per-namespace counts, dimension, metric (a filter is refused, as serverless indexes do) |
//! | `DELETE /namespaces/{namespace}` | |
//!
//! Every request needs the `Api-Key` header when the fake has a key (401
//! otherwise) and an `X-Pinecone-API-Version` it knows (400 otherwise).
//! Errors carry Pinecone's body, `{"code": <gRPC code>, "message": …, "details": []}`.
//!
//! For tests of the plugin's resilience it can fail the next requests with
//! chosen statuses ([`Fake::fail_next`], with `Retry-After` on a 429), and
//! delay the visibility of writes ([`Fake::set_lag`]: Pinecone is
//! eventually consistent; a write is acknowledged before reads see it).
//! It logs every request's method, path and status ([`Fake::requests`]).
//! Search is exact (brute force): a real index is approximate.

#![warn(missing_docs)]

pub mod filter;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::Response,
};
use serde_json::{Map, Value as Json, json};

use crate::filter::Filter;

/// The API versions this fake answers (the data plane of dense indexes).
pub const API_VERSIONS: &[&str] = &["2024-10", "2025-01", "2025-04"];
/// Most records in one upsert.
pub const MAX_UPSERT_RECORDS: usize = 1_000;
/// Largest request body of an upsert, in bytes.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// Largest metadata of one record (its JSON), in bytes.
pub const MAX_METADATA_BYTES: usize = 40 * 1024;
/// Longest id, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Most ids in one fetch or delete.
pub const MAX_IDS: usize = 1_000;
/// Largest `topK`.
pub const MAX_TOP_K: u64 = 10_000;
/// Largest `topK` when values or metadata are included.
pub const MAX_TOP_K_WITH_DATA: u64 = 1_000;
/// Largest `limit` of a list page.
pub const MAX_LIST_LIMIT: usize = 100;
/// Most non-zero values in one sparse vector.
pub const MAX_SPARSE_VALUES: usize = 2_048;

/// One index the fake serves.
#[derive(Clone, Debug)]
pub struct IndexSpec {
    /// Its name: the first path segment of its host URL.
    pub name: String,
    /// Dimension of its vectors.
    pub dimension: u32,
    /// `cosine`, `dotproduct` or `euclidean`.
    pub metric: String,
}

impl IndexSpec {
    /// An index named `d<dimension>-<metric>`.
    pub fn new(dimension: u32, metric: &str) -> IndexSpec {
        IndexSpec {
            name: format!("d{dimension}-{metric}"),
            dimension,
            metric: metric.to_string(),
        }
    }
}

/// A failure to answer the next request with.
#[derive(Clone, Debug)]
pub struct Fault {
    /// HTTP status (429, 500, 503, 400…).
    pub status: u16,
    /// `Retry-After` seconds to send with it.
    pub retry_after: Option<u64>,
}

/// One logged request.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    /// Method.
    pub method: String,
    /// Path (without the query string).
    pub path: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Clone)]
struct Stored {
    values: Vec<f32>,
    sparse: Option<Sparse>,
    metadata: Map<String, Json>,
}

#[derive(Clone)]
struct Sparse {
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Sparse {
    fn to_json(&self) -> Json {
        json!({"indices": self.indices, "values": self.values})
    }

    fn dot(&self, other: &Sparse) -> f64 {
        let at: HashMap<u32, f32> = other
            .indices
            .iter()
            .copied()
            .zip(other.values.iter().copied())
            .collect();
        self.indices
            .iter()
            .zip(&self.values)
            .filter_map(|(i, v)| at.get(i).map(|w| f64::from(*v) * f64::from(*w)))
            .sum()
    }
}

fn check_sparse(ix: &Index, v: Option<&Json>, what: &str) -> Result<Option<Sparse>, Answer> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if ix.spec.metric != "dotproduct" {
        return Err(bad(format!(
            "{what}: sparse values are only supported by indexes with the dotproduct metric"
        )));
    }
    let indices = v
        .get("indices")
        .and_then(Json::as_array)
        .and_then(|a| {
            a.iter()
                .map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()))
                .collect::<Option<Vec<u32>>>()
        })
        .ok_or_else(|| bad(format!("{what}: sparse indices must be an array of uint32")))?;
    let values = v
        .get("values")
        .and_then(Json::as_array)
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
        })
        .ok_or_else(|| bad(format!("{what}: sparse values must be an array of numbers")))?;
    if indices.len() != values.len() {
        return Err(bad(format!(
            "{what}: sparse indices and values differ in length"
        )));
    }
    if indices.len() > MAX_SPARSE_VALUES {
        return Err(bad(format!(
            "{what}: sparse vector has {} non-zero values, the limit is {MAX_SPARSE_VALUES}",
            indices.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if !indices.iter().all(|i| seen.insert(*i)) {
        return Err(bad(format!("{what}: sparse indices must be unique")));
    }
    if values.iter().any(|x| !x.is_finite()) {
        return Err(bad(format!("{what}: sparse values must be finite")));
    }
    Ok(Some(Sparse { indices, values }))
}

enum Op {
    Upsert(String, Vec<(String, Stored)>),
    Delete(String, Vec<String>),
    DeleteAll(String),
    DeleteWhere(String, Filter),
}

struct Index {
    spec: IndexSpec,
    namespaces: BTreeMap<String, BTreeMap<String, Stored>>,
    pending: VecDeque<(Instant, Op)>,
}

impl Index {
    fn apply_due(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|(due, _)| *due <= now) {
            let (_, op) = self.pending.pop_front().expect("front");
            match op {
                Op::Upsert(ns, items) => {
                    let n = self.namespaces.entry(ns).or_default();
                    for (id, s) in items {
                        n.insert(id, s);
                    }
                }
                Op::Delete(ns, ids) => {
                    if let Some(n) = self.namespaces.get_mut(&ns) {
                        for id in ids {
                            n.remove(&id);
                        }
                    }
                }
                Op::DeleteAll(ns) => {
                    self.namespaces.remove(&ns);
                }
                Op::DeleteWhere(ns, f) => {
                    if let Some(n) = self.namespaces.get_mut(&ns) {
                        n.retain(|_, s| !f.matches(&s.metadata));
                    }
                }
            }
        }
        self.namespaces.retain(|_, n| !n.is_empty());
    }
}

struct Inner {
    indexes: HashMap<String, Index>,
    faults: VecDeque<Fault>,
    log: Vec<Logged>,
    lag: Duration,
}

struct Shared {
    api_key: Option<String>,
    inner: Mutex<Inner>,
}

/// What a request gets back.
struct Answer {
    status: u16,
    body: Json,
    retry_after: Option<u64>,
}

fn ok(body: Json) -> Result<Answer, Answer> {
    Ok(Answer {
        status: 200,
        body,
        retry_after: None,
    })
}

fn error(status: u16, message: impl Into<String>) -> Answer {
    let code = match status {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        429 => 8,
        503 => 14,
        _ => 13,
    };
    Answer {
        status,
        body: json!({"code": code, "message": message.into(), "details": []}),
        retry_after: None,
    }
}

fn bad(message: impl Into<String>) -> Answer {
    error(400, message)
}

/// A running fake; stops when dropped.
pub struct Fake {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    /// Starts a fake on `127.0.0.1:port` (0: any free port) on a thread of
    /// its own, serving `indexes`, requiring `api_key` when given.
    pub fn start(
        port: u16,
        api_key: Option<String>,
        indexes: Vec<IndexSpec>,
    ) -> std::io::Result<Fake> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            api_key,
            inner: Mutex::new(Inner {
                indexes: indexes
                    .into_iter()
                    .map(|spec| {
                        (
                            spec.name.clone(),
                            Index {
                                spec,
                                namespaces: BTreeMap::new(),
                                pending: VecDeque::new(),
                            },
                        )
                    })
                    .collect(),
                faults: VecDeque::new(),
                log: Vec::new(),
                lag: Duration::ZERO,
            }),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("pinecone-fake".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("a listener the runtime accepts");
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                        .expect("the fake's server");
                });
            })?;
        Ok(Fake {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The host URL of index `name` (what the plugin's `index_host` takes).
    pub fn host(&self, name: &str) -> String {
        format!("{}/{name}", self.url())
    }

    /// Fails the next requests, one fault each, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Writes become visible to reads `lag` after they are acknowledged.
    pub fn set_lag(&self, lag: Duration) {
        self.lock().lag = lag;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let answer = match axum::body::to_bytes(body, 4 * MAX_REQUEST_BYTES).await {
        Ok(bytes) => shared.dispatch(
            &parts.method,
            &path,
            parts.uri.query().unwrap_or(""),
            &parts.headers,
            &bytes,
        ),
        Err(_) => bad("request body too large"),
    };
    {
        let mut inner = shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.log.push(Logged {
            method: parts.method.to_string(),
            path,
            status: answer.status,
        });
    }
    let mut r = Response::builder()
        .status(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(s) = answer.retry_after {
        r = r.header(header::RETRY_AFTER, s.to_string());
    }
    r.body(Body::from(answer.body.to_string()))
        .expect("a valid response")
}

impl Shared {
    fn dispatch(
        &self,
        method: &Method,
        path: &str,
        query_string: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Answer {
        if let Some(key) = &self.api_key {
            let given = headers.get("api-key").and_then(|v| v.to_str().ok());
            if given != Some(key.as_str()) {
                return error(401, "Invalid API Key");
            }
        }
        if let Some(v) = headers.get("x-pinecone-api-version") {
            let v = v.to_str().unwrap_or("");
            if !API_VERSIONS.contains(&v) {
                return bad(format!("Unsupported API version {v:?}"));
            }
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = inner.faults.pop_front() {
            let mut a = error(f.status, format!("injected fault {}", f.status));
            a.retry_after = f.retry_after;
            return a;
        }
        let lag = inner.lag;
        let (index, rest) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path.trim_start_matches('/'), ""));
        let Some(ix) = inner.indexes.get_mut(index) else {
            return error(404, format!("index {index:?} not found"));
        };
        let now = Instant::now();
        ix.apply_due(now);
        let parsed = || -> Result<Map<String, Json>, Answer> {
            if body.is_empty() {
                return Ok(Map::new());
            }
            match serde_json::from_slice::<Json>(body) {
                Ok(Json::Object(m)) => Ok(m),
                Ok(_) => Err(bad("the request body must be a JSON object")),
                Err(e) => Err(bad(format!("invalid JSON: {e}"))),
            }
        };
        let result = match (method.as_str(), rest) {
            ("POST", "vectors/upsert") => {
                parsed().and_then(|b| upsert(ix, b, body.len(), now + lag))
            }
            ("POST", "query") => parsed().and_then(|b| query(ix, b)),
            ("GET", "vectors/fetch") => fetch(ix, query_string),
            ("POST", "vectors/delete") => parsed().and_then(|b| delete(ix, b, now + lag)),
            ("GET", "vectors/list") => list(ix, query_string),
            ("POST" | "GET", "describe_index_stats") => parsed().and_then(|b| stats(ix, b)),
            ("DELETE", ns) if ns.starts_with("namespaces/") => {
                let ns = ns.trim_start_matches("namespaces/");
                let ns = form_urlencoded::parse(format!("n={ns}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                if ix.namespaces.contains_key(&ns) {
                    ix.pending.push_back((now + lag, Op::DeleteAll(ns)));
                    ix.apply_due(now);
                    ok(json!({}))
                } else {
                    Err(error(404, format!("namespace {ns:?} not found")))
                }
            }
            _ => Err(error(404, format!("no such endpoint: {method} /{rest}"))),
        };
        result.unwrap_or_else(|e| e)
    }
}

fn namespace(b: &Map<String, Json>) -> Result<String, Answer> {
    match b.get("namespace") {
        None | Some(Json::Null) => Ok(String::new()),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad("namespace must be a string")),
    }
}

fn check_id(id: &Json) -> Result<String, Answer> {
    match id {
        Json::String(s) if !s.is_empty() && s.len() <= MAX_ID_BYTES => Ok(s.clone()),
        Json::String(s) if s.is_empty() => Err(bad("Vector ID must not be empty")),
        Json::String(s) => Err(bad(format!(
            "Vector ID exceeds the maximum length of {MAX_ID_BYTES}: {} bytes",
            s.len()
        ))),
        _ => Err(bad("Vector ID must be a string")),
    }
}

fn check_values(ix: &Index, v: Option<&Json>, what: &str) -> Result<Vec<f32>, Answer> {
    let Some(Json::Array(items)) = v else {
        return Err(bad(format!("{what}: values must be an array of numbers")));
    };
    let values = items
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| bad(format!("{what}: values must be numbers")))?;
    if values.len() != ix.spec.dimension as usize {
        return Err(bad(format!(
            "Vector dimension {} does not match the dimension of the index {}",
            values.len(),
            ix.spec.dimension
        )));
    }
    if values.iter().any(|x| !x.is_finite()) {
        return Err(bad(format!("{what}: values must be finite 32-bit floats")));
    }
    if ix.spec.metric == "cosine" && values.iter().all(|x| *x == 0.0) {
        return Err(bad(format!(
            "{what}: Dense vectors must contain at least one non-zero value"
        )));
    }
    Ok(values)
}

fn check_metadata(v: Option<&Json>, id: &str) -> Result<Map<String, Json>, Answer> {
    let m = match v {
        None | Some(Json::Null) => return Ok(Map::new()),
        Some(Json::Object(m)) => m.clone(),
        Some(_) => return Err(bad(format!("vector {id}: metadata must be an object"))),
    };
    let size = Json::Object(m.clone()).to_string().len();
    if size > MAX_METADATA_BYTES {
        return Err(bad(format!(
            "Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector"
        )));
    }
    for (k, v) in &m {
        if k.is_empty() || k.starts_with('$') {
            return Err(bad(format!("vector {id}: invalid metadata key {k:?}")));
        }
        let fine = match v {
            Json::String(_) | Json::Bool(_) => true,
            Json::Number(n) => n.as_f64().is_some_and(f64::is_finite),
            Json::Array(items) => items.iter().all(Json::is_string),
            _ => false,
        };
        if !fine {
            return Err(bad(format!(
                "Metadata value must be a string, number, boolean or list of strings, got '{v}' for field '{k}'"
            )));
        }
    }
    Ok(m)
}

fn upsert(
    ix: &mut Index,
    b: Map<String, Json>,
    size: usize,
    due: Instant,
) -> Result<Answer, Answer> {
    if size > MAX_REQUEST_BYTES {
        return Err(bad(format!(
            "Request size {size} bytes exceeds the limit of {MAX_REQUEST_BYTES} bytes"
        )));
    }
    let ns = namespace(&b)?;
    let Some(Json::Array(vectors)) = b.get("vectors") else {
        return Err(bad("vectors must be an array"));
    };
    if vectors.is_empty() || vectors.len() > MAX_UPSERT_RECORDS {
        return Err(bad(format!(
            "an upsert takes 1 to {MAX_UPSERT_RECORDS} vectors, got {}",
            vectors.len()
        )));
    }
    let mut items = Vec::with_capacity(vectors.len());
    for v in vectors {
        let id = check_id(v.get("id").unwrap_or(&Json::Null))?;
        let values = check_values(ix, v.get("values"), &format!("vector {id}"))?;
        let sparse = check_sparse(ix, v.get("sparseValues"), &format!("vector {id}"))?;
        let metadata = check_metadata(v.get("metadata"), &id)?;
        items.push((
            id,
            Stored {
                values,
                sparse,
                metadata,
            },
        ));
    }
    let n = items.len();
    ix.pending.push_back((due, Op::Upsert(ns, items)));
    ix.apply_due(Instant::now());
    ok(json!({"upsertedCount": n}))
}

fn score(metric: &str, q: &[f32], v: &[f32]) -> f64 {
    let (mut dot, mut qq, mut vv, mut l2) = (0f64, 0f64, 0f64, 0f64);
    for (a, b) in q.iter().zip(v) {
        let (a, b) = (f64::from(*a), f64::from(*b));
        dot += a * b;
        qq += a * a;
        vv += b * b;
        l2 += (a - b) * (a - b);
    }
    match metric {
        "cosine" => dot / (qq.sqrt() * vv.sqrt()),
        "euclidean" => l2,
        _ => dot,
    }
}

fn parse_filter(b: &Map<String, Json>) -> Result<Option<Filter>, Answer> {
    match b.get("filter") {
        None | Some(Json::Null) => Ok(None),
        Some(f) => Filter::parse(f).map(Some).map_err(bad),
    }
}

fn query(ix: &mut Index, b: Map<String, Json>) -> Result<Answer, Answer> {
    let ns = namespace(&b)?;
    let top_k = b
        .get("topK")
        .and_then(Json::as_u64)
        .ok_or_else(|| bad("topK is required: a positive integer"))?;
    let flag = |k: &str| b.get(k).and_then(Json::as_bool).unwrap_or(false);
    let (with_values, with_metadata) = (flag("includeValues"), flag("includeMetadata"));
    let limit = if with_values || with_metadata {
        MAX_TOP_K_WITH_DATA
    } else {
        MAX_TOP_K
    };
    if top_k == 0 || top_k > limit {
        return Err(bad(format!(
            "topK must be between 1 and {limit} (includeValues / includeMetadata lower the limit to {MAX_TOP_K_WITH_DATA}), got {top_k}"
        )));
    }
    let filter = parse_filter(&b)?;
    let empty = BTreeMap::new();
    let records = ix.namespaces.get(&ns).unwrap_or(&empty);
    let q = match (b.get("vector"), b.get("id")) {
        (Some(v), None) => check_values(ix, Some(v), "query")?,
        (None, Some(Json::String(id))) => match records.get(id) {
            Some(s) => s.values.clone(),
            None => return ok(json!({"matches": [], "namespace": ns, "usage": {"readUnits": 1}})),
        },
        _ => return Err(bad("a query takes exactly one of vector or id")),
    };
    let sparse_q = check_sparse(ix, b.get("sparseVector"), "query")?;
    let metric = ix.spec.metric.as_str();
    let mut scored: Vec<(f64, &String, &Stored)> = records
        .iter()
        .filter(|(_, s)| filter.as_ref().is_none_or(|f| f.matches(&s.metadata)))
        .map(|(id, s)| {
            let lexical = match (&sparse_q, &s.sparse) {
                (Some(q), Some(d)) => q.dot(d),
                _ => 0.0,
            };
            (score(metric, &q, &s.values) + lexical, id, s)
        })
        .collect();
    if metric == "euclidean" {
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    } else {
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    }
    scored.truncate(top_k as usize);
    let matches: Vec<Json> = scored
        .into_iter()
        .map(|(score, id, s)| {
            let mut m = json!({"id": id, "score": score as f32, "values": []});
            if with_values {
                m["values"] = json!(s.values);
                if let Some(sp) = &s.sparse {
                    m["sparseValues"] = sp.to_json();
                }
            }
            if with_metadata {
                m["metadata"] = Json::Object(s.metadata.clone());
            }
            m
        })
        .collect();
    ok(json!({"matches": matches, "namespace": ns, "usage": {"readUnits": 1}}))
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn fetch(ix: &mut Index, query: &str) -> Result<Answer, Answer> {
    let pairs = query_pairs(query);
    let ns = pairs
        .iter()
        .find(|(k, _)| k == "namespace")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let ids: Vec<&String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v)
        .collect();
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(bad(format!(
            "fetch takes 1 to {MAX_IDS} ids, got {}",
            ids.len()
        )));
    }
    let mut out = Map::new();
    if let Some(records) = ix.namespaces.get(&ns) {
        for id in ids {
            if let Some(s) = records.get(id) {
                let mut v = json!({"id": id, "values": s.values, "metadata": s.metadata});
                if let Some(sp) = &s.sparse {
                    v["sparseValues"] = sp.to_json();
                }
                out.insert(id.clone(), v);
            }
        }
    }
    ok(json!({"vectors": out, "namespace": ns, "usage": {"readUnits": 1}}))
}

fn delete(ix: &mut Index, b: Map<String, Json>, due: Instant) -> Result<Answer, Answer> {
    let ns = namespace(&b)?;
    let all = b.get("deleteAll").and_then(Json::as_bool).unwrap_or(false);
    let filter = parse_filter(&b)?;
    let op = match (b.get("ids"), all, filter) {
        (Some(Json::Array(ids)), false, None) => {
            if ids.is_empty() || ids.len() > MAX_IDS {
                return Err(bad(format!(
                    "delete takes 1 to {MAX_IDS} ids, got {}",
                    ids.len()
                )));
            }
            let ids = ids.iter().map(check_id).collect::<Result<Vec<_>, _>>()?;
            Op::Delete(ns, ids)
        }
        (None, true, None) => Op::DeleteAll(ns),
        (None, false, Some(f)) => Op::DeleteWhere(ns, f),
        _ => return Err(bad("delete takes exactly one of ids, deleteAll or filter")),
    };
    ix.pending.push_back((due, op));
    ix.apply_due(Instant::now());
    ok(json!({}))
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn list(ix: &mut Index, query: &str) -> Result<Answer, Answer> {
    let pairs = query_pairs(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let ns = get("namespace").unwrap_or_default();
    let prefix = get("prefix").unwrap_or_default();
    let limit = match get("limit") {
        None => MAX_LIST_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
            _ => return Err(bad(format!("limit must be 1 to {MAX_LIST_LIMIT}, got {l}"))),
        },
    };
    let after = match get("paginationToken") {
        None => None,
        Some(t) => Some(unhex(&t).ok_or_else(|| bad("invalid paginationToken"))?),
    };
    let empty = BTreeMap::new();
    let records = ix.namespaces.get(&ns).unwrap_or(&empty);
    let mut ids: Vec<&String> = records
        .keys()
        .filter(|id| id.starts_with(&prefix))
        .filter(|id| after.as_ref().is_none_or(|a| id.as_str() > a.as_str()))
        .take(limit + 1)
        .collect();
    let more = ids.len() > limit;
    ids.truncate(limit);
    let mut body = json!({
        "vectors": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        "namespace": ns,
        "usage": {"readUnits": 1},
    });
    if more {
        body["pagination"] = json!({"next": hex(ids.last().expect("a page"))});
    }
    ok(body)
}

fn stats(ix: &mut Index, b: Map<String, Json>) -> Result<Answer, Answer> {
    if b.get("filter").is_some_and(|f| !f.is_null()) {
        return Err(bad(
            "Serverless and starter indexes do not support describing index stats with metadata filtering",
        ));
    }
    let mut namespaces = Map::new();
    let mut total = 0;
    for (ns, records) in &ix.namespaces {
        total += records.len();
        namespaces.insert(ns.clone(), json!({"vectorCount": records.len()}));
    }
    ok(json!({
        "namespaces": namespaces,
        "dimension": ix.spec.dimension,
        "indexFullness": 0.0,
        "totalVectorCount": total,
        "metric": ix.spec.metric,
        "vectorType": "dense",
    }))
}
