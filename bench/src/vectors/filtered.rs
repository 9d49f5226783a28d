//! Filtered and hybrid queries through the SQLite plugin (issue 17: "also
//! report filtered queries (selective and broad) and hybrid queries").
//!
//! A third backend, configured as the HNSW one, holds the same vectors with
//! metadata `{"bucket": row % 100}` and, when the data has texts (the
//! `.txt` beside `--data`, one line per row, as
//! `scripts/bench/wordnet-embeddings.sh` writes it), each row's text in
//! the collection's FTS5 table. It is loaded apart from the other two so
//! their load and build times keep their meaning; its own load (metadata
//! JSON and full-text indexing included) is reported.
//!
//! Per filter — selective (`bucket = 7`: 1 % of the rows) and broad
//! (`bucket < 50`: 50 %) — the same queries run forced exact (`{"exact":
//! true}`: the ground truth, and the baseline a filtered query falls back
//! to) and through the index at the backend's default `ef_search`, and
//! every hit is checked against the filter. Hybrid: each query vector with
//! its own text (BM25 over FTS5 fused with the dense ranking by RRF),
//! timed beside a dense query of the same vectors on the same backend,
//! then with each filter (every hit checked against it).

use std::time::{Duration, Instant};

use serde_json::json;
use strata_host::vector::{Hit, Hybrid};

use super::*;

/// Records per bucket value: `bucket = row % BUCKETS`.
const BUCKETS: usize = 100;

/// Each row's text, when `data` has a `.txt` beside it with one line per
/// row (`rows` of them).
pub(super) fn texts(data: &Path, rows: usize) -> Result<Option<Vec<String>>, String> {
    let path = data.with_extension("txt");
    if !path.exists() {
        return Ok(None);
    }
    let all = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<String> = all.lines().map(str::to_string).collect();
    if lines.len() != rows {
        return Err(format!(
            "{} has {} lines for {rows} rows of {}",
            path.display(),
            lines.len(),
            data.display()
        ));
    }
    Ok(Some(lines))
}

