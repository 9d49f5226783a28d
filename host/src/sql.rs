//! The StorageAdapter front end: what applications call for SQL.
//!
//! [`Sql`] wraps a plugin's SQL handle. Every call rewrites `?` / `?NNN` /
//! `:name` / `@name` / `$name` placeholders for the plugin's dialect and
//! checks the arguments against them before anything is sent, then awaits
//! the plugin's future on the caller's executor.
//!
//! Transactions: [`Sql::transaction`] commits when the closure returns `Ok`
//! and rolls back on `Err`, on panic (the transaction is dropped while
//! unwinding) and when the future is dropped. [`Transaction::savepoint`]
//! nests; a savepoint dropped without [`Transaction::commit`] is rolled back
//! before the parent's next statement.
//!
//! [`SqlRead`] is the read side both share (`get`, `all`, dialect, backend
//! name), so code that pages through tables — migrations, exports, logical
//! backups — runs either on the backend or inside one transaction (one
//! snapshot) without being written twice.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use abi_stable::std_types::RString;
use futures_util::future::BoxFuture;
use rustc_hash::FxBuildHasher;
use strata_plugin_api::{
    ErrorKind, Extensions, PluginError, Value, capabilities,
    ext::keys,
    placeholders::{Dialect, Rewritten, rewrite},
    sql::{
        BulkWrite, Rows, RunResult, SqlConnectionBox, SqlCursorBox, SqlTransactionBox,
        SqlTransactionBulkBox, Statement, TransactionBulkBox,
    },
};

use crate::{
    boundary::call,
    error::{Error, Result},
    params::{IntoParams, Params, bind},
    row::{Columns, Row, columns_of, split_rows},
};

/// What a write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Rows inserted, updated or deleted.
    pub changes: u64,
    /// The last inserted rowid, where the backend reports one.
    pub last_insert_rowid: Option<i64>,
}

impl From<RunResult> for RunOutcome {
    fn from(r: RunResult) -> Self {
        RunOutcome {
            changes: r.changes,
            last_insert_rowid: r.last_insert_rowid.into_option(),
        }
    }
}

struct Inner {
    conn: SqlConnectionBox,
    /// Whether the plugin claims `sql.as_user` ([`Sql::as_user`]).
    as_user: bool,
    /// Whether the plugin claims `sql.bulk_read` ([`Sql::has_bulk_read`]).
    bulk_read: bool,
    /// Interface `strata.sql.transaction_bulk.v1`, when the plugin has it:
    /// transactions begin through it and take [`Transaction::bulk_write`].
    transaction_bulk: Option<SqlTransactionBulkBox>,
}

/// A SQL backend, shared cheaply between tasks (`Clone` is an `Arc` clone).
#[derive(Clone)]
pub struct Sql {
    inner: Arc<Inner>,
    statements: Arc<Statements>,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("backend", &self.statements.backend)
            .field("dialect", &self.statements.dialect)
            .field("as_user", &!self.statements.ext.is_empty())
            .finish()
    }
}

/// Rewritten statements by application SQL text, so a hot statement is
/// lexed once. Bounded: when full it starts over.
struct Statements {
    dialect: Dialect,
    /// The backend's name (shared with its transactions).
    backend: String,
    /// Keyed by the application's own statement strings, so hash flooding is
    /// not a concern, and SipHash over every statement text was a measurable
    /// share of a point read: FxHash instead. Shared by the handles
    /// [`Sql::as_user`] makes.
    map: Arc<Mutex<PreparedMap>>,
    /// Sent with every statement: the user a handle of [`Sql::as_user`]
    /// runs as (empty otherwise).
    ext: Extensions,
}

/// Rewritten statements by the application's SQL text.
type PreparedMap = HashMap<Box<str>, Arc<Prepared>, FxBuildHasher>;

const STATEMENT_CACHE: usize = 512;

/// One statement rewritten for the dialect, and the column names of its last result.
struct Prepared {
    wire_sql: RString,
    rewritten: Rewritten,
    columns: Mutex<Option<Columns>>,
}

