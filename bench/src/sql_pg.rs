//! `strata-bench sql`: ad-hoc SQL on PostgreSQL through the host and the
//! loaded Postgres plugin, against sqlx and tokio-postgres called directly,
//! in one process and one run.
//!
//! Two workloads, each side on a table of its own in one schema:
//!
//! - **distinct**: every statement text is new, without parameters (as in
//!   sqllogictest records): `INSERT`s of literal rows, `UPDATE`s by key,
//!   range `SELECT`s of a few rows and aggregates. Plugin: `run` for
//!   statements, `all` for queries. sqlx: `query(text)` (extended protocol,
//!   sqlx's statement cache) and `raw_sql(text)` (simple protocol), both
//!   through a `PgPool` as the plugin uses one, and `raw_sql` on one
//!   `PgConnection` (no pool: what the pool itself costs).
//!   tokio-postgres: `simple_query(text)` (simple protocol, text values) and
//!   `query(text, &[])` (unnamed prepare, then execute).
//! - **repeated**: three statement texts (a point read by key, an
//!   `UPDATE` by key, an `INSERT`), repeated with parameters. Plugin: `get`
//!   and `run` with `?` placeholders. sqlx: `query(text).bind(..)` (prepared
//!   once per connection by its cache). tokio-postgres: statements prepared
//!   once and reused, and `query(text, params)` (prepared on every call).
//!
//! The sides take turns chunk by chunk in rotating order, so machine noise
//! falls on all of them alike. Direct sides decode every value of every
//! row into a Rust value, as the plugin turns each into a strata `Value`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Args;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, PgPool, Row, TypeInfo, postgres::PgRow};
use strata_host::{Sql, Strata, loader::library_file_name};

/// Options of `strata-bench sql`.
#[derive(Args, Debug)]
pub(crate) struct SqlArgs {
    /// Records of the distinct-text workload, per side.
    #[arg(long, default_value_t = 20_000)]
    distinct: usize,
    /// Statements of the repeated-text workload, per side.
    #[arg(long, default_value_t = 20_000)]
    repeated: usize,
    /// Records per turn: the sides take turns in chunks this long.
    #[arg(long, default_value_t = 250)]
    chunk: usize,
    /// Also run the Supabase plugin through this transaction-mode pooler
    /// (e.g. `$PGBOUNCER_URL`, scripts/servers/pgbouncer.sh), same database.
    #[arg(long)]
    pooler_url: Option<String>,
    /// Directory holding libstrata_postgres.so (default: next to this binary).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Append the result tables to this Markdown file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One side of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// strata host + libstrata_postgres.so.
    Plugin,
    /// strata host + libstrata_supabase.so through the pooler.
    Supabase,
    /// sqlx `query(text)`: extended protocol, statement cache.
    SqlxQuery,
    /// sqlx `raw_sql(text)`: simple protocol.
    SqlxRaw,
    /// sqlx `raw_sql(text)` on one connection, no pool.
    SqlxRawConn,
    /// tokio-postgres `simple_query`.
    TpgSimple,
    /// tokio-postgres `query(text, params)`: prepare + execute per call.
    TpgText,
    /// tokio-postgres with statements prepared once.
    TpgPrepared,
}

