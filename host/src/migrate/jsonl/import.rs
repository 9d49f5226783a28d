//! Loading an export into a backend: tables in transactions (one per table,
//! or one for all of them in a restore), collections by batched upserts.

use std::{
    io::{BufRead, Seek, SeekFrom},
    time::Instant,
};

use serde_json::Value as Json;
use strata_plugin_api::{ErrorKind, Value, placeholders::Dialect};

use crate::{
    error::Error,
    loader::Backend,
    migrate::{
        error::MigrateError,
        options::MigrateOptions,
        report::{ItemReport, Report},
        schema::{self, Kind, TableSchema, VectorStorage},
        table::{UnnestInsert, Upserts, max_params},
        values,
    },
    params::Params,
    progress::ItemKind,
    sql::{Sql, SqlRead, Transaction},
    vector::{Metric, Record, Vectors},
};

use super::{
    codec::{TableLine, io_err, parse_table_line, schema_from_json},
    lines::{
        BoundedLines, LineReader, Lines, Listed, TRAILER_PREFIX, Trailer, contents, format_of,
        missing_trailer,
    },
};

/// Loads an export into `backend`: each table in one transaction, each
/// collection by batched upserts. `file` names the input in errors; uses
/// `batch_size` and `progress` of `options`.
///
/// The file is first read whole to check it against its trailer
/// ([`contents`]): a file that is cut short, damaged or has no trailer
/// (format 1) is refused before anything is written. Then it is read
/// again from the start and loaded.
pub async fn import<R: BufRead + Seek>(
    backend: &Backend,
    input: &mut R,
    file: &str,
    options: &MigrateOptions,
) -> Result<Report, MigrateError> {
    let checked = contents(input, file)?;
    if let Ok(sql) = backend.sql() {
        schema::check_target_names(sql.dialect(), backend.name(), &checked.tables, None)?;
    }
    if !checked.verified {
        return Err(MigrateError::File {
            file: file.to_string(),
            message: "an export of format 1 has no trailer, so it cannot be checked whole before it is loaded: export it again with this strata".into(),
        });
    }
    input.seek(SeekFrom::Start(0)).map_err(io_err(file))?;
    import_with(backend, input, file, options, ImportMode::Merge).await
}

/// How [`import_with`] treats the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// `strata import`: each table in its own transaction, created when
    /// missing, rows upserted on the primary key; collections upserted.
    Merge,
    /// A restore: **every** table in one transaction (committed before the
    /// first collection, or at the end), each created anew — with
    /// `replace`, an existing table or collection of the same name is
    /// dropped first (inside the transaction, for tables); without it an
    /// existing one is an error — rows loaded by multi-row `INSERT`s. A
    /// failure rolls back every table.
    Restore {
        /// Drop existing tables and collections of the same names.
        replace: bool,
    },
}

