//! The vector contract on SQLite: tier 1 of the scaling path.
//!
//! # Storage
//!
//! The database is the source of truth. A catalog table
//! `strata_collections(name, dimension, metric, options, generation)` lists
//! collections; each collection is a table `strata_vec_<name>` (`pk` rowid
//! with AUTOINCREMENT so a key is never reused, string `id` UNIQUE,
//! `vector` as little-endian `f32` BLOB, `metadata` JSON text, `text`) and an
//! external-content FTS5 table `strata_fts_<name>` kept in sync by triggers.
//! An overwrite deletes the old row and inserts a new one, so every stored
//! vector has its own `pk` forever (which keeps derived indexes simple).
//!
//! # Exact search
//!
//! Scanning BLOBs through SQLite for every query would be far from memory
//! speed, so each collection's vectors are cached in one contiguous `f32`
//! array (normalised for cosine) and scored with a tight loop the compiler
//! vectorises (AVX2 + FMA when the CPU has them). Every write bumps the
//! collection's `generation` (a random token) in the same transaction; a
//! query whose cached generation differs — another process wrote — reloads.
//! Writes through this plugin patch the cache in place.
//!
//! From `QUANT_MIN_SCAN` vectors on, the cache also holds an int8 copy
//! (`quant`): exact top-k scans that (a quarter of the bytes), then
//! rescores with `f32` only the vectors a provable error bound cannot rule
//! out. The answer is the `f32` scan's, vector for vector and score for
//! score (ties broken by pk on both paths); the copy costs `d + 8` bytes per
//! vector (+25 % at d = 384, reported in the collection details as
//! `exact_scan`). All three metrics use it, filtered queries too (over the
//! rows the filter selected); queries whose magnitudes approach `f32`
//! overflow, tiny scans and `k` above 1/16 of the scanned rows use the `f32`
//! scan directly.
//!
//! # Approximate search
//!
//! Past `hnsw_threshold` vectors a collection gets an HNSW index
//! (`crate::index` over the plugin's own graph, `crate::hnsw`), built in
//! the background by default while exact search answers (`Build` below) and
//! saved beside the database. Its candidates are rescored exactly from the
//! cache, so scores never depend on the index.
//!
//! # Filters
//!
//! The shared filter language is translated to SQLite JSON SQL
//! (`crate::filter_sql`); a filtered query first selects the matching
//! rows in SQL, then scores exactly those.
//!
//! # Hybrid
//!
//! BM25 over FTS5 (query terms OR-ed, each quoted) and the dense ranking,
//! each cut to `candidates`, fused by reciprocal rank fusion.
//!
//! # Where calls run
//!
//! Loading a collection (100K × 384 is 150 MB read and decoded), an exact
//! scan and an inline index build (tens of seconds) all happen inside the
//! call that needs them, so every call that may do one runs on the
//! plugin's blocking pool; only a `fetch` of a few ids runs inline (see
//! `SqliteVectors::runs`). Background builds have threads of their own.

use std::{
    cmp::Ordering,
    collections::{BinaryHeap, HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering as AtomicOrdering},
    time::Instant,
};

use rusqlite::{Connection, OptionalExtension, params_from_iter};
use strata_plugin::{
    ErrorKind, PluginError, PluginResult, Runs, Value, VectorBackend,
    filter::Filter,
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, DeleteTarget, HybridRequest, Match, Metric,
        QueryRequest, ScanPage, ScanRequest, VectorCall, VectorRecord, include, validate_batch,
        validate_collection_name, validate_vector,
    },
};
use tokio::sync::OwnedRwLockReadGuard;

use crate::{
    config::HnswBuild,
    error::map,
    filter_sql,
    index::{AnnIndex, BuildCtl, HnswParams, SAVE_EVERY},
    sql::Shared,
};

#[path = "quant.rs"]
mod quant;

/// Exact scans of at least this many rows go through the int8 copy.
const QUANT_MIN_SCAN: usize = 1024;

/// A `fetch` of at most this many ids is a point read: it runs inline.
const INLINE_MAX_IDS: usize = 16;

const CATALOG: &str = "CREATE TABLE IF NOT EXISTS strata_collections (
    name TEXT PRIMARY KEY,
    dimension INTEGER NOT NULL,
    metric TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    generation INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)";

fn vec_table(name: &str) -> String {
    format!("\"strata_vec_{name}\"")
}

fn fts_table(name: &str) -> String {
    format!("\"strata_fts_{name}\"")
}

/// A collection's catalog row.
#[derive(Clone, Debug)]
struct Meta {
    name: String,
    dimension: u32,
    metric: Metric,
    generation: i64,
}

/// The cached vectors of one collection.
struct Loaded {
    generation: i64,
    dimension: usize,
    metric: Metric,
    pks: Vec<i64>,
    ids: Vec<String>,
    data: Vec<f32>,
    pos: HashMap<i64, usize>,
    /// The int8 copy of `data` for exact search (row for row).
    quant: quant::Quant,
    /// The HNSW index, once the collection passed the threshold.
    index: Option<AnnIndex>,
}

impl Loaded {
    fn len(&self) -> usize {
        self.pks.len()
    }

    fn push(&mut self, pk: i64, id: String, vector: &[f32]) {
        self.pos.insert(pk, self.pks.len());
        self.pks.push(pk);
        self.ids.push(id);
        let start = self.data.len();
        if self.metric == Metric::Cosine {
            self.data.extend(normalized(vector));
        } else {
            self.data.extend_from_slice(vector);
        }
        self.quant.push(&self.data[start..]);
    }

    fn remove(&mut self, pk: i64) {
        let Some(i) = self.pos.remove(&pk) else {
            return;
        };
        let last = self.pks.len() - 1;
        let d = self.dimension;
        if i != last {
            self.pks.swap(i, last);
            self.ids.swap(i, last);
            let (head, tail) = self.data.split_at_mut(last * d);
            head[i * d..(i + 1) * d].copy_from_slice(&tail[..d]);
            self.pos.insert(self.pks[i], i);
        }
        self.quant.swap_remove(i, last);
        self.pks.pop();
        self.ids.pop();
        self.data.truncate(last * d);
    }

    fn vector(&self, i: usize) -> &[f32] {
        &self.data[i * self.dimension..(i + 1) * self.dimension]
    }

    /// Builds an index over every cached vector, here and now.
    fn build_index(&self, params: HnswParams) -> AnnIndex {
        AnnIndex::build(
            self.metric,
            self.dimension,
            params,
            self.generation,
            self.pks
                .iter()
                .enumerate()
                .map(|(i, pk)| (*pk, self.vector(i))),
        )
    }
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / norm).collect()
    }
}

pub(crate) fn encode(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

pub(crate) fn decode(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Dot product with 16 independent accumulators so the loop vectorises.
#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn l2_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let d = x[i] - y[i];
            acc[i] = d.mul_add(d, acc[i]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += (x - y) * (x - y);
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
    l2_generic(a, b)
}

/// The kernels for this CPU, chosen once.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub(crate) dot: fn(&[f32], &[f32]) -> f32,
    pub(crate) l2: fn(&[f32], &[f32]) -> f32,
}

pub(crate) fn kernels() -> Kernels {
    static K: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    *K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features these functions were compiled for.
            return Kernels {
                dot: |a, b| unsafe { dot_avx2(a, b) },
                l2: |a, b| unsafe { l2_avx2(a, b) },
            };
        }
        Kernels {
            dot: dot_generic,
            l2: l2_generic,
        }
    })
}

/// A scored candidate, ordered so a `BinaryHeap` keeps the worst on top:
/// lower score, then (a tie) larger pk.
#[derive(Clone, Copy)]
struct Scored {
    score: f32,
    pk: i64,
    index: usize,
}
impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reverse: the heap's top is the lowest score (ties: the larger pk).
        o.score.total_cmp(&self.score).then(self.pk.cmp(&o.pk))
    }
}

/// The query in the cached form (normalised for cosine).
fn prepare_query(loaded: &Loaded, query: &[f32]) -> Vec<f32> {
    if loaded.metric == Metric::Cosine {
        normalized(query)
    } else {
        query.to_vec()
    }
}

/// The exact score of cached vector `i` against a prepared query.
fn score_at(loaded: &Loaded, kern: Kernels, q: &[f32], i: usize) -> f32 {
    let v = loaded.vector(i);
    match loaded.metric {
        Metric::Cosine | Metric::Dot => (kern.dot)(q, v),
        Metric::Euclidean => -(kern.l2)(q, v).sqrt(),
    }
}

/// Sorts best first (ties: lower pk first) and keeps `k`.
fn rank(loaded: &Loaded, mut scored: Vec<(usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    scored.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(loaded.pks[a.0].cmp(&loaded.pks[b.0]))
    });
    scored.truncate(k);
    scored
}

