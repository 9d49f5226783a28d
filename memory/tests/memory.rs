//! The memory layer through the loaded plugin libraries: the same test
//! bodies on SQLite and on Postgres + pgvector (`DATABASE_URL`, which
//! scripts/test sets), and the graph's answers compared between the two.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::json;
use strata_host::Strata;
use strata_memory::{
    GRAPH_DISCOUNT, HashEmbedder, Memory, MemoryError, NewTrace, RecallOptions, Via,
    graph::{Direction, Reached},
};

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn sqlite(dir: &Path) -> Strata {
    let file = dir.join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "plugin_dirs = [{:?}]\n[backends.local]\nplugin = \"sqlite\"\nconfig = {{ path = \"brain.sqlite\" }}\n",
            target_dir()
        ),
    )
    .unwrap();
    Strata::load(&file).unwrap()
}

fn postgres(dir: &Path, test: &str) -> Strata {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: these tests need the PostgreSQL server; run them through \
         scripts/test, or `scripts/servers/postgres.sh start && eval \"$(scripts/servers/postgres.sh env)\"`",
    );
    let schema = format!(
        "mem_{test}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 1_000_000
    );
    let file = dir.join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "plugin_dirs = [{:?}]\n[backends.pg]\nplugin = \"postgres\"\nconfig = {{ url = \"${{DATABASE_URL}}\", schema = {schema:?} }}\n",
            target_dir()
        ),
    )
    .unwrap();
    Strata::load(&file).unwrap()
}

fn embedder() -> Arc<HashEmbedder> {
    Arc::new(HashEmbedder::new(128))
}

