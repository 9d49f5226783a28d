//! The vector-store contract suite.
//!
//! Expected results are computed here, independently of the backend: exact
//! scores with [`Metric::score`] and filter matches with
//! [`Filter::matches`], the reference semantics of the filter language.

use std::collections::HashSet;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value as Json, json};
use strata_host::{ErrorKind, Hybrid, Include, Metric, Query, Record, Vectors};
use strata_plugin_api::{capabilities as cap, filter::Filter};

use crate::{
    ensure, ensure_eq,
    runner::{Case, CaseResult, Ctx, Failure, Suite, expect_kind},
};

macro_rules! case {
    ($name:ident $(, $req:expr)* $(,)?) => {
        Case {
            suite: Suite::Vector,
            name: stringify!($name),
            requires: &[$($req),*],
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

/// Every vector case, in run order.
pub fn cases() -> Vec<Case> {
    vec![
        case!(empty_collection),
        case!(collection_lifecycle),
        case!(invalid_names_and_dimensions),
        case!(dimension_mismatch_is_rejected),
        case!(upsert_is_idempotent_and_overwrites),
        case!(top_k_order_and_scores_cosine),
        case!(top_k_order_and_scores_dot),
        case!(top_k_order_and_scores_euclidean),
        case!(every_filter_operator),
        case!(filtered_query_returns_top_k_when_they_exist),
        case!(malformed_filters_are_rejected),
        case!(fetch_delete_and_count),
        case!(include_flags_and_min_score),
        case!(unicode_ids_metadata_and_text),
        case!(
            hybrid_ranks_a_keyword_match_the_dense_ranking_misses,
            cap::VECTOR_HYBRID
        ),
        case!(hybrid_respects_filters_and_weights, cap::VECTOR_HYBRID),
        case!(scan_pages_through_everything, cap::VECTOR_SCAN),
        case!(batch_upsert_10k),
        case!(concurrent_upserts_and_queries),
        case!(recall_at_10_with_the_index, cap::VECTOR_ANN),
        case!(
            index_survives_reopen,
            cap::VECTOR_ANN,
            cap::VECTOR_PERSISTENT_INDEX
        ),
    ]
}

fn random_vectors(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

/// Clustered data shaped like real embeddings: `clusters` centres, each
/// with its own 8-dimensional subspace the points spread along, plus a little
/// isotropic noise. (Isotropic noise alone in 128 dimensions makes every
/// point of a cluster nearly equidistant from every other — a distribution no
/// embedding model produces, on which any graph index needs a huge `ef`.)
pub fn clustered(seed: u64, n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
    const LATENT: usize = 8;
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let bases: Vec<Vec<Vec<f32>>> = (0..clusters)
        .map(|_| {
            (0..LATENT)
                .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
                .collect()
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = rng.random_range(0..clusters);
            let z: Vec<f32> = (0..LATENT)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            (0..dim)
                .map(|d| {
                    let spread: f32 =
                        (0..LATENT).map(|l| bases[c][l][d] * z[l]).sum::<f32>() * 0.25;
                    centres[c][d] + spread + rng.random_range(-0.02f32..0.02)
                })
                .collect()
        })
        .collect()
}

/// Exact top-k ids by the reference scores.
fn exact(metric: Metric, data: &[(String, Vec<f32>)], q: &[f32], k: usize) -> Vec<(String, f64)> {
    let mut scored: Vec<(String, f64)> = data
        .iter()
        .map(|(id, v)| (id.clone(), metric.score(q, v)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

async fn store_with(
    ctx: &Ctx,
    name: &str,
    dim: u32,
    metric: Metric,
) -> Result<(Vectors, String), Failure> {
    let v = ctx.vectors().await?;
    let c = ctx.collection(name);
    v.create_collection(&c, dim, metric).await?;
    Ok((v, c))
}

/// A new collection is empty, listed, and answers queries with nothing.
pub async fn empty_collection(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "empty", 8, Metric::Cosine).await?;
    ensure_eq!(v.count(&c, None).await?, 0);
    ensure!(
        v.query(&c, &Query::new(vec![0.5; 8])).await?.is_empty(),
        "query of an empty collection"
    );
    let stats = v
        .stats(&c)
        .await?
        .ok_or_else(|| Failure::new("stats of a new collection missing"))?;
    ensure_eq!(
        (stats.dimension, stats.metric, stats.count),
        (8, Metric::Cosine, 0)
    );
    ensure!(
        v.list().await?.iter().any(|s| s.name == c),
        "new collection not listed"
    );
    ensure!(
        v.fetch(&c, &["nope"], Include::ALL).await?.is_empty(),
        "fetch of a missing id"
    );
    Ok(())
}

/// Create is idempotent for the same spec, refuses another spec, drop removes.
pub async fn collection_lifecycle(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "life", 4, Metric::Dot).await?;
    v.create_collection(&c, 4, Metric::Dot).await?;
    expect_kind(
        v.create_collection(&c, 5, Metric::Dot).await,
        ErrorKind::AlreadyExists,
        "same name, other dimension",
    )?;
    expect_kind(
        v.create_collection(&c, 4, Metric::Cosine).await,
        ErrorKind::AlreadyExists,
        "same name, other metric",
    )?;
    v.upsert(&c, [Record::new("a", vec![1.0, 0.0, 0.0, 0.0])])
        .await?;
    ensure!(v.exists(&c).await?, "exists after create");
    ensure!(v.drop_collection(&c).await?, "drop reports it existed");
    ensure!(!v.exists(&c).await?, "exists after drop");
    ensure!(
        !v.drop_collection(&c).await?,
        "second drop reports nothing to drop"
    );
    expect_kind(
        v.query(&c, &Query::new(vec![1.0; 4])).await,
        ErrorKind::NotFound,
        "query of a dropped collection",
    )?;
    expect_kind(
        v.upsert(&c, [Record::new("b", vec![1.0; 4])]).await,
        ErrorKind::NotFound,
        "upsert into a dropped collection",
    )?;
    // Re-creating with another dimension works once dropped.
    v.create_collection(&c, 6, Metric::Euclidean).await?;
    ensure_eq!(
        v.count(&c, None).await?,
        0,
        "a re-created collection starts empty"
    );
    Ok(())
}

/// Bad collection names and dimensions are `InvalidInput`.
pub async fn invalid_names_and_dimensions(ctx: Ctx) -> CaseResult {
    let v = ctx.vectors().await?;
    for bad in [
        "",
        "has space",
        "semi;colon",
        "quote\"d",
        "1starts_with_digit",
        &"x".repeat(65),
    ] {
        expect_kind(
            v.create_collection(bad, 4, Metric::Cosine).await,
            ErrorKind::InvalidInput,
            &format!("name {bad:?}"),
        )?;
    }
    let c = ctx.collection("dims");
    expect_kind(
        v.create_collection(&c, 0, Metric::Cosine).await,
        ErrorKind::InvalidInput,
        "dimension 0",
    )?;
    ensure!(
        !v.exists(&c).await?,
        "a refused create must not leave a collection"
    );
    Ok(())
}

/// Vectors of the wrong dimension (or not finite) are refused and nothing is written.
pub async fn dimension_mismatch_is_rejected(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "dim", 3, Metric::Cosine).await?;
    let r = v
        .upsert(
            &c,
            [
                Record::new("ok", vec![1.0, 2.0, 3.0]),
                Record::new("bad", vec![1.0, 2.0]),
            ],
        )
        .await;
    expect_kind(
        r,
        ErrorKind::InvalidInput,
        "upsert of a 2-d vector into a 3-d collection",
    )?;
    ensure_eq!(
        v.count(&c, None).await?,
        0,
        "a refused batch writes nothing"
    );
    expect_kind(
        v.upsert(&c, [Record::new("nan", vec![1.0, f32::NAN, 0.0])])
            .await,
        ErrorKind::InvalidInput,
        "NaN component",
    )?;
    expect_kind(
        v.query(&c, &Query::new(vec![1.0; 4])).await,
        ErrorKind::InvalidInput,
        "4-d query",
    )?;
    let err = v
        .upsert(&c, [Record::new("bad", vec![1.0])])
        .await
        .err()
        .ok_or_else(|| Failure::new("accepted"))?;
    ensure!(
        err.to_string().contains('3') && err.to_string().contains('1'),
        "the error names both dimensions: {err}"
    );
    Ok(())
}

/// Upserting the same records twice changes nothing; an upsert by existing id overwrites.
pub async fn upsert_is_idempotent_and_overwrites(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "upsert", 4, Metric::Euclidean).await?;
    let recs: Vec<Record> = (0..20)
        .map(|i| {
            Record::new(format!("r{i}"), vec![i as f32, 0.0, 0.0, 1.0])
                .metadata(json!({"i": i}))
                .text(format!("record {i}"))
        })
        .collect();
    ensure_eq!(v.upsert(&c, recs.clone()).await?, 20);
    v.upsert(&c, recs).await?;
    ensure_eq!(
        v.count(&c, None).await?,
        20,
        "count after upserting the same ids twice"
    );
    v.upsert(
        &c,
        [Record::new("r3", vec![100.0, 100.0, 100.0, 100.0])
            .metadata(json!({"i": 333, "new": true}))],
    )
    .await?;
    ensure_eq!(v.count(&c, None).await?, 20, "count after an overwrite");
    let got = v.fetch(&c, &["r3"], Include::ALL).await?;
    ensure_eq!(got.len(), 1);
    ensure_eq!(
        got[0].vector.as_deref(),
        Some(&[100.0f32, 100.0, 100.0, 100.0][..])
    );
    ensure_eq!(got[0].metadata, Some(json!({"i": 333, "new": true})));
    ensure_eq!(got[0].text, None, "the overwrite had no text");
    // The old vector no longer answers queries; the new one does.
    let hits = v
        .query(&c, &Query::new(vec![3.0, 0.0, 0.0, 1.0]).top_k(1))
        .await?;
    ensure!(hits[0].id != "r3", "the overwritten vector still matched");
    let hits = v.query(&c, &Query::new(vec![100.0; 4]).top_k(1)).await?;
    ensure_eq!(hits[0].id, "r3");
    ensure!(
        hits[0].score.abs() < 1e-4,
        "euclidean score of an exact match is -0: {}",
        hits[0].score
    );
    expect_kind(
        v.upsert(
            &c,
            [
                Record::new("dup", vec![0.0; 4]),
                Record::new("dup", vec![1.0; 4]),
            ],
        )
        .await,
        ErrorKind::InvalidInput,
        "the same id twice in one batch",
    )?;
    Ok(())
}

async fn scores_match_exact(ctx: Ctx, metric: Metric) -> CaseResult {
    let dim = 24;
    let (v, c) = store_with(&ctx, metric.name(), dim as u32, metric).await?;
    let data: Vec<(String, Vec<f32>)> = random_vectors(7, 400, dim)
        .into_iter()
        .enumerate()
        .map(|(i, x)| (format!("v{i:03}"), x))
        .collect();
    v.upsert(
        &c,
        data.iter()
            .map(|(id, x)| Record::new(id.clone(), x.clone())),
    )
    .await?;
    for (qi, q) in random_vectors(99, 5, dim).into_iter().enumerate() {
        let want = exact(metric, &data, &q, 10);
        let got = v.query(&c, &Query::new(q.clone()).top_k(10)).await?;
        ensure_eq!(got.len(), 10, "query {qi}: results");
        for (rank, (hit, (id, score))) in got.iter().zip(&want).enumerate() {
            ensure!(
                hit.id == *id,
                "query {qi} rank {rank}: got {} ({}), expected {id} ({score})",
                hit.id,
                hit.score,
            );
            ensure!(
                (hit.score - score).abs() <= 1e-4 * score.abs().max(1.0),
                "query {qi} rank {rank}: score {} vs exact {score}",
                hit.score
            );
        }
        ensure!(
            got.windows(2).all(|w| w[0].score >= w[1].score),
            "scores must not increase down the list"
        );
    }
    Ok(())
}

/// Cosine: ids and scores equal exact computation, best first.
pub async fn top_k_order_and_scores_cosine(ctx: Ctx) -> CaseResult {
    scores_match_exact(ctx, Metric::Cosine).await
}

/// Dot product: ids and scores equal exact computation, best first.
pub async fn top_k_order_and_scores_dot(ctx: Ctx) -> CaseResult {
    scores_match_exact(ctx, Metric::Dot).await
}

/// Euclidean (negative L2, higher is closer): ids and scores equal exact computation.
pub async fn top_k_order_and_scores_euclidean(ctx: Ctx) -> CaseResult {
    scores_match_exact(ctx, Metric::Euclidean).await
}

fn filter_fixture() -> Vec<(String, Json)> {
    let kinds = ["fact", "event", "preference"];
    (0..60)
        .map(|i| {
            let mut m = json!({
                "kind": kinds[i % 3],
                "n": i,
                "score": (i as f64) / 10.0,
                "tags": match i % 4 { 0 => json!(["rust", "sql"]), 1 => json!(["python"]), 2 => json!([]), _ => json!(["rust", 7]) },
                "src": {"app": if i % 5 == 0 { "cli" } else { "web" }, "v": i % 3},
                "ok": i % 2 == 0,
                "name": format!("item-{i:02}"),
            });
            if i % 7 == 0 {
                m.as_object_mut().unwrap().remove("kind");
            }
            if i % 11 == 0 {
                m["n"] = Json::Null;
            }
            if i % 13 == 0 {
                m["kind"] = json!(5);
            }
            (format!("f{i:02}"), m)
        })
        .collect()
}

fn filters() -> Vec<Json> {
    vec![
        json!({}),
        json!({"kind": "fact"}),
        json!({"kind": {"$eq": "event"}}),
        json!({"kind": {"$ne": "fact"}}),
        json!({"n": {"$gt": 30}}),
        json!({"n": {"$gte": 30, "$lt": 40}}),
        json!({"n": {"$lte": 5}}),
        json!({"score": {"$gt": 2.5}}),
        json!({"kind": {"$in": ["fact", "preference"]}}),
        json!({"kind": {"$nin": ["fact", "preference"]}}),
        json!({"kind": {"$exists": false}}),
        json!({"kind": {"$exists": true}}),
        json!({"n": null}),
        json!({"n": {"$ne": null}}),
        json!({"tags": "rust"}),
        json!({"tags": {"$in": ["python", "go"]}}),
        json!({"tags": {"$nin": ["rust"]}}),
        json!({"tags": 7}),
        json!({"tags": {"$gt": "r"}}),
        json!({"src.app": "cli"}),
        json!({"src.v": {"$gte": 1}}),
        json!({"src.missing": {"$exists": false}}),
        json!({"ok": true}),
        json!({"ok": 1}),
        json!({"kind": 5}),
        json!({"kind": {"$gt": "e"}}),
        json!({"name": {"$gte": "item-10", "$lt": "item-20"}}),
        json!({"$and": [{"kind": "fact"}, {"n": {"$gt": 10}}]}),
        json!({"$or": [{"kind": "event"}, {"src.app": "cli"}]}),
        json!({"$not": {"kind": "fact"}}),
        json!({"$or": [{"$and": [{"ok": true}, {"tags": "sql"}]}, {"$not": {"n": {"$lt": 50}}}]}),
        json!({"kind": "fact", "ok": false, "src.v": {"$in": [0, 2]}}),
    ]
}

/// Every operator, nested logic, dotted paths, arrays, missing fields and
/// nulls agree with the reference semantics — in count, query and delete.
pub async fn every_filter_operator(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "filters", 4, Metric::Cosine).await?;
    let fixture = filter_fixture();
    let vectors = random_vectors(3, fixture.len(), 4);
    v.upsert(
        &c,
        fixture
            .iter()
            .zip(&vectors)
            .map(|((id, m), x)| Record::new(id.clone(), x.clone()).metadata(m.clone())),
    )
    .await?;
    for f in filters() {
        let parsed = Filter::parse(&f).map_err(|e| Failure::new(format!("{f}: {e}")))?;
        let want: HashSet<&str> = fixture
            .iter()
            .filter(|(_, m)| parsed.matches(m))
            .map(|(id, _)| id.as_str())
            .collect();
        let n = v.count(&c, Some(&f)).await?;
        ensure_eq!(n as usize, want.len(), "count for {f}");
        let hits = v
            .query(
                &c,
                &Query::new(vec![1.0, 0.5, -0.5, 0.25])
                    .top_k(100)
                    .filter(f.clone()),
            )
            .await?;
        let got: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        if got != want {
            let extra: Vec<_> = got.difference(&want).collect();
            let missing: Vec<_> = want.difference(&got).collect();
            return Err(Failure::new(format!(
                "query with {f}: unexpected {extra:?}, missing {missing:?}"
            )));
        }
    }
    // Delete by filter removes exactly the matching records.
    let f = json!({"$or": [{"kind": "event"}, {"tags": "python"}]});
    let parsed = Filter::parse(&f).map_err(|e| Failure::new(e.to_string()))?;
    let want = fixture.iter().filter(|(_, m)| parsed.matches(m)).count();
    ensure_eq!(
        v.delete_where(&c, &f).await? as usize,
        want,
        "deleted by filter"
    );
    ensure_eq!(
        v.count(&c, None).await? as usize,
        fixture.len() - want,
        "left after delete by filter"
    );
    ensure_eq!(
        v.count(&c, Some(&f)).await?,
        0,
        "nothing matches the filter after the delete"
    );
    Ok(())
}

/// A filtered query returns `top_k` results whenever that many records match,
/// and they are the best-scoring matching ones.
pub async fn filtered_query_returns_top_k_when_they_exist(ctx: Ctx) -> CaseResult {
    let dim = 16;
    let (v, c) = store_with(&ctx, "topk", dim as u32, Metric::Cosine).await?;
    let data = clustered(5, 3000, dim, 8);
    let records: Vec<(String, Vec<f32>, Json)> = data
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            (
                format!("p{i}"),
                x,
                json!({"bucket": i % 50, "rare": i % 500 == 0}),
            )
        })
        .collect();
    for chunk in records.chunks(1000) {
        v.upsert(
            &c,
            chunk
                .iter()
                .map(|(id, x, m)| Record::new(id.clone(), x.clone()).metadata(m.clone())),
        )
        .await?;
    }
    let q = random_vectors(11, 1, dim).remove(0);
    for (f, expect) in [
        (json!({"rare": true}), 6usize),
        (json!({"bucket": 7}), 10),
        (json!({"bucket": {"$lt": 25}}), 10),
    ] {
        let parsed = Filter::parse(&f).map_err(|e| Failure::new(e.to_string()))?;
        let subset: Vec<(String, Vec<f32>)> = records
            .iter()
            .filter(|(_, _, m)| parsed.matches(m))
            .map(|(id, x, _)| (id.clone(), x.clone()))
            .collect();
        let want = exact(Metric::Cosine, &subset, &q, 10);
        ensure_eq!(want.len(), expect, "fixture size for {f}");
        let got = v
            .query(&c, &Query::new(q.clone()).top_k(10).filter(f.clone()))
            .await?;
        ensure_eq!(got.len(), want.len(), "results for {f}");
        let got_ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
        let want_ids: Vec<&str> = want.iter().map(|(id, _)| id.as_str()).collect();
        for id in &got_ids {
            ensure!(
                subset.iter().any(|(s, _)| s == id),
                "{id} does not match {f} (got {got_ids:?})"
            );
        }
        if subset.len() <= 100 {
            // Selective filters: few enough rows that every backend is
            // expected to search them exactly.
            ensure_eq!(got_ids, want_ids, "ids for {f}");
        } else {
            // Half the rows: an index may answer, approximately.
            let found = got_ids.iter().filter(|id| want_ids.contains(id)).count();
            ensure!(
                found >= 8,
                "only {found} of the 10 nearest matches of {f}: got {got_ids:?}, want {want_ids:?}"
            );
        }
    }
    Ok(())
}

