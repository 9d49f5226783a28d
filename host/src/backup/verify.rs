//! Verification: [`BackupManager::verify`] reads every stored backup back
//! and checks it against its manifest; [`BackupManager::trial_restore`]
//! proves one restores by restoring it.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{
    error::Result,
    migrate::schema,
    progress::{Step, StepGuard},
};

use super::{
    catalog::{Which, list_in, load_manifest},
    error::{BackupError, io},
    manager::BackupManager,
    manifest::SnapshotKind,
};

/// One stored backup's verification result.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The timestamp.
    pub timestamp: String,
    /// Empty when the backup is good; otherwise what is wrong.
    pub problems: Vec<String>,
}

impl BackupManager<'_> {
    /// Checks every stored backup: manifest present and intact (its own
    /// checksum), object present, object size and SHA-256 as recorded.
    /// Reports [`Step::Verify`] in bytes of the objects read.
    pub async fn verify(&self) -> Result<Vec<Verified>> {
        let blobs = self.blobs().await?;
        let stored = list_in(&blobs, &self.dir()).await?;
        let total = stored
            .iter()
            .filter_map(|b| b.object.as_ref())
            .map(|o| o.size)
            .sum();
        let _step = StepGuard::start(&*self.progress, Step::Verify, Some(total));
        let mut out = Vec::new();
        for b in stored {
            let mut problems = Vec::new();
            match &b.manifest_key {
                None => problems.push("manifest missing (an interrupted upload?)".to_string()),
                Some(k) => match load_manifest(&blobs, k, &b.timestamp).await {
                    Err(BackupError::Host(e)) => return Err(e),
                    Err(e) => problems.push(e.to_string()),
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
                                    self.progress.advance(Step::Verify, c.len() as u64);
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
}

/// What a trial restore of one backup proved
/// ([`BackupManager::trial_restore`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TrialRestore {
    /// The backup's timestamp.
    pub timestamp: String,
    /// Where it was restored: `file PATH` (a temporary SQLite file, removed
    /// afterwards) or `backend NAME` (the scratch backend, left holding the
    /// restored copy).
    pub into: String,
    /// What the restored copy holds: `(kind, name, rows)`, kind `table` or
    /// `collection`, counted on the restored copy.
    pub items: Vec<(&'static str, String, u64)>,
    /// Empty when the backup restored and the copy holds what was read from
    /// it; otherwise what went wrong (the restore's own error, or a count
    /// that differs).
    pub problems: Vec<String>,
}

impl BackupManager<'_> {
    /// Proves that backup `which` restores, by restoring it.
    ///
    /// [`verify`](Self::verify) checks that a backup is what was uploaded;
    /// this checks that what was uploaded can be brought back, which
    /// checksums cannot: a value the target refuses (an `infinity` date
    /// written in a form Postgres does not read back), a CHECK constraint
    /// calling a function the target lacks.
    ///
    /// - A **SQLite file** backup is restored into a temporary directory
    ///   beside the source database (same download, checks and `PRAGMA
    ///   integrity_check` as [`restore`](Self::restore); the check runs
    ///   even when the backup was checked when taken), every table is
    ///   counted, and the copy is removed. `scratch` is not used.
    /// - A **logical** backup is restored into `scratch`, a backend of
    ///   `plugins.toml` that holds nothing you need (same code as
    ///   [`restore_into`](Self::restore_into) with `force`: its tables and
    ///   collections of the backup's names are replaced), and every table
    ///   and collection is counted there and compared with the rows read
    ///   from the backup. The copy is left in `scratch` to inspect; the next
    ///   trial replaces it. `scratch` must not be the source itself.
    ///
    /// A backup that fails to restore is reported in
    /// [`TrialRestore::problems`]; an error is returned when the trial
    /// cannot run at all (no such backup, no scratch backend given for a
    /// logical one, the scratch backend unreachable).
    pub async fn trial_restore(
        &self,
        which: &Which,
        scratch: Option<&str>,
    ) -> Result<TrialRestore, BackupError> {
        let manifest = self.find(which).await?;
        let timestamp = manifest.timestamp.clone();
        let mut problems = Vec::new();
        let mut items = Vec::new();
        let into = match manifest.snapshot {
            SnapshotKind::Sqlite => {
                let source = self.source_path()?;
                let dir = source
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let tmp = tempfile::Builder::new()
                    .prefix(".strata-trial-")
                    .tempdir_in(dir)
                    .map_err(io(format!("creating a directory in {}", dir.display())))?;
                let file = tmp.path().join("trial.sqlite");
                match self.restore_file(which, Some(&file), false, true).await {
                    Ok(_) => items = self.sqlite_counts(&file).await?,
                    Err(e) if restore_problem(&e) => problems.push(e.to_string()),
                    Err(e) => return Err(e),
                }
                format!("file {}", file.display())
            }
            SnapshotKind::Jsonl => {
                let Some(scratch) = scratch else {
                    return Err(BackupError::Scratch {
                        timestamp,
                        reason:
                            "a logical backup is proven by restoring it into a scratch backend: \
                                 name one (a backend of plugins.toml holding nothing you need; its \
                                 tables and collections of the backup's names are replaced)"
                                .into(),
                    });
                };
                let config = &self.strata.config().backends;
                let same_as_source = scratch == self.source
                    || matches!(
                        (config.get(scratch), config.get(&self.source)),
                        (Some(a), Some(b)) if a.source == b.source && a.config == b.config
                    );
                if same_as_source {
                    return Err(BackupError::Scratch {
                        timestamp,
                        reason: format!(
                            "`{scratch}` is the backed-up source `{}` itself: a trial restore \
                             into it would replace its tables; name a scratch backend",
                            self.source
                        ),
                    });
                }
                match self.restore_into(which, scratch, true).await {
                    Ok(report) => {
                        let target = self.strata.backend(scratch).await?;
                        for t in &report.loaded.tables {
                            let rows = target
                                .sql()?
                                .get(
                                    &format!(
                                        "SELECT count(*) AS n FROM {}",
                                        schema::quote(&t.name)
                                    ),
                                    (),
                                )
                                .await?
                                .and_then(|r| r.get::<i64>("n").ok())
                                .unwrap_or(-1);
                            if rows != t.read as i64 {
                                problems.push(format!(
                                    "table `{}`: {} rows read from the backup, {rows} in `{scratch}` after the restore",
                                    t.name, t.read
                                ));
                            }
                            items.push(("table", t.name.clone(), rows.max(0) as u64));
                        }
                        for c in &report.loaded.collections {
                            let rows = target.vectors()?.count(&c.name, None).await?;
                            if rows != c.read {
                                problems.push(format!(
                                    "collection `{}`: {} records read from the backup, {rows} in `{scratch}` after the restore",
                                    c.name, c.read
                                ));
                            }
                            items.push(("collection", c.name.clone(), rows));
                        }
                    }
                    Err(e) if restore_problem(&e) => problems.push(e.to_string()),
                    Err(e) => return Err(e),
                }
                format!("backend {scratch}")
            }
        };
        Ok(TrialRestore {
            timestamp,
            into,
            items,
            problems,
        })
    }

    /// Every table of the SQLite file at `path` with its row count, read
    /// through the source's plugin, read-only.
    async fn sqlite_counts(
        &self,
        path: &Path,
    ) -> Result<Vec<(&'static str, String, u64)>, BackupError> {
        let db = self.open_file(path, "trial").await?;
        let counted = async {
            let sql = db.sql()?;
            let names = sql
                .all(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    (),
                )
                .await?;
            let mut out = Vec::new();
            for r in &names {
                let name: String = r.get("name")?;
                let n = sql
                    .get(
                        &format!("SELECT count(*) AS n FROM {}", schema::quote(&name)),
                        (),
                    )
                    .await?
                    .and_then(|r| r.get::<i64>("n").ok())
                    .unwrap_or(0);
                out.push(("table", name, n as u64));
            }
            Ok::<_, crate::error::Error>(out)
        }
        .await;
        let _ = db.close().await;
        Ok(counted?)
    }
}

/// Whether a restore's error is the backup's fault (reported as a problem
/// of the trial) rather than the trial's own (returned).
fn restore_problem(e: &BackupError) -> bool {
    matches!(
        e,
        BackupError::Corrupt { .. }
            | BackupError::IntegrityCheck { .. }
            | BackupError::Logical { .. }
    )
}
