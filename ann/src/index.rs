//! [`AnnIndex`]: an HNSW graph over a collection's keys, with tombstones,
//! reconciliation, and its index files.
//!
//! - **Keys are the caller's stable row ids** (`i64`). A key never changes
//!   its vector: an overwrite is a new key (the SQLite plugin inserts a new
//!   row). New keys are inserted into the graph; deleted keys become
//!   *tombstones* that searches skip. When tombstones pass a third of the
//!   points, [`needs_rebuild`](AnnIndex::needs_rebuild) says so.
//! - **The caller's data stays the source of truth.**
//!   [`reconcile`](AnnIndex::reconcile) brings an index (say one loaded from a file
//!   saved long ago) in line with the keys that exist now: keys it lacks
//!   are inserted, keys gone are tombstoned. An index is derived data: a
//!   missing, stale or corrupt file costs a rebuild, never data.
//! - **A generation label** ([`generation`](AnnIndex::generation)): an
//!   opaque `i64` the caller sets to name the state of its data the index
//!   reflects (the SQLite plugin uses the collection's generation token), so
//!   it knows when a loaded index must be reconciled.
//! - **Distances**: cosine on normalised vectors as `1 − dot`, euclidean as
//!   the squared distance, dot product as `−dot` (inner product search; see
//!   [`Space::Dot`]). Candidates are to be rescored exactly by the caller
//!   (as [`Flat::search`](crate::Flat::search) does).
//!
//! # Index files
//!
//! [`save`](AnnIndex::save) writes two files into a directory, under a name
//! (a plain file stem, e.g. a collection name):
//!
//! - `<name>.hnsw`: the graph ([`Hnsw::write`]): magic `STRATA-HNSW\0`, a
//!   `u32` graph format (1), the space, dimension, `m`, `ef_construction`,
//!   node count, entry point, then keys, levels, vectors and links, all
//!   little-endian, and a 64-bit FNV-1a checksum of everything before it;
//! - `<name>.meta.json`: `{"format": 2, "metric", "dimension", "params",
//!   "generation", "points", "tombstones"}`.
//!
//! Each is written under a temporary name (`….tmp`), synced and renamed;
//! the meta file last, so it is the commit point. A crash between the two
//! renames leaves a new graph beside the old meta: the point counts differ
//! and [`load`](AnnIndex::load) refuses the pair (the caller rebuilds),
//! never uses it half-right.
//!
//! **Versioning.** The meta file's `format` names the pair's layout: 2 is
//! this one (1 was the `hnsw_rs`-based sidecar of earlier strata releases).
//! A reader meeting another `format` returns `Ok(None)` ("no usable index:
//! build one"), as it does for a file made for another metric, dimension,
//! `m` or `ef_construction`; the graph file's own format number guards the
//! binary layout. A change to either layout bumps its number; an older
//! reader then rebuilds instead of misreading. A file that claims this
//! format but fails its checks (checksum, sizes, every link in range, no
//! key twice, point counts) is an [`IndexError::Corrupt`], naming the file
//! and what was wrong.
//!
//! # Threads
//!
//! Builds and batch inserts link nodes on all cores
//! (`available_parallelism`). An `AnnIndex` is `Send + Sync`: searches take
//! `&self` and run concurrently; inserts, removals and saves take `&mut self`.

use std::{
    collections::HashSet,
    io::IsTerminal,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use serde::{Deserialize, Serialize};

use crate::{
    hnsw::{Hnsw, Progress, Space},
    keys::{KeyMap, KeySet},
    metric::Metric,
};

/// HNSW parameters.
///
/// - `m`: links per node and level (level 0 holds `2m`); clamped to
///   2..=128. More links: better recall, a bigger and slower-to-build graph.
/// - `ef_construction`: candidates considered while inserting a node (at
///   least `m`). More: better graph, slower build.
/// - `ef_search`: candidates explored per query (at least `k`). More:
///   better recall, slower queries. Not part of the graph: an index file
///   serves any `ef_search`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node and level.
    pub m: usize,
    /// Candidates per insert.
    pub ef_construction: usize,
    /// Candidates per query.
    pub ef_search: usize,
}

