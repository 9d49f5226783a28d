//! Logical backups of a real PostgreSQL backend (the loaded Postgres plugin,
//! `DATABASE_URL` from `scripts/servers/postgres.sh`) to a real
//! S3-protocol server (moto, `S3_ENDPOINT` from `scripts/servers/moto.sh`).
//! These tests fail rather than skip when either is missing.
//!
//! Every test works in its own Postgres schemas and under its own key
//! prefix in the bucket, so they run in parallel without seeing each other.
//! The source backend runs at `isolation = "read_committed"`, so the
//! consistency test can only pass if the backup really reads every table
//! in one repeatable-read snapshot (read committed would give each page a
//! fresh snapshot).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

#[path = "support/backup_pg.rs"]
mod support;

use serde_json::json;
use sha2::{Digest, Sha256};
use strata_host::{
    ErrorKind, Include, Metric, Record, Sql,
    backup::{BackupManager, SnapshotKind, Which},
    migrate::{collection_checksum, table_checksum},
};
use support::*;

async fn ids(sql: &Sql, query: &str) -> Vec<i64> {
    sql.all(query, ())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<i64>("id").unwrap())
        .collect()
}

/// (a) A writer commits one row into each of two tables per transaction
/// while `backup now` runs; the restored copy holds both tables at one
/// moment: equal counts, no gap, every row committed before the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logical_backup_of_a_live_database_is_one_snapshot() {
    let env = env("live", "keep = 5");
    let sql = env.sql("pg").await;
    sql.exec(
        "CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL);
         CREATE TABLE ledger (id bigint PRIMARY KEY, event_id bigint NOT NULL);
         INSERT INTO events SELECT i, repeat(md5(i::text), 6) FROM generate_series(1, 100000) i;
         INSERT INTO ledger SELECT i, i FROM generate_series(1, 100000) i;",
    )
    .await
    .unwrap();

    let committed = Arc::new(AtomicI64::new(100_000));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sql, committed, stop) = (sql.clone(), committed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut id = 100_000i64;
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                sql.transaction(|tx| {
                    Box::pin(async move {
                        tx.run("INSERT INTO events (id, body) VALUES (?, 'w')", [id])
                            .await?;
                        tx.run("INSERT INTO ledger (id, event_id) VALUES (?, ?)", [id, id])
                            .await?;
                        Ok::<_, strata_host::Error>(())
                    })
                })
                .await
                .unwrap();
                committed.store(id, Ordering::SeqCst);
            }
            id
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let manager = BackupManager::new(&env.strata).unwrap();
    let before = committed.load(Ordering::SeqCst);
    let report = manager.backup_now().await.unwrap();
    let after = committed.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::SeqCst);
    let last = writer.await.unwrap();
    assert!(
        after > before + 10,
        "the writer made (almost) no progress while the backup ran ({before} -> {after})"
    );
    assert!(last > after);
    let m = &report.manifest;
    assert_eq!(m.snapshot, SnapshotKind::Jsonl);
    assert!(m.object_key.ends_with(".jsonl.zst"), "{}", m.object_key);
    let export = report
        .export
        .as_ref()
        .expect("a logical backup reports its export");
    let names: Vec<&str> = export.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["events", "ledger"]);

    let r = manager
        .restore_into(&Which::Timestamp(m.timestamp.clone()), "restored", false)
        .await
        .unwrap();
    assert!(r.replaced.is_empty());
    let dst = env.sql("restored").await;
    let events = ids(&dst, "SELECT id FROM events ORDER BY id").await;
    let ledger = ids(&dst, "SELECT event_id AS id FROM ledger ORDER BY id").await;
    let n = events.len() as i64;
    assert!(
        n >= before && n <= after,
        "the snapshot holds {n} events; {before} were committed when the backup started and {after} when it finished"
    );
    assert_eq!(events, (1..=n).collect::<Vec<_>>(), "a gap in the events");
    assert_eq!(ledger, events, "a transaction was split by the snapshot");
    // The bodies came back too, not just the keys.
    let body: String = dst
        .get("SELECT body FROM events WHERE id = 7", ())
        .await
        .unwrap()
        .unwrap()
        .get("body")
        .unwrap();
    assert_eq!(body.len(), 192);
    // list and verify see it as an ordinary backup.
    let listed = manager.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(manager.verify().await.unwrap()[0].problems.is_empty());
    drop((sql, dst));
    env.cleanup().await;
}

fn embedding(i: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| ((i * 31 + j * 7) % 997) as f32 / 997.0 - 0.5)
        .collect()
}

