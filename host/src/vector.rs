//! The VectorStore front end: collections of embeddings with metadata and text.
//!
//! Scores are higher-is-better on every backend (cosine similarity, dot
//! product, negative euclidean distance). Filters use the shared JSON
//! dialect of [`strata_plugin_api::filter`]; they are parsed here first, so a
//! malformed filter fails before anything is sent, with the clause named.

use std::sync::Arc;

use abi_stable::std_types::{ROption, RString, RVec};
use serde_json::Value as Json;
use strata_plugin_api::{
    ErrorKind, Extensions, PluginError, capabilities,
    ext::keys,
    filter::Filter,
    vector::{
        CollectionInfo, CollectionSpec, CountRequest, DeleteRequest, FetchRequest, HybridRequest,
        Match, QueryRequest, ScanRequest, UpsertRequest, VectorRecord, VectorStoreBox, include,
    },
};

pub use strata_plugin_api::vector::Metric;

use crate::{
    boundary::call,
    error::{Error, Result},
};

/// One record to store.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Its id.
    pub id: String,
    /// The embedding.
    pub vector: Vec<f32>,
    /// A JSON object (`Json::Null` = `{}`).
    pub metadata: Json,
    /// Optional text for hybrid search.
    pub text: Option<String>,
}

impl Record {
    /// A record without metadata or text.
    pub fn new(id: impl Into<String>, vector: Vec<f32>) -> Record {
        Record {
            id: id.into(),
            vector,
            metadata: Json::Null,
            text: None,
        }
    }

    /// With metadata.
    pub fn metadata(mut self, metadata: Json) -> Record {
        self.metadata = metadata;
        self
    }

    /// With text.
    pub fn text(mut self, text: impl Into<String>) -> Record {
        self.text = Some(text.into());
        self
    }
}

/// One result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The record id.
    pub id: String,
    /// Higher is better.
    pub score: f64,
    /// The vector, when included.
    pub vector: Option<Vec<f32>>,
    /// The metadata, when included.
    pub metadata: Option<Json>,
    /// The text, when included and present.
    pub text: Option<String>,
}

impl Hit {
    fn from_match(m: Match) -> Hit {
        Hit {
            id: m.id.into_string(),
            score: m.score,
            vector: m.vector.into_option().map(|v| v.into_vec()),
            metadata: m
                .metadata_json
                .into_option()
                .map(|t| serde_json::from_str(&t).unwrap_or(Json::String(t.into_string()))),
            text: m.text.into_option().map(RString::into_string),
        }
    }
}

/// What a result carries besides id and score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Include {
    /// The vector.
    pub vector: bool,
    /// The metadata.
    pub metadata: bool,
    /// The text.
    pub text: bool,
}

impl Include {
    /// Everything.
    pub const ALL: Include = Include {
        vector: true,
        metadata: true,
        text: true,
    };

    fn bits(self) -> u32 {
        (if self.vector { include::VECTOR } else { 0 })
            | (if self.metadata { include::METADATA } else { 0 })
            | (if self.text { include::TEXT } else { 0 })
    }
}

/// A nearest-neighbour query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// The query vector.
    pub vector: Vec<f32>,
    /// Results wanted (default 10).
    pub top_k: u32,
    /// A filter document, if any.
    pub filter: Option<Json>,
    /// What to include.
    pub include: Include,
    /// Drop results below this score.
    pub min_score: Option<f64>,
    /// Backend-specific options (e.g. `{"ef_search": 128}`).
    pub options: Option<Json>,
}

impl Query {
    /// A top-10 query, metadata included.
    pub fn new(vector: Vec<f32>) -> Query {
        Query {
            vector,
            top_k: 10,
            filter: None,
            include: Include {
                metadata: true,
                ..Include::default()
            },
            min_score: None,
            options: None,
        }
    }
    /// Sets `top_k`.
    pub fn top_k(mut self, k: u32) -> Query {
        self.top_k = k;
        self
    }
    /// Sets the filter.
    pub fn filter(mut self, filter: Json) -> Query {
        self.filter = Some(filter);
        self
    }
    /// Sets what to include.
    pub fn include(mut self, include: Include) -> Query {
        self.include = include;
        self
    }
    /// Sets the minimum score.
    pub fn min_score(mut self, s: f64) -> Query {
        self.min_score = Some(s);
        self
    }
    /// Sets backend options.
    pub fn options(mut self, options: Json) -> Query {
        self.options = Some(options);
        self
    }
}

