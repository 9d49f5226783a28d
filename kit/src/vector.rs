//! The vector-store contract: [`VectorBackend`].
//!
//! Collections hold records: a string id, an `f32` vector of the
//! collection's dimension, a JSON metadata object and optional text. Scores
//! are higher-is-better on every backend — cosine similarity, dot product,
//! and the *negative* euclidean (L2) distance — so results compare across
//! backends. Filters are JSON text in the shared dialect of
//! [`crate::filter`]; parse them with [`Filter::parse_str`].
//!
//! Ids are arbitrary strings; a backend whose native ids are UUIDs or
//! integers maps them (e.g. UUID v5 of the id) and keeps the string.

use std::future::Future;

pub use strata_plugin_api::vector::{Metric, include};

use crate::{PluginError, PluginResult, Runs, filter::Filter};

/// What to create.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionSpec {
    /// The collection name ([`validate_collection_name`]).
    pub name: String,
    /// Vector dimension (1..=65536).
    pub dimension: u32,
    /// The metric.
    pub metric: Metric,
    /// Backend-specific options as a JSON object (`""` for none).
    pub options_json: String,
}

/// A collection's description and statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionInfo {
    /// Name.
    pub name: String,
    /// Dimension.
    pub dimension: u32,
    /// Metric.
    pub metric: Metric,
    /// Records stored.
    pub count: u64,
    /// Backend-specific details as a JSON object (index kind and size, …).
    pub details_json: String,
}

/// One record to store.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorRecord {
    /// The id (any non-empty string up to 512 bytes).
    pub id: String,
    /// The vector.
    pub vector: Vec<f32>,
    /// Metadata as a JSON object text (`""` = `{}`).
    pub metadata_json: String,
    /// Optional text (searched by `hybrid_query`).
    pub text: Option<String>,
}

/// A nearest-neighbour query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRequest {
    /// Collection name.
    pub collection: String,
    /// The query vector.
    pub vector: Vec<f32>,
    /// How many results at most (clamp to what exists before allocating).
    pub top_k: u32,
    /// Filter JSON (`""` = none).
    pub filter_json: String,
    /// [`include`](mod@include) flags.
    pub include: u32,
    /// Drop results scoring below this.
    pub min_score: Option<f64>,
    /// Backend-specific options as a JSON object (e.g. `{"ef_search": 128}`), `""` for none.
    pub options_json: String,
}

/// A hybrid dense + lexical query fused by reciprocal rank fusion:
/// `score(d) = Σ weight_r / (rrf_k + rank_r(d))` over the dense and lexical rankings.
#[derive(Clone, Debug, PartialEq)]
pub struct HybridRequest {
    /// Collection name.
    pub collection: String,
    /// The query vector.
    pub vector: Vec<f32>,
    /// The query text for the lexical (full-text) ranking.
    pub text: String,
    /// How many results at most.
    pub top_k: u32,
    /// Filter JSON (`""` = none), applied to both rankings.
    pub filter_json: String,
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

/// One result.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    /// Record id.
    pub id: String,
    /// Higher is better (see the module docs); fused score for hybrid queries.
    pub score: f64,
    /// The vector, when asked for.
    pub vector: Option<Vec<f32>>,
    /// The metadata JSON, when asked for.
    pub metadata_json: Option<String>,
    /// The text, when asked for (and present).
    pub text: Option<String>,
}

/// Which records to delete: exactly one of ids, a filter, or `all`
/// ([`DeleteRequest::target`] checks it).
#[derive(Clone, Debug, PartialEq)]
pub struct DeleteRequest {
    /// Collection name.
    pub collection: String,
    /// Delete these ids (when non-empty).
    pub ids: Vec<String>,
    /// Or delete what matches this filter (when non-empty).
    pub filter_json: String,
    /// Or delete everything (only when `ids` and `filter_json` are empty).
    pub all: bool,
}

/// What a [`DeleteRequest`] deletes, once checked.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DeleteTarget<'a> {
    /// These ids (missing ones are not an error).
    Ids(&'a [String]),
    /// The records matching this filter (never the empty filter: `all` is
    /// the explicit way to delete everything).
    Filter(Filter),
    /// Every record.
    All,
}

