//! `strata-bench backup`: backup and restore throughput of a SQLite
//! database through the backup manager, against the baseline "plain file
//! copy + the same compression", both to and from the same S3 store in one
//! run.
//!
//! - **backup (strata)**: `BackupManager::backup_now` — `VACUUM INTO` on a
//!   read-only twin, zstd, sha256 of snapshot and object, multipart upload
//!   through the S3 plugin, `PRAGMA integrity_check` of the snapshot
//!   meanwhile, manifest.
//! - **backup (baseline)**: `std::fs::copy` of the database file (not a
//!   consistent snapshot, which is why strata does not do it), then the
//!   same zstd + multipart upload code.
//! - **restore (strata)**: `BackupManager::restore` — ranged parallel
//!   download, sha256 checks, zstd, fsync, rename, directory fsync (no
//!   second `PRAGMA integrity_check`: the manifest records the one made at
//!   backup time).
//! - **restore (baseline)**: the same download + zstd into a file, nothing
//!   checked, no fsync.
//!
//! With `--store fs` the backup store is a directory on the same disk
//! through the fs plugin (`libstrata_fs.so`): no S3 server in the way, so
//! the time is strata's own. That run adds a second baseline, the
//! command-line tools: `cp` + `zstd -3 -T1` to back up, `zstd -d` +
//! `sync` to restore (no hashes, no checks).
//!
//! MB/s is database-file megabytes (10^6 bytes) per second of wall time.

