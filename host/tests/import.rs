//! `strata import` / logical restores refuse what a crafted export could
//! use to reach internal tables, through the loaded SQLite plugin.

use strata_host::{
    Strata,
    migrate::{MigrateOptions, jsonl},
};

fn open(dir: &std::path::Path) -> Strata {
    let cfg = dir.join("plugins.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?} }}\n",
            strata_host::loader::built_plugin("sqlite")
                .expect("run `cargo build --release --workspace` first"),
            dir.join("db.sqlite")
        ),
    )
    .unwrap();
    Strata::load(&cfg).unwrap()
}

const HEADER: &str = r#"{"strata_export":2,"source":"x","dialect":"sqlite"}"#;

/// `body` ended with the trailer an export writes: `tables` with their row
/// counts, the line count and the SHA-256 of `body`.
fn with_trailer(body: &str, tables: &[(&str, u64)]) -> std::io::Cursor<Vec<u8>> {
    use sha2::Digest as _;
    let trailer = serde_json::json!({ "trailer": {
        "tables": tables.iter().map(|(n, r)| serde_json::json!({"name": n, "rows": r})).collect::<Vec<_>>(),
        "collections": [],
        "lines": body.lines().count(),
        "sha256": hex::encode(sha2::Sha256::digest(body.as_bytes())),
    }});
    std::io::Cursor::new(format!("{body}{trailer}\n").into_bytes())
}

fn table(name: &str) -> String {
    format!(
        r#"{{"table":{{"name":"{name}","columns":[{{"name":"id","kind":"integer","not_null":true}}],"primary_key":["id"],"auto_key":false,"indexes":[]}}}}"#
    )
}

#[tokio::test]
async fn reserved_table_names_and_disguised_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let backend = s.backend("local").await.unwrap();
    let sql = backend.sql().unwrap();

    // A legitimate table imports.
    let ok = format!(
        "{HEADER}\n{}\n{{\"row\":[1]}}\n{{\"end\":{{\"table\":\"notes\",\"rows\":1}}}}\n",
        table("notes")
    );
    jsonl::import(
        &backend,
        &mut with_trailer(&ok, &[("notes", 1)]),
        "ok.jsonl",
        &MigrateOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        sql.get("SELECT count(*) AS n FROM notes", ())
            .await
            .unwrap()
            .unwrap()
            .get::<i64>("n")
            .unwrap(),
        1
    );

    // The vector catalogue (or any strata_* / sqlite_* table) is never written.
    for name in ["strata_collections", "sqlite_sequence"] {
        let bad = format!(
            "{HEADER}\n{}\n{{\"end\":{{\"table\":\"{name}\",\"rows\":0}}}}\n",
            table(name)
        );
        let err = jsonl::import(
            &backend,
            &mut with_trailer(&bad, &[(name, 0)]),
            "bad.jsonl",
            &MigrateOptions::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("reserved name"), "{err}");
        assert!(err.to_string().contains("bad.jsonl:2"), "{err}");
    }

    // A header hidden behind another key is not a header (to the import as
    // to the existence check of a restore): refused, nothing created.
    let disguised = format!(
        "{HEADER}\n{{\"x\":0,{}\n{{\"end\":{{\"table\":\"sneaky\",\"rows\":0}}}}\n",
        &table("sneaky")[1..]
    );
    let err = jsonl::import(
        &backend,
        &mut with_trailer(&disguised, &[]),
        "d.jsonl",
        &MigrateOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a table or collection header"),
        "{err}"
    );
    let exists = sql
        .get(
            "SELECT count(*) AS n FROM sqlite_master WHERE name = 'sneaky'",
            (),
        )
        .await
        .unwrap()
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    assert_eq!(exists, 0);
    s.close().await.unwrap();
}
