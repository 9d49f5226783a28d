//! `bulk_write`: the fast path of migrations and imports.
//!
//! A plugin without a bulk path answers `unsupported` (the host then
//! falls back to INSERTs): these cases then skip at run time, saying so.

use strata_host::{ErrorKind, Sql, Value};
use strata_plugin_api::capabilities as cap;

use super::support::{count_rows, tx_count_rows, types};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Sql,
            bulk_write_inserts_every_row,
            "`bulk_write` writes `row_count` rows of `columns` in one transaction and returns how many it wrote; values round-trip as with INSERT (SqlConnection::bulk_write, BulkWrite; `unsupported` = no bulk path, skipped)."
        ),
        case!(
            Suite::Sql,
            bulk_write_upserts_on_key_columns,
            "With `key_columns`, `bulk_write` is an upsert: an existing key's other columns are replaced and counted only when a value differs, so the same rows twice report 0 (plugin-api `BulkWrite`)."
        ),
        case!(
            Suite::Sql,
            bulk_write_is_atomic_with_then,
            "`bulk_write` is atomic: rows and the `then` statement commit together, and a row violating a constraint writes nothing and skips `then` (SqlConnection::bulk_write: \"The write is atomic (rows and then together)\")."
        ),
        case!(
            Suite::Sql,
            bulk_read_inside_a_transaction,
            "With `sql.bulk_read`, through interface `strata.sql.transaction_bulk.v1`, `bulk_read` streams a query's whole result inside the transaction's snapshot (its own uncommitted rows included) with the values and columns `query` returns, and leaves the transaction usable, also when the stream is dropped part way (TransactionBulk::bulk_read; plugin-api `capabilities::SQL_BULK_READ`: a plugin claiming it must have the interface and must not answer `unsupported`).",
            cap::SQL_BULK_READ
        ),
        case!(
            Suite::Sql,
            bulk_write_inside_a_transaction,
            "Through interface `strata.sql.transaction_bulk.v1`, a bulk write joins the transaction: its rows and `then` are seen by the transaction's later statements, rolled back or committed with it; a refused bulk write takes back only its own rows and leaves the transaction usable (TransactionBulk::bulk_write; a plugin without the interface: skipped)."
        ),
    ]
}

/// `unsupported` from `bulk_write` means the plugin has no bulk path: the
/// case skips, saying so.
fn no_bulk_path(e: strata_host::Error) -> Failure {
    if e.kind() == ErrorKind::Unsupported {
        Failure::skip(format!(
            "the plugin has no bulk path (`bulk_write` answered `unsupported`: {e})"
        ))
    } else {
        Failure::from(e)
    }
}

fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn create(ctx: &Ctx, sql: &Sql, name: &str) -> Result<String, Failure> {
    let t = ctx.table(name);
    let ty = types(ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, name {text} NOT NULL, score {real}, data {blob})",
        int = ty.int,
        text = ty.text,
        real = ty.real,
        blob = ty.blob
    ))
    .await?;
    Ok(t)
}

fn row(id: i64, name: &str) -> [Value; 4] {
    [
        Value::Integer(id),
        Value::from(name),
        Value::Real(id as f64 / 4.0),
        Value::from(vec![id as u8, 0, 255]),
    ]
}

async fn rows_of(sql: &Sql, t: &str) -> Result<Vec<Vec<Value>>, Failure> {
    Ok(sql
        .all(
            &format!("SELECT id, name, score, data FROM {t} ORDER BY id"),
            (),
        )
        .await?
        .into_iter()
        .map(|r| r.into_values())
        .collect())
}

