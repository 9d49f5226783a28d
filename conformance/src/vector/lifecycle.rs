//! The store under concurrency, close and cancellation.

use std::time::Duration;

use serde_json::json;
use strata_host::{ErrorKind, Include, Metric, Query, Record};

use super::support::{random_vectors, store_with};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq, expect_kind},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            concurrent_upserts_and_queries,
            "Upserts and queries from many tasks at once all succeed and nothing is lost (plugin-api `VectorStore`: Send + Sync, shared between tasks)."
        ),
        case!(
            Suite::Vector,
            concurrent_overwrites_of_the_same_ids,
            "Concurrent upserts of the same ids leave one whole record per id — vector, metadata and text from the same write, never a mix — and the count unchanged (rules: records)."
        ),
        case!(
            Suite::Vector,
            calls_after_close_are_closed,
            "After the backend is closed, every vector call fails with `closed` (kit `Plugin::close`: \"every handle it gave out answers closed after\")."
        ),
        case!(
            Suite::Vector,
            cancelled_upsert_leaves_the_store_usable,
            "An upsert dropped mid-flight (a caller's timeout) leaves the store usable: the next calls answer at once, no record is half-written, and upserting the batch again completes it (rules: cancellation)."
        ),
    ]
}

/// Upserts and queries from many tasks at once all succeed, each task reads
/// its own writes, and nothing is lost.
async fn concurrent_upserts_and_queries(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "conc", 8, Metric::Euclidean).await?;
    let mut tasks = Vec::new();
    for t in 0..6u32 {
        let (v, c) = (v.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            for b in 0..10u32 {
                // Every vector is distinct: t·1000 + b·20 + i in every component.
                let value = |i: u32| (t * 1000 + b * 20 + i) as f32;
                let recs = (0..20).map(|i| Record::new(format!("t{t}-b{b}-{i}"), vec![value(i); 8]));
                v.upsert(&c, recs).await?;
                let hits = v
                    .query(&c, &Query::new(vec![value(7); 8]).top_k(5))
                    .await?;
                ensure!(hits.len() == 5, "task {t}, batch {b}: {} results", hits.len());
                ensure!(
                    hits[0].id == format!("t{t}-b{b}-7") && hits[0].score.abs() < 1e-3,
                    "task {t}, batch {b}: a query by a vector just written must find it first with score 0, got {} ({})",
                    hits[0].id,
                    hits[0].score
                );
                ensure!(
                    hits.windows(2).all(|w| w[0].score >= w[1].score),
                    "task {t}, batch {b}: scores must not increase down the list"
                );
            }
            Ok::<_, Failure>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Failure::new(format!("task panicked: {e}")))??;
    }
    ensure_eq!(v.count(&c, None).await?, 6 * 10 * 20);
    Ok(())
}