impl Default for HnswParams {
    /// `m` 16, `ef_construction` 100, `ef_search` 128 (the SQLite plugin's
    /// defaults).
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 100,
            ef_search: 128,
        }
    }
}

/// What went wrong with an index file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Reading or writing failed.
    #[error("index file {}: {source}", path.display())]
    Io {
        /// The file (or directory).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is there, claims this format, and fails its checks.
    #[error("index file {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// An index name that is not a plain file stem.
    #[error("index name {0:?} is not a plain file name (empty, or holds a path separator)")]
    Name(String),
    /// A batch of nodes was being linked when that stopped (a panic): the
    /// graph is not whole and is not written; rebuild it.
    #[error("the index's last batch insert did not finish: rebuild it instead of saving it")]
    Incomplete,
}

#[derive(Serialize, Deserialize)]
struct MetaFile {
    format: u32,
    metric: String,
    dimension: usize,
    params: HnswParams,
    generation: i64,
    /// Points in the graph file (a cross-check).
    points: usize,
    tombstones: Vec<i64>,
}

/// The meta file's `format`: 1 was the `hnsw_rs` sidecar (rebuilt when met).
pub const META_FORMAT: u32 = 2;

/// Progress and cancellation of a build running on another thread.
#[derive(Debug, Default)]
pub struct BuildCtl {
    /// Vectors inserted so far.
    pub done: AtomicUsize,
    /// Set to stop the build at the next node.
    pub cancelled: AtomicBool,
}

impl BuildCtl {
    /// Whether the build was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Asks the build to stop at its next node.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

/// Where an index came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Built from vectors in this process.
    Built,
    /// Read from index files.
    Loaded,
    /// Read from index files, then reconciled with changes made since.
    LoadedReconciled,
}

/// An HNSW graph over some of a collection's keys (see the module docs).
pub struct AnnIndex {
    graph: Hnsw,
    metric: Metric,
    dimension: usize,
    params: HnswParams,
    /// Every key in the graph (live or tombstoned), and its node.
    keys: KeyMap<u32>,
    tombstones: KeySet,
    /// The first node appended by [`append`](Self::append) and not linked
    /// yet (`None`: every node is linked).
    pending: Option<u32>,
    /// Set while a batch is being linked: still set afterwards means the
    /// linking stopped part way (a panic), and the graph is not whole.
    linking: bool,
    generation: i64,
    unsaved: usize,
    origin: Origin,
    /// Label of terminal announcements of big batches (`None`: silent).
    announce: Option<&'static str>,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("metric", &self.metric)
            .field("dimension", &self.dimension)
            .field("params", &self.params)
            .field("points", &self.keys.len())
            .field("tombstones", &self.tombstones.len())
            .field("pending", &self.pending())
            .field("whole", &self.is_whole())
            .field("generation", &self.generation)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn new_graph(metric: Metric, dimension: usize, params: HnswParams) -> Hnsw {
    Hnsw::new(space(metric), dimension, params.m, params.ef_construction)
}

fn space(metric: Metric) -> Space {
    match metric {
        Metric::Cosine => Space::Cosine,
        Metric::Dot => Space::Dot,
        Metric::Euclidean => Space::L2,
    }
}

impl AnnIndex {
    /// Builds a graph over `(key, vector)` pairs (vectors as
    /// [`Flat`](crate::Flat) holds them: normalised for cosine), labelled
    /// `generation`.
    pub fn build<'a>(
        metric: Metric,
        dimension: usize,
        params: HnswParams,
        generation: i64,
        points: impl ExactSizeIterator<Item = (i64, &'a [f32])>,
    ) -> AnnIndex {
        let ctl = BuildCtl::default();
        Self::build_with(metric, dimension, params, generation, points, &ctl, None)
            .expect("a build nobody can cancel finishes")
    }