/// `bulk_write` writes every row, values intact.
async fn bulk_write_inserts_every_row(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create(&ctx, &sql, "bulk").await?;
    let values: Vec<Value> = (0..1000).flat_map(|i| row(i, &format!("n{i}"))).collect();
    let n = sql
        .bulk_write(
            &t,
            &columns(&["id", "name", "score", "data"]),
            &[],
            values.clone(),
            None,
        )
        .await
        .map_err(no_bulk_path)?;
    ensure_eq!(n, 1000, "rows bulk_write reports");
    let got = rows_of(&sql, &t).await?;
    ensure_eq!(got.len(), 1000, "rows in the table");
    let want: Vec<Vec<Value>> = values.chunks(4).map(|c| c.to_vec()).collect();
    ensure_eq!(got, want, "rows read back");
    Ok(())
}

/// With key columns, `bulk_write` upserts and counts only rows that changed.
async fn bulk_write_upserts_on_key_columns(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create(&ctx, &sql, "bulk_upsert").await?;
    let cols = columns(&["id", "name", "score", "data"]);
    let key = columns(&["id"]);
    let values: Vec<Value> = (0..10).flat_map(|i| row(i, &format!("n{i}"))).collect();
    let n = sql
        .bulk_write(&t, &cols, &key, values.clone(), None)
        .await
        .map_err(no_bulk_path)?;
    ensure_eq!(n, 10, "rows written the first time");
    let n = sql.bulk_write(&t, &cols, &key, values, None).await?;
    ensure_eq!(n, 0, "rows reported for writing the same rows again");
    let changed: Vec<Value> = (0..10)
        .flat_map(|i| {
            row(
                i,
                &if i % 4 == 0 {
                    format!("changed{i}")
                } else {
                    format!("n{i}")
                },
            )
        })
        .collect();
    let n = sql
        .bulk_write(&t, &cols, &key, changed.clone(), None)
        .await?;
    ensure_eq!(n, 3, "rows reported when 3 of 10 rows differ (ids 0, 4, 8)");
    ensure_eq!(count_rows(&sql, &t).await?, 10, "rows in the table");
    let want: Vec<Vec<Value>> = changed.chunks(4).map(|c| c.to_vec()).collect();
    ensure_eq!(rows_of(&sql, &t).await?, want, "rows after the upserts");
    Ok(())
}

/// Rows and `then` commit together; a bad row writes nothing.
async fn bulk_write_is_atomic_with_then(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create(&ctx, &sql, "bulk_atomic").await?;
    let marks = ctx.table("bulk_marks");
    sql.exec(&format!(
        "CREATE TABLE {marks} (k {text})",
        text = types(&ctx).text
    ))
    .await?;
    let cols = columns(&["id", "name", "score", "data"]);
    let then_sql = format!("INSERT INTO {marks} (k) VALUES (?)");
    let values: Vec<Value> = (0..5).flat_map(|i| row(i, "ok")).collect();
    let n = sql
        .bulk_write(
            &t,
            &cols,
            &[],
            values,
            Some((then_sql.as_str(), strata_host::params!["first"])),
        )
        .await
        .map_err(no_bulk_path)?;
    ensure_eq!(n, 5, "rows written with a `then` statement");
    ensure_eq!(count_rows(&sql, &marks).await?, 1, "`then` ran once");
    // Row 3 of the second write repeats id 2: a constraint violation.
    let bad: Vec<Value> = [10, 11, 2, 12]
        .iter()
        .flat_map(|i| row(*i, "bad"))
        .collect();
    let r = sql
        .bulk_write(
            &t,
            &cols,
            &[],
            bad,
            Some((then_sql.as_str(), strata_host::params!["second"])),
        )
        .await;
    match r {
        Err(e) if e.kind() == ErrorKind::Constraint => {}
        Err(e) => {
            return Err(Failure::new(format!(
                "a duplicate key in a bulk write: expected a `constraint` error, got `{}`: {e}",
                e.kind()
            )));
        }
        Ok(n) => {
            return Err(Failure::new(format!(
                "a bulk write with a duplicate key succeeded, reporting {n} rows"
            )));
        }
    }
    ensure_eq!(
        count_rows(&sql, &t).await?,
        5,
        "rows after a refused bulk write"
    );
    ensure_eq!(
        count_rows(&sql, &marks).await?,
        1,
        "`then` of a refused bulk write must not run"
    );
    ensure!(
        sql.get(&format!("SELECT id FROM {t} WHERE id = 10"), ())
            .await?
            .is_none(),
        "a row before the bad one was kept"
    );
    Ok(())
}

