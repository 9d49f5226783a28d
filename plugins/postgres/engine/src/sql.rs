//! The SQL contract on PostgreSQL.
//!
//! Every call answers [`Runs::Async`]: its future is polled by whatever
//! executor the host runs, inside the plugin's runtime context (see the
//! crate docs).
//!
//! A statement without parameters (one statement, no `$n`) goes as one
//! simple-protocol `Query`: one round trip, nothing prepared, values back in
//! Postgres' text form and read to the same strata values as the binary
//! form ([`crate::types::read_value`]); only a `query` answered with no
//! rows asks the server for its column names (described once per text,
//! then cached). A statement with parameters runs on one connection:
//! described by the server once per statement text (then cached: parameter
//! types, columns), prepared there, and executed on that same connection,
//! so sqlx's per-connection statement cache serves the execution without
//! a second prepare. Each strata value is encoded as the type the server
//! expects, and types without a native encoding are sent as text with an
//! explicit cast added to the SQL ([`crate::params`]).
//! Streaming reads declare a server-side cursor in a transaction of their
//! own and `FETCH` one batch per call. One-shot statements (outside a
//! transaction) run on a connection kept out of the pool while it is free
//! ([`crate::oneshot`]): no pool acquire, ping and release per statement.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use futures_util::TryStreamExt;
use sqlx::{
    AssertSqlSafe, Column, Executor, PgConnection, Postgres, Row, SqlSafeStr, Statement as _,
    Transaction,
    postgres::{PgArguments, PgRow},
};
use strata_plugin::{
    PluginError, PluginResult, Runs, SqlBackend, SqlCursor, SqlTransaction,
    runs::detach,
    sql::{BulkWrite, CursorHandle, Rows, RunResult, SqlCall, Statement, check_savepoint},
};

use crate::{
    db::{Db, LocalSettings},
    error::map,
    oneshot::OneShot,
    params::{is_one_statement_without_params, lead_keyword, rewrite_params},
    types::{ColumnType, ParamKind, bind, read_binary, read_value},
};

/// A statement as the server wants it: parameter kinds and the SQL with casts added.
struct Described {
    sql: String,
    kinds: Vec<ParamKind>,
    columns: Vec<String>,
}

/// State shared by the SQL handle and its transactions.
struct Shared {
    db: Arc<Db>,
    /// `SERIALIZABLE` (default), `REPEATABLE READ` or `READ COMMITTED`.
    isolation: &'static str,
    described: Mutex<HashMap<String, Arc<Described>>>,
    /// Readers of the types sqlx did not know (by OID) when a
    /// simple-protocol result had a column of one.
    custom_types: Mutex<HashMap<u32, ColumnType>>,
}

impl Shared {
    fn new(db: Arc<Db>, isolation: &'static str) -> Arc<Shared> {
        Arc::new(Shared {
            db,
            isolation,
            described: Mutex::new(HashMap::new()),
            custom_types: Mutex::new(HashMap::new()),
        })
    }

    /// The statement's parameter types and columns, described by the server
    /// once per SQL text; inside a transaction on the transaction's own
    /// connection (`conn`), so it sees tables created earlier in it.
    async fn describe(
        &self,
        conn: &mut PgConnection,
        original: &str,
    ) -> PluginResult<Arc<Described>> {
        check_not_empty(original)?;
        if let Some(d) = self
            .described
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(original)
        {
            return Ok(d.clone());
        }
        let text = AssertSqlSafe(original.to_string()).into_sql_str();
        let stmt = self.db.describe(conn, text).await?;
        let kinds: Vec<ParamKind> = match stmt.parameters() {
            Some(sqlx::Either::Left(types)) => types.iter().map(ParamKind::of).collect(),
            Some(sqlx::Either::Right(n)) => vec![ParamKind::Text; n],
            None => Vec::new(),
        };
        let columns = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let sql = if kinds.iter().any(|k| k.cast().is_some()) {
            rewrite_params(original, |i| match kinds.get(i).and_then(ParamKind::cast) {
                Some(t) => format!("(${}::text)::{t}", i + 1),
                None => format!("${}", i + 1),
            })?
        } else {
            original.to_string()
        };
        let d = Arc::new(Described {
            sql,
            kinds,
            columns,
        });
        let mut cache = self.described.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(original.to_string(), d.clone());
        Ok(d)
    }

