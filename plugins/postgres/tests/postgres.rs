//! The Postgres plugin through the loaded `.so`, against the real server that
//! `scripts/servers/postgres.sh` starts (`DATABASE_URL`). Without that
//! variable these tests fail, loudly: they never skip.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use strata_host::{ErrorKind, Strata};

fn plugin() -> PathBuf {
    strata_host::loader::built_plugin("postgres")
        .expect("run `cargo build --release --workspace` first")
}

fn url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: these tests need the PostgreSQL server; run them through scripts/test \
         (or `eval \"$(scripts/servers/postgres.sh start >&2; scripts/servers/postgres.sh env)\"`)",
    )
}

fn strata(dir: &std::path::Path, backends: &[(&str, String)]) -> Strata {
    let mut text = String::new();
    for (name, config) in backends {
        text.push_str(&format!(
            "[backends.{name}]\nlibrary = {:?}\nconfig = {config}\n",
            plugin()
        ));
    }
    let file = dir.join("plugins.toml");
    std::fs::write(&file, text).unwrap();
    Strata::load(&file).unwrap()
}

#[tokio::test]
async fn two_agents_in_two_schemas_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    let s = strata(
        dir.path(),
        &[
            (
                "a",
                format!("{{ url = {url:?}, schema = \"agent_a_test\" }}"),
            ),
            (
                "b",
                format!("{{ url = {url:?}, schema = \"agent_b_test\" }}"),
            ),
        ],
    );
    let (a, b) = (
        s.sql_backend("a").await.unwrap(),
        s.sql_backend("b").await.unwrap(),
    );
    for sql in [&a, &b] {
        sql.exec("DROP TABLE IF EXISTS memories; CREATE TABLE memories (id BIGINT PRIMARY KEY, body TEXT)")
            .await
            .unwrap();
    }
    a.run("INSERT INTO memories VALUES (?, ?)", (1, "a's secret"))
        .await
        .unwrap();
    b.run("INSERT INTO memories VALUES (?, ?)", (1, "b's note"))
        .await
        .unwrap();
    b.run("INSERT INTO memories VALUES (?, ?)", (2, "b's other note"))
        .await
        .unwrap();
    let body = |r: Option<strata_host::Row>| r.unwrap().get::<String>("body").unwrap();
    assert_eq!(
        body(
            a.get("SELECT body FROM memories WHERE id = ?", [1])
                .await
                .unwrap()
        ),
        "a's secret"
    );
    assert_eq!(
        body(
            b.get("SELECT body FROM memories WHERE id = ?", [1])
                .await
                .unwrap()
        ),
        "b's note"
    );
    let count = |r: Option<strata_host::Row>| r.unwrap().get_idx::<i64>(0).unwrap();
    assert_eq!(
        count(a.get("SELECT count(*) FROM memories", ()).await.unwrap()),
        1
    );
    assert_eq!(
        count(b.get("SELECT count(*) FROM memories", ()).await.unwrap()),
        2
    );
    // Neither can name the other's table without its schema, and each schema exists.
    let schema = |r: Option<strata_host::Row>| r.unwrap().get::<String>("s").unwrap();
    assert_eq!(
        schema(a.get("SELECT current_schema() AS s", ()).await.unwrap()),
        "agent_a_test"
    );
    assert_eq!(
        schema(b.get("SELECT current_schema() AS s", ()).await.unwrap()),
        "agent_b_test"
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn unreachable_server_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback port nothing listens on.
    let s = strata(
        dir.path(),
        &[(
            "gone",
            "{ url = \"postgres://strata:strata@127.0.0.1:9/strata\", connect_timeout_ms = 2000 }"
                .into(),
        )],
    );
    let started = Instant::now();
    let err = s.backend("gone").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err}"
    );
    assert!(err.to_string().contains("backend `gone`"), "{err}");
}

#[tokio::test]
async fn wrong_password_and_missing_database_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    let bad_password = url.replacen(":strata@", ":not-the-password@", 1);
    let missing_db = format!("{}/no_such_database", url.rsplit_once('/').unwrap().0);
    let s = strata(
        dir.path(),
        &[
            (
                "badpw",
                format!("{{ url = {bad_password:?}, connect_timeout_ms = 5000 }}"),
            ),
            (
                "nodb",
                format!("{{ url = {missing_db:?}, connect_timeout_ms = 5000 }}"),
            ),
        ],
    );
    let err = s.backend("badpw").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert_eq!(
        err.plugin_error().and_then(|e| e.backend_code()),
        Some("28P01"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("not-the-password"),
        "the password leaked: {err}"
    );
    let err = s.backend("nodb").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no_such_database"), "{err}");
}
