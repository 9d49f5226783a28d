//! The CLI's error: what a command failed with, printed as `error: …`.

use strata_host::{Error, backup::BackupError, migrate::MigrateError};

/// Any error a command can end with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// From the host: config, plugins, I/O.
    #[error(transparent)]
    Host(#[from] Error),
    /// From a migration, export or import.
    #[error("migration: {0}")]
    Migrate(#[from] MigrateError),
    /// From a backup, restore or verification.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// From the memory layer.
    #[error(transparent)]
    Memory(#[from] strata_memory::MemoryError),
    /// Loading the local embedding model.
    #[error("embedding model: {0}")]
    Model(#[from] strata_memory::ModelError),
    /// Setting up an embedder.
    #[error(transparent)]
    Embed(#[from] strata_memory::EmbedError),
}

/// The CLI's result type.
pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;