    async fn prepare(
        &self,
        conn: &mut PgConnection,
        stmt: &Statement,
    ) -> PluginResult<(Arc<Described>, PgArguments)> {
        let d = self.describe(conn, &stmt.sql).await?;
        if d.kinds.len() != stmt.params.len() {
            return Err(PluginError::invalid_input(format!(
                "statement takes {} parameters, {} given",
                d.kinds.len(),
                stmt.params.len()
            )));
        }
        let mut args = PgArguments::default();
        for (i, (k, v)) in d.kinds.iter().zip(stmt.params.iter()).enumerate() {
            bind(&mut args, i + 1, k, v)?;
        }
        Ok((d, args))
    }
    /// The column names and readers of query `sql`'s result, from the
    /// server's description of it (on `conn`, so inside a transaction it
    /// sees what the transaction created).
    async fn result_types(
        &self,
        conn: &mut PgConnection,
        sql: &str,
    ) -> PluginResult<(Vec<String>, Vec<ColumnType>)> {
        let text = AssertSqlSafe(sql.to_string()).into_sql_str();
        let described = self.db.describe(conn, text).await?;
        let columns = described.columns();
        let names = columns.iter().map(|c| c.name().to_string()).collect();
        let infos: Vec<sqlx::postgres::PgTypeInfo> =
            columns.iter().map(|c| c.type_info().clone()).collect();
        let types = self.resolve_types(conn, &infos).await?;
        Ok((names, types))
    }

    /// The readers of `row`'s columns (see [`Shared::resolve_types`]).
    async fn column_types(
        &self,
        conn: &mut PgConnection,
        row: &PgRow,
    ) -> PluginResult<Vec<ColumnType>> {
        let infos: Vec<sqlx::postgres::PgTypeInfo> = row
            .columns()
            .iter()
            .map(|c| c.type_info().clone())
            .collect();
        self.resolve_types(conn, &infos).await
    }

