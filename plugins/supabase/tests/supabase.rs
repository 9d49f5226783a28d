//! The Supabase plugin through the loaded `.so`, against the real
//! PostgreSQL 18 (`DATABASE_URL`, used as `direct_url`) behind the real
//! PgBouncer in transaction mode (`PGBOUNCER_URL`, the plugin's `url`),
//! both from `scripts/servers/`. Without those variables these tests fail,
//! loudly: they never skip.
//!
//! The setup recreates what Supabase ships that row-level security relies
//! on: roles `anon`, `authenticated`, `service_role` (BYPASSRLS) and
//! `authenticator`, and schema `auth` with `auth.uid()`, `auth.role()` and
//! `auth.jwt()` reading `request.jwt.claims` as Supabase defines them.

use std::{path::PathBuf, sync::Arc};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use strata_host::{ErrorKind, Sql, Strata};

const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

fn plugin() -> PathBuf {
    strata_host::loader::built_plugin("supabase")
        .expect("run `cargo build --release -p strata-supabase` first")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need PostgreSQL and PgBouncer; run them through \
             scripts/test (or eval \"$(scripts/servers/pgbouncer.sh start >&2; \
             scripts/servers/postgres.sh env; scripts/servers/pgbouncer.sh env)\")"
        )
    })
}

/// A host with one Supabase backend `s` in `schema` (plus `extra` config).
fn strata(dir: &std::path::Path, schema: &str, extra: &str) -> Strata {
    let text = format!(
        "[backends.s]\nlibrary = {:?}\nconfig = {{ url = {:?}, direct_url = {:?}, schema = {schema:?}{extra} }}\n",
        plugin(),
        env("PGBOUNCER_URL"),
        env("DATABASE_URL"),
    );
    let file = dir.join("plugins.toml");
    std::fs::write(&file, text).unwrap();
    Strata::load(&file).unwrap()
}

/// Supabase's roles and `auth` schema (idempotent; roles are cluster-wide,
/// so concurrent creators tolerate each other), then `schema` with a
/// `notes` table whose policies let a user see and change only their own
/// rows, and everyone read the public ones.
async fn setup(sql: &Sql, schema: &str) {
    sql.exec(
        "DO $$ BEGIN
           BEGIN CREATE ROLE anon NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
           BEGIN CREATE ROLE authenticated NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
           BEGIN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
           BEGIN CREATE ROLE authenticator NOINHERIT LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
         END $$;
         GRANT anon, authenticated, service_role TO authenticator;
         CREATE SCHEMA IF NOT EXISTS auth;
         CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
           SELECT coalesce(
             nullif(current_setting('request.jwt.claim.sub', true), ''),
             (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
           )::uuid $$;
         CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
           SELECT coalesce(
             nullif(current_setting('request.jwt.claim.role', true), ''),
             (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
           )::text $$;
         CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
           SELECT coalesce(
             nullif(current_setting('request.jwt.claim', true), ''),
             nullif(current_setting('request.jwt.claims', true), '')
           )::jsonb $$;
         GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;",
    )
    .await
    .or_else(|e| {
        // Two test binaries granting at once may collide on the catalog.
        if e.to_string().contains("tuple concurrently updated") {
            Ok(())
        } else {
            Err(e)
        }
    })
    .unwrap();
    sql.exec(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         GRANT USAGE ON SCHEMA {schema} TO anon, authenticated, service_role;
         CREATE TABLE {schema}.notes (
           id bigint PRIMARY KEY, owner uuid NOT NULL, body text NOT NULL,
           public boolean NOT NULL DEFAULT false);
         ALTER TABLE {schema}.notes ENABLE ROW LEVEL SECURITY;
         GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.notes TO anon, authenticated, service_role;
         CREATE POLICY own ON {schema}.notes FOR ALL TO authenticated
           USING (owner = auth.uid()) WITH CHECK (owner = auth.uid());
         CREATE POLICY read_public ON {schema}.notes FOR SELECT TO anon, authenticated
           USING (public);"
    ))
    .await
    .unwrap();
}

fn uid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn user(n: u32) -> Value {
    json!({"sub": uid(n), "role": "authenticated", "aud": "authenticated"})
}

async fn ids(sql: &Sql, query: &str) -> Vec<i64> {
    sql.all(query, ())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<i64>("id").unwrap())
        .collect()
}

