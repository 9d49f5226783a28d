//! `vectors --backend qdrant`: the same seeded data and queries as the
//! other tiers, on a real Qdrant server, two ways in one process:
//!
//! 1. through the host + Qdrant plugin (`ef_search` per query in
//!    `Query::options`, which the plugin sends as `SearchParams::hnsw_ef`);
//! 2. the baseline: the same `QueryPoints` request (same collection, named
//!    vector, `hnsw_ef`, limit and payload selection) sent with
//!    `qdrant-client` directly, on its own client.
//!
//! Recall is measured against brute force computed here; the exact rows
//! use `{"exact": true}` (the plugin) and `SearchParams::exact` (direct).
//! Loading goes through the plugin's `upsert`; Qdrant indexes in the
//! background, so the load waits until the collection reports green
//! before any query is timed.

use std::time::{Duration, Instant};

use qdrant_client::{
    Qdrant,
    qdrant::{
        CollectionStatus, DenseVector, GetCollectionInfoRequest, PayloadIncludeSelector, Query,
        QueryPoints, SearchParams, VectorInput, WithPayloadSelector, query, value::Kind,
        vector_input, with_payload_selector,
    },
};
use serde_json::json;

use super::{
    pg::{ground_truth, plugin_pass},
    *,
};

/// The payload key the plugin keeps the record id under.
const ID_KEY: &str = "_id";
/// The plugin's named dense vector.
const DENSE: &str = "dense";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QMethod {
    ExactPlugin,
    ExactDirect,
    Plugin,
    Direct,
}

impl QMethod {
    fn label(self) -> &'static str {
        match self {
            QMethod::ExactPlugin => "exact (plugin)",
            QMethod::ExactDirect => "exact (qdrant-client direct)",
            QMethod::Plugin => "HNSW plugin",
            QMethod::Direct => "HNSW qdrant-client direct",
        }
    }
}

struct QRow {
    method: QMethod,
    ef: Option<usize>,
    recall: f64,
    qps: f64,
    p50: Duration,
    p99: Duration,
}

struct QReport {
    n: usize,
    load: Duration,
    indexed: Duration,
    rows: Vec<QRow>,
}

fn config(a: &VectorsArgs, url: &str, key: &str, prefix: &str) -> Json {
    json!({
        "url": url,
        "api_key": key,
        "collection_prefix": prefix,
        "hnsw_m": a.hnsw_m,
        "hnsw_ef_construction": a.ef_construction,
    })
}

/// The request the plugin sends for a dense query, sent directly.
fn request(collection: &str, q: &[f32], ef: Option<usize>, exact: bool) -> QueryPoints {
    QueryPoints {
        collection_name: collection.to_string(),
        query: Some(Query {
            variant: Some(query::Variant::Nearest(VectorInput {
                variant: Some(vector_input::Variant::Dense(DenseVector {
                    data: q.to_vec(),
                })),
            })),
        }),
        using: Some(DENSE.into()),
        params: Some(SearchParams {
            hnsw_ef: ef.map(|e| e as u64),
            exact: Some(exact),
            ..Default::default()
        }),
        limit: Some(TOP_K as u64),
        with_payload: Some(WithPayloadSelector {
            selector_options: Some(with_payload_selector::SelectorOptions::Include(
                PayloadIncludeSelector {
                    fields: vec![ID_KEY.to_string()],
                },
            )),
        }),
        ..Default::default()
    }
}