    /// The readers of columns of types `infos`. Types sqlx has not
    /// resolved (seen first in a simple-protocol result: pgvector's,
    /// enums, domains) are looked up once per backend by OID, named as
    /// sqlx names them (`oid::regtype::text`), so both protocols read
    /// them alike.
    async fn resolve_types(
        &self,
        conn: &mut PgConnection,
        infos: &[sqlx::postgres::PgTypeInfo],
    ) -> PluginResult<Vec<ColumnType>> {
        let mut types: Vec<Option<ColumnType>> = infos.iter().map(ColumnType::of).collect();
        if types.iter().all(Option::is_some) {
            return Ok(types.into_iter().flatten().collect());
        }
        let oid_of = |i: usize| infos[i].oid().map_or(0, |o| o.0);
        let missing: Vec<u32> = {
            let known = self.custom_types.lock().unwrap_or_else(|p| p.into_inner());
            (0..types.len())
                .filter(|&i| types[i].is_none() && !known.contains_key(&oid_of(i)))
                .map(oid_of)
                .collect()
        };
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(u32::to_string).collect();
            let found = sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT t.oid::int8, t.oid::regtype::text, t.typtype = 'e' \
                 FROM pg_catalog.pg_type t WHERE t.oid IN ({})",
                list.join(", ")
            )))
            .fetch_all(self.db.on(conn))
            .await
            .map_err(map)?;
            let mut known = self.custom_types.lock().unwrap_or_else(|p| p.into_inner());
            for r in found {
                let oid: i64 = r.try_get(0).map_err(map)?;
                let name: String = r.try_get(1).map_err(map)?;
                let enumerated: bool = r.try_get(2).map_err(map)?;
                known.insert(oid as u32, ColumnType::named(&name, enumerated));
            }
        }
        let known = self.custom_types.lock().unwrap_or_else(|p| p.into_inner());
        for (i, t) in types.iter_mut().enumerate() {
            if t.is_none() {
                *t =
                    Some(known.get(&oid_of(i)).cloned().unwrap_or_else(|| {
                        ColumnType::named(&format!("oid {}", oid_of(i)), false)
                    }));
            }
        }
        Ok(types.into_iter().flatten().collect())
    }

    /// `rows` (all of one result) as strata rows under `columns`.
    async fn rows(
        &self,
        conn: &mut PgConnection,
        columns: Vec<String>,
        rows: &[PgRow],
    ) -> PluginResult<Rows> {
        let width = columns.len();
        let mut out = Rows {
            columns,
            values: Vec::with_capacity(width * rows.len()),
            row_count: rows.len() as u64,
        };
        let Some(first) = rows.first() else {
            return Ok(out);
        };
        let types = self.column_types(conn, first).await?;
        for r in rows {
            for (i, t) in types.iter().enumerate().take(width) {
                let raw = r.try_get_raw(i).map_err(map)?;
                out.values.push(read_value(raw, t, &out.columns[i])?);
            }
        }
        Ok(out)
    }

    /// `run` of `stmt` on `conn` (pooled, or a transaction's). Statements
    /// that return rows: `INSERT … RETURNING id` reports the last row's
    /// first column as the "last insert id"; a query changes nothing.
    async fn run_on(&self, conn: &mut PgConnection, stmt: &Statement) -> PluginResult<RunResult> {
        check_not_empty(&stmt.sql)?;
        let (rows, affected, has_columns) = if simple(stmt) {
            #[allow(deprecated)]
            let stream =
                sqlx::raw_sql(AssertSqlSafe(stmt.sql.clone())).fetch_many(self.db.on(conn));
            let (rows, affected) = collect_many(stream).await?;
            // No row: whether the statement has columns does not matter
            // (a query of no rows counts 0 either way).
            let has_columns = rows.first().is_some_and(|r| !r.columns().is_empty());
            (rows, affected, has_columns)
        } else {
            let (d, args) = self.prepare(conn, stmt).await?;
            let (rows, affected) = run_prepared(self.db.on(conn), &d, args).await?;
            (rows, affected, !d.columns.is_empty())
        };
        if !has_columns {
            return Ok(RunResult {
                changes: affected,
                last_insert_rowid: None,
            });
        }
        if reads_only(&stmt.sql) {
            return Ok(RunResult {
                changes: 0,
                last_insert_rowid: None,
            });
        }
        let last_insert_rowid = match rows.last() {
            Some(last) => {
                let types = self.column_types(conn, last).await?;
                rowid_of(last, &types)
            }
            None => None,
        };
        Ok(RunResult {
            changes: affected,
            last_insert_rowid,
        })
    }

    /// `query` of `stmt` on `conn` (pooled, or a transaction's).
    async fn query_on(
        &self,
        conn: &mut PgConnection,
        stmt: &Statement,
        max_rows: u64,
    ) -> PluginResult<Rows> {
        check_not_empty(&stmt.sql)?;
        if !simple(stmt) {
            let (d, args) = self.prepare(conn, stmt).await?;
            let rows = fetch_prepared(self.db.on(conn), &d, args, max_rows).await?;
            return self.rows(conn, d.columns.clone(), &rows).await;
        }
        let q = sqlx::raw_sql(AssertSqlSafe(stmt.sql.clone()));
        let rows: Vec<PgRow> = if max_rows == 0 {
            q.fetch_all(self.db.on(conn)).await
        } else {
            q.fetch(self.db.on(conn)).try_take(max_rows).await
        }
        .map_err(map)?;
        let columns = match rows.first() {
            Some(r) => r.columns().iter().map(|c| c.name().to_string()).collect(),
            // No row to read the names from: the server describes the
            // statement (once per text).
            None => self.describe(conn, &stmt.sql).await?.columns.clone(),
        };
        self.rows(conn, columns, &rows).await
    }
}

/// Whether `stmt` goes as one simple-protocol query (see the module docs).
fn simple(stmt: &Statement) -> bool {
    stmt.params.is_empty() && is_one_statement_without_params(&stmt.sql)
}

/// Refuses a statement of nothing but whitespace and comments: Postgres
/// answers an empty query with EmptyQueryResponse, which would read as
/// success.
fn check_not_empty(sql: &str) -> PluginResult<()> {
    if lead_keyword(sql).is_none() {
        return Err(PluginError::invalid_input(
            "empty statement: nothing but whitespace and comments",
        ));
    }
    Ok(())
}

/// Whether a statement only reads (its rows are no "changes").
fn reads_only(sql: &str) -> bool {
    lead_keyword(sql)
        .is_some_and(|k| ["select", "values", "show", "table", "explain"].contains(&k.as_str()))
}

/// The last insert id a statement's rows report: the last row's first
/// column, when it reads as an integer.
fn rowid_of(last: &PgRow, types: &[ColumnType]) -> Option<i64> {
    let (t, name) = (types.first()?, last.columns().first()?.name());
    read_value(last.try_get_raw(0).ok()?, t, name)
        .ok()
        .and_then(|v| v.as_i64())
}