/// Malformed filters are `InvalidInput`, naming the clause.
pub async fn malformed_filters_are_rejected(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "badfilter", 2, Metric::Dot).await?;
    for (f, needle) in [
        (json!({"n": {"$gtt": 1}}), "$gtt"),
        (json!({"$or": {"a": 1}}), "$or"),
        (json!({"tags": ["a", "b"]}), "tags"),
        (json!({"n": {"$in": 5}}), "$in"),
        (json!([1, 2]), "object"),
    ] {
        let err = v
            .count(&c, Some(&f))
            .await
            .err()
            .ok_or_else(|| Failure::new(format!("{f} accepted")))?;
        ensure_eq!(err.kind(), ErrorKind::InvalidInput, "kind for {f}");
        ensure!(
            err.to_string().contains(needle),
            "error for {f} should name {needle:?}: {err}"
        );
    }
    Ok(())
}

/// `fetch` returns what exists in the order asked; deletes by ids and all.
pub async fn fetch_delete_and_count(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "fetch", 3, Metric::Cosine).await?;
    v.upsert(
        &c,
        (0..10).map(|i| {
            Record::new(format!("k{i}"), vec![1.0, i as f32, 0.5]).metadata(json!({"i": i}))
        }),
    )
    .await?;
    let got = v
        .fetch(&c, &["k7", "missing", "k2", "k9"], Include::default())
        .await?;
    let ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
    ensure_eq!(ids, vec!["k7", "k2", "k9"]);
    ensure!(
        got.iter()
            .all(|h| h.vector.is_none() && h.metadata.is_none()),
        "nothing included when not asked"
    );
    ensure_eq!(
        v.delete_ids(&c, &["k2", "k7", "nope"]).await?,
        2,
        "deleted by ids"
    );
    ensure_eq!(v.count(&c, None).await?, 8);
    ensure!(
        v.fetch(&c, &["k2"], Include::ALL).await?.is_empty(),
        "a deleted id is gone"
    );
    // An empty filter would match every record: deleting everything takes
    // the explicit `delete_all`, never a filter that happens to be empty.
    for empty in [json!({}), json!(null)] {
        expect_kind(
            v.delete_where(&c, &empty).await,
            ErrorKind::InvalidInput,
            &format!("delete_where with the empty filter {empty}"),
        )?;
    }
    ensure_eq!(
        v.count(&c, None).await?,
        8,
        "a refused delete by an empty filter deleted nothing"
    );
    let hits = v
        .query(&c, &Query::new(vec![1.0, 2.0, 0.5]).top_k(10))
        .await?;
    ensure!(
        hits.iter().all(|h| h.id != "k2" && h.id != "k7"),
        "deleted records still returned by query"
    );
    ensure_eq!(v.delete_all(&c).await?, 8, "delete all");
    ensure_eq!(v.count(&c, None).await?, 0);
    ensure!(v.exists(&c).await?, "delete all keeps the collection");
    Ok(())
}

