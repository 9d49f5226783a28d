//! Handles: concurrency, close, reopen, cancellation.

use std::time::Duration;

use strata_host::{Error, ErrorKind};
use strata_plugin_api::capabilities as cap;

use super::support::{count_rows, no_row, types};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq, expect_kind},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Sql,
            concurrent_readers_and_writers,
            "With `sql.concurrent`, clones of one handle read and write from many tasks at once: no call fails, no write is lost, counts never go backwards, read-modify-write transactions serialise or report `busy` (plugin-api `capabilities::SQL_CONCURRENT`).",
            cap::SQL_CONCURRENT,
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            calls_after_close_are_closed,
            "After `close`, every call on the handle and its clones fails with `closed`; closing again succeeds (SqlConnection::close: \"every later call returns Closed\")."
        ),
        case!(
            Suite::Sql,
            backend_close_closes_every_handle,
            "Closing the backend closes the handles it gave out: later calls fail with `closed` (kit `Plugin::close`: \"every handle it gave out answers closed after\"; plugin-api `Backend::close`)."
        ),
        case!(
            Suite::Sql,
            durable_across_reopen,
            "With `sql.durable`, committed rows are still there after the backend is closed and opened again from the same config (plugin-api `capabilities::SQL_DURABLE`).",
            cap::SQL_DURABLE
        ),
        case!(
            Suite::Sql,
            cancelled_call_leaves_the_handle_usable,
            "Dropping a call's future mid-flight (a caller's timeout) cancels it cleanly: the handle answers the next call at once, and a cancelled transaction's writes are not committed (rules: cancellation).",
            cap::SQL_TRANSACTIONS
        ),
    ]
}

/// Clones of one handle read and write from many tasks at once: every call
/// succeeds, readers never see the count go backwards, no write is lost, and
/// read-modify-write transactions serialise (or report `busy`, and succeed
/// when retried).
async fn concurrent_readers_and_writers(ctx: Ctx) -> CaseResult {
    const WRITERS: i64 = 8;
    const PER_WRITER: i64 = 50;
    const READERS: i64 = 8;
    const TX_TASKS: i64 = 5;
    const INCREMENTS: i64 = 20;
    let sql = ctx.sql().await?;
    let ty = types(&ctx);
    let t = ctx.table("concurrent");
    sql.exec(&format!(
        "CREATE TABLE {t} (w {int}, i {int})",
        int = ty.int
    ))
    .await?;

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (sql, t) = (sql.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let r = sql
                    .run(&format!("INSERT INTO {t} (w, i) VALUES (?, ?)"), [w, i])
                    .await?;
                ensure_eq!(r.changes, 1, "writer {w}, insert {i}");
            }
            Ok::<(), Failure>(())
        }));
    }
    for reader in 0..READERS {
        let (sql, t) = (sql.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..25 {
                let n = count_rows(&sql, &t).await?;
                ensure!(
                    (last..=WRITERS * PER_WRITER).contains(&n),
                    "reader {reader}: count {n} after {last} (must not go backwards or exceed the total)"
                );
                last = n;
                let w = reader % WRITERS;
                if let Some(row) = sql.get(&format!("SELECT w, i FROM {t} WHERE w = ? ORDER BY i DESC"), [w]).await? {
                    let (rw, ri): (i64, i64) = (row.get("w")?, row.get("i")?);
                    ensure!(rw == w && (0..PER_WRITER).contains(&ri), "reader {reader}: odd row ({rw}, {ri})");
                }
                tokio::task::yield_now().await;
            }
            Ok::<(), Failure>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| Failure::new(format!("a task panicked: {e}")))??;
    }
    ensure_eq!(
        count_rows(&sql, &t).await?,
        WRITERS * PER_WRITER,
        "rows after all writers finished"
    );
    let per_writer: Vec<(i64, i64)> = sql
        .all(
            &format!("SELECT w, COUNT(DISTINCT i) AS n FROM {t} GROUP BY w ORDER BY w"),
            (),
        )
        .await?
        .iter()
        .map(|r| Ok::<_, Error>((r.get("w")?, r.get("n")?)))
        .collect::<Result<_, _>>()?;
    ensure_eq!(
        per_writer,
        (0..WRITERS).map(|w| (w, PER_WRITER)).collect::<Vec<_>>(),
        "distinct rows per writer"
    );

    // Read-modify-write in transactions from several tasks.
    let c = ctx.table("counter");
    sql.exec(&format!(
        "CREATE TABLE {c} (id {int} PRIMARY KEY, n {int})",
        int = ty.int
    ))
    .await?;
    sql.run(&format!("INSERT INTO {c} (id, n) VALUES (1, 0)"), ())
        .await?;
    let mut tasks = Vec::new();
    for task in 0..TX_TASKS {
        let (sql, c) = (sql.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                let mut retries = 0u32;
                loop {
                    let c2 = c.clone();
                    let result = sql
                        .transaction(move |tx| {
                            Box::pin(async move {
                                let n: i64 = match tx
                                    .get(&format!("SELECT n FROM {c2} WHERE id = 1"), ())
                                    .await?
                                {
                                    Some(row) => row.get("n")?,
                                    None => {
                                        return Err(Error::Decode {
                                            column: "n".into(),
                                            message: "the counter row is missing".into(),
                                        });
                                    }
                                };
                                tx.run(&format!("UPDATE {c2} SET n = ? WHERE id = 1"), [n + 1])
                                    .await?;
                                Ok::<(), Error>(())
                            })
                        })
                        .await;
                    match result {
                        Ok(()) => break,
                        Err(e) if e.kind() == ErrorKind::Busy && retries < 200 => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        Err(e) => return Err(Failure::new(format!("counter task {task}: {e}"))),
                    }
                }
            }
            Ok::<(), Failure>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| Failure::new(format!("a counter task panicked: {e}")))??;
    }
    let n: i64 = sql
        .get(&format!("SELECT n FROM {c} WHERE id = 1"), ())
        .await?
        .ok_or_else(|| no_row("counter"))?
        .get("n")?;
    ensure_eq!(
        n,
        TX_TASKS * INCREMENTS,
        "counter after concurrent read-modify-write transactions (lost updates?)"
    );
    Ok(())
}

