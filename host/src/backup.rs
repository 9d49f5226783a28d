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
//!      compressed object smaller.
//!    - **Logical (JSON Lines)**, for every other backend with the SQL or
//!      vector contract (Postgres today). The file is the export format of
//!      [`crate::migrate::jsonl`] (the same one `strata export` writes and
//!      `strata import` reads), written to a temporary file. **Tables** are
//!      read inside *one* transaction whose first statement is `SET
//!      TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY` (on
//!      Postgres; whatever the plugin's `isolation` setting began it with —
//!      see `snapshot_statement`): the catalogue and every keyset page of
//!      every table see the snapshot of the first read, so a writer
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
//! 2. **Compress + hash + upload, streamed.** A thread reads the snapshot,
//!    compresses it (zstd level 3 by default, or gzip level 6), hashes the
//!    snapshot and the compressed stream (SHA-256) and hands 8 MiB chunks
//!    to the multipart writer of the blob store; nothing holds the whole
//!    object in memory.
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
//! plugin read-only and require `PRAGMA integrity_check` = `ok` → remove a
//! stale `-wal`/`-shm` of the old target → rename into place → `fsync` the
//! directory. Any failure before the rename leaves the target untouched
//! (the temporary file is deleted); an existing target is replaced only
//! with `force`.
//!
//! A logical backup ([`BackupManager::restore_into`], `--into BACKEND`):
//! the same download and checks into a temporary file, then the target
//! backend — Postgres, or SQLite (types are translated as by `strata
//! migrate`): the tables and collections the backup holds that already
//! exist there are refused by name unless `force`; every table is then
//! dropped (with `force`), created and loaded by multi-row `INSERT`s in
//! **one transaction** (Postgres and SQLite both have transactional DDL),
//! so a failure or an interruption leaves the target's tables as they were.
//! Collections are restored after that transaction commits, each dropped
//! (with `force`), created and upserted in batches: a failure there leaves
//! the tables restored and the failing collection partly loaded (the
//! vector contract has no transactions); re-run with `force`.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::mpsc,
    time::{Duration, Instant, SystemTime},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strata_plugin_api::ErrorKind;

use crate::{
    Dialect, Strata, Value,
    blob::{BlobMeta, Blobs},
    config::{BackupSettings, Compression},
    error::{Error, Result},
    loader::Backend,
    migrate::{
        self, MigrateError, MigrateOptions,
        jsonl::{self, ImportMode},
        schema,
    },
};

/// Version of the manifest format.
pub const MANIFEST_FORMAT: u32 = 1;
const CHUNK: usize = crate::blob::DEFAULT_CHUNK;
const ZSTD_LEVEL: i32 = 3;
/// Rows per keyset page of a logical snapshot.
const LOGICAL_PAGE: usize = 5_000;
/// Rows per statement of a logical restore (fewer for wide rows: a
/// statement also stops at 16 MB of input, and at the parameter limit of
/// multi-row `VALUES`).
const LOGICAL_RESTORE_BATCH: usize = 10_000;

/// What can go wrong with backups, beyond plugin and I/O errors.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A stored backup is damaged; `what` says how.
    #[error("backup {timestamp} is corrupt: {what}")]
    Corrupt {
        /// The backup's timestamp.
        timestamp: String,
        /// What does not match.
        what: String,
    },
    /// No backup matches the request.
    #[error("no backup {wanted} for backend `{backend}` ({available})")]
    NotFound {
        /// What was asked for.
        wanted: String,
        /// The source backend.
        backend: String,
        /// The backups there are.
        available: String,
    },
    /// The restore target exists and `force` was not given.
    #[error("{} exists; refusing to replace it without --force", path.display())]
    TargetExists {
        /// The target.
        path: PathBuf,
    },
    /// The source backend cannot be backed up this way.
    #[error("backend `{backend}` cannot be backed up: {reason}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// Why.
        reason: String,
    },
    /// The backup is of the other kind than the restore asked for (a
    /// database file restored into a backend, or a logical export to a file).
    #[error("backup {timestamp} is {what}: {hint}")]
    WrongKind {
        /// The backup's timestamp.
        timestamp: String,
        /// What it is.
        what: String,
        /// How to restore it instead.
        hint: String,
    },
    /// Tables or collections of a logical backup already exist in the
    /// target backend and `force` was not given.
    #[error("backend `{backend}` already has {}; refusing to replace them without --force", items.join(", "))]
    ItemsExist {
        /// The target backend.
        backend: String,
        /// `table `a``, `collection `b``…
        items: Vec<String>,
    },
    /// A logical snapshot or restore failed; `what` says which.
    #[error("{what}: {source}")]
    Logical {
        /// What was being done (`backup of `pg``, `restoring backup … into `x``).
        what: String,
        /// The export or import error, naming the table or collection.
        #[source]
        source: Box<crate::migrate::MigrateError>,
    },
    /// The restored file failed SQLite's integrity check.
    #[error("backup {timestamp}: the restored database fails PRAGMA integrity_check: {result}")]
    IntegrityCheck {
        /// The backup's timestamp.
        timestamp: String,
        /// What the check said.
        result: String,
    },
}

impl BackupError {
    /// The error kind a caller can match on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::Corrupt { .. } | BackupError::IntegrityCheck { .. } => {
                ErrorKind::InvalidInput
            }
            BackupError::NotFound { .. } => ErrorKind::NotFound,
            BackupError::TargetExists { .. } | BackupError::ItemsExist { .. } => {
                ErrorKind::AlreadyExists
            }
            BackupError::WrongKind { .. } => ErrorKind::InvalidInput,
            BackupError::Logical { source, .. } => migrate_kind(source),
            BackupError::Unsupported { .. } => ErrorKind::Unsupported,
        }
    }
}

