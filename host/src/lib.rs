//! strata's host: loads storage backends as plugins and gives applications
//! one API over them.
//!
//! # Design
//!
//! - [`config`] reads `plugins.toml` (plugin directories, `[backends.NAME]`,
//!   `[roles]`), with `${VAR}` interpolation and errors that name the file,
//!   the table and the key.
//! - [`loader`] finds each plugin library, loads it through abi_stable (which
//!   checks the plugin-api version and type layouts), validates the backend's
//!   config against the plugin's own JSON Schema and opens it. It never links
//!   a plugin: backends are `.so` files built and shipped on their own.
//! - [`Sql`] is the StorageAdapter front end: `exec`, `run`, `get`, `all`,
//!   `stream`, `transaction`, `close`. Placeholders are written once (`?`,
//!   `?NNN`, `:name`, `@name`, `$name`) and rewritten per dialect by a lexer
//!   ([`strata_plugin_api::placeholders`]); wrong arguments are rejected
//!   before anything reaches the database.
//! - Plugin futures are awaited on the caller's executor; a panic that
//!   escapes a plugin comes back as an [`ErrorKind::Internal`] error. Each
//!   call is charged to the calling task's tokio budget (as a tokio socket
//!   read would be), so a task looping over calls that finish at once, as
//!   SQLite's do, still yields to the other tasks on its worker.
//!
//! ```no_run
//! # async fn demo() -> strata_host::Result<()> {
//! use strata_host::{Strata, named};
//! let strata = Strata::load("plugins.toml")?;
//! let sql = strata.sql().await?;
//! sql.exec("create table if not exists notes(id integer primary key, body text)").await?;
//! sql.run("insert into notes(body) values (:body)", named! {"body" => "hello"}).await?;
//! let row = sql.get("select body from notes where id = ?", [1]).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod backup;
pub mod blob;
mod boundary;
pub mod config;
pub mod error;
pub mod loader;
pub mod migrate;
pub mod params;
pub mod progress;
mod redact;
pub mod row;
pub mod sql;
pub mod strata;
pub mod vector;

pub use blob::{BlobMeta, BlobWriter, Blobs, PendingUpload};
pub use config::Config;
pub use error::{Error, Result};
pub use loader::{Backend, Plugin, PluginInfo};
pub use params::{IntoParams, Params};
pub use row::{FromValue, Row};
pub use sql::{RowStream, RunOutcome, Sql, SqlRead, Transaction};
pub use strata::Strata;
pub use strata_plugin_api::{ErrorKind, PluginError, Value, placeholders::Dialect};
pub use vector::{CollectionStats, Hit, Hybrid, Include, Metric, Query, Record, Vectors};
