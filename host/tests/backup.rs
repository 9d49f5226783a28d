//! Backups of a real SQLite database (the loaded SQLite plugin) to a real
//! S3-protocol server (moto, started by `scripts/test`; `S3_ENDPOINT` must be
//! set — these tests fail rather than skip without it).
//!
//! Every test works under its own key prefix in the bucket, so they run in
//! parallel without seeing each other's backups.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use strata_host::{
    Backend, ErrorKind, Plugin, Strata,
    backup::{BackupManager, Which},
    config::Compression,
    loader::built_plugin,
};

struct Env {
    dir: tempfile::TempDir,
    strata: Strata,
}

fn s3_endpoint() -> String {
    std::env::var("S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "S3_ENDPOINT is not set: these tests need a real S3-protocol server. Start one with \
             `scripts/servers/moto.sh start && eval \"$(scripts/servers/moto.sh env)\"` (scripts/test does this)"
        )
    })
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// A `plugins.toml` with a SQLite backend `local` (the `sql` role) and an S3
/// backend `archive` (the `backup` role) under a prefix unique to the test.
fn env(test: &str, backup_table: &str) -> Env {
    let endpoint = s3_endpoint();
    let bucket = std::env::var("S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let plugin_dir = built_plugin("s3")
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
config = {{ path = "{db}" }}
[backends.archive]
plugin = "s3"
config = {{ bucket = "{bucket}", endpoint = "{endpoint}", region = "us-east-1", prefix = "backup-tests/{prefix}/" }}
[roles]
sql = "local"
backup = "archive"
[backup]
{backup_table}
"#,
        plugins = plugin_dir.display(),
        db = dir.path().join("brain.sqlite").display(),
        prefix = unique(test),
    );
    std::fs::write(&file, text).unwrap();
    let strata = Strata::load(&file).unwrap();
    Env { dir, strata }
}

impl Env {
    fn db(&self) -> PathBuf {
        self.dir.path().join("brain.sqlite")
    }
}

/// Opens `path` read-only through the SQLite plugin and returns `(integrity_check, ids)`.
async fn inspect(path: &Path, query: &str) -> (String, Vec<i64>) {
    let plugin = Plugin::load(built_plugin("sqlite").unwrap()).unwrap();
    let cfg = serde_json::json!({ "path": path.display().to_string(), "read_only": true });
    let b = Backend::open("inspect", plugin, Path::new("inspect.toml"), &cfg)
        .await
        .unwrap();
    let sql = b.sql().unwrap();
    let check: String = sql
        .get("PRAGMA integrity_check", ())
        .await
        .unwrap()
        .unwrap()
        .get("integrity_check")
        .unwrap();
    let ids = sql
        .all(query, ())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<i64>("id").unwrap())
        .collect();
    b.close().await.unwrap();
    (check, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_of_a_live_database_is_consistent() {
    let env = env("live", "keep = 5");
    let sql = env.strata.sql().await.unwrap();
    sql.exec(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, body BLOB);
         CREATE TABLE ledger (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL);",
    )
    .await
    .unwrap();
    // ~40 MB of history so the snapshot takes a while.
    sql.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
         INSERT INTO events (id, body) SELECT i, randomblob(4000) FROM n;
         INSERT INTO ledger (event_id) SELECT id FROM events;",
    )
    .await
    .unwrap();

    // A writer that commits one event + its ledger row per transaction and
    // publishes the last committed id.
    let committed = Arc::new(AtomicI64::new(10_000));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sql, committed, stop) = (sql.clone(), committed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut id = 10_000i64;
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                sql.transaction(|tx| {
                    Box::pin(async move {
                        tx.run(
                            "INSERT INTO events (id, body) VALUES (?, randomblob(100))",
                            [id],
                        )
                        .await?;
                        tx.run("INSERT INTO ledger (event_id) VALUES (?)", [id])
                            .await?;
                        Ok::<_, strata_host::Error>(())
                    })
                })
                .await
                .unwrap();
                committed.store(id, Ordering::SeqCst);
            }
            id
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let manager = BackupManager::new(&env.strata).unwrap();
    let before = committed.load(Ordering::SeqCst);
    let report = manager.backup_now().await.unwrap();
    let after = committed.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.unwrap();
    assert!(
        after > before,
        "the writer made no progress while the backup ran ({before} -> {after})"
    );

    let restored = env.dir.path().join("restored.sqlite");
    manager
        .restore(
            &Which::Timestamp(report.manifest.timestamp.clone()),
            Some(&restored),
            false,
        )
        .await
        .unwrap();
    let (check, ids) = inspect(&restored, "SELECT id FROM events ORDER BY id").await;
    assert_eq!(check, "ok");
    let n = ids.len() as i64;
    assert!(
        n >= before && n <= after,
        "the snapshot holds {n} events; {before} were committed when the backup started and {after} when it finished"
    );
    assert_eq!(
        ids,
        (1..=n).collect::<Vec<_>>(),
        "a gap in the committed events"
    );
    let (_, ledger) = inspect(&restored, "SELECT event_id AS id FROM ledger ORDER BY id").await;
    assert_eq!(ledger, ids, "a transaction was split by the snapshot");
    assert!(last > after, "the writer kept writing after the backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_exactly_keep() {
    let env = env("retention", "keep = 3");
    let sql = env.strata.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let mut made = Vec::new();
    for i in 0..5 {
        sql.run("INSERT INTO t (id) VALUES (?)", [i]).await.unwrap();
        made.push(manager.backup_now().await.unwrap().manifest.timestamp);
    }
    let kept: Vec<String> = manager
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| {
            assert!(b.manifest_key.is_some() && b.object.is_some(), "{b:?}");
            b.timestamp
        })
        .collect();
    assert_eq!(
        kept,
        made[2..].to_vec(),
        "the newest 3 are kept, oldest first"
    );
    // An explicit prune with nothing beyond `keep` deletes nothing.
    assert!(manager.prune().await.unwrap().is_empty());
}

