//! The vector contract, in memory, with brute-force exact search.
//!
//! What a real backend replaces is the storage: the maps below become
//! tables, indexes or API calls. What it keeps is the shape of each method
//! and the checks borrowed from `strata_plugin`, the plugin kit, which every backend
//! shares so that the same bad request gets the same error everywhere:
//!
//! - [`validate_collection_name`], [`validate_batch`] (dimension, finite
//!   components, metadata is a JSON object, no id twice) and
//!   [`validate_vector`];
//! - [`Filter::parse_str`] for the filter language, and [`Filter::matches`],
//!   its reference semantics over a JSON document. A database backend
//!   translates the parsed [`Filter`] to its query language instead, exactly,
//!   or answers `unsupported` for an operator it cannot do — never drops one;
//! - [`DeleteRequest::target`] (exactly one of ids, filter or all) and
//!   [`HybridRequest::candidates_or_default`].
//!
//! Scores are higher-is-better on every backend ([`Metric::score`]: cosine
//! similarity, dot product, *negative* euclidean distance), so a backend
//! whose engine returns distances converts them.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    ops::Bound,
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use serde_json::{Value as Json, json};
use strata_plugin::{
    ErrorKind, PluginError, PluginResult, Runs, VectorBackend,
    filter::Filter,
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, DeleteTarget, HybridRequest, Match, Metric,
        QueryRequest, ScanPage, ScanRequest, VectorCall, VectorRecord, include, validate_batch,
        validate_collection_name, validate_vector,
    },
};

use crate::{NAME, config::TemplateConfig};

/// The contract's own dimension limit (see [`CollectionSpec::dimension`]).
const MAX_DIMENSION: u32 = 65_536;
/// Largest scan page handed out, whatever the caller asks for.
const MAX_SCAN_PAGE: u32 = 10_000;

/// A handle on one backend's collections. Cloning it is cheap and every clone
/// sees the same data: the host may ask `Backend::vectors()` many times.
#[derive(Clone)]
pub struct MemoryVectors {
    // One lock for the whole store keeps the template simple: queries share
    // it, writes take it alone. Every call is short and never awaits while
    // holding it (a std guard held across an `.await` would make the future
    // `!Send`, which the kit's traits refuse at compile time anyway).
    state: Arc<RwLock<State>>,
    config: Arc<TemplateConfig>,
}

#[derive(Default)]
struct State {
    collections: BTreeMap<String, Collection>,
    /// Records over all collections, checked against `max_vectors`.
    total: u64,
    /// Set by `Backend::close`: later calls get a `closed` error.
    closed: bool,
}

struct Collection {
    dimension: u32,
    metric: Metric,
    /// Ordered by id, so `scan` can page with the last id as its cursor and
    /// results tie-break deterministically.
    records: BTreeMap<String, Stored>,
}

struct Stored {
    vector: Vec<f32>,
    /// Parsed once at upsert: filters evaluate it, results serialise it (in
    /// the order written; the workspace's serde_json keeps key order).
    metadata: Json,
    text: Option<String>,
}

/// One scored record, borrowed from the store while its lock is held.
type Hit<'a> = (&'a str, &'a Stored, f64);

impl MemoryVectors {
    pub(crate) fn new(config: TemplateConfig) -> MemoryVectors {
        MemoryVectors {
            state: Arc::default(),
            config: Arc::new(config),
        }
    }

    fn read(&self) -> PluginResult<RwLockReadGuard<'_, State>> {
        let state = self.state.read().map_err(|_| poisoned())?;
        if state.closed {
            return Err(PluginError::closed(&format!("this {NAME} backend")));
        }
        Ok(state)
    }

    fn write(&self) -> PluginResult<RwLockWriteGuard<'_, State>> {
        let state = self.state.write().map_err(|_| poisoned())?;
        if state.closed {
            return Err(PluginError::closed(&format!("this {NAME} backend")));
        }
        Ok(state)
    }

    /// What `Backend::health` reports: for a server backend, a round trip.
    pub(crate) fn health(&self) -> PluginResult<String> {
        let state = self.read()?;
        Ok(format!(
            "in memory: {} collections, {} of at most {} records",
            state.collections.len(),
            state.total,
            self.config.max_vectors
        ))
    }

    /// Frees everything; later calls on any handle are `closed` errors.
    pub(crate) fn close(&self) {
        // Closing a poisoned store is fine: everything is dropped anyway.
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        *state = State {
            closed: true,
            ..State::default()
        };
    }
}

