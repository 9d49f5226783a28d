//! Records: upsert, fetch, delete, and what a record may hold.

use serde_json::{Value as Json, json};
use strata_host::{ErrorKind, Hybrid, Include, Metric, Query, Record};
use strata_plugin_api::capabilities as cap;

use super::support::{random_vectors, store_with};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{
        CaseResult, Failure, accepted_or_refused, ensure, ensure_eq, expect_error, expect_kind,
    },
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            dimension_mismatch_is_rejected,
            "A record or query vector of the wrong dimension, or with a NaN or infinite component, is `invalid_input` naming both dimensions, and a refused batch writes nothing (plugin-api `VectorStore::upsert`, `query`)."
        ),
        case!(
            Suite::Vector,
            empty_vectors_are_rejected,
            "An empty vector is a vector of the wrong dimension: `invalid_input` in upsert and query, nothing written (plugin-api `VectorRecord::vector`)."
        ),
        case!(
            Suite::Vector,
            an_empty_upsert_writes_nothing,
            "An upsert of no records succeeds and reports 0 (VectorStore::upsert returns how many were written)."
        ),
        case!(
            Suite::Vector,
            upsert_is_idempotent_and_overwrites,
            "Upsert inserts or overwrites by id — vector, metadata and text all replaced — the old vector stops matching, and the same id twice in one batch is `invalid_input` (plugin-api `UpsertRequest`: \"no id twice\")."
        ),
        case!(
            Suite::Vector,
            vectors_round_trip_bit_exact,
            "Stored vectors come back bit for bit: -0.0, subnormals, f32::MIN_POSITIVE, f32::MAX (fetch with include vector; plugin-api `Match::vector`). A vector with components near ±f32::MAX may instead be refused at upsert with `invalid_input` (rules: vectors, a backend that cannot score it)."
        ),
        case!(
            Suite::Vector,
            record_id_limits,
            "Ids are any non-empty string up to 512 bytes (quotes, `%`, `/`, spaces, emoji included), kept as given; an empty id or one over 512 bytes is `invalid_input` (plugin-api `VectorRecord::id`)."
        ),
        case!(
            Suite::Vector,
            metadata_must_be_an_object,
            "Metadata is a JSON object (empty = `{}`); an array, string or number is `invalid_input` (plugin-api `VectorRecord::metadata_json`)."
        ),
        case!(
            Suite::Vector,
            fetch_delete_and_count,
            "fetch returns the ids that exist in the order asked; delete by ids reports how many existed; delete all empties but keeps the collection; deleted records are not returned by query (plugin-api `VectorStore::fetch`, `delete`)."
        ),
        case!(
            Suite::Vector,
            delete_with_an_empty_filter_is_refused,
            "delete with an empty filter (`{}` or null) is `invalid_input` and deletes nothing: `all` is the explicit way to empty a collection (kit `DeleteRequest::target`)."
        ),
        case!(
            Suite::Vector,
            unicode_ids_metadata_and_text,
            "Unicode ids, metadata keys and values, and text round-trip exactly; filters match unicode keys and array elements; hybrid finds unicode words (plugin-api `vector` module)."
        ),
        case!(
            Suite::Vector,
            large_metadata_and_text,
            "A record with 1 MiB of metadata (deeply nested, long strings, many keys) and 1 MiB of text round-trips exactly and its fields still filter (plugin-api `VectorRecord`); a backend with a documented smaller per-record limit refuses the whole upsert with `invalid_input` naming the record and writes nothing (reported as a skip)."
        ),
        case!(
            Suite::Vector,
            batch_upsert_10k,
            "10,000 records in one upsert are all stored, counted and searchable (VectorStore::upsert)."
        ),
    ]
}

