//! What a key may hold.

use strata_host::ErrorKind;

use super::support::bytes;
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, accepted_or_refused, ensure, ensure_eq, expect_kind},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Blob,
            keys_with_special_characters,
            "Keys are UTF-8 strings: spaces, `%`, `+`, `?`, `#`, emoji, `<&'\"` and other printable characters round-trip through put, get, head, list and delete unchanged (plugin-api `blob` module; rules: keys)."
        ),
        case!(
            Suite::Blob,
            keys_are_stored_verbatim_or_refused,
            "A key the store cannot keep as is (empty segments, `.`/`..` segments, leading or trailing `/`, control characters) is refused with `invalid_input` — never stored under another, normalised key (rules: keys)."
        ),
        case!(
            Suite::Blob,
            key_of_1024_bytes,
            "A key of exactly 1,024 bytes (multi-byte characters included) is valid and round-trips (plugin-api `blob` module: \"Keys are UTF-8 strings up to 1,024 bytes\")."
        ),
        case!(
            Suite::Blob,
            key_over_1024_bytes_is_refused,
            "A key over 1,024 bytes is `invalid_input` in put, get, head and multipart, and nothing is stored (plugin-api `blob` module; rules: keys)."
        ),
    ]
}

/// Puts, reads, heads, lists and deletes `key`, expecting it to work.
async fn round_trip_key(b: &strata_host::Blobs, prefix: &str, key: &str) -> CaseResult {
    let shown = if key.len() > 80 {
        let cut = (0..=60)
            .rev()
            .find(|i| key.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{:?}… ({} bytes)", &key[..cut], key.len())
    } else {
        format!("{key:?}")
    };
    let what = |op: &str| format!("{op} of the key {shown}");
    let data = format!("content of {key}").into_bytes();
    b.put(key, data.clone())
        .await
        .map_err(|e| Failure::from(e).context(what("put")))?;
    ensure_eq!(
        b.get(key)
            .await
            .map_err(|e| Failure::from(e).context(what("get")))?,
        data,
        "{}",
        what("get")
    );
    let h = b
        .head(key)
        .await
        .map_err(|e| Failure::from(e).context(what("head")))?;
    ensure_eq!(h.key, key, "{}", what("head"));
    let listed: Vec<String> = b
        .list(prefix)
        .await?
        .into_iter()
        .map(|m| m.key)
        .filter(|k| k == key)
        .collect();
    ensure_eq!(
        listed.len(),
        1,
        "{}: listed exactly once under its own name",
        what("list")
    );
    b.delete(key)
        .await
        .map_err(|e| Failure::from(e).context(what("delete")))?;
    expect_kind(
        b.head(key).await,
        ErrorKind::NotFound,
        &what("head after delete"),
    )
}

/// Printable characters of every kind work in keys.
async fn keys_with_special_characters(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let names = [
        "with space",
        "two  spaces and trailing space ",
        "100% sure %20 %zz",
        "plus+equals=&amp",
        "question?hash#fragment",
        "emoji 🦀🧠 and ünïcödé 日本語",
        "<tag attr='v'>&'\"",
        "tilde~caret^backtick`",
        "comma,semicolon;colon:at@dollar$",
        "brackets[]{}()",
        "pipe|backslash\\star*",
        "dots...and-dashes--",
    ];
    let mut problems = Vec::new();
    for n in names {
        if let Err(f) = round_trip_key(&b, &p, &format!("{p}{n}")).await {
            problems.push(f.into_message());
        }
    }
    ensure!(
        problems.is_empty(),
        "{} of {} keys failed:\n  {}",
        problems.len(),
        names.len(),
        problems.join("\n  ")
    );
    Ok(())
}

/// Keys the store would change are refused, never normalised.
async fn keys_are_stored_verbatim_or_refused(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let odd = [
        "a//b",
        "/lead",
        "trail/",
        "a/./b",
        "a/../b",
        ".",
        "..",
        "ctrl\u{1}char",
        "tab\tkey",
        "new\nline",
        "nul\u{0}byte",
        "del\u{7f}",
    ];
    let mut accepted = Vec::new();
    for n in odd {
        let key = format!("{p}{n}");
        let what = format!("put of the key {key:?}");
        if accepted_or_refused(b.put(&key, n.as_bytes().to_vec()).await, &what)?.is_some() {
            ensure_eq!(
                b.get(&key).await.map_err(
                    |e| Failure::from(e).context(format!("get of the accepted key {key:?}"))
                )?,
                n.as_bytes().to_vec(),
                "get of the accepted key {key:?}"
            );
            ensure_eq!(b.head(&key).await?.key, key, "head of the accepted key");
            accepted.push(key);
        }
    }
    let mut listed: Vec<String> = b.list(&p).await?.into_iter().map(|m| m.key).collect();
    listed.sort();
    accepted.sort();
    ensure_eq!(
        listed,
        accepted,
        "keys listed must be exactly the accepted keys, verbatim (a refused key must store nothing, an accepted one nothing else)"
    );
    Ok(())
}

/// `prefix` followed by filler to exactly `len` bytes, with multi-byte
/// characters in it.
fn key_of(prefix: &str, len: usize) -> String {
    let mut k = format!("{prefix}long-");
    while k.len() + 2 < len {
        k.push('é');
    }
    while k.len() < len {
        k.push('x');
    }
    k
}

/// A key of exactly 1,024 bytes works.
async fn key_of_1024_bytes(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    let key = key_of(&p, 1024);
    ensure_eq!(key.len(), 1024, "test key size");
    round_trip_key(&b, &p, &key).await?;
    let mut w = b.writer(&key).await?;
    w.write(bytes(3, 1000)).await?;
    w.complete().await?;
    ensure_eq!(
        b.get(&key).await?,
        bytes(3, 1000),
        "a multipart upload to a 1,024-byte key"
    );
    Ok(())
}

/// A key over 1,024 bytes is refused.
async fn key_over_1024_bytes_is_refused(ctx: Ctx) -> CaseResult {
    let b = ctx.blobs().await?;
    let p = ctx.key_prefix();
    for len in [1025usize, 4096] {
        let key = key_of(&p, len);
        ensure_eq!(key.len(), len, "test key size");
        let what = |op: &str| format!("{op} with a {len}-byte key");
        expect_kind(
            b.put(&key, "x").await,
            ErrorKind::InvalidInput,
            &what("put"),
        )?;
        expect_kind(b.get(&key).await, ErrorKind::InvalidInput, &what("get"))?;
        expect_kind(b.head(&key).await, ErrorKind::InvalidInput, &what("head"))?;
        expect_kind(
            b.writer(&key).await.map(|_| ()),
            ErrorKind::InvalidInput,
            &what("a multipart upload"),
        )?;
    }
    ensure!(
        b.list(&p).await?.is_empty(),
        "a refused key stored something"
    );
    Ok(())
}
