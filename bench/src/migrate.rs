//! `strata bench migrate`: memory rows with 384-d embeddings moved from a
//! SQLite file to PostgreSQL, by `strata_host::migrate` through both loaded
//! plugins vs the same rows read with rusqlite and loaded with binary `COPY`
//! through sqlx (the fastest way into Postgres), in one run.
//!
//! Both sides read the same SQLite file and write a table of the same shape
//! (bigint key, text, real, jsonb, vector(384)) in their own fresh schema.
//! The migration runs as `strata migrate` does by default, verified (up to
//! `--verify-max-rows`): its copy and its verification are timed apart (the
//! verification starts at the first `verify` progress report), so the
//! report gives both the copy's rate and the verified migration's.
//! Verification is the first read of the migrated table, and PostgreSQL
//! charges a freshly loaded table's first read extra (hint bits, and with
//! data checksums full-page images in the WAL), so the baseline's table
//! gets its own first read, timed apart (`count(*)`), for comparison.
//! Memory: a sampler thread reads `VmRSS` from `/proc/self/status` every
//! 5 ms; each phase reports its peak minus the RSS when it started.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use clap::Args;

use crate::rss::Sampler;
use sqlx::{Connection, PgConnection};
use strata_host::{
    Strata,
    migrate::{MigrateOptions, Verification, migrate},
    progress::{ItemProgress, Phase, Progress},
};

/// Notes when verification starts (the first `verify` report).
#[derive(Default)]
struct VerifyClock(std::sync::Mutex<Option<Instant>>);

impl Progress for VerifyClock {
    fn item(&self, item: &ItemProgress) {
        if item.phase == Phase::Verify {
            let mut at = self.0.lock().expect("clock");
            at.get_or_insert_with(Instant::now);
        }
    }
}

/// Arguments of `strata bench migrate`.
#[derive(Args, Debug)]
pub(crate) struct MigrateArgs {
    /// Row counts to run, comma-separated (each size: COPY baseline, then migrate).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    rows: Vec<u64>,
    /// Embedding dimension.
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Migration page / transaction size.
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    /// Verify, as `strata migrate` does by default (timed apart from the copy), only up to this many rows.
    #[arg(long, default_value_t = 1_000_000)]
    verify_max_rows: u64,
    /// Directory holding the plugin libraries (default: next to this binary).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Append the result table to this Markdown file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn embedding(i: u64, dim: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(dim * 4);
    for _ in 0..dim {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        out.extend_from_slice(&f.to_le_bytes());
    }
    out
}

