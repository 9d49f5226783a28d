//! A plugin built against the pinned plugin-api 1.0 sources
//! (`fixtures/abi-1.0`, built by scripts/test) loads into this host and
//! passes its suite: the promise every 1.x host keeps.

use std::{sync::Arc, time::Duration};

use strata_conformance::{Outcome, Suite, Target, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pinned_1_0_plugin_passes_its_suite() {
    let path = strata_host::loader::built_plugin("fixture-abi-1-0").unwrap_or_else(|e| {
        panic!("{e}: build it first: cargo build --release --manifest-path fixtures/abi-1.0/Cargo.toml --target-dir target")
    });
    let config = serde_json::json!({ "max_vectors": 100_000 });
    let target = Arc::new(Target::load(path, config, "abi-1.0.toml").unwrap());
    let report = run(
        target,
        &[Suite::Vector],
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
    // The template's exact-search store: all but the two index cases.
    assert!(report.passed() >= 19, "{}", report.summary());
}
