//! `strata-bench backup --backend pg`: logical backup and restore throughput
//! of a PostgreSQL table through the backup manager, against the baseline
//! "`COPY … TO STDOUT (FORMAT binary)` + the same compression and upload"
//! and "the same download + `COPY … FROM STDIN (FORMAT binary)`", to and
//! from the same S3 store in one run.
//!
//! - **backup (strata)**: `BackupManager::backup_now` on the Postgres
//!   backend — one `REPEATABLE READ, READ ONLY` transaction, keyset pages
//!   through the plugin, JSON Lines into a temporary file, zstd, SHA-256 of
//!   snapshot and object, multipart upload, manifest.
//! - **backup (baseline)**: sqlx `COPY memories TO STDOUT (FORMAT binary)`
//!   into a file, then the same zstd + multipart upload code
//!   (`upload_file_compressed`).
//! - **restore (strata)**: `BackupManager::restore_into` a fresh schema —
//!   ranged download, SHA-256 checks, zstd, then the table created and
//!   loaded by multi-row `INSERT`s in one transaction, index built.
//! - **restore (baseline)**: the same download + zstd into a file, then
//!   `CREATE TABLE` + `COPY … FROM STDIN (FORMAT binary)` in one
//!   transaction, nothing checked.
//!
//! rows/s is table rows per second of wall time; MB/s is the table's
//! on-disk size (`pg_table_size`, heap + TOAST, 10^6 bytes) per second.

use std::{path::PathBuf, time::Instant};

use futures_util::StreamExt as _;
use sqlx::{Connection, PgConnection};
use strata_host::{
    Strata,
    backup::{BackupManager, Which, download_file_decompressed, upload_file_compressed},
    config::Compression,
};

fn per_sec(n: f64, secs: f64) -> f64 {
    n / secs
}

async fn exec(pg: &mut PgConnection, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *pg)
        .await
        .expect("SQL");
}

const TABLE_DDL: &str = "(id bigint PRIMARY KEY, agent text NOT NULL, content text NOT NULL, \
     importance double precision NOT NULL, created timestamptz NOT NULL, meta jsonb NOT NULL)";

