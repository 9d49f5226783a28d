//! Where the engine's statements go: `Db`, the pool plus the options
//! that make it safe behind a transaction-mode pooler (PgBouncer,
//! Supavisor) and that run a request as a user (row-level security).
//!
//! Direct mode (the Postgres plugin): statements run on the pool as they
//! are, session settings were `SET` when each connection opened, and sqlx
//! keeps named prepared statements per connection.
//!
//! Pooler-safe mode ([`EngineOptions::pooler_safe`]): a transaction-mode
//! pooler hands each *transaction* to whichever server connection is free,
//! so nothing may outlive one:
//! - no `SET` at connect: the session settings (search_path,
//!   statement_timeout, hnsw.*) are applied with `set_config(…, true)`
//!   (transaction-local) at the start of every transaction;
//! - no named prepared statements: every extended-protocol query is sent
//!   unnamed (`Unnamed`; sqlx's statement cache is off), and since sqlx
//!   sends Parse/Describe and Bind/Execute under two Syncs (between which
//!   the pooler may switch server connections), every such query runs
//!   inside a transaction: a one-shot statement on `Db` as an executor
//!   becomes `BEGIN; settings; statement; COMMIT`;
//! - no advisory locks, no cursor outliving its transaction (streams
//!   already declare theirs in a transaction of their own).
//!
//! Requests as a user: a [`RequestScope`] turns a request's extension
//! entries into more transaction-local settings (e.g. Supabase's
//! `request.jwt.claims` and `role`), applied in the same transaction as
//! the request's statements, with bound parameters.

use std::{fmt, sync::Arc};

use futures_util::{StreamExt, TryStreamExt, future::BoxFuture, stream::BoxStream};
use sqlx::{
    Database, Either, Execute, Executor, PgConnection, PgPool, Postgres, Transaction,
    error::BoxDynError,
    postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo},
};
use strata_plugin::{Extensions, PluginResult};

use crate::error::{Refused, map};

/// Transaction-local settings: `(name, value)` pairs for `set_config(name, value, true)`.
pub type LocalSettings = Vec<(String, String)>;

/// Turns a request's extension entries into the transaction-local settings
/// it runs under (empty: as the backend's own role, nothing to set). An
/// error refuses the request (e.g. a JWT that does not verify).
pub trait RequestScope: Send + Sync + 'static {
    /// The settings for a request carrying `ext`.
    fn settings(&self, ext: &Extensions) -> PluginResult<LocalSettings>;
}

/// How the engine behaves: the differences between the Postgres plugin
/// (the defaults) and plugins built on its engine (Supabase).
#[derive(Clone, Default)]
pub struct EngineOptions {
    /// Safe behind a transaction-mode pooler (see the module docs).
    pub pooler_safe: bool,
    /// A direct connection (bypassing the pooler) for DDL (`exec`
    /// scripts without a user), index builds and the vector catalog.
    pub direct_url: Option<String>,
    /// Requests as a user: their extension entries become transaction-local
    /// settings. `None`: extension entries are ignored.
    pub scope: Option<Arc<dyn RequestScope>>,
}

impl fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("pooler_safe", &self.pooler_safe)
            .field("direct_url", &self.direct_url.as_ref().map(|_| "<set>"))
            .field("scope", &self.scope.is_some())
            .finish()
    }
}

/// The pool and how to use it.
pub(crate) struct Db {
    pub(crate) pool: PgPool,
    /// The direct pool ([`EngineOptions::direct_url`]), else `pool`.
    pub(crate) ddl: PgPool,
    pub(crate) pooler_safe: bool,
    direct: bool,
    /// Pooler-safe mode: the session settings, applied per transaction.
    local: LocalSettings,
    scope: Option<Arc<dyn RequestScope>>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("pooler_safe", &self.pooler_safe)
            .finish_non_exhaustive()
    }
}

impl Db {
    pub(crate) fn new(
        pool: PgPool,
        ddl: Option<PgPool>,
        pooler_safe: bool,
        local: LocalSettings,
        scope: Option<Arc<dyn RequestScope>>,
    ) -> Arc<Db> {
        Arc::new(Db {
            direct: ddl.is_some(),
            ddl: ddl.unwrap_or_else(|| pool.clone()),
            pool,
            pooler_safe,
            local: if pooler_safe { local } else { Vec::new() },
            scope,
        })
    }

    /// Whether DDL has a direct connection of its own ([`EngineOptions::direct_url`]).
    pub(crate) fn has_direct(&self) -> bool {
        self.direct
    }

    /// The settings a request carrying `ext` adds (none without a scope).
    pub(crate) fn scope_of(&self, ext: &Extensions) -> PluginResult<LocalSettings> {
        match &self.scope {
            Some(s) if !ext.is_empty() => s.settings(ext),
            _ => Ok(Vec::new()),
        }
    }

    /// The settings of the vector request being served (the kit's
    /// [`strata_plugin::request::extensions`]); refused requests come back
    /// as a sqlx error [`error::map`](crate::error::map) turns back into
    /// the refusal.
    pub(crate) fn current_scope(&self) -> Result<LocalSettings, sqlx::Error> {
        if self.scope.is_none() {
            return Ok(Vec::new());
        }
        self.scope_of(&strata_plugin::request::extensions())
            .map_err(|e| sqlx::Error::Configuration(Box::new(Refused(e))))
    }

    /// Whether a one-shot statement with `scoped` settings needs a transaction of its own.
    pub(crate) fn needs_tx(&self, scoped: &LocalSettings) -> bool {
        self.pooler_safe || !scoped.is_empty()
    }