/// Runs a prepared statement: its rows and the command's row count.
async fn run_prepared<'c, E>(
    exec: E,
    d: &Described,
    args: PgArguments,
) -> PluginResult<(Vec<PgRow>, u64)>
where
    E: Executor<'c, Database = Postgres>,
{
    let q = sqlx::query_with(AssertSqlSafe(d.sql.clone()), args);
    if d.columns.is_empty() {
        let r = q.execute(exec).await.map_err(map)?;
        return Ok((Vec::new(), r.rows_affected()));
    }
    // `fetch_many` is deprecated for multi-statement strings; here it runs one
    // prepared statement and is the one call that yields both the rows and
    // the command's row count.
    #[allow(deprecated)]
    let stream = q.fetch_many(exec);
    collect_many(stream).await
}

/// The rows and the summed row counts of a `fetch_many` stream.
async fn collect_many(
    stream: impl futures_util::Stream<
        Item = Result<sqlx::Either<sqlx::postgres::PgQueryResult, PgRow>, sqlx::Error>,
    >,
) -> PluginResult<(Vec<PgRow>, u64)> {
    let mut stream = std::pin::pin!(stream);
    let (mut rows, mut affected) = (Vec::new(), 0u64);
    while let Some(item) = stream.try_next().await.map_err(map)? {
        match item {
            sqlx::Either::Left(done) => affected += done.rows_affected(),
            sqlx::Either::Right(row) => rows.push(row),
        }
    }
    Ok((rows, affected))
}

/// The rows of a prepared statement (the first `max_rows`; 0: all).
async fn fetch_prepared<'c, E>(
    exec: E,
    d: &Described,
    args: PgArguments,
    max_rows: u64,
) -> PluginResult<Vec<PgRow>>
where
    E: Executor<'c, Database = Postgres>,
{
    let q = sqlx::query_with(AssertSqlSafe(d.sql.clone()), args);
    if max_rows == 0 {
        q.fetch_all(exec).await.map_err(map)
    } else {
        q.fetch(exec).try_take(max_rows).await.map_err(map)
    }
}

