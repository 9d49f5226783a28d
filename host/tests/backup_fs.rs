//! Backups of a real SQLite database (the loaded SQLite plugin) to a
//! directory through the loaded fs plugin: no server, the same backup
//! manager as S3. The files on disk are checked as a user would see them.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use strata_host::{
    Backend, ErrorKind, Plugin, Strata,
    backup::{BackupError, BackupManager, Manifest, Which},
    loader::built_plugin,
};

struct Env {
    dir: tempfile::TempDir,
    strata: Strata,
}

/// A `plugins.toml` with a SQLite backend `local` (the `sql` role) and an
/// fs backend `disk` (the `backup` role) on `DIR/backups` (given relative:
/// it resolves against the directory of `plugins.toml`).
fn env(backup_table: &str) -> Env {
    let plugin_dir = built_plugin("fs")
        .expect("build the plugins first: cargo build --release --workspace")
        .parent()
        .unwrap()
        .to_path_buf();
    built_plugin("sqlite").expect("libstrata_sqlite.so is built");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugins.toml");
    let text = format!(
        r#"plugin_dirs = ["{plugins}"]
[backends.local]
plugin = "sqlite"
config = {{ path = "brain.sqlite" }}
[backends.disk]
plugin = "fs"
config = {{ root = "backups" }}
[roles]
sql = "local"
backup = "disk"
[backup]
{backup_table}
"#,
        plugins = plugin_dir.display(),
    );
    std::fs::write(&file, text).unwrap();
    let strata = Strata::load(&file).unwrap();
    Env { dir, strata }
}

impl Env {
    /// Where backup `ts` of backend `local` is on disk, with extension `ext`.
    fn file(&self, ts: &str, ext: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("backups/backups%/local%/{ts}.{ext}"))
    }
}

/// Opens `path` read-only through the SQLite plugin: `(integrity_check, rows of t)`.
async fn inspect(path: &Path) -> (String, i64) {
    let plugin = Plugin::load(built_plugin("sqlite").unwrap()).unwrap();
    let cfg = serde_json::json!({ "path": path.display().to_string(), "read_only": true });
    let b = Backend::open("inspect", plugin, Path::new("inspect.toml"), &cfg)
        .await
        .unwrap();
    let sql = b.sql().unwrap();
    let row = sql
        .get("SELECT (SELECT integrity_check FROM pragma_integrity_check) AS c, count(*) AS n FROM t", ())
        .await
        .unwrap()
        .unwrap();
    let out = (row.get("c").unwrap(), row.get("n").unwrap());
    b.close().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_to_a_directory_keep_verify_and_restore_their_moment() {
    let env = env("keep = 2");
    let sql = env.strata.sql().await.unwrap();
    sql.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, hex(randomblob(64)) FROM n;",
    )
    .await
    .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let mut made = Vec::new();
    for extra in [0, 500, 700] {
        sql.run(
            "INSERT INTO t (body) SELECT hex(randomblob(64)) FROM t LIMIT ?",
            [extra],
        )
        .await
        .unwrap();
        let report = manager.backup_now().await.unwrap();
        let ts = report.manifest.timestamp.clone();
        // Checked while it was compressed.
        assert_eq!(report.manifest.integrity_check.as_deref(), Some("ok"));
        // The object and its manifest are plain files under the root,
        // named like their keys, of the size the manifest records.
        let object = env.file(&ts, "sqlite.zst");
        assert_eq!(
            std::fs::metadata(&object).unwrap().len(),
            report.manifest.object_size,
            "{}",
            object.display()
        );
        assert!(env.file(&ts, "manifest.json").is_file());
        made.push(ts);
    }
    // keep = 2: the oldest is gone from the listing and from the disk.
    let kept: Vec<String> = manager
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.timestamp)
        .collect();
    assert_eq!(kept, made[1..].to_vec());
    assert!(!env.file(&made[0], "sqlite.zst").exists());
    assert!(!env.file(&made[0], "manifest.json").exists());
    assert!(
        manager
            .verify()
            .await
            .unwrap()
            .iter()
            .all(|v| v.problems.is_empty())
    );

    // One flipped byte on disk: verify names the backup, its restore
    // fails and writes nothing.
    let newest = env.file(&made[2], "sqlite.zst");
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&newest, bytes).unwrap();
    let bad: Vec<_> = manager
        .verify()
        .await
        .unwrap()
        .into_iter()
        .filter(|v| !v.problems.is_empty())
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].timestamp, made[2]);
    assert!(bad[0].problems.join(" ").contains("sha256"), "{bad:?}");
    let target = env.dir.path().join("restored.sqlite");
    let e = manager
        .restore(&Which::Timestamp(made[2].clone()), Some(&target), false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!target.exists());

    // The middle backup restores its own moment: 2000 + 500 rows, with
    // no second integrity check (the bytes are the checked snapshot's).
    let restored = manager
        .restore(&Which::Timestamp(made[1].clone()), Some(&target), false)
        .await
        .unwrap();
    assert!(restored.checked_at_backup);
    assert_eq!(restored.check_secs, 0.0);
    assert_eq!(inspect(&target).await, ("ok".to_string(), 2500));
}

