//! Writing an export: the header, then every table paged by its primary
//! key, then every collection through the vector contract's scan.

use std::{io::Write, path::Path, time::Instant};

use serde_json::json;

use crate::{
    loader::Backend,
    migrate::{
        error::MigrateError,
        options::MigrateOptions,
        report::{ItemReport, Report},
        schema,
        table::Pager,
    },
    progress::ItemKind,
    sql::SqlRead,
    vector::{Include, Vectors},
};

use sha2::{Digest, Sha256};

use super::{
    codec::{io_err, line, row_line, schema_json},
    lines::{FORMAT, Listed, Trailer},
};

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
    let mut out = ExportWriter::new(out);
    write_header(
        &mut out,
        file,
        backend.name(),
        sql.as_ref().map(|s| s.dialect().name()),
    )?;
    if let Some(sql) = &sql {
        export_tables(sql, &mut out, file, options, &mut report).await?;
    }
    let wants = options.collections.as_ref().is_none_or(|c| !c.is_empty());
    if let (true, Ok(v)) = (wants, backend.vectors()) {
        export_collections(&v, &mut out, file, options, &mut report).await?;
    }
    out.finish(file, &report)?;
    report.duration = started.elapsed();
    Ok(report)
}

/// [`export`] into the file `path`, which appears only once the export is
/// complete: it is written to a temporary file beside it (`.NAME.export-*`),
/// synced and renamed into place, so a failed or interrupted export never
/// leaves a partial file at `path` (an existing file there is replaced
/// only by a complete export).
pub async fn export_file(
    backend: &Backend,
    path: &Path,
    options: &MigrateOptions,
) -> Result<Report, MigrateError> {
    let file = path.display().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.export-"))
        .tempfile_in(&dir)
        .map_err(io_err(&file))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    let report = export(backend, &mut out, &file, options).await?;
    out.into_inner()
        .map_err(|e| io_err(&file)(e.into_error()))?
        .sync_all()
        .map_err(io_err(&file))?;
    tmp.persist(path).map_err(|e| io_err(&file)(e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(report)
}

/// Passes an export's lines to the output, hashing and counting them for
/// the trailer that [`ExportWriter::finish`] writes.
pub(crate) struct ExportWriter<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    lines: u64,
}

impl<'a> ExportWriter<'a> {
    pub(crate) fn new(out: &'a mut dyn Write) -> Self {
        ExportWriter {
            out,
            hash: Sha256::new(),
            lines: 0,
        }
    }

    /// Writes the trailer (the tables and collections of `report`, with
    /// the rows read, the line count and the SHA-256 of every byte
    /// written) and flushes.
    pub(crate) fn finish(self, file: &str, report: &Report) -> Result<(), MigrateError> {
        let items: Vec<Listed> = report
            .tables
            .iter()
            .map(|t| ("table", t))
            .chain(report.collections.iter().map(|c| ("collection", c)))
            .map(|(kind, i)| Listed {
                kind,
                name: i.name.clone(),
                rows: i.read,
            })
            .collect();
        let sha256 = hex::encode(self.hash.finalize());
        line(self.out, file, &Trailer::line(&items, self.lines, &sha256))?;
        self.out.flush().map_err(io_err(file))
    }
}

impl Write for ExportWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(data)?;
        self.hash.update(&data[..n]);
        self.lines += data[..n].iter().filter(|b| **b == b'\n').count() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
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
        &json!({ "strata_export": FORMAT, "source": source, "dialect": dialect }),
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
        let t = schema::read_table_keyless(sql, name, options.detect_vectors, &mut report.warnings)
            .await?;
        line(out, file, &json!({ "table": schema_json(&t) }))?;
        let pager = Pager::new(&t, options.batch_size, sql.dialect());
        let mut rep = ItemReport::new(ItemKind::Table, name);
        let err = |source| MigrateError::Table {
            table: name.clone(),
            backend: sql.backend().into(),
            source: Box::new(source),
        };
        // Inside a snapshot transaction whose plugin has a bulk read
        // (Postgres: binary `COPY` of the pager's query, decoded by the
        // plugin two pages ahead while this thread writes), one stream.
        let streamed = pager
            .read_whole(sql, true, options.batch_size, err, |rows| {
                write_rows(&mut *out, rows, &t.columns, file)?;
                rep.read += rows.len() as u64;
                options.copied(ItemKind::Table, name, rep.read);
                Ok(())
            })
            .await?;
        if !streamed {
            // Keyset pages, each written while the next one is read.
            let mut rows = pager.page(sql, None).await.map_err(err)?;
            while let Some(last) = rows.last() {
                let key = pager.key(last);
                let (next, written) =
                    futures_util::future::join(pager.page(sql, Some(key)), async {
                        write_rows(&mut *out, &rows, &t.columns, file)
                    })
                    .await;
                written?;
                rep.read += rows.len() as u64;
                options.copied(ItemKind::Table, name, rep.read);
                rows = next.map_err(err)?;
            }
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

/// Writes `rows` as row lines, in writes of about 60 KiB.
fn write_rows(
    out: &mut dyn Write,
    rows: &[crate::row::Row],
    columns: &[schema::Column],
    file: &str,
) -> Result<(), MigrateError> {
    let mut buf = Vec::with_capacity(64 * 1024);
    for row in rows {
        row_line(&mut buf, row.values(), columns);
        if buf.len() >= 60 * 1024 {
            out.write_all(&buf).map_err(io_err(file))?;
            buf.clear();
        }
    }
    out.write_all(&buf).map_err(io_err(file))
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
            .map_err(|e| MigrateError::collection(v, "*", e))?
            .into_iter()
            .map(|c| c.name)
            .collect(),
    };
    for name in &names {
        let t0 = Instant::now();
        let stats = v
            .stats(name)
            .await
            .map_err(|e| MigrateError::collection(v, name, e))?
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
                .map_err(|e| MigrateError::collection(v, name, e))?;
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
            options.copied(ItemKind::Collection, name, rep.read);
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