trait TryTake {
    async fn try_take(self, n: u64) -> Result<Vec<PgRow>, sqlx::Error>;
}
impl<S> TryTake for S
where
    S: futures_util::Stream<Item = Result<PgRow, sqlx::Error>> + Send,
{
    async fn try_take(self, n: u64) -> Result<Vec<PgRow>, sqlx::Error> {
        let mut s = std::pin::pin!(self);
        let mut out = Vec::new();
        while (out.len() as u64) < n {
            match s.try_next().await? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }
}

/// The SQL handle of one backend (the SQL contract of [`crate::Engine`]).
pub struct PgSql {
    shared: Arc<Shared>,
    closed: AtomicBool,
    /// The connection one-shot statements run on while it is free.
    oneshot: OneShot,
}

impl PgSql {
    pub(crate) fn new(db: Arc<Db>, isolation: &'static str) -> PgSql {
        PgSql {
            shared: Shared::new(db, isolation),
            closed: AtomicBool::new(false),
            oneshot: OneShot::default(),
        }
    }

    fn check(&self) -> PluginResult<()> {
        if self.closed.load(Ordering::Acquire) || self.shared.db.pool.is_closed() {
            Err(PluginError::closed("postgres connection"))
        } else {
            Ok(())
        }
    }

    /// The backend's health check: the server's version and the schema.
    pub async fn health(&self) -> PluginResult<String> {
        let (v, schema): (String, String) = sqlx::query_as("SELECT version(), current_schema()")
            .fetch_one(&*self.shared.db)
            .await
            .map_err(map)?;
        Ok(format!("{v}; schema {schema}"))
    }

    /// Closes the backend: this handle answers `closed`, the pool closes
    /// (`connect::close_pool`).
    pub async fn shutdown(&self) -> PluginResult<()> {
        self.closed.store(true, Ordering::Release);
        self.oneshot.close().await;
        let db = &self.shared.db;
        if db.has_direct() {
            let _ = crate::connect::close_pool(&db.ddl).await;
        }
        crate::connect::close_pool(&db.pool).await
    }

    /// Runs `stmt` in a transaction of its own, with the settings its
    /// request scope and the pooler-safe mode ask for.
    async fn in_tx<T>(
        &self,
        scoped: &LocalSettings,
        body: impl AsyncFnOnce(&mut PgConnection) -> PluginResult<T>,
    ) -> PluginResult<T> {
        let db = &self.shared.db;
        let mut tx = db.begin_with(None, scoped).await.map_err(map)?;
        let out = body(&mut tx).await?;
        tx.commit().await.map_err(map)?;
        Ok(out)
    }
}

impl SqlBackend for PgSql {
    type Transaction = Tx;
    type Cursor = Cursor;

    /// Scripts (DDL, mostly) go to the direct connection when there is one.
    async fn exec(&self, script: String) -> PluginResult<()> {
        self.check()?;
        let db = &self.shared.db;
        let q = sqlx::raw_sql(AssertSqlSafe(script));
        if db.has_direct() {
            q.execute(&db.ddl).await
        } else {
            q.execute(&**db).await
        }
        .map_err(map)?;
        Ok(())
    }

    /// One pooled connection serves the whole statement (describe,
    /// prepare, execute), or a transaction of its own when the pooler-safe
    /// mode or the request's scope asks for one.
    async fn run(&self, stmt: Statement) -> PluginResult<RunResult> {
        self.check()?;
        let shared = &self.shared;
        let scoped = shared.db.scope_of(&stmt.ext)?;
        if shared.db.needs_tx(&scoped) {
            return self
                .in_tx(&scoped, async |conn| shared.run_on(conn, &stmt).await)
                .await;
        }
        self.oneshot
            .run(&shared.db.pool, &stmt.sql, async |conn| {
                shared.run_on(conn, &stmt).await
            })
            .await
    }

    async fn query(&self, stmt: Statement, max_rows: u64) -> PluginResult<Rows> {
        self.check()?;
        let shared = &self.shared;
        let scoped = shared.db.scope_of(&stmt.ext)?;
        if shared.db.needs_tx(&scoped) {
            return self
                .in_tx(&scoped, async |conn| {
                    shared.query_on(conn, &stmt, max_rows).await
                })
                .await;
        }
        self.oneshot
            .run(&shared.db.pool, &stmt.sql, async |conn| {
                shared.query_on(conn, &stmt, max_rows).await
            })
            .await
    }

    async fn stream(&self, stmt: Statement) -> PluginResult<Cursor> {
        self.check()?;
        let db = &self.shared.db;
        let scoped = db.scope_of(&stmt.ext)?;
        let mut tx = db.begin_with(None, &scoped).await.map_err(map)?;
        let (d, args) = self.shared.prepare(&mut tx, &stmt).await?;
        let name = format!("strata_cursor_{}", CURSORS.fetch_add(1, Ordering::Relaxed));
        sqlx::query_with(
            AssertSqlSafe(format!("DECLARE {name} NO SCROLL CURSOR FOR {}", d.sql)),
            args,
        )
        .execute(db.on(&mut tx))
        .await
        .map_err(map)?;
        Ok(Cursor {
            shared: self.shared.clone(),
            name,
            columns: d.columns.clone(),
            persistent: !db.pooler_safe,
            tx: tokio::sync::Mutex::new(Some(tx)),
        })
    }

    async fn begin(&self) -> PluginResult<Tx> {
        self.check()?;
        let tx = self
            .shared
            .db
            .begin_with(
                Some(format!("BEGIN ISOLATION LEVEL {}", self.shared.isolation)),
                &Vec::new(),
            )
            .await
            .map_err(map)?;
        Ok(Tx {
            shared: self.shared.clone(),
            state: Arc::new(tokio::sync::Mutex::new(TxState {
                tx: Some(tx),
                depth: 0,
                scoped: Vec::new(),
            })),
        })
    }

    async fn close(&self) -> PluginResult<()> {
        self.shutdown().await
    }

    async fn bulk_write(&self, request: BulkWrite) -> PluginResult<u64> {
        self.check()?;
        crate::bulk::write(&self.shared.db, request).await
    }

    /// Transactions take bulk writes too (a restore's rows, under a savepoint).
    const TRANSACTION_BULK: bool = true;

    /// Every call is async network I/O: polled in the plugin's runtime.
    /// A bulk write is a task there: it encodes its rows and streams the
    /// `COPY` while the host reads the next batch (polled by the host, it
    /// stood still while the host parsed: a restore's load took 4.1 s
    /// with both sides idle half the time).
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        match call {
            SqlCall::BulkWrite(_) => Runs::Task,
            _ => Runs::Async,
        }
    }
}