/// `t` with an index `ti` that SQLite believes is on `b` but holds the
/// values of `a`: readable, copied as is by `VACUUM INTO`, and reported by
/// `PRAGMA integrity_check` ("row 1 missing from index ti").
const DAMAGE: &str = "CREATE TABLE t (a INTEGER, b INTEGER);
     CREATE INDEX ti ON t (a);
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
     INSERT INTO t SELECT i, 1000 - i FROM n;
     PRAGMA writable_schema = ON;
     UPDATE sqlite_schema SET sql = 'CREATE INDEX ti ON t (b)' WHERE name = 'ti';
     PRAGMA writable_schema = OFF;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_backup_and_nothing_is_stored() {
    let env = env("keep = 3");
    let sql = env.strata.sql().await.unwrap();
    sql.exec(DAMAGE).await.unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let e = manager.backup_now().await.unwrap_err();
    assert!(
        matches!(&e, BackupError::SourceDamaged { backend, result }
            if backend == "local" && result.contains("missing from index ti")),
        "{e}"
    );
    assert!(e.to_string().contains("no backup was stored"), "{e}");
    // Neither object nor manifest: nothing to list, nothing on disk.
    assert!(manager.list().await.unwrap().is_empty());
    let blobs = env.strata.blobs().await.unwrap();
    assert!(blobs.list("").await.unwrap().is_empty());
}

