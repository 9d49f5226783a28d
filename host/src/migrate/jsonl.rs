//! Export to and import from JSON Lines, streamed (one page in memory).
//!
//! The format, one JSON document per line:
//!
//! ```text
//! {"strata_export":1,"source":"local","dialect":"sqlite"}
//! {"table":{"name":"notes","columns":[{"name":"id","kind":"integer","not_null":true},…],
//!           "primary_key":["id"],"auto_key":true,"indexes":[{"name":"…","unique":false,"columns":["…"]}]}}
//! {"row":[1,"hello",{"b64":"AAEC"},2.5,null]}
//! {"end":{"table":"notes","rows":1}}
//! {"collection":{"name":"memories","dimension":3,"metric":"cosine"}}
//! {"record":{"id":"m1","vector":[0.1,0.2,0.3],"metadata":{"kind":"fact"},"text":"…"}}
//! {"end":{"collection":"memories","rows":1}}
//! ```
//!
//! Row values are in column order: integers as JSON integers, reals as JSON
//! numbers (always with a fraction or exponent, so `1.0` stays real;
//! non-finite reals as `{"f":"NaN"}`), text as strings, blobs as
//! `{"b64":"…"}` (standard base64 with padding), NULL as `null`. Vector
//! columns are exported as blobs of little-endian `f32`s whatever the source
//! stores. Import creates each table (types translated for the target as in
//! [`super::schema`]) and loads it in **one transaction**, committed at the
//! table's `end` line after checking its row count: a failure rolls the
//! whole table back, leaving the target clean. Collections are upserted in
//! batches (the vector contract has no transactions).

use std::{
    io::{BufRead, Write},
    time::Instant,
};

use base64::{Engine as _, engine::general_purpose::STANDARD_PAD_INDIFFERENT as BASE64};
use serde_json::{Value as Json, json};

use crate::{Include, Params, Record, Sql, SqlRead, Transaction, Value, Vectors, loader::Backend};

use super::{
    ItemKind, ItemReport, MigrateError, MigrateOptions, Phase, Progress, Report,
    schema::{self, Column, Index, Kind, TableSchema, VectorStorage},
    table::{Pager, UnnestInsert, Upserts, max_params},
    values,
};

/// Standard base64 with padding (what exports write; decoding also takes
/// unpadded input).
pub fn base64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes [`base64_encode`]; `None` on malformed input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    BASE64.decode(s).ok()
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(r) => match serde_json::Number::from_f64(*r) {
            Some(n) => Json::Number(n),
            None => json!({ "f": r.to_string() }),
        },
        Value::Text(t) => Json::String(t.to_string()),
        Value::Blob(b) => json!({ "b64": base64_encode(b) }),
    }
}

/// Appends `{"row":[…]}` and a newline for one row: the bytes
/// `serde_json::to_writer(&json!({"row": values.map(value_json)}))` writes,
/// without building the JSON tree (the hot loop of exports and logical
/// backups). Vector columns are written as little-endian `f32` blobs.
fn row_line(buf: &mut Vec<u8>, values: &[Value], columns: &[Column]) {
    buf.extend_from_slice(b"{\"row\":[");
    for (i, (v, c)) in values.iter().zip(columns).enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        match (c.kind, v) {
            (Kind::Vector(_), Value::Blob(_) | Value::Text(_)) => match values::vector_of(v) {
                Some(f) => write_value(buf, &Value::from(values::f32_to_blob(&f))),
                None => write_value(buf, v),
            },
            _ => write_value(buf, v),
        }
    }
    buf.extend_from_slice(b"]}\n");
}

fn write_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Integer(i) => {
            let _ = write!(buf, "{i}");
        }
        Value::Real(r) if r.is_finite() => {
            let _ = serde_json::to_writer(&mut *buf, r);
        }
        Value::Text(t) => {
            let _ = serde_json::to_writer(&mut *buf, t.as_str());
        }
        _ => {
            let _ = serde_json::to_writer(&mut *buf, &value_json(v));
        }
    }
}

fn json_value(j: &Json) -> Option<Value> {
    Some(match j {
        Json::Null => Value::Null,
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Integer(i),
            _ => Value::Real(n.as_f64()?),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Object(m) => {
            if let Some(b) = m.get("b64") {
                Value::Blob(base64_decode(b.as_str()?)?.into())
            } else {
                Value::Real(m.get("f")?.as_str()?.parse().ok()?)
            }
        }
        _ => return None,
    })
}

