//! Backups to a blob store (S3, R2, any S3-compatible server), with
//! retention, verification and restore: the SQLite tier as database files,
//! other SQL backends (Postgres) and vector-only backends as logical
//! snapshots.
//!
//! # How a backup is taken
//!
//! 1. **Snapshot**, of one of two kinds ([`SnapshotKind`]):
//!    - **SQLite file.** `VACUUM INTO ?` is sent through the source
//!      backend's own SQL contract — the host links no SQLite. `VACUUM INTO`
//!      reads the database inside one read transaction, so the copy is a
//!      consistent snapshot of one moment (every transaction committed
//!      before it, none after), and in WAL mode writers keep committing
//!      while it runs. It is run on a second, `read_only = true` backend
//!      opened on the same file (when the plugin's schema has that key): the
//!      SQLite plugin routes non-`SELECT` statements to its single writer
//!      connection, and a snapshot there would queue every write behind it.
//!      A file copy is not consistent (it can tear a page being
//!      checkpointed) and the online backup API restarts whenever a writer
//!      commits on another connection, so neither fits "while writers keep
//!      writing". `VACUUM INTO` also writes a compact file, which makes the
//!      compressed object smaller, and one of live content only: SQLite
//!      leaves deleted rows' bytes in free pages and in free space inside
//!      pages in use (without `secure_delete`), and a page-for-page copy
//!      (a file copy, the backup API, `sqlite_dbpage`; ~3× faster) would
//!      carry a forgotten memory into every later backup
//!      (`deleted_rows_are_not_in_a_later_backup` in `tests/backup_fs.rs`).
//!    - **Logical (JSON Lines)**, for every other backend with the SQL or
//!      vector contract (Postgres today). The file is the export format of
//!      [`crate::migrate::jsonl`] (the same one `strata export` writes and
//!      `strata import` reads), written to a temporary file. **Tables** are
//!      read inside *one* transaction whose first statement is `SET
//!      TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY` (on
//!      Postgres; whatever the plugin's `isolation` setting began it with —
//!      see `snapshot_statement`): the catalogue and every table see the
//!      snapshot of the first read (each table one binary `COPY (SELECT …
//!      ORDER BY pk) TO STDOUT` through the plugin's bulk read when it has
//!      one, `strata.sql.transaction_bulk.v1`; keyset pages otherwise), so a writer
//!      committing multi-table transactions during the backup is either
//!      wholly in it or wholly out, and read only never blocks or aborts
//!      a writer. Internal tables (`strata_*`) are skipped. **Vector
//!      collections** are read after the tables through the vector
//!      contract's scan cursor; they are *not* part of the tables'
//!      snapshot (the contract has no transactions), so a collection may
//!      hold records written after the tables were read. Writing to a file
//!      first (rather than streaming to the upload) keeps the snapshot
//!      transaction as short as the reads: a long-open snapshot holds back
//!      Postgres' vacuum.
//! 2. **Compress + hash + upload, streamed.** A thread reads the snapshot
//!    and hashes it (SHA-256); a second compresses it (zstd level 3 by
//!    default, on a zstd worker thread, or gzip level 6), hashes the
//!    compressed stream and hands 8 MiB chunks to the multipart writer of
//!    the blob store; nothing holds the whole object in memory. Meanwhile
//!    a SQLite snapshot is opened read-only through the source's plugin
//!    for `PRAGMA integrity_check`: a damaged source fails the backup
//!    ([`BackupError::SourceDamaged`]; the object is deleted, no manifest
//!    is written), and a checked one is recorded in the manifest.
//! 3. **Manifest last.** `{prefix}{backend}/{timestamp}.manifest.json`
//!    records timestamp, source backend and plugin, strata version,
//!    compression, the snapshot kind (`"snapshot": "jsonl"`; omitted for
//!    SQLite files, so their manifests are byte for byte what earlier
//!    versions wrote), both sizes and both SHA-256s, and its own SHA-256
//!    (over its compact JSON with that field empty). A backup exists once
//!    its manifest does; an object without one is a failed or interrupted
//!    upload that [`BackupManager::verify`] reports and
//!    [`BackupManager::prune`] removes.
//!
//! Keys are `{prefix}{backend}/{timestamp}.{sqlite|jsonl}.{zst|gz}` with UTC
//! timestamps in ISO 8601 basic format and milliseconds
//! (`20261128T073000.123Z`), so key order is time order.
//!
//! # Restore
//!
//! A SQLite file ([`BackupManager::restore`], `--to PATH`): download
//! (ranged, several requests in flight) → check the object's SHA-256
//! against the manifest → decompress into a temporary file *in the
//! target's directory* (so the final rename is atomic) → check the
//! snapshot's size and SHA-256 → `fsync` → open the file through the SQLite
//! plugin read-only and require `PRAGMA integrity_check` = `ok` → the swap.
//! The check is skipped when the manifest records that the snapshot passed
//! it at backup time: the SHA-256 match proves the file is that snapshot,
//! so a second check would repeat the answer at the cost of reading the
//! whole database (0.27 s of a 414 MB restore that otherwise takes 0.85 s).
//! Backups without the record (earlier versions) are checked here, and
//! trial restores ([`BackupManager::trial_restore`]) always check.
//! Any failure before the swap leaves the target untouched (the temporary
//! file is deleted); an existing target is replaced only with `force`.
//!
//! The swap is atomic with respect to the old database's committed state:
//! killed at any moment, the target is the old database as committed (its
//! WAL's commits included) or the new one. Removing the old `-wal` before
//! the rename would lose the commits only the WAL holds, so the old WAL is
//! first checkpointed into the old file through the source's plugin
//! (`PRAGMA wal_checkpoint(TRUNCATE)`; a database another process is
//! reading makes it fail, and the restore is refused as `busy`); then the
//! emptied `-wal`/`-shm` and the SQLite plugin's index sidecars
//! (`<db>.strata-index/`: their point ids are rowids, which the new file
//! reuses for other vectors) are removed and the directory fsynced; then the
//! new file is renamed over the old (atomic) and the directory fsynced.
//! A target SQLite cannot open (a corrupt file, often the reason to
//! restore) has no commits to keep and is replaced as it is. Crash tests
//! stop the process at each step through `STRATA_FAULT_RESTORE_STEP=N`.
//! Each restore holds a lock on its temporary file while it runs, so a
//! `.NAME.restore-*` file nobody holds the lock of is a leftover of a
//! killed restore: the next restore removes it.
//!
//! A logical backup ([`BackupManager::restore_into`], `--into BACKEND`):
//! the same download and checks into a temporary file, then the target
//! backend — Postgres, or SQLite (types are translated as by `strata
//! migrate`): the tables and collections the backup holds that already
//! exist there are refused by name unless `force`; every table is then
//! dropped (with `force`), created and loaded in **one transaction**
//! (Postgres and SQLite both have transactional DDL) — through the
//! plugin's bulk write inside that transaction when it has one (binary
//! `COPY` on Postgres; a table the bulk path refuses goes on with
//! `INSERT … SELECT … unnest`), by multi-row `INSERT`s on SQLite —
//! so a failure or an interruption leaves the target's tables as they were.
//! Collections are restored after that transaction commits, each dropped
//! (with `force`), created and upserted in batches: a failure there leaves
//! the tables restored and the failing collection partly loaded (the
//! vector contract has no transactions); re-run with `force`.
//!
//! # Proving a backup restores
//!
//! [`BackupManager::verify`] proves each backup is what was uploaded
//! (manifest, size, SHA-256). That is not proof it restores: a CHECK
//! constraint calling a function of the source's schema, or a value written
//! in a form the target does not read back, pass every checksum.
//! [`BackupManager::trial_restore`] restores one backup through the same
//! code as a real restore — a SQLite file into a temporary directory beside
//! the source database (removed afterwards), a logical backup into a
//! scratch backend named by the caller (never the source) — and counts what
//! the copy holds against what was read from the backup.
//!
//! # Where the code is
//!
//! [`BackupManager`] (`manager.rs`) takes backups and finds them; the
//! snapshot (`snapshot.rs`), the compress-hash-upload and
//! download-decompress-check streams (`pipeline.rs`), the manifest and its
//! keys (`manifest.rs`), the listing of stored backups (`catalog.rs`),
//! restores (`restore.rs`), retention (`retention.rs`), verification
//! (`verify.rs`) and the schedule (`schedule.rs`) each have a file. Long
//! steps report to the manager's [`Progress`](crate::progress::Progress).

mod catalog;
mod error;
mod manager;
mod manifest;
mod pipeline;
mod restore;
mod retention;
mod schedule;
mod snapshot;
mod verify;

pub use catalog::{StoredBackup, Which};
pub use error::BackupError;
pub use manager::{BackupManager, BackupReport};
pub use manifest::{MANIFEST_FORMAT, Manifest, SnapshotKind, timestamp};
pub use pipeline::{download_file_decompressed, upload_file_compressed};
pub use restore::{FAULT_EXIT_CODE, LogicalRestoreReport, RestoreReport};
pub use retention::StaleUploads;
pub use verify::{TrialRestore, Verified};