/// Include flags select what comes back; `min_score` drops weaker results.
pub async fn include_flags_and_min_score(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "include", 2, Metric::Cosine).await?;
    v.upsert(
        &c,
        [
            Record::new("east", vec![1.0, 0.0])
                .metadata(json!({"d": "e"}))
                .text("rising sun"),
            Record::new("north", vec![0.0, 1.0]).metadata(json!({"d": "n"})),
            Record::new("west", vec![-1.0, 0.0]),
        ],
    )
    .await?;
    let all = v
        .query(&c, &Query::new(vec![1.0, 0.0]).include(Include::ALL))
        .await?;
    ensure_eq!(all.len(), 3);
    ensure_eq!(all[0].id, "east");
    ensure!(
        (all[0].score - 1.0).abs() < 1e-5 && (all[2].score + 1.0).abs() < 1e-5,
        "cosine scores 1 and -1: {all:?}"
    );
    ensure_eq!(all[0].vector.as_deref(), Some(&[1.0f32, 0.0][..]));
    ensure_eq!(all[0].metadata, Some(json!({"d": "e"})));
    ensure_eq!(all[0].text.as_deref(), Some("rising sun"));
    ensure_eq!(
        all[2].metadata,
        Some(json!({})),
        "records without metadata have {{}}"
    );
    let bare = v
        .query(&c, &Query::new(vec![1.0, 0.0]).include(Include::default()))
        .await?;
    ensure!(
        bare.iter()
            .all(|h| h.vector.is_none() && h.metadata.is_none() && h.text.is_none()),
        "{bare:?}"
    );
    let strong = v
        .query(&c, &Query::new(vec![1.0, 0.0]).min_score(-0.5))
        .await?;
    let ids: Vec<&str> = strong.iter().map(|h| h.id.as_str()).collect();
    ensure_eq!(ids, vec!["east", "north"], "min_score -0.5 drops west (-1)");
    ensure!(
        v.query(&c, &Query::new(vec![1.0, 0.0]).top_k(0))
            .await?
            .is_empty(),
        "top_k 0"
    );
    Ok(())
}