fn schema_json(t: &TableSchema) -> Json {
    json!({
        "name": t.name,
        "columns": t.columns.iter().map(|c| json!({
            "name": c.name, "kind": c.kind.name(), "not_null": c.not_null,
        })).collect::<Vec<_>>(),
        "primary_key": t.primary_key,
        "auto_key": t.auto_key,
        "indexes": t.indexes.iter().map(|i| json!({
            "name": i.name, "unique": i.unique, "columns": i.columns,
        })).collect::<Vec<_>>(),
    })
}

fn schema_from_json(j: &Json) -> Option<TableSchema> {
    let strings = |v: &Json| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    Some(TableSchema {
        name: j.get("name")?.as_str()?.to_string(),
        columns: j
            .get("columns")?
            .as_array()?
            .iter()
            .map(|c| {
                let kind = c.get("kind")?.as_str()?;
                Some(Column {
                    name: c.get("name")?.as_str()?.to_string(),
                    kind: Kind::from_name(kind)?,
                    not_null: c.get("not_null")?.as_bool()?,
                    declared: kind.to_string(),
                })
            })
            .collect::<Option<_>>()?,
        primary_key: strings(j.get("primary_key")?)?,
        auto_key: j.get("auto_key")?.as_bool()?,
        indexes: j
            .get("indexes")?
            .as_array()?
            .iter()
            .map(|i| {
                Some(Index {
                    name: i.get("name")?.as_str()?.to_string(),
                    unique: i.get("unique")?.as_bool()?,
                    columns: strings(i.get("columns")?)?,
                })
            })
            .collect::<Option<_>>()?,
    })
}

fn io_err(file: &str) -> impl Fn(std::io::Error) -> MigrateError {
    let file = file.to_string();
    move |e| MigrateError::File {
        file: file.clone(),
        message: e.to_string(),
    }
}