fn make_source(path: &Path, rows: u64, dim: usize) {
    let mut c = rusqlite::Connection::open(path).expect("open source");
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE memories (id INTEGER PRIMARY KEY, agent TEXT NOT NULL, content TEXT NOT NULL,
           importance REAL NOT NULL, meta JSON NOT NULL, embedding BLOB NOT NULL);",
    )
    .expect("schema");
    let tx = c.transaction().expect("tx");
    {
        let mut ins = tx
            .prepare("INSERT INTO memories VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .expect("prepare");
        for id in 1..=rows {
            ins.execute(rusqlite::params![
                id as i64,
                format!("agent-{}", id % 16),
                format!("memory {id}: the user mentioned something worth keeping, with a little more text"),
                (id % 100) as f64 / 100.0,
                format!(r#"{{"kind":"fact","session":{},"tags":["a","b"]}}"#, id % 97),
                embedding(id, dim)
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// The baseline: rusqlite reads the rows, binary COPY loads them.
async fn copy_baseline(db: &Path, url: &str, schema: &str, dim: usize) -> u64 {
    let mut pg = PgConnection::connect(url).await.expect("connect");
    let ddl = format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
         CREATE TABLE {schema}.memories (id bigint PRIMARY KEY, agent text NOT NULL, content text NOT NULL, \
         importance double precision NOT NULL, meta jsonb NOT NULL, embedding vector({dim}) NOT NULL)"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
        .execute(&mut pg)
        .await
        .expect("baseline schema");
    let src = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open source");
    let mut stmt = src
        .prepare("SELECT id, agent, content, importance, meta, embedding FROM memories ORDER BY id")
        .expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut tx = pg.begin().await.expect("begin");
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY {schema}.memories (id, agent, content, importance, meta, embedding) FROM STDIN (FORMAT binary)"
        ))
        .await
        .expect("copy");
    let mut buf: Vec<u8> = Vec::with_capacity(4 << 20);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    let field = |buf: &mut Vec<u8>, bytes: &[u8]| {
        buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    let mut n = 0u64;
    while let Some(r) = rows.next().expect("row") {
        buf.extend_from_slice(&6i16.to_be_bytes());
        field(&mut buf, &r.get::<_, i64>(0).unwrap().to_be_bytes());
        field(&mut buf, r.get_ref(1).unwrap().as_bytes().unwrap());
        field(&mut buf, r.get_ref(2).unwrap().as_bytes().unwrap());
        field(&mut buf, &r.get::<_, f64>(3).unwrap().to_be_bytes());
        let meta = r.get_ref(4).unwrap().as_bytes().unwrap();
        buf.extend_from_slice(&((meta.len() + 1) as i32).to_be_bytes());
        buf.push(1);
        buf.extend_from_slice(meta);
        let e = r.get_ref(5).unwrap().as_blob().unwrap();
        buf.extend_from_slice(&((4 + e.len()) as i32).to_be_bytes());
        buf.extend_from_slice(&((e.len() / 4) as u16).to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        for c in e.chunks_exact(4) {
            buf.extend_from_slice(&f32::from_le_bytes([c[0], c[1], c[2], c[3]]).to_be_bytes());
        }
        n += 1;
        if buf.len() >= 4 << 20 {
            copy.send(std::mem::take(&mut buf)).await.expect("send");
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await.expect("send");
    let copied = copy.finish().await.expect("finish");
    tx.commit().await.expect("commit");
    assert_eq!(copied, n);
    n
}

/// The first full read of the baseline's freshly loaded table (`count(*)`,
/// which checks every row's visibility): seconds and WAL bytes written.
///
/// PostgreSQL defers part of a load's cost to this read: it sets each
/// row's hint bits, and with data checksums on (PostgreSQL 18's default)
/// a page last logged before the latest checkpoint is written to the WAL
/// again as a full-page image. Verification is such a first read of the
/// migrated table; this times the same cost on the baseline's table.
async fn first_scan(url: &str, schema: &str) -> (f64, i64) {
    let mut pg = PgConnection::connect(url).await.expect("connect");
    let lsn = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint";
    let before: i64 = sqlx::query_scalar(lsn)
        .fetch_one(&mut pg)
        .await
        .expect("lsn");
    let t = Instant::now();
    let count = format!("SELECT count(*) FROM {schema}.memories");
    let _: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
        .fetch_one(&mut pg)
        .await
        .expect("count");
    let s = t.elapsed().as_secs_f64();
    let after: i64 = sqlx::query_scalar(lsn)
        .fetch_one(&mut pg)
        .await
        .expect("lsn");
    (s, after - before)
}

struct Run {
    rows: u64,
    copy_s: f64,
    copy_mib: f64,
    migrate_s: f64,
    migrate_mib: f64,
    verify_s: Option<f64>,
    first_scan_s: f64,
    first_scan_wal: i64,
}

pub(crate) fn run(args: MigrateArgs) {
    let url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: start the server with scripts/servers/postgres.sh start and \
         eval \"$(scripts/servers/postgres.sh env)\"",
    );
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(super::exe_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut runs = Vec::new();
    for &rows in &args.rows {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("source.sqlite");
        eprintln!("migrate bench: generating {rows} rows × {}-d …", args.dim);
        make_source(&db, rows, args.dim);
        let pid = std::process::id();
        let (copy_schema, mig_schema) = (format!("bench_copy_{pid}"), format!("bench_mig_{pid}"));

        let s = Sampler::start();
        let t = Instant::now();
        let copied = rt.block_on(copy_baseline(&db, &url, &copy_schema, args.dim));
        let copy_s = t.elapsed().as_secs_f64();
        let copy_mib = s.finish();
        assert_eq!(copied, rows);
        let (first_scan_s, first_scan_wal) = rt.block_on(first_scan(&url, &copy_schema));

        let config = dir.path().join("plugins.toml");
        std::fs::write(
            &config,
            format!(
                "plugin_dirs = [{plugin_dir:?}]\n\
                 [backends.src]\nplugin = \"sqlite\"\nconfig = {{ path = {db:?}, read_only = true }}\n\
                 [backends.pg]\nplugin = \"postgres\"\nconfig = {{ url = \"${{DATABASE_URL}}\", schema = {mig_schema:?} }}\n"
            ),
        )
        .expect("config");
        let strata = Strata::load(&config).expect("load config");
        let (migrate_s, migrate_mib, verify_s) = rt.block_on(async {
            let src = strata.backend("src").await.expect("open source");
            let pg = strata.backend("pg").await.expect("open postgres");
            let pgsql = pg.sql().expect("sql");
            pgsql
                .exec("DROP TABLE IF EXISTS memories; DROP TABLE IF EXISTS strata_migrations")
                .await
                .expect("clean target");
            let s = Sampler::start();
            let verify = rows <= args.verify_max_rows;
            let clock = Arc::new(VerifyClock::default());
            let t = Instant::now();
            let report = migrate(
                &src,
                &pg,
                &MigrateOptions::new()
                    .batch_size(args.batch_size)
                    .verify(verify)
                    .progress(clock.clone()),
            )
            .await
            .expect("migrate");
            let end = Instant::now();
            let mib = s.finish();
            assert_eq!(report.tables[0].written, rows);
            let verify_s = verify.then(|| {
                assert!(
                    matches!(report.tables[0].verification, Verification::Passed { rows: n, .. } if n == rows),
                    "{:?}",
                    report.tables[0].verification
                );
                let started = clock.0.lock().expect("clock").expect("verification ran");
                (end - started).as_secs_f64()
            });
            let migrate_s = (end - t).as_secs_f64() - verify_s.unwrap_or(0.0);
            pgsql
                .exec(&format!(
                    "DROP SCHEMA IF EXISTS {mig_schema} CASCADE; DROP SCHEMA IF EXISTS {copy_schema} CASCADE"
                ))
                .await
                .expect("drop schemas");
            (migrate_s, mib, verify_s)
        });
        rt.block_on(strata.close()).expect("close");
        eprintln!(
            "  {rows} rows: COPY {copy_s:.2}s, migrate {migrate_s:.2}s, verify {verify_s:?}s"
        );
        runs.push(Run {
            rows,
            copy_s,
            copy_mib,
            migrate_s,
            migrate_mib,
            verify_s,
            first_scan_s,
            first_scan_wal,
        });
    }
    let mut table = String::from(
        "| rows | COPY baseline rows/s | strata migrate rows/s (copy) | copy / COPY | verify s | verified migrate rows/s | verified / COPY | COPY table's first scan s (WAL MB) | verified / (COPY + first scan) | migrate peak RSS growth MiB | COPY peak RSS growth MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &runs {
        let (c, m) = (r.rows as f64 / r.copy_s, r.rows as f64 / r.migrate_s);
        let verified = r.verify_s.map(|v| r.rows as f64 / (r.migrate_s + v));
        let na = || "not run".to_string();
        table.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {:.2} ({:.0}) | {} | {:.1} | {:.1} |\n",
            r.rows,
            c,
            m,
            m / c,
            r.verify_s.map_or_else(na, |v| format!("{v:.2}")),
            verified.map_or_else(na, |v| format!("{v:.0}")),
            verified.map_or_else(na, |v| format!("{:.2}", v / c)),
            r.first_scan_s,
            r.first_scan_wal as f64 / 1e6,
            verified.map_or_else(na, |v| format!(
                "{:.2}",
                v / (r.rows as f64 / (r.copy_s + r.first_scan_s))
            )),
            r.migrate_mib,
            r.copy_mib,
        ));
    }
    println!(
        "migrate: SQLite → PostgreSQL, memories with {}-d embeddings, batch {}; process VmHWM at end {:.0} MiB\n",
        args.dim,
        args.batch_size,
        hwm_kb() as f64 / 1024.0
    );
    println!("{table}");
    if let Some(out) = args.out {
        super::append_report(&out, &table);
    }
}

fn hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
