//! Approximate indexes: recall, deletes, and surviving a reopen.

use std::collections::HashSet;

use serde_json::json;
use strata_host::{Include, Metric, Query, Record};
use strata_plugin_api::capabilities as cap;

use super::support::{clustered, exact, ids, index_kind, store_with};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            recall_at_10_with_the_index,
            "With `vector.ann`, a 20,000-vector collection is indexed (collection_info details `index` names the index, not \"exact\") and recall@10 against exact search is at least 0.95 (plugin-api `capabilities::VECTOR_ANN`; rules: indexes).",
            cap::VECTOR_ANN
        ),
        case!(
            Suite::Vector,
            deletes_are_respected_by_the_index,
            "With `vector.ann`, records deleted (by id and by filter) from an indexed collection are never returned again and counts agree (plugin-api `VectorStore::delete`).",
            cap::VECTOR_ANN
        ),
        case!(
            Suite::Vector,
            index_survives_reopen,
            "With `vector.persistent_index`, after the backend is closed and opened again from the same config the collection and its records are there, the same index answers (details `index` unchanged, not \"exact\") and results are the same (plugin-api `capabilities::VECTOR_PERSISTENT_INDEX`).",
            cap::VECTOR_ANN,
            cap::VECTOR_PERSISTENT_INDEX
        ),
    ]
}

/// With enough vectors to build the approximate index, recall@10 against
/// exact search stays ≥ 0.95 on clustered data.
async fn recall_at_10_with_the_index(ctx: Ctx) -> CaseResult {
    let (n, dim, queries) = (20_000usize, 128usize, 60usize);
    let (v, c) = store_with(&ctx, "recall", dim as u32, Metric::Cosine).await?;
    let mut points = clustered(41, n + queries, dim, 40);
    let held_out = points.split_off(n);
    let data: Vec<(String, Vec<f32>)> = points
        .into_iter()
        .enumerate()
        .map(|(i, x)| (format!("r{i}"), x))
        .collect();
    for chunk in data.chunks(2_000) {
        v.upsert(
            &c,
            chunk
                .iter()
                .map(|(id, x)| Record::new(id.clone(), x.clone())),
        )
        .await?;
    }
    let stats = v.stats(&c).await?.ok_or_else(|| Failure::new("no stats"))?;
    let Some(kind) = index_kind(&stats.details) else {
        return Err(Failure::new(format!(
            "20,000 vectors and no index: collection_info details say {} (a backend claiming `vector.ann` names its index under \"index\" once built; rules: indexes)",
            stats.details
        )));
    };
    // Queries come from the same clusters as the data (held out from it).
    let qs = held_out;
    let mut found = 0usize;
    for q in &qs {
        let want: HashSet<String> = exact(Metric::Cosine, &data, q, 10)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let got = v
            .query(
                &c,
                &Query::new(q.clone()).top_k(10).include(Include::default()),
            )
            .await?;
        found += got.iter().filter(|h| want.contains(&h.id)).count();
    }
    let recall = found as f64 / (queries * 10) as f64;
    let mut curve = Vec::new();
    if std::env::var_os("STRATA_RECALL_CURVE").is_some() {
        for ef in [32, 64, 128, 256, 512] {
            let mut f = 0;
            for q in &qs {
                let want: HashSet<String> = exact(Metric::Cosine, &data, q, 10)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                let got = v
                    .query(
                        &c,
                        &Query::new(q.clone())
                            .top_k(10)
                            .include(Include::default())
                            .options(json!({"ef_search": ef})),
                    )
                    .await?;
                f += got.iter().filter(|h| want.contains(&h.id)).count();
            }
            curve.push((ef, f as f64 / (queries * 10) as f64));
        }
        eprintln!("recall@10 = {recall:.3} at the configured ef_search; by ef: {curve:?}");
    }
    ensure!(
        recall >= 0.95,
        "recall@10 = {recall:.3} (< 0.95) with the {kind} index; details: {}; ef curve {curve:?}",
        stats.details
    );
    Ok(())
}