async fn traces_body(strata: &Strata) {
    let m = Memory::open(strata, embedder()).await.unwrap();
    let tea = m
        .remember(
            "the user drinks green tea every morning",
            json!({"kind": "preference", "user": "ana"}),
            0.3,
        )
        .await
        .unwrap();
    let coffee = m
        .remember(
            "the user drinks black coffee every morning",
            json!({"kind": "preference", "user": "ben"}),
            0.3,
        )
        .await
        .unwrap();
    let rust = m
        .remember(
            "the project builds with cargo and rust 1.95",
            json!({"kind": "fact"}),
            0.9,
        )
        .await
        .unwrap();
    m.remember(
        "deploys happen on fridays after the review",
        json!({"kind": "fact"}),
        0.1,
    )
    .await
    .unwrap();
    assert_eq!(m.count().await.unwrap(), 4);

    // The trace about tea ranks first for a question about tea.
    let hits = m.recall("green tea", &RecallOptions::top(3)).await.unwrap();
    assert_eq!(
        hits.first().map(|h| h.trace.id.as_str()),
        Some(tea.as_str())
    );
    assert!((hits[0].relevance - 1.0).abs() < 1e-9, "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(hits[0].trace.access_count, 0);
    // The recall counted an access.
    let again = m.get(std::slice::from_ref(&tea)).await.unwrap();
    assert_eq!(again[0].access_count, 1);
    assert!(again[0].accessed_ms >= hits[0].trace.accessed_ms);

    // A filter keeps only matching traces, however relevant the others.
    let facts = m
        .recall(
            "the user drinks tea",
            &RecallOptions::top(5).filter(json!({"kind": "fact"})),
        )
        .await
        .unwrap();
    assert!(!facts.is_empty());
    assert!(
        facts
            .iter()
            .all(|h| h.trace.metadata["kind"] == json!("fact")),
        "{facts:?}"
    );

    // Importance lifts a trace of equal relevance: the same text twice,
    // one essential and one trivial.
    let low = m
        .remember("the office plant needs water", json!({}), 0.0)
        .await
        .unwrap();
    let high = m
        .remember("the office plant needs water", json!({}), 1.0)
        .await
        .unwrap();
    let plant = m
        .recall("office plant water", &RecallOptions::top(2))
        .await
        .unwrap();
    let order: Vec<&str> = plant.iter().map(|h| h.trace.id.as_str()).collect();
    assert_eq!(order, [high.as_str(), low.as_str()]);
    assert!(plant[0].score > plant[1].score * 1.4, "{plant:?}");

    // Bad input is refused by name, and nothing is written.
    for (content, meta, imp, what) in [
        ("", json!({}), 0.5, "empty"),
        ("x", json!([1]), 0.5, "object"),
        ("x", json!({}), 1.5, "between 0 and 1"),
    ] {
        let e = m.remember(content, meta, imp).await.unwrap_err();
        assert!(
            matches!(&e, MemoryError::InvalidInput { message } if message.contains(what)),
            "{e}"
        );
    }
    assert_eq!(m.count().await.unwrap(), 6);

    // Forget by id, then by filter: gone from both the rows and the vectors.
    assert_eq!(m.forget(std::slice::from_ref(&coffee)).await.unwrap(), 1);
    assert_eq!(m.forget_where(&json!({"kind": "fact"})).await.unwrap(), 2);
    assert!(m.get(std::slice::from_ref(&rust)).await.unwrap().is_empty());
    assert_eq!(m.count().await.unwrap(), 3);
    assert_eq!(
        m.vectors()
            .count(strata_memory::TRACES, None)
            .await
            .unwrap(),
        3
    );
    let left = m
        .recall("coffee rust cargo fridays", &RecallOptions::top(10))
        .await
        .unwrap();
    assert!(
        left.iter()
            .all(|h| h.trace.id != coffee && h.trace.id != rust)
    );

    // Stats count what is there and time real recalls.
    let stats = m.stats(10).await.unwrap();
    assert_eq!(
        (
            stats.traces,
            stats.vectors,
            stats.documents,
            stats.recalls_timed
        ),
        (3, 3, 0, 3)
    );
    let texts = m
        .sql()
        .all("SELECT content FROM memory_traces", ())
        .await
        .unwrap();
    let bytes: usize = texts
        .iter()
        .map(|r| r.get::<String>("content").unwrap().len())
        .sum();
    assert_eq!(stats.text_bytes, bytes as u64);
    assert_eq!(stats.vector_bytes, 3 * 128 * 4);
    assert!(stats.recall_p99_ms >= stats.recall_p50_ms && stats.recall_p50_ms > 0.0);
    assert!(matches!(stats.advice, strata_memory::Advice::Stay(_)));

    // Opened again with another embedder: refused, naming both.
    let e = Memory::open(strata, Arc::new(HashEmbedder::new(64)))
        .await
        .err()
        .expect("another embedder must be refused");
    assert!(
        matches!(
            &e,
            MemoryError::EmbedderMismatch {
                stored_dim: 128,
                given_dim: 64,
                ..
            }
        ),
        "{e}"
    );
}

/// What the graph answers for one fixed graph with a cycle, a diamond
/// and ids that collations order differently.
#[derive(Debug, PartialEq)]
struct GraphAnswers {
    out1: Vec<Reached>,
    out3: Vec<Reached>,
    both2: Vec<Reached>,
    knows_only: Vec<Reached>,
    path: Option<Vec<String>>,
    path_back: Option<Vec<String>>,
    unreachable: Option<Vec<String>>,
    neighbours: Vec<String>,
}

async fn graph_body(strata: &Strata) -> GraphAnswers {
    let m = Memory::open(strata, embedder()).await.unwrap();
    let g = m.graph();
    for id in ["ana", "Ben", "cleo", "_dev", "eve", "Zed", "lone"] {
        g.add_node(id, "person", &id.to_uppercase(), json!({"id": id}))
            .await
            .unwrap();
    }
    for (s, d, k) in [
        ("ana", "Ben", "knows"),
        ("Ben", "cleo", "knows"),
        ("cleo", "ana", "knows"), // a cycle
        ("ana", "_dev", "works_with"),
        ("_dev", "eve", "knows"),
        ("cleo", "eve", "knows"), // a diamond to eve
        ("eve", "Zed", "knows"),
    ] {
        g.add_edge(s, d, k, 1.0, json!({})).await.unwrap();
    }
    // Replacing an edge keeps one edge.
    g.add_edge("ana", "Ben", "knows", 0.5, json!({"since": 2020}))
        .await
        .unwrap();
    let e = g.edges("ana", Direction::Out, Some("knows")).await.unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].weight, e[0].props.clone()),
        (0.5, json!({"since": 2020}))
    );
    // An edge to a missing node, an id with the separator, a depth too far.
    assert!(
        g.add_edge("ana", "nobody", "knows", 1.0, json!({}))
            .await
            .is_err()
    );
    assert!(g.add_node("a\u{1f}b", "x", "x", json!({})).await.is_err());
    assert!(g.traverse("ana", 99, Direction::Out, None).await.is_err());
    let answers = GraphAnswers {
        out1: g.traverse("ana", 1, Direction::Out, None).await.unwrap(),
        out3: g.traverse("ana", 3, Direction::Out, None).await.unwrap(),
        both2: g.traverse("eve", 2, Direction::Both, None).await.unwrap(),
        knows_only: g
            .traverse("ana", 4, Direction::Out, Some("knows"))
            .await
            .unwrap(),
        path: g
            .shortest_path("ana", "Zed", 6, Direction::Out)
            .await
            .unwrap(),
        path_back: g
            .shortest_path("Zed", "ana", 6, Direction::In)
            .await
            .unwrap(),
        unreachable: g
            .shortest_path("ana", "lone", 6, Direction::Both)
            .await
            .unwrap(),
        neighbours: g.neighbours("cleo", Direction::Both).await.unwrap(),
    };
    let r = |id: &str, depth| Reached {
        id: id.into(),
        depth,
    };
    assert_eq!(answers.out1, [r("Ben", 1), r("_dev", 1)]);
    assert_eq!(
        answers.out3,
        [
            r("Ben", 1),
            r("_dev", 1),
            r("cleo", 2),
            r("eve", 2),
            r("Zed", 3)
        ]
    );
    assert_eq!(
        answers.both2,
        [
            r("Zed", 1),
            r("_dev", 1),
            r("cleo", 1),
            r("Ben", 2),
            r("ana", 2)
        ]
    );
    // Only "knows" edges: _dev is out of reach, eve comes through cleo.
    assert_eq!(
        answers.knows_only,
        [r("Ben", 1), r("cleo", 2), r("eve", 3), r("Zed", 4)]
    );
    assert_eq!(
        answers.path.as_deref(),
        Some(&["ana", "_dev", "eve", "Zed"].map(String::from)[..])
    );
    assert_eq!(
        answers.path_back.as_deref(),
        Some(&["Zed", "eve", "_dev", "ana"].map(String::from)[..])
    );
    assert_eq!(answers.unreachable, None);
    assert_eq!(answers.neighbours, ["Ben", "ana", "eve"]);
    assert!(g.remove_node("eve").await.unwrap());
    assert!(
        g.edges("_dev", Direction::Out, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!g.remove_node("eve").await.unwrap());
    answers
}

