//! "Has anything been committed since?" answered without a statement.
//!
//! The vector store keeps catalog rows (a collection's dimension, metric
//! and generation) in memory and must notice a commit by any connection —
//! this backend's writer, another backend on the same file, another
//! process. Reading the catalog on every query costs a statement and the
//! read locks around it (two `fcntl` system calls): taking it off the path
//! raised HNSW queries at ef 16–64 by 20–40 % QPS on 60K real embeddings
//! (`benchmarks/vectors-sqlite.md`, session 16).
//!
//! In WAL mode every commit, by any connection of any process, rewrites
//! the *wal-index header* at the start of the `-shm` file they all map
//! (<https://sqlite.org/walformat.html>, "The WAL-Index Header": a format
//! shared by every SQLite version since 3.7.0, so it cannot change). The
//! header holds a per-transaction change counter, the last valid frame, the
//! WAL salts and a checksum over them. It is kept twice: a committing
//! writer writes the second copy, a memory barrier, then the first, and
//! SQLite's own readers read the first, a barrier, the second, trusting
//! them only when equal. [`token`] reads it that way.
//!
//! So two equal [`CommitToken`]s mean no transaction committed between the
//! two reads: a new read transaction sees what one started at the first
//! read saw. A token that differs or cannot be read (`None`) proves
//! nothing, and the caller reads the database. A checkpoint that restarts
//! the WAL rewrites the header without a commit: a false alarm, one extra
//! read.
//!
//! Only for a database this backend opened in WAL mode (see
//! `Shared::commit_token`): on a rollback-journal database the mapping
//! call would create a `-shm` file SQLite never uses.

use std::{
    ffi::c_void,
    ptr,
    sync::atomic::{AtomicU32, Ordering, fence},
};

use rusqlite::{Connection, ffi};

/// The wal-index header is 48 bytes: twelve 32-bit words.
const HEADER_WORDS: usize = 12;

/// SQLite maps the wal-index in regions of this size (`WALINDEX_PGSZ`); the
/// header starts region 0.
const REGION_BYTES: i32 = 32 * 1024;

/// A copy of the wal-index header: equal tokens, no commit in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommitToken([u32; HEADER_WORDS]);

/// The database's current commit token, read from shared memory through
/// `c`'s own mapping of the `-shm` file (no statement, no lock, no system
/// call once mapped); `None` when it cannot be read consistently (a
/// commit is writing it right now, or there is no wal-index).
///
/// `c` must be open on a WAL database (see the module docs). Mapping the
/// region on a connection that has not read yet is what SQLite itself
/// does on that connection's first read (`xShmMap` on the same handle):
/// the mapping is opened early, and is the one SQLite then uses.
pub(crate) fn token(c: &Connection) -> Option<CommitToken> {
    // SAFETY: `c.handle()` is a live connection this thread holds (a
    // `&Connection`; connections are opened NO_MUTEX and never shared
    // across threads while in use). FILE_POINTER writes the main
    // database's `sqlite3_file*` into the pointer it is given; its methods
    // table is SQLite's for as long as the connection is open. `xShmMap`
    // exists from `iVersion` 2 and returns region 0 of the wal-index, at
    // least REGION_BYTES long and page-aligned, mapped for as long as the
    // connection is open (we only read it before returning). The header
    // is read with atomic loads: other connections and processes write
    // it concurrently, as SQLite's own lock-free header read expects.
    unsafe {
        let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
        let rc = ffi::sqlite3_file_control(
            c.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast::<c_void>(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() {
            return None;
        }
        let methods = (*file).pMethods;
        if methods.is_null() || (*methods).iVersion < 2 {
            return None;
        }
        let map = (*methods).xShmMap?;
        let mut region: *mut c_void = ptr::null_mut();
        if map(file, 0, REGION_BYTES, 0, &raw mut region) != ffi::SQLITE_OK || region.is_null() {
            return None;
        }
        let words = region.cast::<AtomicU32>().cast_const();
        let copy = |n: usize| -> [u32; HEADER_WORDS] {
            std::array::from_fn(|i| (*words.add(n * HEADER_WORDS + i)).load(Ordering::Relaxed))
        };
        let first = copy(0);
        fence(Ordering::Acquire);
        let second = copy(1);
        // Byte 12 is `isInit`: 0 until a connection has built the index.
        let initialised = first[3].to_ne_bytes()[0] != 0;
        (first == second && initialised).then_some(CommitToken(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c
    }

    #[test]
    fn a_commit_anywhere_changes_the_token_and_a_read_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let writer = open(&path);
        writer.execute_batch("CREATE TABLE t (x)").unwrap();
        // A connection that has not read yet maps the index itself.
        let reader = Connection::open(&path).unwrap();
        let before = token(&reader).expect("a WAL database has a token");
        assert_eq!(
            token(&writer),
            Some(before),
            "one header for every connection"
        );
        let n: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(token(&reader), Some(before), "a read commits nothing");

        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let after = token(&reader).unwrap();
        assert_ne!(after, before, "the writer's commit is seen by the reader");

        // A transaction rolled back commits nothing.
        writer
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); ROLLBACK")
            .unwrap();
        assert_eq!(token(&reader), Some(after));

        // Each of several commits changes it.
        let mut seen = vec![before, after];
        for _ in 0..5 {
            writer.execute("UPDATE t SET x = x + 1", []).unwrap();
            let t = token(&reader).unwrap();
            assert!(
                !seen.contains(&t),
                "a commit left the token as it was: {t:?} in {seen:?}"
            );
            seen.push(t);
        }
        // An update that leaves every page as it was writes no WAL frame:
        // nothing committed, nothing to notice.
        writer.execute("UPDATE t SET x = x", []).unwrap();
        assert_eq!(token(&reader).as_ref(), seen.last());
    }

    #[test]
    fn a_checkpoint_that_restarts_the_wal_keeps_commits_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let writer = open(&path);
        writer.execute_batch("CREATE TABLE t (x)").unwrap();
        let reader = Connection::open(&path).unwrap();
        let mut seen = vec![token(&reader).unwrap()];
        for i in 0..4 {
            writer
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
            writer.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            let t = token(&reader).unwrap();
            assert!(!seen.contains(&t), "commit {i} after a restart not seen");
            seen.push(t);
        }
    }
}