impl Statements {
    /// The request of a bulk write (refused on a handle that runs as a user:
    /// no statement would carry the user).
    fn bulk_request(
        &self,
        table: &str,
        columns: &[String],
        key_columns: &[String],
        values: Vec<Value>,
        then: Option<(&str, Params)>,
    ) -> Result<BulkWrite> {
        self.unscoped("bulk_write")?;
        let width = columns.len().max(1);
        let then = match then {
            Some((sql, params)) => Some(self.prepare(sql, params)?.0),
            None => None,
        };
        Ok(BulkWrite {
            table: table.into(),
            columns: columns.iter().map(|c| RString::from(c.as_str())).collect(),
            key_columns: key_columns
                .iter()
                .map(|c| RString::from(c.as_str()))
                .collect(),
            row_count: (values.len() / width) as u64,
            values: values.into(),
            then: then.into(),
            ext: Default::default(),
        })
    }

    fn new(dialect: Dialect, backend: String) -> Statements {
        Statements {
            dialect,
            backend,
            map: Arc::new(Mutex::new(HashMap::with_hasher(FxBuildHasher))),
            ext: Extensions::new(),
        }
    }

    /// Refuses a call that cannot carry the user a scoped handle runs as.
    fn unscoped(&self, call: &str) -> Result<()> {
        if self.ext.is_empty() {
            return Ok(());
        }
        Err(Error::Plugin(PluginError::new(
            ErrorKind::Unsupported,
            format!(
                "{call} cannot run as a user (it carries no statement to attach the user to): \
                 on a handle from `as_user`, use run / get / all / stream, or call {call} on the \
                 backend's own handle"
            ),
        )))
    }

    fn prepare(&self, sql: &str, params: impl IntoParams) -> Result<(Statement, Arc<Prepared>)> {
        let cached = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sql)
            .cloned();
        let prepared = match cached {
            Some(p) => p,
            None => {
                let rewritten =
                    rewrite(sql, self.dialect).map_err(|e| Error::Params(e.to_string()))?;
                let p = Arc::new(Prepared {
                    wire_sql: RString::from(rewritten.sql.as_str()),
                    rewritten,
                    columns: Mutex::new(None),
                });
                let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= STATEMENT_CACHE {
                    map.clear();
                }
                map.insert(sql.into(), p.clone());
                p
            }
        };
        let values = bind(&prepared.rewritten, params.into_params())?;
        Ok((
            Statement {
                sql: prepared.wire_sql.clone(),
                params: values,
                ext: self.ext.clone(),
            },
            prepared,
        ))
    }
}

impl Prepared {
    /// The first row of a result (a point read: no row vector allocated).
    fn first_row(&self, rows: Rows) -> Option<Row> {
        if rows.row_count == 0 {
            return None;
        }
        let columns = self.columns_for(&rows);
        let mut values = rows.values;
        values.truncate(columns.len());
        Some(Row::from_parts(columns, values))
    }

    fn columns_for(&self, rows: &Rows) -> Columns {
        let mut cached = self.columns.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some(c)
                if c.len() == rows.columns.len()
                    && c.iter()
                        .zip(rows.columns.iter())
                        .all(|(a, b)| a == b.as_str()) =>
            {
                c.clone()
            }
            _ => {
                let c = columns_of(rows);
                *cached = Some(c.clone());
                c
            }
        }
    }

    /// Splits a result into rows, reusing the column names of the previous
    /// result of this statement when they are the same.
    fn rows(&self, rows: Rows) -> Vec<Row> {
        let columns = self.columns_for(&rows);
        split_rows(rows, columns)
    }
}

impl Sql {
    pub(crate) fn new(
        conn: SqlConnectionBox,
        dialect: Dialect,
        backend: String,
        as_user: bool,
    ) -> Sql {
        Sql {
            inner: Arc::new(Inner {
                conn,
                as_user,
                bulk_read: false,
                transaction_bulk: None,
            }),
            statements: Arc::new(Statements::new(dialect, backend)),
        }
    }

