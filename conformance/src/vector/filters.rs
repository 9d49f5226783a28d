//! The filter language, against the reference semantics of
//! [`Filter::matches`].

use std::collections::HashSet;

use serde_json::{Value as Json, json};
use strata_host::{ErrorKind, Metric, Query, Record, Vectors};
use strata_plugin_api::filter::Filter;

use super::support::{clustered, exact, random_vectors, store_with};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            every_filter_operator,
            "Every operator, nested logic, dotted paths, arrays, missing fields and nulls match exactly what `Filter::matches` (the reference semantics) says, in count, query and delete (plugin-api `filter` module)."
        ),
        case!(
            Suite::Vector,
            filtered_query_returns_top_k_when_they_exist,
            "A filtered query returns top_k results whenever that many records match — the best-scoring matching ones — also when an index answers (plugin-api `filter` module: never drop or post-filter results away)."
        ),
        case!(
            Suite::Vector,
            malformed_filters_are_rejected,
            "A malformed filter is `invalid_input` naming the clause, from count, query, scan and delete (plugin-api `Filter::parse`)."
        ),
        case!(
            Suite::Vector,
            dotted_keys_are_paths,
            "A dotted filter key is a path into nested objects; a metadata key that itself contains a dot is stored and returned as is, but a filter cannot address it (plugin-api `filter` module: \"Paths are dotted\"; rules: filters)."
        ),
        case!(
            Suite::Vector,
            dollar_keys_in_metadata,
            "Metadata keys starting with `$` are stored and returned as is; a filter naming one is `invalid_input` (an unknown operator) rather than a match or a silent miss (rules: filters)."
        ),
        case!(
            Suite::Vector,
            integers_and_floats_compare_as_numbers,
            "Numbers compare as numbers: 1 equals 1.0 in either direction, in $eq, $in, $ne and ranges; integers are exact up to 2^53 (plugin-api `filter` module)."
        ),
        case!(
            Suite::Vector,
            arrays_of_objects,
            "Arrays of objects round-trip exactly; a path does not reach into objects inside arrays (`items.k` matches nothing, `$exists: false` matches) and a scalar never equals an object element — the reference semantics of `Filter::matches` (rules: filters)."
        ),
        case!(
            Suite::Vector,
            filtered_queries_follow_writes,
            "Filtered queries answer from the records as written now: after a filtered query, overwrites that change metadata, deletes by id and by filter, and new records are all seen by the next filtered query and count (rules: filters; a backend that keeps metadata in memory must patch or reload it)."
        ),
        case!(
            Suite::Vector,
            filter_with_a_large_in_list,
            "A filter with 2,000 values in $in or $nin, or 1,000 clauses in $or, is answered exactly (plugin-api `filter` module: translate the filter exactly, never drop a clause)."
        ),
    ]
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
async fn every_filter_operator(ctx: Ctx) -> CaseResult {
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

/// Filtered queries after writes: a backend that answers filters from
/// metadata held in memory (read at the first filtered query) must see
/// every later overwrite, delete and insert.
async fn filtered_queries_follow_writes(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "filterwrites", 4, Metric::Cosine).await?;
    let kinds = ["fact", "event", "preference"];
    let mut state: std::collections::BTreeMap<String, Json> = (0..40)
        .map(|i| (format!("w{i:02}"), json!({"kind": kinds[i % 3], "n": i})))
        .collect();
    let upsert = |ids: Vec<(String, Json)>, seed: u64| {
        let vectors = random_vectors(seed, ids.len(), 4);
        let records: Vec<Record> = ids
            .into_iter()
            .zip(vectors)
            .map(|((id, m), x)| Record::new(id, x).metadata(m))
            .collect();
        let (v, c) = (&v, &c);
        async move { v.upsert(c, records).await }
    };
    upsert(state.clone().into_iter().collect(), 1).await?;
    let filters = [
        json!({"kind": "fact"}),
        json!({"n": {"$gte": 20}}),
        json!({"$or": [{"kind": "event"}, {"n": {"$lt": 5}}]}),
        json!({"moved": true}),
    ];
    let check = |state: std::collections::BTreeMap<String, Json>, round: usize| {
        let (v, c, filters) = (&v, &c, &filters);
        async move {
            for f in filters {
                let parsed = Filter::parse(f).map_err(|e| Failure::new(e.to_string()))?;
                let want: HashSet<String> = state
                    .iter()
                    .filter(|(_, m)| parsed.matches(m))
                    .map(|(id, _)| id.clone())
                    .collect();
                let hits = v
                    .query(
                        c,
                        &Query::new(vec![0.5, -1.0, 0.25, 1.0])
                            .top_k(100)
                            .filter(f.clone()),
                    )
                    .await?;
                let got: HashSet<String> = hits.into_iter().map(|h| h.id).collect();
                if got != want {
                    let extra: Vec<_> = got.difference(&want).collect();
                    let missing: Vec<_> = want.difference(&got).collect();
                    return Err(Failure::new(format!(
                        "after round {round} of writes, query with {f}: unexpected {extra:?}, missing {missing:?}"
                    )));
                }
                let n = v.count(c, Some(f)).await?;
                ensure_eq!(n as usize, want.len(), "after round {round}: count for {f}");
            }
            Ok::<(), Failure>(())
        }
    };
    check(state.clone(), 0).await?;
    for round in 1..=3usize {
        // Overwrites that move records into and out of every filter.
        let moved: Vec<(String, Json)> = state
            .keys()
            .skip(round)
            .step_by(7)
            .take(5)
            .map(|id| {
                let n = state[id]["n"].as_u64().unwrap_or(0) as usize;
                (
                    id.clone(),
                    json!({"kind": kinds[(n + round) % 3], "n": (n + 17 * round) % 45, "moved": true}),
                )
            })
            .collect();
        upsert(moved.clone(), 10 + round as u64).await?;
        state.extend(moved);
        // Deletes by id and by filter.
        let doomed: Vec<String> = state
            .keys()
            .skip(2 * round)
            .step_by(9)
            .take(3)
            .cloned()
            .collect();
        let refs: Vec<&str> = doomed.iter().map(String::as_str).collect();
        ensure_eq!(
            v.delete_ids(&c, &refs).await?,
            3,
            "round {round}: deleted by id"
        );
        doomed.iter().for_each(|id| {
            state.remove(id);
        });
        let by_filter = json!({"n": 10 + round});
        let parsed = Filter::parse(&by_filter).map_err(|e| Failure::new(e.to_string()))?;
        let gone: Vec<String> = state
            .iter()
            .filter(|(_, m)| parsed.matches(m))
            .map(|(id, _)| id.clone())
            .collect();
        ensure_eq!(
            v.delete_where(&c, &by_filter).await? as usize,
            gone.len(),
            "round {round}: deleted by {by_filter}"
        );
        gone.iter().for_each(|id| {
            state.remove(id);
        });
        // New records.
        let added: Vec<(String, Json)> = (0..4)
            .map(|i| {
                (
                    format!("new{round}-{i}"),
                    json!({"kind": kinds[i % 3], "n": 3 * i + round, "moved": i % 2 == 0}),
                )
            })
            .collect();
        upsert(added.clone(), 20 + round as u64).await?;
        state.extend(added);
        check(state.clone(), round).await?;
    }
    Ok(())
}

