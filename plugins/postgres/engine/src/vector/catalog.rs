//! The catalog and DDL: which collections exist (`strata_collections` in
//! the backend's schema), their tables and options, the per-process cache
//! of their descriptions, and creating and dropping them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use strata_plugin::{
    ErrorKind, PluginError, PluginResult,
    vector::{CollectionSpec, Metric, validate_collection_name},
};

use crate::{
    db::{Db, as_backend},
    error::map,
};

/// The largest dimension pgvector's `vector` type stores.
pub(super) const MAX_DIM: u32 = 16_000;
/// The largest dimension pgvector's HNSW index takes for `vector`.
pub(super) const MAX_INDEXED_DIM: u32 = 2_000;

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

/// Refuses a vector pgvector cannot score (it computes in `f32`): see
/// the kit's [`check_f32_scorable`](strata_plugin::vector::check_f32_scorable).
pub(super) fn check_scorable(vector: &[f32], metric: Metric, what: &str) -> PluginResult<()> {
    strata_plugin::vector::check_f32_scorable(vector, metric, what, "pgvector")
}

/// One collection, as the catalog describes it.
#[derive(Clone, Debug)]
pub(super) struct Meta {
    pub(super) name: String,
    /// `"schema"."table"`.
    pub(super) table: String,
    /// The bare table name (for index names).
    pub(super) table_name: String,
    pub(super) dimension: u32,
    pub(super) metric: Metric,
    pub(super) hnsw: bool,
    pub(super) m: u32,
    pub(super) ef_construction: u32,
    pub(super) language: String,
}

impl Meta {
    /// The pgvector operator class of the metric.
    pub(super) fn opclass(&self) -> &'static str {
        match self.metric {
            Metric::Cosine => "vector_cosine_ops",
            Metric::Dot => "vector_ip_ops",
            Metric::Euclidean => "vector_l2_ops",
        }
    }

    /// `CREATE INDEX … USING hnsw` for this collection (the index lives in
    /// the table's schema).
    pub(super) fn hnsw_ddl(&self) -> String {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding {}) WITH (m = {}, ef_construction = {})",
            ident(&self.hnsw_name()),
            self.table,
            self.opclass(),
            self.m,
            self.ef_construction
        )
    }

    pub(super) fn hnsw_name(&self) -> String {
        format!("{}_hnsw", self.table_name)
    }

    /// The pgvector distance operator (smaller is closer).
    pub(super) fn op(&self) -> &'static str {
        match self.metric {
            Metric::Cosine => "<=>",
            Metric::Dot => "<#>",
            Metric::Euclidean => "<->",
        }
    }

    /// The score (higher is better) of distance expression `d`.
    pub(super) fn score(&self, d: &str) -> String {
        match self.metric {
            Metric::Cosine => format!("(1 - ({d}))"),
            Metric::Dot | Metric::Euclidean => format!("(-({d}))"),
        }
    }
}

/// `"name"` with embedded quotes doubled.
pub(super) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The table of collection `name`: `strata_vec_<name>`, shortened with a
/// hash past 57 bytes so that index names (`<table>_hnsw`) fit PostgreSQL's
/// 63-byte limit.
pub(super) fn table_name(name: &str) -> String {
    let full = format!("strata_vec_{name}");
    if full.len() <= 57 {
        return full;
    }
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("strata_vec_{}_{hash:08x}", &name[..37])
}

pub(super) fn valid_language(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The state of one backend's vector store (every handle shares it: the
/// plugin hands out one `Arc<PgVectors>`).
pub(super) struct Shared {
    pub(super) db: Arc<Db>,
    pub(super) defaults: Defaults,
    /// The schema every collection lives in, quoted; resolved on first use
    /// together with the pgvector check and the catalog table.
    pub(super) schema: tokio::sync::OnceCell<String>,
    pub(super) metas: Mutex<HashMap<String, Arc<Meta>>>,
    /// What this process knows of each collection table's HNSW index.
    pub(super) indexes: Mutex<HashMap<String, IndexState>>,
}

/// A collection's HNSW index, as this process last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IndexState {
    /// It exists: queries use it, inserts maintain it.
    Built,
    /// The collection reached the threshold: the next query builds it.
    Due,
    /// Below the threshold: queries scan exactly.
    Below,
}

