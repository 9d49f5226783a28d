//! The vector contract on Qdrant, over gRPC.
//!
//! One contract collection is one Qdrant collection named
//! `<collection_prefix><name>`, with named vectors:
//!
//! - `dense`: the vectors, in the collection's metric, HNSW-indexed (and
//!   quantized when configured, searches rescoring with the originals);
//! - `raw` (cosine collections only): the vectors as written, unindexed.
//!   Qdrant normalises cosine vectors on write, so without it a fetched
//!   vector would not be the one stored (and a migration would not
//!   round-trip);
//! - `text` (sparse, `idf` modifier): the record's text as term weights
//!   (the kit's [`strata_plugin::sparse`]), the lexical side of hybrid search.
//!
//! The payload layout is [`crate::payload`]'s, the filter translation
//! [`crate::filter`]'s. Writes use `wait = true`, so an acknowledged upsert
//! or delete is visible to the next query; upserts go in batches bounded by
//! `batch_max_points` and `batch_max_bytes`. Scores are higher-is-better:
//! Qdrant's euclidean score is the distance, returned negated.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use qdrant_client::{
    Qdrant,
    qdrant::{
        BinaryQuantization, CollectionExistsRequest, CountPoints, CreateCollection,
        CreateFieldIndexCollection, DeleteCollection, DeletePoints, DenseVector, Distance,
        FieldType, Filter as QFilter, GetCollectionInfoRequest, GetPoints, HnswConfigDiff,
        ListValue, Modifier, NamedVectors, PayloadIncludeSelector, PointId, PointStruct,
        PointsIdsList, PointsSelector, PrefetchQuery, QuantizationConfig, QuantizationSearchParams,
        QuantizationType, Query, QueryPoints, Rrf, ScalarQuantization, ScoredPoint, ScrollPoints,
        SearchParams, SparseVector, SparseVectorConfig, SparseVectorParams, UpsertPoints, Value,
        Vector, VectorInput, VectorParams, VectorParamsMap, VectorsConfig, VectorsOutput,
        VectorsSelector, WithPayloadSelector, WithVectorsSelector, point_id::PointIdOptions,
        points_selector::PointsSelectorOneOf, quantization_config, query, value::Kind, vector,
        vector_input, vector_output, vectors, vectors_config, vectors_output,
        with_payload_selector, with_vectors_selector,
    },
};
use serde_json::{Map, Value as Json, json};
use strata_plugin::{
    ErrorKind, PluginError, PluginResult, Runs, VectorBackend,
    vector::{
        CollectionInfo, CollectionSpec, DeleteRequest, DeleteTarget, HybridRequest, Match, Metric,
        QueryRequest, ScanPage, ScanRequest, VectorCall, VectorRecord, check_f32_scorable,
        fuse_rrf, include, validate_batch, validate_collection_name, validate_vector,
    },
};

use crate::{
    config::{QdrantConfig, Quantization},
    error::map,
    filter::{Translation, translate, translate_str},
    payload::{self, LONG, get_str, point_id, record_payload},
};
use strata_plugin::sparse;

/// The dense vector's name.
const DENSE: &str = "dense";
/// The unindexed copy of a cosine collection's vectors.
const RAW: &str = "raw";
/// The sparse (text) vector's name.
const SPARSE: &str = "text";
/// The contract's dimension limit.
const MAX_DIMENSION: u32 = 65_536;
/// Largest scan page.
const MAX_SCAN_PAGE: u32 = 10_000;

/// What the plugin needs to know of a collection.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    dimension: u32,
    metric: Metric,
}

/// The vector handle of one opened backend.
pub(crate) struct QdrantVectors {
    client: Qdrant,
    cfg: QdrantConfig,
    closed: AtomicBool,
    /// Shapes seen, by contract name (dropped by `drop_collection`).
    shapes: Mutex<HashMap<String, Shape>>,
}

fn not_found(name: &str) -> PluginError {
    PluginError::new(
        ErrorKind::NotFound,
        format!("collection {name:?} does not exist"),
    )
}

fn distance(metric: Metric) -> Distance {
    match metric {
        Metric::Cosine => Distance::Cosine,
        Metric::Dot => Distance::Dot,
        _ => Distance::Euclid,
    }
}

fn dense_input(v: &[f32]) -> Option<Query> {
    Some(Query {
        variant: Some(query::Variant::Nearest(VectorInput {
            variant: Some(vector_input::Variant::Dense(DenseVector {
                data: v.to_vec(),
            })),
        })),
    })
}

fn sparse_input((indices, values): (Vec<u32>, Vec<f32>)) -> Option<Query> {
    Some(Query {
        variant: Some(query::Variant::Nearest(VectorInput {
            variant: Some(vector_input::Variant::Sparse(SparseVector {
                values,
                indices,
            })),
        })),
    })
}