fn migrate_kind(e: &MigrateError) -> ErrorKind {
    match e {
        MigrateError::Table { source, .. } | MigrateError::Collection { source, .. } => {
            source.kind()
        }
        MigrateError::Backend { .. } => ErrorKind::Unsupported,
        _ => ErrorKind::InvalidInput,
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// The manifest stored beside each backup object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// UTC timestamp (`20261128T073000.123Z`), also in the keys.
    pub timestamp: String,
    /// The source backend's name in `plugins.toml`.
    pub backend: String,
    /// The source backend's plugin and version (`sqlite 0.1.0`).
    pub plugin: String,
    /// The strata version that wrote the backup.
    pub strata_version: String,
    /// `zstd` or `gzip`.
    pub compression: String,
    /// What the object holds. Omitted from the JSON for SQLite database
    /// files (the default), so manifests written before logical backups
    /// existed keep their exact bytes and self-checksum.
    #[serde(default, skip_serializing_if = "SnapshotKind::is_sqlite_file")]
    pub snapshot: SnapshotKind,
    /// The backup object's key.
    pub object_key: String,
    /// The backup object's size (compressed).
    pub object_size: u64,
    /// SHA-256 of the backup object, hex.
    pub object_sha256: String,
    /// Size of the snapshot (the restored database file).
    pub snapshot_size: u64,
    /// SHA-256 of the snapshot, hex.
    pub snapshot_sha256: String,
    /// Milliseconds the backup took.
    pub duration_ms: u64,
    /// SHA-256 of this manifest's compact JSON with this field empty, hex.
    pub manifest_sha256: String,
}

/// What a backup object holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// A SQLite database file made by `VACUUM INTO` (key `….sqlite.{zst|gz}`).
    #[default]
    Sqlite,
    /// A logical export in the JSON Lines format of
    /// [`crate::migrate::jsonl`] (key `….jsonl.{zst|gz}`).
    Jsonl,
}

impl SnapshotKind {
    fn is_sqlite_file(&self) -> bool {
        *self == SnapshotKind::Sqlite
    }

    /// The key's middle extension: `sqlite` or `jsonl`.
    pub fn extension(self) -> &'static str {
        match self {
            SnapshotKind::Sqlite => "sqlite",
            SnapshotKind::Jsonl => "jsonl",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            SnapshotKind::Sqlite => "a SQLite database file",
            SnapshotKind::Jsonl => "a logical (JSON Lines) backup",
        }
    }
}

impl Manifest {
    fn self_checksum(&self) -> String {
        let mut unsigned = self.clone();
        unsigned.manifest_sha256.clear();
        hex::encode(Sha256::digest(
            serde_json::to_vec(&unsigned).unwrap_or_default(),
        ))
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut signed = self.clone();
        signed.manifest_sha256 = self.self_checksum();
        let mut out = serde_json::to_vec_pretty(&signed).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses a stored manifest and checks its own checksum.
    pub fn parse(timestamp: &str, bytes: &[u8]) -> std::result::Result<Manifest, BackupError> {
        let corrupt = |what: String| BackupError::Corrupt {
            timestamp: timestamp.to_string(),
            what,
        };
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(format!("the manifest is not valid: {e}")))?;
        let want = m.self_checksum();
        if m.manifest_sha256 != want {
            return Err(corrupt(format!(
                "the manifest's checksum does not match its content (stored {}, computed {want})",
                m.manifest_sha256
            )));
        }
        if m.timestamp != timestamp {
            return Err(corrupt(format!(
                "the manifest names timestamp {} but is stored as {timestamp}",
                m.timestamp
            )));
        }
        Ok(m)
    }
}

/// One stored backup, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBackup {
    /// Its timestamp.
    pub timestamp: String,
    /// The manifest's key, when there is one.
    pub manifest_key: Option<String>,
    /// The object, when there is one.
    pub object: Option<BlobMeta>,
}

/// What a backup did.
#[derive(Clone, Debug)]
pub struct BackupReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Seconds spent taking the snapshot.
    pub snapshot_secs: f64,
    /// Seconds spent compressing and uploading.
    pub upload_secs: f64,
    /// Timestamps pruned afterwards (retention).
    pub pruned: Vec<String>,
    /// For a logical backup: the tables and collections read, with counts.
    pub export: Option<migrate::Report>,
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The backup restored.
    pub manifest: Manifest,
    /// Where it went.
    pub path: PathBuf,
    /// Whether an existing file was replaced.
    pub replaced: bool,
    /// Seconds spent downloading, checking and decompressing.
    pub download_secs: f64,
    /// Seconds spent in `PRAGMA integrity_check`.
    pub check_secs: f64,
}

/// What a restore of a logical backup into a backend did.
#[derive(Clone, Debug)]
pub struct LogicalRestoreReport {
    /// The backup restored.
    pub manifest: Manifest,
    /// The backend restored into.
    pub backend: String,
    /// Tables and collections loaded, with row counts.
    pub loaded: migrate::Report,
    /// Tables and collections that existed and were replaced (`force`).
    pub replaced: Vec<String>,
    /// Seconds spent downloading, checking and decompressing.
    pub download_secs: f64,
    /// Seconds spent loading the backend.
    pub load_secs: f64,
}

/// One stored backup's verification result.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The timestamp.
    pub timestamp: String,
    /// Empty when the backup is good; otherwise what is wrong.
    pub problems: Vec<String>,
}

/// Which backup to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// The newest.
    Latest,
    /// An exact timestamp, or a prefix of exactly one (`20261128T07`).
    Timestamp(String),
}

impl Which {
    /// `latest` or a timestamp.
    pub fn parse(s: &str) -> Which {
        if s == "latest" {
            Which::Latest
        } else {
            Which::Timestamp(s.to_string())
        }
    }
}

/// Backups of one source backend into the `backup` role's blob store.
pub struct BackupManager<'a> {
    strata: &'a Strata,
    settings: BackupSettings,
    source: String,
    progress: bool,
}

impl<'a> BackupManager<'a> {
    /// A manager using the config's `[backup]` table; the source is
    /// `[backup] source`, else the `sql` role.
    pub fn new(strata: &'a Strata) -> Result<BackupManager<'a>> {
        let settings = strata.config().backup.clone();
        let source = match &settings.source {
            Some(s) => s.clone(),
            None => strata.config().backend_for_role("sql")?.name.clone(),
        };
        Ok(BackupManager {
            strata,
            settings,
            source,
            progress: false,
        })
    }

    /// Replaces the settings (e.g. `keep` in tests and benchmarks).
    pub fn with_settings(mut self, settings: BackupSettings) -> Self {
        if let Some(s) = &settings.source {
            self.source = s.clone();
        }
        self.settings = settings;
        self
    }

    /// Draws progress bars on stderr (when it is a terminal).
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &BackupSettings {
        &self.settings
    }

    /// The source backend's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn dir(&self) -> String {
        format!("{}{}/", self.settings.prefix, self.source)
    }