impl Side {
    fn label(self, repeated: bool) -> &'static str {
        match (self, repeated) {
            (Side::Plugin, false) => "strata host + libstrata_postgres.so (`run` / `all`)",
            (Side::Plugin, true) => {
                "strata host + libstrata_postgres.so (`run` / `get`, `?` params)"
            }
            (Side::Supabase, false) => {
                "strata host + libstrata_supabase.so via PgBouncer (transaction mode)"
            }
            (Side::Supabase, true) => {
                "strata host + libstrata_supabase.so via PgBouncer (transaction mode), `?` params"
            }
            (Side::SqlxQuery, false) => "sqlx `query(text)` (extended protocol, statement cache)",
            (Side::SqlxQuery, true) => "sqlx `query(text).bind(..)` (statement cache)",
            (Side::SqlxRaw, _) => "sqlx `raw_sql(text)` (simple protocol), through a `PgPool`",
            (Side::SqlxRawConn, _) => "sqlx `raw_sql(text)` (simple protocol), one `PgConnection`",
            (Side::TpgSimple, _) => "tokio-postgres `simple_query(text)` (simple protocol)",
            (Side::TpgText, _) => "tokio-postgres `query(text, params)` (prepare + execute)",
            (Side::TpgPrepared, _) => "tokio-postgres, statements prepared once",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Side::Plugin => "plugin",
            Side::Supabase => "supabase",
            Side::SqlxQuery => "sqlx_query",
            Side::SqlxRaw => "sqlx_raw",
            Side::SqlxRawConn => "sqlx_raw_conn",
            Side::TpgSimple => "tpg_simple",
            Side::TpgText => "tpg_text",
            Side::TpgPrepared => "tpg_prepared",
        }
    }
}

/// A statement of the distinct workload: its text with `{t}` for the table.
pub(crate) struct Record {
    pub(crate) read: bool,
    pub(crate) text: String,
}

pub(crate) fn distinct_records(n: usize) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let (b, c, d): (u32, u32, u32) = (
                rng.random_range(0..1000),
                rng.random_range(0..1000),
                rng.random_range(0..1000),
            );
            let lo = rng.random_range(0..=i / 2);
            let (read, text) = match i % 4 {
                0 | 2 => (
                    false,
                    format!(
                        "INSERT INTO {{t}}(a, b, c, d, e) VALUES({i}, {b}, {c}, {d}, 'record {i} of the table, {d}')"
                    ),
                ),
                1 => (
                    true,
                    format!(
                        "SELECT a, b * {i} + c AS x, CASE WHEN d > {d} THEN e ELSE 'none' END AS y FROM {{t}} WHERE a BETWEEN {lo} AND {} ORDER BY a",
                        lo + 8
                    ),
                ),
                _ if (i / 4) % 2 == 0 => (
                    false,
                    format!("UPDATE {{t}} SET c = c + {c}, e = 'updated by {i}' WHERE a = {lo}"),
                ),
                _ => (
                    true,
                    format!(
                        "SELECT count(*), sum(b) + {i} AS s, max(e) FROM {{t}} WHERE a BETWEEN {lo} AND {}",
                        lo + 40
                    ),
                ),
            };
            Record { read, text }
        })
        .collect()
}

/// A statement of the repeated workload.
#[derive(Clone)]
pub(crate) enum Op {
    Get(i32),
    Update(i32, i32),
    Insert(i32, i32, i32, i32, String),
}

pub(crate) fn repeated_ops(n: usize, prefilled: i32) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut next = 1_000_000;
    (0..n)
        .map(|i| match i % 4 {
            0 | 1 => Op::Get(rng.random_range(1..=prefilled)),
            2 => Op::Update(rng.random_range(1..10), rng.random_range(1..=prefilled)),
            _ => {
                next += 1;
                Op::Insert(
                    next,
                    rng.random_range(0..1000),
                    rng.random_range(0..1000),
                    rng.random_range(0..1000),
                    format!("inserted row {next}"),
                )
            }
        })
        .collect()
}

pub(crate) const GET: &str = "SELECT a, b, c, e FROM {t} WHERE a = $1";
pub(crate) const UPDATE: &str = "UPDATE {t} SET c = c + $1 WHERE a = $2";
pub(crate) const INSERT: &str = "INSERT INTO {t}(a, b, c, d, e) VALUES ($1, $2, $3, $4, $5)";

pub(crate) fn host_form(sql: &str) -> String {
    sql.replace("$1", "?")
        .replace("$2", "?")
        .replace("$3", "?")
        .replace("$4", "?")
        .replace("$5", "?")
}

