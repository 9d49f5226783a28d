//! The SQL contract on SQLite.
//!
//! # Connections
//!
//! One *writer* connection, behind an async mutex, runs every write and every
//! transaction (`BEGIN IMMEDIATE`), so writers queue in the process instead of
//! spinning on `SQLITE_BUSY`. Reads run on a small pool of *reader*
//! connections, which WAL lets proceed beside the writer. A query whose
//! prepared statement is not read-only (`INSERT … RETURNING`) is routed to the
//! writer. An in-memory database has a single connection that does both.
//!
//! The queue is bounded in time: a call waits at most `writer_timeout_ms`
//! (30 s by default) for the writer, then fails with `busy`, as SQLite
//! itself does past `busy_timeout` across processes. Without the bound, a
//! write issued on the backend while one of the caller's own transactions is
//! open (a natural mistake: `let tx = sql.begin(); sql.run(..)`) would wait
//! for itself forever. The deadline is kept by the plugin kit's runtime
//! ([`strata_plugin::runs::timeout`]), which works wherever the call runs.
//!
//! # Where each call runs
//!
//! SQLite is synchronous: a call holds its thread until SQLite returns. So
//! only a point read runs inline on the caller's thread, where a thread hop
//! would cost more than the read itself; everything else runs on the
//! plugin's blocking pool, so a long write, a `VACUUM INTO` backup or a big
//! result never holds the application's executor thread (see
//! `SqliteSql::runs` for the table). An inline read that turns out to be
//! long moves to the pool (`crate::inline`).
//!
//! A call on the pool runs to completion even when the caller stops
//! awaiting it, like a statement already sent to a database server: a
//! write whose future is dropped still happens (once the writer is free),
//! and a transaction or cursor it returns is dropped at once, which rolls
//! the transaction back and frees the writer.
//!
//! A streaming cursor keeps a statement open across calls, so it has a
//! thread of its own: `next` hands it a request and awaits the batch.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Duration,
};

use rusqlite::{
    Connection, OpenFlags,
    types::{ToSqlOutput, ValueRef},
};
use strata_plugin::{
    ErrorKind, PluginError, PluginResult, Runs, SqlBackend, SqlCursor, SqlTransaction, Value,
    sql::{BulkWrite, Rows, RunResult, SqlCall, Statement, check_savepoint},
};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::{config::SqliteConfig, error::map, inline};

