//! The blob-store contract suite.
//!
//! Every case works under its own key prefix ([`Ctx::key_prefix`]), which
//! the runner empties afterwards, so cases never see each other's objects
//! and a shared bucket stays clean. Expected bytes are generated here from a
//! seed and compared byte for byte (large objects by SHA-free full compare,
//! reporting the first differing offset).

use std::collections::BTreeSet;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_host::{Blobs, ErrorKind};

use crate::{
    ensure, ensure_eq,
    runner::{Case, CaseResult, Ctx, Failure, Suite, expect_kind},
};

macro_rules! case {
    ($name:ident $(, $req:expr)* $(,)?) => {
        Case {
            suite: Suite::Blob,
            name: stringify!($name),
            requires: &[$($req),*],
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

/// Every blob case, in run order.
pub fn cases() -> Vec<Case> {
    vec![
        case!(small_round_trip),
        case!(empty_object_round_trip),
        case!(multipart_20mb_round_trip),
        case!(overwrite_replaces_content),
        case!(head_reports_size),
        case!(get_missing_is_not_found),
        case!(ranged_get),
        case!(list_with_prefix),
        case!(list_paginates_over_1000_keys),
        case!(delete_removes_and_is_idempotent),
        case!(aborted_multipart_leaves_no_object),
        case!(empty_key_is_rejected),
    ]
}

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

fn same_bytes(got: &[u8], want: &[u8], what: &str) -> CaseResult {
    if got.len() != want.len() {
        return Err(Failure::new(format!(
            "{what}: {} bytes read back, {} written",
            got.len(),
            want.len()
        )));
    }
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        return Err(Failure::new(format!(
            "{what}: first difference at byte {i} of {}",
            want.len()
        )));
    }
    Ok(())
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

async fn multipart_20mb_round_trip(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let key = format!("{}big.bin", ctx.key_prefix());
    let data = bytes(20, 20 * 1024 * 1024 + 12_345);
    // Uneven part sizes (1 byte to 7 MiB): the plugin must re-chunk.
    let sizes = [1usize, 3 << 20, 7 << 20, 100, 5 << 20];
    let mut w = b.writer(&key).await?;
    let mut at = 0;
    for s in sizes.iter().cycle() {
        if at >= data.len() {
            break;
        }
        let end = (at + s).min(data.len());
        w.write(data[at..end].to_vec()).await?;
        at = end;
    }
    ensure!(
        !b.exists(&key).await?,
        "the object is visible before complete"
    );
    let meta = w.complete().await?;
    ensure_eq!(meta.size, data.len() as u64, "complete reports the size");
    ensure_eq!(b.head(&key).await?.size, data.len() as u64, "head size");
    same_bytes(&b.get(&key).await?, &data, "whole get")?;
    // The ranged, parallel download reassembles the same bytes.
    let mut streamed = Vec::with_capacity(data.len());
    b.download(&key, |chunk| {
        streamed.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    same_bytes(&streamed, &data, "ranged download")?;
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

async fn ranged_get(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let key = format!("{}r", ctx.key_prefix());
    let data = bytes(5, 100_000);
    b.put(&key, data.clone()).await?;
    let (meta, part) = b.get_range(&key, 1000..2500).await?;
    ensure_eq!(meta.size, 100_000, "ranged get reports the whole size");
    same_bytes(&part, &data[1000..2500], "range 1000..2500")?;
    let (_, tail) = b.get_range(&key, 99_990..200_000).await?;
    same_bytes(&tail, &data[99_990..], "a range past the end is clamped")?;
    Ok(())
}

async fn list_with_prefix(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    for k in ["a/1", "a/2", "ab/3", "b/1", "a/sub/4"] {
        b.put(&format!("{p}{k}"), k).await?;
    }
    let keys = |v: Vec<strata_host::BlobMeta>| -> Vec<String> {
        v.into_iter()
            .map(|m| m.key.strip_prefix(&p).unwrap_or(&m.key).to_string())
            .collect()
    };
    ensure_eq!(
        keys(b.list(&format!("{p}a/")).await?),
        vec!["a/1", "a/2", "a/sub/4"],
        "list a/"
    );
    // A prefix is plain text, not a directory.
    ensure_eq!(
        keys(b.list(&format!("{p}a")).await?),
        vec!["a/1", "a/2", "a/sub/4", "ab/3"],
        "list a"
    );
    ensure_eq!(keys(b.list(&p).await?).len(), 5, "list everything");
    ensure_eq!(
        keys(b.list(&format!("{p}zzz")).await?),
        Vec::<String>::new(),
        "list of an unused prefix"
    );
    let sizes: Vec<u64> = b
        .list(&format!("{p}b/"))
        .await?
        .iter()
        .map(|m| m.size)
        .collect();
    ensure_eq!(sizes, vec![3], "listing reports sizes");
    Ok(())
}

async fn list_paginates_over_1000_keys(ctx: Ctx) -> CaseResult {
    const N: usize = 1_050;
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let want: BTreeSet<String> = (0..N).map(|i| format!("{p}k{i:05}")).collect();
    stream::iter(want.iter().cloned())
        .map(|k| {
            let b: &Blobs = &b;
            async move { b.put(&k, k.as_bytes().to_vec()).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    // Explicit pages of 100.
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let (objects, next) = b.list_page(&p, cursor, 100).await?;
        pages += 1;
        ensure!(
            objects.len() <= 100,
            "page {pages} has {} objects, limit was 100",
            objects.len()
        );
        seen.extend(objects.into_iter().map(|m| m.key));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        ensure!(
            pages <= 50,
            "more than 50 pages for {N} keys: the cursor does not advance"
        );
    }
    ensure!(
        pages >= 11,
        "{N} keys in pages of 100 came in {pages} pages"
    );
    ensure_eq!(seen.len(), N, "keys seen over all pages (duplicates count)");
    ensure!(
        seen.iter().cloned().collect::<BTreeSet<_>>() == want,
        "the pages do not hold exactly the keys written"
    );
    // The store's default page size (S3: at most 1,000) needs a cursor too.
    let all = b.list(&p).await?;
    ensure_eq!(all.len(), N, "list() following cursors");
    ensure!(
        all.windows(2).all(|w| w[0].key < w[1].key),
        "list() is not in key order"
    );
    Ok(())
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

async fn aborted_multipart_leaves_no_object(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let mut w = b.writer(&format!("{p}aborted")).await?;
    w.write(bytes(6, 6 << 20)).await?;
    w.abort().await?;
    ensure!(
        !b.exists(&format!("{p}aborted")).await?,
        "an aborted upload created the object"
    );
    // Aborting keeps the previous content of an existing key.
    b.put(&format!("{p}kept"), "old").await?;
    let mut w = b.writer(&format!("{p}kept")).await?;
    w.write(bytes(7, 6 << 20)).await?;
    w.abort().await?;
    ensure_eq!(b.get(&format!("{p}kept")).await?, b"old".to_vec());
    // A writer dropped without complete leaves nothing either.
    let mut w = b.writer(&format!("{p}dropped")).await?;
    w.write(bytes(8, 1024)).await?;
    drop(w);
    ensure!(
        !b.exists(&format!("{p}dropped")).await?,
        "a dropped upload created the object"
    );
    Ok(())
}

async fn empty_key_is_rejected(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    expect_kind(
        b.put("", "x").await,
        ErrorKind::InvalidInput,
        "put with an empty key",
    )
}