/// A filtered query returns `top_k` results whenever that many records match,
/// and they are the best-scoring matching ones.
async fn filtered_query_returns_top_k_when_they_exist(ctx: Ctx) -> CaseResult {
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

/// Malformed filters are `InvalidInput`, naming the clause, wherever a
/// filter is taken.
async fn malformed_filters_are_rejected(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "badfilter", 2, Metric::Dot).await?;
    v.upsert(
        &c,
        [Record::new("a", vec![1.0, 0.0]).metadata(json!({"n": 1}))],
    )
    .await?;
    for (f, needle) in [
        (json!({"n": {"$gtt": 1}}), "$gtt"),
        (json!({"$or": {"a": 1}}), "$or"),
        (json!({"tags": ["a", "b"]}), "tags"),
        (json!({"n": {"$in": 5}}), "$in"),
        (json!([1, 2]), "object"),
    ] {
        let check = |what: &str, r: Result<(), strata_host::Error>| -> CaseResult {
            let err = match r {
                Ok(()) => return Err(Failure::new(format!("{what} with {f}: accepted"))),
                Err(e) => e,
            };
            ensure_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: kind for {f}");
            ensure!(
                err.to_string().contains(needle),
                "{what}: the error for {f} should name {needle:?}: {err}"
            );
            Ok(())
        };
        check("count", v.count(&c, Some(&f)).await.map(|_| ()))?;
        check(
            "query",
            v.query(&c, &Query::new(vec![1.0, 0.0]).filter(f.clone()))
                .await
                .map(|_| ()),
        )?;
        check("delete", v.delete_where(&c, &f).await.map(|_| ()))?;
    }
    ensure_eq!(v.count(&c, None).await?, 1, "records after refused deletes");
    Ok(())
}

