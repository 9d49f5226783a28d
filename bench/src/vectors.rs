//! `vectors`: nearest-neighbour search over seeded clustered data, three ways
//! in one process, per collection size:
//!
//! 1. exact search through the host + SQLite plugin (`hnsw_threshold = 0`;
//!    the plugin scans an int8 copy and rescores in f32, exactly);
//!    its results are the ground truth for recall, and a few of them are
//!    checked against a brute-force computation here;
//! 2. HNSW through the host + SQLite plugin, whose graph is its own
//!    flat-layout implementation (`hnsw_threshold`, `hnsw_m`,
//!    `hnsw_ef_construction` in the backend config, `ef_search` per query);
//! 3. `hnsw_rs` called directly in-process with the same M, ef_construction,
//!    data, queries and ef list (the baseline).
//!
//! Queries run one after another on a current-thread runtime (plugin) or the
//! calling thread (hnsw_rs); p50/p99 are per-query latencies. Writes a
//! Markdown report and a recall-vs-QPS plot to `--out-dir`.
//!
//! `--data FILE.npy` replaces the generated clusters with real embeddings
//! (`scripts/bench/wordnet-embeddings.sh` makes 60,200 MiniLM vectors of
//! WordNet glosses); `--hnswlib PYTHON` adds hnswlib (C++, through its
//! Python binding) and numpy's exact BLAS scan as further methods, driven
//! over a pipe (`hnswlib.rs`) so their passes alternate with the others'.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

mod filtered;
mod hnswlib;
mod pg;
mod qdrant;

use hnsw_rs::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value as Json, json};
use strata_host::{
    Strata,
    loader::library_file_name,
    vector::{Include, Metric, Query, Record, Vectors},
};

/// Results per query.
const TOP_K: usize = 10;
/// The collection every backend gets.
const COLLECTION: &str = "bench";
/// hnsw_rs's `DistDot` asserts `dot <= 1 (+ tiny slack)`; unit vectors scaled
/// by this keep every dot product below 1 whatever the rounding, without
/// changing any ranking (all dot products shrink by the same factor).
const UNIT_SHRINK: f32 = 0.999_99;

/// Arguments of `strata-bench vectors`.
#[derive(clap::Args, Debug)]
pub(crate) struct VectorsArgs {
    /// Collection sizes (vectors), comma-separated; one table per size.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    /// Vector dimension.
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Measured queries per method and ef (drawn from the data's distribution).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// ef_search values for both HNSW implementations, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    ef: Vec<usize>,
    /// Cluster centres of the generated data.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Gaussian noise norm relative to the (unit) cluster centre norm.
    #[arg(long, default_value_t = 0.5)]
    spread: f64,
    /// RNG seed for data and queries.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Real embeddings instead of generated clusters: a `.npy` matrix of
    /// little-endian `f32` (rows × dim; `scripts/bench/wordnet-embeddings.sh`
    /// makes one). Its last `--queries` rows are the queries, the first
    /// `size` of the others the collection (`--dim` is read from the file).
    #[arg(long)]
    data: Option<PathBuf>,
    /// A Python interpreter with `hnswlib` installed: adds hnswlib (C++,
    /// through its Python binding) as a third method, driven by
    /// `benchmarks/hnswlib_reference.py` with passes alternating with the
    /// others'.
    #[arg(long)]
    hnswlib: Option<PathBuf>,
    /// Leave hnsw_rs out (its build is the longest part of a run at 1M
    /// vectors; hnswlib, with `--hnswlib`, is the reference then).
    #[arg(long)]
    skip_hnsw_rs: bool,
    /// Leave out the filtered and hybrid queries (a third backend loaded
    /// with metadata and texts, and its index built again).
    #[arg(long)]
    skip_filtered: bool,
    /// Leave out the growing-collection phase (a query after every batch
    /// as the collection is loaded again: another whole build, ~8 minutes
    /// at 1M vectors).
    #[arg(long)]
    skip_growing: bool,
    /// HNSW M (max connections per node per layer), both implementations.
    #[arg(long, default_value_t = 16)]
    hnsw_m: usize,
    /// HNSW ef_construction, both implementations (the plugin's default).
    #[arg(long, default_value_t = 100)]
    ef_construction: usize,
    /// The plugin's `hnsw_threshold` for the HNSW backend (the index builds
    /// itself once a collection holds this many vectors).
    #[arg(long, default_value_t = 1000)]
    hnsw_threshold: usize,
    /// Records per `upsert` call when loading the plugin backends.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Exact plugin results checked against brute force computed here.
    #[arg(long, default_value_t = 200)]
    verify: usize,
    /// Measured passes per method and ef (plugin HNSW and hnsw_rs passes
    /// interleave, in alternating order); latencies pool over all rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Untimed warm-up queries before each measured pass.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Directory holding libstrata_sqlite.so (default: next to this binary).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Where the report (vectors-BACKEND.md) and plot (.png) are written.
    #[arg(long, default_value = "benchmarks")]
    out_dir: PathBuf,
    /// The backend measured: `sqlite` (exact + HNSW sidecar vs hnsw_rs) or
    /// `pg` (pgvector through the Postgres plugin vs the same SQL sent with sqlx),
    /// `qdrant` (the Qdrant plugin vs the same requests through qdrant-client;
    /// $QDRANT_URL / $QDRANT_API_KEY name the server).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "pg", "qdrant"])]
    backend: String,
    /// PostgreSQL URL for `--backend pg` (default: $DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// The schema `--backend pg` works in (dropped and recreated).
    #[arg(long, default_value = "strata_bench")]
    schema: String,
}

/// One row of a result table.
#[derive(Clone, Debug)]
struct Row {
    method: Method,
    ef: Option<usize>,
    recall: f64,
    qps: f64,
    p50: Duration,
    p99: Duration,
    build_s: f64,
    index_mb: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Exact,
    PluginHnsw,
    Direct,
    Hnswlib,
    NumpyExact,
}

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::Exact => "exact (plugin)",
            Method::PluginHnsw => "HNSW plugin",
            Method::Direct => "hnsw_rs direct",
            Method::Hnswlib => "hnswlib (Python binding)",
            Method::NumpyExact => "exact (numpy BLAS)",
        }
    }
}

/// Everything measured for one size.
struct SizeReport {
    n: usize,
    rows: Vec<Row>,
    notes: Vec<String>,
    details: Option<Json>,
    /// Set when plugin HNSW could not run.
    hnsw_error: Option<String>,
}

/// Measured passes of one method (and ef), accumulated over rounds.
#[derive(Default)]
struct Acc {
    lat: Vec<Duration>,
    total: Duration,
    /// The first round's result ids per query (for recall).
    results: Option<Vec<Vec<usize>>>,
}

