//! Keeping inline calls short.
//!
//! A point read runs [`Runs::Inline`](strata_plugin::Runs::Inline): on the
//! caller's thread, with no thread hop (see [`crate::sql`] for which calls
//! do). Which calls those are is decided before the statement is even
//! prepared, from the request alone, so two things catch a call that turns
//! out not to be short and finish it on the plugin's blocking pool
//! ([`strata_plugin::runs::blocking`]) instead:
//!
//! - a query that writes (`INSERT … RETURNING` read with `get`) is seen
//!   when it is prepared, before it runs;
//! - a statement still running [`INLINE_LIMIT`] after SQLite's first
//!   progress callback (a `count(*)` over a big table, a scan of an
//!   unindexed column, an `UPDATE` of many rows) is interrupted by the
//!   progress handler every connection has ([`install`]) and run again from
//!   the start on the pool. Reads are read-only; an inline `run` is one
//!   statement in autocommit mode, which SQLite rolls back whole when
//!   interrupted. So running one again changes nothing but the time it
//!   takes;
//! - an inline `run` never waits for a lock: it fails fast when another
//!   process holds the database (nothing written) and waits on the pool;
//! - an inline commit never checkpoints the WAL: the writer's [`wal_hook`]
//!   replaces SQLite's automatic checkpoint and leaves it to the pool.

use std::{cell::Cell, ffi::c_int, time::Duration, time::Instant};

use rusqlite::{Connection, hooks::Wal};
use strata_plugin::PluginResult;

use crate::error::map;

/// How long an inline read may run before it moves to the blocking pool.
/// A point read takes a few microseconds; past a millisecond a read is not
/// one, and re-running it elsewhere wastes at most this much work.
pub(crate) const INLINE_LIMIT: Duration = Duration::from_millis(1);

/// SQLite virtual-machine instructions between progress callbacks: a point
/// read finishes before the first one, so it never pays for a clock read.
const PROGRESS_OPS: i32 = 1_000;

#[derive(Clone, Copy)]
enum Deadline {
    /// No inline read on this thread: nothing is ever interrupted.
    Off,
    /// An inline read started; its clock starts at the first callback.
    Armed,
    /// The first callback came at this instant.
    Since(Instant),
    /// The limit passed and the statement was interrupted.
    Tripped,
}

thread_local! {
    static DEADLINE: Cell<Deadline> = const { Cell::new(Deadline::Off) };
}

/// Installs the progress handler that enforces [`INLINE_LIMIT`] on `conn`.
/// It costs nothing to statements run outside [`bounded`] but one
/// thread-local read every [`PROGRESS_OPS`] instructions.
pub(crate) fn install(conn: &Connection) -> PluginResult<()> {
    conn.progress_handler(PROGRESS_OPS, Some(over_limit))
        .map_err(map)
}

/// The progress callback: `true` interrupts the running statement.
fn over_limit() -> bool {
    DEADLINE.with(|d| match d.get() {
        Deadline::Off => false,
        Deadline::Armed => {
            d.set(Deadline::Since(Instant::now()));
            false
        }
        Deadline::Since(t) if t.elapsed() < INLINE_LIMIT => false,
        Deadline::Since(_) | Deadline::Tripped => {
            d.set(Deadline::Tripped);
            true
        }
    })
}

/// Runs `f`, a read-only use of a connection on this thread, interrupting
/// the statements it runs once they pass [`INLINE_LIMIT`]. `None` when that
/// happened (whatever `f` returned: an error, or rows collected before the
/// interrupt, is discarded; run it again with
/// [`strata_plugin::runs::blocking`]).
pub(crate) fn bounded<T>(f: impl FnOnce() -> T) -> Option<T> {
    let (out, tripped) = bounded_outcome(f);
    (!tripped).then_some(out)
}

/// [`bounded`] that hands back what `f` returned and whether the limit
/// tripped (a write judges its outcome itself: one that returned `Ok`
/// committed, one interrupted was rolled back).
pub(crate) fn bounded_outcome<T>(f: impl FnOnce() -> T) -> (T, bool) {
    /// Disarms the deadline however `f` ends, so a panic (caught by the
    /// kit) leaves no armed deadline behind on the caller's thread.
    struct Disarm;
    impl Drop for Disarm {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(Deadline::Off));
        }
    }
    DEADLINE.with(|d| d.set(Deadline::Armed));
    let _disarm = Disarm;
    let out = f();
    let tripped = DEADLINE.with(|d| matches!(d.get(), Deadline::Tripped));
    (out, tripped)
}

/// WAL pages past which a commit checkpoints (SQLite's own default).
const AUTO_CHECKPOINT_PAGES: c_int = 1000;

thread_local! {
    /// An inline write's commit left the WAL past [`AUTO_CHECKPOINT_PAGES`].
    static CHECKPOINT_DUE: Cell<bool> = const { Cell::new(false) };
}

/// The writer's WAL hook, in place of SQLite's automatic checkpoint: after
/// a commit that leaves [`AUTO_CHECKPOINT_PAGES`] or more in the WAL, a
/// passive checkpoint, as SQLite's would run. Except inside [`bounded`]
/// (an inline write on the caller's thread): a checkpoint copies and syncs
/// megabytes, so it is only noted ([`take_checkpoint_due`]) for the
/// blocking pool to run.
pub(crate) fn wal_hook(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    if pages < AUTO_CHECKPOINT_PAGES {
        return Ok(());
    }
    if DEADLINE.with(|d| matches!(d.get(), Deadline::Off)) {
        // As SQLite's own hook: a checkpoint that cannot finish now (a
        // reader holds an old snapshot) is not the commit's error.
        let _ = wal.checkpoint();
    } else {
        CHECKPOINT_DUE.with(|c| c.set(true));
    }
    Ok(())
}

/// Whether an inline write on this thread left a checkpoint to run (and
/// forgets it).
pub(crate) fn take_checkpoint_due() -> bool {
    CHECKPOINT_DUE.with(|c| c.replace(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_read_is_interrupted_and_a_short_one_is_not() {
        let conn = Connection::open_in_memory().unwrap();
        install(&conn).unwrap();
        let count = |n: i64| {
            conn.query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
                 SELECT count(*) FROM c",
                [n],
                |r| r.get::<_, i64>(0),
            )
        };
        assert_eq!(bounded(|| count(10).unwrap()), Some(10));
        let started = Instant::now();
        assert!(bounded(|| count(100_000_000)).is_none());
        assert!(started.elapsed() < Duration::from_secs(1));
        // Outside `bounded` nothing is interrupted.
        assert_eq!(count(200_000).unwrap(), 200_000);
    }
}
