//! The SQL contract.
//!
//! Every method takes its request by value and returns an
//! [`async_ffi::FfiFuture`] that is `'static`: it owns what it
//! needs, so plugin state lives behind `Arc`s inside the implementing type.
//! Methods must not panic, before or while returning the future: abi_stable
//! aborts on a panic in a trait-object method, and async-ffi re-raises a
//! panic in `poll` on the host. (The plugin kit guards both.)
//!
//! Placeholders arrive already rewritten by the host into the plugin's
//! [`Dialect`](crate::placeholders::Dialect), with `params` in order.

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, ROption, RResult, RString, RVec},
};
use async_ffi::FfiFuture;

use crate::{PluginError, Value, ext::Extensions};

/// One statement and its positional parameters.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Statement {
    /// The SQL text, placeholders in the plugin's dialect.
    pub sql: RString,
    /// Parameter values, first placeholder first.
    pub params: RVec<Value>,
    /// Further request fields of later 1.x releases.
    pub ext: Extensions,
}

impl Statement {
    /// A statement with parameters.
    pub fn new(sql: impl Into<RString>, params: impl Into<RVec<Value>>) -> Self {
        Statement {
            sql: sql.into(),
            params: params.into(),
            ext: Extensions::new(),
        }
    }
}

/// What a write did.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// Rows inserted, updated or deleted by the statement.
    pub changes: u64,
    /// The rowid (or `RETURNING` id) of the last inserted row, where the backend has one.
    pub last_insert_rowid: ROption<i64>,
    /// Further result fields of later 1.x releases.
    pub ext: Extensions,
}

/// A block of result rows: column names once, values row-major.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct Rows {
    /// Column names in result order.
    pub columns: RVec<RString>,
    /// `row_count * columns.len()` values, row after row.
    pub values: RVec<Value>,
    /// Number of rows (kept explicitly so a zero-column result still counts rows).
    pub row_count: u64,
    /// Further result fields of later 1.x releases (e.g. declared column
    /// types as annotations: the five value kinds are frozen, richer types
    /// travel as annotations on them).
    pub ext: Extensions,
}

/// A future crossing the boundary with a plugin result.
pub type PluginFuture<T> = FfiFuture<RResult<T, PluginError>>;

/// The SQL contract: one handle per opened backend, safe to share between tasks.
#[sabi_trait]
pub trait SqlConnection: Send + Sync {
    /// Runs a script of one or more statements without parameters.
    fn exec(&self, script: RString) -> PluginFuture<()>;

    /// Runs one statement, reporting changed rows and the last insert id.
    fn run(&self, stmt: Statement) -> PluginFuture<RunResult>;

    /// Runs a query and returns at most `max_rows` rows (`0` = all).
    fn query(&self, stmt: Statement, max_rows: u64) -> PluginFuture<Rows>;

    /// Opens a cursor that yields the result in batches without loading it all.
    fn stream(&self, stmt: Statement) -> PluginFuture<SqlCursorBox>;

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    fn begin(&self) -> PluginFuture<SqlTransactionBox>;

    /// Closes the handle; every later call returns [`ErrorKind::Closed`](crate::ErrorKind::Closed).
    fn close(&self) -> PluginFuture<()>;

    /// Writes many rows in one transaction, the fast path of migrations and
    /// imports (Postgres: binary `COPY`; SQLite: one prepared statement).
    /// Returns the rows inserted or changed. The write is atomic (rows and
    /// `then` together) but may become durable only with the backend's next
    /// synchronous commit (Postgres commits it with `synchronous_commit =
    /// off`). A plugin without a bulk path answers
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) and the
    /// host falls back to multi-row `INSERT`s; so may a plugin for a column
    /// type its bulk path cannot encode.
    #[sabi(last_prefix_field)]
    fn bulk_write(&self, request: BulkWrite) -> PluginFuture<u64>;
}

/// Rows for [`SqlConnection::bulk_write`].
///
/// With `key_columns` the write is an upsert: a row whose key exists
/// replaces the other columns, and counts as written only when a value
/// differs (so writing the same rows twice reports 0 the second time).
/// Values use the plugin's own mapping for the column's type (see
/// [`Value`]); vector columns also accept little-endian `f32` blobs.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct BulkWrite {
    /// The table, unquoted (the plugin quotes it).
    pub table: RString,
    /// Column names, in value order.
    pub columns: RVec<RString>,
    /// The conflict target (the primary key); empty = plain insert.
    pub key_columns: RVec<RString>,
    /// `row_count * columns.len()` values, row after row.
    pub values: RVec<Value>,
    /// Number of rows.
    pub row_count: u64,
    /// A statement run in the same transaction after the rows (a
    /// checkpoint), in the plugin's dialect; its result is discarded.
    pub then: ROption<Statement>,
    /// Further request fields of later 1.x releases.
    pub ext: Extensions,
}

/// A handle to an opened SQL backend.
pub type SqlConnectionBox = SqlConnection_TO<'static, RBox<()>>;