    /// [`build`](Self::build) reporting progress to `ctl` and stopping (with
    /// `None`) once it is cancelled. With `announce`, a big build (20,000
    /// vectors or more) says on stderr when it starts and ends, if stderr
    /// is a terminal, each line starting with the label: an operator at a
    /// prompt then knows why it waits; logs and pipes get nothing.
    pub fn build_with<'a>(
        metric: Metric,
        dimension: usize,
        params: HnswParams,
        generation: i64,
        points: impl ExactSizeIterator<Item = (i64, &'a [f32])>,
        ctl: &BuildCtl,
        announce: Option<&'static str>,
    ) -> Option<AnnIndex> {
        let mut graph = new_graph(metric, dimension, params);
        let items: Vec<(i64, &[f32])> = points.collect();
        let keys: Vec<i64> = items.iter().map(|(key, _)| *key).collect();
        graph.push(&items);
        drop(items);
        Self::link_built(
            graph, metric, dimension, params, generation, &keys, ctl, announce,
        )
    }

    /// [`build_with`](Self::build_with) from vectors in one array (`keys[i]`
    /// names `data[i·dimension..]`), which is dropped as soon as the graph
    /// holds its copy, before the long part of the build: a background
    /// build from a snapshot then holds one extra copy only briefly.
    #[allow(clippy::too_many_arguments)]
    pub fn build_from(
        metric: Metric,
        dimension: usize,
        params: HnswParams,
        generation: i64,
        keys: Vec<i64>,
        data: Vec<f32>,
        ctl: &BuildCtl,
        announce: Option<&'static str>,
    ) -> Option<AnnIndex> {
        assert_eq!(
            keys.len() * dimension,
            data.len(),
            "one vector of {dimension} per key"
        );
        let mut graph = new_graph(metric, dimension, params);
        let items: Vec<(i64, &[f32])> = keys
            .iter()
            .copied()
            .zip(data.chunks_exact(dimension.max(1)))
            .collect();
        graph.push(&items);
        drop(items);
        drop(data);
        Self::link_built(
            graph, metric, dimension, params, generation, &keys, ctl, announce,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn link_built(
        graph: Hnsw,
        metric: Metric,
        dimension: usize,
        params: HnswParams,
        generation: i64,
        keys: &[i64],
        ctl: &BuildCtl,
        announce: Option<&'static str>,
    ) -> Option<AnnIndex> {
        if !insert_all(&graph, 0, "building HNSW index", Some(ctl), announce) {
            return None;
        }
        Some(AnnIndex {
            graph,
            metric,
            dimension,
            params,
            keys: keys
                .iter()
                .enumerate()
                .map(|(node, key)| (*key, node as u32))
                .collect(),
            tombstones: KeySet::default(),
            pending: None,
            linking: false,
            generation,
            unsaved: usize::MAX / 2,
            origin: Origin::Built,
            announce,
        })
    }

    /// Announces big batch inserts on a terminal under `label` (see
    /// [`build_with`](Self::build_with)); `None` silences them.
    pub fn set_announce(&mut self, label: Option<&'static str>) {
        self.announce = label;
    }

    /// The metric the graph was built for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The vectors' dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The parameters (`ef_search` as last set).
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Sets the default candidates per query.
    pub fn set_ef_search(&mut self, ef_search: usize) {
        self.params.ef_search = ef_search;
    }

    /// The caller's label of the data the index reflects.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Relabels the index (after the caller applied its changes).
    pub fn set_generation(&mut self, generation: i64) {
        self.generation = generation;
    }

    /// Changes (inserts + tombstones) since the last save or load; a build
    /// never saved counts as a huge number.
    pub fn unsaved(&self) -> usize {
        self.unsaved
    }

    /// Where the index came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Points in the graph, tombstones included.
    pub fn points(&self) -> usize {
        self.keys.len()
    }

    /// Whether `key` is in the graph (live or tombstoned).
    pub fn contains(&self, key: i64) -> bool {
        self.keys.contains_key(&key)
    }

    /// The node holding `key` (live or tombstoned).
    pub fn node_of(&self, key: i64) -> Option<u32> {
        self.keys.get(&key).copied()
    }

    /// Node `node`'s vector (as stored: normalised for cosine).
    pub fn node_vector(&self, node: u32) -> &[f32] {
        self.graph.vector(node)
    }

    /// Whether `key` is tombstoned.
    pub fn is_tombstone(&self, key: i64) -> bool {
        self.tombstones.contains(&key)
    }

    /// Every key in the graph (live or tombstoned), in no order.
    pub fn keys(&self) -> impl Iterator<Item = i64> + '_ {
        self.keys.keys().copied()
    }

    /// Appends `key` as a new node holding `vector` (normalised for cosine
    /// by the caller), not linked yet: searches do not reach it until
    /// [`link_pending`](Self::link_pending) (one parallel batch for many
    /// appends). Returns its node. The key must not be in the graph.
    pub fn append(&mut self, key: i64, vector: &[f32]) -> u32 {
        assert!(
            !self.keys.contains_key(&key),
            "key {key} is already in the graph"
        );
        let node = self.graph.push(&[(key, vector)]);
        self.keys.insert(key, node);
        self.pending.get_or_insert(node);
        node
    }

    /// Nodes appended and not linked yet.
    pub fn pending(&self) -> usize {
        self.pending
            .map_or(0, |first| self.graph.len() - first as usize)
    }

    /// Links every node [`append`](Self::append)ed since the last call, on
    /// all cores.
    pub fn link_pending(&mut self) {
        if self.linking {
            return; // an earlier batch stopped part way: see `is_whole`
        }
        if let Some(first) = self.pending {
            let count = self.graph.len() - first as usize;
            self.linking = true;
            insert_all(&self.graph, first, "indexing vectors", None, self.announce);
            self.linking = false;
            self.pending = None;
            self.unsaved += count;
        }
    }

    /// False when a batch insert stopped part way (a panic while linking):
    /// the graph may not reach every node. Searches through
    /// [`Flat`](crate::Flat) are then exact, [`needs_rebuild`](Self::needs_rebuild)
    /// says so and [`save`](Self::save) refuses.
    pub fn is_whole(&self) -> bool {
        !self.linking
    }

    /// Takes `key` out of the tombstones (a row that is live again with the
    /// same vector); whether it was one.
    pub fn revive(&mut self, key: i64) -> bool {
        let revived = self.tombstones.remove(&key);
        if revived {
            self.unsaved += 1;
        }
        revived
    }

    /// Points that searches skip.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Whether so much is tombstoned that a rebuild is cheaper than skipping.
    pub fn needs_rebuild(&self) -> bool {
        self.linking || self.tombstones.len() * 3 > self.keys.len()
    }

    /// Adds new points (several at once are inserted in parallel); keys
    /// already in the graph are skipped.
    pub fn insert(&mut self, points: &[(i64, &[f32])]) {
        let items: Vec<(i64, &[f32])> = points
            .iter()
            .filter(|(key, _)| !self.keys.contains_key(key))
            .copied()
            .collect();
        if items.is_empty() {
            return;
        }
        self.link_pending();
        let first = self.graph.push(&items);
        insert_all(&self.graph, first, "indexing vectors", None, self.announce);
        self.keys.extend(
            items
                .iter()
                .enumerate()
                .map(|(i, (key, _))| (*key, first + i as u32)),
        );
        self.unsaved += items.len();
    }

    /// Marks keys as gone.
    pub fn remove(&mut self, keys: &[i64]) {
        for key in keys {
            if self.keys.contains_key(key) && self.tombstones.insert(*key) {
                self.unsaved += 1;
            }
        }
    }

    /// Reconciles with the keys that exist now (`live`, `live_count` of
    /// them): inserts what is missing, tombstones what is gone, then labels
    /// the index `generation`. Returns true when anything changed.
    pub fn reconcile<'a>(
        &mut self,
        live: impl Iterator<Item = (i64, &'a [f32])>,
        live_count: usize,
        generation: i64,
    ) -> bool {
        let mut missing: Vec<(i64, &[f32])> = Vec::new();
        let mut seen = HashSet::with_capacity(live_count);
        for (key, v) in live {
            seen.insert(key);
            if !self.keys.contains_key(&key) {
                missing.push((key, v));
            } else if self.tombstones.contains(&key) {
                // Cannot happen (keys are never reused), but never hide a live row.
                self.tombstones.remove(&key);
            }
        }
        let gone: Vec<i64> = self
            .keys
            .keys()
            .filter(|key| !seen.contains(key))
            .copied()
            .collect();
        let changed = !missing.is_empty() || gone.iter().any(|key| !self.tombstones.contains(key));
        self.insert(&missing);
        self.remove(&gone);
        self.generation = generation;
        if self.origin == Origin::Loaded {
            self.origin = Origin::LoadedReconciled;
        }
        changed
    }

    /// Labels the index `generation` after its caller brought it in line
    /// with its data (as [`reconcile`](Self::reconcile) does).
    pub fn mark_reconciled(&mut self, generation: i64) {
        if generation != self.generation && self.origin == Origin::Loaded {
            self.origin = Origin::LoadedReconciled;
        }
        self.generation = generation;
    }

    /// Candidate keys for `query` (in the stored form: normalised for
    /// cosine), nearest first, skipping tombstones and keys outside
    /// `allowed`, exploring `ef` candidates (at least `k`). The graph's
    /// distances are approximate: rescore the candidates exactly.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, allowed: Option<&KeySet>) -> Vec<i64> {
        let keep = |node: u32| {
            let key = self.graph.pk(node);
            !self.tombstones.contains(&key) && allowed.is_none_or(|a| a.contains(&key))
        };
        let filtered = !self.tombstones.is_empty() || allowed.is_some();
        let keep: Option<&dyn Fn(u32) -> bool> = if filtered { Some(&keep) } else { None };
        self.graph
            .search(query, k, ef.max(k), keep)
            .into_iter()
            .map(|(_, node)| self.graph.pk(node))
            .collect()
    }

