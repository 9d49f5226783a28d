//! Two processes on one database file, each through the loaded `.so`.
//!
//! A query answered from memory (the collection's cache, its catalog row)
//! must still see what another process committed since: the plugin
//! notices commits through the wal-index header every process maps
//! (`commits.rs` in the plugin), not by re-reading the catalog for every
//! query. The other process is this test binary run again, with one
//! `#[ignore]`d function selected: a real second process with its own
//! copy of the plugin, its own connections and its own mapping of the
//! `-shm` file.

mod common;

use std::{path::Path, process::Command};

use common::plugin;
use serde_json::json;
use strata_host::{Include, Metric, Query, Record, Strata};

const COLLECTION: &str = "shared";
const DIM: usize = 8;
/// The database the child process writes (set by the parent).
const DB_ENV: &str = "STRATA_TEST_OTHER_PROCESS_DB";
/// The id the child deletes.
const DOOMED_ENV: &str = "STRATA_TEST_OTHER_PROCESS_DOOMED";

fn open(db: &Path) -> Strata {
    let cfg = db.with_extension("toml");
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {db:?} }}\n",
            plugin()
        ),
    )
    .unwrap();
    Strata::load(&cfg).unwrap()
}

fn vector(i: usize) -> Vec<f32> {
    (0..DIM)
        .map(|j| common::uniform((i * DIM + j) as u64) - 0.5)
        .collect()
}

/// The query: closest to record 0, and equal to the record the child adds.
fn probe() -> Vec<f32> {
    vector(1_000)
}

async fn ids(strata: &Strata) -> Vec<String> {
    filtered(strata, None).await
}

/// The query's top 5 among the records passing `filter`.
async fn filtered(strata: &Strata, filter: Option<serde_json::Value>) -> Vec<String> {
    let v = strata.vectors_backend("local").await.unwrap();
    let mut q = Query::new(probe()).top_k(5).include(Include::default());
    if let Some(f) = filter {
        q = q.filter(f);
    }
    v.query(COLLECTION, &q)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
}

/// Run only as the other process (see the module docs): deletes one
/// record and adds one equal to the query, in two commits, through its own
/// copy of the plugin.
#[tokio::test]
#[ignore = "the other process of `commits_of_another_process_are_seen_by_the_next_query`"]
async fn other_process_writes() {
    let db = std::env::var(DB_ENV).expect("run by the parent test, which sets the database");
    let doomed = std::env::var(DOOMED_ENV).unwrap();
    let strata = open(Path::new(&db));
    let v = strata.vectors_backend("local").await.unwrap();
    assert_eq!(
        v.delete_ids(COLLECTION, &[doomed.as_str()]).await.unwrap(),
        1
    );
    v.upsert(
        COLLECTION,
        vec![Record::new("from-the-other-process", probe()).metadata(json!({"side": "child"}))],
    )
    .await
    .unwrap();
    strata.close().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn commits_of_another_process_are_seen_by_the_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.sqlite");
    let strata = open(&db);
    let v = strata.vectors_backend("local").await.unwrap();
    v.create_collection(COLLECTION, DIM as u32, Metric::Cosine)
        .await
        .unwrap();
    let records: Vec<Record> = (0..50)
        .map(|i| Record::new(format!("r{i}"), vector(i)).metadata(json!({"side": "parent"})))
        .collect();
    v.upsert(COLLECTION, records).await.unwrap();
    // Loads the cache; the second query is answered from memory alone.
    let before = ids(&strata).await;
    assert_eq!(ids(&strata).await, before);
    // A filtered query: the cache now holds the metadata, too.
    assert_eq!(
        filtered(&strata, Some(json!({"side": "parent"}))).await,
        before
    );
    assert!(
        filtered(&strata, Some(json!({"side": "child"})))
            .await
            .is_empty()
    );
    // Counts: from memory now (current, metadata held).
    let side = |s: &str| json!({ "side": s });
    assert_eq!(
        v.count(COLLECTION, Some(&side("parent"))).await.unwrap(),
        50
    );
    assert_eq!(v.count(COLLECTION, Some(&side("child"))).await.unwrap(), 0);
    let doomed = before[0].clone();

    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "other_process_writes"])
        .env(DB_ENV, &db)
        .env(DOOMED_ENV, &doomed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the other process failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Counts see the other process's writes before any query reloads the
    // cache (a stale cache holding the metadata would answer 50 and 0).
    assert_eq!(
        v.count(COLLECTION, Some(&side("parent"))).await.unwrap(),
        49
    );
    assert_eq!(v.count(COLLECTION, Some(&side("child"))).await.unwrap(), 1);
    let after = ids(&strata).await;
    assert_eq!(
        after[0], "from-the-other-process",
        "the other process's upsert is not seen: {after:?}"
    );
    assert!(
        !after.contains(&doomed),
        "the other process's delete is not seen: {doomed} still in {after:?}"
    );
    assert_eq!(v.count(COLLECTION, None).await.unwrap(), 50);
    // Filtered queries see the other process's writes as well (its
    // metadata, the row it deleted).
    assert_eq!(
        filtered(&strata, Some(json!({"side": "child"}))).await,
        ["from-the-other-process"]
    );
    let parents = filtered(&strata, Some(json!({"side": "parent"}))).await;
    assert!(
        !parents.contains(&doomed) && !parents.contains(&"from-the-other-process".to_string()),
        "{parents:?}"
    );
    // The parents' top 5 begins with the unfiltered top 5 after the
    // child's record.
    assert_eq!(parents[..4], after[1..5]);
    // And again, now from memory.
    assert_eq!(ids(&strata).await, after);
    strata.close().await.unwrap();
}
