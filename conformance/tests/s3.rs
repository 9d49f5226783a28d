//! The blob suite against the S3 plugin's `.so` on the moto server
//! `scripts/test` starts (`S3_ENDPOINT`, `S3_BUCKET`), through the
//! `strata-conformance` binary, judged by `expected/s3.toml`. Without a
//! server the test fails with instructions rather than skipping.

mod common;

#[test]
fn blob_suite_on_moto() {
    std::env::var("S3_ENDPOINT").expect(
        "S3_ENDPOINT is not set: these tests need an S3-protocol server; run them through scripts/test \
         or `scripts/servers/moto.sh start && eval \"$(scripts/servers/moto.sh env)\"`",
    );
    // The config reads it as `${S3_BUCKET}`.
    std::env::var("S3_BUCKET").expect("S3_BUCKET is not set (scripts/servers/moto.sh env sets it)");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s3.toml");
    std::fs::write(
        &file,
        "bucket = \"${S3_BUCKET}\"\nendpoint = \"${S3_ENDPOINT}\"\nregion = \"us-east-1\"\nprefix = \"conformance-test/\"\n",
    )
    .unwrap();
    let out = common::run(
        &[
            &"--plugin",
            &common::plugin("s3"),
            &"--config",
            &file,
            &"--suite",
            &"blob",
            &"--expect",
            &common::expected("s3"),
        ],
        &[],
    );
    common::assert_green(&out);
}
