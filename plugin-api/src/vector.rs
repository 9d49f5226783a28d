//! The vector-store contract.
//!
//! Collections hold records: a string id, an `f32` vector of the
//! collection's dimension, a JSON metadata object and optional text. Scores
//! are higher-is-better on every backend — cosine similarity, dot product,
//! and the *negative* euclidean (L2) distance — so results compare across
//! backends. Filters travel as JSON text in the shared dialect of
//! [`crate::filter`]; both sides parse them with the same code.
//!
//! Ids are arbitrary strings; a backend whose native ids are UUIDs or
//! integers (Qdrant) maps them (e.g. UUID v5 of the id) and keeps the string.

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, ROption, RString, RVec},
};

use crate::{ext::Extensions, sql::PluginFuture};

/// How vectors are compared.
///
/// On the wire a metric is its [`code`](Metric::code) (a `u32`), so a
/// metric added in a later 1.x release reaches an older peer as an unknown
/// code, which [`Metric::from_code`] reports as an error, never as
/// undefined behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity, in [-1, 1].
    Cosine,
    /// Dot product.
    Dot,
    /// Negative euclidean distance (so higher is closer).
    Euclidean,
}

impl Metric {
    /// The stable wire code.
    pub fn code(self) -> u32 {
        match self {
            Metric::Cosine => 0,
            Metric::Dot => 1,
            Metric::Euclidean => 2,
        }
    }

    /// The metric for a wire code; an `invalid_input` error naming an
    /// unknown code (a metric of a newer plugin-api).
    pub fn from_code(code: u32) -> Result<Metric, crate::PluginError> {
        match code {
            0 => Ok(Metric::Cosine),
            1 => Ok(Metric::Dot),
            2 => Ok(Metric::Euclidean),
            other => Err(crate::PluginError::invalid_input(format!(
                "unknown metric code {other} (from a newer plugin-api?)"
            ))),
        }
    }