use std::{path::PathBuf, time::Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_host::{
    Strata,
    backup::{BackupManager, Which, download_file_decompressed, upload_file_compressed},
    config::Compression,
};

/// Arguments of `strata-bench backup`.
#[derive(clap::Args, Debug)]
pub(crate) struct BackupArgs {
    /// `sqlite` (a database file, file copy baseline) or `pg` (a logical
    /// backup of a Postgres table, binary COPY baseline; needs DATABASE_URL).
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Approximate database size in MB (sqlite).
    #[arg(long, default_value_t = 500)]
    size_mb: u64,
    /// Rows of the table (pg).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Where backups go: `s3` (the S3 plugin; needs an endpoint) or `fs` (a
    /// directory under --dir through the fs plugin, no server).
    #[arg(long, default_value = "s3")]
    store: String,
    /// S3 endpoint (default: $S3_ENDPOINT, e.g. moto from scripts/servers/moto.sh).
    #[arg(long)]
    endpoint: Option<String>,
    /// Bucket (default: $S3_BUCKET or strata-test).
    #[arg(long)]
    bucket: Option<String>,
    /// Directory for the database and restores (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the results as Markdown here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// Agent memories: a text column (compressible) and a 384-d f32 embedding
/// (not very compressible), ~3.4 KB a row on disk.
fn make_db(path: &std::path::Path, size_mb: u64) -> u64 {
    let mut c = rusqlite::Connection::open(path).expect("open the database");
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
         CREATE TABLE memories (id INTEGER PRIMARY KEY, agent TEXT NOT NULL, content TEXT NOT NULL,
                                importance REAL NOT NULL, embedding BLOB NOT NULL);
         CREATE INDEX memories_agent ON memories (agent);",
    )
    .expect("schema");
    let words = [
        "the", "user", "prefers", "tea", "meeting", "moved", "to", "thursday", "project",
        "deadline", "remember", "birthday", "allergic", "peanuts", "likes", "hiking", "in",
        "autumn", "asked", "about", "invoice", "budget", "review", "strata", "backup", "restore",
        "weekly", "summary",
    ];
    let mut rng = StdRng::seed_from_u64(7);
    let rows = size_mb * 1_000_000 / 3_370;
    let tx = c.transaction().expect("tx");
    {
        let mut ins = tx
            .prepare("INSERT INTO memories (id, agent, content, importance, embedding) VALUES (?1, ?2, ?3, ?4, ?5)")
            .expect("prepare");
        let mut emb = vec![0u8; 384 * 4];
        for id in 1..=rows as i64 {
            let n = rng.random_range(40..120);
            let content: Vec<&str> = (0..n)
                .map(|_| words[rng.random_range(0..words.len())])
                .collect();
            for f in emb.chunks_mut(4) {
                f.copy_from_slice(&rng.random_range(-1.0f32..1.0).to_le_bytes());
            }
            ins.execute(rusqlite::params![
                id,
                format!("agent-{}", id % 32),
                content.join(" "),
                rng.random::<f64>(),
                emb
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    rows
}

/// Runs the benchmark.
pub(crate) fn run(args: BackupArgs) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run_async(args));
}

async fn run_async(args: BackupArgs) {
    let local = match args.store.as_str() {
        "s3" => false,
        "fs" => true,
        other => panic!("--store {other}: expected s3 or fs"),
    };
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| std::env::var("S3_ENDPOINT").ok())
        .unwrap_or_default();
    if !local && endpoint.is_empty() {
        panic!(
            "set --endpoint or S3_ENDPOINT (scripts/servers/moto.sh start; eval \"$(scripts/servers/moto.sh env)\"), or use --store fs"
        );
    }
    let bucket = args
        .bucket
        .clone()
        .or_else(|| std::env::var("S3_BUCKET").ok())
        .unwrap_or_else(|| "strata-test".into());
    let store = super::blob_store::Store {
        local,
        endpoint,
        bucket,
    };
    match args.backend.as_str() {
        "sqlite" => {}
        "pg" | "postgres" => {
            return super::backup_pg::run_pg(args.rows, args.dir, args.out, &store).await;
        }
        other => panic!("--backend {other}: expected sqlite or pg"),
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = args.dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("create --dir");
    let db = dir.join("bench-backup.sqlite");
    let _ = std::fs::remove_file(&db);
    let plugin_dir = super::exe_dir();
    let prefix = format!(
        "bench-backup/{}/",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let archive = store.backend(&dir, &prefix);
    let toml = format!(
        r#"plugin_dirs = ["{plugins}"]
[backends.local]
plugin = "sqlite"
config = {{ path = "{db}" }}
[backends.archive]
{archive}
[roles]
sql = "local"
backup = "archive"
[backup]
keep = 10
compression = "zstd"
"#,
        plugins = plugin_dir.display(),
        db = db.display(),
    );
    let config = dir.join("bench-backup.toml");
    std::fs::write(&config, toml).expect("write the config");

    eprintln!("generating a ~{} MB database …", args.size_mb);
    let t = Instant::now();
    let rows = make_db(&db, args.size_mb);
    let db_size = std::fs::metadata(&db).expect("db size").len();
    eprintln!(
        "{rows} rows, {:.1} MB in {:.1} s",
        db_size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let strata = Strata::load(&config).expect("load the config");
    let manager = BackupManager::new(&strata).expect("backup manager");
    let blobs = strata.blobs().await.expect("the backup store");
    let tools_backup = local.then(|| tools_backup(&db, &dir)).flatten();

    // Baseline backup: plain file copy + the same zstd + upload.
    eprintln!("baseline backup (file copy + zstd + upload) …");
    settle();
    let t = Instant::now();
    let copy = dir.join("bench-backup.copy.sqlite");
    std::fs::copy(&db, &copy).expect("copy");
    let copy_secs = t.elapsed().as_secs_f64();
    let baseline_key = "baseline/copy.sqlite.zst";
    let (_, base_obj) = upload_file_compressed(&blobs, baseline_key, &copy, Compression::Zstd)
        .await
        .expect("baseline upload");
    let base_backup = t.elapsed().as_secs_f64();
    std::fs::remove_file(&copy).expect("remove the copy");

    // strata backup (the SQLite backend is opened by the manager).
    eprintln!(
        "strata backup (VACUUM INTO + zstd + sha256 + upload + integrity_check + manifest) …"
    );
    settle();
    let t = Instant::now();
    let report = manager.backup_now().await.expect("backup");
    let ours_backup = t.elapsed().as_secs_f64();

    // Baseline restore: download + zstd into a file.
    eprintln!("baseline restore (download + zstd) …");
    let target_base = dir.join("restored-baseline.sqlite");
    settle();
    let t = Instant::now();
    let file = std::fs::File::create(&target_base).expect("create");
    download_file_decompressed(&blobs, baseline_key, Compression::Zstd, file)
        .await
        .expect("baseline download");
    let base_restore = t.elapsed().as_secs_f64();

    let tools_restore = tools_backup.as_ref().and_then(|_| tools_restore(&dir));

    // strata restore.
    eprintln!("strata restore (download + sha256 + zstd + fsync + rename) …");
    let target = dir.join("restored.sqlite");
    let _ = std::fs::remove_file(&target);
    settle();
    let t = Instant::now();
    let restored = manager
        .restore(
            &Which::Timestamp(report.manifest.timestamp.clone()),
            Some(&target),
            false,
        )
        .await
        .expect("restore");
    let ours_restore = t.elapsed().as_secs_f64();
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
    let m = &report.manifest;
    let backup_ratio = base_backup / ours_backup;
    let restore_ratio = base_restore / ours_restore;
    let table = format!(
        "| | strata | baseline (file copy + zstd) | strata / baseline throughput |\n\
         |---|---|---|---|\n\
         | backup | {:.2} s, {:.0} MB/s | {:.2} s, {:.0} MB/s | {:.2}× |\n\
         | restore | {:.2} s, {:.0} MB/s | {:.2} s, {:.0} MB/s | {:.2}× |\n\n\
         Database: {rows} rows, {:.1} MB (WAL, checkpointed). Snapshot ({}) {:.1} MB → zstd object {:.1} MB; \
         baseline object {:.1} MB.\n\n\
         Breakdown (strata): snapshot (`VACUUM INTO`) {:.2} s vs file copy {:.2} s; compress + upload {:.2} s; \
         restore download + checks + decompress {:.2} s, `PRAGMA integrity_check` {:.2} s.\n",
        ours_backup,
        mbps(db_size, ours_backup),
        base_backup,
        mbps(db_size, base_backup),
        backup_ratio,
        ours_restore,
        mbps(db_size, ours_restore),
        base_restore,
        mbps(db_size, base_restore),
        restore_ratio,
        db_size as f64 / 1e6,
        m.timestamp,
        m.snapshot_size as f64 / 1e6,
        m.object_size as f64 / 1e6,
        base_obj as f64 / 1e6,
        report.snapshot_secs,
        copy_secs,
        report.upload_secs,
        restored.download_secs,
        restored.check_secs,
    );
    let mut table = table;
    if let (Some(b), Some(r)) = (tools_backup, tools_restore) {
        table.push_str(&format!(
            "\nAgainst the command-line tools (no hashes, no checks; same disk):\n\n\
             | | strata | tools | strata / tools throughput |\n\
             |---|---|---|---|\n\
             | backup | {ours_backup:.2} s | `cp` + `zstd -3 -T1` {b:.2} s | {:.2}× |\n\
             | restore | {ours_restore:.2} s | `zstd -d` + `sync` {r:.2} s | {:.2}× |\n",
            b / ours_backup,
            r / ours_restore,
        ));
    }
    println!("{table}");
    if let Some(out) = args.out {
        super::append_report(&out, &format!("{} store:\n\n{table}", args.store));
    }
}

/// Writes every dirty page back (`sync`) before a timed phase, so one
/// phase's writeback is not charged to the next.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// Runs `cmd` through `sh -c` in `dir`; its wall time, or `None` (with a
/// note) when it fails, e.g. without a `zstd` binary.
fn timed_shell(dir: &std::path::Path, cmd: &str) -> Option<f64> {
    settle();
    let t = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .status();
    match status {
        Ok(s) if s.success() => Some(t.elapsed().as_secs_f64()),
        other => {
            eprintln!("skipping the tools baseline: `{cmd}` gave {other:?}");
            None
        }
    }
}

/// The tools' backup: `cp` of the database, then `zstd -3` on one thread
/// (what strata's compression uses), into `dir`.
fn tools_backup(db: &std::path::Path, dir: &std::path::Path) -> Option<f64> {
    eprintln!("tools backup (cp + zstd -3 -T1) …");
    let secs = timed_shell(
        dir,
        &format!(
            "cp '{}' tools.sqlite && zstd -q -f -3 -T1 tools.sqlite -o tools.sqlite.zst",
            db.display()
        ),
    );
    let _ = std::fs::remove_file(dir.join("tools.sqlite"));
    secs
}

/// The tools' restore: `zstd -d` of the tools' object, then `sync` of the file.
fn tools_restore(dir: &std::path::Path) -> Option<f64> {
    eprintln!("tools restore (zstd -d + sync) …");
    let secs = timed_shell(
        dir,
        "zstd -q -f -d tools.sqlite.zst -o tools-restored.sqlite && sync tools-restored.sqlite",
    );
    for f in ["tools.sqlite.zst", "tools-restored.sqlite"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    secs
}
