//! What the conformance tests share: running the `strata-conformance`
//! binary (the way plugin authors and scripts/test run the suites) and
//! finding the built plugins and the expectation files.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// A built plugin library (`cargo build --release --workspace` puts them
/// next to the test binaries' directory).
pub(crate) fn plugin(name: &str) -> PathBuf {
    strata_host::loader::built_plugin(name)
        .unwrap_or_else(|e| panic!("{e}: run `cargo build --release --workspace` first"))
}

/// `conformance/expected/NAME.toml`.
pub(crate) fn expected(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("expected")
        .join(format!("{name}.toml"))
}

/// Runs the binary with `args` and `env`, echoing what it printed (shown
/// by `cargo test -- --nocapture` and on failure).
pub(crate) fn run(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata-conformance"));
    for a in args {
        cmd.arg(a.as_ref());
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run strata-conformance");
    println!(
        "--- stdout\n{}--- stderr\n{}--- {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    );
    out
}

/// The run's stdout.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The run's last stdout line: the summary.
pub(crate) fn summary(out: &Output) -> String {
    stdout(out).lines().last().unwrap_or_default().to_string()
}

/// Asserts a green run: exit 0 and `0 failed` in the summary.
pub(crate) fn assert_green(out: &Output) {
    let s = summary(out);
    assert!(
        out.status.success() && s.contains(" passed, 0 failed, "),
        "exit {} with summary {s:?}",
        out.status
    );
}
