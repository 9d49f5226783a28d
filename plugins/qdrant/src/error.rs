//! Qdrant client errors mapped onto strata's error kinds.
//!
//! Messages are built from the gRPC status code and the server's message
//! only: never from the request (whose metadata carries the API key).

use qdrant_client::QdrantError;
use strata_plugin::{ErrorKind, PluginError};
use tonic::Code;

/// Maps a client error; `what` names the operation (`upsert into "notes"`).
pub(crate) fn map(err: QdrantError, what: &str) -> PluginError {
    match err {
        QdrantError::ResponseError { status } => {
            let code = status.code();
            let msg = status.message();
            let kind = match code {
                Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                    ErrorKind::InvalidInput
                }
                Code::NotFound => ErrorKind::NotFound,
                Code::AlreadyExists => ErrorKind::AlreadyExists,
                Code::Unauthenticated | Code::PermissionDenied | Code::Unavailable => {
                    ErrorKind::Connection
                }
                Code::DeadlineExceeded | Code::Cancelled => ErrorKind::Timeout,
                Code::ResourceExhausted | Code::Aborted => ErrorKind::Busy,
                Code::Unimplemented => ErrorKind::Unsupported,
                _ => ErrorKind::Internal,
            };
            let text = match code {
                Code::Unauthenticated | Code::PermissionDenied => format!(
                    "{what}: the Qdrant server refused the request ({code:?}: {msg}); check api_key / QDRANT_API_KEY"
                ),
                Code::Unavailable => {
                    format!("{what}: the Qdrant server is unreachable ({code:?}: {msg})")
                }
                _ => format!("{what}: Qdrant answered {code:?}: {msg}"),
            };
            PluginError::new(kind, text).with_backend_code(format!("{code:?}"))
        }
        QdrantError::ResourceExhaustedError {
            status,
            retry_after_seconds,
        } => PluginError::new(
            ErrorKind::Busy,
            format!(
                "{what}: Qdrant is overloaded ({}); retry after {retry_after_seconds} s",
                status.message()
            ),
        ),
        QdrantError::InvalidUri(e) => PluginError::new(
            ErrorKind::InvalidConfig,
            format!("url is not a valid URI: {e}"),
        ),
        QdrantError::Io(e) => PluginError::new(ErrorKind::Connection, format!("{what}: {e}")),
        QdrantError::ConversionError(e) => PluginError::internal(format!("{what}: {e}")),
        other => PluginError::internal(format!("{what}: {other}")),
    }
}
