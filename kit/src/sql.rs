//! The SQL contract: [`SqlBackend`], its [`SqlTransaction`] and [`SqlCursor`].
//!
//! Placeholders arrive already rewritten by the host into the plugin's
//! dialect ([`Plugin::DIALECT`](crate::Plugin::DIALECT)), with
//! [`Statement::params`] in order. Every method takes `&self`: a handle is
//! shared by every task of the application, so state lives behind `Arc`s
//! and locks inside the implementing type.

use std::future::Future;

use crate::{Extensions, PluginError, PluginResult, Runs, Value};

/// One statement and its positional parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// The SQL text, placeholders in the plugin's dialect.
    pub sql: String,
    /// Parameter values, first placeholder first.
    pub params: Vec<Value>,
    /// The request's extension entries as the host sent them (e.g.
    /// [`crate::ext_keys::AUTH_CLAIMS`]: run as this user).
    /// A plugin reads the keys it knows and ignores the others.
    pub ext: Extensions,
}

impl Statement {
    /// A statement with parameters (no extension entries).
    pub fn new(sql: impl Into<String>, params: impl Into<Vec<Value>>) -> Self {
        Statement {
            sql: sql.into(),
            params: params.into(),
            ext: Extensions::new(),
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Rows inserted, updated or deleted by the statement.
    pub changes: u64,
    /// The rowid (or `RETURNING` id) of the last inserted row, where the backend has one.
    pub last_insert_rowid: Option<i64>,
}

/// A block of result rows: column names once, values row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    /// Column names in result order.
    pub columns: Vec<String>,
    /// `row_count * columns.len()` values, row after row.
    pub values: Vec<Value>,
    /// Number of rows (kept explicitly so a zero-column result still counts rows).
    pub row_count: u64,
}

/// Rows for [`SqlBackend::bulk_write`].
///
/// With `key_columns` the write is an upsert: a row whose key exists
/// replaces the other columns, and counts as written only when a value
/// differs (so writing the same rows twice reports 0 the second time).
#[derive(Clone, Debug, PartialEq)]
pub struct BulkWrite {
    /// The table, unquoted (the plugin quotes it).
    pub table: String,
    /// Column names, in value order.
    pub columns: Vec<String>,
    /// The conflict target (the primary key); empty = plain insert.
    pub key_columns: Vec<String>,
    /// `row_count * columns.len()` values, row after row.
    pub values: Vec<Value>,
    /// Number of rows.
    pub row_count: u64,
    /// A statement run in the same transaction after the rows (a
    /// checkpoint), in the plugin's dialect; its result is discarded.
    pub then: Option<Statement>,
}

impl BulkWrite {
    /// Checks the request's shape: at least one column and exactly
    /// `row_count × columns.len()` values. Returns the row width.
    ///
    /// Call it before touching the backend, so a malformed request is
    /// refused the same way (`invalid_input`, naming the table and the
    /// counts) whichever plugin receives it.
    pub fn check_shape(&self) -> PluginResult<usize> {
        let width = self.columns.len();
        if width == 0 || self.values.len() as u64 != self.row_count.saturating_mul(width as u64) {
            return Err(PluginError::invalid_input(format!(
                "bulk write to {}: {} values for {} rows of {} columns",
                self.table,
                self.values.len(),
                self.row_count,
                width
            )));
        }
        Ok(width)
    }
}

/// Which SQL call the kit is about to run, with its request, for the
/// `runs` methods to decide where it runs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug)]
pub enum SqlCall<'a> {
    /// `exec` (of the backend or of a transaction).
    Exec(&'a str),
    /// `run`.
    Run(&'a Statement),
    /// `query`, with its row limit (`0` = all).
    Query(&'a Statement, u64),
    /// `stream`.
    Stream(&'a Statement),
    /// `begin`.
    Begin,
    /// `bulk_write`.
    BulkWrite(&'a BulkWrite),
    /// A transaction's `bulk_read`.
    BulkRead(&'a Statement),
    /// A cursor's `next`, with its batch size.
    Next(u32),
    /// A transaction's `savepoint`, `release` or `rollback_to`.
    Savepoint,
    /// A transaction's `commit`.
    Commit,
    /// A transaction's `rollback`.
    Rollback,
    /// `close`.
    Close,
}

/// The SQL contract: one handle per opened backend, shared by every task.
///
/// Required: `exec`, `run`, `query`, `stream`, `begin`, `close`. Provided:
/// `bulk_write` (answers `unsupported`, and the host falls back to
/// multi-row `INSERT`s) and `runs` (every call on the blocking pool).
pub trait SqlBackend: Send + Sync + 'static {
    /// An open transaction.
    type Transaction: SqlTransaction;
    /// An open streaming result.
    type Cursor: SqlCursor;

    /// Runs a script of one or more statements without parameters.
    fn exec(&self, script: String) -> impl Future<Output = PluginResult<()>> + Send;

    /// Runs one statement, reporting changed rows and the last insert id.
    fn run(&self, stmt: Statement) -> impl Future<Output = PluginResult<RunResult>> + Send;

    /// Runs a query and returns at most `max_rows` rows (`0` = all).
    fn query(
        &self,
        stmt: Statement,
        max_rows: u64,
    ) -> impl Future<Output = PluginResult<Rows>> + Send;

    /// Opens a cursor that yields the result in batches without loading it all.
    fn stream(&self, stmt: Statement) -> impl Future<Output = PluginResult<Self::Cursor>> + Send;

    /// Starts a write transaction.
    fn begin(&self) -> impl Future<Output = PluginResult<Self::Transaction>> + Send;

    /// Closes the handle; every later call returns `closed`.
    fn close(&self) -> impl Future<Output = PluginResult<()>> + Send;

    /// Writes many rows in one transaction, the fast path of migrations and
    /// imports; returns the rows inserted or changed. The write is atomic
    /// (rows and `then` together). The default answers `unsupported`.
    fn bulk_write(&self, request: BulkWrite) -> impl Future<Output = PluginResult<u64>> + Send {
        drop(request);
        async { Err(PluginError::unsupported("this plugin has no bulk write")) }
    }

    /// Whether the transactions implement
    /// [`SqlTransaction::bulk_write`]: then the kit offers the interface
    /// `strata.sql.transaction_bulk.v1`
    /// (`strata_plugin_api::sql::SQL_TRANSACTION_BULK_V1`), and the host
    /// loads a restore's rows through it. Off by default.
    const TRANSACTION_BULK: bool = false;

    /// Where `call` runs (see [`Runs`]); the blocking pool by default.
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        let _ = call;
        Runs::Blocking
    }
}

/// A transaction pinned to one connection.
///
/// Dropping it without [`commit`](SqlTransaction::commit) rolls it back
/// (the plugin's `Drop` does that; the kit guarantees a panic in it stays
/// inside the plugin). Savepoints nest by depth: `savepoint` returns the
/// new depth (1 for the first), `release(d)` keeps the work since savepoint
/// `d`, `rollback_to(d)` undoes it; both end savepoint `d` and every deeper
/// one ([`check_savepoint`] validates `d`).
pub trait SqlTransaction: Send + Sync + 'static {
    /// As [`SqlBackend::exec`], inside the transaction.
    fn exec(&self, script: String) -> impl Future<Output = PluginResult<()>> + Send;
    /// As [`SqlBackend::run`], inside the transaction.
    fn run(&self, stmt: Statement) -> impl Future<Output = PluginResult<RunResult>> + Send;
    /// As [`SqlBackend::query`], inside the transaction.
    fn query(
        &self,
        stmt: Statement,
        max_rows: u64,
    ) -> impl Future<Output = PluginResult<Rows>> + Send;
    /// Opens a nested savepoint and returns its depth.
    fn savepoint(&self) -> impl Future<Output = PluginResult<u32>> + Send;
    /// Releases savepoint `depth` (and deeper ones), keeping their work.
    fn release(&self, depth: u32) -> impl Future<Output = PluginResult<()>> + Send;
    /// Rolls back to savepoint `depth` and ends it (and deeper ones).
    fn rollback_to(&self, depth: u32) -> impl Future<Output = PluginResult<()>> + Send;
    /// Commits; later calls return `closed`.
    fn commit(&self) -> impl Future<Output = PluginResult<()>> + Send;
    /// Rolls back; later calls return `closed`.
    fn rollback(&self) -> impl Future<Output = PluginResult<()>> + Send;

    /// As [`SqlBackend::bulk_write`], inside the transaction: the rows
    /// (and `then`) are committed or rolled back with it. A failure must
    /// take back this call's rows and leave the transaction usable (write
    /// under a savepoint), and `unsupported` must be answered before any
    /// row is written: the host then writes the same rows with `INSERT`s.
    /// Offered to the host only with [`SqlBackend::TRANSACTION_BULK`]; the
    /// default answers `unsupported`.
    fn bulk_write(&self, request: BulkWrite) -> impl Future<Output = PluginResult<u64>> + Send {
        drop(request);
        async {
            Err(PluginError::unsupported(
                "this plugin has no bulk write inside transactions",
            ))
        }
    }

    /// Streams the whole result of query `stmt` (no parameters) inside
    /// the transaction, the backend's fastest way (Postgres: binary
    /// `COPY (query) TO STDOUT`), with the values and column names
    /// [`query`](SqlTransaction::query) returns; wrap the cursor with
    /// [`CursorHandle::new`]. `unsupported` must come before any row: the
    /// host then pages with `query`. Offered to the host only with
    /// [`SqlBackend::TRANSACTION_BULK`]; the default answers `unsupported`.
    /// Overriding it, claim [`crate::capabilities::SQL_BULK_READ`]: hosts
    /// only call it for plugins that do (the conformance case then runs).
    fn bulk_read(
        &self,
        stmt: Statement,
    ) -> impl Future<Output = PluginResult<CursorHandle>> + Send {
        drop(stmt);
        async {
            Err(PluginError::unsupported(
                "this plugin has no bulk read inside transactions",
            ))
        }
    }

    /// Where `call` runs (see [`Runs`]); the blocking pool by default.
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        let _ = call;
        Runs::Blocking
    }
}

/// A cursor of any type, as [`SqlTransaction::bulk_read`] returns it
/// (the transaction's own cursor type may differ from the backend's).
pub struct CursorHandle(pub(crate) Box<dyn AnyCursor>);

impl CursorHandle {
    /// Wraps a cursor for the host.
    pub fn new<C: SqlCursor>(cursor: C) -> CursorHandle {
        CursorHandle(Box::new(cursor))
    }
}

type BoxedRows<'a> = std::pin::Pin<Box<dyn Future<Output = PluginResult<Rows>> + Send + 'a>>;

/// [`SqlCursor`] as a trait object (its `next` future boxed).
pub(crate) trait AnyCursor: Send + Sync + 'static {
    fn columns(&self) -> Vec<String>;
    fn next(&self, max_rows: u32) -> BoxedRows<'_>;
    fn runs(&self, call: SqlCall<'_>) -> Runs;
}

impl<C: SqlCursor> AnyCursor for C {
    fn columns(&self) -> Vec<String> {
        SqlCursor::columns(self)
    }
    fn next(&self, max_rows: u32) -> BoxedRows<'_> {
        Box::pin(SqlCursor::next(self, max_rows))
    }
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        SqlCursor::runs(self, call)
    }
}

