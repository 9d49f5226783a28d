//! The SQL contract on PostgreSQL.
//!
//! Work runs in the plugin's own tokio runtime context ([`crate::spawn`]),
//! polled by whatever executor the host runs. Parameter types
//! are described by the server once per statement text (then cached): each
//! strata value is encoded as the type the server expects, and types without
//! a native encoding are sent as text with an explicit cast added to the SQL.
//! Streaming reads declare a server-side cursor in a transaction of their
//! own and `FETCH` one batch per call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RString, RVec},
};
use futures_util::TryStreamExt;
use sqlx::{
    AssertSqlSafe, Column, Executor, Postgres, SqlSafeStr, Statement as _, Transaction,
    postgres::{PgArguments, PgPool, PgRow},
};
use strata_plugin_api::{
    PluginError, PluginResult,
    placeholders::{Dialect, rewrite_params},
    sql::{
        PluginFuture, Rows, RunResult, SqlConnection, SqlConnection_TO, SqlConnectionBox,
        SqlCursor, SqlCursor_TO, SqlCursorBox, SqlTransaction, SqlTransaction_TO,
        SqlTransactionBox, Statement,
    },
};

use crate::{
    error::map,
    spawn,
    types::{ParamKind, bind, read},
};

/// A statement as the server wants it: parameter kinds and the SQL with casts added.
struct Described {
    sql: String,
    kinds: Vec<ParamKind>,
    columns: RVec<RString>,
}

/// State shared by every handle of one backend.
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    /// `SERIALIZABLE` (default), `REPEATABLE READ` or `READ COMMITTED`.
    pub(crate) isolation: &'static str,
    described: Mutex<HashMap<String, Arc<Described>>>,
}

impl Shared {
    pub(crate) fn new(pool: PgPool, isolation: &'static str) -> Arc<Shared> {
        Arc::new(Shared {
            pool,
            isolation,
            described: Mutex::new(HashMap::new()),
        })
    }

