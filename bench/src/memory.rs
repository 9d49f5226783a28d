//! `strata-bench memory`: recall latency of the agent-memory layer
//! (`strata_memory::Memory`) at a given number of memories, on the SQLite
//! plugin (HNSW sidecar) or on Postgres + pgvector, embedding time
//! measured apart from search time.
//!
//! Memories are synthetic agent notes (seeded templates, ~15 words each,
//! plus three words of a Zipf-like long tail of 30,000 pseudo-words),
//! loaded with `Memory::remember_many` in batches and embedded with the
//! hash demo embedder (384 buckets), so a 100K load takes seconds, not the
//! ~30 minutes all-MiniLM-L6-v2 would need on two cores; the vectors are
//! 384-d like MiniLM's, so the search side sees the same shape of data.
//! Each query is five words of a random stored memory. Per query:
//!
//! - **embed**: the query's embedding (the hash embedder here; the real
//!   model's cost is measured once, apart, with all-MiniLM-L6-v2 when
//!   it is present);
//! - **dense search**: the vector backend's nearest-neighbour query alone
//!   (the recall's `max(4k, 20)` candidates, with their vectors), to tell
//!   the vector index from the lexical half;
//! - **hybrid search**: the vector backend's dense + BM25 ranking of the
//!   same candidates, what `Memory::recall` asks the backend for;
//! - **recall**: `Memory::recall_by_vector` (hybrid search, then reading
//!   the traces, the re-rank and the access-count update): a whole recall
//!   without the embedding;
//! - **filtered recall**: the same recall among the memories whose
//!   metadata has `"n": 3` (a tenth of them), every trace returned checked;
//! - **question**: the same words asked as a question, `what do we know
//!   about the … ?` ("the" is in most memories): the hybrid search with that text as typed (function words
//!   included), and the recall, which leaves function words out of the
//!   full-text half.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_host::{Include, Strata, loader::library_file_name};
use strata_memory::{
    Embedder, HashEmbedder, Memory, MiniLmEmbedder, NewTrace, RecallOptions, TRACES,
};

/// Arguments of `strata-bench memory`.
#[derive(clap::Args, Debug)]
pub(crate) struct MemoryArgs {
    /// Numbers of memories, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    /// `sqlite` (the plugin's HNSW sidecar past 1,000 vectors) or `pg`
    /// (pgvector HNSW; $DATABASE_URL or --database-url).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "pg"])]
    backend: String,
    /// Timed queries per size (after 20 untimed ones).
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Traces per recall.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Memories per `remember_many` call while loading.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// PostgreSQL URL for `--backend pg` (default: $DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// Directory holding the plugin libraries (default: next to this binary).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// all-MiniLM-L6-v2's directory, to time real query embeddings (default:
    /// where scripts/models/minilm.sh puts it; skipped when absent).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Append the Markdown result to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const NAMES: &[&str] = &[
    "Ana",
    "Ben",
    "Carla",
    "Dan",
    "Elena",
    "Farid",
    "Gina",
    "Hana",
    "Ivan",
    "Julia",
    "Kenji",
    "Liam",
    "Maria",
    "Nadia",
    "Oscar",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "the user",
    "the team",
    "the client",
    "ops",
];
const VERBS: &[&str] = &[
    "prefers",
    "asked about",
    "complained about",
    "fixed",
    "scheduled",
    "wants",
    "reviewed",
    "forgot",
    "booked",
    "deployed",
    "mentioned",
    "dislikes",
    "ordered",
    "renamed",
    "measured",
];
const THINGS: &[&str] = &[
    "green tea",
    "the staging cluster",
    "a window seat",
    "the payment service",
    "dark mode",
    "the quarterly budget",
    "the login flow",
    "a vegetarian lunch",
    "the release notes",
    "the backup bucket",
    "the websocket test",
    "the offsite in Lisbon",
    "the feature flag",
    "the database migration",
    "the on-call rotation",
    "a standing desk",
    "the api rate limit",
    "the thumbnail cache",
    "the onboarding webinar",
    "the security audit",
    "the blue-green deploy",
    "the python scripts",
    "the invoice template",
    "the office plants",
    "the vpn certificate",
    "the search index",
    "the mobile app",
    "the conference talk",
    "the hiring plan",
    "the sprint review",
];
const WHEN: &[&str] = &[
    "on monday",
    "last week",
    "before the launch",
    "every morning",
    "after lunch",
    "in the retro",
    "during the outage",
    "next quarter",
    "at the standup",
    "over the weekend",
];
const WHY: &[&str] = &[
    "because it was slow",
    "to save money",
    "as the manager asked",
    "for the new customer",
    "since the tests were flaky",
    "to meet the deadline",
    "after a long discussion",
    "without telling anyone",
    "with two approvals",
    "for the demo",
];

