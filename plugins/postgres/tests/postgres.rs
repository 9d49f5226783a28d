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

/// Issue 16 #15: a refused port is `connection` at once, not a `timeout`
/// after the whole connect timeout (sqlx's pool retries a refused
/// connection until it gives up).
#[tokio::test]
async fn a_refused_port_fails_fast_as_connection() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback port nothing listens on, with the default 10 s timeout.
    let s = strata(
        dir.path(),
        &[(
            "gone",
            "{ url = \"postgres://strata:strata@127.0.0.1:9/strata\" }".into(),
        )],
    );
    let started = Instant::now();
    let err = s.backend("gone").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("backend `gone`"), "{err}");
}

/// Issue 16 #15: a URL of another database is refused as `invalid_config`
/// naming the `url` key (and without its password).
#[tokio::test]
async fn a_url_of_another_database_is_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let s = strata(
        dir.path(),
        &[(
            "my",
            "{ url = \"mysql://root:hunter2@127.0.0.1:3306/app\" }".into(),
        )],
    );
    let err = s.backend("my").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    let text = err.to_string();
    assert!(text.contains("url"), "{text}");
    assert!(text.contains("mysql"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
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

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

#[tokio::test]
async fn two_agents_in_two_schemas_have_separate_collections() {
    use strata_host::{Metric, Query, Record};
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    let s = strata(
        dir.path(),
        &[
            (
                "a",
                format!("{{ url = {url:?}, schema = \"agent_a_vec\" }}"),
            ),
            (
                "b",
                format!("{{ url = {url:?}, schema = \"agent_b_vec\" }}"),
            ),
        ],
    );
    let (a, b) = (
        s.vectors_backend("a").await.unwrap(),
        s.vectors_backend("b").await.unwrap(),
    );
    for v in [&a, &b] {
        v.drop_collection("memories").await.unwrap();
    }
    a.create_collection("memories", 3, Metric::Cosine)
        .await
        .unwrap();
    // Same name, other dimension: a different collection in the other schema.
    b.create_collection("memories", 2, Metric::Euclidean)
        .await
        .unwrap();
    a.upsert("memories", [Record::new("secret", vec![1.0, 0.0, 0.0])])
        .await
        .unwrap();
    b.upsert(
        "memories",
        [
            Record::new("note1", vec![1.0, 0.0]),
            Record::new("note2", vec![0.0, 1.0]),
        ],
    )
    .await
    .unwrap();
    assert_eq!(a.count("memories", None).await.unwrap(), 1);
    assert_eq!(b.count("memories", None).await.unwrap(), 2);
    let hits = b
        .query("memories", &Query::new(vec![1.0, 0.0]).top_k(10))
        .await
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["note1", "note2"]);
    assert!(
        b.fetch("memories", &["secret"], Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    let listed: Vec<(String, u32)> = a
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.dimension))
        .collect();
    assert_eq!(listed, [("memories".to_string(), 3)]);
    for v in [&a, &b] {
        assert!(v.drop_collection("memories").await.unwrap());
    }
    s.close().await.unwrap();
}

#[tokio::test]
async fn queries_use_the_hnsw_index_and_ef_search_per_query() {
    use strata_host::{Metric, Query, Record};
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    let schema = unique("hnsw_plan");
    let s = strata(
        dir.path(),
        &[("pg", format!("{{ url = {url:?}, schema = {schema:?} }}"))],
    );
    let v = s.vectors_backend("pg").await.unwrap();
    let sql = s.sql_backend("pg").await.unwrap();
    v.create_collection("plan", 4, Metric::Dot).await.unwrap();
    let records: Vec<Record> = (0..2_000)
        .map(|i| {
            let x = i as f32;
            Record::new(
                format!("r{i}"),
                vec![x.sin(), x.cos(), (x * 0.3).sin(), 1.0],
            )
        })
        .collect();
    // Below hnsw_threshold (1,000): no index yet, queries are exact.
    let (first, rest) = records.split_at(600);
    v.upsert("plan", first.to_vec()).await.unwrap();
    let stats = v.stats("plan").await.unwrap().unwrap();
    assert_eq!(stats.details["index"], "exact", "{:?}", stats.details);
    // Past it: the next query (or stats) builds the index.
    v.upsert("plan", rest.to_vec()).await.unwrap();
    let stats = v.stats("plan").await.unwrap().unwrap();
    assert_eq!(stats.details["index"], "hnsw", "{:?}", stats.details);
    assert!(stats.details["index_bytes"].as_i64().unwrap() > 0);
    sql.exec("ANALYZE strata_vec_plan").await.unwrap();
    // The statement shape the plugin issues, planned by the server with
    // sequential scans priced out (on 2,000 rows the planner may rightly
    // prefer scan + sort): an index scan on the HNSW index, whose operator
    // class is the inner product's.
    let tx = sql.begin().await.unwrap();
    tx.exec("SET LOCAL enable_seqscan = off").await.unwrap();
    let plan: Vec<String> = tx
        .all(
            "EXPLAIN SELECT id FROM strata_vec_plan ORDER BY embedding <#> '[1,0,0,1]'::vector LIMIT 10",
            (),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get_idx::<String>(0).unwrap())
        .collect();
    tx.rollback().await.unwrap();
    assert!(
        plan.iter()
            .any(|l| l.contains("Index Scan using strata_vec_plan_hnsw")),
        "{plan:#?}"
    );
    let opclass = sql
        .get(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'strata_vec_plan_hnsw'",
            (),
        )
        .await
        .unwrap()
        .unwrap()
        .get_idx::<String>(0)
        .unwrap();
    assert!(opclass.contains("vector_ip_ops"), "{opclass}");
    // ef_search per query: accepted in range, refused outside it.
    let q = Query::new(vec![1.0, 0.0, 0.0, 1.0]).top_k(5);
    let hits = v
        .query(
            "plan",
            &q.clone().options(serde_json::json!({"ef_search": 400})),
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 5);
    let exact = v
        .query(
            "plan",
            &q.clone().options(serde_json::json!({"exact": true})),
        )
        .await
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| &h.id).collect::<Vec<_>>(),
        exact.iter().map(|h| &h.id).collect::<Vec<_>>()
    );
    let err = v
        .query("plan", &q.options(serde_json::json!({"ef_search": 0})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("ef_search"), "{err}");
    sql.exec(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_database_without_pgvector_is_a_clear_error() {
    use strata_host::Metric;
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    // A role that may not install extensions, owning a database that has none.
    let (role, db) = (unique("plain_role"), unique("novector_db"));
    let s = strata(dir.path(), &[("admin", format!("{{ url = {url:?} }}"))]);
    let admin = s.sql_backend("admin").await.unwrap();
    admin
        .exec(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'plain' NOSUPERUSER"
        ))
        .await
        .unwrap();
    admin
        .exec(&format!("CREATE DATABASE {db} OWNER {role}"))
        .await
        .unwrap();
    let base =
        url.rsplit_once('/')
            .unwrap()
            .0
            .replacen("strata:strata@", &format!("{role}:plain@"), 1);
    let plain = strata(
        dir.path(),
        &[("plain", format!("{{ url = {:?} }}", format!("{base}/{db}")))],
    );
    // Known at open: that backend claims the SQL capabilities only, while
    // one on a database with pgvector claims the vector ones too. (Opened
    // in process through the kit's `Plugin` trait: the host does not show
    // a backend's own capabilities yet.)
    let capabilities = |url: String| async move {
        use strata_plugin::{OpenContext, Plugin};
        let config = serde_json::from_value(serde_json::json!({ "url": url })).unwrap();
        let backend = strata_postgres::PostgresPlugin::open(config, OpenContext::default())
            .await
            .unwrap();
        let capabilities = backend.capabilities();
        backend.close().await.unwrap();
        capabilities
    };
    let without = capabilities(format!("{base}/{db}")).await;
    assert!(
        without.iter().any(|c| c == "sql.transactions"),
        "{without:?}"
    );
    assert!(
        !without.iter().any(|c| c.starts_with("vector.")),
        "{without:?}"
    );
    let with = capabilities(url.clone()).await;
    assert!(with.iter().any(|c| c == "vector.ann"), "{with:?}");

    let v = plain.vectors_backend("plain").await.unwrap();
    let err = v
        .create_collection("c", 3, Metric::Cosine)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("pgvector"), "{err}");
    // The SQL contract keeps working on that server.
    let sql = plain.sql_backend("plain").await.unwrap();
    assert_eq!(
        sql.get("SELECT 1 + 1", ())
            .await
            .unwrap()
            .unwrap()
            .get_idx::<i64>(0)
            .unwrap(),
        2
    );
    plain.close().await.unwrap();
    admin
        .exec(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
    admin.exec(&format!("DROP ROLE {role}")).await.unwrap();
    s.close().await.unwrap();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests through scripts/test (scripts/servers/pgbouncer.sh env exports it)")
    })
}

