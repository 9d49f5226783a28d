//! Nearest-neighbour queries: order, scores, limits, and vectors at the
//! edges of `f32`.

use serde_json::json;
use strata_host::{Include, Metric, Query, Record};

use super::support::{exact, random_vectors, store_with};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, accepted_or_refused, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            top_k_order_and_scores_cosine,
            "Query results are the top_k by cosine similarity, best first, scores within 1e-4 of the exact value (plugin-api `Metric::score` is the reference)."
        ),
        case!(
            Suite::Vector,
            top_k_order_and_scores_dot,
            "Query results are the top_k by dot product, best first, scores within 1e-4 of the exact value (plugin-api `Metric::score`)."
        ),
        case!(
            Suite::Vector,
            top_k_order_and_scores_euclidean,
            "Query results are the top_k by negative euclidean distance (higher is closer), best first, scores within 1e-4 of the exact value (plugin-api `Metric::score`)."
        ),
        case!(
            Suite::Vector,
            include_flags_and_min_score,
            "Results carry vector, metadata and text only when asked (include flags); min_score drops weaker results; records without metadata report `{}`; top_k 0 returns nothing (plugin-api `QueryRequest`)."
        ),
        case!(
            Suite::Vector,
            top_k_far_above_the_collection_size,
            "A top_k far above the collection size returns every record, best first — clamp top_k to what exists before allocating (kit `QueryRequest::top_k`)."
        ),
        case!(
            Suite::Vector,
            top_k_u32_max,
            "top_k = u32::MAX on a small collection returns every record: a size the caller controls must be clamped to what exists before anything is allocated (kit `QueryRequest::top_k`; issue 16 #1)."
        ),
        case!(
            Suite::Vector,
            top_k_u32_max_with_a_filter,
            "top_k = u32::MAX with a filter returns every matching record, without allocating top_k slots (kit `QueryRequest::top_k`)."
        ),
        case!(
            Suite::Vector,
            zero_vectors,
            "A zero vector in a cosine collection is either refused with `invalid_input` or stored and scored 0 against every query (plugin-api `Metric::score`); it is never NaN and never another error. Under dot and euclidean it is an ordinary vector (rules: vectors)."
        ),
        case!(
            Suite::Vector,
            extreme_vectors_cosine,
            "Components near ±f32::MAX and subnormal ones score as plugin-api `Metric::score` does (in f64, no overflow): cosine of [0,0,0,-3.4e38] and [0,0,0,-1] is 1 — or such vectors are refused with `invalid_input` at upsert; scores are never NaN or infinite (rules: vectors; issue 16 #9)."
        ),
        case!(
            Suite::Vector,
            extreme_vectors_euclidean,
            "Euclidean and dot scores of vectors near ±f32::MAX are finite and match plugin-api `Metric::score` (computed in f64), or the vectors are refused with `invalid_input` at upsert (rules: vectors; issue 16 #9)."
        ),
        case!(
            Suite::Vector,
            results_have_unique_ids,
            "A query never returns an id twice, also after records were overwritten many times (an index must drop the old entry) (plugin-api `VectorStore::query`)."
        ),
    ]
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
async fn top_k_order_and_scores_cosine(ctx: Ctx) -> CaseResult {
    scores_match_exact(ctx, Metric::Cosine).await
}

/// Dot product: ids and scores equal exact computation, best first.
async fn top_k_order_and_scores_dot(ctx: Ctx) -> CaseResult {
    scores_match_exact(ctx, Metric::Dot).await
}

/// Euclidean (negative L2, higher is closer): ids and scores equal exact computation.
async fn top_k_order_and_scores_euclidean(ctx: Ctx) -> CaseResult {
    scores_match_exact(ctx, Metric::Euclidean).await
}

/// Include flags select what comes back; `min_score` drops weaker results.
async fn include_flags_and_min_score(ctx: Ctx) -> CaseResult {
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

/// A small collection for the top_k cases: 7 records, `even` in metadata.
async fn seven(ctx: &Ctx, name: &str) -> Result<(strata_host::Vectors, String), Failure> {
    let (v, c) = store_with(ctx, name, 3, Metric::Cosine).await?;
    v.upsert(
        &c,
        (0..7).map(|i| {
            Record::new(format!("t{i}"), vec![1.0, i as f32, 0.5])
                .metadata(json!({"even": i % 2 == 0}))
        }),
    )
    .await?;
    Ok((v, c))
}

fn check_all_returned(hits: &[strata_host::Hit], want: usize, what: &str) -> CaseResult {
    ensure_eq!(hits.len(), want, "{what}: results");
    let mut ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ensure_eq!(ids.len(), want, "{what}: distinct ids");
    ensure!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "{what}: scores must not increase down the list"
    );
    Ok(())
}