/// A table of many kinds and a collection on the source.
async fn fill(env: &Env, rows: usize) {
    let sql = env.sql("pg").await;
    sql.exec(
        "CREATE TABLE notes (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            body text NOT NULL, doc jsonb, flag boolean, price numeric, at timestamptz,
            raw bytea, score double precision, emb vector(3));
         CREATE INDEX notes_flag ON notes (flag);",
    )
    .await
    .unwrap();
    // Text with the characters array literals and JSON escape (quotes,
    // backslashes, braces, commas, the word NULL), NaN, NULLs of each kind.
    sql.exec(&format!(
        r#"INSERT INTO notes (body, doc, flag, price, at, raw, score, emb)
         SELECT 'note ' || i || ' ünï ''q'' "dq" back\slash {{a,b}} NULL', jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 3)),
                i % 2 = 0, (i * 1.25)::numeric, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
                CASE WHEN i % 5 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
                CASE WHEN i % 4 = 0 THEN 'NaN'::float8 ELSE i / 7.0 END,
                CASE WHEN i % 6 = 0 THEN NULL ELSE ('[' || i || ',1.5,-2e-7]')::vector END
         FROM generate_series(1, {rows}) i"#
    ))
    .await
    .unwrap();
    let v = env.strata.vectors().await.unwrap();
    v.create_collection("memories", 8, Metric::Cosine)
        .await
        .unwrap();
    let records: Vec<Record> = (0..300)
        .map(|i| {
            let r = Record::new(format!("m{i:03}"), embedding(i, 8))
                .metadata(json!({"kind": if i % 2 == 0 { "fact" } else { "event" }, "n": i, "nested": {"x": [i, "y"]}}));
            if i % 3 == 0 {
                r
            } else {
                r.text(format!("memory number {i} about tea"))
            }
        })
        .collect();
    v.upsert("memories", records).await.unwrap();
}

async fn all_records(
    v: &strata_host::Vectors,
    name: &str,
) -> Vec<(String, Vec<f32>, Option<serde_json::Value>, Option<String>)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = v
            .scan(name, cursor.as_deref(), 100, None, Include::ALL)
            .await
            .unwrap();
        for h in page.records {
            out.push((h.id, h.vector.unwrap(), h.metadata, h.text));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// (b) Collections round-trip: ids, vectors, metadata and text; and the
/// table with them (checksums equal, identity continues past the copied keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_collections_round_trip_into_postgres() {
    let env = env("roundtrip", "keep = 5");
    fill(&env, 2000).await;
    let manager = BackupManager::new(&env.strata).unwrap();
    let report = manager.backup_now().await.unwrap();
    let export = report.export.unwrap();
    assert_eq!(export.collections.len(), 1);
    assert_eq!(export.collections[0].read, 300);

    manager
        .restore_into(&Which::Latest, "restored", false)
        .await
        .unwrap();
    let (src, dst) = (env.sql("pg").await, env.sql("restored").await);
    let a = table_checksum(&src, "notes").await.unwrap();
    let b = table_checksum(&dst, "notes").await.unwrap();
    assert_eq!(a.rows, 2000);
    assert_eq!(a, b, "the restored table differs");
    // The identity sequence continues after the restored keys.
    let id = dst
        .run("INSERT INTO notes (body) VALUES ('new') RETURNING id", ())
        .await
        .unwrap()
        .last_insert_rowid;
    assert_eq!(id, Some(2001));

    let (vs, vd) = (
        env.strata.backend("pg").await.unwrap().vectors().unwrap(),
        env.strata
            .backend("restored")
            .await
            .unwrap()
            .vectors()
            .unwrap(),
    );
    let (ra, rb) = (
        all_records(&vs, "memories").await,
        all_records(&vd, "memories").await,
    );
    assert_eq!(ra.len(), 300);
    assert_eq!(ra, rb, "the restored collection differs");
    assert_eq!(rb[1].3.as_deref(), Some("memory number 1 about tea"));
    assert_eq!(rb[0].3, None);
    let stats = vd.stats("memories").await.unwrap().unwrap();
    assert_eq!((stats.dimension, stats.metric), (8, Metric::Cosine));
    drop((src, dst));
    env.cleanup().await;
}

async fn flip_byte(blobs: &strata_host::Blobs, key: &str) {
    let mut data = blobs.get(key).await.unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x01;
    blobs.put(key, data).await.unwrap();
}