/// A filter measured: its label, the filter, which buckets pass it.
type Case = (&'static str, Json, fn(usize) -> bool);

/// The filters measured.
fn filters() -> [Case; 2] {
    [
        (
            "selective (`{\"bucket\": 7}`, 1 % of the rows)",
            json!({ "bucket": 7 }),
            |b| b == 7,
        ),
        (
            "broad (`{\"bucket\": {\"$lt\": 50}}`, 50 %)",
            json!({ "bucket": { "$lt": 50 } }),
            |b| b < 50,
        ),
    ]
}

/// Every hit of each query (`got`, rows of `n`) passes the filter, and
/// each query has a full top `TOP_K` (or every matching row).
fn check(
    n: usize,
    what: &str,
    got: &[Vec<usize>],
    filter: &Json,
    passes_filter: fn(usize) -> bool,
) -> Result<(), String> {
    if let Some(bad) = got
        .iter()
        .flatten()
        .find(|&&id| !passes_filter(id % BUCKETS))
    {
        return Err(format!(
            "{what} query with filter {filter} returned row {bad}"
        ));
    }
    let matching = (0..n).filter(|row| passes_filter(row % BUCKETS)).count();
    if let Some(q) = got.iter().position(|r| r.len() < TOP_K.min(matching)) {
        return Err(format!(
            "{what} query {q} with filter {filter} returned {} hits",
            got[q].len()
        ));
    }
    Ok(())
}

/// One row of the phase's table.
struct Line {
    what: String,
    recall: Option<f64>,
    qps: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `one` for every query (after `warmup` untimed ones), `rounds`
/// times; the ids per query of the first round, and the pooled timings.
async fn passes<F, Fut>(
    count: usize,
    rounds: usize,
    warmup: usize,
    one: F,
) -> Result<(Vec<Vec<usize>>, f64, Duration, Duration), String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Hit>, String>>,
{
    let ids = |hits: Vec<Hit>| -> Result<Vec<usize>, String> {
        hits.into_iter()
            .map(|h| {
                h.id.parse()
                    .map_err(|_| format!("unexpected id {:?}", h.id))
            })
            .collect()
    };
    let mut acc = Acc::default();
    for _ in 0..rounds {
        for i in (0..count).cycle().take(warmup) {
            one(i).await?;
        }
        let mut lat = Vec::with_capacity(count);
        let mut got = Vec::with_capacity(count);
        let start = Instant::now();
        for i in 0..count {
            let t = Instant::now();
            let hits = one(i).await?;
            lat.push(t.elapsed());
            got.push(ids(hits)?);
        }
        acc.add(got, lat, start.elapsed());
    }
    Ok(acc.finish())
}

/// Loads the third backend, measures, closes it; the markdown section.
pub(super) fn measure(
    ctx: &Ctx,
    n: usize,
    data: &[f32],
    texts: Option<&[String]>,
    queries: &[Vec<f32>],
    query_texts: Option<&[String]>,
) -> Result<String, String> {
    let a = ctx.args;
    let db = ctx.dir.join(format!("filtered-{n}.sqlite"));
    let (strata, v) = ctx.rt.block_on(open_backend(
        &ctx.dir,
        "filtered",
        &ctx.lib,
        &hnsw_config(a, &db),
    ))?;
    let result = (|| {
        progress(format!(
            "n={n}: filtered/hybrid backend: loading {n} vectors with metadata{}…",
            if texts.is_some() { " and texts" } else { "" }
        ));
        let loaded = ctx.rt.block_on(async {
            v.create_collection(COLLECTION, a.dim as u32, Metric::Cosine)
                .await
                .map_err(|e| e.to_string())?;
            let start = Instant::now();
            for (b, chunk) in data.chunks(a.batch.max(1) * a.dim).enumerate() {
                let records: Vec<Record> = chunk
                    .chunks_exact(a.dim)
                    .enumerate()
                    .map(|(j, x)| {
                        let row = b * a.batch + j;
                        let r = Record::new(row.to_string(), x.to_vec())
                            .metadata(json!({ "bucket": row % BUCKETS }));
                        match texts {
                            Some(t) => r.text(t[row].clone()),
                            None => r,
                        }
                    })
                    .collect();
                v.upsert(COLLECTION, records)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(start.elapsed())
        })?;
        // The first query loads the collection and starts the background
        // build: wait for the index, as the HNSW phase does.
        let wait = Instant::now();
        ctx.rt
            .block_on(v.query(COLLECTION, &plugin_query(&queries[0], None)))
            .map_err(|e| e.to_string())?;
        wait_for_index(ctx, &v, n)?;
        let build = wait.elapsed();
        let mut lines = Vec::new();
        let top = |q: &[f32]| Query::new(q.to_vec()).top_k(TOP_K as u32);
        for (label, filter, passes_filter) in filters() {
            progress(format!("n={n}: filtered queries, {label}…"));
            let exact = ctx
                .rt
                .block_on(passes(queries.len(), a.rounds, a.warmup, |i| {
                    let q = top(&queries[i])
                        .filter(filter.clone())
                        .options(json!({ "exact": true }));
                    let v = &v;
                    async move { v.query(COLLECTION, &q).await.map_err(|e| e.to_string()) }
                }))?;
            let index = ctx
                .rt
                .block_on(passes(queries.len(), a.rounds, a.warmup, |i| {
                    let q = top(&queries[i]).filter(filter.clone());
                    let v = &v;
                    async move { v.query(COLLECTION, &q).await.map_err(|e| e.to_string()) }
                }))?;
            check(n, "exact", &exact.0, &filter, passes_filter)?;
            check(n, "index", &index.0, &filter, passes_filter)?;
            lines.push(Line {
                what: format!("{label}, exact"),
                recall: Some(1.0),
                qps: exact.1,
                p50: exact.2,
                p99: exact.3,
            });
            lines.push(Line {
                what: format!("{label}, through the index"),
                recall: Some(recall(&index.0, &exact.0)),
                qps: index.1,
                p50: index.2,
                p99: index.3,
            });
        }
        progress(format!("n={n}: dense queries without a filter…"));
        let dense = ctx
            .rt
            .block_on(passes(queries.len(), a.rounds, a.warmup, |i| {
                let q = top(&queries[i]);
                let v = &v;
                async move { v.query(COLLECTION, &q).await.map_err(|e| e.to_string()) }
            }))?;
        lines.push(Line {
            what: "no filter, through the index".into(),
            recall: None,
            qps: dense.1,
            p50: dense.2,
            p99: dense.3,
        });
        if let Some(qt) = query_texts {
            // Each query's vector with its own text, and the filter if any.
            let hybrid_passes = |filter: Option<&Json>| {
                ctx.rt
                    .block_on(passes(queries.len(), a.rounds, a.warmup, |i| {
                        let h = Hybrid::new(queries[i].clone(), qt[i].clone()).top_k(TOP_K as u32);
                        let h = match filter {
                            Some(f) => h.filter(f.clone()),
                            None => h,
                        };
                        let v = &v;
                        async move {
                            v.hybrid_query(COLLECTION, &h)
                                .await
                                .map_err(|e| e.to_string())
                        }
                    }))
            };
            progress(format!("n={n}: hybrid queries…"));
            let hybrid = hybrid_passes(None)?;
            if let Some(q) = hybrid.0.iter().position(|r| r.len() < TOP_K.min(n)) {
                return Err(format!(
                    "hybrid query {q} returned {} hits",
                    hybrid.0[q].len()
                ));
            }
            // How far the fused ranking moves from the dense one.
            let overlap = recall(&hybrid.0, &dense.0);
            lines.push(Line {
                what: format!(
                    "hybrid: the query's vector + its text (BM25, RRF); {:.0} % of its top 10 in the dense top 10",
                    overlap * 100.0
                ),
                recall: None,
                qps: hybrid.1,
                p50: hybrid.2,
                p99: hybrid.3,
            });
            for (label, filter, passes_filter) in filters() {
                progress(format!("n={n}: hybrid queries, {label}…"));
                let got = hybrid_passes(Some(&filter))?;
                check(n, "hybrid", &got.0, &filter, passes_filter)?;
                lines.push(Line {
                    what: format!("hybrid, {label}"),
                    recall: None,
                    qps: got.1,
                    p50: got.2,
                    p99: got.3,
                });
            }
        }
        Ok::<_, String>((loaded, build, lines))
    })();
    let _ = ctx.rt.block_on(strata.close());
    let (loaded, build, lines) = result?;
    let mut md = format!(
        "Filtered and hybrid queries ({n} vectors, a third backend configured as the HNSW one, records with metadata `{{\"bucket\": row % 100}}`{}; upserts {:.2}s, index ready {:.2}s after the first query; top 10, the backend's default `ef_search` through the index, {} rounds of {} queries):\n\n| query | recall@10 vs exact with the same filter | QPS | p50 ms | p99 ms |\n|---|---|---|---|---|\n",
        if texts.is_some() {
            " and each row's text in FTS5"
        } else {
            "; no texts (hybrid needs `--data` with its `.txt`)"
        },
        loaded.as_secs_f64(),
        build.as_secs_f64(),
        a.rounds,
        queries.len()
    );
    for l in &lines {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} |\n",
            l.what,
            l.recall.map_or("–".into(), |r| format!("{r:.3}")),
            l.qps,
            ms(l.p50),
            ms(l.p99)
        ));
    }
    Ok(md)
}