/// State shared by every handle of one opened database.
pub(crate) struct Shared {
    cfg: SqliteConfig,
    file: Option<PathBuf>,
    /// Opened `immutable=1` (see [`open_read_only`]).
    immutable: bool,
    /// The writer put the file in WAL mode: commits show in the wal-index
    /// header ([`Shared::commit_token`]).
    wal: bool,
    writer: Arc<AsyncMutex<Option<Connection>>>,
    readers: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl Shared {
    /// Opens the database `file` (`None`: in memory), already resolved
    /// against the directory of `plugins.toml`.
    pub(crate) fn open(cfg: SqliteConfig, file: Option<PathBuf>) -> PluginResult<Arc<Shared>> {
        if let Some(path) = &file {
            if cfg.read_only {
                if !path.exists() {
                    return Err(PluginError::new(
                        ErrorKind::NotFound,
                        format!(
                            "database {} does not exist (read_only is set, so it is not created)",
                            path.display()
                        ),
                    ));
                }
            } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    PluginError::new(
                        ErrorKind::Connection,
                        format!("cannot create directory {}: {e}", dir.display()),
                    )
                })?;
            }
        }
        let (writer, immutable) = match (&file, cfg.read_only) {
            (Some(path), true) => open_read_only(&cfg, path)?,
            _ => (open_connection(&cfg, file.as_ref(), true, false)?, false),
        };
        // Read-only opens are left out: they cannot make the file WAL, and
        // one may meet a rollback-journal database.
        let wal = file.is_some()
            && !cfg.read_only
            && writer
                .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
                .is_ok_and(|mode| mode.eq_ignore_ascii_case("wal"));
        Ok(Arc::new(Shared {
            cfg,
            file,
            immutable,
            wal,
            writer: Arc::new(AsyncMutex::new(Some(writer))),
            readers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }))
    }

    pub(crate) fn check_open(&self) -> PluginResult<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(PluginError::closed("sqlite connection"))
        } else {
            Ok(())
        }
    }

    pub(crate) fn take_reader(&self) -> PluginResult<Connection> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => open_connection(&self.cfg, self.file.as_ref(), false, self.immutable),
        }
    }

    pub(crate) fn return_reader(&self, conn: Connection) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.cfg.max_readers as usize {
            pool.push(conn);
        }
    }

    /// The database's commit token, read through `c` (a connection of
    /// this backend) without a statement: equal tokens mean no commit in
    /// between, by anyone (see [`crate::commits`]). `None` when that cannot
    /// be known this way: in memory, read-only, not WAL, or a commit is
    /// writing the header right now.
    pub(crate) fn commit_token(&self, c: &Connection) -> Option<crate::commits::CommitToken> {
        if self.wal {
            crate::commits::token(c)
        } else {
            None
        }
    }

    /// The database file, or `None` in memory.
    pub(crate) fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &SqliteConfig {
        &self.cfg
    }

    /// Runs `f` on a reader connection (the only connection, in memory).
    pub(crate) async fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> PluginResult<T>,
    ) -> PluginResult<T> {
        self.check_open()?;
        if self.file.is_none() {
            return self.with_writer(f).await;
        }
        let conn = self.take_reader()?;
        let result = f(&conn);
        self.return_reader(conn);
        result
    }

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction on the writer;
    /// commits when it returns `Ok`, rolls back otherwise.
    pub(crate) async fn with_write_tx<T>(
        &self,
        f: impl FnOnce(&Connection) -> PluginResult<T>,
    ) -> PluginResult<T> {
        self.with_writer(|c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)
                    .map_err(map)?;
            let value = f(&tx)?;
            tx.commit().map_err(map)?;
            Ok(value)
        })
        .await
    }

    /// The writer connection, waited for at most `writer_timeout_ms` (the
    /// mutex is fair: writers are served in arrival order). `what` names
    /// the waiting call in the error.
    pub(crate) async fn lock_writer(
        &self,
        what: &str,
    ) -> PluginResult<OwnedMutexGuard<Option<Connection>>> {
        if let Ok(guard) = self.writer.clone().try_lock_owned() {
            return Ok(guard);
        }
        let ms = self.cfg.writer_timeout_ms;
        let wait = self.writer.clone().lock_owned();
        if ms == 0 {
            return Ok(wait.await);
        }
        strata_plugin::runs::timeout(Duration::from_millis(ms.into()), wait)
            .await
            .map_err(|()| {
                PluginError::new(
                    ErrorKind::Busy,
                    format!(
                        "{what}: the database's writer connection stayed busy for {ms} ms \
                         (writer_timeout_ms): an open transaction, a writing statement's \
                         stream not read to its end, or a long write holds it. A call on \
                         the backend made while one of its own transactions is open waits \
                         for that transaction: commit, roll back or drop it first, or run \
                         the call inside the transaction"
                    ),
                )
            })
    }

    /// Runs `f` on the writer connection.
    pub(crate) async fn with_writer<T>(
        &self,
        f: impl FnOnce(&Connection) -> PluginResult<T>,
    ) -> PluginResult<T> {
        self.check_open()?;
        let guard = self.lock_writer("write").await?;
        let conn = guard
            .as_ref()
            .ok_or_else(|| PluginError::closed("sqlite connection"))?;
        f(conn)
    }

    pub(crate) async fn health(&self) -> PluginResult<String> {
        let file = self.file.clone();
        self.with_writer(|c| {
            let version: String = c
                .query_row("select sqlite_version()", [], |r| r.get(0))
                .map_err(map)?;
            let mode: String = c
                .query_row("pragma journal_mode", [], |r| r.get(0))
                .map_err(map)?;
            Ok(format!(
                "sqlite {version}, {}, journal_mode={mode}",
                file.map_or_else(|| "in memory".to_string(), |p| p.display().to_string())
            ))
        })
        .await
    }

    pub(crate) async fn close(&self) -> PluginResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        // Waits for an open transaction or cursor to finish with the writer
        // first, so the backend is either closed or, past
        // `writer_timeout_ms`, still fully open (the error says why): never
        // "closed" for a while and then open again.
        let mut guard = self.lock_writer("close").await?;
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let conn = guard.take();
        if let Some(conn) = conn {
            conn.close().map_err(|(_, e)| map(e))?;
        }
        Ok(())
    }
}

