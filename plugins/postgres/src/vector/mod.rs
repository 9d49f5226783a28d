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

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use sqlx::{
    Arguments, AssertSqlSafe, Decode, Encode, Postgres, Row, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{
        PgArgumentBuffer, PgArguments, PgHasArrayType, PgPool, PgRow, PgTypeInfo, PgValueFormat,
        PgValueRef,
    },
};
use strata_plugin::{
    ErrorKind, PluginError, PluginResult, Runs, VectorBackend,
    filter::Filter,
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, DeleteTarget, HybridRequest, Match, Metric,
        QueryRequest, ScanPage, ScanRequest, VectorCall, VectorRecord, include, validate_batch,
        validate_collection_name, validate_vector,
    },
};

use crate::{
    error::map,
    filter_sql::{Arg, Args, translate},
};

/// The largest dimension pgvector's `vector` type stores.
const MAX_DIM: u32 = 16_000;
/// The largest dimension pgvector's HNSW index takes for `vector`.
const MAX_INDEXED_DIM: u32 = 2_000;
/// Records per `INSERT … SELECT unnest(…)` statement.
const UPSERT_CHUNK: usize = 500;

/// A pgvector `vector` value (binary: dim u16, unused u16, dim × f32, big-endian).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PgVector(pub(crate) Vec<f32>);

impl Type<Postgres> for PgVector {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("vector")
    }
}

impl PgHasArrayType for PgVector {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::array_of("vector")
    }
}

impl Encode<'_, Postgres> for PgVector {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let dim = u16::try_from(self.0.len())
            .map_err(|_| format!("a vector of {} dimensions is too long", self.0.len()))?;
        buf.reserve(4 + 4 * self.0.len());
        buf.extend_from_slice(&dim.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        for x in &self.0 {
            buf.extend_from_slice(&x.to_be_bytes());
        }
        Ok(IsNull::No)
    }
}

impl Decode<'_, Postgres> for PgVector {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let b = value.as_bytes()?;
                let dim = u16::from_be_bytes(b.get(..2).ok_or("short vector")?.try_into()?);
                let body = b.get(4..).ok_or("short vector")?;
                if body.len() != 4 * usize::from(dim) {
                    return Err("vector length does not match its dimension".into());
                }
                Ok(PgVector(
                    body.chunks_exact(4)
                        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ))
            }
            PgValueFormat::Text => {
                let s = value.as_str()?;
                let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
                if inner.is_empty() {
                    return Ok(PgVector(Vec::new()));
                }
                Ok(PgVector(
                    inner
                        .split(',')
                        .map(|x| x.trim().parse::<f32>())
                        .collect::<Result<_, _>>()?,
                ))
            }
        }
    }
}

/// Backend-wide defaults (from the plugin config).
#[derive(Clone, Debug)]
pub(crate) struct Defaults {
    /// Rows at which a collection's HNSW index is built (on the first query
    /// at or past it); 0 = with the collection, maintained on every insert.
    pub(crate) threshold: u32,
    /// `maintenance_work_mem` of an index build, in MiB.
    pub(crate) build_memory_mb: u32,
    pub(crate) m: u32,
    pub(crate) ef_construction: u32,
    pub(crate) ef_search: u32,
    pub(crate) language: String,
}

/// Per-collection options (`CollectionSpec::options_json`), stored resolved in the catalog.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct CollectionOptions {
    /// `hnsw` (default up to 2,000 dimensions) or `none` (exact search only).
    #[serde(default)]
    index: Option<String>,
    /// HNSW `m`.
    #[serde(default)]
    m: Option<u32>,
    /// HNSW `ef_construction`.
    #[serde(default)]
    ef_construction: Option<u32>,
    /// The text search configuration of the `tsvector` (`simple`, `english`, …).
    #[serde(default)]
    language: Option<String>,
}

/// Per-query options (`QueryRequest::options_json`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryOptions {
    /// `hnsw.ef_search` for this query (1..=1000).
    #[serde(default)]
    ef_search: Option<u32>,
    /// Skip the index: exact search.
    #[serde(default)]
    exact: bool,
}

fn query_options(text: &str) -> PluginResult<QueryOptions> {
    if text.trim().is_empty() {
        return Ok(QueryOptions::default());
    }
    let o: QueryOptions = serde_json::from_str(text).map_err(|e| {
        PluginError::invalid_input(format!(
            "query options {text}: {e} (the postgres backend takes ef_search and exact)"
        ))
    })?;
    if let Some(ef) = o.ef_search
        && !(1..=1000).contains(&ef)
    {
        return Err(PluginError::invalid_input(format!(
            "query option ef_search = {ef} is out of range (pgvector takes 1..=1000)"
        )));
    }
    Ok(o)
}