    /// Begins a transaction (`begin_sql`, else `BEGIN`) with the session
    /// settings (pooler-safe mode) and `scoped` applied (when empty: those
    /// of the vector request being served, [`Db::current_scope`]).
    pub(crate) async fn begin_with(
        &self,
        begin_sql: Option<String>,
        scoped: &LocalSettings,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let current;
        let scoped = if scoped.is_empty() {
            current = self.current_scope()?;
            &current
        } else {
            scoped
        };
        let mut tx = match begin_sql {
            Some(b) => self.pool.begin_with(sqlx::AssertSqlSafe(b)).await?,
            None => self.pool.begin().await?,
        };
        self.apply(&mut tx, scoped).await?;
        Ok(tx)
    }

    /// Applies the session settings (pooler-safe mode) and `scoped` in the
    /// transaction on `conn`: one `SELECT set_config($1, $2, true), …`, with
    /// every name and value a bound parameter.
    pub(crate) async fn apply(
        &self,
        conn: &mut PgConnection,
        scoped: &LocalSettings,
    ) -> Result<(), sqlx::Error> {
        self.set_local(conn, self.local.iter().chain(scoped.iter()).collect())
            .await
    }

    /// Applies `scoped` alone (a transaction's later switch to a user).
    pub(crate) async fn apply_scoped(
        &self,
        conn: &mut PgConnection,
        scoped: &LocalSettings,
    ) -> Result<(), sqlx::Error> {
        self.set_local(conn, scoped.iter().collect()).await
    }

    async fn set_local(
        &self,
        conn: &mut PgConnection,
        all: Vec<&(String, String)>,
    ) -> Result<(), sqlx::Error> {
        if all.is_empty() {
            return Ok(());
        }
        let calls: Vec<String> = (0..all.len())
            .map(|i| format!("set_config(${}, ${}, true)", 2 * i + 1, 2 * i + 2))
            .collect();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {}", calls.join(", "))))
            .persistent(!self.pooler_safe);
        for (k, v) in all {
            q = q.bind(k.as_str()).bind(v.as_str());
        }
        q.execute(conn).await?;
        Ok(())
    }

    /// `conn` as an executor that sends unnamed statements in pooler-safe mode.
    pub(crate) fn on<'c>(&self, conn: &'c mut PgConnection) -> On<'c> {
        On {
            conn,
            unnamed: self.pooler_safe,
        }
    }

    /// Describes `sql` (parameter types, columns) on `conn`. In pooler-safe
    /// mode the named statement sqlx's `prepare` leaves on the server is
    /// deallocated again in the same transaction.
    pub(crate) async fn describe(
        &self,
        conn: &mut PgConnection,
        sql: sqlx::SqlStr,
    ) -> PluginResult<PgStatement> {
        let stmt = conn.prepare(sql).await.map_err(map)?;
        if self.pooler_safe {
            sqlx::raw_sql("DEALLOCATE ALL")
                .execute(conn)
                .await
                .map_err(map)?;
        }
        Ok(stmt)
    }
}

/// A query whose statement is not kept (sent unnamed) when `unnamed`.
pub(crate) struct Unnamed<E> {
    inner: E,
    unnamed: bool,
}

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> sqlx::SqlStr {
        self.inner.sql()
    }

    fn statement(&self) -> Option<&<Postgres as Database>::Statement> {
        self.inner.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, BoxDynError> {
        self.inner.take_arguments()
    }

    fn persistent(&self) -> bool {
        !self.unnamed && self.inner.persistent()
    }
}

/// A connection (in a transaction) as an executor of unnamed statements in
/// pooler-safe mode ([`Db::on`]).
#[derive(Debug)]
pub(crate) struct On<'c> {
    conn: &'c mut PgConnection,
    unnamed: bool,
}

type Item = Result<Either<PgQueryResult, PgRow>, sqlx::Error>;

impl<'c> Executor<'c> for On<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        self.conn.fetch_many(Unnamed {
            inner: query,
            unnamed: self.unnamed,
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        self.conn.fetch_optional(Unnamed {
            inner: query,
            unnamed: self.unnamed,
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.conn.prepare_with(sql, parameters)
    }
}

/// The pool as an executor: as is in direct mode; in pooler-safe mode each
/// statement in a transaction of its own with the session settings, sent
/// unnamed, its result read whole before the commit.
impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Item>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let scoped = match self.current_scope() {
            Ok(s) => s,
            Err(e) => return futures_util::stream::once(async { Err(e) }).boxed(),
        };
        if !self.needs_tx(&scoped) {
            return self.pool.fetch_many(query);
        }
        let db = self;
        futures_util::stream::once(async move {
            let mut tx = db.begin_with(None, &scoped).await?;
            let items: Vec<Either<PgQueryResult, PgRow>> =
                db.on(&mut tx).fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures_util::stream::iter(items.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let scoped = match self.current_scope() {
            Ok(s) => s,
            Err(e) => return Box::pin(async { Err(e) }),
        };
        if !self.needs_tx(&scoped) {
            return self.pool.fetch_optional(query);
        }
        let db = self;
        Box::pin(async move {
            let mut tx = db.begin_with(None, &scoped).await?;
            let row = db.on(&mut tx).fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }
}

/// Runs `fut` as the backend's own role, whatever user the request being
/// served runs as (the catalog, index builds).
pub(crate) async fn as_backend<F: std::future::Future>(fut: F) -> F::Output {
    strata_plugin::request::scope(Extensions::new(), fut).await
}
