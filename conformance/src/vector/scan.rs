//! Scans: paging through a collection with a cursor.

use std::collections::HashSet;

use serde_json::json;
use strata_host::{ErrorKind, Include, Metric, Record, Vectors};
use strata_plugin_api::capabilities as cap;

use super::support::store_with;
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Vector,
            scan_pages_through_everything,
            "With `vector.scan`, following next_cursor visits every record exactly once, with and without a filter, in pages no larger than the limit, and ends with no cursor (plugin-api `ScanRequest`, `ScanPage`).",
            cap::VECTOR_SCAN
        ),
        case!(
            Suite::Vector,
            scan_exact_page_boundaries,
            "When the records fill the last page exactly, the scan still ends: either that page has no cursor, or the next page is empty with no cursor — never an endless or repeating scan (plugin-api `ScanPage::next_cursor`; rules: scans).",
            cap::VECTOR_SCAN
        ),
        case!(
            Suite::Vector,
            scan_limit_zero,
            "Scan with limit 0 is either `invalid_input` or pages that make progress (at least one record while records remain) and visit every record once; never an empty page with a cursor (rules: scans).",
            cap::VECTOR_SCAN
        ),
        case!(
            Suite::Vector,
            scan_with_a_bogus_cursor,
            "A cursor the backend never issued is either `invalid_input` or read as a position: the scan then continues without error, returns no record twice and ends (rules: scans).",
            cap::VECTOR_SCAN
        ),
        case!(
            Suite::Vector,
            scan_include_flags,
            "Scanned records carry vector, metadata and text exactly when asked (include flags), with score 0 (plugin-api `ScanRequest::include`, `ScanPage`).",
            cap::VECTOR_SCAN
        ),
    ]
}

/// Scan pages through every record exactly once, with and without a filter.
async fn scan_pages_through_everything(ctx: Ctx) -> CaseResult {
    let (v, c) = store_with(&ctx, "scan", 2, Metric::Dot).await?;
    v.upsert(
        &c,
        (0..250).map(|i| {
            Record::new(format!("s{i}"), vec![i as f32, 1.0]).metadata(json!({"even": i % 2 == 0}))
        }),
    )
    .await?;
    for (filter, expect) in [(None, 250usize), (Some(json!({"even": true})), 125)] {
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = v
                .scan(
                    &c,
                    cursor.as_deref(),
                    100,
                    filter.as_ref(),
                    Include::default(),
                )
                .await?;
            ensure!(page.records.len() <= 100, "page larger than the limit");
            for r in &page.records {
                ensure!(seen.insert(r.id.clone()), "{} returned twice", r.id);
            }
            pages += 1;
            ensure!(pages < 10, "scan does not end");
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        ensure_eq!(seen.len(), expect, "records scanned with {filter:?}");
    }
    Ok(())
}

/// `n` records `s000…`, metadata `{"i": i}`, text `text i`.
async fn filled(ctx: &Ctx, name: &str, n: usize) -> Result<(Vectors, String), Failure> {
    let (v, c) = store_with(ctx, name, 2, Metric::Dot).await?;
    if n > 0 {
        v.upsert(
            &c,
            (0..n).map(|i| {
                Record::new(format!("s{i:03}"), vec![i as f32, 1.0])
                    .metadata(json!({"i": i}))
                    .text(format!("text {i}"))
            }),
        )
        .await?;
    }
    Ok((v, c))
}

/// Scans to the end from `cursor` with pages of `limit`: the ids in order
/// seen and the page sizes. Fails on a repeated id, a page over the limit,
/// an empty page that has a cursor, or more pages than records allow.
async fn scan_all(
    v: &Vectors,
    c: &str,
    mut cursor: Option<String>,
    limit: u32,
    max_pages: usize,
) -> Result<(Vec<String>, Vec<usize>), Failure> {
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = v
            .scan(c, cursor.as_deref(), limit, None, Include::default())
            .await?;
        ensure!(
            limit == 0 || page.records.len() <= limit as usize,
            "a page of {} records for limit {limit}",
            page.records.len()
        );
        ensure!(
            !(page.records.is_empty() && page.next_cursor.is_some()),
            "an empty page with a cursor (page {}): a scan must make progress or end",
            sizes.len() + 1
        );
        sizes.push(page.records.len());
        for r in page.records {
            ensure!(!seen.contains(&r.id), "{} returned twice", r.id);
            seen.push(r.id);
        }
        ensure!(
            sizes.len() <= max_pages,
            "the scan did not end after {max_pages} pages"
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((seen, sizes)),
        }
    }
}