impl DeleteRequest {
    /// Exactly one of ids, filter or `all`, with the filter parsed; an
    /// `invalid_input` error otherwise (a malformed filter names its
    /// clause; an empty filter `{}` is refused, since it would match every
    /// record).
    pub fn target(&self) -> PluginResult<DeleteTarget<'_>> {
        let by_ids = !self.ids.is_empty();
        let by_filter = !self.filter_json.trim().is_empty();
        match (by_ids, by_filter, self.all) {
            (true, false, false) => Ok(DeleteTarget::Ids(&self.ids)),
            (false, true, false) => match Filter::parse_str(&self.filter_json)? {
                Filter::All => Err(PluginError::invalid_input(
                    "delete by an empty filter would delete every record: use `all` for that",
                )),
                f => Ok(DeleteTarget::Filter(f)),
            },
            (false, false, true) => Ok(DeleteTarget::All),
            _ => Err(PluginError::invalid_input(
                "delete takes exactly one of: ids, a filter, or all",
            )),
        }
    }
}

/// One page of a scan.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanRequest {
    /// Collection name.
    pub collection: String,
    /// The cursor from the previous page (`None` for the first).
    pub cursor: Option<String>,
    /// Records per page.
    pub limit: u32,
    /// Filter JSON (`""` = none).
    pub filter_json: String,
    /// [`include`](mod@include) flags.
    pub include: u32,
}

/// A page of records (score 0) and the cursor of the next page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanPage {
    /// Records, in a stable backend order.
    pub records: Vec<Match>,
    /// `None` after the last page.
    pub next_cursor: Option<String>,
}

