//! `strata plugins schema NAME`: by backend name (also a backend configured
//! with `library =`), by plugin name, and a clear error for neither. Uses the
//! `.so` files built by `cargo build --release --workspace`.

mod common;

#[test]
fn plugins_schema_accepts_backend_names_library_paths_and_plugin_names() {
    let sqlite = strata_host::loader::built_plugin("sqlite").expect("libstrata_sqlite.so built");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plugins.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dirs = [{:?}]\n\
             [backends.mine]\nlibrary = {sqlite:?}\nconfig = {{ path = \"x.sqlite\" }}\n\
             [backends.named]\nplugin = \"sqlite\"\nconfig = {{ path = \"y.sqlite\" }}\n",
            sqlite.parent().unwrap()
        ),
    )
    .unwrap();
    for name in ["mine", "named", "sqlite"] {
        let (ok, out, err) = common::strata(&config, "plugins", &["schema", name]);
        assert!(ok, "schema {name}: {err}");
        let schema: serde_json::Value = serde_json::from_str(&out).expect("JSON Schema");
        assert_eq!(schema["title"], "SqliteConfig", "schema {name}: {out}");
        assert!(schema["properties"]["path"].is_object(), "{out}");
    }
    let (ok, _, err) = common::strata(&config, "plugins", &["schema", "nope"]);
    assert!(!ok);
    assert!(
        err.contains("`nope`") && err.contains("libstrata_nope.so"),
        "{err}"
    );
    assert!(
        !dir.path().join("x.sqlite").exists(),
        "schema opened a backend"
    );
}