fn uuid_id(s: String) -> PointId {
    PointId {
        point_id_options: Some(PointIdOptions::Uuid(s)),
    }
}

fn id_string(p: &PointId) -> Option<String> {
    match p.point_id_options.as_ref()? {
        PointIdOptions::Uuid(s) => Some(s.clone()),
        PointIdOptions::Num(n) => Some(n.to_string()),
    }
}

/// Which payload keys to return: always the id, and what `flags` asks for.
fn with_payload(flags: u32) -> Option<WithPayloadSelector> {
    let mut fields = vec![payload::ID.to_string()];
    if flags & include::METADATA != 0 {
        fields.push(payload::META.into());
    }
    if flags & include::TEXT != 0 {
        fields.push(payload::TEXT.into());
    }
    Some(WithPayloadSelector {
        selector_options: Some(with_payload_selector::SelectorOptions::Include(
            PayloadIncludeSelector { fields },
        )),
    })
}

/// The stored vector (cosine: the `raw` copy) when `flags` asks for it.
fn with_vectors(flags: u32, metric: Metric) -> Option<WithVectorsSelector> {
    let options = if flags & include::VECTOR != 0 {
        let name = if metric == Metric::Cosine { RAW } else { DENSE };
        with_vectors_selector::SelectorOptions::Include(VectorsSelector {
            names: vec![name.into()],
        })
    } else {
        with_vectors_selector::SelectorOptions::Enable(false)
    };
    Some(WithVectorsSelector {
        selector_options: Some(options),
    })
}

/// A returned point as a result.
fn to_match(
    payload: &HashMap<String, Value>,
    vectors: Option<VectorsOutput>,
    score: f64,
    flags: u32,
    metric: Metric,
) -> PluginResult<Match> {
    let id = get_str(payload, payload::ID).ok_or_else(|| {
        PluginError::internal("a point without `_id` in its payload: it was not written by strata")
    })?;
    let vector = if flags & include::VECTOR != 0 {
        let name = if metric == Metric::Cosine { RAW } else { DENSE };
        let found = match vectors.and_then(|v| v.vectors_options) {
            Some(vectors_output::VectorsOptions::Vectors(mut named)) => named
                .vectors
                .remove(name)
                .and_then(|v| v.vector)
                .and_then(|v| match v {
                    vector_output::Vector::Dense(d) => Some(d.data),
                    _ => None,
                }),
            _ => None,
        };
        Some(found.ok_or_else(|| {
            PluginError::internal(format!(
                "point {id:?} came back without its `{name}` vector"
            ))
        })?)
    } else {
        None
    };
    Ok(Match {
        id: id.to_string(),
        score,
        vector,
        metadata_json: (flags & include::METADATA != 0)
            .then(|| get_str(payload, payload::META).unwrap_or("{}").to_string()),
        text: (flags & include::TEXT != 0)
            .then(|| get_str(payload, payload::TEXT).map(String::from))
            .flatten(),
    })
}

/// Options of a collection (`create_collection`'s `options_json`).
#[derive(Default)]
struct CollectionOptions {
    /// Metadata paths to index, with the index kind (`keyword`, `float`, `bool`).
    payload_indexes: Vec<(String, FieldType)>,
    quantization: Option<Quantization>,
    on_disk: Option<bool>,
}

fn object_options(text: &str, what: &str) -> PluginResult<Map<String, Json>> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Json::Object(m)) => Ok(m),
        _ => Err(PluginError::invalid_input(format!(
            "{what} options must be a JSON object"
        ))),
    }
}

fn collection_options(text: &str) -> PluginResult<CollectionOptions> {
    let mut out = CollectionOptions::default();
    for (k, v) in object_options(text, "collection")? {
        let bad = |why: &str| PluginError::invalid_input(format!("collection option {k}: {why}"));
        match k.as_str() {
            "payload_indexes" => {
                let Json::Object(m) = v else {
                    return Err(bad(
                        "expects an object of path → \"keyword\" | \"float\" | \"bool\"",
                    ));
                };
                for (path, kind) in m {
                    let t = match kind.as_str() {
                        Some("keyword") => FieldType::Keyword,
                        Some("float") => FieldType::Float,
                        Some("bool") => FieldType::Bool,
                        _ => {
                            return Err(bad(&format!(
                                "{path}: use \"keyword\", \"float\" or \"bool\""
                            )));
                        }
                    };
                    let segs: Vec<String> = path.split('.').map(String::from).collect();
                    out.payload_indexes.push((payload::encode_path(&segs), t));
                }
            }
            "quantization" => {
                out.quantization = Some(match v.as_str() {
                    Some("none") => Quantization::None,
                    Some("scalar") => Quantization::Scalar,
                    Some("binary") => Quantization::Binary,
                    _ => return Err(bad("use \"none\", \"scalar\" or \"binary\"")),
                })
            }
            "on_disk" => {
                out.on_disk = Some(v.as_bool().ok_or_else(|| bad("expects true or false"))?)
            }
            _ => {
                return Err(bad(
                    "unknown option (known: payload_indexes, quantization, on_disk)",
                ));
            }
        }
    }
    Ok(out)
}

