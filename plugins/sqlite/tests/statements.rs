//! What the plugin reports about a statement, decided from the prepared
//! statement rather than the text: whether it returns rows (the columns a
//! stream reports before anything runs), how many rows `run` changed, and
//! a statement text holding no statement. Through the loaded `.so`.

mod common;

use std::path::Path;

use strata_host::{ErrorKind, Strata};

fn open(dir: &Path) -> Strata {
    common::open_default(dir)
}

#[tokio::test]
async fn a_text_without_a_statement_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let sql = s.sql().await.unwrap();
    for text in ["", "   ", "-- only a comment", "/* nothing */ ;"] {
        let e = sql.all(text, ()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "all {text:?}: {e}");
        let e = sql.get(text, ()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "get {text:?}: {e}");
        let e = sql.run(text, ()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "run {text:?}: {e}");
        let e = sql.stream(text, ()).await.err().expect("stream refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "stream {text:?}: {e}");
        assert!(e.to_string().contains("no SQL statement"), "{e}");
        let tx = sql.begin().await.unwrap();
        let e = tx.run(text, ()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "tx run {text:?}: {e}");
        tx.rollback().await.unwrap();
    }
    s.close().await.unwrap();
}

#[tokio::test]
async fn run_reports_the_rows_this_statement_changed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let sql = s.sql().await.unwrap();
    sql.exec("CREATE TABLE t (x INTEGER)").await.unwrap();
    let r = sql
        .run("INSERT INTO t VALUES (1), (2), (3)", ())
        .await
        .unwrap();
    assert_eq!(r.changes, 3);
    // SQLite's changes() still says 3 after these: they changed nothing.
    for text in [
        "CREATE TABLE u (y)",
        "SELECT * FROM t",
        "/* note */ SELECT 42 AS answer",
        "UPDATE t SET x = x WHERE x > 100",
    ] {
        let r = sql.run(text, ()).await.unwrap();
        assert_eq!(r.changes, 0, "{text}");
    }
    let r = sql
        .run("UPDATE t SET x = x + 1 WHERE x < 3", ())
        .await
        .unwrap();
    assert_eq!(r.changes, 2);
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_stream_reports_the_prepared_statements_columns_before_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let sql = s.sql().await.unwrap();
    sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)")
        .await
        .unwrap();
    // A query that starts with a comment returns rows.
    let mut q = sql
        .stream("/* note */ SELECT 42 AS answer", ())
        .await
        .unwrap();
    assert_eq!(q.columns(), ["answer"]);
    let row = q.next().await.unwrap().unwrap();
    assert_eq!(row.get::<i64>("answer").unwrap(), 42);
    drop(q);
    // A statement without result columns: none, and dropped unread it never ran.
    let w = sql
        .stream("INSERT INTO t (x) VALUES ('a')", ())
        .await
        .unwrap();
    assert!(w.columns().is_empty());
    drop(w);
    let n: i64 = sql
        .get("SELECT count(*) AS n FROM t", ())
        .await
        .unwrap()
        .unwrap()
        .get("n")
        .unwrap();
    assert_eq!(n, 0, "an unread stream of an INSERT ran it");
    // RETURNING makes a write return rows.
    let mut r = sql
        .stream("INSERT INTO t (x) VALUES ('b') RETURNING id", ())
        .await
        .unwrap();
    assert_eq!(r.columns(), ["id"]);
    assert_eq!(
        r.next().await.unwrap().unwrap().get::<i64>("id").unwrap(),
        1
    );
    drop(r);
    s.close().await.unwrap();
}