impl Acc {
    fn add(&mut self, results: Vec<Vec<usize>>, lat: Vec<Duration>, total: Duration) {
        self.lat.extend(lat);
        self.total += total;
        self.results.get_or_insert(results);
    }

    /// (results, QPS, p50, p99).
    fn finish(mut self) -> (Vec<Vec<usize>>, f64, Duration, Duration) {
        self.lat.sort_unstable();
        let lat = &self.lat;
        let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
        let qps = lat.len() as f64 / self.total.as_secs_f64();
        let (p50, p99) = (at(0.5), at(0.99));
        (self.results.unwrap_or_default(), qps, p50, p99)
    }
}

/// One pass: ids per query, per-query latencies, wall time of the loop.
type PassOut = (Vec<Vec<usize>>, Vec<Duration>, Duration);

fn progress(msg: impl AsRef<str>) {
    eprintln!("[vectors] {}", msg.as_ref());
}

/// A standard normal sample (Box–Muller).
fn gauss(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` data vectors and `q` queries from the same distribution: a random
/// unit-norm cluster centre plus isotropic gaussian noise of norm ≈ `spread`.
fn generate(
    n: usize,
    q: usize,
    dim: usize,
    clusters: usize,
    spread: f64,
    seed: u64,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centre_sigma = 1.0 / (dim as f64).sqrt();
    let noise_sigma = spread / (dim as f64).sqrt();
    let centres: Vec<Vec<f64>> = (0..clusters.max(1))
        .map(|_| (0..dim).map(|_| gauss(&mut rng) * centre_sigma).collect())
        .collect();
    let point = |rng: &mut StdRng, out: &mut Vec<f32>| {
        let c = &centres[rng.random_range(0..centres.len())];
        for x in c {
            out.push((x + gauss(rng) * noise_sigma) as f32);
        }
    };
    let mut data = Vec::with_capacity(n * dim);
    for _ in 0..n {
        point(&mut rng, &mut data);
    }
    let queries = (0..q)
        .map(|_| {
            let mut v = Vec::with_capacity(dim);
            point(&mut rng, &mut v);
            v
        })
        .collect();
    (data, queries)
}

fn unit(v: &[f32], scale: f32) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x / norm * scale).collect()
}

fn cosine64(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na.sqrt() * nb.sqrt())
    }
}

/// Checks the plugin's exact top-k against brute force (in f64); panics on a
/// difference that is not a tie within f32 rounding.
fn verify_exact(data: &[f32], dim: usize, query: &[f32], got: &[(usize, f64)], qi: usize) {
    let mut all: Vec<(usize, f64)> = data
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (i, cosine64(query, v)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(TOP_K);
    let fail = |why: String| -> ! {
        panic!(
            "EXACT SEARCH MISMATCH on query {qi}: {why}\n  plugin:      {got:?}\n  brute force: {all:?}"
        )
    };
    if got.len() != all.len() {
        fail(format!(
            "plugin returned {} results, brute force {}",
            got.len(),
            all.len()
        ));
    }
    const TIE: f64 = 1e-5;
    for (pos, ((gid, gscore), (bid, bscore))) in got.iter().zip(&all).enumerate() {
        let true_score = cosine64(query, &data[gid * dim..(gid + 1) * dim]);
        if (true_score - gscore).abs() > 1e-4 {
            fail(format!(
                "position {pos}: plugin scored id {gid} {gscore}, its true cosine is {true_score}"
            ));
        }
        if gid != bid && (true_score - bscore).abs() > TIE {
            fail(format!(
                "position {pos}: plugin has id {gid} (cosine {true_score}), brute force id {bid} (cosine {bscore})"
            ));
        }
    }
}

fn recall(got: &[Vec<usize>], truth: &[Vec<usize>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (g, t) in got.iter().zip(truth) {
        total += t.len();
        hit += g.iter().filter(|id| t.contains(id)).count();
    }
    if total == 0 {
        0.0
    } else {
        hit as f64 / total as f64
    }
}

/// Total size of the files under `dir` (0 if it does not exist).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `<database path>.strata-index/`, where the plugin keeps its index files.
fn sidecar(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".strata-index");
    PathBuf::from(s)
}

fn toml_value(v: &Json) -> String {
    match v {
        Json::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Writes a one-backend `plugins.toml` and opens its vector store.
async fn open_backend(
    dir: &Path,
    name: &str,
    lib: &Path,
    config: &Json,
) -> Result<(Strata, Vectors), String> {
    let inline: Vec<String> = config
        .as_object()
        .expect("config is an object")
        .iter()
        .map(|(k, v)| format!("{k} = {}", toml_value(v)))
        .collect();
    let file = dir.join(format!("plugins-{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "[backends.{name}]\nlibrary = {:?}\nconfig = {{ {} }}\n",
            lib,
            inline.join(", ")
        ),
    )
    .map_err(|e| format!("writing {}: {e}", file.display()))?;
    let strata = Strata::load(&file).map_err(|e| e.to_string())?;
    let vectors = strata
        .vectors_backend(name)
        .await
        .map_err(|e| e.to_string())?;
    Ok((strata, vectors))
}

/// Creates the collection and upserts `data` in batches; returns the time taken.
async fn load(v: &Vectors, data: &[f32], dim: usize, batch: usize) -> Result<Duration, String> {
    v.create_collection(COLLECTION, dim as u32, Metric::Cosine)
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    for (b, chunk) in data.chunks(batch.max(1) * dim).enumerate() {
        let records = batch_records(chunk, b, batch, dim);
        v.upsert(COLLECTION, records)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed())
}

/// Batch `b` of the data as records (ids are the vectors' positions).
fn batch_records(chunk: &[f32], b: usize, batch: usize, dim: usize) -> Vec<Record> {
    chunk
        .chunks_exact(dim)
        .enumerate()
        .map(|(j, x)| Record::new((b * batch + j).to_string(), x.to_vec()))
        .collect()
}

/// The HNSW plugin backend's config (database at `db`).
fn hnsw_config(a: &VectorsArgs, db: &Path) -> Json {
    json!({
        "path": db.to_string_lossy(),
        "hnsw_threshold": a.hnsw_threshold,
        "hnsw_m": a.hnsw_m,
        "hnsw_ef_construction": a.ef_construction,
    })
}

fn plugin_query(q: &[f32], ef: Option<usize>) -> Query {
    let query = Query::new(q.to_vec())
        .top_k(TOP_K as u32)
        .include(Include::default());
    match ef {
        Some(ef) => query.options(json!({ "ef_search": ef })),
        None => query,
    }
}

fn parse_hits(hits: Vec<strata_host::vector::Hit>) -> Result<Vec<(usize, f64)>, String> {
    hits.into_iter()
        .map(|h| {
            h.id.parse::<usize>()
                .map(|id| (id, h.score))
                .map_err(|_| format!("unexpected record id {:?}", h.id))
        })
        .collect()
}

/// Warm-up, then one measured pass of every query through the plugin; also
/// returns the scores (for the brute-force check).
async fn plugin_pass(
    v: &Vectors,
    queries: &[Vec<f32>],
    ef: Option<usize>,
    warmup: usize,
) -> Result<(PassOut, Vec<Vec<(usize, f64)>>), String> {
    for q in queries.iter().cycle().take(warmup) {
        v.query(COLLECTION, &plugin_query(q, ef))
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut lat = Vec::with_capacity(queries.len());
    let mut raw = Vec::with_capacity(queries.len());
    let start = Instant::now();
    for q in queries {
        let t = Instant::now();
        let hits = v
            .query(COLLECTION, &plugin_query(q, ef))
            .await
            .map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
        raw.push(hits);
    }
    let total = start.elapsed();
    let scored: Vec<Vec<(usize, f64)>> =
        raw.into_iter().map(parse_hits).collect::<Result<_, _>>()?;
    let ids = scored
        .iter()
        .map(|r| r.iter().map(|(id, _)| *id).collect())
        .collect();
    Ok(((ids, lat, total), scored))
}

/// Warm-up, then one measured pass of every query through hnsw_rs.
fn direct_pass(hnsw: &Hnsw<f32, DistDot>, qs: &[Vec<f32>], ef: usize, warmup: usize) -> PassOut {
    for q in qs.iter().cycle().take(warmup) {
        std::hint::black_box(hnsw.search(q, TOP_K, ef));
    }
    let mut lat = Vec::with_capacity(qs.len());
    let mut results = Vec::with_capacity(qs.len());
    let start = Instant::now();
    for q in qs {
        let t = Instant::now();
        let hits = hnsw.search(q, TOP_K, ef);
        lat.push(t.elapsed());
        results.push(hits.iter().map(|h| h.d_id).collect::<Vec<usize>>());
    }
    (results, lat, start.elapsed())
}

struct Ctx<'a> {
    args: &'a VectorsArgs,
    rt: &'a tokio::runtime::Runtime,
    lib: PathBuf,
    dir: PathBuf,
}

/// Phase 1: exact search through the plugin. Returns the row and the ground truth.
fn run_exact(
    ctx: &Ctx,
    n: usize,
    data: &[f32],
    queries: &[Vec<f32>],
    notes: &mut Vec<String>,
) -> (Row, Vec<Vec<usize>>) {
    let a = ctx.args;
    let db = ctx.dir.join(format!("exact-{n}.sqlite"));
    let schema_has_hnsw = strata_host::Plugin::load(&ctx.lib)
        .map(|p| p.info().config_schema["properties"]["hnsw_threshold"].is_object())
        .unwrap_or_else(|e| panic!("loading plugin {}: {e}", ctx.lib.display()));
    let mut config = json!({ "path": db.to_string_lossy() });
    if schema_has_hnsw {
        config["hnsw_threshold"] = json!(0);
    } else {
        let note = "this libstrata_sqlite.so has no `hnsw_threshold` config key (no HNSW): the exact backend runs with its defaults, which are exact-only".to_string();
        progress(&note);
        notes.push(note);
    }
    progress(format!(
        "n={n}: exact plugin backend: loading {n} vectors (batches of {})…",
        a.batch
    ));
    let (strata, v) = ctx
        .rt
        .block_on(open_backend(&ctx.dir, "exact", &ctx.lib, &config))
        .unwrap_or_else(|e| panic!("opening the exact backend: {e}"));
    let load_time = ctx
        .rt
        .block_on(load(&v, data, a.dim, a.batch))
        .unwrap_or_else(|e| panic!("loading the exact backend: {e}"));
    progress(format!(
        "n={n}: exact plugin backend: loaded in {:.2}s; querying {} queries × {} rounds…",
        load_time.as_secs_f64(),
        queries.len(),
        a.rounds
    ));
    let mut acc = Acc::default();
    let mut first_scored = None;
    for _ in 0..a.rounds {
        let ((ids, lat, total), scored) = ctx
            .rt
            .block_on(plugin_pass(&v, queries, None, a.warmup))
            .unwrap_or_else(|e| panic!("exact queries: {e}"));
        if let Some(truth) = &acc.results
            && *truth != ids
        {
            panic!("exact search through the plugin gave different results in two rounds");
        }
        acc.add(ids, lat, total);
        first_scored.get_or_insert(scored);
    }
    let scored = first_scored.unwrap_or_default();
    match ctx.rt.block_on(v.stats(COLLECTION)) {
        Ok(Some(stats)) => {
            let scan = &stats.details["exact_scan"];
            let mb = |k: &str| scan[k].as_f64().map(|b| b / 1e6);
            let note = match (mb("f32_cache_bytes"), mb("int8_copy_bytes")) {
                (Some(f), Some(q)) if f > 0.0 => format!(
                    "Exact plugin vector cache: f32 {f:.1} MB + {} copy {q:.1} MB (+{:.1} % memory); `exact_scan` details: `{scan}`.",
                    scan["quantized"].as_str().unwrap_or("?"),
                    100.0 * q / f
                ),
                _ => format!(
                    "Exact plugin `CollectionStats::details`: `{}`.",
                    stats.details
                ),
            };
            progress(format!("n={n}: {note}"));
            notes.push(note);
        }
        Ok(None) => panic!("the exact collection vanished"),
        Err(e) => panic!("exact backend stats: {e}"),
    }
    let nv = a.verify.min(queries.len());
    progress(format!(
        "n={n}: verifying {nv} exact results against brute force…"
    ));
    for (qi, (q, got)) in queries.iter().zip(&scored).take(nv).enumerate() {
        verify_exact(data, a.dim, q, got, qi);
    }
    ctx.rt
        .block_on(strata.close())
        .expect("close exact backend");
    let (truth, qps, p50, p99) = acc.finish();
    if let Some(bad) = truth.iter().position(|r| r.len() != TOP_K.min(n)) {
        panic!(
            "exact query {bad} returned {} results, expected {}",
            truth[bad].len(),
            TOP_K.min(n)
        );
    }
    let row = Row {
        method: Method::Exact,
        ef: None,
        recall: 1.0,
        qps,
        p50,
        p99,
        build_s: load_time.as_secs_f64(),
        index_mb: None,
    };
    (row, truth)
}

/// The open HNSW plugin backend, loaded and built.
struct PluginHnsw {
    strata: Strata,
    v: Vectors,
    db: PathBuf,
    build: Duration,
    details: Json,
}

/// The bench collection's stats (an error when it is gone).
fn collection_stats(ctx: &Ctx, v: &Vectors) -> Result<strata_host::CollectionStats, String> {
    ctx.rt
        .block_on(v.stats(COLLECTION))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "collection vanished".to_string())
}

/// The collection's stats once its index is installed (at once when it
/// will have none: `hnsw_threshold` 0 or fewer vectors); an error when
/// the background build failed.
fn wait_for_index(
    ctx: &Ctx,
    v: &Vectors,
    n: usize,
) -> Result<strata_host::CollectionStats, String> {
    let a = ctx.args;
    loop {
        let stats = collection_stats(ctx, v)?;
        if stats.details["index"] == "hnsw" || a.hnsw_threshold == 0 || n < a.hnsw_threshold {
            return Ok(stats);
        }
        if let Some(e) = stats.details["hnsw_build"]["error"].as_str() {
            return Err(format!("the index build failed: {e}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Phase 2: HNSW through the plugin: load, build (first query), details.
fn open_plugin_hnsw(
    ctx: &Ctx,
    n: usize,
    data: &[f32],
    queries: &[Vec<f32>],
    notes: &mut Vec<String>,
) -> Result<PluginHnsw, String> {
    let a = ctx.args;
    let db = ctx.dir.join(format!("hnsw-{n}.sqlite"));
    let config = hnsw_config(a, &db);
    progress(format!(
        "n={n}: HNSW plugin backend: loading {n} vectors (batches of {}; the index builds past {} vectors)…",
        a.batch, a.hnsw_threshold
    ));
    let (strata, v) = ctx
        .rt
        .block_on(open_backend(&ctx.dir, "hnsw", &ctx.lib, &config))?;
    let built = (|| {
        let load_time = ctx.rt.block_on(load(&v, data, a.dim, a.batch))?;
        progress(format!(
            "n={n}: HNSW plugin backend: upserts took {:.2}s; building (first query)…",
            load_time.as_secs_f64()
        ));
        // The first query loads the collection and starts the index build
        // (in the background by default: the query itself is answered by
        // exact search); load+build runs until the index is installed.
        let first = Instant::now();
        ctx.rt
            .block_on(v.query(
                COLLECTION,
                &plugin_query(&queries[0], a.ef.first().copied()),
            ))
            .map_err(|e| e.to_string())?;
        let first = first.elapsed();
        let wait = Instant::now();
        let stats = wait_for_index(ctx, &v, n)?;
        let wait = wait.elapsed();
        let build = load_time + first + wait;
        progress(format!(
            "n={n}: HNSW plugin backend: load+build {:.2}s (upserts {:.2}s + first query {:.3}s + index ready {:.2}s later); count {}; details {}",
            build.as_secs_f64(),
            load_time.as_secs_f64(),
            first.as_secs_f64(),
            wait.as_secs_f64(),
            stats.count,
            stats.details
        ));
        notes.push(format!(
            "HNSW plugin load+build {:.2}s = upserts {:.2}s + first query {:.3}s (answered by exact search; it starts the background index build) + {:.2}s until the index is installed.",
            build.as_secs_f64(),
            load_time.as_secs_f64(),
            first.as_secs_f64(),
            wait.as_secs_f64()
        ));
        Ok::<_, String>((build, stats.details))
    })();
    match built {
        Ok((build, details)) => Ok(PluginHnsw {
            strata,
            v,
            db,
            build,
            details,
        }),
        Err(e) => {
            let _ = ctx.rt.block_on(strata.close());
            Err(e)
        }
    }
}

/// Phase 2b: the same data loaded into a collection that is queried after
/// every batch, with the default (background) builds: the agent's pattern,
/// where the cache is loaded and, past the threshold, the index is kept up
/// to date (or rebuilt in the background) as batches arrive. Measured until
/// the index holds every vector; the result is a note.
fn grow_plugin_hnsw(
    ctx: &Ctx,
    n: usize,
    data: &[f32],
    queries: &[Vec<f32>],
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let a = ctx.args;
    let db = ctx.dir.join(format!("grow-{n}.sqlite"));
    let config = hnsw_config(a, &db);
    progress(format!(
        "n={n}: growing collection: {n} vectors in batches of {}, a query after each…",
        a.batch
    ));
    let (strata, v) = ctx
        .rt
        .block_on(open_backend(&ctx.dir, "grow", &ctx.lib, &config))?;
    let measured = (|| {
        ctx.rt
            .block_on(v.create_collection(COLLECTION, a.dim as u32, Metric::Cosine))
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        let (mut upserts, mut querying) = (Duration::ZERO, Duration::ZERO);
        for (b, chunk) in data.chunks(a.batch.max(1) * a.dim).enumerate() {
            let records = batch_records(chunk, b, a.batch, a.dim);
            let t = Instant::now();
            ctx.rt
                .block_on(v.upsert(COLLECTION, records))
                .map_err(|e| e.to_string())?;
            upserts += t.elapsed();
            let t = Instant::now();
            ctx.rt
                .block_on(v.query(COLLECTION, &plugin_query(&queries[b % queries.len()], None)))
                .map_err(|e| e.to_string())?;
            querying += t.elapsed();
        }
        let wait = Instant::now();
        loop {
            let stats = collection_stats(ctx, &v)?;
            let d = &stats.details;
            if a.hnsw_threshold == 0
                || n < a.hnsw_threshold
                || (d["index"] == "hnsw" && d["hnsw"]["points"].as_u64() == Some(n as u64))
            {
                break;
            }
            if let Some(e) = d["hnsw_build"]["error"].as_str() {
                return Err(format!("the index build failed: {e}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let wait = wait.elapsed();
        Ok::<_, String>((start.elapsed(), upserts, querying, wait))
    })();
    let _ = ctx.rt.block_on(strata.close());
    let (total, upserts, querying, wait) = measured?;
    let note = format!(
        "Growing collection (a query after each batch of {}, background builds as configured by default): \
         {n} vectors indexed {:.2}s after the first upsert = upserts {:.2}s + queries {:.2}s + {:.2}s until the index held every vector.",
        a.batch,
        total.as_secs_f64(),
        upserts.as_secs_f64(),
        querying.as_secs_f64(),
        wait.as_secs_f64()
    );
    progress(format!("n={n}: {note}"));
    notes.push(note);
    Ok(())
}

/// Closes the HNSW plugin backend; the sidecar index size in bytes (the
/// larger of while open and after close).
fn close_plugin_hnsw(
    ctx: &Ctx,
    p: PluginHnsw,
    query: &[f32],
    notes: &mut Vec<String>,
) -> Result<u64, String> {
    let dir = sidecar(&p.db);
    let open_size = dir_size(&dir);
    ctx.rt
        .block_on(p.strata.close())
        .map_err(|e| format!("closing the HNSW backend: {e}"))?;
    let closed_size = dir_size(&dir);
    let size = closed_size.max(open_size);
    if size == 0 {
        let note = format!(
            "no index files found in {} (open or after close)",
            dir.display()
        );
        progress(&note);
        notes.push(note);
    } else if closed_size != open_size {
        notes.push(format!(
            "Sidecar index size: {:.2} MB while open, {:.2} MB after close (the table shows the larger).",
            open_size as f64 / 1e6,
            closed_size as f64 / 1e6
        ));
    }
    match reopen_plugin_hnsw(ctx, &p.db, query) {
        Ok(note) => notes.push(note),
        Err(e) => notes.push(format!("Reopening the HNSW backend failed: {e}")),
    }
    Ok(size)
}

/// Phase 2c: the closed HNSW backend opened again (what a restarted agent
/// does): time to open, to answer its first query, and until the index is
/// in use again (loaded from the sidecar, not rebuilt); the result is a note.
fn reopen_plugin_hnsw(ctx: &Ctx, db: &Path, query: &[f32]) -> Result<String, String> {
    let a = ctx.args;
    let config = hnsw_config(a, db);
    let memory = crate::rss::Sampler::start();
    let start = Instant::now();
    ctx.rt.block_on(async {
        let (strata, v) = open_backend(&ctx.dir, "hnswreopen", &ctx.lib, &config).await?;
        let opened = start.elapsed();
        let q = plugin_query(query, a.ef.first().copied());
        v.query(COLLECTION, &q).await.map_err(|e| e.to_string())?;
        let first = start.elapsed();
        let details = loop {
            let stats = v
                .stats(COLLECTION)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("collection vanished")?;
            if stats.details["index"] == "hnsw" || start.elapsed() > Duration::from_secs(600) {
                break stats.details;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ready = start.elapsed();
        let resident = memory.growth_now();
        strata.close().await.map_err(|e| e.to_string())?;
        let peak = memory.finish();
        let mb = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / 1e6;
        let note = format!(
            "Reopen of the closed HNSW backend: open {:.3}s, first query answered after {:.2}s, index in use after {:.2}s (origin {}, index memory {:.1} MB, f32 cache {:.1} MB held by {}, int8 copy {:.1} MB); process RSS {:.0} MiB above the start with the index in use, peak {:.0} MiB while opening.",
            opened.as_secs_f64(),
            first.as_secs_f64(),
            ready.as_secs_f64(),
            details["hnsw"]["origin"],
            mb(&details["hnsw"]["memory_bytes"]),
            mb(&details["exact_scan"]["f32_cache_bytes"]),
            details["exact_scan"]["f32_held_by"].as_str().unwrap_or("cache"),
            mb(&details["exact_scan"]["int8_copy_bytes"]),
            resident,
            peak,
        );
        progress(&note);
        Ok(note)
    })
}

/// Phase 3: hnsw_rs in-process: the graph, the normalised queries, build time.
fn build_direct(
    ctx: &Ctx,
    n: usize,
    data: &[f32],
    queries: &[Vec<f32>],
) -> (Hnsw<'static, f32, DistDot>, Vec<Vec<f32>>, Duration) {
    let a = ctx.args;
    let dim = a.dim;
    let normed: Vec<f32> = data
        .chunks_exact(dim)
        .flat_map(|v| unit(v, UNIT_SHRINK))
        .collect();
    let qs: Vec<Vec<f32>> = queries.iter().map(|q| unit(q, UNIT_SHRINK)).collect();
    progress(format!(
        "n={n}: hnsw_rs direct: building (M={}, ef_construction={}, parallel_insert_slice on {} threads)…",
        a.hnsw_m,
        a.ef_construction,
        rayon_threads()
    ));
    let start = Instant::now();
    let mut hnsw = Hnsw::<f32, DistDot>::new(a.hnsw_m, n, 16, a.ef_construction, DistDot {});
    let refs: Vec<(&[f32], usize)> = normed
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (v, i))
        .collect();
    hnsw.parallel_insert_slice(&refs);
    hnsw.set_searching_mode(true);
    let build = start.elapsed();
    progress(format!(
        "n={n}: hnsw_rs direct: built {} points in {:.2}s",
        hnsw.get_nb_point(),
        build.as_secs_f64()
    ));
    (hnsw, qs, build)
}

/// hnsw_rs's graph and its (normalised) queries.
type Direct<'a> = (&'a Hnsw<'static, f32, DistDot>, &'a [Vec<f32>]);

/// Phases 2 and 3 measured: for each round and ef, the plugin pass, the
/// hnsw_rs pass and (when asked) the hnswlib pass back to back, in rotating
/// order, so machine noise falls on all alike. A plugin or hnswlib error ends
/// that side (returned).
fn measure_ann(
    ctx: &Ctx,
    n: usize,
    plugin: Option<&PluginHnsw>,
    direct: Option<Direct<'_>>,
    mut hnswlib: Option<&mut hnswlib::Hnswlib>,
    queries: &[Vec<f32>],
) -> Measured {
    let a = ctx.args;
    let fresh = || a.ef.iter().map(|_| Acc::default()).collect::<Vec<_>>();
    let mut m = Measured {
        plugin: fresh(),
        direct: fresh(),
        hnswlib: fresh(),
        plugin_error: None,
        hnswlib_error: None,
    };
    let mut plugin = plugin;
    for round in 0..a.rounds {
        progress(format!(
            "n={n}: round {}/{}: querying ef={} ({}hnsw_rs direct{})…",
            round + 1,
            a.rounds,
            a.ef.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(","),
            if plugin.is_some() {
                "HNSW plugin, "
            } else {
                ""
            },
            if hnswlib.is_some() { ", hnswlib" } else { "" }
        ));
        for (i, &ef) in a.ef.iter().enumerate() {
            for turn in 0..3 {
                match (turn + round + i) % 3 {
                    0 => {
                        let Some(p) = plugin else { continue };
                        match ctx
                            .rt
                            .block_on(plugin_pass(&p.v, queries, Some(ef), a.warmup))
                        {
                            Ok(((ids, lat, total), _)) => m.plugin[i].add(ids, lat, total),
                            Err(e) => {
                                progress(format!("n={n}: HNSW plugin query FAILED: {e}"));
                                m.plugin_error =
                                    Some(format!("query with ef_search={ef} failed: {e}"));
                                plugin = None;
                            }
                        }
                    }
                    1 => {
                        let Some((hnsw, qs)) = direct else { continue };
                        let (ids, lat, total) = direct_pass(hnsw, qs, ef, a.warmup);
                        m.direct[i].add(ids, lat, total);
                    }
                    _ => {
                        let Some(h) = hnswlib.as_deref_mut() else {
                            continue;
                        };
                        match h.pass(ef, a.warmup) {
                            Ok((ids, lat, total)) => m.hnswlib[i].add(ids, lat, total),
                            Err(e) => {
                                progress(format!("n={n}: hnswlib FAILED: {e}"));
                                m.hnswlib_error = Some(e);
                                hnswlib = None;
                            }
                        }
                    }
                }
            }
        }
    }
    if m.plugin_error.is_some() {
        m.plugin.clear();
    }
    if m.hnswlib_error.is_some() {
        m.hnswlib.clear();
    }
    m
}

/// What [`measure_ann`] accumulated, per method and ef.
struct Measured {
    plugin: Vec<Acc>,
    direct: Vec<Acc>,
    hnswlib: Vec<Acc>,
    plugin_error: Option<String>,
    hnswlib_error: Option<String>,
}

fn ann_rows(
    method: Method,
    efs: &[usize],
    accs: Vec<Acc>,
    truth: &[Vec<usize>],
    build: Duration,
    index_mb: Option<f64>,
) -> Vec<Row> {
    efs.iter()
        .zip(accs)
        .filter(|(_, acc)| !acc.lat.is_empty())
        .map(|(&ef, acc)| {
            let (results, qps, p50, p99) = acc.finish();
            Row {
                method,
                ef: Some(ef),
                recall: recall(&results, truth),
                qps,
                p50,
                p99,
                build_s: build.as_secs_f64(),
                index_mb,
            }
        })
        .collect()
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn table(r: &SizeReport, dim: usize) -> String {
    let mut s = format!("### {} vectors × {dim} dims (cosine)\n\n", r.n);
    s.push_str("| method | ef | recall@10 | QPS | p50 ms | p99 ms | build/load s | index MB |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.0} | {} | {} | {:.2} | {} |",
            row.method.label(),
            row.ef.map_or("–".to_string(), |e| e.to_string()),
            row.recall,
            row.qps,
            ms(row.p50),
            ms(row.p99),
            row.build_s,
            row.index_mb.map_or("–".to_string(), |m| format!("{m:.2}")),
        );
    }
    if let Some(err) = &r.hnsw_error {
        let _ = writeln!(s, "\nHNSW plugin: **not run**: {err}");
    }
    for against in [Method::Direct, Method::Hnswlib] {
        let ratios = ratios(r, against);
        if !ratios.is_empty() {
            let _ = writeln!(
                s,
                "\nPlugin HNSW QPS / {} QPS at equal ef: {}",
                against.label(),
                ratios
                    .iter()
                    .map(|(ef, x)| format!("ef={ef}: {x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let exact = |m: Method| r.rows.iter().find(|x| x.method == m).map(|x| x.qps);
    if let (Some(plugin), Some(numpy)) = (exact(Method::Exact), exact(Method::NumpyExact)) {
        let _ = writeln!(
            s,
            "\nExact plugin QPS / exact numpy QPS: {:.2}",
            plugin / numpy
        );
    }
    let methods = [Method::PluginHnsw, Method::Direct, Method::Hnswlib];
    let mut equal = Vec::new();
    for target in [0.90, 0.95, 0.98, 0.99] {
        let qps: Vec<(Method, f64)> = methods
            .iter()
            .filter_map(|&m| qps_at_recall(r, m, target).map(|q| (m, q)))
            .collect();
        let Some(&(_, plugin)) = qps.iter().find(|(m, _)| *m == Method::PluginHnsw) else {
            continue;
        };
        let others: Vec<String> = qps
            .iter()
            .filter(|(m, _)| *m != Method::PluginHnsw)
            .map(|(m, q)| format!("{} {q:.0} (plugin {:.2}×)", m.label(), plugin / q))
            .collect();
        if !others.is_empty() {
            equal.push(format!(
                "recall {target:.2}: plugin {plugin:.0}, {}",
                others.join(", ")
            ));
        }
    }
    if !equal.is_empty() {
        let _ = writeln!(
            s,
            "\nQPS at equal recall@10 (interpolated linearly between the measured ef points of each method): {}",
            equal.join("; ")
        );
    }
    if let Some(d) = &r.details {
        let _ = writeln!(s, "\nHNSW plugin `CollectionStats::details`: `{d}`");
    }
    for n in &r.notes {
        let _ = writeln!(s, "\n{n}");
    }
    s
}

fn ratios(r: &SizeReport, against: Method) -> Vec<(usize, f64)> {
    r.rows
        .iter()
        .filter(|p| p.method == Method::PluginHnsw)
        .filter_map(|p| {
            r.rows
                .iter()
                .find(|d| d.method == against && d.ef == p.ef)
                .map(|d| (p.ef.unwrap_or(0), p.qps / d.qps))
        })
        .collect()
}

/// `method`'s QPS at recall `target`, interpolated linearly between the two
/// measured ef points around it (none when no point reaches it, or the
/// lowest ef is already above it).
fn qps_at_recall(r: &SizeReport, method: Method, target: f64) -> Option<f64> {
    let mut points: Vec<(f64, f64)> = r
        .rows
        .iter()
        .filter(|x| x.method == method)
        .map(|x| (x.recall, x.qps))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let above = points.iter().position(|p| p.0 >= target)?;
    if above == 0 {
        return (points[0].0 == target).then_some(points[0].1);
    }
    let (lo, hi) = (points[above - 1], points[above]);
    let t = (target - lo.0) / (hi.0 - lo.0);
    Some(lo.1 + t * (hi.1 - lo.1))
}

pub(crate) fn machine_note() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let flags = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let simd = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") && has("fma") {
        "AVX2+FMA"
    } else {
        "no AVX2"
    };
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(String::new(), |kb| {
            format!(", {:.0} GiB", kb as f64 / 1024.0 / 1024.0)
        });
    format!(
        "{model} ({simd}), nproc {}{mem}, {}",
        rayon_threads(),
        today()
    )
}

/// Today's UTC date, `YYYY-MM-DD`.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    // Howard Hinnant's civil_from_days.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Runs the benchmark.
pub(crate) fn run(mut args: VectorsArgs) {
    if args.backend == "pg" {
        return pg::run(args);
    }
    if args.backend == "qdrant" {
        return qdrant::run(args);
    }
    assert!(args.dim > 0, "--dim must be positive");
    assert!(args.queries > 0, "--queries must be positive");
    assert!(args.rounds > 0, "--rounds must be positive");
    assert!(!args.sizes.is_empty(), "--sizes is empty");
    assert!(
        args.hnsw_m <= 256,
        "--hnsw-m must be at most 256 (hnsw_rs exits the process otherwise)"
    );
    let command = std::iter::once("strata-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(crate::exe_dir);
    let lib = plugin_dir.join(library_file_name("sqlite"));
    assert!(
        lib.exists(),
        "{} not found (build it with `cargo build --release -p strata-sqlite`, or pass --plugin-dir)",
        lib.display()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    // A private copy, so a rebuild of target/release during the run cannot
    // mix two plugin builds in one report.
    let lib_copy = tmp.path().join(library_file_name("sqlite"));
    std::fs::copy(&lib, &lib_copy).expect("copy the plugin library");
    progress(format!("plugin: {} (copied for the run)", lib.display()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let real = args.data.as_ref().map(|path| {
        let strata_ann::npy::Matrix {
            values, cols: dim, ..
        } = strata_ann::npy::read_f32_matrix(path).unwrap_or_else(|e| panic!("--data: {e}"));
        let rows = values.len() / dim.max(1);
        assert!(
            rows > args.queries,
            "--data {} has {rows} rows: fewer than --queries {} + 1",
            path.display(),
            args.queries
        );
        progress(format!(
            "real embeddings: {rows} × {dim} from {} (the last {} rows are the queries)",
            path.display(),
            args.queries
        ));
        (values, dim, rows)
    });
    if let Some((_, dim, rows)) = &real {
        args.dim = *dim;
        let most = rows - args.queries;
        for n in &mut args.sizes {
            *n = (*n).min(most);
        }
        args.sizes.dedup();
    }
    let texts = match (&args.data, &real) {
        (Some(path), Some((_, _, rows))) => {
            filtered::texts(path, *rows).unwrap_or_else(|e| panic!("--data texts: {e}"))
        }
        _ => None,
    };
    let args = args;
    let ctx = Ctx {
        args: &args,
        rt: &rt,
        lib: lib_copy,
        dir: tmp.path().to_path_buf(),
    };
    let mut reports = Vec::new();
    for &n in &args.sizes {
        let (data, queries) = match &real {
            Some((values, dim, rows)) => {
                let queries = values[(rows - args.queries) * dim..]
                    .chunks_exact(*dim)
                    .map(<[f32]>::to_vec)
                    .collect();
                (values[..n * dim].to_vec(), queries)
            }
            None => {
                progress(format!(
                    "n={n}: generating {n} × {} vectors ({} clusters, spread {}) and {} queries…",
                    args.dim, args.clusters, args.spread, args.queries
                ));
                generate(
                    n,
                    args.queries,
                    args.dim,
                    args.clusters,
                    args.spread,
                    args.seed ^ n as u64,
                )
            }
        };
        let mut notes = Vec::new();
        let (exact, truth) = run_exact(&ctx, n, &data, &queries, &mut notes);
        let mut rows = vec![exact];
        let mut hnsw_error = None;
        let plugin = open_plugin_hnsw(&ctx, n, &data, &queries, &mut notes)
            .map_err(|e| {
                progress(format!("n={n}: HNSW plugin backend FAILED: {e}"));
                hnsw_error = Some(e);
            })
            .ok();
        let details = plugin.as_ref().map(|p| p.details.clone());
        let direct = (!args.skip_hnsw_rs).then(|| build_direct(&ctx, n, &data, &queries));
        let mut lib = args.hnswlib.as_ref().and_then(|python| {
            progress(format!(
                "n={n}: hnswlib: building (M={}, ef_construction={}, all threads)…",
                args.hnsw_m, args.ef_construction
            ));
            hnswlib::Hnswlib::start(
                python,
                tmp.path(),
                &data,
                &queries,
                &hnswlib::Params {
                    dim: args.dim,
                    m: args.hnsw_m,
                    ef_construction: args.ef_construction,
                    k: TOP_K,
                },
            )
            .map_err(|e| {
                progress(format!("n={n}: hnswlib FAILED: {e}"));
                notes.push(format!("hnswlib did not run: {e}"));
            })
            .ok()
        });
        if let Some(h) = &lib {
            progress(format!(
                "n={n}: hnswlib {}: built in {:.2}s",
                h.version,
                h.build.as_secs_f64()
            ));
            notes.push(format!(
                "hnswlib {} (PyPI, compiled from source by pip), space \"cosine\", built with `num_threads=-1`; queries one at a time through `knn_query` on one thread (the Python call is inside the timing). Exact (numpy BLAS) runs in the same child after the ANN passes: the collection L2-normalised once, then per query one matrix-vector product (numpy's BLAS) and `argpartition` + sort of the best 10.",
                h.version
            ));
        }
        let measured = measure_ann(
            &ctx,
            n,
            plugin.as_ref(),
            direct.as_ref().map(|(h, qs, _)| (h, qs.as_slice())),
            lib.as_mut(),
            &queries,
        );
        let lib_build = lib.as_ref().map(|h| h.build);
        // The exact baseline: numpy in the same child, after the ANN passes.
        let numpy = lib.as_mut().map(|h| {
            progress(format!("n={n}: exact search with numpy…"));
            let mut acc = Acc::default();
            for _ in 0..args.rounds {
                match h.pass(0, args.warmup) {
                    Ok((ids, lat, total)) => acc.add(ids, lat, total),
                    Err(e) => {
                        notes.push(format!("numpy exact search failed: {e}"));
                        return Acc::default();
                    }
                }
            }
            acc
        });
        drop(lib);
        if let Some(acc) = numpy.filter(|a| !a.lat.is_empty()) {
            let (results, qps, p50, p99) = acc.finish();
            rows.push(Row {
                method: Method::NumpyExact,
                ef: None,
                recall: recall(&results, &truth),
                qps,
                p50,
                p99,
                build_s: 0.0,
                index_mb: None,
            });
        }
        if let Some(e) = &measured.hnswlib_error {
            notes.push(format!("hnswlib failed: {e}"));
        }
        let (pacc, dacc, query_error) = (measured.plugin, measured.direct, measured.plugin_error);
        let direct_build = direct.map(|(_, _, build)| build);
        if let Some(p) = plugin {
            let build = p.build;
            match close_plugin_hnsw(&ctx, p, &queries[0], &mut notes) {
                Ok(size) => rows.extend(ann_rows(
                    Method::PluginHnsw,
                    &args.ef,
                    pacc,
                    &truth,
                    build,
                    (size > 0).then_some(size as f64 / 1e6),
                )),
                Err(e) => hnsw_error = Some(e),
            }
        }
        if query_error.is_some() {
            hnsw_error = query_error;
        }
        if args.skip_growing {
            notes.push("Growing collection: not run (`--skip-growing`).".to_string());
        } else if let Err(e) = grow_plugin_hnsw(&ctx, n, &data, &queries, &mut notes) {
            progress(format!("n={n}: growing collection FAILED: {e}"));
            notes.push(format!("Growing collection failed: {e}"));
        }
        if args.skip_filtered {
            notes.push("Filtered and hybrid queries: not run (`--skip-filtered`).".to_string());
        } else {
            let (texts, query_texts) = match &texts {
                Some(t) => (Some(&t[..n]), Some(&t[t.len() - args.queries..])),
                None => (None, None),
            };
            match filtered::measure(&ctx, n, &data, texts, &queries, query_texts) {
                Ok(md) => notes.push(md),
                Err(e) => {
                    progress(format!("n={n}: filtered/hybrid queries FAILED: {e}"));
                    hnsw_error = Some(format!("filtered/hybrid queries: {e}"));
                }
            }
        }
        if let Some(build) = direct_build {
            rows.extend(ann_rows(
                Method::Direct,
                &args.ef,
                dacc,
                &truth,
                build,
                None,
            ));
        }
        if let Some(build) = lib_build {
            rows.extend(ann_rows(
                Method::Hnswlib,
                &args.ef,
                measured.hnswlib,
                &truth,
                build,
                None,
            ));
        }
        let report = SizeReport {
            n,
            rows,
            notes,
            details,
            hnsw_error,
        };
        println!("{}", table(&report, args.dim));
        reports.push(report);
        // Drop this size's plugin databases before the next size.
        for entry in std::fs::read_dir(tmp.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = entry.path();
            if p != ctx.lib && p.extension().is_none_or(|e| e != "toml") {
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }

    std::fs::create_dir_all(&args.out_dir).expect("create --out-dir");
    let png = args.out_dir.join("vectors-sqlite.png");
    let font = crate::plot::load_font();
    if let Err(e) = crate::plot::draw(&png, &reports_for_plot(&reports), font) {
        progress(format!("plot failed: {e}"));
    } else {
        progress(format!("wrote {}", png.display()));
    }
    let md = markdown(&args, &command, &reports, font);
    let md_path = args.out_dir.join("vectors-sqlite.md");
    std::fs::write(&md_path, md).expect("write vectors-sqlite.md");
    progress(format!("wrote {}", md_path.display()));
    if reports.iter().any(|r| r.hnsw_error.is_some()) {
        eprintln!(
            "[vectors] plugin HNSW did not run for every size (see above); exiting with status 2"
        );
        std::process::exit(2);
    }
}

fn reports_for_plot(reports: &[SizeReport]) -> Vec<crate::plot::Panel> {
    reports
        .iter()
        .map(|r| {
            let pick = |m: Method| -> Vec<(f64, f64, usize)> {
                r.rows
                    .iter()
                    .filter(|x| x.method == m)
                    .map(|x| (x.recall, x.qps, x.ef.unwrap_or(0)))
                    .collect()
            };
            crate::plot::Panel {
                title: format!("{} vectors", r.n),
                plugin: pick(Method::PluginHnsw),
                direct: pick(Method::Direct),
                exact: pick(Method::Exact).first().map(|p| (p.0, p.1)),
                labels: ("HNSW plugin", "hnsw_rs direct"),
            }
        })
        .collect()
}

fn markdown(args: &VectorsArgs, command: &str, reports: &[SizeReport], font: bool) -> String {
    let data = match &args.data {
        Some(path) => format!(
            "real text embeddings from `{}` ({} dims; made by `scripts/bench/wordnet-embeddings.sh`: WordNet 3.0 glosses, \
             shuffled with a fixed seed, embedded with all-MiniLM-L6-v2), the collection its first rows, the {} queries its last rows \
             (texts not in the collection)",
            path.display(),
            args.dim,
            args.queries
        ),
        None => format!(
            "seeded (seed {} xor size) clustered vectors, {} random unit-norm centres in {} dims plus \
             isotropic gaussian noise of norm ≈ {}; {} queries from the same distribution",
            args.seed, args.clusters, args.dim, args.spread, args.queries
        ),
    };
    let mut s =
        String::from("# Vector search: SQLite plugin (exact, HNSW) vs hnsw_rs in-process\n\n");
    let _ = writeln!(
        s,
        "Command (release build, from the repository root):\n\n```sh\n{command}\n```\n"
    );
    let _ = writeln!(s, "Machine: {}\n", machine_note());
    let _ = writeln!(
        s,
        "Data: {data}; cosine; top {TOP_K}. \
         Exact = host + libstrata_sqlite.so with `hnsw_threshold = 0`, loaded by `upsert` in batches of {}; \
         its results are the recall ground truth ({} of them checked against brute force in f64). \
         HNSW plugin = a second database with `hnsw_threshold = {}, hnsw_m = {}, hnsw_ef_construction = {}` \
         (the plugin's own flat-layout HNSW, `ann/src/hnsw.rs` in the strata-ann crate, built on all cores; candidates rescored exactly), \
         `ef_search` per query in `Query::options`; build/load = upserts + first query + wait until the background-built index is installed; index MB = files in \
         `<db>.strata-index/`. hnsw_rs direct = `Hnsw::<f32, DistDot>` (M {}, ef_construction {}, max_layer 16, \
         `parallel_insert_slice` on {} threads, anndists `simdeez_f` SIMD distances) on L2-normalised vectors, \
         in memory (no index file). Queries run one at a time on one thread (plugin: current-thread tokio runtime, \
         results carry ids and scores only): {} rounds of all queries per method and ef, the HNSW plugin and \
         hnsw_rs passes of each ef back to back in alternating order, each pass after {} untimed warm-up queries; \
         QPS = measured queries / their loop time, p50/p99 over all per-query latencies of all rounds.\n",
        args.batch,
        args.verify.min(args.queries),
        args.hnsw_threshold,
        args.hnsw_m,
        args.ef_construction,
        args.hnsw_m,
        args.ef_construction,
        rayon_threads(),
        args.rounds,
        args.warmup,
    );
    for r in reports {
        s.push_str(&table(r, args.dim));
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "Plot: `vectors-sqlite.png` — recall@10 (x) vs QPS (y, log), one panel per size; red = HNSW plugin, \
         blue = hnsw_rs direct (points labelled with ef), black triangle = exact (plugin).{}",
        if font {
            ""
        } else {
            " (Drawn without text: no font file was found.)"
        }
    );
    s
}