/// Exact top-k over the cache, optionally restricted to `allowed` pks:
/// the `k` best by (`f32` score desc, pk asc), through the int8 copy when
/// the scan is large enough (same answer, fewer bytes read).
fn exact_top_k(
    loaded: &Loaded,
    q: &[f32],
    k: usize,
    allowed: Option<&HashSet<i64>>,
) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let rows = candidate_rows(loaded, allowed);
    let m = rows.as_ref().map_or(loaded.len(), Vec::len);
    if m >= QUANT_MIN_SCAN
        && k.saturating_mul(16) <= m
        && let Some(found) = quant_top_k(loaded, q, k, rows.as_deref())
    {
        return found;
    }
    f32_top_k(loaded, q, k, rows.as_deref())
}

/// The cache rows of the `allowed` pks, ascending (`None`: all rows).
fn candidate_rows(loaded: &Loaded, allowed: Option<&HashSet<i64>>) -> Option<Vec<usize>> {
    match allowed {
        None => None,
        Some(set) if set.len() < loaded.len() / 4 => {
            let mut rows: Vec<usize> = set
                .iter()
                .filter_map(|pk| loaded.pos.get(pk).copied())
                .collect();
            rows.sort_unstable();
            Some(rows)
        }
        Some(set) => Some(
            (0..loaded.len())
                .filter(|&i| set.contains(&loaded.pks[i]))
                .collect(),
        ),
    }
}

/// Exact top-k through the int8 copy (`None`: not available for this query).
fn quant_top_k(
    loaded: &Loaded,
    q: &[f32],
    k: usize,
    rows: Option<&[usize]>,
) -> Option<Vec<(usize, f32)>> {
    if loaded.quant.len() != loaded.len() {
        return None;
    }
    let kern = kernels();
    loaded
        .quant
        .top_k(
            loaded.metric,
            q,
            k,
            rows,
            |i| score_at(loaded, kern, q, i),
            |i| loaded.pks[i],
        )
        .map(|(found, _)| found)
}

/// Exact top-k by scanning the `f32` cache (rows `rows`, all when `None`).
fn f32_top_k(loaded: &Loaded, q: &[f32], k: usize, rows: Option<&[usize]>) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let kern = kernels();
    let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
    let mut offer = |index: usize| {
        let c = Scored {
            score: score_at(loaded, kern, q, index),
            pk: loaded.pks[index],
            index,
        };
        if heap.len() < k {
            heap.push(c);
        } else if let Some(top) = heap.peek()
            && c < *top
        {
            heap.pop();
            heap.push(c);
        }
    };
    match rows {
        Some(rows) => rows.iter().for_each(|&i| offer(i)),
        None => (0..loaded.len()).for_each(offer),
    }
    rank(
        loaded,
        heap.into_iter().map(|s| (s.index, s.score)).collect(),
        k,
    )
}

/// Top-k through the HNSW index, rescored exactly; `None` when exact search
/// must answer instead: the filter is selective (exact over the few matching
/// rows is cheaper and exact), or the graph search came back with fewer than
/// `top_k` results although that many match.
fn ann_top_k(
    loaded: &Loaded,
    index: &AnnIndex,
    q: &[f32],
    k: usize,
    options: &QueryOptions,
    allowed: Option<&HashSet<i64>>,
) -> Option<Vec<(usize, f32)>> {
    if k == 0 {
        return Some(Vec::new());
    }
    let matching = allowed.map_or(loaded.len(), HashSet::len);
    if allowed.is_some() && matching <= (loaded.len() / 20).max(2_000) {
        return None;
    }
    let mut ef = options.ef_search.unwrap_or(index.params.ef_search).max(k);
    if allowed.is_some() {
        // Oversample when part of the graph is filtered away.
        ef = ef.max(k * 4);
    }
    let kern = kernels();
    let scored: Vec<(usize, f32)> = index
        .search(q, k, ef, allowed)
        .into_iter()
        .filter_map(|pk| {
            loaded
                .pos
                .get(&pk)
                .map(|&i| (i, score_at(loaded, kern, q, i)))
        })
        .collect();
    let ranked = rank(loaded, scored, k);
    (ranked.len() >= k.min(matching)).then_some(ranked)
}

/// Per-query options (`QueryRequest::options_json`).
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryOptions {
    /// Candidates explored by the HNSW search.
    ef_search: Option<usize>,
    /// Skip the index: exact search.
    #[serde(default)]
    exact: bool,
}

fn query_options(text: &str) -> PluginResult<QueryOptions> {
    if text.trim().is_empty() {
        return Ok(QueryOptions::default());
    }
    serde_json::from_str(text).map_err(|e| {
        PluginError::invalid_input(format!(
            "query options {text}: {e} (the sqlite backend takes ef_search and exact)"
        ))
    })
}

/// One collection's cache slot (`None` until loaded or after invalidation).
/// An async lock: reloading (and building an index) awaits the database.
type Slot = Arc<tokio::sync::RwLock<Option<Loaded>>>;

/// A loaded cache held for reading (see `SqliteVectors::loaded`).
type LoadedGuard = OwnedRwLockReadGuard<Option<Loaded>, Loaded>;

/// An HNSW index built from scratch on a background thread
/// (`hnsw_build = "background"`).
///
/// The thread builds from a copy of the cache taken at `generation`, saves
/// the sidecar, and leaves the index in `state`; the next call that loads
/// the collection installs it, reconciling the writes made meanwhile (new
/// pks inserted, gone ones tombstoned), exactly as a sidecar saved before a
/// crash is reconciled on open. Until then queries are answered by exact
/// search, so they are never wrong and never wait for the build.
///
/// Cancellation (drop of the collection, close of the backend) sets a flag
/// the build checks before each node, then takes the `state` lock, which the
/// thread holds while it saves: once `cancel` returns, the thread writes no
/// file.
struct Build {
    ctl: BuildCtl,
    state: Mutex<BuildState>,
    total: usize,
    started: Instant,
    /// What the index is for: a finished build is installed only into a
    /// collection of the same shape (not one dropped and made again).
    metric: Metric,
    dimension: usize,
}

enum BuildState {
    Running,
    Done(Box<AnnIndex>),
    Failed(String),
    Cancelled,
}

impl Build {
    fn cancel(&self) {
        self.ctl.cancelled.store(true, AtomicOrdering::Release);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, BuildState::Failed(_)) {
            *state = BuildState::Cancelled;
        }
    }

    /// The state, unless the thread holds it (saving the sidecar). A lock
    /// poisoned by a panic is still read: the state it guards is whole.
    fn try_state(&self) -> Option<std::sync::MutexGuard<'_, BuildState>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The state's name and, for failures, the message (`running` while the
    /// thread saves the sidecar).
    fn describe(&self) -> (&'static str, Option<String>) {
        match self.try_state().as_deref() {
            Some(BuildState::Done(_)) => ("done", None),
            Some(BuildState::Failed(m)) => ("failed", Some(m.clone())),
            Some(BuildState::Cancelled) => ("cancelled", None),
            Some(BuildState::Running) | None => ("running", None),
        }
    }
}

type Builds = Arc<Mutex<HashMap<String, Arc<Build>>>>;

/// The vector store of one SQLite backend.
pub(crate) struct SqliteVectors {
    shared: Arc<Shared>,
    cache: Arc<Mutex<HashMap<String, Slot>>>,
    builds: Builds,
}

impl SqliteVectors {
    pub(crate) fn new(shared: Arc<Shared>) -> SqliteVectors {
        SqliteVectors {
            shared,
            cache: Default::default(),
            builds: Default::default(),
        }
    }

