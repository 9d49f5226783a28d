//! The manifest stored beside each backup object, and the timestamps that
//! name backups.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::BackupError;

/// Version of the manifest format.
pub const MANIFEST_FORMAT: u32 = 1;

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
    /// `"ok"`: the snapshot passed SQLite's `PRAGMA integrity_check` before
    /// it was stored. A restore whose bytes match `snapshot_sha256` is
    /// then that same checked file, and skips a check of its own. Omitted
    /// when nothing was checked (logical backups, and SQLite backups of
    /// strata versions that checked at restore only), so those manifests
    /// keep their exact bytes and self-checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_check: Option<String>,
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

    pub(super) fn describe(self) -> &'static str {
        match self {
            SnapshotKind::Sqlite => "a SQLite database file",
            SnapshotKind::Jsonl => "a logical (JSON Lines) backup",
        }
    }
}

impl Manifest {
    pub(super) fn self_checksum(&self) -> String {
        let mut unsigned = self.clone();
        unsigned.manifest_sha256.clear();
        hex::encode(Sha256::digest(
            serde_json::to_vec(&unsigned).unwrap_or_default(),
        ))
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
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
    use std::time::Duration;

    use super::*;

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
            integrity_check: None,
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

    #[test]
    fn a_check_at_backup_is_recorded_under_the_checksum() {
        let mut m =
            Manifest::parse("20261128T073000.123Z", OLD_SQLITE_MANIFEST.as_bytes()).unwrap();
        assert_eq!(m.integrity_check, None, "old manifests record no check");
        m.integrity_check = Some("ok".into());
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(text.contains("\"integrity_check\": \"ok\""), "{text}");
        let back = Manifest::parse(&m.timestamp, text.as_bytes()).unwrap();
        assert_eq!(back.integrity_check.as_deref(), Some("ok"));
        assert_eq!(back.manifest_sha256, m.self_checksum());
        // Claiming a check that was not recorded breaks the checksum.
        let forged = OLD_SQLITE_MANIFEST.replace(
            "  \"duration_ms\"",
            "  \"integrity_check\": \"ok\",\n  \"duration_ms\"",
        );
        let e = Manifest::parse(&m.timestamp, forged.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }
}

/// Property tests of the manifest reader: it never panics, reads back what
/// was written, and no changed byte yields a different manifest.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(256),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn manifest() -> impl Strategy<Value = Manifest> {
        (
            (any::<u32>(), "[0-9TZ.]{0,20}", "\\PC{0,10}", "\\PC{0,10}"),
            (any::<bool>(), "\\PC{0,16}", any::<u64>(), "[0-9a-f]{0,64}"),
            (any::<u64>(), "[0-9a-f]{0,64}", any::<u64>(), any::<bool>()),
        )
            .prop_map(
                |(
                    (format, timestamp, backend, plugin),
                    (jsonl, object_key, object_size, object_sha256),
                    (snapshot_size, snapshot_sha256, duration_ms, checked),
                )| Manifest {
                    format,
                    timestamp,
                    backend,
                    plugin,
                    strata_version: "0.1.0".into(),
                    compression: "zstd".into(),
                    snapshot: if jsonl {
                        SnapshotKind::Jsonl
                    } else {
                        SnapshotKind::Sqlite
                    },
                    object_key,
                    object_size,
                    object_sha256,
                    snapshot_size,
                    snapshot_sha256,
                    integrity_check: checked.then(|| "ok".into()),
                    duration_ms,
                    manifest_sha256: String::new(),
                },
            )
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_bytes_are_read_or_refused_without_panicking(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                "\\{(\"[a-z_0-9]{1,16}\": ?(\"[^\"]{0,8}\"|[0-9]{1,21}|null),?){0,16}\\}"
                    .prop_map(String::into_bytes),
            ],
            ts in "[0-9TZ.]{0,20}",
        ) {
            let _ = Manifest::parse(&ts, &bytes);
        }

        #[test]
        fn a_written_manifest_reads_back(m in manifest()) {
            let mut want = m.clone();
            want.manifest_sha256 = m.self_checksum();
            prop_assert_eq!(Manifest::parse(&m.timestamp, &m.to_bytes()).unwrap(), want);
        }

        #[test]
        fn no_changed_byte_yields_another_manifest(
            m in manifest(),
            at in any::<prop::sample::Index>(),
            to in any::<u8>(),
        ) {
            let mut want = m.clone();
            want.manifest_sha256 = m.self_checksum();
            let mut bytes = m.to_bytes();
            let i = at.index(bytes.len());
            bytes[i] = to;
            if let Ok(got) = Manifest::parse(&m.timestamp, &bytes) {
                prop_assert_eq!(got, want, "byte {} changed to {:?}", i, to as char);
            }
        }
    }
}