fn line(out: &mut dyn Write, file: &str, doc: &Json) -> Result<(), MigrateError> {
    serde_json::to_writer(&mut *out, doc).map_err(|e| MigrateError::File {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    out.write_all(b"\n").map_err(io_err(file))
}

/// Writes every selected table and collection of `backend` to `out`
/// (`file` names it in errors). Uses `tables`, `collections`,
/// `batch_size`, `detect_vectors` and `progress` of `options`. Each table
/// is paged by its own statements; [`crate::backup`] writes the same format
/// with every table read inside one transaction instead.
pub async fn export(
    backend: &Backend,
    out: &mut dyn Write,
    file: &str,
    options: &MigrateOptions,
) -> Result<Report, MigrateError> {
    let started = Instant::now();
    let mut report = Report::default();
    let sql = backend.sql().ok();
    write_header(
        out,
        file,
        backend.name(),
        sql.as_ref().map(|s| s.dialect().name()),
    )?;
    if let Some(sql) = &sql {
        export_tables(sql, out, file, options, &mut report).await?;
    }
    let wants = options.collections.as_ref().is_none_or(|c| !c.is_empty());
    if let (true, Ok(v)) = (wants, backend.vectors()) {
        export_collections(&v, out, file, options, &mut report).await?;
    }
    out.flush().map_err(io_err(file))?;
    report.duration = started.elapsed();
    Ok(report)
}

/// The first line of an export.
pub(crate) fn write_header(
    out: &mut dyn Write,
    file: &str,
    source: &str,
    dialect: Option<&str>,
) -> Result<(), MigrateError> {
    line(
        out,
        file,
        &json!({ "strata_export": 1, "source": source, "dialect": dialect }),
    )
}

/// Writes the selected tables (`options.tables`, else every user table)
/// read through `sql`: the backend itself, or a transaction, in which case
/// the catalogue and every page are read in that transaction's snapshot.
pub(crate) async fn export_tables(
    sql: &impl SqlRead,
    out: &mut dyn Write,
    file: &str,
    options: &MigrateOptions,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let names = match &options.tables {
        Some(l) => l.clone(),
        None => schema::list_tables(sql, &mut report.warnings).await?,
    };
    for name in &names {
        let t0 = Instant::now();
        let t = schema::read_table(sql, name, options.detect_vectors, &mut report.warnings).await?;
        line(out, file, &json!({ "table": schema_json(&t) }))?;
        let pager = Pager::new(&t, options.batch_size);
        let mut rep = ItemReport::new(ItemKind::Table, name);
        let err = |source| MigrateError::Table {
            table: name.clone(),
            backend: sql.backend().into(),
            source: Box::new(source),
        };
        // Each page is written while the next one is read.
        let mut rows = pager.page(sql, None).await.map_err(err)?;
        while let Some(last) = rows.last() {
            let key = pager.key(last);
            let write = |out: &mut dyn Write| -> Result<(), MigrateError> {
                let mut buf = Vec::with_capacity(64 * 1024);
                for row in &rows {
                    row_line(&mut buf, row.values(), &t.columns);
                    if buf.len() >= 60 * 1024 {
                        out.write_all(&buf).map_err(io_err(file))?;
                        buf.clear();
                    }
                }
                out.write_all(&buf).map_err(io_err(file))
            };
            let (next, written) =
                futures_util::future::join(pager.page(sql, Some(key)), async { write(&mut *out) })
                    .await;
            written?;
            rep.read += rows.len() as u64;
            progress(options, ItemKind::Table, name, rep.read);
            rows = next.map_err(err)?;
        }
        line(
            out,
            file,
            &json!({ "end": { "table": name, "rows": rep.read } }),
        )?;
        rep.written = rep.read;
        rep.duration = t0.elapsed();
        report.tables.push(rep);
    }
    Ok(())
}

/// Writes the selected collections (`options.collections`, else every
/// one) through the vector contract's scan cursor.
pub(crate) async fn export_collections(
    v: &Vectors,
    out: &mut dyn Write,
    file: &str,
    options: &MigrateOptions,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let names = match &options.collections {
        Some(l) => l.clone(),
        None => v
            .list()
            .await
            .map_err(|e| coll_err(v, "*", e))?
            .into_iter()
            .map(|c| c.name)
            .collect(),
    };
    for name in &names {
        let t0 = Instant::now();
        let stats = v
            .stats(name)
            .await
            .map_err(|e| coll_err(v, name, e))?
            .ok_or_else(|| MigrateError::Backend {
                backend: v.backend().into(),
                message: format!("no collection named `{name}`"),
            })?;
        line(
            out,
            file,
            &json!({ "collection": {
                "name": name, "dimension": stats.dimension, "metric": stats.metric.name(),
            }}),
        )?;
        let mut rep = ItemReport::new(ItemKind::Collection, name);
        let mut cursor: Option<String> = None;
        loop {
            let page = v
                .scan(
                    name,
                    cursor.as_deref(),
                    options.batch_size as u32,
                    None,
                    Include::ALL,
                )
                .await
                .map_err(|e| coll_err(v, name, e))?;
            for h in &page.records {
                line(
                    out,
                    file,
                    &json!({ "record": {
                        "id": h.id, "vector": h.vector, "metadata": h.metadata, "text": h.text,
                    }}),
                )?;
            }
            rep.read += page.records.len() as u64;
            progress(options, ItemKind::Collection, name, rep.read);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        line(
            out,
            file,
            &json!({ "end": { "collection": name, "rows": rep.read } }),
        )?;
        rep.written = rep.read;
        rep.duration = t0.elapsed();
        report.collections.push(rep);
    }
    Ok(())
}

fn progress(options: &MigrateOptions, kind: ItemKind, name: &str, done: u64) {
    options.report(Progress {
        kind,
        name: name.to_string(),
        phase: Phase::Copy,
        done,
        total: None,
    });
}

fn coll_err(v: &Vectors, name: &str, source: crate::Error) -> MigrateError {
    MigrateError::Collection {
        collection: name.to_string(),
        backend: v.backend().to_string(),
        source: Box::new(source),
    }
}

/// Loads an export into `backend`: each table in one transaction, each
/// collection by batched upserts. `file` names the input in errors; uses
/// `batch_size` and `progress` of `options`.
pub async fn import(
    backend: &Backend,
    input: &mut dyn BufRead,
    file: &str,
    options: &MigrateOptions,
) -> Result<Report, MigrateError> {
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

/// The tables and collections an export holds, in order, read from the
/// header lines only (rows are skipped unparsed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// Table names.
    pub tables: Vec<String>,
    /// Collection names.
    pub collections: Vec<String>,
}

/// The longest line an export may hold (a row or a record with its
/// vector, metadata and text). A longer one is a corrupt or foreign file,
/// reported as such instead of being read into memory whole.
pub const MAX_LINE: usize = 256 << 20;

/// Reads one line (with its `\n`) into `buf`, at most `max` bytes;
/// `Ok(false)` at the end of the input.
fn read_line_bounded(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    buf.clear();
    let n = std::io::Read::take(&mut *input, max as u64 + 1).read_until(b'\n', buf)?;
    if n > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {max} bytes (the limit of an export line)"),
        ));
    }
    Ok(n > 0)
}