static CURSORS: AtomicU64 = AtomicU64::new(0);

struct TxState {
    tx: Option<Transaction<'static, Postgres>>,
    depth: u32,
    /// The request scope's settings applied in the transaction so far.
    scoped: LocalSettings,
}

impl TxState {
    fn tx(&mut self) -> PluginResult<&mut Transaction<'static, Postgres>> {
        self.tx
            .as_mut()
            .ok_or_else(|| PluginError::closed("transaction"))
    }

    /// Ends the transaction (commit or roll back); later calls are `closed`.
    fn take(&mut self) -> PluginResult<Transaction<'static, Postgres>> {
        self.tx
            .take()
            .ok_or_else(|| PluginError::closed("transaction"))
    }

    fn check_depth(&self, depth: u32) -> PluginResult<()> {
        check_savepoint(self.depth, depth)
    }

    /// The connection, with `scoped` applied when the transaction does not
    /// run under those settings yet (the first statement of a transaction
    /// run as a user; every statement of it carries the same claims).
    async fn scoped(&mut self, db: &Db, scoped: LocalSettings) -> PluginResult<&mut PgConnection> {
        if !scoped.is_empty() && scoped != self.scoped {
            let conn = &mut **self.tx()?;
            db.apply_scoped(conn, &scoped).await.map_err(map)?;
            self.scoped = scoped;
        }
        Ok(&mut **self.tx()?)
    }
}

/// A transaction on one pooled connection. Dropping it rolls back (the
/// connection is handed back through the plugin's runtime).
pub struct Tx {
    shared: Arc<Shared>,
    /// Shared with a bulk read's producer task, which holds it while the
    /// `COPY` streams.
    state: Arc<tokio::sync::Mutex<TxState>>,
}

fn sp(depth: u32) -> String {
    format!("strata_sp_{depth}")
}

