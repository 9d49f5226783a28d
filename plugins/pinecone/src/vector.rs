//! The vector contract on Pinecone's data plane.
//!
//! - **A collection is a namespace** (`<namespace_prefix><name>`) of the
//!   index whose dimension and metric are the collection's. Pinecone
//!   creates namespaces on first write and forgets empty ones, so each
//!   index also holds a registry namespace, `<namespace_prefix>__strata_collections`,
//!   with one record per collection (id = the name, metadata = its spec):
//!   a collection exists from `create_collection` to `drop_collection`,
//!   empty or not, and queries of a collection never see the registry. A
//!   namespace under the prefix that holds records but was never
//!   registered (written by another tool) is a collection too, with the
//!   index's dimension and metric: data written elsewhere can be read and
//!   migrated home.
//! - **Records** keep their string ids (Pinecone's ids are strings of up to
//!   512 bytes, like the contract's); metadata and text are laid out as
//!   [`crate::layout`] says, filters translated as [`crate::filter`] says.
//! - **Scores** are higher-is-better: Pinecone's euclidean score is the
//!   squared distance, returned as `-sqrt(score)`.
//! - **Limits are checked before anything is sent**: a whole upsert is
//!   validated and encoded first (dimension, finite values, what Pinecone
//!   cannot score in `f32`, a zero vector under cosine, metadata over
//!   40 KB in Pinecone's layout), then sent in batches of at most
//!   `batch_max_records` records and `batch_max_bytes` bytes.
//! - **Scan** pages through Pinecone's `list` (ids in byte order) and
//!   fetches each page; its cursor is the list page's token and how many
//!   ids of that page were already handed out. **Counts and deletes by
//!   filter** scan the namespace and evaluate the filter in the plugin
//!   with the reference semantics (exact on every index type: serverless
//!   indexes can neither count nor delete by metadata filter); a count
//!   without a filter is the namespace's count in `describe_index_stats`.
//! - **Freshness**: Pinecone acknowledges a write before every read sees
//!   it (seconds, on serverless). By default the plugin does not wait and
//!   the backend claims `vector.eventually_consistent`. With
//!   `read_after_write_ms`, each write then polls until it reads back: an
//!   upsert stamps its records (`strata_w`, one random value per call),
//!   reads the stamps the ids had before, and waits until `fetch` returns
//!   every id with its stamp — or with another stamp than before (a
//!   concurrent upsert of the same id won: the record is then as fresh as
//!   this write, so the wait is over); a delete waits
//!   until `fetch` finds none of its ids (a delete of everything, until the
//!   namespace's count is 0); create and drop wait for the registry.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::{Map, Value as Json, json};
use strata_plugin::{
    ErrorKind, PluginError, PluginResult, Runs, VectorBackend,
    filter::Filter,
    sparse,
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, DeleteTarget, HybridRequest, Match, Metric,
        QueryRequest, ScanPage, ScanRequest, VectorCall, VectorRecord, check_f32_scorable,
        fuse_rrf, include, validate_batch, validate_collection_name, validate_id, validate_vector,
    },
};

use crate::{
    config::PineconeConfig,
    filter::{Pf, translate_str},
    http::IndexClient,
    layout,
};

/// The contract's dimension limit.
const MAX_DIMENSION: u32 = 65_536;
/// Pinecone's largest `topK`.
const MAX_TOP_K: u32 = 10_000;
/// Pinecone's largest `topK` with values or metadata included.
const MAX_TOP_K_WITH_DATA: u32 = 1_000;
/// Pinecone's largest metadata per record, in bytes.
pub(crate) const MAX_METADATA_BYTES: usize = 40 * 1024;
/// Ids per fetch or delete request (Pinecone allows 1,000; fetch puts them
/// in the URL, so fewer, and at most [`MAX_URL_IDS_BYTES`] of them).
const IDS_PER_REQUEST: usize = 100;
/// Bytes of ids in one fetch URL.
const MAX_URL_IDS_BYTES: usize = 6_000;
/// Most non-zero values of a sparse vector (Pinecone's limit).
const MAX_SPARSE_VALUES: usize = 2_048;
/// Ids per list page (Pinecone's limit).
const LIST_PAGE: u32 = 100;
/// Largest scan page.
const MAX_SCAN_PAGE: u32 = 1_000;

/// What a write waits for (`read_after_write_ms`).
enum Visible<'a> {
    /// These ids are found (with this upsert's stamp, or another than
    /// they had before it, when given).
    Present {
        namespace: &'a str,
        ids: &'a [&'a str],
        stamp: Option<(&'a str, &'a HashMap<String, Option<String>>)>,
    },
    /// None of these ids is found.
    Gone {
        namespace: &'a str,
        ids: &'a [&'a str],
    },
    /// The namespace holds nothing.
    Empty { namespace: &'a str },
}

