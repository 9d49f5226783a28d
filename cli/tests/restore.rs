//! `strata backup restore --force` of a SQLite file, killed at every step of
//! the swap: the target is afterwards the old database as committed (its
//! WAL's commits included) or the new one, never a mix; and what a killed
//! restore leaves behind is cleaned by the next. Needs the S3-protocol
//! server (`S3_ENDPOINT`, moto: `scripts/servers/moto.sh`) and the `.so`
//! files built by `cargo build --release --workspace`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use strata_host::{Backend, Plugin, Strata, backup::BackupManager, loader::built_plugin};

fn s3_endpoint() -> String {
    std::env::var("S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "S3_ENDPOINT is not set: start moto with `scripts/servers/moto.sh start && eval \"$(scripts/servers/moto.sh env)\"`"
        )
    })
}

/// A config with a SQLite source `src` (the `sql` role) and an S3 `archive`
/// (the `backup` role) under a prefix of its own.
fn config(dir: &Path) -> PathBuf {
    let plugins = built_plugin("s3")
        .expect("build the plugins first: cargo build --release --workspace")
        .parent()
        .unwrap()
        .to_path_buf();
    let bucket = std::env::var("S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let file = dir.join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            r#"plugin_dirs = ["{plugins}"]
[backends.src]
plugin = "sqlite"
config = {{ path = "{src}" }}
[backends.archive]
plugin = "s3"
config = {{ bucket = "{bucket}", endpoint = "{endpoint}", region = "us-east-1", prefix = "restore-tests/{pid}-{nanos}/" }}
[roles]
sql = "src"
backup = "archive"
"#,
            plugins = plugins.display(),
            src = dir.join("src.sqlite").display(),
            endpoint = s3_endpoint(),
            pid = std::process::id(),
        ),
    )
    .unwrap();
    file
}

/// Opens `path` through the SQLite plugin as an application would after a
/// crash (read-write: a hot WAL is recovered) and returns
/// `(integrity_check, marker)`.
async fn inspect(path: &Path) -> (String, String) {
    let plugin = Plugin::load(built_plugin("sqlite").unwrap()).unwrap();
    let cfg = serde_json::json!({ "path": path.display().to_string() });
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
    let marker = match sql.get("SELECT marker FROM t WHERE id = 1", ()).await {
        Ok(Some(r)) => r.get::<String>("marker").unwrap(),
        Ok(None) => "(no row)".into(),
        Err(e) => format!("(unreadable: {e})"),
    };
    b.close().await.unwrap();
    (check, marker)
}