/// After `close`, every call on the handle (and its clones) fails with
/// `closed`; closing again is fine.
async fn calls_after_close_are_closed(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    sql.get("SELECT 1", ()).await?;
    let clone = sql.clone();
    sql.close().await?;
    expect_kind(
        sql.exec("SELECT 1").await,
        ErrorKind::Closed,
        "exec after close",
    )?;
    expect_kind(
        sql.run("SELECT ?", [1]).await,
        ErrorKind::Closed,
        "run after close",
    )?;
    expect_kind(
        sql.get("SELECT 1", ()).await,
        ErrorKind::Closed,
        "get after close",
    )?;
    expect_kind(
        sql.all("SELECT 1", ()).await,
        ErrorKind::Closed,
        "all after close",
    )?;
    if ctx.has(cap::SQL_STREAMING) {
        expect_kind(
            sql.stream("SELECT 1", ()).await.map(|_| ()),
            ErrorKind::Closed,
            "stream after close",
        )?;
    }
    if ctx.has(cap::SQL_TRANSACTIONS) {
        expect_kind(
            sql.begin().await.map(|_| ()),
            ErrorKind::Closed,
            "begin after close",
        )?;
        expect_kind(
            sql.transaction(|_tx| Box::pin(async move { Ok::<(), Error>(()) }))
                .await,
            ErrorKind::Closed,
            "transaction after close",
        )?;
    }
    expect_kind(
        clone.get("SELECT 1", ()).await,
        ErrorKind::Closed,
        "get on a clone after close",
    )?;
    sql.close().await?;
    clone.close().await?;
    Ok(())
}

/// Closing the backend closes the SQL handles it gave out.
async fn backend_close_closes_every_handle(ctx: Ctx) -> CaseResult {
    let backend = ctx.backend().await?;
    let sql = backend.sql()?;
    let clone = sql.clone();
    sql.get("SELECT 1", ()).await?;
    backend.close().await?;
    expect_kind(
        sql.get("SELECT 1", ()).await,
        ErrorKind::Closed,
        "get after the backend was closed",
    )?;
    expect_kind(
        clone.run("SELECT 1", ()).await,
        ErrorKind::Closed,
        "run on a clone after the backend was closed",
    )?;
    expect_kind(
        sql.exec("SELECT 1").await,
        ErrorKind::Closed,
        "exec after the backend was closed",
    )?;
    // A handle asked for after the close is closed too (or refused).
    match backend.sql() {
        Ok(late) => expect_kind(
            late.get("SELECT 1", ()).await,
            ErrorKind::Closed,
            "get on a handle taken after the backend was closed",
        )?,
        Err(e) => ensure!(
            e.kind() == ErrorKind::Closed,
            "asking a closed backend for its SQL handle: expected `closed`, got `{}`: {e}",
            e.kind()
        ),
    }
    Ok(())
}

