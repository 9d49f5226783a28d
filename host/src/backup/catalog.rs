//! The stored backups of one source: listing the keys under its prefix,
//! loading manifests, choosing the backup a restore asked for.

use std::collections::BTreeMap;

use crate::{
    blob::{BlobMeta, Blobs},
    error::Result,
};

use super::{error::BackupError, manifest::Manifest};

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

/// The manifest at `key`, checked against its own checksum and `timestamp`.
pub(super) async fn load_manifest(
    blobs: &Blobs,
    key: &str,
    timestamp: &str,
) -> Result<Manifest, BackupError> {
    let bytes = blobs.get(key).await?;
    Manifest::parse(timestamp, &bytes)
}

/// Every backup under `dir`, oldest first, objects without a manifest
/// included (`manifest_key: None`).
pub(super) async fn list_in(blobs: &Blobs, dir: &str) -> Result<Vec<StoredBackup>> {
    let mut by_ts: BTreeMap<String, StoredBackup> = BTreeMap::new();
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

/// The manifest of backup `which` of `source` under `dir`.
pub(super) async fn find_in(
    blobs: &Blobs,
    dir: &str,
    source: &str,
    which: &Which,
) -> Result<Manifest, BackupError> {
    let all: Vec<StoredBackup> = list_in(blobs, dir)
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
        backend: source.to_string(),
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
                [] => return Err(not_found(t.clone())),
                many => {
                    return Err(not_found(format!(
                        "{t} (ambiguous: {} backups match, {} … {})",
                        many.len(),
                        many[0].timestamp,
                        many[many.len() - 1].timestamp
                    )));
                }
            }
        }
    };
    let key = chosen.manifest_key.clone().unwrap_or_default();
    load_manifest(blobs, &key, &chosen.timestamp).await
}
