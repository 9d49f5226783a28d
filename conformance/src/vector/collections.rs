//! Collections: create, drop, list, describe, and their names.

use strata_host::{ErrorKind, Include, Metric, Query, Record};

use super::support::store_with;
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, accepted_or_refused, ensure, ensure_eq, expect_kind},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            empty_collection,
            "A new collection is empty, listed, described with its dimension and metric, answers queries with nothing and fetches of missing ids with nothing (VectorStore::create_collection, collection_info, list_collections)."
        ),
        case!(
            Suite::Vector,
            collection_lifecycle,
            "create_collection is a no-op for the same spec and `already_exists` for another dimension or metric; drop_collection removes it (true), then reports false; calls on a dropped collection are `not_found` (plugin-api `VectorStore`)."
        ),
        case!(
            Suite::Vector,
            invalid_names_and_dimensions,
            "Collection names are `[A-Za-z0-9_-]{1,64}` starting with a letter and dimensions 1..=65536; anything else is `invalid_input` and creates nothing (plugin-api `CollectionSpec`)."
        ),
        case!(
            Suite::Vector,
            dimension_limits,
            "Dimensions above 65,536 are `invalid_input` (plugin-api `CollectionSpec::dimension`: 1..=65536); a backend may have a lower limit of its own and refuse above it with `invalid_input` — else a 65,536-d record is stored and found (rules: vectors)."
        ),
        case!(
            Suite::Vector,
            names_up_to_64_characters_are_distinct,
            "A 64-character name is valid, and two names differing only in their last character are two collections (plugin-api `CollectionSpec::name`; a backend whose identifiers are shorter must map names without collisions)."
        ),
        case!(
            Suite::Vector,
            operations_on_a_missing_collection_are_not_found,
            "Every call on a collection that does not exist is `not_found` — upsert, query, fetch, delete, count, scan — and collection_info is none (plugin-api `ErrorKind::NotFound`)."
        ),
        case!(
            Suite::Vector,
            stats_and_list_report_counts,
            "collection_info and list_collections report each collection's count as records are written and deleted, and details_json is a JSON object (plugin-api `CollectionInfo`)."
        ),
    ]
}