/// A panic while the write lock was held (caught by the kit) may have left a
/// half-done write behind: refuse to serve from it rather than guess.
fn poisoned() -> PluginError {
    PluginError::internal(
        "an earlier call panicked while writing to this backend; reopen it (its data may be inconsistent)",
    )
}

fn not_found(name: &str) -> PluginError {
    let message = format!("collection {name:?} does not exist");
    PluginError::new(ErrorKind::NotFound, message)
}

impl State {
    /// The collection, after checking the name (so a malformed name is
    /// `invalid_input`, as on every backend, not `not_found`).
    fn collection(&self, name: &str) -> PluginResult<&Collection> {
        validate_collection_name(name)?;
        self.collections.get(name).ok_or_else(|| not_found(name))
    }

    fn collection_mut(&mut self, name: &str) -> PluginResult<&mut Collection> {
        validate_collection_name(name)?;
        self.collections
            .get_mut(name)
            .ok_or_else(|| not_found(name))
    }
}

impl Collection {
    /// The records passing `filter`, in id order.
    fn matching<'s>(&'s self, filter: &Filter) -> impl Iterator<Item = (&'s str, &'s Stored)> {
        self.records
            .iter()
            .filter(|(_, r)| filter.matches(&r.metadata))
            .map(|(id, r)| (id.as_str(), r))
    }

    /// The dense ranking: every matching record scored exactly, best `k` first.
    fn dense(&self, query: &[f32], filter: &Filter, k: usize) -> Vec<Hit<'_>> {
        let scored = self
            .matching(filter)
            .map(|(id, r)| (id, r, self.metric.score(query, &r.vector)))
            .collect();
        best(scored, k)
    }

    /// The lexical ranking: how often the query's words occur in a record's
    /// text (lower-cased, split on anything not a letter or digit). A real
    /// backend uses its full-text engine (BM25, `ts_rank`, …); the contract
    /// only asks for a ranking, which RRF turns into scores.
    fn lexical(&self, text: &str, filter: &Filter, k: usize) -> Vec<Hit<'_>> {
        let terms: HashSet<String> = words(text).collect();
        if terms.is_empty() {
            return Vec::new();
        }
        let scored = self
            .matching(filter)
            .filter_map(|(id, r)| {
                let tf = words(r.text.as_deref()?)
                    .filter(|w| terms.contains(w))
                    .count();
                (tf > 0).then_some((id, r, tf as f64))
            })
            .collect();
        best(scored, k)
    }

    fn info(&self, name: &str) -> CollectionInfo {
        CollectionInfo {
            name: name.into(),
            dimension: self.dimension,
            metric: self.metric,
            count: self.records.len() as u64,
            // Free-form JSON for operators (`strata vectors stats`); an
            // indexed backend reports its index kind, size and build state.
            details_json: json!({"index": "none (exact search)", "storage": "memory"}).to_string(),
        }
    }
}