/// The rows of `restored`'s `notes`, to prove it unchanged.
async fn notes_on(env: &Env, backend: &str) -> Vec<(i64, String)> {
    env.sql(backend)
        .await
        .all("SELECT id, body FROM notes ORDER BY id", ())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("id").unwrap(), r.get("body").unwrap()))
        .collect()
}

/// (c) A flipped byte in the object or in the manifest is caught by
/// verify and by restore, and the target's existing tables are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_caught_and_the_target_is_untouched() {
    let env = env("corrupt", "keep = 10");
    fill(&env, 3000).await;
    let manager = BackupManager::new(&env.strata).unwrap();
    let good = manager.backup_now().await.unwrap().manifest;
    let bad_object = manager.backup_now().await.unwrap().manifest;
    let bad_manifest = manager.backup_now().await.unwrap().manifest;
    assert!(
        manager
            .verify()
            .await
            .unwrap()
            .iter()
            .all(|v| v.problems.is_empty())
    );
    let blobs = env.strata.blobs().await.unwrap();
    flip_byte(&blobs, &bad_object.object_key).await;
    flip_byte(
        &blobs,
        &format!("backups/pg/{}.manifest.json", bad_manifest.timestamp),
    )
    .await;
    let verified = manager.verify().await.unwrap();
    let bad: Vec<(&str, String)> = verified
        .iter()
        .filter(|v| !v.problems.is_empty())
        .map(|v| (v.timestamp.as_str(), v.problems.join("; ")))
        .collect();
    assert_eq!(bad.len(), 2, "{verified:?}");
    assert_eq!(bad[0].0, bad_object.timestamp);
    assert!(bad[0].1.contains("sha256"), "{}", bad[0].1);
    assert_eq!(bad[1].0, bad_manifest.timestamp);
    assert!(bad[1].1.contains("manifest"), "{}", bad[1].1);

    // The target already holds a different `notes` (and no collection).
    let dst = env.sql("restored").await;
    dst.exec(
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);
         INSERT INTO notes VALUES (1, 'precious'), (2, 'data');",
    )
    .await
    .unwrap();
    let original = notes_on(&env, "restored").await;
    for ts in [&bad_object.timestamp, &bad_manifest.timestamp] {
        let e = manager
            .restore_into(&Which::Timestamp(ts.clone()), "restored", true)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(ts.as_str()), "{e}");
        assert_eq!(
            notes_on(&env, "restored").await,
            original,
            "the target changed"
        );
        let v = env
            .strata
            .backend("restored")
            .await
            .unwrap()
            .vectors()
            .unwrap();
        assert!(
            !v.exists("memories").await.unwrap(),
            "a collection was created"
        );
    }
    // The good one restores over it with --force.
    let r = manager
        .restore_into(&Which::Timestamp(good.timestamp.clone()), "restored", true)
        .await
        .unwrap();
    assert_eq!(r.replaced, ["table `notes`"]);
    assert_eq!(notes_on(&env, "restored").await.len(), 3000);
    drop(dst);
    env.cleanup().await;
}

/// (d) Existing tables or collections without --force: refused, naming
/// them, nothing changed; with --force: replaced. A restore that fails
/// half-way (the second table cannot be created) rolls the first back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_items_need_force_and_a_failed_restore_changes_nothing() {
    let env = env("force", "keep = 10");
    fill(&env, 500).await;
    let src = env.sql("pg").await;
    src.exec(
        "CREATE TABLE zz_last (id bigint PRIMARY KEY, v text);
         INSERT INTO zz_last VALUES (1, 'one');",
    )
    .await
    .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    manager.backup_now().await.unwrap();

    let dst = env.sql("restored").await;
    dst.exec(
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);
         INSERT INTO notes VALUES (1, 'precious');",
    )
    .await
    .unwrap();
    let vd = env
        .strata
        .backend("restored")
        .await
        .unwrap()
        .vectors()
        .unwrap();
    vd.create_collection("memories", 8, Metric::Cosine)
        .await
        .unwrap();
    vd.upsert("memories", [Record::new("keep-me", embedding(1, 8))])
        .await
        .unwrap();
    let original = notes_on(&env, "restored").await;

    let e = manager
        .restore_into(&Which::Latest, "restored", false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("table `notes`")
            && msg.contains("collection `memories`")
            && msg.contains("--force"),
        "{msg}"
    );
    assert!(!msg.contains("zz_last"), "{msg}");
    assert_eq!(notes_on(&env, "restored").await, original);
    assert!(!dst_has(&dst, "zz_last").await, "a table was created");
    assert_eq!(vd.count("memories", None).await.unwrap(), 1);

    // A view named like the backup's last table: --force drops tables, but
    // `DROP TABLE` on a view fails; the whole table transaction rolls back.
    dst.exec("CREATE VIEW zz_last AS SELECT 1 AS id")
        .await
        .unwrap();
    let e = manager
        .restore_into(&Which::Latest, "restored", true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("zz_last"), "{e}");
    assert_eq!(
        notes_on(&env, "restored").await,
        original,
        "notes was not rolled back"
    );
    assert_eq!(
        vd.count("memories", None).await.unwrap(),
        1,
        "collections were touched"
    );
    dst.exec("DROP VIEW zz_last").await.unwrap();

    // With --force everything is replaced.
    let r = manager
        .restore_into(&Which::Latest, "restored", true)
        .await
        .unwrap();
    assert_eq!(r.replaced, ["table `notes`", "collection `memories`"]);
    assert_eq!(notes_on(&env, "restored").await.len(), 500);
    assert_eq!(vd.count("memories", None).await.unwrap(), 300);
    assert!(
        vd.fetch("memories", &["keep-me"], Include::ALL)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        table_checksum(&src, "zz_last").await.unwrap(),
        table_checksum(&dst, "zz_last").await.unwrap()
    );
    drop((src, dst));
    env.cleanup().await;
}

