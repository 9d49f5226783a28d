//! The migration engine on real backends: the SQLite plugin and the
//! PostgreSQL server `scripts/servers/postgres.sh` starts (`DATABASE_URL`).
//! Every test works in its own Postgres schema, so they run in parallel.
//! Uses the `.so` files built by `cargo build --release --workspace`. The
//! `strata` commands are tested in `cli/tests/migrate.rs`.

#[path = "support/migrate.rs"]
mod support;

use strata_host::{
    Include, Sql, Strata, Value,
    migrate::{
        ItemKind, MigrateError, MigrateOptions, Verification, collection_checksum, jsonl, migrate,
    },
    params,
};
use support::*;

/// A table with every value kind, including NULLs and edge values.
async fn make_kinds(sql: &Sql) {
    sql.exec(
        "CREATE TABLE kinds (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            i INTEGER, r REAL, t TEXT NOT NULL, b BLOB, doc JSON, flag BOOLEAN,
            embedding BLOB, price DECIMAL, at TIMESTAMPTZ);
         CREATE INDEX kinds_t ON kinds (t);
         CREATE UNIQUE INDEX kinds_i_r ON kinds (i, r);",
    )
    .await
    .unwrap();
    type KindsRow<'a> = (Value, Value, &'a str, Value, Value, Value, Value, Value);
    let rows: Vec<KindsRow> = vec![
        (
            Value::Integer(i64::MAX),
            Value::Real(1.5),
            "plain",
            Value::from(vec![0u8, 1, 2, 255]),
            Value::from(r#"{"b": 1, "a": [1, 2.5, "x"], "n": null}"#),
            Value::Integer(1),
            Value::from("12.50"),
            Value::from("2024-01-02 03:04:05.5+00:00"),
        ),
        (
            Value::Integer(i64::MIN),
            Value::Real(-1e-300),
            "ünïcødé ✓ 'quotes' \"dq\"",
            Value::from(Vec::<u8>::new()),
            Value::from("[1, {\"z\": true}]"),
            Value::Integer(0),
            Value::from("-0.001"),
            Value::from("1999-12-31 23:59:59+00:00"),
        ),
        (
            Value::Null,
            Value::Null,
            "",
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ),
        (
            Value::Integer(0),
            Value::Real(std::f64::consts::PI),
            "line\nbreak\ttab",
            Value::from(vec![7u8; 1000]),
            Value::from(r#""just a string""#),
            Value::Integer(1),
            Value::from("100000000000000000000.000000001"),
            Value::from("2030-06-30 12:00:00+00:00"),
        ),
    ];
    for (n, (i, r, t, b, doc, flag, price, at)) in rows.into_iter().enumerate() {
        let e = if n == 2 {
            Value::Null
        } else {
            Value::from(blob(&embedding(n as i64, 8)))
        };
        sql.run(
            "INSERT INTO kinds (i, r, t, b, doc, flag, embedding, price, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![i, r, t, b, doc, flag, e, price, at],
        )
        .await
        .unwrap();
    }
}

const TABLES: [&str; 3] = ["kinds", "memories", "pairs"];

#[test]
fn round_trip_sqlite_postgres_sqlite_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("round");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        make_kinds(&src).await;
        make_bulk(&src, 100_000).await;
        make_collections(&strata, "src").await;
        let before = checksums(&strata, "src", &TABLES).await;
        assert_eq!(before[1].0, 100_000);

        let (s, p, b) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
            strata.backend("back").await.unwrap(),
        );
        // Tables and collections through Postgres and back.
        let to_pg = migrate(&s, &p, &MigrateOptions::new()).await.unwrap();
        assert_eq!(to_pg.tables.len(), 3, "{to_pg:?}");
        assert_eq!(to_pg.collections.len(), 2, "{to_pg:?}");
        for c in to_pg.items() {
            assert!(matches!(c.verification, Verification::Passed { .. }), "{c:?}");
        }
        assert_eq!(to_pg.collections.iter().map(|c| c.written).sum::<u64>(), 350);
        for t in &to_pg.tables {
            assert!(matches!(t.verification, Verification::Passed { .. }), "{t:?}");
            assert_eq!(t.read, t.written, "{t:?}");
        }
        assert_eq!(to_pg.tables.iter().find(|t| t.name == "memories").unwrap().written, 100_000);

        // The Postgres side has the translated types.
        let pg = strata.sql_backend("pg").await.unwrap();
        let types: Vec<(String, String)> = pg
            .all(
                "SELECT column_name::text AS c, data_type::text AS t FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = 'kinds' ORDER BY ordinal_position",
                (),
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("c").unwrap(), r.get("t").unwrap()))
            .collect();
        let ty = |c: &str| types.iter().find(|(n, _)| n == c).unwrap().1.clone();
        assert_eq!(ty("id"), "bigint");
        assert_eq!(ty("b"), "bytea");
        assert_eq!(ty("doc"), "jsonb");
        assert_eq!(ty("flag"), "boolean");
        assert_eq!(ty("embedding"), "USER-DEFINED", "{types:?}"); // pgvector's vector(8)
        assert_eq!(ty("price"), "numeric");
        let identity: String = pg
            .get(
                "SELECT is_identity::text AS x FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = 'kinds' AND column_name = 'id'",
                (),
            )
            .await
            .unwrap()
            .unwrap()
            .get("x")
            .unwrap();
        assert_eq!(identity, "YES");
        let indexes: i64 = pg
            .get(
                "SELECT count(*) AS n FROM pg_indexes WHERE schemaname = current_schema() \
                 AND indexname IN ('kinds_t', 'kinds_i_r', 'memories_agent')",
                (),
            )
            .await
            .unwrap()
            .unwrap()
            .get("n")
            .unwrap();
        assert_eq!(indexes, 3);
        // The identity continues after the copied keys.
        let next = pg
            .run("INSERT INTO kinds (t) VALUES ('new') RETURNING id", ())
            .await
            .unwrap();
        assert_eq!(next.last_insert_rowid, Some(5));
        pg.run("DELETE FROM kinds WHERE id = 5", ()).await.unwrap();

        let back = migrate(&p, &b, &MigrateOptions::new()).await.unwrap();
        assert_eq!(back.tables.len(), 3);
        assert_eq!(back.collections.len(), 2);
        for t in back.items() {
            assert!(matches!(t.verification, Verification::Passed { .. }), "{t:?}");
        }

        // Identical checksums on all three sides.
        let on_pg = checksums(&strata, "pg", &TABLES).await;
        let after = checksums(&strata, "back", &TABLES).await;
        assert_eq!(before, on_pg);
        assert_eq!(before, after);
        let (sv, pv, bv) = (
            strata.vectors_backend("src").await.unwrap(),
            strata.vectors_backend("pg").await.unwrap(),
            strata.vectors_backend("back").await.unwrap(),
        );
        for name in ["notes", "points"] {
            let a = collection_checksum(&sv, name).await.unwrap();
            assert_eq!(a, collection_checksum(&pv, name).await.unwrap(), "{name} on pg");
            assert_eq!(a, collection_checksum(&bv, name).await.unwrap(), "{name} back");
            let ss = sv.stats(name).await.unwrap().unwrap();
            for v in [&pv, &bv] {
                let st = v.stats(name).await.unwrap().unwrap();
                assert_eq!((st.dimension, st.metric, st.count), (ss.dimension, ss.metric, ss.count));
            }
        }
        let hit = bv.fetch("notes", &["n4"], Include::ALL).await.unwrap();
        assert_eq!(hit[0].vector.as_deref(), Some(&embedding(4, 8)[..]));
        assert_eq!(hit[0].text.as_deref(), Some("note 4 about tea"));
        assert_eq!(hit[0].metadata.as_ref().unwrap()["nested"]["a"][0], 4);

        // Value by value, the round trip returns what went in (JSON compared as documents).
        let bsql = strata.sql_backend("back").await.unwrap();
        let q = "SELECT id, i, r, t, b, doc, flag, embedding, price, at FROM kinds ORDER BY id";
        let (orig, end) = (src.all(q, ()).await.unwrap(), bsql.all(q, ()).await.unwrap());
        assert_eq!(orig.len(), end.len());
        for (o, e) in orig.iter().zip(&end) {
            for c in ["id", "i", "r", "t", "b", "flag", "embedding"] {
                assert_eq!(o.value(c), e.value(c), "column {c}");
            }
            let (od, ed): (Option<serde_json::Value>, Option<serde_json::Value>) =
                (o.get("doc").unwrap(), e.get("doc").unwrap());
            assert_eq!(od, ed);
        }
        // Timestamps come back in Postgres' spelling (checksums compare them normalised).
        assert_eq!(end[0].get::<String>("at").unwrap(), "2024-01-02 03:04:05.500000+00:00");
        assert_eq!(end[0].get::<String>("price").unwrap(), "12.5");
        // The embedding column came back declared as a vector.
        let decl: String = bsql
            .get("SELECT type FROM pragma_table_info('kinds') WHERE name = 'embedding'", ())
            .await
            .unwrap()
            .unwrap()
            .get("type")
            .unwrap();
        assert_eq!(decl, "F32_BLOB(8)");

        // Verification reads pgvector columns in their binary form: one
        // float moved by one ulp on the Postgres side is caught and named.
        let mut v = embedding(0, 8);
        v[3] = f32::from_bits(v[3].to_bits() + 1);
        let text = format!(
            "[{}]",
            v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
        );
        let changed = pg
            .run("UPDATE kinds SET embedding = CAST(? AS vector) WHERE id = 1", params![text])
            .await
            .unwrap();
        assert_eq!(changed.changes, 1);
        let only_kinds = MigrateOptions::new()
            .tables(["kinds"])
            .collections(Vec::<String>::new())
            .resume(true);
        let err = migrate(&s, &p, &only_kinds).await.unwrap_err();
        match &err {
            MigrateError::Verify { name, detail, .. } => {
                assert_eq!(name, "kinds");
                assert!(detail.contains("columns that differ: embedding"), "{detail}");
            }
            other => panic!("expected a verification failure, got {other}"),
        }
        drop_schema(&strata, &schema).await;
    });
}

