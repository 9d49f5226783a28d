//! One table: create on the target, keyset-paged copy with upserts and
//! checkpoints, identity and index fix-ups, verification.

use std::{collections::HashMap, fmt::Write as _, time::Instant};

use strata_plugin_api::{ErrorKind, Value, placeholders::Dialect};

use crate::{
    error::{Error, Result},
    params::Params,
    progress::{ItemKind, ItemProgress, Phase},
    row::Row,
    sql::{Sql, SqlRead},
};

use super::{
    checkpoint::{CHECKPOINT_DDL, CHECKPOINT_UPSERT, CHECKPOINTS, load_checkpoint},
    error::MigrateError,
    options::MigrateOptions,
    report::{ItemReport, Verification},
    schema::{self, Kind, TableSchema, VectorStorage, quote},
    values::{self, Checksum, Hasher128},
};

/// Most parameters one statement may carry: PostgreSQL's wire limit
/// (65,535) and SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (32,766).
pub(crate) fn max_params(d: Dialect) -> usize {
    match d {
        Dialect::Postgres => 65_535,
        _ => 32_766,
    }
}

/// What every table of one migration shares.
pub(crate) struct Context<'a> {
    pub(crate) src: &'a Sql,
    pub(crate) dst: &'a Sql,
    pub(crate) source_id: &'a str,
    pub(crate) options: &'a MigrateOptions,
    /// How the target stores vector columns.
    pub(crate) vectors: VectorStorage,
}

impl<'a> Context<'a> {
    pub(crate) async fn new(
        src: &'a Sql,
        dst: &'a Sql,
        source_id: &'a str,
        options: &'a MigrateOptions,
    ) -> Result<Context<'a>, MigrateError> {
        let vectors = if dst.dialect() == Dialect::Postgres && !options.dry_run {
            if schema::pg_vector_available(dst).await? {
                VectorStorage::PgVector
            } else {
                VectorStorage::Blob
            }
        } else {
            VectorStorage::Blob
        };
        if !options.dry_run {
            dst.exec(CHECKPOINT_DDL)
                .await
                .map_err(|source| MigrateError::Table {
                    table: CHECKPOINTS.into(),
                    backend: dst.backend().into(),
                    source: Box::new(source),
                })?;
        }
        Ok(Context {
            src,
            dst,
            source_id,
            options,
            vectors,
        })
    }
}

fn on(sql: &Sql, table: &str) -> impl Fn(Error) -> MigrateError {
    let backend = sql.backend().to_string();
    let table = table.to_string();
    move |source| MigrateError::Table {
        table: table.clone(),
        backend: backend.clone(),
        source: Box::new(source),
    }
}

/// Keyset-paged reads of one table in primary-key order (a table without
/// a primary key: in [`schema::row_locator`] order, the locator read as an
/// extra last column).
///
/// On PostgreSQL, pgvector columns are read through `vector_send` (their
/// binary form) and handed back as little-endian `f32` blobs, the form a
/// SQLite side stores and every consumer (checksums, conversions, JSON
/// Lines) takes: printing and parsing 384 shortest-form floats per row was
/// most of the time of reading such a table.
pub(crate) struct Pager {
    /// Every row in page order, in one query ([`SqlRead::bulk_read`]).
    whole: String,
    /// Every row in no particular order (for order-independent readers:
    /// checksums), in one query.
    unordered: String,
    first: String,
    next: String,
    keys: Vec<usize>,
    /// Columns read in pgvector's binary form.
    binary: Vec<usize>,
}

impl Pager {
    /// Pages of `t` on the side whose catalogue `t` was read from (its
    /// vector columns on PostgreSQL are pgvector columns).
    pub(crate) fn new(t: &TableSchema, page: usize, dialect: Dialect) -> Pager {
        let binary: Vec<bool> = t
            .columns
            .iter()
            .map(|c| dialect == Dialect::Postgres && matches!(c.kind, Kind::Vector(_)))
            .collect();
        Pager::reading(t, page, dialect, &binary)
    }