/// Opens a `read_only` backend's first connection, in the mode its files
/// allow; returns it and whether it is `immutable`.
///
/// SQLite's read-only mode (`SQLITE_OPEN_READONLY`, as `?mode=ro`) reads a
/// database with the usual locking, so it sees other processes' commits as
/// they land, WAL ones included. A WAL database needs its `-shm` file for
/// that, which SQLite creates next to the database: in a directory the
/// process cannot write, a database closed cleanly (no `-wal`, no `-shm`)
/// fails to open ("attempt to write a readonly database"). Such a
/// database holds everything in its file, so it is opened `immutable=1`
/// instead: no locks, no `-shm`, the WAL ignored — correct as long as no
/// process writes the file while it is open (a writer could not create
/// its own `-wal` there either, unless it may write the directory). A WAL
/// that holds commits but has no `-shm` cannot be read at all there, and
/// is refused saying so.
fn open_read_only(cfg: &SqliteConfig, path: &Path) -> PluginResult<(Connection, bool)> {
    let conn = open_connection(cfg, Some(&path.to_path_buf()), true, false)?;
    // Reading the schema opens the WAL index, where a missing `-shm` shows.
    let probe = conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()));
    let Err(e) = probe else {
        return Ok((conn, false));
    };
    let shm_problem = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    );
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    let (wal, shm) = (side("-wal"), side("-shm"));
    if !shm_problem || shm.exists() || path.as_os_str().to_string_lossy().starts_with("file:") {
        return Err(map(e));
    }
    drop(conn);
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if wal_len > 0 {
        return Err(PluginError::new(
            ErrorKind::Connection,
            format!(
                "cannot read {} read-only: it has a write-ahead log ({}, {wal_len} bytes) but no {}, \
                 and SQLite cannot create that file because the directory is not writable by this \
                 process; open the database once read-write where its directory is writable (which \
                 folds the log into the file), or copy it with its -wal to a writable place",
                path.display(),
                wal.display(),
                shm.display()
            ),
        ));
    }
    Ok((
        open_connection(cfg, Some(&path.to_path_buf()), true, true)?,
        true,
    ))
}

/// `path` as an SQLite URI with `immutable=1`.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for ch in path.to_string_lossy().chars() {
        match ch {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Turns off SQLite's memory statistics in this library's copy of SQLite
/// (once, before its first connection). With them on (SQLite's default),
/// every allocation takes a global mutex to count itself; the plugin never
/// reads the counts, and the parser and virtual machine allocate all the
/// time: ~5 % of an ad-hoc statement's time in `strata-bench sql-sqlite`.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` may be called before SQLite initialises
        // (it returns SQLITE_MISUSE, changing nothing, after): this runs
        // before this library opens its first connection, and the copy of
        // SQLite linked into this library is used by nothing else.
        // MEMSTATUS takes one `int` argument.
        let _ = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
    });
}

fn open_connection(
    cfg: &SqliteConfig,
    file: Option<&PathBuf>,
    writer: bool,
    immutable: bool,
) -> PluginResult<Connection> {
    configure_sqlite();
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if cfg.read_only || !writer {
        flags |= OpenFlags::SQLITE_OPEN_READ_ONLY;
    } else {
        flags |= OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = match file {
        Some(path) if immutable => Connection::open_with_flags(immutable_uri(path), flags),
        Some(path) => Connection::open_with_flags(path, flags),
        None => Connection::open_in_memory_with_flags(flags),
    }
    .map_err(|e| {
        let err = map(e);
        PluginError::new(
            err.kind(),
            format!(
                "cannot open {}: {}",
                file.map_or_else(|| ":memory:".into(), |p| p.display().to_string()),
                err.message()
            ),
        )
    })?;
    conn.set_prepared_statement_cache_capacity(cfg.statement_cache as usize);
    conn.busy_timeout(Duration::from_millis(cfg.busy_timeout_ms.into()))
        .map_err(map)?;
    if writer && !cfg.read_only {
        if file.is_some() {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(map)?;
        }
        conn.pragma_update(None, "synchronous", cfg.synchronous.pragma())
            .map_err(map)?;
        if file.is_some() {
            // Checkpoints as SQLite's automatic ones, but never on the
            // caller's thread of an inline write (`crate::inline`).
            conn.wal_hook(Some(inline::wal_hook));
        }
    }
    conn.pragma_update(None, "foreign_keys", cfg.foreign_keys)
        .map_err(map)?;
    inline::install(&conn)?;
    Ok(conn)
}

/// Binds a [`Value`] without copying it.
pub(crate) struct Bind<'a>(pub(crate) &'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b.as_slice()),
        }))
    }
}

fn read_value(v: ValueRef<'_>) -> PluginResult<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| PluginError::internal(format!("text column is not UTF-8: {e}")))?
                .into(),
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

fn bind_all(stmt: &mut rusqlite::Statement<'_>, params: &[Value]) -> PluginResult<()> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(PluginError::invalid_input(format!(
            "statement takes {expected} parameters, {} given",
            params.len()
        )));
    }
    for (i, p) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Bind(p)).map_err(map)?;
    }
    Ok(())
}

fn column_names(stmt: &rusqlite::Statement<'_>) -> Vec<String> {
    stmt.column_names().into_iter().map(String::from).collect()
}

/// Steps `rows` until `max_rows` rows (0 = all) have been appended to `out`.
fn collect_rows(
    rows: &mut rusqlite::Rows<'_>,
    width: usize,
    max_rows: u64,
    out: &mut Rows,
) -> PluginResult<()> {
    while max_rows == 0 || out.row_count < max_rows {
        let Some(row) = rows.next().map_err(map)? else {
            break;
        };
        for i in 0..width {
            out.values.push(read_value(row.get_ref(i).map_err(map)?)?);
        }
        out.row_count += 1;
    }
    Ok(())
}

