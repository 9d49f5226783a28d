//! `strata-bench` (also reachable as `strata bench`): benchmarks that run the
//! plugin path and its baseline in one process and report both and their ratio.
//!
//! - `sql-get`: a point `get` by primary key, random ids over a 100K-row
//!   table, through host + loaded SQLite plugin vs rusqlite called directly.
//! - `vectors`: top-10 cosine search over seeded clustered data: exact and
//!   HNSW through the SQLite plugin vs `hnsw_rs` called in-process; recall,
//!   QPS, latency, build time, index size, and a recall-vs-QPS plot.
//! - `backup`: backup and restore MB/s of a SQLite database to S3 through
//!   the backup manager vs plain file copy + the same compression.
//! - `migrate`: memory rows with 384-d embeddings SQLite → Postgres through
//!   `strata_host::migrate` vs rusqlite + binary `COPY`; peak memory.
//! - `sql`: ad-hoc SQL on PostgreSQL (distinct texts without parameters,
//!   repeated texts with parameters) through host + loaded Postgres plugin
//!   vs sqlx and tokio-postgres direct.
//! - `memory`: agent-memory recall (`strata_memory::Memory`) p50/p99 at
//!   10K and 100K memories on SQLite or Postgres, embedding timed apart
//!   from search.

mod backup;
mod backup_pg;
mod blob_store;
mod memory;
mod migrate;
mod plot;
mod rss;
mod sql_pg;
mod sql_sqlite;
mod vectors;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Deserialize;
use strata_host::{Strata, loader::library_file_name};

#[derive(Parser, Debug)]
#[command(
    name = "strata-bench",
    about = "strata benchmarks (plugin path vs baseline)"
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Point read by primary key: host + SQLite plugin vs direct rusqlite.
    SqlGet {
        /// Rows in the table.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Reads per round and per side.
        #[arg(long, default_value_t = 100_000)]
        reads: usize,
        /// Rounds over the read list (after one warm-up round).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Directory holding libstrata_sqlite.so (default: next to this binary).
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Append the result table to this Markdown file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Vector search: exact and HNSW through the SQLite plugin vs hnsw_rs in-process.
    Vectors {
        #[command(flatten)]
        args: vectors::VectorsArgs,
    },
    /// Backup and restore throughput to S3: a SQLite database vs file copy + the same compression,
    /// or (`--backend pg`) a logical Postgres backup vs binary COPY + the same compression.
    Backup {
        #[command(flatten)]
        args: backup::BackupArgs,
    },
    /// Migration: SQLite → Postgres through `strata_host::migrate` vs rusqlite + binary COPY.
    Migrate {
        #[command(flatten)]
        args: migrate::MigrateArgs,
    },
    /// Ad-hoc SQL on PostgreSQL: host + Postgres plugin vs sqlx and tokio-postgres direct.
    Sql {
        #[command(flatten)]
        args: sql_pg::SqlArgs,
    },
    /// Ad-hoc SQL on SQLite: host + SQLite plugin vs rusqlite direct.
    SqlSqlite {
        #[command(flatten)]
        args: sql_sqlite::SqlSqliteArgs,
    },
    /// Agent memory: recall p50/p99 through `strata_memory::Memory` on SQLite or Postgres,
    /// embedding timed apart from search.
    Memory {
        #[command(flatten)]
        args: memory::MemoryArgs,
    },
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Memory {
    id: i64,
    agent: String,
    content: String,
    importance: f64,
}

const QUERY_DIRECT: &str = "SELECT id, agent, content, importance FROM memories WHERE id = ?1";
const QUERY_HOST: &str = "SELECT id, agent, content, importance FROM memories WHERE id = ?";

fn main() {
    let cli = Cli::parse();
    match cli.bench {
        Bench::SqlGet {
            rows,
            reads,
            rounds,
            plugin_dir,
            out,
        } => sql_get(rows, reads, rounds, plugin_dir, out),
        Bench::Vectors { args } => vectors::run(args),
        Bench::Backup { args } => backup::run(args),
        Bench::Migrate { args } => migrate::run(args),
        Bench::Sql { args } => sql_pg::run(args),
        Bench::SqlSqlite { args } => sql_sqlite::run(args),
        Bench::Memory { args } => memory::run(args),
    }
}

/// Appends `report` to the Markdown file `out` (the `--out` of every
/// benchmark), after a blank line.
fn append_report(out: &std::path::Path, report: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .unwrap_or_else(|e| panic!("opening {}: {e}", out.display()));
    writeln!(f, "\n{report}").unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    println!("appended to {}", out.display());
}

fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("."))
}

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>, total: Duration) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        mean: total / samples.len() as u32,
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

