//! `cargo test` runs the vector conformance suite against this plugin's
//! `.so` with the `strata-conformance` binary: the same run as CI
//! (`ci/run.sh`), with the same config (`conformance.toml`).
//!
//! The binary is a tool, not a dependency, so `cargo test` does not compile
//! the strata host. It is found at `$STRATA_CONFORMANCE`, else next to this
//! test's target directory (inside the strata workspace), else on `PATH`.
//! Install it once:
//!
//! ```sh
//! cargo install --locked --path <strata checkout>/conformance
//! ```

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// This package's name without `strata-`: the plugin's `NAME`, and the
/// library name (`strata-mydb` builds `libstrata_mydb.so`).
fn plugin_name() -> &'static str {
    let name = env!("CARGO_PKG_NAME");
    name.strip_prefix("strata-").unwrap_or(name)
}

/// The `.so` cargo built for this test run. Cargo compiles the crate's
/// `cdylib` before its integration tests, into `target/<profile>/deps/` next
/// to the test binary; only `cargo build` copies it up to
/// `target/<profile>/`, so the copy there may be older than the code.
///
/// The name comes from `CARGO_PKG_NAME`, so a renamed copy of the template
/// tests its own library, never a template built earlier in the same target
/// dir (and the run below checks the library answers to that name).
fn plugin() -> PathBuf {
    let file = format!(
        "{}strata_{}{}",
        std::env::consts::DLL_PREFIX,
        plugin_name().replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let so = std::env::current_exe().unwrap().with_file_name(file);
    assert!(so.is_file(), "{} not built", so.display());
    so
}

fn conformance_binary() -> PathBuf {
    let exe = format!("strata-conformance{}", std::env::consts::EXE_SUFFIX);
    if let Some(path) = std::env::var_os("STRATA_CONFORMANCE") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<this test> -> target/<profile>/strata-conformance
    let test = std::env::current_exe().unwrap();
    if let Some(beside) = test.parent().and_then(Path::parent).map(|d| d.join(&exe))
        && beside.is_file()
    {
        return beside;
    }
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(&exe))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "strata-conformance not found (set STRATA_CONFORMANCE or put it on PATH): \
             cargo install --locked --path <strata checkout>/conformance"
        )
    })
}

#[test]
fn vector_suite_passes() {
    let bin = conformance_binary();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance.toml");
    let out = Command::new(&bin)
        .arg("--plugin")
        .arg(plugin())
        .arg("--config")
        .arg(&config)
        .args(["--suite", "vector"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown by `cargo test -- --nocapture`, and on failure.
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "{} exited with {}",
        bin.display(),
        out.status
    );
    // The first line names the plugin the library declares: it must be
    // this package's, so a half-renamed copy (package renamed, `NAME` not)
    // fails here instead of passing under another name.
    let expected = format!(": plugin {} ", plugin_name());
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.contains(&expected),
        "the library answers as another plugin (expected `{expected}`): {header}"
    );
    // `N passed, 0 failed, M skipped`, and something ran.
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.contains(" passed, 0 failed, "), "{summary}");
    assert!(!summary.starts_with("0 passed"), "{summary}");
}