async fn dst_has(sql: &Sql, table: &str) -> bool {
    sql.get(
        "SELECT 1 AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relname = ?",
        [table],
    )
    .await
    .unwrap()
    .is_some()
}

/// (e) A Postgres logical backup restored into SQLite (cross-backend):
/// same checksums for the table, same records in the collection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_restores_into_sqlite() {
    let env = env("tolite", "keep = 5\ncompression = \"gzip\"");
    fill(&env, 1500).await;
    // SQLite stores a NaN REAL as NULL: not a value it can round-trip.
    env.sql("pg")
        .await
        .exec("UPDATE notes SET score = -1 WHERE score = 'NaN'")
        .await
        .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let m = manager.backup_now().await.unwrap().manifest;
    assert!(m.object_key.ends_with(".jsonl.gz"), "{}", m.object_key);
    manager
        .restore_into(&Which::Latest, "lite", false)
        .await
        .unwrap();
    let (src, lite) = (env.sql("pg").await, env.sql("lite").await);
    let a = table_checksum(&src, "notes").await.unwrap();
    let b = table_checksum(&lite, "notes").await.unwrap();
    assert_eq!(a.rows, 1500);
    assert_eq!(a, b, "the table differs on SQLite");
    let (vs, vl) = (
        env.strata.backend("pg").await.unwrap().vectors().unwrap(),
        env.strata.backend("lite").await.unwrap().vectors().unwrap(),
    );
    assert_eq!(
        collection_checksum(&vs, "memories").await.unwrap(),
        collection_checksum(&vl, "memories").await.unwrap()
    );
    // A second restore without --force is refused (the tables exist now).
    let e = manager
        .restore_into(&Which::Latest, "lite", false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    drop((src, lite));
    env.cleanup().await;
}

/// The two kinds of backup name the restore flag that fits them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_backup_names_the_right_restore_flag() {
    let env = env("flags", "keep = 5");
    fill(&env, 10).await;
    let manager = BackupManager::new(&env.strata).unwrap();
    manager.backup_now().await.unwrap();
    let to = env.dir.path().join("x.sqlite");
    let e = manager
        .restore(&Which::Latest, Some(&to), false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("--into"), "{e}");
    assert!(!to.exists());
    // Without a target either (the source has no file): the same hint.
    let e = manager
        .restore(&Which::Latest, None, false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--into"), "{e}");

    // A SQLite file backup restored into a backend names --to.
    let lite = env.sql("lite").await;
    lite.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let mut settings = manager.settings().clone();
    settings.source = Some("lite".into());
    let lite_manager = BackupManager::new(&env.strata)
        .unwrap()
        .with_settings(settings);
    let m = lite_manager.backup_now().await.unwrap().manifest;
    assert_eq!(m.snapshot, SnapshotKind::Sqlite);
    let e = lite_manager
        .restore_into(&Which::Latest, "restored", false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("--to PATH"), "{e}");
    drop(lite);
    env.cleanup().await;
}