/// Every value of sqlx rows decoded into Rust values.
fn decode_sqlx(rows: &[PgRow]) -> usize {
    let mut n = 0;
    for row in rows {
        for (i, c) in row.columns().iter().enumerate() {
            match c.type_info().name() {
                "INT4" => n += row.try_get::<Option<i32>, _>(i).expect("int4").is_some() as usize,
                "INT8" => n += row.try_get::<Option<i64>, _>(i).expect("int8").is_some() as usize,
                "TEXT" => {
                    n += row
                        .try_get::<Option<String>, _>(i)
                        .expect("text")
                        .map_or(0, |s| s.len())
                }
                other => panic!("unexpected column type {other}"),
            }
        }
    }
    n
}

/// Every value of tokio-postgres rows decoded into Rust values.
fn decode_tpg(rows: &[tokio_postgres::Row]) -> usize {
    use tokio_postgres::types::Type;
    let mut n = 0;
    for row in rows {
        for (i, c) in row.columns().iter().enumerate() {
            match *c.type_() {
                Type::INT4 => n += row.get::<_, Option<i32>>(i).is_some() as usize,
                Type::INT8 => n += row.get::<_, Option<i64>>(i).is_some() as usize,
                Type::TEXT => n += row.get::<_, Option<String>>(i).map_or(0, |s| s.len()),
                ref other => panic!("unexpected column type {other}"),
            }
        }
    }
    n
}

/// The clients of one run.
struct Clients {
    plugin: Sql,
    supabase: Option<Sql>,
    pool: PgPool,
    conn: tokio::sync::Mutex<sqlx::PgConnection>,
    tpg: tokio_postgres::Client,
    prepared: Vec<tokio_postgres::Statement>,
}

async fn distinct_one(cl: &Clients, side: Side, rec: &Record) {
    let text = rec.text.as_str();
    match side {
        Side::Plugin | Side::Supabase => {
            let sql = if side == Side::Plugin {
                &cl.plugin
            } else {
                cl.supabase.as_ref().expect("supabase side")
            };
            if rec.read {
                std::hint::black_box(sql.all(text, ()).await.expect("plugin query"));
            } else {
                std::hint::black_box(sql.run(text, ()).await.expect("plugin run"));
            }
        }
        Side::SqlxQuery => {
            let q = sqlx::query(AssertSqlSafe(text.to_owned()));
            if rec.read {
                let rows = q.fetch_all(&cl.pool).await.expect("sqlx query");
                std::hint::black_box(decode_sqlx(&rows));
            } else {
                std::hint::black_box(q.execute(&cl.pool).await.expect("sqlx execute"));
            }
        }
        Side::SqlxRaw => {
            let q = sqlx::raw_sql(AssertSqlSafe(text.to_owned()));
            if rec.read {
                let rows = q.fetch_all(&cl.pool).await.expect("sqlx raw query");
                std::hint::black_box(decode_sqlx(&rows));
            } else {
                std::hint::black_box(q.execute(&cl.pool).await.expect("sqlx raw execute"));
            }
        }
        Side::SqlxRawConn => {
            let mut conn = cl.conn.lock().await;
            let q = sqlx::raw_sql(AssertSqlSafe(text.to_owned()));
            if rec.read {
                let rows = q.fetch_all(&mut *conn).await.expect("sqlx raw query");
                std::hint::black_box(decode_sqlx(&rows));
            } else {
                std::hint::black_box(q.execute(&mut *conn).await.expect("sqlx raw execute"));
            }
        }
        Side::TpgSimple => {
            let msgs = cl.tpg.simple_query(text).await.expect("simple_query");
            let mut n = 0;
            for m in msgs {
                if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                    for i in 0..r.len() {
                        n += r.get(i).map(str::to_owned).map_or(0, |s| s.len());
                    }
                }
            }
            std::hint::black_box(n);
        }
        Side::TpgText => {
            if rec.read {
                let rows = cl.tpg.query(text, &[]).await.expect("tpg query");
                std::hint::black_box(decode_tpg(&rows));
            } else {
                std::hint::black_box(cl.tpg.execute(text, &[]).await.expect("tpg execute"));
            }
        }
        Side::TpgPrepared => unreachable!("not a side of the distinct workload"),
    }
}

