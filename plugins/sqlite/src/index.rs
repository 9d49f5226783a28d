//! The HNSW sidecar index (hnsw_rs) of a SQLite vector collection.
//!
//! - **Built automatically** once a collection holds `hnsw_threshold`
//!   vectors (default 1,000; 0 = never), from the in-memory vector cache:
//!   on a background thread by default (see `Build` in the vector module;
//!   exact search answers meanwhile), or inline with `hnsw_build = "inline"`.
//!   The build is hnsw_rs's own (`parallel_insert_slice`, one rayon thread
//!   per core); profiled at 50K × 384, 45 % of it is `search_layer` chasing
//!   neighbour pointers and 30 % distance evaluations, so it is bound by
//!   memory latency: an int8 graph built only 25 % faster, and
//!   `ef_construction` 64 instead of 100 saved 40 % but cost recall@10 at
//!   `ef_search` 128 (0.93 instead of 0.95).
//! - **Point ids are the row `pk`s.** Because an overwrite inserts a new row,
//!   a pk never changes its vector: new pks are inserted into the graph,
//!   deleted or overwritten pks become *tombstones* that searches skip.
//!   When tombstones pass a third of the points the graph is rebuilt.
//! - **Saved beside the database** as `<db>.strata-index/<collection>.hnsw.{graph,data}`
//!   plus `<collection>.meta.json` (parameters, the generation it reflects,
//!   its pks and tombstones), written after a build, every
//!   `SAVE_EVERY` changes and when the backend closes. Files are written
//!   under temporary names and renamed, meta last, so a crash leaves the old
//!   index or the new one, never a mix.
//! - **The database stays the source of truth.** On load the index's pk set
//!   is reconciled with the table: rows it lacks are inserted, pks no longer
//!   in the table are tombstoned. So a crash between a row write and an
//!   index save loses nothing; a missing or unreadable sidecar is rebuilt.
//! - **Distances** are our own (cosine on normalised vectors as `1 - dot`
//!   clamped at 0, and euclidean): anndists' `DistDot` asserts `dot <= 1`,
//!   which rounding breaks for identical vectors. Dot-product collections are
//!   not indexed (the caller keeps them exact): hnsw_rs requires distances
//!   that are never negative.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use hnsw_rs::{
    hnswio::HnswIo,
    prelude::{AnnT, Distance, Hnsw},
};
use serde::{Deserialize, Serialize};
use strata_plugin_api::{PluginError, PluginResult, vector::Metric};

/// Index parameters from the backend config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HnswParams {
    pub(crate) m: usize,
    pub(crate) ef_construction: usize,
    pub(crate) ef_search: usize,
}

/// Changes (inserts + tombstones) after which a dirty index is saved again.
pub(crate) const SAVE_EVERY: usize = 10_000;

macro_rules! distance {
    ($name:ident, $body:expr) => {
        #[derive(Clone, Copy, Debug, Default)]
        pub(crate) struct $name;
        impl Distance<f32> for $name {
            fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
                let f: fn(&[f32], &[f32]) -> f32 = $body;
                f(a, b)
            }
        }
    };
}

distance!(CosineDist, |a, b| (1.0
    - (crate::vector::kernels().dot)(a, b))
.max(0.0));
distance!(L2Dist, |a, b| (crate::vector::kernels().l2)(a, b).sqrt());

