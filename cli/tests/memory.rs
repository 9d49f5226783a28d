//! `strata memory …` through the built binary and the loaded SQLite plugin.

mod common;

use common::{config, strata};
use serde_json::Value as Json;

fn json(cfg: &std::path::Path, args: &[&str]) -> Json {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = strata(cfg, "memory", &all);
    assert!(ok, "strata memory {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn remember_recall_feedback_forget_graph_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let tea = json(
        &cfg,
        &[
            "remember",
            "the user drinks green tea",
            "--metadata",
            r#"{"user":"ana"}"#,
            "--importance",
            "0.8",
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    json(
        &cfg,
        &["remember", "deploys happen on fridays", "--id", "deploys"],
    );
    let hits = json(&cfg, &["recall", "green tea", "-k", "2"]);
    assert_eq!(hits[0]["id"], tea.as_str(), "{hits}");
    assert_eq!(hits.as_array().unwrap().len(), 2);
    let filtered = json(
        &cfg,
        &["recall", "fridays", "--filter", r#"{"user":"ana"}"#],
    );
    assert_eq!(filtered.as_array().unwrap().len(), 1, "{filtered}");
    json(&cfg, &["feedback", &tea, "--useful"]);
    // The access from the first recall was counted.
    let again = json(&cfg, &["recall", "green tea", "-k", "1"]);
    assert_eq!(again[0]["access_count"], 2);

    // Bad input: named, and a failure exit.
    let (ok, _, err) = strata(&cfg, "memory", &["remember", "x", "--metadata", "[1"]);
    assert!(!ok && err.contains("--metadata is not JSON"), "{err}");
    let (ok, _, err) = strata(&cfg, "memory", &["feedback", "nope", "--useful"]);
    assert!(!ok && err.contains("no trace \"nope\""), "{err}");
    let (ok, _, err) = strata(&cfg, "memory", &["--dimension", "64", "stats"]);
    assert!(
        !ok && err.contains("hash-256"),
        "another embedder must be refused: {err}"
    );

    // The graph.
    for n in ["ana", "tea", "china"] {
        json(&cfg, &["graph", "add-node", n, "--kind", "thing"]);
    }
    json(
        &cfg,
        &["graph", "add-edge", "ana", "tea", "--kind", "likes"],
    );
    json(
        &cfg,
        &["graph", "add-edge", "tea", "china", "--kind", "from"],
    );
    let walk = json(&cfg, &["graph", "traverse", "ana", "--depth", "2"]);
    assert_eq!(
        walk,
        serde_json::json!([{"id": "tea", "depth": 1}, {"id": "china", "depth": 2}])
    );
    let path = json(
        &cfg,
        &["graph", "path", "china", "ana", "--direction", "in"],
    );
    assert_eq!(path, serde_json::json!(["china", "tea", "ana"]));
    // Recall expanded through the graph: the deploys trace, linked to
    // china, comes back two steps from the tea trace's node.
    json(&cfg, &["graph", "link", &tea, "ana"]);
    json(&cfg, &["graph", "link", "deploys", "china"]);
    let plain = json(&cfg, &["recall", "green tea", "-k", "1"]);
    assert_eq!(plain.as_array().unwrap().len(), 1, "{plain}");
    let expanded = json(&cfg, &["recall", "green tea", "-k", "1", "--expand", "2"]);
    assert_eq!(expanded[1]["id"], "deploys", "{expanded}");
    assert_eq!(
        expanded[1]["via"],
        serde_json::json!({"hit": tea, "node": "china", "steps": 2})
    );

    // Documents.
    let doc = dir.path().join("notes.txt");
    std::fs::write(&doc, "The moon makes the tides. ".repeat(50)).unwrap();
    let d = json(
        &cfg,
        &["ingest", doc.to_str().unwrap(), "--chunk-chars", "300"],
    );
    assert_eq!(d["title"], "notes.txt");
    assert!(d["chunks"].as_u64().unwrap() >= 4, "{d}");
    let docs = json(&cfg, &["docs", "tides", "-k", "2"]);
    assert_eq!(docs[0]["title"], "notes.txt");

    // Stats and advice.
    let s = json(&cfg, &["stats", "--samples", "5"]);
    assert_eq!(s["traces"], 2);
    assert_eq!(s["nodes"], 3);
    assert_eq!(s["recalls_timed"], 2);
    assert_eq!(s["advice"]["tier"], "stay");
    let (ok, human, _) = strata(&cfg, "memory", &["stats"]);
    assert!(ok && human.contains("advice     stay"), "{human}");

    // Forget.
    assert_eq!(json(&cfg, &["forget", "deploys"])["forgotten"], 1);
    assert_eq!(
        json(&cfg, &["forget", "--where", r#"{"user":"ana"}"#])["forgotten"],
        1
    );
    assert_eq!(json(&cfg, &["stats"])["traces"], 0);
}

#[test]
fn the_minilm_embedder_recalls_by_meaning_and_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // A missing model directory is named, with the script that fetches it.
    let (ok, _, err) = strata(
        &cfg,
        "memory",
        &[
            "--embedder",
            "minilm",
            "--model-dir",
            "/nonexistent/minilm",
            "stats",
        ],
    );
    assert!(
        !ok && err.contains("/nonexistent/minilm/config.json") && err.contains("minilm.sh"),
        "{err}"
    );
    let Some(model) = strata_memory::minilm::default_model_dir()
        .filter(|d| d.join("model.safetensors").is_file())
    else {
        eprintln!(
            "cli memory test the_minilm_embedder_recalls_by_meaning_and_is_remembered: SKIPPED (no all-MiniLM-L6-v2 model: run scripts/models/minilm.sh)"
        );
        return;
    };
    let model = model.to_str().unwrap();
    let m = |args: &[&str]| {
        let mut all = vec!["--embedder", "minilm", "--model-dir", model];
        all.extend_from_slice(args);
        json(&cfg, &all)
    };
    m(&[
        "remember",
        "The user drinks green tea every morning",
        "--id",
        "tea",
    ]);
    m(&[
        "remember",
        "Deployments happen on Fridays",
        "--id",
        "deploys",
    ]);
    // No word in common with either: only the meaning finds it.
    let hits = m(&["recall", "favourite beverage", "-k", "2"]);
    assert_eq!(hits[0]["id"], "tea", "{hits}");
    let (ok, _, err) = strata(&cfg, "memory", &["stats"]);
    assert!(
        !ok && err.contains("all-MiniLM-L6-v2") && err.contains("384"),
        "the hash embedder must be refused on a MiniLM memory: {err}"
    );
}