/// Users 1 and 2 with two rows each, one of user 2's public.
async fn seed(sql: &Sql) {
    for (id, owner, public) in [(1, 1, false), (2, 1, false), (3, 2, false), (4, 2, true)] {
        sql.as_user(&user(owner))
            .unwrap()
            .run(
                "INSERT INTO notes (id, owner, body, public) VALUES (?, ?::uuid, ?, ?)",
                (id, uid(owner), format!("note {id}"), public),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_user_reads_updates_and_deletes_only_their_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let s = strata(dir.path(), "supa_rls_own", "");
    let sql = s.sql_backend("s").await.unwrap();
    setup(&sql, "supa_rls_own").await;
    seed(&sql).await;
    let (a, b) = (
        sql.as_user(&user(1)).unwrap(),
        sql.as_user(&user(2)).unwrap(),
    );
    assert_eq!(ids(&a, "SELECT id FROM notes ORDER BY id").await, [1, 2, 4]);
    assert_eq!(ids(&b, "SELECT id FROM notes ORDER BY id").await, [3, 4]);
    assert_eq!(
        a.get(
            "SELECT auth.uid()::text AS u, auth.role() AS r, current_user::text AS c",
            ()
        )
        .await
        .unwrap()
        .map(|r| (
            r.get::<String>("u").unwrap(),
            r.get::<String>("r").unwrap(),
            r.get::<String>("c").unwrap()
        )),
        Some((uid(1), "authenticated".into(), "authenticated".into()))
    );
    // A cannot change or delete B's rows, not even the public one.
    let upd = a
        .run(
            "UPDATE notes SET body = 'mine now' WHERE owner = ?::uuid",
            [uid(2)],
        )
        .await
        .unwrap();
    assert_eq!(upd.changes, 0);
    let del = a
        .run("DELETE FROM notes WHERE id IN (3, 4)", ())
        .await
        .unwrap();
    assert_eq!(del.changes, 0);
    // Nor insert a row in B's name.
    let e = a
        .run(
            "INSERT INTO notes (id, owner, body) VALUES (9, ?::uuid, 'forged')",
            [uid(2)],
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("row-level security"), "{e}");
    // B's rows are intact; A's own update works.
    assert_eq!(
        ids(
            &sql,
            "SELECT id FROM notes WHERE body LIKE 'note %' ORDER BY id"
        )
        .await,
        [1, 2, 3, 4]
    );
    assert_eq!(
        a.run("UPDATE notes SET body = 'edited'", ())
            .await
            .unwrap()
            .changes,
        2
    );
    // A whole transaction as a user.
    let tx = b.begin().await.unwrap();
    tx.run("DELETE FROM notes", ()).await.unwrap();
    assert!(
        tx.all("SELECT id FROM notes WHERE NOT public", ())
            .await
            .unwrap()
            .is_empty()
    );
    tx.rollback().await.unwrap();
    assert_eq!(ids(&b, "SELECT id FROM notes ORDER BY id").await, [3, 4]);
    // Streams too.
    let mut st = a
        .stream("SELECT id FROM notes ORDER BY id", ())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(r) = st.next().await.unwrap() {
        seen.push(r.get::<i64>("id").unwrap());
    }
    assert_eq!(seen, [1, 2, 4]);
    // exec cannot carry a user: refused on a user's handle.
    let e = a.exec("DELETE FROM notes").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    s.close().await.unwrap();
}

#[tokio::test]
async fn anon_sees_public_rows_and_service_role_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let s = strata(dir.path(), "supa_rls_roles", "");
    let sql = s.sql_backend("s").await.unwrap();
    setup(&sql, "supa_rls_roles").await;
    seed(&sql).await;
    // No role claim: the anonymous role.
    for anon in [json!({}), json!({"role": "anon"})] {
        let h = sql.as_user(&anon).unwrap();
        assert_eq!(ids(&h, "SELECT id FROM notes ORDER BY id").await, [4]);
        let n = h.run("DELETE FROM notes", ()).await.unwrap();
        assert_eq!(n.changes, 0);
    }
    // service_role: refused unless the config allows it.
    let svc = sql.as_user(&json!({"role": "service_role"})).unwrap();
    let e = svc.all("SELECT id FROM notes", ()).await.unwrap_err();
    assert!(e.to_string().contains("service_role = true"), "{e}");
    // A role not listed (the connection's own superuser, say) is refused.
    for role in ["strata", "postgres", "authenticated; RESET ROLE"] {
        let e = sql
            .as_user(&json!({"sub": uid(1), "role": role}))
            .unwrap()
            .all("SELECT id FROM notes", ())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("is not one this backend runs"),
            "{e}"
        );
    }
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = strata(dir2.path(), "supa_rls_roles", ", service_role = true");
    let sql2 = s2.sql_backend("s").await.unwrap();
    let svc = sql2.as_user(&json!({"role": "service_role"})).unwrap();
    assert_eq!(
        ids(&svc, "SELECT id FROM notes ORDER BY id").await,
        [1, 2, 3, 4]
    );
    s.close().await.unwrap();
    s2.close().await.unwrap();
}

