//! `vectors --backend pg`: the same seeded data and queries as the SQLite
//! tier, on PostgreSQL + pgvector, three ways in one process:
//!
//! 1. through the host + Postgres plugin, `ef_search` from the backend
//!    config (`hnsw_ef_search`: one backend per ef, one statement per query);
//! 2. through the plugin with `ef_search` per query (`Query::options`, which
//!    the plugin runs as `BEGIN; SET LOCAL hnsw.ef_search; SELECT; COMMIT`);
//! 3. the baseline: the same top-k SQL sent with `sqlx` directly on one
//!    connection whose `hnsw.ef_search` is `SET` for the session.
//!
//! Recall is measured against brute force computed here. Exact search
//! (plugin `{"exact": true}` and the same `ORDER BY score` SQL through sqlx)
//! runs one round. Loading goes through the plugin's `upsert`; the plugin
//! builds the HNSW index on the first use past its threshold (the `stats`
//! call after the load), timed as the build.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{
    ConnectOptions, Connection, Encode, Postgres, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{
        PgArgumentBuffer, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgTypeInfo,
    },
};

use super::*;

/// A pgvector `vector` parameter in binary form (dim, unused, big-endian f32s).
struct PgVec<'a>(&'a [f32]);

impl Type<Postgres> for PgVec<'_> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("vector")
    }
}

impl Encode<'_, Postgres> for PgVec<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&u16::try_from(self.0.len())?.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        for x in self.0 {
            buf.extend_from_slice(&x.to_be_bytes());
        }
        Ok(IsNull::No)
    }
}

/// The baseline's top-k statement, as the report shows it.
const ANN_SQL_SHAPE: &str =
    "SELECT id, 1 - (embedding <=> $1) AS score FROM … ORDER BY embedding <=> $1 LIMIT $2";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PgMethod {
    ExactPlugin,
    ExactDirect,
    Plugin,
    PluginSetLocal,
    Direct,
    DirectConn,
}

impl PgMethod {
    fn label(self) -> &'static str {
        match self {
            PgMethod::ExactPlugin => "exact (plugin)",
            PgMethod::ExactDirect => "exact (sqlx direct, PgPool)",
            PgMethod::Plugin => "HNSW plugin",
            PgMethod::PluginSetLocal => "HNSW plugin, ef per query (SET LOCAL)",
            PgMethod::Direct => "HNSW sqlx direct (PgPool)",
            PgMethod::DirectConn => "HNSW sqlx direct (one PgConnection, no pool)",
        }
    }
}

struct PgRow {
    method: PgMethod,
    ef: Option<usize>,
    recall: f64,
    qps: f64,
    p50: Duration,
    p99: Duration,
}

struct PgReport {
    n: usize,
    load: Duration,
    build: Duration,
    rows: Vec<PgRow>,
    details: Json,
}

/// Exact top-k ids per query, by brute force (f64 cosine), on two threads.
pub(super) fn ground_truth(data: &[f32], dim: usize, queries: &[Vec<f32>]) -> Vec<Vec<usize>> {
    let one = |q: &Vec<f32>| {
        let mut all: Vec<(usize, f64)> = data
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| (i, cosine64(q, v)))
            .collect();
        all.select_nth_unstable_by(TOP_K, |a, b| b.1.total_cmp(&a.1));
        all.truncate(TOP_K);
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.into_iter().map(|(i, _)| i).collect::<Vec<usize>>()
    };
    let half = queries.len().div_ceil(2);
    std::thread::scope(|s| {
        let (a, b) = queries.split_at(half);
        let ha = s.spawn(|| a.iter().map(one).collect::<Vec<_>>());
        let mut out: Vec<Vec<usize>> = b.iter().map(one).collect();
        let mut first = ha.join().expect("ground truth thread");
        first.append(&mut out);
        first
    })
}

pub(super) fn ids(hits: Vec<strata_host::vector::Hit>) -> Result<Vec<usize>, String> {
    Ok(parse_hits(hits)?.into_iter().map(|(i, _)| i).collect())
}