    /// The statement's parameter types and columns, described by the server
    /// once per SQL text; inside a transaction on the transaction's own
    /// connection (`conn`), so it sees tables created earlier in it.
    async fn describe(
        &self,
        conn: Option<&mut sqlx::PgConnection>,
        original: &str,
    ) -> PluginResult<Arc<Described>> {
        if let Some(d) = self
            .described
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(original)
        {
            return Ok(d.clone());
        }
        let text = AssertSqlSafe(original.to_string()).into_sql_str();
        let stmt = match conn {
            Some(c) => c.prepare(text).await,
            None => self.pool.prepare(text).await,
        }
        .map_err(map)?;
        let kinds: Vec<ParamKind> = match stmt.parameters() {
            Some(sqlx::Either::Left(types)) => types.iter().map(ParamKind::of).collect(),
            Some(sqlx::Either::Right(n)) => vec![ParamKind::Text; n],
            None => Vec::new(),
        };
        let columns = stmt
            .columns()
            .iter()
            .map(|c| RString::from(c.name()))
            .collect();
        let sql = if kinds.iter().any(|k| k.cast().is_some()) {
            rewrite_params(original, Dialect::Postgres, |i| {
                match kinds.get(i).and_then(ParamKind::cast) {
                    Some(t) => format!("(${}::text)::{t}", i + 1),
                    None => format!("${}", i + 1),
                }
            })
            .map_err(|e| PluginError::invalid_input(e.to_string()))?
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
        conn: Option<&mut sqlx::PgConnection>,
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
}

fn to_rows(columns: &RVec<RString>, rows: &[PgRow]) -> PluginResult<Rows> {
    let width = columns.len();
    let mut out = Rows {
        columns: columns.clone(),
        values: RVec::with_capacity(width * rows.len()),
        row_count: rows.len() as u64,
    };
    for r in rows {
        for i in 0..width {
            out.values.push(read(r, i)?);
        }
    }
    Ok(out)
}

fn rowid_of(rows: &[PgRow]) -> ROption<i64> {
    rows.last()
        .and_then(|r| read(r, 0).ok())
        .and_then(|v| v.as_i64())
        .map_or(ROption::RNone, ROption::RSome)
}

async fn run_on<'c, E>(exec: E, d: &Described, args: PgArguments) -> PluginResult<RunResult>
where
    E: Executor<'c, Database = Postgres>,
{
    let q = sqlx::query_with(AssertSqlSafe(d.sql.clone()), args);
    if d.columns.is_empty() {
        let r = q.execute(exec).await.map_err(map)?;
        return Ok(RunResult {
            changes: r.rows_affected(),
            last_insert_rowid: ROption::RNone,
        });
    }
    // Statements that return rows: `INSERT … RETURNING id` reports the last
    // row's first column as the "last insert id"; a plain query changes nothing.
    // `fetch_many` is deprecated for multi-statement strings; here it runs one
    // prepared statement and is the one call that yields both the rows and
    // the command's row count.
    #[allow(deprecated)]
    let mut stream = q.fetch_many(exec);
    let (mut rows, mut affected) = (Vec::new(), 0u64);
    while let Some(item) = stream.try_next().await.map_err(map)? {
        match item {
            sqlx::Either::Left(done) => affected += done.rows_affected(),
            sqlx::Either::Right(row) => rows.push(row),
        }
    }
    let reads_only = {
        let head = d
            .sql
            .trim_start()
            .get(..8)
            .unwrap_or(&d.sql)
            .to_ascii_lowercase();
        ["select", "values", "show", "table", "explain"]
            .iter()
            .any(|k| head.starts_with(k))
    };
    Ok(RunResult {
        changes: if reads_only { 0 } else { affected },
        last_insert_rowid: if reads_only {
            ROption::RNone
        } else {
            rowid_of(&rows)
        },
    })
}

async fn query_on<'c, E>(
    exec: E,
    d: &Described,
    args: PgArguments,
    max_rows: u64,
) -> PluginResult<Rows>
where
    E: Executor<'c, Database = Postgres>,
{
    let q = sqlx::query_with(AssertSqlSafe(d.sql.clone()), args);
    let rows: Vec<PgRow> = if max_rows == 0 {
        q.fetch_all(exec).await.map_err(map)?
    } else {
        q.fetch(exec).try_take(max_rows).await.map_err(map)?
    };
    to_rows(&d.columns, &rows)
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

/// The SQL handle.
#[derive(Clone)]
pub(crate) struct PgSql {
    pub(crate) shared: Arc<Shared>,
    pub(crate) closed: Arc<std::sync::atomic::AtomicBool>,
}

impl PgSql {
    pub(crate) fn boxed(self) -> SqlConnectionBox {
        SqlConnection_TO::from_value(self, TD_Opaque)
    }

    fn check(&self) -> PluginResult<()> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) || self.shared.pool.is_closed() {
            Err(PluginError::closed("postgres connection"))
        } else {
            Ok(())
        }
    }
}

impl SqlConnection for PgSql {
    fn exec(&self, script: RString) -> PluginFuture<()> {
        let this = self.clone();
        spawn(async move {
            this.check()?;
            sqlx::raw_sql(AssertSqlSafe(script.into_string()))
                .execute(&this.shared.pool)
                .await
                .map_err(map)?;
            Ok(())
        })
    }

    fn run(&self, stmt: Statement) -> PluginFuture<RunResult> {
        let this = self.clone();
        spawn(async move {
            this.check()?;
            let (d, args) = this.shared.prepare(None, &stmt).await?;
            run_on(&this.shared.pool, &d, args).await
        })
    }

    fn query(&self, stmt: Statement, max_rows: u64) -> PluginFuture<Rows> {
        let this = self.clone();
        spawn(async move {
            this.check()?;
            let (d, args) = this.shared.prepare(None, &stmt).await?;
            query_on(&this.shared.pool, &d, args, max_rows).await
        })
    }