/// [`import`] in the given [`ImportMode`].
pub async fn import_with(
    backend: &Backend,
    input: &mut dyn BufRead,
    file: &str,
    options: &MigrateOptions,
    mode: ImportMode,
) -> Result<Report, MigrateError> {
    let started = Instant::now();
    let mut report = Report::default();
    let bad = |n: usize, message: String| MigrateError::File {
        file: format!("{file}:{n}"),
        message,
    };
    let backend_err = |e: Error| MigrateError::Backend {
        backend: backend.name().into(),
        message: e.to_string(),
    };
    let mut reader = BoundedLines {
        reader: LineReader::new(input),
    };
    let Some(first) = reader.next() else {
        return Err(bad(1, "empty file".into()));
    };
    let format = format_of(first.map_err(io_err(file))?.as_bytes()).map_err(|m| bad(1, m))?;
    // Whether the trailer was read (the reader checked its line count
    // and SHA-256 against the bytes before it).
    let mut trailer_seen = false;
    let mut lines = reader.enumerate().map(|(i, l)| (i + 2, l));
    let mut vectors_storage = None;
    // Restore mode: the one transaction every table is loaded in.
    let mut restore_tx: Option<Transaction<'static>> = None;
    // Tables whose foreign keys are added once every table is loaded.
    let mut with_keys: Vec<TableSchema> = Vec::new();
    while let Some((n, l)) = lines.next() {
        let l = l.map_err(io_err(file))?;
        if l.trim().is_empty() {
            continue;
        }
        let doc: Json = serde_json::from_str(&l).map_err(|e| bad(n, e.to_string()))?;
        if l.as_bytes().starts_with(TRAILER_PREFIX) {
            let trailer = Trailer::parse(&doc)
                .ok_or_else(|| bad(n, "a malformed trailer".into()))?
                .0;
            trailer.check(&listed(&report)).map_err(|m| bad(n, m))?;
            trailer_seen = true;
            continue;
        }
        // Headers are recognised by the same byte prefix as in [`contents`]
        // (which decides what a restore would replace), so a crafted line
        // cannot be a header to one and not to the other.
        let (is_table, is_coll) = (
            l.starts_with("{\"table\":"),
            l.starts_with("{\"collection\":"),
        );
        if let Some(t) = doc.get("table").filter(|_| is_table) {
            let t = schema_from_json(t).ok_or_else(|| bad(n, "malformed table header".into()))?;
            // Internal tables (the vector catalogue, SQLite's own) are never
            // written from a file: `strata_collections` replaced by a
            // crafted backup would wipe the target's collections.
            if schema::is_internal(&t.name) {
                return Err(bad(
                    n,
                    format!(
                        "table `{}` has a reserved name (strata_* and sqlite_* are internal)",
                        t.name
                    ),
                ));
            }
            let sql = backend.sql().map_err(backend_err)?;
            let names: Vec<String> = listed(&report)
                .into_iter()
                .map(|l| l.name)
                .chain([t.name.clone()])
                .collect();
            schema::check_target_names(sql.dialect(), backend.name(), &names, Some(&t))?;
            let storage = match vectors_storage {
                Some(s) => s,
                None => {
                    let s = if sql.dialect() == Dialect::Postgres
                        && schema::pg_vector_available(&sql).await?
                    {
                        VectorStorage::PgVector
                    } else {
                        VectorStorage::Blob
                    };
                    vectors_storage = Some(s);
                    s
                }
            };
            let rep = match mode {
                ImportMode::Merge => {
                    import_table(&sql, &t, storage, &mut lines, file, options).await?
                }
                ImportMode::Restore { replace } => {
                    if restore_tx.is_none() {
                        restore_tx =
                            Some(sql.begin().await.map_err(|source| MigrateError::Table {
                                table: t.name.clone(),
                                backend: backend.name().into(),
                                source: Box::new(source),
                            })?);
                    }
                    let tx = restore_tx.as_ref().expect("begun above");
                    restore_table(tx, &t, storage, replace, &mut lines, file, options).await?
                }
            };
            report.tables.push(rep);
            if !t.foreign_keys.is_empty() {
                with_keys.push(t);
            }
        } else if let Some(c) = doc.get("collection").filter(|_| is_coll) {
            add_foreign_keys(&mut with_keys, &restore_tx, backend).await?;
            commit_restore(&mut restore_tx, backend).await?;
            let v = backend.vectors().map_err(backend_err)?;
            let replace = matches!(mode, ImportMode::Restore { replace: true });
            let rep = import_collection(&v, c, n, replace, &mut lines, file, options).await?;
            report.collections.push(rep);
        } else {
            return Err(bad(n, "expected a table or collection header".into()));
        }
    }
    // A file must end with its trailer; only restores of backups taken
    // before trailers existed (format 1, covered by their manifest's
    // SHA-256) go without.
    if !trailer_seen && (format >= 2 || mode == ImportMode::Merge) {
        let last = listed(&report).pop();
        return Err(bad(0, missing_trailer(last.as_ref())));
    }
    add_foreign_keys(&mut with_keys, &restore_tx, backend).await?;
    commit_restore(&mut restore_tx, backend).await?;
    report.duration = started.elapsed();
    Ok(report)
}

/// What `report` loaded, as a trailer lists it.
fn listed(report: &Report) -> Vec<Listed> {
    report
        .tables
        .iter()
        .map(|t| ("table", t))
        .chain(report.collections.iter().map(|c| ("collection", c)))
        .map(|(kind, i)| Listed {
            kind,
            name: i.name.clone(),
            rows: i.read,
        })
        .collect()
}

