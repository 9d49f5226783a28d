//! `strata-bench sql-sqlite`: ad-hoc SQL on SQLite through the host and the
//! loaded SQLite plugin, against rusqlite called directly, in one process
//! and one run: the SQLite row of issue 17 (sqllogictest-like statements,
//! every text new).
//!
//! The workloads are `strata-bench sql`'s (the same generated statements):
//!
//! - **distinct**: every statement text is new, without parameters:
//!   `INSERT`s of literal rows, `UPDATE`s by key, range `SELECT`s of a few
//!   rows and aggregates. Plugin: `run` for statements, `all` for queries.
//!   rusqlite: `execute(text)` and `prepare(text)` + every row's values
//!   read into owned `Value`s (as the plugin turns each into a strata
//!   `Value`).
//! - **repeated**: a point read by key, an `UPDATE` by key and an `INSERT`,
//!   repeated with parameters. Plugin: `get` and `run` with `?`
//!   placeholders. rusqlite: `prepare_cached` (its statement cache, as the
//!   plugin's).
//!
//! Each side writes its own database file with the plugin's settings (WAL,
//! `synchronous = NORMAL`, foreign keys on), autocommit (each write its own
//! transaction). The sides take turns chunk by chunk in alternating order,
//! so machine noise falls on both alike.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clap::Args;
use rusqlite::types::Value as SqlValue;
use strata_host::{Sql, Strata, loader::library_file_name};

use crate::sql_pg::{GET, INSERT, Op, Record, UPDATE, distinct_records, host_form, repeated_ops};