/// top_k far above the collection size returns everything.
async fn top_k_far_above_the_collection_size(ctx: Ctx) -> CaseResult {
    let (v, c) = seven(&ctx, "bigk").await?;
    let q = Query::new(vec![1.0, 3.0, 0.5]);
    for k in [8u32, 1_000, 1_000_000] {
        let hits = v.query(&c, &q.clone().top_k(k)).await?;
        check_all_returned(&hits, 7, &format!("top_k {k}"))?;
        ensure_eq!(hits[0].id, "t3", "top_k {k}: the best match");
        let even = v
            .query(&c, &q.clone().top_k(k).filter(json!({"even": true})))
            .await?;
        check_all_returned(&even, 4, &format!("top_k {k} with a filter"))?;
    }
    Ok(())
}

/// top_k = u32::MAX returns everything (and allocates nothing huge).
async fn top_k_u32_max(ctx: Ctx) -> CaseResult {
    let (v, c) = seven(&ctx, "maxk").await?;
    let hits = v
        .query(&c, &Query::new(vec![1.0, 3.0, 0.5]).top_k(u32::MAX))
        .await?;
    check_all_returned(&hits, 7, "top_k u32::MAX")
}

/// top_k = u32::MAX with a filter returns every match.
async fn top_k_u32_max_with_a_filter(ctx: Ctx) -> CaseResult {
    let (v, c) = seven(&ctx, "maxkf").await?;
    let hits = v
        .query(
            &c,
            &Query::new(vec![1.0, 3.0, 0.5])
                .top_k(u32::MAX)
                .filter(json!({"even": false})),
        )
        .await?;
    check_all_returned(&hits, 3, "top_k u32::MAX with a filter")?;
    ensure!(
        hits.iter()
            .all(|h| h.metadata == Some(json!({"even": false}))),
        "a result does not match the filter: {hits:?}"
    );
    Ok(())
}

fn close_to(got: f64, want: f64) -> bool {
    got.is_finite() && (got - want).abs() <= 1e-4 * want.abs().max(1.0)
}

/// Zero vectors: refused under cosine, or scored 0; ordinary otherwise.
async fn zero_vectors(ctx: Ctx) -> CaseResult {
    for metric in [Metric::Cosine, Metric::Dot, Metric::Euclidean] {
        let (v, c) = store_with(&ctx, &format!("zero_{}", metric.name()), 3, metric).await?;
        v.upsert(
            &c,
            [
                Record::new("a", vec![1.0, 0.0, 0.0]),
                Record::new("b", vec![0.0, 2.0, 0.0]),
            ],
        )
        .await?;
        let what = format!("{} upsert of a zero vector", metric.name());
        let stored = accepted_or_refused(
            v.upsert(&c, [Record::new("zero", vec![0.0; 3])]).await,
            &what,
        )?;
        ensure!(
            stored.is_some() || metric == Metric::Cosine,
            "{what}: a zero vector is an ordinary vector under {} and must be accepted",
            metric.name()
        );
        let stored_n = 2 + usize::from(stored.is_some());
        ensure_eq!(
            v.count(&c, None).await? as usize,
            stored_n,
            "{what}: records"
        );
        let data: Vec<(String, Vec<f32>)> =
            [("a", vec![1.0, 0.0, 0.0]), ("b", vec![0.0, 2.0, 0.0])]
                .into_iter()
                .chain(stored.map(|_| ("zero", vec![0.0; 3])))
                .map(|(id, x)| (id.to_string(), x))
                .collect();
        for q in [vec![3.0f32, 4.0, 0.0], vec![0.0; 3]] {
            let what = format!("{} query by {q:?}", metric.name());
            let Some(hits) = accepted_or_refused(v.query(&c, &Query::new(q.clone())).await, &what)?
            else {
                ensure!(
                    metric == Metric::Cosine && q.iter().all(|x| *x == 0.0),
                    "{what}: only a zero query vector under cosine may be refused"
                );
                continue;
            };
            ensure_eq!(hits.len(), data.len(), "{what}: results");
            for h in &hits {
                let x = &data
                    .iter()
                    .find(|(id, _)| *id == h.id)
                    .ok_or_else(|| Failure::new(format!("{what}: unknown id {}", h.id)))?
                    .1;
                let want = metric.score(&q, x);
                ensure!(
                    close_to(h.score, want),
                    "{what}: {} scored {} (exact: {want})",
                    h.id,
                    h.score
                );
            }
        }
    }
    Ok(())
}

/// Upserts `records` one by one, keeping those accepted; a refusal must be
/// `invalid_input`.
async fn upsert_each(
    v: &strata_host::Vectors,
    c: &str,
    records: &[(&str, Vec<f32>)],
) -> Result<Vec<(String, Vec<f32>)>, Failure> {
    let mut kept = Vec::new();
    for (id, x) in records {
        let what = format!("upsert of {id} {x:?}");
        if accepted_or_refused(v.upsert(c, [Record::new(*id, x.clone())]).await, &what)?.is_some() {
            kept.push((id.to_string(), x.clone()));
        }
    }
    Ok(kept)
}

