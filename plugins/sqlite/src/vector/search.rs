//! Ranking: dense queries (exact or through the index) and hybrid queries.
//!
//! A filtered query first selects the matching pks: on the metadata the
//! cache holds (read at the collection's first filtered query, patched by
//! writes after it), the filter evaluated on each row's JSON text by a
//! [`TextMatcher`](strata_plugin::filter::TextMatcher) — no SQL, no
//! document built per row; in SQL (the shared filter language translated
//! by `crate::filter_sql`) when the cache cannot answer. Then it ranks
//! exactly those in the cache ([`Flat::search`](strata_ann::Flat::search): the
//! index unless the filter is selective, rescored exactly). Hybrid: BM25
//! over FTS5 (query terms OR-ed, each quoted) and the dense ranking, each
//! cut to `candidates`, fused by reciprocal rank fusion. A filtered
//! hybrid query selects the rows passing its filter once, for both halves:
//! the full-text matches are read in BM25 order and kept while among them
//! (`store::lexical_among`), so no match reads its row to be filtered.

use std::collections::HashMap;

use strata_ann::{Flat, KeySet, SearchOptions};
use strata_plugin::{
    PluginError, PluginResult,
    filter::Filter,
    vector::{HybridRequest, Match, QueryRequest, validate_vector},
};

use super::{
    cache::{Cache, LoadedGuard},
    catalog::Meta,
    store,
};
use crate::sql::Shared;

/// Per-query options (`QueryRequest::options_json`).
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryOptions {
    /// Candidates explored by the HNSW search.
    ef_search: Option<usize>,
    /// Skip the index: exact search.
    #[serde(default)]
    exact: bool,
}

fn query_options(text: &str) -> PluginResult<QueryOptions> {
    if text.trim().is_empty() {
        return Ok(QueryOptions::default());
    }
    serde_json::from_str(text).map_err(|e| {
        PluginError::invalid_input(format!(
            "query options {text}: {e} (the sqlite backend takes ef_search and exact)"
        ))
    })
}

/// The largest `ef_search` a query may ask for and still run inline: an
/// HNSW search of 512 candidates takes about 1 ms at 100K × 384.
const INLINE_MAX_EF: usize = 512;

/// Whether a query with these options is short enough to run inline on a
/// collection quick to search: not forced exact, and its `ef_search` (or
/// the backend's `default_ef`) at most [`INLINE_MAX_EF`]. Options that do
/// not parse are not (the query then fails on the pool, naming them).
pub(super) fn quick_options(text: &str, default_ef: usize) -> bool {
    query_options(text)
        .is_ok_and(|o| !o.exact && o.ef_search.unwrap_or(default_ef) <= INLINE_MAX_EF)
}

/// Where a search reads the collection's vectors.
pub(super) enum Vectors<'a> {
    /// A read guard on a cache already found loaded and current (an
    /// inline query, see [`Cache::loaded_now`]).
    Held(LoadedGuard),
    /// The cache, loaded (or reloaded) now if it must be.
    Load(&'a Cache),
}

impl Vectors<'_> {
    async fn guard(self, meta: &Meta) -> PluginResult<LoadedGuard> {
        match self {
            Vectors::Held(guard) => Ok(guard),
            Vectors::Load(cache) => cache.loaded(meta).await,
        }
    }
}

/// The `k` best `(pk, id, score)` for `vector` among the rows passing
/// `filter`.
async fn dense(
    shared: &Shared,
    vectors: Vectors<'_>,
    meta: &Meta,
    vector: &[f32],
    k: usize,
    filter: &Filter,
    options: &QueryOptions,
) -> PluginResult<Vec<(i64, String, f64)>> {
    let (loaded, allowed) = selection(shared, vectors, meta, filter).await?;
    Ok(rank(&loaded, vector, k, allowed.as_ref(), options))
}

/// The `k` best `(pk, id, score)` for `vector` in `loaded`, among the
/// `allowed` pks when given.
fn rank(
    loaded: &LoadedGuard,
    vector: &[f32],
    k: usize,
    allowed: Option<&KeySet>,
    options: &QueryOptions,
) -> Vec<(i64, String, f64)> {
    let q = loaded.flat.prepare_query(vector);
    let top = loaded.flat.search(
        &q,
        k,
        SearchOptions::new(options.ef_search, options.exact),
        allowed,
    );
    top.into_iter()
        .map(|(i, s)| (loaded.flat.key(i), loaded.ids[i].clone(), s))
        .collect()
}

