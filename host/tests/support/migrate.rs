//! Helpers for the migration tests on real backends, shared by
//! `host/tests/migrate.rs` (the engine) and `cli/tests/migrate.rs` (the
//! `strata` binary), which include this file with `#[path]`. Each uses a
//! subset.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::json;
use strata_host::{Metric, Record, Sql, Strata, migrate::table_checksum, params};

pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: these tests need the PostgreSQL server; run them through \
         scripts/test, or `scripts/servers/postgres.sh start && eval \"$(scripts/servers/postgres.sh env)\"`",
    )
}

pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub(crate) static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique Postgres schema name for one test.
pub(crate) fn pg_schema(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "mig_{test}_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// plugins.toml with SQLite backends `src` and `back` (files in `dir`) and
/// Postgres backend `pg` in `schema`.
pub(crate) fn config(dir: &Path, schema: &str) -> PathBuf {
    let _ = database_url();
    let file = dir.join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "plugin_dirs = [{:?}]\n\
             [backends.src]\nplugin = \"sqlite\"\nconfig = {{ path = {:?} }}\n\
             [backends.back]\nplugin = \"sqlite\"\nconfig = {{ path = {:?} }}\n\
             [backends.pg]\nplugin = \"postgres\"\nconfig = {{ url = \"${{DATABASE_URL}}\", schema = {:?} }}\n",
            target_dir(),
            dir.join("src.sqlite"),
            dir.join("back.sqlite"),
            schema
        ),
    )
    .unwrap();
    file
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn embedding(i: i64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| ((i * 31 + j as i64 * 7) % 997) as f32 / 997.0 - 0.5)
        .collect()
}

pub(crate) fn blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `memories` with `n` rows (integer key, text, real, JSON, 16-d embedding)
/// and `pairs` with a composite text/integer key.
pub(crate) async fn make_bulk(sql: &Sql, n: i64) {
    sql.exec(
        "CREATE TABLE memories (id INTEGER PRIMARY KEY, agent TEXT NOT NULL, content TEXT NOT NULL,
            importance REAL NOT NULL, meta JSON, embedding BLOB);
         CREATE INDEX memories_agent ON memories (agent);
         CREATE TABLE pairs (a TEXT NOT NULL, b INTEGER NOT NULL, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;",
    )
    .await
    .unwrap();
    let mut i = 1;
    while i <= n {
        let tx = sql.begin().await.unwrap();
        let end = (i + 5000).min(n + 1);
        for id in i..end {
            tx.run(
                "INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?)",
                params![
                    id,
                    format!("agent-{}", id % 7),
                    format!("memory number {id}"),
                    (id % 100) as f64 / 100.0,
                    json!({"n": id, "tags": ["x", id % 3]}).to_string(),
                    blob(&embedding(id, 16))
                ],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        i = end;
    }
    for a in ["x", "y", "z"] {
        for b in 0..50 {
            sql.run(
                "INSERT INTO pairs VALUES (?, ?, ?)",
                params![a, b, format!("{a}{b}")],
            )
            .await
            .unwrap();
        }
    }
}

pub(crate) async fn make_collections(strata: &Strata, backend: &str) {
    let v = strata.vectors_backend(backend).await.unwrap();
    v.create_collection("notes", 8, Metric::Cosine)
        .await
        .unwrap();
    let recs: Vec<Record> = (0..300)
        .map(|i| {
            let mut r = Record::new(format!("n{i}"), embedding(i, 8))
                .metadata(json!({"kind": if i % 2 == 0 { "fact" } else { "event" }, "i": i, "nested": {"b": 1, "a": [i]}}));
            if i % 3 != 0 {
                r = r.text(format!("note {i} about tea"));
            }
            r
        })
        .collect();
    v.upsert("notes", recs).await.unwrap();
    v.create_collection("points", 4, Metric::Euclidean)
        .await
        .unwrap();
    v.upsert(
        "points",
        (0..50).map(|i| Record::new(format!("p{i}"), embedding(i + 1000, 4))),
    )
    .await
    .unwrap();
}

pub(crate) async fn checksums(
    strata: &Strata,
    backend: &str,
    tables: &[&str],
) -> Vec<(u64, String)> {
    let sql = strata.sql_backend(backend).await.unwrap();
    let mut out = Vec::new();
    for t in tables {
        let c = table_checksum(&sql, t).await.unwrap();
        out.push((c.rows, c.hex()));
    }
    out
}

pub(crate) async fn drop_schema(strata: &Strata, schema: &str) {
    let pg = strata.sql_backend("pg").await.unwrap();
    pg.exec(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

pub(crate) fn count_pg(strata: &Strata, rt: &tokio::runtime::Runtime, sql: &str) -> Option<i64> {
    rt.block_on(async {
        let pg = strata.sql_backend("pg").await.ok()?;
        let r = pg.get(sql, ()).await.ok()??;
        r.get::<i64>("n").ok()
    })
}