async fn direct_pass(
    client: &Qdrant,
    collection: &str,
    queries: &[Vec<f32>],
    ef: Option<usize>,
    exact: bool,
    warmup: usize,
) -> Result<PassOut, String> {
    let once = |q: &[f32]| client.query(request(collection, q, ef, exact));
    for q in queries.iter().cycle().take(warmup) {
        once(q).await.map_err(|e| e.to_string())?;
    }
    let (mut lat, mut results) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for q in queries {
        let t = Instant::now();
        let r = once(q).await.map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
        results.push(r.result);
    }
    let total = start.elapsed();
    let results = results
        .into_iter()
        .map(|points| {
            points
                .into_iter()
                .map(
                    |p| match p.payload.get(ID_KEY).and_then(|v| v.kind.as_ref()) {
                        Some(Kind::StringValue(s)) => {
                            s.parse::<usize>().map_err(|_| format!("bad id {s:?}"))
                        }
                        other => Err(format!("no id in the payload: {other:?}")),
                    },
                )
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    Ok((results, lat, total))
}

fn row(method: QMethod, ef: Option<usize>, acc: Acc, truth: &[Vec<usize>]) -> QRow {
    let (results, qps, p50, p99) = acc.finish();
    QRow {
        method,
        ef,
        recall: recall(&results, truth),
        qps,
        p50,
        p99,
    }
}

/// Waits until Qdrant has indexed the collection (status green).
async fn wait_green(client: &Qdrant, collection: &str) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let info = client
            .collection_info(GetCollectionInfoRequest {
                collection_name: collection.to_string(),
            })
            .await
            .map_err(|e| e.to_string())?;
        let status = info.result.map(|r| r.status);
        if status == Some(CollectionStatus::Green as i32) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!(
                "collection {collection} not green after 30 min: {status:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn size(
    a: &VectorsArgs,
    url: &str,
    key: &str,
    lib: &Path,
    dir: &Path,
    n: usize,
) -> Result<QReport, String> {
    progress(format!(
        "n={n}: generating {n} × {} vectors and {} queries…",
        a.dim, a.queries
    ));
    let (data, queries) = generate(n, a.queries, a.dim, a.clusters, a.spread, a.seed ^ n as u64);
    progress(format!("n={n}: brute-force ground truth…"));
    let truth = ground_truth(&data, a.dim, &queries);
    let prefix = format!("strata_bench_{n}_");
    let collection = format!("{prefix}{COLLECTION}");
    let client = Qdrant::from_url(url)
        .api_key(Some(key.to_string()).filter(|k| !k.is_empty()))
        .build()
        .map_err(|e| e.to_string())?;
    let _ = client.delete_collection(collection.clone()).await;
    let (strata, v) = open_backend(dir, "qdrant", lib, &config(a, url, key, &prefix)).await?;
    progress(format!(
        "n={n}: loading through the plugin (batches of {}; HNSW m={} ef_construction={})…",
        a.batch, a.hnsw_m, a.ef_construction
    ));
    let load_time = load(&v, &data, a.dim, a.batch).await?;
    let indexed = wait_green(&client, &collection).await?;
    progress(format!(
        "n={n}: loaded in {:.1} s, indexed {:.1} s later",
        load_time.as_secs_f64(),
        indexed.as_secs_f64()
    ));
    let mut rows = Vec::new();
    let warm = a.warmup.min(5);
    let (mut pe, mut de) = (Acc::default(), Acc::default());
    let (r, l, t) = plugin_pass(&v, &queries, Some(json!({"exact": true})), warm).await?;
    pe.add(r, l, t);
    let (r, l, t) = direct_pass(&client, &collection, &queries, None, true, warm).await?;
    de.add(r, l, t);
    rows.push(row(QMethod::ExactPlugin, None, pe, &truth));
    rows.push(row(QMethod::ExactDirect, None, de, &truth));
    for &ef in &a.ef {
        progress(format!("n={n}: ef={ef}: {} rounds…", a.rounds));
        let (mut p, mut d) = (Acc::default(), Acc::default());
        for round in 0..a.rounds {
            for k in 0..2 {
                if (k + round) % 2 == 0 {
                    let (r, l, t) =
                        plugin_pass(&v, &queries, Some(json!({ "ef_search": ef })), a.warmup)
                            .await?;
                    p.add(r, l, t);
                } else {
                    let (r, l, t) =
                        direct_pass(&client, &collection, &queries, Some(ef), false, a.warmup)
                            .await?;
                    d.add(r, l, t);
                }
            }
        }
        rows.push(row(QMethod::Plugin, Some(ef), p, &truth));
        rows.push(row(QMethod::Direct, Some(ef), d, &truth));
    }
    v.drop_collection(COLLECTION)
        .await
        .map_err(|e| e.to_string())?;
    strata.close().await.map_err(|e| e.to_string())?;
    Ok(QReport {
        n,
        load: load_time,
        indexed,
        rows,
    })
}

fn q_table(r: &QReport, dim: usize) -> String {
    let mut s = format!("### {} vectors × {dim} dims (cosine)\n\n", r.n);
    s.push_str("| method | ef | recall@10 | QPS | p50 ms | p99 ms | QPS / qdrant-client |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for row in &r.rows {
        let base = match row.method {
            QMethod::ExactPlugin | QMethod::ExactDirect => QMethod::ExactDirect,
            _ => QMethod::Direct,
        };
        let find = |m| r.rows.iter().find(|x| x.method == m && x.ef == row.ef);
        let ratio = find(base).map(|b| row.qps / b.qps);
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.0} | {} | {} | {} |",
            row.method.label(),
            row.ef.map_or("–".to_string(), |e| e.to_string()),
            row.recall,
            row.qps,
            ms(row.p50),
            ms(row.p99),
            ratio.map_or("–".into(), |x| format!("{x:.2}")),
        );
    }
    let _ = writeln!(
        s,
        "\nLoad (plugin `upsert`, acknowledged with `wait=true`): {:.1} s = {:.0} vectors/s; Qdrant's background indexing finished {:.1} s after the load.\n",
        r.load.as_secs_f64(),
        r.n as f64 / r.load.as_secs_f64(),
        r.indexed.as_secs_f64(),
    );
    s
}

