//! A plugin built against the pinned plugin-api 1.0 sources
//! (`fixtures/abi-1.0`, built by scripts/test) loads into this host and
//! passes its suite: the promise every 1.x host keeps. Run in process,
//! through the library's API (the other tests run the binary), and judged
//! exactly by `expected/abi-1.0.toml`.

use std::{sync::Arc, time::Duration};

use strata_conformance::{Event, Expectations, Suite, Target, Verdict, run_suites};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pinned_1_0_plugin_passes_its_suite() {
    let path = strata_host::loader::built_plugin("fixture-abi-1-0").unwrap_or_else(|e| {
        panic!("{e}: build it first: cargo build --release --manifest-path fixtures/abi-1.0/Cargo.toml --target-dir target")
    });
    let expected = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("expected/abi-1.0.toml");
    let expectations = Expectations::from_file(&expected).unwrap();
    let config = serde_json::json!({ "max_vectors": 100_000 });
    let target = Arc::new(Target::load(path, config, "abi-1.0.toml").unwrap());
    let report = run_suites(
        target,
        &[Suite::Vector],
        None,
        &expectations,
        Duration::from_secs(120),
        |e| {
            if let Event::Finished(c) = e
                && c.verdict != Verdict::Pass
            {
                eprintln!("{} {}: {}", c.verdict.label(), c.id, c.outcome.message());
            }
        },
    )
    .await
    .unwrap();
    eprintln!("{}", report.summary());
    assert!(report.ok(), "{}", report.summary());
    assert!(report.passed() >= 40, "{}", report.summary());
}