/// Lower-cased words: maximal runs of letters and digits (any script).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The best `k` hits, highest score first; equal scores by id, so the same
/// data always gives the same order.
fn best(mut hits: Vec<Hit<'_>>, k: usize) -> Vec<Hit<'_>> {
    hits.sort_unstable_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    hits.truncate(k);
    hits
}

/// A result carrying what the [`include`] flags ask for. Metadata is always
/// an object (`{}` when none was written); text only when the record has one.
fn to_match(id: &str, r: &Stored, score: f64, flags: u32) -> Match {
    let wanted = |flag: u32| flags & flag != 0;
    Match {
        id: id.into(),
        score,
        vector: wanted(include::VECTOR).then(|| r.vector.clone()),
        metadata_json: wanted(include::METADATA).then(|| r.metadata.to_string()),
        text: r
            .text
            .as_deref()
            .filter(|_| wanted(include::TEXT))
            .map(String::from),
    }
}

/// Options must be a JSON object of known keys: a typo is an error, never
/// silently ignored. `exact` and `ef_search` tune approximate indexes on
/// other backends; exact search already satisfies any of them, so they are
/// accepted (a caller can send the same options to every backend).
fn check_options(text: &str, known: &[&str], what: &str) -> PluginResult<()> {
    if text.trim().is_empty() {
        return Ok(());
    }
    let options: serde_json::Map<String, Json> = serde_json::from_str(text).map_err(|e| {
        PluginError::invalid_input(format!("{what} options must be a JSON object: {e}"))
    })?;
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(PluginError::invalid_input(format!(
            "unknown {what} option {k:?} (the {NAME} backend takes: {known:?})"
        ))),
        None => Ok(()),
    }
}

// Plain async methods: the kit turns each into a boundary call, contains a
// panic as an `internal` error, and runs it where `runs` says.
impl VectorBackend for MemoryVectors {
    /// Where each call runs. A call touching a handful of records finishes
    /// faster than a thread hop: inline, on the caller's thread. Whatever
    /// walks the whole collection (exact search, filters, scans) or a large
    /// batch goes to the plugin's blocking pool, so a big collection never
    /// holds the application's executor thread. (A backend with an async
    /// network client answers `Runs::Async` instead.)
    fn runs(&self, call: VectorCall<'_>) -> Runs {
        match call {
            VectorCall::Query(_)
            | VectorCall::HybridQuery(_)
            | VectorCall::Scan(_)
            | VectorCall::Count(..)
            | VectorCall::Delete(_) => Runs::Blocking,
            VectorCall::Upsert(_, records) if records.len() > 256 => Runs::Blocking,
            _ => Runs::Inline,
        }
    }