async fn lifecycle_body(strata: &Strata) {
    let m = Memory::open(strata, embedder()).await.unwrap();

    // Feedback moves the ranking: of two traces with the same text, the
    // one ranked first is marked unhelpful, the other helpful.
    let a = m
        .remember("standup is at nine", json!({}), 0.5)
        .await
        .unwrap();
    let b = m
        .remember("standup is at nine", json!({}), 0.5)
        .await
        .unwrap();
    let before = m.recall("standup", &RecallOptions::top(2)).await.unwrap();
    let (first, second) = (before[0].trace.id.clone(), before[1].trace.id.clone());
    assert!([&a, &b].contains(&&first) && [&a, &b].contains(&&second));
    assert!(m.feedback(&first, false).await.unwrap());
    assert!(m.feedback(&first, false).await.unwrap());
    assert!(m.feedback(&second, true).await.unwrap());
    assert!(!m.feedback("no-such-trace", true).await.unwrap());
    let after = m.recall("standup", &RecallOptions::top(2)).await.unwrap();
    assert_eq!(after[0].trace.id, second, "{after:?}");
    assert_eq!((after[0].trace.useful, after[1].trace.not_useful), (1, 2));
    m.forget(&[first, second]).await.unwrap();

    // Consolidation: near-duplicates merge into the more important one,
    // idle traces decay, and the log says what happened.
    let weak = m
        .remember("the user likes green tea", json!({}), 0.2)
        .await
        .unwrap();
    let strong = m
        .remember("The user likes green TEA!", json!({}), 0.8)
        .await
        .unwrap();
    let other = m
        .remember("invoices are due on the first monday", json!({}), 0.5)
        .await
        .unwrap();
    m.recall("green tea", &RecallOptions::top(2)).await.unwrap(); // counts accesses
    // The merged-away trace's graph links move to the survivor.
    for n in ["tea", "user"] {
        m.graph().add_node(n, "thing", n, json!({})).await.unwrap();
    }
    m.link(&weak, "tea").await.unwrap();
    m.link(&weak, "user").await.unwrap();
    m.link(&strong, "user").await.unwrap();
    let report = m
        .consolidate(&strata_memory::ConsolidateOptions::default().idle_ms(0))
        .await
        .unwrap();
    assert_eq!((report.decayed, report.merged), (3, 1), "{report:?}");
    let left = m
        .get(&[weak.clone(), strong.clone(), other.clone()])
        .await
        .unwrap();
    let ids: Vec<&str> = left.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [strong.as_str(), other.as_str()]);
    assert_eq!(m.links(&strong).await.unwrap(), ["tea", "user"]);
    assert!(m.links(&weak).await.unwrap().is_empty());
    assert!((left[0].importance - 0.72).abs() < 1e-9, "{left:?}");
    assert_eq!(
        left[0].access_count, 2,
        "the merged trace's access was added"
    );
    assert!((left[1].importance - 0.45).abs() < 1e-9);
    let log = m
        .sql()
        .all(
            "SELECT action, trace_id, other_id FROM memory_consolidation_log ORDER BY action, trace_id",
            (),
        )
        .await
        .unwrap();
    let merges: Vec<(String, String)> = log
        .iter()
        .filter(|r| r.get::<String>("action").unwrap() == "merge")
        .map(|r| (r.get("trace_id").unwrap(), r.get("other_id").unwrap()))
        .collect();
    assert_eq!(merges, [(strong.clone(), weak.clone())]);
    assert_eq!(log.len(), 4);

    // Documents: chunked, embedded, recalled with their document.
    let text = format!(
        "{}\n\nThe moon pulls the oceans and makes the tides rise twice a day. {}",
        "Rust programs are compiled ahead of time by cargo and rustc. ".repeat(8),
        "Bread needs flour, water, salt and a long slow rise. ".repeat(8)
    );
    let doc = m
        .ingest(
            "notes",
            &text,
            json!({"source": "test"}),
            strata_memory::IngestOptions::new(200, 40),
        )
        .await
        .unwrap();
    assert!(doc.chunks >= 4, "{doc:?}");
    let hits = m.recall_chunks("moon tides oceans", 2, None).await.unwrap();
    assert!(hits[0].content.contains("tides"), "{hits:?}");
    assert_eq!(hits[0].document, doc);
    let only = m
        .recall_chunks(
            "bread",
            10,
            Some(json!({"document": doc.id.as_str(), "source": "test"})),
        )
        .await
        .unwrap();
    assert!(!only.is_empty() && only.iter().all(|h| h.document.id == doc.id));
    assert!(
        m.ingest("blank", "  \n ", json!({}), Default::default())
            .await
            .is_err()
    );
    assert!(m.forget_document(&doc.id).await.unwrap());
    assert!(
        m.recall_chunks("moon tides", 5, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!m.forget_document(&doc.id).await.unwrap());
}