    /// Transactions begun through `bulk` (the plugin's interface
    /// `strata.sql.transaction_bulk.v1`), so they take bulk writes, and
    /// bulk reads when `read` (the plugin claims `sql.bulk_read`).
    pub(crate) fn with_transaction_bulk(
        self,
        bulk: Option<SqlTransactionBulkBox>,
        read: bool,
    ) -> Sql {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            unreachable!("called on a handle just made")
        };
        inner.bulk_read = read && bulk.is_some();
        inner.transaction_bulk = bulk;
        Sql {
            inner: Arc::new(inner),
            statements: self.statements,
        }
    }

    /// Whether this backend's transactions take [`Transaction::bulk_write`].
    pub fn has_transaction_bulk(&self) -> bool {
        self.inner.transaction_bulk.is_some() && self.statements.ext.is_empty()
    }

    /// Whether this backend's transactions serve [`Transaction::bulk_read`]
    /// (the plugin claims `sql.bulk_read` and has the interface): a reader
    /// of a whole table can then begin a transaction for one stream, and
    /// otherwise pages with [`Sql::all`] without asking.
    pub fn has_bulk_read(&self) -> bool {
        self.inner.bulk_read && self.has_transaction_bulk()
    }

    /// A handle on the same backend whose every statement runs as the user
    /// `claims` describes (a JSON object, as a JWT carries them: `sub`,
    /// `role`, …), its transactions included. The claims travel with each
    /// statement under the documented extension key
    /// [`AUTH_CLAIMS`](strata_plugin_api::ext::keys::AUTH_CLAIMS); the
    /// plugin applies them (the Supabase plugin: transaction-local
    /// `request.jwt.claims` and `role`, so row-level security decides).
    /// Only a backend claiming `sql.as_user` takes them: on any other this
    /// is an `Unsupported` error, never a statement run as someone else.
    /// `exec` and `bulk_write` on the handle are refused (no statement to
    /// carry the user).
    ///
    /// ```ignore
    /// let alice = sql.as_user(&serde_json::json!({"sub": alice_id, "role": "authenticated"}))?;
    /// let mine = alice.all("select * from notes", ()).await?; // only what RLS lets alice see
    /// ```
    pub fn as_user(&self, claims: &serde_json::Value) -> Result<Sql> {
        if !claims.is_object() {
            return Err(Error::Plugin(PluginError::invalid_input(
                "as_user: the claims must be a JSON object (as a JWT's payload)",
            )));
        }
        self.scoped(keys::AUTH_CLAIMS, claims.to_string())
    }

    /// As [`Sql::as_user`], with a signed JWT (compact form) that the
    /// plugin verifies (the Supabase plugin: HS256 with its `jwt_secret`)
    /// and whose claims it uses; sent under
    /// [`AUTH_JWT`](strata_plugin_api::ext::keys::AUTH_JWT).
    pub fn as_user_jwt(&self, token: &str) -> Result<Sql> {
        self.scoped(keys::AUTH_JWT, serde_json::Value::from(token).to_string())
    }

    fn scoped(&self, key: &str, json: String) -> Result<Sql> {
        if !self.inner.as_user {
            return Err(Error::Plugin(PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "backend `{}` cannot run statements as a user: its plugin does not claim `{}`",
                    self.statements.backend,
                    capabilities::SQL_AS_USER
                ),
            )));
        }
        let mut ext = Extensions::new();
        ext.insert(key, json);
        Ok(Sql {
            inner: self.inner.clone(),
            statements: Arc::new(Statements {
                dialect: self.statements.dialect,
                backend: self.statements.backend.clone(),
                map: self.statements.map.clone(),
                ext,
            }),
        })
    }

    /// The backend name this handle talks to.
    pub fn backend(&self) -> &str {
        &self.statements.backend
    }

    /// The plugin's SQL dialect.
    pub fn dialect(&self) -> Dialect {
        self.statements.dialect
    }

    /// Runs a script of statements, without parameters.
    pub async fn exec(&self, script: &str) -> Result<()> {
        self.statements.unscoped("exec")?;
        call(self.inner.conn.exec(script.into())).await
    }

    /// Runs one statement: rows changed and the last insert id.
    pub async fn run(&self, sql: &str, params: impl IntoParams) -> Result<RunOutcome> {
        let (stmt, _) = self.statements.prepare(sql, params)?;
        call(self.inner.conn.run(stmt)).await.map(Into::into)
    }

    /// The first row of a query, or `None`.
    pub async fn get(&self, sql: &str, params: impl IntoParams) -> Result<Option<Row>> {
        let (stmt, prepared) = self.statements.prepare(sql, params)?;
        let rows = call(self.inner.conn.query(stmt, 1)).await?;
        Ok(prepared.first_row(rows))
    }

    /// Every row of a query, in the order the backend returns them.
    pub async fn all(&self, sql: &str, params: impl IntoParams) -> Result<Vec<Row>> {
        let (stmt, prepared) = self.statements.prepare(sql, params)?;
        let rows = call(self.inner.conn.query(stmt, 0)).await?;
        Ok(prepared.rows(rows))
    }

    /// Every row deserialised into `T`.
    pub async fn all_as<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<T>> {
        self.all(sql, params)
            .await?
            .iter()
            .map(Row::deserialize)
            .collect()
    }

    /// A streaming read: rows arrive in batches, never all at once.
    pub async fn stream(&self, sql: &str, params: impl IntoParams) -> Result<RowStream> {
        let (stmt, _) = self.statements.prepare(sql, params)?;
        let cursor = call(self.inner.conn.stream(stmt)).await?;
        Ok(RowStream::new(cursor))
    }

    /// Starts a transaction; drop it or call [`Transaction::rollback`] to undo.
    pub async fn begin(&self) -> Result<Transaction<'static>> {
        let (tx, bulk) = match &self.inner.transaction_bulk {
            Some(b) => {
                let t = call(b.begin()).await?;
                (t.transaction, Some(t.bulk))
            }
            None => (call(self.inner.conn.begin()).await?, None),
        };
        Ok(Transaction {
            shared: Arc::new(TxShared {
                tx,
                bulk_read: self.inner.bulk_read,
                bulk,
                pending_rollback: Mutex::new(None),
            }),
            statements: self.statements.clone(),
            depth: 0,
            finished: false,
            _parent: std::marker::PhantomData,
        })
    }

    /// Runs `f` in a transaction: commit on `Ok`, roll back on `Err`, panic or drop.
    ///
    /// ```ignore
    /// let id = sql.transaction(|tx| Box::pin(async move {
    ///     tx.run("insert into notes(body) values (?)", ["hi"]).await?;
    ///     Ok::<_, strata_host::Error>(1)
    /// })).await?;
    /// ```
    pub async fn transaction<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: for<'t> FnOnce(&'t mut Transaction<'static>) -> BoxFuture<'t, std::result::Result<T, E>>,
        E: From<Error>,
    {
        let mut tx = self.begin().await?;
        match f(&mut tx).await {
            Ok(v) => {
                tx.commit().await?;
                Ok(v)
            }
            Err(e) => {
                // Report the caller's error; a failed rollback is rolled back again on drop.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Writes `values` (row-major, `columns.len()` per row) into `table` in
    /// one transaction through the plugin's bulk path (binary `COPY` on
    /// Postgres), as an upsert on `key_columns` when given, then runs `then`
    /// in the same transaction. Returns the rows inserted or changed. Fails
    /// with [`ErrorKind::Unsupported`] when the plugin
    /// has no bulk path (or not for these column types): use `INSERT`s then.
    pub async fn bulk_write(
        &self,
        table: &str,
        columns: &[String],
        key_columns: &[String],
        values: Vec<Value>,
        then: Option<(&str, Params)>,
    ) -> Result<u64> {
        let request = self
            .statements
            .bulk_request(table, columns, key_columns, values, then)?;
        call(self.inner.conn.bulk_write(request)).await
    }

    /// Closes the backend's SQL handle; later calls fail with `Closed`.
    pub async fn close(&self) -> Result<()> {
        call(self.inner.conn.close()).await
    }
}

/// Reads on a backend or inside a transaction: what [`Sql`] and
/// [`Transaction`] share, for code that must run on either (a table paged
/// inside one transaction reads one snapshot; on the backend, each page is
/// its own statement).
pub trait SqlRead: Sync {
    /// The plugin's SQL dialect.
    fn dialect(&self) -> Dialect;
    /// The backend's name.
    fn backend(&self) -> &str;
    /// Every row of a query.
    fn all(
        &self,
        sql: &str,
        params: impl IntoParams + Send,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send;
    /// The first row of a query, or `None`.
    fn get(
        &self,
        sql: &str,
        params: impl IntoParams + Send,
    ) -> impl Future<Output = Result<Option<Row>>> + Send;
    /// The whole result of query `sql` (no parameters) through the
    /// plugin's bulk read ([`Transaction::bulk_read`]), or `None` where
    /// there is none (on the backend, or a plugin without it): page with
    /// [`all`](SqlRead::all) then.
    fn bulk_read(&self, sql: &str) -> impl Future<Output = Result<Option<RowStream>>> + Send {
        let _ = sql;
        async { Ok(None) }
    }
}

impl SqlRead for Sql {
    fn dialect(&self) -> Dialect {
        Sql::dialect(self)
    }
    fn backend(&self) -> &str {
        Sql::backend(self)
    }
    fn all(
        &self,
        sql: &str,
        params: impl IntoParams + Send,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send {
        Sql::all(self, sql, params)
    }
    fn get(
        &self,
        sql: &str,
        params: impl IntoParams + Send,
    ) -> impl Future<Output = Result<Option<Row>>> + Send {
        Sql::get(self, sql, params)
    }
}

impl SqlRead for Transaction<'_> {
    fn dialect(&self) -> Dialect {
        self.statements.dialect
    }
    fn backend(&self) -> &str {
        &self.statements.backend
    }
    fn all(
        &self,
        sql: &str,
        params: impl IntoParams + Send,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send {
        Transaction::all(self, sql, params)
    }
    fn get(
        &self,
        sql: &str,
        params: impl IntoParams + Send,
    ) -> impl Future<Output = Result<Option<Row>>> + Send {
        Transaction::get(self, sql, params)
    }
    async fn bulk_read(&self, sql: &str) -> Result<Option<RowStream>> {
        if !self.has_bulk_read() {
            return Ok(None);
        }
        match Transaction::bulk_read(self, sql).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                tracing::debug!(backend = %self.statements.backend, "bulk read unavailable, paging: {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

struct TxShared {
    tx: SqlTransactionBox,
    /// Bulk writes inside `tx`, when the plugin has them.
    bulk: Option<TransactionBulkBox>,
    /// Whether `bulk` serves reads too (the plugin claims `sql.bulk_read`;
    /// set only with the interface, so `bulk` is there).
    bulk_read: bool,
    /// The shallowest savepoint dropped without commit, rolled back before the next call.
    pending_rollback: Mutex<Option<u32>>,
}

/// An open transaction (depth 0) or savepoint (depth ≥ 1).
///
/// Dropping it without [`commit`](Transaction::commit) rolls it back.
pub struct Transaction<'p> {
    shared: Arc<TxShared>,
    statements: Arc<Statements>,
    depth: u32,
    finished: bool,
    _parent: std::marker::PhantomData<&'p mut ()>,
}

impl Transaction<'_> {
    async fn flush(&self) -> Result<()> {
        let pending = self
            .shared
            .pending_rollback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(depth) = pending {
            call(self.shared.tx.rollback_to(depth)).await?;
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if self.finished {
            return Err(Error::Plugin(PluginError::closed("transaction")));
        }
        Ok(())
    }

    /// The bulk handle of an open transaction, or `Unsupported` naming
    /// what (`what`: "write" or "read") the backend cannot do in one.
    fn bulk(&self, what: &str) -> Result<&TransactionBulkBox> {
        self.check()?;
        self.shared.bulk.as_ref().ok_or_else(|| {
            Error::Plugin(PluginError::unsupported(format!(
                "backend `{}` has no bulk {what} inside transactions",
                self.statements.backend
            )))
        })
    }

    /// Whether the transaction takes [`Transaction::bulk_write`] (the
    /// plugin has the interface `strata.sql.transaction_bulk.v1`).
    pub fn has_bulk_write(&self) -> bool {
        self.shared.bulk.is_some() && self.statements.ext.is_empty()
    }

    /// Whether the transaction serves [`Transaction::bulk_read`] (see
    /// [`Sql::has_bulk_read`]).
    pub fn has_bulk_read(&self) -> bool {
        self.shared.bulk_read && self.has_bulk_write()
    }

    /// The nesting depth: 0 for the transaction, 1.. for savepoints.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// As [`Sql::exec`], inside the transaction.
    pub async fn exec(&self, script: &str) -> Result<()> {
        self.check()?;
        self.statements.unscoped("exec")?;
        self.flush().await?;
        call(self.shared.tx.exec(script.into())).await
    }

    /// As [`Sql::run`], inside the transaction.
    pub async fn run(&self, sql: &str, params: impl IntoParams) -> Result<RunOutcome> {
        self.check()?;
        let (stmt, _) = self.statements.prepare(sql, params)?;
        self.flush().await?;
        call(self.shared.tx.run(stmt)).await.map(Into::into)
    }

    /// As [`Sql::get`], inside the transaction.
    pub async fn get(&self, sql: &str, params: impl IntoParams) -> Result<Option<Row>> {
        self.check()?;
        let (stmt, prepared) = self.statements.prepare(sql, params)?;
        self.flush().await?;
        let rows = call(self.shared.tx.query(stmt, 1)).await?;
        Ok(prepared.first_row(rows))
    }

    /// As [`Sql::all`], inside the transaction.
    pub async fn all(&self, sql: &str, params: impl IntoParams) -> Result<Vec<Row>> {
        self.check()?;
        let (stmt, prepared) = self.statements.prepare(sql, params)?;
        self.flush().await?;
        let rows = call(self.shared.tx.query(stmt, 0)).await?;
        Ok(prepared.rows(rows))
    }

    /// As [`Sql::bulk_write`], inside the transaction: the rows (and
    /// `then`) are committed or rolled back with it. A failure takes back
    /// only this call's rows and leaves the transaction usable, so the
    /// caller can write them another way. [`ErrorKind::Unsupported`] when
    /// the plugin has no bulk path inside transactions (see
    /// [`Sql::has_transaction_bulk`]) or none for these column types.
    pub async fn bulk_write(
        &self,
        table: &str,
        columns: &[String],
        key_columns: &[String],
        values: Vec<Value>,
        then: Option<(&str, Params)>,
    ) -> Result<u64> {
        let bulk = self.bulk("write")?;
        let request = self
            .statements
            .bulk_request(table, columns, key_columns, values, then)?;
        self.flush().await?;
        call(bulk.bulk_write(request)).await
    }

    /// Streams the whole result of query `sql` (no parameters) the
    /// plugin's fastest way, inside the transaction's snapshot (Postgres:
    /// binary `COPY (sql) TO STDOUT`, decoded by the plugin while the
    /// caller works on earlier rows); the values are those
    /// [`all`](Transaction::all) returns. The transaction runs nothing
    /// else until the stream is read to its end or dropped.
    /// [`ErrorKind::Unsupported`] when the plugin has no bulk read (see
    /// [`Sql::has_transaction_bulk`]) or none for a column's type; nothing
    /// was read then, and the transaction is usable.
    pub async fn bulk_read(&self, sql: &str) -> Result<RowStream> {
        let bulk = self.bulk("read")?;
        let (stmt, _) = self.statements.prepare(sql, ())?;
        self.flush().await?;
        let cursor = call(bulk.bulk_read(stmt)).await?;
        Ok(RowStream::new(cursor))
    }

    /// Opens a nested savepoint; the parent is borrowed until it ends.
    pub async fn savepoint(&mut self) -> Result<Transaction<'_>> {
        self.check()?;
        self.flush().await?;
        let depth = call(self.shared.tx.savepoint()).await?;
        Ok(Transaction {
            shared: self.shared.clone(),
            statements: self.statements.clone(),
            depth,
            finished: false,
            _parent: std::marker::PhantomData,
        })
    }

    /// Runs `f` in a savepoint: release on `Ok`, roll back to it on `Err`, panic or drop.
    pub async fn nested<T, E, F>(&mut self, f: F) -> std::result::Result<T, E>
    where
        F: for<'t, 's> FnOnce(&'t mut Transaction<'s>) -> BoxFuture<'t, std::result::Result<T, E>>,
        E: From<Error>,
    {
        let mut sp = self.savepoint().await?;
        match f(&mut sp).await {
            Ok(v) => {
                sp.commit().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = sp.rollback().await;
                Err(e)
            }
        }
    }

    /// Commits the transaction, or releases the savepoint into its parent.
    pub async fn commit(mut self) -> Result<()> {
        self.check()?;
        self.flush().await?;
        self.finished = true;
        if self.depth == 0 {
            call(self.shared.tx.commit()).await
        } else {
            call(self.shared.tx.release(self.depth)).await
        }
    }

    /// Rolls back the transaction, or the work since the savepoint.
    pub async fn rollback(mut self) -> Result<()> {
        self.check()?;
        self.finished = true;
        if self.depth == 0 {
            call(self.shared.tx.rollback()).await
        } else {
            self.flush().await?;
            call(self.shared.tx.rollback_to(self.depth)).await
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.finished || self.depth == 0 {
            // Depth 0: dropping the plugin's transaction object rolls it back.
            return;
        }
        let mut pending = self
            .shared
            .pending_rollback
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *pending = Some(pending.map_or(self.depth, |d| d.min(self.depth)));
    }
}

/// Rows of a streaming read, fetched from the plugin in batches.
pub struct RowStream {
    cursor: SqlCursorBox,
    columns: Columns,
    buffer: std::collections::VecDeque<Row>,
    batch: u32,
    done: bool,
}

impl RowStream {
    fn new(cursor: SqlCursorBox) -> RowStream {
        let columns: Columns = cursor
            .columns()
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .into();
        RowStream {
            cursor,
            columns,
            buffer: Default::default(),
            batch: 512,
            done: false,
        }
    }

    /// Rows fetched per plugin call (default 512).
    pub fn with_batch_size(mut self, rows: u32) -> RowStream {
        self.batch = rows.max(1);
        self
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The next batch of rows; empty at the end.
    pub async fn next_batch(&mut self) -> Result<Vec<Row>> {
        if !self.buffer.is_empty() {
            return Ok(self.buffer.drain(..).collect());
        }
        if self.done {
            return Ok(Vec::new());
        }
        let rows = call(self.cursor.next(self.batch)).await?;
        if rows.row_count < u64::from(self.batch) {
            self.done = true;
        }
        Ok(split_rows(rows, self.columns.clone()))
    }

    /// The next row, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Row>> {
        if self.buffer.is_empty() && !self.done {
            let batch = self.next_batch().await?;
            self.buffer.extend(batch);
        }
        Ok(self.buffer.pop_front())
    }

    /// As a `futures` stream of rows.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<Row>> + Send {
        futures_util::stream::try_unfold(self, |mut s| async move {
            Ok(s.next().await?.map(|row| (row, s)))
        })
    }
}