/// Adds the foreign keys of the tables in `pending` (emptied) that the
/// target lacks: inside the restore's transaction, else on the backend.
async fn add_foreign_keys(
    pending: &mut Vec<TableSchema>,
    restore_tx: &Option<Transaction<'static>>,
    backend: &Backend,
) -> Result<(), MigrateError> {
    for t in pending.drain(..) {
        let on = |source| MigrateError::Table {
            table: t.name.clone(),
            backend: backend.name().into(),
            source: Box::new(source),
        };
        match restore_tx {
            Some(tx) => {
                for stmt in schema::foreign_key_sql(tx, &t).await? {
                    tx.exec(&stmt).await.map_err(on)?;
                }
            }
            None => {
                let sql = backend.sql().map_err(|e| MigrateError::Backend {
                    backend: backend.name().into(),
                    message: e.to_string(),
                })?;
                for stmt in schema::foreign_key_sql(&sql, &t).await? {
                    sql.exec(&stmt).await.map_err(on)?;
                }
            }
        }
    }
    Ok(())
}

async fn commit_restore(
    tx: &mut Option<Transaction<'static>>,
    backend: &Backend,
) -> Result<(), MigrateError> {
    if let Some(tx) = tx.take() {
        tx.commit().await.map_err(|source| MigrateError::Table {
            table: "*".into(),
            backend: backend.name().into(),
            source: Box::new(source),
        })?;
    }
    Ok(())
}

async fn import_table(
    sql: &Sql,
    t: &TableSchema,
    storage: VectorStorage,
    lines: &mut Lines<'_>,
    file: &str,
    options: &MigrateOptions,
) -> Result<ItemReport, MigrateError> {
    let t0 = Instant::now();
    let mut rep = ItemReport::new(ItemKind::Table, &t.name);
    let on = |source| MigrateError::Table {
        table: t.name.clone(),
        backend: sql.backend().into(),
        source: Box::new(source),
    };
    // A missing table is created inside the transaction that loads it, so
    // a failure or a kill leaves no table at all, never an empty or partial
    // one; an existing table is merged into, and must have the key the
    // upserts name.
    let existed = schema::table_exists(sql, &t.name).await?;
    if existed && t.primary_key.is_empty() {
        return Err(MigrateError::Schema {
            table: t.name.clone(),
            backend: sql.backend().into(),
            message: "the table exists, and the file's table has no primary key, so its rows \
                      cannot be matched and importing would duplicate them; drop the table first"
                .into(),
        });
    }
    if existed {
        schema::require_unique_key(sql, &t.name, &t.primary_key).await?;
    }
    let tx = sql.begin().await.map_err(on)?;
    if !existed {
        tx.exec(&schema::create_table_sql(t, sql.dialect(), storage))
            .await
            .map_err(on)?;
    }
    // A keyless table is only ever created here: plain inserts. (Generated
    // columns are computed by a Postgres target, not written.)
    let writable = t.writable(sql.dialect());
    let tw = writable.as_ref().unwrap_or(t);
    let mut upserts = RowWriter::Values(if t.primary_key.is_empty() {
        Upserts::insert_only(tw)
    } else {
        Upserts::new(tw, sql.dialect())
    });
    load_rows(
        &tx,
        t,
        storage,
        &mut upserts,
        lines,
        file,
        options,
        &mut rep,
    )
    .await?;
    tx.commit().await.map_err(on)?;
    rep.skipped = rep.read - rep.written.min(rep.read);
    rep.duration = t0.elapsed();
    Ok(rep)
}