#[test]
fn feedback_consolidation_and_documents_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = sqlite(dir.path());
        lifecycle_body(&s).await;
        s.close().await.unwrap();
    });
}

#[test]
fn feedback_consolidation_and_documents_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = postgres(dir.path(), "life");
        lifecycle_body(&s).await;
        s.close().await.unwrap();
    });
}

/// `remember_many` (one embed call, multi-row writes) and
/// `recall_by_vector` (the caller's query embedding).
async fn batch_body(strata: &Strata) {
    let m = Memory::open(strata, embedder()).await.unwrap();
    let mut batch: Vec<NewTrace> = (0..250)
        .map(|i| {
            NewTrace::new(format!("note {i}: the build cache lives in directory {i}"))
                .metadata(json!({ "n": i }))
        })
        .collect();
    batch.push(
        NewTrace::new("the release train leaves on thursdays")
            .id("train")
            .importance(0.9),
    );
    let ids = m.remember_many(&batch).await.unwrap();
    assert_eq!(ids.len(), 251);
    assert_eq!(ids[250], "train");
    assert_eq!(m.count().await.unwrap(), 251);
    let t = &m.get(&["train".to_string()]).await.unwrap()[0];
    assert_eq!((t.importance, t.metadata.clone()), (0.9, json!({})));

    // Again under the same id: replaced, not added.
    m.remember_many(&[NewTrace::new("the release train leaves on fridays").id("train")])
        .await
        .unwrap();
    assert_eq!(m.count().await.unwrap(), 251);

    let v = HashEmbedder::new(128).vector("when does the release train leave");
    let hits = m
        .recall_by_vector(
            "when does the release train leave",
            v,
            &RecallOptions::top(3),
        )
        .await
        .unwrap();
    assert_eq!(hits[0].trace.id, "train");
    assert!(hits[0].trace.content.contains("fridays"));
    let err = m
        .recall_by_vector("x", vec![0.0; 3], &RecallOptions::top(3))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("3 dimensions"), "{err}");
    // A bad item refuses the whole batch before anything is written.
    let err = m
        .remember_many(&[NewTrace::new("fine"), NewTrace::new("bad").importance(2.0)])
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::InvalidInput { .. }), "{err}");
    assert_eq!(m.count().await.unwrap(), 251);
}