    /// Pages of `t` reading the columns flagged in `binary` (pgvector
    /// columns on a PostgreSQL side) in their binary form.
    pub(crate) fn reading(
        t: &TableSchema,
        page: usize,
        dialect: Dialect,
        binary: &[bool],
    ) -> Pager {
        let select = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if binary.get(i) == Some(&true) {
                    format!("vector_send({0}) AS {0}", quote(&c.name))
                } else {
                    c.select_expr()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let binary = (0..t.columns.len())
            .filter(|&i| binary.get(i) == Some(&true))
            .collect();
        let base = format!("SELECT {select} FROM {}", quote(&t.name));
        if t.primary_key.is_empty()
            && let Some((locator, after)) = schema::row_locator(dialect)
        {
            let base = format!(
                "SELECT {select}, {locator} AS \"strata_row_locator\" FROM {}",
                quote(&t.name)
            );
            let order = after.split_once(" ORDER BY ").map_or("", |(_, o)| o);
            return Pager {
                whole: format!("{base} ORDER BY {order}"),
                unordered: base.clone(),
                first: format!("{base} ORDER BY {order} LIMIT {page}"),
                next: format!("{base} WHERE {after} LIMIT {page}"),
                keys: vec![t.columns.len()],
                binary,
            };
        }
        let key_list = t
            .primary_key
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ");
        let tail = format!(" ORDER BY {key_list} LIMIT {page}");
        let cond = if t.primary_key.len() == 1 {
            format!("{key_list} > ?")
        } else {
            let marks = vec!["?"; t.primary_key.len()].join(", ");
            format!("({key_list}) > ({marks})")
        };
        Pager {
            whole: format!("{base} ORDER BY {key_list}"),
            unordered: base.clone(),
            first: format!("{base}{tail}"),
            next: format!("{base} WHERE {cond}{tail}"),
            keys: t.key_positions(),
            binary,
        }
    }

    /// The page after `after` (the first page for `None`), read on the
    /// backend or inside a transaction.
    pub(crate) async fn page(
        &self,
        sql: &impl SqlRead,
        after: Option<Vec<Value>>,
    ) -> Result<Vec<Row>> {
        let mut rows = match after {
            None => sql.all(&self.first, ()).await?,
            Some(k) => sql.all(&self.next, Params::Positional(k)).await?,
        };
        self.convert(&mut rows);
        Ok(rows)
    }

    /// Reads every row of the table in one query through `sql`'s bulk
    /// read (in page order when `ordered`), handing `each` batches of
    /// `batch` rows as a page holds them ([`Pager::convert`]); `Ok(false)`
    /// when `sql` has no bulk read, nothing read: page instead. Errors of
    /// the read become `E` through `read_err`; one of `each` ends it.
    pub(crate) async fn read_whole<E>(
        &self,
        sql: &impl SqlRead,
        ordered: bool,
        batch: usize,
        read_err: impl Fn(crate::Error) -> E,
        mut each: impl FnMut(&[Row]) -> Result<(), E>,
    ) -> Result<bool, E> {
        let query = if ordered {
            &self.whole
        } else {
            &self.unordered
        };
        let Some(stream) = sql.bulk_read(query).await.map_err(&read_err)? else {
            return Ok(false);
        };
        let mut stream = stream.with_batch_size(u32::try_from(batch).unwrap_or(u32::MAX));
        loop {
            let mut rows = stream.next_batch().await.map_err(&read_err)?;
            if rows.is_empty() {
                return Ok(true);
            }
            self.convert(&mut rows);
            each(&rows)?;
        }
    }

    /// Rows as read by the query into what a page holds (pgvector's
    /// binary form as little-endian `f32` bytes).
    pub(crate) fn convert(&self, rows: &mut [Row]) {
        if !self.binary.is_empty() {
            for row in rows {
                let values = row.values_mut();
                for &i in &self.binary {
                    if let Some(Value::Blob(b)) = values.get_mut(i)
                        && let Some(n) = values::pgvector_binary_into_le(b)
                    {
                        b.truncate(n);
                    }
                }
            }
        }
    }

    /// The key of a row.
    pub(crate) fn key(&self, row: &Row) -> Vec<Value> {
        self.keys.iter().map(|&i| row.values()[i].clone()).collect()
    }
}

/// `INSERT … SELECT * FROM unnest(CAST(? AS bigint[]), …)` for PostgreSQL:
/// one array parameter per column (sent as an array literal), so a
/// statement carries any number of rows and the server parses arrays
/// instead of planning a `VALUES` list of tens of thousands of parameters.
pub(crate) struct UnnestInsert {
    sql: String,
}

impl UnnestInsert {
    pub(crate) fn new(t: &TableSchema, vectors: VectorStorage) -> UnnestInsert {
        // Arrays carry no typmod: `numeric(12,4)[]` is sent as `numeric[]`
        // and the insert coerces. A column that is itself an array, or of
        // a type with no portable kind, is sent as text and cast in the
        // select list (`unnest` would flatten an array of arrays).
        let (mut arrays, mut select) = (Vec::new(), Vec::new());
        for (i, c) in t.columns.iter().enumerate() {
            let ty = schema::pg_column_type(c, vectors);
            if c.kind == Kind::PgText || ty.ends_with(']') {
                arrays.push("CAST(? AS text[])".to_string());
                select.push(format!("CAST(u.c{i} AS {ty})"));
            } else {
                arrays.push(format!("CAST(? AS {}[])", schema::without_typmod(&ty)));
                select.push(format!("u.c{i}"));
            }
        }
        let names = (0..t.columns.len())
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        UnnestInsert {
            sql: format!(
                "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({names})",
                quote(&t.name),
                t.column_list(),
                select.join(", "),
                arrays.join(", ")
            ),
        }
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// Row-major values → one array literal per column.
    pub(crate) fn params(&self, values: &[Value], width: usize) -> Vec<Value> {
        let rows = values.len() / width.max(1);
        let mut cols: Vec<String> = (0..width)
            .map(|_| String::with_capacity(rows * 8 + 2))
            .collect();
        for c in &mut cols {
            c.push('{');
        }
        for (i, v) in values.iter().enumerate() {
            let out = &mut cols[i % width];
            if i >= width {
                out.push(',');
            }
            array_element(out, v);
        }
        cols.into_iter()
            .map(|mut c| {
                c.push('}');
                Value::from(c)
            })
            .collect()
    }
}

/// One element of a PostgreSQL array literal: `NULL`, or the value's text
/// form double-quoted with `"` and `\` escaped.
fn array_element(out: &mut String, v: &Value) {
    let quoted = |out: &mut String, s: &str| {
        out.push('"');
        for ch in s.chars() {
            if ch == '"' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    };
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Real(r) if r.is_nan() => out.push_str("NaN"),
        Value::Real(r) if r.is_infinite() => {
            out.push_str(if *r > 0.0 { "Infinity" } else { "-Infinity" })
        }
        // Debug is the shortest text that reads back as the same f64.
        Value::Real(r) => {
            let _ = write!(out, "{r:?}");
        }
        Value::Text(t) => quoted(out, t),
        Value::Blob(b) => {
            // bytea hex input `\x…`, its backslash escaped inside the quotes.
            out.push_str("\"\\\\x");
            for byte in b.iter() {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('"');
        }
    }
}

/// Builds the multi-row upsert statements for a table.
pub(crate) struct Upserts {
    head: String,
    tail: String,
    row: String,
    cache: HashMap<usize, String>,
}

impl Upserts {
    pub(crate) fn new(t: &TableSchema, dialect: Dialect) -> Upserts {
        let table = quote(&t.name);
        let head = format!("INSERT INTO {table} ({}) VALUES ", t.column_list());
        let row = format!("({})", vec!["?"; t.columns.len()].join(", "));
        let keys = t
            .primary_key
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ");
        let rest: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !t.primary_key.contains(&c.name))
            .map(|c| quote(&c.name))
            .collect();
        let tail = if rest.is_empty() {
            format!(" ON CONFLICT ({keys}) DO NOTHING")
        } else {
            let set = rest
                .iter()
                .map(|c| format!("{c} = excluded.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            // Skip rows that are already identical: a re-run writes nothing.
            // Postgres compares json and text-form columns as text (`json`,
            // `xml` and some others have no equality operator).
            let as_text: Vec<bool> = t
                .columns
                .iter()
                .filter(|c| !t.primary_key.contains(&c.name))
                .map(|c| matches!(c.kind, Kind::Json | Kind::PgText))
                .collect();
            let side = |prefix: &str| -> Vec<String> {
                rest.iter()
                    .zip(&as_text)
                    .map(|(c, text)| {
                        if *text {
                            format!("CAST({prefix}.{c} AS text)")
                        } else {
                            format!("{prefix}.{c}")
                        }
                    })
                    .collect()
            };
            let differs = match dialect {
                // A single-column row value is just the value.
                Dialect::Postgres if rest.len() == 1 => format!(
                    "{} IS DISTINCT FROM {}",
                    side(&table)[0],
                    side("excluded")[0]
                ),
                Dialect::Postgres => format!(
                    "({}) IS DISTINCT FROM ({})",
                    side(&table).join(", "),
                    side("excluded").join(", ")
                ),
                _ => rest
                    .iter()
                    .map(|c| format!("{table}.{c} IS NOT excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(" OR "),
            };
            format!(" ON CONFLICT ({keys}) DO UPDATE SET {set} WHERE {differs}")
        };
        Upserts {
            head,
            tail,
            row,
            cache: HashMap::new(),
        }
    }

    /// Plain multi-row `INSERT`s (no conflict clause), for a table created
    /// empty: a duplicate key is an error, as it should be.
    pub(crate) fn insert_only(t: &TableSchema) -> Upserts {
        Upserts {
            head: format!(
                "INSERT INTO {} ({}) VALUES ",
                quote(&t.name),
                t.column_list()
            ),
            tail: String::new(),
            row: format!("({})", vec!["?"; t.columns.len()].join(", ")),
            cache: HashMap::new(),
        }
    }

    pub(crate) fn sql(&mut self, rows: usize) -> &str {
        self.cache.entry(rows).or_insert_with(|| {
            let mut s = String::with_capacity(
                self.head.len() + rows * (self.row.len() + 2) + self.tail.len(),
            );
            s.push_str(&self.head);
            for i in 0..rows {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(&self.row);
            }
            let _ = write!(s, "{}", self.tail);
            s
        })
    }
}

async fn count(sql: &Sql, table: &str) -> Result<u64, MigrateError> {
    let row = sql
        .get(&format!("SELECT count(*) AS n FROM {}", quote(table)), ())
        .await
        .map_err(on(sql, table))?;
    Ok(row.and_then(|r| r.get::<i64>("n").ok()).unwrap_or(0).max(0) as u64)
}

/// One table a migration copied.
pub(crate) struct Copied {
    pub(crate) report: ItemReport,
    /// Its shape, as read from the source.
    pub(crate) table: TableSchema,
    /// The checksum of the source's rows, when this run read all of them
    /// (not a table resumed or already done): verification then re-reads
    /// the target only.
    pub(crate) source: Option<Checksum>,
}

/// Copies one table (verification is the caller's, once every item is
/// copied: see [`verify_table`]).
pub(crate) async fn migrate_table(
    ctx: &Context<'_>,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Copied, MigrateError> {
    let started = Instant::now();
    let opts = ctx.options;
    let t = schema::read_table(ctx.src, name, opts.detect_vectors, warnings).await?;
    // An existing target table must identify rows by the source's key:
    // without it an upsert cannot match them, and a bulk insert would
    // copy every row again on each run (refused, also in a dry run).
    if schema::table_exists(ctx.dst, name).await? {
        schema::require_unique_key(ctx.dst, name, &t.primary_key).await?;
    }
    let mut rep = ItemReport::new(ItemKind::Table, name);
    let mut source = None;
    let total = count(ctx.src, name).await?;
    let progress = |phase, done| {
        opts.report(ItemProgress::new(
            ItemKind::Table,
            name,
            phase,
            done,
            Some(total),
        ))
    };
    progress(Phase::Start, 0);
    if opts.dry_run {
        rep.read = total;
        rep.duration = started.elapsed();
        progress(Phase::Done, total);
        return Ok(Copied {
            report: rep,
            table: t,
            source,
        });
    }
    let item = format!("table:{name}");
    let dst_err = on(ctx.dst, name);
    let checkpoint = if opts.resume {
        load_checkpoint(ctx.dst, ctx.source_id, &item)
            .await
            .map_err(&dst_err)?
    } else {
        None
    };
    if let Some(cp) = checkpoint.as_ref().filter(|c| c.done) {
        rep.already_done = true;
        rep.resumed = cp.rows;
    } else {
        ctx.dst
            .exec(&schema::create_table_sql(
                &t,
                ctx.dst.dialect(),
                ctx.vectors,
            ))
            .await
            .map_err(&dst_err)?;
        let after = match checkpoint.as_ref().and_then(|c| c.last_key.as_deref()) {
            Some(k) => Some(values::decode_key(k).ok_or_else(|| MigrateError::Schema {
                table: name.to_string(),
                backend: ctx.dst.backend().to_string(),
                message: format!("unreadable checkpoint key {k:?} in {}", CHECKPOINTS),
            })?),
            None => None,
        };
        rep.resumed = checkpoint.as_ref().map_or(0, |c| c.rows);
        // Generated columns are computed by a Postgres target: neither
        // read nor written.
        let writable = t.writable(ctx.dst.dialect());
        // The rows read are the source's whole table (and its checksum the
        // one verification needs) when the copy starts at the first row and
        // reads every column.
        let whole = after.is_none() && writable.is_none();
        let read = copy(
            ctx,
            writable.as_ref().unwrap_or(&t),
            &item,
            after,
            &mut rep,
            &progress,
        )
        .await?;
        source = whole.then_some(read);
        finish(ctx, &t).await?;
        ctx.dst
            .run(
                CHECKPOINT_UPSERT,
                crate::params![
                    ctx.source_id,
                    item.as_str(),
                    None::<String>,
                    (rep.resumed + rep.read) as i64,
                    "done"
                ],
            )
            .await
            .map_err(&dst_err)?;
    }
    rep.duration = started.elapsed();
    if !opts.verify {
        progress(Phase::Done, rep.resumed + rep.read);
    }
    Ok(Copied {
        report: rep,
        table: t,
        source,
    })
}

/// Verifies a copied table (counts and checksums: the target re-read, the
/// source too unless `source` is its checksum taken while copying),
/// reporting [`Phase::Verify`] then [`Phase::Done`]; the time is added to
/// the item's duration.
pub(crate) async fn verify_table(
    src: &Sql,
    dst: &Sql,
    t: &TableSchema,
    source: Option<Checksum>,
    options: &MigrateOptions,
    rep: &mut ItemReport,
) -> Result<(), MigrateError> {
    let started = Instant::now();
    let progress = |phase, done| {
        options.report(ItemProgress::new(
            ItemKind::Table,
            &t.name,
            phase,
            done,
            Some(rep.resumed + rep.read),
        ))
    };
    progress(Phase::Verify, 0);
    rep.verification = verify(src, dst, t, source, options.batch_size).await?;
    rep.duration += started.elapsed();
    progress(Phase::Done, rep.resumed + rep.read);
    Ok(())
}

/// Copies the rows of `t` after `after`; returns the checksum of the rows
/// it read (see [`checksum`]).
async fn copy(
    ctx: &Context<'_>,
    t: &TableSchema,
    item: &str,
    mut after: Option<Vec<Value>>,
    rep: &mut ItemReport,
    progress: &impl Fn(Phase, u64),
) -> Result<Checksum, MigrateError> {
    let batch = ctx.options.batch_size;
    let pager = Pager::new(t, batch, ctx.src.dialect());
    let kinds: Vec<Kind> = t.columns.iter().map(|c| c.kind).collect();
    let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let src_err = on(ctx.src, &t.name);
    let writer = tokio::sync::Mutex::new(Writer {
        upserts: Upserts::new(t, ctx.dst.dialect()),
        per_stmt: (max_params(ctx.dst.dialect()) / t.columns.len().max(1)).clamp(1, batch),
        bulk: None,
    });
    // A page read and converted; `None` past the end.
    let fetch = |after: Option<Vec<Value>>| {
        let (pager, kinds, src_err) = (&pager, &kinds, &src_err);
        async move {
            let page = pager.page(ctx.src, after).await.map_err(src_err)?;
            let Some(last) = page.last().map(|r| pager.key(r)) else {
                return Ok(None);
            };
            let n = page.len() as u64;
            let (values, sum) =
                convert_page(page, kinds).map_err(|(i, message)| value_err(t, i, message))?;
            Ok::<_, MigrateError>(Some((values, n, last, sum)))
        }
    };
    let mut source = Checksum::default();
    let mut current = fetch(after.take()).await?;
    while let Some((values, n, last, sum)) = current {
        source.merge(sum);
        let done = rep.resumed + rep.read + n;
        let checkpoint = crate::params![
            ctx.source_id,
            item,
            values::encode_key(&last),
            done as i64,
            "running"
        ];
        // Write this page while the next one is read and converted.
        let write = async {
            let mut w = writer.lock().await;
            w.write(ctx, t, &names, &kinds, values, checkpoint).await
        };
        let (written, next) = futures_util::future::join(write, fetch(Some(last))).await;
        let written = written?;
        rep.read += n;
        rep.written += written;
        rep.skipped += n - written.min(n);
        progress(Phase::Copy, done);
        current = next?;
    }
    Ok(source)
}

/// A page's values converted for the bulk path (vectors stay little-endian
/// bytes; the INSERT path converts them for the target if bulk is
/// unavailable), with the checksum of the rows as read (what verification
/// would compute reading them again). The error: the column and why.
fn convert_page(page: Vec<Row>, kinds: &[Kind]) -> Result<(Vec<Value>, Checksum), (usize, String)> {
    let mut sum = Checksum::default();
    let mut values = Vec::with_capacity(page.len() * kinds.len());
    for row in page {
        sum.add(row_hash(kinds, row.values()));
        for (i, v) in row.into_values().into_iter().enumerate() {
            values.push(values::to_target(v, kinds[i], VectorStorage::Blob).map_err(|m| (i, m))?);
        }
    }
    Ok((values, sum))
}

/// The hash of one row's values, normalised by the source's kinds.
fn row_hash(kinds: &[Kind], values: &[Value]) -> u128 {
    let mut h = Hasher128::default();
    for (k, v) in kinds.iter().zip(values) {
        values::hash_value(&mut h, *k, v);
    }
    h.finish()
}

fn value_err(t: &TableSchema, i: usize, message: String) -> MigrateError {
    MigrateError::Value {
        table: t.name.clone(),
        column: t.columns[i].name.clone(),
        message,
    }
}

/// Writes pages: the plugin's bulk path when it has one, multi-row upserts otherwise.
struct Writer {
    upserts: Upserts,
    per_stmt: usize,
    /// `None` until the first page tells whether the plugin's bulk path works.
    bulk: Option<bool>,
}

impl Writer {
    async fn write(
        &mut self,
        ctx: &Context<'_>,
        t: &TableSchema,
        names: &[String],
        kinds: &[Kind],
        values: Vec<Value>,
        checkpoint: Params,
    ) -> Result<u64, MigrateError> {
        let dst_err = on(ctx.dst, &t.name);
        if self.bulk != Some(false) {
            let keep = if self.bulk.is_none() {
                Some(values.clone())
            } else {
                None
            };
            match ctx
                .dst
                .bulk_write(
                    &t.name,
                    names,
                    &t.primary_key,
                    values,
                    Some((CHECKPOINT_UPSERT, checkpoint.clone())),
                )
                .await
            {
                Ok(n) => {
                    self.bulk = Some(true);
                    return Ok(n);
                }
                Err(e) if self.bulk.is_none() && e.kind() == ErrorKind::Unsupported => {
                    tracing::debug!(table = %t.name, "bulk write unavailable, using INSERTs: {e}");
                    self.bulk = Some(false);
                    let values = keep.expect("kept for the first page");
                    return self.insert(ctx, t, kinds, values, checkpoint).await;
                }
                Err(e) => return Err(dst_err(e)),
            }
        }
        self.insert(ctx, t, kinds, values, checkpoint).await
    }

    async fn insert(
        &mut self,
        ctx: &Context<'_>,
        t: &TableSchema,
        kinds: &[Kind],
        values: Vec<Value>,
        checkpoint: Params,
    ) -> Result<u64, MigrateError> {
        let width = kinds.len();
        let mut converted = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let c = i % width;
            converted
                .push(values::to_target(v, kinds[c], ctx.vectors).map_err(|m| value_err(t, c, m))?);
        }
        let mut statements = Vec::new();
        let mut rest = converted;
        while !rest.is_empty() {
            let take = (self.per_stmt * width).min(rest.len());
            let tail = rest.split_off(take);
            statements.push((self.upserts.sql(take / width).to_string(), rest));
            rest = tail;
        }
        let run = async {
            let tx = ctx.dst.begin().await?;
            let mut written = 0;
            for (sql, params) in statements {
                written += tx.run(&sql, Params::Positional(params)).await?.changes;
            }
            tx.run(CHECKPOINT_UPSERT, checkpoint).await?;
            tx.commit().await?;
            Ok::<u64, Error>(written)
        };
        run.await.map_err(on(ctx.dst, &t.name))
    }
}

/// After the rows: identity sequences past the copied keys, then indexes.
async fn finish(ctx: &Context<'_>, t: &TableSchema) -> Result<(), MigrateError> {
    let err = on(ctx.dst, &t.name);
    if t.auto_key && ctx.dst.dialect() == Dialect::Postgres {
        let key = quote(&t.primary_key[0]);
        ctx.dst
            .get(
                &format!(
                    "SELECT setval(pg_get_serial_sequence(?, ?), \
                     coalesce((SELECT max({key}) FROM {}), 0) + 1, false) AS v",
                    quote(&t.name)
                ),
                [quote(&t.name), t.primary_key[0].clone()],
            )
            .await
            .map_err(&err)?;
    }
    for stmt in schema::create_index_sql(t) {
        ctx.dst.exec(&stmt).await.map_err(&err)?;
    }
    Ok(())
}

/// The checksum of every row of `t` on `sql`, hashing the source's columns
/// normalised by the source's kinds; with `by_column`, also one checksum
/// per column, to name the columns that differ when the rows do (a second
/// hash of every value: only asked for once the rows are known to differ).
///
/// A column that is a pgvector `vector` on `sql` is read in its binary
/// form ([`Pager`]) and hashed as the little-endian `f32`s its text would
/// have parsed to, bit for bit (a `bytea` target column holds those bytes).
pub(crate) async fn checksum(
    sql: &Sql,
    t: &TableSchema,
    page: usize,
    by_column: bool,
) -> Result<(Checksum, Vec<Checksum>), MigrateError> {
    let binary = binary_vector_columns(sql, t).await?;
    let pager = Pager::reading(t, page, sql.dialect(), &binary);
    let kinds: Vec<Kind> = t.columns.iter().map(|c| c.kind).collect();
    let mut sum = Checksum::default();
    let mut per_column = vec![Checksum::default(); if by_column { kinds.len() } else { 0 }];
    let err = on(sql, &t.name);
    let mut hash_page = |rows: &[Row]| {
        for row in rows {
            let mut h = Hasher128::default();
            // A key-less table's extra row locator column is not hashed
            // (`kinds` ends before it).
            for (i, (k, v)) in kinds.iter().zip(row.values()).enumerate() {
                values::hash_value(&mut h, *k, v);
                if by_column {
                    let mut c = Hasher128::default();
                    values::hash_value(&mut c, *k, v);
                    per_column[i].add(c.finish());
                }
            }
            sum.add(h.finish());
        }
    };
    // The checksum is order-independent, so where the plugin claims a
    // bulk read (Postgres: binary `COPY` of a sequential scan, decoded by
    // the plugin ahead of this thread) the whole table is read in one
    // query of one transaction: no sort or index walk, no query per page.
    // Only then is a transaction begun: SQLite's `begin` takes the write
    // lock (`BEGIN IMMEDIATE`), which a read must not wait for.
    if sql.has_bulk_read() {
        let tx = sql.begin().await.map_err(&err)?;
        let read = pager
            .read_whole(&tx, false, page, &err, |rows| {
                hash_page(rows);
                Ok(())
            })
            .await?;
        tx.rollback().await.map_err(&err)?;
        if read {
            return Ok((sum, per_column));
        }
    }
    let mut rows = pager.page(sql, None).await.map_err(&err)?;
    // Each page is hashed while the next one is read (the read is polled
    // first, so the backend works on it during the hashing).
    while let Some(last) = rows.last() {
        let next = pager.page(sql, Some(pager.key(last)));
        let (next, ()) = futures_util::future::join(next, async { hash_page(&rows) }).await;
        rows = next.map_err(&err)?;
    }
    Ok((sum, per_column))
}

/// Which columns of `t` to read in pgvector's binary form on `sql`: those
/// compared as vectors that are `vector` columns there (a Postgres side's
/// own catalogue says; a vector stored as `bytea` is read as it is).
async fn binary_vector_columns(sql: &Sql, t: &TableSchema) -> Result<Vec<bool>, MigrateError> {
    if sql.dialect() != Dialect::Postgres
        || !t.columns.iter().any(|c| matches!(c.kind, Kind::Vector(_)))
    {
        return Ok(vec![false; t.columns.len()]);
    }
    let here = schema::read_table_keyless(sql, &t.name, false, &mut Vec::new()).await?;
    Ok(t.columns
        .iter()
        .map(|c| {
            matches!(c.kind, Kind::Vector(_))
                && here
                    .columns
                    .iter()
                    .any(|h| h.name == c.name && matches!(h.kind, Kind::Vector(_)))
        })
        .collect())
}

/// Compares both sides' checksums (`source`: the source's, taken while
/// copying, else the source is read again, concurrently with the target).
async fn verify(
    src: &Sql,
    dst: &Sql,
    t: &TableSchema,
    source: Option<Checksum>,
    batch_size: usize,
) -> Result<Verification, MigrateError> {
    let page = batch_size.max(1000);
    let (a, b) = match source {
        Some(a) => (a, checksum(dst, t, page, false).await?.0),
        None => {
            let (a, b) = futures_util::future::join(
                checksum(src, t, page, false),
                checksum(dst, t, page, false),
            )
            .await;
            (a?.0, b?.0)
        }
    };
    if a != b {
        // Read both sides again, hashing each column apart, to name the
        // columns that differ (the common case, equal rows, pays for one
        // hash per value only).
        let (ca, cb) =
            futures_util::future::join(checksum(src, t, page, true), checksum(dst, t, page, true))
                .await;
        let (_, ca) = ca?;
        let (_, cb) = cb?;
        let differing: Vec<&str> = t
            .columns
            .iter()
            .zip(ca.iter().zip(&cb))
            .filter(|(_, (x, y))| x != y)
            .map(|(c, _)| c.name.as_str())
            .collect();
        return Err(MigrateError::Verify {
            kind: ItemKind::Table,
            name: t.name.clone(),
            detail: format!(
                "`{}` has {} rows (checksum {}), `{}` has {} rows (checksum {}); columns that differ: {}",
                src.backend(),
                a.rows,
                a.hex(),
                dst.backend(),
                b.rows,
                b.hex(),
                if differing.is_empty() {
                    "none (rows differ as wholes)".to_string()
                } else {
                    differing.join(", ")
                }
            ),
        });
    }
    Ok(Verification::Passed {
        rows: a.rows,
        checksum: a.hex(),
    })
}