#[test]
fn rerun_writes_nothing_and_resume_skips_finished_tables() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("rerun");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        make_kinds(&src).await;
        make_bulk(&src, 5_000).await;
        make_collections(&strata, "src").await;
        let (s, p, b) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
            strata.backend("back").await.unwrap(),
        );
        let no_coll = MigrateOptions::new().collections(Vec::<String>::new());
        let first = migrate(&s, &p, &no_coll).await.unwrap();
        assert_eq!(first.written(), 5_000 + 150 + 4);

        // Again, from scratch: every row read, none written.
        let again = migrate(&s, &p, &no_coll).await.unwrap();
        for t in &again.tables {
            assert_eq!(t.written, 0, "{t:?}");
            assert_eq!(t.skipped, t.read, "{t:?}");
            assert!(t.read > 0);
        }
        // With --resume: finished tables are not even read.
        let resumed = migrate(&s, &p, &no_coll.clone().resume(true))
            .await
            .unwrap();
        for t in &resumed.tables {
            assert!(t.already_done, "{t:?}");
            assert_eq!((t.read, t.written), (0, 0), "{t:?}");
            assert!(matches!(t.verification, Verification::Passed { .. }));
        }
        // One changed source row is the one row written.
        src.run("UPDATE memories SET content = 'changed' WHERE id = 42", ())
            .await
            .unwrap();
        let one = migrate(&s, &p, &no_coll.clone().tables(["memories"]))
            .await
            .unwrap();
        assert_eq!(one.tables[0].written, 1);
        let pg = strata.sql_backend("pg").await.unwrap();
        let row = pg
            .get("SELECT content FROM memories WHERE id = 42", ())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<String>("content").unwrap(), "changed");

        // Collections: a re-run writes nothing either.
        let only_coll = MigrateOptions::new().tables(Vec::<String>::new());
        let c1 = migrate(&s, &b, &only_coll).await.unwrap();
        assert_eq!(c1.written(), 350);
        let c2 = migrate(&s, &b, &only_coll).await.unwrap();
        assert_eq!(c2.written(), 0);
        assert_eq!(c2.collections.iter().map(|c| c.skipped).sum::<u64>(), 350);
        let c3 = migrate(&s, &b, &only_coll.clone().resume(true))
            .await
            .unwrap();
        assert!(c3.collections.iter().all(|c| c.already_done && c.read == 0));

        // A target changed behind the migration's back fails verification, naming the table.
        pg.run("DELETE FROM pairs WHERE a = 'y' AND b = 3", ())
            .await
            .unwrap();
        let err = migrate(&s, &p, &no_coll.clone().resume(true))
            .await
            .unwrap_err();
        match &err {
            MigrateError::Verify { kind, name, detail } => {
                assert_eq!((*kind, name.as_str()), (ItemKind::Table, "pairs"));
                assert!(
                    detail.contains("150 rows") && detail.contains("149 rows"),
                    "{detail}"
                );
            }
            other => panic!("expected a verification failure, got {other}"),
        }
        drop_schema(&strata, &schema).await;
    });
}

