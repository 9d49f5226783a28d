//! Recall quality on a labelled set: `fixtures/recall-set.json` holds 75
//! memories an agent would keep (preferences, facts, events, code notes;
//! 15 of them distractors sharing words or topics with the others) and
//! 60 questions, each paraphrased (not word-copied) from the one memory
//! that answers it. Every question is recalled with k = 5 through the
//! loaded SQLite plugin; hit@5 is the share of questions whose memory is
//! among the five.
//!
//! With the real all-MiniLM-L6-v2 hit@5 must be at least 0.8. The
//! lexical [`HashEmbedder`] is measured on the same set for contrast (and
//! not asserted). Both numbers are printed (`cargo test --release -p
//! strata-memory --test recall_quality -- --nocapture`).
//!
//! Needs the model: `scripts/models/minilm.sh` fetches it into
//! `~/.cache/strata/models/all-MiniLM-L6-v2` (or set `STRATA_MINILM_DIR`).
//! Without it, the MiniLM test passes after printing one SKIPPED line.

use std::{path::PathBuf, sync::Arc};

use serde_json::json;
use strata_host::Strata;
use strata_memory::{Embedder, HashEmbedder, Memory, MiniLmEmbedder, RecallOptions};

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

struct Set {
    memories: Vec<(String, String, String)>,
    queries: Vec<(String, String)>,
}

fn set() -> Set {
    let j: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/recall-set.json")).unwrap();
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    Set {
        memories: j["memories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (s(&m["id"]), s(&m["kind"]), s(&m["text"])))
            .collect(),
        queries: j["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| (s(&q["query"]), s(&q["expected"])))
            .collect(),
    }
}

/// hit@5 and hit@1 of `embedder` on the set, and the questions it missed
/// (not in the top 5).
fn hit_at_5(embedder: Arc<dyn Embedder>) -> (f64, f64, Vec<String>) {
    let set = set();
    assert!(set.queries.len() >= 50, "the set has {}", set.queries.len());
    let ids: std::collections::HashSet<&str> = set.memories.iter().map(|m| m.0.as_str()).collect();
    assert!(set.queries.iter().all(|q| ids.contains(q.1.as_str())));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "plugin_dirs = [{:?}]\n[backends.local]\nplugin = \"sqlite\"\nconfig = {{ path = \"brain.sqlite\" }}\n",
            target_dir()
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let strata = Strata::load(&file).unwrap();
        let m = Memory::open(&strata, embedder).await.unwrap();
        for (id, kind, text) in &set.memories {
            m.remember_as(id, text, json!({ "kind": kind }), 0.5)
                .await
                .unwrap();
        }
        let (mut hits, mut firsts) = (0, 0);
        let mut missed = Vec::new();
        for (query, expected) in &set.queries {
            let got = m.recall(query, &RecallOptions::top(5)).await.unwrap();
            if got.first().is_some_and(|r| &r.trace.id == expected) {
                firsts += 1;
            }
            if got.iter().any(|r| &r.trace.id == expected) {
                hits += 1;
            } else {
                let top: Vec<&str> = got.iter().map(|r| r.trace.id.as_str()).collect();
                missed.push(format!("{query:?} -> {expected} (got {top:?})"));
            }
        }
        drop(m);
        strata.close().await.unwrap();
        let n = set.queries.len() as f64;
        (f64::from(hits) / n, f64::from(firsts) / n, missed)
    })
}

#[test]
fn minilm_hit_at_5_is_at_least_0_8() {
    let dir = strata_memory::minilm::default_model_dir().unwrap_or_default();
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "recall quality with MiniLM: SKIPPED (no all-MiniLM-L6-v2 in {}: run scripts/models/minilm.sh)",
            dir.display()
        );
        return;
    }
    let e = MiniLmEmbedder::load(&dir).expect("the model directory loads");
    let (hit, first, missed) = hit_at_5(Arc::new(e));
    println!(
        "recall quality: hit@5 = {hit:.3} (hit@1 = {first:.3}) with all-MiniLM-L6-v2 ({} of {} questions missed)",
        missed.len(),
        set().queries.len()
    );
    for m in &missed {
        println!("  missed: {m}");
    }
    assert!(hit >= 0.8, "hit@5 {hit:.3} < 0.8; missed:\n{missed:#?}");
}

#[test]
fn hash_embedder_hit_at_5_for_contrast() {
    let (hit, first, missed) = hit_at_5(Arc::new(HashEmbedder::default()));
    println!(
        "recall quality: hit@5 = {hit:.3} (hit@1 = {first:.3}) with the hash demo embedder ({} missed; lexical, not asserted)",
        missed.len()
    );
}
