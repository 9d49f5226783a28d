//! The blob suite against the S3 plugin, loaded as a `.so`, on the moto
//! server `scripts/test` starts (`S3_ENDPOINT`, `S3_BUCKET`). Without it the
//! test fails with instructions rather than skipping.

use std::{sync::Arc, time::Duration};

use strata_conformance::{Outcome, Suite, Target, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_suite_on_moto() {
    let endpoint = std::env::var("S3_ENDPOINT").expect(
        "S3_ENDPOINT is not set: these tests need an S3-protocol server; run them through scripts/test \
         or `scripts/servers/moto.sh start && eval \"$(scripts/servers/moto.sh env)\"`",
    );
    let bucket = std::env::var("S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let plugin = strata_host::loader::built_plugin("s3")
        .expect("run `cargo build --release --workspace` first");
    let config = serde_json::json!({
        "bucket": bucket, "endpoint": endpoint, "region": "us-east-1",
        "prefix": "conformance-test/",
    });
    let target = Arc::new(Target::load(plugin, config, "s3-test.toml").unwrap());
    let report = run(
        target,
        &[Suite::Blob],
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
    assert_eq!(report.skipped(), 0, "{}", report.summary());
    assert!(report.passed() >= 12, "{}", report.summary());
}