#[tokio::test]
async fn tls_modes_verify_the_server_and_never_downgrade() {
    let dir = tempfile::tempdir().unwrap();
    // PgBouncer terminates TLS in front of the test server, with a
    // certificate for 127.0.0.1 signed by the test CA (scripts/servers/pgbouncer.sh).
    let (tls_url, ca, plain_url) = (env("PGBOUNCER_TLS_URL"), env("PG_SSL_ROOT_CERT"), url());
    let s = strata(
        dir.path(),
        &[
            (
                "verified",
                format!(
                    "{{ url = {tls_url:?}, ssl_mode = \"verify-full\", ssl_root_cert = {ca:?}, connect_timeout_ms = 5000 }}"
                ),
            ),
            (
                "untrusted",
                format!(
                    "{{ url = {tls_url:?}, ssl_mode = \"verify-ca\", connect_timeout_ms = 5000 }}"
                ),
            ),
            (
                "required",
                format!(
                    "{{ url = {plain_url:?}, ssl_mode = \"require\", connect_timeout_ms = 5000 }}"
                ),
            ),
            (
                "missing_ca",
                format!(
                    "{{ url = {tls_url:?}, ssl_mode = \"verify-full\", ssl_root_cert = \"/nonexistent/ca.pem\" }}"
                ),
            ),
        ],
    );
    // The right CA: connected over verified TLS, SQL works.
    let sql = s.sql_backend("verified").await.unwrap();
    let two = sql.get("SELECT 1 + 1 AS n", ()).await.unwrap().unwrap();
    assert_eq!(two.get::<i64>("n").unwrap(), 2);
    // The system's roots do not trust the test CA: refused, saying why.
    let err = s.backend("untrusted").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // `require` against a server without TLS fails instead of going plain.
    let err = s.backend("required").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    // A CA file that does not exist is a config error naming it.
    let err = s.backend("missing_ca").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    s.close().await.unwrap();
}

