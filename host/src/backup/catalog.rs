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
    let stored = list_in(blobs, dir).await?;
    // Objects without a manifest (deleted, or an upload that was cut off)
    // are listed by `list`, but have nothing to check them against: never
    // restored, and named when they are what a restore asked for.
    let orphans: Vec<&StoredBackup> = stored
        .iter()
        .filter(|b| b.manifest_key.is_none() && b.object.is_some())
        .collect();
    let all: Vec<StoredBackup> = stored
        .iter()
        .filter(|b| b.manifest_key.is_some())
        .cloned()
        .collect();
    let span = |list: &[&StoredBackup]| match list {
        [] => String::new(),
        [one] => one.timestamp.clone(),
        [a, .., z] => format!("{} … {}", a.timestamp, z.timestamp),
    };
    let available = |wanted_orphans: &[&StoredBackup]| {
        let complete = match (all.first(), all.last()) {
            (Some(a), Some(z)) => {
                format!("{} backups, {} … {}", all.len(), a.timestamp, z.timestamp)
            }
            _ if orphans.is_empty() => "there are none".to_string(),
            _ => "none with a manifest".to_string(),
        };
        let named = if wanted_orphans.is_empty() {
            &orphans[..]
        } else {
            wanted_orphans
        };
        if named.is_empty() {
            complete
        } else {
            format!(
                "{complete}; {} stored without its manifest: {} (the manifest was deleted, or its upload was interrupted; without it the object cannot be checked, so it is not restored — `strata backup verify` reports it, `prune` removes it once older than the kept backups)",
                if named.len() == 1 {
                    "1 object".to_string()
                } else {
                    format!("{} objects", named.len())
                },
                span(named)
            )
        }
    };
    let not_found = |wanted: String, wanted_orphans: &[&StoredBackup]| BackupError::NotFound {
        wanted,
        backend: source.to_string(),
        available: available(wanted_orphans),
    };
    let chosen = match which {
        Which::Latest => all.last().ok_or_else(|| not_found("latest".into(), &[]))?,
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
                [] => {
                    let asked: Vec<&StoredBackup> = orphans
                        .iter()
                        .copied()
                        .filter(|b| b.timestamp.starts_with(t.as_str()))
                        .collect();
                    return Err(not_found(t.clone(), &asked));
                }
                many => {
                    return Err(not_found(
                        format!(
                            "{t} (ambiguous: {} backups match, {} … {})",
                            many.len(),
                            many[0].timestamp,
                            many[many.len() - 1].timestamp
                        ),
                        &[],
                    ));
                }
            }
        }
    };
    let key = chosen.manifest_key.clone().unwrap_or_default();
    load_manifest(blobs, &key, &chosen.timestamp).await
}