#[test]
fn dry_run_counts_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("dry");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        make_kinds(&src).await;
        make_bulk(&src, 1_000).await;
        make_collections(&strata, "src").await;
        let (s, p, b) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
            strata.backend("back").await.unwrap(),
        );
        let r = migrate(&s, &p, &MigrateOptions::new().dry_run(true).collections(Vec::<String>::new()))
            .await
            .unwrap();
        assert!(r.dry_run);
        let counts: Vec<(String, u64, u64)> =
            r.tables.iter().map(|t| (t.name.clone(), t.read, t.written)).collect();
        assert_eq!(
            counts,
            vec![("kinds".into(), 4, 0), ("memories".into(), 1_000, 0), ("pairs".into(), 150, 0)]
        );
        let pg = strata.sql_backend("pg").await.unwrap();
        let n: i64 = pg
            .get(
                "SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema()",
                (),
            )
            .await
            .unwrap()
            .unwrap()
            .get("n")
            .unwrap();
        assert_eq!(n, 0, "a dry run created something in the target schema");
        let r = migrate(&s, &b, &MigrateOptions::new().dry_run(true)).await.unwrap();
        assert_eq!(r.collections.iter().map(|c| c.read).sum::<u64>(), 350);
        let back = strata.sql_backend("back").await.unwrap();
        let n: i64 = back
            .get("SELECT count(*) AS n FROM sqlite_master", ())
            .await
            .unwrap()
            .unwrap()
            .get("n")
            .unwrap();
        assert_eq!(n, 0, "a dry run created something in the SQLite target");
        drop_schema(&strata, &schema).await;
    });
}

