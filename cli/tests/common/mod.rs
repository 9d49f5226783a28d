//! What the CLI tests share: a plugins.toml with one SQLite backend, and
//! running the `strata` binary.

#![allow(dead_code)] // each test file uses its part

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A plugins.toml in `dir` with one backend `local`: SQLite at `dir/db.sqlite`.
pub(crate) fn config(dir: &Path) -> PathBuf {
    let plugins = strata_host::loader::built_plugin("sqlite")
        .expect("build the plugins first: cargo build --release --workspace")
        .parent()
        .unwrap()
        .to_path_buf();
    let file = dir.join("plugins.toml");
    std::fs::write(
        &file,
        format!(
            "plugin_dirs = [{plugins:?}]\n[backends.local]\nplugin = \"sqlite\"\nconfig = {{ path = {:?} }}\n",
            dir.join("db.sqlite")
        ),
    )
    .unwrap();
    file
}

/// Runs `strata --config CFG COMMAND ARGS…`: (success, stdout, stderr).
pub(crate) fn strata(cfg: &Path, command: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--config")
        .arg(cfg)
        .arg(command)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