#[tokio::test]
async fn claims_with_quotes_or_injection_attempts_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = strata(dir.path(), "supa_rls_inject", "");
    let sql = s.sql_backend("s").await.unwrap();
    setup(&sql, "supa_rls_inject").await;
    seed(&sql).await;
    let nasty = [
        json!({"sub": uid(1), "role": "authenticated", "x": "', true); RESET ROLE; SELECT ('"}),
        json!({"sub": uid(1), "role": "authenticated", "name": "O'Brien \"q\" $$ \\ ;--"}),
        json!({"sub": uid(1), "role": "authenticated', true), set_config('role', 'service_role"}),
    ];
    for claims in &nasty {
        match sql
            .as_user(claims)
            .unwrap()
            .all("SELECT id FROM notes ORDER BY id", ())
            .await
        {
            Ok(rows) => {
                let got: Vec<i64> = rows.iter().map(|r| r.get::<i64>("id").unwrap()).collect();
                assert_eq!(got, [1, 2, 4], "{claims}");
            }
            // The odd role is refused by name, never applied.
            Err(e) => assert!(
                e.to_string().contains("is not one this backend runs"),
                "{e}"
            ),
        }
    }
    // The claims arrive as the exact JSON object.
    let h = sql.as_user(&nasty[1]).unwrap();
    let back = h
        .get("SELECT auth.jwt() ->> 'name' AS n", ())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.get::<String>("n").unwrap(), "O'Brien \"q\" $$ \\ ;--");
    // A `sub` that is not a uuid is an error, not everyone's rows.
    let e = sql
        .as_user(&json!({"sub": "x' OR '1'='1", "role": "authenticated"}))
        .unwrap()
        .all("SELECT id FROM notes WHERE NOT public", ())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("uuid"), "{e}");
    s.close().await.unwrap();
}

fn sign(claims: &Value, secret: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    format!(
        "{h}.{p}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn with_jwt_secret_only_verified_unexpired_tokens_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = strata(
        dir.path(),
        "supa_rls_jwt",
        &format!(", jwt_secret = {SECRET:?}"),
    );
    let sql = s.sql_backend("s").await.unwrap();
    setup(&sql, "supa_rls_jwt").await;
    // Seed as the backend's own role (no user).
    sql.run(
        "INSERT INTO notes (id, owner, body, public) VALUES (1, ?::uuid, 'a', false), (3, ?::uuid, 'b', false)",
        (uid(1), uid(2)),
    )
    .await
    .unwrap();
    let mut claims = user(1);
    claims["exp"] = json!(now() + 600);
    let good = sign(&claims, SECRET);
    assert_eq!(
        ids(&sql.as_user_jwt(&good).unwrap(), "SELECT id FROM notes").await,
        [1]
    );
    let forged = sign(&claims, "not-the-project-secret-not-the-project-secret");
    claims["exp"] = json!(now() - 10);
    let expired = sign(&claims, SECRET);
    let mut errors = Vec::new();
    for (token, why) in [
        (forged.as_str(), "signature does not verify"),
        (expired.as_str(), "expired"),
        ("not.a-jwt", "malformed"),
    ] {
        let e = sql
            .as_user_jwt(token)
            .unwrap()
            .all("SELECT id FROM notes", ())
            .await
            .unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
        errors.push(e.to_string());
    }
    // Bare claims are not trusted when tokens are verified.
    let e = sql
        .as_user(&user(1))
        .unwrap()
        .all("SELECT id FROM notes", ())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("jwt_secret"), "{e}");
    errors.push(e.to_string());
    // The secret is never in an error.
    assert!(errors.iter().all(|e| !e.contains(SECRET)), "{errors:?}");
    s.close().await.unwrap();
}