#[test]
fn batch_remember_and_recall_by_vector_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = sqlite(dir.path());
        batch_body(&s).await;
        s.close().await.unwrap();
    });
}

#[test]
fn batch_remember_and_recall_by_vector_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = postgres(dir.path(), "batch");
        batch_body(&s).await;
        s.close().await.unwrap();
    });
}

/// Recall expanded through the knowledge graph: traces linked to the
/// hits' nodes and their neighbours come back, discounted per step.
async fn expand_body(strata: &Strata) {
    let m = Memory::open(strata, embedder()).await.unwrap();
    let g = m.graph();
    g.add_node("ana", "person", "Ana", json!({})).await.unwrap();
    g.add_node("tea", "topic", "oolong", json!({}))
        .await
        .unwrap();
    g.add_node("kyoto", "place", "Kyoto", json!({}))
        .await
        .unwrap();
    g.add_edge("ana", "tea", "likes", 1.0, json!({}))
        .await
        .unwrap();
    g.add_edge("kyoto", "tea", "grows", 1.0, json!({}))
        .await
        .unwrap();
    let note = |id: &str, text: &str, kind: &str| {
        NewTrace::new(text).id(id).metadata(json!({ "kind": kind }))
    };
    m.remember_many(&[
        note("drink", "ana likes to drink oolong tea", "pref"),
        note("sister", "ana has a sister in osaka", "secret"),
        note("steamed", "oolong is partly oxidised, then rolled", "fact"),
        note("uji", "uji near kyoto is famous for matcha", "fact"),
        note(
            "printer",
            "the printer on floor three is out of toner",
            "fact",
        ),
    ])
    .await
    .unwrap();
    for (t, n) in [
        ("drink", "ana"),
        ("sister", "ana"),
        ("steamed", "tea"),
        ("uji", "kyoto"),
    ] {
        m.link(t, n).await.unwrap();
    }
    m.link("drink", "ana").await.unwrap(); // twice is once
    assert_eq!(m.links("drink").await.unwrap(), ["ana"]);
    assert!(m.link("drink", "nowhere").await.is_err());
    assert!(m.link("no-trace", "ana").await.is_err());

    let q = "what does ana like to drink";
    let plain = m.recall(q, &RecallOptions::top(1)).await.unwrap();
    let ids = |r: &[strata_memory::Recalled]| -> Vec<String> {
        r.iter().map(|h| h.trace.id.clone()).collect()
    };
    assert_eq!(ids(&plain), ["drink"]);
    assert_eq!(plain[0].via, None);

    // Depth 0: the traces on the hit's own node, at half its score.
    let r = m
        .recall(q, &RecallOptions::top(1).expand_graph(0))
        .await
        .unwrap();
    assert_eq!(ids(&r), ["drink", "sister"]);
    assert_eq!(r[1].score, r[0].score * GRAPH_DISCOUNT);
    assert_eq!(
        r[1].via,
        Some(Via {
            hit: "drink".into(),
            node: "ana".into(),
            steps: 0
        })
    );

    // Depth 1 with a filter: the neighbour's trace (a quarter), the
    // filtered-out one not.
    let not_secret = json!({"kind": {"$ne": "secret"}});
    let r = m
        .recall(
            q,
            &RecallOptions::top(1)
                .filter(not_secret.clone())
                .expand_graph(1),
        )
        .await
        .unwrap();
    assert_eq!(ids(&r), ["drink", "steamed"]);
    assert_eq!(r[1].score, r[0].score * GRAPH_DISCOUNT * GRAPH_DISCOUNT);
    assert_eq!(r[1].via.as_ref().map(|v| v.steps), Some(1));

    // Depth 2 reaches kyoto (ana -> tea <- kyoto, edges walked both ways),
    // but at most k (1) traces are added: the nearer one.
    let r = m
        .recall(
            q,
            &RecallOptions::top(1)
                .filter(not_secret.clone())
                .expand_graph(2),
        )
        .await
        .unwrap();
    assert_eq!(ids(&r), ["drink", "steamed"]);
    assert!(m.unlink("steamed", "tea").await.unwrap());
    assert!(!m.unlink("steamed", "tea").await.unwrap());
    let r = m
        .recall(q, &RecallOptions::top(1).filter(not_secret).expand_graph(2))
        .await
        .unwrap();
    assert_eq!(ids(&r), ["drink", "uji"]);
    assert_eq!(r[1].score, r[0].score * GRAPH_DISCOUNT.powi(3));
    assert_eq!(
        r[1].via,
        Some(Via {
            hit: "drink".into(),
            node: "kyoto".into(),
            steps: 2
        })
    );

    // Forgetting a trace or removing a node drops its links.
    m.forget(&["sister".to_string()]).await.unwrap();
    assert!(g.remove_node("kyoto").await.unwrap());
    assert!(m.links("uji").await.unwrap().is_empty());
    let r = m
        .recall(q, &RecallOptions::top(1).expand_graph(3))
        .await
        .unwrap();
    assert_eq!(ids(&r), ["drink"]);
    let err = m
        .recall(q, &RecallOptions::top(1).expand_graph(17))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expand_graph depth 17"), "{err}");
}