/// Vectors of the wrong dimension (or not finite) are refused and nothing is written.
async fn dimension_mismatch_is_rejected(ctx: Ctx) -> CaseResult {
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
    expect_kind(
        v.upsert(&c, [Record::new("inf", vec![1.0, f32::INFINITY, 0.0])])
            .await,
        ErrorKind::InvalidInput,
        "infinite component",
    )?;
    let err = expect_error(
        v.upsert(&c, [Record::new("bad", vec![1.0])]).await,
        ErrorKind::InvalidInput,
        "upsert of a 1-d vector into a 3-d collection",
    )?;
    let msg = err.to_string();
    ensure!(
        mentions_number(&msg, 3) && mentions_number(&msg, 1),
        "the error should name both dimensions (3 and 1) as numbers of their own: {msg}"
    );
    ensure_eq!(
        v.count(&c, None).await?,
        0,
        "records after the refused upserts"
    );
    Ok(())
}

/// Whether `text` holds `n` as a number of its own (not as digits inside
/// a word such as a generated collection name).
fn mentions_number(text: &str, n: u64) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let word = |b: Option<&u8>| b.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
            let before = start.checked_sub(1).and_then(|j| bytes.get(j));
            if !word(before) && !word(bytes.get(i)) && text[start..i].parse() == Ok(n) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

