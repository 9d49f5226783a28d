//! Ranged reads.

use super::support::{bytes, same_bytes};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, accepted_or_refused, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Blob,
            ranged_get,
            "A ranged get returns exactly bytes [start, end) and the whole object's metadata (size = the full size); an end past the object is clamped (plugin-api `ByteRange`, `GetResponse`)."
        ),
        case!(
            Suite::Blob,
            ranges_at_the_edges,
            "Ranges touching the first and last byte, one byte long, and covering the whole object return exactly those bytes (plugin-api `ByteRange`)."
        ),
        case!(
            Suite::Blob,
            open_ended_range_reads_the_tail,
            "A range ending at u64::MAX reads from its start to the end of the object (the end is clamped): how to read the last N bytes, as the contract has no suffix ranges (plugin-api `ByteRange`; rules: ranges)."
        ),
        case!(
            Suite::Blob,
            range_starting_past_the_end,
            "A range starting at or past the end of the object returns no bytes or is `invalid_input` — never data, never another error kind (S3 answers 416) (rules: ranges)."
        ),
        case!(
            Suite::Blob,
            empty_and_reversed_ranges,
            "An empty range (start = end) returns no bytes, a reversed one (start > end) no bytes or `invalid_input` — never the whole object, which is what S3 does with a range header it cannot parse (rules: ranges)."
        ),
    ]
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

/// A 1,000-byte object under the case's prefix.
async fn thousand(ctx: &Ctx) -> Result<(strata_host::Blobs, String, Vec<u8>), Failure> {
    let b = ctx.blobs().await?;
    let key = format!("{}r1000", ctx.key_prefix());
    let data = bytes(9, 1000);
    b.put(&key, data.clone()).await?;
    Ok((b, key, data))
}

/// Exact bytes at the edges of the object.
async fn ranges_at_the_edges(ctx: Ctx) -> CaseResult {
    let (b, key, data) = thousand(&ctx).await?;
    for r in [0..1u64, 999..1000, 0..1000, 1..999, 500..501] {
        let (meta, part) = b.get_range(&key, r.clone()).await?;
        ensure_eq!(meta.size, 1000, "range {r:?}: the whole size");
        same_bytes(
            &part,
            &data[r.start as usize..r.end as usize],
            &format!("range {r:?}"),
        )?;
    }
    Ok(())
}

/// A range to u64::MAX reads the tail.
async fn open_ended_range_reads_the_tail(ctx: Ctx) -> CaseResult {
    let (b, key, data) = thousand(&ctx).await?;
    for start in [0u64, 990, 999] {
        let (meta, part) = b.get_range(&key, start..u64::MAX).await?;
        ensure_eq!(meta.size, 1000, "range {start}..u64::MAX: the whole size");
        same_bytes(
            &part,
            &data[start as usize..],
            &format!("range {start}..u64::MAX"),
        )?;
    }
    Ok(())
}

/// Out-of-bounds starts read nothing.
async fn range_starting_past_the_end(ctx: Ctx) -> CaseResult {
    let (b, key, _) = thousand(&ctx).await?;
    for r in [
        1000..1001u64,
        1000..2000,
        5000..6000,
        u64::MAX - 1..u64::MAX,
    ] {
        let what = format!("range {r:?} of a 1,000-byte object");
        if let Some((_, part)) = accepted_or_refused(b.get_range(&key, r).await, &what)? {
            ensure!(part.is_empty(), "{what}: {} bytes returned", part.len());
        }
    }
    let empty = format!("{}empty", ctx.key_prefix());
    b.put(&empty, Vec::new()).await?;
    if let Some((meta, part)) = accepted_or_refused(
        b.get_range(&empty, 0..10).await,
        "range 0..10 of an empty object",
    )? {
        ensure!(
            part.is_empty() && meta.size == 0,
            "range 0..10 of an empty object: {} bytes, size {}",
            part.len(),
            meta.size
        );
    }
    Ok(())
}

/// Empty and reversed ranges never read the whole object.
async fn empty_and_reversed_ranges(ctx: Ctx) -> CaseResult {
    let (b, key, _) = thousand(&ctx).await?;
    for r in [0..0u64, 500..500, 999..999] {
        let what = format!("empty range {r:?}");
        if let Some((meta, part)) = accepted_or_refused(b.get_range(&key, r).await, &what)? {
            ensure!(part.is_empty(), "{what}: {} bytes returned", part.len());
            ensure_eq!(meta.size, 1000, "{what}: the whole size");
        }
    }
    #[allow(clippy::reversed_empty_ranges)]
    for r in [10..5u64, 999..0] {
        let what = format!("reversed range {r:?}");
        if let Some((_, part)) = accepted_or_refused(b.get_range(&key, r).await, &what)? {
            ensure!(part.is_empty(), "{what}: {} bytes returned", part.len());
        }
    }
    Ok(())
}