impl Shared {
    /// A store on `db` with `defaults`; nothing is read until first use.
    pub(super) fn new(db: Arc<Db>, defaults: Defaults) -> Shared {
        Shared {
            db,
            defaults,
            schema: tokio::sync::OnceCell::new(),
            metas: Mutex::new(HashMap::new()),
            indexes: Mutex::new(HashMap::new()),
        }
    }

    /// The quoted schema; on first use checks pgvector (installing it into
    /// `public` when missing and allowed) and creates the catalog table.
    pub(super) async fn schema(&self) -> PluginResult<&str> {
        // As the backend itself: it may create the catalog.
        self.schema
            .get_or_try_init(|| as_backend(self.prepare()))
            .await
            .map(String::as_str)
    }

    pub(super) async fn prepare(&self) -> PluginResult<String> {
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&*self.db)
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
                .execute(&*self.db)
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 2 && is_creation_race(&e) => continue,
                Err(e) => return Err(map(e)),
            }
        }
        Ok(q)
    }

    pub(super) async fn ensure_pgvector(&self) -> PluginResult<()> {
        const CHECK: &str = "SELECT n.nspname::text, n.nspname = ANY (current_schemas(false)) \
             FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'";
        let found: Option<(String, bool)> = sqlx::query_as(CHECK)
            .fetch_optional(&*self.db)
            .await
            .map_err(map)?;
        let found = match found {
            Some(f) => f,
            None => {
                if let Err(e) = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
                    .execute(&*self.db)
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
                    .fetch_one(&*self.db)
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

    pub(super) fn cached(&self, name: &str) -> Option<Arc<Meta>> {
        self.metas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub(super) fn forget(&self, name: &str) {
        self.metas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Reads one collection from the catalog (bypassing the cache).
    /// As the backend itself (a user needs no access to the catalog).
    pub(super) async fn read_meta(&self, name: &str) -> PluginResult<Option<Arc<Meta>>> {
        as_backend(self.read_meta_now(name)).await
    }

    async fn read_meta_now(&self, name: &str) -> PluginResult<Option<Arc<Meta>>> {
        let schema = self.schema().await?;
        let row: Option<(String, i32, String, sqlx::types::Json<CollectionOptions>)> =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT table_name, dimension, metric, options FROM {schema}.strata_collections WHERE name = $1"
            )))
            .bind(name)
            .fetch_optional(&*self.db)
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
    pub(super) async fn meta(&self, name: &str) -> PluginResult<Arc<Meta>> {
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
    pub(super) async fn with_meta<T, F, Fut>(&self, name: &str, op: F) -> PluginResult<T>
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
}

/// A concurrent `CREATE … IF NOT EXISTS` lost a race (unique violation on a catalog).
pub(super) fn is_creation_race(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("23505" | "42P07")))
}

/// Errors that a stale cached collection description can cause: the table
/// is gone (42P01) or holds another dimension (22000, "different vector dimensions").
pub(super) fn is_stale(e: &PluginError) -> bool {
    matches!(e.backend_code(), Some("42P01" | "22000"))
}

/// Creates collection `spec`: its catalog row, table, GIN indexes and (with
/// `hnsw_threshold = 0`) its HNSW index, in one transaction. The same name,
/// dimension and metric again is a no-op; another shape `already_exists`.
pub(super) async fn create(shared: &Shared, spec: CollectionSpec) -> PluginResult<()> {
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
            .fetch_one(&*shared.db)
            .await
            .map_err(map)?;
    if !known {
        return Err(PluginError::invalid_input(format!(
            "collection option language = {language:?}: the server has no such text search configuration (see \\dF)"
        )));
    }
    let table_name = table_name(&name);
    let table = format!("{schema}.{}", ident(&table_name));
    let mut tx = shared.db.begin_with(None, &Vec::new()).await.map_err(map)?;
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
    .execute(shared.db.on(&mut tx))
    .await
    .map_err(map)?
    .rows_affected();
    if inserted == 0 {
        std::mem::drop(tx);
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

/// Drops collection `name`; whether it existed.
pub(super) async fn drop(shared: &Shared, name: String) -> PluginResult<bool> {
    validate_collection_name(&name)?;
    let schema = shared.schema().await?.to_string();
    let mut tx = shared.db.begin_with(None, &Vec::new()).await.map_err(map)?;
    let table: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "DELETE FROM {schema}.strata_collections WHERE name = $1 RETURNING table_name"
    )))
    .bind(name.as_str())
    .fetch_optional(shared.db.on(&mut tx))
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