fn query_on(conn: &Connection, stmt: &Statement, max_rows: u64) -> PluginResult<Rows> {
    let prepared = conn.prepare_cached(&stmt.sql).map_err(map)?;
    query_prepared(prepared, &stmt.params, max_rows)
}

/// Refuses a text that holds no statement (empty, or only comments):
/// SQLite prepares it into nothing, and stepping nothing is an API misuse.
/// Only a statement that is read-only and has no result columns is
/// checked further, so the usual statements pay nothing for it.
fn require_statement(stmt: &rusqlite::Statement<'_>) -> PluginResult<()> {
    if stmt.readonly() && stmt.column_count() == 0 && stmt.expanded_sql().is_none() {
        return Err(PluginError::invalid_input(
            "no SQL statement in the text (it is empty or holds only comments)",
        ));
    }
    Ok(())
}

fn query_prepared(
    mut prepared: rusqlite::CachedStatement<'_>,
    params: &[Value],
    max_rows: u64,
) -> PluginResult<Rows> {
    require_statement(&prepared)?;
    bind_all(&mut prepared, params)?;
    let columns = column_names(&prepared);
    let width = columns.len();
    // Sized for the common cases: a point read, or the first rows of a scan.
    let expected_rows = if max_rows == 0 {
        16
    } else {
        max_rows.min(16) as usize
    };
    let mut out = Rows {
        columns,
        values: Vec::with_capacity(width * expected_rows),
        row_count: 0,
    };
    let mut rows = prepared.raw_query();
    collect_rows(&mut rows, width, max_rows, &mut out)?;
    Ok(out)
}

fn run_on(conn: &Connection, stmt: &Statement) -> PluginResult<RunResult> {
    let mut prepared = conn.prepare_cached(&stmt.sql).map_err(map)?;
    require_statement(&prepared)?;
    bind_all(&mut prepared, &stmt.params)?;
    // `changes()` is the count of the last INSERT, UPDATE or DELETE the
    // connection completed, whichever statement that was: a query or DDL
    // run after an insert would report the insert's rows. The connection's
    // running total tells whether this statement changed any.
    let before = conn.total_changes();
    // Step to completion, so `INSERT … RETURNING` and queries run through `run` too.
    let mut rows = prepared.raw_query();
    while rows.next().map_err(map)?.is_some() {}
    drop(rows);
    Ok(RunResult {
        changes: if conn.total_changes() == before {
            0
        } else {
            conn.changes()
        },
        last_insert_rowid: Some(conn.last_insert_rowid()),
    })
}

fn is_readonly(conn: &Connection, sql: &str) -> PluginResult<bool> {
    let prepared = conn.prepare_cached(sql).map_err(map)?;
    require_statement(&prepared)?;
    Ok(prepared.readonly())
}

/// The SQL handle of one backend.
pub(crate) struct SqliteSql {
    pub(crate) shared: Arc<Shared>,
}

impl SqliteSql {
    /// A query wherever it is: on a reader, or on the writer for a
    /// statement that writes (and for everything in memory).
    async fn query_anywhere(
        shared: &Shared,
        stmt: &Statement,
        max_rows: u64,
    ) -> PluginResult<Rows> {
        shared.check_open()?;
        if shared.file.is_none() {
            return shared.with_writer(|c| query_on(c, stmt, max_rows)).await;
        }
        let reader = shared.take_reader()?;
        let outcome = read_on(&reader, stmt, max_rows);
        shared.return_reader(reader);
        match outcome? {
            Some(rows) => Ok(rows),
            None => shared.with_writer(|c| query_on(c, stmt, max_rows)).await,
        }
    }

    /// A read on the caller's thread: `None` when it turned out to write or
    /// to be long (see `crate::inline`), for the pool to run.
    ///
    /// On the writer connection when it is free and outside a transaction
    /// (held at most the 1 ms an inline read may take), else on a reader.
    /// The writer's page cache is current after its own writes, while a
    /// reader's must read again every page a write changed: in a loop of
    /// writes and reads that cost ~1.5 µs a read (`strata-bench
    /// sql-sqlite`, repeated texts 0.65–0.71× → 0.83–0.84× of rusqlite).
    fn read_inline(&self, stmt: &Statement, max_rows: u64) -> PluginResult<Option<Rows>> {
        let shared = &self.shared;
        shared.check_open()?;
        if let Ok(guard) = shared.writer.clone().try_lock_owned()
            && let Some(conn) = guard.as_ref().filter(|c| c.is_autocommit())
        {
            return read_bounded(conn, stmt, max_rows);
        }
        let reader = shared.take_reader()?;
        let outcome = read_bounded(&reader, stmt, max_rows);
        shared.return_reader(reader);
        outcome
    }

