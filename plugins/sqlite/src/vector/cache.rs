//! The in-memory copy of each collection: loaded on first use, patched by
//! this backend's writes, reloaded when another process wrote.
//!
//! Scanning BLOBs through SQLite for every query would be far from memory
//! speed, so each collection's vectors are cached in one contiguous `f32`
//! array (a strata-ann [`Flat`]: normalised for cosine, with its int8 copy
//! from 1,024 vectors on) next to the record ids. Once the collection has
//! its HNSW index, the index is attached to the `Flat` and its graph holds
//! the vectors instead: one copy in memory, not two (at 1M × 384 that is
//! 1.5 GB less). The cache is labelled with the
//! generation of exactly what it holds; a query whose catalog generation
//! differs — another process wrote — reloads, and the index is reconciled.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use rusqlite::Connection;
use strata_ann::{AnnIndex, Flat, KeySet, codec::decode_into};
use strata_plugin::{PluginError, PluginResult, filter::Filter};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::{
    build::{Indexer, Seed},
    catalog::{self, Meta},
    columns::Metadata,
    store::{self, Added},
};
use crate::{error::map, sql::Shared};

/// The cached vectors of one collection.
pub(super) struct Loaded {
    /// The collection generation the cache holds.
    pub(super) generation: i64,
    /// Record ids, row for row with `flat`.
    pub(super) ids: Vec<String>,
    /// The vectors, keyed by pk, and the HNSW index once the collection
    /// passed the threshold ([`Flat::index`]).
    pub(super) flat: Flat,
    /// Each row's metadata text, row for row with `flat`: read at the
    /// collection's first filtered query ([`Loaded::offer_metadata`]), then
    /// patched by writes like the rest. A collection never filtered does
    /// not hold it.
    metadata: OnceLock<Metadata>,
}

/// An exact scan of at most this many `f32` values (≈ 2,700 vectors of
/// 384 dimensions, some 100 µs) counts as quick: see [`Loaded::is_quick`].
const QUICK_SCAN_VALUES: usize = 1 << 20;

impl Loaded {
    /// A top-k search here is short and bounded: through the index, or an
    /// exact scan of a small collection.
    fn is_quick(&self) -> bool {
        self.flat.index().is_some() || self.flat.len() * self.flat.dimension() <= QUICK_SCAN_VALUES
    }

    fn push(&mut self, pk: i64, id: String, vector: &[f32]) {
        self.flat.push(pk, vector);
        self.ids.push(id);
    }

    fn remove(&mut self, pk: i64) {
        if let Some(row) = self.flat.remove(pk) {
            self.ids.swap_remove(row);
            if let Some(metadata) = self.metadata.get_mut() {
                metadata.swap_remove(row);
            }
        }
    }

    fn add(&mut self, a: &Added) {
        self.push(a.pk, a.id.clone(), &a.vector);
        if let Some(metadata) = self.metadata.get_mut() {
            metadata.push(&a.metadata);
        }
    }

    /// The pks of the rows passing `filter`, evaluated on the metadata held
    /// in memory (see [`Metadata`]: no SQL). `None` when the metadata is
    /// not held (see [`offer_metadata`](Self::offer_metadata)) or a row's
    /// text is not JSON (the caller then asks SQL, which names the fault).
    pub(super) fn matching(&self, filter: &Filter) -> Option<KeySet> {
        self.metadata
            .get()?
            .matching(filter, |row| self.flat.key(row))
    }

    /// Keeps `rows` (every row's `(pk, metadata)`, read at `generation`)
    /// as this cache's metadata if they are exactly its rows; otherwise
    /// (another write committed in between, or it is held already) hands
    /// them back.
    pub(super) fn offer_metadata(
        &self,
        generation: i64,
        rows: store::MetadataRows,
    ) -> Option<store::MetadataRows> {
        if generation != self.generation
            || rows.len() != self.flat.len()
            || self.metadata.get().is_some()
        {
            return Some(rows);
        }
        let mut aligned: Vec<Option<usize>> = vec![None; rows.len()];
        for (i, (pk, _)) in rows.iter().enumerate() {
            match self.flat.row_of(*pk) {
                Some(row) if aligned[row].is_none() => aligned[row] = Some(i),
                _ => return Some(rows),
            }
        }
        // Equal lengths and no row met twice: every row is there.
        let mut texts: Vec<Option<Box<str>>> = rows.into_iter().map(|(_, t)| Some(t)).collect();
        let texts = aligned
            .into_iter()
            .map(|i| texts[i.expect("every row")].take().expect("each once"))
            .collect();
        let _ = self.metadata.set(Metadata::new(texts));
        None
    }