    /// Bytes the graph holds in memory (vectors, links, keys).
    pub fn bytes(&self) -> usize {
        self.graph.bytes()
    }

    /// Writes the index files of `name` into `dir` (created if missing):
    /// the graph under a temporary name, synced and renamed into place,
    /// then the meta file (the commit point). See the module docs.
    pub fn save(&mut self, dir: &Path, name: &str) -> Result<(), IndexError> {
        check_name(name)?;
        // A node in the file is a linked node to whoever loads it.
        self.link_pending();
        if !self.is_whole() {
            return Err(IndexError::Incomplete);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IndexError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = dir.join(format!("{name}.hnsw.tmp"));
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        self.graph.write(&file).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        let graph_path = dir.join(format!("{name}.hnsw"));
        std::fs::rename(&tmp, &graph_path).map_err(io(&graph_path))?;
        let meta = MetaFile {
            format: META_FORMAT,
            metric: self.metric.name().into(),
            dimension: self.dimension,
            params: self.params,
            generation: self.generation,
            points: self.graph.len(),
            tombstones: self.tombstones.iter().copied().collect(),
        };
        let tmp_meta = dir.join(format!("{name}.meta.json.tmp"));
        let text = serde_json::to_vec(&meta).expect("the meta file serialises");
        write_synced(&tmp_meta, &text).map_err(io(&tmp_meta))?;
        let meta_path = dir.join(format!("{name}.meta.json"));
        std::fs::rename(&tmp_meta, &meta_path).map_err(io(&meta_path))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        self.unsaved = 0;
        Ok(())
    }

    /// Loads the index files of `name` written by [`save`](Self::save).
    /// `Ok(None)` when there are none, or they were made for another
    /// metric, dimension, `m` or `ef_construction`, or by another format
    /// (build anew); `Err` when they are unreadable or fail a check. The
    /// index serves `params.ef_search`.
    pub fn load(
        dir: &Path,
        name: &str,
        metric: Metric,
        dimension: usize,
        params: HnswParams,
    ) -> Result<Option<AnnIndex>, IndexError> {
        check_name(name)?;
        let meta_path = dir.join(format!("{name}.meta.json"));
        let Ok(text) = std::fs::read(&meta_path) else {
            return Ok(None);
        };
        let corrupt = |path: &Path, reason: String| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let meta: MetaFile = match serde_json::from_slice::<serde_json::Value>(&text) {
            Ok(v) if v.get("format").and_then(|f| f.as_u64()) != Some(META_FORMAT as u64) => {
                return Ok(None);
            }
            Ok(v) => serde_json::from_value(v),
            Err(e) => Err(e),
        }
        .map_err(|e| corrupt(&meta_path, e.to_string()))?;
        if meta.metric != metric.name()
            || meta.dimension != dimension
            || meta.params.m != params.m
            || meta.params.ef_construction != params.ef_construction
        {
            return Ok(None);
        }
        let graph_path = dir.join(format!("{name}.hnsw"));
        let io = |source| IndexError::Io {
            path: graph_path.clone(),
            source,
        };
        let file = std::fs::File::open(&graph_path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // Parsed as it is read: the file is never held whole beside the graph.
        let graph = Hnsw::read_from(
            file,
            len,
            space(metric),
            dimension,
            params.m,
            params.ef_construction,
        )
        .map_err(|e| corrupt(&graph_path, e.to_string()))?;
        if graph.len() != meta.points {
            return Err(corrupt(
                &graph_path,
                format!(
                    "it holds {} points, its meta file {} says {}",
                    graph.len(),
                    meta_path.display(),
                    meta.points
                ),
            ));
        }
        Ok(Some(AnnIndex {
            keys: graph
                .pks()
                .iter()
                .enumerate()
                .map(|(node, key)| (*key, node as u32))
                .collect(),
            pending: None,
            linking: false,
            graph,
            metric,
            dimension,
            params: HnswParams {
                ef_search: params.ef_search,
                ..meta.params
            },
            tombstones: meta.tombstones.into_iter().collect(),
            generation: meta.generation,
            unsaved: 0,
            origin: Origin::Loaded,
            announce: None,
        }))
    }

    /// Removes the index files of `name` (and leftovers: temporary files,
    /// the format-1 files of `hnsw_rs`). Missing files are no error.
    pub fn delete_files(dir: &Path, name: &str) {
        if check_name(name).is_err() {
            return;
        }
        for ext in [
            "meta.json",
            "hnsw",
            "meta.json.tmp",
            "hnsw.tmp",
            // Format 1 (`hnsw_rs`).
            "hnsw.graph",
            "hnsw.data",
            "tmp.hnsw.graph",
            "tmp.hnsw.data",
        ] {
            let _ = std::fs::remove_file(dir.join(format!("{name}.{ext}")));
        }
    }
}

fn check_name(name: &str) -> Result<(), IndexError> {
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(IndexError::Name(name.to_string()));
    }
    Ok(())
}

/// Links nodes `first..` of `graph` on all cores. With `ctl`, progress is
/// counted there and a cancellation stops the build at the next node
/// (returns `false`). A big batch (20,000 nodes or more) is announced under
/// the `announce` label on a terminal's stderr.
fn insert_all(
    graph: &Hnsw,
    first: u32,
    what: &str,
    ctl: Option<&BuildCtl>,
    announce: Option<&str>,
) -> bool {
    let count = graph.len() - first as usize;
    let announce = announce.filter(|_| count >= 20_000 && std::io::stderr().is_terminal());
    let started = std::time::Instant::now();
    if let Some(label) = announce {
        eprintln!("{label}: {what}: {count} vectors…");
    }
    let own = BuildCtl::default();
    let ctl = ctl.unwrap_or(&own);
    let done = graph.insert_range(
        first,
        Some(&Progress {
            done: &ctl.done,
            cancelled: &ctl.cancelled,
            tick: &|_| {},
        }),
    );
    if let (Some(label), true) = (announce, done) {
        eprintln!(
            "{label}: {what}: {count} vectors in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    done
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` deterministic unit vectors of `dim` dimensions (splitmix64).
    fn points(n: usize, dim: usize) -> Vec<Vec<f32>> {
        let mut s = 42u64;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                        let mut z = s;
                        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                        z ^= z >> 31;
                        (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                crate::codec::normalized(&v)
            })
            .collect()
    }

    fn built(vs: &[Vec<f32>]) -> AnnIndex {
        AnnIndex::build(
            Metric::Cosine,
            vs[0].len(),
            HnswParams::default(),
            7,
            vs.iter()
                .enumerate()
                .map(|(i, v)| (i as i64 * 10, v.as_slice())),
        )
    }

    #[test]
    fn save_and_load_round_trip() {
        let vs = points(600, 16);
        let mut ix = built(&vs);
        ix.remove(&[0, 50]);
        let dir = tempfile::tempdir().unwrap();
        ix.save(dir.path(), "c").unwrap();
        assert_eq!(ix.unsaved(), 0);
        let params = HnswParams {
            ef_search: 33,
            ..HnswParams::default()
        };
        let back = AnnIndex::load(dir.path(), "c", Metric::Cosine, 16, params)
            .unwrap()
            .expect("an index");
        assert_eq!(back.origin(), Origin::Loaded);
        assert_eq!(back.generation(), 7);
        assert_eq!((back.points(), back.tombstones()), (600, 2));
        assert_eq!(back.params().ef_search, 33, "the caller's ef_search");
        for q in vs.iter().step_by(37) {
            assert_eq!(back.search(q, 5, 64, None), ix.search(q, 5, 64, None));
            assert!(
                !back.search(q, 5, 64, None).contains(&0),
                "tombstone skipped"
            );
        }
        // Other parameters, metric or dimension: no usable index, no error.
        let other = HnswParams {
            m: 8,
            ..HnswParams::default()
        };
        assert!(
            AnnIndex::load(dir.path(), "c", Metric::Cosine, 16, other)
                .unwrap()
                .is_none()
        );
        assert!(
            AnnIndex::load(dir.path(), "c", Metric::Dot, 16, params)
                .unwrap()
                .is_none()
        );
        assert!(
            AnnIndex::load(dir.path(), "c", Metric::Cosine, 17, params)
                .unwrap()
                .is_none()
        );
        // None there at all.
        assert!(
            AnnIndex::load(dir.path(), "d", Metric::Cosine, 16, params)
                .unwrap()
                .is_none()
        );
        // Deleted.
        AnnIndex::delete_files(dir.path(), "c");
        assert!(
            AnnIndex::load(dir.path(), "c", Metric::Cosine, 16, params)
                .unwrap()
                .is_none()
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_truncated_or_corrupt_file_is_refused_naming_it() {
        let vs = points(300, 8);
        let mut ix = built(&vs);
        let dir = tempfile::tempdir().unwrap();
        ix.save(dir.path(), "c").unwrap();
        let graph = dir.path().join("c.hnsw");
        let meta = dir.path().join("c.meta.json");
        let good = std::fs::read(&graph).unwrap();
        let load = || AnnIndex::load(dir.path(), "c", Metric::Cosine, 8, HnswParams::default());
        let corrupt = |what: &str| match load() {
            Err(e @ IndexError::Corrupt { .. }) => e.to_string(),
            Err(e) => panic!("{what}: not a corruption error: {e}"),
            Ok(found) => panic!("{what}: accepted (found: {})", found.is_some()),
        };
        // Truncated.
        std::fs::write(&graph, &good[..good.len() - 100]).unwrap();
        let e = corrupt("truncated");
        assert!(
            e.contains("c.hnsw")
                && e.contains(&format!(
                    "{} bytes, where its header describes {}",
                    good.len() - 100,
                    good.len()
                )),
            "{e}"
        );
        // One bit flipped in the middle.
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 0x04;
        std::fs::write(&graph, &bad).unwrap();
        let e = corrupt("bit flip");
        assert!(e.contains("corrupt"), "{e}");
        // Not a graph file at all.
        std::fs::write(&graph, b"hello").unwrap();
        assert!(corrupt("garbage").contains("not a strata HNSW file"));
        // A graph of another size than its meta file says (a crash between
        // the two renames of a save).
        let mut bigger = built(&points(301, 8));
        let other = tempfile::tempdir().unwrap();
        bigger.save(other.path(), "c").unwrap();
        std::fs::copy(other.path().join("c.hnsw"), &graph).unwrap();
        let e = corrupt("mismatched pair");
        assert!(e.contains("301 points") && e.contains("says 300"), "{e}");
        // A meta file that is not JSON.
        std::fs::write(&graph, &good).unwrap();
        assert!(load().unwrap().is_some(), "the good pair loads again");
        std::fs::write(&meta, b"{\"format\": 2, \"metric\"").unwrap();
        assert!(corrupt("meta").contains("c.meta.json"));
        // A meta file of another format is not an error: rebuild.
        std::fs::write(&meta, b"{\"format\": 1}").unwrap();
        assert!(load().unwrap().is_none());
        // The graph file missing behind a meta file is an I/O error naming it.
        ix.save(dir.path(), "c").unwrap();
        std::fs::remove_file(&graph).unwrap();
        match load() {
            Err(IndexError::Io { path, .. }) => assert_eq!(path, graph),
            other => panic!("{:?}", other.map(|o| o.is_some())),
        }
    }

    #[test]
    fn names_must_be_plain_file_stems() {
        let mut ix = built(&points(10, 4));
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "a/b", "..", "x\\y"] {
            assert!(
                matches!(ix.save(dir.path(), bad), Err(IndexError::Name(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reconcile_inserts_missing_and_tombstones_gone_keys() {
        let vs = points(400, 8);
        let mut ix = built(&vs[..300]);
        ix.origin = Origin::Loaded;
        // Keys 0..3000 step 10 are in; the live set drops 0 and 10 and adds 300..400.
        let live: Vec<(i64, &[f32])> = vs
            .iter()
            .enumerate()
            .skip(2)
            .map(|(i, v)| (i as i64 * 10, v.as_slice()))
            .collect();
        assert!(ix.reconcile(live.iter().copied(), live.len(), 99));
        assert_eq!((ix.points(), ix.tombstones()), (400, 2));
        assert_eq!(ix.generation(), 99);
        assert_eq!(ix.origin(), Origin::LoadedReconciled);
        assert!(ix.search(&vs[0], 3, 32, None).iter().all(|k| *k != 0));
        assert_eq!(ix.search(&vs[350], 1, 64, None), vec![3500]);
        // Nothing to do the second time.
        assert!(!ix.reconcile(live.iter().copied(), live.len(), 100));
    }

    #[test]
    fn appended_nodes_are_linked_before_a_save_and_found_after_a_load() {
        let vs = points(700, 5);
        let mut ix = built(&vs[..600]);
        for (i, v) in vs.iter().enumerate().skip(600) {
            ix.append(i as i64 * 10, v);
        }
        assert_eq!((ix.pending(), ix.points()), (100, 700));
        assert!(ix.is_whole());
        let dir = tempfile::tempdir().unwrap();
        ix.save(dir.path(), "c").unwrap();
        assert_eq!(ix.pending(), 0, "linked by the save");
        let back = AnnIndex::load(dir.path(), "c", Metric::Cosine, 5, HnswParams::default())
            .unwrap()
            .expect("an index");
        for i in [600, 650, 699] {
            assert_eq!(back.search(&vs[i], 1, 64, None), vec![i as i64 * 10]);
        }
        // `insert` links what was appended before it, too.
        let mut ix = built(&vs[..600]);
        ix.append(6000, &vs[600]);
        ix.insert(&[(6010, vs[601].as_slice())]);
        assert_eq!(ix.pending(), 0);
        assert_eq!(ix.search(&vs[600], 1, 64, None), vec![6000]);
    }
}
