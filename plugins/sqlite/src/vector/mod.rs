//! The vector contract on SQLite: tier 1 of the scaling path.
//!
//! The database is the source of truth; everything in memory is derived
//! from it and can be rebuilt. The search engine itself (SIMD kernels, the
//! exact scan with its int8 prefilter, the HNSW graph and its file) is the
//! `strata-ann` crate; this module keeps it in step with the tables.
//!
//! | file | responsibility |
//! |---|---|
//! | `catalog` | the `strata_collections` catalog, a collection's tables (DDL), generations |
//! | `store` | row reads and writes, the FTS5 lexical ranking |
//! | `cache` | the in-memory copy of each collection: loading, patching after writes, reloading when another process wrote |
//! | `columns` | a collection's metadata in memory for filters: the rows' texts and a column of values per filtered path |
//! | `build` | the HNSW index: background and inline builds, sidecar files, reconciliation |
//! | `search` | dense (exact or through the index) and hybrid ranking |
//! | this file | the `VectorBackend` impl: validation, transactions, where each call runs |
//!
//! Imports run one way: `mod.rs` → `search` → `cache` → `build`,
//! `columns`, `store` → `catalog`.
//!
//! # Exact search
//!
//! Each collection's vectors are cached in one contiguous `f32` array
//! (normalised for cosine) and scored with AVX2 + FMA kernels when the CPU
//! has them. Every write bumps the collection's `generation` (a random
//! token) in the same transaction; a query whose cached generation differs
//! — another process wrote — reloads. Writes through this plugin patch the
//! cache in place. The catalog row a query compares against is itself kept
//! in memory until anything commits (the wal-index header changes, see
//! `crate::commits`), so a query on an unchanged database runs no
//! statement at all.
//!
//! From 1,024 vectors on, the cache also holds an int8 copy: exact top-k
//! scans that (a quarter of the bytes), then rescores with `f32` only the
//! vectors a provable error bound cannot rule out. The answer is the `f32`
//! scan's, vector for vector and score for score (ties broken by pk on both
//! paths); the copy costs `d + 8` bytes per vector (+25 % at d = 384,
//! reported in the collection details as `exact_scan`).
//!
//! # Approximate search
//!
//! Past `hnsw_threshold` vectors a collection gets an HNSW index, built in
//! the background by default while exact search answers, and saved beside
//! the database (`build`). Its candidates are rescored exactly from the
//! cache, so scores never depend on the index.
//!
//! # Where calls run
//!
//! Loading a collection (100K × 384 is 150 MB read and decoded), an exact
//! scan and an inline index build (tens of seconds) all happen inside the
//! call that needs them, so every call that may do one runs on the
//! plugin's blocking pool; only a `fetch` of a few ids runs inline (see
//! `SqliteVectors::runs`). Background builds have threads of their own.

mod build;
mod cache;
mod catalog;
mod columns;
mod search;
mod store;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use strata_plugin::{
    ErrorKind, PluginError, PluginResult, Runs, VectorBackend,
    filter::Filter,
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, DeleteTarget, HybridRequest, Match,
        QueryRequest, ScanPage, ScanRequest, VectorCall, VectorRecord, validate_batch,
        validate_collection_name,
    },
};

use self::{cache::Cache, catalog::Meta, search::Vectors, store::Written};
use crate::{commits::CommitToken, error::map, sql::Shared};

/// A `fetch` of at most this many ids is a point read: it runs inline.
const INLINE_MAX_IDS: usize = 16;

/// A `query` for at most this many results may run inline (see
/// [`SqliteVectors::runs`]).
const INLINE_MAX_TOP_K: u32 = 256;

/// The vector store of one SQLite backend.
pub(crate) struct SqliteVectors {
    shared: Arc<Shared>,
    cache: Arc<Cache>,
    known: Mutex<Known>,
}

/// Catalog rows read while the database was at one commit (see
/// [`SqliteVectors::meta`]).
#[derive(Default)]
struct Known {
    at: Option<CommitToken>,
    metas: HashMap<String, Meta>,
}

impl SqliteVectors {
    pub(crate) fn new(shared: Arc<Shared>) -> SqliteVectors {
        SqliteVectors {
            cache: Arc::new(Cache::new(shared.clone())),
            shared,
            known: Mutex::default(),
        }
    }

    /// Saves every index with unsaved changes (at close).
    pub(crate) async fn flush(&self) {
        self.cache.flush().await;
    }

    /// Stops every background build (at close).
    pub(crate) fn cancel_builds(&self) {
        self.cache.cancel_builds();
    }

    /// Whether `request` may run inline when its collection is quick to
    /// search: no filter (selecting the matching rows is a statement of any
    /// size), not forced exact, a bounded `ef_search`, not many results.
    fn inline_query(&self, request: &QueryRequest) -> bool {
        let filter = request.filter_json.trim();
        request.top_k <= INLINE_MAX_TOP_K
            && matches!(filter, "" | "{}" | "null")
            && search::quick_options(
                &request.options_json,
                self.shared.config().hnsw_ef_search as usize,
            )
    }