impl QdrantVectors {
    pub(crate) fn new(client: Qdrant, cfg: QdrantConfig) -> QdrantVectors {
        QdrantVectors {
            client,
            cfg,
            closed: AtomicBool::new(false),
            shapes: Mutex::default(),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn open_check(&self) -> PluginResult<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PluginError::closed("this qdrant backend"));
        }
        Ok(())
    }

    /// The server-side name, after checking the contract name.
    fn qname(&self, name: &str) -> PluginResult<String> {
        self.open_check()?;
        validate_collection_name(name)?;
        Ok(format!("{}{name}", self.cfg.collection_prefix))
    }

    /// The server's collection names under this backend's prefix (prefix stripped).
    pub(crate) async fn names(&self) -> PluginResult<Vec<String>> {
        self.open_check()?;
        let list = self
            .client
            .list_collections()
            .await
            .map_err(|e| map(e, "list collections"))?;
        let prefix = &self.cfg.collection_prefix;
        let mut names: Vec<String> = list
            .collections
            .into_iter()
            .filter_map(|c| c.name.strip_prefix(prefix.as_str()).map(String::from))
            .filter(|n| validate_collection_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The raw collection info, `None` when it does not exist.
    async fn raw_info(
        &self,
        name: &str,
    ) -> PluginResult<Option<qdrant_client::qdrant::CollectionInfo>> {
        let q = self.qname(name)?;
        match self
            .client
            .collection_info(GetCollectionInfoRequest { collection_name: q })
            .await
        {
            Ok(r) => Ok(r.result),
            Err(e) => {
                let e = map(e, &format!("collection {name:?}"));
                if e.kind() == ErrorKind::NotFound {
                    self.forget(name);
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn forget(&self, name: &str) {
        self.shapes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// The shape of a collection from its info.
    fn shape_of(name: &str, info: &qdrant_client::qdrant::CollectionInfo) -> PluginResult<Shape> {
        let params = info
            .config
            .as_ref()
            .and_then(|c| c.params.as_ref())
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| v.config.as_ref());
        let dense = match params {
            Some(vectors_config::Config::ParamsMap(m)) => m.map.get(DENSE),
            _ => None,
        };
        let Some(dense) = dense else {
            return Err(PluginError::invalid_input(format!(
                "Qdrant collection {name:?} was not created by strata (it has no `{DENSE}` vector)"
            )));
        };
        let metric = match Distance::try_from(dense.distance) {
            Ok(Distance::Cosine) => Metric::Cosine,
            Ok(Distance::Dot) => Metric::Dot,
            Ok(Distance::Euclid) => Metric::Euclidean,
            _ => {
                return Err(PluginError::unsupported(format!(
                    "collection {name:?}: its distance has no strata metric"
                )));
            }
        };
        Ok(Shape {
            dimension: dense.size as u32,
            metric,
        })
    }

    /// A collection's shape (cached), or `not_found`.
    async fn shape(&self, name: &str) -> PluginResult<Shape> {
        self.qname(name)?;
        if let Some(s) = self
            .shapes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(*s);
        }
        let info = self.raw_info(name).await?.ok_or_else(|| not_found(name))?;
        let shape = Self::shape_of(name, &info)?;
        self.shapes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), shape);
        Ok(shape)
    }

    /// Maps an error of a call on `name`; a vanished collection is `not_found`.
    fn fail(&self, name: &str, what: &str, e: qdrant_client::QdrantError) -> PluginError {
        let e = map(e, &format!("{what} {name:?}"));
        if e.kind() == ErrorKind::NotFound {
            self.forget(name);
        }
        e
    }

    /// Translates a filter and refuses a string range that stored strings
    /// too long to compare exactly would make inexact.
    async fn filter(&self, name: &str, t: Translation) -> PluginResult<Option<QFilter>> {
        if !t.long_paths.is_empty() {
            let should = t
                .long_paths
                .iter()
                .map(|(key, _)| long_condition(key))
                .collect();
            let n = self
                .count_raw(
                    name,
                    Some(QFilter {
                        should,
                        ..Default::default()
                    }),
                )
                .await?;
            if n > 0 {
                let paths: Vec<&str> = t.long_paths.iter().map(|(_, p)| p.as_str()).collect();
                return Err(PluginError::unsupported(format!(
                    "$gt/$gte/$lt/$lte on a string at {paths:?}: {n} records hold a string longer than {} bytes there, which the Qdrant plugin cannot compare exactly",
                    payload::MAX_CHUNKED
                )));
            }
        }
        Ok(t.filter)
    }

    async fn count_raw(&self, name: &str, filter: Option<QFilter>) -> PluginResult<u64> {
        let q = self.qname(name)?;
        let r = self
            .client
            .count(CountPoints {
                collection_name: q,
                filter,
                exact: Some(true),
                ..Default::default()
            })
            .await
            .map_err(|e| self.fail(name, "count in", e))?;
        Ok(r.result.map_or(0, |c| c.count))
    }

    fn search_params(&self, options: &Map<String, Json>) -> PluginResult<SearchParams> {
        let mut ef = u64::from(self.cfg.hnsw_ef_search);
        let mut exact = None;
        for (k, v) in options {
            match k.as_str() {
                "ef_search" => {
                    ef = v.as_u64().filter(|e| *e > 0).ok_or_else(|| {
                        PluginError::invalid_input(
                            "query option ef_search expects a positive integer",
                        )
                    })?
                }
                "exact" => {
                    exact = Some(v.as_bool().ok_or_else(|| {
                        PluginError::invalid_input("query option exact expects true or false")
                    })?)
                }
                other => {
                    return Err(PluginError::invalid_input(format!(
                        "unknown query option {other} (known: ef_search, exact)"
                    )));
                }
            }
        }
        Ok(SearchParams {
            hnsw_ef: Some(ef),
            exact,
            quantization: Some(QuantizationSearchParams {
                ignore: None,
                rescore: Some(true),
                oversampling: (self.cfg.quantization == Quantization::Binary).then_some(3.0),
            }),
            ..Default::default()
        })
    }

    async fn run_query(
        &self,
        name: &str,
        request: QueryPoints,
        flags: u32,
        metric: Metric,
        score: impl Fn(f32) -> f64,
    ) -> PluginResult<Vec<Match>> {
        let r = self
            .client
            .query(request)
            .await
            .map_err(|e| self.fail(name, "query", e))?;
        r.result
            .into_iter()
            .map(|p: ScoredPoint| to_match(&p.payload, p.vectors, score(p.score), flags, metric))
            .collect()
    }

    fn points(
        &self,
        records: Vec<VectorRecord>,
        metric: Metric,
    ) -> PluginResult<Vec<(PointStruct, usize)>> {
        records
            .into_iter()
            .map(|r| {
                let meta: Map<String, Json> = match r.metadata_json.as_str() {
                    "" => Map::new(),
                    t => match serde_json::from_str(t) {
                        Ok(Json::Object(m)) => m,
                        _ => {
                            return Err(PluginError::invalid_input(format!(
                                "record {:?}: metadata must be a JSON object",
                                r.id
                            )));
                        }
                    },
                };
                let payload = record_payload(&r.id, &r.metadata_json, &meta, r.text.as_deref());
                let mut named = HashMap::new();
                let dense = |v: &[f32]| Vector {
                    vector: Some(vector::Vector::Dense(DenseVector { data: v.to_vec() })),
                    ..Default::default()
                };
                named.insert(DENSE.to_string(), dense(&r.vector));
                if metric == Metric::Cosine {
                    named.insert(RAW.to_string(), dense(&r.vector));
                }
                if let Some(text) = r.text.as_deref() {
                    let (indices, values) = sparse::document(text);
                    if !indices.is_empty() {
                        named.insert(
                            SPARSE.to_string(),
                            Vector {
                                vector: Some(vector::Vector::Sparse(SparseVector {
                                    values,
                                    indices,
                                })),
                                ..Default::default()
                            },
                        );
                    }
                }
                let size = r.vector.len() * 8
                    + r.metadata_json.len() * 4
                    + r.text.as_ref().map_or(0, |t| t.len() * 3)
                    + 256;
                Ok((
                    PointStruct {
                        id: Some(uuid_id(point_id(&r.id))),
                        payload,
                        vectors: Some(qdrant_client::qdrant::Vectors {
                            vectors_options: Some(vectors::VectorsOptions::Vectors(NamedVectors {
                                vectors: named,
                            })),
                        }),
                    },
                    size,
                ))
            })
            .collect()
    }

    /// Server-side fusion, or the contract's formula here when the server's
    /// weighted RRF differs from it (see [`VectorBackend::hybrid_query`]).
    async fn fuse_here(
        &self,
        request: &HybridRequest,
        shape: Shape,
        filter: Option<QFilter>,
        params: SearchParams,
        sparse_q: Option<(Vec<u32>, Vec<f32>)>,
    ) -> PluginResult<Vec<Match>> {
        let q = self.qname(&request.collection)?;
        let n = request.candidates_or_default() as u64;
        let base = QueryPoints {
            collection_name: q,
            filter,
            limit: Some(n),
            with_payload: with_payload(request.include),
            with_vectors: with_vectors(request.include, shape.metric),
            ..Default::default()
        };
        let dense = self
            .run_query(
                &request.collection,
                QueryPoints {
                    query: dense_input(&request.vector),
                    using: Some(DENSE.into()),
                    params: Some(params),
                    ..base.clone()
                },
                request.include,
                shape.metric,
                f64::from,
            )
            .await?;
        let lexical = match sparse_q {
            Some(sq) => {
                self.run_query(
                    &request.collection,
                    QueryPoints {
                        query: sparse_input(sq),
                        using: Some(SPARSE.into()),
                        ..base
                    },
                    request.include,
                    shape.metric,
                    f64::from,
                )
                .await?
            }
            None => Vec::new(),
        };
        Ok(fuse_rrf(request, dense, lexical))
    }
}

/// `_long` holds `key`.
fn long_condition(key: &str) -> qdrant_client::qdrant::Condition {
    qdrant_client::qdrant::Condition {
        condition_one_of: Some(qdrant_client::qdrant::condition::ConditionOneOf::Field(
            qdrant_client::qdrant::FieldCondition {
                key: LONG.into(),
                r#match: Some(qdrant_client::qdrant::Match {
                    match_value: Some(qdrant_client::qdrant::r#match::MatchValue::Keyword(
                        key.into(),
                    )),
                }),
                ..Default::default()
            },
        )),
    }
}