/// One collection, as the catalog describes it.
#[derive(Clone, Debug)]
struct Meta {
    name: String,
    /// `"schema"."table"`.
    table: String,
    /// The bare table name (for index names).
    table_name: String,
    dimension: u32,
    metric: Metric,
    hnsw: bool,
    m: u32,
    ef_construction: u32,
    language: String,
}

impl Meta {
    /// The pgvector operator class of the metric.
    fn opclass(&self) -> &'static str {
        match self.metric {
            Metric::Cosine => "vector_cosine_ops",
            Metric::Dot => "vector_ip_ops",
            Metric::Euclidean => "vector_l2_ops",
        }
    }

    /// `CREATE INDEX … USING hnsw` for this collection (the index lives in
    /// the table's schema).
    fn hnsw_ddl(&self) -> String {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding {}) WITH (m = {}, ef_construction = {})",
            ident(&self.hnsw_name()),
            self.table,
            self.opclass(),
            self.m,
            self.ef_construction
        )
    }

    fn hnsw_name(&self) -> String {
        format!("{}_hnsw", self.table_name)
    }

    /// The pgvector distance operator (smaller is closer).
    fn op(&self) -> &'static str {
        match self.metric {
            Metric::Cosine => "<=>",
            Metric::Dot => "<#>",
            Metric::Euclidean => "<->",
        }
    }

    /// The score (higher is better) of distance expression `d`.
    fn score(&self, d: &str) -> String {
        match self.metric {
            Metric::Cosine => format!("(1 - ({d}))"),
            Metric::Dot | Metric::Euclidean => format!("(-({d}))"),
        }
    }
}

/// `"name"` with embedded quotes doubled.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The table of collection `name`: `strata_vec_<name>`, shortened with a
/// hash past 57 bytes so that index names (`<table>_hnsw`) fit PostgreSQL's
/// 63-byte limit.
fn table_name(name: &str) -> String {
    let full = format!("strata_vec_{name}");
    if full.len() <= 57 {
        return full;
    }
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("strata_vec_{}_{hash:08x}", &name[..37])
}

fn valid_language(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn bind(args: &mut PgArguments, a: &Arg) -> PluginResult<()> {
    let r = match a {
        Arg::Text(s) => args.add(s.as_str()),
        Arg::Float(f) => args.add(*f),
        Arg::Int(i) => args.add(*i),
        Arg::Jsonb(j) => args.add(sqlx::types::Json(j)),
        Arg::TextArray(v) => args.add(v.as_slice()),
    };
    r.map_err(|e| PluginError::internal(format!("cannot bind a parameter: {e}")))
}

/// The arguments: an optional vector as `$1`, then `rest`.
fn arguments(vector: Option<&[f32]>, rest: &[Arg]) -> PluginResult<PgArguments> {
    let mut args = PgArguments::default();
    if let Some(v) = vector {
        args.add(PgVector(v.to_vec()))
            .map_err(|e| PluginError::internal(format!("cannot bind the vector: {e}")))?;
    }
    for a in rest {
        bind(&mut args, a)?;
    }
    Ok(args)
}

/// The select list for `include` flags (after `id` and the score).
fn columns(flags: u32, alias: &str) -> String {
    let mut s = String::new();
    if flags & include::VECTOR != 0 {
        s.push_str(&format!(", {alias}embedding"));
    }
    if flags & include::METADATA != 0 {
        s.push_str(&format!(", {alias}metadata::text AS metadata"));
    }
    if flags & include::TEXT != 0 {
        s.push_str(&format!(", {alias}text"));
    }
    s
}

fn to_match(row: &PgRow, flags: u32, scored: bool) -> PluginResult<Match> {
    let id: String = row.try_get("id").map_err(map)?;
    let score = if scored {
        let s: f64 = row.try_get("score").map_err(map)?;
        // pgvector's cosine distance to a zero vector is NaN; the contract's score is 0.
        if s.is_nan() { 0.0 } else { s }
    } else {
        0.0
    };
    Ok(Match {
        id,
        score,
        vector: if flags & include::VECTOR != 0 {
            let v: PgVector = row.try_get("embedding").map_err(map)?;
            Some(v.0)
        } else {
            None
        },
        metadata_json: if flags & include::METADATA != 0 {
            Some(row.try_get("metadata").map_err(map)?)
        } else {
            None
        },
        text: if flags & include::TEXT != 0 {
            row.try_get("text").map_err(map)?
        } else {
            None
        },
    })
}

fn parse_filter(text: &str) -> PluginResult<Filter> {
    Filter::parse_str(text)
}

/// The state of one backend's vector store (every handle shares it: the
/// plugin hands out one `Arc<PgVectors>`).
pub(crate) struct Shared {
    pool: PgPool,
    defaults: Defaults,
    /// The schema every collection lives in, quoted; resolved on first use
    /// together with the pgvector check and the catalog table.
    schema: tokio::sync::OnceCell<String>,
    metas: Mutex<HashMap<String, Arc<Meta>>>,
    /// What this process knows of each collection table's HNSW index.
    indexes: Mutex<HashMap<String, IndexState>>,
}

/// How long an index build waits for the lock on its table (see
/// `ensure_index`).
const INDEX_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A collection's HNSW index, as this process last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IndexState {
    /// It exists: queries use it, inserts maintain it.
    Built,
    /// The collection reached the threshold: the next query builds it.
    Due,
    /// Below the threshold: queries scan exactly.
    Below,
}