#[test]
fn a_table_without_a_primary_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("nopk");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        src.exec("CREATE TABLE loose (x TEXT); INSERT INTO loose VALUES ('a');")
            .await
            .unwrap();
        let (s, p) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
        );
        let err = migrate(&s, &p, &MigrateOptions::new()).await.unwrap_err();
        assert!(matches!(err, MigrateError::Schema { .. }), "{err:?}");
        assert_eq!(err.item(), Some("loose"));
        assert!(err.to_string().contains("no primary key"), "{err}");
        drop_schema(&strata, &schema).await;
    });
}

/// A target table without a key on the source's key: Postgres' bulk path
/// (binary COPY) would insert every row again on each run. Refused before
/// anything is written; with the key added, re-runs write nothing.
#[test]
fn rerunning_into_a_keyless_table_is_refused_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("keyless");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        src.exec(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO notes SELECT i, 'note ' || i FROM n;",
        )
        .await
        .unwrap();
        let pg = strata.sql_backend("pg").await.unwrap();
        pg.exec("CREATE TABLE notes (id bigint, body text)")
            .await
            .unwrap();
        let (s, p) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
        );
        let pg_rows = || async {
            pg.get("SELECT count(*)::int8 AS n FROM notes", ())
                .await
                .unwrap()
                .unwrap()
                .get::<i64>("n")
                .unwrap()
        };
        for _ in 0..2 {
            let err = migrate(&s, &p, &MigrateOptions::new().verify(false))
                .await
                .unwrap_err();
            assert_eq!(err.item(), Some("notes"), "{err}");
            assert!(
                err.to_string()
                    .contains("without a primary key or unique index"),
                "{err}"
            );
            assert_eq!(pg_rows().await, 0, "nothing written");
        }
        pg.exec("ALTER TABLE notes ADD PRIMARY KEY (id)")
            .await
            .unwrap();
        for _ in 0..2 {
            migrate(&s, &p, &MigrateOptions::new()).await.unwrap();
            assert_eq!(pg_rows().await, 500);
        }
        drop_schema(&strata, &schema).await;
    });
}