/// A transaction pinned to one connection.
///
/// Dropping it without [`commit`](SqlTransaction::commit) rolls it back.
/// Savepoints nest by depth: `savepoint` returns the new depth (1 for the
/// first), `release(d)` keeps the work since savepoint `d`, `rollback_to(d)`
/// undoes it; both end savepoint `d` and every deeper one.
#[sabi_trait]
pub trait SqlTransaction: Send + Sync {
    /// As [`SqlConnection::exec`], inside the transaction.
    fn exec(&self, script: RString) -> PluginFuture<()>;
    /// As [`SqlConnection::run`], inside the transaction.
    fn run(&self, stmt: Statement) -> PluginFuture<RunResult>;
    /// As [`SqlConnection::query`], inside the transaction.
    fn query(&self, stmt: Statement, max_rows: u64) -> PluginFuture<Rows>;
    /// Opens a nested savepoint and returns its depth.
    fn savepoint(&self) -> PluginFuture<u32>;
    /// Releases savepoint `depth` (and deeper ones), keeping their work.
    fn release(&self, depth: u32) -> PluginFuture<()>;
    /// Rolls back to savepoint `depth` and ends it (and deeper ones).
    fn rollback_to(&self, depth: u32) -> PluginFuture<()>;
    /// Commits; later calls return `Closed`.
    fn commit(&self) -> PluginFuture<()>;
    /// Rolls back; later calls return `Closed`.
    #[sabi(last_prefix_field)]
    fn rollback(&self) -> PluginFuture<()>;
}

/// An open transaction.
pub type SqlTransactionBox = SqlTransaction_TO<'static, RBox<()>>;

/// A streaming result.
#[sabi_trait]
pub trait SqlCursor: Send + Sync {
    /// The column names of the result.
    fn columns(&self) -> RVec<RString>;
    /// The next block of at most `max_rows` rows; an empty block means the end.
    #[sabi(last_prefix_field)]
    fn next(&self, max_rows: u32) -> PluginFuture<Rows>;
}

/// An open cursor; dropping it releases the connection it holds.
pub type SqlCursorBox = SqlCursor_TO<'static, RBox<()>>;

/// The name of the [`SqlTransactionBulk`] interface (1.1), found with
/// [`Backend::interface`](crate::Backend::interface). A plugin built before
/// it, or one without a bulk path inside transactions, answers "none", and
/// the host writes a transaction's rows with `INSERT`s as 1.0 did.
pub const SQL_TRANSACTION_BULK_V1: &str = "strata.sql.transaction_bulk.v1";

/// Interface [`SQL_TRANSACTION_BULK_V1`]: transactions that can take
/// [`BulkWrite`]s and stream whole results out. [`SqlConnection::bulk_write`] (1.0) commits in a
/// transaction of its own; a restore that creates tables, loads them and
/// fixes their sequences and indexes all-or-nothing needs the rows inside
/// *its* transaction, and neither [`SqlConnection`] nor [`SqlTransaction`]
/// can grow within 1.x.
#[sabi_trait]
pub trait SqlTransactionBulk: Send + Sync {
    /// Starts a transaction exactly as [`SqlConnection::begin`] does, and
    /// hands out, with it, a handle for bulk writes inside it.
    #[sabi(last_prefix_field)]
    fn begin(&self) -> PluginFuture<BulkTransaction>;
}

/// The [`SqlTransactionBulk`] interface as a boxed trait object.
pub type SqlTransactionBulkBox = SqlTransactionBulk_TO<'static, RBox<()>>;

/// A transaction and its bulk handle ([`SqlTransactionBulk::begin`]).
///
/// The two share the transaction: it ends (committed, rolled back, or
/// rolled back when dropped) through `transaction`, and the plugin keeps it
/// alive until both are dropped; `bulk` answers `closed` once it ended.
#[repr(C)]
#[derive(StableAbi)]
pub struct BulkTransaction {
    /// The transaction, as [`SqlConnection::begin`] returns it.
    pub transaction: SqlTransactionBox,
    /// Bulk writes inside it.
    pub bulk: TransactionBulkBox,
    /// Further fields of later 1.x releases.
    pub ext: Extensions,
}

/// Bulk writes and reads inside one transaction ([`BulkTransaction::bulk`]).
#[sabi_trait]
pub trait TransactionBulk: Send + Sync {
    /// Runs query `stmt` (no parameters) inside the transaction and
    /// streams its whole result the fastest way the backend has (Postgres:
    /// binary `COPY (query) TO STDOUT`, decoded by the plugin), with the
    /// values and column names [`SqlTransaction::query`] would return. It
    /// reads the transaction's snapshot, as its other statements do; the
    /// transaction runs nothing else until the cursor is read to its end
    /// or dropped. `Unsupported` (no fast path, or a column type it cannot
    /// decode) comes before any row: the caller then pages with `query`.
    /// A plugin whose transactions serve this claims
    /// [`SQL_BULK_READ`](crate::capabilities::SQL_BULK_READ), so a host
    /// knows before it begins a transaction for it; without the claim
    /// strata's backups, migrations and verifications page with `query`
    /// and never call it.
    fn bulk_read(&self, stmt: Statement) -> PluginFuture<SqlCursorBox>;

    /// As [`SqlConnection::bulk_write`] (same request, same upsert and
    /// counting rules, `then` run after the rows), but inside the
    /// transaction: its rows are visible to the transaction's later
    /// statements and committed or rolled back with it; durability is the
    /// transaction's own.
    ///
    /// A failed bulk write takes back its own rows and leaves the
    /// transaction usable (the Postgres plugin writes under a savepoint),
    /// so the caller can write the same rows another way. `Unsupported`
    /// (a column type the bulk path cannot encode) is answered before any
    /// row is written.
    #[sabi(last_prefix_field)]
    fn bulk_write(&self, request: BulkWrite) -> PluginFuture<u64>;
}

/// A [`TransactionBulk`] handle as a boxed trait object.
pub type TransactionBulkBox = TransactionBulk_TO<'static, RBox<()>>;