/// Which vector call the kit is about to run, with its request, for
/// [`VectorBackend::runs`] to decide where it runs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug)]
pub enum VectorCall<'a> {
    /// `create_collection`.
    CreateCollection(&'a CollectionSpec),
    /// `drop_collection`.
    DropCollection(&'a str),
    /// `list_collections`.
    ListCollections,
    /// `collection_info`.
    CollectionInfo(&'a str),
    /// `upsert`, with the collection and the records.
    Upsert(&'a str, &'a [VectorRecord]),
    /// `query`.
    Query(&'a QueryRequest),
    /// `hybrid_query`.
    HybridQuery(&'a HybridRequest),
    /// `fetch`, with the collection and the ids.
    Fetch(&'a str, &'a [String]),
    /// `delete`.
    Delete(&'a DeleteRequest),
    /// `count`, with the collection and the filter.
    Count(&'a str, &'a str),
    /// `scan`.
    Scan(&'a ScanRequest),
}

/// The vector-store contract.
///
/// Required: collections (create, drop, list, info), `upsert`, `query`,
/// `fetch`, `delete`, `count`. Provided: `hybrid_query` and `scan` answer
/// `unsupported` (claim [`crate::capabilities::VECTOR_HYBRID`] /
/// [`crate::capabilities::VECTOR_SCAN`] only when overriding them), and
/// `runs` puts every call on the blocking pool.
pub trait VectorBackend: Send + Sync + 'static {
    /// Creates a collection; `already_exists` if one with this name exists
    /// with another dimension or metric (same spec: no-op).
    fn create_collection(
        &self,
        spec: CollectionSpec,
    ) -> impl Future<Output = PluginResult<()>> + Send;
    /// Drops a collection and everything derived from it; false if it did not exist.
    fn drop_collection(&self, name: String) -> impl Future<Output = PluginResult<bool>> + Send;
    /// Every collection.
    fn list_collections(&self) -> impl Future<Output = PluginResult<Vec<CollectionInfo>>> + Send;
    /// One collection, or `None`.
    fn collection_info(
        &self,
        name: String,
    ) -> impl Future<Output = PluginResult<Option<CollectionInfo>>> + Send;
    /// Inserts or overwrites records by id; returns how many were written.
    fn upsert(
        &self,
        collection: String,
        records: Vec<VectorRecord>,
    ) -> impl Future<Output = PluginResult<u64>> + Send;
    /// Nearest neighbours, best first.
    fn query(&self, request: QueryRequest)
    -> impl Future<Output = PluginResult<Vec<Match>>> + Send;
    /// The records with these ids that exist, in the order asked (score 0).
    fn fetch(
        &self,
        collection: String,
        ids: Vec<String>,
        include: u32,
    ) -> impl Future<Output = PluginResult<Vec<Match>>> + Send;
    /// Deletes by ids, filter or all ([`DeleteRequest::target`]); returns how many were deleted.
    fn delete(&self, request: DeleteRequest) -> impl Future<Output = PluginResult<u64>> + Send;
    /// Records matching the filter (`""` = all).
    fn count(
        &self,
        collection: String,
        filter_json: String,
    ) -> impl Future<Output = PluginResult<u64>> + Send;

    /// Dense + lexical, fused by RRF, best first. Default: `unsupported`.
    fn hybrid_query(
        &self,
        request: HybridRequest,
    ) -> impl Future<Output = PluginResult<Vec<Match>>> + Send {
        drop(request);
        async {
            Err(PluginError::unsupported(
                "this backend has no hybrid search",
            ))
        }
    }

    /// A page of records. Default: `unsupported`.
    fn scan(&self, request: ScanRequest) -> impl Future<Output = PluginResult<ScanPage>> + Send {
        drop(request);
        async { Err(PluginError::unsupported("this backend cannot scan")) }
    }

    /// Where `call` runs (see [`Runs`]); the blocking pool by default.
    fn runs(&self, call: VectorCall<'_>) -> Runs {
        let _ = call;
        Runs::Blocking
    }
}

/// Fuses a dense and a lexical ranking (each best first) by the
/// contract's reciprocal rank fusion: `score(d) = Σ weight_r / (rrf_k +
/// rank_r(d))`, ranks from 1, best first (ties by id), at most `top_k`. A
/// record in both rankings keeps the dense ranking's data.
pub fn fuse_rrf(request: &HybridRequest, dense: Vec<Match>, lexical: Vec<Match>) -> Vec<Match> {
    let k = f64::from(request.rrf_k);
    let mut fused: std::collections::HashMap<String, Match> = std::collections::HashMap::new();
    for (ranking, w) in [
        (dense, request.dense_weight),
        (lexical, request.lexical_weight),
    ] {
        for (rank, m) in ranking.into_iter().enumerate() {
            let add = w / (k + rank as f64 + 1.0);
            fused
                .entry(m.id.clone())
                .or_insert(Match { score: 0.0, ..m })
                .score += add;
        }
    }
    let mut out: Vec<Match> = fused.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    out.truncate(request.top_k as usize);
    out
}

/// Checks a collection name: `[A-Za-z][A-Za-z0-9_-]{0,63}`.
pub fn validate_collection_name(name: &str) -> PluginResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PluginError::invalid_input(format!(
            "collection name {name:?} is invalid: use 1-64 letters, digits, `_` or `-`, starting with a letter"
        )))
    }
}

/// Checks a record id: 1-512 bytes of UTF-8 without NUL (`\0`, which
/// PostgreSQL text cannot hold and C-string APIs would cut short), so every
/// backend accepts and refuses the same ids.
pub fn validate_id(id: &str) -> PluginResult<()> {
    if id.is_empty() || id.len() > 512 {
        return Err(PluginError::invalid_input(format!(
            "record id {id:?} is invalid: ids are 1-512 bytes"
        )));
    }
    if id.contains('\0') {
        return Err(PluginError::invalid_input(format!(
            "record id {id:?} is invalid: ids cannot contain NUL (\\0)"
        )));
    }
    Ok(())
}

/// Checks one record against a collection's dimension, with a message naming the record.
pub fn validate_record(record: &VectorRecord, dimension: u32) -> PluginResult<()> {
    validate_id(&record.id)?;
    validate_vector(
        &record.vector,
        dimension,
        &format!("record {:?}", record.id),
    )?;
    if !record.metadata_json.is_empty() {
        match serde_json::from_str::<serde_json::Value>(&record.metadata_json) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Err(PluginError::invalid_input(format!(
                    "record {:?}: metadata must be a JSON object",
                    record.id
                )));
            }
            Err(e) => {
                return Err(PluginError::invalid_input(format!(
                    "record {:?}: metadata is not valid JSON: {e}",
                    record.id
                )));
            }
        }
    }
    Ok(())
}

/// Checks a vector's dimension and that every component is finite.
pub fn validate_vector(vector: &[f32], dimension: u32, what: &str) -> PluginResult<()> {
    if vector.len() != dimension as usize {
        return Err(PluginError::invalid_input(format!(
            "{what}: vector has dimension {}, the collection expects {dimension}",
            vector.len()
        )));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(PluginError::invalid_input(format!(
            "{what}: component {i} is {} (vectors must be finite)",
            vector[i]
        )));
    }
    Ok(())
}

