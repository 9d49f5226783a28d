//! The HNSW sidecar index of a SQLite vector collection.
//!
//! - **Built automatically** once a collection holds `hnsw_threshold`
//!   vectors (default 1,000; 0 = never), from the in-memory vector cache:
//!   on a background thread by default (see `Build` in the vector module;
//!   exact search answers meanwhile), or inline with `hnsw_build = "inline"`.
//!   The graph is the plugin's own flat-layout HNSW ([`crate::hnsw`]),
//!   built on every core; it replaced `hnsw_rs`, whose pointer-chasing
//!   build took 47 s at 100K × 384 on the 2-core benchmark VM (see the
//!   `hnsw` module docs and `benchmarks/vectors-sqlite.md`).
//! - **Point ids are the row `pk`s.** Because an overwrite inserts a new row,
//!   a pk never changes its vector: new pks are inserted into the graph,
//!   deleted or overwritten pks become *tombstones* that searches skip.
//!   When tombstones pass a third of the points the graph is rebuilt.
//! - **Saved beside the database** as `<db>.strata-index/<collection>.hnsw`
//!   (the graph, its vectors and pks; checksummed) plus
//!   `<collection>.meta.json` (parameters, the generation it reflects, the
//!   tombstones), written after a build, every `SAVE_EVERY` changes and
//!   when the backend closes. Files are written under temporary names,
//!   synced and renamed, meta last. A crash between the two renames leaves
//!   the new graph beside the old meta: the meta's point count no longer
//!   matches and the index is rebuilt (never used half-right). Sidecars of
//!   the `hnsw_rs` era (meta `format` 1) are rebuilt.
//! - **The database stays the source of truth.** On load the index's pk set
//!   is reconciled with the table: rows it lacks are inserted, pks no longer
//!   in the table are tombstoned. So a crash between a row write and an
//!   index save loses nothing; a missing, corrupt or truncated sidecar
//!   (checksum, sizes and every link are checked) is rebuilt.
//! - **Distances**: cosine on normalised vectors as `1 − dot`, euclidean as
//!   the squared distance, dot product as `−dot` (inner product search; see
//!   [`Space::Dot`]). Candidates are rescored exactly by the caller.

use std::{
    collections::HashSet,
    io::IsTerminal,
    path::Path,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use crate::hnsw::{Hnsw, Progress, Space};

use serde::{Deserialize, Serialize};
use strata_plugin::{PluginError, PluginResult, vector::Metric};

/// Index parameters from the backend config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HnswParams {
    pub(crate) m: usize,
    pub(crate) ef_construction: usize,
    pub(crate) ef_search: usize,
}

/// Changes (inserts + tombstones) after which a dirty index is saved again.
pub(crate) const SAVE_EVERY: usize = 10_000;

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
const META_FORMAT: u32 = 2;

/// Progress and cancellation of a build running on another thread.
#[derive(Debug, Default)]
pub(crate) struct BuildCtl {
    /// Vectors inserted so far.
    pub(crate) done: AtomicUsize,
    /// Set to stop the build at the next node.
    pub(crate) cancelled: AtomicBool,
}

impl BuildCtl {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// An HNSW graph over some of a collection's pks.
pub(crate) struct AnnIndex {
    graph: Hnsw,
    metric: Metric,
    dimension: usize,
    pub(crate) params: HnswParams,
    /// Every pk in the graph (live or tombstoned).
    pks: HashSet<i64>,
    tombstones: HashSet<i64>,
    /// The collection generation the index reflects (after reconciling).
    pub(crate) generation: i64,
    /// Changes since the last save.
    pub(crate) unsaved: usize,
    /// Where it was loaded from ("built", "sidecar", "sidecar+reconciled").
    pub(crate) origin: &'static str,
}

fn new_graph(metric: Metric, dimension: usize, params: HnswParams) -> Hnsw {
    Hnsw::new(space(metric), dimension, params.m, params.ef_construction)
}

fn space(metric: Metric) -> Space {
    match metric {
        Metric::Cosine => Space::Cosine,
        Metric::Dot => Space::Dot,
        _ => Space::L2,
    }
}

impl AnnIndex {
    /// Builds a graph over `(pk, vector)` pairs (vectors as cached: normalised for cosine).
    pub(crate) fn build<'a>(
        metric: Metric,
        dimension: usize,
        params: HnswParams,
        generation: i64,
        points: impl ExactSizeIterator<Item = (i64, &'a [f32])>,
    ) -> AnnIndex {
        let ctl = BuildCtl::default();
        Self::build_with(metric, dimension, params, generation, points, &ctl, true)
            .expect("a build nobody can cancel finishes")
    }