#[test]
fn recall_expanded_through_the_graph_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = sqlite(dir.path());
        expand_body(&s).await;
        s.close().await.unwrap();
    });
}

#[test]
fn recall_expanded_through_the_graph_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = postgres(dir.path(), "expand");
        expand_body(&s).await;
        s.close().await.unwrap();
    });
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn traces_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = sqlite(dir.path());
        traces_body(&s).await;
        s.close().await.unwrap();
    });
}

#[test]
fn traces_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let s = postgres(dir.path(), "traces");
        traces_body(&s).await;
        s.close().await.unwrap();
    });
}

/// One graph, built and walked on both backends: the same answers.
#[test]
fn graph_answers_are_identical_on_sqlite_and_postgres() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    rt().block_on(async {
        let lite = sqlite(a.path());
        let pg = postgres(b.path(), "graph");
        let on_sqlite = graph_body(&lite).await;
        let on_postgres = graph_body(&pg).await;
        assert_eq!(on_sqlite, on_postgres);
        lite.close().await.unwrap();
        pg.close().await.unwrap();
    });
}

/// The zero-config memory: one SQLite file in the directory given.
#[test]
fn create_at_makes_one_sqlite_brain() {
    let dir = tempfile::tempdir().unwrap();
    // The host finds the sqlite plugin beside the test binary (target/release).
    rt().block_on(async {
        let m = Memory::create_at(&dir.path().join("brain"), embedder())
            .await
            .unwrap();
        let id = m
            .remember("remember the milk", json!({}), 0.5)
            .await
            .unwrap();
        let hits = m.recall("milk", &RecallOptions::top(1)).await.unwrap();
        assert_eq!(hits[0].trace.id, id);
        m.close().await.unwrap();
    });
    assert!(dir.path().join("brain/brain.sqlite").is_file());
}

