//! Streaming results through a cursor.

use std::time::Duration;

use strata_plugin_api::capabilities as cap;

use super::support::{count_rows, multi_row_insert, types};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Sql,
            streaming_read_10k,
            "With `sql.streaming`, `stream` yields a 10,000-row result in blocks of at most the asked size, in order, completely, with the column names; after the end it keeps returning empty blocks (SqlCursor::next).",
            cap::SQL_STREAMING,
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            stream_early_drop,
            "Dropping a cursor before its end releases the connection it holds: writes to the same table go through at once (plugin-api `SqlCursorBox`: \"dropping it releases the connection it holds\").",
            cap::SQL_STREAMING
        ),
        case!(
            Suite::Sql,
            empty_stream_has_columns_and_ends,
            "A cursor over a result with no rows still reports its column names and returns an empty block at once, and keeps doing so (SqlCursor::columns, SqlCursor::next).",
            cap::SQL_STREAMING
        ),
    ]
}

/// A 10,000-row result streams in batches no larger than asked for, in
/// order, completely, with its column names.
async fn streaming_read_10k(ctx: Ctx) -> CaseResult {
    const ROWS: i64 = 10_000;
    const BATCH: u32 = 256;
    let sql = ctx.sql().await?;
    let t = ctx.table("stream");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, v {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let t2 = t.clone();
    sql.transaction(move |tx| {
        Box::pin(async move {
            for start in (0..ROWS).step_by(500) {
                let (q, values) = multi_row_insert(&t2, start..(start + 500).min(ROWS));
                let r = tx.run(&q, values).await?;
                ensure_eq!(r.changes, 500, "rows inserted by one batch");
            }
            Ok::<(), Failure>(())
        })
    })
    .await?;
    ensure_eq!(count_rows(&sql, &t).await?, ROWS, "rows inserted");
    let mut stream = sql
        .stream(
            &format!("SELECT id, v FROM {t} WHERE id >= ? ORDER BY id"),
            [0],
        )
        .await?
        .with_batch_size(BATCH);
    ensure_eq!(
        stream.columns(),
        &["id".to_string(), "v".to_string()][..],
        "stream columns"
    );
    let mut next = 0i64;
    let mut batches = 0usize;
    loop {
        let batch = stream.next_batch().await?;
        if batch.is_empty() {
            break;
        }
        batches += 1;
        ensure!(
            batch.len() <= BATCH as usize,
            "batch {batches} has {} rows, more than {BATCH}",
            batch.len()
        );
        for row in &batch {
            let id: i64 = row.get("id")?;
            ensure_eq!(id, next, "id out of order in batch {batches}");
            if id % 997 == 0 {
                ensure_eq!(
                    row.get::<String>("v")?,
                    format!("row {id}"),
                    "value of row {id}"
                );
            }
            next += 1;
        }
        ensure!(next <= ROWS, "more rows than inserted: {next}");
    }
    ensure_eq!(next, ROWS, "rows streamed");
    ensure!(
        batches >= (ROWS as usize).div_ceil(BATCH as usize),
        "only {batches} batches for {ROWS} rows"
    );
    ensure!(
        stream.next_batch().await?.is_empty(),
        "a finished stream must keep returning empty batches"
    );
    Ok(())
}

/// Dropping a stream before its end releases whatever it held: a write to the
/// same table right afterwards goes through.
async fn stream_early_drop(ctx: Ctx) -> CaseResult {
    const ROWS: i64 = 2_000;
    let sql = ctx.sql().await?;
    let t = ctx.table("stream_drop");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, v {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    for start in (0..ROWS).step_by(500) {
        let (q, values) = multi_row_insert(&t, start..start + 500);
        sql.run(&q, values).await?;
    }
    let limit = Duration::from_secs(10);
    let leaked = |what: &str| {
        Failure::new(format!(
            "{what} did not finish within {limit:?} after a stream was dropped (lock leaked?)"
        ))
    };

    let mut stream = sql
        .stream(&format!("SELECT id, v FROM {t} ORDER BY id"), ())
        .await?
        .with_batch_size(100);
    let first = stream.next_batch().await?;
    ensure_eq!(first.len(), 100, "rows in the first batch");
    ensure_eq!(first[0].get::<i64>("id")?, 0, "first id");
    drop(stream);
    let (q, values) = multi_row_insert(&t, ROWS..ROWS + 1);
    let r = tokio::time::timeout(limit, sql.run(&q, values))
        .await
        .map_err(|_| leaked("an insert"))??;
    ensure_eq!(r.changes, 1, "insert after dropping a stream");

    // A stream dropped before its first batch.
    let stream = sql
        .stream(&format!("SELECT id FROM {t} ORDER BY id"), ())
        .await?;
    drop(stream);
    let r = tokio::time::timeout(
        limit,
        sql.run(&format!("DELETE FROM {t} WHERE id >= ?"), [1_000]),
    )
    .await
    .map_err(|_| leaked("a delete"))??;
    ensure_eq!(
        r.changes,
        (ROWS + 1 - 1_000) as u64,
        "rows deleted after dropping a stream"
    );
    let n = tokio::time::timeout(limit, count_rows(&sql, &t))
        .await
        .map_err(|_| leaked("a count"))??;
    ensure_eq!(n, 1_000, "rows left");
    Ok(())
}

/// A cursor over no rows reports its columns and ends at once.
async fn empty_stream_has_columns_and_ends(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("stream_empty");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int}, v {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let mut stream = sql
        .stream(&format!("SELECT id, v FROM {t} WHERE id > ?"), [0])
        .await?
        .with_batch_size(10);
    ensure_eq!(
        stream.columns(),
        &["id".to_string(), "v".to_string()][..],
        "columns of an empty result"
    );
    for n in 0..3 {
        let batch = tokio::time::timeout(Duration::from_secs(10), stream.next_batch())
            .await
            .map_err(|_| {
                Failure::new("next block of an empty result did not return within 10 s")
            })??;
        ensure!(
            batch.is_empty(),
            "block {n} of an empty result has {} rows",
            batch.len()
        );
    }
    drop(stream);
    ensure_eq!(count_rows(&sql, &t).await?, 0, "rows");
    Ok(())
}
