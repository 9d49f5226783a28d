//! The HNSW index of a collection: when it is built (inline or on a
//! background thread), reused from a sidecar, reconciled, saved.
//!
//! Past `hnsw_threshold` vectors a collection gets an [`AnnIndex`] (the
//! graph of strata-ann), saved beside the database in
//! `<db>.strata-index/<collection>.{hnsw,meta.json}` after a build, every
//! [`SAVE_EVERY`] changes and at close. On load it is reconciled with the
//! table (rows it lacks inserted, rows gone tombstoned), so a crash never
//! loses or resurrects data; a missing, corrupt or mostly-tombstoned one is
//! rebuilt. An index in use is attached to the collection's cache
//! ([`Flat::attach`]) and its graph holds the cache's vectors: one copy in
//! memory. Attaching compares every vector bit for bit with the table's,
//! so a sidecar made from other data (a database restored from elsewhere
//! beside an old sidecar) is rebuilt, never trusted; candidates are
//! rescored exactly, so scores never depend on the graph.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use strata_ann::{AnnIndex, BuildCtl, Flat, HnswParams, Metric, Origin};
use strata_plugin::PluginError;

use crate::{config::HnswBuild, sql::Shared};

/// Changes (inserts + tombstones) after which a dirty index is saved again.
pub(super) const SAVE_EVERY: usize = 10_000;

/// What big builds and inserts are announced as on a terminal.
const ANNOUNCE: &str = "strata-sqlite";

/// An HNSW index built from scratch on a background thread
/// (`hnsw_build = "background"`).
///
/// The thread builds from a copy of the cache taken at a generation, saves
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
        self.ctl.cancel();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, BuildState::Failed(_)) {
            *state = BuildState::Cancelled;
        }
    }

    /// The state, unless the thread holds it (saving the sidecar). A lock
    /// poisoned by a panic is still read: the state it guards is whole.
    fn try_state(&self) -> Option<MutexGuard<'_, BuildState>> {
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

/// Where the index a collection was loaded into came from
/// ([`Indexer::seed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seed {
    /// Loaded without one.
    None,
    /// This process's: the previous cache's, or a finished background build.
    Memory,
    /// Read from the sidecar.
    Sidecar,
}

/// The index policy of one backend: its config, and the background builds
/// in flight or finished, by collection.
pub(super) struct Indexer {
    shared: Arc<Shared>,
    builds: Mutex<HashMap<String, Arc<Build>>>,
}

impl Indexer {
    pub(super) fn new(shared: Arc<Shared>) -> Indexer {
        Indexer {
            shared,
            builds: Mutex::default(),
        }
    }

    fn builds(&self) -> MutexGuard<'_, HashMap<String, Arc<Build>>> {
        self.builds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn build_of(&self, name: &str) -> Option<Arc<Build>> {
        self.builds().get(name).cloned()
    }

    /// Whether a background build of `name` has finished and waits to be
    /// installed (cheap: no lock is waited for).
    pub(super) fn build_finished(&self, name: &str) -> bool {
        self.build_of(name)
            .is_some_and(|b| matches!(b.try_state().as_deref(), Some(BuildState::Done(_))))
    }