/// A last page filled exactly still ends the scan.
async fn scan_exact_page_boundaries(ctx: Ctx) -> CaseResult {
    for (n, limit) in [(200usize, 100u32), (30, 10), (7, 7), (1, 1), (0, 5)] {
        let (v, c) = filled(&ctx, &format!("edge{n}"), n).await?;
        let (seen, sizes) = scan_all(&v, &c, None, limit, n / limit as usize + 2).await?;
        ensure_eq!(
            seen.len(),
            n,
            "{n} records in pages of {limit}: records seen"
        );
        let full = n / limit as usize;
        ensure!(
            sizes.len() == full.max(1) || (sizes.len() == full + 1 && sizes.last() == Some(&0)),
            "{n} records in pages of {limit}: pages {sizes:?} (expected {} full pages, then at most one empty last page)",
            full
        );
    }
    Ok(())
}

/// Limit 0: refused, or pages that make progress.
async fn scan_limit_zero(ctx: Ctx) -> CaseResult {
    let (v, c) = filled(&ctx, "zero", 25).await?;
    match v.scan(&c, None, 0, None, Include::default()).await {
        Err(e) if e.kind() == ErrorKind::InvalidInput => return Ok(()),
        Err(e) => return Err(Failure::from(e).context("scan with limit 0")),
        Ok(_) => {}
    }
    let (seen, _) = scan_all(&v, &c, None, 0, 26).await?;
    ensure_eq!(seen.len(), 25, "records seen scanning with limit 0");
    Ok(())
}

/// A cursor never issued: refused, or read as a position.
async fn scan_with_a_bogus_cursor(ctx: Ctx) -> CaseResult {
    let (v, c) = filled(&ctx, "bogus", 30).await?;
    for bogus in [
        "",
        "not-a-cursor",
        "~~~~",
        "-1",
        "99999999999999999999999",
        "\u{0}",
        "s015",
    ] {
        let what = format!("scan from the cursor {bogus:?}");
        match v.scan(&c, Some(bogus), 10, None, Include::default()).await {
            Err(e) if e.kind() == ErrorKind::InvalidInput => continue,
            Err(e) => return Err(Failure::from(e).context(what)),
            Ok(_) => {}
        }
        let (seen, _) = scan_all(&v, &c, Some(bogus.to_string()), 10, 5)
            .await
            .map_err(|f| f.context(&what))?;
        for id in &seen {
            ensure!(
                id.starts_with('s') && id.len() == 4,
                "{what}: returned {id}, which is not a record of the collection"
            );
        }
    }
    Ok(())
}

/// Scanned records carry what the include flags ask for.
async fn scan_include_flags(ctx: Ctx) -> CaseResult {
    let (v, c) = filled(&ctx, "incl", 5).await?;
    let all = v.scan(&c, None, 10, None, Include::ALL).await?;
    ensure_eq!(all.records.len(), 5, "records");
    for r in &all.records {
        let i: usize = r.id[1..]
            .parse()
            .map_err(|_| Failure::new(format!("odd id {}", r.id)))?;
        ensure_eq!(
            r.vector.as_deref(),
            Some(&[i as f32, 1.0][..]),
            "vector of {}",
            r.id
        );
        ensure_eq!(r.metadata, Some(json!({"i": i})), "metadata of {}", r.id);
        ensure_eq!(
            r.text.as_deref(),
            Some(format!("text {i}").as_str()),
            "text of {}",
            r.id
        );
        ensure_eq!(r.score, 0.0, "score of a scanned record");
    }
    let bare = v.scan(&c, None, 10, None, Include::default()).await?;
    ensure!(
        bare.records
            .iter()
            .all(|r| r.vector.is_none() && r.metadata.is_none() && r.text.is_none()),
        "nothing was asked for, something came back: {:?}",
        bare.records.first()
    );
    let meta_only = v
        .scan(
            &c,
            None,
            10,
            Some(&json!({"i": {"$gte": 3}})),
            Include {
                metadata: true,
                ..Include::default()
            },
        )
        .await?;
    let ids: HashSet<&str> = meta_only.records.iter().map(|r| r.id.as_str()).collect();
    ensure_eq!(ids, HashSet::from(["s003", "s004"]), "filtered scan");
    ensure!(
        meta_only
            .records
            .iter()
            .all(|r| r.metadata.is_some() && r.vector.is_none() && r.text.is_none()),
        "metadata only was asked for"
    );
    Ok(())
}
