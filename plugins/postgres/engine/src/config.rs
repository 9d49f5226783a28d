//! The Postgres plugin's configuration.

use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of one Postgres backend (`[backends.NAME.config]`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` (never printed).
    pub url: String,
    /// The schema this backend works in (one per agent or tenant), created on
    /// demand; every connection's `search_path` is this schema, then `public`
    /// (where extensions such as pgvector live).
    #[serde(default)]
    pub schema: Option<String>,
    /// Connections in the pool. Outside pooler-safe mode one more is kept
    /// out of the pool for one-shot statements (see `oneshot.rs`).
    #[serde(default = "default_pool_size")]
    #[schemars(range(min = 1, max = 1000))]
    pub pool_size: u32,
    /// How long to wait for a connection (also: to establish one, and at
    /// close for the connections still in use), in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `statement_timeout` for every statement, in milliseconds (0 = none).
    #[serde(default)]
    pub statement_timeout_ms: u64,
    /// Isolation level of strata transactions. `serializable` (default)
    /// matches SQLite: a read-modify-write transaction either sees no
    /// concurrent change or fails with `busy` (SQLSTATE 40001) and can be
    /// retried; the weaker levels can lose updates silently.
    #[serde(default)]
    pub isolation: Isolation,
    /// TLS: `disable`, `allow`, `prefer`, `require` (encrypt, do not verify
    /// the certificate), `verify-ca` (and check it is signed by a trusted
    /// CA) or `verify-full` (and that it names the host). Unset: the URL's
    /// `sslmode`, else `prefer`, as libpq does.
    #[serde(default)]
    pub ssl_mode: Option<SslMode>,
    /// A PEM file of CA certificates trusted for `verify-ca` /
    /// `verify-full` (default: the system's roots).
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
    /// `application_name` reported to the server.
    #[serde(default = "default_application_name")]
    pub application_name: String,
    /// Rows at which a collection's HNSW index is built, by the first query
    /// at or past it (below it queries are exact); 0 = create the index with
    /// the collection and maintain it on every insert.
    #[serde(default = "default_hnsw_threshold")]
    pub hnsw_threshold: u32,
    /// `maintenance_work_mem` for an index build, in MiB (the graph should
    /// fit: roughly rows × (dimension × 4 + m × 16) bytes).
    #[serde(default = "default_hnsw_build_memory_mb")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub hnsw_build_memory_mb: u32,
    /// HNSW `m` of new collections (links per node; pgvector: 2..=100).
    #[serde(default = "default_hnsw_m")]
    #[schemars(range(min = 2, max = 100))]
    pub hnsw_m: u32,
    /// HNSW `ef_construction` of new collections (pgvector: 4..=1000, at least 2 × m).
    #[serde(default = "default_hnsw_ef_construction")]
    #[schemars(range(min = 4, max = 1000))]
    pub hnsw_ef_construction: u32,
    /// `hnsw.ef_search` of every connection (candidates explored per
    /// query; a query may ask for another with the `ef_search` option).
    #[serde(default = "default_hnsw_ef_search")]
    #[schemars(range(min = 1, max = 1000))]
    pub hnsw_ef_search: u32,
    /// The text search configuration of new collections' `tsvector`
    /// (`simple`: no stemming, any language; or `english`, `french`, …).
    #[serde(default = "default_text_search_config")]
    pub text_search_config: String,
}

/// TLS modes, named as libpq names them.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS if the server offers it, else plain.
    Prefer,
    /// TLS or fail; the certificate is not checked.
    Require,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// `verify-ca`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    pub(crate) fn sqlx(self) -> sqlx::postgres::PgSslMode {
        use sqlx::postgres::PgSslMode as M;
        match self {
            SslMode::Disable => M::Disable,
            SslMode::Allow => M::Allow,
            SslMode::Prefer => M::Prefer,
            SslMode::Require => M::Require,
            SslMode::VerifyCa => M::VerifyCa,
            SslMode::VerifyFull => M::VerifyFull,
        }
    }
}

/// Transaction isolation levels.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// `SERIALIZABLE`.
    #[default]
    Serializable,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `READ COMMITTED` (PostgreSQL's own default).
    ReadCommitted,
}

impl Isolation {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Isolation::Serializable => "SERIALIZABLE",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::ReadCommitted => "READ COMMITTED",
        }
    }
}

fn default_pool_size() -> u32 {
    10
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_application_name() -> String {
    "strata".into()
}
fn default_hnsw_threshold() -> u32 {
    1000
}
fn default_hnsw_build_memory_mb() -> u32 {
    256
}
fn default_hnsw_m() -> u32 {
    16
}
fn default_hnsw_ef_construction() -> u32 {
    100
}
fn default_hnsw_ef_search() -> u32 {
    128
}
fn default_text_search_config() -> String {
    "simple".into()
}

/// Checks a schema name: `[A-Za-z_][A-Za-z0-9_]{0,62}` (it is quoted, never spliced raw).
pub(crate) fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