impl SqlCursor for Box<dyn AnyCursor> {
    fn columns(&self) -> Vec<String> {
        (**self).columns()
    }
    fn next(&self, max_rows: u32) -> impl Future<Output = PluginResult<Rows>> + Send {
        (**self).next(max_rows)
    }
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        (**self).runs(call)
    }
}

/// A streaming result; dropping it releases what it holds.
pub trait SqlCursor: Send + Sync + 'static {
    /// The column names of the result (cheap: no I/O).
    fn columns(&self) -> Vec<String>;
    /// The next block of at most `max_rows` rows; an empty block means the end.
    fn next(&self, max_rows: u32) -> impl Future<Output = PluginResult<Rows>> + Send;

    /// Where `call` (always [`SqlCall::Next`]) runs; the blocking pool by default.
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        let _ = call;
        Runs::Blocking
    }
}

/// Checks that savepoint `depth` exists when `current` savepoints are open
/// (for [`SqlTransaction::release`] and [`SqlTransaction::rollback_to`]).
pub fn check_savepoint(current: u32, depth: u32) -> PluginResult<()> {
    if depth == 0 || depth > current {
        return Err(PluginError::invalid_input(format!(
            "no savepoint at depth {depth} (current depth {current})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(columns: &[&str], values: usize, row_count: u64) -> BulkWrite {
        BulkWrite {
            table: "t".into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            key_columns: Vec::new(),
            values: vec![Value::Null; values],
            row_count,
            then: None,
        }
    }

    #[test]
    fn bulk_shape_needs_columns_and_a_full_grid() {
        assert_eq!(write(&["a", "b"], 6, 3).check_shape().unwrap(), 2);
        assert_eq!(write(&["a"], 0, 0).check_shape().unwrap(), 1);
        for bad in [
            write(&["a", "b"], 5, 3),
            write(&[], 0, 0),
            write(&["a"], 1, u64::MAX),
        ] {
            let e = bad.check_shape().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{e}");
            assert!(e.message().contains("bulk write to t"), "{e}");
        }
    }
}