/// A bulk write inside a transaction ends with it; a refused one leaves it usable.
async fn bulk_write_inside_a_transaction(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    if !sql.has_transaction_bulk() {
        return Err(Failure::skip(
            "the plugin does not offer interface strata.sql.transaction_bulk.v1",
        ));
    }
    let t = create(&ctx, &sql, "bulk_tx").await?;
    let marks = ctx.table("bulk_tx_marks");
    sql.exec(&format!(
        "CREATE TABLE {marks} (k {text})",
        text = types(&ctx).text
    ))
    .await?;
    let cols = columns(&["id", "name", "score", "data"]);
    let then_sql = format!("INSERT INTO {marks} (k) VALUES (?)");
    // Rolled back with its transaction, a statement before it included.
    let tx = sql.begin().await?;
    tx.run(
        &format!("INSERT INTO {t} (id, name) VALUES (?, ?)"),
        strata_host::params![100, "before"],
    )
    .await?;
    let values: Vec<Value> = (0..5).flat_map(|i| row(i, "tx")).collect();
    let n = tx
        .bulk_write(
            &t,
            &cols,
            &[],
            values,
            Some((then_sql.as_str(), strata_host::params!["first"])),
        )
        .await?;
    ensure_eq!(n, 5, "rows a bulk write in a transaction reports");
    ensure_eq!(
        tx_count_rows(&tx, &t).await?,
        6,
        "rows the transaction sees after its bulk write"
    );
    ensure_eq!(
        tx_count_rows(&tx, &marks).await?,
        1,
        "`then` rows the transaction sees"
    );
    // A duplicate key (row 3 repeats id 2): refused, only its own rows taken back.
    let bad: Vec<Value> = [10, 11, 2, 12]
        .iter()
        .flat_map(|i| row(*i, "bad"))
        .collect();
    match tx
        .bulk_write(
            &t,
            &cols,
            &[],
            bad,
            Some((then_sql.as_str(), strata_host::params!["second"])),
        )
        .await
    {
        Err(e) if e.kind() == ErrorKind::Constraint => {}
        Err(e) => {
            return Err(Failure::new(format!(
                "a duplicate key in a bulk write inside a transaction: expected a `constraint` error, got `{}`: {e}",
                e.kind()
            )));
        }
        Ok(n) => {
            return Err(Failure::new(format!(
                "a bulk write with a duplicate key succeeded inside a transaction, reporting {n} rows"
            )));
        }
    }
    tx.run(
        &format!("INSERT INTO {t} (id, name) VALUES (?, ?)"),
        strata_host::params![200, "after"],
    )
    .await
    .map_err(|e| {
        Failure::new(format!(
            "the transaction is not usable after a refused bulk write: {e}"
        ))
    })?;
    ensure_eq!(
        tx_count_rows(&tx, &t).await?,
        7,
        "rows after a refused bulk write and one more INSERT (5 bulk + 2 inserted; none of the refused write's)"
    );
    ensure_eq!(
        tx_count_rows(&tx, &marks).await?,
        1,
        "`then` of a refused bulk write must not run"
    );
    tx.rollback().await?;
    ensure_eq!(
        count_rows(&sql, &t).await?,
        0,
        "rows after the transaction rolled back (its bulk write's included)"
    );
    ensure_eq!(
        count_rows(&sql, &marks).await?,
        0,
        "`then` rows after the transaction rolled back"
    );

    // Committed with its transaction, values intact.
    let tx = sql.begin().await?;
    let values: Vec<Value> = (0..50).flat_map(|i| row(i, &format!("c{i}"))).collect();
    let n = tx.bulk_write(&t, &cols, &[], values.clone(), None).await?;
    ensure_eq!(n, 50, "rows reported");
    tx.commit().await?;
    let want: Vec<Vec<Value>> = values.chunks(4).map(|c| c.to_vec()).collect();
    ensure_eq!(
        rows_of(&sql, &t).await?,
        want,
        "rows read back after the commit"
    );
    Ok(())
}