/// Committed rows survive closing the backend and opening it again.
async fn durable_across_reopen(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let ty = types(&ctx);
    let t = ctx.table("durable");
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, v {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let insert = format!("INSERT INTO {t} (id, v) VALUES (?, ?)");
    sql.run(&insert, strata_host::params![1, "autocommit"])
        .await?;
    let ins = insert.clone();
    sql.transaction(move |tx| {
        Box::pin(async move {
            tx.run(&ins, strata_host::params![2, "committed"]).await?;
            Ok::<(), Error>(())
        })
    })
    .await?;
    let tx = sql.begin().await?;
    tx.run(&insert, strata_host::params![3, "rolled back"])
        .await?;
    tx.rollback().await?;
    drop(sql);
    let sql = ctx.reopen().await?.sql()?;
    let rows: Vec<(i64, String)> = sql
        .all(&format!("SELECT id, v FROM {t} ORDER BY id"), ())
        .await
        .map_err(|e| Failure::from(e).context("reading the table after reopening"))?
        .iter()
        .map(|r| Ok::<_, Error>((r.get("id")?, r.get("v")?)))
        .collect::<Result<_, _>>()?;
    ensure_eq!(
        rows,
        vec![(1, "autocommit".to_string()), (2, "committed".to_string())],
        "rows after closing and reopening the backend"
    );
    Ok(())
}

/// Calls dropped mid-flight leave the handle usable and commit nothing
/// half-done.
async fn cancelled_call_leaves_the_handle_usable(ctx: Ctx) -> CaseResult {
    let limit = Duration::from_secs(10);
    let sql = ctx.sql().await?;
    let ty = types(&ctx);
    let t = ctx.table("cancelled");
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int}, v {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    // A slow query, abandoned after 20 ms.
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT COUNT(*) AS n FROM c";
    let _ = tokio::time::timeout(Duration::from_millis(20), sql.get(slow, ())).await;
    let one = tokio::time::timeout(limit, sql.get("SELECT 1 AS one", ()))
        .await
        .map_err(|_| Failure::new("a query after a cancelled one did not finish within 10 s"))??
        .ok_or_else(|| no_row("SELECT 1"))?
        .get::<i64>("one")?;
    ensure_eq!(one, 1, "a query after a cancelled one");
    // One statement inserting 20,000 rows, abandoned after 1 ms: a statement
    // is atomic, so any reader sees none or all of its rows.
    let insert = format!(
        "INSERT INTO {t} (id, v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x, 'bulk' FROM c"
    );
    let _ = tokio::time::timeout(Duration::from_millis(1), sql.run(&insert, ())).await;
    let n = tokio::time::timeout(limit, count_rows(&sql, &t))
        .await
        .map_err(|_| {
            Failure::new("a count after a cancelled insert did not finish within 10 s")
        })??;
    ensure!(
        n == 0 || n == 20_000,
        "{n} rows of a cancelled 20,000-row INSERT are visible: a statement must be all or nothing"
    );
    // A transaction abandoned while its closure waits: rolled back, and
    // the handle can write again at once (no lock left behind).
    let t2 = t.clone();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        sql.transaction(move |tx| {
            Box::pin(async move {
                tx.run(
                    &format!("INSERT INTO {t2} (id, v) VALUES (?, ?)"),
                    strata_host::params![-1, "abandoned"],
                )
                .await?;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<(), Error>(())
            })
        }),
    )
    .await;
    ensure!(
        abandoned.is_err(),
        "the transaction was expected to be abandoned by its timeout"
    );
    let t3 = t.clone();
    tokio::time::timeout(
        limit,
        sql.transaction(move |tx| {
            Box::pin(async move {
                tx.run(
                    &format!("INSERT INTO {t3} (id, v) VALUES (?, ?)"),
                    strata_host::params![-2, "after"],
                )
                .await?;
                Ok::<(), Error>(())
            })
        }),
    )
    .await
    .map_err(|_| {
        Failure::new(
            "a transaction after an abandoned one did not commit within 10 s (lock leaked?)",
        )
    })??;
    let mut ids: Vec<i64> = Vec::new();
    for r in sql
        .all(&format!("SELECT id FROM {t} WHERE id < 0 ORDER BY id"), ())
        .await?
    {
        ids.push(r.get("id")?);
    }
    ensure_eq!(
        ids,
        vec![-2],
        "rows of the abandoned transaction (-1) and of the next one (-2)"
    );
    Ok(())
}