    /// One statement on the writer, on the caller's thread, when that is
    /// short: the writer is free right now, outside a transaction
    /// (autocommit, so an interrupted statement leaves nothing behind), the
    /// database not locked by another process (no busy wait here), and the
    /// statement done within [`inline::INLINE_LIMIT`]. `None`: none of it
    /// was written; run it on the pool, where it may wait.
    fn run_inline(&self, stmt: &Statement) -> Option<PluginResult<RunResult>> {
        let shared = &self.shared;
        if let Err(e) = shared.check_open() {
            return Some(Err(e));
        }
        let guard = shared.writer.clone().try_lock_owned().ok()?;
        let conn = guard.as_ref()?;
        if !conn.is_autocommit() {
            return None;
        }
        conn.busy_timeout(Duration::ZERO).ok()?;
        let (outcome, tripped) = inline::bounded_outcome(|| run_on(conn, stmt));
        // (`sqlite3_busy_timeout` fails only on a closed handle.)
        let _ = conn.busy_timeout(Duration::from_millis(shared.cfg.busy_timeout_ms.into()));
        if inline::take_checkpoint_due() {
            let shared = shared.clone();
            strata_plugin::runs::detach(async move {
                let _ = strata_plugin::runs::blocking(async move {
                    shared
                        .with_writer(|c| {
                            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                                .map_err(map)
                        })
                        .await
                })
                .await;
            });
        }
        match outcome {
            Ok(result) => Some(Ok(result)),
            // Interrupted (rolled back) or locked before writing: nothing
            // was written. (SQLite ends the statement's own transaction;
            // should one be left open all the same, it is rolled back here,
            // so the pool's run starts clean.)
            Err(e) if tripped || e.kind() == ErrorKind::Busy => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// [`read_inline`](Self::read_inline) in memory, on the one connection:
    /// waited for here (an async wait), read here.
    async fn read_inline_in_memory(
        &self,
        stmt: &Statement,
        max_rows: u64,
    ) -> PluginResult<Option<Rows>> {
        self.shared.check_open()?;
        let guard = self.shared.lock_writer("query").await?;
        let conn = guard
            .as_ref()
            .ok_or_else(|| PluginError::closed("sqlite connection"))?;
        read_bounded(conn, stmt, max_rows)
    }
}

/// [`read_on`] within [`inline::INLINE_LIMIT`]: `Ok(None)` when `stmt`
/// writes or was cut off at the limit (the caller then runs it on the pool).
fn read_bounded(conn: &Connection, stmt: &Statement, max_rows: u64) -> PluginResult<Option<Rows>> {
    inline::bounded(|| read_on(conn, stmt, max_rows))
        .transpose()
        .map(Option::flatten)
}

/// Runs `stmt` on `conn` if it is read-only; `None` if it writes. One
/// statement-cache lookup: the statement is prepared once and only a
/// writing one (`INSERT … RETURNING`) is handed to the writer.
fn read_on(conn: &Connection, stmt: &Statement, max_rows: u64) -> PluginResult<Option<Rows>> {
    let prepared = conn.prepare_cached(&stmt.sql).map_err(map)?;
    require_statement(&prepared)?;
    if !prepared.readonly() {
        return Ok(None);
    }
    query_prepared(prepared, &stmt.params, max_rows).map(Some)
}

impl SqlBackend for SqliteSql {
    type Transaction = Tx;
    type Cursor = Cursor;

    /// Where each call runs:
    ///
    /// | call | runs | why |
    /// |---|---|---|
    /// | `query` (`get`, `all`) | inline | a read of a few rows takes microseconds, less than a thread hop (~50 µs here); a statement that writes, or a read past 1 ms, moves to the pool ([`crate::inline`]) |
    /// | `run` | inline, when the writer is free, outside a transaction and the file not locked by another process | one short write: a thread hop would cost several times the statement. One past 1 ms is interrupted (rolled back: autocommit) and run again on the pool; a lock held elsewhere sends it to the pool to wait there; a commit that would checkpoint leaves the checkpoint to the pool ([`crate::inline`]) |
    /// | `exec`, `bulk_write` | blocking pool | scripts and batches: they may be long (`VACUUM INTO`, a migration), and a script interrupted half-way could not be run again |
    /// | `begin` | blocking pool | `BEGIN IMMEDIATE` waits for other processes' writers |
    /// | `stream` | blocking pool | prepares the statement; its batches are read by the cursor's own thread |
    /// | `close` | blocking pool | waits for the writer, closes the files |
    ///
    /// Calls on a transaction all run on the pool ([`Tx::runs`]); a
    /// cursor's `next` runs inline, since its cursor thread does the work.
    fn runs(&self, call: SqlCall<'_>) -> Runs {
        match call {
            SqlCall::Query(..) | SqlCall::Run(_) => Runs::Inline,
            _ => Runs::Blocking,
        }
    }

    async fn exec(&self, script: String) -> PluginResult<()> {
        self.shared
            .with_writer(|c| c.execute_batch(&script).map_err(map))
            .await
    }

    async fn run(&self, stmt: Statement) -> PluginResult<RunResult> {
        if strata_plugin::runs::is_inline() {
            if let Some(result) = self.run_inline(&stmt) {
                return result;
            }
            let shared = self.shared.clone();
            return Box::pin(strata_plugin::runs::blocking(async move {
                shared.with_writer(|c| run_on(c, &stmt)).await
            }))
            .await;
        }
        self.shared.with_writer(|c| run_on(c, &stmt)).await
    }

    async fn query(&self, stmt: Statement, max_rows: u64) -> PluginResult<Rows> {
        // The futures of the slow paths are boxed, so that the future of a
        // point read stays small: the kit moves it a few times before it is
        // polled, and copying a kilobyte each time showed in `get`'s cost.
        if self.runs(SqlCall::Query(&stmt, max_rows)) != Runs::Inline {
            return Box::pin(Self::query_anywhere(&self.shared, &stmt, max_rows)).await;
        }
        let inline = match &self.shared.file {
            Some(_) => self.read_inline(&stmt, max_rows)?,
            None => Box::pin(self.read_inline_in_memory(&stmt, max_rows)).await?,
        };
        if let Some(rows) = inline {
            return Ok(rows);
        }
        let shared = self.shared.clone();
        Box::pin(strata_plugin::runs::blocking(async move {
            Self::query_anywhere(&shared, &stmt, max_rows).await
        }))
        .await
    }

    async fn stream(&self, stmt: Statement) -> PluginResult<Cursor> {
        Cursor::start(self.shared.clone(), stmt).await
    }

    async fn begin(&self) -> PluginResult<Tx> {
        let shared = &self.shared;
        shared.check_open()?;
        let guard = shared.lock_writer("begin").await?;
        let conn = guard
            .as_ref()
            .ok_or_else(|| PluginError::closed("sqlite connection"))?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(map)?;
        Ok(Tx {
            state: Mutex::new(TxState {
                guard: Some(guard),
                depth: 0,
            }),
        })
    }

    async fn close(&self) -> PluginResult<()> {
        self.shared.close().await
    }

    async fn bulk_write(&self, request: BulkWrite) -> PluginResult<u64> {
        self.shared.with_writer(|c| bulk_on(c, &request)).await
    }

    /// Transactions take bulk writes too (under a savepoint).
    const TRANSACTION_BULK: bool = true;
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// [`SqlBackend::bulk_write`] on SQLite: [`bulk_rows`] in one `BEGIN
/// IMMEDIATE` transaction.
fn bulk_on(conn: &Connection, req: &BulkWrite) -> PluginResult<u64> {
    bulk_within(conn, ["BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"], req)
}

/// [`SqlTransaction::bulk_write`] on SQLite: [`bulk_rows`] under a
/// savepoint of the open transaction, so a failure takes back only this
/// call's rows and leaves the transaction usable.
fn bulk_in_tx(conn: &Connection, req: &BulkWrite) -> PluginResult<u64> {
    bulk_within(
        conn,
        [
            "SAVEPOINT strata_bulk_tx",
            "RELEASE strata_bulk_tx",
            "ROLLBACK TO strata_bulk_tx; RELEASE strata_bulk_tx",
        ],
        req,
    )
}

/// [`bulk_rows`] between `open` and `keep`; on failure `undo` runs (its
/// own error ignored: the write's error is the one to report).
fn bulk_within(
    conn: &Connection,
    [open, keep, undo]: [&str; 3],
    req: &BulkWrite,
) -> PluginResult<u64> {
    conn.execute_batch(open).map_err(map)?;
    match bulk_rows(conn, req) {
        Ok(n) => {
            conn.execute_batch(keep).map_err(map)?;
            Ok(n)
        }
        Err(e) => {
            let _ = conn.execute_batch(undo);
            Err(e)
        }
    }
}

/// The rows of a bulk write, in the caller's transaction: one cached
/// `INSERT … ON CONFLICT DO UPDATE … WHERE <row differs>` statement
/// stepped per row (SQLite has no faster load path), then the `then`
/// statement.
fn bulk_rows(conn: &Connection, req: &BulkWrite) -> PluginResult<u64> {
    let width = req.check_shape()?;
    let table = quote_ident(&req.table);
    let cols: Vec<String> = req.columns.iter().map(|c| quote_ident(c)).collect();
    let mut sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        cols.join(", "),
        vec!["?"; width].join(", ")
    );
    if !req.key_columns.is_empty() {
        let keys: Vec<String> = req.key_columns.iter().map(|c| quote_ident(c)).collect();
        let rest: Vec<&String> = req
            .columns
            .iter()
            .zip(&cols)
            .filter(|(c, _)| !req.key_columns.contains(c))
            .map(|(_, q)| q)
            .collect();
        if rest.is_empty() {
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
        } else {
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {} WHERE {}",
                keys.join(", "),
                rest.iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                rest.iter()
                    .map(|c| format!("{table}.{c} IS NOT excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ));
        }
    }
    let mut stmt = conn.prepare_cached(&sql).map_err(map)?;
    let mut written = 0u64;
    for row in req.values.chunks(width) {
        for (i, v) in row.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, Bind(v)).map_err(map)?;
        }
        written += stmt.raw_execute().map_err(map)? as u64;
    }
    drop(stmt);
    if let Some(then) = &req.then {
        run_on(conn, then)?;
    }
    Ok(written)
}

struct TxState {
    /// The writer, held for the transaction's lifetime; `None` once it ended.
    guard: Option<OwnedMutexGuard<Option<Connection>>>,
    depth: u32,
}

impl TxState {
    fn conn(&self) -> PluginResult<&Connection> {
        self.guard
            .as_ref()
            .and_then(|g| g.as_ref())
            .ok_or_else(|| PluginError::closed("transaction"))
    }
}

/// A write transaction; dropping it un-committed rolls back.
pub(crate) struct Tx {
    // A std mutex: every call runs on the blocking pool and none awaits
    // while holding it.
    state: Mutex<TxState>,
}

impl Tx {
    fn with<T>(&self, f: impl FnOnce(&mut TxState) -> PluginResult<T>) -> PluginResult<T> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st)
    }
}

