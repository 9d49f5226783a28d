//! Migrations between two SQLite backends (the loaded plugin, no servers):
//! re-runs into a table that cannot identify rows, and when verification
//! runs on a resumed migration.

use std::sync::{Arc, Mutex};

use strata_host::{
    Strata,
    migrate::{ItemProgress, MigrateError, MigrateOptions, Phase, jsonl, migrate},
    progress::Progress,
};

/// Backends `a` and `b` over `a.sqlite` and `b.sqlite` in `dir`.
fn open(dir: &std::path::Path) -> Strata {
    open_with(dir, "a", "")
}

/// Backend `name` over `a.sqlite` (with more config `options`, e.g.
/// `, read_only = true`) and `b` over `b.sqlite`.
fn open_with(dir: &std::path::Path, name: &str, options: &str) -> Strata {
    let cfg = dir.join(format!("plugins-{name}.toml"));
    let lib = strata_host::loader::built_plugin("sqlite")
        .expect("run `cargo build --release --workspace` first");
    std::fs::write(
        &cfg,
        format!(
            "[backends.{name}]\nlibrary = {lib:?}\nconfig = {{ path = {:?}{options} }}\n\
             [backends.b]\nlibrary = {lib:?}\nconfig = {{ path = {:?} }}\n",
            dir.join("a.sqlite"),
            dir.join("b.sqlite")
        ),
    )
    .unwrap();
    Strata::load(&cfg).unwrap()
}

async fn count(s: &Strata, backend: &str, table: &str) -> i64 {
    s.sql_backend(backend)
        .await
        .unwrap()
        .get(&format!("SELECT count(*) AS n FROM {table}"), ())
        .await
        .unwrap()
        .unwrap()
        .get::<i64>("n")
        .unwrap()
}

#[tokio::test]
async fn an_existing_target_table_without_the_key_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s.sql_backend("a").await.unwrap();
    a.exec(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes (body) VALUES ('x'), ('y'), ('z');",
    )
    .await
    .unwrap();
    // The target already has `notes`, without a key on `id`, holding a row.
    let b = s.sql_backend("b").await.unwrap();
    b.exec("CREATE TABLE notes (id INTEGER, body TEXT); INSERT INTO notes VALUES (1, 'x');")
        .await
        .unwrap();
    let (from, to) = (s.backend("a").await.unwrap(), s.backend("b").await.unwrap());
    for dry_run in [true, false] {
        let err = migrate(&from, &to, &MigrateOptions::new().dry_run(dry_run))
            .await
            .unwrap_err();
        assert!(matches!(err, MigrateError::Schema { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("`notes`") && msg.contains("(id)"), "{msg}");
        assert!(
            msg.contains("without a primary key or unique index"),
            "{msg}"
        );
        assert_eq!(count(&s, "b", "notes").await, 1, "nothing written");
    }

    // A unique index on the key is enough: the migration goes through, and
    // a re-run writes nothing.
    b.exec("DELETE FROM notes; CREATE UNIQUE INDEX notes_id ON notes (id);")
        .await
        .unwrap();
    let r = migrate(&from, &to, &MigrateOptions::new()).await.unwrap();
    assert_eq!(r.written(), 3);
    let r = migrate(&from, &to, &MigrateOptions::new()).await.unwrap();
    assert_eq!(r.written(), 0);
    assert_eq!(count(&s, "b", "notes").await, 3);

    // An import into a keyless table is refused the same way.
    let mut out = Vec::new();
    jsonl::export(&from, &mut out, "x.jsonl", &MigrateOptions::new())
        .await
        .unwrap();
    b.exec("CREATE TABLE keyless AS SELECT * FROM notes; DROP TABLE notes; ALTER TABLE keyless RENAME TO notes;")
        .await
        .unwrap();
    let err = jsonl::import(
        &to,
        &mut std::io::Cursor::new(out),
        "x.jsonl",
        &MigrateOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("without a primary key or unique index"),
        "{err}"
    );
    assert_eq!(count(&s, "b", "notes").await, 3);
    s.close().await.unwrap();
}

/// Records (item, phase) of every item progress report.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(String, Phase)>>>);

impl Progress for Events {
    fn item(&self, item: &ItemProgress) {
        self.0.lock().unwrap().push((item.name.clone(), item.phase));
    }
}

#[tokio::test]
async fn a_resumed_migration_copies_what_is_left_before_verifying_anything() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s.sql_backend("a").await.unwrap();
    a.exec(
        "CREATE TABLE first (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE second (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO first (body) VALUES ('x'), ('y');
         INSERT INTO second (body) VALUES ('z');",
    )
    .await
    .unwrap();
    let (from, to) = (s.backend("a").await.unwrap(), s.backend("b").await.unwrap());
    // An earlier run finished `first` (its checkpoint says done).
    migrate(
        &from,
        &to,
        &MigrateOptions::new().tables(["first"]).verify(false),
    )
    .await
    .unwrap();

    let events = Events::default();
    let r = migrate(
        &from,
        &to,
        &MigrateOptions::new().resume(true).progress(events.clone()),
    )
    .await
    .unwrap();
    assert!(r.tables[0].already_done);
    assert_eq!(r.tables[1].written, 1);
    for t in &r.tables {
        assert!(t.verification.to_string().starts_with("ok"), "{t:?}");
    }
    let events = events.0.lock().unwrap().clone();
    let first_verify = events
        .iter()
        .position(|(_, p)| *p == Phase::Verify)
        .expect("verified");
    let last_copy = events
        .iter()
        .rposition(|(_, p)| matches!(p, Phase::Start | Phase::Copy))
        .unwrap();
    assert!(
        last_copy < first_verify,
        "verification began before every item was copied: {events:?}"
    );
    // Each item verified once, then done.
    for name in ["first", "second"] {
        let phases: Vec<Phase> = events
            .iter()
            .filter(|(n, p)| n == name && matches!(p, Phase::Verify | Phase::Done))
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(phases, [Phase::Verify, Phase::Done], "{name}: {events:?}");
    }
    s.close().await.unwrap();
}