    /// The catalog row of `name` as committed now (`not_found` without one).
    ///
    /// Read from memory while no transaction has committed since it was
    /// read from the table: the commit token (the wal-index header,
    /// [`Shared::commit_token`]) is compared instead of running a
    /// statement. The statement and its read locks (two `fcntl` system
    /// calls) cost an HNSW query at ef 16–64 a fifth to a quarter of its
    /// throughput (`benchmarks/vectors-sqlite.md`, session 16).
    /// A row read from the table is kept only when the token was the same
    /// before and after the read, so it is the row of that commit exactly.
    async fn meta(&self, name: &str) -> PluginResult<Meta> {
        validate_collection_name(name)?;
        self.shared
            .with_reader(|c| {
                let before = self.shared.commit_token(c);
                let known = || self.known.lock().unwrap_or_else(|p| p.into_inner());
                if before.is_some() {
                    let known = known();
                    if known.at == before
                        && let Some(meta) = known.metas.get(name)
                    {
                        return Ok(meta.clone());
                    }
                }
                let meta = catalog::require_meta(c, name)?;
                if before.is_some() && self.shared.commit_token(c) == before {
                    let mut known = known();
                    if known.at != before {
                        known.at = before;
                        known.metas.clear();
                    }
                    known.metas.insert(meta.name.clone(), meta.clone());
                }
                Ok(meta)
            })
            .await
    }

    /// Runs `write` in a `BEGIN IMMEDIATE` transaction on the writer, bumps
    /// the collection's generation, commits, and patches the cache (still
    /// holding the writer, so patches apply in commit order). A collection
    /// made before the metadata index existed gets it here
    /// ([`catalog::ensure_metadata_index`]).
    async fn write(
        &self,
        name: String,
        write: impl FnOnce(&rusqlite::Connection, &str) -> PluginResult<Written>,
    ) -> PluginResult<Written> {
        self.shared
            .with_writer(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )
                .map_err(map)?;
                let before = catalog::require_meta(&tx, &name)?.generation;
                catalog::ensure_metadata_index(&tx, &name)?;
                let written = write(&tx, &name)?;
                let after = catalog::bump_generation(&tx, &name)?;
                tx.commit().map_err(map)?;
                self.cache
                    .patch(&name, before, after, &written.removed, &written.added);
                Ok(written)
            })
            .await
    }
}

impl VectorBackend for SqliteVectors {
    /// Where each call runs:
    ///
    /// | call | runs | why |
    /// |---|---|---|
    /// | `fetch` of at most 16 ids | inline | a few lookups by the unique `id` index: a point read |
    /// | `query` without a filter, not forced exact, `top_k` ≤ 256, `ef_search` ≤ 512, on a collection whose cache is loaded with its index (or small: ≤ 2^20 values to scan) | inline | an HNSW search (~0.1–0.6 ms at ef 16–256) or a small scan; the catalog row comes from memory unless something committed since it was read (`SqliteVectors::meta`): a thread hop would cost a large share of it. Should the cache turn out stale or the index not attached when the call runs, it moves to the blocking pool ([`strata_plugin::runs::blocking`]) |
    /// | other `query`, `hybrid_query`, `collection_info` | blocking pool | the first one loads the whole collection into memory and may build its index (`hnsw_build = "inline"`), an exact scan reads every vector, a collection's first filtered query reads every row's metadata (later ones evaluate the filter over every row in memory), full-text ranking reads postings and scores every match |
    /// | `upsert`, `delete` | blocking pool | writes; patching the cache may insert into, reconcile or rebuild the index |
    /// | `create_collection`, `drop_collection` | blocking pool | schema writes; a drop waits for a load or build of the collection in flight and deletes its sidecar files |
    /// | `list_collections`, `count`, `scan`, `fetch` of more ids | blocking pool | they count or read rows by the thousand (a `count` is answered from memory when the cache is current and holds what its filter reads, but that is known only once the call runs) |
    fn runs(&self, call: VectorCall<'_>) -> Runs {
        match call {
            VectorCall::Fetch(_, ids) if ids.len() <= INLINE_MAX_IDS => Runs::Inline,
            VectorCall::Query(r) if self.inline_query(r) && self.cache.is_quick(&r.collection) => {
                Runs::Inline
            }
            _ => Runs::Blocking,
        }
    }

    async fn create_collection(&self, spec: CollectionSpec) -> PluginResult<()> {
        catalog::check_spec(&spec)?;
        self.shared
            .with_write_tx(move |c| catalog::create(c, &spec))
            .await
    }