fn savepoint_name(depth: u32) -> String {
    format!("strata_sp_{depth}")
}

impl SqlTransaction for Tx {
    /// Every call of a transaction runs on the blocking pool: each is a
    /// statement on the writer connection, and `commit` syncs the journal.
    fn runs(&self, _call: SqlCall<'_>) -> Runs {
        Runs::Blocking
    }

    async fn exec(&self, script: String) -> PluginResult<()> {
        self.with(|st| st.conn()?.execute_batch(&script).map_err(map))
    }

    async fn run(&self, stmt: Statement) -> PluginResult<RunResult> {
        self.with(|st| run_on(st.conn()?, &stmt))
    }

    async fn query(&self, stmt: Statement, max_rows: u64) -> PluginResult<Rows> {
        self.with(|st| query_on(st.conn()?, &stmt, max_rows))
    }

    async fn savepoint(&self) -> PluginResult<u32> {
        self.with(|st| {
            let depth = st.depth + 1;
            st.conn()?
                .execute_batch(&format!("SAVEPOINT {}", savepoint_name(depth)))
                .map_err(map)?;
            st.depth = depth;
            Ok(depth)
        })
    }

    async fn release(&self, depth: u32) -> PluginResult<()> {
        self.with(|st| {
            check_savepoint(st.depth, depth)?;
            st.conn()?
                .execute_batch(&format!("RELEASE {}", savepoint_name(depth)))
                .map_err(map)?;
            st.depth = depth - 1;
            Ok(())
        })
    }

