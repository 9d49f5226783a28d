//! Listing: prefixes, pages, cursors, order.

use strata_host::BlobMeta;

use super::support::{list_all, put_keys};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Blob,
            list_with_prefix,
            "list returns the objects whose key starts with the prefix, as plain text (prefix `a` matches `ab/3`), with their sizes (plugin-api `ListRequest::prefix`: \"not a directory\")."
        ),
        case!(
            Suite::Blob,
            keys_that_prefix_each_other,
            "Keys that are prefixes of one another (`x`, `x/y`, `x/y/z`, `xy`) are separate objects: each keeps its own bytes, lists and deletes alone (plugin-api `blob` module; rules: keys)."
        ),
        case!(
            Suite::Blob,
            list_paginates_over_1000_keys,
            "Following next_cursor visits every key once in pages no larger than the limit (and past the store's own page size of 1,000) (BlobStore::list, ListPage)."
        ),
        case!(
            Suite::Blob,
            list_pages_are_in_key_order,
            "Every page lists its objects in key order (byte order of the UTF-8 key) and each page continues after the previous one — the host does not sort pages for the plugin (plugin-api `ListPage`: \"in key order\")."
        ),
        case!(
            Suite::Blob,
            list_page_limits,
            "limit 1 gives pages of one object; a limit above the count gives one page; limit 0 is the store's default; a listing always ends (plugin-api `ListRequest::limit`)."
        ),
        case!(
            Suite::Blob,
            list_cursor_survives_changes_between_pages,
            "A cursor stays valid while keys are added and deleted between pages: every key present throughout is listed exactly once, in order, and the listing ends (rules: listing)."
        ),
    ]
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
    let want: Vec<String> = (0..N).map(|i| format!("{p}k{i:05}")).collect();
    put_keys(&b, &want).await?;
    // Explicit pages of 100: checked page by page, in the order they come.
    let (seen, sizes) = list_all(&b, &p, 100, 50).await?;
    ensure!(
        sizes.len() >= 11,
        "{N} keys in pages of 100 came in {} pages",
        sizes.len()
    );
    ensure_eq!(seen, want, "keys over all pages of 100");
    // The store's default page size (S3: at most 1,000) needs a cursor too.
    let (seen, _) = list_all(&b, &p, 0, 50).await?;
    ensure_eq!(
        seen.len(),
        N,
        "keys over all pages of the store's default size"
    );
    Ok(())
}

/// Keys that prefix one another are separate objects.
async fn keys_that_prefix_each_other(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let keys = ["x", "x/y", "x/y/z", "xy"];
    for k in keys {
        b.put(&format!("{p}{k}"), format!("content of {k}")).await?;
    }
    for k in keys {
        ensure_eq!(
            b.get(&format!("{p}{k}")).await?,
            format!("content of {k}").into_bytes(),
            "{k}: its own bytes"
        );
    }
    let rel = |v: Vec<BlobMeta>| -> Vec<String> {
        v.into_iter()
            .map(|m| m.key.strip_prefix(&p).unwrap_or(&m.key).to_string())
            .collect()
    };
    ensure_eq!(
        rel(b.list(&format!("{p}x")).await?),
        keys.to_vec(),
        "list x"
    );
    ensure_eq!(
        rel(b.list(&format!("{p}x/")).await?),
        vec!["x/y", "x/y/z"],
        "list x/"
    );
    b.delete(&format!("{p}x")).await?;
    ensure_eq!(
        rel(b.list(&p).await?),
        vec!["x/y", "x/y/z", "xy"],
        "after deleting x, its longer neighbours stay"
    );
    Ok(())
}

