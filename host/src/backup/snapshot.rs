//! Taking the snapshot of a backup into a local file: a SQLite database by
//! `VACUUM INTO`, any other backend as a logical JSON Lines export (see the
//! module docs of [`super`]).

use std::{io::Write, path::Path};

use strata_plugin_api::{Value, placeholders::Dialect};

use crate::{
    error::Result,
    loader::Backend,
    migrate::{self, MigrateError, MigrateOptions, jsonl},
    strata::Strata,
};

use super::error::{BackupError, io};

/// Rows per keyset page of a logical snapshot.
const LOGICAL_PAGE: usize = 5_000;

/// `VACUUM INTO` the snapshot file `to`, on a read-only twin of backend
/// `source` when the plugin can open one (see the module docs).
pub(super) async fn sqlite_file(
    strata: &Strata,
    source: &str,
    backend: &Backend,
    to: &Path,
) -> Result<()> {
    let cfg = strata.config().backend(source)?;
    let path = cfg.config.get("path").and_then(|p| p.as_str());
    let has_read_only = backend
        .plugin()
        .info()
        .config_schema
        .pointer("/properties/read_only")
        .is_some();
    let target = Value::from(to.display().to_string());
    match path {
        Some(p) if p != ":memory:" && has_read_only => {
            let mut twin_cfg = cfg.config.clone();
            twin_cfg["read_only"] = serde_json::Value::Bool(true);
            let twin = Backend::open(
                &format!("{source}-snapshot"),
                backend.plugin().clone(),
                &strata.config().file,
                &twin_cfg,
            )
            .await?;
            // The snapshot is a scratch file: VACUUM INTO takes the
            // pager flags of the source connection, so without this it
            // would fsync the whole copy (the object's sha256 is what
            // makes it trustworthy, not the local file's durability).
            // Memory-mapped reads of the source (read-only: safe with
            // writers in other connections, which SQLite keeps coherent)
            // spare a copy per page: VACUUM INTO of a 414 MB file took
            // 0.36–0.42 s instead of 0.40–0.70 s (sqlite3 shell, same file).
            let sql = twin.sql()?;
            let r = match sql
                .exec("PRAGMA synchronous = OFF; PRAGMA mmap_size = 4294967296")
                .await
            {
                Ok(()) => sql.run("VACUUM INTO ?", [target]).await,
                Err(e) => Err(e),
            };
            let _ = twin.close().await;
            r.map(|_| ())
        }
        _ => backend
            .sql()?
            .run("VACUUM INTO ?", [target])
            .await
            .map(|_| ()),
    }
}

/// Writes a logical snapshot of `backend` (backend `source` of the config)
/// to `to` in the JSON Lines export format: every table paged inside one
/// read-only transaction (see the module docs), then every collection
/// through the vector contract's scan. `options` says what to read and
/// whom to tell.
pub(super) async fn logical(
    backend: &Backend,
    source: &str,
    to: &Path,
    options: MigrateOptions,
) -> Result<migrate::Report, BackupError> {
    let wrap = |e: MigrateError| BackupError::Logical {
        what: format!("logical backup of `{source}`"),
        source: Box::new(e),
    };
    let options = options.batch_size(LOGICAL_PAGE);
    let label = to.display().to_string();
    let file = std::fs::File::create(to).map_err(io(format!("creating {label}")))?;
    let mut buffered = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut out = jsonl::ExportWriter::new(&mut buffered);
    let mut report = migrate::Report::default();
    let sql = backend.sql().ok();
    jsonl::write_header(
        &mut out,
        &label,
        backend.name(),
        sql.as_ref().map(|s| s.dialect().name()),
    )
    .map_err(wrap)?;
    if let Some(sql) = &sql {
        let tx = sql.begin().await?;
        if let Some(stmt) = snapshot_statement(sql.dialect()) {
            tx.exec(stmt).await?;
        }
        jsonl::export_tables(&tx, &mut out, &label, &options, &mut report)
            .await
            .map_err(wrap)?;
        // Read only: nothing to keep; ending it frees the snapshot.
        tx.rollback().await?;
    }
    if let Ok(v) = backend.vectors() {
        jsonl::export_collections(&v, &mut out, &label, &options, &mut report)
            .await
            .map_err(wrap)?;
    }
    out.finish(&label, &report).map_err(wrap)?;
    buffered.flush().map_err(io(format!("writing {label}")))?;
    Ok(report)
}

/// The first statement of a logical snapshot's transaction, per dialect.
/// PostgreSQL: `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
/// — valid as the first statement of a transaction whatever level `BEGIN`
/// chose (the plugin's `isolation` setting), as long as no query ran
/// before it (the plugin's `begin` runs none, and `exec` is a simple query,
/// never described or prepared, so it takes no snapshot). Repeatable read
/// gives every later statement the snapshot of the first one, and read
/// only never conflicts with writers nor makes them wait. Other dialects
/// keep the backend's own transaction (SQLite's is serializable).
fn snapshot_statement(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Postgres => Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        _ => None,
    }
}