async fn flip_byte(blobs: &strata_host::Blobs, key: &str) {
    let mut data = blobs.get(key).await.unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x01;
    blobs.put(key, data).await.unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_caught_by_verify_and_restore() {
    let env = env("corrupt", "keep = 10");
    let sql = env.strata.sql().await.unwrap();
    sql.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, hex(randomblob(64)) FROM n;",
    )
    .await
    .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let good = manager.backup_now().await.unwrap().manifest;
    let bad_object = manager.backup_now().await.unwrap().manifest;
    let bad_manifest = manager.backup_now().await.unwrap().manifest;
    assert!(
        manager
            .verify()
            .await
            .unwrap()
            .iter()
            .all(|v| v.problems.is_empty())
    );

    let blobs = env.strata.blobs().await.unwrap();
    flip_byte(&blobs, &bad_object.object_key).await;
    let manifest_key = format!("backups/local/{}.manifest.json", bad_manifest.timestamp);
    flip_byte(&blobs, &manifest_key).await;

    let verified = manager.verify().await.unwrap();
    let bad: Vec<(&str, String)> = verified
        .iter()
        .filter(|v| !v.problems.is_empty())
        .map(|v| (v.timestamp.as_str(), v.problems.join("; ")))
        .collect();
    assert_eq!(bad.len(), 2, "{verified:?}");
    assert_eq!(bad[0].0, bad_object.timestamp);
    assert!(bad[0].1.contains("sha256"), "{}", bad[0].1);
    assert_eq!(bad[1].0, bad_manifest.timestamp);
    assert!(bad[1].1.contains("manifest"), "{}", bad[1].1);

    // A trial restore (into a temporary file beside the database, removed
    // afterwards) counts the good one's rows and reports the bad one.
    let before = files_in(env.dir.path());
    let trial = manager
        .trial_restore(&Which::Timestamp(good.timestamp.clone()), None)
        .await
        .unwrap();
    assert!(trial.problems.is_empty(), "{:?}", trial.problems);
    assert_eq!(trial.items, [("table", "t".to_string(), 2000)]);
    assert!(trial.into.starts_with("file "), "{}", trial.into);
    let trial = manager
        .trial_restore(&Which::Timestamp(bad_object.timestamp.clone()), None)
        .await
        .unwrap();
    assert!(
        trial.problems.iter().any(|p| p.contains("sha256")),
        "{:?}",
        trial.problems
    );
    assert_eq!(files_in(env.dir.path()), before, "the trial left files");

    // Restoring either over the live database fails and leaves it byte-for-byte as it was.
    drop(sql);
    env.strata.close().await.unwrap();
    let db = env.db();
    let original = std::fs::read(&db).unwrap();
    let listing = files_in(env.dir.path());
    for ts in [&bad_object.timestamp, &bad_manifest.timestamp] {
        let e = manager
            .restore(&Which::Timestamp(ts.clone()), None, true)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(ts.as_str()), "{e}");
        assert_eq!(std::fs::read(&db).unwrap(), original, "the target changed");
        assert_eq!(
            files_in(env.dir.path()),
            listing,
            "a temporary file was left behind"
        );
    }
    // The good one still restores.
    manager
        .restore(&Which::Timestamp(good.timestamp.clone()), None, true)
        .await
        .unwrap();
    let (check, ids) = inspect(&db, "SELECT id FROM t ORDER BY id").await;
    assert_eq!(check, "ok");
    assert_eq!(ids.len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_an_existing_file_without_force() {
    let env = env("force", "keep = 10");
    let sql = env.strata.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    manager.backup_now().await.unwrap();
    let target = env.dir.path().join("existing.sqlite");
    std::fs::write(&target, b"precious, not a database").unwrap();
    let e = manager
        .restore(&Which::Latest, Some(&target), false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious, not a database");
    // The default target (the live database) is refused too.
    let e = manager
        .restore(&Which::Latest, None, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    // With force it is replaced.
    let r = manager
        .restore(&Which::Latest, Some(&target), true)
        .await
        .unwrap();
    assert!(r.replaced);
    let (check, ids) = inspect(&target, "SELECT id FROM t").await;
    assert_eq!((check.as_str(), ids), ("ok", vec![1]));
}

/// A backup whose manifest was deleted is listed (manifest MISSING) and
/// cannot be restored (nothing to check it against): a restore says so,
/// naming it, rather than that there are no backups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_its_manifest_is_named_not_called_missing() {
    let env = env("nomanifest", "keep = 10");
    let sql = env.strata.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let r = manager.backup_now().await.unwrap();
    let ts = r.manifest.timestamp.clone();
    let blobs = env.strata.blobs().await.unwrap();
    blobs
        .delete(&format!("backups/local/{ts}.manifest.json"))
        .await
        .unwrap();
    let listed = manager.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].manifest_key.is_none() && listed[0].object.is_some());
    let target = env.dir.path().join("restored.sqlite");
    for which in [
        Which::Latest,
        Which::Timestamp(ts.clone()),
        Which::Timestamp(ts[..8].to_string()),
    ] {
        let e = manager
            .restore(&which, Some(&target), false)
            .await
            .unwrap_err();
        let m = e.to_string();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{m}");
        assert!(!m.contains("there are none"), "{which:?}: {m}");
        assert!(m.contains(&ts) && m.contains("manifest"), "{which:?}: {m}");
    }
    assert!(!target.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_backup_restores_exactly_its_moment_and_latest_is_the_newest() {
    for compression in [Compression::Zstd, Compression::Gzip] {
        let env = env(
            &format!("markers-{}", compression.name()),
            &format!("keep = 10\ncompression = \"{}\"", compression.name()),
        );
        let sql = env.strata.sql().await.unwrap();
        sql.exec("CREATE TABLE markers (id INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        let manager = BackupManager::new(&env.strata).unwrap();
        let mut stamps = Vec::new();
        for marker in 1..=3i64 {
            sql.run("INSERT INTO markers (id) VALUES (?)", [marker])
                .await
                .unwrap();
            let m = manager.backup_now().await.unwrap().manifest;
            assert_eq!(m.compression, compression.name());
            assert!(
                m.object_key
                    .ends_with(&format!(".sqlite.{}", compression.extension())),
                "{}",
                m.object_key
            );
            stamps.push(m.timestamp);
        }
        sql.run("INSERT INTO markers (id) VALUES (4)", ())
            .await
            .unwrap();
        for (i, ts) in stamps.iter().enumerate() {
            let to = env.dir.path().join(format!("at-{i}.sqlite"));
            manager
                .restore(&Which::Timestamp(ts.clone()), Some(&to), false)
                .await
                .unwrap();
            let (check, ids) = inspect(&to, "SELECT id FROM markers ORDER BY id").await;
            assert_eq!(check, "ok");
            assert_eq!(ids, (1..=i as i64 + 1).collect::<Vec<_>>(), "backup {ts}");
        }
        let to = env.dir.path().join("latest.sqlite");
        let r = manager
            .restore(&Which::parse("latest"), Some(&to), false)
            .await
            .unwrap();
        assert_eq!(&r.manifest.timestamp, stamps.last().unwrap());
        assert_eq!(
            inspect(&to, "SELECT id FROM markers ORDER BY id").await.1,
            vec![1, 2, 3]
        );
        // An unknown timestamp names what exists.
        let e = manager
            .restore(&Which::parse("19990101T000000.000Z"), Some(&to), true)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("3 backups"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_runs_first_at_start_then_every_interval() {
    // The interval is long enough that a loaded CI machine (moto shared
    // with the other backup tests) finishes the first backup well within
    // it: "first at start" is then told apart from "first after one interval".
    let env = env("schedule", "keep = 2\ninterval = \"2s\"");
    env.strata
        .sql()
        .await
        .unwrap()
        .exec("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let start = Instant::now();
    let mut at = Vec::new();
    manager
        .run_schedule(Some(3), |r| {
            assert!(r.is_ok(), "{:?}", r.as_ref().err());
            at.push(start.elapsed());
        })
        .await;
    assert_eq!(at.len(), 3);
    assert!(at[0] < Duration::from_secs(2), "first run at {:?}", at[0]);
    assert!(at[2] >= Duration::from_secs(4), "third run at {:?}", at[2]);
    assert_eq!(manager.list().await.unwrap().len(), 2, "keep = 2 applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_only_asked_of_plugins_whose_manifest_lists_the_contract() {
    // The SQLite plugin's manifest has no blob contract: the host must not
    // call `Backend::blobs` on it (a plugin built before the method was
    // appended has no vtable entry for it) and says so.
    let env = env("no-blob", "keep = 1");
    let e = env.strata.blobs_backend("local").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("blob contract"), "{e}");
    // And a non-SQLite source is refused by the backup manager by name.
    let mut settings = env.strata.config().backup.clone();
    settings.source = Some("archive".into());
    let e = BackupManager::new(&env.strata)
        .unwrap()
        .with_settings(settings)
        .backup_now()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("archive"), "{e}");
}

/// Issue 16 #12: a backup killed mid-upload leaves an open multipart upload
/// that no object listing shows (and S3 bills). The S3 plugin lists them
/// (interface `strata.blob.uploads.v1`), and prune aborts those under the
/// backup prefix older than `stale_upload_age`: never a younger one (a
/// backup running now), never one outside the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_multipart_uploads_under_the_backup_prefix_are_aborted() {
    let env = env("uploads", "keep = 3\nstale_upload_age = \"0s\"");
    let blobs = env.strata.blobs().await.unwrap();
    // Two uploads a killed process would leave: the writers are never
    // completed, aborted or dropped.
    for key in [
        "backups/local/20990101T000000.000Z.sqlite.zst",
        "elsewhere/big.bin",
    ] {
        let mut w = blobs.writer(key).await.unwrap();
        w.write(vec![7u8; 6 << 20]).await.unwrap();
        std::mem::forget(w);
    }
    let open = blobs
        .pending_uploads("")
        .await
        .unwrap()
        .expect("s3 lists uploads");
    let keys: Vec<&str> = open.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "backups/local/20990101T000000.000Z.sqlite.zst",
            "elsewhere/big.bin"
        ],
        "{open:?}"
    );
    // (moto answers one fixed `Initiated` date, 2010-11-10, for every
    // upload; AWS gives the real start.)
    assert!(open.iter().all(|u| u.initiated_ms.is_some()), "{open:?}");
    // Nothing in an object listing shows them.
    assert!(blobs.list("").await.unwrap().is_empty());

    // An upload younger than the age is left alone (an age of ~100 years,
    // as moto dates every upload 2010).
    let manager = BackupManager::new(&env.strata).unwrap();
    let mut patient = manager.settings().clone();
    patient.stale_upload_age = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    let stale = BackupManager::new(&env.strata)
        .unwrap()
        .with_settings(patient)
        .abort_stale_uploads()
        .await
        .unwrap();
    assert!(stale.listed && stale.aborted.is_empty(), "{stale:?}");
    assert_eq!(stale.young, 1);

    // Age 0: the one under the prefix is aborted, by `backup now` too.
    let sql = env.strata.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let report = manager.backup_now().await.unwrap();
    let aborted: Vec<&str> = report
        .stale_uploads
        .aborted
        .iter()
        .map(|u| u.key.as_str())
        .collect();
    assert_eq!(aborted, ["backups/local/20990101T000000.000Z.sqlite.zst"]);
    let left = blobs.pending_uploads("").await.unwrap().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].key, "elsewhere/big.bin");
    // Aborting is idempotent; then nothing is open.
    blobs.abort_upload(&left[0]).await.unwrap();
    blobs.abort_upload(&left[0]).await.unwrap();
    assert!(blobs.pending_uploads("").await.unwrap().unwrap().is_empty());
    // The backup itself is whole.
    assert!(
        manager
            .verify()
            .await
            .unwrap()
            .iter()
            .all(|v| v.problems.is_empty())
    );
}
