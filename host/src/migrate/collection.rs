//! One vector collection, through the vector contract on both sides: the
//! source is scanned page by page with its cursor, each page is compared
//! with what the target already holds (`fetch` by id) and only new or
//! different records are upserted, so a re-run writes nothing. Dimension
//! and metric are taken from the source; ids, vectors, metadata and text
//! are kept.
//!
//! Checkpoints (the source's scan cursor after each page) are kept in the
//! target's `strata_migrations` table when the target also has the SQL
//! contract; otherwise a resumed run starts the collection over, which the
//! compare-then-upsert makes cheap and duplicate-free. A vector upsert is not
//! in the same transaction as its checkpoint, so a crash between them
//! re-copies one page — harmless for the same reason.
//!
//! Verification scans both sides and compares counts and the sum of
//! per-record hashes of (id, `f32` bits of the vector, metadata with sorted
//! keys — absent metadata counts as `{}`, text).

use std::{collections::HashMap, time::Instant};

use strata_plugin_api::Value;

use crate::{
    error::{Error, Result},
    progress::{ItemKind, ItemProgress, Phase},
    sql::Sql,
    vector::{Hit, Include, Record, Vectors},
};

use super::{
    checkpoint::{CHECKPOINT_DDL, CHECKPOINT_UPSERT, load_checkpoint},
    error::MigrateError,
    options::MigrateOptions,
    report::{ItemReport, Verification},
    values::{self, Checksum, Hasher128},
};

fn err(v: &Vectors, name: &str) -> impl Fn(Error) -> MigrateError {
    let backend = v.backend().to_string();
    let collection = name.to_string();
    move |source| MigrateError::Collection {
        collection: collection.clone(),
        backend: backend.clone(),
        source: Box::new(source),
    }
}

fn sql_err(sql: &Sql, name: &str) -> impl Fn(Error) -> MigrateError {
    let backend = sql.backend().to_string();
    let collection = name.to_string();
    move |source| MigrateError::Collection {
        collection: collection.clone(),
        backend: backend.clone(),
        source: Box::new(source),
    }
}

/// The normalised hash of one record.
pub(crate) fn record_hash(h: &Hit) -> u128 {
    let mut x = Hasher128::default();
    x.field(1, h.id.as_bytes());
    x.field(2, &values::f32_to_blob(h.vector.as_deref().unwrap_or(&[])));
    let meta = match &h.metadata {
        None | Some(serde_json::Value::Null) => "{}".to_string(),
        Some(m) => values::canonical_json_value(&Value::from(m.to_string()))
            .unwrap_or_else(|| m.to_string()),
    };
    x.field(3, meta.as_bytes());
    match &h.text {
        None => x.write(&[0]),
        Some(t) => x.field(4, t.as_bytes()),
    }
    x.finish()
}

