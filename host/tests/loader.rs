//! Loading plugins: the bad inputs a host must refuse clearly, panics it must
//! contain, and several plugins side by side. Uses the `.so` files built by
//! `cargo build --release --workspace` next to this test binary.

use std::path::{Path, PathBuf};

use strata_host::{Error, ErrorKind, Plugin, Strata, params};

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn plugin(name: &str) -> PathBuf {
    strata_host::loader::built_plugin(name).expect("run `cargo build --release --workspace` first")
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let file = dir.join("plugins.toml");
    std::fs::write(&file, format!("plugin_dirs = [{:?}]\n{body}", target_dir())).unwrap();
    file
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libstrata_fake.so");
    std::fs::write(&fake, "this is not an ELF file").unwrap();
    let err = Plugin::load(&fake).unwrap_err();
    assert!(matches!(err, Error::NotAPlugin { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("libstrata_fake.so") && msg.contains("not a strata plugin"),
        "{msg}"
    );
}

#[test]
fn a_library_without_a_root_module_is_refused() {
    // Any real shared library that is not a strata plugin: the SQLite plugin's
    // neighbour, the C math library.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("libm present");
    let err = Plugin::load(&libm).unwrap_err();
    assert!(matches!(err, Error::NotAPlugin { .. }), "{err:?}");
    assert!(err.to_string().contains("root module"), "{err}");
}

#[test]
fn a_plugin_built_against_another_api_is_refused_naming_both_versions() {
    let err = Plugin::load(plugin("fixture_bad_abi")).unwrap_err();
    match &err {
        Error::IncompatibleApi {
            expected, found, ..
        } => {
            assert_eq!(expected, strata_plugin_api::API_VERSION);
            assert_eq!(found, "0.0.7");
        }
        other => panic!("expected IncompatibleApi, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("0.0.7") && msg.contains(strata_plugin_api::API_VERSION),
        "{msg}"
    );
    assert!(msg.contains("libstrata_fixture_bad_abi"), "{msg}");
}

#[tokio::test]
async fn panics_inside_a_plugin_come_back_as_errors_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "[backends.p]\nplugin = \"fixture_panicky\"\n\
         [backends.boom]\nplugin = \"fixture_panicky\"\nconfig = { panic_on_open = true }\n\
         [backends.accessor]\nplugin = \"fixture_panicky\"\nconfig = { panic_in_accessor = true }\n\
         [backends.raw]\nplugin = \"fixture_raw\"\n",
    );
    let strata = Strata::load(&file).unwrap();
    let sql = strata.sql_backend("p").await.unwrap();

    // A panic wherever the kit runs the call: on the caller's thread, on the
    // plugin's blocking pool, polled inside its runtime, as a task there.
    for place in ["inline", "blocking", "async", "task"] {
        let err = sql.run(&format!("{place} insert"), ()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{place}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("plugin panicked: run panicked on {place}")),
            "{place}: {err}"
        );
    }
    // The work really went where `runs` said: the query answers with the
    // name of the thread it ran on.
    let thread = |place: &'static str| {
        let sql = sql.clone();
        async move {
            sql.get(&format!("{place} which thread"), ())
                .await
                .unwrap()
                .unwrap()
                .get::<String>("thread")
                .unwrap()
        }
    };
    assert_eq!(thread("blocking").await, "strata-fixture-panicky");
    assert_eq!(thread("task").await, "strata-fixture-panicky");
    assert_ne!(thread("inline").await, "strata-fixture-panicky");
    // A panic while the kit asks the backend where a call runs.
    let err = sql.all("panic in runs", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("runs exploded"), "{err}");

    // A panic while opening.
    let err = strata.backend("boom").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("open exploded"), "{err}");

    // A panic in a synchronous accessor is reported as itself, not as a
    // missing contract.
    let err = strata.sql_backend("accessor").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    assert!(err.to_string().contains("accessor exploded"), "{err}");

    // A panic in the backend's drop stays inside the plugin (the backend
    // is opened outside `Strata`, which would keep it until the end).
    let dropper = strata_host::loader::Backend::open(
        "dropper",
        Plugin::load(plugin("fixture_panicky")).unwrap(),
        &file,
        &serde_json::json!({ "panic_on_drop": true }),
    )
    .await
    .unwrap();
    dropper.close().await.unwrap();
    drop(dropper);

    // A raw-ABI plugin's unguarded future: async-ffi re-raises the panic on
    // the host, and the host's backstop turns it into an error.
    let raw = strata.sql_backend("raw").await.unwrap();
    let err = raw.all("select 1", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("plugin panicked"), "{err}");
    raw.exec("select 1").await.unwrap();

    // Still serving.
    sql.exec("select 1").await.unwrap();
    let err = sql.run("blocking x", ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
}

