//! The SQL and vector suites against the SQLite plugin's `.so`, through
//! the `strata-conformance` binary, judged exactly by the plugin's
//! expectations (`expected/sqlite.toml`, `expected/sqlite-memory.toml`).

mod common;

fn run_sqlite(config: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conformance.toml");
    std::fs::write(&file, config).unwrap();
    let junit = dir.path().join("junit.xml");
    let out = common::run(
        &[
            &"--plugin",
            &common::plugin("sqlite"),
            &"--config",
            &file,
            &"--suite",
            &"sql",
            &"--suite",
            &"vector",
            &"--expect",
            &common::expected(expected),
            &"--junit",
            &junit,
        ],
        &[],
    );
    common::assert_green(&out);
    let report = std::fs::read_to_string(&junit).unwrap();
    assert!(
        report.contains("<testsuite name=\"strata-conformance sqlite\""),
        "{report}"
    );
}

/// `hnsw_build = "inline"`: the recall and reopen cases then measure the
/// HNSW index itself, not the exact search that answers while a background
/// build runs (the plugin's own tests cover background builds). The path
/// is relative to the config file, in directories that do not exist yet.
#[test]
fn sql_and_vector_suites_on_a_file_database() {
    run_sqlite(
        "path = \"nested/dir/conformance.sqlite\"\nhnsw_build = \"inline\"\n",
        "sqlite",
    );
}

#[test]
fn sql_and_vector_suites_in_memory() {
    run_sqlite(
        "path = \":memory:\"\nhnsw_build = \"inline\"\n",
        "sqlite-memory",
    );
}