/// Unicode ids, metadata and text round-trip, and text search finds unicode words.
pub async fn unicode_ids_metadata_and_text(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "unicode", 2, Metric::Dot).await?;
    let id = "mémoire-記憶-🧠";
    let meta = json!({"langue": "français", "日本": ["東京", "大阪"], "emoji": "🦀"});
    v.upsert(
        &c,
        [Record::new(id, vec![0.25, 0.75])
            .metadata(meta.clone())
            .text("Le café est très bon à Zürich")],
    )
    .await?;
    let got = v.fetch(&c, &[id], Include::ALL).await?;
    ensure_eq!(got.len(), 1);
    ensure_eq!(got[0].id, id);
    ensure_eq!(got[0].metadata, Some(meta));
    ensure_eq!(
        got[0].text.as_deref(),
        Some("Le café est très bon à Zürich")
    );
    ensure_eq!(
        v.count(&c, Some(&json!({"日本": "大阪"}))).await?,
        1,
        "unicode key and array element"
    );
    ensure_eq!(v.count(&c, Some(&json!({"emoji": "🦀"}))).await?, 1);
    if ctx.has(cap::VECTOR_HYBRID) {
        let hits = v
            .hybrid_query(&c, &Hybrid::new(vec![0.0, 0.0], "zürich"))
            .await?;
        ensure!(
            hits.first().is_some_and(|h| h.id == id),
            "hybrid by a unicode word: {hits:?}"
        );
    }
    Ok(())
}

