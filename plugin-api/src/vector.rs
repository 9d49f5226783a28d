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

use crate::sql::PluginFuture;

/// How vectors are compared.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Cosine similarity, in [-1, 1].
    Cosine = 0,
    /// Dot product.
    Dot = 1,
    /// Negative euclidean distance (so higher is closer).
    Euclidean = 2,
}

impl Metric {
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
    /// The metric.
    pub metric: Metric,
    /// Backend-specific options as a JSON object (`""` for none).
    pub options_json: RString,
}

/// A collection's description and statistics.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct CollectionInfo {
    /// Name.
    pub name: RString,
    /// Dimension.
    pub dimension: u32,
    /// Metric.
    pub metric: Metric,
    /// Records stored.
    pub count: u64,
    /// Backend-specific details as a JSON object (index kind and size, …).
    pub details_json: RString,
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
    /// [`include`] flags.
    pub include: u32,
    /// Drop results scoring below this.
    pub min_score: ROption<f64>,
    /// Backend-specific options as a JSON object (e.g. `{"ef_search": 128}`), `""` for none.
    pub options_json: RString,
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
    /// [`include`] flags.
    pub include: u32,
    /// The RRF constant (60 is customary).
    pub rrf_k: u32,
    /// Weight of the dense ranking.
    pub dense_weight: f64,
    /// Weight of the lexical ranking.
    pub lexical_weight: f64,
    /// Candidates taken from each ranking before fusion (0 = backend default).
    pub candidates: u32,
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
    /// [`include`] flags.
    pub include: u32,
}

/// A page of records (score 0) and the cursor of the next page.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ScanPage {
    /// Records, in a stable backend order.
    pub records: RVec<Match>,
    /// `RNone` after the last page.
    pub next_cursor: ROption<RString>,
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
    fn upsert(&self, collection: RString, records: RVec<VectorRecord>) -> PluginFuture<u64>;
    /// Nearest neighbours, best first.
    fn query(&self, request: QueryRequest) -> PluginFuture<RVec<Match>>;
    /// Dense + lexical, fused by RRF, best first.
    fn hybrid_query(&self, request: HybridRequest) -> PluginFuture<RVec<Match>>;
    /// The records with these ids that exist, in the order asked (score 0).
    fn fetch(
        &self,
        collection: RString,
        ids: RVec<RString>,
        include: u32,
    ) -> PluginFuture<RVec<Match>>;
    /// Deletes by ids, filter or all; returns how many were deleted.
    fn delete(&self, request: DeleteRequest) -> PluginFuture<u64>;
    /// Records matching the filter (`""` = all).
    fn count(&self, collection: RString, filter_json: RString) -> PluginFuture<u64>;
    /// A page of records.
    #[sabi(last_prefix_field)]
    fn scan(&self, request: ScanRequest) -> PluginFuture<ScanPage>;
}

/// An opened vector store.
pub type VectorStoreBox = VectorStore_TO<'static, RBox<()>>;

/// Checks a collection name: `[A-Za-z][A-Za-z0-9_-]{0,63}`.
pub fn validate_collection_name(name: &str) -> Result<(), crate::PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(crate::PluginError::invalid_input(format!(
            "collection name {name:?} is invalid: use 1-64 letters, digits, `_` or `-`, starting with a letter"
        )))
    }
}

/// Checks one record against a collection's dimension, with a message naming the record.
pub fn validate_record(record: &VectorRecord, dimension: u32) -> Result<(), crate::PluginError> {
    if record.id.is_empty() || record.id.len() > 512 {
        return Err(crate::PluginError::invalid_input(format!(
            "record id {:?} is invalid: ids are 1-512 bytes",
            record.id.as_str()
        )));
    }
    validate_vector(
        &record.vector,
        dimension,
        &format!("record {:?}", record.id.as_str()),
    )?;
    if !record.metadata_json.is_empty() {
        match serde_json::from_str::<serde_json::Value>(&record.metadata_json) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Err(crate::PluginError::invalid_input(format!(
                    "record {:?}: metadata must be a JSON object",
                    record.id.as_str()
                )));
            }
            Err(e) => {
                return Err(crate::PluginError::invalid_input(format!(
                    "record {:?}: metadata is not valid JSON: {e}",
                    record.id.as_str()
                )));
            }
        }
    }
    Ok(())
}

/// Checks a vector's dimension and that every component is finite.
pub fn validate_vector(
    vector: &[f32],
    dimension: u32,
    what: &str,
) -> Result<(), crate::PluginError> {
    if vector.len() != dimension as usize {
        return Err(crate::PluginError::invalid_input(format!(
            "{what}: vector has dimension {}, the collection expects {dimension}",
            vector.len()
        )));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(crate::PluginError::invalid_input(format!(
            "{what}: component {i} is {} (vectors must be finite)",
            vector[i]
        )));
    }
    Ok(())
}

