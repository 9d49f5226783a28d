//! [`BackupError`]: what can go wrong with backups.

use std::path::PathBuf;

use strata_plugin_api::ErrorKind;

use crate::{error::Error, migrate::MigrateError};

/// What can go wrong with backups: the backup-specific failures, and the
/// host's own errors (plugins, configuration, I/O) met on the way.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A stored backup is damaged; `what` says how.
    #[error("backup {timestamp} is corrupt: {what}")]
    Corrupt {
        /// The backup's timestamp.
        timestamp: String,
        /// What does not match.
        what: String,
    },
    /// No backup matches the request.
    #[error("no backup {wanted} for backend `{backend}` ({available})")]
    NotFound {
        /// What was asked for.
        wanted: String,
        /// The source backend.
        backend: String,
        /// The backups there are.
        available: String,
    },
    /// The restore target exists and `force` was not given.
    #[error("{} exists; refusing to replace it without --force", path.display())]
    TargetExists {
        /// The target.
        path: PathBuf,
    },
    /// The restore target is in use: its WAL could not be checkpointed
    /// (another process has the database open).
    #[error("{} is in use by another process (its WAL cannot be checkpointed); close it before restoring over it", path.display())]
    TargetBusy {
        /// The target.
        path: PathBuf,
    },
    /// The source backend cannot be backed up this way.
    #[error("backend `{backend}` cannot be backed up: {reason}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// Why.
        reason: String,
    },
    /// The backup is of the other kind than the restore asked for (a
    /// database file restored into a backend, or a logical export to a file).
    #[error("backup {timestamp} is {what}: {hint}")]
    WrongKind {
        /// The backup's timestamp.
        timestamp: String,
        /// What it is.
        what: String,
        /// How to restore it instead.
        hint: String,
    },
    /// Tables or collections of a logical backup already exist in the
    /// target backend and `force` was not given.
    #[error("backend `{backend}` already has {}; refusing to replace them without --force", items.join(", "))]
    ItemsExist {
        /// The target backend.
        backend: String,
        /// `table `a``, `collection `b``…
        items: Vec<String>,
    },
    /// A logical snapshot or restore failed; `what` says which.
    #[error("{what}: {source}")]
    Logical {
        /// What was being done (`backup of `pg``, `restoring backup … into `x``).
        what: String,
        /// The export or import error, naming the table or collection.
        #[source]
        source: Box<MigrateError>,
    },
    /// The restored file failed SQLite's integrity check.
    #[error("backup {timestamp}: the restored database fails PRAGMA integrity_check: {result}")]
    IntegrityCheck {
        /// The backup's timestamp.
        timestamp: String,
        /// What the check said.
        result: String,
    },
    /// The source's snapshot failed SQLite's integrity check, so no backup
    /// was stored: the database itself is damaged (restoring an earlier
    /// backup, or `.recover` in the sqlite3 shell, are the ways back).
    #[error(
        "backup of `{backend}`: its snapshot fails PRAGMA integrity_check, so no backup was stored: {result}"
    )]
    SourceDamaged {
        /// The source backend.
        backend: String,
        /// What the check said.
        result: String,
    },
    /// A trial restore ([`BackupManager::trial_restore`](super::BackupManager::trial_restore))
    /// cannot run as asked: a logical backup without a scratch backend, or
    /// a scratch backend that is the backed-up source itself.
    #[error("cannot trial-restore backup {timestamp}: {reason}")]
    Scratch {
        /// The backup's timestamp.
        timestamp: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// A plugin, configuration or I/O error while taking, checking or
    /// restoring a backup.
    #[error(transparent)]
    Host(#[from] Error),
}

impl BackupError {
    /// The error kind a caller can match on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::Corrupt { .. } | BackupError::IntegrityCheck { .. } => {
                ErrorKind::InvalidInput
            }
            BackupError::NotFound { .. } => ErrorKind::NotFound,
            BackupError::TargetExists { .. } | BackupError::ItemsExist { .. } => {
                ErrorKind::AlreadyExists
            }
            BackupError::WrongKind { .. } | BackupError::Scratch { .. } => ErrorKind::InvalidInput,
            BackupError::TargetBusy { .. } => ErrorKind::Busy,
            BackupError::SourceDamaged { .. } => ErrorKind::Internal,
            BackupError::Logical { source, .. } => migrate_kind(source),
            BackupError::Unsupported { .. } => ErrorKind::Unsupported,
            BackupError::Host(e) => e.kind(),
        }
    }
}

fn migrate_kind(e: &MigrateError) -> ErrorKind {
    match e {
        MigrateError::Table { source, .. } | MigrateError::Collection { source, .. } => {
            source.kind()
        }
        MigrateError::Backend { .. } => ErrorKind::Unsupported,
        _ => ErrorKind::InvalidInput,
    }
}

/// An I/O error with what was being done.
pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
