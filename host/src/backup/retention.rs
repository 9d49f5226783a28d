//! Retention: [`BackupManager::prune`] keeps the newest `keep` backups.

use crate::error::Result;

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
}