/// Checks an `upsert` batch: every record ([`validate_record`]) and no id
/// twice (which record wins would otherwise depend on the backend).
pub fn validate_batch(records: &[VectorRecord], dimension: u32) -> Result<(), crate::PluginError> {
    let mut seen = std::collections::HashSet::with_capacity(records.len());
    for r in records {
        validate_record(r, dimension)?;
        if !seen.insert(r.id.as_str()) {
            return Err(crate::PluginError::invalid_input(format!(
                "record id {:?} appears twice in one upsert",
                r.id.as_str()
            )));
        }
    }
    Ok(())
}

/// What a [`DeleteRequest`] deletes, once checked ([`DeleteRequest::target`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DeleteTarget<'a> {
    /// These ids (missing ones are not an error).
    Ids(&'a [RString]),
    /// The records matching this filter.
    Filter(crate::filter::Filter),
    /// Every record.
    All,
}

impl DeleteRequest {
    /// Exactly one of ids, filter or `all`, with the filter parsed; an
    /// `invalid_input` error otherwise (a malformed filter names its clause).
    pub fn target(&self) -> Result<DeleteTarget<'_>, crate::PluginError> {
        let by_ids = !self.ids.is_empty();
        let by_filter = !self.filter_json.trim().is_empty();
        match (by_ids, by_filter, self.all) {
            (true, false, false) => Ok(DeleteTarget::Ids(&self.ids)),
            (false, true, false) => {
                crate::filter::Filter::parse_str(&self.filter_json).map(DeleteTarget::Filter)
            }
            (false, false, true) => Ok(DeleteTarget::All),
            _ => Err(crate::PluginError::invalid_input(
                "delete takes exactly one of: ids, a filter, or all",
            )),
        }
    }
}

impl HybridRequest {
    /// Candidates taken from each ranking: `candidates`, or when 0 the
    /// default `max(4 · top_k, 50)`; never fewer than `top_k`.
    pub fn candidates_or_default(&self) -> usize {
        let k = self.top_k as usize;
        let c = match self.candidates {
            0 => (k * 4).max(50),
            c => c as usize,
        };
        c.max(k)
    }
}

#[cfg(test)]
mod helper_tests {
    use abi_stable::std_types::{RString, RVec};

    use super::*;

    fn rec(id: &str, v: &[f32]) -> VectorRecord {
        VectorRecord {
            id: id.into(),
            vector: v.iter().copied().collect(),
            metadata_json: RString::new(),
            text: abi_stable::std_types::ROption::RNone,
        }
    }

    #[test]
    fn a_batch_with_an_id_twice_is_refused_naming_it() {
        let ok = [rec("a", &[1.0, 0.0]), rec("b", &[0.0, 1.0])];
        assert!(validate_batch(&ok, 2).is_ok());
        let dup = [
            rec("a", &[1.0, 0.0]),
            rec("b", &[0.0, 1.0]),
            rec("a", &[1.0, 1.0]),
        ];
        let e = validate_batch(&dup, 2).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("\"a\" appears twice"), "{e}");
        let wrong_dim = [rec("a", &[1.0, 0.0, 0.0])];
        assert!(
            validate_batch(&wrong_dim, 2)
                .unwrap_err()
                .to_string()
                .contains("dimension 3")
        );
    }

    fn delete(ids: &[&str], filter: &str, all: bool) -> DeleteRequest {
        DeleteRequest {
            collection: "c".into(),
            ids: ids.iter().map(|s| RString::from(*s)).collect::<RVec<_>>(),
            filter_json: filter.into(),
            all,
        }
    }

    #[test]
    fn a_delete_targets_exactly_one_thing() {
        let r = delete(&["x"], "", false);
        assert!(matches!(r.target(), Ok(DeleteTarget::Ids(ids)) if ids.len() == 1));
        let r = delete(&[], r#"{"kind": "fact"}"#, false);
        assert!(matches!(r.target(), Ok(DeleteTarget::Filter(_))));
        assert!(matches!(
            delete(&[], "  ", true).target(),
            Ok(DeleteTarget::All)
        ));
        for bad in [
            delete(&[], "", false),
            delete(&["x"], "", true),
            delete(&["x"], r#"{"a": 1}"#, false),
            delete(&[], r#"{"a": 1}"#, true),
        ] {
            let e = bad.target().unwrap_err();
            assert!(e.to_string().contains("exactly one of"), "{e}");
        }
        let e = delete(&[], r#"{"a": {"$regex": "x"}}"#, false)
            .target()
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("$regex"), "{e}");
    }

    #[test]
    fn hybrid_candidates_default_and_floor() {
        let mut h = HybridRequest {
            collection: "c".into(),
            vector: RVec::new(),
            text: "t".into(),
            top_k: 5,
            filter_json: RString::new(),
            include: 0,
            rrf_k: 60,
            dense_weight: 1.0,
            lexical_weight: 1.0,
            candidates: 0,
        };
        assert_eq!(h.candidates_or_default(), 50);
        h.top_k = 30;
        assert_eq!(h.candidates_or_default(), 120);
        h.candidates = 10;
        assert_eq!(h.candidates_or_default(), 30);
        h.candidates = 200;
        assert_eq!(h.candidates_or_default(), 200);
    }
}