fn copy_set(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut a = from.as_os_str().to_owned();
        a.push(suffix);
        let mut b = to.as_os_str().to_owned();
        b.push(suffix);
        if Path::new(&a).exists() {
            std::fs::copy(&a, &b).unwrap();
        }
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".restore-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_at_any_step_of_the_swap_leaves_the_old_or_the_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());

    // The backup: marker `new`.
    let strata = Strata::load(&cfg).unwrap();
    let sql = strata.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, marker TEXT NOT NULL); INSERT INTO t VALUES (1, 'new');")
        .await
        .unwrap();
    BackupManager::new(&strata)
        .unwrap()
        .backup_now()
        .await
        .unwrap();

    // The old target, as a process that crashed left it: `checkpointed` in
    // the database file, then `old-wal` committed in its WAL only. The
    // files are copied while the writer still has them open (so nothing
    // checkpoints the WAL away).
    let template = dir.path().join("template");
    std::fs::create_dir(&template).unwrap();
    let live = dir.path().join("live.sqlite");
    {
        let plugin = Plugin::load(built_plugin("sqlite").unwrap()).unwrap();
        let cfg = serde_json::json!({ "path": live.display().to_string() });
        let b = Backend::open("live", plugin, Path::new("x.toml"), &cfg)
            .await
            .unwrap();
        let s = b.sql().unwrap();
        s.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, marker TEXT NOT NULL); INSERT INTO t VALUES (1, 'checkpointed'); PRAGMA wal_checkpoint(TRUNCATE);")
            .await
            .unwrap();
        s.run("UPDATE t SET marker = 'old-wal' WHERE id = 1", ())
            .await
            .unwrap();
        copy_set(&live, &template.join("brain.sqlite"));
        b.close().await.unwrap();
    }
    // The test means something: without its WAL the old file says `checkpointed`.
    let wal = template.join("brain.sqlite-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the template has a WAL"
    );
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(template.join("brain.sqlite"), bare.join("brain.sqlite")).unwrap();
    assert_eq!(inspect(&bare.join("brain.sqlite")).await.1, "checkpointed");
    let with_wal = dir.path().join("with-wal");
    std::fs::create_dir(&with_wal).unwrap();
    copy_set(
        &template.join("brain.sqlite"),
        &with_wal.join("brain.sqlite"),
    );
    assert_eq!(inspect(&with_wal.join("brain.sqlite")).await.1, "old-wal");

    // Kill the restore at step 1, 2, … until a run gets past the last step.
    let mut faults = 0;
    let mut outcomes = Vec::new();
    let mut last_dir = None;
    for step in 1.. {
        let target_dir = dir.path().join(format!("step{step}"));
        std::fs::create_dir(&target_dir).unwrap();
        let target = target_dir.join("brain.sqlite");
        copy_set(&template.join("brain.sqlite"), &target);
        // An index sidecar of the old database (a cache of its rows).
        let sidecar = target_dir.join("brain.sqlite.strata-index");
        std::fs::create_dir(&sidecar).unwrap();
        std::fs::write(sidecar.join("notes.meta.json"), "{}").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--config")
            .arg(&cfg)
            .args(["backup", "restore", "latest", "--force", "--to"])
            .arg(&target)
            .env("STRATA_FAULT_RESTORE_STEP", step.to_string())
            .output()
            .unwrap();
        let code = out.status.code();
        let (check, marker) = inspect(&target).await;
        outcomes.push(format!("step {step}: exit {code:?}, marker {marker}"));
        assert_eq!(check, "ok", "step {step}: integrity_check; {outcomes:?}");
        assert!(
            marker == "old-wal" || marker == "new",
            "killed at step {step}, the target is neither the old database as committed nor the new one: marker {marker:?}; {outcomes:?}; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            marker != "new" || !sidecar.exists(),
            "step {step}: the new database sits beside the old one's index sidecar"
        );
        last_dir = Some(target_dir);
        match code {
            Some(strata_host::backup::FAULT_EXIT_CODE) => faults += 1,
            Some(0) => {
                assert_eq!(marker, "new", "a finished restore gives the new database");
                assert!(
                    !sidecar.exists(),
                    "the old database's index sidecar is gone"
                );
                break;
            }
            _ => panic!(
                "step {step}: the restore failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        assert!(step < 50, "the restore never finished: {outcomes:?}");
    }
    assert!(
        faults >= 6,
        "too few fault points were reached: {outcomes:?}"
    );

    // A restore killed before its swap leaves its temporary file; the next
    // restore into the same place removes it.
    let step1 = dir.path().join("step1");
    assert!(
        !leftovers(&step1).is_empty(),
        "the restore killed at step 1 left its temporary file"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "restore", "latest", "--force", "--to"])
        .arg(step1.join("brain.sqlite"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(&step1), Vec::<String>::new());
    assert_eq!(inspect(&step1.join("brain.sqlite")).await.1, "new");
    drop(last_dir);
    strata.close().await.unwrap();
}

/// A target another process is reading is not swapped under it: the
/// restore fails naming it, and the target keeps its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_over_a_database_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let strata = Strata::load(&cfg).unwrap();
    let sql = strata.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, marker TEXT NOT NULL); INSERT INTO t VALUES (1, 'new');")
        .await
        .unwrap();
    BackupManager::new(&strata)
        .unwrap()
        .backup_now()
        .await
        .unwrap();

    let target = dir.path().join("busy.sqlite");
    let plugin = Plugin::load(built_plugin("sqlite").unwrap()).unwrap();
    let b = Backend::open(
        "busy",
        plugin,
        Path::new("x.toml"),
        &serde_json::json!({ "path": target.display().to_string() }),
    )
    .await
    .unwrap();
    let s = b.sql().unwrap();
    s.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, marker TEXT NOT NULL); INSERT INTO t VALUES (1, 'in-use');")
        .await
        .unwrap();
    s.exec("WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO t SELECT i, 'x' FROM n;")
        .await
        .unwrap();
    // A stream read halfway holds a read transaction on the WAL.
    let mut rows = s.stream("SELECT * FROM t", ()).await.unwrap();
    rows.next().await.unwrap().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "restore", "latest", "--force", "--to"])
        .arg(&target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the restore went ahead over a database in use"
    );
    assert!(stderr.contains("in use"), "{stderr}");
    drop(rows);
    let marker: String = s
        .get("SELECT marker FROM t WHERE id = 1", ())
        .await
        .unwrap()
        .unwrap()
        .get("marker")
        .unwrap();
    assert_eq!(marker, "in-use");
    b.close().await.unwrap();
    strata.close().await.unwrap();
}