    /// Stops and forgets the background build of `name`; whether there was one.
    pub(super) fn cancel_build(&self, name: &str) -> bool {
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
    pub(super) fn cancel_builds(&self) {
        let builds: Vec<Arc<Build>> = self.builds().drain().map(|(_, b)| b).collect();
        for b in builds {
            b.cancel();
        }
    }

    /// The index a finished background build left for `name` (forgetting
    /// the build) when it fits `flat` (same metric and dimension: not a
    /// leftover of a collection dropped and made again); `Err(())` while one
    /// is still running (or failed: a failed build is not retried until the
    /// backend is reopened).
    fn take_built(
        &self,
        name: &str,
        metric: Metric,
        dimension: usize,
    ) -> Result<Option<AnnIndex>, ()> {
        let Some(build) = self.build_of(name) else {
            return Ok(None);
        };
        let Some(mut state) = build.try_state() else {
            return Err(()); // saving the sidecar
        };
        let taken = match std::mem::replace(&mut *state, BuildState::Cancelled) {
            BuildState::Done(ix) => {
                (build.metric == metric && build.dimension == dimension).then_some(*ix)
            }
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

    /// Starts building `flat`'s index on a thread (see [`Build`]); false
    /// when no thread can be spawned.
    fn start_build(&self, name: &str, flat: &Flat, generation: i64, params: HnswParams) -> bool {
        let build = Arc::new(Build {
            ctl: BuildCtl::default(),
            state: Mutex::new(BuildState::Running),
            total: flat.len(),
            started: Instant::now(),
            metric: flat.metric(),
            dimension: flat.dimension(),
        });
        // A copy: the cache goes on serving (and changing) meanwhile. The
        // build drops it once the graph holds the vectors.
        let keys = flat.keys().to_vec();
        let mut data = Vec::with_capacity(flat.len() * flat.dimension());
        for (_, v) in flat.points() {
            data.extend_from_slice(v);
        }
        let (metric, dim) = (flat.metric(), flat.dimension());
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
                            AnnIndex::build_from(
                                metric, dim, params, generation, keys, data, &job.ctl, None,
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
                true
            }
            Err(e) => {
                eprintln!(
                    "strata-sqlite: no thread for a background HNSW build ({e}); building inline"
                );
                false
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

    /// Saves `index` as `name`'s sidecar (not when read-only or in memory).
    pub(super) fn save_index(&self, name: &str, index: &mut AnnIndex) {
        if self.shared.config().read_only {
            return;
        }
        if let Some(dir) = self.index_dir() {
            save_index_to(&dir, name, index);
        }
    }

    /// Deletes `name`'s sidecar files (not when read-only: they are the
    /// writer's).
    pub(super) fn delete_files(&self, name: &str) {
        if self.shared.config().read_only {
            return;
        }
        if let Some(dir) = self.index_dir() {
            AnnIndex::delete_files(&dir, name);
        }
    }

    /// Gives `flat` (at `generation`) the index it should have now:
    /// `previous`, a finished background build or the sidecar, reconciled
    /// by pk and attached ([`Flat::attach`]: the graph then holds the
    /// vectors); rebuilt when missing, corrupt, made from other data or
    /// mostly tombstones (in the background unless `hnsw_build =
    /// "inline"`: queries stay exact meanwhile and `flat` stays without
    /// one); none below the threshold (an attached one is detached).
    ///
    /// `seed` says where the index `flat` was loaded into came from, if it
    /// was ([`seed`](Self::seed)): it is then finished here, or, when a row
    /// did not match it (the load let it go), rebuilt at once.
    pub(super) fn attach(
        &self,
        name: &str,
        flat: &mut Flat,
        generation: i64,
        previous: Option<AnnIndex>,
        seed: Seed,
    ) {
        let threshold = self.shared.config().hnsw_threshold as usize;
        if threshold == 0 || flat.len() < threshold {
            let building = self.cancel_build(name);
            // An index of this process's is gone with its files; a sidecar
            // that was only read is left alone (this process may just have
            // another threshold than the one that wrote it).
            let had = flat.detach_index().is_some() && seed == Seed::Memory;
            if previous.is_some() || building || had {
                self.delete_files(name);
            }
            return;
        }
        let params = self.params();
        if seed != Seed::None {
            if flat.index().is_some() {
                return self.finish_seeded(name, flat, generation, params);
            }
            eprintln!(
                "strata-sqlite: rebuilding the index of {name:?}: it holds other vectors than the table"
            );
            return self.rebuild(name, flat, generation, params);
        }
        let (metric, dimension) = (flat.metric(), flat.dimension());
        let Ok(found) = self.find(name, metric, dimension, previous) else {
            return; // still building: exact search meanwhile
        };
        let index = found.map(|(ix, _)| ix);
        // An index that lacks many rows (a build started at the threshold
        // during a bulk load, a sidecar from long ago) is rebuilt in the
        // background rather than brought up to date here, vector by vector,
        // while the caller (perhaps an upsert holding the writer) waits:
        // "many" is more than 5,000 rows and 10 % of the index (inserting
        // 5,000 takes a few seconds at 384 dimensions).
        if index.as_ref().is_some_and(|ix| {
            let limit = (ix.points() / 10).max(5_000);
            flat.keys()
                .iter()
                .filter(|pk| !ix.contains(**pk))
                .nth(limit)
                .is_some()
        }) && self.shared.config().hnsw_build == HnswBuild::Background
        {
            return self.rebuild(name, flat, generation, params);
        }
        if let Some(mut ix) = index {
            ix.set_announce(Some(ANNOUNCE));
            match flat.attach(ix, generation) {
                Ok(_) if flat.index().is_some_and(AnnIndex::needs_rebuild) => {
                    flat.detach_index();
                }
                Ok(_) => return self.install(name, flat, params),
                Err(refused) => {
                    eprintln!("strata-sqlite: rebuilding the index of {name:?}: {refused}");
                }
            }
        }
        self.rebuild(name, flat, generation, params)
    }

    /// The index to load a collection into ([`Flat::with_index`], so its
    /// vectors are never held twice): `previous`, a finished background
    /// build, or the sidecar; `None` when there is none (or a build is still
    /// running, or indexes are off). [`attach`](Self::attach) then finishes
    /// the job: reconciles it, or rebuilds.
    pub(super) fn seed(
        &self,
        name: &str,
        metric: Metric,
        dimension: usize,
        previous: Option<AnnIndex>,
    ) -> (Option<AnnIndex>, Seed) {
        if self.shared.config().hnsw_threshold == 0 {
            return (None, Seed::None);
        }
        let previous = previous.filter(|ix| ix.metric() == metric && ix.dimension() == dimension);
        match self.find(name, metric, dimension, previous) {
            Ok(Some((ix, from))) => (Some(ix), from),
            // None at hand, or still building.
            Ok(None) | Err(()) => (None, Seed::None),
        }
    }

    /// `previous`, else a finished background build, else the sidecar,
    /// with where it came from; `Err(())` while a background build is
    /// still running.
    fn find(
        &self,
        name: &str,
        metric: Metric,
        dimension: usize,
        previous: Option<AnnIndex>,
    ) -> Result<Option<(AnnIndex, Seed)>, ()> {
        if let Some(ix) = previous {
            return Ok(Some((ix, Seed::Memory)));
        }
        if let Some(built) = self.take_built(name, metric, dimension)? {
            return Ok(Some((built, Seed::Memory)));
        }
        let Some(dir) = self.index_dir() else {
            return Ok(None);
        };
        Ok(
            match AnnIndex::load(&dir, name, metric, dimension, self.params()) {
                Ok(found) => found.map(|ix| (ix, Seed::Sidecar)),
                Err(e) => {
                    eprintln!("strata-sqlite: rebuilding the index of {name:?}: {e}");
                    None
                }
            },
        )
    }

    /// [`attach`](Self::attach) for a collection loaded into its index
    /// ([`seed`](Self::seed)): rows the index lacked were appended while
    /// loading; too many of them is a background rebuild (as in `attach`),
    /// else they are linked and gone keys tombstoned.
    fn finish_seeded(&self, name: &str, flat: &mut Flat, generation: i64, params: HnswParams) {
        let many = flat
            .index()
            .is_some_and(|ix| ix.pending() > ((ix.points() - ix.pending()) / 10).max(5_000));
        if many && self.shared.config().hnsw_build == HnswBuild::Background {
            flat.detach_index();
            return self.rebuild(name, flat, generation, params);
        }
        if let Some(ix) = flat.index_mut() {
            ix.set_announce(Some(ANNOUNCE));
        }
        flat.finish_attach(generation);
        if flat.index().is_some_and(AnnIndex::needs_rebuild) {
            flat.detach_index();
            return self.rebuild(name, flat, generation, params);
        }
        self.install(name, flat, params);
    }

    /// Builds `flat`'s index from scratch: on a thread (installed later by
    /// [`attach`](Self::attach)) or, with `hnsw_build = "inline"` or no
    /// thread to be had, here (attached to `flat` on return).
    fn rebuild(&self, name: &str, flat: &mut Flat, generation: i64, params: HnswParams) {
        if self.shared.config().hnsw_build == HnswBuild::Background
            && self.start_build(name, flat, generation, params)
        {
            return;
        }
        let ix = AnnIndex::build_with(
            flat.metric(),
            flat.dimension(),
            params,
            generation,
            flat.points(),
            &BuildCtl::default(),
            Some(ANNOUNCE),
        )
        .expect("a build nobody can cancel finishes");
        if let Err(e) = flat.attach(ix, generation) {
            unreachable!("an index built from the rows fits them: {e}");
        }
        self.install(name, flat, params);
    }

    fn install(&self, name: &str, flat: &mut Flat, params: HnswParams) {
        let Some(ix) = flat.index_mut() else { return };
        ix.set_ef_search(params.ef_search);
        ix.set_announce(Some(ANNOUNCE));
        // A fresh inline build is saved now; a reconciled index only once it
        // has gathered `SAVE_EVERY` changes (or at close): the sidecar is
        // derived data, and a full save under the writer would stall writes.
        if ix.unsaved() >= SAVE_EVERY {
            self.save_index(name, ix);
        }
    }

    /// After a committed write was applied to `flat` (its attached index
    /// follows pushes and removes, and `maintain` linked the new rows):
    /// labels the index `generation`, rebuilds it when mostly tombstones,
    /// saves it every [`SAVE_EVERY`] changes; without one, gives `flat`
    /// the index it should have now (see [`attach`](Self::attach)).
    pub(super) fn patch(&self, name: &str, flat: &mut Flat, generation: i64) {
        let Some(ix) = flat.index_mut() else {
            return self.attach(name, flat, generation, None, Seed::None);
        };
        ix.set_generation(generation);
        if ix.needs_rebuild() {
            flat.detach_index();
            return self.attach(name, flat, generation, None, Seed::None);
        }
        if ix.unsaved() >= SAVE_EVERY {
            self.save_index(name, ix);
        }
    }

    /// Adds the index state of `name` to its `details_json`: the background
    /// build (`hnsw_build`) and the installed index (`hnsw`).
    pub(super) fn describe(&self, name: &str, index: Option<&AnnIndex>, d: &mut serde_json::Value) {
        if let Some(b) = self.build_of(name) {
            let (state, error) = b.describe();
            d["hnsw_build"] = serde_json::json!({
                "state": state,
                "done": b.ctl.done.load(std::sync::atomic::Ordering::Acquire),
                "total": b.total,
                "elapsed_s": (b.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            });
            if let Some(e) = error {
                d["hnsw_build"]["error"] = e.into();
            }
        }
        if let Some(ix) = index {
            let params = ix.params();
            d["index"] = "hnsw".into();
            d["hnsw"] = serde_json::json!({
                "points": ix.points(),
                "tombstones": ix.tombstones(),
                "m": params.m,
                "ef_construction": params.ef_construction,
                "ef_search": params.ef_search,
                "origin": match ix.origin() {
                    Origin::Built => "built",
                    Origin::Loaded => "sidecar",
                    _ => "sidecar+reconciled",
                },
                "unsaved_changes": ix.unsaved().min(1 << 40),
                "memory_bytes": ix.bytes(),
            });
            if let Some(dir) = self.index_dir() {
                d["hnsw"]["sidecar"] = dir.display().to_string().into();
            }
        }
    }
}

/// Writes `index`'s sidecar into `dir`; a failure is reported, not returned:
/// the index is derived data, so a failed save costs a rebuild or a
/// reconcile at the next open, never data.
fn save_index_to(dir: &Path, name: &str, index: &mut AnnIndex) {
    if let Err(e) = index.save(dir, name) {
        eprintln!("strata-sqlite: could not save the index of {name:?}: {e}");
    }
}