/// Restore mode: the table created anew in `tx` (dropped first with
/// `replace`), rows inserted.
async fn restore_table(
    tx: &Transaction<'static>,
    t: &TableSchema,
    storage: VectorStorage,
    replace: bool,
    lines: &mut Lines<'_>,
    file: &str,
    options: &MigrateOptions,
) -> Result<ItemReport, MigrateError> {
    let t0 = Instant::now();
    let mut rep = ItemReport::new(ItemKind::Table, &t.name);
    let on = |source| MigrateError::Table {
        table: t.name.clone(),
        backend: SqlRead::backend(tx).into(),
        source: Box::new(source),
    };
    let dialect = SqlRead::dialect(tx);
    if replace {
        tx.exec(&format!("DROP TABLE IF EXISTS {}", schema::quote(&t.name)))
            .await
            .map_err(on)?;
    }
    // Without IF NOT EXISTS: a table that appeared since the caller checked
    // is an error (rolling everything back), never a merge.
    let create = schema::create_table_sql(t, dialect, storage).replacen(
        "CREATE TABLE IF NOT EXISTS",
        "CREATE TABLE",
        1,
    );
    tx.exec(&create).await.map_err(on)?;
    // Postgres: arrays through unnest (any number of rows a statement);
    // others: multi-row VALUES under the parameter limit.
    // (Generated columns are computed by a Postgres target, not written.)
    let writable = t.writable(dialect);
    let tw = writable.as_ref().unwrap_or(t);
    let mut writer = if dialect == Dialect::Postgres && tx.has_bulk_write() {
        RowWriter::Bulk {
            columns: tw.columns.iter().map(|c| c.name.clone()).collect(),
            fallback: UnnestInsert::new(tw, storage),
        }
    } else if dialect == Dialect::Postgres {
        RowWriter::Unnest(UnnestInsert::new(tw, storage))
    } else {
        RowWriter::Values(Upserts::insert_only(tw))
    };
    load_rows(tx, t, storage, &mut writer, lines, file, options, &mut rep).await?;
    rep.duration = t0.elapsed();
    Ok(rep)
}

/// Input bytes of rows per statement at most (a batch also stops at its row count).
const BATCH_BYTES: usize = 16 << 20;

/// How rows become statements.
enum RowWriter {
    /// Multi-row `INSERT … VALUES` (upsert or plain), under the parameter limit.
    Values(Upserts),
    /// PostgreSQL `INSERT … SELECT * FROM unnest(arrays)`.
    Unnest(UnnestInsert),
    /// The plugin's bulk write inside the transaction (binary `COPY` on
    /// PostgreSQL, ~3× the rows per second of `unnest`, whose array
    /// literals the server parses element by element). A batch it refuses
    /// (`unsupported`: a column type it cannot encode; `invalid_input`: a
    /// value its binary form cannot take) is written by `fallback`, and so
    /// is the rest of the table: the plugin took back that batch's rows.
    Bulk {
        columns: Vec<String>,
        fallback: UnnestInsert,
    },
}

/// One batch of rows read from the file.
struct Batch {
    /// Row-major values of the written columns, converted for the target
    /// (vectors as little-endian `f32` bytes when `for_bulk`).
    values: Vec<Value>,
    for_bulk: bool,
    /// The batch's lines, kept while a bulk write may refuse them.
    raw: Vec<(usize, String)>,
    /// `Some(expected rows)` once the table's end line is read.
    end: Option<u64>,
}

