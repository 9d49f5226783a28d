//! The Pinecone plugin through the loaded `.so`, against `fakes/pinecone`
//! (the test double of Pinecone's documented REST data plane; no Pinecone
//! server can run here). Each test starts its own fake on a free port.
//!
//! What these add to the conformance suite (which scripts/test also runs
//! against the fake): retries and their limits, checks made before
//! anything is sent, batching, authentication, isolation by prefix,
//! records written by other tools, and migrations in and out.

use std::{
    io::{Read, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::{Value as Json, json};
use strata_host::{
    ErrorKind, Include, Metric, Query, Record, Strata, Vectors,
    migrate::{MigrateOptions, Verification, collection_checksum, migrate},
};
use strata_pinecone_fake::{Fake, Fault, IndexSpec};

const KEY: &str = "pc-test-key-7f3a";

fn plugin() -> PathBuf {
    strata_host::loader::built_plugin("pinecone")
        .expect("run `cargo build --release -p strata-pinecone` first")
}

fn fake(indexes: &[(u32, &str)]) -> Fake {
    Fake::start(
        0,
        Some(KEY.into()),
        indexes.iter().map(|(d, m)| IndexSpec::new(*d, m)).collect(),
    )
    .unwrap()
}

/// The backend's config: every index of `fake` named in `indexes`.
fn config(fake: &Fake, indexes: &[(u32, &str)], extra: &str) -> String {
    let hosts: Vec<String> = indexes
        .iter()
        .map(|(d, m)| format!("{:?}", fake.host(&IndexSpec::new(*d, m).name)))
        .collect();
    format!(
        "{{ api_key = {KEY:?}, index_host = {}, extra_index_hosts = [{}], namespace_prefix = \"t_\", retry_base_ms = 5{extra} }}",
        hosts[0],
        hosts[1..].join(", ")
    )
}

fn load(dir: &std::path::Path, backends: &[(&str, String)]) -> Strata {
    let mut text = String::new();
    for (name, config) in backends {
        text.push_str(&format!(
            "[backends.{name}]\nlibrary = {:?}\nconfig = {config}\n",
            plugin()
        ));
    }
    let file = dir.join("plugins.toml");
    std::fs::write(&file, text).unwrap();
    Strata::load(&file).unwrap()
}

async fn open(
    fake: &Fake,
    indexes: &[(u32, &str)],
    extra: &str,
) -> (tempfile::TempDir, Strata, Vectors) {
    let dir = tempfile::tempdir().unwrap();
    let s = load(dir.path(), &[("pc", config(fake, indexes, extra))]);
    let v = s.vectors_backend("pc").await.unwrap();
    (dir, s, v)
}

fn upserts(fake: &Fake) -> Vec<u16> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/vectors/upsert"))
        .map(|r| r.status)
        .collect()
}

fn unit(dim: usize, i: usize) -> Vec<f32> {
    (0..dim)
        .map(|d| ((i * 7 + d * 13) % 17) as f32 / 17.0 + if d == i % dim { 1.0 } else { 0.0 })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let f = fake(&[(4, "cosine")]);
    let (_d, _s, v) = open(&f, &[(4, "cosine")], "").await;
    v.create_collection("notes", 4, Metric::Cosine)
        .await
        .unwrap();
    f.clear_requests();
    f.fail_next([
        Fault {
            status: 429,
            retry_after: Some(1),
        },
        Fault {
            status: 503,
            retry_after: None,
        },
        Fault {
            status: 500,
            retry_after: None,
        },
    ]);
    let started = Instant::now();
    let n = v
        .upsert("notes", [Record::new("a", vec![1.0, 0.0, 0.0, 0.0])])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(upserts(&f), vec![429, 503, 500, 200]);
    assert_eq!(v.count("notes", None).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_is_never_retried_and_retries_end() {
    let f = fake(&[(4, "cosine")]);
    let (_d, _s, v) = open(&f, &[(4, "cosine")], ", max_retries = 2").await;
    v.create_collection("notes", 4, Metric::Cosine)
        .await
        .unwrap();
    f.clear_requests();
    f.fail_next([Fault {
        status: 400,
        retry_after: None,
    }]);
    let e = v
        .upsert("notes", [Record::new("a", vec![1.0, 0.0, 0.0, 0.0])])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(upserts(&f), vec![400], "a 400 is the caller's: one request");
    f.clear_requests();
    f.fail_next((0..3).map(|_| Fault {
        status: 503,
        retry_after: None,
    }));
    let e = v
        .upsert("notes", [Record::new("a", vec![1.0, 0.0, 0.0, 0.0])])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.to_string().contains("after 2 retries"), "{e}");
    assert_eq!(upserts(&f), vec![503, 503, 503]);
    // Nothing was half-written, and the backend still works.
    assert_eq!(v.count("notes", None).await.unwrap(), 0);
    v.upsert("notes", [Record::new("a", vec![1.0, 0.0, 0.0, 0.0])])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_no_server_fails_at_open_without_showing_the_key() {
    let f = fake(&[(4, "cosine")]);
    let dir = tempfile::tempdir().unwrap();
    let wrong = config(&f, &[(4, "cosine")], "").replace(KEY, "pc-wrong-secret-123");
    let s = load(dir.path(), &[("pc", wrong)]);
    let e = s.vectors_backend("pc").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.to_string().contains("API key"), "{e}");
    assert!(!e.to_string().contains("pc-wrong-secret"), "{e}");
    // Nothing listens on the port of a stopped fake.
    let host = f.host("d4-cosine");
    drop(f);
    let dir = tempfile::tempdir().unwrap();
    let s = load(
        dir.path(),
        &[(
            "pc",
            format!(
                "{{ api_key = {KEY:?}, index_host = {host:?}, max_retries = 1, retry_base_ms = 5, timeout_ms = 2000 }}"
            ),
        )],
    );
    let started = Instant::now();
    let e = s.vectors_backend("pc").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // And a config without an index names the key to set.
    let dir = tempfile::tempdir().unwrap();
    let s = load(dir.path(), &[("pc", format!("{{ api_key = {KEY:?} }}"))]);
    if std::env::var_os("PINECONE_INDEX_HOST").is_none() {
        let e = s.vectors_backend("pc").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        assert!(e.to_string().contains("index_host"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_checked_before_anything_is_sent() {
    let f = fake(&[(4, "cosine"), (8, "dotproduct")]);
    let (_d, _s, v) = open(&f, &[(4, "cosine"), (8, "dotproduct")], "").await;
    // A spec no index serves names what is needed and what there is.
    let e = v
        .create_collection("wide", 16, Metric::Cosine)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    for needle in [
        "dimension 16",
        "d4-cosine",
        "dimension 8, dotproduct",
        "extra_index_hosts",
    ] {
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
    assert!(!v.exists("wide").await.unwrap());
    v.create_collection("notes", 4, Metric::Cosine)
        .await
        .unwrap();
    v.create_collection("dots", 8, Metric::Dot).await.unwrap();
    f.clear_requests();
    let big = json!({"blob": "x".repeat(30_000), "more": "y".repeat(15_000)});
    let e = v
        .upsert(
            "notes",
            [
                Record::new("fine", vec![1.0, 0.0, 0.0, 0.0]),
                Record::new("huge", vec![0.0, 1.0, 0.0, 0.0]).metadata(big),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(
        e.to_string().contains("\"huge\"") && e.to_string().contains("40960"),
        "{e}"
    );
    let e = v
        .upsert("notes", [Record::new("zero", vec![0.0; 4])])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("zero vector"), "{e}");
    assert!(
        upserts(&f).is_empty(),
        "a refused upsert sent {:?}",
        upserts(&f)
    );
    assert_eq!(v.count("notes", None).await.unwrap(), 0);
    // A string range longer than the layout keeps is refused by name.
    let e = v
        .query(
            "notes",
            &Query::new(vec![1.0, 0.0, 0.0, 0.0]).filter(json!({"title": {"$gt": "t".repeat(60)}})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("title"), "{e}");
    // Unknown options are named.
    let e = v
        .query(
            "notes",
            &Query::new(vec![1.0, 0.0, 0.0, 0.0]).options(json!({"ef_search": 64})),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ef_search"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_go_in_batches_bounded_by_records_and_bytes() {
    let f = fake(&[(8, "euclidean")]);
    let (_d, _s, v) = open(
        &f,
        &[(8, "euclidean")],
        ", batch_max_records = 100, batch_max_bytes = 131072",
    )
    .await;
    v.create_collection("many", 8, Metric::Euclidean)
        .await
        .unwrap();
    f.clear_requests();
    let records: Vec<Record> = (0..1_000)
        .map(|i| Record::new(format!("r{i:04}"), unit(8, i)))
        .collect();
    assert_eq!(v.upsert("many", records).await.unwrap(), 1_000);
    assert_eq!(upserts(&f).len(), 10, "1,000 records, 100 per request");
    f.clear_requests();
    // ~20 KB of metadata each: bytes, not records, bound these batches.
    let records: Vec<Record> = (0..40)
        .map(|i| {
            Record::new(format!("fat{i}"), unit(8, i)).metadata(json!({"pad": "p".repeat(9_000)}))
        })
        .collect();
    v.upsert("many", records).await.unwrap();
    let n = upserts(&f).len();
    assert!(
        (6..=40).contains(&n),
        "{n} requests for 40 records of ~20 KB under 128 KB"
    );
    assert_eq!(v.count("many", None).await.unwrap(), 1_040);
    // Euclidean scores are negative distances, closest first.
    let q = vec![0.3, -0.2, 0.9, 0.1, 0.0, 0.5, -0.7, 0.25];
    let hits = v
        .query(
            "many",
            &Query::new(q.clone()).top_k(5).include(Include::ALL),
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 5);
    for w in hits.windows(2) {
        assert!(
            w[0].score >= w[1].score,
            "{} then {}",
            w[0].score,
            w[1].score
        );
    }
    for h in &hits {
        let v = h.vector.as_ref().unwrap();
        let d: f64 = q
            .iter()
            .zip(v)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            (h.score + d).abs() < 1e-4,
            "{}: score {} for distance {d}",
            h.id,
            h.score
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prefixes_never_see_each_other() {
    let f = fake(&[(4, "cosine")]);
    let dir = tempfile::tempdir().unwrap();
    let a = config(&f, &[(4, "cosine")], "").replace("\"t_\"", "\"agent_a_\"");
    let b = config(&f, &[(4, "cosine")], "").replace("\"t_\"", "\"agent_b_\"");
    let s = load(dir.path(), &[("a", a), ("b", b)]);
    let (va, vb) = (
        s.vectors_backend("a").await.unwrap(),
        s.vectors_backend("b").await.unwrap(),
    );
    va.create_collection("notes", 4, Metric::Cosine)
        .await
        .unwrap();
    va.upsert("notes", [Record::new("x", vec![1.0, 0.0, 0.0, 0.0])])
        .await
        .unwrap();
    assert!(!vb.exists("notes").await.unwrap());
    assert!(vb.list().await.unwrap().is_empty());
    vb.create_collection("notes", 4, Metric::Cosine)
        .await
        .unwrap();
    assert_eq!(vb.count("notes", None).await.unwrap(), 0);
    assert_eq!(va.count("notes", None).await.unwrap(), 1);
    assert!(vb.drop_collection("notes").await.unwrap());
    assert_eq!(va.count("notes", None).await.unwrap(), 1);
}

/// POSTs JSON to the fake as another tool would.
fn raw_post(fake: &Fake, path: &str, body: &Json) {
    let addr = fake.url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nApi-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_by_another_tool_come_home() {
    let f = fake(&[(4, "dotproduct")]);
    // AgentOS-style records: flat metadata, no strata layout.
    raw_post(
        &f,
        "/d4-dotproduct/vectors/upsert",
        &json!({"namespace": "t_legacy", "vectors": (0..250).map(|i| json!({
            "id": format!("doc-{i:03}"),
            "values": [1.0, i as f64, 0.5, -1.0],
            "metadata": {"content": format!("memory {i}"), "tags": ["a", "b"], "n": i},
        })).collect::<Vec<_>>()}),
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = strata_host::loader::built_plugin("sqlite")
        .expect("run `cargo build --release -p strata-sqlite` first");
    let toml = format!(
        "[backends.pc]\nlibrary = {:?}\nconfig = {}\n[backends.home]\nlibrary = {sqlite:?}\nconfig = {{ path = {:?} }}\n",
        plugin(),
        config(&f, &[(4, "dotproduct")], ""),
        dir.path().join("home.db")
    );
    std::fs::write(dir.path().join("plugins.toml"), toml).unwrap();
    let s = Strata::load(dir.path().join("plugins.toml")).unwrap();
    let v = s.vectors_backend("pc").await.unwrap();
    let list = v.list().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].name.as_str(), list[0].dimension, list[0].count),
        ("legacy", 4, 250)
    );
    let got = v.fetch("legacy", &["doc-007"], Include::ALL).await.unwrap();
    assert_eq!(
        got[0].metadata.as_ref().unwrap(),
        &json!({"content": "memory 7", "tags": ["a", "b"], "n": 7})
    );
    let report = migrate(
        &s.backend("pc").await.unwrap(),
        &s.backend("home").await.unwrap(),
        &MigrateOptions::new().tables(Vec::<String>::new()),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            report.collections[0].verification,
            Verification::Passed { rows: 250, .. }
        ),
        "{report:?}"
    );
    let home = s.vectors_backend("home").await.unwrap();
    assert_eq!(
        collection_checksum(&v, "legacy").await.unwrap(),
        collection_checksum(&home, "legacy").await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_pinecone_to_sqlite_keeps_5k_records_identical() {
    let f = fake(&[(16, "cosine")]);
    let sqlite = strata_host::loader::built_plugin("sqlite")
        .expect("run `cargo build --release -p strata-sqlite` first");
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[backends.src]\nlibrary = {sqlite:?}\nconfig = {{ path = {:?} }}\n\
         [backends.pc]\nlibrary = {:?}\nconfig = {}\n\
         [backends.back]\nlibrary = {sqlite:?}\nconfig = {{ path = {:?} }}\n",
        dir.path().join("src.db"),
        plugin(),
        config(&f, &[(16, "cosine")], ""),
        dir.path().join("back.db"),
    );
    std::fs::write(dir.path().join("plugins.toml"), toml).unwrap();
    let s = Strata::load(dir.path().join("plugins.toml")).unwrap();
    let src = s.vectors_backend("src").await.unwrap();
    src.create_collection("memories", 16, Metric::Cosine)
        .await
        .unwrap();
    let kinds = ["fact", "event", "preference"];
    let records: Vec<Record> = (0..5_000u32)
        .map(|i| {
            let v: Vec<f32> = (0..16)
                .map(|d| ((i * 31 + d * 7) % 97) as f32 / 97.0 - 0.5 + d as f32 * 1e-3)
                .collect();
            let mut r = Record::new(format!("m{i}"), v).metadata(json!({
                "kind": kinds[(i % 3) as usize],
                "n": i,
                "score": f64::from(i) / 7.0,
                "tags": if i % 2 == 0 { json!(["a", "b"]) } else { json!([]) },
                "src": {"app": "cli", "v": null},
                "note": "naïve — ünïcödé 🧠",
            }));
            if i % 3 != 0 {
                r = r.text(format!("memory number {i} about things"));
            }
            r
        })
        .collect();
    src.upsert("memories", records.clone()).await.unwrap();
    let only_collections = MigrateOptions::new().tables(Vec::<String>::new());
    let there = migrate(
        &s.backend("src").await.unwrap(),
        &s.backend("pc").await.unwrap(),
        &only_collections,
    )
    .await
    .unwrap();
    assert_eq!(there.collections[0].written, 5_000, "{there:?}");
    assert!(
        matches!(
            there.collections[0].verification,
            Verification::Passed { rows: 5_000, .. }
        ),
        "{there:?}"
    );
    let back = migrate(
        &s.backend("pc").await.unwrap(),
        &s.backend("back").await.unwrap(),
        &only_collections,
    )
    .await
    .unwrap();
    assert!(
        matches!(
            back.collections[0].verification,
            Verification::Passed { rows: 5_000, .. }
        ),
        "{back:?}"
    );
    let pc = s.vectors_backend("pc").await.unwrap();
    let home = s.vectors_backend("back").await.unwrap();
    let want = collection_checksum(&src, "memories").await.unwrap();
    assert_eq!(collection_checksum(&pc, "memories").await.unwrap(), want);
    assert_eq!(collection_checksum(&home, "memories").await.unwrap(), want);
    for id in ["m0", "m1", "m4999"] {
        let a = src.fetch("memories", &[id], Include::ALL).await.unwrap();
        let b = home.fetch("memories", &[id], Include::ALL).await.unwrap();
        assert_eq!(a, b, "{id}");
    }
    // Filters on the migrated data agree with the source.
    for f in [
        json!({"kind": "event", "n": {"$gte": 4000}}),
        json!({"$not": {"tags": "a"}}),
        json!({"src.v": null, "note": {"$gt": "na"}}),
    ] {
        assert_eq!(
            pc.count("memories", Some(&f)).await.unwrap(),
            src.count("memories", Some(&f)).await.unwrap(),
            "{f}"
        );
        // The filtered query's scores are the exact top 20 of the matching
        // records (computed here: the source's HNSW is approximate, and on
        // this data — 97 distinct vectors, each ~51 times — it is far off;
        // many records share a vector, so scores are compared rank by rank).
        let parsed = strata_plugin::filter::Filter::parse(&f).unwrap();
        let q = vec![0.1f32; 16];
        let mut want: Vec<f64> = records
            .iter()
            .filter(|r| parsed.matches(&r.metadata))
            .map(|r| Metric::Cosine.score(&q, &r.vector))
            .collect();
        want.sort_by(|a, b| b.total_cmp(a));
        want.truncate(20);
        let got: Vec<f64> = pc
            .query("memories", &Query::new(q).top_k(20).filter(f.clone()))
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.score)
            .collect();
        assert_eq!(got.len(), want.len(), "{f}");
        for (x, y) in got.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5, "{f}: {got:?} vs exact {want:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_consistency_is_declared_or_waited_for() {
    let f = fake(&[(4, "cosine")]);
    f.set_lag(Duration::from_millis(1_500));
    let dir = tempfile::tempdir().unwrap();
    let lazy = config(&f, &[(4, "cosine")], "").replace("\"t_\"", "\"lazy_\"");
    let careful = config(&f, &[(4, "cosine")], ", read_after_write_ms = 10000")
        .replace("\"t_\"", "\"careful_\"");
    let s = load(dir.path(), &[("lazy", lazy), ("careful", careful)]);
    let eventual = "vector.eventually_consistent";
    let caps = |b: &strata_host::Backend| b.capabilities().unwrap();
    assert!(
        caps(&s.backend("lazy").await.unwrap())
            .iter()
            .any(|c| c == eventual)
    );
    assert!(
        !caps(&s.backend("careful").await.unwrap())
            .iter()
            .any(|c| c == eventual)
    );

    // Without waiting, a read right after a write does not see it yet.
    let lazy = s.vectors_backend("lazy").await.unwrap();
    lazy.create_collection("notes", 4, Metric::Cosine)
        .await
        .unwrap();
    lazy.upsert(
        "notes",
        (0..5).map(|i| Record::new(format!("r{i}"), unit(4, i))),
    )
    .await
    .unwrap();
    assert_eq!(
        lazy.count("notes", None).await.unwrap(),
        0,
        "read before the lag"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while lazy.count("notes", None).await.unwrap() != 5 {
        assert!(Instant::now() < deadline, "the writes never became visible");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // With read_after_write_ms, every write reads back when it returns.
    let careful = s.vectors_backend("careful").await.unwrap();
    careful
        .create_collection("notes", 4, Metric::Cosine)
        .await
        .unwrap();
    let started = Instant::now();
    careful
        .upsert(
            "notes",
            (0..50).map(|i| Record::new(format!("r{i}"), unit(4, i))),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(careful.count("notes", None).await.unwrap(), 50);
    // An overwrite is waited for too (the stamp changes).
    careful
        .upsert(
            "notes",
            [Record::new("r0", unit(4, 0)).metadata(json!({"v": 2}))],
        )
        .await
        .unwrap();
    let got = careful.fetch("notes", &["r0"], Include::ALL).await.unwrap();
    assert_eq!(got[0].metadata.as_ref().unwrap(), &json!({"v": 2}));
    assert_eq!(careful.delete_ids("notes", &["r1", "r2"]).await.unwrap(), 2);
    assert_eq!(careful.count("notes", None).await.unwrap(), 48);
    assert_eq!(careful.delete_all("notes").await.unwrap(), 48);
    assert_eq!(careful.count("notes", None).await.unwrap(), 0);
    assert!(careful.drop_collection("notes").await.unwrap());
    assert!(!careful.exists("notes").await.unwrap());
    // A budget shorter than the lag is a timeout naming the option.
    let dir = tempfile::tempdir().unwrap();
    let short = config(&f, &[(4, "cosine")], ", read_after_write_ms = 100");
    let s = load(dir.path(), &[("short", short)]);
    let short = s.vectors_backend("short").await.unwrap();
    let e = short
        .create_collection("other", 4, Metric::Cosine)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("read_after_write_ms"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_on_a_sparse_dense_index_fuses_by_rrf() {
    let f = fake(&[(4, "dotproduct"), (4, "cosine")]);
    let (_d, _s, v) = open(&f, &[(4, "dotproduct"), (4, "cosine")], "").await;
    let hybrid = json!({"hybrid": true});
    let e = v
        .create_collection_with("cos", 4, Metric::Cosine, Some(&hybrid))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("dotproduct"), "{e}");
    v.create_collection("plain", 4, Metric::Dot).await.unwrap();
    let e = v
        .hybrid_query(
            "plain",
            &strata_host::Hybrid::new(vec![1.0, 0.0, 0.0, 0.0], "x"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("\"hybrid\": true"), "{e}");
    let e = v
        .create_collection_with("plain", 4, Metric::Dot, Some(&hybrid))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    v.create_collection_with("h", 4, Metric::Dot, Some(&hybrid))
        .await
        .unwrap();
    let records: Vec<Record> = (0..20)
        .map(|i| {
            let text = if i == 17 {
                "the zebra crossed".to_string()
            } else {
                format!("memory {i} about horses")
            };
            Record::new(format!("d{i:02}"), unit(4, i))
                .metadata(json!({"i": i}))
                .text(text)
        })
        .collect();
    v.upsert("h", records).await.unwrap();
    let q = unit(4, 3);
    let dense = v
        .query("h", &Query::new(q.clone()).top_k(20))
        .await
        .unwrap();
    let rank17 = dense.iter().position(|h| h.id == "d17").unwrap() + 1;
    assert!(
        rank17 > 3,
        "the dense ranking alone should not favour d17 (rank {rank17})"
    );
    let hits = v
        .hybrid_query(
            "h",
            &strata_host::Hybrid::new(q.clone(), "Zebra!")
                .top_k(5)
                .include(Include::ALL),
        )
        .await
        .unwrap();
    let h17 = hits
        .iter()
        .find(|h| h.id == "d17")
        .expect("the keyword match is in the top 5");
    let want = 1.0 / (60.0 + rank17 as f64) + 1.0 / 61.0;
    assert!((h17.score - want).abs() < 1e-12, "{} vs {want}", h17.score);
    assert_eq!(h17.text.as_deref(), Some("the zebra crossed"));
    assert_eq!(h17.metadata.as_ref().unwrap(), &json!({"i": 17}));
    // The best dense hit without the keyword is fused from its dense rank alone.
    let top_dense = &dense[0];
    let fused = hits.iter().find(|h| h.id == top_dense.id).unwrap();
    assert!((fused.score - 1.0 / 61.0).abs() < 1e-12, "{}", fused.score);
    // Filters apply to both rankings.
    let hits = v
        .hybrid_query(
            "h",
            &strata_host::Hybrid::new(q, "zebra")
                .top_k(5)
                .filter(json!({"i": {"$ne": 17}})),
        )
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.id != "d17"), "{hits:?}");
    assert_eq!(hits.len(), 5);
    // A text with more terms than a sparse vector holds is refused by name.
    let long: String = (0..2_100).map(|i| format!("w{i} ")).collect();
    let e = v
        .upsert("h", [Record::new("long", unit(4, 1)).text(long)])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(
        e.to_string().contains("\"long\"") && e.to_string().contains("2048"),
        "{e}"
    );
}

/// Against the real service, only when `PINECONE_API_KEY`,
/// `PINECONE_INDEX_HOST`, `PINECONE_INDEX_DIMENSION` and
/// `PINECONE_INDEX_METRIC` (`cosine` | `dotproduct` | `euclidean`) are set;
/// one line saying it was skipped otherwise. Not run by this project's CI
/// (no Pinecone account): see README.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_round_trip_against_real_pinecone() {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(_), Some(host), Some(dim), Some(metric)) = (
        env("PINECONE_API_KEY"),
        env("PINECONE_INDEX_HOST"),
        env("PINECONE_INDEX_DIMENSION").and_then(|d| d.parse::<u32>().ok()),
        env("PINECONE_INDEX_METRIC"),
    ) else {
        eprintln!(
            "pinecone live test: SKIPPED (set PINECONE_API_KEY, PINECONE_INDEX_HOST, PINECONE_INDEX_DIMENSION, PINECONE_INDEX_METRIC)"
        );
        return;
    };
    let metric = match metric.as_str() {
        "cosine" => Metric::Cosine,
        "dotproduct" => Metric::Dot,
        _ => Metric::Euclidean,
    };
    let prefix = format!("strata_live_{}_", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let s = load(
        dir.path(),
        &[(
            "pc",
            format!(
                "{{ index_host = {host:?}, namespace_prefix = {prefix:?}, read_after_write_ms = 120000 }}"
            ),
        )],
    );
    let v = s.vectors_backend("pc").await.unwrap();
    v.create_collection("live", dim, metric).await.unwrap();
    let records: Vec<Record> = (0..20)
        .map(|i| {
            let mut x = vec![0.0f32; dim as usize];
            x[i % dim as usize] = 1.0;
            x[(i + 1) % dim as usize] += 0.5;
            Record::new(format!("r{i:02}"), x)
                .metadata(json!({"kind": if i % 2 == 0 { "even" } else { "odd" }, "n": i, "src": {"app": "live"}}))
                .text(format!("record {i}"))
        })
        .collect();
    v.upsert("live", records.clone()).await.unwrap();
    let got = v.fetch("live", &["r03"], Include::ALL).await.unwrap();
    assert_eq!(got[0].metadata.as_ref().unwrap(), &records[3].metadata);
    let f = json!({"kind": "odd", "n": {"$gte": 11}, "src.app": "live"});
    assert_eq!(v.count("live", Some(&f)).await.unwrap(), 5);
    let hits = v
        .query(
            "live",
            &Query::new(records[0].vector.clone())
                .top_k(20)
                .filter(f.clone()),
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 5, "{hits:?}");
    assert_eq!(v.delete_where("live", &f).await.unwrap(), 5);
    assert!(v.drop_collection("live").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_batch_limit_late_in_an_upsert_sends_nothing() {
    let f = fake(&[(8192, "dotproduct")]);
    let (_d, _s, v) = open(&f, &[(8192, "dotproduct")], ", batch_max_bytes = 65536").await;
    v.create_collection("wide", 8192, Metric::Dot)
        .await
        .unwrap();
    f.clear_requests();
    // Sparse vectors print short (~33 KB of JSON); the last one, dense,
    // prints ~90 KB: over the 64 KiB batch limit on its own.
    let mut records: Vec<Record> = (0..5)
        .map(|i| {
            let mut x = vec![0.0f32; 8192];
            x[i] = 1.0;
            Record::new(format!("s{i}"), x)
        })
        .collect();
    records.push(Record::new(
        "dense",
        (0..8192).map(|i| 0.123_456_79 + i as f32 * 1e-7).collect(),
    ));
    let e = v.upsert("wide", records).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("batch_max_bytes"), "{e}");
    assert!(
        upserts(&f).is_empty(),
        "sent {:?} before refusing",
        upserts(&f)
    );
    assert_eq!(v.count("wide", None).await.unwrap(), 0);
}
