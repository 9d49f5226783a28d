//! The vector conformance suite against this plugin, loaded as a `.so`
//! through the host's loader — the same run as
//! `strata-conformance --plugin target/release/libstrata_plugin_template.so
//! --config examples/plugin-template/conformance.toml --suite vector`.
//!
use std::{path::PathBuf, sync::Arc, time::Duration};

use strata_conformance::{Outcome, Suite, Target, run};

/// The `.so` cargo built for this test run. Cargo compiles the crate's
/// `cdylib` before its integration tests, into `target/<profile>/deps/` next
/// to the test binary; only `cargo build` copies it up to
/// `target/<profile>/`, so the copy there may be older than the code.
///
/// The library name comes from this crate's package name (`strata-<name>`
/// builds `libstrata_<name>.so`), so a renamed copy of the template tests
/// its own library, never a template built earlier in the same target dir.
fn plugin() -> PathBuf {
    let name = env!("CARGO_PKG_NAME");
    let name = name.strip_prefix("strata-").unwrap_or(name);
    let exe = std::env::current_exe().unwrap();
    let so = exe.with_file_name(strata_host::loader::library_file_name(name));
    assert!(so.is_file(), "{} not built", so.display());
    so
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vector_suite_passes() {
    let config = serde_json::json!({ "max_vectors": 100_000 });
    let target = Arc::new(Target::load(plugin(), config, "plugin-template-test.toml").unwrap());
    let report = run(
        target,
        &[Suite::Vector],
        None,
        Duration::from_secs(120),
        |c| match &c.outcome {
            Outcome::Failed(m) => eprintln!("FAIL {}: {m}", c.id),
            Outcome::Skipped(m) => eprintln!("SKIP {}: {m}", c.id),
            Outcome::Passed => {}
        },
    )
    .await;
    eprintln!("{}", report.summary());
    assert_eq!(report.failed(), 0, "{}", report.summary());
    // Everything but the two cases that need an approximate index
    // (`vector.ann`), which this exact-search store does not claim.
    assert_eq!(report.skipped(), 2, "{}", report.summary());
    assert!(report.passed() >= 19, "{}", report.summary());
}

/// A config key the plugin does not know is refused before the backend
/// opens, naming the key.
#[tokio::test]
async fn an_unknown_config_key_is_named() {
    let target =
        Target::load(plugin(), serde_json::json!({ "max_vector": 5 }), "bad.toml").unwrap();
    let Err(err) = target.open().await else {
        panic!("opened with a bad key");
    };
    assert!(err.to_string().contains("max_vector"), "{err}");
}

/// Going past `max_vectors` is a `constraint` error that writes nothing.
#[tokio::test]
async fn max_vectors_is_enforced() {
    use strata_host::{ErrorKind, Metric, Record};
    let target = Target::load(plugin(), serde_json::json!({ "max_vectors": 3 }), "t.toml").unwrap();
    let v = target.open().await.unwrap().vectors().unwrap();
    v.create_collection("c", 2, Metric::Dot).await.unwrap();
    let recs = |ids: &[&str]| {
        ids.iter()
            .map(|id| Record::new(*id, vec![1.0, 0.0]))
            .collect::<Vec<_>>()
    };
    v.upsert("c", recs(&["a", "b"])).await.unwrap();
    // Overwriting existing ids does not count against the limit.
    v.upsert("c", recs(&["a", "b", "c"])).await.unwrap();
    let err = v.upsert("c", recs(&["d"])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constraint, "{err}");
    assert!(err.to_string().contains("max_vectors = 3"), "{err}");
    assert_eq!(v.count("c", None).await.unwrap(), 3);
}