/// Everything a brain answers, for comparing two copies of it.
#[derive(Debug, PartialEq)]
struct BrainAnswers {
    traces: Vec<strata_memory::Trace>,
    /// The best trace, then every recalled id sorted (lexical scoring
    /// differs by backend: FTS5 BM25 and Postgres' ts_rank order
    /// near-ties differently, so the full order is not compared).
    recall: (String, Vec<String>),
    /// Every chunk row, by id, and the document of the best chunk.
    chunks: (Vec<String>, String),
    graph: Vec<Reached>,
    /// Each trace's graph links.
    links: Vec<Vec<String>>,
    log: Vec<String>,
}

async fn answers(m: &Memory, ids: &[String]) -> BrainAnswers {
    // Ranking only (scores are compared by order): no access counted here,
    // so `traces` is read before the recall.
    let traces = m.get(ids).await.unwrap();
    let hits = m
        .recall("green tea in the morning", &RecallOptions::top(3))
        .await
        .unwrap();
    let mut all: Vec<String> = hits.iter().map(|h| h.trace.id.clone()).collect();
    all.sort();
    let recall = (hits[0].trace.content.clone(), all);
    let rows = m
        .sql()
        .all(
            "SELECT id, document, n, start_char, content FROM memory_chunks ORDER BY id",
            (),
        )
        .await
        .unwrap();
    let best = m.recall_chunks("moon tides", 1, None).await.unwrap();
    let chunks = (
        rows.iter().map(|r| r.to_json().to_string()).collect(),
        best[0].document.title.clone(),
    );
    let graph = m
        .graph()
        .traverse("ana", 3, Direction::Both, None)
        .await
        .unwrap();
    let log = m
        .sql()
        .all(
            "SELECT action, trace_id FROM memory_consolidation_log ORDER BY action, trace_id",
            (),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.get::<String>("action").unwrap(),
                r.get::<String>("trace_id").unwrap()
            )
        })
        .collect();
    let mut links = Vec::new();
    for id in ids {
        links.push(m.links(id).await.unwrap());
    }
    BrainAnswers {
        traces,
        recall,
        chunks,
        graph,
        links,
        log,
    }
}

