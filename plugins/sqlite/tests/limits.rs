//! Sizes and magnitudes at the edge, through the loaded `.so`: a caller's
//! `top_k` never sizes an allocation, and scores stay right near the `f32`
//! limit.

mod common;

use std::path::Path;

use serde_json::json;
use strata_host::{Hybrid, Include, Metric, Query, Record, Strata};

use common::plugin;

fn open(dir: &Path) -> Strata {
    let cfg = dir.join("plugins.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?}, hnsw_threshold = 200, hnsw_build = \"inline\" }}\n",
            plugin(),
            dir.join("db.sqlite")
        ),
    )
    .unwrap();
    Strata::load(&cfg).unwrap()
}

/// `top_k = u32::MAX` on a one-record collection, as a plain, filtered,
/// hybrid and filtered hybrid query, then on a collection past the HNSW
/// threshold: the record(s) come back, and nothing allocates by `top_k`
/// (before the fix the process aborted: "memory allocation of 103079215104
/// bytes failed").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_top_k_returns_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let strata = open(dir.path());
    let v = strata.vectors().await.unwrap();
    v.create_collection("one", 3, Metric::Cosine).await.unwrap();
    v.upsert(
        "one",
        [Record::new("a", vec![1.0, 0.0, 0.0])
            .metadata(json!({"kind": "fact"}))
            .text("green tea")],
    )
    .await
    .unwrap();
    let q = vec![1.0, 0.1, 0.0];
    let ids = |hits: Vec<strata_host::Hit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
    let plain = v
        .query("one", &Query::new(q.clone()).top_k(u32::MAX))
        .await
        .unwrap();
    assert_eq!(ids(plain), ["a"]);
    let filtered = v
        .query(
            "one",
            &Query::new(q.clone())
                .top_k(u32::MAX)
                .filter(json!({"kind": "fact"})),
        )
        .await
        .unwrap();
    assert_eq!(ids(filtered), ["a"]);
    let hybrid = v
        .hybrid_query("one", &Hybrid::new(q.clone(), "tea").top_k(u32::MAX))
        .await
        .unwrap();
    assert_eq!(ids(hybrid), ["a"]);
    let hybrid_filtered = v
        .hybrid_query(
            "one",
            &Hybrid::new(q.clone(), "tea")
                .top_k(u32::MAX)
                .filter(json!({"kind": {"$ne": "fact"}})),
        )
        .await
        .unwrap();
    assert!(hybrid_filtered.is_empty());

    // Past the threshold: the HNSW path (and its exact fallback) too.
    v.create_collection("many", 3, Metric::Euclidean)
        .await
        .unwrap();
    let records: Vec<Record> = (0..300)
        .map(|i| {
            let t = i as f32 * 0.1;
            Record::new(format!("r{i}"), vec![t.cos(), t.sin(), t * 0.01])
                .metadata(json!({"even": i % 2 == 0}))
        })
        .collect();
    v.upsert("many", records).await.unwrap();
    let all = v
        .query(
            "many",
            &Query::new(q.clone())
                .top_k(u32::MAX)
                .include(Include::default()),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    let even = v
        .query(
            "many",
            &Query::new(q).top_k(u32::MAX).filter(json!({"even": true})),
        )
        .await
        .unwrap();
    assert_eq!(even.len(), 150);
    strata.close().await.unwrap();
}

/// Vectors near the `f32` limit score what the metric says: a cosine
/// vector `[0,0,0,-3.4e38]` against `[0,0,0,-1]` is 1, not 0 (its norm
/// overflowed `f32` and normalised it to zero), and euclidean and dot
/// scores beyond the `f32` range are finite numbers, not `null` (the
/// squared distance overflowed to infinity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_near_the_f32_limit_are_right() {
    let dir = tempfile::tempdir().unwrap();
    let strata = open(dir.path());
    let v = strata.vectors().await.unwrap();
    let score = |hits: &[strata_host::Hit], id: &str| {
        hits.iter()
            .find(|h| h.id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
            .score
    };
    let close = |got: f64, want: f64| (got - want).abs() <= want.abs() * 1e-6;

    v.create_collection("cos", 4, Metric::Cosine).await.unwrap();
    v.upsert(
        "cos",
        [
            Record::new("huge", vec![0.0, 0.0, 0.0, -3.4e38]),
            Record::new("tiny", vec![0.0, 0.0, 0.0, -1e-30]),
            Record::new("other", vec![0.0, 1.0, 0.0, 0.0]),
        ],
    )
    .await
    .unwrap();
    let hits = v
        .query("cos", &Query::new(vec![0.0, 0.0, 0.0, -1.0]).top_k(3))
        .await
        .unwrap();
    assert!(close(score(&hits, "huge"), 1.0), "{hits:?}");
    assert!(close(score(&hits, "tiny"), 1.0), "{hits:?}");
    assert_eq!(score(&hits, "other"), 0.0);
    // The huge vector as the query.
    let hits = v
        .query("cos", &Query::new(vec![0.0, 0.0, 0.0, -3.4e38]).top_k(3))
        .await
        .unwrap();
    assert!(close(score(&hits, "huge"), 1.0), "{hits:?}");

    v.create_collection("l2", 4, Metric::Euclidean)
        .await
        .unwrap();
    v.upsert(
        "l2",
        [
            Record::new("unit", vec![0.0, 0.0, 0.0, -1.0]),
            Record::new("far", vec![0.0, 0.0, 0.0, -3e38]),
        ],
    )
    .await
    .unwrap();
    let hits = v
        .query("l2", &Query::new(vec![0.0, 0.0, 0.0, 3e38]).top_k(2))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.score.is_finite()), "{hits:?}");
    assert!(close(score(&hits, "unit"), -3e38), "{hits:?}");
    // 6e38 is beyond f32::MAX: the score is computed in f64.
    assert!(close(score(&hits, "far"), -6e38), "{hits:?}");
    assert_eq!(hits[0].id, "unit");

    v.create_collection("dot", 2, Metric::Dot).await.unwrap();
    v.upsert(
        "dot",
        [
            Record::new("big", vec![1e20, 0.0]),
            Record::new("small", vec![1.0, 0.0]),
        ],
    )
    .await
    .unwrap();
    let hits = v
        .query("dot", &Query::new(vec![1e20, 0.0]).top_k(2))
        .await
        .unwrap();
    assert!(close(score(&hits, "big"), 1e40), "{hits:?}");
    assert!(close(score(&hits, "small"), 1e20), "{hits:?}");
    assert_eq!(hits[0].id, "big");
    strata.close().await.unwrap();
}
