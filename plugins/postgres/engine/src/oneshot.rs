//! One connection kept out of the pool for one-shot statements.
//!
//! A statement outside a transaction used to take a pooled connection and
//! give it back. sqlx's pool tests a connection on every acquire (a ping:
//! one more round trip) and does its bookkeeping on every release, which
//! came to ~150 µs of a ~500 µs ad-hoc statement (benchmarks/sql-pg.md:
//! sqlx `raw_sql` through a `PgPool` vs on one `PgConnection`). So the
//! first one-shot statement detaches a connection from the pool and keeps
//! it here; the next ones run on it while it is free, and a statement that
//! finds it busy takes a pooled connection as before (the pool is never
//! waited on for it). The pool makes room for the detached connection, so
//! a backend holds at most `pool_size + 1` server connections.
//!
//! What keeps it sound:
//! - it is pinged before use only when it sat idle for a second or more (a
//!   server or a network may have dropped it meanwhile), as the pool would;
//! - a call dropped mid-statement drops the connection with it (its state
//!   is unknown): it is closed, never reused, and the next statement
//!   detaches a new one;
//! - after an error it is kept only when the server answered it (a SQL
//!   error: the connection is ready for the next statement); a connection,
//!   protocol or internal error drops it, and so does SQLSTATE 25P02 (the
//!   connection sits in a failed transaction);
//! - a statement that opens a transaction by hand (`BEGIN`, `START
//!   TRANSACTION`: use the transaction API instead) leaves the connection
//!   in it, so that connection goes back to no one: it is closed, and the
//!   open transaction rolls back, rather than every later one-shot
//!   statement landing inside it (a pooled connection would have taken one
//!   of them in ten);
//! - like the pool's connections (sqlx's `max_lifetime`), it is replaced
//!   after 30 minutes, so a server process's caches do not grow forever;
//! - `close` closes it with the pool.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use strata_plugin::{ErrorKind, PluginResult};
use tokio::sync::Mutex;

use crate::{error::map, params::lead_keyword};

/// Whether `sql` opens a transaction by hand (`BEGIN`, `START TRANSACTION`).
fn opens_transaction(sql: &str) -> bool {
    matches!(lead_keyword(sql).as_deref(), Some("begin" | "start"))
}

/// Idle time after which the kept connection is pinged before use.
const PING_AFTER: Duration = Duration::from_secs(1);
/// Age after which the kept connection is replaced (sqlx's default
/// `max_lifetime` for pooled ones).
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

struct Kept {
    conn: PgConnection,
    born: Instant,
    last_used: Instant,
}

/// The kept connection, if any (see the module docs).
#[derive(Default)]
pub(crate) struct OneShot {
    slot: Mutex<Option<Kept>>,
}

impl OneShot {
    /// Runs `body`, which sends the one statement `sql`, on the kept
    /// connection when it is free, else on a pooled one.
    pub(crate) async fn run<T>(
        &self,
        pool: &PgPool,
        sql: &str,
        body: impl AsyncFnOnce(&mut PgConnection) -> PluginResult<T>,
    ) -> PluginResult<T> {
        let Ok(mut slot) = self.slot.try_lock() else {
            let mut conn = pool.acquire().await.map_err(map)?;
            return body(&mut conn).await;
        };
        let fresh = async || {
            let conn = pool.acquire().await.map_err(map)?.detach();
            let now = Instant::now();
            PluginResult::Ok(Kept {
                conn,
                born: now,
                last_used: now,
            })
        };
        let mut kept = match slot.take() {
            Some(k) if k.born.elapsed() >= MAX_LIFETIME => {
                let _ = k.conn.close().await;
                fresh().await?
            }
            Some(k) if k.last_used.elapsed() < PING_AFTER => k,
            Some(mut k) => match k.conn.ping().await {
                Ok(()) => k,
                Err(_) => fresh().await?,
            },
            None => fresh().await?,
        };
        let out = body(&mut kept.conn).await;
        let reusable = match &out {
            Ok(_) => !opens_transaction(sql),
            Err(e) => {
                e.backend_code()
                    .is_some_and(|c| !c.is_empty() && c != "25P02")
                    && e.kind() != ErrorKind::Connection
            }
        };
        if reusable {
            kept.last_used = Instant::now();
            *slot = Some(kept);
        }
        // Otherwise `kept` is dropped here: closed without waiting for the
        // server's goodbye (an open transaction rolls back when the server
        // sees the connection go).
        out
    }

    /// Closes the kept connection (waiting for a statement running on it).
    pub(crate) async fn close(&self) {
        if let Some(k) = self.slot.lock().await.take() {
            let _ = k.conn.close().await;
        }
    }
}
