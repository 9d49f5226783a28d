//! Whole objects: put, get, head, delete.

use strata_host::ErrorKind;

use super::support::{bytes, same_bytes};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq, expect_kind},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Blob,
            small_round_trip,
            "put stores the bytes under the key and reports their size; get returns them byte for byte, also under nested, dotted and non-ASCII keys (BlobStore::put, get; plugin-api `blob` module)."
        ),
        case!(
            Suite::Blob,
            empty_object_round_trip,
            "An empty object is an object: put, get, head and an empty multipart upload all work with size 0 (plugin-api `blob` module)."
        ),
        case!(
            Suite::Blob,
            overwrite_replaces_content,
            "put and a completed multipart upload replace the object under an existing key, size included (PutRequest: \"an existing object is replaced\")."
        ),
        case!(
            Suite::Blob,
            head_reports_size,
            "head reports the key as given, the size, and a last-modified time close to now when the store has one; a missing key is `not_found` (BlobStore::head)."
        ),
        case!(
            Suite::Blob,
            head_list_and_get_agree,
            "head, list and get agree on every object's key, size and entity tag (plugin-api `ObjectMeta`)."
        ),
        case!(
            Suite::Blob,
            get_missing_is_not_found,
            "get of a missing key, whole or ranged, is `not_found` (plugin-api `blob` module: \"A missing key is NotFound for get and head\")."
        ),
        case!(
            Suite::Blob,
            delete_removes_and_is_idempotent,
            "delete removes the object (get and head then `not_found`) and deleting a missing key succeeds (BlobStore::delete: \"deleting a missing key succeeds\")."
        ),
        case!(
            Suite::Blob,
            empty_key_is_rejected,
            "An empty key is `invalid_input` in put, get, head and delete (plugin-api `blob` module: keys are non-empty UTF-8 strings; rules: keys)."
        ),
        case!(
            Suite::Blob,
            concurrent_puts_and_gets_of_one_key,
            "While several tasks overwrite one key, every get returns one whole version — never a mix or a prefix — and head reports one of the versions' sizes (rules: objects)."
        ),
    ]
}

async fn small_round_trip(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let meta = b.put(&format!("{p}small.bin"), all_bytes.clone()).await?;
    ensure_eq!(meta.size, 1000, "put reports the size");
    same_bytes(&b.get(&format!("{p}small.bin")).await?, &all_bytes, "get")?;
    // Keys with nested segments, dots, dashes and non-ASCII letters.
    let key = format!("{p}nested/dir/ünïcode-name.v1.txt");
    b.put(&key, "héllo wörld").await?;
    ensure_eq!(b.get(&key).await?, "héllo wörld".as_bytes().to_vec());
    Ok(())
}

async fn empty_object_round_trip(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let key = format!("{}empty", ctx.key_prefix());
    let meta = b.put(&key, Vec::new()).await?;
    ensure_eq!(meta.size, 0);
    ensure_eq!(b.get(&key).await?, Vec::<u8>::new());
    ensure_eq!(b.head(&key).await?.size, 0);
    // An empty multipart upload is an empty object too.
    let key2 = format!("{}empty-multipart", ctx.key_prefix());
    let w = b.writer(&key2).await?;
    w.complete().await?;
    ensure_eq!(b.get(&key2).await?, Vec::<u8>::new());
    Ok(())
}

async fn overwrite_replaces_content(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let key = format!("{}over", ctx.key_prefix());
    b.put(&key, bytes(1, 5000)).await?;
    b.put(&key, bytes(2, 10)).await?;
    same_bytes(&b.get(&key).await?, &bytes(2, 10), "after a second put")?;
    ensure_eq!(b.head(&key).await?.size, 10);
    // A multipart upload replaces it too.
    let mut w = b.writer(&key).await?;
    w.write(bytes(3, 6 << 20)).await?;
    w.complete().await?;
    same_bytes(
        &b.get(&key).await?,
        &bytes(3, 6 << 20),
        "after a multipart put",
    )?;
    ensure_eq!(
        b.list(&ctx.key_prefix()).await?.len(),
        1,
        "one object listed"
    );
    Ok(())
}

async fn head_reports_size(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    b.put(&format!("{p}h"), bytes(4, 4321)).await?;
    let m = b.head(&format!("{p}h")).await?;
    ensure_eq!(m.size, 4321);
    ensure_eq!(m.key, format!("{p}h"), "head reports the key as given");
    if let Some(ms) = m.last_modified_ms {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        ensure!(
            (now - ms).abs() < 15 * 60 * 1000,
            "last_modified {ms} is not within 15 minutes of now ({now})"
        );
    }
    expect_kind(
        b.head(&format!("{p}missing")).await,
        ErrorKind::NotFound,
        "head of a missing key",
    )?;
    ensure!(!b.exists(&format!("{p}missing")).await?, "exists(missing)");
    Ok(())
}