#[test]
fn export_import_round_trip_and_a_failed_import_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("jsonl");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        make_kinds(&src).await;
        make_bulk(&src, 3_000).await;
        make_collections(&strata, "src").await;
        let (s, p, b) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
            strata.backend("back").await.unwrap(),
        );
        let file = dir.path().join("export.jsonl");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let r = jsonl::export(&s, &mut out, "export.jsonl", &MigrateOptions::new().batch_size(700))
            .await
            .unwrap();
        drop(out);
        assert_eq!(r.tables.len(), 3);
        assert_eq!(r.collections.len(), 2);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.lines().next().unwrap().contains("\"strata_export\":2"));
        assert!(text.lines().last().unwrap().starts_with("{\"trailer\":"));
        assert!(text.contains("{\"b64\":\"AAEC/w==\"}"), "blobs are base64");

        // Everything into Postgres and into SQLite.
        let mut input = std::io::BufReader::new(std::fs::File::open(&file).unwrap());
        let r = jsonl::import(&p, &mut input, "export.jsonl", &MigrateOptions::new())
            .await
            .unwrap();
        assert_eq!(r.tables.iter().map(|t| t.written).sum::<u64>(), 4 + 3_000 + 150);
        assert_eq!(r.collections.iter().map(|t| t.written).sum::<u64>(), 350);
        let mut input = std::io::BufReader::new(std::fs::File::open(&file).unwrap());
        jsonl::import(&b, &mut input, "export.jsonl", &MigrateOptions::new()).await.unwrap();
        let before = checksums(&strata, "src", &TABLES).await;
        assert_eq!(before, checksums(&strata, "pg", &TABLES).await);
        assert_eq!(before, checksums(&strata, "back", &TABLES).await);
        let (sv, pv, bv) = (
            strata.vectors_backend("src").await.unwrap(),
            strata.vectors_backend("pg").await.unwrap(),
            strata.vectors_backend("back").await.unwrap(),
        );
        for name in ["notes", "points"] {
            let a = collection_checksum(&sv, name).await.unwrap();
            assert_eq!(a, collection_checksum(&pv, name).await.unwrap());
            assert_eq!(a, collection_checksum(&bv, name).await.unwrap());
        }

        // A file cut in the middle of a table: that table is not created at all.
        let cut: String = text
            .lines()
            .skip_while(|l| !l.contains("\"name\":\"memories\""))
            .take(100)
            .map(|l| format!("{l}\n"))
            .collect();
        let cut = format!("{}\n{cut}", text.lines().next().unwrap());
        let fresh = pg_schema("jsonl2");
        let dir2 = tempfile::tempdir().unwrap();
        let strata2 = Strata::load(config(dir2.path(), &fresh)).unwrap();
        let p2 = strata2.backend("pg").await.unwrap();
        let err = jsonl::import(&p2, &mut std::io::Cursor::new(cut), "cut.jsonl", &MigrateOptions::new().batch_size(10))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("memories"), "{err}");
        let pg2 = strata2.sql_backend("pg").await.unwrap();
        let exists = pg2
            .get("SELECT 1 AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = 'memories'", ())
            .await
            .unwrap();
        assert!(exists.is_none(), "a failed import left the table behind");
        drop_schema(&strata2, &fresh).await;
        drop_schema(&strata, &schema).await;
    });
}