/// A record whose vector is far from the query but whose text holds the exact
/// keyword is ranked into the top results by hybrid search.
pub async fn hybrid_ranks_a_keyword_match_the_dense_ranking_misses(ctx: Ctx) -> CaseResult {
    let dim = 16;
    let (v, c) = store_with(&ctx, "hybrid", dim as u32, Metric::Cosine).await?;
    let q = random_vectors(21, 1, dim).remove(0);
    let mut recs: Vec<Record> = random_vectors(22, 300, dim)
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            Record::new(format!("doc{i}"), x)
                .text(format!("ordinary note number {i} about lunch and meetings"))
        })
        .collect();
    let far: Vec<f32> = q.iter().map(|x| -x).collect();
    recs.push(Record::new("needle", far).text("the invoice from Zanzibar Trading arrived"));
    v.upsert(&c, recs).await?;
    let dense = v.query(&c, &Query::new(q.clone()).top_k(10)).await?;
    ensure!(
        dense.iter().all(|h| h.id != "needle"),
        "fixture: the dense ranking must miss the needle"
    );
    let hits = v
        .hybrid_query(&c, &Hybrid::new(q.clone(), "zanzibar invoice").top_k(10))
        .await?;
    let pos = hits.iter().position(|h| h.id == "needle");
    ensure!(
        pos.is_some_and(|p| p < 3),
        "needle should be in the top 3 of the hybrid ranking: {:?}",
        hits.iter().map(|h| &h.id).collect::<Vec<_>>()
    );
    ensure!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "fused scores descend"
    );
    // The best dense result is still near the top.
    ensure!(
        hits.iter().take(3).any(|h| h.id == dense[0].id),
        "the best dense match should stay in the top 3"
    );
    Ok(())
}