/// A new collection is empty, listed, and answers queries with nothing.
async fn empty_collection(ctx: Ctx) -> CaseResult {
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
async fn collection_lifecycle(ctx: Ctx) -> CaseResult {
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
async fn invalid_names_and_dimensions(ctx: Ctx) -> CaseResult {
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

/// Dimension 65,536 works; 65,537 is refused.
async fn dimension_limits(ctx: Ctx) -> CaseResult {
    let v = ctx.vectors().await?;
    let too_big = ctx.collection("dim65537");
    expect_kind(
        v.create_collection(&too_big, 65_537, Metric::Dot).await,
        ErrorKind::InvalidInput,
        "dimension 65,537",
    )?;
    ensure!(
        !v.exists(&too_big).await?,
        "a refused create left a collection"
    );
    let c = ctx.collection("dim65536");
    let created = accepted_or_refused(
        v.create_collection(&c, 65_536, Metric::Dot).await,
        "dimension 65,536",
    )?;
    if created.is_none() {
        ensure!(!v.exists(&c).await?, "a refused create left a collection");
        return Ok(());
    }
    let mut x = vec![0.0f32; 65_536];
    x[65_535] = 1.0;
    v.upsert(&c, [Record::new("wide", x.clone())]).await?;
    let hits = v.query(&c, &Query::new(x).top_k(1)).await?;
    ensure_eq!(
        hits.first().map(|h| (h.id.as_str(), h.score)),
        Some(("wide", 1.0)),
        "a 65,536-d record finds itself with dot product 1"
    );
    Ok(())
}

/// 64-character names are valid, and names differing in their last
/// character are different collections.
async fn names_up_to_64_characters_are_distinct(ctx: Ctx) -> CaseResult {
    let v = ctx.vectors().await?;
    // Registered for cleanup under the case's prefix, then padded to 64.
    let base = ctx.collection("n");
    let pad = |last: char| {
        let mut s = base.clone();
        while s.len() < 63 {
            s.push('x');
        }
        s.push(last);
        s
    };
    let (a, b) = (pad('a'), pad('b'));
    ensure_eq!(a.len(), 64, "test name length");
    // The padded names are not the registered one: drop them here, and
    // register them too so the cleanup drops them after a failure.
    let _ = (ctx.collection_named(&a), ctx.collection_named(&b));
    v.create_collection(&a, 2, Metric::Dot).await?;
    v.create_collection(&b, 3, Metric::Cosine).await?;
    v.upsert(&a, [Record::new("in-a", vec![1.0, 0.0])]).await?;
    v.upsert(
        &b,
        [
            Record::new("in-b", vec![1.0, 0.0, 0.0]),
            Record::new("b2", vec![0.0, 1.0, 0.0]),
        ],
    )
    .await?;
    let sa = v
        .stats(&a)
        .await?
        .ok_or_else(|| Failure::new("no stats for the first 64-character name"))?;
    let sb = v
        .stats(&b)
        .await?
        .ok_or_else(|| Failure::new("no stats for the second 64-character name"))?;
    ensure_eq!(
        (sa.name.as_str(), sa.dimension, sa.count),
        (a.as_str(), 2, 1),
        "the first collection"
    );
    ensure_eq!(
        (sb.name.as_str(), sb.dimension, sb.count),
        (b.as_str(), 3, 2),
        "the second collection"
    );
    let listed: Vec<String> = v.list().await?.into_iter().map(|s| s.name).collect();
    ensure!(
        listed.contains(&a) && listed.contains(&b),
        "both 64-character names listed"
    );
    ensure!(v.drop_collection(&a).await?, "drop of the first");
    ensure!(v.exists(&b).await?, "dropping one name dropped the other");
    Ok(())
}

/// Every call on a missing collection is `not_found`.
async fn operations_on_a_missing_collection_are_not_found(ctx: Ctx) -> CaseResult {
    let v = ctx.vectors().await?;
    let c = ctx.collection("never_created");
    ensure!(
        v.stats(&c).await?.is_none(),
        "collection_info of a missing collection"
    );
    ensure!(!v.exists(&c).await?, "exists of a missing collection");
    expect_kind(
        v.upsert(&c, [Record::new("a", vec![1.0])]).await,
        ErrorKind::NotFound,
        "upsert",
    )?;
    expect_kind(
        v.query(&c, &Query::new(vec![1.0])).await,
        ErrorKind::NotFound,
        "query",
    )?;
    expect_kind(
        v.fetch(&c, &["a"], Include::ALL).await,
        ErrorKind::NotFound,
        "fetch",
    )?;
    expect_kind(
        v.delete_ids(&c, &["a"]).await,
        ErrorKind::NotFound,
        "delete by ids",
    )?;
    expect_kind(
        v.delete_where(&c, &serde_json::json!({"k": 1})).await,
        ErrorKind::NotFound,
        "delete by filter",
    )?;
    expect_kind(v.delete_all(&c).await, ErrorKind::NotFound, "delete all")?;
    expect_kind(v.count(&c, None).await, ErrorKind::NotFound, "count")?;
    if ctx.has(strata_plugin_api::capabilities::VECTOR_SCAN) {
        expect_kind(
            v.scan(&c, None, 10, None, Include::default()).await,
            ErrorKind::NotFound,
            "scan",
        )?;
    }
    ensure!(
        !v.drop_collection(&c).await?,
        "drop of a missing collection reports false"
    );
    ensure!(
        !v.exists(&c).await?,
        "a refused call created the collection"
    );
    Ok(())
}

/// Counts follow writes in both collection_info and list_collections.
async fn stats_and_list_report_counts(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "stats", 3, Metric::Euclidean).await?;
    let listed_count = |v: strata_host::Vectors, c: String| async move {
        let all = v.list().await?;
        let mine: Vec<_> = all.into_iter().filter(|s| s.name == c).collect();
        ensure_eq!(mine.len(), 1, "times the collection is listed");
        Ok::<_, Failure>((mine[0].count, mine[0].dimension, mine[0].metric))
    };
    for (step, n) in [
        ("empty", 0u64),
        ("after 7 upserts", 7),
        ("after deleting 2", 5),
    ] {
        match step {
            "after 7 upserts" => {
                v.upsert(
                    &c,
                    (0..7).map(|i| Record::new(format!("s{i}"), vec![i as f32, 0.0, 1.0])),
                )
                .await?;
            }
            "after deleting 2" => {
                v.delete_ids(&c, &["s1", "s3"]).await?;
            }
            _ => {}
        }
        let stats = v
            .stats(&c)
            .await?
            .ok_or_else(|| Failure::new(format!("no collection_info {step}")))?;
        ensure_eq!(stats.count, n, "collection_info count {step}");
        ensure!(
            stats.details.is_object(),
            "details_json must be a JSON object, got {}",
            stats.details
        );
        ensure_eq!(
            listed_count(v.clone(), c.clone()).await?,
            (n, 3, Metric::Euclidean),
            "list_collections {step}"
        );
    }
    Ok(())
}