/// A SQLite backup's manifest written here independently of the library:
/// the 13 fields strata wrote before logical backups existed, in the same
/// order, checksum over the compact JSON with `manifest_sha256` empty;
/// with `checked`, the `"integrity_check": "ok"` that strata has written
/// since it checks snapshots at backup time, after `snapshot_sha256`.
fn sqlite_manifest(m: &strata_host::backup::Manifest, checked: bool) -> Vec<u8> {
    let fields = |sha: &str| {
        let mut o = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            o.insert(k.into(), v);
        };
        put("format", json!(m.format));
        put("timestamp", json!(m.timestamp));
        put("backend", json!(m.backend));
        put("plugin", json!(m.plugin));
        put("strata_version", json!(m.strata_version));
        put("compression", json!(m.compression));
        put("object_key", json!(m.object_key));
        put("object_size", json!(m.object_size));
        put("object_sha256", json!(m.object_sha256));
        put("snapshot_size", json!(m.snapshot_size));
        put("snapshot_sha256", json!(m.snapshot_sha256));
        if checked {
            put("integrity_check", json!("ok"));
        }
        put("duration_ms", json!(m.duration_ms));
        put("manifest_sha256", json!(sha));
        serde_json::Value::Object(o)
    };
    let sha = hex::encode(Sha256::digest(serde_json::to_vec(&fields("")).unwrap()));
    let mut out = serde_json::to_vec_pretty(&fields(&sha)).unwrap();
    out.push(b'\n');
    out
}

/// (f) SQLite backups keep the old manifest format plus the record of the
/// backup-time check, and a manifest in the old format (no record)
/// verifies and restores, checked at restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_sqlite_manifests_still_verify_and_restore() {
    let env = env("oldmanifest", "keep = 5\nsource = \"lite\"");
    let lite = env.sql("lite").await;
    lite.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);")
        .await
        .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    let m = manager.backup_now().await.unwrap().manifest;
    let blobs = env.strata.blobs().await.unwrap();
    let key = format!("backups/lite/{}.manifest.json", m.timestamp);
    let stored = blobs.get(&key).await.unwrap();
    assert_eq!(
        String::from_utf8(stored.clone()).unwrap(),
        String::from_utf8(sqlite_manifest(&m, true)).unwrap(),
        "a SQLite manifest is no longer the old format plus `integrity_check`"
    );
    // Replace it by an independently written old-format manifest.
    blobs.put(&key, sqlite_manifest(&m, false)).await.unwrap();
    let verified = manager.verify().await.unwrap();
    assert!(verified[0].problems.is_empty(), "{verified:?}");
    let to = env.dir.path().join("back.sqlite");
    let r = manager
        .restore(&Which::Latest, Some(&to), false)
        .await
        .unwrap();
    assert_eq!(r.manifest.snapshot, SnapshotKind::Sqlite);
    assert!(!r.checked_at_backup, "no record: checked at restore");
    assert!(to.exists());
    drop(lite);
    env.cleanup().await;
}

/// Schedule, retention (prune) and verify treat logical backups like files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_and_retention_keep_exactly_keep_logical_backups() {
    let env = env("retention", "keep = 2\ninterval = \"200ms\"");
    fill(&env, 100).await;
    let manager = BackupManager::new(&env.strata).unwrap();
    let mut made = Vec::new();
    manager
        .run_schedule(Some(3), |r| {
            let r = r.as_ref().expect("a scheduled backup failed");
            made.push(r.manifest.timestamp.clone());
        })
        .await;
    assert_eq!(made.len(), 3);
    let kept = manager.list().await.unwrap();
    let stamps: Vec<&str> = kept.iter().map(|b| b.timestamp.as_str()).collect();
    assert_eq!(
        stamps,
        [made[1].as_str(), made[2].as_str()],
        "the newest 2 are kept"
    );
    for b in &kept {
        assert!(b.manifest_key.is_some());
        assert!(b.object.as_ref().unwrap().key.ends_with(".jsonl.zst"));
    }
    assert!(manager.prune().await.unwrap().is_empty());
    assert!(
        manager
            .verify()
            .await
            .unwrap()
            .iter()
            .all(|v| v.problems.is_empty())
    );
    env.cleanup().await;
}