/// Hybrid results honour the filter, and the weights shift the fusion.
pub async fn hybrid_respects_filters_and_weights(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "hybridf", 2, Metric::Cosine).await?;
    v.upsert(
        &c,
        [
            Record::new("a", vec![1.0, 0.0])
                .metadata(json!({"team": "red"}))
                .text("alpha report"),
            Record::new("b", vec![0.9, 0.1])
                .metadata(json!({"team": "blue"}))
                .text("beta report"),
            Record::new("c", vec![0.0, 1.0])
                .metadata(json!({"team": "red"}))
                .text("gamma keyword"),
            Record::new("d", vec![-1.0, 0.0])
                .metadata(json!({"team": "blue"}))
                .text("keyword keyword"),
        ],
    )
    .await?;
    let hits = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0], "keyword").filter(json!({"team": "red"})),
        )
        .await?;
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    ensure_eq!(ids, HashSet::from(["a", "c"]), "filtered hybrid");
    let dense_heavy = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0], "keyword").weights(1.0, 0.0),
        )
        .await?;
    ensure_eq!(dense_heavy[0].id, "a", "lexical weight 0 = dense order");
    let lexical_heavy = v
        .hybrid_query(
            &c,
            &Hybrid::new(vec![1.0, 0.0], "keyword").weights(0.0, 1.0),
        )
        .await?;
    ensure!(
        lexical_heavy[0].id == "d" || lexical_heavy[0].id == "c",
        "dense weight 0 = lexical order: {lexical_heavy:?}"
    );
    Ok(())
}

