//! SQLite errors mapped onto strata's error kinds.

use rusqlite::ffi;
use strata_plugin::{ErrorKind, PluginError};

/// Maps a rusqlite error to a [`PluginError`], keeping SQLite's extended
/// result code as the backend code.
pub(crate) fn map(err: rusqlite::Error) -> PluginError {
    use rusqlite::Error as E;
    match err {
        E::SqliteFailure(e, msg) => {
            let message = msg.unwrap_or_else(|| e.to_string());
            let kind = match e.code {
                ffi::ErrorCode::ConstraintViolation => ErrorKind::Constraint,
                ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => ErrorKind::Busy,
                ffi::ErrorCode::ReadOnly => ErrorKind::Unsupported,
                ffi::ErrorCode::CannotOpen => ErrorKind::Connection,
                ffi::ErrorCode::TooBig => ErrorKind::InvalidInput,
                ffi::ErrorCode::TypeMismatch => ErrorKind::Constraint,
                ffi::ErrorCode::PermissionDenied
                | ffi::ErrorCode::AuthorizationForStatementDenied => ErrorKind::Unsupported,
                ffi::ErrorCode::OperationInterrupted => ErrorKind::Timeout,
                ffi::ErrorCode::Unknown => classify_message(&message),
                _ => ErrorKind::Internal,
            };
            PluginError::new(kind, message).with_backend_code(e.extended_code.to_string())
        }
        E::SqlInputError {
            error, msg, offset, ..
        } => {
            let kind = classify_message(&msg);
            PluginError::new(kind, format!("{msg} (at byte {offset})"))
                .with_backend_code(error.extended_code.to_string())
        }
        E::InvalidParameterCount(given, expected) => PluginError::new(
            ErrorKind::InvalidInput,
            format!("statement takes {expected} parameters, {given} given"),
        ),
        E::InvalidParameterName(name) => {
            PluginError::new(ErrorKind::InvalidInput, format!("unknown parameter {name}"))
        }
        E::MultipleStatement => PluginError::new(
            ErrorKind::InvalidInput,
            "several statements given where one was expected; use exec for scripts",
        ),
        E::NulError(e) => {
            PluginError::new(ErrorKind::InvalidInput, format!("NUL byte in SQL: {e}"))
        }
        E::Utf8Error(col, e) => PluginError::new(
            ErrorKind::Internal,
            format!("column {col} holds text that is not UTF-8: {e}"),
        ),
        other => PluginError::new(ErrorKind::Internal, other.to_string()),
    }
}

/// SQLite reports most statement errors as the generic `SQLITE_ERROR`;
/// the message tells them apart.
fn classify_message(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if m.contains("syntax error")
        || m.contains("incomplete input")
        || m.contains("unrecognized token")
        || m.contains("near \"")
    {
        ErrorKind::Syntax
    } else if m.starts_with("no such") {
        ErrorKind::NotFound
    } else if m.contains("already exists") {
        ErrorKind::AlreadyExists
    } else {
        ErrorKind::InvalidInput
    }
}