/// Records with the given metadata, ids `m0`, `m1`, …, in a 2-d collection.
async fn with_metadata(ctx: &Ctx, name: &str, docs: &[Json]) -> Result<(Vectors, String), Failure> {
    let (v, c) = store_with(ctx, name, 2, Metric::Dot).await?;
    v.upsert(
        &c,
        docs.iter()
            .enumerate()
            .map(|(i, m)| Record::new(format!("m{i}"), vec![1.0, i as f32]).metadata(m.clone())),
    )
    .await?;
    Ok((v, c))
}

/// The ids matching `f`, by count and by query, checked against the
/// reference semantics; returns them sorted.
async fn matching(v: &Vectors, c: &str, docs: &[Json], f: &Json) -> Result<Vec<String>, Failure> {
    let parsed = Filter::parse(f).map_err(|e| Failure::new(format!("{f}: {e}")))?;
    let mut want: Vec<String> = docs
        .iter()
        .enumerate()
        .filter(|(_, m)| parsed.matches(m))
        .map(|(i, _)| format!("m{i}"))
        .collect();
    want.sort();
    let n = v.count(c, Some(f)).await?;
    ensure_eq!(n as usize, want.len(), "count with {f}");
    let mut got: Vec<String> = v
        .query(c, &Query::new(vec![1.0, 0.0]).top_k(1000).filter(f.clone()))
        .await?
        .into_iter()
        .map(|h| h.id)
        .collect();
    got.sort();
    ensure_eq!(got, want, "query with {f}");
    Ok(got)
}

/// Metadata comes back exactly as stored.
async fn round_trips(v: &Vectors, c: &str, docs: &[Json]) -> CaseResult {
    let ids: Vec<String> = (0..docs.len()).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let got = v.fetch(c, &refs, strata_host::Include::ALL).await?;
    ensure_eq!(got.len(), docs.len(), "records fetched");
    for (h, d) in got.iter().zip(docs) {
        ensure!(
            h.metadata.as_ref().is_some_and(|m| same_json(m, d)),
            "metadata of {}: stored {d}, got back {:?}",
            h.id,
            h.metadata
        );
    }
    Ok(())
}

/// JSON equality where numbers compare by value (`1` = `1.0`, `-0.0` =
/// `0`): a backend may store numbers in its own representation.
fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| same_json(p, q)))
        }
        _ => a == b,
    }
}

/// Dotted filter keys are paths; dotted metadata keys are just keys.
async fn dotted_keys_are_paths(ctx: Ctx) -> CaseResult {
    let docs = vec![
        json!({"a": {"b": "nested"}}),
        json!({"a.b": "flat"}),
        json!({"a.b": "flat", "a": {"b": "both"}}),
        json!({"a": "scalar"}),
    ];
    let (v, c) = with_metadata(&ctx, "dotted", &docs).await?;
    round_trips(&v, &c, &docs).await?;
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"a.b": "nested"})).await?,
        ["m0"],
        "a.b = nested"
    );
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"a.b": "both"})).await?,
        ["m2"],
        "a.b = both"
    );
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"a.b": "flat"})).await?,
        Vec::<String>::new(),
        "a dotted metadata key is not addressable by a path"
    );
    matching(&v, &c, &docs, &json!({"a.b": {"$exists": false}})).await?;
    matching(&v, &c, &docs, &json!({"a": "scalar"})).await?;
    Ok(())
}

/// `$` keys in metadata round-trip; filters cannot name them.
async fn dollar_keys_in_metadata(ctx: Ctx) -> CaseResult {
    let docs = vec![
        json!({"$price": 5, "kind": "a", "nested": {"$ref": "x"}}),
        json!({"kind": "b", "$": "just a dollar"}),
    ];
    let (v, c) = with_metadata(&ctx, "dollar", &docs).await?;
    round_trips(&v, &c, &docs).await?;
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"kind": "a"})).await?,
        ["m0"],
        "kind = a"
    );
    for f in [json!({"$price": 5}), json!({"$price": {"$gt": 1}})] {
        let err = v.count(&c, Some(&f)).await;
        ensure!(
            matches!(&err, Err(e) if e.kind() == ErrorKind::InvalidInput),
            "a filter on a `$` key ({f}) must be `invalid_input`, got {err:?}"
        );
    }
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"nested.$ref": "x"})).await?,
        ["m0"],
        "a path whose later segment starts with `$`"
    );
    Ok(())
}

