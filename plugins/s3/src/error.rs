//! Mapping object_store errors to strata's error kinds.
//!
//! | object_store | strata kind | backend code |
//! |---|---|---|
//! | `NotFound` (HTTP 404: missing key or bucket) | `not_found` | `404` |
//! | `PermissionDenied` / `Unauthenticated` (403 / 401) | `connection` | status |
//! | `Precondition` / `NotModified` | `busy` (another writer) | status |
//! | `AlreadyExists` (409) | `already_exists` | `409` |
//! | `InvalidPath` | `invalid_input` | — |
//! | `NotSupported` / `NotImplemented` | `unsupported` | — |
//! | a connect error (refused, DNS) | `connection` | — |
//! | a request timeout | `timeout` | — |
//! | any other HTTP status | `internal` (5xx: `busy`, retrying may work) | status |
//!
//! The HTTP status is found by walking the error's source chain; messages
//! come from object_store, which never includes credentials (request URIs
//! carry no secrets: requests are signed in headers).

use object_store::client::{HttpError, HttpErrorKind};
use strata_plugin::{ErrorKind, PluginError};

/// What can go wrong in the S3 plugin.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    /// The config is wrong; the message names the key.
    #[error("s3 config: {0}")]
    Config(String),
    /// A key is not usable as an object key.
    #[error("invalid key {key:?}: {reason}")]
    Key { key: String, reason: String },
    /// The store reported an error.
    #[error("s3 {op} {key:?} in bucket {bucket}: {source}")]
    Store {
        op: &'static str,
        key: String,
        bucket: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A call on a multipart writer that has completed or aborted.
    #[error("multipart upload of {0:?} is already completed or aborted")]
    WriterClosed(String),
    /// A request made without object_store (listing or aborting open
    /// multipart uploads) failed.
    #[error("s3 {op} {key:?}: {message}")]
    Http {
        op: &'static str,
        key: String,
        status: Option<u16>,
        message: String,
    },
}

impl From<S3Error> for PluginError {
    fn from(e: S3Error) -> PluginError {
        let message = e.to_string();
        match e {
            S3Error::Config(_) => PluginError::new(ErrorKind::InvalidConfig, message),
            S3Error::Key { .. } => PluginError::new(ErrorKind::InvalidInput, message),
            S3Error::WriterClosed(_) => PluginError::new(ErrorKind::Closed, message),
            S3Error::Http { status, .. } => {
                let kind = match status {
                    None if message.contains("timed out") => ErrorKind::Timeout,
                    None if message.contains("connect") => ErrorKind::Connection,
                    Some(404) => ErrorKind::NotFound,
                    Some(401 | 403) => ErrorKind::Connection,
                    Some(s) if s >= 500 => ErrorKind::Busy,
                    _ => ErrorKind::Internal,
                };
                let err = PluginError::new(kind, message);
                match status {
                    Some(s) => err.with_backend_code(s.to_string()),
                    None => err,
                }
            }
            S3Error::Store { source, .. } => {
                let status = http_status(&source);
                let kind = match &*source {
                    object_store::Error::NotFound { .. } => ErrorKind::NotFound,
                    object_store::Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
                    object_store::Error::Precondition { .. }
                    | object_store::Error::NotModified { .. } => ErrorKind::Busy,
                    object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. } => ErrorKind::Connection,
                    object_store::Error::InvalidPath { .. } => ErrorKind::InvalidInput,
                    object_store::Error::NotSupported { .. }
                    | object_store::Error::NotImplemented { .. } => ErrorKind::Unsupported,
                    other => match (http_kind(other), status) {
                        (Some(HttpErrorKind::Connect), _) => ErrorKind::Connection,
                        (Some(HttpErrorKind::Timeout), _) => ErrorKind::Timeout,
                        (Some(HttpErrorKind::Request | HttpErrorKind::Interrupted), _) => {
                            ErrorKind::Connection
                        }
                        (_, Some(404)) => ErrorKind::NotFound,
                        (_, Some(401 | 403)) => ErrorKind::Connection,
                        (_, Some(s)) if s >= 500 => ErrorKind::Busy,
                        _ => ErrorKind::Internal,
                    },
                };
                let err = PluginError::new(kind, message);
                match status {
                    Some(s) => err.with_backend_code(s.to_string()),
                    None => err,
                }
            }
        }
    }
}

fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// The kind of the transport error inside `e`, if any.
fn http_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
    chain(e).find_map(|e| e.downcast_ref::<HttpError>().map(HttpError::kind))
}

/// The HTTP status inside `e`, if the server answered. object_store keeps
/// it in a crate-private error type, so it is read from that type's message
/// ("… status code: 403 Forbidden …", "… error response …").
fn http_status(e: &object_store::Error) -> Option<u16> {
    if let object_store::Error::NotFound { .. } = e {
        return Some(404);
    }
    chain(e).find_map(|e| {
        let text = e.to_string();
        let at = text.find("status code: ")? + "status code: ".len();
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}