    /// `cosine`, `dot` or `euclidean`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::Euclidean => "euclidean",
        }
    }

    /// Parses a metric name (`l2` is accepted for euclidean).
    pub fn from_name(s: &str) -> Option<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Some(Metric::Cosine),
            "dot" | "dotproduct" | "dot_product" | "ip" => Some(Metric::Dot),
            "euclidean" | "l2" => Some(Metric::Euclidean),
            _ => None,
        }
    }

    /// The exact score of `a` against `b` under this metric (the reference
    /// every backend's scores are checked against).
    pub fn score(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::Dot => dot(a, b),
            Metric::Cosine => {
                let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
                if na == 0.0 || nb == 0.0 {
                    0.0
                } else {
                    dot(a, b) / (na * nb)
                }
            }
            Metric::Euclidean => -a
                .iter()
                .zip(b)
                .map(|(x, y)| {
                    let d = f64::from(*x) - f64::from(*y);
                    d * d
                })
                .sum::<f64>()
                .sqrt(),
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// What to create.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct CollectionSpec {
    /// The collection name: `[A-Za-z0-9_-]{1,64}`, starting with a letter.
    pub name: RString,
    /// Vector dimension (1..=65536).
    pub dimension: u32,
    /// The metric's wire code ([`Metric::code`]).
    pub metric: u32,
    /// Backend-specific options as a JSON object (`""` for none).
    pub options_json: RString,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// A collection's description and statistics.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct CollectionInfo {
    /// Name.
    pub name: RString,
    /// Dimension.
    pub dimension: u32,
    /// The metric's wire code ([`Metric::code`]).
    pub metric: u32,
    /// Records stored.
    pub count: u64,
    /// Backend-specific details as a JSON object (index kind and size, …).
    pub details_json: RString,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// One record to store.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct VectorRecord {
    /// The id (any non-empty string up to 512 bytes).
    pub id: RString,
    /// The vector.
    pub vector: RVec<f32>,
    /// Metadata as a JSON object text (`""` = `{}`).
    pub metadata_json: RString,
    /// Optional text (searched by `hybrid_query`).
    pub text: ROption<RString>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Bit flags: what a result should carry besides id and score.
pub mod include {
    /// The stored vector.
    pub const VECTOR: u32 = 1;
    /// The metadata.
    pub const METADATA: u32 = 1 << 1;
    /// The text.
    pub const TEXT: u32 = 1 << 2;
    /// Everything.
    pub const ALL: u32 = VECTOR | METADATA | TEXT;
}

/// A nearest-neighbour query.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct QueryRequest {
    /// Collection name.
    pub collection: RString,
    /// The query vector.
    pub vector: RVec<f32>,
    /// How many results at most.
    pub top_k: u32,
    /// Filter JSON (`""` = none).
    pub filter_json: RString,
    /// [`include`](mod@include) flags.
    pub include: u32,
    /// Drop results scoring below this.
    pub min_score: ROption<f64>,
    /// Backend-specific options as a JSON object (e.g. `{"ef_search": 128}`), `""` for none.
    pub options_json: RString,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// A hybrid dense + lexical query fused by reciprocal rank fusion:
/// `score(d) = Σ weight_r / (rrf_k + rank_r(d))` over the dense and lexical rankings.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct HybridRequest {
    /// Collection name.
    pub collection: RString,
    /// The query vector.
    pub vector: RVec<f32>,
    /// The query text for the lexical (full-text) ranking.
    pub text: RString,
    /// How many results at most.
    pub top_k: u32,
    /// Filter JSON (`""` = none), applied to both rankings.
    pub filter_json: RString,
    /// [`include`](mod@include) flags.
    pub include: u32,
    /// The RRF constant (60 is customary).
    pub rrf_k: u32,
    /// Weight of the dense ranking.
    pub dense_weight: f64,
    /// Weight of the lexical ranking.
    pub lexical_weight: f64,
    /// Candidates taken from each ranking before fusion (0 = backend default).
    pub candidates: u32,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// One result.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Match {
    /// Record id.
    pub id: RString,
    /// Higher is better (see the module docs); fused score for hybrid queries.
    pub score: f64,
    /// The vector, when asked for.
    pub vector: ROption<RVec<f32>>,
    /// The metadata JSON, when asked for.
    pub metadata_json: ROption<RString>,
    /// The text, when asked for (and present).
    pub text: ROption<RString>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Which records to delete.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct DeleteRequest {
    /// Collection name.
    pub collection: RString,
    /// Delete these ids (when non-empty).
    pub ids: RVec<RString>,
    /// Or delete what matches this filter (when non-empty).
    pub filter_json: RString,
    /// Or delete everything (only when `ids` and `filter_json` are empty).
    pub all: bool,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// One page of a scan.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ScanRequest {
    /// Collection name.
    pub collection: RString,
    /// The cursor from the previous page (`RNone` for the first).
    pub cursor: ROption<RString>,
    /// Records per page.
    pub limit: u32,
    /// Filter JSON (`""` = none).
    pub filter_json: RString,
    /// [`include`](mod@include) flags.
    pub include: u32,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// A page of records (score 0) and the cursor of the next page.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ScanPage {
    /// Records, in a stable backend order.
    pub records: RVec<Match>,
    /// `RNone` after the last page.
    pub next_cursor: ROption<RString>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Records to write into a collection.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct UpsertRequest {
    /// Collection name.
    pub collection: RString,
    /// The records (no id twice).
    pub records: RVec<VectorRecord>,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Records to read by id.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FetchRequest {
    /// Collection name.
    pub collection: RString,
    /// The ids, in the order the results come back.
    pub ids: RVec<RString>,
    /// [`include`](mod@include) flags.
    pub include: u32,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Records to count.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct CountRequest {
    /// Collection name.
    pub collection: RString,
    /// Filter JSON (`""` = all).
    pub filter_json: RString,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// The vector-store contract.
#[sabi_trait]
pub trait VectorStore: Send + Sync {
    /// Creates a collection; `AlreadyExists` if one with this name exists with
    /// another dimension or metric (same spec: no-op).
    fn create_collection(&self, spec: CollectionSpec) -> PluginFuture<()>;
    /// Drops a collection and everything derived from it; false if it did not exist.
    fn drop_collection(&self, name: RString) -> PluginFuture<bool>;
    /// Every collection.
    fn list_collections(&self) -> PluginFuture<RVec<CollectionInfo>>;
    /// One collection, or `RNone`.
    fn collection_info(&self, name: RString) -> PluginFuture<ROption<CollectionInfo>>;
    /// Inserts or overwrites records by id; returns how many were written.
    fn upsert(&self, request: UpsertRequest) -> PluginFuture<u64>;
    /// Nearest neighbours, best first.
    fn query(&self, request: QueryRequest) -> PluginFuture<RVec<Match>>;
    /// Dense + lexical, fused by RRF, best first.
    fn hybrid_query(&self, request: HybridRequest) -> PluginFuture<RVec<Match>>;
    /// The records with these ids that exist, in the order asked (score 0).
    fn fetch(&self, request: FetchRequest) -> PluginFuture<RVec<Match>>;
    /// Deletes by ids, filter or all; returns how many were deleted.
    fn delete(&self, request: DeleteRequest) -> PluginFuture<u64>;
    /// Records matching the filter (`""` = all).
    fn count(&self, request: CountRequest) -> PluginFuture<u64>;
    /// A page of records.
    #[sabi(last_prefix_field)]
    fn scan(&self, request: ScanRequest) -> PluginFuture<ScanPage>;
}

/// An opened vector store.
pub type VectorStoreBox = VectorStore_TO<'static, RBox<()>>;
