//! What the blob cases share: seeded bytes and byte-for-byte comparison.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::failure::{CaseResult, Failure};

pub(super) fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

pub(super) fn same_bytes(got: &[u8], want: &[u8], what: &str) -> CaseResult {
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

/// Puts each key (its own name as content), 32 at a time.
pub(super) async fn put_keys(b: &strata_host::Blobs, keys: &[String]) -> CaseResult {
    use futures_util::{StreamExt as _, TryStreamExt as _, stream};
    stream::iter(keys.iter().cloned())
        .map(|k| async move { b.put(&k, k.as_bytes().to_vec()).await })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Follows the cursors of `prefix` with pages of `limit` to the end,
/// checking the contract of every page: no more than `limit` objects, in
/// key order, each page after the previous one, no empty page with a
/// cursor, ending within `max_pages`. Returns the keys and page sizes.
pub(super) async fn list_all(
    b: &strata_host::Blobs,
    prefix: &str,
    limit: u32,
    max_pages: usize,
) -> Result<(Vec<String>, Vec<usize>), Failure> {
    let mut keys: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    loop {
        let (objects, next) = b.list_page(prefix, cursor, limit).await?;
        let n = sizes.len() + 1;
        if limit > 0 && objects.len() > limit as usize {
            return Err(Failure::new(format!(
                "page {n} has {} objects, the limit was {limit}",
                objects.len()
            )));
        }
        if objects.is_empty() && next.is_some() {
            return Err(Failure::new(format!(
                "page {n} is empty but has a cursor: a listing must make progress or end"
            )));
        }
        sizes.push(objects.len());
        for o in objects {
            if let Some(last) = keys.last()
                && last.as_bytes() >= o.key.as_bytes()
            {
                return Err(Failure::new(format!(
                    "page {n}: {:?} listed after {last:?}: pages must be in key order, each after the previous one",
                    o.key
                )));
            }
            keys.push(o.key);
        }
        if sizes.len() > max_pages {
            return Err(Failure::new(format!(
                "the listing did not end after {max_pages} pages"
            )));
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok((keys, sizes)),
        }
    }
}
