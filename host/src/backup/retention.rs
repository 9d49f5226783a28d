//! Retention: [`BackupManager::prune`] keeps the newest `keep` backups;
//! [`BackupManager::abort_stale_uploads`] aborts the multipart uploads
//! killed backups left open.

use crate::{PendingUpload, error::Result};

use super::{
    catalog::{StoredBackup, list_in},
    manager::BackupManager,
};

impl BackupManager<'_> {
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

    /// Aborts the multipart uploads under the source's backup prefix that
    /// are still open and began more than `[backup] stale_upload_age` ago
    /// (default 1 h): what a backup killed mid-upload leaves behind. S3
    /// keeps (and bills) their parts until they are aborted; no listing of
    /// objects shows them. A running backup's own upload is younger than
    /// the age and is left alone, as is one whose start the store does not
    /// report. Called by [`prune`](Self::prune)'s callers (`backup now`,
    /// `strata backup prune`).
    pub async fn abort_stale_uploads(&self) -> Result<StaleUploads> {
        let blobs = self.blobs().await?;
        let Some(open) = blobs.pending_uploads(&self.dir()).await? else {
            return Ok(StaleUploads {
                listed: false,
                aborted: Vec::new(),
                young: 0,
            });
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let age_ms = self.settings.stale_upload_age.as_millis() as i64;
        let mut out = StaleUploads {
            listed: true,
            aborted: Vec::new(),
            young: 0,
        };
        for u in open {
            match u.initiated_ms {
                Some(t) if now_ms.saturating_sub(t) >= age_ms => {
                    blobs.abort_upload(&u).await?;
                    tracing::info!(key = %u.key, "aborted a multipart upload left open by an interrupted backup");
                    out.aborted.push(u);
                }
                _ => out.young += 1,
            }
        }
        Ok(out)
    }
}

/// What [`BackupManager::abort_stale_uploads`] found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StaleUploads {
    /// The blob store can list open multipart uploads (its plugin offers
    /// the interface `strata.blob.uploads.v1`); when `false` nothing was
    /// looked at: a bucket lifecycle rule has to clean them up.
    pub listed: bool,
    /// The uploads aborted.
    pub aborted: Vec<PendingUpload>,
    /// Open uploads left alone: younger than `stale_upload_age` (a backup
    /// running now), or of unknown age.
    pub young: usize,
}
