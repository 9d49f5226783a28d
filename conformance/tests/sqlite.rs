//! The whole conformance suite against the SQLite plugin, loaded as a `.so`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use strata_conformance::{Outcome, Suite, Target, run};

fn plugin_path(name: &str) -> PathBuf {
    strata_host::loader::built_plugin(name).expect("run `cargo build --release --workspace` first")
}

async fn run_suite(config: serde_json::Value) {
    let target = Arc::new(Target::load(plugin_path("sqlite"), config, "sqlite-test.toml").unwrap());
    let report = run(
        target,
        &[Suite::Sql, Suite::Vector],
        None,
        Duration::from_secs(120),
        |c| {
            if let Outcome::Failed(m) = &c.outcome {
                eprintln!("FAIL {}: {m}", c.id);
            }
        },
    )
    .await;
    eprintln!("{}", report.summary());
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert!(report.passed() >= 25, "{}", report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_suite_on_a_file_database() {
    let dir = tempfile::tempdir().unwrap();
    // `hnsw_build = "inline"`: the recall and reopen cases then measure the
    // HNSW index itself, not the exact search that answers while a
    // background build runs (the plugin's own tests cover background builds).
    run_suite(serde_json::json!({
        "path": dir.path().join("nested/dir/conformance.sqlite"),
        "hnsw_build": "inline",
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_suite_in_memory() {
    run_suite(serde_json::json!({ "path": ":memory:", "hnsw_build": "inline" })).await;
}
