//! The `strata migrate`, `export` and `import` commands on real backends:
//! the SQLite plugin and the PostgreSQL server `scripts/servers/postgres.sh`
//! starts (`DATABASE_URL`). Uses the `.so` files built by
//! `cargo build --release --workspace`.

#[path = "../../host/tests/support/migrate.rs"]
mod support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use strata_host::{
    Strata,
    migrate::{MigrateOptions, Verification, migrate, table_checksum},
};
use support::{
    checksums, config, count_pg, drop_schema, make_bulk, make_collections, pg_schema, rt,
};

#[test]
fn a_killed_migration_resumes_without_losing_or_duplicating_rows() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("kill");
    let cfg = config(dir.path(), &schema);
    let strata = Strata::load(&cfg).unwrap();
    let rt = rt();
    const ROWS: i64 = 200_000;
    rt.block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        make_bulk(&src, ROWS).await;
        src.exec("DROP TABLE pairs").await.unwrap();
        // Open the target here first: it creates the schema, which two
        // processes opening at once could race on.
        strata.sql_backend("pg").await.unwrap();
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--config"])
        .arg(&cfg)
        .args([
            "migrate",
            "--from",
            "src",
            "--to",
            "pg",
            "--batch-size",
            "500",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some pages are committed, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let copied = count_pg(
            &strata,
            &rt,
            "SELECT rows_copied AS n FROM strata_migrations WHERE item = 'table:memories' AND status = 'running'",
        );
        if copied.is_some_and(|n| n >= 5_000) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            break copied.unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the migration ended ({status}) before it could be killed: {err}");
        }
        assert!(Instant::now() < deadline, "no progress within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    // A COMMIT the killed process had already sent still lands after the
    // kill: read until the target and the checkpoint stop moving.
    let read = || {
        let rows = count_pg(&strata, &rt, "SELECT count(*) AS n FROM memories").unwrap();
        let checkpoint = count_pg(
            &strata,
            &rt,
            "SELECT rows_copied AS n FROM strata_migrations WHERE item = 'table:memories'",
        )
        .unwrap();
        (rows, checkpoint)
    };
    let mut seen = read();
    let (on_target, checkpoint) = loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = read();
        if now == seen {
            break now;
        }
        seen = now;
    };
    assert!(
        on_target < ROWS,
        "killed after {at_kill} rows, yet the target holds all {on_target}"
    );
    // The checkpoint commits with its page: the target holds exactly the rows it names.
    assert_eq!(on_target, checkpoint);

    rt.block_on(async {
        let (s, p) = (strata.backend("src").await.unwrap(), strata.backend("pg").await.unwrap());
        let r = migrate(&s, &p, &MigrateOptions::new().resume(true)).await.unwrap();
        let t = &r.tables[0];
        assert_eq!(t.name, "memories");
        assert_eq!(t.resumed as i64, checkpoint, "{t:?}");
        assert_eq!(t.read as i64, ROWS - checkpoint, "resume re-read copied rows: {t:?}");
        assert_eq!(t.written, t.read);
        assert!(matches!(t.verification, Verification::Passed { rows, .. } if rows == ROWS as u64));
        let pg = strata.sql_backend("pg").await.unwrap();
        let r = pg
            .get("SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM memories", ())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.get::<i64>("n").unwrap(), r.get::<i64>("d").unwrap(), r.get::<i64>("lo").unwrap(), r.get::<i64>("hi").unwrap()),
            (ROWS, ROWS, 1, ROWS)
        );
        assert_eq!(
            table_checksum(&strata.sql_backend("src").await.unwrap(), "memories").await.unwrap(),
            table_checksum(&pg, "memories").await.unwrap()
        );
        drop_schema(&strata, &schema).await;
    });
}

#[test]
fn the_cli_migrates_exports_and_imports_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("cli");
    let cfg = config(dir.path(), &schema);
    let strata = Strata::load(&cfg).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        make_bulk(&src, 2_000).await;
        make_collections(&strata, "src").await;
        strata.close().await.unwrap();
    });
    let strata_cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = strata_cli(&["migrate", "--from", "src", "--to", "pg", "--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("dry run src → pg") && out.contains("2000"),
        "{out}"
    );
    let (ok, out, err) = strata_cli(&[
        "migrate",
        "--from",
        "src",
        "--to",
        "pg",
        "--tables",
        "memories",
        "--batch-size",
        "300",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("memories") && out.contains("ok: 2000 rows"),
        "{out}"
    );
    assert!(
        out.contains("notes") && out.contains("ok: 300 rows"),
        "{out}"
    );
    assert!(
        !out.contains("pairs"),
        "--tables memories copied pairs: {out}"
    );
    let (ok, out, _) = strata_cli(&[
        "migrate", "--from", "src", "--to", "pg", "--tables", "memories", "--resume",
    ]);
    assert!(ok);
    assert!(
        out.contains("(done earlier)") && out.contains("0 row(s) written"),
        "{out}"
    );
    let (ok, _, err) = strata_cli(&["migrate", "--from", "src", "--to", "nope"]);
    assert!(!ok && err.contains("no backend named `nope`"), "{err}");

    let dump = dir.path().join("dump.jsonl");
    let (ok, out, err) = strata_cli(&[
        "export",
        "--backend",
        "src",
        "--out",
        dump.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("exported src"), "{out}{err}");
    let (ok, out, err) = strata_cli(&["import", "--backend", "back", dump.to_str().unwrap()]);
    assert!(ok && out.contains("imported"), "{out}{err}");
    rt().block_on(async {
        let strata = Strata::load(&cfg).unwrap();
        assert_eq!(
            checksums(&strata, "src", &["memories", "pairs"]).await,
            checksums(&strata, "back", &["memories", "pairs"]).await
        );
        drop_schema(&strata, &schema).await;
    });
}