/// A whole brain (traces, feedback, graph, documents and chunks, the
/// consolidation log, both collections) moved SQLite → Postgres → SQLite
/// by the migration engine answers identically at every stop.
#[test]
fn a_whole_brain_migrates_sqlite_to_postgres_and_back() {
    let dir = tempfile::tempdir().unwrap();
    std::env::var("DATABASE_URL").expect("DATABASE_URL: run through scripts/test");
    let file = dir.path().join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "plugin_dirs = [{:?}]\n\
             [backends.src]\nplugin = \"sqlite\"\nconfig = {{ path = \"src.sqlite\" }}\n\
             [backends.pg]\nplugin = \"postgres\"\nconfig = {{ url = \"${{DATABASE_URL}}\", schema = \"brain_{}\" }}\n\
             [backends.back]\nplugin = \"sqlite\"\nconfig = {{ path = \"back.sqlite\" }}\n",
            target_dir(),
            std::process::id()
        ),
    )
    .unwrap();
    let strata = Strata::load(&file).unwrap();
    rt().block_on(async {
        let open = |name: &'static str| {
            let strata = &strata;
            async move {
                let b = strata.backend(name).await.unwrap();
                Memory::open_on(b.sql().unwrap(), b.vectors().unwrap(), embedder())
                    .await
                    .unwrap()
            }
        };
        let src = open("src").await;
        let mut ids = Vec::new();
        for (text, imp) in [
            ("the user drinks green tea every morning", 0.4),
            ("green tea, every morning, for the user", 0.6),
            ("black coffee after lunch", 0.5),
            ("the build uses cargo", 0.9),
        ] {
            ids.push(src.remember(text, json!({"imp": imp}), imp).await.unwrap());
        }
        src.feedback(&ids[2], true).await.unwrap();
        src.consolidate(&strata_memory::ConsolidateOptions::default().merge_threshold(0.8))
            .await
            .unwrap();
        for n in ["ana", "tea", "china", "bob"] {
            src.graph()
                .add_node(n, "thing", n, json!({"n": n}))
                .await
                .unwrap();
        }
        for (a, b) in [("ana", "tea"), ("tea", "china"), ("bob", "ana")] {
            src.graph()
                .add_edge(a, b, "rel", 0.5, json!({}))
                .await
                .unwrap();
        }
        src.link(&ids[3], "bob").await.unwrap();
        src.link(&ids[2], "china").await.unwrap();
        src.link(&ids[2], "tea").await.unwrap();
        src.ingest(
            "notes",
            &"The moon makes the tides rise and fall. ".repeat(30),
            json!({}),
            strata_memory::IngestOptions::new(200, 30),
        )
        .await
        .unwrap();
        let before = answers(&src, &ids).await;
        assert_eq!(before.links[2], ["china", "tea"]);
        assert_eq!(before.links[3], ["bob"]);
        assert!(
            !before.log.is_empty() && before.chunks.0.len() >= 5,
            "{before:?}"
        );
        assert_eq!(before.recall.0, "green tea, every morning, for the user");

        let go = |from: &'static str, to: &'static str| {
            let strata = &strata;
            async move {
                let (a, b) = (
                    strata.backend(from).await.unwrap(),
                    strata.backend(to).await.unwrap(),
                );
                strata_host::migrate::migrate(&a, &b, &Default::default())
                    .await
                    .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"))
            }
        };
        go("src", "pg").await;
        let pg = open("pg").await;
        // The recall above counted accesses on src: compare with a fresh
        // read of src after its own recall.
        let src_now = answers(&src, &ids).await;
        let on_pg = answers(&pg, &ids).await;
        assert_eq!(on_pg.recall, src_now.recall);
        assert_eq!(on_pg.chunks, src_now.chunks);
        assert_eq!(on_pg.graph, src_now.graph);
        assert_eq!(on_pg.log, src_now.log);
        assert_eq!(on_pg.traces, src_now.traces);
        go("pg", "back").await;
        let back = open("back").await;
        let pg_now = answers(&pg, &ids).await;
        let on_back = answers(&back, &ids).await;
        assert_eq!(on_back, pg_now);
    });
    rt().block_on(strata.close()).unwrap();
}