async fn repeated_one(cl: &Clients, side: Side, texts: &[String; 3], op: &Op) {
    match side {
        Side::Plugin | Side::Supabase => {
            let sql = if side == Side::Plugin {
                &cl.plugin
            } else {
                cl.supabase.as_ref().expect("supabase side")
            };
            match op {
                Op::Get(k) => {
                    std::hint::black_box(sql.get(&texts[0], [*k]).await.expect("plugin get"));
                }
                Op::Update(v, k) => {
                    std::hint::black_box(sql.run(&texts[1], (*v, *k)).await.expect("plugin run"));
                }
                Op::Insert(a, b, c, d, e) => {
                    std::hint::black_box(
                        sql.run(&texts[2], (*a, *b, *c, *d, e.as_str()))
                            .await
                            .expect("plugin insert"),
                    );
                }
            }
        }
        Side::SqlxQuery => match op {
            Op::Get(k) => {
                let row = sqlx::query(AssertSqlSafe(texts[0].clone()))
                    .bind(*k)
                    .fetch_optional(&cl.pool)
                    .await
                    .expect("sqlx get");
                std::hint::black_box(decode_sqlx(row.as_slice()));
            }
            Op::Update(v, k) => {
                std::hint::black_box(
                    sqlx::query(AssertSqlSafe(texts[1].clone()))
                        .bind(*v)
                        .bind(*k)
                        .execute(&cl.pool)
                        .await
                        .expect("sqlx update"),
                );
            }
            Op::Insert(a, b, c, d, e) => {
                std::hint::black_box(
                    sqlx::query(AssertSqlSafe(texts[2].clone()))
                        .bind(*a)
                        .bind(*b)
                        .bind(*c)
                        .bind(*d)
                        .bind(e.as_str())
                        .execute(&cl.pool)
                        .await
                        .expect("sqlx insert"),
                );
            }
        },
        Side::TpgText | Side::TpgPrepared => {
            let tpg = &cl.tpg;
            let prepared = side == Side::TpgPrepared;
            match op {
                Op::Get(k) => {
                    let rows = if prepared {
                        tpg.query(&cl.prepared[0], &[k]).await
                    } else {
                        tpg.query(texts[0].as_str(), &[k]).await
                    }
                    .expect("tpg get");
                    std::hint::black_box(decode_tpg(&rows));
                }
                Op::Update(v, k) => {
                    std::hint::black_box(
                        if prepared {
                            tpg.execute(&cl.prepared[1], &[v, k]).await
                        } else {
                            tpg.execute(texts[1].as_str(), &[v, k]).await
                        }
                        .expect("tpg update"),
                    );
                }
                Op::Insert(a, b, c, d, e) => {
                    std::hint::black_box(
                        if prepared {
                            tpg.execute(&cl.prepared[2], &[a, b, c, d, e]).await
                        } else {
                            tpg.execute(texts[2].as_str(), &[a, b, c, d, e]).await
                        }
                        .expect("tpg insert"),
                    );
                }
            }
        }
        Side::SqlxRaw | Side::SqlxRawConn | Side::TpgSimple => {
            unreachable!("not a side of the repeated workload")
        }
    }
}

/// Total time per side over the interleaved chunks.
struct Timing {
    side: Side,
    records: usize,
    total: Duration,
}

fn table(title: &str, timings: &[Timing], repeated: bool) -> String {
    let rate = |t: &Timing| t.records as f64 / t.total.as_secs_f64();
    let plugin = timings
        .iter()
        .find(|t| t.side == Side::Plugin)
        .map(rate)
        .unwrap_or(f64::NAN);
    let mut s = format!(
        "#### {title}\n\n| side | records | seconds | records/s | mean µs | plugin ÷ this side |\n|---|---|---|---|---|---|\n"
    );
    for t in timings {
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} | {:.1} | {:.2}× |\n",
            t.side.label(repeated),
            t.records,
            t.total.as_secs_f64(),
            rate(t),
            t.total.as_secs_f64() * 1e6 / t.records as f64,
            plugin / rate(t),
        ));
    }
    s
}

