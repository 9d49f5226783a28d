//! The SQLite plugin's configuration.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use strata_plugin::OpenContext;

/// Configuration of one SQLite backend (`[backends.NAME.config]`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file, created with its parent directories if missing, or
    /// `:memory:` for a private in-memory database. A relative path is taken
    /// from the directory of `plugins.toml` (from the working directory of
    /// the process when the host does not say where that is); a `file:` URI
    /// is passed to SQLite as written.
    pub path: String,
    /// How long a statement waits for a lock held by another connection or
    /// process before failing with `busy`, in milliseconds.
    #[serde(default = "default_busy_timeout_ms")]
    #[schemars(range(max = 600000))]
    pub busy_timeout_ms: u32,
    /// How long a call waits for this backend's one writer connection while
    /// another holds it (an open transaction, a stream of a writing
    /// statement not read to its end, a long write such as an inline index
    /// build) before failing with `busy`, in milliseconds; `0` waits
    /// without limit. A call made on the backend from inside one of its own
    /// open transactions would otherwise wait for itself forever.
    #[serde(default = "default_writer_timeout_ms")]
    #[schemars(range(max = 3600000))]
    pub writer_timeout_ms: u32,
    /// Open the database read-only: every write fails, nothing is created.
    ///
    /// SQLite's read-only mode is used (`mode=ro`): reads take the usual
    /// locks and see other processes' commits as they land, those still in
    /// the WAL included. For a WAL database that needs the `-shm` file
    /// beside it; in a directory this process cannot write, a database
    /// closed cleanly (no `-wal`, no `-shm`) is opened `immutable=1`
    /// instead: read without locks, its file taken as all there is —
    /// correct while no process writes it (one that can write the
    /// directory must not, while it is read this way). A `-wal` holding
    /// commits without its `-shm` there cannot be read and is refused,
    /// saying so.
    #[serde(default)]
    pub read_only: bool,
    /// Prepared statements kept per connection.
    #[serde(default = "default_statement_cache")]
    #[schemars(range(min = 0, max = 10000))]
    pub statement_cache: u32,
    /// Reader connections kept open for concurrent reads (WAL lets them run
    /// beside the one writer).
    #[serde(default = "default_max_readers")]
    #[schemars(range(min = 1, max = 256))]
    pub max_readers: u32,
    /// `PRAGMA synchronous` for the writer: `off`, `normal` (default, safe with WAL) or `full`.
    #[serde(default)]
    pub synchronous: Synchronous,
    /// Enforce foreign keys (`PRAGMA foreign_keys`).
    #[serde(default = "yes")]
    pub foreign_keys: bool,
    /// Build an HNSW index for a vector collection once it holds this many
    /// vectors (`0` = never: always exact search).
    #[serde(default = "default_hnsw_threshold")]
    pub hnsw_threshold: u32,
    /// HNSW links per node (`M`); more links = better recall, bigger index.
    #[serde(default = "default_hnsw_m")]
    #[schemars(range(min = 4, max = 64))]
    pub hnsw_m: u32,
    /// Candidates considered while building (`ef_construction`).
    #[serde(default = "default_hnsw_ef_construction")]
    #[schemars(range(min = 16, max = 2000))]
    pub hnsw_ef_construction: u32,
    /// Candidates considered per query (`ef_search`; a query may override it
    /// with the option `{"ef_search": N}`).
    #[serde(default = "default_hnsw_ef_search")]
    #[schemars(range(min = 1, max = 10000))]
    pub hnsw_ef_search: u32,
    /// Where an index is built from scratch (past the threshold, or when its
    /// sidecar is missing, stale beyond repair or corrupt): `background`
    /// (default: a thread builds it while queries are answered by exact
    /// search, then it takes over) or `inline` (the query or write that
    /// needs it waits for the build, which runs on the plugin's blocking
    /// pool like the call: tens of seconds at 100K × 384).
    #[serde(default)]
    pub hnsw_build: HnswBuild,
}

/// Where HNSW builds run ([`SqliteConfig::hnsw_build`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HnswBuild {
    /// On a background thread; exact search answers until the index is ready.
    #[default]
    Background,
    /// In the call that needs the index.
    Inline,
}

/// `PRAGMA synchronous` levels.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// No fsync; fastest, a power cut may lose recent commits.
    Off,
    /// fsync at checkpoints; with WAL a power cut may lose the last commits but never corrupts.
    #[default]
    Normal,
    /// fsync on every commit.
    Full,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

fn default_busy_timeout_ms() -> u32 {
    5_000
}
// As sqlx's pool acquire timeout: long enough for queued writers behind a
// bulk load, short enough that a self-deadlock is an error, not a hang.
fn default_writer_timeout_ms() -> u32 {
    30_000
}
fn default_statement_cache() -> u32 {
    128
}
fn default_max_readers() -> u32 {
    8
}
fn default_hnsw_threshold() -> u32 {
    1_000
}
fn default_hnsw_m() -> u32 {
    16
}
// 100 / 128: at 100K × 384 on 2 cores the plugin's HNSW builds in ~15 s, and
// ef_search 128 answers at recall@10 0.99 (benchmarks/vectors-sqlite.md).
fn default_hnsw_ef_construction() -> u32 {
    100
}
fn default_hnsw_ef_search() -> u32 {
    128
}
fn yes() -> bool {
    true
}

impl SqliteConfig {
    /// The database file, a relative path resolved against the directory of
    /// `plugins.toml` ([`OpenContext::resolve`]), or `None` for an in-memory
    /// database.
    pub fn file(&self, ctx: &OpenContext) -> Option<PathBuf> {
        match self.path.as_str() {
            ":memory:" => None,
            uri if uri.starts_with("file:") => Some(PathBuf::from(uri)),
            path => Some(ctx.resolve(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &str) -> SqliteConfig {
        strata_plugin::parse_config("sqlite", &serde_json::json!({ "path": path }).to_string())
            .unwrap()
    }

    #[test]
    fn a_relative_path_is_taken_from_the_config_directory() {
        let mut ctx = OpenContext::default();
        ctx.base_dir = Some("/etc/strata".into());
        assert_eq!(
            config("data/brain.sqlite").file(&ctx),
            Some(PathBuf::from("/etc/strata/data/brain.sqlite"))
        );
        assert_eq!(
            config("/var/brain.sqlite").file(&ctx),
            Some(PathBuf::from("/var/brain.sqlite"))
        );
        assert_eq!(
            config("file:brain.sqlite?mode=ro").file(&ctx),
            Some(PathBuf::from("file:brain.sqlite?mode=ro"))
        );
        assert_eq!(config(":memory:").file(&ctx), None);
        // Without a base directory, as from a host that does not say.
        assert_eq!(
            config("brain.sqlite").file(&OpenContext::default()),
            Some(PathBuf::from("brain.sqlite"))
        );
    }
}