    /// The background builds in flight or finished, by collection.
    fn builds(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Build>>> {
        self.builds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn build_of(&self, name: &str) -> Option<Arc<Build>> {
        self.builds().get(name).cloned()
    }

    /// Whether a background build of `name` has finished and waits to be
    /// installed (cheap: no lock is waited for).
    fn build_finished(&self, name: &str) -> bool {
        self.build_of(name)
            .is_some_and(|b| matches!(b.try_state().as_deref(), Some(BuildState::Done(_))))
    }

    /// Stops and forgets the background build of `name`; whether there was one.
    fn cancel_build(&self, name: &str) -> bool {
        // The map's lock is released before `cancel` waits on the build.
        let build = self.builds().remove(name);
        match build {
            Some(b) => {
                b.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops every background build (at close: a half-built index is
    /// derived data, rebuilt by the next process that needs it).
    pub(crate) fn cancel_builds(&self) {
        let builds: Vec<Arc<Build>> = self.builds().drain().map(|(_, b)| b).collect();
        for b in builds {
            b.cancel();
        }
    }

    /// The index a finished background build left for `name` (forgetting
    /// the build) when it fits `loaded` (same metric and dimension: not a
    /// leftover of a collection dropped and made again); `Err(())` while one
    /// is still running (or failed: a failed build is not retried until the
    /// backend is reopened).
    fn take_built(&self, name: &str, loaded: &Loaded) -> Result<Option<AnnIndex>, ()> {
        let Some(build) = self.build_of(name) else {
            return Ok(None);
        };
        let Some(mut state) = build.try_state() else {
            return Err(()); // saving the sidecar
        };
        let taken = match std::mem::replace(&mut *state, BuildState::Cancelled) {
            BuildState::Done(ix) => (build.metric == loaded.metric
                && build.dimension == loaded.dimension)
                .then_some(*ix),
            BuildState::Cancelled => None,
            other => {
                *state = other;
                return Err(());
            }
        };
        drop(state);
        let mut builds = self.builds();
        if builds.get(name).is_some_and(|b| Arc::ptr_eq(b, &build)) {
            builds.remove(name);
        }
        Ok(taken)
    }

    /// Starts building `loaded`'s index on a thread (see [`Build`]); falls
    /// back to building it here when no thread can be spawned.
    fn start_build(&self, name: &str, loaded: &Loaded, params: HnswParams) -> Option<AnnIndex> {
        let build = Arc::new(Build {
            ctl: BuildCtl::default(),
            state: Mutex::new(BuildState::Running),
            total: loaded.len(),
            started: Instant::now(),
            metric: loaded.metric,
            dimension: loaded.dimension,
        });
        let pks = loaded.pks.clone();
        let data = loaded.data.clone();
        let (metric, dim, generation) = (loaded.metric, loaded.dimension, loaded.generation);
        let dir = (!self.shared.config().read_only)
            .then(|| self.index_dir())
            .flatten();
        let (job, collection) = (build.clone(), name.to_string());
        let spawned = std::thread::Builder::new()
            .name(format!("strata-hnsw-{name}"))
            .spawn(move || {
                // The graph is built on a scoped thread of its own: a panic
                // in it ends that thread only, and its join here records
                // the build as failed (queries stay exact) instead of
                // leaving it "running" for ever.
                let built = std::thread::scope(|s| {
                    std::thread::Builder::new()
                        .name(format!("strata-hnsw-{collection}"))
                        .spawn_scoped(s, || {
                            let points = pks.iter().copied().zip(data.chunks_exact(dim.max(1)));
                            AnnIndex::build_with(
                                metric, dim, params, generation, points, &job.ctl, false,
                            )
                        })
                        .map_err(|e| format!("no thread for the build: {e}"))?
                        .join()
                        .map_err(|panic| PluginError::from_panic(&*panic).to_string())
                });
                let mut state = job.state.lock().unwrap_or_else(|p| p.into_inner());
                if job.ctl.is_cancelled() {
                    *state = BuildState::Cancelled;
                    return;
                }
                *state = match built {
                    Ok(Some(ix)) => BuildState::Done(Box::new(ix)),
                    Ok(None) => BuildState::Cancelled,
                    Err(msg) => {
                        eprintln!("strata-sqlite: the HNSW build of {collection:?} failed: {msg}; queries stay exact");
                        BuildState::Failed(msg)
                    }
                };
                // Saved under the state's lock, so that once `cancel`
                // returns no file is written; and after the state says
                // done, so that a panic while saving still leaves the index
                // to be installed (its sidecar is rewritten by a later save).
                if let (Some(dir), BuildState::Done(ix)) = (&dir, &mut *state) {
                    save_index_to(dir, &collection, ix);
                }
            });
        match spawned {
            Ok(_) => {
                let previous = self.builds().insert(name.to_string(), build);
                if let Some(old) = previous {
                    old.cancel();
                }
                None
            }
            Err(e) => {
                eprintln!(
                    "strata-sqlite: no thread for a background HNSW build ({e}); building inline"
                );
                Some(loaded.build_index(params))
            }
        }
    }

    fn params(&self) -> HnswParams {
        let c = self.shared.config();
        HnswParams {
            m: c.hnsw_m as usize,
            ef_construction: c.hnsw_ef_construction as usize,
            ef_search: c.hnsw_ef_search as usize,
        }
    }

    /// Where sidecar indexes live: `<db>.strata-index/` (none in memory).
    fn index_dir(&self) -> Option<PathBuf> {
        self.shared.file().map(|f| {
            let mut name = f.as_os_str().to_owned();
            name.push(".strata-index");
            PathBuf::from(name)
        })
    }

    fn save_index(&self, name: &str, index: &mut AnnIndex) {
        if self.shared.config().read_only {
            return;
        }
        if let Some(dir) = self.index_dir() {
            save_index_to(&dir, name, index);
        }
    }

    /// Brings `loaded`'s index in line with its rows: reuse `previous`, a
    /// finished background build or the sidecar, reconcile by pk, rebuild
    /// when missing, corrupt or mostly tombstones (in the background unless
    /// `hnsw_build = "inline"`; queries stay exact meanwhile); none below
    /// the threshold.
    fn attach_index(&self, name: &str, loaded: &mut Loaded, previous: Option<AnnIndex>) {
        let threshold = self.shared.config().hnsw_threshold as usize;
        if threshold == 0 || loaded.len() < threshold {
            let building = self.cancel_build(name);
            if let (Some(dir), true) = (self.index_dir(), previous.is_some() || building) {
                AnnIndex::delete_files(&dir, name);
            }
            return;
        }
        let params = self.params();
        let mut index = previous;
        if index.is_none() {
            match self.take_built(name, loaded) {
                Ok(built) => index = built,
                Err(()) => return, // still building: exact search meanwhile
            }
        }
        let index = index.or_else(|| {
            let dir = self.index_dir()?;
            match AnnIndex::load(&dir, name, loaded.metric, loaded.dimension, params) {
                Ok(found) => found,
                Err(e) => {
                    eprintln!("strata-sqlite: rebuilding the index of {name:?}: {e}");
                    None
                }
            }
        });
        // An index that lacks many rows (a build started at the threshold
        // during a bulk load, a sidecar from long ago) is rebuilt in the
        // background rather than brought up to date here, vector by vector,
        // while the caller (perhaps an upsert holding the writer) waits:
        // "many" is more than 5,000 rows and 10 % of the index (inserting
        // 5,000 takes a few seconds at 384 dimensions).
        if index.as_ref().is_some_and(|ix| {
            let limit = (ix.points() / 10).max(5_000);
            loaded
                .pks
                .iter()
                .filter(|pk| !ix.contains(**pk))
                .nth(limit)
                .is_some()
        }) && self.shared.config().hnsw_build == HnswBuild::Background
        {
            return self.rebuild(name, loaded, params);
        }
        let mut index = index;
        if let Some(ix) = index.as_mut()
            && ix.generation != loaded.generation
        {
            let pairs = loaded
                .pks
                .iter()
                .enumerate()
                .map(|(i, pk)| (*pk, loaded.vector(i)));
            ix.reconcile(pairs, loaded.len());
            ix.generation = loaded.generation;
            if ix.origin == "sidecar" {
                ix.origin = "sidecar+reconciled";
            }
        }
        if index.as_ref().is_some_and(AnnIndex::needs_rebuild) {
            index = None;
        }
        match index {
            Some(ix) => self.install(name, loaded, ix, params),
            None => self.rebuild(name, loaded, params),
        }
    }

    /// Builds `loaded`'s index from scratch: on a thread (installed later by
    /// [`attach_index`](Self::attach_index)) or, with `hnsw_build = "inline"`, here.
    fn rebuild(&self, name: &str, loaded: &mut Loaded, params: HnswParams) {
        let ix = match self.shared.config().hnsw_build {
            HnswBuild::Background => match self.start_build(name, loaded, params) {
                Some(ix) => ix,
                None => return,
            },
            HnswBuild::Inline => loaded.build_index(params),
        };
        self.install(name, loaded, ix, params);
    }

    fn install(&self, name: &str, loaded: &mut Loaded, mut ix: AnnIndex, params: HnswParams) {
        ix.params.ef_search = params.ef_search;
        // A fresh inline build is saved now; a reconciled index only once it
        // has gathered `SAVE_EVERY` changes (or at close): the sidecar is
        // derived data, and a full save under the writer would stall writes.
        if ix.unsaved >= SAVE_EVERY {
            self.save_index(name, &mut ix);
        }
        loaded.index = Some(ix);
    }

    /// The `details_json` of a collection: storage, index kind and state.
    fn details(&self, name: &str, loaded: Option<&Loaded>) -> serde_json::Value {
        let threshold = self.shared.config().hnsw_threshold;
        let mut d = serde_json::json!({
            "storage": "sqlite",
            "index": "exact",
            "hnsw_threshold": threshold,
        });
        if let Some(b) = self.build_of(name) {
            let (state, error) = b.describe();
            d["hnsw_build"] = serde_json::json!({
                "state": state,
                "done": b.ctl.done.load(AtomicOrdering::Acquire),
                "total": b.total,
                "elapsed_s": (b.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            });
            if let Some(e) = error {
                d["hnsw_build"]["error"] = e.into();
            }
        }
        if let Some(l) = loaded {
            d["exact_scan"] = serde_json::json!({
                "quantized": if l.quant.is_fitted() { "int8" } else { "no" },
                "f32_cache_bytes": l.data.capacity() * 4,
                "int8_copy_bytes": l.quant.bytes(),
            });
        }
        if let Some(ix) = loaded.and_then(|l| l.index.as_ref()) {
            d["index"] = "hnsw".into();
            d["hnsw"] = serde_json::json!({
                "points": ix.points(),
                "tombstones": ix.tombstones(),
                "m": ix.params.m,
                "ef_construction": ix.params.ef_construction,
                "ef_search": ix.params.ef_search,
                "origin": ix.origin,
                "unsaved_changes": ix.unsaved.min(1 << 40),
                "memory_bytes": ix.bytes(),
            });
            if let Some(dir) = self.index_dir() {
                d["hnsw"]["sidecar"] = dir.display().to_string().into();
            }
        }
        d
    }

    /// Saves every index with unsaved changes (at close).
    pub(crate) async fn flush(&self) {
        let slots: Vec<(String, Slot)> = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, slot) in slots {
            let mut guard = slot.write().await;
            if let Some(ix) = guard.as_mut().and_then(|l| l.index.as_mut())
                && ix.unsaved > 0
            {
                self.save_index(&name, ix);
            }
        }
    }
}

/// Writes `index`'s sidecar into `dir`; a failure is reported, not returned:
/// the index is derived data, so a failed save costs a rebuild or a
/// reconcile at the next open, never data.
fn save_index_to(dir: &std::path::Path, name: &str, index: &mut AnnIndex) {
    if let Err(e) = index.save(dir, name) {
        eprintln!("strata-sqlite: could not save the index of {name:?}: {e}");
    }
}

fn metric_from_db(s: &str) -> PluginResult<Metric> {
    Metric::from_name(s)
        .ok_or_else(|| PluginError::internal(format!("catalog holds unknown metric {s:?}")))
}

fn catalog_exists(c: &Connection) -> PluginResult<bool> {
    c.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'strata_collections'",
        [],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(map)
}

fn read_meta(c: &Connection, name: &str) -> PluginResult<Option<Meta>> {
    // One statement on the hot path: a missing catalog shows up as a
    // prepare error ("no such table"), checked only then.
    let mut stmt = match c.prepare_cached(
        "SELECT name, dimension, metric, generation FROM strata_collections WHERE name = ?1",
    ) {
        Ok(stmt) => stmt,
        Err(e) => {
            return if catalog_exists(c)? {
                Err(map(e))
            } else {
                Ok(None)
            };
        }
    };
    stmt.query_row([name], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })
    .optional()
    .map_err(map)?
    .map(|(name, dimension, metric, generation)| {
        Ok(Meta {
            name,
            dimension,
            metric: metric_from_db(&metric)?,
            generation,
        })
    })
    .transpose()
}

fn require_meta(c: &Connection, name: &str) -> PluginResult<Meta> {
    read_meta(c, name)?.ok_or_else(|| {
        PluginError::new(
            ErrorKind::NotFound,
            format!("collection {name:?} does not exist"),
        )
    })
}

/// Sets a new random generation token (SQLite's `random()`): equal tokens
/// mean identical contents, even when several processes write.
fn bump_generation(c: &Connection, name: &str) -> PluginResult<i64> {
    c.prepare_cached("UPDATE strata_collections SET generation = abs(random()) WHERE name = ?1 RETURNING generation")
        .map_err(map)?
        .query_row([name], |r| r.get(0))
        .map_err(map)
}

fn load(c: &Connection, meta: &Meta) -> PluginResult<Loaded> {
    // One read snapshot for the generation and the rows, so the cache is
    // labelled with the generation of exactly what it holds (a write
    // committed after `meta` was read would otherwise be loaded under the
    // older label, and the cache reloaded again at the next call).
    // (Inside a transaction already, as on the writer of `:memory:`, that
    // one is the snapshot.)
    let _snapshot = if c.is_autocommit() {
        Some(c.unchecked_transaction().map_err(map)?)
    } else {
        None
    };
    let generation: i64 = c
        .prepare_cached("SELECT generation FROM strata_collections WHERE name = ?1")
        .map_err(map)?
        .query_row([&meta.name], |r| r.get(0))
        .optional()
        .map_err(map)?
        .ok_or_else(|| {
            PluginError::new(
                ErrorKind::NotFound,
                format!("collection {:?} was dropped", meta.name),
            )
        })?;
    let count: i64 = c
        .query_row(
            &format!("SELECT count(*) FROM {}", vec_table(&meta.name)),
            [],
            |r| r.get(0),
        )
        .map_err(map)?;
    let d = meta.dimension as usize;
    let mut loaded = Loaded {
        generation,
        dimension: d,
        metric: meta.metric,
        pks: Vec::with_capacity(count as usize),
        ids: Vec::with_capacity(count as usize),
        data: Vec::with_capacity(count as usize * d),
        pos: HashMap::with_capacity(count as usize),
        quant: quant::Quant::new(d),
        index: None,
    };
    let mut stmt = c
        .prepare(&format!(
            "SELECT pk, id, vector FROM {} ORDER BY pk",
            vec_table(&meta.name)
        ))
        .map_err(map)?;
    let mut rows = stmt.query([]).map_err(map)?;
    while let Some(r) = rows.next().map_err(map)? {
        let pk: i64 = r.get(0).map_err(map)?;
        let id: String = r.get(1).map_err(map)?;
        let blob = r
            .get_ref(2)
            .map_err(map)?
            .as_blob()
            .map_err(|e| PluginError::internal(e.to_string()))?;
        if blob.len() != d * 4 {
            return Err(PluginError::internal(format!(
                "collection {:?}: stored vector of record {id:?} has {} bytes, expected {}",
                meta.name,
                blob.len(),
                d * 4
            )));
        }
        loaded.push(pk, id, &decode(blob));
    }
    loaded.quant.maintain(&loaded.data);
    Ok(loaded)
}

/// Selects the pks matching `filter` (None = no restriction).
fn filtered_pks(
    c: &Connection,
    meta: &Meta,
    filter: &Filter,
) -> PluginResult<Option<HashSet<i64>>> {
    if filter.is_all() {
        return Ok(None);
    }
    let f = filter_sql::translate(filter, "metadata")?;
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT pk FROM {} WHERE {}",
            vec_table(&meta.name),
            f.sql
        ))
        .map_err(map)?;
    let pks = stmt
        .query_map(
            params_from_iter(f.params.iter().map(crate::sql::Bind)),
            |r| r.get::<_, i64>(0),
        )
        .map_err(map)?
        .collect::<Result<HashSet<i64>, _>>()
        .map_err(map)?;
    Ok(Some(pks))
}

struct Row {
    id: String,
    vector: Vec<f32>,
    metadata: String,
    text: Option<String>,
}

/// Reads full rows by pk.
fn rows_by_pk(c: &Connection, meta: &Meta, pks: &[i64]) -> PluginResult<HashMap<i64, Row>> {
    let mut out = HashMap::with_capacity(pks.len());
    for chunk in pks.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = c
            .prepare(&format!(
                "SELECT pk, id, vector, metadata, text FROM {} WHERE pk IN ({marks})",
                vec_table(&meta.name)
            ))
            .map_err(map)?;
        let mut rows = stmt.query(params_from_iter(chunk.iter())).map_err(map)?;
        while let Some(r) = rows.next().map_err(map)? {
            let pk: i64 = r.get(0).map_err(map)?;
            let blob = r
                .get_ref(2)
                .map_err(map)?
                .as_blob()
                .map_err(|e| PluginError::internal(e.to_string()))?;
            out.insert(
                pk,
                Row {
                    id: r.get(1).map_err(map)?,
                    vector: decode(blob),
                    metadata: r.get(3).map_err(map)?,
                    text: r.get(4).map_err(map)?,
                },
            );
        }
    }
    Ok(out)
}

fn to_match(row: &Row, score: f64, flags: u32) -> Match {
    Match {
        id: row.id.clone(),
        score,
        vector: (flags & include::VECTOR != 0).then(|| row.vector.clone()),
        metadata_json: (flags & include::METADATA != 0).then(|| row.metadata.clone()),
        text: row.text.clone().filter(|_| flags & include::TEXT != 0),
    }
}

/// FTS5 query text: every word quoted, OR-ed (BM25 ranks by how well they match).
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

impl SqliteVectors {
    /// The cached vectors of `meta`'s collection, (re)loaded when stale.
    /// The collection's cache, loaded and current, held for reading. The
    /// guard is returned (not the slot) so a writer's `patch_cache` cannot
    /// invalidate the cache between this check and the caller's read.
    async fn loaded(&self, meta: &Meta) -> PluginResult<LoadedGuard> {
        let slot = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(meta.name.clone())
            .or_default()
            .clone();
        let is_fresh = |l: &Option<Loaded>| {
            l.as_ref().is_some_and(|l| {
                l.generation == meta.generation && l.dimension == meta.dimension as usize
            })
        };
        let built = self.build_finished(&meta.name);
        if !built {
            let read = slot.clone().read_owned().await;
            if is_fresh(&read) {
                return Ok(OwnedRwLockReadGuard::map(read, |l| {
                    l.as_ref().expect("checked fresh")
                }));
            }
        }
        let mut guard = slot.write_owned().await;
        if built
            && is_fresh(&guard)
            && let Some(l) = guard.as_mut().filter(|l| l.index.is_none())
        {
            self.attach_index(&meta.name, l, None);
        }
        if !is_fresh(&guard) {
            let previous = guard.take().and_then(|l| {
                (l.dimension == meta.dimension as usize && l.metric == meta.metric)
                    .then_some(l.index)
                    .flatten()
            });
            let m = meta.clone();
            let mut loaded = self.shared.with_reader(move |c| load(c, &m)).await?;
            self.attach_index(&meta.name, &mut loaded, previous);
            *guard = Some(loaded);
        }
        Ok(OwnedRwLockReadGuard::map(guard.downgrade(), |l| {
            l.as_ref().expect("loaded above")
        }))
    }

    async fn meta(&self, name: &str) -> PluginResult<Meta> {
        validate_collection_name(name)?;
        let name = name.to_string();
        self.shared
            .with_reader(move |c| require_meta(c, &name))
            .await
    }

    /// Patches the cache (and index) after a committed write, under the
    /// writer lock. If a query holds the slot right now, the patch is skipped:
    /// the cache's generation then differs from the table's and the next
    /// query reloads and reconciles.
    fn patch_cache(
        &self,
        name: &str,
        before: i64,
        after: i64,
        removed: &[i64],
        added: &[(i64, String, Vec<f32>)],
    ) {
        let slot = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let Some(slot) = slot else { return };
        let Ok(mut guard) = slot.try_write() else {
            return;
        };
        let Some(l) = guard.as_mut().filter(|l| l.generation == before) else {
            *guard = None;
            return;
        };
        for pk in removed {
            l.remove(*pk);
        }
        let first_new = l.len();
        for (pk, id, v) in added {
            l.push(*pk, id.clone(), v);
        }
        l.quant.maintain(&l.data);
        l.generation = after;
        let index = l.index.take();
        match index {
            Some(mut ix) => {
                ix.remove(removed);
                let fresh: Vec<(i64, &[f32])> = (first_new..l.len())
                    .map(|i| (l.pks[i], l.vector(i)))
                    .collect();
                ix.insert(&fresh);
                ix.generation = after;
                if ix.needs_rebuild() {
                    self.attach_index(name, l, None);
                } else {
                    if ix.unsaved >= SAVE_EVERY {
                        self.save_index(name, &mut ix);
                    }
                    l.index = Some(ix);
                }
            }
            None => self.attach_index(name, l, None),
        }
    }

    async fn dense(
        &self,
        meta: &Meta,
        vector: &[f32],
        k: usize,
        filter: &Filter,
        options: &QueryOptions,
    ) -> PluginResult<Vec<(i64, String, f32)>> {
        let allowed = if filter.is_all() {
            None
        } else {
            let (m, f) = (meta.clone(), filter.clone());
            self.shared
                .with_reader(move |c| filtered_pks(c, &m, &f))
                .await?
        };
        let loaded = self.loaded(meta).await?;
        let loaded = &*loaded;
        let q = prepare_query(loaded, vector);
        let found = match (&loaded.index, options.exact) {
            (Some(ix), false) => ann_top_k(loaded, ix, &q, k, options, allowed.as_ref()),
            _ => None,
        };
        let top = found.unwrap_or_else(|| exact_top_k(loaded, &q, k, allowed.as_ref()));
        Ok(top
            .into_iter()
            .map(|(i, s)| (loaded.pks[i], loaded.ids[i].clone(), s))
            .collect())
    }

    async fn materialise(
        &self,
        meta: &Meta,
        scored: Vec<(i64, f64)>,
        flags: u32,
    ) -> PluginResult<Vec<Match>> {
        let pks: Vec<i64> = scored.iter().map(|(pk, _)| *pk).collect();
        let m = meta.clone();
        let rows = self
            .shared
            .with_reader(move |c| rows_by_pk(c, &m, &pks))
            .await?;
        Ok(scored
            .into_iter()
            .filter_map(|(pk, s)| rows.get(&pk).map(|r| to_match(r, s, flags)))
            .collect())
    }
}

fn parse_filter(text: &str) -> PluginResult<Filter> {
    Filter::parse_str(text)
}

impl VectorBackend for SqliteVectors {
    /// Where each call runs:
    ///
    /// | call | runs | why |
    /// |---|---|---|
    /// | `fetch` of at most 16 ids | inline | a few lookups by the unique `id` index: a point read |
    /// | `query`, `hybrid_query`, `collection_info` | blocking pool | the first one loads the whole collection into memory and may build its index (`hnsw_build = "inline"`), and an exact scan reads every vector |
    /// | `upsert`, `delete` | blocking pool | writes; patching the cache may insert into, reconcile or rebuild the index |
    /// | `create_collection`, `drop_collection` | blocking pool | schema writes; a drop waits for a load or build of the collection in flight and deletes its sidecar files |
    /// | `list_collections`, `count`, `scan`, `fetch` of more ids | blocking pool | they count or read rows by the thousand |
    fn runs(&self, call: VectorCall<'_>) -> Runs {
        match call {
            VectorCall::Fetch(_, ids) if ids.len() <= INLINE_MAX_IDS => Runs::Inline,
            _ => Runs::Blocking,
        }
    }

    async fn create_collection(&self, spec: CollectionSpec) -> PluginResult<()> {
        let name = spec.name.clone();
        validate_collection_name(&name)?;
        if spec.dimension == 0 || spec.dimension > 65_536 {
            return Err(PluginError::invalid_input(format!(
                "dimension {} is out of range (1..=65536)",
                spec.dimension
            )));
        }
        if !spec.options_json.is_empty() {
            let opts: serde_json::Value =
                serde_json::from_str(&spec.options_json).map_err(|e| {
                    PluginError::invalid_input(format!("collection options are not JSON: {e}"))
                })?;
            if opts.as_object().is_some_and(|o| !o.is_empty()) {
                return Err(PluginError::invalid_input(format!(
                    "the sqlite backend takes no collection options (got {opts}); tune the index in the backend config"
                )));
            }
        }
        self.shared
            .with_write_tx(move |c| {
                c.execute_batch(CATALOG).map_err(map)?;
                if let Some(existing) = read_meta(c, &name)? {
                    if existing.dimension == spec.dimension && existing.metric == spec.metric {
                        return Ok(());
                    }
                    return Err(PluginError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "collection {name:?} exists with dimension {} and metric {} (asked: {} and {})",
                            existing.dimension,
                            existing.metric.name(),
                            spec.dimension,
                            spec.metric.name()
                        ),
                    ));
                }
                let (v, f) = (vec_table(&name), fts_table(&name));
                let trig = |s: &str| format!("\"strata_vec_{name}_{s}\"");
                c.execute_batch(&format!(
                    "CREATE TABLE {v} (
                        pk INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        vector BLOB NOT NULL,
                        metadata TEXT NOT NULL DEFAULT '{{}}',
                        text TEXT
                    );
                    CREATE VIRTUAL TABLE {f} USING fts5(text, content='strata_vec_{name}', content_rowid='pk', tokenize='unicode61 remove_diacritics 2');
                    CREATE TRIGGER {ai} AFTER INSERT ON {v} BEGIN
                        INSERT INTO {f}(rowid, text) VALUES (new.pk, new.text);
                    END;
                    CREATE TRIGGER {ad} AFTER DELETE ON {v} BEGIN
                        INSERT INTO {f}({f}, rowid, text) VALUES ('delete', old.pk, old.text);
                    END;",
                    ai = trig("ai"),
                    ad = trig("ad"),
                ))
                .map_err(map)?;
                // Row keys start at a random offset below 2^62, so the
                // pks of a collection dropped and created again under
                // the same name never meet (SQLite forgets a dropped
                // table's AUTOINCREMENT counter): derived data keyed by
                // pk — a sidecar index a racing build saved late — then
                // matches none of the new rows and is rebuilt instead
                // of serving the old vectors.
                c.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, random() & 4611686018427387903)",
                    [format!("strata_vec_{name}")],
                )
                .map_err(map)?;
                c.execute(
                    "INSERT INTO strata_collections (name, dimension, metric, generation) VALUES (?1, ?2, ?3, abs(random()))",
                    rusqlite::params![name, spec.dimension, spec.metric.name()],
                )
                .map_err(map)?;
                Ok(())
            })
            .await
    }

    async fn drop_collection(&self, name: String) -> PluginResult<bool> {
        validate_collection_name(&name)?;
        let n = name.clone();
        let existed = self
            .shared
            .with_write_tx(move |c| {
                if read_meta(c, &n)?.is_none() {
                    return Ok(false);
                }
                c.execute_batch(&format!(
                    "DROP TABLE IF EXISTS {f}; DROP TABLE IF EXISTS {v};",
                    f = fts_table(&n),
                    v = vec_table(&n)
                ))
                .map_err(map)?;
                c.execute("DELETE FROM strata_collections WHERE name = ?1", [&n])
                    .map_err(map)?;
                Ok(true)
            })
            .await?;
        let slot = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&name);
        // A query loading the collection right now holds the slot and
        // may be starting a build: wait for it, so the build is there to
        // be cancelled (and its sidecar is not written after the files
        // are deleted below).
        if let Some(slot) = slot {
            *slot.write().await = None;
        }
        self.cancel_build(&name);
        if let Some(dir) = self.index_dir() {
            AnnIndex::delete_files(&dir, &name);
        }
        Ok(existed)
    }

    async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> {
        let threshold = self.shared.config().hnsw_threshold;
        self.shared
            .with_reader(move |c| {
                if !catalog_exists(c)? {
                    return Ok(Vec::new());
                }
                let names: Vec<String> = c
                    .prepare("SELECT name FROM strata_collections ORDER BY name")
                    .map_err(map)?
                    .query_map([], |r| r.get(0))
                    .map_err(map)?
                    .collect::<Result<_, _>>()
                    .map_err(map)?;
                names
                    .iter()
                    .map(|n| info(c, n, threshold))
                    .collect::<PluginResult<Vec<_>>>()
            })
            .await
    }

    async fn collection_info(&self, name: String) -> PluginResult<Option<CollectionInfo>> {
        validate_collection_name(&name)?;
        let meta = self
            .shared
            .with_reader(move |c| read_meta(c, &name))
            .await?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        // Loading builds or loads the index, so the details are current.
        let loaded = self.loaded(&meta).await?;
        let details = self.details(&meta.name, Some(&*loaded));
        let count = loaded.len() as u64;
        Ok(Some(CollectionInfo {
            name: meta.name,
            dimension: meta.dimension,
            metric: meta.metric,
            count,
            details_json: details.to_string(),
        }))
    }

    async fn upsert(&self, collection: String, records: Vec<VectorRecord>) -> PluginResult<u64> {
        let name = collection;
        let meta = self.meta(&name).await?;
        validate_batch(&records, meta.dimension)?;
        self.shared
            .with_writer(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )
                .map_err(map)?;
                let before = require_meta(&tx, &name)?.generation;
                let v = vec_table(&name);
                let mut removed = Vec::new();
                let mut added = Vec::with_capacity(records.len());
                {
                    let mut del = tx
                        .prepare_cached(&format!("DELETE FROM {v} WHERE id = ?1 RETURNING pk"))
                        .map_err(map)?;
                    let mut ins = tx
                        .prepare_cached(&format!(
                            "INSERT INTO {v} (id, vector, metadata, text) VALUES (?1, ?2, ?3, ?4)"
                        ))
                        .map_err(map)?;
                    for r in records.iter() {
                        if let Some(pk) = del
                            .query_row([r.id.as_str()], |row| row.get::<_, i64>(0))
                            .optional()
                            .map_err(map)?
                        {
                            removed.push(pk);
                        }
                        let metadata = if r.metadata_json.is_empty() {
                            "{}"
                        } else {
                            r.metadata_json.as_str()
                        };
                        ins.execute(rusqlite::params![
                            r.id.as_str(),
                            encode(&r.vector),
                            metadata,
                            r.text.as_deref()
                        ])
                        .map_err(map)?;
                        added.push((tx.last_insert_rowid(), r.id.clone(), r.vector.clone()));
                    }
                }
                let after = bump_generation(&tx, &name)?;
                tx.commit().map_err(map)?;
                self.patch_cache(&name, before, after, &removed, &added);
                Ok(added.len() as u64)
            })
            .await
    }

    async fn query(&self, request: QueryRequest) -> PluginResult<Vec<Match>> {
        let meta = self.meta(&request.collection).await?;
        validate_vector(&request.vector, meta.dimension, "query")?;
        let filter = parse_filter(&request.filter_json)?;
        let options = query_options(&request.options_json)?;
        let top = self
            .dense(
                &meta,
                &request.vector,
                request.top_k as usize,
                &filter,
                &options,
            )
            .await?;
        let top: Vec<(i64, String, f64)> = top
            .into_iter()
            .map(|(pk, id, s)| (pk, id, f64::from(s)))
            .filter(|(_, _, s)| request.min_score.is_none_or(|m| *s >= m))
            .collect();
        if request.include == 0 {
            // Ids and scores come from the cache: no row reads.
            return Ok(top
                .into_iter()
                .map(|(_, id, score)| Match {
                    id,
                    score,
                    vector: None,
                    metadata_json: None,
                    text: None,
                })
                .collect());
        }
        let scored = top.into_iter().map(|(pk, _, s)| (pk, s)).collect();
        self.materialise(&meta, scored, request.include).await
    }

    async fn hybrid_query(&self, request: HybridRequest) -> PluginResult<Vec<Match>> {
        let meta = self.meta(&request.collection).await?;
        validate_vector(&request.vector, meta.dimension, "hybrid query")?;
        let filter = parse_filter(&request.filter_json)?;
        let k = request.top_k as usize;
        let candidates = request.candidates_or_default();
        let dense = self
            .dense(
                &meta,
                &request.vector,
                candidates,
                &filter,
                &QueryOptions::default(),
            )
            .await?;
        let lexical = match fts_query(&request.text) {
            None => Vec::new(),
            Some(q) => {
                let (m, f) = (meta.clone(), filter.clone());
                self.shared
                    .with_reader(move |c| {
                        let mut params: Vec<Value> = vec![Value::Text(q)];
                        let where_filter = if f.is_all() {
                            String::new()
                        } else {
                            let sf = filter_sql::translate(&f, "v.metadata")?;
                            params.extend(sf.params);
                            format!(" AND {}", sf.sql)
                        };
                        params.push(Value::Integer(candidates as i64));
                        let sql = format!(
                            "SELECT v.pk FROM {fts} JOIN {vt} AS v ON v.pk = {fts}.rowid WHERE {fts} MATCH ?{where_filter} ORDER BY bm25({fts}) LIMIT ?",
                            fts = fts_table(&m.name),
                            vt = vec_table(&m.name)
                        );
                        let mut stmt = c.prepare_cached(&sql).map_err(map)?;
                        let pks = stmt
                            .query_map(params_from_iter(params.iter().map(crate::sql::Bind)), |r| r.get::<_, i64>(0))
                            .map_err(map)?
                            .collect::<Result<Vec<i64>, _>>()
                            .map_err(map)?;
                        Ok(pks)
                    })
                    .await?
            }
        };
        let rrf_k = f64::from(request.rrf_k);
        let mut fused: HashMap<i64, f64> = HashMap::new();
        for (rank, (pk, _, _)) in dense.iter().enumerate() {
            *fused.entry(*pk).or_default() += request.dense_weight / (rrf_k + rank as f64 + 1.0);
        }
        for (rank, pk) in lexical.iter().enumerate() {
            *fused.entry(*pk).or_default() += request.lexical_weight / (rrf_k + rank as f64 + 1.0);
        }
        let mut ranked: Vec<(i64, f64)> = fused.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        self.materialise(&meta, ranked, request.include).await
    }

    async fn fetch(
        &self,
        collection: String,
        ids: Vec<String>,
        include_flags: u32,
    ) -> PluginResult<Vec<Match>> {
        let meta = self.meta(&collection).await?;
        self.shared
            .with_reader(move |c| {
                let mut found: HashMap<String, Row> = HashMap::new();
                for chunk in ids.chunks(500) {
                    let marks = vec!["?"; chunk.len()].join(",");
                    let mut stmt = c
                        .prepare(&format!(
                            "SELECT id, vector, metadata, text FROM {} WHERE id IN ({marks})",
                            vec_table(&meta.name)
                        ))
                        .map_err(map)?;
                    let mut rows = stmt
                        .query(params_from_iter(chunk.iter().map(|s| s.as_str())))
                        .map_err(map)?;
                    while let Some(r) = rows.next().map_err(map)? {
                        let blob = r
                            .get_ref(1)
                            .map_err(map)?
                            .as_blob()
                            .map_err(|e| PluginError::internal(e.to_string()))?;
                        let row = Row {
                            id: r.get(0).map_err(map)?,
                            vector: decode(blob),
                            metadata: r.get(2).map_err(map)?,
                            text: r.get(3).map_err(map)?,
                        };
                        found.insert(row.id.clone(), row);
                    }
                }
                Ok(ids
                    .iter()
                    .filter_map(|id| {
                        found
                            .get(id.as_str())
                            .map(|r| to_match(r, 0.0, include_flags))
                    })
                    .collect())
            })
            .await
    }

    async fn delete(&self, request: DeleteRequest) -> PluginResult<u64> {
        let name = request.collection.clone();
        self.meta(&name).await?;
        let (by_ids, by_filter, filter) = match request.target()? {
            DeleteTarget::Ids(_) => (true, false, Filter::All),
            DeleteTarget::Filter(f) => (false, true, f),
            DeleteTarget::All => (false, false, Filter::All),
            // A kind of delete added to plugin-api after this plugin was
            // written must never fall through to "delete everything".
            other => {
                return Err(PluginError::new(
                    ErrorKind::Unsupported,
                    format!("the sqlite backend cannot delete by {other:?}"),
                ));
            }
        };
        self.shared
            .with_writer(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )
                .map_err(map)?;
                let before = require_meta(&tx, &name)?.generation;
                let v = vec_table(&name);
                let mut removed: Vec<i64> = Vec::new();
                if by_ids {
                    let mut del = tx
                        .prepare_cached(&format!("DELETE FROM {v} WHERE id = ?1 RETURNING pk"))
                        .map_err(map)?;
                    for id in request.ids.iter() {
                        if let Some(pk) = del
                            .query_row([id.as_str()], |r| r.get::<_, i64>(0))
                            .optional()
                            .map_err(map)?
                        {
                            removed.push(pk);
                        }
                    }
                } else {
                    let (cond, params) = if by_filter {
                        let f = filter_sql::translate(&filter, "metadata")?;
                        (f.sql, f.params)
                    } else {
                        ("1".to_string(), Vec::new())
                    };
                    let mut stmt = tx
                        .prepare(&format!("DELETE FROM {v} WHERE {cond} RETURNING pk"))
                        .map_err(map)?;
                    removed = stmt
                        .query_map(params_from_iter(params.iter().map(crate::sql::Bind)), |r| {
                            r.get::<_, i64>(0)
                        })
                        .map_err(map)?
                        .collect::<Result<_, _>>()
                        .map_err(map)?;
                }
                let after = bump_generation(&tx, &name)?;
                tx.commit().map_err(map)?;
                self.patch_cache(&name, before, after, &removed, &[]);
                Ok(removed.len() as u64)
            })
            .await
    }

    async fn count(&self, collection: String, filter_json: String) -> PluginResult<u64> {
        let meta = self.meta(&collection).await?;
        let filter = parse_filter(&filter_json)?;
        self.shared
            .with_reader(move |c| {
                let f = filter_sql::translate(&filter, "metadata")?;
                let n: i64 = c
                    .prepare_cached(&format!(
                        "SELECT count(*) FROM {} WHERE {}",
                        vec_table(&meta.name),
                        f.sql
                    ))
                    .map_err(map)?
                    .query_row(
                        params_from_iter(f.params.iter().map(crate::sql::Bind)),
                        |r| r.get(0),
                    )
                    .map_err(map)?;
                Ok(n as u64)
            })
            .await
    }

    async fn scan(&self, request: ScanRequest) -> PluginResult<ScanPage> {
        let meta = self.meta(&request.collection).await?;
        let filter = parse_filter(&request.filter_json)?;
        let after: i64 = match &request.cursor {
            None => 0,
            Some(c) => c.parse().map_err(|_| {
                PluginError::invalid_input(format!(
                    "scan cursor {:?} is not one this backend issued",
                    c.as_str()
                ))
            })?,
        };
        let limit = request.limit.clamp(1, 10_000);
        self.shared
            .with_reader(move |c| {
                let f = filter_sql::translate(&filter, "metadata")?;
                let mut params = vec![Value::Integer(after)];
                params.extend(f.params);
                params.push(Value::Integer(i64::from(limit)));
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT pk, id, vector, metadata, text FROM {} WHERE pk > ? AND {} ORDER BY pk LIMIT ?",
                        vec_table(&meta.name),
                        f.sql
                    ))
                    .map_err(map)?;
                let mut rows = stmt.query(params_from_iter(params.iter().map(crate::sql::Bind))).map_err(map)?;
                let mut records = Vec::new();
                let mut last = None;
                while let Some(r) = rows.next().map_err(map)? {
                    let pk: i64 = r.get(0).map_err(map)?;
                    let blob = r.get_ref(2).map_err(map)?.as_blob().map_err(|e| PluginError::internal(e.to_string()))?;
                    let row = Row {
                        id: r.get(1).map_err(map)?,
                        vector: decode(blob),
                        metadata: r.get(3).map_err(map)?,
                        text: r.get(4).map_err(map)?,
                    };
                    records.push(to_match(&row, 0.0, request.include));
                    last = Some(pk);
                }
                let next_cursor = match last {
                    Some(pk) if records.len() == limit as usize => Some(pk.to_string()),
                    _ => None,
                };
                Ok(ScanPage { records, next_cursor })
            })
            .await
    }
}