/// The largest vector norm an engine that scores in `f32` (pgvector,
/// Qdrant) handles without overflow: squares of distances and products
/// overflow `f32` near 2^64. See [`check_f32_scorable`].
pub const F32_MAX_NORM: f64 = 4_611_686_018_427_387_904.0; // 2^62

/// The smallest norm of a non-zero vector such an engine's cosine keeps:
/// below it the product of two norms underflows `f32` to 0 and the score
/// becomes NaN or 0. See [`check_f32_scorable`].
pub const F32_MIN_COSINE_NORM: f64 = 8.881_784_197_001_252e-16; // 2^-50

/// Refuses, with `invalid_input` naming `what` (a record id or "query
/// vector") and `engine`, a vector an engine computing in `f32` cannot
/// score under `metric`: a norm above 2^62 under any metric, or a non-zero
/// norm below 2^-50 under cosine. The vector contract lets a backend
/// refuse such vectors at upsert and query instead of returning a wrong
/// score; backends that score in `f64` (the SQLite plugin) need not.
pub fn check_f32_scorable(
    vector: &[f32],
    metric: Metric,
    what: &str,
    engine: &str,
) -> PluginResult<()> {
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > F32_MAX_NORM {
        return Err(PluginError::invalid_input(format!(
            "{what}: its norm {norm:e} is above 2^62, which {engine} cannot score \
             without overflow (it computes in f32); scale the vector down"
        )));
    }
    if metric == Metric::Cosine && norm > 0.0 && norm < F32_MIN_COSINE_NORM {
        return Err(PluginError::invalid_input(format!(
            "{what}: its norm {norm:e} is below 2^-50, too small for {engine}'s cosine \
             (computed in f32); scale the vector up"
        )));
    }
    Ok(())
}

/// Checks an `upsert` batch: every record ([`validate_record`]) and no id
/// twice (which record wins would otherwise depend on the backend).
pub fn validate_batch(records: &[VectorRecord], dimension: u32) -> PluginResult<()> {
    let mut seen = std::collections::HashSet::with_capacity(records.len());
    for r in records {
        validate_record(r, dimension)?;
        if !seen.insert(r.id.as_str()) {
            return Err(PluginError::invalid_input(format!(
                "record id {:?} appears twice in one upsert",
                r.id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn rec(id: &str, v: &[f32]) -> VectorRecord {
        VectorRecord {
            id: id.into(),
            vector: v.to_vec(),
            metadata_json: String::new(),
            text: None,
        }
    }

    #[test]
    fn a_batch_with_an_id_twice_is_refused_naming_it() {
        assert!(validate_batch(&[rec("a", &[1.0, 0.0]), rec("b", &[0.0, 1.0])], 2).is_ok());
        // Issue 16 #15: NUL in an id is refused by every kit-based plugin.
        let e = validate_batch(&[rec("a\0b", &[1.0, 0.0])], 2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("NUL"), "{}", e.message());
        let e = validate_batch(&[rec("a", &[1.0, 0.0]), rec("a", &[1.0, 1.0])], 2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("\"a\" appears twice"), "{e}");
        let e = validate_batch(&[rec("a", &[1.0, 0.0, 0.0])], 2).unwrap_err();
        assert!(e.to_string().contains("dimension 3"), "{e}");
    }

    fn delete(ids: &[&str], filter: &str, all: bool) -> DeleteRequest {
        DeleteRequest {
            collection: "c".into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            filter_json: filter.into(),
            all,
        }
    }

    #[test]
    fn delete_targets_exactly_one_thing() {
        assert!(matches!(
            delete(&["a"], "", false).target(),
            Ok(DeleteTarget::Ids(_))
        ));
        assert!(matches!(
            delete(&[], r#"{"k": 1}"#, false).target(),
            Ok(DeleteTarget::Filter(_))
        ));
        assert!(matches!(
            delete(&[], "", true).target(),
            Ok(DeleteTarget::All)
        ));
        for bad in [
            delete(&[], "", false),
            delete(&["a"], "", true),
            delete(&["a"], r#"{"k": 1}"#, false),
        ] {
            assert_eq!(bad.target().unwrap_err().kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn an_empty_filter_never_deletes_everything() {
        for empty in ["{}", " { } ", "null"] {
            let request = delete(&[], empty, false);
            let e = request.target();
            assert!(
                matches!(&e, Err(e) if e.kind() == ErrorKind::InvalidInput
                    && e.message().contains("use `all`")),
                "{empty}: {e:?}"
            );
        }
    }
}