    /// Bytes of metadata held (0 when not held).
    fn metadata_bytes(&self) -> usize {
        self.metadata.get().map_or(0, Metadata::bytes)
    }
}

/// One collection's cache slot (`None` until loaded or after invalidation).
/// An async lock: reloading (and building an index) awaits the database.
type Slot = Arc<RwLock<Option<Loaded>>>;

/// A loaded cache held for reading (see [`Cache::loaded`]).
pub(super) type LoadedGuard = OwnedRwLockReadGuard<Option<Loaded>, Loaded>;

/// The caches of one backend's collections, and their indexes.
pub(super) struct Cache {
    shared: Arc<Shared>,
    slots: Mutex<HashMap<String, Slot>>,
    indexer: Indexer,
}

impl Cache {
    pub(super) fn new(shared: Arc<Shared>) -> Cache {
        Cache {
            indexer: Indexer::new(shared.clone()),
            shared,
            slots: Mutex::default(),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The collection's cache, loaded and current, held for reading. The
    /// guard is returned (not the slot) so a writer's [`patch`](Self::patch)
    /// cannot invalidate the cache between this check and the caller's read.
    pub(super) async fn loaded(&self, meta: &Meta) -> PluginResult<LoadedGuard> {
        let slot = self.slots().entry(meta.name.clone()).or_default().clone();
        let is_fresh = |l: &Option<Loaded>| {
            l.as_ref().is_some_and(|l| {
                l.generation == meta.generation && l.flat.dimension() == meta.dimension as usize
            })
        };
        let built = self.indexer.build_finished(&meta.name);
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
            && let Some(l) = guard.as_mut().filter(|l| l.flat.index().is_none())
        {
            self.indexer
                .attach(&meta.name, &mut l.flat, l.generation, None, Seed::None);
        }
        if !is_fresh(&guard) {
            // The old cache's index is kept (the table is read into it and
            // it is reconciled), its own copy of the vectors is not.
            let previous = guard.take().and_then(|l| {
                (l.flat.dimension() == meta.dimension as usize
                    && l.flat.metric() == meta.ann_metric())
                .then(|| l.flat.into_index())
                .flatten()
            });
            // Loaded straight into the index when there is one at hand, so
            // the vectors are never held twice, not even while loading.
            let (seed, from) = self.indexer.seed(
                &meta.name,
                meta.ann_metric(),
                meta.dimension as usize,
                previous,
            );
            let m = meta.clone();
            let mut loaded = self.shared.with_reader(move |c| load(c, &m, seed)).await?;
            self.indexer
                .attach(&meta.name, &mut loaded.flat, loaded.generation, None, from);
            *guard = Some(loaded);
        }
        Ok(OwnedRwLockReadGuard::map(guard.downgrade(), |l| {
            l.as_ref().expect("loaded above")
        }))
    }

    /// Whether a query of `name` can be answered from memory at once (a
    /// hint for [`Runs`](strata_plugin::Runs), read without waiting): the
    /// cache is loaded and either has its index or is small enough to scan.
    pub(super) fn is_quick(&self, name: &str) -> bool {
        let slot = self.slots().get(name).cloned();
        slot.is_some_and(|s| {
            s.try_read()
                .is_ok_and(|l| l.as_ref().is_some_and(Loaded::is_quick))
        })
    }

    /// The collection's cache held for reading *now*, without waiting or
    /// loading: current for `meta`, quick to search ([`Self::is_quick`]),
    /// and no finished background build waiting to be attached. `None`:
    /// [`loaded`](Self::loaded) has work to do (or a writer holds the slot).
    pub(super) fn loaded_now(&self, meta: &Meta) -> Option<LoadedGuard> {
        if self.indexer.build_finished(&meta.name) {
            return None;
        }
        self.current(meta).filter(|l| l.is_quick())
    }

    /// The collection's cache held for reading *now*, without waiting or
    /// loading, if it is loaded and holds exactly the rows of `meta`'s
    /// generation (what a read of the table would see). `None` when not
    /// loaded, stale, or a writer holds the slot.
    pub(super) fn current(&self, meta: &Meta) -> Option<LoadedGuard> {
        let slot = self.slots().get(&meta.name).cloned()?;
        let read = slot.try_read_owned().ok()?;
        let current = read.as_ref().is_some_and(|l| {
            l.generation == meta.generation && l.flat.dimension() == meta.dimension as usize
        });
        current.then(|| OwnedRwLockReadGuard::map(read, |l| l.as_ref().expect("checked current")))
    }

    /// Patches the cache (and index) after a committed write, under the
    /// writer lock. If a query holds the slot right now, the patch is skipped:
    /// the cache's generation then differs from the table's and the next
    /// query reloads and reconciles.
    pub(super) fn patch(
        &self,
        name: &str,
        before: i64,
        after: i64,
        removed: &[i64],
        added: &[Added],
    ) {
        let slot = self.slots().get(name).cloned();
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
        for a in added {
            l.add(a);
        }
        // Links the new rows into an attached index, too.
        l.flat.maintain();
        l.generation = after;
        self.indexer.patch(name, &mut l.flat, after);
    }

    /// Forgets collection `name` after it was dropped: waits for a load or
    /// build of it in flight, cancels its background build and deletes its
    /// sidecar.
    pub(super) async fn forget(&self, name: &str) {
        let slot = self.slots().remove(name);
        // A query loading the collection right now holds the slot and
        // may be starting a build: wait for it, so the build is there to
        // be cancelled (and its sidecar is not written after the files
        // are deleted below).
        if let Some(slot) = slot {
            *slot.write().await = None;
        }
        self.indexer.cancel_build(name);
        self.indexer.delete_files(name);
    }

    /// Saves every index with unsaved changes (at close).
    pub(super) async fn flush(&self) {
        let slots: Vec<(String, Slot)> = self
            .slots()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, slot) in slots {
            let mut guard = slot.write().await;
            if let Some(ix) = guard.as_mut().and_then(|l| l.flat.index_mut())
                && ix.unsaved() > 0
            {
                self.indexer.save_index(&name, ix);
            }
        }
    }

    /// Stops every background build (at close).
    pub(super) fn cancel_builds(&self) {
        self.indexer.cancel_builds();
    }

    /// The `details_json` of a collection: storage, index kind and state.
    pub(super) fn details(&self, name: &str, loaded: &Loaded) -> serde_json::Value {
        let mut d = serde_json::json!({
            "storage": "sqlite",
            "index": "exact",
            "hnsw_threshold": self.shared.config().hnsw_threshold,
        });
        let quant = loaded.flat.quant();
        d["exact_scan"] = serde_json::json!({
            "quantized": if quant.is_fitted() { "int8" } else { "no" },
            // 0 once the index holds the vectors (see the module docs).
            "f32_cache_bytes": loaded.flat.data_bytes(),
            "f32_held_by": if loaded.flat.index().is_some() { "hnsw" } else { "cache" },
            "int8_copy_bytes": quant.bytes(),
        });
        // Read at the first filtered query (0 until then).
        d["metadata_cache_bytes"] = serde_json::json!(loaded.metadata_bytes());
        self.indexer.describe(name, loaded.flat.index(), &mut d);
        d
    }
}

/// Reads collection `meta` into a new cache; into `seed`'s graph when
/// given (see [`Flat::with_index`]).
fn load(c: &Connection, meta: &Meta, seed: Option<AnnIndex>) -> PluginResult<Loaded> {
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
    let generation = catalog::generation(c, &meta.name)?;
    let count = catalog::row_count(c, &meta.name)? as usize;
    let d = meta.dimension as usize;
    let mut loaded = Loaded {
        generation,
        ids: Vec::with_capacity(count),
        flat: match seed {
            Some(ix) => Flat::with_index(ix, count),
            None => Flat::with_capacity(meta.ann_metric(), d, count),
        },
        metadata: OnceLock::new(),
    };
    let mut v = Vec::with_capacity(d);
    store::each_vector(c, meta, |pk, id, blob| {
        if blob.len() != d * 4 {
            return Err(PluginError::internal(format!(
                "collection {:?}: stored vector of record {id:?} has {} bytes, expected {}",
                meta.name,
                blob.len(),
                d * 4
            )));
        }
        decode_into(blob, &mut v);
        loaded.push(pk, id, &v);
        Ok(())
    })?;
    // Not `maintain`: rows appended to a seed index stay unlinked, for
    // `Indexer::attach` to link or to rebuild instead.
    loaded.flat.fit_quant();
    Ok(loaded)
}