/// Options of `strata-bench sql-sqlite`.
#[derive(Args, Debug)]
pub(crate) struct SqlSqliteArgs {
    /// Records of the distinct-text workload, per side.
    #[arg(long, default_value_t = 50_000)]
    distinct: usize,
    /// Statements of the repeated-text workload, per side.
    #[arg(long, default_value_t = 50_000)]
    repeated: usize,
    /// Records per turn: the sides take turns in chunks this long.
    #[arg(long, default_value_t = 500)]
    chunk: usize,
    /// Directory holding libstrata_sqlite.so (default: next to this binary).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Append the result tables to this Markdown file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const DDL: &str = "(a INTEGER PRIMARY KEY, b INTEGER, c INTEGER, d INTEGER, e TEXT)";
const PREFILLED: i32 = 10_000;

/// rusqlite with the plugin's settings for a writer.
fn direct(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("open direct");
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    c.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    c.pragma_update(None, "foreign_keys", true)
        .expect("foreign keys");
    c.set_prepared_statement_cache_capacity(256);
    c
}

/// Every value of every row read into owned values; the count of values.
fn read_all(c: &rusqlite::Connection, text: &str) -> usize {
    let mut stmt = c.prepare(text).expect("prepare");
    let n = stmt.column_count();
    let mut rows = stmt.query([]).expect("query");
    let mut values = Vec::new();
    while let Some(r) = rows.next().expect("step") {
        for i in 0..n {
            values.push(r.get::<_, SqlValue>(i).expect("value"));
        }
    }
    std::hint::black_box(&values);
    values.len()
}

async fn distinct_plugin(sql: &Sql, rec: &Record) {
    if rec.read {
        std::hint::black_box(sql.all(&rec.text, ()).await.expect("plugin query"));
    } else {
        std::hint::black_box(sql.run(&rec.text, ()).await.expect("plugin run"));
    }
}

fn distinct_direct(c: &rusqlite::Connection, rec: &Record) {
    if rec.read {
        std::hint::black_box(read_all(c, &rec.text));
    } else {
        std::hint::black_box(c.execute(&rec.text, []).expect("execute"));
    }
}

async fn repeated_plugin(sql: &Sql, texts: &[String; 3], op: &Op) {
    match op {
        Op::Get(k) => {
            std::hint::black_box(sql.get(&texts[0], [*k]).await.expect("plugin get"));
        }
        Op::Update(by, k) => {
            std::hint::black_box(sql.run(&texts[1], [*by, *k]).await.expect("plugin run"));
        }
        Op::Insert(a, b, c, d, e) => {
            std::hint::black_box(
                sql.run(&texts[2], strata_host::params![*a, *b, *c, *d, e.as_str()])
                    .await
                    .expect("plugin run"),
            );
        }
    }
}

fn repeated_direct(c: &rusqlite::Connection, texts: &[String; 3], op: &Op) {
    match op {
        Op::Get(k) => {
            let mut stmt = c.prepare_cached(&texts[0]).expect("prepare");
            let row = stmt
                .query_row([k], |r| {
                    (0..4)
                        .map(|i| r.get::<_, SqlValue>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .expect("row");
            std::hint::black_box(row);
        }
        Op::Update(by, k) => {
            let n = c
                .prepare_cached(&texts[1])
                .expect("prepare")
                .execute(rusqlite::params![by, k])
                .expect("update");
            std::hint::black_box(n);
        }
        Op::Insert(a, b, cc, d, e) => {
            let n = c
                .prepare_cached(&texts[2])
                .expect("prepare")
                .execute(rusqlite::params![a, b, cc, d, e])
                .expect("insert");
            std::hint::black_box(n);
        }
    }
}

fn row(side: &str, records: usize, total: Duration, plugin: Duration) -> String {
    format!(
        "| {side} | {records} | {:.2} | {:.0} | {:.2} | {:.2}× |\n",
        total.as_secs_f64(),
        records as f64 / total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / records as f64,
        total.as_secs_f64() / plugin.as_secs_f64(),
    )
}

fn table(title: &str, records: usize, plugin: Duration, direct: Duration) -> String {
    format!(
        "#### {title}\n\n| side | records | seconds | records/s | mean µs | time ÷ plugin's |\n|---|---|---|---|---|---|\n{}{}\nplugin ÷ rusqlite throughput: **{:.2}×** ({:+.2} µs per record)\n",
        row("strata host + libstrata_sqlite.so", records, plugin, plugin),
        row("rusqlite direct", records, direct, plugin),
        direct.as_secs_f64() / plugin.as_secs_f64(),
        (plugin.as_secs_f64() - direct.as_secs_f64()) * 1e6 / records as f64,
    )
}

/// Runs `items` through both sides in chunks of `chunk`, the sides taking
/// turns (which goes first alternates too): `plugin_one` and `direct_one`
/// per item. The total time of each side.
async fn alternate<T>(
    items: &[T],
    chunk: usize,
    plugin_one: impl AsyncFn(&T),
    direct_one: impl Fn(&T),
) -> (Duration, Duration) {
    let (mut p, mut d) = (Duration::ZERO, Duration::ZERO);
    for (c, part) in items.chunks(chunk.max(1)).enumerate() {
        for turn in 0..2 {
            let start = Instant::now();
            if (c + turn) % 2 == 0 {
                for item in part {
                    plugin_one(item).await;
                }
                p += start.elapsed();
            } else {
                for item in part {
                    direct_one(item);
                }
                d += start.elapsed();
            }
        }
    }
    (p, d)
}

pub(crate) fn run(args: SqlSqliteArgs) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plugin_db, direct_db) = (dir.path().join("plugin.db"), dir.path().join("direct.db"));
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(super::exe_dir);
    // The config lives in a temporary directory: a relative path would
    // resolve against it.
    let plugin_dir = std::fs::canonicalize(&plugin_dir).unwrap_or(plugin_dir);
    let config = dir.path().join("plugins.toml");
    std::fs::write(
        &config,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {plugin_db:?} }}\n",
            plugin_dir.join(library_file_name("sqlite"))
        ),
    )
    .expect("write plugins.toml");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let strata = Strata::load(&config).expect("load plugins.toml");
    let dc = direct(&direct_db);
    rt.block_on(async {
        let sql = strata.sql_backend("local").await.expect("open sqlite plugin");
        let mut setup = String::new();
        for t in ["d", "r"] {
            setup.push_str(&format!("CREATE TABLE {t} {DDL};\n"));
        }
        setup.push_str(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {PREFILLED}) \
             INSERT INTO r SELECT i, i * 7 % 1000, i % 13, i % 101, 'row ' || i FROM n;\nANALYZE;\n"
        ));
        sql.exec(&setup).await.expect("plugin setup");
        dc.execute_batch(&setup).expect("direct setup");

        let records: Vec<Record> = distinct_records(args.distinct)
            .into_iter()
            .map(|r| Record {
                read: r.read,
                text: r.text.replace("{t}", "d"),
            })
            .collect();
        eprintln!("distinct: {} records per side …", args.distinct);
        let (dp, dd) = alternate(
            &records,
            args.chunk,
            async |rec| distinct_plugin(&sql, rec).await,
            |rec| distinct_direct(&dc, rec),
        )
        .await;

        let ops = repeated_ops(args.repeated, PREFILLED);
        let texts = [GET, UPDATE, INSERT].map(|q| host_form(&q.replace("{t}", "r")));
        eprintln!("repeated: {} statements per side …", args.repeated);
        let (rp, rd) = alternate(
            &ops,
            args.chunk,
            async |op| repeated_plugin(&sql, &texts, op).await,
            |op| repeated_direct(&dc, &texts, op),
        )
        .await;

        let report = format!(
            "### sql-sqlite (distinct {}, repeated {}, chunks of {})\n\n{}\n{}",
            args.distinct,
            args.repeated,
            args.chunk,
            table(
                "distinct texts, no parameters (INSERT 50%, range SELECT 25%, UPDATE 12.5%, aggregate SELECT 12.5%)",
                args.distinct,
                dp,
                dd
            ),
            table(
                "repeated texts with parameters (point SELECT 50%, UPDATE 25%, INSERT 25%)",
                args.repeated,
                rp,
                rd
            ),
        );
        println!("{report}");
        if let Some(out) = &args.out {
            super::append_report(out, &report);
        }
        sql.close().await.expect("close");
    });
}