impl VectorBackend for QdrantVectors {
    /// Every call is network I/O on the plugin's runtime.
    fn runs(&self, _call: VectorCall<'_>) -> Runs {
        Runs::Async
    }

    async fn create_collection(&self, spec: CollectionSpec) -> PluginResult<()> {
        let q = self.qname(&spec.name)?;
        if spec.dimension == 0 || spec.dimension > MAX_DIMENSION {
            return Err(PluginError::invalid_input(format!(
                "dimension {} is out of range (1..={MAX_DIMENSION})",
                spec.dimension
            )));
        }
        let opts = collection_options(&spec.options_json)?;
        let wanted = Shape {
            dimension: spec.dimension,
            metric: spec.metric,
        };
        let check = |have: Shape| {
            if have == wanted {
                Ok(())
            } else {
                Err(PluginError::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "collection {:?} exists with dimension {} and metric {} (asked: {} and {})",
                        spec.name,
                        have.dimension,
                        have.metric.name(),
                        spec.dimension,
                        spec.metric.name()
                    ),
                ))
            }
        };
        if let Some(info) = self.raw_info(&spec.name).await? {
            return check(Self::shape_of(&spec.name, &info)?);
        }
        let on_disk = opts.on_disk.unwrap_or(self.cfg.on_disk);
        let quantization = match opts.quantization.unwrap_or(self.cfg.quantization) {
            Quantization::None => None,
            Quantization::Scalar => Some(quantization_config::Quantization::Scalar(
                ScalarQuantization {
                    r#type: QuantizationType::Int8 as i32,
                    quantile: Some(0.99),
                    always_ram: Some(true),
                },
            )),
            Quantization::Binary => Some(quantization_config::Quantization::Binary(
                BinaryQuantization {
                    always_ram: Some(true),
                    ..Default::default()
                },
            )),
        };
        let mut params = HashMap::new();
        params.insert(
            DENSE.to_string(),
            VectorParams {
                size: u64::from(spec.dimension),
                distance: distance(spec.metric) as i32,
                hnsw_config: Some(HnswConfigDiff {
                    m: Some(u64::from(self.cfg.hnsw_m)),
                    ef_construct: Some(u64::from(self.cfg.hnsw_ef_construction)),
                    on_disk: Some(on_disk),
                    ..Default::default()
                }),
                quantization_config: quantization.map(|q| QuantizationConfig {
                    quantization: Some(q),
                }),
                on_disk: Some(on_disk),
                ..Default::default()
            },
        );
        if spec.metric == Metric::Cosine {
            params.insert(
                RAW.to_string(),
                VectorParams {
                    size: u64::from(spec.dimension),
                    distance: Distance::Dot as i32,
                    // m = 0: no graph; this copy is only ever read back.
                    hnsw_config: Some(HnswConfigDiff {
                        m: Some(0),
                        ..Default::default()
                    }),
                    on_disk: Some(true),
                    ..Default::default()
                },
            );
        }
        let mut sparse = HashMap::new();
        sparse.insert(
            SPARSE.to_string(),
            SparseVectorParams {
                index: None,
                modifier: Some(Modifier::Idf as i32),
            },
        );
        let mut metadata = HashMap::new();
        metadata.insert(
            "strata".to_string(),
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![Value {
                        kind: Some(Kind::StringValue(format!(
                            "{}:{}",
                            spec.metric.name(),
                            spec.dimension
                        ))),
                    }],
                })),
            },
        );
        let created = self
            .client
            .create_collection(CreateCollection {
                collection_name: q.clone(),
                vectors_config: Some(VectorsConfig {
                    config: Some(vectors_config::Config::ParamsMap(VectorParamsMap {
                        map: params,
                    })),
                }),
                sparse_vectors_config: Some(SparseVectorConfig { map: sparse }),
                shard_number: Some(self.cfg.shard_number),
                replication_factor: Some(self.cfg.replication_factor),
                on_disk_payload: Some(on_disk),
                metadata,
                ..Default::default()
            })
            .await;
        if let Err(e) = created {
            let e = map(e, &format!("create collection {:?}", spec.name));
            // Created meanwhile by someone else: same spec is fine.
            return match self.raw_info(&spec.name).await? {
                Some(info) => check(Self::shape_of(&spec.name, &info)?),
                None => Err(e),
            };
        }
        for (key, kind) in opts.payload_indexes {
            self.client
                .create_field_index(CreateFieldIndexCollection {
                    collection_name: q.clone(),
                    wait: Some(true),
                    field_name: format!("f.{key}"),
                    field_type: Some(kind as i32),
                    ..Default::default()
                })
                .await
                .map_err(|e| map(e, &format!("index a payload field of {:?}", spec.name)))?;
        }
        self.shapes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(spec.name.clone(), wanted);
        Ok(())
    }

    async fn drop_collection(&self, name: String) -> PluginResult<bool> {
        let q = self.qname(&name)?;
        self.forget(&name);
        let exists = self
            .client
            .collection_exists(CollectionExistsRequest {
                collection_name: q.clone(),
            })
            .await
            .map_err(|e| map(e, &format!("drop collection {name:?}")))?;
        if !exists {
            return Ok(false);
        }
        let r = self
            .client
            .delete_collection(DeleteCollection {
                collection_name: q,
                timeout: None,
            })
            .await
            .map_err(|e| map(e, &format!("drop collection {name:?}")))?;
        Ok(r.result)
    }

    async fn list_collections(&self) -> PluginResult<Vec<CollectionInfo>> {
        let mut out = Vec::new();
        for name in self.names().await? {
            // Skip what vanished meanwhile or is not strata's.
            if let Ok(Some(info)) = self.collection_info(name).await {
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn collection_info(&self, name: String) -> PluginResult<Option<CollectionInfo>> {
        let Some(info) = self.raw_info(&name).await? else {
            return Ok(None);
        };
        let shape = Self::shape_of(&name, &info)?;
        let count = self.count_raw(&name, None).await?;
        let quantized = info
            .config
            .as_ref()
            .and_then(|c| c.params.as_ref())
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| match v.config.as_ref()? {
                vectors_config::Config::ParamsMap(m) => m.map.get(DENSE)?.quantization_config,
                _ => None,
            })
            .and_then(|q| q.quantization)
            .map_or("none", |q| match q {
                quantization_config::Quantization::Scalar(_) => "scalar",
                quantization_config::Quantization::Binary(_) => "binary",
                _ => "product",
            });
        let details = json!({
            "index": "hnsw",
            "engine": "qdrant",
            "collection": format!("{}{name}", self.cfg.collection_prefix),
            "status": info.status,
            "segments": info.segments_count,
            "indexed_vectors": info.indexed_vectors_count,
            "quantization": quantized,
        });
        Ok(Some(CollectionInfo {
            name,
            dimension: shape.dimension,
            metric: shape.metric,
            count,
            details_json: details.to_string(),
        }))
    }

    async fn upsert(&self, collection: String, records: Vec<VectorRecord>) -> PluginResult<u64> {
        let shape = self.shape(&collection).await?;
        validate_batch(&records, shape.dimension)?;
        for r in &records {
            check_f32_scorable(
                &r.vector,
                shape.metric,
                &format!("record {:?}", r.id),
                "Qdrant",
            )?;
        }
        let written = records.len() as u64;
        let q = self.qname(&collection)?;
        let points = self.points(records, shape.metric)?;
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut it = points.into_iter().peekable();
        while let Some((p, size)) = it.next() {
            batch.push(p);
            bytes += size;
            let full = batch.len() >= self.cfg.batch_max_points
                || it
                    .peek()
                    .is_some_and(|(_, s)| bytes + s > self.cfg.batch_max_bytes);
            if full || it.peek().is_none() {
                self.client
                    .upsert_points(UpsertPoints {
                        collection_name: q.clone(),
                        wait: Some(true),
                        points: std::mem::take(&mut batch),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| self.fail(&collection, "upsert into", e))?;
                bytes = 0;
            }
        }
        Ok(written)
    }

    async fn query(&self, request: QueryRequest) -> PluginResult<Vec<Match>> {
        let shape = self.shape(&request.collection).await?;
        validate_vector(&request.vector, shape.dimension, "query")?;
        check_f32_scorable(&request.vector, shape.metric, "query vector", "Qdrant")?;
        let t = translate_str(&request.filter_json)?;
        let params = self.search_params(&object_options(&request.options_json, "query")?)?;
        if request.top_k == 0 {
            return Ok(Vec::new());
        }
        let filter = self.filter(&request.collection, t).await?;
        let euclid = shape.metric == Metric::Euclidean;
        let hits = self
            .run_query(
                &request.collection,
                QueryPoints {
                    collection_name: self.qname(&request.collection)?,
                    query: dense_input(&request.vector),
                    using: Some(DENSE.into()),
                    filter,
                    params: Some(params),
                    limit: Some(u64::from(request.top_k)),
                    with_payload: with_payload(request.include),
                    with_vectors: with_vectors(request.include, shape.metric),
                    ..Default::default()
                },
                request.include,
                shape.metric,
                |s| if euclid { -f64::from(s) } else { f64::from(s) },
            )
            .await?;
        let min = request.min_score;
        Ok(hits
            .into_iter()
            .filter(|m| min.is_none_or(|x| m.score >= x))
            .collect())
    }

    /// Server-side RRF (Query API: a dense and a sparse prefetch, each with
    /// the filter and `candidates` results, fused by `rrf` with
    /// `k = rrf_k + 1`: Qdrant's ranks start at 0, the contract's at 1).
    /// Qdrant's weighted RRF is `1 / ((rank + 1) / w + k − 1)`, which is
    /// not the contract's `w / (rrf_k + rank)` for `w ≠ 1`: equal positive
    /// weights (the default 1 and 1) fuse on the server, scores scaled by
    /// the weight; other weights (and a query text without words) fuse
    /// here, over the two rankings fetched from the server, with the
    /// contract's formula.
    async fn hybrid_query(&self, request: HybridRequest) -> PluginResult<Vec<Match>> {
        let shape = self.shape(&request.collection).await?;
        validate_vector(&request.vector, shape.dimension, "hybrid query")?;
        check_f32_scorable(&request.vector, shape.metric, "query vector", "Qdrant")?;
        let (dw, lw) = (request.dense_weight, request.lexical_weight);
        if [dw, lw].iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(PluginError::invalid_input(format!(
                "hybrid weights must be finite and non-negative (got dense {dw}, lexical {lw})"
            )));
        }
        let t = translate_str(&request.filter_json)?;
        if request.top_k == 0 {
            return Ok(Vec::new());
        }
        let filter = self.filter(&request.collection, t).await?;
        let params = self.search_params(&Map::new())?;
        let sq = sparse::query(&request.text);
        let sq = (!sq.0.is_empty()).then_some(sq);
        // Equal positive weights: the server's RRF is the contract's, times
        // the weight. Anything else fuses here (see above).
        let (Some(sq), true) = (sq.clone(), dw == lw && dw > 0.0) else {
            return self.fuse_here(&request, shape, filter, params, sq).await;
        };
        let scale = dw;
        let n = request.candidates_or_default() as u64;
        let prefetch = vec![
            PrefetchQuery {
                query: dense_input(&request.vector),
                using: Some(DENSE.into()),
                filter: filter.clone(),
                params: Some(params),
                limit: Some(n),
                ..Default::default()
            },
            PrefetchQuery {
                query: sparse_input(sq),
                using: Some(SPARSE.into()),
                filter,
                limit: Some(n),
                ..Default::default()
            },
        ];
        self.run_query(
            &request.collection,
            QueryPoints {
                collection_name: self.qname(&request.collection)?,
                prefetch,
                query: Some(Query {
                    variant: Some(query::Variant::Rrf(Rrf {
                        k: Some(request.rrf_k.saturating_add(1)),
                        weights: Vec::new(),
                    })),
                }),
                limit: Some(u64::from(request.top_k)),
                with_payload: with_payload(request.include),
                with_vectors: with_vectors(request.include, shape.metric),
                ..Default::default()
            },
            request.include,
            shape.metric,
            |s| scale * f64::from(s),
        )
        .await
    }

    async fn fetch(
        &self,
        collection: String,
        ids: Vec<String>,
        flags: u32,
    ) -> PluginResult<Vec<Match>> {
        let shape = self.shape(&collection).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let unique: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let r = self
            .client
            .get_points(GetPoints {
                collection_name: self.qname(&collection)?,
                ids: unique.iter().map(|id| uuid_id(point_id(id))).collect(),
                with_payload: with_payload(flags),
                with_vectors: with_vectors(flags, shape.metric),
                ..Default::default()
            })
            .await
            .map_err(|e| self.fail(&collection, "fetch from", e))?;
        let mut found: HashMap<String, Match> = HashMap::new();
        for p in r.result {
            let m = to_match(&p.payload, p.vectors, 0.0, flags, shape.metric)?;
            found.insert(m.id.clone(), m);
        }
        Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
    }

    /// Qdrant does not say how many points a delete removed: the plugin
    /// counts them first (exactly), then deletes with `wait = true`. A
    /// concurrent writer can make the number off; the delete itself is exact.
    async fn delete(&self, request: DeleteRequest) -> PluginResult<u64> {
        let target = request.target()?;
        let name = &request.collection;
        self.shape(name).await?;
        let q = self.qname(name)?;
        let (selector, n) = match target {
            DeleteTarget::Ids(ids) => {
                let unique: HashSet<&str> = ids.iter().map(String::as_str).collect();
                let point_ids: Vec<PointId> =
                    unique.iter().map(|id| uuid_id(point_id(id))).collect();
                let existing = self
                    .client
                    .get_points(GetPoints {
                        collection_name: q.clone(),
                        ids: point_ids.clone(),
                        with_payload: Some(false.into()),
                        with_vectors: Some(false.into()),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| self.fail(name, "delete from", e))?
                    .result
                    .len() as u64;
                (
                    PointsSelectorOneOf::Points(PointsIdsList { ids: point_ids }),
                    existing,
                )
            }
            DeleteTarget::Filter(f) => {
                let filter = self.filter(name, translate(&f)?).await?.unwrap_or_default();
                let n = self.count_raw(name, Some(filter.clone())).await?;
                (PointsSelectorOneOf::Filter(filter), n)
            }
            DeleteTarget::All => {
                let n = self.count_raw(name, None).await?;
                (PointsSelectorOneOf::Filter(QFilter::default()), n)
            }
            _ => return Err(PluginError::unsupported("this kind of delete")),
        };
        if n == 0 {
            return Ok(0);
        }
        self.client
            .delete_points(DeletePoints {
                collection_name: q,
                wait: Some(true),
                points: Some(PointsSelector {
                    points_selector_one_of: Some(selector),
                }),
                ..Default::default()
            })
            .await
            .map_err(|e| self.fail(name, "delete from", e))?;
        Ok(n)
    }

    async fn count(&self, collection: String, filter_json: String) -> PluginResult<u64> {
        self.shape(&collection).await?;
        let t = translate_str(&filter_json)?;
        let filter = self.filter(&collection, t).await?;
        self.count_raw(&collection, filter).await
    }

    /// Pages in point-id order (Qdrant's scroll); the cursor is the next
    /// page's first point id.
    async fn scan(&self, request: ScanRequest) -> PluginResult<ScanPage> {
        let shape = self.shape(&request.collection).await?;
        let t = translate_str(&request.filter_json)?;
        let filter = self.filter(&request.collection, t).await?;
        let offset = match request.cursor.as_deref() {
            None => None,
            Some(c) => match uuid::Uuid::parse_str(c) {
                Ok(u) => Some(uuid_id(u.to_string())),
                Err(_) => {
                    return Err(PluginError::invalid_input(format!(
                        "scan cursor {c:?} is not one this backend handed out"
                    )));
                }
            },
        };
        let limit = request.limit.clamp(1, MAX_SCAN_PAGE);
        let r = self
            .client
            .scroll(ScrollPoints {
                collection_name: self.qname(&request.collection)?,
                filter,
                offset,
                limit: Some(limit),
                with_payload: with_payload(request.include),
                with_vectors: with_vectors(request.include, shape.metric),
                ..Default::default()
            })
            .await
            .map_err(|e| self.fail(&request.collection, "scan", e))?;
        let records = r
            .result
            .into_iter()
            .map(|p| to_match(&p.payload, p.vectors, 0.0, request.include, shape.metric))
            .collect::<PluginResult<Vec<_>>>()?;
        Ok(ScanPage {
            records,
            next_cursor: r.next_page_offset.as_ref().and_then(id_string),
        })
    }
}