/// Upserting the same records twice changes nothing; an upsert by existing id overwrites.
async fn upsert_is_idempotent_and_overwrites(ctx: Ctx) -> CaseResult {
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

/// `fetch` returns what exists in the order asked; deletes by ids and all.
async fn fetch_delete_and_count(ctx: Ctx) -> CaseResult {
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

/// Unicode ids, metadata and text round-trip, and text search finds unicode words.
async fn unicode_ids_metadata_and_text(ctx: Ctx) -> CaseResult {
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

/// 10,000 records in one upsert are all stored and searchable.
async fn batch_upsert_10k(ctx: Ctx) -> CaseResult {
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

/// Empty vectors are refused in upsert and query.
async fn empty_vectors_are_rejected(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "emptyvec", 3, Metric::Cosine).await?;
    expect_kind(
        v.upsert(&c, [Record::new("empty", vec![])]).await,
        ErrorKind::InvalidInput,
        "upsert of an empty vector into a 3-d collection",
    )?;
    expect_kind(
        v.upsert(
            &c,
            [
                Record::new("fine", vec![1.0, 0.0, 0.0]),
                Record::new("empty", vec![]),
            ],
        )
        .await,
        ErrorKind::InvalidInput,
        "a batch holding one empty vector",
    )?;
    ensure_eq!(
        v.count(&c, None).await?,
        0,
        "records after the refused upserts"
    );
    v.upsert(&c, [Record::new("fine", vec![1.0, 0.0, 0.0])])
        .await?;
    expect_kind(
        v.query(&c, &Query::new(vec![])).await,
        ErrorKind::InvalidInput,
        "query by an empty vector",
    )?;
    Ok(())
}

/// An upsert of no records reports 0 and changes nothing.
async fn an_empty_upsert_writes_nothing(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "noop", 2, Metric::Dot).await?;
    ensure_eq!(
        v.upsert(&c, Vec::new()).await?,
        0,
        "records written by an empty upsert"
    );
    v.upsert(&c, [Record::new("a", vec![1.0, 2.0])]).await?;
    ensure_eq!(
        v.upsert(&c, Vec::new()).await?,
        0,
        "an empty upsert into a filled collection"
    );
    ensure_eq!(v.count(&c, None).await?, 1, "records");
    Ok(())
}

/// Stored vectors come back bit for bit.
async fn vectors_round_trip_bit_exact(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "bits", 8, Metric::Euclidean).await?;
    let special = vec![
        -0.0f32,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        -f32::from_bits(0x007f_ffff),
        1.0e18,
        -1.0e18,
        1.0 + f32::EPSILON,
        0.1,
    ];
    let mut records = vec![Record::new("special", special.clone())];
    // Components at ±f32::MAX: kept bit for bit, or refused at upsert with
    // `invalid_input` by a backend that cannot score them (rules: vectors).
    let huge = Record::new(
        "huge",
        vec![f32::MAX, f32::MIN, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    );
    if accepted_or_refused(v.upsert(&c, [huge.clone()]).await, "upsert of ±f32::MAX")?.is_some() {
        records.push(huge);
    }
    let randoms = random_vectors(77, 20, 8);
    for (i, r) in randoms.iter().enumerate() {
        records.push(Record::new(format!("r{i}"), r.clone()));
    }
    v.upsert(&c, records.clone()).await?;
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let got = v.fetch(&c, &ids, Include::ALL).await?;
    ensure_eq!(got.len(), records.len(), "records fetched");
    for (rec, hit) in records.iter().zip(&got) {
        ensure_eq!(hit.id, rec.id, "fetch order");
        let back = hit
            .vector
            .as_ref()
            .ok_or_else(|| Failure::new(format!("{}: no vector although included", rec.id)))?;
        let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        ensure_eq!(
            bits(back),
            bits(&rec.vector),
            "bits of the vector of {} (sent {:?}, got {:?})",
            rec.id,
            rec.vector,
            back
        );
    }
    Ok(())
}

/// Ids up to 512 bytes, of any characters, are kept as given.
async fn record_id_limits(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "ids", 2, Metric::Dot).await?;
    let longest = format!("é{}", "x".repeat(510));
    ensure_eq!(longest.len(), 512, "test id size");
    let odd = [
        "with space",
        "quote's \"double\" `back`",
        "100%25%",
        "a/b\\c",
        "🦀 crab",
        "semi;colon -- not a comment",
        "<tag>&amp;",
        "?:@$",
        longest.as_str(),
    ];
    v.upsert(
        &c,
        odd.iter()
            .enumerate()
            .map(|(i, id)| Record::new(*id, vec![i as f32, 1.0])),
    )
    .await?;
    let got = v.fetch(&c, &odd, Include::default()).await?;
    let got_ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
    ensure_eq!(got_ids, odd.to_vec(), "ids fetched back");
    let hits = v.query(&c, &Query::new(vec![1.0, 0.0]).top_k(100)).await?;
    let mut hit_ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    hit_ids.sort();
    let mut want = odd.to_vec();
    want.sort();
    ensure_eq!(hit_ids, want, "ids returned by a query");
    ensure_eq!(v.delete_ids(&c, &odd[..3]).await?, 3, "deleted by odd ids");
    let too_long = format!("{longest}y");
    for (id, what) in [("", "an empty id"), (too_long.as_str(), "a 513-byte id")] {
        expect_kind(
            v.upsert(&c, [Record::new(id, vec![0.0, 0.0])]).await,
            ErrorKind::InvalidInput,
            what,
        )?;
    }
    ensure_eq!(
        v.count(&c, None).await?,
        odd.len() as u64 - 3,
        "records left"
    );
    Ok(())
}

/// Metadata must be a JSON object.
async fn metadata_must_be_an_object(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "metaobj", 2, Metric::Cosine).await?;
    for bad in [json!([1, 2]), json!("text"), json!(42), json!(true)] {
        expect_kind(
            v.upsert(&c, [Record::new("m", vec![1.0, 0.0]).metadata(bad.clone())])
                .await,
            ErrorKind::InvalidInput,
            &format!("metadata {bad}"),
        )?;
    }
    ensure_eq!(
        v.count(&c, None).await?,
        0,
        "records after refused metadata"
    );
    v.upsert(&c, [Record::new("m", vec![1.0, 0.0]).metadata(json!({}))])
        .await?;
    let got = v.fetch(&c, &["m"], Include::ALL).await?;
    ensure_eq!(
        got.first().and_then(|h| h.metadata.clone()),
        Some(json!({})),
        "empty metadata"
    );
    Ok(())
}

