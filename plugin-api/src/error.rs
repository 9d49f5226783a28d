//! The error model: one FFI-safe error with a kind callers can match.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString},
};

/// What went wrong, in terms a caller can act on.
///
/// On the wire the kind is a `u32` code (see [`PluginError`]), so a newer
/// plugin that reports a kind this host does not know yet is read as
/// [`ErrorKind::Internal`] instead of being undefined behaviour.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The thing asked for does not exist (table, collection, key, file).
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// A constraint rejected the write (unique, foreign key, not null, check).
    Constraint,
    /// The statement or expression could not be parsed.
    Syntax,
    /// The request itself is wrong: parameter count, dimension, bad filter.
    InvalidInput,
    /// The backend's configuration is wrong.
    InvalidConfig,
    /// The backend does not implement this operation or option.
    Unsupported,
    /// The backend is busy or locked, or a serialization conflict happened; retrying may work.
    Busy,
    /// The operation did not finish in the allowed time.
    Timeout,
    /// The backend cannot be reached, or the connection broke.
    Connection,
    /// The handle was closed; open a new one.
    Closed,
    /// Anything else, including a panic inside the plugin.
    Internal,
}

impl ErrorKind {
    /// Every kind, in code order.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Constraint,
        ErrorKind::Syntax,
        ErrorKind::InvalidInput,
        ErrorKind::InvalidConfig,
        ErrorKind::Unsupported,
        ErrorKind::Busy,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Closed,
        ErrorKind::Internal,
    ];

    /// The stable wire code of this kind.
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::NotFound => 1,
            ErrorKind::AlreadyExists => 2,
            ErrorKind::Constraint => 3,
            ErrorKind::Syntax => 4,
            ErrorKind::InvalidInput => 5,
            ErrorKind::InvalidConfig => 6,
            ErrorKind::Unsupported => 7,
            ErrorKind::Busy => 8,
            ErrorKind::Timeout => 9,
            ErrorKind::Connection => 10,
            ErrorKind::Closed => 11,
            ErrorKind::Internal => 12,
        }
    }

    /// The kind for a wire code; unknown codes read as [`ErrorKind::Internal`].
    pub fn from_code(code: u32) -> ErrorKind {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.code() == code)
            .unwrap_or(ErrorKind::Internal)
    }

    /// A short lower-case name (`not_found`, `constraint`, …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Constraint => "constraint",
            ErrorKind::Syntax => "syntax",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Busy => "busy",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Closed => "closed",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error every plugin call can return.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct PluginError {
    kind: u32,
    message: RString,
    backend_code: ROption<RString>,
}

impl PluginError {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind: kind.code(),
            message: RString::from(message.into()),
            backend_code: ROption::RNone,
        }
    }

    /// Attaches the backend's own code (SQLSTATE, SQLite extended result code, HTTP status).
    pub fn with_backend_code(mut self, code: impl Into<String>) -> Self {
        self.backend_code = ROption::RSome(RString::from(code.into()));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::from_code(self.kind)
    }

    /// The message.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }

    /// The backend's own code, when it gave one.
    pub fn backend_code(&self) -> Option<&str> {
        self.backend_code.as_ref().map(|s| s.as_str()).into_option()
    }

    /// Shorthand for an [`ErrorKind::Closed`] error.
    pub fn closed(what: &str) -> Self {
        PluginError::new(ErrorKind::Closed, format!("{what} is closed"))
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for an [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::Internal, message)
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::Unsupported, message)
    }

    /// The error reported for a panic caught at the plugin boundary.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        PluginError::new(
            ErrorKind::Internal,
            format!("plugin panicked: {}", panic_message(payload)),
        )
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginError")
            .field("kind", &self.kind())
            .field("message", &self.message.as_str())
            .field("backend_code", &self.backend_code())
            .finish()
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message)?;
        if let Some(code) = self.backend_code() {
            write!(f, " (backend code {code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}

/// The result type of plugin-side code.
pub type PluginResult<T> = Result<T, PluginError>;