/// Tables with exact Postgres types, defaults, CHECK constraints, a
/// foreign key (to a table later in name order), a serial key, and a
/// keyless table holding duplicate rows, `text[]` and `interval` values.
async fn make_typed(sql: &Sql) {
    sql.exec(
        r#"CREATE TABLE zowners (id integer PRIMARY KEY, name varchar(40) NOT NULL DEFAULT 'anon');
         CREATE TABLE items (
             id serial PRIMARY KEY,
             owner integer REFERENCES zowners(id) ON DELETE CASCADE,
             qty integer NOT NULL DEFAULT 1 CONSTRAINT qty_positive CHECK (qty > 0),
             small smallint,
             price numeric(12,4),
             weight real,
             ratio double precision DEFAULT 0.5,
             doc json,
             docb jsonb,
             at timestamp(3) with time zone DEFAULT now(),
             tags text[],
             wait interval,
             CHECK (price IS NULL OR price >= 0)
         );
         CREATE TABLE loose (x text, n integer, tags text[], wait interval);
         CREATE TABLE days (id bigint PRIMARY KEY, day date, stamp timestamp, stampz timestamptz);
         INSERT INTO days VALUES
             (1, 'infinity', 'infinity', 'infinity'),
             (2, '-infinity', '-infinity', '-infinity'),
             (3, '0044-03-15 BC', '0001-12-31 23:59:59.5 BC', '0001-01-01 00:00:00+00 BC'),
             (4, '4713-01-01 BC', '0001-01-01 00:00:00', '2024-02-29 12:00:00+00'),
             (5, NULL, NULL, NULL);
         CREATE TABLE specials (id bigint PRIMARY KEY, n numeric, f float8, r real, b bytea, u uuid, t text);
         INSERT INTO specials VALUES
             (1, 'NaN', 'Infinity', 'NaN', '', 'ffffffff-ffff-ffff-ffff-ffffffffffff', ''),
             (2, 'Infinity', '-Infinity', '-Infinity', '\x00ff', '00000000-0000-0000-0000-000000000000', E'tab\there'),
             (3, '-Infinity', 'NaN', 'Infinity', NULL, NULL, NULL),
             (4, '-0.000000000000000000001', '-0', '1e-45', '\x5c', NULL, 'ünï ✓');
         INSERT INTO zowners VALUES (1, 'ann'), (2, 'bob');
         CREATE TABLE priced (
             id int PRIMARY KEY,
             net numeric(10,2) NOT NULL,
             gross numeric(12,3) GENERATED ALWAYS AS (net * 1.2) STORED,
             label text GENERATED ALWAYS AS ('#' || id::text) VIRTUAL
         );
         INSERT INTO priced (id, net) VALUES (1, 10), (2, 2.5), (3, 0);
         INSERT INTO items (owner, qty, small, price, weight, doc, docb, tags, wait) VALUES
             (1, 3, 7, 12.5, 0.1, '{"b": 1,  "a": [2, 3]}', '{"b": 1, "a": 2}',
              ARRAY['x', 'y z', 'q"uote', NULL], interval '1 day 02:03:04.5'),
             (2, 1, -2, 99999999.1234, -1.5, '[]', 'null', '{}', interval '-3 months'),
             (NULL, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
         INSERT INTO loose VALUES ('a', 1, ARRAY['p'], interval '5 minutes'),
             ('a', 1, ARRAY['p'], interval '5 minutes'), (NULL, NULL, NULL, NULL), ('b', 2, '{}', '0');"#,
    )
    .await
    .unwrap();
}

/// Every column's exact type, default and NOT NULL, and every constraint,
/// of the backend's schema, as text lines.
async fn shape(sql: &Sql) -> Vec<String> {
    let mut out: Vec<String> = sql
        .all(
            "SELECT c.relname::text || '.' || a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) \
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END \
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') \
               || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END \
               || CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END AS line \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 \
               AND NOT a.attisdropped AND c.relname::text NOT LIKE 'strata%' AND c.relname <> 'moods' \
             UNION ALL \
             SELECT c.relname::text || ' constraint ' || co.conname::text || ' ' || pg_get_constraintdef(co.oid) \
             FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND co.contype IN ('c', 'f', 'p') \
               AND c.relname::text NOT LIKE 'strata%'",
            (),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>("line").unwrap())
        .collect();
    // A serial key comes back as an identity column: the same values and
    // behaviour without a sequence owned by the source schema.
    for l in &mut out {
        if l.starts_with("items.id ") {
            *l = "items.id integer not null (auto)".into();
        }
    }
    out.sort();
    out
}

async fn texts(sql: &Sql, query: &str) -> Vec<String> {
    sql.all(query, ())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String>("t").unwrap_or_else(|_| "NULL".into()))
        .collect()
}

const ITEMS: &str = "SELECT concat_ws('|', id, owner, qty, small, price, weight, ratio, doc, docb, tags, wait) AS t \
                     FROM items ORDER BY id";
const SPECIALS: &str =
    "SELECT concat_ws('|', id, n, f, r, encode(b, 'hex'), u, t) AS t FROM specials ORDER BY id";
