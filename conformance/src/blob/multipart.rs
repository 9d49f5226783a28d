//! Multipart uploads.

use super::support::{bytes, same_bytes};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Blob,
            multipart_20mb_round_trip,
            "A multipart upload of 20 MiB in uneven parts (1 byte to 7 MiB; the plugin re-chunks) is invisible before complete, then reads back byte for byte, whole and by ranges (plugin-api `BlobWriter`)."
        ),
        case!(
            Suite::Blob,
            multipart_many_small_parts,
            "2,000 writes of 4 KiB each make one 8 MiB object: the plugin buffers small writes into parts its store accepts (plugin-api `BlobWriter::write_part`: \"any size; the plugin re-chunks\")."
        ),
        case!(
            Suite::Blob,
            aborted_multipart_leaves_no_object,
            "abort (and dropping a writer without complete) leaves no object, and an existing key keeps its previous content (plugin-api `BlobWriter::abort`)."
        ),
        case!(
            Suite::Blob,
            concurrent_multipart_uploads_to_one_key,
            "Two multipart uploads to one key, interleaved, both complete; the object is then one of the two whole uploads, never a mix of their parts; a third, aborted, changes nothing (rules: objects)."
        ),
        case!(
            Suite::Blob,
            open_uploads_are_listed_and_aborted,
            "With the optional interface `strata.blob.uploads.v1`: an upload left open (its writer never completed, aborted or dropped, as a killed process leaves it) is listed under its prefix with its key, a completed one is not, and abort_upload removes it, twice without error, leaving no object (plugin-api `blob::BlobUploads`; skipped when the plugin does not offer the interface)."
        ),
    ]
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

/// Many small writes make one object.
async fn multipart_many_small_parts(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let key = format!("{}small-parts", ctx.key_prefix());
    let data = bytes(44, 2_000 * 4096);
    let mut w = b.writer(&key).await?;
    for chunk in data.chunks(4096) {
        w.write(chunk.to_vec()).await?;
    }
    let meta = w.complete().await?;
    ensure_eq!(meta.size, data.len() as u64, "complete reports the size");
    same_bytes(
        &b.get(&key).await?,
        &data,
        "the object of 2,000 small writes",
    )
}

/// Two interleaved uploads to one key: one wins whole.
async fn concurrent_multipart_uploads_to_one_key(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let key = format!("{}contended", ctx.key_prefix());
    let part = 5 << 20;
    let a = bytes(51, 2 * part + 100);
    let c = bytes(52, 2 * part + 7_000);
    let mut wa = b.writer(&key).await?;
    let mut wc = b.writer(&key).await?;
    let mut wx = b.writer(&key).await?;
    wa.write(a[..part].to_vec()).await?;
    wc.write(c[..part].to_vec()).await?;
    wx.write(bytes(53, part)).await?;
    wa.write(a[part..].to_vec()).await?;
    wc.write(c[part..].to_vec()).await?;
    wx.abort().await?;
    ensure!(
        !b.exists(&key).await?,
        "the object is visible before any upload completed"
    );
    let ma = wa.complete().await?;
    ensure_eq!(ma.size, a.len() as u64, "the first upload's size");
    let mc = wc.complete().await?;
    ensure_eq!(mc.size, c.len() as u64, "the second upload's size");
    let got = b.get(&key).await?;
    ensure!(
        got == a || got == c,
        "the object ({} bytes) is neither upload whole (first differs at {:?}, second at {:?})",
        got.len(),
        got.iter().zip(&a).position(|(x, y)| x != y),
        got.iter().zip(&c).position(|(x, y)| x != y)
    );
    ensure_eq!(
        b.head(&key).await?.size,
        got.len() as u64,
        "head agrees with the bytes"
    );
    Ok(())
}

async fn open_uploads_are_listed_and_aborted(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let prefix = ctx.key_prefix();
    let Some(before) = b.pending_uploads(&prefix).await? else {
        return Err(Failure::skip(
            "the plugin does not offer the interface strata.blob.uploads.v1 (optional)",
        ));
    };
    ensure!(
        before.is_empty(),
        "open uploads under a fresh prefix: {before:?}"
    );
    let (left, done) = (format!("{prefix}left.bin"), format!("{prefix}done.bin"));
    let data = bytes(31, 6 << 20);
    let mut w = b.writer(&left).await?;
    w.write(data.clone()).await?;
    // What a killed process leaves: the writer is never completed, aborted
    // or dropped.
    std::mem::forget(w);
    let mut w = b.writer(&done).await?;
    w.write(data).await?;
    w.complete().await?;
    let open = b
        .pending_uploads(&prefix)
        .await?
        .ok_or_else(|| Failure::new("the interface went away"))?;
    let keys: Vec<&str> = open.iter().map(|u| u.key.as_str()).collect();
    ensure_eq!(
        keys,
        vec![left.as_str()],
        "open uploads (the completed one must not be listed)"
    );
    ensure!(!open[0].upload_id.is_empty(), "an upload without an id");
    b.abort_upload(&open[0]).await?;
    b.abort_upload(&open[0]).await?;
    let after = b
        .pending_uploads(&prefix)
        .await?
        .ok_or_else(|| Failure::new("the interface went away"))?;
    ensure!(after.is_empty(), "still open after abort: {after:?}");
    ensure!(!b.exists(&left).await?, "an aborted upload left an object");
    ensure!(
        b.exists(&done).await?,
        "the completed upload's object is gone"
    );
    Ok(())
}
