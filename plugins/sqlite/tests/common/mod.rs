//! What every test of this directory shares.

use std::path::PathBuf;

/// The plugin `.so` cargo built for this test run. Cargo compiles the
/// crate's `cdylib` before its integration tests, into `target/<profile>/deps/`
/// next to the test binary; only `cargo build` copies it up to
/// `target/<profile>/`, so the copy there may be older than the code under
/// test (`loader::built_plugin` takes the newer of the two; this takes the
/// one built for this run, always).
pub(crate) fn plugin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let so = exe.with_file_name(strata_host::loader::library_file_name("sqlite"));
    assert!(so.is_file(), "{} not built", so.display());
    so
}