    async fn rollback_to(&self, depth: u32) -> PluginResult<()> {
        self.with(|st| {
            check_savepoint(st.depth, depth)?;
            let name = savepoint_name(depth);
            st.conn()?
                .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))
                .map_err(map)?;
            st.depth = depth - 1;
            Ok(())
        })
    }

    async fn commit(&self) -> PluginResult<()> {
        self.with(|st| {
            let result = st.conn()?.execute_batch("COMMIT").map_err(map);
            if result.is_err() {
                // A failed COMMIT (e.g. a deferred foreign key) leaves the
                // transaction open: roll it back so the writer is clean.
                if let Ok(c) = st.conn() {
                    let _ = c.execute_batch("ROLLBACK");
                }
            }
            st.guard = None;
            result
        })
    }

    async fn rollback(&self) -> PluginResult<()> {
        self.with(|st| {
            let result = st.conn()?.execute_batch("ROLLBACK").map_err(map);
            st.guard = None;
            result
        })
    }

    async fn bulk_write(&self, request: BulkWrite) -> PluginResult<u64> {
        self.with(|st| bulk_in_tx(st.conn()?, &request))
    }
}

impl Drop for Tx {
    /// Rolls back a transaction neither committed nor rolled back, then
    /// frees the writer. The host may drop a transaction on its executor
    /// thread, so the `ROLLBACK` runs on the blocking pool (inline only if
    /// the pool cannot start); calls queued for the writer get it after.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(guard) = st.guard.take() else {
            return;
        };
        let rollback = move || {
            if let Some(conn) = guard.as_ref()
                && !conn.is_autocommit()
            {
                let _ = conn.execute_batch("ROLLBACK");
            }
            drop(guard);
        };
        match strata_plugin::runs::runtime() {
            Ok(rt) => drop(rt.spawn_blocking(rollback)),
            Err(_) => rollback(),
        }
    }
}