    fn stream(&self, stmt: Statement) -> PluginFuture<SqlCursorBox> {
        let this = self.clone();
        spawn(async move {
            this.check()?;
            let (d, args) = this.shared.prepare(None, &stmt).await?;
            let mut tx = this.shared.pool.begin().await.map_err(map)?;
            let name = format!(
                "strata_cursor_{}",
                CURSORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            sqlx::query_with(
                AssertSqlSafe(format!("DECLARE {name} NO SCROLL CURSOR FOR {}", d.sql)),
                args,
            )
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            Ok(SqlCursor_TO::from_value(
                Cursor {
                    name,
                    columns: d.columns.clone(),
                    tx: Arc::new(tokio::sync::Mutex::new(Some(tx))),
                },
                TD_Opaque,
            ))
        })
    }

    fn begin(&self) -> PluginFuture<SqlTransactionBox> {
        let this = self.clone();
        spawn(async move {
            this.check()?;
            let tx = this
                .shared
                .pool
                .begin_with(AssertSqlSafe(format!(
                    "BEGIN ISOLATION LEVEL {}",
                    this.shared.isolation
                )))
                .await
                .map_err(map)?;
            Ok(SqlTransaction_TO::from_value(
                Tx {
                    shared: this.shared.clone(),
                    state: Arc::new(tokio::sync::Mutex::new(TxState {
                        tx: Some(tx),
                        depth: 0,
                    })),
                },
                TD_Opaque,
            ))
        })
    }

    fn close(&self) -> PluginFuture<()> {
        let this = self.clone();
        spawn(async move {
            this.closed
                .store(true, std::sync::atomic::Ordering::Release);
            crate::close_pool(&this.shared.pool).await
        })
    }

    fn bulk_write(&self, request: strata_plugin_api::sql::BulkWrite) -> PluginFuture<u64> {
        let this = self.clone();
        spawn(async move {
            this.check()?;
            crate::bulk::write(&this.shared.pool, request).await
        })
    }
}

static CURSORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct TxState {
    tx: Option<Transaction<'static, Postgres>>,
    depth: u32,
}

impl TxState {
    fn tx(&mut self) -> PluginResult<&mut Transaction<'static, Postgres>> {
        self.tx
            .as_mut()
            .ok_or_else(|| PluginError::closed("transaction"))
    }
}

/// A transaction on one pooled connection. Dropping it rolls back (the
/// connection is handed back through the plugin's runtime).
struct Tx {
    shared: Arc<Shared>,
    state: Arc<tokio::sync::Mutex<TxState>>,
}

impl Tx {
    fn with<T: Send + 'static>(
        &self,
        f: impl for<'a> FnOnce(
            &'a mut TxState,
            Arc<Shared>,
        ) -> futures_util::future::BoxFuture<'a, PluginResult<T>>
        + Send
        + 'static,
    ) -> PluginFuture<T> {
        let state = self.state.clone();
        let shared = self.shared.clone();
        spawn(async move {
            let mut st = state.lock().await;
            f(&mut st, shared).await
        })
    }
}

fn sp(depth: u32) -> String {
    format!("strata_sp_{depth}")
}