    fn manifest_key(&self, ts: &str) -> String {
        format!("{}{ts}.manifest.json", self.dir())
    }

    async fn blobs(&self) -> Result<Blobs> {
        self.strata.blobs().await
    }

    /// Downloads `manifest`'s object into `tmp`, decompressed, with a
    /// progress bar, checking both sizes and SHA-256s against the manifest.
    async fn download_into(
        &self,
        manifest: &Manifest,
        compression: Compression,
        tmp: &tempfile::NamedTempFile,
    ) -> Result<()> {
        let blobs = self.blobs().await?;
        let bar = self.bar(manifest.object_size, "downloading");
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(io("opening the temporary file"))?;
        let result = download_decompressed(&blobs, manifest, compression, file, bar.clone()).await;
        bar.finish_and_clear();
        result
    }

    fn bar(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, eta {{eta}})"
        )) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    fn spinner(&self, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{msg}} ({{elapsed}})"
        )) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// Every stored backup of the source, oldest first (objects without a
    /// manifest included, marked by `manifest_key: None`).
    pub async fn list(&self) -> Result<Vec<StoredBackup>> {
        let blobs = self.blobs().await?;
        list_in(&blobs, &self.dir()).await
    }

    /// Takes a backup now, then prunes beyond `keep`.
    pub async fn backup_now(&self) -> Result<BackupReport> {
        let started = Instant::now();
        let blobs = self.blobs().await?;
        let backend = self.strata.backend(&self.source).await?;
        let info = backend.plugin().info().clone();
        let kind = if info.dialect == "sqlite" {
            SnapshotKind::Sqlite
        } else if backend.sql().is_ok() || backend.vectors().is_ok() {
            SnapshotKind::Jsonl
        } else {
            return Err(BackupError::Unsupported {
                backend: self.source.clone(),
                reason: format!(
                    "plugin `{}` has no SQLite database file and neither the SQL nor the vector contract",
                    info.name
                ),
            }
            .into());
        };
        // A timestamp no other backup of this source has.
        let mut ts = timestamp(SystemTime::now());
        while blobs.exists(&self.manifest_key(&ts)).await? {
            tokio::time::sleep(Duration::from_millis(2)).await;
            ts = timestamp(SystemTime::now());
        }
        let compression = self.settings.compression;
        let object_key = format!(
            "{}{ts}.{}.{}",
            self.dir(),
            kind.extension(),
            compression.extension()
        );

        // 1. Snapshot.
        let tmp = tempfile::Builder::new()
            .prefix(".strata-backup-")
            .tempdir()
            .map_err(io("creating a directory for the snapshot"))?;
        let snap = tmp.path().join(format!("snapshot.{}", kind.extension()));
        let t0 = Instant::now();
        let export = match kind {
            SnapshotKind::Sqlite => {
                self.snapshot(&backend, &snap).await?;
                None
            }
            SnapshotKind::Jsonl => Some(self.logical_snapshot(&backend, &snap).await?),
        };
        let snapshot_secs = t0.elapsed().as_secs_f64();

        // 2. Compress, hash and upload.
        let t1 = Instant::now();
        let size = std::fs::metadata(&snap)
            .map_err(io(format!("reading {}", snap.display())))?
            .len();
        let bar = self.bar(size, "uploading");
        let summary = upload_compressed(&blobs, &object_key, &snap, compression, bar.clone()).await;
        bar.finish_and_clear();
        let summary = summary?;
        let upload_secs = t1.elapsed().as_secs_f64();

        // 3. Manifest.
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            timestamp: ts.clone(),
            backend: self.source.clone(),
            plugin: format!("{} {}", info.name, info.version),
            strata_version: env!("CARGO_PKG_VERSION").to_string(),
            compression: compression.name().to_string(),
            snapshot: kind,
            object_key,
            object_size: summary.object_size,
            object_sha256: summary.object_sha256,
            snapshot_size: summary.snapshot_size,
            snapshot_sha256: summary.snapshot_sha256,
            duration_ms: started.elapsed().as_millis() as u64,
            manifest_sha256: String::new(),
        };
        let mut manifest = manifest;
        manifest.manifest_sha256 = manifest.self_checksum();
        blobs
            .put(&self.manifest_key(&ts), manifest.to_bytes())
            .await?;
        drop(tmp);
        let pruned = self.prune().await?;
        Ok(BackupReport {
            manifest,
            snapshot_secs,
            upload_secs,
            pruned,
            export,
        })
    }

    /// Writes a logical snapshot of `backend` to `to` in the JSON Lines
    /// export format: every table paged inside one read-only transaction
    /// (see the module docs), then every collection through the vector
    /// contract's scan.
    async fn logical_snapshot(&self, backend: &Backend, to: &Path) -> Result<migrate::Report> {
        let what = || format!("logical backup of `{}`", self.source);
        let wrap = |e: MigrateError| -> Error {
            BackupError::Logical {
                what: what(),
                source: Box::new(e),
            }
            .into()
        };
        let spinner = self.spinner("snapshot");
        let options = {
            let bar = spinner.clone();
            MigrateOptions::new()
                .batch_size(LOGICAL_PAGE)
                .progress(move |p| {
                    bar.set_message(format!("{} `{}`: {} rows", p.kind, p.name, p.done))
                })
        };
        let result = self.write_logical(backend, to, &options, wrap).await;
        spinner.finish_and_clear();
        result
    }

    async fn write_logical(
        &self,
        backend: &Backend,
        to: &Path,
        options: &MigrateOptions,
        wrap: impl Fn(MigrateError) -> Error + Copy,
    ) -> Result<migrate::Report> {
        let label = to.display().to_string();
        let file = std::fs::File::create(to).map_err(io(format!("creating {label}")))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut report = migrate::Report::default();
        let sql = backend.sql().ok();
        jsonl::write_header(
            &mut out,
            &label,
            backend.name(),
            sql.as_ref().map(|s| s.dialect().name()),
        )
        .map_err(wrap)?;
        if let Some(sql) = &sql {
            let tx = sql.begin().await?;
            if let Some(stmt) = snapshot_statement(sql.dialect()) {
                tx.exec(stmt).await?;
            }
            jsonl::export_tables(&tx, &mut out, &label, options, &mut report)
                .await
                .map_err(wrap)?;
            // Read only: nothing to keep; ending it frees the snapshot.
            tx.rollback().await?;
        }
        if let Ok(v) = backend.vectors() {
            jsonl::export_collections(&v, &mut out, &label, options, &mut report)
                .await
                .map_err(wrap)?;
        }
        out.flush().map_err(io(format!("writing {label}")))?;
        Ok(report)
    }

    /// `VACUUM INTO` the snapshot file, on a read-only twin of the backend
    /// when the plugin can open one (see the module docs).
    async fn snapshot(&self, backend: &Backend, to: &Path) -> Result<()> {
        let cfg = self.strata.config().backend(&self.source)?;
        let path = cfg.config.get("path").and_then(|p| p.as_str());
        let has_read_only = backend
            .plugin()
            .info()
            .config_schema
            .pointer("/properties/read_only")
            .is_some();
        let target = Value::from(to.display().to_string());
        match path {
            Some(p) if p != ":memory:" && has_read_only => {
                let mut twin_cfg = cfg.config.clone();
                twin_cfg["read_only"] = serde_json::Value::Bool(true);
                let twin = Backend::open(
                    &format!("{}-snapshot", self.source),
                    backend.plugin().clone(),
                    &self.strata.config().file,
                    &twin_cfg,
                )
                .await?;
                // The snapshot is a scratch file: VACUUM INTO takes the
                // pager flags of the source connection, so without this it
                // would fsync the whole copy (the object's sha256 is what
                // makes it trustworthy, not the local file's durability).
                let sql = twin.sql()?;
                let r = match sql.exec("PRAGMA synchronous = OFF").await {
                    Ok(()) => sql.run("VACUUM INTO ?", [target]).await,
                    Err(e) => Err(e),
                };
                let _ = twin.close().await;
                r.map(|_| ())
            }
            _ => backend
                .sql()?
                .run("VACUUM INTO ?", [target])
                .await
                .map(|_| ()),
        }
    }

    /// Deletes the oldest backups beyond `keep`, and objects left without a
    /// manifest by failed uploads that are older than the oldest kept
    /// backup. Returns the timestamps deleted.
    pub async fn prune(&self) -> Result<Vec<String>> {
        let blobs = self.blobs().await?;
        let all = list_in(&blobs, &self.dir()).await?;
        let complete: Vec<&StoredBackup> =
            all.iter().filter(|b| b.manifest_key.is_some()).collect();
        let excess = complete.len().saturating_sub(self.settings.keep);
        let oldest_kept = complete.get(excess).map(|b| b.timestamp.clone());
        let mut deleted = Vec::new();
        for b in &all {
            let doomed = match (&b.manifest_key, &oldest_kept) {
                (Some(_), Some(kept)) => b.timestamp < *kept,
                (None, Some(kept)) => b.timestamp < *kept,
                (_, None) => false,
            };
            if !doomed {
                continue;
            }
            // The manifest first: the backup disappears from listings at once.
            if let Some(k) = &b.manifest_key {
                blobs.delete(k).await?;
            }
            if let Some(o) = &b.object {
                blobs.delete(&o.key).await?;
            }
            deleted.push(b.timestamp.clone());
        }
        Ok(deleted)
    }

    /// Checks every stored backup: manifest present and intact (its own
    /// checksum), object present, object size and SHA-256 as recorded.
    pub async fn verify(&self) -> Result<Vec<Verified>> {
        let blobs = self.blobs().await?;
        let mut out = Vec::new();
        for b in list_in(&blobs, &self.dir()).await? {
            let mut problems = Vec::new();
            match &b.manifest_key {
                None => problems.push("manifest missing (an interrupted upload?)".to_string()),
                Some(k) => match load_manifest(&blobs, k, &b.timestamp).await {
                    Err(Error::Backup(e)) => problems.push(e.to_string()),
                    Err(e) => return Err(e),
                    Ok(m) => match &b.object {
                        None => problems.push(format!("object {} missing", m.object_key)),
                        Some(o) if o.key != m.object_key => problems.push(format!(
                            "the manifest names object {} but {} is stored",
                            m.object_key, o.key
                        )),
                        Some(o) if o.size != m.object_size => problems.push(format!(
                            "object size {} differs from the manifest's {}",
                            o.size, m.object_size
                        )),
                        Some(o) => {
                            let mut h = Sha256::new();
                            blobs
                                .download(&o.key, |c| {
                                    h.update(c);
                                    Ok(())
                                })
                                .await?;
                            let got = hex::encode(h.finalize());
                            if got != m.object_sha256 {
                                problems.push(format!(
                                    "object sha256 {got} differs from the manifest's {}",
                                    m.object_sha256
                                ));
                            }
                        }
                    },
                },
            }
            out.push(Verified {
                timestamp: b.timestamp,
                problems,
            });
        }
        Ok(out)
    }

    /// The manifest of backup `which`.
    pub async fn find(&self, which: &Which) -> Result<Manifest> {
        let blobs = self.blobs().await?;
        let all: Vec<StoredBackup> = list_in(&blobs, &self.dir())
            .await?
            .into_iter()
            .filter(|b| b.manifest_key.is_some())
            .collect();
        let available = || match (all.first(), all.last()) {
            (Some(a), Some(z)) => {
                format!("{} backups, {} … {}", all.len(), a.timestamp, z.timestamp)
            }
            _ => "there are none".to_string(),
        };
        let not_found = |wanted: String| BackupError::NotFound {
            wanted,
            backend: self.source.clone(),
            available: available(),
        };
        let chosen = match which {
            Which::Latest => all.last().ok_or_else(|| not_found("latest".into()))?,
            Which::Timestamp(t) => {
                let exact: Vec<&StoredBackup> = all.iter().filter(|b| b.timestamp == *t).collect();
                let matching: Vec<&StoredBackup> = if exact.is_empty() {
                    all.iter()
                        .filter(|b| b.timestamp.starts_with(t.as_str()))
                        .collect()
                } else {
                    exact
                };
                match matching.as_slice() {
                    [one] => *one,
                    [] => return Err(not_found(t.clone()).into()),
                    many => {
                        return Err(not_found(format!(
                            "{t} (ambiguous: {} backups match, {} … {})",
                            many.len(),
                            many[0].timestamp,
                            many[many.len() - 1].timestamp
                        ))
                        .into());
                    }
                }
            }
        };
        let key = chosen.manifest_key.clone().unwrap_or_default();
        load_manifest(&blobs, &key, &chosen.timestamp).await
    }

    /// The database file of the source backend (its config's `path`).
    pub fn source_path(&self) -> Result<PathBuf> {
        let cfg = self.strata.config().backend(&self.source)?;
        match cfg.config.get("path").and_then(|p| p.as_str()) {
            Some(p) if p != ":memory:" => Ok(PathBuf::from(p)),
            _ => Err(BackupError::Unsupported {
                backend: self.source.clone(),
                reason: "it has no database file to restore into; pass a target path".into(),
            }
            .into()),
        }
    }

    /// Restores backup `which` to `to` (default: the source's database
    /// file). An existing file is replaced only with `force`; on any error
    /// the target is left as it was.
    pub async fn restore(
        &self,
        which: &Which,
        to: Option<&Path>,
        force: bool,
    ) -> Result<RestoreReport> {
        let manifest = self.find(which).await?;
        if manifest.snapshot != SnapshotKind::Sqlite {
            return Err(BackupError::WrongKind {
                timestamp: manifest.timestamp.clone(),
                what: format!("{} of `{}`", manifest.snapshot.describe(), manifest.backend),
                hint: "restore it into a backend with --into BACKEND, not to a file with --to"
                    .into(),
            }
            .into());
        }
        let target = match to {
            Some(p) => p.to_path_buf(),
            None => self.source_path()?,
        };
        let exists = target.exists();
        if exists && !force {
            return Err(BackupError::TargetExists { path: target }.into());
        }
        let compression =
            Compression::from_name(&manifest.compression).ok_or_else(|| BackupError::Corrupt {
                timestamp: manifest.timestamp.clone(),
                what: format!("unknown compression {:?}", manifest.compression),
            })?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.restore-"))
            .tempfile_in(&dir)
            .map_err(io(format!(
                "creating a temporary file in {}",
                dir.display()
            )))?;

        // The restored file gets the permissions of the file it replaces,
        // else the usual 0644 (a temporary file is created 0600).
        let perms = match std::fs::metadata(&target) {
            Ok(m) => Some(m.permissions()),
            Err(_) => default_permissions(),
        };
        if let Some(perms) = perms {
            std::fs::set_permissions(tmp.path(), perms).map_err(io(format!(
                "setting permissions of {}",
                tmp.path().display()
            )))?;
        }

        // Download, check and decompress into the temporary file.
        let t0 = Instant::now();
        self.download_into(&manifest, compression, &tmp).await?;
        tmp.as_file()
            .sync_all()
            .map_err(io(format!("fsync of {}", tmp.path().display())))?;
        let download_secs = t0.elapsed().as_secs_f64();

        // PRAGMA integrity_check through the source's plugin, read-only.
        let t1 = Instant::now();
        self.integrity_check(tmp.path(), &manifest.timestamp)
            .await?;
        let check_secs = t1.elapsed().as_secs_f64();

        // Into place.
        if exists {
            for suffix in ["-wal", "-shm"] {
                let mut p = target.clone().into_os_string();
                p.push(suffix);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(io(format!("removing {}", Path::new(&p).display()))(e));
                    }
                }
            }
        }
        tmp.persist(&target).map_err(|e| {
            io(format!(
                "renaming the restored file to {}",
                target.display()
            ))(e.error)
        })?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("fsync of directory {}", dir.display())))?;
        Ok(RestoreReport {
            manifest,
            path: target,
            replaced: exists,
            download_secs,
            check_secs,
        })
    }

    /// Restores logical backup `which` into backend `into` (any backend
    /// whose contracts hold what the backup has: SQL for tables, vectors for
    /// collections — e.g. a Postgres backup into SQLite). Tables or
    /// collections of the backup that exist there are an error naming them,
    /// unless `force`, which replaces them. Order: download → object
    /// SHA-256 → decompress to a temporary file → snapshot size + SHA-256 →
    /// only then the target: every table in one transaction (a failure
    /// leaves the target's tables as they were), then the collections.
    pub async fn restore_into(
        &self,
        which: &Which,
        into: &str,
        force: bool,
    ) -> Result<LogicalRestoreReport> {
        let manifest = self.find(which).await?;
        if manifest.snapshot != SnapshotKind::Jsonl {
            return Err(BackupError::WrongKind {
                timestamp: manifest.timestamp.clone(),
                what: format!("{} of `{}`", manifest.snapshot.describe(), manifest.backend),
                hint:
                    "restore it to a database file with --to PATH, not into a backend with --into"
                        .into(),
            }
            .into());
        }
        let compression =
            Compression::from_name(&manifest.compression).ok_or_else(|| BackupError::Corrupt {
                timestamp: manifest.timestamp.clone(),
                what: format!("unknown compression {:?}", manifest.compression),
            })?;
        let target = self.strata.backend(into).await?;

        // Download, check and decompress into a temporary file.
        let t0 = Instant::now();
        let tmp = tempfile::Builder::new()
            .prefix(".strata-restore-")
            .suffix(".jsonl")
            .tempfile()
            .map_err(io("creating a temporary file for the restore"))?;
        self.download_into(&manifest, compression, &tmp).await?;
        let download_secs = t0.elapsed().as_secs_f64();

        // What it holds, and what of that the target already has.
        let label = format!("backup {}", manifest.timestamp);
        let wrap = |e: MigrateError| -> Error {
            BackupError::Logical {
                what: format!("restoring backup {} into `{into}`", manifest.timestamp),
                source: Box::new(e),
            }
            .into()
        };
        let open = || {
            std::fs::File::open(tmp.path()).map_err(io(format!("reading {}", tmp.path().display())))
        };
        let contents = jsonl::contents(
            &mut std::io::BufReader::with_capacity(1 << 20, open()?),
            &label,
        )
        .map_err(wrap)?;
        let mut existing = Vec::new();
        if !contents.tables.is_empty() {
            let sql = target.sql()?;
            for t in &contents.tables {
                if schema::table_exists(&sql, t).await.map_err(wrap)? {
                    existing.push(format!("table `{t}`"));
                }
            }
        }
        if !contents.collections.is_empty() {
            let v = target.vectors()?;
            for c in &contents.collections {
                if v.exists(c).await? {
                    existing.push(format!("collection `{c}`"));
                }
            }
        }
        if !existing.is_empty() && !force {
            return Err(BackupError::ItemsExist {
                backend: into.to_string(),
                items: existing,
            }
            .into());
        }

        // Load: tables in one transaction, then collections.
        let t1 = Instant::now();
        let bar = self.bar(manifest.snapshot_size, "restoring");
        let mut input = std::io::BufReader::with_capacity(1 << 20, bar.wrap_read(open()?));
        let options = MigrateOptions::new().batch_size(LOGICAL_RESTORE_BATCH);
        let loaded = jsonl::import_with(
            &target,
            &mut input,
            &label,
            &options,
            ImportMode::Restore { replace: force },
        )
        .await;
        bar.finish_and_clear();
        let loaded = loaded.map_err(wrap)?;
        Ok(LogicalRestoreReport {
            manifest,
            backend: into.to_string(),
            loaded,
            replaced: existing,
            download_secs,
            load_secs: t1.elapsed().as_secs_f64(),
        })
    }

    async fn integrity_check(&self, file: &Path, timestamp: &str) -> Result<()> {
        let plugin = self.strata.plugin(&self.source)?;
        let mut cfg = serde_json::json!({ "path": file.display().to_string() });
        if plugin
            .info()
            .config_schema
            .pointer("/properties/read_only")
            .is_some()
        {
            cfg["read_only"] = serde_json::Value::Bool(true);
        }
        let check = Backend::open(
            &format!("{}-restore-check", self.source),
            plugin,
            &self.strata.config().file,
            &cfg,
        )
        .await?;
        let result = async {
            let rows = check.sql()?.all("PRAGMA integrity_check", ()).await?;
            let lines: Vec<String> = rows
                .iter()
                .map(|r| {
                    r.values()
                        .first()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                })
                .collect();
            Ok::<_, Error>(lines)
        }
        .await;
        let _ = check.close().await;
        // A file that is not a database at all fails to run the pragma.
        let lines = result.map_err(|e| BackupError::IntegrityCheck {
            timestamp: timestamp.to_string(),
            result: e.to_string(),
        })?;
        if lines != ["ok"] {
            return Err(BackupError::IntegrityCheck {
                timestamp: timestamp.to_string(),
                result: lines.join("; "),
            }
            .into());
        }
        Ok(())
    }

    /// Backs up every `interval` (the first run at once) and prunes, until
    /// `runs` backups were attempted (`None` = forever). A failed run is
    /// reported to `on_run` and the schedule goes on.
    pub async fn run_schedule(
        &self,
        runs: Option<usize>,
        mut on_run: impl FnMut(&Result<BackupReport>),
    ) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut done = 0;
        while runs.is_none_or(|n| done < n) {
            ticker.tick().await;
            let r = self.backup_now().await;
            on_run(&r);
            done += 1;
        }
    }
}

