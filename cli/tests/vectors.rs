//! `strata vectors` through the binary and the SQLite plugin (no servers):
//! a file upsert that meets a bad record, and query tables with huge
//! metadata. Uses the `.so` files built by `cargo build --release --workspace`.

mod common;

use std::path::Path;

use common::config;

/// Runs `strata vectors ARGS…`: (success, stdout, stderr).
fn vectors(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    common::strata(cfg, "vectors", args)
}

fn count(cfg: &Path, name: &str) -> u64 {
    let (ok, out, err) = vectors(cfg, &["--json", "stats", name]);
    assert!(ok, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["count"]
        .as_u64()
        .unwrap()
}

fn records(dir: &Path, name: &str, n: usize, bad: usize) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 1..=n {
        let v = if i == bad {
            "[1.0, 2.0]"
        } else {
            "[1.0, 2.0, 3.0]"
        };
        text.push_str(&format!(
            "{{\"id\": \"r{i}\", \"vector\": {v}, \"metadata\": {{\"i\": {i}}}}}\n"
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bad_record_writes_nothing_of_a_checked_file_and_is_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (ok, _, err) = vectors(&cfg, &["create", "c", "--dim", "3"]);
    assert!(ok, "{err}");

    // Line 4 of 6 has two values: nothing is written, even in batches of 1.
    let file = records(dir.path(), "bad.jsonl", 6, 4);
    let (ok, _, err) = vectors(
        &cfg,
        &["upsert", "c", file.to_str().unwrap(), "--batch", "1"],
    );
    assert!(!ok);
    assert!(
        err.contains("line 4") && err.contains("dimension is 3"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(count(&cfg, "c"), 0);

    // Written as read (past the check bound): batches before the bad
    // line are written, and the error says how many.
    let file = records(dir.path(), "stream.jsonl", 6, 5);
    let (ok, _, err) = vectors(
        &cfg,
        &[
            "upsert",
            "c",
            file.to_str().unwrap(),
            "--batch",
            "2",
            "--check-first-mb",
            "0",
        ],
    );
    assert!(!ok);
    assert!(err.contains("line 5"), "{err}");
    assert!(
        err.contains("4 record(s) were written before it (lines 1–4)"),
        "{err}"
    );
    assert_eq!(count(&cfg, "c"), 4);

    // A good file goes in whole.
    let file = records(dir.path(), "good.jsonl", 6, 0);
    let (ok, out, err) = vectors(&cfg, &["upsert", "c", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("upserted 6 records"), "{out}");
    assert_eq!(count(&cfg, "c"), 6);
}

#[test]
fn a_query_table_cuts_huge_metadata_and_text_short() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (ok, _, err) = vectors(&cfg, &["create", "c", "--dim", "3"]);
    assert!(ok, "{err}");
    let big = "m".repeat(4 << 20);
    let file = dir.path().join("big.jsonl");
    std::fs::write(
        &file,
        format!(
            "{{\"id\": \"big\", \"vector\": [1, 0, 0], \"metadata\": {{\"blob\": \"{big}\"}}, \"text\": \"{big}\"}}\n"
        ),
    )
    .unwrap();
    let (ok, _, err) = vectors(&cfg, &["upsert", "c", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let q = dir.path().join("q.json");
    std::fs::write(&q, "[1, 0, 0]").unwrap();
    let started = std::time::Instant::now();
    let (ok, out, err) = vectors(&cfg, &["query", "c", "--vector", q.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("big") && out.contains('…'),
        "{}",
        out.chars().take(500).collect::<String>()
    );
    assert!(out.len() < 20_000, "the table printed {} bytes", out.len());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // --json prints the values whole.
    let (ok, out, err) = vectors(
        &cfg,
        &["--json", "query", "c", "--vector", q.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(out.len() > 8 << 20);
}
