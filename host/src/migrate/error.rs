//! What can make a migration, export or import fail.

use crate::{error::Error, progress::ItemKind, vector::Vectors};

/// Everything that can make a migration fail, naming what was wrong.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A backend cannot take part (opening it, a missing contract, the same backend twice).
    #[error("backend `{backend}`: {message}")]
    Backend {
        /// The backend name.
        backend: String,
        /// What is wrong.
        message: String,
    },
    /// A table cannot be migrated as it is (no primary key, an unsupported column type…).
    #[error("table `{table}` on `{backend}`: {message}")]
    Schema {
        /// The table.
        table: String,
        /// The backend it was read from.
        backend: String,
        /// What is wrong.
        message: String,
    },
    /// A statement on a table failed.
    #[error("table `{table}` on `{backend}`: {source}")]
    Table {
        /// The table.
        table: String,
        /// The backend the statement ran on.
        backend: String,
        /// The backend's error.
        #[source]
        source: Box<Error>,
    },
    /// A value cannot be written to its target column.
    #[error("table `{table}`, column `{column}`: {message}")]
    Value {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Why.
        message: String,
    },
    /// A vector collection operation failed.
    #[error("collection `{collection}` on `{backend}`: {source}")]
    Collection {
        /// The collection.
        collection: String,
        /// The backend.
        backend: String,
        /// The backend's error.
        #[source]
        source: Box<Error>,
    },
    /// Source and target differ after the copy.
    #[error("verification failed for {kind} `{name}`: {detail}")]
    Verify {
        /// `table` or `collection`.
        kind: ItemKind,
        /// Its name.
        name: String,
        /// Counts and checksums of both sides.
        detail: String,
    },
    /// An export or import file is unreadable or malformed.
    #[error("{file}: {message}")]
    File {
        /// The file (and line, when known).
        file: String,
        /// What is wrong.
        message: String,
    },
}

impl MigrateError {
    /// The table or collection the error is about, when it is about one.
    pub fn item(&self) -> Option<&str> {
        match self {
            MigrateError::Schema { table, .. }
            | MigrateError::Table { table, .. }
            | MigrateError::Value { table, .. } => Some(table),
            MigrateError::Collection { collection, .. } => Some(collection),
            MigrateError::Verify { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl MigrateError {
    /// A failed call on collection `name` of `v`.
    pub(crate) fn collection(v: &Vectors, name: &str, source: Error) -> MigrateError {
        MigrateError::Collection {
            collection: name.to_string(),
            backend: v.backend().to_string(),
            source: Box::new(source),
        }
    }
}
