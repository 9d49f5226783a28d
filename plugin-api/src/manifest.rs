//! What a plugin says about itself before it is opened.

use abi_stable::{
    StableAbi,
    std_types::{RSlice, RStr, Tuple2},
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
    /// Transactions of interface
    /// [`SQL_TRANSACTION_BULK_V1`](crate::sql::SQL_TRANSACTION_BULK_V1)
    /// serve `bulk_read` (a query's whole result as one stream, e.g. a
    /// binary `COPY`). Without it a host pages with `query` and never
    /// begins a transaction just to find out (a SQLite `begin` takes the
    /// write lock).
    pub const SQL_BULK_READ: &str = "sql.bulk_read";
    /// `hybrid_query` (dense + full-text, fused by RRF).
    pub const VECTOR_HYBRID: &str = "vector.hybrid";
    /// `scan` with cursors.
    pub const VECTOR_SCAN: &str = "vector.scan";
    /// An approximate index that must keep recall@10 ≥ 0.95 (the recall case runs).
    pub const VECTOR_ANN: &str = "vector.ann";
    /// The index survives closing and reopening the backend.
    pub const VECTOR_PERSISTENT_INDEX: &str = "vector.persistent_index";
    /// SQL statements may carry [`AUTH_CLAIMS`](crate::ext::keys::AUTH_CLAIMS)
    /// or [`AUTH_JWT`](crate::ext::keys::AUTH_JWT): the plugin runs them as
    /// that user (e.g. under row-level security). The host sends those keys
    /// only to a plugin that claims this.
    pub const SQL_AS_USER: &str = "sql.as_user";
    /// Vector data requests (upsert, query, hybrid_query, fetch, delete,
    /// count, scan) may carry the same keys, with the same meaning.
    pub const VECTOR_AS_USER: &str = "vector.as_user";
    /// An acknowledged write may stay invisible to reads for a while
    /// (Pinecone, unless its plugin is told to wait). A *declined* promise:
    /// the vector suite reads what it just wrote, so against a backend
    /// claiming this it skips its cases, naming this capability, instead
    /// of sleeping — run it with the backend's read-after-write option.
    pub const VECTOR_EVENTUALLY_CONSISTENT: &str = "vector.eventually_consistent";
}

/// A plugin's description of itself, read before anything is opened.
///
/// A prefix type (read through a `'static` reference), frozen for 1.x:
/// new entries go into [`Manifest::ext`]. Fields are read through the accessor
/// methods of [`ManifestRef`] (`m.name()`, …), so every field is `Copy`:
/// a plugin builds its manifest once and leaks it (it lives as long as the
/// library, which is never unloaded). The plugin-api version a
/// plugin was built against is not a field: the library header carries it,
/// and the host reports that one (a manifest could claim anything).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ManifestRef)))]
pub struct Manifest {
    /// Short name, e.g. `sqlite`; the file is `libstrata_<name>.so`.
    pub name: RStr<'static>,
    /// The plugin's own version (its crate version).
    pub version: RStr<'static>,
    /// One line describing the backend.
    pub description: RStr<'static>,
    /// Bit set of [`contracts`]; unknown bits are ignored.
    pub contracts: u32,
    /// Capability flags (see [`capabilities`]) every backend of the plugin
    /// may have; an opened backend reports its own ([`crate::Backend::capabilities`]).
    pub capabilities: RSlice<'static, RStr<'static>>,
    /// The SQL dialect name (`sqlite`, `postgres`, …); decides how the host
    /// rewrites placeholders. Empty for plugins without the SQL contract.
    pub dialect: RStr<'static>,
    /// The JSON Schema of the plugin's config table (generated with `schemars`).
    pub config_schema: RStr<'static>,
    /// Further manifest entries of later 1.x releases: documented keys,
    /// JSON-text values (see [`crate::ext`]). The manifest gains no field
    /// within 1.x: abi_stable refuses a library whose prefix type has fewer
    /// fields than the host's, so a new field would lock out every plugin
    /// built before it.
    #[sabi(last_prefix_field)]
    pub ext: RSlice<'static, Tuple2<RStr<'static>, RStr<'static>>>,
}

impl ManifestRef {
    /// The JSON text of extension entry `key`.
    pub fn ext_get(self, key: &str) -> Option<&'static str> {
        self.ext()
            .iter()
            .find(|e| e.0.as_str() == key)
            .map(|e| e.1.as_str())
    }
}

impl ManifestRef {
    /// Whether the plugin implements all contracts in `bits`.
    pub fn implements(self, bits: u32) -> bool {
        self.contracts() & bits == bits
    }

    /// The parsed SQL dialect, if the name is one the host knows.
    pub fn sql_dialect(self) -> Option<Dialect> {
        Dialect::from_name(self.dialect().as_str())
    }
}