impl SqlTransaction for Tx {
    async fn exec(&self, script: String) -> PluginResult<()> {
        let mut st = self.state.lock().await;
        sqlx::raw_sql(AssertSqlSafe(script))
            .execute(&mut **st.tx()?)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn run(&self, stmt: Statement) -> PluginResult<RunResult> {
        let db = &self.shared.db;
        let scoped = db.scope_of(&stmt.ext)?;
        let mut st = self.state.lock().await;
        let conn = st.scoped(db, scoped).await?;
        self.shared.run_on(conn, &stmt).await
    }

    async fn query(&self, stmt: Statement, max_rows: u64) -> PluginResult<Rows> {
        let db = &self.shared.db;
        let scoped = db.scope_of(&stmt.ext)?;
        let mut st = self.state.lock().await;
        let conn = st.scoped(db, scoped).await?;
        self.shared.query_on(conn, &stmt, max_rows).await
    }

    async fn savepoint(&self) -> PluginResult<u32> {
        let mut st = self.state.lock().await;
        let depth = st.depth + 1;
        sqlx::raw_sql(AssertSqlSafe(format!("SAVEPOINT {}", sp(depth))))
            .execute(&mut **st.tx()?)
            .await
            .map_err(map)?;
        st.depth = depth;
        Ok(depth)
    }

    async fn release(&self, depth: u32) -> PluginResult<()> {
        let mut st = self.state.lock().await;
        st.check_depth(depth)?;
        sqlx::raw_sql(AssertSqlSafe(format!("RELEASE SAVEPOINT {}", sp(depth))))
            .execute(&mut **st.tx()?)
            .await
            .map_err(map)?;
        st.depth = depth - 1;
        Ok(())
    }

    async fn rollback_to(&self, depth: u32) -> PluginResult<()> {
        let mut st = self.state.lock().await;
        st.check_depth(depth)?;
        let name = sp(depth);
        sqlx::raw_sql(AssertSqlSafe(format!(
            "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        )))
        .execute(&mut **st.tx()?)
        .await
        .map_err(map)?;
        st.depth = depth - 1;
        Ok(())
    }

    async fn commit(&self) -> PluginResult<()> {
        let tx = self.state.lock().await.take()?;
        tx.commit().await.map_err(map)
    }

    async fn rollback(&self) -> PluginResult<()> {
        let tx = self.state.lock().await.take()?;
        tx.rollback().await.map_err(map)
    }

    async fn bulk_write(&self, request: BulkWrite) -> PluginResult<u64> {
        let mut st = self.state.lock().await;
        crate::bulk::write_in(&self.shared.db, st.tx()?, request).await
    }

    /// `COPY (query) TO STDOUT (FORMAT binary)` on the transaction's
    /// connection, decoded by a task on the plugin's runtime into pages
    /// the cursor hands out (two pages ahead at most), while the host
    /// works on the previous ones. The columns' readers are those of
    /// `query`, from describing the query first, so the values are the
    /// same; a column no reader takes is `unsupported` before the `COPY`.
    async fn bulk_read(&self, stmt: Statement) -> PluginResult<CursorHandle> {
        check_not_empty(&stmt.sql)?;
        if !stmt.params.is_empty() {
            return Err(PluginError::invalid_input(
                "bulk read: the query takes no parameters (COPY cannot bind them)",
            ));
        }
        let mut st = self.state.clone().lock_owned().await;
        let (columns, types) = self.shared.result_types(st.tx()?, &stmt.sql).await?;
        for (t, c) in types.iter().zip(&columns) {
            crate::types::refuse_unsupported(t, c)?;
        }
        let (pages, receiver) = tokio::sync::mpsc::channel::<PluginResult<Rows>>(2);
        let copy = format!(
            "COPY ({}) TO STDOUT (FORMAT binary)",
            stmt.sql.trim().trim_end_matches(';')
        );
        let names = columns.clone();
        detach(async move {
            // Every page the cursor was sent; an error ends the stream.
            let produce = async {
                let conn = &mut **st.tx()?;
                let mut stream = conn.copy_out_raw(&copy).await.map_err(map)?;
                // `Ok(true)`: every row was read and sent; `Ok(false)`: the
                // cursor was dropped first.
                let read = async {
                    let mut decoder = crate::copy_out::CopyDecoder::new(names.len());
                    // Sized for as many rows as the last page held.
                    let page_of = |rows: usize| Rows {
                        columns: names.clone(),
                        values: Vec::with_capacity(rows * names.len()),
                        row_count: 0,
                    };
                    let mut page = page_of(BULK_READ_PAGE);
                    let mut page_bytes = 0;
                    while let Some(chunk) = stream.try_next().await.map_err(map)? {
                        decoder.feed(&chunk, |fields| {
                            for ((f, t), c) in fields.iter().zip(&types).zip(&names) {
                                page.values.push(match f {
                                    None => strata_plugin::Value::Null,
                                    Some(b) => read_binary(b, t, c)?,
                                });
                            }
                            page.row_count += 1;
                            Ok(())
                        })?;
                        page_bytes += chunk.len();
                        // (A row longer than the byte bound spans chunks:
                        // the page waits for at least one whole row.)
                        if page.row_count as usize >= BULK_READ_PAGE
                            || (page_bytes >= BULK_READ_PAGE_BYTES && page.row_count > 0)
                        {
                            page_bytes = 0;
                            let rows = page.row_count as usize;
                            let full = std::mem::replace(&mut page, page_of(rows));
                            if pages.send(Ok(full)).await.is_err() {
                                return Ok(false);
                            }
                        }
                    }
                    decoder.finish()?;
                    if page.row_count > 0 {
                        let _ = pages.send(Ok(page)).await;
                    }
                    Ok::<bool, PluginError>(true)
                }
                .await;
                // Stopped early (the cursor dropped, a value refused): the
                // rest of the `COPY` is read and discarded, since the
                // connection takes the transaction's next statement only
                // after the server's last `CopyData` (sqlx does not skip
                // them: the next statement would fail with a protocol
                // error). Dropping a stream part way costs the rest of
                // the result's transfer, not its decoding.
                if !matches!(read, Ok(true)) {
                    while let Ok(Some(_)) = stream.try_next().await {}
                }
                read.map(drop)
            };
            if let Err(e) = produce.await {
                let _ = pages.send(Err(e)).await;
            }
            drop(st);
        });
        Ok(CursorHandle::new(CopyCursor {
            columns,
            state: tokio::sync::Mutex::new((receiver, None)),
        }))
    }

    /// Every call is async network I/O: polled in the plugin's runtime.
    /// A bulk write is a task there: it encodes its rows and streams the
    /// `COPY` while the host reads the next batch (polled by the host, it
    /// stood still while the host parsed: a restore's load took 4.1 s
    /// with both sides idle half the time).
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        match call {
            SqlCall::BulkWrite(_) => Runs::Task,
            _ => Runs::Async,
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Roll back and return the connection on the plugin's runtime: sqlx
        // needs a tokio context to hand a connection back to its pool, and
        // the host may drop the transaction on any thread.
        // A bulk read still streaming holds the state: its task drops the
        // transaction (rolling it back) when it ends.
        let Ok(mut st) = self.state.try_lock() else {
            return;
        };
        if let Some(tx) = st.tx.take() {
            detach(async move {
                let _ = tx.rollback().await;
            });
        }
    }
}

/// Rows a bulk read's task sends at a time, at most.
const BULK_READ_PAGE: usize = 4096;

/// `COPY` bytes a bulk read's task decodes into one page, at most (about:
/// the page is sent after the chunk that crosses it). With the two pages
/// the channel holds, this bounds the memory of a stream of wide rows
/// (a 384-d vector is 1.5 KB a row: 4096 rows would be 7 MB a page).
const BULK_READ_PAGE_BYTES: usize = 1 << 20;

/// The cursor of [`Tx::bulk_read`]: pages from the task streaming the
/// `COPY`, and what is left of the last one when `next` asked for fewer
/// rows than it held.
struct CopyCursor {
    columns: Vec<String>,
    state: tokio::sync::Mutex<(
        tokio::sync::mpsc::Receiver<PluginResult<Rows>>,
        Option<Rows>,
    )>,
}

impl SqlCursor for CopyCursor {
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    /// `max_rows` rows, fewer only at the end (the host reads a short
    /// block as the end).
    async fn next(&self, max_rows: u32) -> PluginResult<Rows> {
        let mut st = self.state.lock().await;
        let (receiver, rest) = &mut *st;
        let width = self.columns.len();
        let want = max_rows.max(1) as u64;
        let mut out = Rows {
            columns: self.columns.clone(),
            values: Vec::new(),
            row_count: 0,
        };
        while out.row_count < want {
            let mut page = match rest.take() {
                Some(p) => p,
                None => match receiver.recv().await {
                    None => break,
                    Some(p) => p?,
                },
            };
            let take = (want - out.row_count).min(page.row_count);
            if out.row_count == 0 && take == page.row_count {
                out.values = page.values;
            } else {
                out.values
                    .extend(page.values.drain(..take as usize * width));
                page.row_count -= take;
                if page.row_count > 0 {
                    *rest = Some(page);
                }
            }
            out.row_count += take;
        }
        Ok(out)
    }

    /// Waiting for the next page is all it does.
    fn runs(&self, _call: SqlCall<'_>) -> Runs {
        Runs::Async
    }
}

/// A server-side cursor in its own transaction.
pub struct Cursor {
    shared: Arc<Shared>,
    name: String,
    columns: Vec<String>,
    /// False in pooler-safe mode: `FETCH` is sent unnamed.
    persistent: bool,
    tx: tokio::sync::Mutex<Option<Transaction<'static, Postgres>>>,
}

impl SqlCursor for Cursor {
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    async fn next(&self, max_rows: u32) -> PluginResult<Rows> {
        let mut guard = self.tx.lock().await;
        let Some(t) = guard.as_mut() else {
            return Ok(Rows {
                columns: self.columns.clone(),
                ..Rows::default()
            });
        };
        let rows: Vec<PgRow> = sqlx::query(AssertSqlSafe(format!(
            "FETCH {} FROM {}",
            max_rows.max(1),
            self.name
        )))
        .persistent(self.persistent)
        .fetch_all(&mut **t)
        .await
        .map_err(map)?;
        let out = self.shared.rows(t, self.columns.clone(), &rows).await?;
        if (rows.len() as u32) < max_rows.max(1) {
            // Exhausted: end the transaction now and free the connection.
            if let Some(t) = guard.take() {
                let _ = t.rollback().await;
            }
        }
        Ok(out)
    }

    /// Every call is async network I/O: polled in the plugin's runtime.
    fn runs(&self, _call: SqlCall<'_>) -> Runs {
        Runs::Async
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if let Some(t) = self.tx.get_mut().take() {
            detach(async move {
                let _ = t.rollback().await;
            });
        }
    }
}