#[tokio::test]
async fn two_plugins_side_by_side_and_one_library_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sqlite");
    let b = dir.path().join("b.sqlite");
    let file = write_config(
        dir.path(),
        &format!(
            "[backends.a]\nplugin = \"sqlite\"\nconfig = {{ path = {a:?} }}\n\
             [backends.b]\nplugin = \"sqlite\"\nconfig = {{ path = {b:?} }}\n\
             [backends.p]\nplugin = \"fixture_panicky\"\n\
             [roles]\nsql = \"a\"\n"
        ),
    );
    let strata = Strata::load(&file).unwrap();
    let pa = strata.plugin("a").unwrap();
    let pb = strata.plugin("b").unwrap();
    let pp = strata.plugin("p").unwrap();
    assert!(std::sync::Arc::ptr_eq(&pa, &pb), "one library, loaded once");
    assert_eq!(pa.info().name, "sqlite");
    assert_eq!(
        pp.info().name,
        "fixture-panicky",
        "the second plugin is not the first one returned again"
    );

    let sa = strata.sql().await.unwrap();
    let sb = strata.sql_backend("b").await.unwrap();
    assert_eq!(sa.backend(), "a");
    for s in [&sa, &sb] {
        s.exec("create table t (x integer)").await.unwrap();
    }
    sa.run("insert into t values (?)", [1]).await.unwrap();
    sa.run("insert into t values (?)", [2]).await.unwrap();
    sb.run("insert into t values (?)", [3]).await.unwrap();
    let count = |s: strata_host::Sql| async move {
        s.get("select count(*) from t", ())
            .await
            .unwrap()
            .unwrap()
            .get_idx::<i64>(0)
            .unwrap()
    };
    assert_eq!(count(sa.clone()).await, 2);
    assert_eq!(count(sb.clone()).await, 1);
    // The panicky plugin misbehaving does not disturb the SQLite backends.
    let p = strata.sql_backend("p").await.unwrap();
    assert!(p.run("select 1", ()).await.is_err());
    assert_eq!(count(sa).await, 2);
    strata.close().await.unwrap();
}

#[tokio::test]
async fn bad_plugin_config_is_refused_before_open_naming_file_table_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never-created.sqlite");
    let file = write_config(
        dir.path(),
        &format!(
            "[backends.typo]\nplugin = \"sqlite\"\nconfig = {{ pth = {db:?} }}\n\
             [backends.wrongtype]\nplugin = \"sqlite\"\nconfig = {{ path = {db:?}, busy_timeout_ms = \"5s\" }}\n"
        ),
    );
    let strata = Strata::load(&file).unwrap();
    let err = strata.backend("typo").await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(msg.contains("plugins.toml"), "{msg}");
    assert!(msg.contains("[backends.typo.config]"), "{msg}");
    assert!(msg.contains("`pth`"), "{msg}");
    assert!(msg.contains("missing required key `path`"), "{msg}");

    let err = strata.backend("wrongtype").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("[backends.wrongtype.config]") && msg.contains("`busy_timeout_ms`"),
        "{msg}"
    );
    assert!(!db.exists(), "nothing may be created by a refused config");
}

#[tokio::test]
async fn a_relative_database_path_lands_beside_plugins_toml_not_in_the_working_directory() {
    // plugins.toml documents paths as relative to the config file; the
    // host hands the plugin that directory (absolute) at open.
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("conf");
    std::fs::create_dir(&conf_dir).unwrap();
    let name = format!("rel-{}.sqlite", std::process::id());
    let file = write_config(
        &conf_dir,
        &format!("[backends.local]\nplugin = \"sqlite\"\nconfig = {{ path = {name:?} }}\n"),
    );
    let strata = Strata::load(&file).unwrap();
    let sql = strata.sql_backend("local").await.unwrap();
    sql.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    strata.close().await.unwrap();
    assert!(
        conf_dir.join(&name).is_file(),
        "not created beside plugins.toml"
    );
    let cwd = std::env::current_dir().unwrap();
    assert!(
        !cwd.join(&name).exists(),
        "created in the working directory {}",
        cwd.display()
    );
}