    /// [`build`](Self::build) reporting progress to `ctl` and stopping (with
    /// `None`) once it is cancelled; with `announce`, a big build says on a
    /// terminal's stderr when it starts and ends ([`insert_all`]).
    pub(crate) fn build_with<'a>(
        metric: Metric,
        dimension: usize,
        params: HnswParams,
        generation: i64,
        points: impl ExactSizeIterator<Item = (i64, &'a [f32])>,
        ctl: &BuildCtl,
        announce: bool,
    ) -> Option<AnnIndex> {
        let mut graph = new_graph(metric, dimension, params);
        let items: Vec<(i64, &[f32])> = points.collect();
        let pks = items.iter().map(|(pk, _)| *pk).collect();
        graph.push(&items);
        if !insert_all(&graph, 0, "building HNSW index", Some(ctl), announce) {
            return None;
        }
        Some(AnnIndex {
            graph,
            metric,
            dimension,
            params,
            pks,
            tombstones: HashSet::new(),
            generation,
            unsaved: usize::MAX / 2,
            origin: "built",
        })
    }

    /// Points in the graph, tombstones included.
    pub(crate) fn points(&self) -> usize {
        self.pks.len()
    }

    /// Whether `pk` is in the graph (live or tombstoned).
    pub(crate) fn contains(&self, pk: i64) -> bool {
        self.pks.contains(&pk)
    }

    /// Points that searches skip.
    pub(crate) fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Whether so much is tombstoned that a rebuild is cheaper than skipping.
    pub(crate) fn needs_rebuild(&self) -> bool {
        self.tombstones.len() * 3 > self.pks.len()
    }

    /// Adds new points (several at once are inserted in parallel).
    pub(crate) fn insert(&mut self, points: &[(i64, &[f32])]) {
        let items: Vec<(i64, &[f32])> = points
            .iter()
            .filter(|(pk, _)| !self.pks.contains(pk))
            .copied()
            .collect();
        if items.is_empty() {
            return;
        }
        let first = self.graph.push(&items);
        insert_all(&self.graph, first, "indexing vectors", None, true);
        self.pks.extend(items.iter().map(|(pk, _)| *pk));
        self.unsaved += items.len();
    }

    /// Marks pks as gone.
    pub(crate) fn remove(&mut self, pks: &[i64]) {
        for pk in pks {
            if self.pks.contains(pk) && self.tombstones.insert(*pk) {
                self.unsaved += 1;
            }
        }
    }

    /// Reconciles with the pks the table holds now: inserts what is missing,
    /// tombstones what is gone. Returns true when anything changed.
    pub(crate) fn reconcile<'a>(
        &mut self,
        live: impl Iterator<Item = (i64, &'a [f32])>,
        live_count: usize,
    ) -> bool {
        let mut missing: Vec<(i64, &[f32])> = Vec::new();
        let mut seen = HashSet::with_capacity(live_count);
        for (pk, v) in live {
            seen.insert(pk);
            if !self.pks.contains(&pk) {
                missing.push((pk, v));
            } else if self.tombstones.contains(&pk) {
                // Cannot happen (pks are never reused), but never hide a live row.
                self.tombstones.remove(&pk);
            }
        }
        let gone: Vec<i64> = self
            .pks
            .iter()
            .filter(|pk| !seen.contains(pk))
            .copied()
            .collect();
        let changed = !missing.is_empty() || gone.iter().any(|pk| !self.tombstones.contains(pk));
        self.insert(&missing);
        self.remove(&gone);
        changed
    }

    /// Candidate pks for `query` (cached form), skipping tombstones and pks
    /// outside `allowed`. Scores are recomputed exactly by the caller.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&HashSet<i64>>,
    ) -> Vec<i64> {
        let keep = |node: u32| {
            let pk = self.graph.pk(node);
            !self.tombstones.contains(&pk) && allowed.is_none_or(|a| a.contains(&pk))
        };
        let filtered = !self.tombstones.is_empty() || allowed.is_some();
        let keep: Option<&dyn Fn(u32) -> bool> = if filtered { Some(&keep) } else { None };
        self.graph
            .search(query, k, ef.max(k), keep)
            .into_iter()
            .map(|(_, node)| self.graph.pk(node))
            .collect()
    }

    /// Bytes the graph holds in memory (vectors, links, pks).
    pub(crate) fn bytes(&self) -> usize {
        self.graph.bytes()
    }