const DAYS: &str = "SELECT concat_ws('|', id, day, stamp, stampz) AS t FROM days ORDER BY id";
const PRICED: &str = "SELECT concat_ws('|', id, net, gross, label) AS t FROM priced ORDER BY id";
const LOOSE: &str = "SELECT concat_ws('|', x, n, tags, wait) AS t FROM loose ORDER BY 1";

/// Issue 16 #11 and "whole-database Postgres backups are refused": a
/// Postgres → Postgres logical backup and restore keeps every column's
/// exact type (integer, smallint, real, numeric(12,4), varchar(40), json
/// vs jsonb, timestamp(3) with time zone, text[], interval), DEFAULTs,
/// CHECK constraints and foreign keys, and backs up a table without a
/// primary key (duplicate rows included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_restores_exact_types_constraints_and_keyless_tables() {
    let env = env("exact", "keep = 5");
    let src = env.sql("pg").await;
    make_typed(&src).await;
    // A type of the source's own schema: restored as text (the target
    // schema has no such type).
    src.exec(
        "CREATE TYPE mood AS ENUM ('calm', 'busy');
         CREATE TABLE moods (id int PRIMARY KEY, m mood DEFAULT 'calm', ms mood[]);
         INSERT INTO moods VALUES (1, 'busy', '{calm,busy}'), (2, NULL, NULL);",
    )
    .await
    .unwrap();
    let manager = BackupManager::new(&env.strata).unwrap();
    manager.backup_now().await.unwrap();
    manager
        .restore_into(&Which::Latest, "restored", false)
        .await
        .unwrap();
    let dst = env.sql("restored").await;
    assert_eq!(shape(&src).await, shape(&dst).await);
    let moods = "SELECT concat_ws('|', id, m, ms) AS t FROM moods ORDER BY id";
    assert_eq!(texts(&src, moods).await, texts(&dst, moods).await);
    assert_eq!(texts(&src, ITEMS).await, texts(&dst, ITEMS).await);
    assert_eq!(texts(&src, LOOSE).await, texts(&dst, LOOSE).await);
    // Generated columns come back generated (shape shows the expression
    // as the default and the kind), computed by the target.
    assert_eq!(texts(&src, PRICED).await, texts(&dst, PRICED).await);
    dst.exec("UPDATE priced SET net = 100 WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(
        texts(
            &dst,
            "SELECT concat_ws('|', gross, label) AS t FROM priced WHERE id = 3"
        )
        .await,
        ["120.000|#3"]
    );
    // Issue 16 #4: infinity and BC dates restore (they used to verify and
    // then fail: `infinity+00:00`, `0001-01-01 BC` read as `0000-01-01`).
    let days = texts(&src, DAYS).await;
    assert!(days[2].contains("0044-03-15 BC"), "{days:?}");
    assert_eq!(days, texts(&dst, DAYS).await);
    assert_eq!(texts(&src, SPECIALS).await, texts(&dst, SPECIALS).await);
    // Into SQLite the values are kept as Postgres writes them (not as
    // `5881610-07-11`), and the keyless table and text forms come along.
    manager
        .restore_into(&Which::Latest, "lite", false)
        .await
        .unwrap();
    let lite = env.sql("lite").await;
    assert_eq!(
        texts(
            &lite,
            "SELECT day || '|' || stampz AS t FROM days WHERE id IN (1, 3) ORDER BY id"
        )
        .await,
        [
            "infinity|infinity",
            "0044-03-15 BC|0001-01-01 00:00:00+00:00 BC"
        ]
    );
    assert_eq!(
        texts(&lite, "SELECT CAST(count(*) AS TEXT) AS t FROM loose").await,
        ["4"]
    );
    // Across dialects a generated column is a plain one holding the values.
    assert_eq!(
        texts(
            &lite,
            "SELECT id || '|' || net || '|' || gross || '|' || label AS t FROM priced ORDER BY id"
        )
        .await,
        ["1|10.00|12.000|#1", "2|2.50|3.000|#2", "3|0.00|0.000|#3"]
    );
    // json keeps its text as written (jsonb would reorder and respace it).
    assert_eq!(
        texts(&dst, "SELECT doc::text AS t FROM items WHERE id = 1").await,
        vec![r#"{"b": 1,  "a": [2, 3]}"#.to_string()]
    );
    // The constraints work on the restored copy.
    let e = dst
        .exec("INSERT INTO items (owner, qty) VALUES (1, 0)")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("qty_positive"), "{e}");
    let e = dst
        .exec("INSERT INTO items (owner) VALUES (42)")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("foreign key"), "{e}");
    dst.exec("DELETE FROM zowners WHERE id = 2").await.unwrap();
    assert_eq!(
        texts(&dst, "SELECT count(*)::text AS t FROM items").await,
        ["2"]
    );
    drop((src, dst));
    env.cleanup().await;
}