fn sql_get(
    rows: u64,
    reads: usize,
    rounds: usize,
    plugin_dir: Option<PathBuf>,
    out: Option<PathBuf>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bench.sqlite");
    // Load the table directly (setup is not what is measured).
    {
        let mut c = rusqlite::Connection::open(&db).expect("open");
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE memories (id INTEGER PRIMARY KEY, agent TEXT NOT NULL, content TEXT NOT NULL, importance REAL NOT NULL);",
        )
        .expect("schema");
        let tx = c.transaction().expect("tx");
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO memories (id, agent, content, importance) VALUES (?1, ?2, ?3, ?4)",
                )
                .expect("prepare");
            for id in 1..=rows as i64 {
                ins.execute(rusqlite::params![
                    id,
                    format!("agent-{}", id % 16),
                    format!("memory {id}: the user mentioned something worth keeping, with a little more text"),
                    (id % 100) as f64 / 100.0
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let mut rng = StdRng::seed_from_u64(42);
    let ids: Vec<i64> = (0..reads)
        .map(|_| rng.random_range(1..=rows as i64))
        .collect();

    // Baseline: rusqlite in-process, same pragmas as the plugin's readers.
    let direct = rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open direct");
    let direct_once = |id: i64| {
        let m = direct
            .prepare_cached(QUERY_DIRECT)
            .expect("prepare")
            .query_row([id], |r| {
                Ok(Memory {
                    id: r.get(0)?,
                    agent: r.get(1)?,
                    content: r.get(2)?,
                    importance: r.get(3)?,
                })
            })
            .expect("row");
        std::hint::black_box(m);
    };

    // Plugin path: host front end -> loaded libstrata_sqlite.so.
    let plugin_dir = plugin_dir.unwrap_or_else(exe_dir);
    // The config lives in a temporary directory: a relative path would
    // resolve against it.
    let plugin_dir = std::fs::canonicalize(&plugin_dir).unwrap_or(plugin_dir);
    let lib = plugin_dir.join(library_file_name("sqlite"));
    let config = dir.path().join("plugins.toml");
    std::fs::write(
        &config,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?} }}\n",
            lib, db
        ),
    )
    .expect("config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let strata = Strata::load(&config).expect("load config");
    let sql = rt.block_on(strata.sql()).expect("open plugin");

    // The three sides run interleaved in chunks of 500 reads, in rotating
    // order, so machine noise and cache warmth fall on all of them alike.
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut totals = [Duration::ZERO; 3];
    let chunk = 500;
    for warm in [true, false] {
        for _ in 0..if warm { 1 } else { rounds } {
            for (c, ids) in ids.chunks(chunk).enumerate() {
                for side in 0..3 {
                    let which = (c + side) % 3;
                    let start = Instant::now();
                    rt.block_on(async {
                        for &id in ids {
                            let t = Instant::now();
                            match which {
                                0 => direct_once(id),
                                1 => {
                                    let row =
                                        sql.get(QUERY_HOST, [id]).await.expect("get").expect("row");
                                    std::hint::black_box(row);
                                }
                                _ => {
                                    let row =
                                        sql.get(QUERY_HOST, [id]).await.expect("get").expect("row");
                                    let m: Memory = row.deserialize().expect("deserialize");
                                    std::hint::black_box(m);
                                }
                            }
                            if !warm {
                                samples[which].push(t.elapsed());
                            }
                        }
                    });
                    if !warm {
                        totals[which] += start.elapsed();
                    }
                }
            }
        }
    }
    let [sd, sp, st] = samples;
    let (d, p, t) = (
        stats(sd, totals[0]),
        stats(sp, totals[1]),
        stats(st, totals[2]),
    );
    let ratio = |x: &Stats| x.mean.as_secs_f64() / d.mean.as_secs_f64();
    let ratio50 = |x: &Stats| x.p50.as_secs_f64() / d.p50.as_secs_f64();
    let table = format!(
        "| path | mean µs | p50 µs | p99 µs | mean ratio | p50 ratio |\n|---|---|---|---|---|---|\n\
         | rusqlite direct (prepare_cached + query_row into struct) | {} | {} | {} | 1.00 | 1.00 |\n\
         | strata host + libstrata_sqlite.so, `get` → Row | {} | {} | {} | {:.2} | {:.2} |\n\
         | strata host + libstrata_sqlite.so, `get` → Row → serde struct | {} | {} | {} | {:.2} | {:.2} |\n",
        us(d.mean),
        us(d.p50),
        us(d.p99),
        us(p.mean),
        us(p.p50),
        us(p.p99),
        ratio(&p),
        ratio50(&p),
        us(t.mean),
        us(t.p50),
        us(t.p99),
        ratio(&t),
        ratio50(&t),
    );
    println!(
        "sql-get: {rows} rows, {reads} random point reads per side per round, {rounds} rounds, sides interleaved in chunks of {chunk}\n"
    );
    println!("{table}");
    if let Some(out) = out {
        append_report(
            &out,
            &format!("### sql-get ({rows} rows, {reads} reads × {rounds} rounds)\n\n{table}"),
        );
    }
    rt.block_on(strata.close()).expect("close");
}
