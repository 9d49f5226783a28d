//! Restores: a SQLite file backup to a database file, a logical backup
//! into a backend (see the module docs of [`super`]).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use crate::{
    config::Compression,
    error::{Error, Result},
    loader::Backend,
    migrate::{
        self, MigrateError, MigrateOptions,
        jsonl::{self, ImportMode},
        schema,
    },
    progress::{ProgressRead, Step, StepGuard},
};

use super::{
    catalog::Which,
    error::{BackupError, io},
    manager::BackupManager,
    manifest::{Manifest, SnapshotKind},
    pipeline,
};

/// Rows per statement of a logical restore (fewer for wide rows: a
/// statement also stops at 16 MB of input, and at the parameter limit of
/// multi-row `VALUES`).
const LOGICAL_RESTORE_BATCH: usize = 50_000;

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
    /// Seconds spent in `PRAGMA integrity_check` (`0` when it was
    /// [`checked_at_backup`](Self::checked_at_backup)).
    pub check_secs: f64,
    /// The snapshot passed `PRAGMA integrity_check` when the backup was
    /// taken (its manifest says so), and the restored bytes are that file
    /// (its SHA-256), so the restore did not check it again.
    pub checked_at_backup: bool,
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

impl BackupManager<'_> {
    /// Downloads `manifest`'s object into `tmp`, decompressed, checking
    /// both sizes and SHA-256s against the manifest.
    async fn download_into(
        &self,
        manifest: &Manifest,
        compression: Compression,
        tmp: &tempfile::NamedTempFile,
    ) -> Result<(), BackupError> {
        let blobs = self.blobs().await?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(io("opening the temporary file"))?;
        pipeline::download_decompressed(&blobs, manifest, compression, file, &*self.progress).await
    }

    /// Restores backup `which` to `to` (default: the source's database
    /// file). An existing file is replaced only with `force`; on any error
    /// the target is left as it was.
    ///
    /// The restored file must be `PRAGMA integrity_check` = `ok`: checked
    /// here, unless the manifest records that the snapshot passed the
    /// check when the backup was taken (then the SHA-256 match proves the
    /// file is that snapshot, and checking it again would only repeat the
    /// answer; [`trial_restore`](Self::trial_restore) checks anyway).
    pub async fn restore(
        &self,
        which: &Which,
        to: Option<&Path>,
        force: bool,
    ) -> Result<RestoreReport, BackupError> {
        self.restore_file(which, to, force, false).await
    }

    /// [`restore`](Self::restore); `recheck` runs the integrity check even
    /// when the backup was checked when taken.
    pub(super) async fn restore_file(
        &self,
        which: &Which,
        to: Option<&Path>,
        force: bool,
        recheck: bool,
    ) -> Result<RestoreReport, BackupError> {
        let manifest = self.find(which).await?;
        if manifest.snapshot != SnapshotKind::Sqlite {
            return Err(BackupError::WrongKind {
                timestamp: manifest.timestamp.clone(),
                what: format!("{} of `{}`", manifest.snapshot.describe(), manifest.backend),
                hint: "restore it into a backend with --into BACKEND, not to a file with --to"
                    .into(),
            });
        }
        let target = match to {
            Some(p) => p.to_path_buf(),
            None => self.source_path()?,
        };
        let exists = target.exists();
        if exists && !force {
            return Err(BackupError::TargetExists { path: target });
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

        // What a killed restore left (`.NAME.restore-*`) is removed; each
        // restore holds a lock on its own temporary file while it runs, so
        // one still running is told apart and left alone.
        remove_stale_temporaries(&dir, &name)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.restore-"))
            .tempfile_in(&dir)
            .map_err(io(format!(
                "creating a temporary file in {}",
                dir.display()
            )))?;
        tmp.as_file().try_lock().map_err(|e| {
            io(format!("locking {}", tmp.path().display()))(std::io::Error::other(e))
        })?;

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

        // PRAGMA integrity_check through the source's plugin, read-only,
        // unless the snapshot these bytes are (SHA-256) was checked when
        // the backup was taken.
        let t1 = Instant::now();
        let checked_at_backup = manifest.integrity_check.as_deref() == Some("ok") && !recheck;
        let check_secs = if checked_at_backup {
            0.0
        } else {
            self.integrity_check(tmp.path(), &manifest.timestamp)
                .await?;
            t1.elapsed().as_secs_f64()
        };

        // The swap. Every step leaves the target the old database as
        // committed or the new one: the old WAL is first checkpointed into
        // the old file (so the file alone holds every commit, and its
        // `-wal`/`-shm` hold nothing), then those are removed, then the new
        // file is renamed over the old one (atomic), each step made durable
        // before the next.
        fault_point(1);
        if exists {
            self.checkpoint_old(&target).await?;
            fault_point(2);
            for (suffix, step) in [("-wal", 3), ("-shm", 4)] {
                let mut p = target.clone().into_os_string();
                p.push(suffix);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(io(format!("removing {}", Path::new(&p).display()))(e).into());
                    }
                }
                fault_point(step);
            }
            // The SQLite plugin's index sidecars describe the old rows
            // (their point ids are rowids, which the new file reuses for
            // other vectors): a cache, rebuilt from the new file on use.
            let mut sidecar = target.clone().into_os_string();
            sidecar.push(".strata-index");
            match std::fs::remove_dir_all(&sidecar) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(io(format!("removing {}", Path::new(&sidecar).display()))(e).into());
                }
            }
            fault_point(5);
            sync_dir(&dir)?;
        }
        tmp.persist(&target).map_err(|e| {
            io(format!(
                "renaming the restored file to {}",
                target.display()
            ))(e.error)
        })?;
        fault_point(6);
        sync_dir(&dir)?;
        fault_point(7);
        Ok(RestoreReport {
            manifest,
            path: target,
            replaced: exists,
            download_secs,
            check_secs,
            checked_at_backup,
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
    ) -> Result<LogicalRestoreReport, BackupError> {
        let manifest = self.find(which).await?;
        if manifest.snapshot != SnapshotKind::Jsonl {
            return Err(BackupError::WrongKind {
                timestamp: manifest.timestamp.clone(),
                what: format!("{} of `{}`", manifest.snapshot.describe(), manifest.backend),
                hint:
                    "restore it to a database file with --to PATH, not into a backend with --into"
                        .into(),
            });
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
        let wrap = |e: MigrateError| BackupError::Logical {
            what: format!("restoring backup {} into `{into}`", manifest.timestamp),
            source: Box::new(e),
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
            schema::check_target_names(sql.dialect(), into, &contents.tables, None)
                .map_err(wrap)?;
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
            });
        }

        // Load: tables in one transaction, then collections.
        let t1 = Instant::now();
        let step = StepGuard::start(&*self.progress, Step::Restore, Some(manifest.snapshot_size));
        let read = ProgressRead {
            inner: open()?,
            progress: self.progress.clone(),
            step: Step::Restore,
        };
        let mut input = std::io::BufReader::with_capacity(1 << 20, read);
        let options = MigrateOptions::new()
            .batch_size(LOGICAL_RESTORE_BATCH)
            .progress(self.progress.clone());
        let loaded = jsonl::import_with(
            &target,
            &mut input,
            &label,
            &options,
            ImportMode::Restore { replace: force },
        )
        .await;
        drop(step);
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

    /// Folds the committed frames of the old target's WAL into its
    /// database file (`PRAGMA wal_checkpoint(TRUNCATE)` through the
    /// source's plugin, which also recovers a hot rollback journal), so
    /// that removing its `-wal` and `-shm` loses nothing. A target another
    /// process is using is refused. A target SQLite cannot open as a
    /// database (the reason to restore, often) has no commits to keep.
    async fn checkpoint_old(&self, target: &Path) -> Result<(), BackupError> {
        let plugin = self.strata.plugin(&self.source)?;
        let cfg = serde_json::json!({ "path": target.display().to_string() });
        let opened = Backend::open(
            &format!("{}-restore-target", self.source),
            plugin,
            &self.strata.config().file,
            &cfg,
        )
        .await;
        let old = match opened {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(target = %target.display(), "the old database cannot be opened, so it is replaced as it is: {e}");
                return Ok(());
            }
        };
        let result = async {
            old.sql()?
                .get("PRAGMA wal_checkpoint(TRUNCATE)", ())
                .await
                .map(|r| r.and_then(|r| r.values().first().cloned()))
        }
        .await;
        old.close().await?;
        match result {
            Ok(Some(strata_plugin_api::Value::Integer(0))) | Ok(None) => Ok(()),
            Ok(Some(_)) => Err(BackupError::TargetBusy {
                path: target.to_path_buf(),
            }),
            Err(e) if e.kind() == strata_plugin_api::ErrorKind::Busy => {
                Err(BackupError::TargetBusy {
                    path: target.to_path_buf(),
                })
            }
            Err(e) => {
                tracing::warn!(target = %target.display(), "the old database cannot be checkpointed, so it is replaced as it is: {e}");
                Ok(())
            }
        }
    }

    /// The SQLite file `file` opened through the source's plugin, read-only
    /// when the plugin's schema has that key, as backend `{source}-{role}`.
    pub(super) async fn open_file(&self, file: &Path, role: &str) -> Result<Backend> {
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
        Backend::open(
            &format!("{}-{role}", self.source),
            plugin,
            &self.strata.config().file,
            &cfg,
        )
        .await
    }

    /// `PRAGMA integrity_check` of the SQLite file `file`, opened read-only
    /// through the source's plugin: `Ok(Ok(()))` when it says `ok`,
    /// `Ok(Err(what it said))` otherwise (a file that is not a database
    /// fails to run the pragma), `Err` when the file cannot be opened.
    pub(super) async fn sqlite_integrity(
        &self,
        file: &Path,
        role: &str,
    ) -> Result<std::result::Result<(), String>, BackupError> {
        let check = self.open_file(file, role).await?;
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
        Ok(match result {
            Err(e) => Err(e.to_string()),
            Ok(lines) if lines == ["ok"] => Ok(()),
            Ok(lines) => Err(lines.join("; ")),
        })
    }

    /// The restore's integrity check of the restored file `file`.
    async fn integrity_check(&self, file: &Path, timestamp: &str) -> Result<(), BackupError> {
        self.sqlite_integrity(file, "restore-check")
            .await?
            .map_err(|result| BackupError::IntegrityCheck {
                timestamp: timestamp.to_string(),
                result,
            })
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

/// Removes the `.NAME.restore-*` temporary files of earlier restores that
/// were killed: those nobody holds the lock of (a running restore locks
/// its own; the OS releases the lock of a killed one).
fn remove_stale_temporaries(dir: &Path, name: &str) -> Result<(), BackupError> {
    let prefix = format!(".{name}.restore-");
    let entries = std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue; // a restore running now
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!("removed {} left by an interrupted restore", path.display())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("removing {}", path.display()))(e).into()),
            }
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(format!("fsync of directory {}", dir.display()))(e).into())
}

/// Exit code of a process ended by the crash-test hook
/// `STRATA_FAULT_RESTORE_STEP=N` (see the module docs of [`crate::backup`]).
pub const FAULT_EXIT_CODE: i32 = 97;

/// Crash-test hook: with `STRATA_FAULT_RESTORE_STEP=N` in the environment
/// the process ends (exit code [`FAULT_EXIT_CODE`], no destructors run, as
/// a kill would) when a file restore reaches step `N` of its swap.
fn fault_point(step: u32) {
    if std::env::var("STRATA_FAULT_RESTORE_STEP").is_ok_and(|v| v == step.to_string()) {
        std::process::exit(FAULT_EXIT_CODE);
    }
}