/// `bulk_read` streams what `query` returns, inside the transaction.
async fn bulk_read_inside_a_transaction(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    ensure!(
        sql.has_transaction_bulk(),
        "the plugin claims sql.bulk_read but does not offer interface strata.sql.transaction_bulk.v1"
    );
    let t = create(&ctx, &sql, "bulk_read").await?;
    let insert = format!("INSERT INTO {t} (id, name, score, data) VALUES (?, ?, ?, ?)");
    for i in 0..3000 {
        let [a, b, c, d] = row(i, &format!("r{i} ünï \"q\""));
        sql.run(&insert, strata_host::params![a, b, c, d]).await?;
    }
    let tx = sql.begin().await?;
    // A row of its own, not committed: the stream must see it.
    let [a, b, _, d] = row(5000, "mine");
    tx.run(&insert, strata_host::params![a, b, Value::Null, d])
        .await?;
    // Six wide rows (2 MiB each, bytes that differ along the value):
    // larger than any page or chunk a plugin is likely to stream in, and
    // more than it can have read ahead when the stream below is dropped
    // after its first batch.
    for id in 6000i64..6006 {
        let wide: Vec<u8> = (0..2 << 20)
            .map(|i: u32| (i * 7 + id as u32) as u8)
            .collect();
        let [a, b, c, _] = row(id, "wide");
        tx.run(&insert, strata_host::params![a, b, c, Value::from(wide)])
            .await?;
    }
    let query = format!("SELECT id, name, score, data FROM {t} ORDER BY id");
    let want: Vec<Vec<Value>> = tx
        .all(&query, ())
        .await?
        .into_iter()
        .map(|r| r.into_values())
        .collect();
    let mut stream = tx.bulk_read(&query).await.map_err(|e| {
        Failure::new(format!(
            "the plugin claims sql.bulk_read, but `bulk_read` answered: {e}"
        ))
    })?;
    ensure_eq!(
        stream.columns().to_vec(),
        columns(&["id", "name", "score", "data"]),
        "the stream's columns"
    );
    let mut got = Vec::new();
    loop {
        let batch = stream.next_batch().await?;
        if batch.is_empty() {
            break;
        }
        got.extend(batch.into_iter().map(|r| r.into_values()));
    }
    drop(stream);
    ensure_eq!(
        got.len(),
        3007,
        "rows streamed (3,000 committed + 7 of the transaction's own)"
    );
    ensure!(
        got == want,
        "the streamed rows differ from what `query` returns for the same statement"
    );
    // Usable after the stream, and after one dropped part way.
    let mut stream = tx.bulk_read(&query).await?.with_batch_size(100);
    ensure_eq!(
        stream.next_batch().await?.len(),
        100,
        "the first batch of 100"
    );
    drop(stream);
    let n = tx
        .run(
            &format!("DELETE FROM {t} WHERE id >= ?"),
            strata_host::params![2990],
        )
        .await
        .map_err(|e| {
            Failure::new(format!(
                "the transaction is not usable after a bulk read dropped part way: {e}"
            ))
        })?
        .changes;
    ensure_eq!(
        n,
        17,
        "rows the transaction deletes after the dropped stream"
    );
    ensure_eq!(
        tx_count_rows(&tx, &t).await?,
        2990,
        "rows the transaction sees"
    );
    tx.rollback().await?;
    ensure_eq!(count_rows(&sql, &t).await?, 3000, "rows after the rollback");
    Ok(())
}
