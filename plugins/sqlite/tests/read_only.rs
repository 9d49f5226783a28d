//! `read_only = true` on a WAL database in a directory the process cannot
//! write: SQLite's read-only mode needs the `-shm` file, which cannot be
//! created there, so a database closed cleanly (no `-wal`, no `-shm`) is
//! opened `immutable`; one whose `-wal` and `-shm` exist is read with its
//! WAL; one with a `-wal` but no `-shm` is refused naming the cause.
//!
//! A privileged process (root) writes into any directory, so the reads run
//! in a child process of this test binary under an unprivileged uid; an
//! unprivileged run reads in a directory it made read-only. Through the
//! loaded `.so`.

mod common;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use strata_host::{Backend, Plugin};

const CHILD: &str = "STRATA_TEST_READ_ONLY_CHILD";

/// Opens `db` read-only and returns the row count of `t`, or the error.
async fn read(db: &Path) -> Result<i64, String> {
    let plugin = Plugin::load(common::plugin()).map_err(|e| e.to_string())?;
    let cfg = serde_json::json!({ "path": db.display().to_string(), "read_only": true });
    let b = Backend::open("ro", plugin, Path::new("ro.toml"), &cfg)
        .await
        .map_err(|e| e.to_string())?;
    let sql = b.sql().map_err(|e| e.to_string())?;
    let n = sql
        .get("SELECT count(*) AS n FROM t", ())
        .await
        .map_err(|e| e.to_string())?
        .unwrap()
        .get::<i64>("n")
        .map_err(|e| e.to_string());
    let write = sql.run("INSERT INTO t VALUES (99)", ()).await;
    b.close().await.map_err(|e| e.to_string())?;
    match write {
        Err(e) if e.kind() == strata_host::ErrorKind::Unsupported => n,
        other => Err(format!("a write on a read-only backend gave {other:?}")),
    }
}

/// Whether this process can create a file in a directory without write
/// permission (root, or a capability that bypasses permissions).
fn privileged(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::create_dir(&probe).unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o555)).unwrap();
    let wrote = std::fs::write(probe.join("x"), b"x").is_ok();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrote
}

/// Reads every database of `dbs` from a process that cannot write their
/// directories; one result per database.
fn read_all_unprivileged(root: &Path, dbs: &[PathBuf]) -> Vec<Result<i64, String>> {
    if privileged(root) {
        // A child of this test binary, as `nobody`.
        use std::os::unix::process::CommandExt as _;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_wal_database_in_a_read_only_directory_is_readable",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD,
                dbs.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let results: Vec<Result<i64, String>> = stdout
            .lines()
            .filter_map(|l| l.find("RESULT ").map(|i| &l[i + "RESULT ".len()..]))
            .map(|l| serde_json::from_str::<Result<i64, String>>(l).unwrap())
            .collect();
        assert_eq!(
            results.len(),
            dbs.len(),
            "child output: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        results
    } else {
        for db in dbs {
            let dir = db.parent().unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let results = dbs.iter().map(|db| rt.block_on(read(db))).collect();
        for db in dbs {
            let dir = db.parent().unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        results
    }
}

/// Writes a WAL database `dir/db.sqlite` holding `rows` committed rows; with
/// `in_wal`, the last of them committed in its WAL only (its `-wal` and
/// `-shm` copied while the writer still had them open).
async fn make(dir: &Path, rows: i64, in_wal: bool, shm: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let scratch = dir.with_extension("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let live = scratch.join("db.sqlite");
    let plugin = Plugin::load(common::plugin()).unwrap();
    let cfg = serde_json::json!({ "path": live.display().to_string() });
    let b = Backend::open("w", plugin, Path::new("w.toml"), &cfg)
        .await
        .unwrap();
    let sql = b.sql().unwrap();
    sql.exec("CREATE TABLE t (x INTEGER)").await.unwrap();
    for i in 0..rows - 1 {
        sql.run("INSERT INTO t VALUES (?)", [i]).await.unwrap();
    }
    sql.exec("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
    sql.run("INSERT INTO t VALUES (-1)", ()).await.unwrap();
    let db = dir.join("db.sqlite");
    if in_wal {
        std::fs::copy(&live, &db).unwrap();
        std::fs::copy(scratch.join("db.sqlite-wal"), dir.join("db.sqlite-wal")).unwrap();
        if shm {
            std::fs::copy(scratch.join("db.sqlite-shm"), dir.join("db.sqlite-shm")).unwrap();
        }
        b.close().await.unwrap();
    } else {
        // Closed cleanly: everything in the file, no -wal, no -shm.
        b.close().await.unwrap();
        std::fs::copy(&live, &db).unwrap();
    }
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    db
}

#[test]
fn a_wal_database_in_a_read_only_directory_is_readable() {
    if let Ok(list) = std::env::var(CHILD) {
        // The child: read each database and report.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for db in list.lines() {
            let r = rt.block_on(read(Path::new(db)));
            println!("RESULT {}", serde_json::to_string(&r).unwrap());
        }
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clean = rt.block_on(make(&root.path().join("clean"), 5, false, false));
    let with_wal = rt.block_on(make(&root.path().join("wal"), 7, true, true));
    let no_shm = rt.block_on(make(&root.path().join("noshm"), 3, true, false));
    drop(rt);
    let results = read_all_unprivileged(root.path(), &[clean, with_wal, no_shm]);
    assert_eq!(
        results[0],
        Ok(5),
        "a cleanly closed WAL database: {results:?}"
    );
    assert_eq!(
        results[1],
        Ok(7),
        "with its -wal and -shm: the WAL's commits are read"
    );
    let e = results[2].as_ref().unwrap_err();
    assert!(
        e.contains("-wal") && e.contains("-shm") && e.contains("not writable"),
        "a WAL without its -shm, which cannot be created: {e}"
    );
    assert!(
        !std::fs::read_dir(root.path().join("clean"))
            .unwrap()
            .any(|f| f.unwrap().file_name().to_string_lossy().ends_with("-shm")),
        "nothing was created"
    );
}
