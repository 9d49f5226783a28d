//! Where `strata-bench backup` puts its backups (`--store`), shared by the
//! SQLite and the Postgres benchmark.

/// Where the benchmark's backups go (`--store`).
pub(crate) struct Store {
    pub(crate) local: bool,
    pub(crate) endpoint: String,
    pub(crate) bucket: String,
}

impl Store {
    /// The `[backends.archive]` body: an fs store in a fresh
    /// `DIR/bench-backup-store`, or the S3 bucket under `prefix`.
    pub(crate) fn backend(&self, dir: &std::path::Path, prefix: &str) -> String {
        if self.local {
            let root = dir.join("bench-backup-store");
            let _ = std::fs::remove_dir_all(&root);
            format!(
                "plugin = \"fs\"\nconfig = {{ root = \"{}\" }}",
                root.display()
            )
        } else {
            format!(
                "plugin = \"s3\"\nconfig = {{ bucket = \"{}\", endpoint = \"{}\", region = \"us-east-1\", prefix = \"{prefix}\" }}",
                self.bucket, self.endpoint
            )
        }
    }
}