/// A pseudo-word of the long tail: two to four syllables, drawn so that
/// word `r` is about `1 / (r + 10)` likely (Zipf-like over 30,000 words), as
/// names, identifiers and rare terms are in real notes.
fn rare_word(rng: &mut StdRng) -> String {
    const SYL: &[&str] = &[
        "ka", "lo", "mi", "ren", "tus", "vo", "zel", "qua", "dri", "fen", "gor", "hap", "jin",
        "pex", "sar", "tol", "ub", "wim", "yad", "nox",
    ];
    // Inverse of the continuous 1/(r + 10) distribution over [0, 30000).
    let u: f64 = rng.random();
    let r = (10.0 * (30_010.0f64 / 10.0).powf(u) - 10.0) as usize;
    let mut w = String::new();
    let mut x = r + 1;
    while x > 0 {
        w.push_str(SYL[x % SYL.len()]);
        x /= SYL.len();
    }
    w
}

fn memory_text(rng: &mut StdRng, i: usize) -> String {
    let pick = |rng: &mut StdRng, xs: &[&'static str]| xs[rng.random_range(0..xs.len())];
    format!(
        "{} {} {} {} {}, re {} {} {} (note {i})",
        pick(rng, NAMES),
        pick(rng, VERBS),
        pick(rng, THINGS),
        pick(rng, WHEN),
        pick(rng, WHY),
        rare_word(rng),
        rare_word(rng),
        rare_word(rng),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

struct SizeResult {
    size: usize,
    load: Duration,
    build: Duration,
    embed: Vec<Duration>,
    dense: Vec<Duration>,
    search: Vec<Duration>,
    recall: Vec<Duration>,
    recall_total: Duration,
    filtered: Vec<Duration>,
    question_raw: Vec<Duration>,
    question: Vec<Duration>,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("strata-bench memory: {msg}");
    std::process::exit(1)
}

fn config(args: &MemoryArgs, dir: &std::path::Path, size: usize) -> (String, Option<String>) {
    let lib = args
        .plugin_dir
        .clone()
        .unwrap_or_else(crate::exe_dir)
        .join(library_file_name(if args.backend == "pg" {
            "postgres"
        } else {
            "sqlite"
        }));
    if !lib.is_file() {
        fail(format!(
            "{} not found (build it with `cargo build --release -p strata-{}`, or pass --plugin-dir)",
            lib.display(),
            if args.backend == "pg" {
                "postgres"
            } else {
                "sqlite"
            }
        ));
    }
    if args.backend == "pg" {
        let url = args
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .unwrap_or_else(|| fail("--backend pg needs --database-url or $DATABASE_URL"));
        let schema = format!("strata_bench_memory_{size}_{}", std::process::id());
        (
            format!(
                "[backends.brain]\nlibrary = {lib:?}\nconfig = {{ url = {url:?}, schema = {schema:?} }}\n"
            ),
            Some(schema),
        )
    } else {
        let db = dir.join(format!("brain-{size}.sqlite"));
        (
            format!("[backends.brain]\nlibrary = {lib:?}\nconfig = {{ path = {db:?} }}\n"),
            None,
        )
    }
}

async fn run_size(args: &MemoryArgs, size: usize) -> SizeResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let (toml, schema) = config(args, dir.path(), size);
    let file = dir.path().join("plugins.toml");
    std::fs::write(&file, toml).expect("write plugins.toml");
    let strata = Strata::load(&file).unwrap_or_else(|e| fail(e));
    let embedder = Arc::new(HashEmbedder::new(384));
    let m = Memory::open(&strata, embedder.clone())
        .await
        .unwrap_or_else(|e| fail(e));

    let mut rng = StdRng::seed_from_u64(42 ^ size as u64);
    let texts: Vec<String> = (0..size).map(|i| memory_text(&mut rng, i)).collect();
    eprintln!("memory n={size} ({}): loading…", args.backend);
    let started = Instant::now();
    for (c, chunk) in texts.chunks(args.batch).enumerate() {
        let batch: Vec<NewTrace> = chunk
            .iter()
            .enumerate()
            .map(|(j, t)| {
                let i = c * args.batch + j;
                NewTrace::new(t.clone())
                    .id(format!("m{i:07}"))
                    .metadata(serde_json::json!({ "n": i % 10 }))
                    .importance((i % 10) as f64 / 10.0)
            })
            .collect();
        m.remember_many(&batch).await.unwrap_or_else(|e| fail(e));
    }
    let load = started.elapsed();
    eprintln!(
        "memory n={size}: loaded in {:.1}s; building the index…",
        load.as_secs_f64()
    );

    // Index: pgvector's is built on first use past the plugin's threshold
    // (the stats call); the SQLite plugin builds its HNSW sidecar in the
    // background after the first query, so wait until it is installed.
    let started = Instant::now();
    let v = m.vectors();
    if args.backend == "sqlite" {
        m.recall("warm up", &RecallOptions::top(args.k))
            .await
            .unwrap_or_else(|e| fail(e));
    }
    loop {
        let stats = v
            .stats(TRACES)
            .await
            .unwrap_or_else(|e| fail(e))
            .unwrap_or_else(|| fail("the traces collection vanished"));
        if args.backend == "pg" || size < 1000 || stats.details["index"] == "hnsw" {
            eprintln!("memory n={size}: index {}", stats.details);
            break;
        }
        if let Some(e) = stats.details["hnsw_build"]["error"].as_str() {
            fail(format!("the index build failed: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let build = started.elapsed();

    let queries: Vec<String> = (0..args.queries + 20)
        .map(|_| {
            let t = &texts[rng.random_range(0..size)];
            // Two words of the template part, two of the long tail.
            let words: Vec<&str> = t
                .split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                .filter(|w| w.len() > 3 && w.parse::<u64>().is_err())
                .collect();
            let n = words.len();
            [words[1], words[2], words[n - 2], words[n - 1]].join(" ")
        })
        .collect();
    let candidates = args.k.saturating_mul(4).max(20);
    let mut res = SizeResult {
        size,
        load,
        build,
        embed: Vec::new(),
        dense: Vec::new(),
        search: Vec::new(),
        recall: Vec::new(),
        recall_total: Duration::ZERO,
        filtered: Vec::new(),
        question_raw: Vec::new(),
        question: Vec::new(),
    };
    for (i, q) in queries.iter().enumerate() {
        let timed = i >= 20;
        let t = Instant::now();
        let vector = embedder
            .embed(std::slice::from_ref(q))
            .await
            .unwrap_or_else(|e| fail(e))
            .pop()
            .unwrap_or_default();
        let embed = t.elapsed();
        let hybrid = strata_host::Hybrid::new(vector.clone(), q.as_str())
            .top_k(candidates)
            .include(Include {
                vector: true,
                ..Include::default()
            });
        let dense_q = strata_host::Query::new(vector.clone())
            .top_k(candidates)
            .include(Include {
                vector: true,
                ..Include::default()
            });
        let t = Instant::now();
        let hits = v.query(TRACES, &dense_q).await.unwrap_or_else(|e| fail(e));
        let dense = t.elapsed();
        std::hint::black_box(hits);
        let t = Instant::now();
        let hits = v
            .hybrid_query(TRACES, &hybrid)
            .await
            .unwrap_or_else(|e| fail(e));
        let search = t.elapsed();
        std::hint::black_box(hits);
        let t = Instant::now();
        let got = m
            .recall_by_vector(q, vector.clone(), &RecallOptions::top(args.k))
            .await
            .unwrap_or_else(|e| fail(e));
        let recall = t.elapsed();
        assert!(!got.is_empty(), "no trace recalled for {q:?}");
        // The same recall among a tenth of the memories (`{"n": 3}`).
        let t = Instant::now();
        let got = m
            .recall_by_vector(
                q,
                vector.clone(),
                &RecallOptions::top(args.k).filter(serde_json::json!({ "n": 3 })),
            )
            .await
            .unwrap_or_else(|e| fail(e));
        let filtered = t.elapsed();
        assert!(!got.is_empty(), "no trace recalled for {q:?} with a filter");
        if let Some(bad) = got.iter().find(|r| r.trace.metadata["n"] != 3) {
            fail(format!("the filtered recall returned {}", bad.trace.id));
        }
        // The same words asked as a question: the full-text half as typed
        // (function words and all), then the recall (which drops them).
        let question = format!("what do we know about the {q}?");
        let raw = strata_host::Hybrid::new(vector.clone(), question.as_str())
            .top_k(candidates)
            .include(Include {
                vector: true,
                ..Include::default()
            });
        let t = Instant::now();
        let hits = v
            .hybrid_query(TRACES, &raw)
            .await
            .unwrap_or_else(|e| fail(e));
        let question_raw = t.elapsed();
        std::hint::black_box(hits);
        let t = Instant::now();
        let got = m
            .recall_by_vector(&question, vector, &RecallOptions::top(args.k))
            .await
            .unwrap_or_else(|e| fail(e));
        let question_t = t.elapsed();
        std::hint::black_box(got);
        if timed {
            res.embed.push(embed);
            res.dense.push(dense);
            res.search.push(search);
            res.recall.push(recall);
            res.recall_total += recall;
            res.filtered.push(filtered);
            res.question_raw.push(question_raw);
            res.question.push(question_t);
        }
    }
    if let Some(schema) = schema {
        let _ = m
            .sql()
            .exec(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }
    drop(m);
    strata.close().await.unwrap_or_else(|e| fail(e));
    res
}

/// p50 / p99 (ms) of all-MiniLM-L6-v2 embedding one query at a time.
async fn minilm_embed(args: &MemoryArgs) -> Option<(String, f64, f64)> {
    let dir = args
        .model_dir
        .clone()
        .or_else(strata_memory::minilm::default_model_dir)?;
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "memory: no all-MiniLM-L6-v2 in {} (scripts/models/minilm.sh fetches it): real embedding time not measured",
            dir.display()
        );
        return None;
    }
    let e = MiniLmEmbedder::load(&dir).unwrap_or_else(|e| fail(e));
    let mut rng = StdRng::seed_from_u64(7);
    let mut lat = Vec::new();
    for i in 0..120 {
        let text = memory_text(&mut rng, i);
        let q: String = text
            .split_whitespace()
            .take(5)
            .collect::<Vec<_>>()
            .join(" ");
        let t = Instant::now();
        e.embed(&[q]).await.unwrap_or_else(|e| fail(e));
        if i >= 20 {
            lat.push(t.elapsed());
        }
    }
    lat.sort_unstable();
    Some((
        e.name().to_string(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
    ))
}

/// Runs the benchmark.
pub(crate) fn run(args: MemoryArgs) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = String::new();
    for &size in &args.sizes {
        let mut r = rt.block_on(run_size(&args, size));
        for v in [
            &mut r.embed,
            &mut r.dense,
            &mut r.search,
            &mut r.recall,
            &mut r.filtered,
            &mut r.question_raw,
            &mut r.question,
        ] {
            v.sort_unstable();
        }
        let p = |v: &[Duration]| format!("{:.3} / {:.3}", ms(pct(v, 0.5)), ms(pct(v, 0.99)));
        let row = format!(
            "| {} | {} | {:.1} s ({:.0}/s) | {:.1} s | {} | {} | {} | {} | {:.0} | {} | {} | {} |\n",
            args.backend,
            r.size,
            r.load.as_secs_f64(),
            r.size as f64 / r.load.as_secs_f64(),
            r.build.as_secs_f64(),
            p(&r.embed),
            p(&r.dense),
            p(&r.search),
            p(&r.recall),
            r.recall.len() as f64 / r.recall_total.as_secs_f64(),
            p(&r.filtered),
            p(&r.question_raw),
            p(&r.question),
        );
        eprint!("{row}");
        rows.push_str(&row);
    }
    let minilm = rt.block_on(minilm_embed(&args));
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut report = format!(
        "\n### memory, {} ({}; load average at the end {load}; k = {}, {} timed queries per size)\n\n\
         | backend | memories | load (remember_many, hash embedder) | index build | embed p50 / p99 ms (hash) | dense search p50 / p99 ms | hybrid search p50 / p99 ms | recall without embedding p50 / p99 ms | recalls/s | recall with a filter (`{{\"n\": 3}}`, a tenth of the memories) p50 / p99 ms | question: hybrid search with the text as typed p50 / p99 ms | question: recall p50 / p99 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n{rows}",
        args.backend,
        crate::vectors::machine_note(),
        args.k,
        args.queries
    );
    if let Some((name, p50, p99)) = minilm {
        report.push_str(&format!(
            "\nQuery embedding with {name} (one query per call, {} threads): p50 {p50:.2} ms, p99 {p99:.2} ms. A recall with the real model costs this plus the recall column.\n",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ));
    }
    println!("{report}");
    if let Some(out) = &args.out {
        super::append_report(out, &report);
    }
}