/// A collection's row for `list_collections` (index state as it will be on
/// first use: HNSW at or past the threshold).
fn info(c: &Connection, name: &str, threshold: u32) -> PluginResult<CollectionInfo> {
    let meta = require_meta(c, name)?;
    let count: i64 = c
        .query_row(
            &format!("SELECT count(*) FROM {}", vec_table(name)),
            [],
            |r| r.get(0),
        )
        .map_err(map)?;
    Ok(CollectionInfo {
        name: name.to_string(),
        dimension: meta.dimension,
        metric: meta.metric,
        count: count as u64,
        details_json: serde_json::json!({
            "storage": "sqlite",
            "index": if threshold > 0 && count >= i64::from(threshold) { "hnsw" } else { "exact" },
            "hnsw_threshold": threshold,
        })
        .to_string(),
    })
}

#[cfg(test)]
mod tests {
    //! The int8 path against the `f32` scan (identical answers) and against
    //! brute force in `f64` (same top-k up to ties within `f32` rounding).

    use super::*;

    /// splitmix64 + Box–Muller: deterministic data without a rand dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn gauss(&mut self) -> f32 {
            let u1 = self.unit().max(f64::MIN_POSITIVE);
            let u2 = self.unit();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        }
        fn vector(&mut self, d: usize, sigma: f32) -> Vec<f32> {
            (0..d).map(|_| self.gauss() * sigma).collect()
        }
    }

    /// `n` vectors around `clusters` centres (unit-ish centres, noise `spread`).
    fn clustered(rng: &mut Rng, n: usize, d: usize, clusters: usize, spread: f32) -> Vec<Vec<f32>> {
        let sigma = 1.0 / (d as f32).sqrt();
        let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.vector(d, sigma)).collect();
        (0..n)
            .map(|_| {
                let c = &centres[(rng.next() % clusters as u64) as usize];
                c.iter().map(|x| x + rng.gauss() * sigma * spread).collect()
            })
            .collect()
    }

    /// Distinct pks in a scrambled order, so pk order is not row order.
    fn pk_of(i: usize) -> i64 {
        ((i as i64) * 7919) % 1_000_003 + 1
    }

    fn cache(metric: Metric, d: usize, vecs: &[Vec<f32>]) -> Loaded {
        let mut l = Loaded {
            generation: 0,
            dimension: d,
            metric,
            pks: Vec::new(),
            ids: Vec::new(),
            data: Vec::new(),
            pos: HashMap::new(),
            quant: quant::Quant::new(d),
            index: None,
        };
        l.quant.set_min_fit(0);
        for (i, v) in vecs.iter().enumerate() {
            l.push(pk_of(i), format!("v{i}"), v);
        }
        l.quant.maintain(&l.data);
        l
    }

    fn score64(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
        let dot: f64 = q
            .iter()
            .zip(x)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let n = |v: &[f32]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        match metric {
            Metric::Dot => dot,
            Metric::Cosine => {
                if n(q) == 0.0 || n(x) == 0.0 {
                    0.0
                } else {
                    dot / (n(q) * n(x))
                }
            }
            Metric::Euclidean => -q
                .iter()
                .zip(x)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum::<f64>()
                .sqrt(),
        }
    }

    /// Runs both paths over `allowed` (all when `None`) and checks them
    /// against each other and against brute force. Returns the int8 path's
    /// statistics.
    fn check(
        l: &Loaded,
        raw: &HashMap<i64, Vec<f32>>,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<i64>>,
    ) -> quant::SearchStats {
        let q = prepare_query(l, query);
        let rows = candidate_rows(l, allowed);
        let kern = kernels();
        let (got, stats) = l
            .quant
            .top_k(
                l.metric,
                &q,
                k,
                rows.as_deref(),
                |i| score_at(l, kern, &q, i),
                |i| l.pks[i],
            )
            .expect("the int8 path answers");
        assert_eq!(stats.scanned, rows.as_ref().map_or(l.len(), Vec::len));
        let plain = f32_top_k(l, &q, k, rows.as_deref());
        let bits = |v: &[(usize, f32)]| -> Vec<(i64, u32)> {
            v.iter().map(|(i, s)| (l.pks[*i], s.to_bits())).collect()
        };
        assert_eq!(
            bits(&got),
            bits(&plain),
            "int8 path and f32 scan differ ({:?}, k {k})",
            l.metric
        );
        // Brute force in f64 over the original vectors.
        let mut all: Vec<(i64, f64)> = raw
            .iter()
            .filter(|(pk, _)| allowed.is_none_or(|a| a.contains(*pk)))
            .map(|(pk, x)| (*pk, score64(l.metric, query, x)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        assert_eq!(got.len(), all.len(), "result count");
        let scale = raw
            .values()
            .map(|x| x.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt())
            .fold(0f64, f64::max)
            .max(1.0)
            * query
                .iter()
                .map(|a| f64::from(*a).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1.0);
        let tol = 1e-5 * scale;
        for (pos, ((i, s), (bpk, bs))) in got.iter().zip(&all).enumerate() {
            let pk = l.pks[*i];
            let truth = score64(l.metric, query, &raw[&pk]);
            assert!(
                (f64::from(*s) - truth).abs() <= tol,
                "position {pos}: score {s} vs true {truth}"
            );
            assert!(
                pk == *bpk || (truth - bs).abs() <= tol,
                "position {pos} ({:?}): pk {pk} (true {truth}) vs brute force pk {bpk} ({bs})",
                l.metric
            );
        }
        stats
    }

    fn raw_of(vecs: &[Vec<f32>]) -> HashMap<i64, Vec<f32>> {
        vecs.iter()
            .enumerate()
            .map(|(i, v)| (pk_of(i), v.clone()))
            .collect()
    }

    const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::Euclidean];

    #[test]
    fn int8_matches_f32_and_brute_force_on_clustered_data() {
        for (d, n) in [(384, 3000), (100, 4000), (7, 2000)] {
            let mut rng = Rng(d as u64);
            let vecs = clustered(&mut rng, n, d, 20, 0.5);
            let queries = clustered(&mut rng, 12, d, 20, 0.5);
            for metric in METRICS {
                let l = cache(metric, d, &vecs);
                let raw = raw_of(&vecs);
                let mut rescored = 0;
                for k in [1, 10, 60] {
                    for q in &queries {
                        rescored += check(&l, &raw, q, k, None).rescored;
                    }
                }
                // The bound prunes (centres differ per query, so this is loose).
                if d >= 100 {
                    assert!(
                        rescored < 3 * queries.len() * n / 4,
                        "{metric:?} d={d}: rescored {rescored} of {} scanned",
                        3 * queries.len() * n
                    );
                }
            }
        }
    }

    #[test]
    fn int8_exact_when_approximate_scores_tie() {
        // Vectors differing by far less than one quantization step: every
        // approximate score ties, the exact ones do not.
        let d = 64;
        let mut rng = Rng(7);
        let base = rng.vector(d, 1.0);
        let dir = rng.vector(d, 1.0);
        let mut vecs: Vec<Vec<f32>> = (0..3000)
            .map(|_| {
                let t = (rng.unit() as f32 - 0.5) * 1e-4;
                base.iter().zip(&dir).map(|(b, v)| b + t * v).collect()
            })
            .collect();
        // Far-away spread so the quantizer's range is wide.
        vecs.extend((0..200).map(|_| rng.vector(d, 3.0)));
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            let towards: Vec<f32> = base.iter().zip(&dir).map(|(b, v)| b + 0.01 * v).collect();
            for q in [&base, &towards, &dir] {
                for k in [1, 10, 100] {
                    check(&l, &raw, q, k, None);
                }
            }
        }
    }

    #[test]
    fn int8_exact_with_duplicates_and_zero_vectors() {
        let d = 48;
        let mut rng = Rng(11);
        let dup = rng.vector(d, 1.0);
        let mut vecs: Vec<Vec<f32>> = vec![dup.clone(); 1500];
        vecs.extend((0..500).map(|_| rng.vector(d, 1.0)));
        vecs.extend(std::iter::repeat_n(vec![0.0; d], 30));
        let zero = vec![0.0; d];
        let other = rng.vector(d, 1.0);
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            for q in [&dup, &zero, &other] {
                for k in [1, 10, 100, 3000] {
                    check(&l, &raw, q, k, None);
                }
            }
        }
    }

    #[test]
    fn int8_exact_on_filtered_rows() {
        let d = 96;
        let mut rng = Rng(5);
        let vecs = clustered(&mut rng, 5000, d, 10, 0.4);
        let queries = clustered(&mut rng, 6, d, 10, 0.4);
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            let small: HashSet<i64> = (0..5000).step_by(97).map(pk_of).collect();
            let large: HashSet<i64> = (0..5000).filter(|i| i % 3 != 0).map(pk_of).collect();
            let none: HashSet<i64> = HashSet::new();
            for q in &queries {
                for k in [1, 10, 40] {
                    check(&l, &raw, q, k, Some(&small));
                    check(&l, &raw, q, k, Some(&large));
                    check(&l, &raw, q, k, Some(&none));
                }
                // The dispatcher agrees too (int8 for the large set).
                let pq = prepare_query(&l, q);
                let rows = candidate_rows(&l, Some(&large));
                assert_eq!(
                    exact_top_k(&l, &pq, 10, Some(&large)),
                    f32_top_k(&l, &pq, 10, rows.as_deref())
                );
            }
        }
    }

    #[test]
    fn int8_copy_follows_cache_patches() {
        let d = 32;
        let mut rng = Rng(3);
        for metric in METRICS {
            let mut vecs = clustered(&mut rng, 300, d, 5, 0.5);
            let mut l = cache(metric, d, &vecs);
            let mut raw = raw_of(&vecs);
            let q = rng.vector(d, 0.2);
            check(&l, &raw, &q, 10, None);
            // Outliers beyond the fitted range: clamped, no refit yet.
            for _ in 0..10 {
                let v = rng.vector(d, 2.0);
                l.push(pk_of(vecs.len()), String::new(), &v);
                raw.insert(pk_of(vecs.len()), v.clone());
                vecs.push(v);
            }
            assert_eq!(l.quant.len(), l.len());
            check(&l, &raw, &q, 10, None);
            check(&l, &raw, &vecs[305], 5, None);
            // Growth: refits on doubling.
            for v in clustered(&mut rng, 2000, d, 5, 0.5) {
                l.push(pk_of(vecs.len()), String::new(), &v);
                raw.insert(pk_of(vecs.len()), v.clone());
                vecs.push(v);
            }
            l.quant.maintain(&l.data);
            check(&l, &raw, &q, 10, None);
            // Deletes swap-remove in both copies.
            for i in (0..vecs.len()).step_by(3) {
                l.remove(pk_of(i));
                raw.remove(&pk_of(i));
            }
            l.quant.maintain(&l.data);
            assert_eq!(l.quant.len(), l.len());
            for k in [1, 10, 50] {
                check(&l, &raw, &q, k, None);
                check(&l, &raw, &vecs[301], k, None);
            }
        }
    }

    #[test]
    fn int8_exact_on_mixed_magnitudes() {
        let d = 40;
        let mut rng = Rng(13);
        let vecs: Vec<Vec<f32>> = (0..3000)
            .map(|i| {
                let scale = 10f32.powi(i % 7 - 3);
                rng.vector(d, scale)
            })
            .collect();
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            for q in [
                rng.vector(d, 0.001),
                rng.vector(d, 1.0),
                rng.vector(d, 1000.0),
            ] {
                for k in [1, 10, 100] {
                    check(&l, &raw, &q, k, None);
                }
            }
        }
    }

    #[test]
    fn huge_magnitudes_fall_back_to_the_f32_scan() {
        let d = 16;
        let mut rng = Rng(17);
        let vecs: Vec<Vec<f32>> = (0..2000).map(|_| rng.vector(d, 1e18)).collect();
        let l = cache(Metric::Dot, d, &vecs);
        let q = rng.vector(d, 1e18);
        let kern = kernels();
        assert!(
            l.quant
                .top_k(
                    l.metric,
                    &q,
                    10,
                    None,
                    |i| score_at(&l, kern, &q, i),
                    |i| l.pks[i]
                )
                .is_none()
        );
        assert_eq!(exact_top_k(&l, &q, 10, None), f32_top_k(&l, &q, 10, None));
    }
}