pub(crate) fn run(args: SqlArgs) {
    let url = std::env::var("DATABASE_URL").expect(
        "set DATABASE_URL (scripts/servers/postgres.sh start; eval \"$(scripts/servers/postgres.sh env)\")",
    );
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let schema = format!("bench_sql_{stamp}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(super::exe_dir);
    let mut toml = format!(
        "[backends.pg]\nlibrary = {:?}\nconfig = {{ url = {url:?}, schema = {schema:?} }}\n",
        plugin_dir.join(library_file_name("postgres"))
    );
    if let Some(p) = &args.pooler_url {
        toml.push_str(&format!(
            "[backends.supa]\nlibrary = {:?}\nconfig = {{ url = {p:?}, schema = {schema:?} }}\n",
            plugin_dir.join(library_file_name("supabase"))
        ));
    }
    let config = dir.path().join("plugins.toml");
    std::fs::write(&config, toml).expect("write plugins.toml");
    let strata = Strata::load(&config).expect("load plugins.toml");

    rt.block_on(async {
        let plugin = strata.sql_backend("pg").await.expect("open postgres plugin");
        let supabase = match &args.pooler_url {
            Some(_) => Some(
                strata
                    .sql_backend("supa")
                    .await
                    .expect("open supabase plugin"),
            ),
            None => None,
        };
        let set_path = format!("SET search_path = {schema}, public");
        let pool = {
            let set_path = set_path.clone();
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(10)
                .after_connect(move |conn, _| {
                    let set_path = set_path.clone();
                    Box::pin(async move {
                        conn.execute(AssertSqlSafe(set_path)).await.map(drop)
                    })
                })
                .connect(&url)
                .await
                .expect("sqlx pool")
        };
        let mut single = sqlx::PgConnection::connect(&url)
            .await
            .expect("sqlx connection");
        single
            .execute(AssertSqlSafe(set_path.clone()))
            .await
            .expect("search_path");
        let (tpg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("tokio-postgres connect");
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("tokio-postgres connection: {e}");
            }
        });
        tpg.batch_execute(&set_path).await.expect("search_path");

        let mut distinct_sides = vec![Side::Plugin];
        let mut repeated_sides = vec![Side::Plugin];
        if supabase.is_some() {
            distinct_sides.push(Side::Supabase);
            repeated_sides.push(Side::Supabase);
        }
        distinct_sides.extend([
            Side::SqlxQuery,
            Side::SqlxRaw,
            Side::SqlxRawConn,
            Side::TpgSimple,
            Side::TpgText,
        ]);
        repeated_sides.extend([Side::SqlxQuery, Side::TpgPrepared, Side::TpgText]);

        let prefilled = 10_000;
        let ddl = "(a INTEGER PRIMARY KEY, b INTEGER, c INTEGER, d INTEGER, e TEXT)";
        let mut setup = String::new();
        for s in &distinct_sides {
            setup.push_str(&format!("CREATE TABLE d_{} {ddl};\n", s.table()));
        }
        for s in &repeated_sides {
            let t = format!("r_{}", s.table());
            setup.push_str(&format!(
                "CREATE TABLE {t} {ddl};\nINSERT INTO {t} SELECT i, i * 7 % 1000, i % 13, i % 101, 'row ' || i FROM generate_series(1, {prefilled}) i;\nANALYZE {t};\n"
            ));
        }
        tpg.batch_execute(&setup).await.expect("setup");

        let prepared = {
            let t = format!("r_{}", Side::TpgPrepared.table());
            let mut v = Vec::new();
            for q in [GET, UPDATE, INSERT] {
                v.push(tpg.prepare(&q.replace("{t}", &t)).await.expect("prepare"));
            }
            v
        };
        let cl = Clients {
            plugin,
            supabase,
            pool,
            conn: tokio::sync::Mutex::new(single),
            tpg,
            prepared,
        };

        // Distinct texts: each side's own copy of every record.
        let records = distinct_records(args.distinct);
        let per_side: Vec<Vec<Record>> = distinct_sides
            .iter()
            .map(|s| {
                let t = format!("d_{}", s.table());
                records
                    .iter()
                    .map(|r| Record {
                        read: r.read,
                        text: r.text.replace("{t}", &t),
                    })
                    .collect()
            })
            .collect();
        // Warm-up: every side opens its connections on a statement of its own.
        for (k, s) in distinct_sides.iter().enumerate() {
            for i in 0..20 {
                let rec = Record {
                    read: true,
                    text: format!("SELECT {i} + {k} AS warm, count(*) FROM d_{}", s.table()),
                };
                distinct_one(&cl, *s, &rec).await;
            }
        }
        let mut totals = vec![Duration::ZERO; distinct_sides.len()];
        let chunks = args.distinct.div_ceil(args.chunk);
        eprintln!(
            "distinct: {} records × {} sides …",
            args.distinct,
            distinct_sides.len()
        );
        for c in 0..chunks {
            let range = c * args.chunk..((c + 1) * args.chunk).min(args.distinct);
            for k in 0..distinct_sides.len() {
                let which = (c + k) % distinct_sides.len();
                let side = distinct_sides[which];
                let start = Instant::now();
                for rec in &per_side[which][range.clone()] {
                    distinct_one(&cl, side, rec).await;
                }
                totals[which] += start.elapsed();
            }
        }
        let distinct: Vec<Timing> = distinct_sides
            .iter()
            .zip(&totals)
            .map(|(s, t)| Timing {
                side: *s,
                records: args.distinct,
                total: *t,
            })
            .collect();

        // Repeated texts with parameters.
        let ops = repeated_ops(args.repeated, prefilled);
        let texts: Vec<[String; 3]> = repeated_sides
            .iter()
            .map(|s| {
                let t = format!("r_{}", s.table());
                let host = matches!(s, Side::Plugin | Side::Supabase);
                [GET, UPDATE, INSERT].map(|q| {
                    let q = q.replace("{t}", &t);
                    if host { host_form(&q) } else { q }
                })
            })
            .collect();
        for (k, s) in repeated_sides.iter().enumerate() {
            for op in ops.iter().filter(|o| matches!(o, Op::Get(_))).take(50) {
                repeated_one(&cl, *s, &texts[k], op).await;
            }
        }
        let mut totals = vec![Duration::ZERO; repeated_sides.len()];
        let chunks = args.repeated.div_ceil(args.chunk);
        eprintln!(
            "repeated: {} statements × {} sides …",
            args.repeated,
            repeated_sides.len()
        );
        for c in 0..chunks {
            let range = c * args.chunk..((c + 1) * args.chunk).min(args.repeated);
            for k in 0..repeated_sides.len() {
                let which = (c + k) % repeated_sides.len();
                let side = repeated_sides[which];
                let start = Instant::now();
                for op in &ops[range.clone()] {
                    repeated_one(&cl, side, &texts[which], op).await;
                }
                totals[which] += start.elapsed();
            }
        }
        let repeated: Vec<Timing> = repeated_sides
            .iter()
            .zip(&totals)
            .map(|(s, t)| Timing {
                side: *s,
                records: args.repeated,
                total: *t,
            })
            .collect();

        let report = format!(
            "### sql (distinct {}, repeated {}, chunks of {})\n\n{}\n{}",
            args.distinct,
            args.repeated,
            args.chunk,
            table(
                "distinct texts, no parameters (INSERT 50%, range SELECT 25%, UPDATE 12.5%, aggregate SELECT 12.5%)",
                &distinct,
                false
            ),
            table(
                "repeated texts with parameters (point SELECT 50%, UPDATE 25%, INSERT 25%)",
                &repeated,
                true
            ),
        );
        println!("{report}");
        if let Some(out) = &args.out {
            super::append_report(out, &report);
        }
        cl.tpg
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .expect("drop schema");
    });
    rt.block_on(strata.close()).expect("close");
}
