//! Verification: [`BackupManager::verify`] reads every stored backup back
//! and checks it against its manifest.

use sha2::{Digest, Sha256};

use crate::{
    error::Result,
    progress::{Step, StepGuard},
};

use super::{
    catalog::{list_in, load_manifest},
    error::BackupError,
    manager::BackupManager,
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
