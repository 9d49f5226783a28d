//! `strata export` and `strata import` through the binary and the SQLite
//! plugin (no servers): a failed export leaves no partial file, a killed
//! import leaves no empty or partial table. Uses the `.so` files built by
//! `cargo build --release --workspace`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use strata_host::Strata;

fn config(dir: &Path) -> PathBuf {
    config_to(dir, &dir.join("dst.sqlite"))
}

/// A config in `dir` with source `src` there and target `dst` at `dst`.
fn config_to(dir: &Path, dst: &Path) -> PathBuf {
    let plugins = strata_host::loader::built_plugin("sqlite")
        .expect("build the plugins first: cargo build --release --workspace")
        .parent()
        .unwrap()
        .to_path_buf();
    let file = dst.with_extension("toml");
    std::fs::write(
        &file,
        format!(
            "plugin_dirs = [{:?}]\n\
             [backends.src]\nplugin = \"sqlite\"\nconfig = {{ path = {:?} }}\n\
             [backends.dst]\nplugin = \"sqlite\"\nconfig = {{ path = {:?} }}\n\
             [roles]\nsql = \"src\"\n",
            plugins,
            dir.join("src.sqlite"),
            dst,
        ),
    )
    .unwrap();
    file
}

fn strata(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.arg("--config").arg(cfg);
    c
}

#[test]
fn a_failed_export_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = dir.path().join("dump.jsonl");
    let r = strata(&cfg)
        .args([
            "sql",
            "--exec",
            "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); INSERT INTO a VALUES (1, 'x');",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // `nope` does not exist: the export fails after writing its header and table `a`.
    let r = strata(&cfg)
        .args(["export", "--backend", "src", "--tables", "a,nope", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("nope"));
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("dump"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "a failed export left files");

    // A complete export appears at --out and imports.
    let r = strata(&cfg)
        .args(["export", "--backend", "src", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = strata(&cfg)
        .args(["import", "--backend", "dst"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// Rows of `big` on `dst`, or `None` when the table does not exist.
async fn rows(s: &Strata) -> Option<i64> {
    let sql = s.sql_backend("dst").await.unwrap();
    let exists = sql
        .get(
            "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'big'",
            (),
        )
        .await
        .unwrap()
        .is_some();
    if !exists {
        return None;
    }
    Some(
        sql.get("SELECT count(*) AS n FROM big", ())
            .await
            .unwrap()
            .unwrap()
            .get::<i64>("n")
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_import_leaves_the_table_whole_or_absent() {
    const ROWS: i64 = 150_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let file = dir.path().join("big.jsonl");
    let s = Strata::load(&cfg).unwrap();
    s.sql()
        .await
        .unwrap()
        .exec(&format!(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO big SELECT i, printf('row %d of the big table, padded to be a little longer', i) FROM n;"
        ))
        .await
        .unwrap();
    let r = strata(&cfg)
        .args(["export", "--backend", "src", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    // Kill as soon as the table is visible to another connection, then at
    // fixed delays; each time the table is absent or whole.
    let mut seen = Vec::new();
    for (i, delay_ms) in [None, Some(30), Some(120), Some(400), Some(900)]
        .into_iter()
        .enumerate()
    {
        let cfg = config_to(dir.path(), &dir.path().join(format!("dst{i}.sqlite")));
        let s = Strata::load(&cfg).unwrap();
        let mut child = strata(&cfg)
            .args(["import", "--backend", "dst"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let due = match delay_ms {
                None => rows(&s).await.is_some(),
                Some(ms) => started.elapsed() >= Duration::from_millis(ms),
            };
            if due {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the import neither finished nor showed the table"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let n = rows(&s).await;
        seen.push(format!("{delay_ms:?}: finished {finished:?}, rows {n:?}"));
        assert!(
            n.is_none() || n == Some(ROWS),
            "a killed import left table `big` with {n:?} rows of {ROWS}: {seen:?}"
        );
        s.close().await.unwrap();
    }
    s.close().await.unwrap();
}