/// A hybrid (dense + full-text) query fused by reciprocal rank fusion.
#[derive(Clone, Debug, PartialEq)]
pub struct Hybrid {
    /// The query vector.
    pub vector: Vec<f32>,
    /// The query text.
    pub text: String,
    /// Results wanted (default 10).
    pub top_k: u32,
    /// A filter document, if any.
    pub filter: Option<Json>,
    /// What to include.
    pub include: Include,
    /// The RRF constant (default 60).
    pub rrf_k: u32,
    /// Weight of the dense ranking (default 1).
    pub dense_weight: f64,
    /// Weight of the lexical ranking (default 1).
    pub lexical_weight: f64,
    /// Candidates per ranking before fusion (0 = backend default).
    pub candidates: u32,
}

impl Hybrid {
    /// Defaults: top 10, k = 60, equal weights, metadata included.
    pub fn new(vector: Vec<f32>, text: impl Into<String>) -> Hybrid {
        Hybrid {
            vector,
            text: text.into(),
            top_k: 10,
            filter: None,
            include: Include {
                metadata: true,
                ..Include::default()
            },
            rrf_k: 60,
            dense_weight: 1.0,
            lexical_weight: 1.0,
            candidates: 0,
        }
    }
    /// Sets `top_k`.
    pub fn top_k(mut self, k: u32) -> Hybrid {
        self.top_k = k;
        self
    }
    /// Sets the filter.
    pub fn filter(mut self, filter: Json) -> Hybrid {
        self.filter = Some(filter);
        self
    }
    /// Sets the weights of the dense and lexical rankings.
    pub fn weights(mut self, dense: f64, lexical: f64) -> Hybrid {
        self.dense_weight = dense;
        self.lexical_weight = lexical;
        self
    }
    /// Sets the candidates taken from each ranking before fusion (0: the
    /// backend's default, `max(4 · top_k, 50)`).
    pub fn candidates(mut self, n: u32) -> Hybrid {
        self.candidates = n;
        self
    }
    /// Sets the RRF constant.
    pub fn rrf_k(mut self, k: u32) -> Hybrid {
        self.rrf_k = k;
        self
    }
    /// Sets what to include.
    pub fn include(mut self, include: Include) -> Hybrid {
        self.include = include;
        self
    }
}

/// A collection's description and statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionStats {
    /// Name.
    pub name: String,
    /// Dimension.
    pub dimension: u32,
    /// Metric.
    pub metric: Metric,
    /// Records stored.
    pub count: u64,
    /// Backend details (index kind, sizes, …).
    pub details: Json,
}

impl CollectionStats {
    fn from_info(i: CollectionInfo) -> Result<CollectionStats> {
        Ok(CollectionStats {
            name: i.name.into_string(),
            dimension: i.dimension,
            metric: Metric::from_code(i.metric).map_err(crate::error::Error::Plugin)?,
            count: i.count,
            details: serde_json::from_str(&i.details_json).unwrap_or(Json::Null),
        })
    }
}

/// A page of a scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The records (score 0).
    pub records: Vec<Hit>,
    /// Pass to the next `scan`; `None` after the last page.
    pub next_cursor: Option<String>,
}

/// Validates and serialises a filter.
fn filter_text(filter: Option<&Json>) -> Result<RString> {
    match filter {
        None | Some(Json::Null) => Ok(RString::new()),
        Some(f) => {
            Filter::parse(f)?;
            Ok(f.to_string().into())
        }
    }
}

fn options_text(options: Option<&Json>) -> RString {
    options.map_or_else(RString::new, |o| o.to_string().into())
}

/// A vector store, shared cheaply between tasks.
#[derive(Clone)]
pub struct Vectors {
    store: Arc<VectorStoreBox>,
    backend: String,
    /// Whether the plugin claims `vector.as_user` ([`Vectors::as_user`]).
    as_user: bool,
    /// Sent with every data request: the user a handle of
    /// [`Vectors::as_user`] runs as (empty otherwise).
    ext: Extensions,
}