/// Scan pages through every record exactly once, with and without a filter.
pub async fn scan_pages_through_everything(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "scan", 2, Metric::Dot).await?;
    v.upsert(
        &c,
        (0..250).map(|i| {
            Record::new(format!("s{i}"), vec![i as f32, 1.0]).metadata(json!({"even": i % 2 == 0}))
        }),
    )
    .await?;
    for (filter, expect) in [(None, 250usize), (Some(json!({"even": true})), 125)] {
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = v
                .scan(
                    &c,
                    cursor.as_deref(),
                    100,
                    filter.as_ref(),
                    Include::default(),
                )
                .await?;
            ensure!(page.records.len() <= 100, "page larger than the limit");
            for r in &page.records {
                ensure!(seen.insert(r.id.clone()), "{} returned twice", r.id);
            }
            pages += 1;
            ensure!(pages < 10, "scan does not end");
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        ensure_eq!(seen.len(), expect, "records scanned with {filter:?}");
    }
    Ok(())
}

/// 10,000 records in one upsert are all stored and searchable.
pub async fn batch_upsert_10k(ctx: Ctx) -> CaseResult {
    let dim = 32;
    let (v, c) = store_with(&ctx, "batch", dim as u32, Metric::Cosine).await?;
    let data = random_vectors(31, 10_000, dim);
    let n = v
        .upsert(
            &c,
            data.iter()
                .enumerate()
                .map(|(i, x)| Record::new(format!("b{i}"), x.clone()).metadata(json!({"i": i}))),
        )
        .await?;
    ensure_eq!(n, 10_000);
    ensure_eq!(v.count(&c, None).await?, 10_000);
    let hits = v
        .query(&c, &Query::new(data[4321].clone()).top_k(1))
        .await?;
    ensure_eq!(hits[0].id, "b4321", "a stored vector finds itself");
    ensure_eq!(
        v.count(&c, Some(&json!({"i": {"$gte": 9000}}))).await?,
        1000
    );
    Ok(())
}