async fn get_missing_is_not_found(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    expect_kind(
        b.get(&format!("{p}no/such/key")).await,
        ErrorKind::NotFound,
        "get of a missing key",
    )?;
    expect_kind(
        b.get_range(&format!("{p}no/such/key"), 0..10).await,
        ErrorKind::NotFound,
        "ranged get of a missing key",
    )
}

async fn delete_removes_and_is_idempotent(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    b.put(&format!("{p}d1"), "x").await?;
    b.put(&format!("{p}d2"), "y").await?;
    b.delete(&format!("{p}d1")).await?;
    expect_kind(
        b.get(&format!("{p}d1")).await,
        ErrorKind::NotFound,
        "get after delete",
    )?;
    expect_kind(
        b.head(&format!("{p}d1")).await,
        ErrorKind::NotFound,
        "head after delete",
    )?;
    b.delete(&format!("{p}d1")).await?;
    b.delete(&format!("{p}never-existed")).await?;
    let left: Vec<String> = b.list(&p).await?.into_iter().map(|m| m.key).collect();
    ensure_eq!(left, vec![format!("{p}d2")], "what is left");
    Ok(())
}

async fn empty_key_is_rejected(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    expect_kind(
        b.put("", "x").await,
        ErrorKind::InvalidInput,
        "put with an empty key",
    )?;
    expect_kind(
        b.get("").await,
        ErrorKind::InvalidInput,
        "get with an empty key",
    )?;
    expect_kind(
        b.head("").await,
        ErrorKind::InvalidInput,
        "head with an empty key",
    )?;
    expect_kind(
        b.delete("").await,
        ErrorKind::InvalidInput,
        "delete with an empty key",
    )?;
    expect_kind(
        b.writer("").await.map(|_| ()),
        ErrorKind::InvalidInput,
        "a multipart upload to an empty key",
    )?;
    Ok(())
}

/// head, list and get agree on key, size and etag.
async fn head_list_and_get_agree(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let sizes = [("a-empty", 0usize), ("b-one", 1), ("c-some", 70_000)];
    for (k, n) in sizes {
        b.put(&format!("{p}{k}"), bytes(n as u64, n)).await?;
    }
    let listed = b.list(&p).await?;
    ensure_eq!(listed.len(), 3, "objects listed");
    for ((k, n), l) in sizes.iter().zip(&listed) {
        let key = format!("{p}{k}");
        let h = b.head(&key).await?;
        ensure_eq!(l.key, key, "listed key");
        ensure_eq!(h.key, key, "head key");
        ensure_eq!(
            (h.size, l.size),
            (*n as u64, *n as u64),
            "{k}: head and list sizes"
        );
        ensure_eq!(b.get(&key).await?.len(), *n, "{k}: bytes read");
        if let (Some(he), Some(le)) = (&h.etag, &l.etag) {
            ensure_eq!(
                he.trim_matches('"'),
                le.trim_matches('"'),
                "{k}: entity tags of head and list"
            );
        }
    }
    Ok(())
}

/// Readers of a key being overwritten see whole versions only.
async fn concurrent_puts_and_gets_of_one_key(ctx: Ctx) -> CaseResult {
    let b = std::sync::Arc::new(ctx.blobs().await?);
    let key = format!("{}contended", ctx.key_prefix());
    let versions = std::sync::Arc::new([bytes(101, 1 << 20), bytes(102, 300_000)]);
    b.put(&key, versions[0].clone()).await?;
    let mut tasks = Vec::new();
    for w in 0..3usize {
        let (b, key, versions) = (b.clone(), key.clone(), versions.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                b.put(&key, versions[(w + i) % 2].clone()).await?;
            }
            Ok::<(), Failure>(())
        }));
    }
    for r in 0..3usize {
        let (b, key, versions) = (b.clone(), key.clone(), versions.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let got = b.get(&key).await?;
                ensure!(
                    versions.contains(&got),
                    "reader {r}, read {i}: {} bytes that are neither version (1 MiB or 300,000 bytes) whole",
                    got.len()
                );
                let size = b.head(&key).await?.size;
                ensure!(
                    size == versions[0].len() as u64 || size == versions[1].len() as u64,
                    "reader {r}, read {i}: head reports {size} bytes"
                );
            }
            Ok::<(), Failure>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Failure::new(format!("a task panicked: {e}")))??;
    }
    let last = b.get(&key).await?;
    ensure!(
        versions.contains(&last),
        "the final object is not a whole version"
    );
    Ok(())
}
