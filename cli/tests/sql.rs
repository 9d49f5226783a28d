//! `strata sql` through the binary and the SQLite plugin (no servers):
//! whether a statement returns rows is the prepared statement's answer,
//! not the text's; SQL starting with `--` is not a flag; an empty text is
//! invalid input. Uses the `.so` files built by `cargo build --release --workspace`.

mod common;

use std::path::Path;

use common::config;

/// Runs `strata sql ARGS…`: (success, stdout, stderr).
fn sql(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    common::strata(cfg, "sql", args)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn statements_and_queries_are_told_apart_by_the_prepared_statement() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // A query behind a comment prints its row.
    let (ok, out, err) = sql(&cfg, &["--json", "/* note */ SELECT 42 AS answer"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out), serde_json::json!([{"answer": 42}]));
    // SQL starting with `--` (a comment) is the statement, not a flag.
    let (ok, out, err) = sql(&cfg, &["--json", "-- why\nSELECT 7 AS seven"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out), serde_json::json!([{"seven": 7}]));
    // Writes report what they changed; a DDL right after, nothing.
    let (ok, _, err) = sql(&cfg, &["--exec", "CREATE TABLE t (x INTEGER)"]);
    assert!(ok, "{err}");
    let (ok, out, err) = sql(&cfg, &["--json", "INSERT INTO t VALUES (1), (2)"]);
    assert!(ok, "{err}");
    assert_eq!(json(&out)["changes"], 2);
    // RETURNING makes an insert return rows; negative numbers are parameters.
    let (ok, out, err) = sql(
        &cfg,
        &["--json", "INSERT INTO t VALUES (?) RETURNING x", "-3"],
    );
    assert!(ok, "{err}");
    assert_eq!(json(&out), serde_json::json!([{"x": -3}]));
    // A query with no rows prints its header, not "0 row(s) changed".
    let (ok, out, err) = sql(&cfg, &["SELECT x FROM t WHERE x > 100"]);
    assert!(ok, "{err}");
    assert!(out.contains("(0 rows)") && out.contains('x'), "{out}");
    let (ok, out, _) = sql(&cfg, &["--json", "SELECT count(*) AS n FROM t"]);
    assert!(ok);
    assert_eq!(json(&out), serde_json::json!([{"n": 3}]));
}

#[test]
fn a_text_without_a_statement_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    for text in ["", "   ", "-- only a comment"] {
        let (ok, _, err) = sql(&cfg, &[text]);
        assert!(!ok, "{text:?} succeeded");
        assert!(err.contains("invalid_input"), "{text:?}: {err}");
    }
}