/// The vector store of one Postgres backend.
pub(crate) struct PgVectors {
    shared: Shared,
}

impl PgVectors {
    pub(crate) fn new(pool: PgPool, defaults: Defaults) -> PgVectors {
        PgVectors {
            shared: Shared {
                pool,
                defaults,
                schema: tokio::sync::OnceCell::new(),
                metas: Mutex::new(HashMap::new()),
                indexes: Mutex::new(HashMap::new()),
            },
        }
    }
}

impl Shared {
    /// The quoted schema; on first use checks pgvector (installing it into
    /// `public` when missing and allowed) and creates the catalog table.
    async fn schema(&self) -> PluginResult<&str> {
        self.schema
            .get_or_try_init(|| self.prepare())
            .await
            .map(String::as_str)
    }

    async fn prepare(&self) -> PluginResult<String> {
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&self.pool)
            .await
            .map_err(map)?;
        let schema = schema.ok_or_else(|| {
            PluginError::new(
                ErrorKind::InvalidConfig,
                "no schema on the search_path exists: set the backend's `schema` key",
            )
        })?;
        self.ensure_pgvector().await?;
        let q = ident(&schema);
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {q}.strata_collections (
                name text PRIMARY KEY,
                table_name text NOT NULL UNIQUE,
                dimension integer NOT NULL,
                metric text NOT NULL,
                options jsonb NOT NULL DEFAULT '{{}}',
                created_at timestamptz NOT NULL DEFAULT now()
            )"
        );
        // Two backends creating the catalog at once can race on the type's
        // unique index; the loser retries and finds the table.
        for attempt in 0..3 {
            match sqlx::raw_sql(AssertSqlSafe(ddl.clone()))
                .execute(&self.pool)
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 2 && is_creation_race(&e) => continue,
                Err(e) => return Err(map(e)),
            }
        }
        Ok(q)
    }

    async fn ensure_pgvector(&self) -> PluginResult<()> {
        const CHECK: &str = "SELECT n.nspname::text, n.nspname = ANY (current_schemas(false)) \
             FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'";
        let found: Option<(String, bool)> = sqlx::query_as(CHECK)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        let found = match found {
            Some(f) => f,
            None => {
                if let Err(e) = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
                    .execute(&self.pool)
                    .await
                {
                    let e = map(e);
                    if e.backend_code() != Some("23505") && e.backend_code() != Some("42710") {
                        return Err(PluginError::new(
                            ErrorKind::Unsupported,
                            format!(
                                "this PostgreSQL server has no pgvector extension in this database and strata could not install it \
                                 (CREATE EXTENSION vector: {}); install pgvector (0.7 or newer) and run CREATE EXTENSION vector as a superuser",
                                e.message()
                            ),
                        )
                        .with_backend_code(e.backend_code().unwrap_or_default()));
                    }
                }
                sqlx::query_as(CHECK)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map)?
            }
        };
        if !found.1 {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "pgvector is installed in schema {:?}, which is not on this backend's search_path (\"<schema>\", public)",
                    found.0
                ),
            ));
        }
        Ok(())
    }

    fn cached(&self, name: &str) -> Option<Arc<Meta>> {
        self.metas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn forget(&self, name: &str) {
        self.metas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Reads one collection from the catalog (bypassing the cache).
    async fn read_meta(&self, name: &str) -> PluginResult<Option<Arc<Meta>>> {
        let schema = self.schema().await?;
        let row: Option<(String, i32, String, sqlx::types::Json<CollectionOptions>)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT table_name, dimension, metric, options FROM {schema}.strata_collections WHERE name = $1"
            )))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        let Some((table_name, dimension, metric, opts)) = row else {
            self.forget(name);
            return Ok(None);
        };
        let metric = Metric::from_name(&metric).ok_or_else(|| {
            PluginError::internal(format!(
                "collection {name:?} has unknown metric {metric:?} in the catalog"
            ))
        })?;
        let d = &self.defaults;
        let meta = Arc::new(Meta {
            name: name.to_string(),
            table: format!("{schema}.{}", ident(&table_name)),
            table_name,
            dimension: dimension as u32,
            metric,
            hnsw: opts.index.as_deref() == Some("hnsw"),
            m: opts.m.unwrap_or(d.m),
            ef_construction: opts.ef_construction.unwrap_or(d.ef_construction),
            language: opts.0.language.unwrap_or_else(|| d.language.clone()),
        });
        self.metas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), meta.clone());
        Ok(Some(meta))
    }

    /// The collection (cached), or `NotFound`.
    async fn meta(&self, name: &str) -> PluginResult<Arc<Meta>> {
        validate_collection_name(name)?;
        if let Some(m) = self.cached(name) {
            return Ok(m);
        }
        self.read_meta(name)
            .await?
            .ok_or_else(|| PluginError::new(ErrorKind::NotFound, format!("no collection {name:?}")))
    }

    /// Runs `op` with the collection's metadata; when the statement fails
    /// because the cached metadata is stale (another process dropped or
    /// recreated the collection), refreshes it and runs `op` once more.
    async fn with_meta<T, F, Fut>(&self, name: &str, op: F) -> PluginResult<T>
    where
        F: Fn(Arc<Meta>) -> Fut,
        Fut: Future<Output = PluginResult<T>>,
    {
        let cached = self.cached(name).is_some();
        let meta = self.meta(name).await?;
        match op(meta).await {
            Err(e) if cached && is_stale(&e) => {
                self.forget(name);
                let meta = self.meta(name).await?;
                op(meta).await
            }
            other => other,
        }
    }

    fn index_state(&self, meta: &Meta) -> Option<IndexState> {
        self.indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&meta.table)
            .copied()
    }

    fn set_index_state(&self, meta: &Meta, state: IndexState) {
        self.indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(meta.table.clone(), state);
    }

    /// Looks at the server: does the index exist, else is the collection
    /// at the threshold? (On first use of a collection and after upserts.)
    async fn refresh_index_state(&self, meta: &Meta) -> PluginResult<IndexState> {
        let schema = self.schema().await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("{schema}.{}", ident(&meta.hnsw_name())))
            .fetch_one(&self.pool)
            .await
            .map_err(map)?;
        let state = if exists {
            IndexState::Built
        } else if self.count_rows(meta).await? >= u64::from(self.defaults.threshold) {
            IndexState::Due
        } else {
            IndexState::Below
        };
        self.set_index_state(meta, state);
        Ok(state)
    }

    /// Whether queries on the collection can use its HNSW index, building it
    /// first when the collection has reached the threshold. The build runs
    /// in one transaction under an advisory lock (a query that finds the
    /// lock taken searches exactly while the other connection builds), with
    /// `maintenance_work_mem` raised so the graph builds in memory; writes
    /// to the collection wait for it.
    ///
    /// The build waits at most [`INDEX_LOCK_WAIT`] for the table lock. An
    /// open transaction that wrote the collection holds it off, and that
    /// transaction may belong to the very task asking (on another pooled
    /// connection), a wait the server cannot see as a deadlock. The query
    /// then searches exactly and a later one builds the index.
    async fn ensure_index(&self, meta: &Meta) -> PluginResult<bool> {
        if !meta.hnsw {
            return Ok(false);
        }
        let state = match self.index_state(meta) {
            Some(s) => s,
            None => self.refresh_index_state(meta).await?,
        };
        match state {
            IndexState::Built => Ok(true),
            IndexState::Below => Ok(false),
            IndexState::Due => {
                let mut tx = self.pool.begin().await.map_err(map)?;
                let ours: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
                        .bind(&meta.table)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map)?;
                if !ours {
                    // Another connection is building it: search exactly
                    // meanwhile rather than queue behind the build.
                    return Ok(false);
                }
                let built = sqlx::raw_sql(AssertSqlSafe(format!(
                    "SET LOCAL lock_timeout = '{}ms'; SET LOCAL maintenance_work_mem = '{}MB'; {}",
                    INDEX_LOCK_WAIT.as_millis(),
                    self.defaults.build_memory_mb,
                    meta.hnsw_ddl()
                )))
                .execute(&mut *tx)
                .await;
                if let Err(sqlx::Error::Database(db)) = &built
                    && db.code().as_deref() == Some("55P03")
                {
                    // lock_not_available: the transaction rolls back on drop.
                    return Ok(false);
                }
                built.map_err(map)?;
                tx.commit().await.map_err(map)?;
                self.set_index_state(meta, IndexState::Built);
                Ok(true)
            }
        }
    }

    async fn count_rows(&self, meta: &Meta) -> PluginResult<u64> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            meta.table
        )))
        .fetch_one(&self.pool)
        .await
        .map_err(map)?;
        Ok(n as u64)
    }

    async fn info(&self, meta: &Meta) -> PluginResult<CollectionInfo> {
        // As on first query: an index that is due is built, so the details are current.
        let indexed = self.ensure_index(meta).await?;
        // Count and sizes in one round trip.
        let (count, table_bytes, index_bytes): (i64, i64, Option<i64>) =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT (SELECT count(*) FROM {}), pg_total_relation_size(to_regclass($1)), \
                 pg_relation_size(to_regclass($2))",
                meta.table
            )))
            .bind(&meta.table)
            .bind(format!(
                "{}.{}",
                self.schema().await?,
                ident(&format!("{}_hnsw", meta.table_name))
            ))
            .fetch_one(&self.pool)
            .await
            .map_err(map)?;
        let mut details = serde_json::json!({
            "storage": "postgres",
            "table": meta.table,
            "index": if indexed { "hnsw" } else { "exact" },
            "language": meta.language,
            "table_bytes": table_bytes,
        });
        if meta.hnsw {
            details["hnsw_threshold"] = self.defaults.threshold.into();
        }
        if indexed {
            details["m"] = meta.m.into();
            details["ef_construction"] = meta.ef_construction.into();
            details["ef_search"] = self.defaults.ef_search.into();
            details["index_bytes"] = index_bytes.unwrap_or(0).into();
        }
        Ok(CollectionInfo {
            name: meta.name.clone(),
            dimension: meta.dimension,
            metric: meta.metric,
            count: count as u64,
            details_json: details.to_string(),
        })
    }

    /// Runs a ranked query: as one statement, or when `ef_search` is given
    /// in a transaction begun with `BEGIN; SET LOCAL hnsw.ef_search = …` (one
    /// round trip) and then dropped: sqlx queues the `ROLLBACK` (the same as
    /// a commit for a read) and sends it ahead of the connection's next
    /// statement, so the override costs one round trip, not three.
    async fn ranked(
        &self,
        sql: String,
        args: PgArguments,
        ef_search: Option<u32>,
    ) -> PluginResult<Vec<PgRow>> {
        let q = sqlx::query_with(AssertSqlSafe(sql), args);
        match ef_search {
            None => q.fetch_all(&self.pool).await.map_err(map),
            Some(ef) => {
                let mut tx = self
                    .pool
                    .begin_with(AssertSqlSafe(format!(
                        "BEGIN; SET LOCAL hnsw.ef_search = {ef}"
                    )))
                    .await
                    .map_err(map)?;
                let rows = q.fetch_all(&mut *tx).await.map_err(map)?;
                drop(tx);
                Ok(rows)
            }
        }
    }

    async fn query(&self, meta: Arc<Meta>, request: &QueryRequest) -> PluginResult<Vec<Match>> {
        validate_vector(&request.vector, meta.dimension, "query")?;
        let filter = parse_filter(&request.filter_json)?;
        let options = query_options(&request.options_json)?;
        let k = request.top_k as usize;
        if k == 0 {
            return Ok(Vec::new());
        }
        let run = |exact: bool| {
            let mut args = Args::starting_after(1);
            let cond = translate(&filter, "metadata", &mut args);
            let limit = args.push(Arg::Int(k as i64));
            let meta = meta.clone();
            async move {
                let cond = cond?;
                let distance = format!("embedding {} $1", meta.op());
                // Ordering by the score (not the bare distance) is what no
                // index provides: PostgreSQL scans and sorts, exactly.
                let order = if exact {
                    "score DESC, id".to_string()
                } else {
                    distance.clone()
                };
                let sql = format!(
                    "SELECT id, {score}::float8 AS score{cols} FROM {t} WHERE {cond} ORDER BY {order} LIMIT {limit}",
                    score = meta.score(&distance),
                    cols = columns(request.include, ""),
                    t = meta.table,
                );
                let pg_args = arguments(Some(&request.vector), &args.values)?;
                self.ranked(sql, pg_args, options.ef_search.filter(|_| !exact))
                    .await
            }
        };
        let exact = options.exact || !self.ensure_index(&meta).await?;
        let mut rows = run(exact).await?;
        if !exact && !filter.is_all() && rows.len() < k {
            rows = run(true).await?;
        }
        let min = request.min_score;
        rows.iter()
            .map(|r| to_match(r, request.include, true))
            .filter(|m| match (m, min) {
                (Ok(m), Some(min)) => m.score >= min,
                _ => true,
            })
            .collect()
    }

    async fn hybrid(&self, meta: Arc<Meta>, request: &HybridRequest) -> PluginResult<Vec<Match>> {
        self.ensure_index(&meta).await?;
        validate_vector(&request.vector, meta.dimension, "hybrid query")?;
        let filter = parse_filter(&request.filter_json)?;
        let k = request.top_k as usize;
        if k == 0 {
            return Ok(Vec::new());
        }
        let candidates = request.candidates_or_default();
        let mut args = Args::starting_after(1);
        let text = args.push(Arg::Text(request.text.to_string()));
        let cand = args.push(Arg::Int(candidates as i64));
        let top = args.push(Arg::Int(k as i64));
        let rrf_k = args.push(Arg::Float(f64::from(request.rrf_k)));
        let wd = args.push(Arg::Float(request.dense_weight));
        let wl = args.push(Arg::Float(request.lexical_weight));
        // The filter's parameters are bound once and referenced by both CTEs.
        let cond = translate(&filter, "metadata", &mut args)?;
        let op = meta.op();
        let sql = format!(
            "WITH q AS (
                SELECT replace(plainto_tsquery('{lang}'::regconfig, {text}::text)::text, ' & ', ' | ')::tsquery AS tq
            ), dense AS (
                SELECT id, row_number() OVER (ORDER BY d, id) AS r FROM (
                    SELECT id, embedding {op} $1 AS d FROM {t}
                    WHERE {cond} ORDER BY embedding {op} $1 LIMIT {cand}
                ) s
            ), lex AS (
                SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM (
                    SELECT c.id, ts_rank_cd(c.tsv, q.tq) AS rank FROM {t} AS c, q
                    WHERE c.tsv @@ q.tq AND {cond} ORDER BY rank DESC, c.id LIMIT {cand}
                ) s
            ), fused AS (
                SELECT coalesce(d.id, l.id) AS id,
                       coalesce({wd}::float8 / ({rrf_k}::float8 + d.r), 0)
                     + coalesce({wl}::float8 / ({rrf_k}::float8 + l.r), 0) AS score
                FROM dense AS d FULL OUTER JOIN lex AS l ON d.id = l.id
                ORDER BY score DESC, id LIMIT {top}
            )
            SELECT f.id, f.score{cols} FROM fused AS f JOIN {t} AS c ON c.id = f.id
            ORDER BY f.score DESC, f.id",
            lang = meta.language,
            t = meta.table,
            cols = columns(request.include, "c."),
        );
        let rows = self
            .ranked(sql, arguments(Some(&request.vector), &args.values)?, None)
            .await?;
        rows.iter()
            .map(|r| to_match(r, request.include, true))
            .collect()
    }
}