    /// Writes the sidecar: the graph under a temporary name, synced and
    /// renamed into place, then the meta file (the commit point).
    pub(crate) fn save(&mut self, dir: &Path, collection: &str) -> PluginResult<()> {
        let io = |e: std::io::Error, what: &str| {
            PluginError::internal(format!("index sidecar {what} in {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io(e, "directory"))?;
        let tmp = dir.join(format!("{collection}.hnsw.tmp"));
        let file = std::fs::File::create(&tmp).map_err(|e| io(e, "graph"))?;
        self.graph.write(&file).map_err(|e| io(e, "graph"))?;
        file.sync_all().map_err(|e| io(e, "graph"))?;
        std::fs::rename(&tmp, dir.join(format!("{collection}.hnsw")))
            .map_err(|e| io(e, "rename"))?;
        let meta = MetaFile {
            format: META_FORMAT,
            metric: self.metric.name().into(),
            dimension: self.dimension,
            params: self.params,
            generation: self.generation,
            points: self.graph.len(),
            tombstones: self.tombstones.iter().copied().collect(),
        };
        let tmp_meta = dir.join(format!("{collection}.meta.json.tmp"));
        let text = serde_json::to_vec(&meta).map_err(|e| PluginError::internal(e.to_string()))?;
        write_synced(&tmp_meta, &text).map_err(|e| io(e, "meta"))?;
        std::fs::rename(&tmp_meta, dir.join(format!("{collection}.meta.json")))
            .map_err(|e| io(e, "rename"))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        self.unsaved = 0;
        Ok(())
    }

    /// Loads a sidecar written by [`save`](Self::save); `Ok(None)` when there
    /// is none or it was made for other parameters (or by an older format),
    /// `Err` when it is unreadable.
    pub(crate) fn load(
        dir: &Path,
        collection: &str,
        metric: Metric,
        dimension: usize,
        params: HnswParams,
    ) -> PluginResult<Option<AnnIndex>> {
        let meta_path = dir.join(format!("{collection}.meta.json"));
        let Ok(text) = std::fs::read(&meta_path) else {
            return Ok(None);
        };
        let meta: MetaFile = match serde_json::from_slice::<serde_json::Value>(&text) {
            Ok(v) if v.get("format").and_then(|f| f.as_u64()) != Some(META_FORMAT as u64) => {
                return Ok(None);
            }
            Ok(v) => serde_json::from_value(v),
            Err(e) => Err(e),
        }
        .map_err(|e| PluginError::internal(format!("index meta {}: {e}", meta_path.display())))?;
        if meta.metric != metric.name()
            || meta.dimension != dimension
            || meta.params.m != params.m
            || meta.params.ef_construction != params.ef_construction
        {
            return Ok(None);
        }
        let graph_path = dir.join(format!("{collection}.hnsw"));
        let bytes = std::fs::read(&graph_path).map_err(|e| {
            PluginError::internal(format!("index graph {}: {e}", graph_path.display()))
        })?;
        let graph = Hnsw::read(
            &bytes,
            space(metric),
            dimension,
            params.m,
            params.ef_construction,
        )
        .map_err(|e| {
            PluginError::internal(format!(
                "index graph {} is unreadable: {e}",
                graph_path.display()
            ))
        })?;
        if graph.len() != meta.points {
            return Err(PluginError::internal(format!(
                "index graph {} holds {} points, its meta file says {}",
                graph_path.display(),
                graph.len(),
                meta.points
            )));
        }
        Ok(Some(AnnIndex {
            pks: graph.pks().iter().copied().collect(),
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
            origin: "sidecar",
        }))
    }

    /// Removes a collection's sidecar files.
    pub(crate) fn delete_files(dir: &Path, collection: &str) {
        for ext in [
            "meta.json",
            "hnsw",
            "meta.json.tmp",
            "hnsw.tmp",
            // The `hnsw_rs` era's files.
            "hnsw.graph",
            "hnsw.data",
            "tmp.hnsw.graph",
            "tmp.hnsw.data",
        ] {
            let _ = std::fs::remove_file(dir.join(format!("{collection}.{ext}")));
        }
    }
}

/// Links nodes `first..` of `graph` on all cores. With `ctl`, progress is
/// counted there and a cancellation stops the build at the next node
/// (returns `false`). An interrupted build loses nothing: the index is
/// derived from the table and rebuilt.
///
/// A big batch (20,000 nodes or more) built where a caller waits for it
/// (`announce`: an inline build, a large insert) says so on stderr when
/// stderr is a terminal, a line when it starts and one when it ends, so an
/// operator at a prompt knows why it waits; logs and pipes get nothing.
fn insert_all(
    graph: &Hnsw,
    first: u32,
    what: &str,
    ctl: Option<&BuildCtl>,
    announce: bool,
) -> bool {
    let count = graph.len() - first as usize;
    let announce = announce && count >= 20_000 && std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    if announce {
        eprintln!("strata-sqlite: {what}: {count} vectors…");
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
    if announce && done {
        eprintln!(
            "strata-sqlite: {what}: {count} vectors in {:.1} s",
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