pub(crate) async fn run_pg(
    rows: u64,
    dir: Option<PathBuf>,
    out: Option<PathBuf>,
    store: &super::blob_store::Store,
) {
    let url = std::env::var("DATABASE_URL").expect(
        "set DATABASE_URL (scripts/servers/postgres.sh start; eval \"$(scripts/servers/postgres.sh env)\")",
    );
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let (src, dst, base) = (
        format!("bench_bk_src_{stamp}"),
        format!("bench_bk_dst_{stamp}"),
        format!("bench_bk_base_{stamp}"),
    );
    let mut pg = PgConnection::connect(&url).await.expect("connect");
    eprintln!("generating {rows} rows in schema {src} …");
    let t = Instant::now();
    exec(
        &mut pg,
        format!(
            "CREATE SCHEMA {src}; CREATE TABLE {src}.memories {TABLE_DDL};
             INSERT INTO {src}.memories
             SELECT i, 'agent-' || (i % 32),
                    substr(repeat(md5(i::text) || ' the user prefers tea on thursdays ', 4), 1, 60 + i % 90),
                    (i % 1000) / 1000.0,
                    timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second',
                    jsonb_build_object('kind', CASE WHEN i % 3 = 0 THEN 'fact' ELSE 'event' END, 'n', i)
             FROM generate_series(1, {rows}) i;
             CREATE INDEX memories_agent ON {src}.memories (agent);
             ANALYZE {src}.memories;"
        ),
    )
    .await;
    let (table_bytes,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT pg_table_size('{src}.memories')"
    )))
    .fetch_one(&mut pg)
    .await
    .expect("size");
    eprintln!(
        "{rows} rows, table {:.1} MB in {:.1} s",
        table_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("create --dir");
    let prefix = format!("bench-backup-pg/{stamp}/");
    let archive = store.backend(&dir, &prefix);
    let toml = format!(
        r#"plugin_dirs = ["{plugins}"]
[backends.pg]
plugin = "postgres"
config = {{ url = "${{DATABASE_URL}}", schema = "{src}" }}
[backends.restored]
plugin = "postgres"
config = {{ url = "${{DATABASE_URL}}", schema = "{dst}" }}
[backends.archive]
{archive}
[roles]
sql = "pg"
backup = "archive"
[backup]
keep = 10
compression = "zstd"
"#,
        plugins = super::exe_dir().display(),
    );
    let config = dir.join("bench-backup-pg.toml");
    std::fs::write(&config, toml).expect("write the config");
    let strata = Strata::load(&config).expect("load the config");
    let manager = BackupManager::new(&strata).expect("backup manager");
    let blobs = strata.blobs().await.expect("the S3 backend");

    // Baseline backup: COPY TO STDOUT (binary) into a file + the same zstd + upload.
    eprintln!("baseline backup (COPY TO STDOUT binary + zstd + upload) …");
    let dump = dir.join("bench-backup-pg.copy");
    let t = Instant::now();
    {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&dump).expect("create"),
        );
        let mut stream = pg
            .copy_out_raw(&format!("COPY {src}.memories TO STDOUT (FORMAT binary)"))
            .await
            .expect("COPY TO");
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.expect("COPY data")).expect("write");
        }
        out.flush().expect("flush");
    }
    let copy_out_secs = t.elapsed().as_secs_f64();
    let baseline_key = "baseline/memories.copy.zst";
    let (copy_bytes, base_obj) =
        upload_file_compressed(&blobs, baseline_key, &dump, Compression::Zstd)
            .await
            .expect("baseline upload");
    let base_backup = t.elapsed().as_secs_f64();
    std::fs::remove_file(&dump).expect("remove the dump");

    // strata backup.
    eprintln!(
        "strata backup (repeatable-read snapshot → JSONL + zstd + sha256 + upload + manifest) …"
    );
    let t = Instant::now();
    let report = manager.backup_now().await.expect("backup");
    let ours_backup = t.elapsed().as_secs_f64();

    // Baseline restore: download + zstd into a file, COPY FROM STDIN (binary).
    eprintln!("baseline restore (download + zstd + COPY FROM STDIN binary) …");
    let t = Instant::now();
    let file = std::fs::File::create(&dump).expect("create");
    download_file_decompressed(&blobs, baseline_key, Compression::Zstd, file)
        .await
        .expect("baseline download");
    let base_download = t.elapsed().as_secs_f64();
    {
        let mut tx = pg.begin().await.expect("begin");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA {base}; CREATE TABLE {base}.memories {TABLE_DDL}"
        )))
        .execute(&mut *tx)
        .await
        .expect("baseline table");
        let mut copy = tx
            .copy_in_raw(&format!("COPY {base}.memories FROM STDIN (FORMAT binary)"))
            .await
            .expect("COPY FROM");
        copy.read_from(tokio::fs::File::open(&dump).await.expect("open"))
            .await
            .expect("COPY data");
        copy.finish().await.expect("COPY finish");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE INDEX memories_agent ON {base}.memories (agent)"
        )))
        .execute(&mut *tx)
        .await
        .expect("baseline index");
        tx.commit().await.expect("commit");
    }
    let base_restore = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&dump);

    // strata restore into a fresh schema.
    eprintln!("strata restore (download + sha256 + zstd + one-transaction INSERT load) …");
    let t = Instant::now();
    let restored = manager
        .restore_into(
            &Which::Timestamp(report.manifest.timestamp.clone()),
            "restored",
            false,
        )
        .await
        .expect("restore");
    let ours_restore = t.elapsed().as_secs_f64();
    let (n_restored,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {dst}.memories"
    )))
    .fetch_one(&mut pg)
    .await
    .expect("count");
    assert_eq!(n_restored as u64, rows, "the restore lost rows");

    // Clean up.
    let _ = blobs.delete(baseline_key).await;
    for b in manager.list().await.unwrap_or_default() {
        if let Some(k) = b.manifest_key {
            let _ = blobs.delete(&k).await;
        }
        if let Some(o) = b.object {
            let _ = blobs.delete(&o.key).await;
        }
    }
    strata.close().await.expect("close");
    exec(
        &mut pg,
        format!(
            "DROP SCHEMA {src} CASCADE; DROP SCHEMA {dst} CASCADE; DROP SCHEMA {base} CASCADE;"
        ),
    )
    .await;

    let m = &report.manifest;
    let mb = table_bytes as f64 / 1e6;
    let r = rows as f64;
    let line = |what: &str, ours: f64, base: f64| {
        format!(
            "| {what} | {ours:.2} s, {:.0} rows/s, {:.1} MB/s | {base:.2} s, {:.0} rows/s, {:.1} MB/s | {:.2}× |\n",
            per_sec(r, ours),
            per_sec(mb, ours),
            per_sec(r, base),
            per_sec(mb, base),
            base / ours
        )
    };
    let table = format!(
        "| | strata (logical JSONL) | baseline (binary COPY) | strata / baseline throughput |\n\
         |---|---|---|---|\n{}{}\n\
         Table: {rows} rows, {mb:.1} MB (`pg_table_size`). Snapshot (JSONL) {:.1} MB → zstd object {:.1} MB; \
         binary COPY {:.1} MB → zstd object {:.1} MB.\n\n\
         Breakdown (strata): snapshot (read + JSONL to a temporary file) {:.2} s, compress + upload {:.2} s; \
         restore download + checks + decompress {:.2} s, load (one transaction) {:.2} s.\n\
         Breakdown (baseline): COPY TO a file {:.2} s, compress + upload {:.2} s; download + decompress {:.2} s, \
         COPY FROM + index {:.2} s.\n",
        line("backup", ours_backup, base_backup),
        line("restore", ours_restore, base_restore),
        m.snapshot_size as f64 / 1e6,
        m.object_size as f64 / 1e6,
        copy_bytes as f64 / 1e6,
        base_obj as f64 / 1e6,
        report.snapshot_secs,
        report.upload_secs,
        restored.download_secs,
        restored.load_secs,
        copy_out_secs,
        base_backup - copy_out_secs,
        base_download,
        base_restore - base_download,
    );
    println!("{table}");
    if let Some(out) = out {
        std::fs::write(&out, table).expect("write --out");
        eprintln!("wrote {}", out.display());
    }
}