    async fn drop_collection(&self, name: String) -> PluginResult<bool> {
        validate_collection_name(&name)?;
        let n = name.clone();
        let existed = self
            .shared
            .with_write_tx(move |c| catalog::drop(c, &n))
            .await?;
        self.cache.forget(&name).await;
        Ok(existed)
    }

    async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> {
        let threshold = self.shared.config().hnsw_threshold;
        self.shared
            .with_reader(move |c| catalog::list(c, threshold))
            .await
    }

    async fn collection_info(&self, name: String) -> PluginResult<Option<CollectionInfo>> {
        validate_collection_name(&name)?;
        let meta = self
            .shared
            .with_reader(move |c| catalog::read_meta(c, &name))
            .await?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        // Loading builds or loads the index, so the details are current.
        let loaded = self.cache.loaded(&meta).await?;
        let details = self.cache.details(&meta.name, &loaded);
        Ok(Some(CollectionInfo {
            count: loaded.flat.len() as u64,
            name: meta.name,
            dimension: meta.dimension,
            metric: meta.metric,
            details_json: details.to_string(),
        }))
    }

    async fn upsert(&self, collection: String, records: Vec<VectorRecord>) -> PluginResult<u64> {
        let meta = self.meta(&collection).await?;
        validate_batch(&records, meta.dimension)?;
        let written = self
            .write(collection, move |c, name| store::upsert(c, name, &records))
            .await?;
        Ok(written.added.len() as u64)
    }

    async fn query(&self, request: QueryRequest) -> PluginResult<Vec<Match>> {
        let meta = self.meta(&request.collection).await?;
        let load = Vectors::Load(&self.cache);
        if !strata_plugin::runs::is_inline() {
            return search::query(&self.shared, load, &meta, &request).await;
        }
        // Placed inline because the cache looked quick to search; it still
        // must be, now that the catalog was read.
        if let Some(ready) = self.cache.loaded_now(&meta) {
            return search::query(&self.shared, Vectors::Held(ready), &meta, &request).await;
        }
        let (shared, cache) = (self.shared.clone(), self.cache.clone());
        strata_plugin::runs::blocking(async move {
            search::query(&shared, Vectors::Load(&cache), &meta, &request).await
        })
        .await
    }

    async fn hybrid_query(&self, request: HybridRequest) -> PluginResult<Vec<Match>> {
        let meta = self.meta(&request.collection).await?;
        search::hybrid(&self.shared, &self.cache, &meta, &request).await
    }

    async fn fetch(
        &self,
        collection: String,
        ids: Vec<String>,
        include_flags: u32,
    ) -> PluginResult<Vec<Match>> {
        let meta = self.meta(&collection).await?;
        self.shared
            .with_reader(move |c| store::fetch(c, &meta, &ids, include_flags))
            .await
    }

    async fn delete(&self, request: DeleteRequest) -> PluginResult<u64> {
        let name = request.collection.clone();
        self.meta(&name).await?;
        let filter = match request.target()? {
            DeleteTarget::Ids(_) => None,
            DeleteTarget::Filter(f) => Some(f),
            DeleteTarget::All => Some(Filter::All),
            // A kind of delete added to plugin-api after this plugin was
            // written must never fall through to "delete everything".
            other => {
                return Err(PluginError::new(
                    ErrorKind::Unsupported,
                    format!("the sqlite backend cannot delete by {other:?}"),
                ));
            }
        };
        let written = self
            .write(name, move |c, name| {
                let doomed = match &filter {
                    None => store::Doomed::Ids(&request.ids),
                    Some(Filter::All) => store::Doomed::All,
                    Some(f) => store::Doomed::Filter(f),
                };
                store::delete(c, name, doomed)
            })
            .await?;
        Ok(written.removed.len() as u64)
    }

    async fn count(&self, collection: String, filter_json: String) -> PluginResult<u64> {
        let meta = self.meta(&collection).await?;
        let filter = Filter::parse_str(&filter_json)?;
        // Answered from memory when the cache is current (its rows are the
        // table's) and, for a filter, holds the metadata: no row is read.
        // Never loads the cache: a count alone does not warrant it.
        if let Some(loaded) = self.cache.current(&meta) {
            if filter.is_all() {
                return Ok(loaded.flat.len() as u64);
            }
            if let Some(pks) = loaded.matching(&filter) {
                return Ok(pks.len() as u64);
            }
        }
        self.shared
            .with_reader(move |c| store::count(c, &meta, &filter))
            .await
    }

    async fn scan(&self, request: ScanRequest) -> PluginResult<ScanPage> {
        let meta = self.meta(&request.collection).await?;
        let filter = Filter::parse_str(&request.filter_json)?;
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
        let flags = request.include;
        self.shared
            .with_reader(move |c| store::scan(c, &meta, &filter, after, limit, flags))
            .await
    }
}