/// Issue 16 #11: `migrate` from Postgres to Postgres keeps exact types,
/// defaults, CHECK constraints and foreign keys; a re-run (json columns
/// included) writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_to_postgres_migration_keeps_exact_types_and_constraints() {
    let env = env("exactmig", "keep = 5");
    let src = env.sql("pg").await;
    make_typed(&src).await;
    src.exec("DROP TABLE loose").await.unwrap();
    let (from, to) = (
        env.strata.backend("pg").await.unwrap(),
        env.strata.backend("restored").await.unwrap(),
    );
    let options = strata_host::migrate::MigrateOptions::new().collections(Vec::<String>::new());
    let report = strata_host::migrate::migrate(&from, &to, &options)
        .await
        .unwrap();
    assert_eq!(report.tables.len(), 5);
    let dst = env.sql("restored").await;
    assert_eq!(texts(&src, PRICED).await, texts(&dst, PRICED).await);
    assert_eq!(texts(&src, SPECIALS).await, texts(&dst, SPECIALS).await);
    assert_eq!(shape(&src).await, shape(&dst).await);
    assert_eq!(texts(&src, ITEMS).await, texts(&dst, ITEMS).await);
    // `days` goes through the plugin's binary COPY (every type it encodes).
    assert_eq!(texts(&src, DAYS).await, texts(&dst, DAYS).await);
    let again = strata_host::migrate::migrate(&from, &to, &options)
        .await
        .unwrap();
    assert!(
        again.tables.iter().all(|t| t.written == 0),
        "{:?}",
        again.tables
    );
    drop((src, dst));
    env.cleanup().await;
}

/// Issue 16 #4, second half: `verify` checks that a backup is what was
/// uploaded; `trial_restore` proves it restores. A backup holding every
/// special value restores into a scratch backend with every row counted;
/// one whose CHECK constraint calls a function of the source's schema
/// passes `verify` (its checksums are right) and fails the trial, naming
/// the function. The trial refuses to run into the source itself or
/// without a scratch backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_restore_proves_what_checksums_cannot() {
    let env = env("trial", "keep = 5");
    let src = env.sql("pg").await;
    make_typed(&src).await;
    let manager = BackupManager::new(&env.strata).unwrap();
    manager.backup_now().await.unwrap();

    for (scratch, wanted) in [
        (None, "scratch backend"),
        (Some("pg"), "source `pg` itself"),
    ] {
        let e = manager
            .trial_restore(&Which::Latest, scratch)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(wanted), "{e}");
    }
    let trial = manager
        .trial_restore(&Which::Latest, Some("restored"))
        .await
        .unwrap();
    assert!(trial.problems.is_empty(), "{:?}", trial.problems);
    assert_eq!(trial.into, "backend restored");
    let held: Vec<(&str, &str, u64)> = trial
        .items
        .iter()
        .map(|(k, n, r)| (*k, n.as_str(), *r))
        .collect();
    for want in [
        ("table", "days", 5),
        ("table", "specials", 4),
        ("table", "items", 3),
        ("table", "loose", 4),
        ("table", "zowners", 2),
    ] {
        assert!(held.contains(&want), "{want:?} not in {held:?}");
    }
    let dst = env.sql("restored").await;
    assert_eq!(texts(&src, DAYS).await, texts(&dst, DAYS).await);
    assert_eq!(texts(&src, SPECIALS).await, texts(&dst, SPECIALS).await);

    // A constraint the target cannot have: checksums pass, the trial fails.
    src.exec(
        "CREATE FUNCTION is_even(n int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT n % 2 = 0';
         CREATE TABLE evens (id int PRIMARY KEY, n int CONSTRAINT even CHECK (is_even(n)));
         INSERT INTO evens VALUES (1, 2), (2, 4);",
    )
    .await
    .unwrap();
    manager.backup_now().await.unwrap();
    let verified = manager.verify().await.unwrap();
    assert_eq!(verified.len(), 2);
    assert!(
        verified.iter().all(|v| v.problems.is_empty()),
        "{verified:?}"
    );
    let trial = manager
        .trial_restore(&Which::Latest, Some("restored"))
        .await
        .unwrap();
    assert!(
        trial.problems.iter().any(|p| p.contains("is_even")),
        "{:?}",
        trial.problems
    );
    drop((src, dst));
    env.cleanup().await;
}
