//! What every test of this directory shares.

use std::path::{Path, PathBuf};

use strata_host::Strata;

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

/// The plugin on `dir/db.sqlite`, defaults otherwise, as backend `local`.
#[allow(dead_code)] // not every test file opens this way
pub(crate) fn open_default(dir: &Path) -> Strata {
    let cfg = dir.join("plugins.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backends.local]\nlibrary = {:?}\nconfig = {{ path = {:?} }}\n",
            plugin(),
            dir.join("db.sqlite")
        ),
    )
    .unwrap();
    Strata::load(&cfg).unwrap()
}

/// SplitMix64 of `x` as a uniform value in [0, 1): deterministic test data
/// without a random-number crate.
#[allow(dead_code)] // not every test file draws vectors
pub(crate) fn uniform(x: u64) -> f32 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}