    async fn create_collection(&self, spec: CollectionSpec) -> PluginResult<()> {
        let name = spec.name.as_str();
        validate_collection_name(name)?;
        let max = self.config.max_dimension.min(MAX_DIMENSION);
        if spec.dimension == 0 || spec.dimension > max {
            return Err(PluginError::invalid_input(format!(
                "dimension {} is out of range (1..={max}; the limit is the backend's `max_dimension`)",
                spec.dimension
            )));
        }
        check_options(&spec.options_json, &[], "collection")?;
        let mut state = self.write()?;
        match state.collections.get(name) {
            // Same spec: a no-op, so applications can "ensure" a collection.
            Some(c) if c.dimension == spec.dimension && c.metric == spec.metric => Ok(()),
            Some(c) => Err(PluginError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "collection {name:?} exists with dimension {} and metric {} (asked: {} and {})",
                    c.dimension,
                    c.metric.name(),
                    spec.dimension,
                    spec.metric.name()
                ),
            )),
            None => {
                let c = Collection {
                    dimension: spec.dimension,
                    metric: spec.metric,
                    records: BTreeMap::new(),
                };
                state.collections.insert(name.to_string(), c);
                Ok(())
            }
        }
    }

    async fn drop_collection(&self, name: String) -> PluginResult<bool> {
        validate_collection_name(&name)?;
        let mut state = self.write()?;
        // Dropping what does not exist is not an error: `false` says so.
        let Some(c) = state.collections.remove(name.as_str()) else {
            return Ok(false);
        };
        state.total -= c.records.len() as u64;
        Ok(true)
    }

    async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> {
        let state = self.read()?;
        Ok(state.collections.iter().map(|(n, c)| c.info(n)).collect())
    }

    async fn collection_info(&self, name: String) -> PluginResult<Option<CollectionInfo>> {
        validate_collection_name(&name)?;
        let state = self.read()?;
        Ok(state.collections.get(name.as_str()).map(|c| c.info(&name)))
    }

    async fn upsert(&self, collection: String, records: Vec<VectorRecord>) -> PluginResult<u64> {
        let mut state = self.write()?;
        let total = state.total;
        let c = state.collection_mut(&collection)?;
        // A batch is all or nothing: check every record, and the limit,
        // before changing anything.
        validate_batch(&records, c.dimension)?;
        let new = records
            .iter()
            .filter(|r| !c.records.contains_key(r.id.as_str()))
            .count() as u64;
        if total + new > self.config.max_vectors {
            return Err(PluginError::new(
                ErrorKind::Constraint,
                format!(
                    "upserting {} records ({new} new) would hold {} records, over the backend's max_vectors = {}; nothing was written",
                    records.len(),
                    total + new,
                    self.config.max_vectors
                ),
            ));
        }
        let written = records.len() as u64;
        for r in records {
            // `validate_batch` checked that non-empty metadata is an object.
            let metadata = match r.metadata_json.as_str() {
                "" => Json::Object(Default::default()),
                text => serde_json::from_str(text)
                    .map_err(|e| PluginError::internal(format!("metadata: {e}")))?,
            };
            let stored = Stored {
                vector: r.vector,
                metadata,
                text: r.text,
            };
            // An upsert overwrites the whole record: no text now means no text.
            c.records.insert(r.id, stored);
        }
        state.total += new;
        Ok(written)
    }

    async fn query(&self, request: QueryRequest) -> PluginResult<Vec<Match>> {
        let state = self.read()?;
        let c = state.collection(&request.collection)?;
        validate_vector(&request.vector, c.dimension, "query")?;
        let filter = Filter::parse_str(&request.filter_json)?;
        check_options(&request.options_json, &["exact", "ef_search"], "query")?;
        let min_score = request.min_score;
        // Filtering before ranking is what makes a filtered query return
        // `top_k` results whenever that many match (an index that filters
        // after its search has to oversample or fall back to get this).
        let hits = c.dense(&request.vector, &filter, request.top_k as usize);
        Ok(hits
            .into_iter()
            .filter(|(_, _, score)| min_score.is_none_or(|m| *score >= m))
            .map(|(id, r, score)| to_match(id, r, score, request.include))
            .collect())
    }

    async fn hybrid_query(&self, request: HybridRequest) -> PluginResult<Vec<Match>> {
        let state = self.read()?;
        let c = state.collection(&request.collection)?;
        validate_vector(&request.vector, c.dimension, "hybrid query")?;
        let filter = Filter::parse_str(&request.filter_json)?;
        let weights = [request.dense_weight, request.lexical_weight];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(PluginError::invalid_input(format!(
                "hybrid weights must be finite and non-negative (got dense {}, lexical {})",
                weights[0], weights[1]
            )));
        }
        // Both rankings see the filter, and each contributes its best
        // `candidates` to the fusion.
        let n = request.candidates_or_default();
        let rankings = [
            (c.dense(&request.vector, &filter, n), request.dense_weight),
            (c.lexical(&request.text, &filter, n), request.lexical_weight),
        ];
        // Reciprocal rank fusion: score(d) = Σ weight / (rrf_k + rank(d)),
        // ranks starting at 1. Only ranks count, so a cosine similarity
        // and a term count never have to be put on one scale.
        let rrf_k = f64::from(request.rrf_k);
        let mut fused: HashMap<&str, (&Stored, f64)> = HashMap::new();
        for (ranking, weight) in &rankings {
            for (rank, (id, r, _)) in ranking.iter().enumerate() {
                fused.entry(id).or_insert((r, 0.0)).1 += weight / (rrf_k + rank as f64 + 1.0);
            }
        }
        let fused = fused.into_iter().map(|(id, (r, s))| (id, r, s)).collect();
        Ok(best(fused, request.top_k as usize)
            .into_iter()
            .map(|(id, r, score)| to_match(id, r, score, request.include))
            .collect())
    }

    async fn fetch(
        &self,
        collection: String,
        ids: Vec<String>,
        flags: u32,
    ) -> PluginResult<Vec<Match>> {
        let state = self.read()?;
        let c = state.collection(&collection)?;
        // In the order asked; missing ids are simply absent.
        Ok(ids
            .iter()
            .filter_map(|id| c.records.get_key_value(id.as_str()))
            .map(|(id, r)| to_match(id, r, 0.0, flags))
            .collect())
    }

    async fn delete(&self, request: DeleteRequest) -> PluginResult<u64> {
        let target = request.target()?;
        let mut state = self.write()?;
        let c = state.collection_mut(&request.collection)?;
        let before = c.records.len();
        match target {
            DeleteTarget::Ids(ids) => {
                for id in ids {
                    c.records.remove(id.as_str());
                }
            }
            DeleteTarget::Filter(f) => c.records.retain(|_, r| !f.matches(&r.metadata)),
            DeleteTarget::All => c.records.clear(),
            // `DeleteTarget` is non-exhaustive: a kind of delete added in
            // a later plugin-api is refused, never guessed at.
            _ => return Err(PluginError::unsupported("this kind of delete")),
        }
        let deleted = (before - c.records.len()) as u64;
        state.total -= deleted;
        Ok(deleted)
    }

    async fn count(&self, collection: String, filter_json: String) -> PluginResult<u64> {
        let state = self.read()?;
        let c = state.collection(&collection)?;
        let filter = Filter::parse_str(&filter_json)?;
        Ok(c.matching(&filter).count() as u64)
    }

    async fn scan(&self, request: ScanRequest) -> PluginResult<ScanPage> {
        let state = self.read()?;
        let c = state.collection(&request.collection)?;
        let filter = Filter::parse_str(&request.filter_json)?;
        let limit = request.limit.clamp(1, MAX_SCAN_PAGE) as usize;
        // The cursor is the last id of the previous page (keyset paging):
        // records written or deleted between pages never make the scan
        // skip or repeat the others. A backend whose order is not by id
        // encodes its own position (opaque to callers) instead.
        let start = match request.cursor.as_deref() {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut matching = c
            .records
            .range::<str, _>((start, Bound::Unbounded))
            .filter(|(_, r)| filter.matches(&r.metadata));
        let records: Vec<Match> = matching
            .by_ref()
            .take(limit)
            .map(|(id, r)| to_match(id, r, 0.0, request.include))
            .collect();
        // Look one record ahead, so the last page says it is the last
        // instead of costing the caller one more, empty, round trip.
        let next_cursor = match (records.last(), matching.next()) {
            (Some(last), Some(_)) => Some(last.id.clone()),
            _ => None,
        };
        Ok(ScanPage {
            records,
            next_cursor,
        })
    }
}