/// Scores of every stored record for each query equal the reference, or
/// the query is refused with `invalid_input`.
async fn scores_equal_reference(
    v: &strata_host::Vectors,
    c: &str,
    metric: Metric,
    stored: &[(String, Vec<f32>)],
    queries: &[Vec<f32>],
) -> CaseResult {
    for q in queries {
        let what = format!("{} query by {q:?}", metric.name());
        let Some(hits) =
            accepted_or_refused(v.query(c, &Query::new(q.clone()).top_k(100)).await, &what)?
        else {
            continue;
        };
        ensure_eq!(hits.len(), stored.len(), "{what}: results");
        for h in &hits {
            let x = &stored
                .iter()
                .find(|(id, _)| *id == h.id)
                .ok_or_else(|| Failure::new(format!("{what}: unknown id {}", h.id)))?
                .1;
            let want = metric.score(q, x);
            ensure!(
                close_to(h.score, want),
                "{what}: {} scored {} (exact, as plugin-api `Metric::score` computes it: {want})",
                h.id,
                h.score
            );
        }
        ensure!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{what}: scores must not increase down the list: {:?}",
            hits.iter().map(|h| h.score).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Cosine of vectors at the edges of f32 equals the f64 reference.
async fn extreme_vectors_cosine(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "extreme_cos", 4, Metric::Cosine).await?;
    let stored = upsert_each(
        &v,
        &c,
        &[
            ("huge", vec![0.0, 0.0, 0.0, -3.4e38]),
            ("mixed", vec![3.0e38, 0.0, 0.0, 3.0e38]),
            ("subnormal", vec![0.0, 0.0, 0.0, -1.0e-40]),
            ("plain", vec![1.0, 1.0, 0.0, 0.0]),
        ],
    )
    .await?;
    scores_equal_reference(
        &v,
        &c,
        Metric::Cosine,
        &stored,
        &[
            vec![0.0, 0.0, 0.0, -1.0],
            vec![0.0, 0.0, 0.0, -3.4e38],
            vec![1.0e-39, 0.0, 0.0, 0.0],
            vec![f32::MAX, f32::MAX, f32::MAX, f32::MAX],
        ],
    )
    .await
}

/// Euclidean and dot scores near f32::MAX are finite and exact.
async fn extreme_vectors_euclidean(ctx: Ctx) -> CaseResult {
    for metric in [Metric::Euclidean, Metric::Dot] {
        let (v, c) = store_with(&ctx, &format!("extreme_{}", metric.name()), 4, metric).await?;
        let stored = upsert_each(
            &v,
            &c,
            &[
                ("far", vec![0.0, 0.0, 0.0, 3.0e38]),
                ("origin", vec![0.0, 0.0, 0.0, 0.0]),
                ("negative", vec![-3.0e38, 0.0, 0.0, -3.0e38]),
                ("plain", vec![1.0, 2.0, 3.0, 4.0]),
            ],
        )
        .await?;
        scores_equal_reference(
            &v,
            &c,
            metric,
            &stored,
            &[
                vec![0.0, 0.0, 0.0, 3.0e38],
                vec![0.0, 0.0, 0.0, -3.0e38],
                vec![1.0, 1.0, 1.0, 1.0],
            ],
        )
        .await?;
    }
    Ok(())
}

/// No query returns an id twice, also after many overwrites.
async fn results_have_unique_ids(ctx: Ctx) -> CaseResult {
    let dim = 8;
    let (v, c) = store_with(&ctx, "unique", dim as u32, Metric::Euclidean).await?;
    let base = random_vectors(61, 300, dim);
    v.upsert(
        &c,
        base.iter()
            .enumerate()
            .map(|(i, x)| Record::new(format!("u{i}"), x.clone())),
    )
    .await?;
    for round in 0..5u64 {
        let moved = random_vectors(100 + round, 60, dim);
        v.upsert(
            &c,
            moved
                .into_iter()
                .enumerate()
                .map(|(i, x)| Record::new(format!("u{}", i * 5), x)),
        )
        .await?;
    }
    ensure_eq!(
        v.count(&c, None).await?,
        300,
        "records after the overwrites"
    );
    for (qi, q) in random_vectors(7, 8, dim).into_iter().enumerate() {
        let hits = v
            .query(&c, &Query::new(q).top_k(150).include(Include::default()))
            .await?;
        ensure_eq!(hits.len(), 150, "query {qi}: results");
        let mut ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        ensure_eq!(
            ids.len(),
            before,
            "query {qi}: distinct ids among the results"
        );
    }
    let hits = v.query(&c, &Query::new(base[1].clone()).top_k(1)).await?;
    ensure_eq!(
        hits.first().map(|h| h.id.as_str()),
        Some("u1"),
        "a record never overwritten still finds itself"
    );
    Ok(())
}