/// 1 and 1.0 are the same number to a filter.
async fn integers_and_floats_compare_as_numbers(ctx: Ctx) -> CaseResult {
    let big = 9_007_199_254_740_991i64; // 2^53 - 1
    let docs = vec![
        json!({"n": 1}),
        json!({"n": 1.0}),
        json!({"n": 1.5}),
        json!({"n": -0.0}),
        json!({"n": 0}),
        json!({"n": big}),
        json!({"n": big - 1}),
        json!({"n": [2, 3.0]}),
        json!({"n": "1"}),
    ];
    let (v, c) = with_metadata(&ctx, "numbers", &docs).await?;
    round_trips(&v, &c, &docs).await?;
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"n": 1})).await?,
        ["m0", "m1"],
        "n = 1"
    );
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"n": 1.0})).await?,
        ["m0", "m1"],
        "n = 1.0"
    );
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"n": 0})).await?,
        ["m3", "m4"],
        "n = 0 (and -0.0)"
    );
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"n": big})).await?,
        ["m5"],
        "n = 2^53 - 1"
    );
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"n": 3})).await?,
        ["m7"],
        "an array element 3.0 = 3"
    );
    for f in [
        json!({"n": {"$in": [1.0, 2]}}),
        json!({"n": {"$nin": [1]}}),
        json!({"n": {"$ne": 1.0}}),
        json!({"n": {"$gte": 1, "$lt": 1.5}}),
        json!({"n": {"$gt": 0.5, "$lte": 1}}),
        json!({"n": {"$gt": big - 1}}),
        json!({"n": "1"}),
    ] {
        matching(&v, &c, &docs, &f).await?;
    }
    Ok(())
}

/// Arrays of objects round-trip; paths do not reach into them.
async fn arrays_of_objects(ctx: Ctx) -> CaseResult {
    let docs = vec![
        json!({"items": [{"k": "a", "n": 1}, {"k": "b", "n": 2}]}),
        json!({"items": [{"k": "c"}], "tags": ["x", {"y": 1}]}),
        json!({"items": []}),
        json!({"items": {"k": "a"}}),
    ];
    let (v, c) = with_metadata(&ctx, "arrobj", &docs).await?;
    round_trips(&v, &c, &docs).await?;
    for f in [
        json!({"items.k": "a"}),
        json!({"items.k": {"$exists": false}}),
        json!({"items.n": {"$gte": 1}}),
        json!({"tags": "x"}),
        json!({"tags.y": 1}),
        json!({"items": {"$exists": true}}),
        json!({"items": {"$ne": "a"}}),
    ] {
        matching(&v, &c, &docs, &f).await?;
    }
    ensure_eq!(
        matching(&v, &c, &docs, &json!({"items.k": "a"})).await?,
        ["m3"],
        "`items.k` reaches into an object, not into objects inside an array"
    );
    Ok(())
}

/// Thousands of values in `$in`/`$nin` and a thousand `$or` clauses.
async fn filter_with_a_large_in_list(ctx: Ctx) -> CaseResult {
    let docs: Vec<Json> = (0..300)
        .map(|i| json!({"n": i, "s": format!("s{i}")}))
        .collect();
    let (v, c) = with_metadata(&ctx, "bigin", &docs).await?;
    let evens: Vec<Json> = (0..2000).map(|i| json!(i * 2)).collect();
    let names: Vec<Json> = (0..2000).map(|i| json!(format!("s{}", i * 3))).collect();
    let ors: Vec<Json> = (0..1000).map(|i| json!({"n": i * 5})).collect();
    for f in [
        json!({"n": {"$in": evens}}),
        json!({"n": {"$nin": evens}}),
        json!({"s": {"$in": names}}),
        json!({"$or": ors}),
    ] {
        let got = matching(&v, &c, &docs, &f).await?;
        ensure!(!got.is_empty(), "the fixture matches something");
    }
    Ok(())
}