/// Runs the Qdrant variant of the benchmark.
pub(super) fn run(args: VectorsArgs) {
    let url = std::env::var("QDRANT_URL").expect(
        "--backend qdrant needs $QDRANT_URL (+ $QDRANT_API_KEY): scripts/servers/qdrant.sh start; eval \"$(scripts/servers/qdrant.sh env)\"",
    );
    let key = std::env::var("QDRANT_API_KEY").unwrap_or_default();
    let command = std::iter::once("strata-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(crate::exe_dir);
    let lib = plugin_dir.join(library_file_name("qdrant"));
    assert!(
        lib.exists(),
        "{} not found (build it with `cargo build --release -p strata-qdrant`, or pass --plugin-dir)",
        lib.display()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut reports = Vec::new();
    for &n in &args.sizes {
        match rt.block_on(size(&args, &url, &key, &lib, tmp.path(), n)) {
            Ok(r) => {
                println!("{}", q_table(&r, args.dim));
                reports.push(r);
            }
            Err(e) => {
                eprintln!("[vectors] n={n}: FAILED: {e}");
                std::process::exit(2);
            }
        }
    }
    std::fs::create_dir_all(&args.out_dir).expect("create --out-dir");
    let mut md = String::from(
        "# Vector search: Qdrant plugin vs the same requests through qdrant-client\n\n",
    );
    let _ = writeln!(
        md,
        "Command (release build, from the repository root, with the server of `scripts/servers/qdrant.sh`: Qdrant v1.17.1 built from source, API key on):\n\n```sh\n{command}\n```\n"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        md,
        "Machine: {} (Qdrant on the same machine, loopback gRPC; load average at the end of the run: {})\n",
        machine_note(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        md,
        "Data: the seeded clustered vectors of the other tiers' benchmark (seed {} xor size, {} centres, \
         spread {}), {} queries from the same distribution, cosine, top {TOP_K}; recall against brute force \
         computed in-process (f64). Load: host + libstrata_qdrant.so `upsert` in batches of {} (HNSW m {}, \
         ef_construction {}); no query is timed before Qdrant reports the collection green. Queries one at a \
         time on a current-thread runtime, results carrying ids and scores only. \"HNSW plugin\": \
         `{{\"ef_search\": ef}}` in `Query::options`; \"qdrant-client direct\": the same `QueryPoints` \
         (named vector `dense`, `hnsw_ef = ef`, limit, payload = the id key only) on a client of its own. \
         {} rounds per method and ef in alternating order, each pass after {} warm-up queries. Exact: \
         `{{\"exact\": true}}` vs `SearchParams::exact`, one round.\n",
        args.seed,
        args.clusters,
        args.spread,
        args.queries,
        args.batch,
        args.hnsw_m,
        args.ef_construction,
        args.rounds,
        args.warmup,
    );
    for r in &reports {
        md.push_str(&q_table(r, args.dim));
        md.push('\n');
    }
    let md_path = args.out_dir.join("vectors-qdrant.md");
    std::fs::write(&md_path, md).expect("write vectors-qdrant.md");
    progress(format!("wrote {}", md_path.display()));
}