/// Upserts and queries from many tasks at once all succeed and nothing is lost.
pub async fn concurrent_upserts_and_queries(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "conc", 8, Metric::Euclidean).await?;
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (v, c) = (v.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            for b in 0..10 {
                let recs = (0..20).map(|i| {
                    Record::new(
                        format!("t{t}-b{b}-{i}"),
                        vec![(t * 100 + b * 20 + i) as f32; 8],
                    )
                });
                v.upsert(&c, recs).await?;
                v.query(&c, &Query::new(vec![t as f32; 8]).top_k(5)).await?;
            }
            Ok::<_, strata_host::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Failure::new(format!("task panicked: {e}")))??;
    }
    ensure_eq!(v.count(&c, None).await?, 6 * 10 * 20);
    Ok(())
}

/// With enough vectors to build the approximate index, recall@10 against
/// exact search stays ≥ 0.95 on clustered data.
pub async fn recall_at_10_with_the_index(ctx: Ctx) -> CaseResult {
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
        "recall@10 = {recall:.3} (< 0.95); index: {}; ef curve {curve:?}",
        stats.details
    );
    Ok(())
}

/// The index is still used (and correct) after the backend is closed and reopened.
pub async fn index_survives_reopen(ctx: Ctx) -> CaseResult {
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
            .map(|(id, x)| Record::new(id.clone(), x.clone())),
    )
    .await?;
    let q = data[17].1.clone();
    let before = v.query(&c, &Query::new(q.clone()).top_k(10)).await?;
    let details_before = v.stats(&c).await?.map(|s| s.details).unwrap_or(Json::Null);
    // Close the first backend (saving the index), open a new one.
    drop(v);
    let v2 = ctx.vectors().await?;
    if !v2.exists(&c).await? {
        return Err(Failure::skip(
            "a freshly opened backend does not see the collection: this configuration does not persist (in-memory)",
        ));
    }
    let after = v2.query(&c, &Query::new(q).top_k(10)).await?;
    let ids = |h: &[strata_host::Hit]| h.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
    ensure_eq!(ids(&after), ids(&before), "results after reopening");
    let details_after = v2.stats(&c).await?.map(|s| s.details).unwrap_or(Json::Null);
    ensure_eq!(
        details_after.get("index"),
        details_before.get("index"),
        "index kind after reopening"
    );
    Ok(())
}