/// One measured pass through the plugin (after warm-up).
pub(super) async fn plugin_pass(
    v: &Vectors,
    queries: &[Vec<f32>],
    options: Option<Json>,
    warmup: usize,
) -> Result<PassOut, String> {
    let query = |q: &[f32]| {
        let mut query = Query::new(q.to_vec())
            .top_k(TOP_K as u32)
            .include(Include::default());
        if let Some(o) = &options {
            query = query.options(o.clone());
        }
        query
    };
    for q in queries.iter().cycle().take(warmup) {
        v.query(COLLECTION, &query(q))
            .await
            .map_err(|e| e.to_string())?;
    }
    let (mut lat, mut results) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for q in queries {
        let t = Instant::now();
        let hits = v
            .query(COLLECTION, &query(q))
            .await
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
        results.push(hits);
    }
    let total = start.elapsed();
    let results = results.into_iter().map(ids).collect::<Result<_, _>>()?;
    Ok((results, lat, total))
}

/// The baseline's sqlx handle: a pool (what an application uses, and what
/// the plugin uses) or one bare connection (sqlx's floor: no pool
/// bookkeeping, no task spawned to return the connection).
enum Direct {
    Pool(PgPool),
    Conn(PgConnection),
}

impl Direct {
    async fn open(
        url: &str,
        schema: &str,
        ef: Option<usize>,
        pool: bool,
    ) -> Result<Direct, String> {
        let mut opts: PgConnectOptions = url.parse().map_err(|e| format!("{e}"))?;
        let mut params = vec![
            ("search_path", format!("\"{schema}\",public")),
            ("hnsw.iterative_scan", "strict_order".to_string()),
        ];
        if let Some(ef) = ef {
            params.push(("hnsw.ef_search", ef.to_string()));
        }
        opts = opts.options(params);
        Ok(if pool {
            Direct::Pool(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect_with(opts)
                    .await
                    .map_err(|e| format!("sqlx connect: {e}"))?,
            )
        } else {
            Direct::Conn(
                opts.connect()
                    .await
                    .map_err(|e| format!("sqlx connect: {e}"))?,
            )
        })
    }