/// The collection in memory and, unless `filter` passes everything, the
/// pks passing it: from the metadata the cache holds, else in SQL.
async fn selection(
    shared: &Shared,
    vectors: Vectors<'_>,
    meta: &Meta,
    filter: &Filter,
) -> PluginResult<(LoadedGuard, Option<KeySet>)> {
    let cache = match &vectors {
        Vectors::Load(cache) => Some(*cache),
        Vectors::Held(_) => None,
    };
    let mut loaded = vectors.guard(meta).await?;
    let allowed = if filter.is_all() {
        None
    } else if let Some(pks) = loaded.matching(filter) {
        Some(pks)
    } else if let Some(cache) = cache {
        // The first filtered query of this cache: every row's metadata is
        // read (from the metadata index, not the table) and offered to the
        // cache for the next ones. The cache is not held meanwhile, so a
        // write can patch it.
        drop(loaded);
        let m = meta.clone();
        let (generation, rows) = shared
            .with_reader(move |c| store::all_metadata(c, &m))
            .await?;
        loaded = cache.loaded(meta).await?;
        let answer = match loaded.offer_metadata(generation, rows) {
            None => loaded.matching(filter),
            // Not kept (a write committed in between): the rows read are
            // one snapshot all the same, as SQL's answer would be.
            Some(rows) => {
                let mut m = filter.text_matcher();
                rows.iter()
                    .map(|(pk, text)| Ok(m.matches(text)?.then_some(*pk)))
                    .filter_map(Result::transpose)
                    .collect::<Result<KeySet, serde_json::Error>>()
                    .ok()
            }
        };
        match answer {
            Some(pks) => Some(pks),
            None => sql_matching(shared, meta, filter).await?,
        }
    } else {
        sql_matching(shared, meta, filter).await?
    };
    Ok((loaded, allowed))
}

/// The pks passing `filter`, selected in SQL (the cache's metadata could
/// not answer: a write raced its first read, or a row's text is not JSON).
async fn sql_matching(
    shared: &Shared,
    meta: &Meta,
    filter: &Filter,
) -> PluginResult<Option<KeySet>> {
    let (m, f) = (meta.clone(), filter.clone());
    shared
        .with_reader(move |c| store::filtered_pks(c, &m, &f))
        .await
}

/// How [`materialise`] treats a ranked record whose row is gone.
struct Recheck<'a> {
    /// Rows read by id must pass this filter (the query's).
    filter: &'a Filter,
    /// Dense queries: the query vector, to score a re-read row exactly
    /// (hybrid scores are fused ranks and are kept).
    query: Option<&'a [f32]>,
    /// Dense queries: rescored rows below this are left out.
    min_score: Option<f64>,
}