/// The first statement of a logical snapshot's transaction, per dialect.
/// PostgreSQL: `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
/// — valid as the first statement of a transaction whatever level `BEGIN`
/// chose (the plugin's `isolation` setting), as long as no query ran
/// before it (the plugin's `begin` runs none, and `exec` is a simple query,
/// never described or prepared, so it takes no snapshot). Repeatable read
/// gives every later statement the snapshot of the first one, and read
/// only never conflicts with writers nor makes them wait. Other dialects
/// keep the backend's own transaction (SQLite's is serializable).
fn snapshot_statement(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Postgres => Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        _ => None,
    }
}

#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt as _;
    Some(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}

async fn load_manifest(blobs: &Blobs, key: &str, timestamp: &str) -> Result<Manifest> {
    let bytes = blobs.get(key).await?;
    Ok(Manifest::parse(timestamp, &bytes)?)
}

async fn list_in(blobs: &Blobs, dir: &str) -> Result<Vec<StoredBackup>> {
    let mut by_ts: std::collections::BTreeMap<String, StoredBackup> = Default::default();
    for o in blobs.list(dir).await? {
        let Some(name) = o.key.strip_prefix(dir) else {
            continue;
        };
        let (ts, is_manifest) = if let Some(ts) = name.strip_suffix(".manifest.json") {
            (ts, true)
        } else if let Some((ts, _)) = name
            .split_once(".sqlite.")
            .or_else(|| name.split_once(".jsonl."))
        {
            (ts, false)
        } else {
            continue;
        };
        if ts.contains('/') {
            continue;
        }
        let entry = by_ts.entry(ts.to_string()).or_insert_with(|| StoredBackup {
            timestamp: ts.to_string(),
            manifest_key: None,
            object: None,
        });
        if is_manifest {
            entry.manifest_key = Some(o.key.clone());
        } else {
            entry.object = Some(o);
        }
    }
    Ok(by_ts.into_values().collect())
}