/// Verification names the columns that differ: a target whose trigger
/// changes one column as rows arrive fails verification naming that
/// column and no other (the per-column checksums are computed only once the
/// rows are known to differ).
#[tokio::test]
async fn a_failed_verification_names_the_columns_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s.sql_backend("a").await.unwrap();
    a.exec(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, score REAL);
         INSERT INTO notes (body, score) VALUES ('x', 1.5), ('y', 2.5), ('z', 3.5);",
    )
    .await
    .unwrap();
    let b = s.sql_backend("b").await.unwrap();
    b.exec(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, score REAL);
         CREATE TRIGGER shout AFTER INSERT ON notes BEGIN
             UPDATE notes SET body = upper(body) WHERE id = new.id;
         END;",
    )
    .await
    .unwrap();
    let (from, to) = (s.backend("a").await.unwrap(), s.backend("b").await.unwrap());
    let err = migrate(&from, &to, &MigrateOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::Verify { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("columns that differ: body"), "{msg}");
    assert!(!msg.contains("score") && !msg.contains(" id"), "{msg}");
}

#[tokio::test]
async fn a_vector_of_the_wrong_dimension_fails_the_copy_naming_its_column() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s.sql_backend("a").await.unwrap();
    a.exec("CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, embedding F32_BLOB(3))")
        .await
        .unwrap();
    // 3 000 good rows (more than one page), then one of 2 floats.
    let three: Vec<u8> = [0.5f32, -1.0, 2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let tx = a.begin().await.unwrap();
    for i in 0..3000 {
        tx.run(
            "INSERT INTO docs (id, title, embedding) VALUES (?, ?, ?)",
            strata_host::params![i, format!("doc {i}"), three.clone()],
        )
        .await
        .unwrap();
    }
    tx.run(
        "INSERT INTO docs (id, title, embedding) VALUES (?, ?, ?)",
        strata_host::params![5000, "short", three[..8].to_vec()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (from, to) = (s.backend("a").await.unwrap(), s.backend("b").await.unwrap());
    let err = migrate(&from, &to, &MigrateOptions::new().batch_size(1000))
        .await
        .unwrap_err();
    match &err {
        MigrateError::Value {
            table,
            column,
            message,
        } => {
            assert_eq!((table.as_str(), column.as_str()), ("docs", "embedding"));
            assert_eq!(message, "vector has 2 dimensions, the column has 3");
        }
        other => panic!("expected a value error, got {other}"),
    }
    // The pages before the bad one were copied and checkpointed.
    assert_eq!(count(&s, "b", "docs").await, 3000);
}

/// Verification re-reads a finished table on both sides; a source opened
/// `read_only` must be readable for it (no write transaction asked of it).
#[tokio::test]
async fn verification_reads_a_read_only_source() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s.sql_backend("a").await.unwrap();
    a.exec(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes (body) VALUES ('x'), ('y'), ('z');",
    )
    .await
    .unwrap();
    s.close().await.unwrap();
    let s = open_with(dir.path(), "ro", ", read_only = true");
    let (from, to) = (
        s.backend("ro").await.unwrap(),
        s.backend("b").await.unwrap(),
    );
    migrate(&from, &to, &MigrateOptions::new().verify(false))
        .await
        .unwrap();
    // Done by the first run: this one only verifies, reading both sides.
    let r = migrate(&from, &to, &MigrateOptions::new().resume(true))
        .await
        .unwrap();
    assert!(r.tables[0].already_done, "{r:?}");
    assert!(
        r.tables[0].verification.to_string().starts_with("ok"),
        "{:?}",
        r.tables[0]
    );
    s.close().await.unwrap();
}