type BatchReply = tokio::sync::oneshot::Sender<PluginResult<Rows>>;

/// A streaming cursor: a thread owns the connection and the open statement
/// and hands out one batch per request, so memory stays bounded by the batch
/// size whatever the result size.
pub(crate) struct Cursor {
    columns: Vec<String>,
    requests: Mutex<Option<mpsc::Sender<(u32, BatchReply)>>>,
}

enum Conn {
    Reader(Connection),
    Writer(OwnedMutexGuard<Option<Connection>>),
}

impl Cursor {
    async fn start(shared: Arc<Shared>, stmt: Statement) -> PluginResult<Cursor> {
        shared.check_open()?;
        let conn = if shared.file.is_some() {
            let reader = shared.take_reader()?;
            if is_readonly(&reader, &stmt.sql)? {
                Conn::Reader(reader)
            } else {
                shared.return_reader(reader);
                Conn::Writer(shared.lock_writer("stream").await?)
            }
        } else {
            Conn::Writer(shared.lock_writer("stream").await?)
        };
        let (req_tx, req_rx) = mpsc::channel::<(u32, BatchReply)>();
        let (cols_tx, cols_rx) = tokio::sync::oneshot::channel::<PluginResult<Vec<String>>>();
        std::thread::Builder::new()
            .name("strata-sqlite-cursor".into())
            .spawn(move || cursor_thread(shared, conn, stmt, cols_tx, req_rx))
            .map_err(|e| PluginError::internal(format!("cannot start cursor thread: {e}")))?;
        let columns = cols_rx
            .await
            .map_err(|_| PluginError::internal("cursor thread ended before it started"))??;
        Ok(Cursor {
            columns,
            requests: Mutex::new(Some(req_tx)),
        })
    }
}

fn cursor_thread(
    shared: Arc<Shared>,
    conn: Conn,
    stmt: Statement,
    cols_tx: tokio::sync::oneshot::Sender<PluginResult<Vec<String>>>,
    requests: mpsc::Receiver<(u32, BatchReply)>,
) {
    match conn {
        Conn::Reader(c) => {
            serve_cursor(&c, &stmt, cols_tx, &requests);
            shared.return_reader(c);
        }
        Conn::Writer(guard) => match guard.as_ref() {
            Some(c) => serve_cursor(c, &stmt, cols_tx, &requests),
            None => {
                let _ = cols_tx.send(Err(PluginError::closed("sqlite connection")));
            }
        },
    }
}

fn serve_cursor(
    conn: &Connection,
    stmt: &Statement,
    cols_tx: tokio::sync::oneshot::Sender<PluginResult<Vec<String>>>,
    requests: &mpsc::Receiver<(u32, BatchReply)>,
) {
    let prepared = conn.prepare(&stmt.sql).map_err(map).and_then(|mut p| {
        require_statement(&p)?;
        bind_all(&mut p, &stmt.params)?;
        Ok(p)
    });
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            let _ = cols_tx.send(Err(e));
            return;
        }
    };
    let columns = column_names(&prepared);
    let width = columns.len();
    let _ = cols_tx.send(Ok(columns));
    let mut rows = prepared.raw_query();
    let mut done = false;
    // Ends when the cursor is dropped (the request channel closes).
    while let Ok((max, reply)) = requests.recv() {
        let max = u64::from(max.max(1));
        let mut out = Rows::default();
        let result = if done {
            Ok(out)
        } else {
            match collect_rows(&mut rows, width, max, &mut out) {
                Ok(()) => {
                    done = out.row_count < max;
                    Ok(out)
                }
                Err(e) => {
                    done = true;
                    Err(e)
                }
            }
        };
        let _ = reply.send(result);
        if done {
            // Free the statement (and, in memory mode, the writer) as soon as
            // the result is exhausted; later requests get empty batches.
            break;
        }
    }
}

impl SqlCursor for Cursor {
    fn columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    /// Inline: `next` only hands the request to the cursor's own thread,
    /// which steps the statement, and awaits its reply.
    fn runs(&self, _call: SqlCall<'_>) -> Runs {
        Runs::Inline
    }

    async fn next(&self, max_rows: u32) -> PluginResult<Rows> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|s| s.send((max_rows, tx)).is_ok());
        if !sent {
            // The thread ends once the result is exhausted: the stream is over.
            return Ok(Rows::default());
        }
        rx.await
            .map_err(|_| PluginError::internal("cursor thread ended unexpectedly"))?
    }
}