/// A SQLite file backup holds what the database holds at its moment, not
/// what it once held: SQLite leaves deleted rows' bytes in free pages and
/// in the free space of live pages (unless `secure_delete`), and a copy
/// of the file would carry a forgotten memory into every later backup.
/// (`VACUUM INTO` writes live content only; a faster page-for-page
/// snapshot would have to wipe both kinds of free space to pass this.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_rows_are_not_in_a_later_backup() {
    let env = env("keep = 1");
    let sql = env.strata.sql().await.unwrap();
    const MARKER: &str = "forget-me-3f9c2a";
    sql.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT i, hex(randomblob(40)) FROM n;",
    )
    .await
    .unwrap();
    // Forgotten rows of both shapes: small ones spread among rows that
    // stay (free space inside live pages), and large ones that fill pages
    // and overflow chains of their own (pages that become free).
    sql.run("UPDATE t SET body = ? || id WHERE id % 7 = 0", [MARKER])
        .await
        .unwrap();
    sql.run(
        "INSERT INTO t (body) SELECT ? || printf('%.9000c', 'x') FROM t LIMIT 40",
        [MARKER],
    )
    .await
    .unwrap();
    sql.run("DELETE FROM t WHERE body LIKE ? || '%'", [MARKER])
        .await
        .unwrap();
    sql.exec("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
    let held = |bytes: &[u8]| {
        bytes
            .windows(MARKER.len())
            .filter(|w| *w == MARKER.as_bytes())
            .count()
    };
    // The database file still holds them: what the backup must not copy.
    let db = std::fs::read(env.dir.path().join("brain.sqlite")).unwrap();
    assert!(
        held(&db) > 0,
        "the test needs deleted bytes left in the file"
    );
    let manager = BackupManager::new(&env.strata).unwrap();
    let report = manager.backup_now().await.unwrap();
    let object = std::fs::read(env.file(&report.manifest.timestamp, "sqlite.zst")).unwrap();
    let snapshot = zstd::decode_all(&object[..]).unwrap();
    assert_eq!(held(&snapshot), 0, "deleted rows are in the backup");
    let left: i64 = sql
        .get("SELECT count(*) AS n FROM t", ())
        .await
        .unwrap()
        .unwrap()
        .get("n")
        .unwrap();
    assert_eq!(left, 3000 - 3000 / 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_whose_manifest_records_no_check_is_checked_at_restore() {
    // What an earlier strata wrote: a manifest without `integrity_check`,
    // here of a damaged database. The restore's own check refuses it.
    let env = env("keep = 3");
    let sql = env.strata.sql().await.unwrap();
    sql.exec("CREATE TABLE ok (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let good = manager.backup_now().await.unwrap().manifest;

    let damaged = env.dir.path().join("damaged.sqlite");
    {
        let plugin = Plugin::load(built_plugin("sqlite").unwrap()).unwrap();
        let cfg = serde_json::json!({ "path": damaged.display().to_string() });
        let b = Backend::open("damaged", plugin, Path::new("x.toml"), &cfg)
            .await
            .unwrap();
        b.sql().unwrap().exec(DAMAGE).await.unwrap();
        b.sql()
            .unwrap()
            .exec("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .unwrap();
        b.close().await.unwrap();
    }
    let snapshot = std::fs::read(&damaged).unwrap();
    let object = zstd::encode_all(&snapshot[..], 3).unwrap();
    let ts = "20300101T000000.000Z";
    let mut m: Manifest = good.clone();
    m.timestamp = ts.into();
    m.object_key = format!("backups/local/{ts}.sqlite.zst");
    m.object_size = object.len() as u64;
    m.object_sha256 = hex::encode(Sha256::digest(&object));
    m.snapshot_size = snapshot.len() as u64;
    m.snapshot_sha256 = hex::encode(Sha256::digest(&snapshot));
    m.integrity_check = None;
    m.manifest_sha256.clear();
    m.manifest_sha256 = hex::encode(Sha256::digest(serde_json::to_vec(&m).unwrap()));
    let blobs = env.strata.blobs().await.unwrap();
    blobs.put(&m.object_key, object).await.unwrap();
    blobs
        .put(
            &format!("backups/local/{ts}.manifest.json"),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .await
        .unwrap();

    let target = env.dir.path().join("restored.sqlite");
    let e = manager
        .restore(&Which::Timestamp(ts.into()), Some(&target), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BackupError::IntegrityCheck { result, .. } if result.contains("missing from index ti")),
        "{e}"
    );
    assert!(!target.exists());
    // The checked one restores without a second check.
    let r = manager
        .restore(
            &Which::Timestamp(good.timestamp.clone()),
            Some(&target),
            false,
        )
        .await
        .unwrap();
    assert!(r.checked_at_backup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_a_killed_process_left_is_listed_and_aborted_by_the_next_backup() {
    let env = env("keep = 3\nstale_upload_age = \"0s\"");
    let blobs = env.strata.blobs().await.unwrap();
    let key = "backups/local/20990101T000000.000Z.sqlite.zst";
    let mut w = blobs.writer(key).await.unwrap();
    w.write(vec![7u8; 3 << 20]).await.unwrap();
    // Never completed, aborted or dropped: what a killed process leaves.
    std::mem::forget(w);
    let open = blobs
        .pending_uploads("")
        .await
        .unwrap()
        .expect("fs lists uploads");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].key, key);
    assert!(open[0].initiated_ms.is_some());
    let staged = env.dir.path().join("backups/.strata/uploads");
    assert_eq!(
        std::fs::read_dir(&staged).unwrap().count(),
        2,
        "bytes and key"
    );
    // Not an object: no listing shows it.
    assert!(blobs.list("").await.unwrap().is_empty());

    let sql = env.strata.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let report = BackupManager::new(&env.strata)
        .unwrap()
        .backup_now()
        .await
        .unwrap();
    let aborted: Vec<&str> = report
        .stale_uploads
        .aborted
        .iter()
        .map(|u| u.key.as_str())
        .collect();
    assert_eq!(aborted, [key]);
    assert!(blobs.pending_uploads("").await.unwrap().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(&staged).unwrap().count(), 0);
    assert!(!blobs.exists(key).await.unwrap());
}