/// After a real close and reopen the collection, its records and its
/// index are all there, and queries answer as before.
async fn index_survives_reopen(ctx: Ctx) -> CaseResult {
    let (n, dim) = (3_000usize, 32usize);
    let (v, c) = store_with(&ctx, "reopen", dim as u32, Metric::Cosine).await?;
    let data: Vec<(String, Vec<f32>)> = clustered(51, n, dim, 10)
        .into_iter()
        .enumerate()
        .map(|(i, x)| (format!("o{i}"), x))
        .collect();
    v.upsert(
        &c,
        data.iter()
            .map(|(id, x)| Record::new(id.clone(), x.clone()).metadata(json!({"i": id}))),
    )
    .await?;
    let queries: Vec<Vec<f32>> = [17usize, 1_234, 2_999]
        .iter()
        .map(|i| data[*i].1.clone())
        .collect();
    let mut before = Vec::new();
    for q in &queries {
        before.push(ids(&v.query(&c, &Query::new(q.clone()).top_k(10)).await?));
    }
    let stats_before = v
        .stats(&c)
        .await?
        .ok_or_else(|| Failure::new("no stats before reopening"))?;
    let Some(kind) = index_kind(&stats_before.details) else {
        return Err(Failure::new(format!(
            "3,000 vectors and no index before reopening: details say {} (rules: indexes)",
            stats_before.details
        )));
    };
    drop(v);
    // Close every backend of the case (where a backend saves its index),
    // then open a new one from the same config.
    let v = ctx.reopen().await?.vectors()?;
    let stats_after = v.stats(&c).await?.ok_or_else(|| {
        Failure::new(
            "the collection is gone after closing and reopening the backend, although it claims `vector.persistent_index`",
        )
    })?;
    ensure_eq!(stats_after.count, n as u64, "records after reopening");
    ensure_eq!(
        (stats_after.dimension, stats_after.metric),
        (dim as u32, Metric::Cosine),
        "dimension and metric after reopening"
    );
    ensure_eq!(
        index_kind(&stats_after.details).as_deref(),
        Some(kind.as_str()),
        "the index answering after reopening (details before: {}, after: {})",
        stats_before.details,
        stats_after.details
    );
    for (q, want) in queries.iter().zip(&before) {
        let after = ids(&v.query(&c, &Query::new(q.clone()).top_k(10)).await?);
        ensure_eq!(&after, want, "results after reopening");
    }
    let got = v.fetch(&c, &["o0", "o2999"], Include::ALL).await?;
    ensure_eq!(got.len(), 2, "records fetched after reopening");
    ensure_eq!(
        got[1].vector.as_deref(),
        Some(&data[2_999].1[..]),
        "a vector after reopening"
    );
    ensure_eq!(
        got[1].metadata,
        Some(json!({"i": "o2999"})),
        "metadata after reopening"
    );
    Ok(())
}

/// Deleted records never come back from an indexed collection.
async fn deletes_are_respected_by_the_index(ctx: Ctx) -> CaseResult {
    let (n, dim) = (3_000usize, 16usize);
    let (v, c) = store_with(&ctx, "idxdel", dim as u32, Metric::Cosine).await?;
    let data = clustered(71, n, dim, 6);
    v.upsert(
        &c,
        data.iter()
            .enumerate()
            .map(|(i, x)| Record::new(format!("d{i}"), x.clone()).metadata(json!({"i": i}))),
    )
    .await?;
    // Query once so that an index built lazily exists before the deletes.
    v.query(&c, &Query::new(data[0].clone()).top_k(10)).await?;
    let by_id: Vec<String> = (0..n).step_by(3).map(|i| format!("d{i}")).collect();
    let refs: Vec<&str> = by_id.iter().map(String::as_str).collect();
    ensure_eq!(
        v.delete_ids(&c, &refs).await?,
        by_id.len() as u64,
        "deleted by id"
    );
    let by_filter = v.delete_where(&c, &json!({"i": {"$gte": 2_500}})).await?;
    let gone = |i: usize| i.is_multiple_of(3) || i >= 2_500;
    let left = (0..n).filter(|i| !gone(*i)).count();
    ensure_eq!(
        by_filter as usize,
        (2_500..n).filter(|i| i % 3 != 0).count(),
        "deleted by filter"
    );
    ensure_eq!(v.count(&c, None).await? as usize, left, "records left");
    for probe in [0usize, 3, 2_600, 2_999, 1, 2] {
        let hits = v
            .query(
                &c,
                &Query::new(data[probe].clone())
                    .top_k(50)
                    .include(Include::default()),
            )
            .await?;
        ensure_eq!(hits.len(), 50, "results probing with d{probe}");
        for h in &hits {
            let i: usize = h.id[1..]
                .parse()
                .map_err(|_| Failure::new(format!("unknown id {}", h.id)))?;
            ensure!(
                !gone(i),
                "probing with d{probe}: the deleted record {} came back",
                h.id
            );
        }
        if !gone(probe) {
            ensure_eq!(
                hits[0].id,
                format!("d{probe}"),
                "a record left still finds itself"
            );
        }
    }
    Ok(())
}