/// Issue 16 #5: two tables whose names share their first 63 bytes would be
/// merged into one by PostgreSQL (which cuts identifiers there); such a
/// name is refused before anything is written, naming both tables.
#[test]
fn names_postgres_would_cut_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("longname");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    let prefix = "t".repeat(63);
    let (a, b) = (format!("{prefix}_alpha"), format!("{prefix}_beta"));
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        src.exec(&format!(
            "CREATE TABLE \"{a}\" (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO \"{a}\" VALUES (1, 'a');
             CREATE TABLE \"{b}\" (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO \"{b}\" VALUES (1, 'b');"
        ))
        .await
        .unwrap();
        let (s, p) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
        );
        let options = MigrateOptions::new().verify(false);
        let err = migrate(&s, &p, &options).await.unwrap_err();
        assert!(matches!(err, MigrateError::Schema { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&a) && text.contains(&b), "{text}");
        assert!(text.contains("63"), "{text}");
        // Nothing was written: not even the checkpoint table.
        let pg = strata.sql_backend("pg").await.unwrap();
        let n = pg
            .get(
                "SELECT count(*)::bigint AS n FROM pg_tables WHERE schemaname = current_schema() \
                 AND (tablename LIKE 'ttt%' OR tablename = 'strata_migrations')",
                (),
            )
            .await
            .unwrap()
            .unwrap()
            .get::<i64>("n")
            .unwrap();
        assert_eq!(n, 0);

        // A long column name is refused the same way.
        let c = "c".repeat(64);
        src.exec(&format!(
            "DROP TABLE \"{a}\"; DROP TABLE \"{b}\"; CREATE TABLE wide (id INTEGER PRIMARY KEY, \"{c}\" TEXT);"
        ))
        .await
        .unwrap();
        let err = migrate(&s, &p, &options).await.unwrap_err();
        assert!(err.to_string().contains(&format!("column `{c}`")), "{err}");
        drop_schema(&strata, &schema).await;
    });
}

/// Issue 16: a table without a primary key is exported (SQLite: in rowid
/// order, paged, duplicate rows kept) and imported into a fresh table on
/// Postgres; importing it again into the now existing keyless table is
/// refused instead of duplicating every row.
#[test]
fn a_keyless_table_exports_and_imports_once() {
    let dir = tempfile::tempdir().unwrap();
    let schema = pg_schema("keyless");
    let strata = Strata::load(config(dir.path(), &schema)).unwrap();
    rt().block_on(async {
        let src = strata.sql_backend("src").await.unwrap();
        src.exec(
            "CREATE TABLE loose (x TEXT, n INTEGER);
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 250)
             INSERT INTO loose SELECT 'row' || (i % 7), i % 7 FROM s;",
        )
        .await
        .unwrap();
        let (s, p) = (
            strata.backend("src").await.unwrap(),
            strata.backend("pg").await.unwrap(),
        );
        let options = MigrateOptions::new()
            .batch_size(40)
            .tables(["loose"])
            .collections(Vec::<String>::new());
        let mut out = Vec::new();
        let r = jsonl::export(&s, &mut out, "loose.jsonl", &options)
            .await
            .unwrap();
        assert_eq!(r.tables[0].read, 250);
        let mut input = std::io::Cursor::new(out.clone());
        jsonl::import(&p, &mut input, "loose.jsonl", &options)
            .await
            .unwrap();
        let pg = strata.sql_backend("pg").await.unwrap();
        let counts = |sql: Sql| async move {
            sql.all(
                "SELECT x, count(*) AS c FROM loose GROUP BY x ORDER BY x",
                (),
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<String>("x").unwrap(), r.get::<i64>("c").unwrap()))
            .collect::<Vec<_>>()
        };
        assert_eq!(counts(src.clone()).await, counts(pg.clone()).await);
        let err = jsonl::import(&p, &mut std::io::Cursor::new(out), "loose.jsonl", &options)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no primary key"), "{err}");
        assert_eq!(counts(src).await.iter().map(|c| c.1).sum::<i64>(), 250);
        assert_eq!(counts(pg).await.iter().map(|c| c.1).sum::<i64>(), 250);
        drop_schema(&strata, &schema).await;
    });
}