/// The index build needs the table's SHARE lock. A transaction of the same
/// task that wrote the collection (on another pooled connection) holds it
/// off: a wait the server cannot see as a deadlock. The build gives up
/// after a bounded wait, the query answers exactly, and the first query
/// after the commit builds the index.
#[tokio::test]
async fn an_index_build_behind_an_open_write_answers_exactly_instead_of_waiting() {
    use strata_host::{Metric, Query, Record};
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    let schema = unique("hnsw_lock");
    let s = strata(
        dir.path(),
        &[("pg", format!("{{ url = {url:?}, schema = {schema:?} }}"))],
    );
    let v = s.vectors_backend("pg").await.unwrap();
    let sql = s.sql_backend("pg").await.unwrap();
    v.create_collection("held", 3, Metric::Euclidean)
        .await
        .unwrap();
    let records: Vec<Record> = (0..1_200)
        .map(|i| Record::new(format!("r{i}"), vec![i as f32, 0.0, 1.0]))
        .collect();
    v.upsert("held", records).await.unwrap();

    let tx = sql.begin().await.unwrap();
    tx.run("DELETE FROM strata_vec_held WHERE id = ?", ["r0"])
        .await
        .unwrap();
    let started = Instant::now();
    let hits = v
        .query("held", &Query::new(vec![0.0, 0.0, 1.0]).top_k(3))
        .await
        .unwrap();
    // The transaction's delete is not visible: r0 is still the nearest.
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["r0", "r1", "r2"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the query waited {:?}",
        started.elapsed()
    );
    let stats = v.stats("held").await.unwrap().unwrap();
    assert_eq!(stats.details["index"], "exact", "{:?}", stats.details);

    tx.commit().await.unwrap();
    let stats = v.stats("held").await.unwrap().unwrap();
    assert_eq!(stats.details["index"], "hnsw", "{:?}", stats.details);
    let hits = v
        .query("held", &Query::new(vec![0.0, 0.0, 1.0]).top_k(2))
        .await
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2"]);
    sql.exec(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    s.close().await.unwrap();
}

/// Closing waits for connections still in use, as long as a connection is
/// waited for (`connect_timeout_ms`), then says `busy`: a close awaited
/// while the caller's own transaction is open used to wait for itself
/// forever. The transaction can still finish; new work is refused.
#[tokio::test]
async fn close_beside_an_open_transaction_is_busy_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    let schema = unique("close_held");
    let s = strata(
        dir.path(),
        &[(
            "pg",
            format!("{{ url = {url:?}, schema = {schema:?}, connect_timeout_ms = 1000 }}"),
        )],
    );
    let sql = s.sql_backend("pg").await.unwrap();
    sql.exec("CREATE TABLE t (x int)").await.unwrap();
    let tx = sql.begin().await.unwrap();
    tx.run("INSERT INTO t VALUES (1)", ()).await.unwrap();
    let started = Instant::now();
    let err = sql.close().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert!(err.to_string().contains("connect_timeout_ms"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    tx.commit().await.unwrap();
    let err = sql.run("INSERT INTO t VALUES (2)", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");

    // The commit landed.
    let s2 = strata(
        dir.path(),
        &[("pg", format!("{{ url = {url:?}, schema = {schema:?} }}"))],
    );
    let check = s2.sql_backend("pg").await.unwrap();
    let n = check
        .get("SELECT count(*)::bigint FROM t", ())
        .await
        .unwrap()
        .unwrap()
        .get_idx::<i64>(0)
        .unwrap();
    assert_eq!(n, 1);
    check
        .exec(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    s2.close().await.unwrap();
}

/// Issue 16: valid Postgres the placeholder lexer used to read as named
/// parameters — an array slice whose upper bound is a function call, and
/// the prefix `@` (absolute value) operator — runs as written, and next to
/// real parameters.
#[tokio::test]
async fn array_slices_and_the_prefix_at_operator_are_not_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let s = strata(dir.path(), &[("pg", format!("{{ url = {:?} }}", url()))]);
    let sql = s.sql_backend("pg").await.unwrap();
    let row = sql
        .get(
            "SELECT CAST((ARRAY[1,2,3])[2:cardinality(ARRAY[1,2,3])] AS text) AS slice, \
             @x AS magnitude, CAST(@ -2.5 AS float8) AS lit FROM (SELECT -5 AS x) t",
            (),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<String>("slice").unwrap(), "{2,3}");
    assert_eq!(row.get::<i64>("magnitude").unwrap(), 5);
    assert_eq!(row.get::<f64>("lit").unwrap(), 2.5);
    let row = sql
        .get(
            "SELECT CAST((ARRAY[10,20,30])[2:cardinality(ARRAY[1,2,3])] AS text) AS s, @ CAST(:n AS int) AS m",
            strata_host::named! {"n" => -7},
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<String>("s").unwrap(), "{20,30}");
    assert_eq!(row.get::<i64>("m").unwrap(), 7);
    s.close().await.unwrap();
}

/// Issue 16 #9 on pgvector (which scores in `f32`): a vector whose norm is
/// above 2^62 (any metric), or non-zero below 2^-50 (cosine), is refused as
/// `invalid_input` naming the record or the query vector, at upsert and at
/// query, instead of scoring 0, NaN or null.
#[tokio::test]
async fn vectors_pgvector_cannot_score_are_refused() {
    use strata_host::{Metric, Query, Record};
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("unscorable_{}", std::process::id());
    let s = strata(
        dir.path(),
        &[(
            "pg",
            format!("{{ url = {:?}, schema = {schema:?} }}", url()),
        )],
    );
    let v = s.backend("pg").await.unwrap().vectors().unwrap();
    for (name, metric) in [
        ("unscorable_cos", Metric::Cosine),
        ("unscorable_l2", Metric::Euclidean),
    ] {
        v.create_collection(name, 4, metric).await.unwrap();
        v.upsert(name, [Record::new("ok", vec![1.0, 2.0, 3.0, 4.0])])
            .await
            .unwrap();
        let e = v
            .upsert(
                name,
                [Record::new("huge-one", vec![0.0, 0.0, 0.0, -3.4e38])],
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("huge-one"), "{e}");
        let e = v
            .query(name, &Query::new(vec![0.0, 0.0, 0.0, 3.0e38]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("query vector"), "{e}");
        // Just under the bound is scored.
        assert_eq!(
            v.query(name, &Query::new(vec![0.0, 0.0, 0.0, 4.0e18]))
                .await
                .unwrap()
                .len(),
            1
        );
    }
    // Tiny non-zero vectors: refused under cosine only.
    let tiny = vec![0.0, 0.0, 0.0, -1.0e-40];
    let e = v
        .upsert("unscorable_cos", [Record::new("tiny", tiny.clone())])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("tiny"), "{e}");
    v.upsert("unscorable_l2", [Record::new("tiny", tiny)])
        .await
        .unwrap();
    let sql = s.sql_backend("pg").await.unwrap();
    sql.exec(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    s.close().await.unwrap();
}

/// Issue 17: a statement without parameters goes as one simple-protocol
/// query, so nothing is prepared for it: a new text costs one round trip
/// (it used to be described, prepared as a named statement and executed).
/// With parameters, the statement is prepared once on its connection.
#[tokio::test]
async fn statements_without_parameters_are_not_prepared() {
    let dir = tempfile::tempdir().unwrap();
    let schema = unique("adhoc");
    let s = strata(
        dir.path(),
        &[(
            "pg",
            format!("{{ url = {:?}, schema = {schema:?} }}", url()),
        )],
    );
    let sql = s.sql_backend("pg").await.unwrap();
    sql.exec("CREATE TABLE t (a int PRIMARY KEY, b text)")
        .await
        .unwrap();
    let prepared = "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%/* issue 17 */%' AND statement NOT LIKE '%pg_prepared_statements%'";
    // In one transaction: every statement on one connection, where
    // pg_prepared_statements shows what was prepared on it.
    let tx = sql.begin().await.unwrap();
    let out = tx
        .run("INSERT INTO t VALUES (1, 'one') /* issue 17 */", ())
        .await
        .unwrap();
    assert_eq!(out.changes, 1);
    let rows = tx
        .all("SELECT a, b FROM t WHERE a = 1 /* issue 17 */", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String>("b").unwrap(), "one");
    let n = |r: Option<strata_host::Row>| r.unwrap().get::<i64>("n").unwrap();
    assert_eq!(
        n(tx.get(prepared, ()).await.unwrap()),
        0,
        "statements without parameters were prepared"
    );
    // With parameters: prepared once (described and executed on the same
    // connection: one named statement, not two).
    for k in 2..5 {
        tx.run("INSERT INTO t VALUES (?, 'p') /* issue 17 */", [k])
            .await
            .unwrap();
    }
    assert_eq!(n(tx.get(prepared, ()).await.unwrap()), 1);
    tx.commit().await.unwrap();
    // A statement that is not plainly one, or names a parameter it is not
    // given, is still refused as before (never run as two statements).
    let err = sql
        .run("INSERT INTO t VALUES (9, 'x'); DELETE FROM t", ())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Syntax, "{err}");
    let err = sql.get("SELECT $1::int AS x", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let count = sql.get("SELECT count(*) AS n FROM t", ()).await.unwrap();
    assert_eq!(n(count), 4);
    sql.exec(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    s.close().await.unwrap();
}

/// Issue 17: a result read through the simple protocol (text values, no
/// parameters) gives exactly the values the same statement gives
/// prepared (binary values, one parameter), for every type strata reads —
/// including dates and times before year 1 and at infinity, time zones
/// other than UTC, floats at their limits, pgvector's vectors and enums —
/// and the same refusal for types it does not read.
#[tokio::test]
async fn text_and_binary_results_read_to_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let schema = unique("textbin");
    let s = strata(
        dir.path(),
        &[(
            "pg",
            format!("{{ url = {:?}, schema = {schema:?} }}", url()),
        )],
    );
    let sql = s.sql_backend("pg").await.unwrap();
    sql.exec(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
         CREATE DOMAIN posint AS int CHECK (VALUE > 0)",
    )
    .await
    .unwrap();
    let exprs = [
        "true",
        "false",
        "CAST(-32768 AS int2)",
        "CAST(2147483647 AS int4)",
        "CAST(-9223372036854775808 AS int8)",
        "CAST(4294967295 AS oid)",
        "CAST(0.1 AS float4)",
        "CAST(1e-7 AS float4)",
        "CAST(3.4028235e38 AS float4)",
        "CAST('NaN' AS float4)",
        "CAST('-Infinity' AS float4)",
        "CAST(0.1 AS float8)",
        "CAST(-0.0 AS float8)",
        "CAST(2.2250738585072014e-308 AS float8)",
        "CAST(1.7976931348623157e308 AS float8)",
        "CAST(5e-324 AS float8)",
        "CAST('Infinity' AS float8)",
        "CAST(12.50 AS numeric)",
        "CAST(-0.0001 AS numeric)",
        "CAST(100000000000000000000 AS numeric)",
        "CAST('NaN' AS numeric)",
        "CAST('-Infinity' AS numeric)",
        "CAST('it''s' AS text)",
        "CAST('ümlaut' AS varchar(10))",
        "CAST('pad' AS char(5))",
        "CAST('nm' AS name)",
        "CAST('x' AS \"char\")",
        "CAST('{\"b\": 1,  \"a\": [1, 2]}' AS json)",
        "CAST('{\"b\": 1,  \"a\": [1, 2]}' AS jsonb)",
        "CAST('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11' AS uuid)",
        "CAST('2025-02-28' AS date)",
        "CAST('0001-01-01' AS date)",
        "CAST('0044-03-15 BC' AS date)",
        "CAST('infinity' AS date)",
        "CAST('-infinity' AS date)",
        "CAST('10000-01-01' AS date)",
        "CAST('2000-01-01 00:00:01.5' AS timestamp)",
        "CAST('1999-12-31 23:59:59.999999' AS timestamp)",
        "CAST('0001-12-31 00:00:00.25 BC' AS timestamp)",
        "CAST('infinity' AS timestamp)",
        "CAST('2026-06-01 12:34:56.000100+02' AS timestamptz)",
        "CAST('1900-01-01 00:00:00+00' AS timestamptz)",
        "CAST('0001-01-01 00:00:00+00 BC' AS timestamptz)",
        "CAST('-infinity' AS timestamptz)",
        "CAST('\\x00ff10' AS bytea)",
        "CAST('' AS bytea)",
        "CAST('[1e-7,2.5,-3,100000]' AS vector)",
        "CAST('happy' AS mood)",
        "CAST(NULL AS interval)",
        "CAST(NULL AS mood)",
    ];
    let no_params = format!(
        "SELECT {}",
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let with_param = format!("{no_params} WHERE CAST(? AS int) = 1");
    let render = |rows: Vec<strata_host::Row>| {
        rows.iter()
            .map(|r| format!("{:?} {:?}", r.columns(), r.values()))
            .collect::<Vec<_>>()
    };
    let text = render(sql.all(&no_params, ()).await.unwrap());
    let binary = render(sql.all(&with_param, [1]).await.unwrap());
    assert_eq!(text, binary);
    // Spot checks of the shared form.
    let row = sql.get(&no_params, ()).await.unwrap().unwrap();
    assert_eq!(
        row.get::<String>("c40").unwrap(),
        "2026-06-01 10:34:56.000100+00:00"
    );
    assert_eq!(
        row.get::<String>("c38").unwrap(),
        "0001-12-31 00:00:00.250000 BC"
    );
    assert_eq!(
        row.get::<String>("c46").unwrap(),
        "[0.0000001,2.5,-3,100000]"
    );
    assert_eq!(row.get::<String>("c47").unwrap(), "happy");
    // In a session time zone other than UTC (offsets with minutes), and
    // with types that are not read: the same answer both ways.
    let tx = sql.begin().await.unwrap();
    tx.exec("SET LOCAL TIME ZONE 'America/St_Johns'")
        .await
        .unwrap();
    let text = render(tx.all(&no_params, ()).await.unwrap());
    let binary = render(tx.all(&with_param, [1]).await.unwrap());
    assert_eq!(text, binary);
    for t in [
        "CAST('1 day' AS interval)",
        "ARRAY[1, 2]",
        "CAST(5 AS posint)",
    ] {
        let outcome = |r: Result<Vec<strata_host::Row>, strata_host::Error>| match r {
            Ok(rows) => Ok(render(rows)),
            Err(e) => Err((e.kind(), e.to_string())),
        };
        let a = outcome(tx.all(&format!("SELECT {t} AS v"), ()).await);
        let b = outcome(
            tx.all(&format!("SELECT {t} AS v WHERE CAST(? AS int) = 1"), [1])
                .await,
        );
        assert_eq!(a, b, "{t}");
        if !t.contains("posint") {
            assert!(matches!(a, Err((ErrorKind::Unsupported, _))), "{t}: {a:?}");
        }
    }
    tx.rollback().await.unwrap();
    // `run` reads a RETURNING id from text as from binary.
    sql.exec("CREATE TABLE ids (id bigserial PRIMARY KEY, v text)")
        .await
        .unwrap();
    let a = sql
        .run("INSERT INTO ids (v) VALUES ('a') RETURNING id", ())
        .await
        .unwrap();
    let b = sql
        .run("INSERT INTO ids (v) VALUES (?) RETURNING id", ["b"])
        .await
        .unwrap();
    assert_eq!((a.changes, a.last_insert_rowid), (1, Some(1)));
    assert_eq!((b.changes, b.last_insert_rowid), (1, Some(2)));
    sql.exec(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    s.close().await.unwrap();
}

/// One-shot statements run on a connection kept out of the pool: they share
/// it, a SQL error keeps it, a call abandoned mid-statement drops it (the
/// next statement gets another at once instead of one still busy), one that
/// ran a hand-written `BEGIN` is not kept, and one the server closed while
/// it sat idle is replaced before use.
#[tokio::test]
async fn the_kept_connection_survives_errors_cancels_and_server_kills() {
    let dir = tempfile::tempdir().unwrap();
    let url = url();
    let s = strata(
        dir.path(),
        &[
            ("pg", format!("{{ url = {url:?} }}")),
            ("admin", format!("{{ url = {url:?} }}")),
        ],
    );
    let sql = s.sql_backend("pg").await.unwrap();
    let admin = s.sql_backend("admin").await.unwrap();
    let pid = async || -> i64 {
        sql.get("SELECT pg_backend_pid()::bigint", ())
            .await
            .unwrap()
            .unwrap()
            .get_idx::<i64>(0)
            .unwrap()
    };
    let first = pid().await;
    assert_eq!(
        pid().await,
        first,
        "one-shot statements share one connection"
    );
    let e = sql.get("SELEC 1", ()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Syntax, "{e}");
    assert_eq!(pid().await, first, "a SQL error keeps the connection");

    let started = Instant::now();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        sql.run("SELECT pg_sleep(5)", ()),
    )
    .await;
    assert!(abandoned.is_err(), "pg_sleep(5) finished within 300 ms?");
    let second = pid().await;
    assert_ne!(
        second, first,
        "the abandoned statement's connection was reused"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the next statement waited for the abandoned one ({:?})",
        started.elapsed()
    );

    // A transaction opened by hand does not swallow later one-shot
    // statements: the connection it was opened on is not kept.
    sql.run("BEGIN", ()).await.unwrap();
    for _ in 0..3 {
        let own = sql
            .get(
                "SELECT xact_start = query_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                (),
            )
            .await
            .unwrap()
            .unwrap()
            .get_idx::<bool>(0)
            .unwrap();
        assert!(
            own,
            "a one-shot statement ran inside the transaction an earlier BEGIN opened"
        );
    }
    let second = pid().await;

    admin
        .run(&format!("SELECT pg_terminate_backend({second})"), ())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let third = pid().await;
    assert_ne!(third, second, "a connection the server closed was reused");
}
