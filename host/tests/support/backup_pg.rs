//! Helpers for the logical-backup tests on real servers (PostgreSQL and
//! moto's S3), shared by `host/tests/backup_pg.rs` (the engine) and
//! `cli/tests/backup_pg.rs` (the `strata` binary), which include this file
//! with `#[path]`. Each uses a subset.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use strata_host::{Sql, Strata, loader::built_plugin};

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) strata: Strata,
    pub(crate) schemas: Vec<String>,
}

pub(crate) fn require(var: &str, how: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: these tests need a real server. Start it with \
             `scripts/servers/{how}.sh start && eval \"$(scripts/servers/{how}.sh env)\"` (scripts/test does this)"
        )
    })
}

pub(crate) static SEQ: AtomicU32 = AtomicU32::new(0);

pub(crate) fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{name}_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// `plugins.toml` with Postgres backends `pg` (the source, its own schema,
/// read committed) and `restored` (another schema), a SQLite backend
/// `lite`, and the S3 backend `archive` (the `backup` role).
pub(crate) fn env(test: &str, backup_table: &str) -> Env {
    require("DATABASE_URL", "postgres");
    let endpoint = require("S3_ENDPOINT", "moto");
    let bucket = std::env::var("S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let plugin_dir = built_plugin("postgres")
        .expect("build the plugins first: cargo build --release --workspace")
        .parent()
        .unwrap()
        .to_path_buf();
    built_plugin("s3").expect("libstrata_s3.so is built");
    built_plugin("sqlite").expect("libstrata_sqlite.so is built");
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (unique(&format!("bk_{test}")), unique(&format!("rs_{test}")));
    let prefix = format!("backup-pg-tests/{}/", unique(test));
    let file = dir.path().join("plugins.toml");
    let text = format!(
        r#"plugin_dirs = ["{plugins}"]
[backends.pg]
plugin = "postgres"
config = {{ url = "${{DATABASE_URL}}", schema = "{src}", isolation = "read_committed", hnsw_threshold = 100000 }}
[backends.restored]
plugin = "postgres"
config = {{ url = "${{DATABASE_URL}}", schema = "{dst}" }}
[backends.lite]
plugin = "sqlite"
config = {{ path = "{db}" }}
[backends.archive]
plugin = "s3"
config = {{ bucket = "{bucket}", endpoint = "{endpoint}", region = "us-east-1", prefix = "{prefix}" }}
[roles]
sql = "pg"
vectors = "pg"
backup = "archive"
[backup]
{backup_table}
"#,
        plugins = plugin_dir.display(),
        db = dir.path().join("lite.sqlite").display(),
    );
    std::fs::write(&file, text).unwrap();
    let strata = Strata::load(&file).unwrap();
    Env {
        dir,
        strata,
        schemas: vec![src, dst],
    }
}

impl Env {
    pub(crate) async fn sql(&self, backend: &str) -> Sql {
        self.strata.backend(backend).await.unwrap().sql().unwrap()
    }

    /// Drops the test's schemas (best effort; a failed test leaves them for inspection).
    pub(crate) async fn cleanup(self) {
        let sql = self.sql("pg").await;
        for s in &self.schemas {
            let _ = sql
                .exec(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
                .await;
        }
        let _ = self.strata.close().await;
    }
}