enum Graph {
    Cosine(Hnsw<'static, f32, CosineDist>),
    L2(Hnsw<'static, f32, L2Dist>),
}

macro_rules! with_graph {
    ($g:expr, $h:ident => $e:expr) => {
        match $g {
            Graph::Cosine($h) => $e,
            Graph::L2($h) => $e,
        }
    };
}

#[derive(Serialize, Deserialize)]
struct MetaFile {
    format: u32,
    metric: String,
    dimension: usize,
    params: HnswParams,
    generation: i64,
    basename: String,
    pks: Vec<i64>,
    tombstones: Vec<i64>,
}

/// Progress and cancellation of a build running on another thread.
#[derive(Debug, Default)]
pub(crate) struct BuildCtl {
    /// Vectors inserted so far.
    pub(crate) done: AtomicUsize,
    /// Set to stop the build at the next chunk boundary.
    pub(crate) cancelled: AtomicBool,
}

impl BuildCtl {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// An HNSW graph over some of a collection's pks.
pub(crate) struct AnnIndex {
    graph: Graph,
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

fn new_graph(metric: Metric, params: HnswParams, capacity: usize) -> Graph {
    let cap = capacity.max(1_000);
    let m = params.m.clamp(2, 128);
    match metric {
        Metric::Cosine => Graph::Cosine(Hnsw::new(m, cap, 16, params.ef_construction, CosineDist)),
        Metric::Euclidean | Metric::Dot => {
            Graph::L2(Hnsw::new(m, cap, 16, params.ef_construction, L2Dist))
        }
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
    /// `None`) once it is cancelled; `bar` draws a progress bar on stderr.
    pub(crate) fn build_with<'a>(
        metric: Metric,
        dimension: usize,
        params: HnswParams,
        generation: i64,
        points: impl ExactSizeIterator<Item = (i64, &'a [f32])>,
        ctl: &BuildCtl,
        bar: bool,
    ) -> Option<AnnIndex> {
        let n = points.len();
        let graph = new_graph(metric, params, n);
        let items: Vec<(&[f32], usize)> = points.map(|(pk, v)| (v, pk as usize)).collect();
        let pks = items.iter().map(|(_, id)| *id as i64).collect();
        if !insert_all(&graph, &items, "building HNSW index", Some(ctl), bar) {
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
        let items: Vec<(&[f32], usize)> = points
            .iter()
            .filter(|(pk, _)| !self.pks.contains(pk))
            .map(|(pk, v)| (*v, *pk as usize))
            .collect();
        if items.is_empty() {
            return;
        }
        if items.len() == 1 {
            with_graph!(&self.graph, g => g.insert_slice(items[0]));
        } else {
            insert_all(&self.graph, &items, "indexing vectors", None, true);
        }
        self.pks.extend(items.iter().map(|(_, id)| *id as i64));
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
        let keep = |id: &usize| {
            let pk = *id as i64;
            !self.tombstones.contains(&pk) && allowed.is_none_or(|a| a.contains(&pk))
        };
        let filtered = !self.tombstones.is_empty() || allowed.is_some();
        let ef = ef.max(k);
        let found = with_graph!(&self.graph, g => {
            if filtered {
                g.search_filter(query, k, ef, Some(&keep))
            } else {
                g.search(query, k, ef)
            }
        });
        found.into_iter().map(|n| n.d_id as i64).collect()
    }

    fn files(dir: &Path, collection: &str) -> (PathBuf, String) {
        (
            dir.join(format!("{collection}.meta.json")),
            format!("{collection}.tmp"),
        )
    }

    /// Writes the sidecar: graph and data under a temporary basename, renamed
    /// into place, then the meta file (the commit point).
    pub(crate) fn save(&mut self, dir: &Path, collection: &str) -> PluginResult<()> {
        let io = |e: std::io::Error, what: &str| {
            PluginError::internal(format!("index sidecar {what}: {e}"))
        };
        std::fs::create_dir_all(dir).map_err(|e| io(e, "directory"))?;
        let (meta_path, tmp) = Self::files(dir, collection);
        let written = with_graph!(&self.graph, g => g.file_dump(dir, &tmp))
            .map_err(|e| PluginError::internal(format!("index sidecar dump: {e}")))?;
        for ext in ["hnsw.graph", "hnsw.data"] {
            std::fs::rename(
                dir.join(format!("{written}.{ext}")),
                dir.join(format!("{collection}.{ext}")),
            )
            .map_err(|e| io(e, "rename"))?;
        }
        let meta = MetaFile {
            format: 1,
            metric: self.metric.name().into(),
            dimension: self.dimension,
            params: self.params,
            generation: self.generation,
            basename: collection.into(),
            pks: self.pks.iter().copied().collect(),
            tombstones: self.tombstones.iter().copied().collect(),
        };
        let tmp_meta = dir.join(format!("{collection}.meta.json.tmp"));
        let text = serde_json::to_vec(&meta).map_err(|e| PluginError::internal(e.to_string()))?;
        write_synced(&tmp_meta, &text).map_err(|e| io(e, "meta"))?;
        std::fs::rename(&tmp_meta, &meta_path).map_err(|e| io(e, "rename"))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        self.unsaved = 0;
        Ok(())
    }

    /// Loads a sidecar written by [`save`](Self::save); `Ok(None)` when there
    /// is none or it was made for other parameters, `Err` when it is unreadable.
    pub(crate) fn load(
        dir: &Path,
        collection: &str,
        metric: Metric,
        dimension: usize,
        params: HnswParams,
    ) -> PluginResult<Option<AnnIndex>> {
        let (meta_path, _) = Self::files(dir, collection);
        let Ok(text) = std::fs::read(&meta_path) else {
            return Ok(None);
        };
        let meta: MetaFile = serde_json::from_slice(&text).map_err(|e| {
            PluginError::internal(format!("index meta {}: {e}", meta_path.display()))
        })?;
        if meta.format != 1
            || meta.metric != metric.name()
            || meta.dimension != dimension
            || meta.params.m != params.m
            || meta.params.ef_construction != params.ef_construction
        {
            return Ok(None);
        }
        // hnsw_rs ties a loaded graph's lifetime to its reader; the reader is
        // a few paths and counters, kept for the life of the process.
        let reader: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, &meta.basename)));
        let load_err = |e: anyhow::Error| {
            PluginError::internal(format!("index graph in {}: {e:#}", dir.display()))
        };
        // hnsw_rs unwraps on some malformed files instead of returning an
        // error: contain that here, so a corrupt sidecar means a rebuild.
        let loaded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> PluginResult<Graph> {
                Ok(match metric {
                    Metric::Cosine => {
                        Graph::Cosine(reader.load_hnsw_with_dist(CosineDist).map_err(load_err)?)
                    }
                    Metric::Euclidean | Metric::Dot => {
                        Graph::L2(reader.load_hnsw_with_dist(L2Dist).map_err(load_err)?)
                    }
                })
            }));
        let graph = match loaded {
            Ok(g) => g?,
            Err(payload) => {
                let msg = strata_plugin_api::error::panic_message(payload.as_ref());
                return Err(PluginError::internal(format!(
                    "index graph in {} is unreadable: {}",
                    dir.display(),
                    msg.lines().next().unwrap_or("")
                )));
            }
        };
        let points = with_graph!(&graph, g => g.get_nb_point());
        if points != meta.pks.len() {
            return Err(PluginError::internal(format!(
                "index graph holds {points} points, its meta file lists {}",
                meta.pks.len()
            )));
        }
        Ok(Some(AnnIndex {
            graph,
            metric,
            dimension,
            params: HnswParams {
                ef_search: params.ef_search,
                ..meta.params
            },
            pks: meta.pks.into_iter().collect(),
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
            "hnsw.graph",
            "hnsw.data",
            "meta.json.tmp",
            "tmp.hnsw.graph",
            "tmp.hnsw.data",
        ] {
            let _ = std::fs::remove_file(dir.join(format!("{collection}.{ext}")));
        }
    }
}

/// Inserts in parallel, in chunks, with a progress bar on stderr for big
/// batches when `bar` (indicatif draws only when stderr is a terminal).
/// With `ctl`, progress is counted there and a cancellation stops the
/// insertion at the next chunk (returns `false`). An interrupted build loses
/// nothing: the index is derived from the table and rebuilt.
fn insert_all(
    graph: &Graph,
    items: &[(&[f32], usize)],
    what: &str,
    ctl: Option<&BuildCtl>,
    bar: bool,
) -> bool {
    let bar = if bar && items.len() >= 20_000 {
        let pb = indicatif::ProgressBar::new(items.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} vectors ({per_sec}, eta {eta})",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(format!("strata-sqlite: {what}"));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Each chunk ends in a rayon barrier (one thread may idle while the
    // other finishes its share), so chunks are only cut when someone
    // watches: a drawn bar, or a build that reports progress and can be
    // cancelled (about 1/50 of the build each).
    let chunk = if ctl.is_some() {
        (items.len() / 50).max(2_000)
    } else if bar.is_hidden() {
        items.len().max(1)
    } else {
        (items.len() / 20).max(5_000)
    };
    for chunk in items.chunks(chunk) {
        if ctl.is_some_and(BuildCtl::is_cancelled) {
            bar.finish_and_clear();
            return false;
        }
        with_graph!(graph, g => g.parallel_insert_slice(&chunk.to_vec()));
        bar.inc(chunk.len() as u64);
        if let Some(ctl) = ctl {
            ctl.done.fetch_add(chunk.len(), Ordering::Release);
        }
    }
    bar.finish_and_clear();
    true
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