/// A concurrent `CREATE … IF NOT EXISTS` lost a race (unique violation on a catalog).
fn is_creation_race(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("23505" | "42P07")))
}

/// Errors that a stale cached collection description can cause: the table
/// is gone (42P01) or holds another dimension (22000, "different vector dimensions").
fn is_stale(e: &PluginError) -> bool {
    matches!(e.backend_code(), Some("42P01" | "22000"))
}

impl VectorBackend for PgVectors {
    async fn create_collection(&self, spec: CollectionSpec) -> PluginResult<()> {
        let shared = &self.shared;
        let name = spec.name.to_string();
        validate_collection_name(&name)?;
        if spec.dimension == 0 || spec.dimension > MAX_DIM {
            return Err(PluginError::invalid_input(format!(
                "dimension {} is out of range (pgvector stores 1..={MAX_DIM})",
                spec.dimension
            )));
        }
        let mut opts: CollectionOptions = if spec.options_json.trim().is_empty() {
            serde_json::from_str("{}").expect("empty options parse")
        } else {
            serde_json::from_str(&spec.options_json).map_err(|e| {
                PluginError::invalid_input(format!(
                    "collection options {}: {e} (the postgres backend takes index (\"hnsw\" or \"none\"), m, ef_construction, language)",
                    spec.options_json.as_str()
                ))
            })?
        };
        let d = &shared.defaults;
        let index = match opts.index.as_deref() {
            None if spec.dimension > MAX_INDEXED_DIM => "none",
            None | Some("hnsw") => "hnsw",
            Some("none") => "none",
            Some(other) => {
                return Err(PluginError::invalid_input(format!(
                    "collection option index = {other:?}: use \"hnsw\" or \"none\""
                )));
            }
        };
        if index == "hnsw" && spec.dimension > MAX_INDEXED_DIM {
            return Err(PluginError::invalid_input(format!(
                "pgvector's HNSW index takes at most {MAX_INDEXED_DIM} dimensions (asked: {}); create the collection with {{\"index\": \"none\"}} for exact search",
                spec.dimension
            )));
        }
        let m = opts.m.unwrap_or(d.m);
        let efc = opts.ef_construction.unwrap_or(d.ef_construction);
        if !(2..=100).contains(&m) || !(4..=1000).contains(&efc) || efc < 2 * m {
            return Err(PluginError::invalid_input(format!(
                "HNSW parameters m = {m}, ef_construction = {efc}: pgvector takes m in 2..=100 and ef_construction in 4..=1000, at least 2 × m"
            )));
        }
        let language = opts.language.clone().unwrap_or_else(|| d.language.clone());
        if !valid_language(&language) {
            return Err(PluginError::invalid_input(format!(
                "collection option language = {language:?} is not a text search configuration name"
            )));
        }
        opts = CollectionOptions {
            index: Some(index.into()),
            m: Some(m),
            ef_construction: Some(efc),
            language: Some(language.clone()),
        };
        let schema = shared.schema().await?.to_string();
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = $1)")
                .bind(&language)
                .fetch_one(&shared.pool)
                .await
                .map_err(map)?;
        if !known {
            return Err(PluginError::invalid_input(format!(
                "collection option language = {language:?}: the server has no such text search configuration (see \\dF)"
            )));
        }
        let table_name = table_name(&name);
        let table = format!("{schema}.{}", ident(&table_name));
        let mut tx = shared.pool.begin().await.map_err(map)?;
        // Concurrent creators of one name queue on the catalog's primary key.
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {schema}.strata_collections (name, table_name, dimension, metric, options)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING"
        )))
        .bind(&name)
        .bind(&table_name)
        .bind(spec.dimension as i32)
        .bind(spec.metric.name())
        .bind(sqlx::types::Json(&opts))
        .execute(&mut *tx)
        .await
        .map_err(map)?
        .rows_affected();
        if inserted == 0 {
            drop(tx);
            let existing = shared.read_meta(&name).await?.ok_or_else(|| {
                PluginError::new(
                    ErrorKind::Busy,
                    format!("collection {name:?} was dropped while being created; retry"),
                )
            })?;
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
        let idx = |suffix: &str| ident(&format!("{table_name}_{suffix}"));
        let mut ddl = format!(
            "CREATE TABLE {table} (
                id text COLLATE \"C\" PRIMARY KEY,
                embedding vector({dim}) NOT NULL,
                metadata jsonb NOT NULL DEFAULT '{{}}',
                text text,
                tsv tsvector GENERATED ALWAYS AS (to_tsvector('{language}'::regconfig, coalesce(text, ''))) STORED
            );
            CREATE INDEX {meta_idx} ON {table} USING gin (metadata);
            CREATE INDEX {tsv_idx} ON {table} USING gin (tsv);",
            dim = spec.dimension,
            meta_idx = idx("meta"),
            tsv_idx = idx("tsv"),
        );
        if index == "hnsw" && d.threshold == 0 {
            let opclass = match spec.metric {
                Metric::Cosine => "vector_cosine_ops",
                Metric::Dot => "vector_ip_ops",
                Metric::Euclidean => "vector_l2_ops",
            };
            ddl.push_str(&format!(
                "CREATE INDEX {hnsw} ON {table} USING hnsw (embedding {opclass}) WITH (m = {m}, ef_construction = {efc});",
                hnsw = idx("hnsw"),
            ));
        }
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        tx.commit().await.map_err(map)?;
        shared.forget(&name);
        Ok(())
    }

    async fn drop_collection(&self, name: String) -> PluginResult<bool> {
        let shared = &self.shared;
        validate_collection_name(&name)?;
        let schema = shared.schema().await?.to_string();
        let mut tx = shared.pool.begin().await.map_err(map)?;
        let table: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "DELETE FROM {schema}.strata_collections WHERE name = $1 RETURNING table_name"
        )))
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?;
        if let Some(t) = &table {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS {schema}.{}",
                ident(t)
            )))
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        shared.forget(&name);
        if let Some(t) = &table {
            let qualified = format!("{schema}.{}", ident(t));
            shared
                .indexes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&qualified);
        }
        Ok(table.is_some())
    }

    async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> {
        let shared = &self.shared;
        let schema = shared.schema().await?.to_string();
        let names: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT name FROM {schema}.strata_collections ORDER BY name"
        )))
        .fetch_all(&shared.pool)
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
                upsert(shared, &meta, records).await
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
        let (shared, ids) = (&self.shared, &ids);
        shared
            .with_meta(&collection, |meta| async move {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT id{} FROM {} WHERE id = ANY($1::text[])",
                    columns(flags, ""),
                    meta.table
                )))
                .bind(ids)
                .fetch_all(&shared.pool)
                .await
                .map_err(map)?;
                let mut found: HashMap<String, Match> = HashMap::with_capacity(rows.len());
                for r in &rows {
                    let m = to_match(r, flags, false)?;
                    found.insert(m.id.clone(), m);
                }
                Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
            })
            .await
    }

    async fn delete(&self, request: DeleteRequest) -> PluginResult<u64> {
        let shared = &self.shared;
        let (by_ids, filter) = match request.target()? {
            DeleteTarget::Ids(_) => (true, Filter::All),
            DeleteTarget::Filter(f) => (false, f),
            DeleteTarget::All => (false, Filter::All),
            // A kind of delete added to plugin-api after this plugin was
            // written must never fall through to "delete everything".
            other => {
                return Err(PluginError::new(
                    ErrorKind::Unsupported,
                    format!("the postgres backend cannot delete by {other:?}"),
                ));
            }
        };
        let (ids, filter) = (&request.ids, &filter);
        shared
            .with_meta(&request.collection, |meta| async move {
                let mut args = Args::default();
                let cond = if by_ids {
                    let p = args.push(Arg::TextArray(ids.clone()));
                    format!("id = ANY({p}::text[])")
                } else {
                    translate(filter, "metadata", &mut args)?
                };
                let r = sqlx::query_with(
                    AssertSqlSafe(format!("DELETE FROM {} WHERE {cond}", meta.table)),
                    arguments(None, &args.values)?,
                )
                .execute(&shared.pool)
                .await
                .map_err(map)?;
                Ok(r.rows_affected())
            })
            .await
    }

    async fn count(&self, collection: String, filter_json: String) -> PluginResult<u64> {
        let shared = &self.shared;
        let filter = &parse_filter(&filter_json)?;
        shared
            .with_meta(&collection, |meta| async move {
                let mut args = Args::default();
                let cond = translate(filter, "metadata", &mut args)?;
                let n: i64 = sqlx::query_scalar_with(
                    AssertSqlSafe(format!("SELECT count(*) FROM {} WHERE {cond}", meta.table)),
                    arguments(None, &args.values)?,
                )
                .fetch_one(&shared.pool)
                .await
                .map_err(map)?;
                Ok(n as u64)
            })
            .await
    }

    async fn scan(&self, request: ScanRequest) -> PluginResult<ScanPage> {
        let shared = &self.shared;
        let filter = &parse_filter(&request.filter_json)?;
        // The cursor is the last id of the previous page (ids sort by bytes).
        let after = request.cursor.as_deref();
        let limit = request.limit.clamp(1, 10_000);
        let include = request.include;
        shared
            .with_meta(&request.collection, |meta| async move {
                let mut args = Args::default();
                let after_cond = match after {
                    Some(a) => format!("id > {}::text AND ", args.push(Arg::Text(a.to_string()))),
                    None => String::new(),
                };
                let cond = translate(filter, "metadata", &mut args)?;
                let lim = args.push(Arg::Int(i64::from(limit)));
                let rows = sqlx::query_with(
                    AssertSqlSafe(format!(
                        "SELECT id{} FROM {} WHERE {after_cond}{cond} ORDER BY id LIMIT {lim}",
                        columns(include, ""),
                        meta.table
                    )),
                    arguments(None, &args.values)?,
                )
                .fetch_all(&shared.pool)
                .await
                .map_err(map)?;
                let records = rows
                    .iter()
                    .map(|r| to_match(r, include, false))
                    .collect::<PluginResult<Vec<_>>>()?;
                let next_cursor = match records.last() {
                    Some(last) if records.len() == limit as usize => Some(last.id.clone()),
                    _ => None,
                };
                Ok(ScanPage {
                    records,
                    next_cursor,
                })
            })
            .await
    }

    /// Every call is async network I/O (an index build too: the server
    /// builds, this side awaits): polled in the plugin's runtime.
    fn runs(&self, _call: VectorCall<'_>) -> Runs {
        Runs::Async
    }
}