impl std::fmt::Debug for Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vectors")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Vectors {
    pub(crate) fn new(store: VectorStoreBox, backend: String, as_user: bool) -> Vectors {
        Vectors {
            store: Arc::new(store),
            backend,
            as_user,
            ext: Extensions::new(),
        }
    }

    /// A handle on the same store whose data requests (upsert, query,
    /// hybrid_query, fetch, delete, count, scan) run as the user `claims`
    /// describes, as [`Sql::as_user`](crate::Sql::as_user) does for SQL
    /// (the Supabase plugin: under the collection table's row-level
    /// security). Only a backend claiming `vector.as_user` takes it;
    /// creating and dropping collections on the handle is refused.
    pub fn as_user(&self, claims: &Json) -> Result<Vectors> {
        if !claims.is_object() {
            return Err(Error::Plugin(PluginError::invalid_input(
                "as_user: the claims must be a JSON object (as a JWT's payload)",
            )));
        }
        self.scoped(keys::AUTH_CLAIMS, claims.to_string())
    }

    /// As [`Vectors::as_user`], with a signed JWT the plugin verifies.
    pub fn as_user_jwt(&self, token: &str) -> Result<Vectors> {
        self.scoped(keys::AUTH_JWT, Json::from(token).to_string())
    }

    fn scoped(&self, key: &str, json: String) -> Result<Vectors> {
        if !self.as_user {
            return Err(Error::Plugin(PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "backend `{}` cannot run vector requests as a user: its plugin does not claim `{}`",
                    self.backend,
                    capabilities::VECTOR_AS_USER
                ),
            )));
        }
        let mut ext = Extensions::new();
        ext.insert(key, json);
        Ok(Vectors {
            ext,
            ..self.clone()
        })
    }

    fn unscoped(&self, call: &str) -> Result<()> {
        if self.ext.is_empty() {
            return Ok(());
        }
        Err(Error::Plugin(PluginError::new(
            ErrorKind::Unsupported,
            format!("{call} is not a user's request: call it on the backend's own handle"),
        )))
    }

    /// The backend name.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Creates a collection (no-op if it exists with the same dimension and metric).
    pub async fn create_collection(
        &self,
        name: &str,
        dimension: u32,
        metric: Metric,
    ) -> Result<()> {
        self.create_collection_with(name, dimension, metric, None)
            .await
    }

    /// Creates a collection with backend-specific options.
    pub async fn create_collection_with(
        &self,
        name: &str,
        dimension: u32,
        metric: Metric,
        options: Option<&Json>,
    ) -> Result<()> {
        self.unscoped("create_collection")?;
        call(self.store.create_collection(CollectionSpec {
            name: name.into(),
            dimension,
            metric: metric.code(),
            options_json: options_text(options),
            ext: Default::default(),
        }))
        .await
    }

    /// Drops a collection; false if it did not exist.
    pub async fn drop_collection(&self, name: &str) -> Result<bool> {
        self.unscoped("drop_collection")?;
        call(self.store.drop_collection(name.into())).await
    }

    /// Whether a collection exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(call(self.store.collection_info(name.into()))
            .await?
            .is_some())
    }

    /// Every collection with its statistics.
    pub async fn list(&self) -> Result<Vec<CollectionStats>> {
        call(self.store.list_collections())
            .await?
            .into_iter()
            .map(CollectionStats::from_info)
            .collect()
    }

    /// One collection's statistics, or `None`.
    pub async fn stats(&self, name: &str) -> Result<Option<CollectionStats>> {
        call(self.store.collection_info(name.into()))
            .await?
            .into_option()
            .map(CollectionStats::from_info)
            .transpose()
    }

    /// Inserts or overwrites records; returns how many were written.
    pub async fn upsert(
        &self,
        collection: &str,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<u64> {
        let records: RVec<VectorRecord> = records
            .into_iter()
            .map(|r| VectorRecord {
                id: r.id.into(),
                vector: r.vector.into(),
                metadata_json: if r.metadata.is_null() {
                    RString::new()
                } else {
                    r.metadata.to_string().into()
                },
                text: r.text.map(RString::from).into(),
                ext: Default::default(),
            })
            .collect();
        call(self.store.upsert(UpsertRequest {
            collection: collection.into(),
            records,
            ext: self.ext.clone(),
        }))
        .await
    }

    /// Nearest neighbours, best first.
    pub async fn query(&self, collection: &str, q: &Query) -> Result<Vec<Hit>> {
        let req = QueryRequest {
            collection: collection.into(),
            vector: q.vector.clone().into(),
            top_k: q.top_k,
            filter_json: filter_text(q.filter.as_ref())?,
            include: q.include.bits(),
            min_score: q.min_score.into(),
            options_json: options_text(q.options.as_ref()),
            ext: self.ext.clone(),
        };
        Ok(call(self.store.query(req))
            .await?
            .into_iter()
            .map(Hit::from_match)
            .collect())
    }

    /// Dense + lexical, fused by RRF, best first.
    pub async fn hybrid_query(&self, collection: &str, q: &Hybrid) -> Result<Vec<Hit>> {
        let req = HybridRequest {
            collection: collection.into(),
            vector: q.vector.clone().into(),
            text: q.text.as_str().into(),
            top_k: q.top_k,
            filter_json: filter_text(q.filter.as_ref())?,
            include: q.include.bits(),
            rrf_k: q.rrf_k,
            dense_weight: q.dense_weight,
            lexical_weight: q.lexical_weight,
            candidates: q.candidates,
            ext: self.ext.clone(),
        };
        Ok(call(self.store.hybrid_query(req))
            .await?
            .into_iter()
            .map(Hit::from_match)
            .collect())
    }

    /// The records with these ids that exist, in the order asked.
    pub async fn fetch(
        &self,
        collection: &str,
        ids: &[&str],
        include: Include,
    ) -> Result<Vec<Hit>> {
        let ids: RVec<RString> = ids.iter().map(|s| RString::from(*s)).collect();
        Ok(call(self.store.fetch(FetchRequest {
            collection: collection.into(),
            ids,
            include: include.bits(),
            ext: self.ext.clone(),
        }))
        .await?
        .into_iter()
        .map(Hit::from_match)
        .collect())
    }

    async fn delete(
        &self,
        collection: &str,
        ids: &[&str],
        filter: Option<&Json>,
        all: bool,
    ) -> Result<u64> {
        call(self.store.delete(DeleteRequest {
            collection: collection.into(),
            ids: ids.iter().map(|s| RString::from(*s)).collect(),
            filter_json: filter_text(filter)?,
            all,
            ext: self.ext.clone(),
        }))
        .await
    }

    /// Deletes records by id; returns how many existed.
    pub async fn delete_ids(&self, collection: &str, ids: &[&str]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.delete(collection, ids, None, false).await
    }

    /// Deletes the records matching `filter`.
    pub async fn delete_where(&self, collection: &str, filter: &Json) -> Result<u64> {
        self.delete(collection, &[], Some(filter), false).await
    }

    /// Deletes every record (the collection stays).
    pub async fn delete_all(&self, collection: &str) -> Result<u64> {
        self.delete(collection, &[], None, true).await
    }

    /// Records matching `filter` (all when `None`).
    pub async fn count(&self, collection: &str, filter: Option<&Json>) -> Result<u64> {
        call(self.store.count(CountRequest {
            collection: collection.into(),
            filter_json: filter_text(filter)?,
            ext: self.ext.clone(),
        }))
        .await
    }

    /// One page of records; pass `next_cursor` back for the next page.
    pub async fn scan(
        &self,
        collection: &str,
        cursor: Option<&str>,
        limit: u32,
        filter: Option<&Json>,
        include: Include,
    ) -> Result<Page> {
        let page = call(
            self.store.scan(ScanRequest {
                collection: collection.into(),
                cursor: cursor
                    .map(RString::from)
                    .map_or(ROption::RNone, ROption::RSome),
                limit,
                filter_json: filter_text(filter)?,
                include: include.bits(),
                ext: self.ext.clone(),
            }),
        )
        .await?;
        Ok(Page {
            records: page.records.into_iter().map(Hit::from_match).collect(),
            next_cursor: page.next_cursor.into_option().map(RString::into_string),
        })
    }
}
