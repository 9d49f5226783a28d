//! The host's error type.

use std::path::PathBuf;

use strata_plugin_api::{ErrorKind, PluginError};

/// Everything that can go wrong in the host, each variant naming what was wrong.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `plugins.toml` is unreadable or invalid; `message` names the table and key.
    #[error("{}: {message}", file.display())]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong, naming the table and key.
        message: String,
    },
    /// No library for the plugin name in any plugin directory.
    #[error(
        "plugin `{name}` not found: looked for {file} in {}",
        fmt_dirs(searched)
    )]
    PluginNotFound {
        /// The plugin name.
        name: String,
        /// The file name looked for.
        file: String,
        /// Every directory searched, in order.
        searched: Vec<PathBuf>,
    },
    /// The file is not a loadable strata plugin.
    #[error("{}: not a strata plugin: {reason}", path.display())]
    NotAPlugin {
        /// The library path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The plugin was built against an incompatible `strata-plugin-api`.
    #[error(
        "{}: incompatible plugin: built against strata-plugin-api {found}, this host expects {expected} (rebuild the plugin against {expected})",
        path.display()
    )]
    IncompatibleApi {
        /// The library path.
        path: PathBuf,
        /// The version the host speaks.
        expected: String,
        /// The version the plugin declares.
        found: String,
    },
    /// The plugin's types do not have the layout the host expects.
    #[error("{}: incompatible plugin ABI layout: {detail}", path.display())]
    AbiMismatch {
        /// The library path.
        path: PathBuf,
        /// The first lines of abi_stable's report.
        detail: String,
    },
    /// No backend with this name in the config.
    #[error("no backend named `{name}` (configured: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// The configured backend names.
        known: Vec<String>,
    },
    /// The backend does not implement a contract.
    #[error("backend `{backend}` (plugin `{plugin}`) does not implement the {contract} contract")]
    NoContract {
        /// The backend name.
        backend: String,
        /// The plugin name.
        plugin: String,
        /// `sql`, `vector` or `blob`.
        contract: &'static str,
    },
    /// Parameters do not fit the statement; nothing was sent.
    #[error("parameters: {0}")]
    Params(String),
    /// A column could not be converted to the requested Rust type.
    #[error("column `{column}`: {message}")]
    Decode {
        /// The column name (or index).
        column: String,
        /// Why.
        message: String,
    },
    /// An error reported by a plugin (or a panic contained at the boundary).
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// An I/O error outside any plugin.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn fmt_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no directories (plugin_dirs is empty)".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// The error kind a caller can match on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. } => ErrorKind::InvalidConfig,
            Error::PluginNotFound { .. } | Error::UnknownBackend { .. } => ErrorKind::NotFound,
            Error::NotAPlugin { .. }
            | Error::IncompatibleApi { .. }
            | Error::AbiMismatch { .. } => ErrorKind::Unsupported,
            Error::NoContract { .. } => ErrorKind::Unsupported,
            Error::Params(_) | Error::Decode { .. } => ErrorKind::InvalidInput,
            Error::Plugin(e) => e.kind(),
            Error::Io { .. } => ErrorKind::Internal,
        }
    }

    /// The plugin error, when this is one.
    pub fn plugin_error(&self) -> Option<&PluginError> {
        match self {
            Error::Plugin(e) => Some(e),
            _ => None,
        }
    }

    /// A config error; URL passwords and the values of secret keys in
    /// `message` are hidden ([`crate::redact::redact_secrets`]).
    pub(crate) fn config(file: &std::path::Path, message: impl Into<String>) -> Error {
        Error::Config {
            file: file.to_path_buf(),
            message: crate::redact::redact_secrets(&message.into()),
        }
    }
}

/// The host's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