/// Sizes and hashes of an upload.
pub(crate) struct UploadSummary {
    snapshot_size: u64,
    snapshot_sha256: String,
    object_size: u64,
    object_sha256: String,
}

/// Collects compressed output into chunks for the uploader, hashing it.
struct ChunkSink {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    hash: Sha256,
    size: u64,
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.hash.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 64 * 1024));
            self.tx
                .blocking_send(full)
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ChunkSink {
    fn finish(mut self) -> std::io::Result<(u64, String)> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(rest)
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok((self.size, hex::encode(self.hash.finalize())))
    }
}

/// Streams `file` through `compression` into a multipart upload of `key`.
/// Used by backups and by the benchmark's baseline (same code path, so the
/// baseline differs only in how the file was made).
pub async fn upload_file_compressed(
    blobs: &Blobs,
    key: &str,
    file: &Path,
    compression: Compression,
) -> Result<(u64, u64)> {
    let s = upload_compressed(
        blobs,
        key,
        file,
        compression,
        indicatif::ProgressBar::hidden(),
    )
    .await?;
    Ok((s.snapshot_size, s.object_size))
}

async fn upload_compressed(
    blobs: &Blobs,
    key: &str,
    file: &Path,
    compression: Compression,
    bar: indicatif::ProgressBar,
) -> Result<UploadSummary> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(3);
    let path = file.to_path_buf();
    let worker = std::thread::spawn(move || -> Result<UploadSummary> {
        let mut input =
            std::fs::File::open(&path).map_err(io(format!("opening {}", path.display())))?;
        let sink = ChunkSink {
            buf: Vec::with_capacity(CHUNK + 64 * 1024),
            tx,
            hash: Sha256::new(),
            size: 0,
        };
        let mut raw_hash = Sha256::new();
        let mut raw_size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        let compress_err = io(format!("compressing {}", path.display()));
        let sink = match compression {
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL)
                    .map_err(io("starting zstd"))?;
                pump(
                    &mut input,
                    &mut enc,
                    &mut buf,
                    &mut raw_hash,
                    &mut raw_size,
                    &bar,
                )?;
                enc.finish().map_err(compress_err)?
            }
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(sink, flate2::Compression::new(6));
                pump(
                    &mut input,
                    &mut enc,
                    &mut buf,
                    &mut raw_hash,
                    &mut raw_size,
                    &bar,
                )?;
                enc.finish().map_err(compress_err)?
            }
        };
        let (object_size, object_sha256) = sink.finish().map_err(io("finishing the upload"))?;
        Ok(UploadSummary {
            snapshot_size: raw_size,
            snapshot_sha256: hex::encode(raw_hash.finalize()),
            object_size,
            object_sha256,
        })
    });
    let mut writer = blobs.writer(key).await?;
    let mut failed = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = writer.write(chunk).await {
            failed = Some(e);
            break;
        }
    }
    drop(rx);
    let summary = worker.join().unwrap_or_else(|_| {
        Err(Error::Plugin(crate::PluginError::internal(
            "the compression thread panicked",
        )))
    });
    match (failed, summary) {
        (None, Ok(s)) => {
            writer.complete().await?;
            Ok(s)
        }
        (Some(e), _) | (None, Err(e)) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

fn pump(
    input: &mut std::fs::File,
    out: &mut impl Write,
    buf: &mut [u8],
    hash: &mut Sha256,
    size: &mut u64,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    loop {
        let n = input.read(buf).map_err(io("reading the snapshot"))?;
        if n == 0 {
            return Ok(());
        }
        hash.update(&buf[..n]);
        *size += n as u64;
        out.write_all(&buf[..n])
            .map_err(io("compressing the snapshot"))?;
        bar.inc(n as u64);
    }
}

/// Counts and hashes what passes through to the file.
struct HashingFile {
    file: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
    size: u64,
    /// Bytes it may take: a stream that decompresses to more than its
    /// manifest says stops here, before it can fill the disk.
    limit: u64,
}

impl Write for HashingFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.size.saturating_add(data.len() as u64) > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "it decompresses to more than the {} bytes expected",
                    self.limit
                ),
            ));
        }
        let n = self.file.write(data)?;
        self.hash.update(&data[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Downloads `key`, decompressing into `file`; returns
/// `(object_size, object_sha256, raw_size, raw_sha256)`. Used by restores
/// and by the benchmark's baseline.
pub async fn download_file_decompressed(
    blobs: &Blobs,
    key: &str,
    compression: Compression,
    file: std::fs::File,
) -> Result<(u64, String, u64, String)> {
    download_raw(
        blobs,
        key,
        compression,
        file,
        indicatif::ProgressBar::hidden(),
        None,
    )
    .await
}

async fn download_raw(
    blobs: &Blobs,
    key: &str,
    compression: Compression,
    file: std::fs::File,
    bar: indicatif::ProgressBar,
    limit: Option<u64>,
) -> Result<(u64, String, u64, String)> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
    let worker = std::thread::spawn(move || -> std::io::Result<(u64, String, u64, String)> {
        let out = HashingFile {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            size: 0,
            limit: limit.unwrap_or(u64::MAX),
        };
        let mut comp_hash = Sha256::new();
        let mut comp_size = 0u64;
        let out = match compression {
            Compression::Zstd => {
                let mut dec = zstd::stream::write::Decoder::new(out)?;
                for chunk in rx {
                    comp_hash.update(&chunk);
                    comp_size += chunk.len() as u64;
                    dec.write_all(&chunk)?;
                }
                dec.flush()?;
                dec.into_inner()
            }
            Compression::Gzip => {
                let mut dec = flate2::write::GzDecoder::new(out);
                for chunk in rx {
                    comp_hash.update(&chunk);
                    comp_size += chunk.len() as u64;
                    dec.write_all(&chunk)?;
                }
                dec.finish()?
            }
        };
        let HashingFile {
            mut file,
            hash,
            size,
            ..
        } = out;
        file.flush()?;
        Ok((
            comp_size,
            hex::encode(comp_hash.finalize()),
            size,
            hex::encode(hash.finalize()),
        ))
    });
    let downloaded = blobs
        .download(key, |chunk| {
            bar.inc(chunk.len() as u64);
            tx.send(chunk.to_vec()).map_err(|_| {
                Error::Plugin(crate::PluginError::internal(
                    "the decompression thread stopped",
                ))
            })
        })
        .await;
    drop(tx);
    // A decompression error stops the download too (its channel closes):
    // report the cause, not the symptom.
    match worker.join() {
        Ok(Ok(r)) => downloaded.map(|_| r),
        Ok(Err(e)) => Err(Error::Io {
            context: format!("decompressing {key}"),
            source: e,
        }),
        Err(_) => Err(Error::Plugin(crate::PluginError::internal(
            "the decompression thread panicked",
        ))),
    }
}

async fn download_decompressed(
    blobs: &Blobs,
    m: &Manifest,
    compression: Compression,
    file: std::fs::File,
    bar: indicatif::ProgressBar,
) -> Result<()> {
    let corrupt = |what: String| -> Error {
        BackupError::Corrupt {
            timestamp: m.timestamp.clone(),
            what,
        }
        .into()
    };
    let (comp_size, comp_sha, raw_size, raw_sha) = match download_raw(
        blobs,
        &m.object_key,
        compression,
        file,
        bar,
        Some(m.snapshot_size),
    )
    .await
    {
        Ok(r) => r,
        // A damaged stream usually fails to decompress before its hash can be compared.
        Err(Error::Io { source, .. }) => {
            return Err(corrupt(format!("the object does not decompress: {source}")));
        }
        Err(e) => return Err(e),
    };
    if comp_size != m.object_size {
        return Err(corrupt(format!(
            "object size {comp_size} differs from the manifest's {}",
            m.object_size
        )));
    }
    if comp_sha != m.object_sha256 {
        return Err(corrupt(format!(
            "object sha256 {comp_sha} differs from the manifest's {}",
            m.object_sha256
        )));
    }
    if raw_size != m.snapshot_size || raw_sha != m.snapshot_sha256 {
        return Err(corrupt(format!(
            "the decompressed snapshot ({raw_size} bytes, sha256 {raw_sha}) differs from the manifest's ({} bytes, {})",
            m.snapshot_size, m.snapshot_sha256
        )));
    }
    Ok(())
}

/// `20261128T073000.123Z` for `t` (UTC).
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_that_decompresses_past_its_size_stops_there() {
        // 64 MiB of zeros compress to a few KiB: a small object can fill a
        // disk. The writer refuses past the manifest's size.
        let zeros = vec![0u8; 64 << 20];
        let packed = zstd::encode_all(&zeros[..], 3).unwrap();
        assert!(packed.len() < 64 << 10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let out = HashingFile {
            file: std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
            hash: Sha256::new(),
            size: 0,
            limit: 1 << 20,
        };
        let mut dec = zstd::stream::write::Decoder::new(out).unwrap();
        let e = dec
            .write_all(&packed)
            .and_then(|()| dec.flush())
            .unwrap_err();
        assert!(e.to_string().contains("more than the 1048576 bytes"), "{e}");
        drop(dec);
        assert!(std::fs::metadata(&path).unwrap().len() <= 1 << 20);
    }

    #[test]
    fn timestamps_sort_as_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_851_000_123);
        assert_eq!(timestamp(t), "20261128T073000.123Z");
        assert_eq!(timestamp(SystemTime::UNIX_EPOCH), "19700101T000000.000Z");
        let a = timestamp(SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_000));
        assert_eq!(a, "20000229T000000.000Z");
        let later = timestamp(t + Duration::from_millis(1));
        assert!(later > timestamp(t));
    }

    #[test]
    fn manifest_checksum_catches_any_change() {
        let mut m = Manifest {
            format: 1,
            timestamp: "20261128T073000.123Z".into(),
            backend: "local".into(),
            plugin: "sqlite 0.1.0".into(),
            strata_version: "0.1.0".into(),
            compression: "zstd".into(),
            snapshot: SnapshotKind::Sqlite,
            object_key: "b/local/20261128T073000.123Z.sqlite.zst".into(),
            object_size: 10,
            object_sha256: "ab".into(),
            snapshot_size: 20,
            snapshot_sha256: "cd".into(),
            duration_ms: 5,
            manifest_sha256: String::new(),
        };
        m.manifest_sha256 = m.self_checksum();
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&m.timestamp, &bytes).unwrap(), m);
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("\"object_size\": 10", "\"object_size\": 11");
        assert_ne!(tampered, text);
        let e = Manifest::parse(&m.timestamp, tampered.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }

    /// A manifest exactly as strata wrote it before logical backups (no
    /// `snapshot` field; checksum computed by that version).
    const OLD_SQLITE_MANIFEST: &str = r#"{
  "format": 1,
  "timestamp": "20261128T073000.123Z",
  "backend": "local",
  "plugin": "sqlite 0.1.0",
  "strata_version": "0.1.0",
  "compression": "zstd",
  "object_key": "backups/local/20261128T073000.123Z.sqlite.zst",
  "object_size": 10,
  "object_sha256": "ab",
  "snapshot_size": 20,
  "snapshot_sha256": "cd",
  "duration_ms": 5,
  "manifest_sha256": "e985110f0526f59c4146aa5cde263822a0c9a2ca7f6b778a13390d7e50c4cd8d"
}
"#;

    #[test]
    fn old_sqlite_manifests_parse_verify_and_serialise_unchanged() {
        let m = Manifest::parse("20261128T073000.123Z", OLD_SQLITE_MANIFEST.as_bytes()).unwrap();
        assert_eq!(m.snapshot, SnapshotKind::Sqlite);
        // Written again, byte for byte the same: the new field is not written
        // for SQLite files, so the checksum of old manifests is unchanged.
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            OLD_SQLITE_MANIFEST
        );
    }

    #[test]
    fn logical_manifests_record_their_kind_under_the_checksum() {
        let mut m =
            Manifest::parse("20261128T073000.123Z", OLD_SQLITE_MANIFEST.as_bytes()).unwrap();
        m.snapshot = SnapshotKind::Jsonl;
        m.object_key = "backups/pg/20261128T073000.123Z.jsonl.zst".into();
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(text.contains("\"snapshot\": \"jsonl\""), "{text}");
        let back = Manifest::parse(&m.timestamp, text.as_bytes()).unwrap();
        assert_eq!(back.snapshot, SnapshotKind::Jsonl);
        // Dropping the field (making it look like a SQLite file) breaks the checksum.
        let stripped = text.replace("  \"snapshot\": \"jsonl\",\n", "");
        assert_ne!(stripped, text);
        let e = Manifest::parse(&m.timestamp, stripped.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        // An unknown kind is refused (deny_unknown_fields and a closed enum).
        let odd = text.replace("\"jsonl\"", "\"tarball\"");
        assert!(Manifest::parse(&m.timestamp, odd.as_bytes()).is_err());
    }
}
