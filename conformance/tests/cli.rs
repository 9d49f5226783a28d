//! The `strata-conformance` binary itself: its arguments, its report when
//! the plugin cannot be loaded or kills the process, the JUnit file, and
//! how expectations judge a run. The fixture plugins: `fixture_raw` (raw
//! ABI; `STRATA_FIXTURE_RAW_PANIC=ENTRY` makes an entry point panic where
//! nothing can catch it, so the process aborts) and the SQLite plugin for
//! runs that pass.

mod common;

use std::path::Path;

use common::{plugin, run, stdout, summary};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

fn junit_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no JUnit report at {}: {e}", path.display()))
}

#[test]
fn help_version_list_and_bad_arguments() {
    let out = run(&[&"--help"], &[]);
    assert!(out.status.success());
    let help = stdout(&out);
    for flag in [
        "--plugin",
        "--config",
        "--suite",
        "--expect",
        "--junit",
        "--filter",
        "--timeout",
        "--list",
        "Exit status",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
    let out = run(&[&"--version"], &[]);
    assert!(
        stdout(&out).starts_with("strata-conformance "),
        "{}",
        stdout(&out)
    );
    let out = run(&[&"--list"], &[]);
    assert!(out.status.success());
    let ids = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("sql::") || l.starts_with("vector::") || l.starts_with("blob::"))
        .count();
    assert!(ids >= 120, "{ids} cases listed");
    for args in [
        &["--plugin", "x.so"][..],
        &["--frobnicate"][..],
        &["--suite", "graph", "--list"][..],
    ] {
        let out = run(
            &args
                .iter()
                .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
                .collect::<Vec<_>>(),
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
    }
}

/// A library that is not a plugin: the run stops at `load`, exit 2, and
/// the JUnit report still says so (an `<error>`).
#[test]
fn an_unloadable_plugin_still_gets_a_summary_and_a_junit_report() {
    let dir = tempfile::tempdir().unwrap();
    let fake = write(dir.path(), "libstrata_fake.so", "not a library");
    let config = write(dir.path(), "c.toml", "");
    let junit = dir.path().join("junit.xml");
    let out = run(
        &[&"--plugin", &fake, &"--config", &config, &"--junit", &junit],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        summary(&out).contains("stopped at `load`"),
        "{}",
        summary(&out)
    );
    let report = junit_of(&junit);
    assert!(
        report.contains("name=\"load\"><error message=") && report.contains("errors=\"1\""),
        "{report}"
    );
    // A config that cannot be read: the same, at `config`.
    let out = run(
        &[
            &"--plugin",
            &fake,
            &"--config",
            &dir.path().join("missing.toml"),
            &"--junit",
            &junit,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        junit_of(&junit).contains("name=\"config\"><error"),
        "{}",
        junit_of(&junit)
    );
}

/// An entry point that aborts the process: the run names it, writes its
/// summary and JUnit report, and exits 2.
#[test]
fn a_plugin_that_kills_the_process_while_loading_is_named_by_its_entry_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", "");
    for entry in [
        "manifest",
        "open",
        "capabilities",
        "sql",
        "health",
        "close",
        "drop",
    ] {
        let junit = dir.path().join(format!("{entry}.xml"));
        let out = run(
            &[
                &"--plugin",
                &plugin("fixture_raw"),
                &"--config",
                &config,
                &"--suite",
                &"sql",
                &"--junit",
                &junit,
            ],
            &[("STRATA_FIXTURE_RAW_PANIC", entry)],
        );
        assert_eq!(out.status.code(), Some(2), "{entry}");
        let step = if entry == "sql" {
            "sql()".to_string()
        } else if entry == "capabilities" {
            "capabilities()".to_string()
        } else {
            entry.to_string()
        };
        let s = summary(&out);
        assert!(
            s.contains(&format!(
                "stopped at `{step}`: the plugin killed the process in `{step}`"
            )),
            "{entry}: {s}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("deliberate panic in {entry}")),
            "{entry}: the child's last words are reported: {stderr}"
        );
        let report = junit_of(&junit);
        assert!(
            report.contains(&format!(
                "name=\"{step}\"><error message=\"the plugin killed the process in `{step}`"
            )),
            "{entry}: {report}"
        );
    }
}

/// A case that aborts the process fails alone: the run goes on in a new
/// child and reports every case.
#[test]
fn a_case_that_kills_the_process_fails_alone_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", "");
    let junit = dir.path().join("junit.xml");
    let out = run(
        &[
            &"--plugin",
            &plugin("fixture_raw"),
            &"--config",
            &config,
            &"--filter",
            &"sql::run_reports_changes",
            &"--junit",
            &junit,
        ],
        &[("STRATA_FIXTURE_RAW_PANIC", "run")],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL sql::run_reports_changes")
            && text.contains("the plugin killed the process during this case"),
        "{text}"
    );
    assert!(
        text.contains("help: "),
        "a failure prints the case's troubleshooting text: {text}"
    );
    // Several killing cases in one run: each fails, the rest still run.
    let out = run(
        &[
            &"--plugin",
            &plugin("fixture_raw"),
            &"--config",
            &config,
            &"--suite",
            &"sql",
            &"--junit",
            &junit,
        ],
        &[("STRATA_FIXTURE_RAW_PANIC", "run")],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let killed = text
        .matches("the plugin killed the process during this case")
        .count();
    assert!(killed >= 3, "{killed} cases killed the process: {text}");
    let cases = strata_conformance::cases(&[strata_conformance::Suite::Sql]).len();
    let reported = text
        .lines()
        .filter(|l| {
            ["PASS sql::", "FAIL sql::", "SKIP sql::"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .count();
    assert_eq!(reported, cases, "every SQL case is reported: {text}");
    let report = junit_of(&junit);
    assert_eq!(report.matches("<testcase ").count(), cases, "{report}");
}

/// Expectations: a declared failure that fails is XFAIL (green); one that
/// passes is XPASS (red); an undeclared skip fails an exact list; an
/// unknown case id is refused.
#[test]
fn expectations_judge_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // The raw fixture fails every query (its `query` future panics).
    let config = write(
        dir.path(),
        "raw.toml",
        "[conformance.fail]\n\"sql::get_without_row_is_none\" = \"the fixture's queries panic\"\n",
    );
    let out = run(
        &[
            &"--plugin",
            &plugin("fixture_raw"),
            &"--config",
            &config,
            &"--filter",
            &"sql::get_without_row_is_none",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "an expected failure keeps the run green"
    );
    assert_eq!(
        summary(&out),
        "0 passed, 0 failed, 0 skipped, 1 expected failure"
    );
    assert!(
        stdout(&out).contains("XFAIL sql::get_without_row_is_none"),
        "{}",
        stdout(&out)
    );

    let db = dir.path().join("x.sqlite");
    let sqlite_config = |extra: &str| {
        write(
            dir.path(),
            "sqlite.toml",
            &format!("path = {:?}\n{extra}", db.display().to_string()),
        )
    };
    let config =
        sqlite_config("[conformance.fail]\n\"sql::exec_runs_several_statements\" = \"stale\"\n");
    let out = run(
        &[
            &"--plugin",
            &plugin("sqlite"),
            &"--config",
            &config,
            &"--filter",
            &"sql::exec_runs_several_statements",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unexpected pass fails the run"
    );
    assert!(
        stdout(&out).contains("XPASS sql::exec_runs_several_statements"),
        "{}",
        stdout(&out)
    );

    // An exact skip list that does not list a skip.
    let config = sqlite_config("[conformance]\nskip = {}\n");
    let out = run(
        &[
            &"--plugin",
            &plugin("sqlite"),
            &"--config",
            &config,
            &"--filter",
            &"sql::last_insert_rowid_from_returning",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unlisted skip fails an exact list"
    );
    assert!(
        stdout(&out).contains("not listed under [skip]"),
        "{}",
        stdout(&out)
    );
    // Listed in a separate file: green.
    let expect = write(
        dir.path(),
        "expect.toml",
        "[skip]\n\"sql::last_insert_rowid_from_returning\" = \"no sql.last_insert_rowid.returning\"\n",
    );
    let config = sqlite_config("");
    let out = run(
        &[
            &"--plugin",
            &plugin("sqlite"),
            &"--config",
            &config,
            &"--expect",
            &expect,
            &"--filter",
            &"sql::last_insert_rowid_from_returning",
        ],
        &[],
    );
    common::assert_green(&out);

    let config = sqlite_config("[conformance.fail]\n\"sql::no_such_case\" = \"typo\"\n");
    let out = run(&[&"--plugin", &plugin("sqlite"), &"--config", &config], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        summary(&out).contains("sql::no_such_case"),
        "{}",
        summary(&out)
    );
}

/// A JUnit file that cannot be written makes the run fail (exit 3), even
/// when every case passed.
#[test]
fn an_unwritable_junit_report_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sqlite.toml",
        &format!(
            "path = {:?}\n",
            dir.path().join("x.sqlite").display().to_string()
        ),
    );
    let out = run(
        &[
            &"--plugin",
            &plugin("sqlite"),
            &"--config",
            &config,
            &"--filter",
            &"sql::exec_runs_several_statements",
            &"--junit",
            &dir.path().join("no/such/dir/junit.xml"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot write the JUnit report"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