/// An empty filter never deletes: `delete_all` is the explicit way.
async fn delete_with_an_empty_filter_is_refused(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "emptydel", 2, Metric::Dot).await?;
    v.upsert(
        &c,
        (0..5).map(|i| Record::new(format!("k{i}"), vec![i as f32, 1.0])),
    )
    .await?;
    for empty in [json!({}), json!(null)] {
        expect_kind(
            v.delete_where(&c, &empty).await,
            ErrorKind::InvalidInput,
            &format!("delete_where with the empty filter {empty}"),
        )?;
    }
    ensure_eq!(
        v.count(&c, None).await?,
        5,
        "a refused delete by an empty filter deleted nothing"
    );
    ensure_eq!(v.delete_all(&c).await?, 5, "delete all");
    ensure_eq!(v.count(&c, None).await?, 0, "records after delete all");
    ensure!(v.exists(&c).await?, "delete all keeps the collection");
    Ok(())
}

/// 1 MiB of metadata and 1 MiB of text round-trip, and still filter.
async fn large_metadata_and_text(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "large", 4, Metric::Cosine).await?;
    let mut nested = json!({"leaf": "deep", "n": 7});
    for depth in 0..40 {
        nested = json!({ format!("level{depth}"): nested, "depth": depth });
    }
    let mut map = serde_json::Map::new();
    for i in 0..2_000 {
        map.insert(
            format!("key{i:04}"),
            json!(format!("value {i} {}", "ö".repeat(100))),
        );
    }
    map.insert("kind".into(), json!("large"));
    map.insert("nested".into(), nested);
    map.insert("long".into(), json!("x".repeat(700_000)));
    let meta = Json::Object(map);
    let meta_len = meta.to_string().len();
    ensure!(meta_len > 1 << 20, "test metadata is {meta_len} bytes");
    let text: String = (0..(1usize << 20) / 8)
        .map(|i| if i % 3 == 0 { "zebra   " } else { "word    " })
        .collect();
    let written = v
        .upsert(
            &c,
            [
                Record::new("big", vec![1.0, 0.0, 0.0, 0.0])
                    .metadata(meta.clone())
                    .text(text.clone()),
                Record::new("small", vec![0.0, 1.0, 0.0, 0.0]).metadata(json!({"kind": "small"})),
            ],
        )
        .await;
    if let Err(e) = written {
        // A backend with a documented per-record limit (Pinecone: 40 KB of
        // metadata) refuses the whole upsert up front, naming the record,
        // and writes nothing: reported as a skip with its reason.
        if e.kind() != ErrorKind::InvalidInput {
            return Err(e.into());
        }
        ensure!(
            e.to_string().contains("big"),
            "the refusal does not name the record: {e}"
        );
        ensure_eq!(
            v.count(&c, None).await?,
            0,
            "records written by a refused upsert"
        );
        return Err(Failure::skip(format!(
            "the backend refuses 1 MiB of metadata and text per record with invalid_input: {e}"
        )));
    }
    let got = v.fetch(&c, &["big"], Include::ALL).await?;
    let big = got
        .first()
        .ok_or_else(|| Failure::new("the large record is missing"))?;
    ensure!(
        big.metadata.as_ref() == Some(&meta),
        "the 1 MiB metadata did not come back equal ({} bytes back)",
        big.metadata.as_ref().map_or(0, |m| m.to_string().len())
    );
    ensure!(
        big.text.as_deref() == Some(text.as_str()),
        "the 1 MiB text did not come back equal ({} bytes back)",
        big.text.as_ref().map_or(0, String::len)
    );
    for (f, want) in [
        (json!({"kind": "large"}), 1u64),
        (json!({"key1999": {"$exists": true}}), 1),
        (json!({"nested.depth": 39}), 1),
        (json!({"nested.level39.depth": 38}), 1),
        (json!({"kind": {"$ne": "large"}}), 1),
    ] {
        ensure_eq!(v.count(&c, Some(&f)).await?, want, "count with {f}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_inside_words_are_not_mentions() {
        use super::mentions_number;
        assert!(mentions_number(
            "vector has dimension 1, the collection expects 3",
            3
        ));
        assert!(mentions_number("(1 vs 3)", 1));
        assert!(!mentions_number("collection strata_t1a3b: bad", 3));
        assert!(!mentions_number("dimension 31", 3));
    }
}
