//! The memory layer's errors.

use crate::embed::EmbedError;

/// What went wrong in a memory call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The storage (a backend, the config, a plugin) failed.
    #[error(transparent)]
    Storage(#[from] strata_host::Error),
    /// The embedder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The caller passed something the memory layer refuses; `message`
    /// names it.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What was wrong.
        message: String,
    },
    /// The brain was made with another embedder (other vectors): searching
    /// it with this one would return noise.
    #[error(
        "this memory was built with embedder {stored} ({stored_dim} dimensions); it was opened with {given} ({given_dim}): open it with the same embedder, or migrate it"
    )]
    EmbedderMismatch {
        /// The embedder the memory was built with.
        stored: String,
        /// Its dimension.
        stored_dim: u32,
        /// The embedder given now.
        given: String,
        /// Its dimension.
        given_dim: u32,
    },
    /// A stored row is not what this layer wrote (edited by hand?).
    #[error("corrupt memory row: {message}")]
    Corrupt {
        /// What was found.
        message: String,
    },
}

impl MemoryError {
    pub(crate) fn invalid(message: impl Into<String>) -> MemoryError {
        MemoryError::InvalidInput {
            message: message.into(),
        }
    }
}

/// The memory layer's result.
pub type Result<T> = std::result::Result<T, MemoryError>;
