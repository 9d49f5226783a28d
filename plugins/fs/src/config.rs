//! The fs plugin's configuration.

use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of one fs backend (`[backends.NAME.config]`).
///
/// ```toml
/// [backends.local-backups]
/// plugin = "fs"
/// config = { root = "backups" }   # relative to plugins.toml's directory
/// ```
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// The directory holding the objects: created (with its parents) when
    /// missing; a relative path is taken from the directory of
    /// `plugins.toml`. Keys are paths under it (see the crate docs).
    pub root: String,
    /// `fsync` each object's file and its directory before the write
    /// returns (default `true`): a backup the host recorded as written
    /// survives a power cut. `false` leaves it to the kernel's writeback.
    #[serde(default = "yes")]
    pub sync: bool,
}

fn yes() -> bool {
    true
}
