//! Ranking: dense queries (exact or through the index) and hybrid queries.
//!
//! A filtered query first selects the matching pks in SQL (the shared
//! filter language translated by `crate::filter_sql`), then ranks exactly
//! those in the cache ([`Flat::search`](strata_ann::Flat::search): the
//! index unless the filter is selective, rescored exactly). Hybrid: BM25
//! over FTS5 (query terms OR-ed, each quoted) and the dense ranking, each
//! cut to `candidates`, fused by reciprocal rank fusion.

use std::collections::HashMap;

use strata_ann::SearchOptions;
use strata_plugin::{
    PluginError, PluginResult,
    filter::Filter,
    vector::{HybridRequest, Match, QueryRequest, validate_vector},
};

use super::{cache::Cache, catalog::Meta, store};
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

/// The `k` best `(pk, id, score)` for `vector` among the rows passing `filter`.
async fn dense(
    shared: &Shared,
    cache: &Cache,
    meta: &Meta,
    vector: &[f32],
    k: usize,
    filter: &Filter,
    options: &QueryOptions,
) -> PluginResult<Vec<(i64, String, f64)>> {
    let allowed = if filter.is_all() {
        None
    } else {
        let (m, f) = (meta.clone(), filter.clone());
        shared
            .with_reader(move |c| store::filtered_pks(c, &m, &f))
            .await?
    };
    let loaded = cache.loaded(meta).await?;
    let q = loaded.flat.prepare_query(vector);
    let top = loaded.flat.search(
        loaded.index.as_ref(),
        &q,
        k,
        SearchOptions::new(options.ef_search, options.exact),
        allowed.as_ref(),
    );
    Ok(top
        .into_iter()
        .map(|(i, s)| (loaded.flat.key(i), loaded.ids[i].clone(), s))
        .collect())
}

/// Reads the rows of `scored` pks and returns them as results, in order.
async fn materialise(
    shared: &Shared,
    meta: &Meta,
    scored: Vec<(i64, f64)>,
    flags: u32,
) -> PluginResult<Vec<Match>> {
    let pks: Vec<i64> = scored.iter().map(|(pk, _)| *pk).collect();
    let m = meta.clone();
    let rows = shared
        .with_reader(move |c| store::rows_by_pk(c, &m, &pks))
        .await?;
    Ok(scored
        .into_iter()
        .filter_map(|(pk, s)| rows.get(&pk).map(|r| store::to_match(r, s, flags)))
        .collect())
}

/// A dense query.
pub(super) async fn query(
    shared: &Shared,
    cache: &Cache,
    meta: &Meta,
    request: &QueryRequest,
) -> PluginResult<Vec<Match>> {
    validate_vector(&request.vector, meta.dimension, "query")?;
    let filter = Filter::parse_str(&request.filter_json)?;
    let options = query_options(&request.options_json)?;
    let top = dense(
        shared,
        cache,
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
    let scored = top.into_iter().map(|(pk, _, s)| (pk, s)).collect();
    materialise(shared, meta, scored, request.include).await
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
    let dense = dense(
        shared,
        cache,
        meta,
        &request.vector,
        candidates,
        &filter,
        &QueryOptions::default(),
    )
    .await?;
    let lexical = match store::fts_query(&request.text) {
        None => Vec::new(),
        Some(q) => {
            let (m, f) = (meta.clone(), filter.clone());
            shared
                .with_reader(move |c| store::lexical(c, &m, q, &f, candidates))
                .await?
        }
    };
    let rrf_k = f64::from(request.rrf_k);
    let mut fused: HashMap<i64, f64> = HashMap::new();
    for (rank, (pk, _, _)) in dense.iter().enumerate() {
        *fused.entry(*pk).or_default() += request.dense_weight / (rrf_k + rank as f64 + 1.0);
    }
    for (rank, pk) in lexical.iter().enumerate() {
        *fused.entry(*pk).or_default() += request.lexical_weight / (rrf_k + rank as f64 + 1.0);
    }
    let mut ranked: Vec<(i64, f64)> = fused.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    materialise(shared, meta, ranked, request.include).await
}