/// A value refused by a plugin's schema is quoted in the error, unless
/// it is a secret: the value of a secret key, or a URL's password.
#[tokio::test]
async fn schema_errors_do_not_echo_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "[backends.s3]\nplugin = \"s3\"\n\
         config = { bucket = \"b\", secret_access_key = 987654321, access_key_id = \"AKIDEXAMPLE\" }\n\
         [backends.s3b]\nplugin = \"s3\"\n\
         config = { bucket = \"b\", endpoint = [\"http://user:pa55word@127.0.0.1:9\"] }\n",
    );
    let strata = Strata::load(&file).unwrap();
    let msg = strata.backend("s3").await.unwrap_err().to_string();
    assert!(msg.contains("`secret_access_key`"), "{msg}");
    assert!(!msg.contains("987654321"), "{msg}");
    let msg = strata.backend("s3b").await.unwrap_err().to_string();
    assert!(msg.contains("`endpoint`"), "{msg}");
    assert!(!msg.contains("pa55word"), "{msg}");
}

#[test]
fn bad_plugins_toml_names_file_table_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "[backends.local]\nplugin = \"sqlite\"\nconfg = { path = \"x\" }\n",
    );
    let err = Strata::load(&file).err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string())
            && msg.contains("[backends.local]")
            && msg.contains("`confg`"),
        "{msg}"
    );

    let file = write_config(dir.path(), "[backends.local]\nplugin = [\"sqlite\"]\n");
    let msg = Strata::load(&file).err().expect("refused").to_string();
    assert!(
        msg.contains("[backends.local]") && msg.contains("`plugin`") && msg.contains("array"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_missing_plugin_lists_the_directories_searched() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "[backends.x]\nplugin = \"nosuchdb\"\n");
    let strata = Strata::load(&file).unwrap();
    let err = strata.backend("x").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PluginNotFound { .. }), "{err:?}");
    assert!(msg.contains("libstrata_nosuchdb.so"), "{msg}");
    assert!(msg.contains(&target_dir().display().to_string()), "{msg}");
}

#[tokio::test]
async fn params_macro_and_row_access_through_the_loaded_plugin() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Note {
        id: i64,
        body: String,
        score: Option<f64>,
        done: bool,
        tags: Vec<String>,
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        &format!(
            "[backends.local]\nplugin = \"sqlite\"\nconfig = {{ path = {:?} }}\n",
            dir.path().join("n.sqlite")
        ),
    );
    let strata = Strata::load(&file).unwrap();
    let sql = strata.sql().await.unwrap();
    sql.exec("create table notes (id integer primary key, body text, score real, done integer, tags text)")
        .await
        .unwrap();
    sql.run(
        "insert into notes (body, score, done, tags) values (?, ?, ?, ?)",
        params!["hello", None::<f64>, true, r#"["a","b"]"#],
    )
    .await
    .unwrap();
    let notes: Vec<Note> = sql.all_as("select * from notes", ()).await.unwrap();
    assert_eq!(
        notes,
        vec![Note {
            id: 1,
            body: "hello".into(),
            score: None,
            done: true,
            tags: vec!["a".into(), "b".into()]
        }]
    );
    let row = sql
        .get("select body, done from notes", ())
        .await
        .unwrap()
        .unwrap();
    let err = row.get::<i64>("body").unwrap_err();
    assert!(
        err.to_string().contains("`body`") && err.to_string().contains("expected integer"),
        "{err}"
    );
    assert!(
        row.get::<String>("nope")
            .unwrap_err()
            .to_string()
            .contains("no such column")
    );
}

