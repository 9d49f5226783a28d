//! Background HNSW builds of the SQLite plugin (the default,
//! `hnsw_build = "background"`), through the loaded `.so`: queries are
//! answered exactly while the index builds, the finished index takes over
//! with the writes made meanwhile, and a dropped collection or a closed
//! backend stops its build without leaving a sidecar behind.

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use strata_host::{Include, Metric, Query, Record, Strata, Vectors};

const DIM: usize = 32;
/// Large enough that a build takes a good fraction of a second on two
/// cores, so the calls right after starting it find it running.
const N: usize = 30_000;

fn open(dir: &Path) -> Strata {
    let cfg = dir.join("plugins.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?}, hnsw_threshold = 1000 }}\n",
            common::plugin(),
            dir.join("db.sqlite")
        ),
    )
    .unwrap();
    Strata::load(&cfg).unwrap()
}

/// A uniform value in [-0.5, 0.5) ([`common::uniform`], centred).
fn uniform(x: u64) -> f32 {
    common::uniform(x) - 0.5
}

/// Deterministic clustered vectors: 50 centres, uniform noise around them.
fn vector(i: usize) -> Vec<f32> {
    let centre = (i % 50) as u64;
    (0..DIM as u64)
        .map(|j| uniform(centre * 1000 + j) + 0.3 * uniform((i as u64 + 1) << 20 | j))
        .collect()
}

fn records(range: std::ops::Range<usize>) -> Vec<Record> {
    range
        .map(|i| Record::new(format!("p{i}"), vector(i)).metadata(json!({"i": i})))
        .collect()
}

async fn load(v: &Vectors, range: std::ops::Range<usize>) {
    let all = records(range);
    for chunk in all.chunks(5_000) {
        v.upsert("mem", chunk.to_vec()).await.unwrap();
    }
}

async fn details(v: &Vectors) -> Value {
    v.stats("mem").await.unwrap().unwrap().details
}

/// Polls the collection's details until its HNSW index is installed.
async fn wait_for_index(v: &Vectors) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let d = details(v).await;
        if d["index"] == "hnsw" {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "no index after 300 s; details {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh database whose `N`-vector collection `mem` is being indexed in
/// the background (the first `stats` loaded it and started the build).
async fn building() -> (tempfile::TempDir, Strata, Vectors) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let v = s.vectors().await.unwrap();
    v.create_collection("mem", DIM as u32, Metric::Cosine)
        .await
        .unwrap();
    load(&v, 0..N).await;
    assert_eq!(details(&v).await["hnsw_build"]["state"], "running");
    (dir, s, v)
}

async fn top(v: &Vectors, q: &[f32], exact: bool) -> Vec<(String, f64)> {
    let mut query = Query::new(q.to_vec()).top_k(10).include(Include::default());
    if exact {
        query = query.options(json!({"exact": true}));
    }
    v.query("mem", &query)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect()
}