/// Where a collection lives.
#[derive(Clone, Copy, Debug)]
struct Home {
    /// Its index (in `indexes`).
    index: usize,
    /// Created with `{"hybrid": true}`: records carry sparse vectors of their text.
    hybrid: bool,
}

/// One index this backend writes to.
pub(crate) struct Index {
    pub(crate) client: IndexClient,
    pub(crate) dimension: u32,
    pub(crate) metric: Metric,
}

/// The vector handle of one opened backend.
pub(crate) struct PineconeVectors {
    cfg: PineconeConfig,
    indexes: Vec<Index>,
    closed: AtomicBool,
    /// Which index holds each collection, as far as this backend has seen.
    homes: Mutex<HashMap<String, Home>>,
}

pub(crate) fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Cosine => "cosine",
        Metric::Dot => "dotproduct",
        _ => "euclidean",
    }
}

pub(crate) fn parse_metric(s: &str) -> Option<Metric> {
    match s {
        "cosine" => Some(Metric::Cosine),
        "dotproduct" => Some(Metric::Dot),
        "euclidean" => Some(Metric::Euclidean),
        _ => None,
    }
}

fn not_found(name: &str) -> PluginError {
    PluginError::new(
        ErrorKind::NotFound,
        format!("collection {name:?} does not exist"),
    )
}

/// The collection options: `{"hybrid": true}` or none. Returns `hybrid`.
fn collection_options(text: &str) -> PluginResult<bool> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(false);
    }
    let Ok(Json::Object(m)) = serde_json::from_str::<Json>(text) else {
        return Err(PluginError::invalid_input(
            "collection options must be a JSON object",
        ));
    };
    let mut hybrid = false;
    for (k, v) in &m {
        match (k.as_str(), v) {
            ("hybrid", Json::Bool(b)) => hybrid = *b,
            ("hybrid", other) => {
                return Err(PluginError::invalid_input(format!(
                    "collection option hybrid must be true or false, not {other}"
                )));
            }
            (other, _) => {
                return Err(PluginError::invalid_input(format!(
                    "unknown collection option {other:?}: a Pinecone collection takes only `hybrid` (its index decides the rest)"
                )));
            }
        }
    }
    Ok(hybrid)
}

/// Whether a fetched record's metadata (as read back) matches `filter`,
/// by the reference semantics: filtered counts, deletes and scans.
fn matches(filter: &Filter, record: &Json) -> bool {
    let (meta, _) = layout::decode(record.get("metadata").and_then(as_object));
    let meta: Json = serde_json::from_str(&meta).unwrap_or(Json::Null);
    filter.matches(&meta)
}

fn as_object(j: &Json) -> Option<&Map<String, Json>> {
    j.as_object()
}

/// The write stamp of a fetched record.
fn stamp_of(v: &Json) -> Option<&str> {
    v.get("metadata")
        .and_then(|m| m.get(layout::STAMP))
        .and_then(Json::as_str)
}

/// A scan cursor: the list token of the current page and how many of its ids were handed out.
fn parse_cursor(c: &str) -> PluginResult<(usize, Option<String>)> {
    let bad = || {
        PluginError::invalid_input(format!(
            "scan cursor {c:?} is not one this backend handed out"
        ))
    };
    let (skip, token) = c.split_once(':').ok_or_else(bad)?;
    let skip = skip.parse::<usize>().map_err(|_| bad())?;
    Ok((skip, (!token.is_empty()).then(|| token.to_string())))
}

