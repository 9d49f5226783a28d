//! The export file's trailer: every export ends with a line listing its
//! tables and collections with their row counts and a SHA-256 of
//! everything before it, and an import refuses a file whose trailer is
//! missing or does not match (a file cut between tables, a damaged row)
//! before writing anything. Through the loaded SQLite plugin.

use serde_json::{Value as Json, json};
use strata_host::{
    Record, Strata,
    migrate::{MigrateOptions, jsonl},
    vector::Metric,
};

fn open(dir: &std::path::Path, db: &str) -> Strata {
    let cfg = dir.join(format!("{db}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?} }}\n",
            strata_host::loader::built_plugin("sqlite")
                .expect("run `cargo build --release --workspace` first"),
            dir.join(format!("{db}.sqlite"))
        ),
    )
    .unwrap();
    Strata::load(&cfg).unwrap()
}

async fn count(s: &Strata, sql: &str) -> i64 {
    s.sql()
        .await
        .unwrap()
        .get(sql, ())
        .await
        .unwrap()
        .unwrap()
        .get::<i64>("n")
        .unwrap()
}

async fn tables(s: &Strata) -> Vec<String> {
    s.sql()
        .await
        .unwrap()
        .all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'strata_%' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%fts%' ORDER BY name",
            (),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>("name").unwrap())
        .collect()
}

/// An export of two tables and a collection.
async fn export(dir: &std::path::Path) -> Vec<u8> {
    let s = open(dir, "src");
    let sql = s.sql().await.unwrap();
    sql.exec(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE b (k TEXT PRIMARY KEY, n REAL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO a SELECT i, 'row ' || i FROM n;
         INSERT INTO b VALUES ('x', 1.5), ('y', 2.5);",
    )
    .await
    .unwrap();
    let v = s.vectors().await.unwrap();
    v.create_collection("mem", 2, Metric::Cosine).await.unwrap();
    v.upsert("mem", [Record::new("m1", vec![1.0, 0.0])])
        .await
        .unwrap();
    let backend = s.backend("local").await.unwrap();
    let mut out = Vec::new();
    jsonl::export(
        &backend,
        &mut out,
        "dump.jsonl",
        &MigrateOptions::new().batch_size(100),
    )
    .await
    .unwrap();
    s.close().await.unwrap();
    out
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .collect::<Vec<&[u8]>>()
}

#[tokio::test]
async fn an_export_ends_with_a_trailer_listing_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = export(dir.path()).await;
    let all = lines(&bytes);
    let last: Json = serde_json::from_slice(all.last().unwrap()).unwrap();
    let trailer = &last["trailer"];
    assert_eq!(
        trailer["tables"],
        json!([{"name": "a", "rows": 300}, {"name": "b", "rows": 2}])
    );
    assert_eq!(trailer["collections"], json!([{"name": "mem", "rows": 1}]));
    assert_eq!(trailer["lines"], json!(all.len() - 1));
    let body: Vec<u8> = all[..all.len() - 1].concat();
    use sha2::Digest as _;
    assert_eq!(
        trailer["sha256"],
        json!(hex::encode(sha2::Sha256::digest(&body)))
    );

    // The whole file imports.
    let t = open(dir.path(), "whole");
    let backend = t.backend("local").await.unwrap();
    jsonl::import(
        &backend,
        &mut std::io::Cursor::new(&bytes),
        "dump.jsonl",
        &MigrateOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(count(&t, "SELECT count(*) AS n FROM a").await, 300);
    assert_eq!(count(&t, "SELECT count(*) AS n FROM b").await, 2);
    t.close().await.unwrap();
}

#[tokio::test]
async fn a_cut_or_damaged_export_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = export(dir.path()).await;
    let all = lines(&bytes);
    // Cut right after the end line of table `a`: a file that ends between
    // two tables, every line of it well formed.
    let end_a = all
        .iter()
        .position(|l| l.starts_with(br#"{"end":{"table":"a""#))
        .unwrap();
    let cut: Vec<u8> = all[..=end_a].concat();
    // Cut after the last collection's end line: only the trailer missing.
    let no_trailer: Vec<u8> = all[..all.len() - 1].concat();
    // One row changed, counts intact.
    let damaged = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen("\"row 7\"", "\"row 8\"", 1)
        .into_bytes();
    assert_ne!(damaged, bytes);
    // Something after the trailer.
    let mut appended = bytes.clone();
    appended.extend_from_slice(all[1]);

    for (name, file, want) in [
        ("cut", &cut, "trailer"),
        ("no-trailer", &no_trailer, "trailer"),
        ("damaged", &damaged, "sha256"),
        ("appended", &appended, "after the trailer"),
    ] {
        let t = open(dir.path(), name);
        let backend = t.backend("local").await.unwrap();
        // What a caller checks first (strata import does): refused.
        let checked = jsonl::contents(&mut &file[..], name);
        let verdict = match checked {
            Err(e) => e.to_string(),
            Ok(c) if !c.verified => format!("no trailer: {c:?}"),
            Ok(c) => panic!("{name}: accepted as {c:?}"),
        };
        assert!(verdict.contains(want), "{name}: {verdict}");
        // The import itself refuses it too, leaving nothing behind.
        let err = jsonl::import(
            &backend,
            &mut std::io::Cursor::new(file),
            name,
            &MigrateOptions::new(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains(want), "{name}: {err}");
        if name != "appended" {
            assert_eq!(tables(&t).await, Vec::<String>::new(), "{name}: {err}");
        }
        t.close().await.unwrap();
    }
}

/// Format 1 (before trailers): `import` refuses it (it cannot be checked
/// whole), a restore of an old logical backup (whose manifest's SHA-256
/// covers it) still loads it.
#[tokio::test]
async fn a_format_1_file_is_restored_but_not_imported() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = concat!(
        r#"{"strata_export":1,"source":"x","dialect":"sqlite"}"#,
        "\n",
        r#"{"table":{"name":"old","columns":[{"name":"id","kind":"integer","not_null":true}],"primary_key":["id"],"auto_key":false,"indexes":[]}}"#,
        "\n",
        r#"{"row":[1]}"#,
        "\n",
        r#"{"end":{"table":"old","rows":1}}"#,
        "\n"
    );
    let c = jsonl::contents(&mut v1.as_bytes(), "v1.jsonl").unwrap();
    assert_eq!(
        (c.tables.clone(), c.verified),
        (vec!["old".to_string()], false)
    );
    let t = open(dir.path(), "v1");
    let backend = t.backend("local").await.unwrap();
    let err = jsonl::import(
        &backend,
        &mut std::io::Cursor::new(v1),
        "v1.jsonl",
        &MigrateOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("format 1"), "{err}");
    assert_eq!(tables(&t).await, Vec::<String>::new());
    jsonl::import_with(
        &backend,
        &mut v1.as_bytes(),
        "v1.jsonl",
        &MigrateOptions::new(),
        jsonl::ImportMode::Restore { replace: false },
    )
    .await
    .unwrap();
    assert_eq!(count(&t, "SELECT count(*) AS n FROM old").await, 1);
    t.close().await.unwrap();
}
