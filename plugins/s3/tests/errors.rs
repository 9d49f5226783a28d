//! The S3 plugin loaded as a `.so`: config validation and error mapping.
//! Cases that need a server use the moto instance of `scripts/test`
//! (`S3_ENDPOINT` must be set; they fail rather than skip without it).

use std::path::Path;

use strata_host::{Backend, Error, ErrorKind, Plugin, loader::built_plugin};

fn plugin() -> std::sync::Arc<Plugin> {
    Plugin::load(built_plugin("s3").expect("run `cargo build --release -p strata-s3` first"))
        .unwrap()
}

async fn open(config: serde_json::Value) -> Result<Backend, Error> {
    Backend::open("archive", plugin(), Path::new("plugins.toml"), &config).await
}

fn endpoint() -> String {
    std::env::var("S3_ENDPOINT").expect(
        "S3_ENDPOINT is not set: start moto with `scripts/servers/moto.sh start && eval \"$(scripts/servers/moto.sh env)\"`",
    )
}

#[tokio::test]
async fn config_errors_name_the_key() {
    let e = open(serde_json::json!({ "bucket": "b", "endpoint": "http://example.com:9000" }))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    assert!(
        e.to_string().contains("endpoint") && e.to_string().contains("allow_http"),
        "{e}"
    );
    // allow_http opens it (no request is made at open).
    open(serde_json::json!({ "bucket": "b", "endpoint": "http://example.com:9000", "allow_http": true }))
        .await
        .unwrap();
    let e = open(serde_json::json!({ "bucket": "b", "endpoint": "ftp://127.0.0.1" }))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    // Schema validation: unknown keys and a missing bucket, named with the table.
    let e = open(serde_json::json!({ "bucket": "b", "bukket": "c" }))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("[backends.archive.config]") && e.to_string().contains("bukket"),
        "{e}"
    );
    let e = open(serde_json::json!({ "region": "x" }))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bucket"), "{e}");
    let e = open(serde_json::json!({ "bucket": "b", "part_size_mib": 1 }))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("part_size_mib"), "{e}");
}

#[tokio::test]
async fn unreachable_endpoint_is_a_connection_error() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let b = open(serde_json::json!({
        "bucket": "b", "endpoint": "http://127.0.0.1:9", "max_retries": 0,
        "access_key_id": "AKIDSECRETLOOKING", "secret_access_key": "very-secret-value",
    }))
    .await
    .unwrap();
    let e = b.blobs().unwrap().get("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(
        !e.to_string().contains("very-secret-value"),
        "the secret leaked: {e}"
    );
    let e = b.health().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    // https: the TLS client (rustls with this plugin's ring provider) is
    // built and fails on the refused connection, not on a missing provider.
    let b = open(
        serde_json::json!({ "bucket": "b", "endpoint": "https://127.0.0.1:9", "max_retries": 0 }),
    )
    .await
    .unwrap();
    let e = b.blobs().unwrap().head("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
}

#[tokio::test]
async fn missing_bucket_and_key_are_not_found_with_the_http_status() {
    let b = open(serde_json::json!({
        "bucket": "strata-no-such-bucket", "endpoint": endpoint(), "region": "us-east-1",
    }))
    .await
    .unwrap();
    let e = b.blobs().unwrap().put("k", "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        e.plugin_error().and_then(|p| p.backend_code()),
        Some("404"),
        "{e}"
    );
    assert!(e.to_string().contains("strata-no-such-bucket"), "{e}");

    let bucket = std::env::var("S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let b = open(
        serde_json::json!({ "bucket": bucket, "endpoint": endpoint(), "prefix": "plugin-tests/" }),
    )
    .await
    .unwrap();
    assert!(b.health().await.unwrap().contains("reachable"));
    let e = b.blobs().unwrap().get("no/such/key").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        e.plugin_error().and_then(|p| p.backend_code()),
        Some("404"),
        "{e}"
    );
    // Keys object_store would rewrite are refused rather than silently changed.
    for bad in ["a//b", "/lead", "trail/", "a/../b"] {
        let e = b.blobs().unwrap().put(bad, "x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
    }
}

#[tokio::test]
async fn the_manifest_lists_the_blob_contract_only() {
    let p = plugin();
    assert_eq!(p.info().contract_names(), vec!["blob"]);
    let b = open(serde_json::json!({ "bucket": "b" })).await.unwrap();
    let e = b.sql().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}