/// `BufRead::lines` with [`MAX_LINE`] (and the same end-of-line handling).
struct BoundedLines<'a> {
    input: &'a mut dyn BufRead,
    buf: Vec<u8>,
    max: usize,
}

impl Iterator for BoundedLines<'_> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        match read_line_bounded(self.input, &mut self.buf, self.max) {
            Ok(false) => None,
            Err(e) => Some(Err(e)),
            Ok(true) => {
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Some(String::from_utf8(line).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                }))
            }
        }
    }
}

/// Lists what an export holds without loading it.
pub fn contents(input: &mut dyn BufRead, file: &str) -> Result<Contents, MigrateError> {
    let bad = |n: usize, message: String| MigrateError::File {
        file: format!("{file}:{n}"),
        message,
    };
    let mut out = Contents::default();
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        if !read_line_bounded(input, &mut buf, MAX_LINE).map_err(io_err(file))? {
            break;
        }
        n += 1;
        if n == 1 {
            let first: Json = serde_json::from_slice(&buf).map_err(|e| bad(1, e.to_string()))?;
            if first.get("strata_export").and_then(Json::as_i64) != Some(1) {
                return Err(bad(1, "not a strata export".into()));
            }
            continue;
        }
        let (is_table, is_coll) = (
            buf.starts_with(b"{\"table\":"),
            buf.starts_with(b"{\"collection\":"),
        );
        if !(is_table || is_coll) {
            continue;
        }
        let doc: Json = serde_json::from_slice(&buf).map_err(|e| bad(n, e.to_string()))?;
        let name = doc
            .get(if is_table { "table" } else { "collection" })
            .and_then(|h| h.get("name"))
            .and_then(Json::as_str)
            .ok_or_else(|| bad(n, "a header without a name".into()))?;
        if is_table {
            out.tables.push(name.to_string());
        } else {
            out.collections.push(name.to_string());
        }
    }
    if n == 0 {
        return Err(bad(1, "empty file".into()));
    }
    Ok(out)
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
    let backend_err = |e: crate::Error| MigrateError::Backend {
        backend: backend.name().into(),
        message: e.to_string(),
    };
    let mut lines = BoundedLines {
        input,
        buf: Vec::new(),
        max: MAX_LINE,
    }
    .enumerate()
    .map(|(i, l)| (i + 1, l));
    let Some((_, first)) = lines.next() else {
        return Err(bad(1, "empty file".into()));
    };
    let first: Json =
        serde_json::from_str(&first.map_err(io_err(file))?).map_err(|e| bad(1, e.to_string()))?;
    if first.get("strata_export").and_then(Json::as_i64) != Some(1) {
        return Err(bad(
            1,
            "not a strata export (expected a {\"strata_export\":1,…} header)".into(),
        ));
    }
    let mut vectors_storage = None;
    // Restore mode: the one transaction every table is loaded in.
    let mut restore_tx: Option<Transaction<'static>> = None;
    while let Some((n, l)) = lines.next() {
        let l = l.map_err(io_err(file))?;
        if l.trim().is_empty() {
            continue;
        }
        let doc: Json = serde_json::from_str(&l).map_err(|e| bad(n, e.to_string()))?;
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
            let storage = match vectors_storage {
                Some(s) => s,
                None => {
                    let s = if sql.dialect() == crate::Dialect::Postgres
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
        } else if let Some(c) = doc.get("collection").filter(|_| is_coll) {
            commit_restore(&mut restore_tx, backend).await?;
            let v = backend.vectors().map_err(backend_err)?;
            let replace = matches!(mode, ImportMode::Restore { replace: true });
            let rep = import_collection(&v, c, n, replace, &mut lines, file, options).await?;
            report.collections.push(rep);
        } else {
            return Err(bad(n, "expected a table or collection header".into()));
        }
    }
    commit_restore(&mut restore_tx, backend).await?;
    report.duration = started.elapsed();
    Ok(report)
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

type Lines<'a> = dyn Iterator<Item = (usize, std::io::Result<String>)> + 'a;

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
    // The table is created first, committed, so that a table that already
    // exists is merged into rather than replaced; a failed load drops it
    // again when this import created it.
    let existed = schema::table_exists(sql, &t.name).await?;
    sql.exec(&schema::create_table_sql(t, sql.dialect(), storage))
        .await
        .map_err(on)?;
    let result = async {
        let tx = sql.begin().await.map_err(on)?;
        let mut upserts = RowWriter::Values(Upserts::new(t, sql.dialect()));
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
        tx.commit().await.map_err(on)
    }
    .await;
    if let Err(e) = result {
        if !existed {
            let _ = sql
                .exec(&format!("DROP TABLE IF EXISTS {}", schema::quote(&t.name)))
                .await;
        }
        return Err(e);
    }
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
    let mut writer = if dialect == crate::Dialect::Postgres {
        RowWriter::Unnest(UnnestInsert::new(t, storage))
    } else {
        RowWriter::Values(Upserts::insert_only(t))
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
    let width = kinds.len();
    let per_stmt = match writer {
        RowWriter::Values(_) => (max_params(dialect) / width.max(1)).clamp(1, options.batch_size),
        RowWriter::Unnest(_) => options.batch_size.max(1),
    };
    // Up to `per_stmt` rows converted for the target; `Some(expected rows)`
    // once the table's end line is read.
    let read_batch = |lines: &mut Lines<'_>| -> Result<(Vec<Value>, Option<u64>), MigrateError> {
        let mut pending = Vec::with_capacity(per_stmt * width);
        // Also bounded in bytes, so wide rows (embeddings) keep statements small.
        let mut bytes = 0usize;
        while pending.len() < per_stmt * width && bytes < BATCH_BYTES {
            let Some((n, l)) = lines.next() else {
                return Err(bad(0, "the file ends before the table's end line".into()));
            };
            let l = l.map_err(io_err(file))?;
            bytes += l.len();
            let doc: Json = serde_json::from_str(&l).map_err(|e| bad(n, e.to_string()))?;
            if let Some(row) = doc.get("row").and_then(Json::as_array) {
                if row.len() != width {
                    return Err(bad(
                        n,
                        format!("row has {} values, the table {} columns", row.len(), width),
                    ));
                }
                for (i, v) in row.iter().enumerate() {
                    let v = json_value(v).ok_or_else(|| bad(n, format!("unreadable value {v}")))?;
                    let v = values::to_target(v, kinds[i], storage)
                        .map_err(|m| bad(n, format!("column `{}`: {m}", t.columns[i].name)))?;
                    pending.push(v);
                }
            } else if let Some(end) = doc.get("end") {
                let expected = end.get("rows").and_then(Json::as_u64).unwrap_or(u64::MAX);
                return Ok((pending, Some(expected)));
            } else {
                return Err(bad(n, "expected a row or the table's end line".into()));
            }
        }
        Ok((pending, None))
    };
    // Each statement runs while the next batch is parsed (the plugin works
    // on its own runtime once the statement is sent).
    let (mut pending, mut end) = read_batch(lines)?;
    let expected = loop {
        let rows = pending.len() / width.max(1);
        rep.read += rows as u64;
        if rows == 0 {
            match end {
                Some(e) => break e,
                // (A batch without rows always ends the table; read on regardless.)
                None => {
                    (pending, end) = read_batch(lines)?;
                    continue;
                }
            }
        }
        let (sql_text, params) = match writer {
            RowWriter::Values(u) => (u.sql(rows).to_string(), std::mem::take(&mut pending)),
            RowWriter::Unnest(u) => (u.sql().to_string(), u.params(&pending, width)),
        };
        let run = tx.run(&sql_text, Params::Positional(params));
        if let Some(e) = end {
            rep.written += run.await.map_err(on)?.changes;
            break e;
        }
        let (out, next) = futures_util::future::join(run, async { read_batch(&mut *lines) }).await;
        rep.written += out.map_err(on)?.changes;
        progress(options, ItemKind::Table, &t.name, rep.read);
        (pending, end) = next?;
    };
    if expected != rep.read {
        return Err(bad(
            0,
            format!("the end line says {expected} rows, {} were read", rep.read),
        ));
    }
    if t.auto_key && dialect == crate::Dialect::Postgres {
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
            crate::Metric::from_name(header.get("metric")?.as_str()?)?,
        ))
    })()
    .ok_or_else(|| bad(header_line, "malformed collection header".into()))?;
    if replace {
        v.drop_collection(&name)
            .await
            .map_err(|e| coll_err(v, &name, e))?;
    }
    v.create_collection(&name, dim, metric)
        .await
        .map_err(|e| coll_err(v, &name, e))?;
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
                    .map_err(|e| coll_err(v, &name, e))?;
                progress(options, ItemKind::Collection, &name, rep.read);
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
            .map_err(|e| coll_err(v, &name, e))?;
    }
    rep.duration = t0.elapsed();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for n in 0..20u8 {
            let b: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&b)).unwrap(), b);
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn row_lines_are_what_the_json_tree_writes() {
        let col = |kind| Column {
            name: "c".into(),
            kind,
            not_null: false,
            declared: String::new(),
        };
        let columns = [
            col(Kind::Integer),
            col(Kind::Real),
            col(Kind::Real),
            col(Kind::Real),
            col(Kind::Text),
            col(Kind::Blob),
            col(Kind::Json),
            col(Kind::Vector(2)),
            col(Kind::Vector(2)),
            col(Kind::Integer),
        ];
        let values = [
            Value::Integer(i64::MIN),
            Value::Real(1.0),
            Value::Real(-1e-300),
            Value::Real(f64::NAN),
            Value::from("quote \" back \\ ctl \u{1} ünï ✓"),
            Value::from(vec![0u8, 255, 7]),
            Value::from(r#"{"a": [1, 2.5]}"#),
            Value::from("[1.5,-2]"),
            Value::from(values::f32_to_blob(&[0.25, 3.0])),
            Value::Null,
        ];
        let mut fast = Vec::new();
        row_line(&mut fast, &values, &columns);
        let vals: Vec<Json> = values
            .iter()
            .zip(&columns)
            .map(|(v, c)| match c.kind {
                Kind::Vector(_) => value_json(&Value::from(values::f32_to_blob(
                    &values::vector_of(v).unwrap(),
                ))),
                _ => value_json(v),
            })
            .collect();
        let mut tree = serde_json::to_vec(&json!({ "row": vals })).unwrap();
        tree.push(b'\n');
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(tree).unwrap()
        );
    }

    #[test]
    fn values_round_trip() {
        for v in [
            Value::Null,
            Value::Integer(-7),
            Value::Real(1.0),
            Value::Real(f64::NAN),
            Value::from("x"),
            Value::from(vec![1u8, 2]),
        ] {
            let back = json_value(&value_json(&v)).unwrap();
            match (&v, &back) {
                (Value::Real(a), Value::Real(b)) if a.is_nan() => assert!(b.is_nan()),
                _ => assert_eq!(back, v),
            }
        }
    }
}

#[cfg(test)]
mod bounded_lines {
    use super::*;

    fn lines(text: &[u8], max: usize) -> Vec<Result<String, String>> {
        let mut input = std::io::BufReader::with_capacity(4, text);
        BoundedLines {
            input: &mut input,
            buf: Vec::new(),
            max,
        }
        .map(|l| l.map_err(|e| e.to_string()))
        .collect()
    }

    #[test]
    fn ends_of_lines_as_bufread_lines() {
        assert_eq!(
            lines(b"a\r\nbb\n\nlast", 10),
            vec![
                Ok("a".to_string()),
                Ok("bb".to_string()),
                Ok(String::new()),
                Ok("last".to_string())
            ]
        );
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn a_line_past_the_limit_is_an_error_not_a_read() {
        let got = lines(b"0123456789\n0123456789X\nnext\n", 11);
        assert_eq!(got[0], Ok("0123456789".to_string()));
        let e = got[1].as_ref().unwrap_err();
        assert!(e.contains("longer than 11 bytes"), "{e}");
        // Exactly the limit (newline included) is fine; invalid UTF-8 is an error.
        assert_eq!(lines(b"0123456789\n", 11).len(), 1);
        assert!(lines(b"\xff\xfe\n", 11)[0].is_err());
    }
}