    async fn top_k(&mut self, sql: &str, q: &[f32]) -> Result<Vec<(String, f64)>, String> {
        let query = sqlx::query_as::<_, (String, f64)>(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(PgVec(q))
            .bind(TOP_K as i64);
        match self {
            Direct::Pool(p) => query.fetch_all(&*p).await,
            Direct::Conn(c) => query.fetch_all(&mut *c).await,
        }
        .map_err(|e| e.to_string())
    }
}

/// One measured pass of `sql` through sqlx (after warm-up).
async fn direct_pass(
    d: &mut Direct,
    sql: &str,
    queries: &[Vec<f32>],
    warmup: usize,
) -> Result<PassOut, String> {
    for q in queries.iter().cycle().take(warmup) {
        d.top_k(sql, q).await?;
    }
    let (mut lat, mut results) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for q in queries {
        let t = Instant::now();
        let rows = d.top_k(sql, q).await?;
        lat.push(t.elapsed());
        results.push(rows);
    }
    let total = start.elapsed();
    let results = results
        .into_iter()
        .map(|rows| {
            rows.into_iter()
                .map(|(id, _)| id.parse::<usize>().map_err(|_| format!("bad id {id:?}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    Ok((results, lat, total))
}

fn config(a: &VectorsArgs, url: &str, ef: usize) -> Json {
    json!({
        "url": url,
        "schema": a.schema,
        "pool_size": 2,
        "hnsw_m": a.hnsw_m,
        "hnsw_ef_construction": a.ef_construction,
        "hnsw_ef_search": ef,
    })
}

fn row(method: PgMethod, ef: Option<usize>, acc: Acc, truth: &[Vec<usize>]) -> PgRow {
    let (results, qps, p50, p99) = acc.finish();
    PgRow {
        method,
        ef,
        recall: recall(&results, truth),
        qps,
        p50,
        p99,
    }
}

async fn size(
    a: &VectorsArgs,
    url: &str,
    lib: &Path,
    dir: &Path,
    n: usize,
) -> Result<PgReport, String> {
    progress(format!(
        "n={n}: generating {n} × {} vectors and {} queries…",
        a.dim, a.queries
    ));
    let (data, queries) = generate(n, a.queries, a.dim, a.clusters, a.spread, a.seed ^ n as u64);
    progress(format!("n={n}: brute-force ground truth…"));
    let truth = ground_truth(&data, a.dim, &queries);

    let mut admin = PgConnection::connect(url)
        .await
        .map_err(|e| format!("sqlx connect: {e}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        a.schema
    )))
    .execute(&mut admin)
    .await
    .map_err(|e| e.to_string())?;
    let default_ef = *a.ef.iter().max().unwrap_or(&100);
    let (strata, v) = open_backend(dir, "pg_load", lib, &config(a, url, default_ef)).await?;
    progress(format!(
        "n={n}: loading through the plugin (batches of {}; HNSW m={} ef_construction={} built on first use)…",
        a.batch, a.hnsw_m, a.ef_construction
    ));
    let load_time = load(&v, &data, a.dim, a.batch).await?;
    progress(format!("n={n}: loaded in {:.1} s", load_time.as_secs_f64()));
    // The plugin builds the HNSW index on first use past its threshold:
    // `stats` is that first use here.
    let started = Instant::now();
    let details = v
        .stats(COLLECTION)
        .await
        .map_err(|e| e.to_string())?
        .map(|s| s.details)
        .unwrap_or(Json::Null);
    let build_time = started.elapsed();
    progress(format!(
        "n={n}: index built in {:.1} s",
        build_time.as_secs_f64()
    ));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "VACUUM ANALYZE \"{}\".strata_vec_{COLLECTION}",
        a.schema
    )))
    .execute(&mut admin)
    .await
    .map_err(|e| e.to_string())?;

    let table = format!("\"{}\".strata_vec_{COLLECTION}", a.schema);
    let ann_sql = format!(
        "SELECT id, 1 - (embedding <=> $1) AS score FROM {table} ORDER BY embedding <=> $1 LIMIT $2"
    );
    let exact_sql = format!(
        "SELECT id, 1 - (embedding <=> $1) AS score FROM {table} ORDER BY score DESC LIMIT $2"
    );
    let mut rows = Vec::new();

    progress(format!("n={n}: exact search, plugin and sqlx…"));
    let mut conn = Direct::open(url, &a.schema, None, true).await?;
    let warm = a.warmup.min(5);
    let (mut pe, mut de) = (Acc::default(), Acc::default());
    let (r, l, t) = plugin_pass(&v, &queries, Some(json!({"exact": true})), warm).await?;
    pe.add(r, l, t);
    let (r, l, t) = direct_pass(&mut conn, &exact_sql, &queries, warm).await?;
    de.add(r, l, t);
    rows.push(row(PgMethod::ExactPlugin, None, pe, &truth));
    rows.push(row(PgMethod::ExactDirect, None, de, &truth));
    strata.close().await.map_err(|e| e.to_string())?;

    for &ef in &a.ef {
        progress(format!("n={n}: ef={ef}: {} rounds…", a.rounds));
        let (s_ef, v_ef) = open_backend(dir, "pg_ef", lib, &config(a, url, ef)).await?;
        let (s_any, v_any) =
            open_backend(dir, "pg_set_local", lib, &config(a, url, default_ef)).await?;
        let mut pool = Direct::open(url, &a.schema, Some(ef), true).await?;
        let mut conn = Direct::open(url, &a.schema, Some(ef), false).await?;
        let (mut p, mut sl, mut d, mut dc) = (
            Acc::default(),
            Acc::default(),
            Acc::default(),
            Acc::default(),
        );
        for round in 0..a.rounds {
            for k in 0..4 {
                match (k + round) % 4 {
                    0 => {
                        let (r, l, t) = plugin_pass(&v_ef, &queries, None, a.warmup).await?;
                        p.add(r, l, t);
                    }
                    1 => {
                        let (r, l, t) = plugin_pass(
                            &v_any,
                            &queries,
                            Some(json!({ "ef_search": ef })),
                            a.warmup,
                        )
                        .await?;
                        sl.add(r, l, t);
                    }
                    2 => {
                        let (r, l, t) =
                            direct_pass(&mut pool, &ann_sql, &queries, a.warmup).await?;
                        d.add(r, l, t);
                    }
                    _ => {
                        let (r, l, t) =
                            direct_pass(&mut conn, &ann_sql, &queries, a.warmup).await?;
                        dc.add(r, l, t);
                    }
                }
            }
        }
        rows.push(row(PgMethod::Plugin, Some(ef), p, &truth));
        rows.push(row(PgMethod::PluginSetLocal, Some(ef), sl, &truth));
        rows.push(row(PgMethod::Direct, Some(ef), d, &truth));
        rows.push(row(PgMethod::DirectConn, Some(ef), dc, &truth));
        s_ef.close().await.map_err(|e| e.to_string())?;
        s_any.close().await.map_err(|e| e.to_string())?;
    }
    Ok(PgReport {
        n,
        load: load_time,
        build: build_time,
        rows,
        details,
    })
}

fn ratio(r: &PgReport, m: PgMethod, base: PgMethod, ef: Option<usize>) -> Option<f64> {
    let find = |m| r.rows.iter().find(|x| x.method == m && x.ef == ef);
    Some(find(m)?.qps / find(base)?.qps)
}

fn pg_table(r: &PgReport, dim: usize) -> String {
    let mut s = format!("### {} vectors × {dim} dims (cosine)\n\n", r.n);
    s.push_str("| method | ef | recall@10 | QPS | p50 ms | p99 ms | QPS / sqlx PgPool |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for row in &r.rows {
        let base = match row.method {
            PgMethod::ExactPlugin | PgMethod::ExactDirect => PgMethod::ExactDirect,
            _ => PgMethod::Direct,
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.0} | {} | {} | {} |",
            row.method.label(),
            row.ef.map_or("–".to_string(), |e| e.to_string()),
            row.recall,
            row.qps,
            ms(row.p50),
            ms(row.p99),
            ratio(r, row.method, base, row.ef).map_or("–".into(), |x| format!("{x:.2}")),
        );
    }
    let idx_mb = r.details["index_bytes"].as_f64().unwrap_or(0.0) / 1e6;
    let table_mb = r.details["table_bytes"].as_f64().unwrap_or(0.0) / 1e6;
    let _ = writeln!(
        s,
        "\nLoad (plugin `upsert`): {:.1} s = {:.0} vectors/s; HNSW build (first use past the threshold): {:.1} s; load + build {:.1} s. HNSW index {idx_mb:.1} MB, table + indexes {table_mb:.1} MB.\n\n`CollectionStats::details`: `{}`",
        r.load.as_secs_f64(),
        r.n as f64 / r.load.as_secs_f64(),
        r.build.as_secs_f64(),
        (r.load + r.build).as_secs_f64(),
        r.details
    );
    s
}

/// Runs the Postgres variant of the benchmark.
pub(super) fn run(args: VectorsArgs) {
    let url = args
        .database_url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .expect(
            "--backend pg needs --database-url or $DATABASE_URL (scripts/servers/postgres.sh env)",
        );
    let command = std::iter::once("strata-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
        .replace(&url, "$DATABASE_URL");
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(crate::exe_dir);
    let lib = plugin_dir.join(library_file_name("postgres"));
    assert!(
        lib.exists(),
        "{} not found (build it with `cargo build --release -p strata-postgres`, or pass --plugin-dir)",
        lib.display()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib_copy = tmp.path().join(library_file_name("postgres"));
    std::fs::copy(&lib, &lib_copy).expect("copy the plugin library");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut reports = Vec::new();
    for &n in &args.sizes {
        match rt.block_on(size(&args, &url, &lib_copy, tmp.path(), n)) {
            Ok(r) => {
                println!("{}", pg_table(&r, args.dim));
                reports.push(r);
            }
            Err(e) => {
                eprintln!("[vectors] n={n}: FAILED: {e}");
                std::process::exit(2);
            }
        }
    }
    let _ = rt.block_on(async {
        let mut c = PgConnection::connect(&url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            args.schema
        )))
        .execute(&mut c)
        .await
    });

    std::fs::create_dir_all(&args.out_dir).expect("create --out-dir");
    let png = args.out_dir.join("vectors-pg.png");
    let font = crate::plot::load_font();
    let panels: Vec<crate::plot::Panel> = reports
        .iter()
        .map(|r| {
            let pick = |m: PgMethod| -> Vec<(f64, f64, usize)> {
                r.rows
                    .iter()
                    .filter(|x| x.method == m)
                    .map(|x| (x.recall, x.qps, x.ef.unwrap_or(0)))
                    .collect()
            };
            crate::plot::Panel {
                title: format!("{} vectors (pgvector)", r.n),
                plugin: pick(PgMethod::Plugin),
                direct: pick(PgMethod::Direct),
                exact: pick(PgMethod::ExactPlugin).first().map(|p| (p.0, p.1)),
                labels: ("HNSW plugin", "HNSW sqlx direct"),
            }
        })
        .collect();
    if let Err(e) = crate::plot::draw(&png, &panels, font) {
        progress(format!("plot failed: {e}"));
    }
    let mut md = String::from(
        "# Vector search: Postgres plugin (pgvector) vs the same SQL through sqlx\n\n",
    );
    let _ = writeln!(
        md,
        "Command (release build, from the repository root, with the server of `scripts/servers/postgres.sh`):\n\n```sh\n{command}\n```\n"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        md,
        "Machine: {} (PostgreSQL on the same machine, loopback TCP; load average at the end of the run: {})\n",
        machine_note(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        md,
        "Data: the seeded clustered vectors of the SQLite tier's benchmark (seed {} xor size, {} centres, \
         spread {}), {} queries from the same distribution, cosine, top {TOP_K}; recall against brute force \
         computed in-process (f64). Load: host + libstrata_postgres.so `upsert` in batches of {} into a \
         collection with pgvector HNSW (m {}, ef_construction {}), which the plugin builds on first use past \
         `hnsw_threshold` (here: the `stats` call after the load, timed as the build). Queries run one at a \
         time on a current-thread runtime, results carry ids and scores only. \"HNSW plugin\": a backend \
         opened with `hnsw_ef_search = ef` (one statement per query); \"ef per query\": one backend, \
         `{{\"ef_search\": ef}}` in `Query::options` (the plugin sends `BEGIN; SET LOCAL hnsw.ef_search`, then the SELECT; the ROLLBACK that ends the read goes out ahead of the next statement); \
         \"sqlx direct\": `{}` with the session's `hnsw.ef_search` set to ef, vector bound in binary. {} rounds per method and ef in rotating order, each pass after {} warm-up queries. \
         Exact: `{{\"exact\": true}}` through the plugin vs the same `ORDER BY score DESC` SQL via sqlx, one round.\n",
        args.seed,
        args.clusters,
        args.spread,
        args.queries,
        args.batch,
        args.hnsw_m,
        args.ef_construction,
        ANN_SQL_SHAPE,
        args.rounds,
        args.warmup,
    );
    let _ = writeln!(
        md,
        "The baseline of the ratio column is sqlx with a `PgPool` (max 2 connections, session options as the \
         plugin's): what an application using sqlx directly runs, and what the plugin runs. The `PgConnection` \
         row is sqlx's floor: one connection, no pool (a pooled query also spawns a task to return its \
         connection).\n"
    );
    for r in &reports {
        md.push_str(&pg_table(r, args.dim));
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "Plot: `vectors-pg.png` — recall@10 (x) vs QPS (y, log), one panel per size; red = HNSW plugin, blue = \
         the same SQL through sqlx (points labelled with ef), black triangle = exact (plugin)."
    );
    let md_path = args.out_dir.join("vectors-pg.md");
    std::fs::write(&md_path, md).expect("write vectors-pg.md");
    progress(format!("wrote {} and {}", md_path.display(), png.display()));
}
