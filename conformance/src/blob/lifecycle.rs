//! The store after close, and calls abandoned mid-flight.

use std::time::Duration;

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
            calls_after_close_are_closed,
            "After the backend is closed, every blob call — put, get, head, list, delete, opening a writer, writing to one opened before — fails with `closed` (kit `Plugin::close`: \"every handle it gave out answers closed after\")."
        ),
        case!(
            Suite::Blob,
            cancelled_put_leaves_no_partial_object,
            "A put or multipart upload abandoned mid-flight (a caller's timeout) leaves either no object or the whole object, never part of it, and the key can be written again at once (rules: cancellation)."
        ),
    ]
}

/// Every blob call after close is `closed`.
async fn calls_after_close_are_closed(ctx: Ctx) -> CaseResult {
    let p = ctx.key_prefix();
    let backend = ctx.backend().await?;
    let b = backend.blobs()?;
    b.put(&format!("{p}kept"), "kept").await?;
    let mut open_writer = b.writer(&format!("{p}unfinished")).await?;
    open_writer.write(bytes(1, 1000)).await?;
    backend.close().await?;
    let key = format!("{p}kept");
    expect_kind(b.put(&key, "x").await, ErrorKind::Closed, "put after close")?;
    expect_kind(b.get(&key).await, ErrorKind::Closed, "get after close")?;
    expect_kind(b.head(&key).await, ErrorKind::Closed, "head after close")?;
    expect_kind(
        b.list_page(&p, None, 10).await,
        ErrorKind::Closed,
        "list after close",
    )?;
    expect_kind(
        b.delete(&key).await,
        ErrorKind::Closed,
        "delete after close",
    )?;
    expect_kind(
        b.writer(&format!("{p}late")).await.map(|_| ()),
        ErrorKind::Closed,
        "opening a writer after close",
    )?;
    let r = open_writer.write(bytes(2, 1000)).await;
    expect_kind(
        r,
        ErrorKind::Closed,
        "writing to a writer opened before close",
    )?;
    let again = ctx.blobs().await?;
    ensure_eq!(
        again.get(&key).await?,
        b"kept".to_vec(),
        "the object after the refused calls"
    );
    ensure!(
        !again.exists(&format!("{p}unfinished")).await?,
        "an upload cut by close became an object"
    );
    Ok(())
}

/// Abandoned puts leave nothing partial.
async fn cancelled_put_leaves_no_partial_object(ctx: Ctx) -> CaseResult {
    let limit = Duration::from_secs(30);
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let data = bytes(61, 12 << 20);
    let key = format!("{p}put");
    let _ = tokio::time::timeout(Duration::from_millis(2), b.put(&key, data.clone())).await;
    match tokio::time::timeout(limit, b.get(&key)).await {
        Err(_) => {
            return Err(Failure::new(
                "get after an abandoned put did not answer within 30 s",
            ));
        }
        Ok(Err(e)) if e.kind() == ErrorKind::NotFound => {}
        Ok(Err(e)) => return Err(Failure::from(e).context("get after an abandoned put")),
        Ok(Ok(got)) => same_bytes(&got, &data, "the object of an abandoned put")?,
    }
    // An upload abandoned between parts: dropped, so aborted.
    let key2 = format!("{p}multipart");
    let abandoned = tokio::time::timeout(Duration::from_millis(50), async {
        let mut w = b.writer(&key2).await?;
        loop {
            w.write(bytes(62, 5 << 20)).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), strata_host::Error>(())
    })
    .await;
    if let Ok(Err(e)) = abandoned {
        return Err(Failure::from(e).context("the multipart upload before it was abandoned"));
    }
    ensure!(
        !b.exists(&key2).await?,
        "an abandoned multipart upload became an object"
    );
    // The keys can be written again at once.
    for k in [&key, &key2] {
        tokio::time::timeout(limit, b.put(k, "again"))
            .await
            .map_err(|_| {
                Failure::new(format!(
                    "put to {k} after an abandoned upload did not finish within 30 s"
                ))
            })??;
        ensure_eq!(b.get(k).await?, b"again".to_vec(), "{k} written again");
    }
    Ok(())
}