/// Concurrent upserts of the same ids leave whole records.
async fn concurrent_overwrites_of_the_same_ids(ctx: Ctx) -> CaseResult {
    const IDS: usize = 40;
    let (v, c) = store_with(&ctx, "overwrite", 4, Metric::Dot).await?;
    let mut tasks = Vec::new();
    for w in 0..6u32 {
        let (v, c) = (v.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..5u32 {
                let recs = (0..IDS).map(|i| {
                    let tag = (w * 10 + round) as f32;
                    Record::new(format!("same{i}"), vec![tag, i as f32, 1.0, 0.0])
                        .metadata(json!({"writer": w, "round": round}))
                        .text(format!("writer {w} round {round}"))
                });
                v.upsert(&c, recs).await?;
            }
            Ok::<_, strata_host::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Failure::new(format!("task panicked: {e}")))??;
    }
    ensure_eq!(
        v.count(&c, None).await?,
        IDS as u64,
        "records after concurrent overwrites"
    );
    let ids: Vec<String> = (0..IDS).map(|i| format!("same{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let got = v.fetch(&c, &refs, Include::ALL).await?;
    ensure_eq!(got.len(), IDS, "records fetched");
    for (i, h) in got.iter().enumerate() {
        let x = h.vector.as_ref().ok_or_else(|| Failure::new("no vector"))?;
        let meta = h
            .metadata
            .as_ref()
            .ok_or_else(|| Failure::new("no metadata"))?;
        let (w, round) = (meta["writer"].as_u64(), meta["round"].as_u64());
        let (Some(w), Some(round)) = (w, round) else {
            return Err(Failure::new(format!("{}: odd metadata {meta}", h.id)));
        };
        ensure_eq!(
            x,
            &vec![(w * 10 + round) as f32, i as f32, 1.0, 0.0],
            "{}: the vector must come from the same write as the metadata {meta}",
            h.id
        );
        let want_text = format!("writer {w} round {round}");
        ensure_eq!(
            h.text.as_deref(),
            Some(want_text.as_str()),
            "{}: the text must come from the same write as the metadata",
            h.id
        );
    }
    Ok(())
}

/// Every call after the backend closed is `closed`.
async fn calls_after_close_are_closed(ctx: Ctx) -> CaseResult {
    let backend = ctx.backend().await?;
    let v = backend.vectors()?;
    let c = ctx.collection("closed");
    v.create_collection(&c, 2, Metric::Cosine).await?;
    v.upsert(&c, [Record::new("a", vec![1.0, 0.0])]).await?;
    backend.close().await?;
    expect_kind(
        v.upsert(&c, [Record::new("b", vec![0.0, 1.0])]).await,
        ErrorKind::Closed,
        "upsert after close",
    )?;
    expect_kind(
        v.query(&c, &Query::new(vec![1.0, 0.0])).await,
        ErrorKind::Closed,
        "query after close",
    )?;
    expect_kind(
        v.fetch(&c, &["a"], Include::ALL).await,
        ErrorKind::Closed,
        "fetch after close",
    )?;
    expect_kind(
        v.count(&c, None).await,
        ErrorKind::Closed,
        "count after close",
    )?;
    expect_kind(
        v.stats(&c).await,
        ErrorKind::Closed,
        "collection_info after close",
    )?;
    expect_kind(
        v.list().await,
        ErrorKind::Closed,
        "list_collections after close",
    )?;
    expect_kind(
        v.create_collection(&ctx.collection("closed2"), 2, Metric::Cosine)
            .await,
        ErrorKind::Closed,
        "create_collection after close",
    )?;
    expect_kind(
        v.delete_ids(&c, &["a"]).await,
        ErrorKind::Closed,
        "delete after close",
    )?;
    expect_kind(
        v.drop_collection(&c).await,
        ErrorKind::Closed,
        "drop_collection after close",
    )?;
    // What was written before the close is still there for a new backend
    // sharing the storage (nothing was dropped by the refused calls).
    let again = ctx.vectors().await?;
    if again.exists(&c).await? {
        ensure_eq!(
            again.count(&c, None).await?,
            1,
            "records seen by a new backend"
        );
    }
    Ok(())
}

/// An upsert abandoned mid-flight leaves the store usable and whole.
async fn cancelled_upsert_leaves_the_store_usable(ctx: Ctx) -> CaseResult {
    let limit = Duration::from_secs(20);
    let dim = 32;
    let (v, c) = store_with(&ctx, "cancel", dim as u32, Metric::Cosine).await?;
    let data = random_vectors(91, 20_000, dim);
    let records: Vec<Record> = data
        .iter()
        .enumerate()
        .map(|(i, x)| Record::new(format!("c{i}"), x.clone()).metadata(json!({"i": i})))
        .collect();
    let abandoned =
        tokio::time::timeout(Duration::from_millis(5), v.upsert(&c, records.clone())).await;
    let n = tokio::time::timeout(limit, v.count(&c, None))
        .await
        .map_err(|_| {
            Failure::new("count after an abandoned upsert did not answer within 20 s")
        })??;
    ensure!(
        n <= 20_000,
        "{n} records after an abandoned upsert of 20,000"
    );
    if abandoned.is_ok() {
        // It finished within 5 ms: nothing was cancelled, but the checks
        // below still hold.
        ensure_eq!(n, 20_000, "records after a completed upsert");
    }
    // Whatever landed is whole: vector and metadata from the same record.
    let probe: Vec<String> = (0..20_000).step_by(997).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = probe.iter().map(String::as_str).collect();
    for h in v.fetch(&c, &refs, Include::ALL).await? {
        let i: usize = h.id[1..]
            .parse()
            .map_err(|_| Failure::new(format!("odd id {}", h.id)))?;
        ensure_eq!(h.vector.as_ref(), Some(&data[i]), "vector of {}", h.id);
        ensure_eq!(h.metadata, Some(json!({"i": i})), "metadata of {}", h.id);
    }
    tokio::time::timeout(limit, v.upsert(&c, records))
        .await
        .map_err(|_| Failure::new("upserting the batch again did not finish within 20 s"))??;
    ensure_eq!(
        v.count(&c, None).await?,
        20_000,
        "records after upserting the batch again"
    );
    let hits = v
        .query(&c, &Query::new(data[12_345].clone()).top_k(1))
        .await?;
    ensure_eq!(
        hits.first().map(|h| h.id.as_str()),
        Some("c12345"),
        "a record finds itself"
    );
    Ok(())
}
