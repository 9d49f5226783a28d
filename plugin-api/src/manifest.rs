//! What a plugin says about itself before it is opened.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

use crate::placeholders::Dialect;

/// Bit flags naming the contracts a plugin implements.
pub mod contracts {
    /// The SQL contract ([`crate::sql::SqlConnection`]).
    pub const SQL: u32 = 1;
    /// The vector-store contract ([`crate::vector::VectorStore`]).
    pub const VECTOR: u32 = 1 << 1;
    /// The blob-store contract ([`crate::blob::BlobStore`], through `Backend::blobs`).
    pub const BLOB: u32 = 1 << 2;

    /// The names of the contracts set in `bits`, in a fixed order.
    pub fn names(bits: u32) -> Vec<&'static str> {
        [(SQL, "sql"), (VECTOR, "vector"), (BLOB, "blob")]
            .into_iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, name)| name)
            .collect()
    }
}

/// Well-known capability flags. A plugin lists the ones it supports in
/// [`Manifest::capabilities`]; the conformance suite skips a case whose
/// capability is missing and says which one.
pub mod capabilities {
    /// `begin` / `commit` / `rollback`.
    pub const SQL_TRANSACTIONS: &str = "sql.transactions";
    /// Nested transactions as savepoints.
    pub const SQL_SAVEPOINTS: &str = "sql.savepoints";
    /// `stream` returns a cursor that does not load the whole result.
    pub const SQL_STREAMING: &str = "sql.streaming";
    /// `run` reports the rowid of the last insert without `RETURNING`.
    pub const SQL_LAST_INSERT_ROWID: &str = "sql.last_insert_rowid";
    /// `run` reports the first column of the last row an `INSERT … RETURNING`
    /// returned as `last_insert_rowid` (backends without implicit rowids).
    pub const SQL_LAST_INSERT_ROWID_RETURNING: &str = "sql.last_insert_rowid.returning";
    /// Several tasks may read and write at once through one handle.
    pub const SQL_CONCURRENT: &str = "sql.concurrent";
    /// The backend keeps what was written after the handle is closed and reopened.
    pub const SQL_DURABLE: &str = "sql.durable";
    /// `hybrid_query` (dense + full-text, fused by RRF).
    pub const VECTOR_HYBRID: &str = "vector.hybrid";
    /// `scan` with cursors.
    pub const VECTOR_SCAN: &str = "vector.scan";
    /// An approximate index that must keep recall@10 ≥ 0.95 (the recall case runs).
    pub const VECTOR_ANN: &str = "vector.ann";
    /// The index survives closing and reopening the backend.
    pub const VECTOR_PERSISTENT_INDEX: &str = "vector.persistent_index";
}

/// A plugin's description of itself.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Manifest {
    /// Short name, e.g. `sqlite`; the file is `libstrata_<name>.so`.
    pub name: RString,
    /// The plugin's own version (its crate version).
    pub version: RString,
    /// The `strata-plugin-api` version the plugin was built against.
    pub api_version: RString,
    /// One line describing the backend.
    pub description: RString,
    /// Bit set of [`contracts`].
    pub contracts: u32,
    /// Capability flags (see [`capabilities`]).
    pub capabilities: RVec<RString>,
    /// The SQL dialect name (`sqlite`, `postgres`, …); decides how the host
    /// rewrites placeholders. Empty for plugins without the SQL contract.
    pub dialect: RString,
    /// The JSON Schema of the plugin's config table (generated with `schemars`).
    pub config_schema: RString,
}

impl Manifest {
    /// Whether the plugin implements all contracts in `bits`.
    pub fn implements(&self, bits: u32) -> bool {
        self.contracts & bits == bits
    }

    /// Whether the plugin lists capability `name`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c.as_str() == name)
    }

    /// The parsed SQL dialect, if the name is one the host knows.
    pub fn sql_dialect(&self) -> Option<Dialect> {
        Dialect::from_name(self.dialect.as_str())
    }
}
