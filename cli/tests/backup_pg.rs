//! `strata backup` end to end on real servers (PostgreSQL and moto's S3):
//! a logical backup and restore through the binary, and interruption.
//! Uses the `.so` files built by `cargo build --release --workspace`.

#[path = "../../host/tests/support/backup_pg.rs"]
mod support;

use std::time::Duration;

use strata_host::{
    ErrorKind, Sql,
    backup::{BackupManager, Which},
    migrate::table_checksum,
};
use support::{Env, env};

fn strata_cli(env: &Env, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    c.arg("--config")
        .arg(env.dir.path().join("plugins.toml"))
        .args(args);
    c
}

/// Waits until another session is inside a transaction whose latest
/// statement is like `like` (running it, or between two fetches or batches
/// of it: `idle in transaction`), for at most 60 s. Only `active` was once
/// required, and CI missed every 20 ms poll of a backup streaming between
/// fetches.
async fn wait_for_statement(watch: &Sql, like: &str) {
    let started = std::time::Instant::now();
    loop {
        let busy = watch
            .get(
                "SELECT 1 AS x FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() \
                   AND state IN ('active', 'idle in transaction') AND query LIKE ?",
                [like],
            )
            .await
            .unwrap()
            .is_some();
        if busy {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no statement like {like} ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The CLI end to end, and interruption: a backup SIGKILLed while it reads
/// leaves no backup (no manifest); a restore SIGKILLed while it loads
/// leaves the target's tables as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_backs_up_and_restores_and_a_killed_run_changes_nothing() {
    let env = env("cli", "keep = 5");
    let table = format!("kill_{}", std::process::id());
    let src = env.sql("pg").await;
    src.exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, body text NOT NULL);
         INSERT INTO {table} SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, 400000) i;"
    ))
    .await
    .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();

    // A backup killed mid-read.
    let mut child = strata_cli(&env, &["backup", "now"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // (`COPY (SELECT …) TO STDOUT` through the plugin's bulk read.)
    wait_for_statement(&src, &format!("%SELECT % FROM \"{table}\"%")).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        manager
            .list()
            .await
            .unwrap()
            .iter()
            .all(|b| b.manifest_key.is_none()),
        "a killed backup left a manifest"
    );
    let e = manager.find(&Which::Latest).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // A complete one through the CLI; list shows its kind.
    let out = strata_cli(&env, &["backup", "now"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("logical: 1 table(s), 400000 row(s)"),
        "{stdout}"
    );
    let out = strata_cli(&env, &["backup", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("logical"));
    // --to on a logical backup names --into.
    let out = strata_cli(
        &env,
        &["backup", "restore", "latest", "--to", "/tmp/x.sqlite"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--into BACKEND"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The target holds an older version of the table.
    let dst = env.sql("restored").await;
    dst.exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, body text NOT NULL);
         INSERT INTO {table} VALUES (1, 'old');"
    ))
    .await
    .unwrap();
    // A restore killed while it loads rows.
    let mut child = strata_cli(
        &env,
        &[
            "backup", "restore", "latest", "--into", "restored", "--force",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // (`COPY … FROM STDIN` through the plugin's bulk write.)
    wait_for_statement(&src, &format!("COPY \"{table}\"%")).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let rows = |sql: Sql| {
        let table = table.clone();
        async move {
            sql.all(&format!("SELECT id, body FROM {table} ORDER BY id"), ())
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r.get::<i64>("id").unwrap(),
                        r.get::<String>("body").unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // The server ends the killed session's transaction when it notices the
    // closed connection; give it a moment, then the old table must be there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rows(dst.clone()).await,
        [(1, "old".to_string())],
        "a killed restore changed the target"
    );

    // Without --force the CLI refuses, naming the table; with it, restores.
    let out = strata_cli(&env, &["backup", "restore", "latest", "--into", "restored"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("table `{table}`")));
    let out = strata_cli(
        &env,
        &[
            "backup", "restore", "latest", "--into", "restored", "--force",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        table_checksum(&src, &table).await.unwrap(),
        table_checksum(&dst, &table).await.unwrap()
    );
    let out = strata_cli(&env, &["backup", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A trial restore into the scratch backend, through the CLI; without
    // one, a logical backup cannot be proven and the CLI says why.
    let out = strata_cli(
        &env,
        &["backup", "verify", "--restore", "--into", "restored"],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "into backend restored: ok (table {table}: 400000)"
        )),
        "{stdout}"
    );
    let out = strata_cli(&env, &["backup", "verify", "--restore"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scratch backend"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop((src, dst));
    env.cleanup().await;
}