/// Pages are in key order, each after the previous one.
async fn list_pages_are_in_key_order(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    // Written in an order far from key order; byte order puts upper case
    // before lower case, `-` and `.` before digits, `~` after letters and
    // multi-byte characters last.
    let names = [
        "zeta", "Beta", "beta", "a0", "a-", "a.b", "é", "~tilde", "_under", "A", "a", "ab", "aa",
        "b/1", "b/0", "日本", "9", "10",
    ];
    let keys: Vec<String> = names.iter().map(|n| format!("{p}{n}")).collect();
    put_keys(&b, &keys).await?;
    let mut want = keys.clone();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for limit in [1u32, 3, 7, 0] {
        let (seen, _) = list_all(&b, &p, limit, 40)
            .await
            .map_err(|f| f.context(format!("pages of {limit}")))?;
        ensure_eq!(seen, want, "keys in pages of {limit}");
    }
    Ok(())
}

/// Limits shape the pages.
async fn list_page_limits(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let keys: Vec<String> = (0..15).map(|i| format!("{p}l{i:02}")).collect();
    put_keys(&b, &keys).await?;
    let (seen, sizes) = list_all(&b, &p, 1, 17).await?;
    ensure_eq!(seen, keys, "keys in pages of 1");
    ensure!(
        sizes.iter().all(|s| *s == 1)
            || (sizes.last() == Some(&0) && sizes[..sizes.len() - 1].iter().all(|s| *s == 1)),
        "pages of 1: sizes {sizes:?}"
    );
    let (seen, sizes) = list_all(&b, &p, 1000, 2).await?;
    ensure_eq!(seen, keys, "keys with a limit above the count");
    ensure_eq!(
        sizes[0],
        15,
        "the first page holds every key when the limit allows"
    );
    let (seen, _) = list_all(&b, &p, 0, 16).await?;
    ensure_eq!(seen, keys, "keys with the store's default limit");
    let (first, next) = b.list_page(&p, None, 15).await?;
    ensure_eq!(first.len(), 15, "a limit equal to the count");
    if let Some(c) = next {
        let (rest, end) = b.list_page(&p, Some(c), 15).await?;
        ensure!(
            rest.is_empty() && end.is_none(),
            "after a full last page: {} more keys, cursor {end:?}",
            rest.len()
        );
    }
    Ok(())
}

/// A cursor survives keys added and deleted between pages.
async fn list_cursor_survives_changes_between_pages(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let keys: Vec<String> = (0..100).map(|i| format!("{p}k{i:03}")).collect();
    put_keys(&b, &keys).await?;
    let (first, cursor) = b.list_page(&p, None, 30).await?;
    let first: Vec<String> = first.into_iter().map(|m| m.key).collect();
    ensure_eq!(first, keys[..30].to_vec(), "the first page");
    let cursor = cursor.ok_or_else(|| Failure::new("no cursor after the first of 4 pages"))?;
    // Between pages: delete keys before and after the cursor, add keys on
    // both sides.
    for i in (30..40).chain([5]) {
        b.delete(&keys[i]).await?;
    }
    for k in ["k029a", "k050a", "k100", "k000a"] {
        b.put(&format!("{p}{k}"), k).await?;
    }
    let mut rest: Vec<String> = Vec::new();
    let mut cursor = Some(cursor);
    let mut pages = 0;
    while let Some(c) = cursor {
        let (objects, next) = b.list_page(&p, Some(c), 30).await?;
        for o in objects {
            ensure!(
                rest.last().is_none_or(|l| l.as_bytes() < o.key.as_bytes())
                    && first
                        .last()
                        .is_some_and(|l| l.as_bytes() < o.key.as_bytes()),
                "{:?} is out of order after the cursor",
                o.key
            );
            rest.push(o.key);
        }
        cursor = next;
        pages += 1;
        ensure!(pages <= 10, "the listing did not end");
    }
    for k in &keys[40..] {
        ensure!(
            rest.iter().filter(|r| *r == k).count() == 1,
            "{k}, present throughout, is listed {} times after the cursor",
            rest.iter().filter(|r| *r == k).count()
        );
    }
    ensure!(
        !rest.iter().any(|r| first.contains(r)),
        "a key of the first page came again"
    );
    Ok(())
}