fn sidecar_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("db.sqlite.strata-index"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_exact_while_the_index_builds_then_it_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let v = s.vectors().await.unwrap();
    v.create_collection("mem", DIM as u32, Metric::Cosine)
        .await
        .unwrap();
    load(&v, 0..N).await;

    // The first call that loads the collection starts the build and returns.
    let d = details(&v).await;
    assert_eq!(d["index"], "exact", "{d}");
    assert_eq!(d["hnsw_build"]["state"], "running", "{d}");
    assert_eq!(d["hnsw_build"]["total"], N, "{d}");

    // Meanwhile a query is answered by exact search: the same list, scores
    // included. (Unless the build finished in between, on a machine slow
    // to run this task: the query then installed the index, which the
    // details show, and ANN results may rightly differ.)
    let q = vector(12_345);
    let (approx, exact) = (top(&v, &q, false).await, top(&v, &q, true).await);
    let d = details(&v).await;
    if d["index"] == "exact" {
        assert_eq!(approx, exact, "{d}");
    } else {
        eprintln!("the build finished before the query: exactness not checked ({d})");
    }

    let d = wait_for_index(&v).await;
    assert_eq!(d["hnsw"]["points"], N, "{d}");
    assert_eq!(d["hnsw"]["origin"], "built", "{d}");
    assert!(d.get("hnsw_build").is_none(), "{d}");
    // The build thread saved the sidecar.
    let files = sidecar_files(dir.path());
    assert!(files.iter().any(|f| f.ends_with("mem.hnsw")), "{files:?}");

    // The index answers now, with good recall against exact search.
    let mut found = 0;
    for i in (0..N).step_by(N / 40) {
        let q = vector(i + 1);
        let want: Vec<String> = top(&v, &q, true).await.into_iter().map(|h| h.0).collect();
        let got = top(&v, &q, false).await;
        found += got.iter().filter(|h| want.contains(&h.0)).count();
    }
    let recall = found as f64 / 400.0;
    assert!(recall >= 0.9, "recall@10 {recall}");
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_the_build_are_reconciled_when_it_is_installed() {
    let (_dir, s, v) = building().await;

    // Written while the thread builds from its copy of the cache.
    load(&v, N..N + 500).await;
    let gone: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
    let refs: Vec<&str> = gone.iter().map(String::as_str).collect();
    assert_eq!(v.delete_ids("mem", &refs).await.unwrap(), 100);

    let d = wait_for_index(&v).await;
    assert_eq!(d["hnsw"]["points"], N + 500, "{d}");
    assert_eq!(d["hnsw"]["tombstones"], 100, "{d}");
    assert_eq!(v.count("mem", None).await.unwrap(), (N + 400) as u64);

    // A vector written during the build is found by the index…
    let hits = top(&v, &vector(N + 7), false).await;
    assert_eq!(hits[0].0, format!("p{}", N + 7), "{hits:?}");
    // …and a deleted one is never returned.
    let hits = top(&v, &vector(5), false).await;
    assert!(hits.iter().all(|h| !gone.contains(&h.0)), "{hits:?}");
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_collection_stops_its_build_and_leaves_no_sidecar() {
    let (dir, s, v) = building().await;
    assert!(v.drop_collection("mem").await.unwrap());
    // The cancelled build writes nothing, even a whole build's time later
    // (checked before anything else touches the name).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let files = sidecar_files(dir.path());
    assert!(files.is_empty(), "a cancelled build saved: {files:?}");

    // Same name, below the threshold: no index, no build.
    v.create_collection("mem", DIM as u32, Metric::Cosine)
        .await
        .unwrap();
    load(&v, 0..10).await;
    let d = details(&v).await;
    assert_eq!(d["index"], "exact", "{d}");
    assert!(d.get("hnsw_build").is_none(), "{d}");
    let files = sidecar_files(dir.path());
    assert!(files.is_empty(), "sidecar files left: {files:?}");
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_cancels_a_running_build_and_the_next_open_builds_again() {
    let (dir, s, v) = building().await;
    drop(v);
    s.close().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let files = sidecar_files(dir.path());
    assert!(files.is_empty(), "a cancelled build saved: {files:?}");

    let s = open(dir.path());
    let v = s.vectors().await.unwrap();
    assert_eq!(details(&v).await["hnsw_build"]["state"], "running");
    let d = wait_for_index(&v).await;
    assert_eq!(d["hnsw"]["points"], N, "{d}");
    drop(v);
    s.close().await.unwrap();

    // Built and saved: the next open loads the sidecar instead of building.
    let s = open(dir.path());
    let v = s.vectors().await.unwrap();
    let d = details(&v).await;
    assert_eq!(d["index"], "hnsw", "{d}");
    assert_eq!(d["hnsw"]["origin"], "sidecar", "{d}");
    drop(v);
    s.close().await.unwrap();
}

/// A sidecar lacking more than 5,000 rows and 10 % of its points (another
/// process wrote them) is not brought up to date inside the first call: the
/// index is rebuilt in the background while exact search answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_far_behind_the_table_is_rebuilt_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let v = s.vectors().await.unwrap();
    v.create_collection("mem", DIM as u32, Metric::Cosine)
        .await
        .unwrap();
    load(&v, 0..20_000).await;
    assert_eq!(details(&v).await["hnsw_build"]["state"], "running");
    assert_eq!(wait_for_index(&v).await["hnsw"]["points"], 20_000);
    drop(v);
    s.close().await.unwrap();

    // Another writer that never loads the collection adds 6,000 rows.
    let cfg = dir.path().join("writer.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?}, hnsw_threshold = 0 }}\n",
            common::plugin(),
            dir.path().join("db.sqlite")
        ),
    )
    .unwrap();
    let w = Strata::load(&cfg).unwrap();
    load(&w.vectors().await.unwrap(), 20_000..26_000).await;
    w.close().await.unwrap();

    let s = open(dir.path());
    let v = s.vectors().await.unwrap();
    let d = details(&v).await;
    assert_eq!(d["index"], "exact", "{d}");
    assert_eq!(d["hnsw_build"]["state"], "running", "{d}");
    let q = vector(23_456);
    assert_eq!(top(&v, &q, false).await, top(&v, &q, true).await);
    let d = wait_for_index(&v).await;
    assert_eq!(d["hnsw"]["points"], 26_000, "{d}");
    assert_eq!(d["hnsw"]["origin"], "built", "{d}");
    drop(v);
    s.close().await.unwrap();
}
