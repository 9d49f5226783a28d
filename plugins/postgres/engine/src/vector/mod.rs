//! The vector contract on PostgreSQL + pgvector: tier 2 of the scaling path.
//!
//! # Storage
//!
//! A catalog table `strata_collections(name, table_name, dimension, metric,
//! options)` in the backend's schema lists collections. Each collection is
//! one table in that schema:
//!
//! ```sql
//! id        text COLLATE "C" PRIMARY KEY,      -- byte order: stable scan cursors
//! embedding vector(dim) NOT NULL,
//! metadata  jsonb NOT NULL DEFAULT '{}',      -- GIN index (jsonb_ops)
//! text      text,
//! tsv       tsvector GENERATED ALWAYS AS (to_tsvector(<language>, coalesce(text, ''))) STORED  -- GIN
//! ```
//!
//! plus a pgvector HNSW index whose operator class matches the metric
//! (`vector_cosine_ops`, `vector_ip_ops`, `vector_l2_ops`), with `m` and
//! `ef_construction` from the collection options or the backend config.
//! The index is built by the first query (or `collection_info`) once the
//! collection holds `hnsw_threshold` rows (default 1,000), as the SQLite
//! tier does: pgvector builds a graph over existing rows many times faster
//! than it inserts rows into one, so a bulk load followed by queries pays
//! the fast path; from then on inserts maintain it. `hnsw_threshold = 0`
//! creates it with the collection. Below the threshold queries are exact.
//! pgvector indexes at most 2,000 dimensions; larger collections are
//! searched exactly. Every statement names the table with its schema, so
//! two backends on two schemas never see each other's collections.
//!
//! # Queries
//!
//! `ORDER BY embedding <op> $1 LIMIT k` uses the HNSW index. The backend's
//! connections start with `hnsw.ef_search` (config `hnsw_ef_search`) and
//! `hnsw.iterative_scan = strict_order`, so a filtered query keeps scanning
//! the graph until `k` rows pass the filter (results stay in exact distance
//! order). A query asking for another `ef_search` runs in a transaction with
//! `SET LOCAL hnsw.ef_search` (two round trips instead of one). If a filtered index scan still returns fewer
//! than `k` rows (pgvector stops after `hnsw.max_scan_tuples`), the query
//! is rerun exactly (ordering by the score, which no index provides), so a
//! filtered query never returns fewer than `k` matches when `k` exist.
//! Option `{"exact": true}` asks for the exact search directly.
//!
//! Scores are higher-is-better: `1 - cosine distance`, `-(<#>)` (the inner
//! product) and `-(L2 distance)`.
//!
//! # Hybrid
//!
//! One SQL statement: a dense CTE (index order, cut to `candidates`) and a
//! lexical CTE (`ts_rank_cd` over the generated `tsvector`, query terms
//! OR-ed, cut to `candidates`) are ranked with `row_number()`, fused by RRF in
//! a `FULL OUTER JOIN`, and joined back to the table for what `include` asks.
//!
//! # Filters
//!
//! Translated exactly to `jsonb` SQL by [`crate::filter_sql`]; values and
//! paths are bound parameters.
//!
//! # Files
//!
//! | file | responsibility |
//! |---|---|
//! | `catalog` | the catalog table, collection descriptions (cached per process), DDL: create and drop |
//! | `index` | the HNSW index: its state, building it when due, collection details |
//! | `write` | upserts and deletes |
//! | `query` | ranked and hybrid queries, fetch, count, scan |
//! | `codec` | pgvector's `vector` type for sqlx, argument binding |
//! | this file | the `VectorBackend` impl: each call to the file that serves it |
//!
//! Imports run one way: `mod.rs` → `write`, `query` → `index` →
//! `catalog`; `write` and `query` → `codec`.

mod catalog;
mod codec;
mod index;
mod query;
mod write;

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use strata_plugin::{
    PluginResult, Runs, VectorBackend,
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, HybridRequest, Match, QueryRequest,
        ScanPage, ScanRequest, VectorCall, VectorRecord, validate_collection_name,
    },
};

pub(crate) use self::catalog::Defaults;
use self::catalog::Shared;
use crate::{db::Db, error::map};

/// The vector store of one Postgres backend (the vector contract of [`crate::Engine`]).
pub struct PgVectors {
    shared: Shared,
}

impl PgVectors {
    pub(crate) fn new(db: Arc<Db>, defaults: Defaults) -> PgVectors {
        PgVectors {
            shared: Shared::new(db, defaults),
        }
    }
}

impl VectorBackend for PgVectors {
    async fn create_collection(&self, spec: CollectionSpec) -> PluginResult<()> {
        catalog::create(&self.shared, spec).await
    }

    async fn drop_collection(&self, name: String) -> PluginResult<bool> {
        catalog::drop(&self.shared, name).await
    }

    async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> {
        let shared = &self.shared;
        let schema = shared.schema().await?.to_string();
        let names: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT name FROM {schema}.strata_collections ORDER BY name"
        )))
        .fetch_all(&*shared.db)
        .await
        .map_err(map)?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            // A collection dropped meanwhile is simply not listed.
            if let Some(meta) = shared.read_meta(&n).await? {
                out.push(shared.info(&meta).await?);
            }
        }
        Ok(out)
    }

    async fn collection_info(&self, name: String) -> PluginResult<Option<CollectionInfo>> {
        let shared = &self.shared;
        validate_collection_name(&name)?;
        match shared.read_meta(&name).await? {
            None => Ok(None),
            Some(meta) => Ok(Some(shared.info(&meta).await?)),
        }
    }

    async fn upsert(&self, collection: String, records: Vec<VectorRecord>) -> PluginResult<u64> {
        let (shared, records) = (&self.shared, &records);
        shared
            .with_meta(&collection, |meta| async move {
                write::upsert(shared, &meta, records).await
            })
            .await
    }

    async fn query(&self, request: QueryRequest) -> PluginResult<Vec<Match>> {
        let shared = &self.shared;
        shared
            .with_meta(&request.collection, |meta| shared.query(meta, &request))
            .await
    }

    async fn hybrid_query(&self, request: HybridRequest) -> PluginResult<Vec<Match>> {
        let shared = &self.shared;
        shared
            .with_meta(&request.collection, |meta| shared.hybrid(meta, &request))
            .await
    }

    async fn fetch(
        &self,
        collection: String,
        ids: Vec<String>,
        flags: u32,
    ) -> PluginResult<Vec<Match>> {
        query::fetch(&self.shared, collection, ids, flags).await
    }

    async fn delete(&self, request: DeleteRequest) -> PluginResult<u64> {
        write::delete(&self.shared, request).await
    }

    async fn count(&self, collection: String, filter_json: String) -> PluginResult<u64> {
        query::count(&self.shared, collection, filter_json).await
    }

    async fn scan(&self, request: ScanRequest) -> PluginResult<ScanPage> {
        query::scan(&self.shared, request).await
    }

    /// Every call is async network I/O (an index build too: the server
    /// builds, this side awaits): polled in the plugin's runtime.
    fn runs(&self, _call: VectorCall<'_>) -> Runs {
        Runs::Async
    }
}