/// Loads the rows of one table inside `tx` (rolled back by the caller on
/// any error), then fixes the identity sequence and creates the indexes.
#[allow(clippy::too_many_arguments)]
async fn load_rows(
    tx: &Transaction<'static>,
    t: &TableSchema,
    storage: VectorStorage,
    writer: &mut RowWriter,
    lines: &mut Lines<'_>,
    file: &str,
    options: &MigrateOptions,
    rep: &mut ItemReport,
) -> Result<(), MigrateError> {
    let dialect = SqlRead::dialect(tx);
    let on = |source| MigrateError::Table {
        table: t.name.clone(),
        backend: SqlRead::backend(tx).into(),
        source: Box::new(source),
    };
    let bad = |n: usize, message: String| MigrateError::File {
        file: format!("{file}:{n}"),
        message: format!("table `{}`: {message}", t.name),
    };
    let kinds: Vec<Kind> = t.columns.iter().map(|c| c.kind).collect();
    // A row holds every column; the statements write the columns of
    // `writable` (a Postgres target computes generated ones).
    let written: Vec<bool> = match t.writable(dialect) {
        None => vec![true; kinds.len()],
        Some(_) => t.columns.iter().map(|c| c.generated.is_none()).collect(),
    };
    let row_width = kinds.len();
    let width = written.iter().filter(|w| **w).count();
    let per_stmt = match writer {
        RowWriter::Values(_) => (max_params(dialect) / width.max(1)).clamp(1, options.batch_size),
        RowWriter::Unnest(_) | RowWriter::Bulk { .. } => options.batch_size.max(1),
    };
    // One row's values, converted for the target (vectors as bytes for a
    // bulk write, which encodes them itself, else as `storage` takes them).
    let convert = |n: usize, row: Vec<Value>, for_bulk: bool, out: &mut Vec<Value>| {
        if row.len() != row_width {
            return Err(bad(
                n,
                format!(
                    "row has {} values, the table {} columns",
                    row.len(),
                    row_width
                ),
            ));
        }
        let storage = if for_bulk {
            VectorStorage::Blob
        } else {
            storage
        };
        for (i, v) in row.into_iter().enumerate() {
            if !written[i] {
                continue;
            }
            let v = values::to_target(v, kinds[i], storage)
                .map_err(|m| bad(n, format!("column `{}`: {m}", t.columns[i].name)))?;
            out.push(v);
        }
        Ok(())
    };
    // A batch read again from its kept lines, for the `INSERT` path.
    let reconvert = |batch: &mut Batch| -> Result<(), MigrateError> {
        let mut values = Vec::with_capacity(batch.values.len());
        for (n, l) in &batch.raw {
            if let TableLine::Row(row) = parse_table_line(l).map_err(|e| bad(*n, e))? {
                convert(*n, row, false, &mut values)?;
            }
        }
        batch.values = values;
        batch.for_bulk = false;
        Ok(())
    };
    // Up to `per_stmt` rows; ends early at the table's end line.
    let read_batch = |lines: &mut Lines<'_>, for_bulk: bool| -> Result<Batch, MigrateError> {
        let mut batch = Batch {
            values: Vec::with_capacity(per_stmt * width),
            for_bulk,
            raw: Vec::new(),
            end: None,
        };
        // Also bounded in bytes, so wide rows (embeddings) keep statements small.
        let mut bytes = 0usize;
        while batch.values.len() < per_stmt * width && bytes < BATCH_BYTES {
            let Some((n, l)) = lines.next() else {
                return Err(bad(0, "the file ends before the table's end line".into()));
            };
            let l = l.map_err(io_err(file))?;
            bytes += l.len();
            match parse_table_line(&l).map_err(|e| bad(n, e))? {
                TableLine::Row(row) => {
                    convert(n, row, for_bulk, &mut batch.values)?;
                    if for_bulk {
                        batch.raw.push((n, l));
                    }
                }
                TableLine::End(end) => {
                    batch.end = Some(end.get("rows").and_then(Json::as_u64).unwrap_or(u64::MAX));
                    return Ok(batch);
                }
            }
        }
        Ok(batch)
    };
    // Each write runs while the next batch is parsed (the plugin works on
    // its own runtime once the write is sent).
    let mut batch = read_batch(lines, matches!(writer, RowWriter::Bulk { .. }))?;
    let expected = loop {
        let rows = batch.values.len() / width.max(1);
        rep.read += rows as u64;
        if rows == 0 {
            match batch.end {
                Some(e) => break e,
                // (A batch without rows always ends the table; read on regardless.)
                None => {
                    batch = read_batch(lines, matches!(writer, RowWriter::Bulk { .. }))?;
                    continue;
                }
            }
        }
        let bulk = matches!(writer, RowWriter::Bulk { .. });
        if batch.for_bulk && !bulk {
            // Read while the bulk path was still in use.
            reconvert(&mut batch)?;
        }
        let values = std::mem::take(&mut batch.values);
        let write = async {
            match &mut *writer {
                RowWriter::Values(u) => {
                    let sql_text = u.sql(rows).to_string();
                    tx.run(&sql_text, Params::Positional(values))
                        .await
                        .map(|r| Ok(r.changes))
                }
                RowWriter::Unnest(u) => tx
                    .run(u.sql(), Params::Positional(u.params(&values, width)))
                    .await
                    .map(|r| Ok(r.changes)),
                RowWriter::Bulk { columns, .. } => {
                    match tx.bulk_write(&t.name, columns, &[], values, None).await {
                        Ok(n) => Ok(Ok(n)),
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::Unsupported | ErrorKind::InvalidInput
                            ) =>
                        {
                            Ok(Err(e))
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        };
        let (out, next) = match batch.end {
            Some(_) => (write.await, None),
            None => {
                let (out, next) =
                    futures_util::future::join(write, async { read_batch(&mut *lines, bulk) })
                        .await;
                (out, Some(next))
            }
        };
        match out.map_err(on)? {
            Ok(n) => rep.written += n,
            Err(refused) => {
                // The bulk path took back this batch: it and the rest of
                // the table go through `INSERT … SELECT … unnest`.
                let RowWriter::Bulk { fallback, .. } =
                    std::mem::replace(writer, RowWriter::Values(Upserts::insert_only(t)))
                else {
                    unreachable!("only a bulk write is refused")
                };
                tracing::info!(table = %t.name, "bulk write refused, loading with INSERTs: {refused}");
                reconvert(&mut batch)?;
                rep.written += tx
                    .run(
                        fallback.sql(),
                        Params::Positional(fallback.params(&batch.values, width)),
                    )
                    .await
                    .map_err(on)?
                    .changes;
                *writer = RowWriter::Unnest(fallback);
            }
        }
        match next {
            None => break batch.end.unwrap_or(u64::MAX),
            Some(next) => {
                options.copied(ItemKind::Table, &t.name, rep.read);
                batch = next?;
            }
        }
    };
    if expected != rep.read {
        return Err(bad(
            0,
            format!("the end line says {expected} rows, {} were read", rep.read),
        ));
    }
    if t.auto_key && dialect == Dialect::Postgres {
        let key = schema::quote(&t.primary_key[0]);
        tx.get(
            &format!(
                "SELECT setval(pg_get_serial_sequence(?, ?), coalesce((SELECT max({key}) FROM {}), 0) + 1, false) AS v",
                schema::quote(&t.name)
            ),
            [schema::quote(&t.name), t.primary_key[0].clone()],
        )
        .await
        .map_err(on)?;
    }
    for stmt in schema::create_index_sql(t) {
        tx.exec(&stmt).await.map_err(on)?;
    }
    Ok(())
}

async fn import_collection(
    v: &Vectors,
    header: &Json,
    header_line: usize,
    replace: bool,
    lines: &mut Lines<'_>,
    file: &str,
    options: &MigrateOptions,
) -> Result<ItemReport, MigrateError> {
    let t0 = Instant::now();
    let bad = |n: usize, message: String| MigrateError::File {
        file: format!("{file}:{n}"),
        message,
    };
    let (name, dim, metric) = (|| {
        Some((
            header.get("name")?.as_str()?.to_string(),
            u32::try_from(header.get("dimension")?.as_u64()?).ok()?,
            Metric::from_name(header.get("metric")?.as_str()?)?,
        ))
    })()
    .ok_or_else(|| bad(header_line, "malformed collection header".into()))?;
    if replace {
        v.drop_collection(&name)
            .await
            .map_err(|e| MigrateError::collection(v, &name, e))?;
    }
    v.create_collection(&name, dim, metric)
        .await
        .map_err(|e| MigrateError::collection(v, &name, e))?;
    let mut rep = ItemReport::new(ItemKind::Collection, &name);
    let mut batch = Vec::new();
    loop {
        let Some((n, l)) = lines.next() else {
            return Err(bad(
                0,
                format!("collection `{name}`: the file ends before its end line"),
            ));
        };
        let doc: Json =
            serde_json::from_str(&l.map_err(io_err(file))?).map_err(|e| bad(n, e.to_string()))?;
        if let Some(r) = doc.get("record") {
            let rec = (|| {
                Some(Record {
                    id: r.get("id")?.as_str()?.to_string(),
                    vector: r
                        .get("vector")?
                        .as_array()?
                        .iter()
                        .map(|x| x.as_f64().map(|f| f as f32))
                        .collect::<Option<_>>()?,
                    metadata: r.get("metadata").cloned().unwrap_or(Json::Null),
                    text: r.get("text").and_then(Json::as_str).map(str::to_string),
                })
            })()
            .ok_or_else(|| bad(n, "malformed record".into()))?;
            batch.push(rec);
            rep.read += 1;
            if batch.len() >= options.batch_size {
                rep.written += v
                    .upsert(&name, std::mem::take(&mut batch))
                    .await
                    .map_err(|e| MigrateError::collection(v, &name, e))?;
                options.copied(ItemKind::Collection, &name, rep.read);
            }
        } else if doc.get("end").is_some() {
            break;
        } else {
            return Err(bad(
                n,
                "expected a record or the collection's end line".into(),
            ));
        }
    }
    if !batch.is_empty() {
        rep.written += v
            .upsert(&name, batch)
            .await
            .map_err(|e| MigrateError::collection(v, &name, e))?;
    }
    rep.duration = t0.elapsed();
    Ok(rep)
}