/// Reads the rows of the ranked `(pk, id, score)` and returns them as
/// results, best first (ties: lower pk first).
///
/// The ranking comes from the in-memory cache, the rows from the database
/// now, and a write may have committed in between. An upsert gives a
/// record a new pk, so a ranked pk that is gone is looked up again by its
/// id in the same read snapshot: a record written again comes back with
/// its current row (rescored exactly for a dense query, and only if it
/// still passes the filter); a record deleted meanwhile is left out.
/// Without this, a query racing a re-upsert lost records that exist both
/// before and after the write.
async fn materialise(
    shared: &Shared,
    meta: &Meta,
    ranked: Vec<(i64, String, f64)>,
    flags: u32,
    recheck: Recheck<'_>,
) -> PluginResult<Vec<Match>> {
    let pks: Vec<i64> = ranked.iter().map(|(pk, _, _)| *pk).collect();
    let ids: Vec<String> = ranked.iter().map(|(_, id, _)| id.clone()).collect();
    let (m, filter) = (meta.clone(), recheck.filter.clone());
    let (rows, again) = shared
        .with_reader(move |c| {
            let _snapshot = if c.is_autocommit() {
                Some(c.unchecked_transaction().map_err(crate::error::map)?)
            } else {
                None
            };
            let rows = store::rows_by_pk(c, &m, &pks)?;
            let gone: Vec<String> = pks
                .iter()
                .zip(&ids)
                .filter(|(pk, _)| !rows.contains_key(pk))
                .map(|(_, id)| id.clone())
                .collect();
            let again = if gone.is_empty() {
                HashMap::new()
            } else {
                store::rows_by_id(c, &m, &gone, &filter)?
            };
            Ok((rows, again))
        })
        .await?;
    if again.is_empty() {
        // The common case: every ranked row is still there, in order.
        return Ok(ranked
            .into_iter()
            .filter_map(|(pk, _, s)| rows.get(&pk).map(|r| store::to_match(r, s, flags)))
            .collect());
    }
    let rescore = |row: &store::Row| -> Option<f64> {
        let q = recheck.query?;
        let v = row.vector();
        (v.len() == q.len()).then(|| {
            let mut one = Flat::with_capacity(meta.ann_metric(), v.len(), 1);
            one.push(0, v);
            one.score(&one.prepare_query(q), 0)
        })
    };
    let mut out: Vec<(f64, i64, Match)> = Vec::with_capacity(ranked.len());
    for (pk, id, score) in ranked {
        if let Some(r) = rows.get(&pk) {
            out.push((score, pk, store::to_match(r, score, flags)));
        } else if let Some((pk, r)) = again.get(&id) {
            let score = match recheck.query {
                Some(_) => match rescore(r) {
                    Some(s) => s,
                    None => continue,
                },
                None => score,
            };
            if recheck.min_score.is_some_and(|m| score < m) {
                continue;
            }
            out.push((score, *pk, store::to_match(r, score, flags)));
        }
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(out.into_iter().map(|(_, _, m)| m).collect())
}

/// A dense query, searched in `ready` when given (see
/// [`Cache::loaded_now`]), else in the cache loaded now.
pub(super) async fn query(
    shared: &Shared,
    vectors: Vectors<'_>,
    meta: &Meta,
    request: &QueryRequest,
) -> PluginResult<Vec<Match>> {
    validate_vector(&request.vector, meta.dimension, "query")?;
    let filter = Filter::parse_str(&request.filter_json)?;
    let options = query_options(&request.options_json)?;
    let top = dense(
        shared,
        vectors,
        meta,
        &request.vector,
        request.top_k as usize,
        &filter,
        &options,
    )
    .await?;
    let top: Vec<(i64, String, f64)> = top
        .into_iter()
        .filter(|(_, _, s)| request.min_score.is_none_or(|m| *s >= m))
        .collect();
    if request.include == 0 {
        // Ids and scores come from the cache: no row reads.
        return Ok(top
            .into_iter()
            .map(|(_, id, score)| Match {
                id,
                score,
                vector: None,
                metadata_json: None,
                text: None,
            })
            .collect());
    }
    materialise(
        shared,
        meta,
        top,
        request.include,
        Recheck {
            filter: &filter,
            query: Some(&request.vector),
            min_score: request.min_score,
        },
    )
    .await
}

/// A hybrid query: dense and BM25 rankings fused by RRF.
pub(super) async fn hybrid(
    shared: &Shared,
    cache: &Cache,
    meta: &Meta,
    request: &HybridRequest,
) -> PluginResult<Vec<Match>> {
    validate_vector(&request.vector, meta.dimension, "hybrid query")?;
    let filter = Filter::parse_str(&request.filter_json)?;
    let k = request.top_k as usize;
    let candidates = request.candidates_or_default();
    let (loaded, allowed) = selection(shared, Vectors::Load(cache), meta, &filter).await?;
    let total = loaded.flat.len();
    let dense = rank(
        &loaded,
        &request.vector,
        candidates,
        allowed.as_ref(),
        &QueryOptions::default(),
    );
    // Not held while the full-text half reads: a write can patch the cache.
    drop(loaded);
    let lexical = match store::fts_words(&request.text) {
        None => Vec::new(),
        Some(q) => {
            let m = meta.clone();
            match allowed {
                // A filter: the rows passing it are known, and the
                // full-text matches are read in BM25 order and kept if
                // among them, without reading any row's metadata.
                Some(allowed) => {
                    shared
                        .with_reader(move |c| {
                            store::lexical_among(c, &m, q, &allowed, total, candidates)
                        })
                        .await?
                }
                // No filter (`selection` answers every other with a set).
                None => {
                    shared
                        .with_reader(move |c| store::lexical(c, &m, q, candidates))
                        .await?
                }
            }
        }
    };
    let rrf_k = f64::from(request.rrf_k);
    let mut fused: HashMap<i64, f64> = HashMap::new();
    for (rank, (pk, _, _)) in dense.iter().enumerate() {
        *fused.entry(*pk).or_default() += request.dense_weight / (rrf_k + rank as f64 + 1.0);
    }
    for (rank, (pk, _)) in lexical.iter().enumerate() {
        *fused.entry(*pk).or_default() += request.lexical_weight / (rrf_k + rank as f64 + 1.0);
    }
    let ids: HashMap<i64, &String> = dense
        .iter()
        .map(|(pk, id, _)| (*pk, id))
        .chain(lexical.iter().map(|(pk, id)| (*pk, id)))
        .collect();
    let mut ranked: Vec<(i64, f64)> = fused.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    let ranked = ranked
        .into_iter()
        .map(|(pk, s)| {
            (
                pk,
                ids.get(&pk).map_or_else(String::new, |id| (*id).clone()),
                s,
            )
        })
        .collect();
    materialise(
        shared,
        meta,
        ranked,
        request.include,
        Recheck {
            filter: &filter,
            query: None,
            min_score: None,
        },
    )
    .await
}