/// Copies one collection (verification is the caller's, once every item
/// is copied: see [`verify_collection`]).
pub(crate) async fn migrate_collection(
    src: &Vectors,
    dst: &Vectors,
    checkpoints: Option<&Sql>,
    source_id: &str,
    name: &str,
    opts: &MigrateOptions,
) -> Result<ItemReport, MigrateError> {
    let started = Instant::now();
    let src_err = err(src, name);
    let dst_err = err(dst, name);
    let stats = src
        .stats(name)
        .await
        .map_err(&src_err)?
        .ok_or_else(|| MigrateError::Backend {
            backend: src.backend().to_string(),
            message: format!("no collection named `{name}`"),
        })?;
    let total = stats.count;
    let progress = |phase, done| {
        opts.report(ItemProgress::new(
            ItemKind::Collection,
            name,
            phase,
            done,
            Some(total),
        ))
    };
    let mut rep = ItemReport::new(ItemKind::Collection, name);
    progress(Phase::Start, 0);
    if opts.dry_run {
        rep.read = total;
        rep.duration = started.elapsed();
        progress(Phase::Done, total);
        return Ok(rep);
    }
    let item = format!("collection:{name}");
    if let Some(sql) = checkpoints {
        sql.exec(CHECKPOINT_DDL).await.map_err(sql_err(sql, name))?;
    }
    let checkpoint = match (opts.resume, checkpoints) {
        (true, Some(sql)) => load_checkpoint(sql, source_id, &item)
            .await
            .map_err(sql_err(sql, name))?,
        _ => None,
    };
    if let Some(cp) = checkpoint.as_ref().filter(|c| c.done) {
        rep.already_done = true;
        rep.resumed = cp.rows;
    } else {
        dst.create_collection(name, stats.dimension, stats.metric)
            .await
            .map_err(&dst_err)?;
        let mut cursor = checkpoint.as_ref().and_then(|c| c.last_key.clone());
        rep.resumed = if cursor.is_some() {
            checkpoint.as_ref().map_or(0, |c| c.rows)
        } else {
            0
        };
        loop {
            let page = src
                .scan(
                    name,
                    cursor.as_deref(),
                    opts.batch_size as u32,
                    None,
                    Include::ALL,
                )
                .await
                .map_err(&src_err)?;
            let n = page.records.len() as u64;
            if n > 0 {
                let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
                let existing: HashMap<String, u128> = dst
                    .fetch(name, &ids, Include::ALL)
                    .await
                    .map_err(&dst_err)?
                    .iter()
                    .map(|h| (h.id.clone(), record_hash(h)))
                    .collect();
                let changed: Vec<Record> = page
                    .records
                    .into_iter()
                    .filter(|h| existing.get(&h.id) != Some(&record_hash(h)))
                    .map(|h| Record {
                        id: h.id,
                        vector: h.vector.unwrap_or_default(),
                        metadata: h.metadata.unwrap_or(serde_json::Value::Null),
                        text: h.text,
                    })
                    .collect();
                let written = changed.len() as u64;
                if !changed.is_empty() {
                    dst.upsert(name, changed).await.map_err(&dst_err)?;
                }
                rep.read += n;
                rep.written += written;
                rep.skipped += n - written;
            }
            cursor = page.next_cursor;
            let done = rep.resumed + rep.read;
            if let Some(sql) = checkpoints {
                sql.run(
                    CHECKPOINT_UPSERT,
                    crate::params![
                        source_id,
                        item.as_str(),
                        cursor.clone(),
                        done as i64,
                        if cursor.is_some() { "running" } else { "done" }
                    ],
                )
                .await
                .map_err(sql_err(sql, name))?;
            }
            progress(Phase::Copy, done);
            if cursor.is_none() {
                break;
            }
        }
    }
    rep.duration = started.elapsed();
    if !opts.verify {
        progress(Phase::Done, rep.resumed + rep.read);
    }
    Ok(rep)
}

/// Verifies a copied collection (both sides scanned: counts, checksums,
/// dimension and metric), reporting [`Phase::Verify`] then
/// [`Phase::Done`]; the time is added to the item's duration.
pub(crate) async fn verify_collection(
    src: &Vectors,
    dst: &Vectors,
    name: &str,
    opts: &MigrateOptions,
    rep: &mut ItemReport,
) -> Result<(), MigrateError> {
    let started = Instant::now();
    let (src_err, dst_err) = (err(src, name), err(dst, name));
    let progress = |phase, done| {
        opts.report(ItemProgress::new(
            ItemKind::Collection,
            name,
            phase,
            done,
            Some(rep.resumed + rep.read),
        ))
    };
    progress(Phase::Verify, 0);
    let stats = src
        .stats(name)
        .await
        .map_err(&src_err)?
        .ok_or_else(|| MigrateError::Backend {
            backend: src.backend().to_string(),
            message: format!("no collection named `{name}`"),
        })?;
    let page = opts.batch_size.max(500) as u32;
    let (a, b) = futures_util::future::join(
        collection_checksum(src, name, page),
        collection_checksum(dst, name, page),
    )
    .await;
    let (a, b) = (a.map_err(&src_err)?, b.map_err(&dst_err)?);
    let target = dst.stats(name).await.map_err(&dst_err)?;
    if a != b
        || target
            .as_ref()
            .is_none_or(|t| t.dimension != stats.dimension || t.metric != stats.metric)
    {
        return Err(MigrateError::Verify {
            kind: ItemKind::Collection,
            name: name.to_string(),
            detail: format!(
                "`{}` has {} records (checksum {}, dim {}, {}), `{}` has {} records (checksum {}{})",
                src.backend(),
                a.rows,
                a.hex(),
                stats.dimension,
                stats.metric.name(),
                dst.backend(),
                b.rows,
                b.hex(),
                target
                    .map(|t| format!(", dim {}, {}", t.dimension, t.metric.name()))
                    .unwrap_or_default()
            ),
        });
    }
    rep.verification = Verification::Passed {
        rows: a.rows,
        checksum: a.hex(),
    };
    rep.duration += started.elapsed();
    progress(Phase::Done, rep.resumed + rep.read);
    Ok(())
}

/// Count and checksum of a whole collection.
pub(crate) async fn collection_checksum(v: &Vectors, name: &str, page: u32) -> Result<Checksum> {
    let mut sum = Checksum::default();
    let mut cursor: Option<String> = None;
    loop {
        let p = v
            .scan(name, cursor.as_deref(), page, None, Include::ALL)
            .await?;
        for h in &p.records {
            sum.add(record_hash(h));
        }
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(sum)
}
