//! [`BackupManager`]: backups of one source backend into the `backup`
//! role's blob store — taking them and finding them. Restores, retention,
//! verification and the schedule add their methods in their own files.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    blob::Blobs,
    config::BackupSettings,
    error::Result,
    migrate::{self, MigrateOptions},
    progress::{NoProgress, Progress, Step, StepGuard},
    strata::Strata,
};

use super::{
    catalog::{self, StoredBackup, Which},
    error::{BackupError, io},
    manifest::{MANIFEST_FORMAT, Manifest, SnapshotKind, timestamp},
    pipeline, snapshot,
};

/// Backups of one source backend into the `backup` role's blob store.
pub struct BackupManager<'a> {
    pub(super) strata: &'a Strata,
    pub(super) settings: BackupSettings,
    pub(super) source: String,
    pub(super) progress: Arc<dyn Progress>,
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
    /// Multipart uploads left open by interrupted backups, aborted
    /// afterwards ([`BackupManager::abort_stale_uploads`]).
    pub stale_uploads: super::StaleUploads,
    /// For a logical backup: the tables and collections read, with counts.
    pub export: Option<migrate::Report>,
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
            progress: Arc::new(NoProgress),
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

    /// Reports the steps of backups, restores and verification (and the
    /// tables and collections of logical ones) to `progress`.
    pub fn with_progress(mut self, progress: impl Progress + 'static) -> Self {
        self.progress = Arc::new(progress);
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

    /// `{prefix}{source}/`: where the source's backups are kept.
    pub(super) fn dir(&self) -> String {
        format!("{}{}/", self.settings.prefix, self.source)
    }

    fn manifest_key(&self, ts: &str) -> String {
        format!("{}{ts}.manifest.json", self.dir())
    }

    pub(super) async fn blobs(&self) -> Result<Blobs> {
        self.strata.blobs().await
    }

    /// Every stored backup of the source, oldest first (objects without a
    /// manifest included, marked by `manifest_key: None`).
    pub async fn list(&self) -> Result<Vec<StoredBackup>> {
        let blobs = self.blobs().await?;
        catalog::list_in(&blobs, &self.dir()).await
    }

    /// The manifest of backup `which`.
    pub async fn find(&self, which: &Which) -> Result<Manifest, BackupError> {
        let blobs = self.blobs().await?;
        catalog::find_in(&blobs, &self.dir(), &self.source, which).await
    }

    /// The database file of the source backend (its config's `path`).
    pub fn source_path(&self) -> Result<PathBuf, BackupError> {
        let cfg = self.strata.config().backend(&self.source)?;
        match cfg.config.get("path").and_then(|p| p.as_str()) {
            Some(p) if p != ":memory:" => Ok(PathBuf::from(p)),
            _ => Err(BackupError::Unsupported {
                backend: self.source.clone(),
                reason: "it has no database file to restore into; pass a target path".into(),
            }),
        }
    }

    /// Takes a backup now, then prunes beyond `keep`.
    pub async fn backup_now(&self) -> Result<BackupReport, BackupError> {
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
            });
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
        let step = StepGuard::start(&*self.progress, Step::Snapshot, None);
        let export = match kind {
            SnapshotKind::Sqlite => {
                snapshot::sqlite_file(self.strata, &self.source, &backend, &snap).await?;
                None
            }
            SnapshotKind::Jsonl => {
                let options = MigrateOptions::new().progress(self.progress.clone());
                Some(snapshot::logical(&backend, &self.source, &snap, options).await?)
            }
        };
        drop(step);
        let snapshot_secs = t0.elapsed().as_secs_f64();

        // 2. Compress, hash and upload. Meanwhile a SQLite snapshot gets
        //    `PRAGMA integrity_check` (through the plugin's pool: another
        //    core than the one compressing), so a damaged source fails
        //    here, not at a restore, and restores of a checked backup need
        //    no check of their own (see `restore`).
        let t1 = Instant::now();
        let upload = pipeline::upload_compressed(
            &blobs,
            &object_key,
            &snap,
            compression,
            self.progress.clone(),
        );
        let check = async {
            match kind {
                SnapshotKind::Sqlite => Some(self.sqlite_integrity(&snap, "backup-check").await),
                SnapshotKind::Jsonl => None,
            }
        };
        let (summary, checked) = tokio::join!(upload, check);
        let summary = summary?;
        let integrity_check = match checked {
            None => None,
            Some(Ok(Ok(()))) => Some("ok".to_string()),
            Some(Ok(Err(result))) => {
                // Not a backup: the object goes, no manifest is written.
                let _ = blobs.delete(&object_key).await;
                return Err(BackupError::SourceDamaged {
                    backend: self.source.clone(),
                    result,
                });
            }
            // The plugin cannot open the snapshot on its own (a plugin
            // without `read_only`, say): the restore checks it instead.
            Some(Err(e)) => {
                tracing::warn!(
                    "the snapshot cannot be opened for its integrity check, so restores will check it: {e}"
                );
                None
            }
        };
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
            integrity_check,
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
        // The backup is complete and pruned: a failure to clean up what
        // earlier killed backups left must not turn it into an error.
        let stale_uploads = match self.abort_stale_uploads().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cannot list or abort the multipart uploads left by interrupted backups: {e}"
                );
                super::StaleUploads::default()
            }
        };
        Ok(BackupReport {
            manifest,
            snapshot_secs,
            upload_secs,
            pruned,
            stale_uploads,
            export,
        })
    }
}