impl PineconeVectors {
    pub(crate) fn new(cfg: PineconeConfig, indexes: Vec<Index>) -> PineconeVectors {
        PineconeVectors {
            cfg,
            indexes,
            closed: AtomicBool::new(false),
            homes: Mutex::default(),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn open_check(&self) -> PluginResult<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PluginError::closed("this pinecone backend"));
        }
        Ok(())
    }

    /// Whether writes wait until they read back (`read_after_write_ms`).
    pub(crate) fn waits_for_writes(&self) -> bool {
        self.cfg.read_after_write_ms > 0
    }

    /// Whether a write reads back.
    async fn visible(&self, ix: &Index, check: &Visible<'_>, what: &str) -> PluginResult<bool> {
        Ok(match check {
            Visible::Present {
                namespace,
                ids,
                stamp,
            } => {
                let found = self.fetch_raw(ix, namespace, ids, what).await?;
                ids.iter().all(|id| match (found.get(*id), stamp) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(v), Some((mine, before))) => {
                        let now = stamp_of(v);
                        now == Some(*mine)
                            || (now.is_some() && before.get(*id).and_then(Option::as_deref) != now)
                    }
                })
            }
            Visible::Gone { namespace, ids } => {
                self.fetch_raw(ix, namespace, ids, what).await?.is_empty()
            }
            Visible::Empty { namespace } => {
                self.namespace_counts(ix)
                    .await?
                    .get(*namespace)
                    .copied()
                    .unwrap_or(0)
                    == 0
            }
        })
    }

    /// With `read_after_write_ms`, polls until the write reads back (10 ms,
    /// doubling to 500 ms) or the time is up.
    async fn settle(&self, ix: &Index, check: Visible<'_>, what: &str) -> PluginResult<()> {
        let budget = self.cfg.read_after_write_ms;
        if budget == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_millis(budget);
        let mut pause = Duration::from_millis(10);
        loop {
            if self.visible(ix, &check, what).await? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PluginError::new(
                    ErrorKind::Timeout,
                    format!(
                        "{what}: written, but reads did not show it within read_after_write_ms ({budget} ms)"
                    ),
                ));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// How many collections this backend sees.
    pub(crate) async fn collection_count(&self) -> PluginResult<usize> {
        Ok(VectorBackend::list_collections(self).await?.len())
    }

    fn registry(&self) -> String {
        format!("{}__strata_collections", self.cfg.namespace_prefix)
    }

    fn namespace(&self, name: &str) -> String {
        format!("{}{name}", self.cfg.namespace_prefix)
    }

    fn homes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Home>> {
        self.homes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The indexes, described for messages.
    fn describe_indexes(&self) -> String {
        self.indexes
            .iter()
            .map(|i| {
                format!(
                    "{} (dimension {}, {})",
                    i.client.host(),
                    i.dimension,
                    metric_name(i.metric)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Ids fetched from one namespace, by id.
    async fn fetch_raw(
        &self,
        ix: &Index,
        namespace: &str,
        ids: &[&str],
        what: &str,
    ) -> PluginResult<HashMap<String, Json>> {
        let mut found = HashMap::new();
        let mut start = 0;
        while start < ids.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < ids.len()
                && end - start < IDS_PER_REQUEST
                && (end == start || bytes + ids[end].len() <= MAX_URL_IDS_BYTES)
            {
                bytes += ids[end].len();
                end += 1;
            }
            let mut query: Vec<(&str, &str)> = vec![("namespace", namespace)];
            query.extend(ids[start..end].iter().map(|id| ("ids", *id)));
            let r = ix.client.get("vectors/fetch", &query, what).await?;
            if let Some(vectors) = r.get("vectors").and_then(as_object) {
                for (id, v) in vectors {
                    found.insert(id.clone(), v.clone());
                }
            }
            start = end;
        }
        Ok(found)
    }

    /// The index holding collection `name`, if it exists.
    async fn home(&self, name: &str) -> PluginResult<Option<Home>> {
        self.open_check()?;
        validate_collection_name(name)?;
        if let Some(h) = self.homes().get(name) {
            return Ok(Some(*h));
        }
        let registry = self.registry();
        for (i, ix) in self.indexes.iter().enumerate() {
            let found = self
                .fetch_raw(
                    ix,
                    &registry,
                    &[name],
                    &format!("look up collection {name:?}"),
                )
                .await?;
            if let Some(record) = found.get(name) {
                let hybrid = record
                    .get("metadata")
                    .and_then(|m| m.get("hybrid"))
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                let home = Home { index: i, hybrid };
                self.homes().insert(name.to_string(), home);
                return Ok(Some(home));
            }
        }
        // A namespace written by another tool (never registered) is a
        // collection too, while it holds records: that is how data
        // written to Pinecone elsewhere is read (and migrated home).
        let namespace = self.namespace(name);
        for (i, ix) in self.indexes.iter().enumerate() {
            if self
                .namespace_counts(ix)
                .await?
                .get(&namespace)
                .copied()
                .unwrap_or(0)
                > 0
            {
                let home = Home {
                    index: i,
                    hybrid: false,
                };
                self.homes().insert(name.to_string(), home);
                return Ok(Some(home));
            }
        }
        Ok(None)
    }

    async fn existing(&self, name: &str) -> PluginResult<&Index> {
        Ok(&self.indexes[self.existing_home(name).await?.index])
    }

    async fn existing_home(&self, name: &str) -> PluginResult<Home> {
        self.home(name).await?.ok_or_else(|| not_found(name))
    }

    /// Records per namespace of one index.
    async fn namespace_counts(&self, ix: &Index) -> PluginResult<HashMap<String, u64>> {
        let r = ix
            .client
            .post("describe_index_stats", &json!({}), "describe_index_stats")
            .await?;
        Ok(r.get("namespaces")
            .and_then(as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let n = v.get("vectorCount").and_then(Json::as_u64).unwrap_or(0);
                        (k.clone(), n)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// One page of ids from `list`.
    async fn list_page(
        &self,
        ix: &Index,
        namespace: &str,
        token: Option<&str>,
        what: &str,
    ) -> PluginResult<(Vec<String>, Option<String>)> {
        let limit = LIST_PAGE.to_string();
        let mut query = vec![("namespace", namespace), ("limit", limit.as_str())];
        if let Some(t) = token {
            query.push(("paginationToken", t));
        }
        let r = ix.client.get("vectors/list", &query, what).await?;
        let ids = r
            .get("vectors")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.get("id").and_then(Json::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let next = r
            .get("pagination")
            .and_then(|p| p.get("next"))
            .and_then(Json::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok((ids, next))
    }

    /// Every id in a namespace.
    async fn all_ids(&self, ix: &Index, namespace: &str, what: &str) -> PluginResult<Vec<String>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (ids, next) = self
                .list_page(ix, namespace, token.as_deref(), what)
                .await?;
            out.extend(ids);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The ids of the records matching `filter`, scanning the namespace.
    async fn matching_ids(
        &self,
        ix: &Index,
        namespace: &str,
        filter: &Filter,
        what: &str,
    ) -> PluginResult<Vec<String>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (ids, next) = self
                .list_page(ix, namespace, token.as_deref(), what)
                .await?;
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let found = self.fetch_raw(ix, namespace, &refs, what).await?;
            for id in &ids {
                if found.get(id).is_some_and(|v| matches(filter, v)) {
                    out.push(id.clone());
                }
            }
            match next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    async fn delete_ids(
        &self,
        ix: &Index,
        namespace: &str,
        ids: &[String],
        what: &str,
    ) -> PluginResult<()> {
        for chunk in ids.chunks(IDS_PER_REQUEST * 10) {
            ix.client
                .post(
                    "vectors/delete",
                    &json!({"ids": chunk, "namespace": namespace}),
                    what,
                )
                .await?;
        }
        Ok(())
    }

    /// A fetched or queried record as a result, with what `flags` asks for.
    fn to_match(v: &Json, score: f64, flags: u32) -> Option<Match> {
        let id = v.get("id")?.as_str()?.to_string();
        let vector = (flags & include::VECTOR != 0).then(|| {
            v.get("values")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64().map(|f| f as f32))
                        .collect()
                })
                .unwrap_or_default()
        });
        let (meta, text) = if flags & (include::METADATA | include::TEXT) != 0 {
            layout::decode(v.get("metadata").and_then(as_object))
        } else {
            (String::new(), None)
        };
        Some(Match {
            id,
            score,
            vector,
            metadata_json: (flags & include::METADATA != 0).then_some(meta),
            text: if flags & include::TEXT != 0 {
                text
            } else {
                None
            },
        })
    }

    fn info(&self, name: &str, ix: &Index, count: u64) -> CollectionInfo {
        CollectionInfo {
            name: name.to_string(),
            dimension: ix.dimension,
            metric: ix.metric,
            count,
            details_json: json!({
                "index": "pinecone",
                "index_host": ix.client.host(),
                "namespace": self.namespace(name),
                "consistency": "eventual",
            })
            .to_string(),
        }
    }

    fn check_vector(ix: &Index, v: &[f32], what: &str) -> PluginResult<()> {
        validate_vector(v, ix.dimension, what)?;
        check_f32_scorable(v, ix.metric, what, "Pinecone")?;
        if ix.metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
            return Err(PluginError::invalid_input(format!(
                "{what}: a zero vector has no cosine similarity, and Pinecone refuses it in a cosine index"
            )));
        }
        Ok(())
    }
}

impl VectorBackend for PineconeVectors {
    /// Every call is network I/O on the plugin's runtime.
    fn runs(&self, _call: VectorCall<'_>) -> Runs {
        Runs::Async
    }

    async fn create_collection(&self, spec: CollectionSpec) -> PluginResult<()> {
        self.open_check()?;
        validate_collection_name(&spec.name)?;
        if spec.dimension == 0 || spec.dimension > MAX_DIMENSION {
            return Err(PluginError::invalid_input(format!(
                "dimension {} is out of range (1..={MAX_DIMENSION})",
                spec.dimension
            )));
        }
        let hybrid = collection_options(&spec.options_json)?;
        if hybrid && spec.metric != Metric::Dot {
            return Err(PluginError::invalid_input(format!(
                "collection {:?}: hybrid needs a sparse-dense index, which Pinecone offers only                  with the dotproduct metric, not {}",
                spec.name,
                metric_name(spec.metric)
            )));
        }
        if let Some(h) = self.home(&spec.name).await? {
            let ix = &self.indexes[h.index];
            if ix.dimension == spec.dimension && ix.metric == spec.metric && h.hybrid == hybrid {
                return Ok(());
            }
            if ix.dimension == spec.dimension && ix.metric == spec.metric {
                return Err(PluginError::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "collection {:?} exists with hybrid = {}, not {hybrid}",
                        spec.name, h.hybrid
                    ),
                ));
            }
            return Err(PluginError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "collection {:?} exists with dimension {} and metric {}, not {} and {}",
                    spec.name,
                    ix.dimension,
                    metric_name(ix.metric),
                    spec.dimension,
                    metric_name(spec.metric)
                ),
            ));
        }
        let Some(i) = self
            .indexes
            .iter()
            .position(|ix| ix.dimension == spec.dimension && ix.metric == spec.metric)
        else {
            return Err(PluginError::invalid_input(format!(
                "collection {:?} needs a Pinecone index of dimension {} and metric {}, and this \
                 backend has none: its indexes are {}. A Pinecone index has one dimension and one \
                 metric; create one and add its host to extra_index_hosts",
                spec.name,
                spec.dimension,
                metric_name(spec.metric),
                self.describe_indexes()
            )));
        };
        let ix = &self.indexes[i];
        let mut unit = vec![0.0f32; ix.dimension as usize];
        unit[0] = 1.0;
        ix.client
            .post(
                "vectors/upsert",
                &json!({
                    "namespace": self.registry(),
                    "vectors": [{
                        "id": spec.name,
                        "values": unit,
                        "metadata": {
                            "strata_collection": spec.name,
                            "dimension": spec.dimension,
                            "metric": metric_name(spec.metric),
                            "hybrid": hybrid,
                        },
                    }],
                }),
                &format!("create collection {:?}", spec.name),
            )
            .await?;
        let registry = self.registry();
        self.settle(
            ix,
            Visible::Present {
                namespace: &registry,
                ids: &[spec.name.as_str()],
                stamp: None,
            },
            &format!("create collection {:?}", spec.name),
        )
        .await?;
        self.homes().insert(spec.name, Home { index: i, hybrid });
        Ok(())
    }

    async fn drop_collection(&self, name: String) -> PluginResult<bool> {
        let Some(h) = self.home(&name).await? else {
            return Ok(false);
        };
        let ix = &self.indexes[h.index];
        let what = format!("drop collection {name:?}");
        match ix
            .client
            .post(
                "vectors/delete",
                &json!({"deleteAll": true, "namespace": self.namespace(&name)}),
                &what,
            )
            .await
        {
            Ok(_) => {}
            // An empty namespace does not exist on the server.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        ix.client
            .post(
                "vectors/delete",
                &json!({"ids": [name], "namespace": self.registry()}),
                &what,
            )
            .await?;
        self.homes().remove(&name);
        let registry = self.registry();
        self.settle(
            ix,
            Visible::Gone {
                namespace: &registry,
                ids: &[name.as_str()],
            },
            &what,
        )
        .await?;
        let namespace = self.namespace(&name);
        self.settle(
            ix,
            Visible::Empty {
                namespace: &namespace,
            },
            &what,
        )
        .await?;
        Ok(true)
    }

    async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> {
        self.open_check()?;
        let registry = self.registry();
        let mut out = Vec::new();
        for ix in &self.indexes {
            let mut names = self.all_ids(ix, &registry, "list collections").await?;
            let counts = self.namespace_counts(ix).await?;
            // Namespaces written by other tools, under this prefix.
            for ns in counts.keys() {
                if let Some(name) = ns.strip_prefix(self.cfg.namespace_prefix.as_str())
                    && !ns.ends_with("__strata_collections")
                    && !names.iter().any(|n| n == name)
                {
                    names.push(name.to_string());
                }
            }
            for name in names {
                if validate_collection_name(&name).is_err() {
                    continue;
                }
                let n = counts.get(&self.namespace(&name)).copied().unwrap_or(0);
                out.push(self.info(&name, ix, n));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn collection_info(&self, name: String) -> PluginResult<Option<CollectionInfo>> {
        let Some(h) = self.home(&name).await? else {
            return Ok(None);
        };
        let ix = &self.indexes[h.index];
        let n = self
            .namespace_counts(ix)
            .await?
            .get(&self.namespace(&name))
            .copied()
            .unwrap_or(0);
        Ok(Some(self.info(&name, ix, n)))
    }

    async fn upsert(&self, collection: String, records: Vec<VectorRecord>) -> PluginResult<u64> {
        let home = self.existing_home(&collection).await?;
        let ix = &self.indexes[home.index];
        if records.is_empty() {
            return Ok(0);
        }
        validate_batch(&records, ix.dimension)?;
        // Everything is checked and encoded before the first request.
        let stamp = self
            .waits_for_writes()
            .then(|| format!("{:016x}", rand::random::<u64>()));
        let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(records.len());
        for r in &records {
            let what = format!("record {:?}", r.id);
            Self::check_vector(ix, &r.vector, &what)?;
            let meta: Map<String, Json> = if r.metadata_json.trim().is_empty() {
                Map::new()
            } else {
                serde_json::from_str(&r.metadata_json)
                    .map_err(|e| PluginError::invalid_input(format!("{what}: metadata: {e}")))?
            };
            let mut md = layout::encode(&meta, r.text.as_deref());
            if let Some(s) = &stamp {
                md.insert(layout::STAMP.into(), Json::String(s.clone()));
            }
            let md_bytes = Json::Object(md.clone()).to_string().len();
            if md_bytes > MAX_METADATA_BYTES {
                return Err(PluginError::invalid_input(format!(
                    "{what}: its metadata and text take {md_bytes} bytes in Pinecone's metadata \
                     (the JSON text, the text and the filter layout), over Pinecone's limit of \
                     {MAX_METADATA_BYTES} bytes per record"
                )));
            }
            let mut record = json!({"id": r.id, "values": r.vector, "metadata": md});
            if let Some(text) = r.text.as_deref().filter(|_| home.hybrid) {
                let (indices, values) = sparse::document(text);
                if indices.len() > MAX_SPARSE_VALUES {
                    return Err(PluginError::invalid_input(format!(
                        "{what}: its text has {} distinct terms, and Pinecone's sparse vectors                          hold at most {MAX_SPARSE_VALUES}",
                        indices.len()
                    )));
                }
                if !indices.is_empty() {
                    record["sparseValues"] = json!({"indices": indices, "values": values});
                }
            }
            let body =
                serde_json::to_vec(&record).map_err(|e| PluginError::internal(e.to_string()))?;
            encoded.push(body);
        }
        let namespace = self.namespace(&collection);
        let what = format!("upsert into {collection:?}");
        // With read_after_write_ms: the stamps the ids have now.
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let before: HashMap<String, Option<String>> = if stamp.is_some() {
            self.fetch_raw(ix, &namespace, &ids, &what)
                .await?
                .into_iter()
                .map(|(id, v)| {
                    let s = stamp_of(&v).map(str::to_string);
                    (id, s)
                })
                .collect()
        } else {
            HashMap::new()
        };
        let head = format!(
            "{{\"namespace\":{},\"vectors\":[",
            Json::String(namespace.clone())
        );

        // Batches are cut before anything is sent, then sent
        // `parallel_requests` at a time (an upsert is idempotent: a failed
        // call may have written some batches, and rerunning it is safe).
        let max_bytes = self.cfg.batch_max_bytes;
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut batch: Vec<u8> = Vec::new();
        let mut in_batch = 0usize;
        for rec in encoded {
            if head.len() + rec.len() + 2 > max_bytes {
                return Err(PluginError::invalid_input(format!(
                    "{what}: one record takes {} bytes, over batch_max_bytes ({max_bytes})",
                    rec.len()
                )));
            }
            if in_batch > 0
                && (in_batch >= self.cfg.batch_max_records
                    || batch.len() + rec.len() + 3 > max_bytes)
            {
                batch.extend_from_slice(b"]}");
                bodies.push(std::mem::take(&mut batch));
                in_batch = 0;
            }
            if in_batch == 0 {
                batch.extend_from_slice(head.as_bytes());
            } else {
                batch.push(b',');
            }
            batch.extend_from_slice(&rec);
            in_batch += 1;
        }
        if in_batch > 0 {
            batch.extend_from_slice(b"]}");
            bodies.push(batch);
        }
        let mut sends = futures_util::stream::iter(bodies)
            .map(|body| ix.client.post_bytes("vectors/upsert", body, &what))
            .buffer_unordered(self.cfg.parallel_requests.max(1));
        while let Some(sent) = sends.next().await {
            sent?;
        }
        drop(sends);
        if let Some(stamp) = &stamp {
            self.settle(
                ix,
                Visible::Present {
                    namespace: &namespace,
                    ids: &ids,
                    stamp: Some((stamp, &before)),
                },
                &what,
            )
            .await?;
        }
        Ok(records.len() as u64)
    }

    async fn query(&self, request: QueryRequest) -> PluginResult<Vec<Match>> {
        let ix = self.existing(&request.collection).await?;
        Self::check_vector(ix, &request.vector, "query vector")?;
        let options = request.options_json.trim();
        if !options.is_empty() {
            match serde_json::from_str::<Json>(options) {
                Ok(Json::Object(m)) if m.is_empty() => {}
                Ok(Json::Object(m)) => {
                    return Err(PluginError::invalid_input(format!(
                        "unknown query option(s) {:?}: Pinecone queries take none",
                        m.keys().collect::<Vec<_>>()
                    )));
                }
                _ => {
                    return Err(PluginError::invalid_input(
                        "query options must be a JSON object",
                    ));
                }
            }
        }
        let (_, pf) = translate_str(&request.filter_json)?;
        let k = request.top_k.min(MAX_TOP_K);
        if k == 0 || pf == Pf::False {
            return Ok(Vec::new());
        }
        let flags = request.include;
        let with_data = flags & include::ALL != 0;
        let inline = !with_data || k <= MAX_TOP_K_WITH_DATA;
        let mut body = json!({
            "namespace": self.namespace(&request.collection),
            "vector": request.vector,
            "topK": k,
            "includeValues": inline && flags & include::VECTOR != 0,
            "includeMetadata": inline && flags & (include::METADATA | include::TEXT) != 0,
        });
        if pf != Pf::True {
            body["filter"] = pf.to_json();
        }
        let what = format!("query {:?}", request.collection);
        let r = ix.client.post("query", &body, &what).await?;
        let score = |s: f64| match ix.metric {
            Metric::Euclidean => -s.max(0.0).sqrt(),
            _ => s,
        };
        let raw: Vec<(Json, f64)> = r
            .get("matches")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| {
                        (
                            m.clone(),
                            score(m.get("score").and_then(Json::as_f64).unwrap_or(0.0)),
                        )
                    })
                    .filter(|(_, s)| request.min_score.is_none_or(|min| *s >= min))
                    .collect()
            })
            .unwrap_or_default();
        if inline {
            return Ok(raw
                .iter()
                .filter_map(|(m, s)| Self::to_match(m, *s, flags))
                .collect());
        }
        // More results than Pinecone returns with data: fetch it by id.
        let ids: Vec<&str> = raw
            .iter()
            .filter_map(|(m, _)| m.get("id").and_then(Json::as_str))
            .collect();
        let found = self
            .fetch_raw(ix, &self.namespace(&request.collection), &ids, &what)
            .await?;
        Ok(raw
            .iter()
            .filter_map(|(m, s)| {
                let id = m.get("id")?.as_str()?;
                Self::to_match(found.get(id)?, *s, flags)
            })
            .collect())
    }

    /// Two queries of a hybrid collection, fused here by the contract's
    /// RRF: the dense ranking (the query vector) and the lexical one (an
    /// all-zero dense vector with the text's sparse vector, keeping only
    /// records sharing a term with it), each `candidates` long and filtered.
    async fn hybrid_query(&self, request: HybridRequest) -> PluginResult<Vec<Match>> {
        let home = self.existing_home(&request.collection).await?;
        let ix = &self.indexes[home.index];
        if !home.hybrid {
            return Err(PluginError::unsupported(format!(
                "collection {:?} has no lexical side: hybrid search needs a collection created                  with the option {{\"hybrid\": true}} in a dotproduct index (Pinecone's                  sparse-dense records)",
                request.collection
            )));
        }
        Self::check_vector(ix, &request.vector, "query vector")?;
        let (_, pf) = translate_str(&request.filter_json)?;
        let n = request.candidates_or_default().min(MAX_TOP_K as usize);
        if request.top_k == 0 || pf == Pf::False {
            return Ok(Vec::new());
        }
        let namespace = self.namespace(&request.collection);
        let what = format!("hybrid query {:?}", request.collection);
        let ranking =
            async |vector: Json, sparse_vector: Option<Json>| -> PluginResult<Vec<Match>> {
                let mut body = json!({
                    "namespace": namespace,
                    "vector": vector,
                    "topK": n,
                    "includeValues": false,
                    "includeMetadata": false,
                });
                if let Some(sv) = sparse_vector {
                    body["sparseVector"] = sv;
                }
                if pf != Pf::True {
                    body["filter"] = pf.to_json();
                }
                let r = ix.client.post("query", &body, &what).await?;
                Ok(r.get("matches")
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| {
                                let score = m.get("score").and_then(Json::as_f64).unwrap_or(0.0);
                                Self::to_match(m, score, 0)
                            })
                            .collect()
                    })
                    .unwrap_or_default())
            };
        let dense = ranking(json!(request.vector), None).await?;
        let (indices, values) = sparse::query(&request.text);
        let lexical = if indices.is_empty() {
            Vec::new()
        } else {
            let zeros = vec![0.0f32; ix.dimension as usize];
            let mut hits = ranking(
                json!(zeros),
                Some(json!({"indices": indices, "values": values})),
            )
            .await?;
            hits.retain(|m| m.score > 0.0);
            hits
        };
        let fused = fuse_rrf(&request, dense, lexical);
        if request.include & include::ALL == 0 {
            return Ok(fused);
        }
        let ids: Vec<&str> = fused.iter().map(|m| m.id.as_str()).collect();
        let found = self.fetch_raw(ix, &namespace, &ids, &what).await?;
        Ok(fused
            .iter()
            .filter_map(|m| Self::to_match(found.get(&m.id)?, m.score, request.include))
            .collect())
    }

    async fn fetch(
        &self,
        collection: String,
        ids: Vec<String>,
        flags: u32,
    ) -> PluginResult<Vec<Match>> {
        let ix = self.existing(&collection).await?;
        for id in &ids {
            validate_id(id)?;
        }
        let mut seen = HashSet::new();
        let unique: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        let found = self
            .fetch_raw(
                ix,
                &self.namespace(&collection),
                &unique,
                &format!("fetch from {collection:?}"),
            )
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| Self::to_match(found.get(id)?, 0.0, flags))
            .collect())
    }

    async fn delete(&self, request: DeleteRequest) -> PluginResult<u64> {
        let target = request.target()?;
        let name = &request.collection;
        let ix = self.existing(name).await?;
        let namespace = self.namespace(name);
        let what = format!("delete from {name:?}");
        match target {
            DeleteTarget::Ids(ids) => {
                for id in ids {
                    validate_id(id)?;
                }
                let mut seen = HashSet::new();
                let unique: Vec<&str> = ids
                    .iter()
                    .map(String::as_str)
                    .filter(|id| seen.insert(*id))
                    .collect();
                // Pinecone does not say how many a delete removed: count first.
                let existing: Vec<String> = self
                    .fetch_raw(ix, &namespace, &unique, &what)
                    .await?
                    .into_keys()
                    .collect();
                self.delete_ids(ix, &namespace, &existing, &what).await?;
                let gone: Vec<&str> = existing.iter().map(String::as_str).collect();
                self.settle(
                    ix,
                    Visible::Gone {
                        namespace: &namespace,
                        ids: &gone,
                    },
                    &what,
                )
                .await?;
                Ok(existing.len() as u64)
            }
            DeleteTarget::Filter(f) => {
                let ids = self.matching_ids(ix, &namespace, &f, &what).await?;
                self.delete_ids(ix, &namespace, &ids, &what).await?;
                let gone: Vec<&str> = ids.iter().map(String::as_str).collect();
                self.settle(
                    ix,
                    Visible::Gone {
                        namespace: &namespace,
                        ids: &gone,
                    },
                    &what,
                )
                .await?;
                Ok(ids.len() as u64)
            }
            DeleteTarget::All => {
                let n = self
                    .namespace_counts(ix)
                    .await?
                    .get(&namespace)
                    .copied()
                    .unwrap_or(0);
                if n > 0 {
                    match ix
                        .client
                        .post(
                            "vectors/delete",
                            &json!({"deleteAll": true, "namespace": namespace}),
                            &what,
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                    self.settle(
                        ix,
                        Visible::Empty {
                            namespace: &namespace,
                        },
                        &what,
                    )
                    .await?;
                }
                Ok(n)
            }
            _ => Err(PluginError::unsupported("this kind of delete")),
        }
    }

    async fn count(&self, collection: String, filter_json: String) -> PluginResult<u64> {
        let ix = self.existing(&collection).await?;
        let (f, pf) = translate_str(&filter_json)?;
        let namespace = self.namespace(&collection);
        match pf {
            Pf::False => Ok(0),
            Pf::True => Ok(self
                .namespace_counts(ix)
                .await?
                .get(&namespace)
                .copied()
                .unwrap_or(0)),
            _ => Ok(self
                .matching_ids(ix, &namespace, &f, &format!("count {collection:?}"))
                .await?
                .len() as u64),
        }
    }

    async fn scan(&self, request: ScanRequest) -> PluginResult<ScanPage> {
        let ix = self.existing(&request.collection).await?;
        let (f, _) = translate_str(&request.filter_json)?;
        let (mut skip, mut token) = match request.cursor.as_deref() {
            None => (0, None),
            Some(c) => parse_cursor(c)?,
        };
        let limit = request.limit.clamp(1, MAX_SCAN_PAGE) as usize;
        let namespace = self.namespace(&request.collection);
        let what = format!("scan {:?}", request.collection);
        let mut records = Vec::new();
        loop {
            let (ids, next) = self
                .list_page(ix, &namespace, token.as_deref(), &what)
                .await?;
            let rest: Vec<&str> = ids.iter().skip(skip).map(String::as_str).collect();
            let found = self.fetch_raw(ix, &namespace, &rest, &what).await?;
            for (n, id) in rest.iter().enumerate() {
                let Some(v) = found.get(*id) else { continue };
                if !f.is_all() && !matches(&f, v) {
                    continue;
                }
                if let Some(m) = Self::to_match(v, 0.0, request.include) {
                    records.push(m);
                }
                if records.len() == limit {
                    let used = skip + n + 1;
                    let next_cursor = if used < ids.len() {
                        Some(format!("{used}:{}", token.as_deref().unwrap_or("")))
                    } else {
                        next.map(|t| format!("0:{t}"))
                    };
                    return Ok(ScanPage {
                        records,
                        next_cursor,
                    });
                }
            }
            match next {
                Some(t) => {
                    token = Some(t);
                    skip = 0;
                }
                None => {
                    return Ok(ScanPage {
                        records,
                        next_cursor: None,
                    });
                }
            }
        }
    }
}