// Plugin-specific behaviour, tested in process on the plain Rust types (no
// host, no `.so`): the contract itself is the conformance suite's job
// (`tests/conformance.rs`).
#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's methods are plain async fns: a test runs them on any
    /// executor.
    fn block_on<F: Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        runtime.unwrap().block_on(future)
    }

    /// Going past `max_vectors` is a `constraint` error that writes nothing;
    /// overwriting existing ids does not count against the limit.
    #[test]
    fn max_vectors_is_enforced() {
        block_on(max_vectors())
    }

    async fn max_vectors() {
        let config = TemplateConfig {
            max_vectors: 3,
            max_dimension: 8,
        };
        let v = MemoryVectors::new(config);
        let spec = CollectionSpec {
            name: "c".into(),
            dimension: 2,
            metric: Metric::Dot,
            options_json: String::new(),
        };
        v.create_collection(spec).await.unwrap();
        let recs = |ids: &[&str]| {
            ids.iter()
                .map(|id| VectorRecord {
                    id: id.to_string(),
                    vector: vec![1.0, 0.0],
                    metadata_json: String::new(),
                    text: None,
                })
                .collect::<Vec<_>>()
        };
        v.upsert("c".into(), recs(&["a", "b"])).await.unwrap();
        v.upsert("c".into(), recs(&["a", "b", "c"])).await.unwrap();
        let err = v.upsert("c".into(), recs(&["d"])).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Constraint, "{err}");
        assert!(err.to_string().contains("max_vectors = 3"), "{err}");
        assert_eq!(v.count("c".into(), String::new()).await.unwrap(), 3);
    }
}
