//! sqlx / PostgreSQL errors mapped onto strata's error kinds; SQLSTATE kept.

use strata_plugin::{ErrorKind, PluginError};

/// The kind for a SQLSTATE.
pub(crate) fn kind_for_sqlstate(code: &str) -> ErrorKind {
    match code {
        c if c.starts_with("23") => ErrorKind::Constraint,
        "42601" | "42000" | "42P02" | "42P18" => ErrorKind::Syntax,
        "22P02" | "42804" => ErrorKind::InvalidInput,
        "42P01" | "42703" | "42883" | "3F000" | "42704" | "3D000" | "34000" => ErrorKind::NotFound,
        "42P07" | "42710" | "42P06" | "42723" | "42P04" => ErrorKind::AlreadyExists,
        "40001" | "40P01" | "55P03" | "53300" => ErrorKind::Busy,
        "57014" => ErrorKind::Timeout,
        "28P01" | "28000" => ErrorKind::Connection,
        "25P02" => ErrorKind::InvalidInput,
        c if c.starts_with("08") || c.starts_with("57P") => ErrorKind::Connection,
        c if c.starts_with("22") => ErrorKind::InvalidInput,
        c if c.starts_with("42") => ErrorKind::Syntax,
        _ => ErrorKind::Internal,
    }
}

/// Maps a sqlx error.
pub(crate) fn map(err: sqlx::Error) -> PluginError {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let kind = kind_for_sqlstate(&code);
            PluginError::new(kind, db.message().to_string()).with_backend_code(code)
        }
        sqlx::Error::PoolTimedOut => PluginError::new(
            ErrorKind::Timeout,
            "timed out waiting for a database connection (connect_timeout_ms)",
        ),
        sqlx::Error::PoolClosed => PluginError::closed("postgres connection pool"),
        sqlx::Error::Io(e) => {
            PluginError::new(ErrorKind::Connection, format!("connection error: {e}"))
        }
        sqlx::Error::Tls(e) => PluginError::new(ErrorKind::Connection, format!("TLS error: {e}")),
        sqlx::Error::Configuration(e) => match e.downcast::<Refused>() {
            Ok(refused) => refused.0,
            Err(e) => PluginError::new(ErrorKind::InvalidConfig, format!("{e}")),
        },
        sqlx::Error::Protocol(m) => {
            PluginError::new(ErrorKind::Connection, format!("protocol error: {m}"))
        }
        sqlx::Error::Encode(e) => {
            PluginError::invalid_input(format!("cannot encode a parameter: {e}"))
        }
        other => PluginError::internal(other.to_string()),
    }
}

/// A request its `RequestScope` (`crate::db`) refused, carried through sqlx's error
/// type by the executor and turned back by [`map`].
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) strata_plugin::PluginError);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Refused {}
