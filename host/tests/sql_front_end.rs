//! What the host's SQL front end does on its own — placeholder rewriting,
//! argument checks before anything reaches the database, deserialising
//! rows into structs — checked end to end through the SQLite plugin's
//! `.so`. (These were conformance cases; they test host code, so they live
//! with the host: the conformance suite holds plugins to the contract.)

use serde_json::json;
use strata_host::{ErrorKind, Plugin, Sql, Value, loader::Backend, named, params};

/// A SQLite backend on a fresh file, and the directory holding it.
async fn sqlite() -> (Sql, Backend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Plugin::load(
        strata_host::loader::built_plugin("sqlite")
            .expect("run `cargo build --release --workspace` first"),
    )
    .unwrap();
    let backend = Backend::open(
        "front-end",
        plugin,
        &dir.path().join("plugins.toml"),
        &json!({ "path": dir.path().join("front-end.sqlite") }),
    )
    .await
    .unwrap();
    let sql = backend.sql().unwrap();
    (sql, backend, dir)
}

/// `:name`, `@name` and `$name` bind by name, and a name may repeat.
#[tokio::test]
async fn named_parameters_bind_by_name() {
    let (sql, backend, _dir) = sqlite().await;
    sql.exec("CREATE TABLE named (a INTEGER, b TEXT, c INTEGER)")
        .await
        .unwrap();
    sql.run(
        "INSERT INTO named (a, b, c) VALUES (:a, @b, :a)",
        named! {"a" => 7, "@b" => "seven"},
    )
    .await
    .unwrap();
    let row = sql
        .get(
            "SELECT a, b, c FROM named WHERE b = $b AND a = :a",
            named! {":a" => 7, "b" => "seven"},
        )
        .await
        .unwrap()
        .expect("the row, found by named parameters");
    assert_eq!(
        row.values(),
        &[Value::Integer(7), Value::from("seven"), Value::Integer(7)][..]
    );
    backend.close().await.unwrap();
}

/// Too few, too many or wrongly named parameters are refused before
/// anything is executed.
#[tokio::test]
async fn parameter_count_and_name_mismatches_are_refused_before_execution() {
    let (sql, backend, _dir) = sqlite().await;
    sql.exec("CREATE TABLE counted (a INTEGER, b INTEGER)")
        .await
        .unwrap();
    let insert = "INSERT INTO counted (a, b) VALUES (?, ?)";
    for (what, result) in [
        ("one of two parameters", sql.run(insert, [1]).await),
        ("three of two parameters", sql.run(insert, [1, 2, 3]).await),
        (
            "a wrong parameter name",
            sql.run("INSERT INTO counted (a) VALUES (:a)", named! {"b" => 1})
                .await,
        ),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
    }
    let n: i64 = sql
        .get("SELECT COUNT(*) FROM counted", ())
        .await
        .unwrap()
        .unwrap()
        .get_idx(0)
        .unwrap();
    assert_eq!(n, 0, "rows written by refused statements");
    backend.close().await.unwrap();
}

/// `?NNN` binds the NNN-th argument, in any order and as often as it appears.
#[tokio::test]
async fn numbered_positional_parameters_bind_by_number() {
    let (sql, backend, _dir) = sqlite().await;
    sql.exec("CREATE TABLE numbered (a INTEGER, b TEXT)")
        .await
        .unwrap();
    sql.run(
        "INSERT INTO numbered (a, b) VALUES (?2, ?1)",
        params!["bee", 7],
    )
    .await
    .unwrap();
    sql.run(
        "INSERT INTO numbered (b, a) VALUES (?2, ?1)",
        params![8, "see"],
    )
    .await
    .unwrap();
    let rows: Vec<Vec<Value>> = sql
        .all("SELECT a, b FROM numbered ORDER BY a", ())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.into_values())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![Value::Integer(7), Value::from("bee")],
            vec![Value::Integer(8), Value::from("see")]
        ]
    );
    let n: i64 = sql
        .get(
            "SELECT COUNT(*) FROM numbered WHERE a = ?1 OR a = ?1 + 1",
            [7],
        )
        .await
        .unwrap()
        .unwrap()
        .get_idx(0)
        .unwrap();
    assert_eq!(n, 2, "rows matching a repeated ?1");
    backend.close().await.unwrap();
}

/// `all_as` fills a serde struct: NULL into `Option`, 0/1 into `bool`,
/// integer columns into `f64`; a column that is not 0/1 is no bool.
#[tokio::test]
async fn rows_deserialize_into_structs() {
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Note {
        id: i64,
        title: String,
        body: Option<String>,
        pinned: bool,
        score: f64,
        rank: Option<i64>,
    }
    let (sql, backend, _dir) = sqlite().await;
    sql.exec(
        "CREATE TABLE notes (id INTEGER, title TEXT, body TEXT, pinned INTEGER, score INTEGER, rank INTEGER)",
    )
    .await
    .unwrap();
    let insert =
        "INSERT INTO notes (id, title, body, pinned, score, rank) VALUES (?, ?, ?, ?, ?, ?)";
    sql.run(insert, params![1, "first", "hello", 1, 3, Value::Null])
        .await
        .unwrap();
    sql.run(insert, params![2, "second", Value::Null, 0, -7, 5])
        .await
        .unwrap();
    let select = "SELECT id, title, body, pinned, score, rank FROM notes";
    let notes: Vec<Note> = sql
        .all_as(&format!("{select} ORDER BY id"), ())
        .await
        .unwrap();
    assert_eq!(
        notes,
        vec![
            Note {
                id: 1,
                title: "first".into(),
                body: Some("hello".into()),
                pinned: true,
                score: 3.0,
                rank: None
            },
            Note {
                id: 2,
                title: "second".into(),
                body: None,
                pinned: false,
                score: -7.0,
                rank: Some(5)
            },
        ]
    );
    sql.run(insert, params![3, "third", Value::Null, 2, 0, Value::Null])
        .await
        .unwrap();
    let err = sql
        .all_as::<Note>(&format!("{select} WHERE id = ?"), [3])
        .await
        .expect_err("2 deserialised as a bool");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    backend.close().await.unwrap();
}
