//! Databases written by earlier versions of the plugin, through the `.so`.

mod common;

use serde_json::json;
use strata_host::{Include, Metric, Query, Record, Strata, Vectors};

fn open(dir: &std::path::Path) -> Strata {
    common::open_default(dir)
}

async fn metadata_index(strata: &Strata) -> bool {
    let sql = strata.sql_backend("local").await.unwrap();
    sql.get(
        "SELECT 1 AS x FROM sqlite_master WHERE type = 'index' AND name = 'strata_vec_notes_metadata'",
        (),
    )
    .await
    .unwrap()
    .is_some()
}

/// The ids (sorted) a filtered query returns, and the filtered count.
async fn filtered(v: &Vectors, filter: &serde_json::Value) -> (Vec<String>, u64) {
    let q = Query::new(vec![1.0, 20.0, 0.5])
        .top_k(50)
        .filter(filter.clone())
        .include(Include::default());
    let mut ids: Vec<String> = v
        .query("notes", &q)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    ids.sort();
    (ids, v.count("notes", Some(filter)).await.unwrap())
}

/// Collections made before the metadata index existed (filters then read
/// the whole table, vectors included) get it at their next write; filters
/// answer the same with and without it.
#[tokio::test]
async fn a_collection_without_the_metadata_index_gets_it_at_its_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let strata = open(dir.path());
    let v = strata.vectors_backend("local").await.unwrap();
    v.create_collection("notes", 3, Metric::Cosine)
        .await
        .unwrap();
    assert!(metadata_index(&strata).await, "a new collection has it");
    let records: Vec<Record> = (0..40)
        .map(|i| {
            Record::new(format!("n{i}"), vec![1.0, i as f32, 0.5])
                .metadata(json!({ "bucket": i % 4, "tags": [format!("t{}", i % 3)] }))
        })
        .collect();
    v.upsert("notes", records).await.unwrap();
    let filters = [
        json!({ "bucket": 2 }),
        json!({ "tags": "t1" }),
        json!({ "$or": [{ "bucket": { "$lt": 1 } }, { "tags": { "$in": ["t2"] } }] }),
    ];
    let mut with_index = Vec::new();
    for f in &filters {
        with_index.push(filtered(&v, f).await);
    }
    assert_eq!(with_index[0].1, 10);
    assert_eq!(with_index[0].0.len(), 10);

    // As an earlier version left it.
    let sql = strata.sql_backend("local").await.unwrap();
    sql.exec("DROP INDEX strata_vec_notes_metadata")
        .await
        .unwrap();
    strata.close().await.unwrap();
    let strata = open(dir.path());
    assert!(!metadata_index(&strata).await);
    let v = strata.vectors_backend("local").await.unwrap();
    for (f, want) in filters.iter().zip(&with_index) {
        assert_eq!(filtered(&v, f).await, *want, "{f}");
    }
    assert!(!metadata_index(&strata).await, "reads change no schema");

    v.upsert("notes", vec![Record::new("n40", vec![1.0, 40.0, 0.5])])
        .await
        .unwrap();
    assert!(metadata_index(&strata).await, "the write added it");
    strata.close().await.unwrap();
}