/// A plugin future usually finishes in its first poll (SQLite answers
/// without waiting), so a task that loops over plugin calls would never
/// yield. The plugin's own tokio (a separate copy inside the `.so`) cannot
/// charge the runtime's task budget; the host does, for every call. Without
/// that, CI hung: readers looping over queries kept three worker threads,
/// and a writer woken into one of those workers' unstealable LIFO slot never
/// ran again.
#[test]
fn a_task_looping_over_plugin_calls_lets_other_tasks_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let file = write_config(
        dir.path(),
        &format!("[backends.a]\nplugin = \"sqlite\"\nconfig = {{ path = {db:?} }}\n"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let strata = Strata::load(&file).unwrap();
        let sql = strata.sql().await.unwrap();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        // One thread: the spawned task runs only when this one yields.
        let mut calls = 0;
        while !ran.load(std::sync::atomic::Ordering::SeqCst) && calls < 5_000 {
            sql.exec("select 1").await.unwrap();
            calls += 1;
        }
        assert!(
            ran.load(std::sync::atomic::Ordering::SeqCst),
            "{calls} plugin calls in a row never yielded to the scheduler"
        );
        // Tokio's budget is 128 operations per poll (and the spawned task
        // did not run before the first call).
        assert!(calls > 0 && calls <= 200, "yielded after {calls} calls");
        strata.close().await.unwrap();
    });
}

#[tokio::test]
async fn interfaces_are_found_by_name_and_their_layout_is_checked() {
    use strata_fixture_interface::{ECHO, EchoBox, EchoV2Box};
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "[backends.raw]\nplugin = \"fixture_raw\"\n[backends.kit]\nplugin = \"fixture_panicky\"\n",
    );
    let strata = Strata::load(&file).unwrap();
    let raw = strata.backend("raw").await.unwrap();
    let echo: EchoBox = raw
        .interface(ECHO)
        .unwrap()
        .expect("the raw fixture serves it");
    assert_eq!(echo.echo(1), 1001);
    assert!(
        raw.interface::<EchoBox>("strata.test.nothing")
            .unwrap()
            .is_none()
    );
    // Something else under the name is refused with the cause, never used.
    let Err(err) = raw.interface::<EchoV2Box>(ECHO) else {
        panic!("a different layout was accepted");
    };
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("another layout"), "{err}");
    assert!(err.to_string().contains("EchoV2"), "{err}");
    // A plugin built without the interface answers none.
    let kit = strata.backend("kit").await.unwrap();
    assert!(kit.interface::<EchoBox>(ECHO).unwrap().is_none());
    // An optional fast path served with another layout (the raw fixture
    // hands out `Echo` as `strata.sql.transaction_bulk.v1`) is left out;
    // the SQL contract it would have sped up still works.
    let sql = raw
        .sql()
        .expect("the SQL contract survives a bad interface");
    assert!(!sql.has_transaction_bulk());
    sql.exec("SELECT 1").await.unwrap();
    // `begin` goes to the contract's own `begin` (this fixture has no
    // transactions), not through the refused interface.
    let Err(err) = sql.begin().await else {
        panic!("the raw fixture has no transactions");
    };
    assert!(err.to_string().contains("no transactions"), "{err}");
}

/// The fixtures built from pinned plugin-api releases (scripts/test builds
/// them into the target directory; `fixtures/abi-*`).
fn pinned(name: &str) -> PathBuf {
    strata_host::loader::built_plugin(name).unwrap_or_else(|e| {
        panic!("{e}: build fixtures/abi-* first (scripts/test does: cargo build --release --manifest-path fixtures/abi-1.0/Cargo.toml --target-dir target)")
    })
}

#[test]
fn a_plugin_built_on_plugin_api_1_0_loads() {
    let p = Plugin::load(pinned("fixture-abi-1-0")).unwrap();
    assert_eq!(p.info().name, "fixture-abi-1-0");
    assert_eq!(
        p.info().api_version,
        "1.0.0",
        "read from the library header"
    );
}

#[test]
fn plugins_of_another_major_are_refused_naming_both_versions() {
    for (name, found) in [("fixture-abi-0-1", "0.1.0"), ("fixture-abi-2-0", "2.0.0")] {
        let err = Plugin::load(pinned(name)).unwrap_err();
        match &err {
            Error::IncompatibleApi {
                expected, found: f, ..
            } => {
                assert_eq!(expected, strata_plugin_api::API_VERSION);
                assert_eq!(f, found);
            }
            other => panic!("{name}: expected IncompatibleApi, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(found) && msg.contains(strata_plugin_api::API_VERSION),
            "{msg}"
        );
    }
}