/// 20 users, each in its own task, interleaving transactions and one-shot
/// reads through a pool of 4 connections behind PgBouncer's transaction
/// pooling: no user ever sees another's rows, and a call without a user
/// never runs under anyone's claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_users_through_a_pool_of_four_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    // READ COMMITTED (Supabase's default): SERIALIZABLE would fail some of these
    // concurrent inserts with `busy` (40001), a retry the test need not show.
    let s = strata(
        dir.path(),
        "supa_rls_many",
        ", pool_size = 4, isolation = \"read_committed\"",
    );
    let sql = s.sql_backend("s").await.unwrap();
    setup(&sql, "supa_rls_many").await;
    let sql = Arc::new(sql);
    let mut tasks = Vec::new();
    for u in 1..=20u32 {
        let sql = sql.clone();
        tasks.push(tokio::spawn(async move {
            let me = sql.as_user(&user(u)).unwrap();
            for round in 0..10i64 {
                let id = i64::from(u) * 1000 + round;
                let tx = me.begin().await.unwrap();
                tx.run(
                    "INSERT INTO notes (id, owner, body) VALUES (?, ?::uuid, ?)",
                    (id, uid(u), format!("{u}/{round}")),
                )
                .await
                .unwrap();
                tokio::task::yield_now().await;
                let owners = tx.all("SELECT DISTINCT owner::text AS o FROM notes", ()).await.unwrap();
                assert!(
                    owners.iter().all(|r| r.get::<String>("o").unwrap() == uid(u)),
                    "user {u} saw another user's rows in a transaction"
                );
                tx.commit().await.unwrap();
                let n = me
                    .get("SELECT count(*) AS n, count(*) FILTER (WHERE owner <> auth.uid()) AS other FROM notes", ())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(n.get::<i64>("other").unwrap(), 0, "user {u}");
                assert_eq!(n.get::<i64>("n").unwrap(), round + 1, "user {u}");
                // The backend's own calls, interleaved: no claims, own role.
                let plain = sql
                    .get("SELECT coalesce(current_setting('request.jwt.claims', true), '') AS c, current_user::text AS r", ())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(plain.get::<String>("c").unwrap(), "", "claims leaked");
                assert_eq!(plain.get::<String>("r").unwrap(), "strata", "role leaked");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // No named prepared statement was left on any server connection the
    // pooler handed out (sqlx's default would leave one per statement).
    let probes: Vec<_> = (0..20)
        .map(|_| {
            let sql = sql.clone();
            tokio::spawn(async move {
                let tx = sql.begin().await.unwrap();
                let n = tx
                    .get("SELECT count(*) AS n FROM pg_prepared_statements", ())
                    .await
                    .unwrap()
                    .unwrap()
                    .get::<i64>("n")
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                tx.commit().await.unwrap();
                n
            })
        })
        .collect();
    for p in probes {
        assert_eq!(
            p.await.unwrap(),
            0,
            "a named prepared statement outlived its transaction"
        );
    }
    let all = sql
        .get("SELECT count(*) AS n FROM notes", ())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.get::<i64>("n").unwrap(), 200);
    s.close().await.unwrap();
}

#[tokio::test]
async fn plugins_without_the_capability_refuse_as_user() {
    // The Postgres plugin does not claim sql.as_user: the host refuses
    // before anything is sent.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "[backends.pg]\nlibrary = {:?}\nconfig = {{ url = {:?} }}\n",
            strata_host::loader::built_plugin("postgres").expect("build strata-postgres first"),
            env("DATABASE_URL")
        ),
    )
    .unwrap();
    let s = Strata::load(&file).unwrap();
    let pg = s.sql_backend("pg").await.unwrap();
    let e = pg.as_user(&user(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("sql.as_user"), "{e}");
    s.close().await.unwrap();
}

/// A vector collection whose table carries a policy on the records'
/// `metadata ->> 'owner'`: each user upserts, queries, fetches, counts,
/// scans and deletes only their own records (and reads public ones).
#[tokio::test]
async fn vector_records_are_each_users_own_under_rls() {
    use strata_host::{Hybrid, Include, Metric, Query, Record};
    let dir = tempfile::tempdir().unwrap();
    let s = strata(dir.path(), "supa_rls_vec", "");
    let sql = s.sql_backend("s").await.unwrap();
    setup(&sql, "supa_rls_vec").await;
    let v = s.vectors_backend("s").await.unwrap();
    v.create_collection("memories", 3, Metric::Cosine)
        .await
        .unwrap();
    let table = sql
        .get(
            "SELECT table_name FROM supa_rls_vec.strata_collections WHERE name = 'memories'",
            (),
        )
        .await
        .unwrap()
        .unwrap()
        .get::<String>("table_name")
        .unwrap();
    let t = format!("supa_rls_vec.\"{table}\"");
    sql.exec(&format!(
        "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
         GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO anon, authenticated, service_role;
         CREATE POLICY own ON {t} FOR ALL TO authenticated
           USING (metadata ->> 'owner' = auth.uid()::text)
           WITH CHECK (metadata ->> 'owner' = auth.uid()::text);
         CREATE POLICY read_public ON {t} FOR SELECT TO anon, authenticated
           USING (coalesce((metadata ->> 'public')::boolean, false));"
    ))
    .await
    .unwrap();
    let (a, b) = (v.as_user(&user(1)).unwrap(), v.as_user(&user(2)).unwrap());
    let rec = |id: &str, x: f32, owner: u32, public: bool| {
        Record::new(id, vec![1.0, x, 0.0])
            .metadata(json!({"owner": uid(owner), "public": public}))
            .text(format!("memory {id}"))
    };
    assert_eq!(
        a.upsert(
            "memories",
            [rec("a1", 0.1, 1, false), rec("a2", 0.2, 1, false)]
        )
        .await
        .unwrap(),
        2
    );
    assert_eq!(
        b.upsert(
            "memories",
            [rec("b1", 0.1, 2, false), rec("b2", 0.3, 2, true)]
        )
        .await
        .unwrap(),
        2
    );
    // Not in another's name, and not over another's record.
    for bad in [rec("x", 0.5, 2, false), rec("b1", 0.5, 1, false)] {
        let e = a.upsert("memories", [bad]).await.unwrap_err();
        assert!(e.to_string().contains("row-level security"), "{e}");
    }
    let ids = |hits: Vec<strata_host::Hit>| {
        let mut ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
        ids.sort();
        ids
    };
    let q = Query::new(vec![1.0, 0.1, 0.0]).top_k(10);
    assert_eq!(
        ids(a.query("memories", &q).await.unwrap()),
        ["a1", "a2", "b2"]
    );
    assert_eq!(ids(b.query("memories", &q).await.unwrap()), ["b1", "b2"]);
    let h = Hybrid::new(vec![1.0, 0.1, 0.0], "memory");
    assert_eq!(
        ids(a.hybrid_query("memories", &h).await.unwrap()),
        ["a1", "a2", "b2"]
    );
    assert_eq!(
        ids(a
            .fetch("memories", &["a1", "b1", "b2"], Include::ALL)
            .await
            .unwrap()),
        ["a1", "b2"]
    );
    assert_eq!(a.count("memories", None).await.unwrap(), 3);
    let anon = v.as_user(&json!({"role": "anon"})).unwrap();
    assert_eq!(anon.count("memories", None).await.unwrap(), 1);
    let page = a
        .scan("memories", None, 100, None, Include::default())
        .await
        .unwrap();
    assert_eq!(ids(page.records), ["a1", "a2", "b2"]);
    // Deleting "everything" as A deletes A's records only.
    assert_eq!(a.delete_all("memories").await.unwrap(), 2);
    assert_eq!(b.delete_ids("memories", &["b1"]).await.unwrap(), 1);
    assert_eq!(a.delete_ids("memories", &["b2"]).await.unwrap(), 0);
    assert_eq!(v.count("memories", None).await.unwrap(), 1);
    // Collection management is not a user's request.
    assert_eq!(
        a.drop_collection("memories").await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    s.close().await.unwrap();
}