async fn upsert(shared: &Shared, meta: &Meta, records: &[VectorRecord]) -> PluginResult<u64> {
    validate_batch(records, meta.dimension)?;
    if records.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "INSERT INTO {} (id, embedding, metadata, text)
         SELECT u.id, u.embedding, u.metadata::jsonb, u.text
         FROM unnest($1::text[], $2::vector[], $3::text[], $4::text[]) AS u(id, embedding, metadata, text)
         ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata, text = EXCLUDED.text",
        meta.table
    );
    // One transaction: an upsert is all or nothing.
    let mut tx = shared.pool.begin().await.map_err(map)?;
    for chunk in records.chunks(UPSERT_CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
        let vectors: Vec<PgVector> = chunk.iter().map(|r| PgVector(r.vector.to_vec())).collect();
        let metadata: Vec<&str> = chunk
            .iter()
            .map(|r| {
                if r.metadata_json.is_empty() {
                    "{}"
                } else {
                    r.metadata_json.as_str()
                }
            })
            .collect();
        let texts: Vec<Option<&str>> = chunk.iter().map(|r| r.text.as_deref()).collect();
        sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(&ids)
            .bind(&vectors)
            .bind(&metadata)
            .bind(&texts)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    tx.commit().await.map_err(map)?;
    if meta.hnsw && shared.index_state(meta) != Some(IndexState::Built) {
        shared.refresh_index_state(meta).await?;
    }
    Ok(records.len() as u64)
}