impl SqlTransaction for Tx {
    fn exec(&self, script: RString) -> PluginFuture<()> {
        self.with(move |st, _| {
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(script.into_string()))
                    .execute(&mut **st.tx()?)
                    .await
                    .map_err(map)?;
                Ok(())
            })
        })
    }

    fn run(&self, stmt: Statement) -> PluginFuture<RunResult> {
        self.with(move |st, shared| {
            Box::pin(async move {
                let conn = &mut **st.tx()?;
                let (d, args) = shared.prepare(Some(&mut *conn), &stmt).await?;
                run_on(conn, &d, args).await
            })
        })
    }

    fn query(&self, stmt: Statement, max_rows: u64) -> PluginFuture<Rows> {
        self.with(move |st, shared| {
            Box::pin(async move {
                let conn = &mut **st.tx()?;
                let (d, args) = shared.prepare(Some(&mut *conn), &stmt).await?;
                query_on(conn, &d, args, max_rows).await
            })
        })
    }

    fn savepoint(&self) -> PluginFuture<u32> {
        self.with(|st, _| {
            Box::pin(async move {
                let depth = st.depth + 1;
                sqlx::raw_sql(AssertSqlSafe(format!("SAVEPOINT {}", sp(depth))))
                    .execute(&mut **st.tx()?)
                    .await
                    .map_err(map)?;
                st.depth = depth;
                Ok(depth)
            })
        })
    }

    fn release(&self, depth: u32) -> PluginFuture<()> {
        self.with(move |st, _| {
            Box::pin(async move {
                check_depth(st, depth)?;
                sqlx::raw_sql(AssertSqlSafe(format!("RELEASE SAVEPOINT {}", sp(depth))))
                    .execute(&mut **st.tx()?)
                    .await
                    .map_err(map)?;
                st.depth = depth - 1;
                Ok(())
            })
        })
    }

    fn rollback_to(&self, depth: u32) -> PluginFuture<()> {
        self.with(move |st, _| {
            Box::pin(async move {
                check_depth(st, depth)?;
                let name = sp(depth);
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
                )))
                .execute(&mut **st.tx()?)
                .await
                .map_err(map)?;
                st.depth = depth - 1;
                Ok(())
            })
        })
    }

    fn commit(&self) -> PluginFuture<()> {
        self.with(|st, _| {
            Box::pin(async move {
                let tx = st
                    .tx
                    .take()
                    .ok_or_else(|| PluginError::closed("transaction"))?;
                tx.commit().await.map_err(map)
            })
        })
    }

    fn rollback(&self) -> PluginFuture<()> {
        self.with(|st, _| {
            Box::pin(async move {
                let tx = st
                    .tx
                    .take()
                    .ok_or_else(|| PluginError::closed("transaction"))?;
                tx.rollback().await.map_err(map)
            })
        })
    }
}

fn check_depth(st: &TxState, depth: u32) -> PluginResult<()> {
    strata_plugin_api::sql::check_savepoint(st.depth, depth)
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Roll back and return the connection on the plugin's runtime: sqlx
        // needs a tokio context to hand a connection back to its pool.
        let state = self.state.clone();
        crate::runtime_spawn(async move {
            let tx = state.lock().await.tx.take();
            if let Some(tx) = tx {
                let _ = tx.rollback().await;
            }
        });
    }
}

/// A server-side cursor in its own transaction.
struct Cursor {
    name: String,
    columns: RVec<RString>,
    tx: Arc<tokio::sync::Mutex<Option<Transaction<'static, Postgres>>>>,
}

impl SqlCursor for Cursor {
    fn columns(&self) -> RVec<RString> {
        self.columns.clone()
    }

    fn next(&self, max_rows: u32) -> PluginFuture<Rows> {
        let tx = self.tx.clone();
        let (name, columns) = (self.name.clone(), self.columns.clone());
        spawn(async move {
            let mut guard = tx.lock().await;
            let Some(t) = guard.as_mut() else {
                return Ok(Rows {
                    columns,
                    ..Rows::default()
                });
            };
            let rows: Vec<PgRow> = sqlx::query(AssertSqlSafe(format!(
                "FETCH {} FROM {name}",
                max_rows.max(1)
            )))
            .fetch_all(&mut **t)
            .await
            .map_err(map)?;
            let out = to_rows(&columns, &rows)?;
            if (rows.len() as u32) < max_rows.max(1) {
                // Exhausted: end the transaction now and free the connection.
                if let Some(t) = guard.take() {
                    let _ = t.rollback().await;
                }
            }
            Ok(out)
        })
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        let tx = self.tx.clone();
        crate::runtime_spawn(async move {
            if let Some(t) = tx.lock().await.take() {
                let _ = t.rollback().await;
            }
        });
    }
}
