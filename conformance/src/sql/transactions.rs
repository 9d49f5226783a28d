//! Transactions and savepoints.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;
use strata_host::{Error, ErrorKind, Value, params};
use strata_plugin_api::capabilities as cap;

use super::support::{count_rows, create_key_table, keys, tx_count_rows, tx_keys, types};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq, expect_kind},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Sql,
            transaction_commit,
            "Rows written in a transaction are visible inside it and, after commit, to the handle (SqlConnection::begin, SqlTransaction::commit; plugin-api `sql` module).",
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            transaction_isolation_across_handles,
            "Two backends opened from one config share storage when the backend is durable: one does not see the other's uncommitted rows, and sees them after commit (rules: handles). Skipped at run time when the two backends do not share storage (in memory); a failure when `sql.durable` is claimed.",
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            transaction_rollback_on_err,
            "`rollback` undoes every write of the transaction (the host rolls back when the closure returns Err) (SqlTransaction::rollback).",
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            transaction_rollback_on_drop,
            "Dropping a transaction without commit rolls it back and releases its lock at once: the handle can begin a new one (plugin-api `SqlTransaction`: \"Dropping it without commit rolls it back\").",
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            transaction_rollback_on_panic,
            "A transaction dropped while a panic unwinds is rolled back and the handle keeps working (SqlTransaction drop; kit guards).",
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            explicit_commit_and_rollback,
            "`commit` makes writes durable, `rollback` discards them; a transaction sees its own writes, and `exec` scripts run inside it (SqlTransaction).",
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            transaction_sees_its_own_ddl,
            "A table created inside a transaction is usable there by parameterised statements, disappears with rollback, stays after commit (SqlTransaction runs on one connection).",
            cap::SQL_TRANSACTIONS
        ),
        case!(
            Suite::Sql,
            nested_savepoints,
            "Savepoints nest by depth: `savepoint` returns the new depth, `release(d)` keeps the work since d, `rollback_to(d)` undoes it; both end d and deeper ones (plugin-api `SqlTransaction`).",
            cap::SQL_TRANSACTIONS,
            cap::SQL_SAVEPOINTS
        ),
        case!(
            Suite::Sql,
            error_inside_transaction_rolls_back,
            "A constraint violation inside a transaction is a `constraint` error; rolling back undoes the transaction's earlier writes and the handle stays usable (ErrorKind::Constraint).",
            cap::SQL_TRANSACTIONS
        ),
    ]
}

/// Rows written in `transaction` are visible inside it and after it
/// commits, and the closure's value is returned.
async fn transaction_commit(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create_key_table(&ctx, &sql, "commit").await?;
    let t2 = t.clone();
    let value = sql
        .transaction(move |tx| {
            Box::pin(async move {
                for k in ["a", "b", "c"] {
                    tx.run(&format!("INSERT INTO {t2} (k) VALUES (?)"), [k])
                        .await?;
                }
                ensure_eq!(
                    tx_count_rows(tx, &t2).await?,
                    3,
                    "rows seen inside the transaction"
                );
                Ok::<_, Failure>(42)
            })
        })
        .await?;
    ensure_eq!(value, 42, "the closure's value");
    ensure_eq!(keys(&sql, &t).await?, ["a", "b", "c"], "rows after commit");
    Ok(())
}

/// A second backend opened from the same config does not see a
/// transaction's rows before commit and sees them after. Backends that do
/// not share storage (in memory) skip, saying so — unless they claim
/// `sql.durable`, which promises shared, lasting storage.
async fn transaction_isolation_across_handles(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create_key_table(&ctx, &sql, "isolation").await?;
    let other = ctx.sql().await?;
    match other.get(&format!("SELECT COUNT(*) FROM {t}"), ()).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound && !ctx.has(cap::SQL_DURABLE) => {
            return Err(Failure::skip(
                "a second backend opened from the same config does not see the first one's tables: they do not share storage (in memory)",
            ));
        }
        Err(e) => {
            return Err(Failure::from(e).context(
                "a second backend of a `sql.durable` backend cannot read a table the first created",
            ));
        }
    }
    let tx = sql.begin().await?;
    for k in ["a", "b", "c"] {
        tx.run(&format!("INSERT INTO {t} (k) VALUES (?)"), [k])
            .await?;
    }
    ensure_eq!(
        tx_count_rows(&tx, &t).await?,
        3,
        "rows seen inside the transaction"
    );
    let seen = tokio::time::timeout(Duration::from_secs(10), count_rows(&other, &t))
        .await
        .map_err(|_| {
            Failure::new(
                "another backend's read waited more than 10 s on an open transaction (readers must not block on writers)",
            )
        })??;
    ensure_eq!(seen, 0, "uncommitted rows seen by another backend");
    tx.commit().await?;
    ensure_eq!(
        keys(&other, &t).await?,
        ["a", "b", "c"],
        "rows after commit, seen by another backend"
    );
    Ok(())
}

/// A closure returning `Err` rolls the transaction back and its error is
/// passed through unchanged.
async fn transaction_rollback_on_err(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create_key_table(&ctx, &sql, "rb_err").await?;
    sql.run(&format!("INSERT INTO {t} (k) VALUES (?)"), ["before"])
        .await?;
    let t2 = t.clone();
    let result = sql
        .transaction(move |tx| {
            Box::pin(async move {
                tx.run(&format!("INSERT INTO {t2} (k) VALUES (?)"), ["doomed"])
                    .await?;
                tx.run(&format!("DELETE FROM {t2} WHERE k = ?"), ["before"])
                    .await?;
                ensure_eq!(
                    tx_keys(tx, &t2).await?,
                    ["doomed"],
                    "rows inside the transaction"
                );
                Err::<(), _>(Failure::new("deliberate error"))
            })
        })
        .await;
    match result {
        Err(f) if f.message() == "deliberate error" => {}
        other => {
            return Err(Failure::new(format!(
                "expected the closure's own error back, got {other:?}"
            )));
        }
    }
    ensure_eq!(
        keys(&sql, &t).await?,
        ["before"],
        "rows after the rolled-back transaction"
    );
    Ok(())
}

/// A transaction dropped without commit is rolled back, and the handle can
/// start a new one right away.
async fn transaction_rollback_on_drop(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create_key_table(&ctx, &sql, "rb_drop").await?;
    let insert = format!("INSERT INTO {t} (k) VALUES (?)");
    let tx = sql.begin().await?;
    tx.run(&insert, ["doomed"]).await?;
    ensure_eq!(
        tx_count_rows(&tx, &t).await?,
        1,
        "rows inside the transaction"
    );
    drop(tx);
    ensure_eq!(
        count_rows(&sql, &t).await?,
        0,
        "rows after dropping the transaction"
    );
    let tx = tokio::time::timeout(Duration::from_secs(10), sql.begin())
        .await
        .map_err(|_| {
            Failure::new(
                "begin after a dropped transaction did not finish within 10 s (lock leaked?)",
            )
        })??;
    tx.run(&insert, ["kept"]).await?;
    tx.commit().await?;
    ensure_eq!(
        keys(&sql, &t).await?,
        ["kept"],
        "rows after a new transaction committed"
    );
    Ok(())
}

/// A closure that panics rolls the transaction back (the transaction is
/// dropped while unwinding), and the handle still works.
async fn transaction_rollback_on_panic(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create_key_table(&ctx, &sql, "rb_panic").await?;
    let insert = format!("INSERT INTO {t} (k) VALUES (?)");
    let ins = insert.clone();
    let caught = AssertUnwindSafe(sql.transaction(move |tx| {
        Box::pin(async move {
            let r = tx.run(&ins, ["doomed"]).await?;
            if r.changes == 1 {
                panic!("deliberate panic inside a transaction (conformance case transaction_rollback_on_panic)");
            }
            Ok::<(), Failure>(())
        })
    }))
    .catch_unwind()
    .await;
    ensure!(
        caught.is_err(),
        "the transaction should have panicked, got {caught:?}"
    );
    let n = tokio::time::timeout(Duration::from_secs(10), count_rows(&sql, &t))
        .await
        .map_err(|_| {
            Failure::new("reading after the panic did not finish within 10 s (lock leaked?)")
        })??;
    ensure_eq!(n, 0, "rows after the panicked transaction");
    sql.run(&insert, ["plain"]).await?;
    let ins = insert.clone();
    sql.transaction(move |tx| {
        Box::pin(async move {
            tx.run(&ins, ["in tx"]).await?;
            Ok::<(), Failure>(())
        })
    })
    .await?;
    ensure_eq!(
        keys(&sql, &t).await?,
        ["in tx", "plain"],
        "rows written after the panic"
    );
    Ok(())
}

/// A table created inside a transaction is usable there by parameterized
/// statements (a backend that prepares statements on another connection
/// would not see it), disappears with a rollback and stays after a commit.
async fn transaction_sees_its_own_ddl(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let text = types(&ctx).text;
    for (name, commit) in [("ddl_commit", true), ("ddl_rollback", false)] {
        let t = ctx.table(name);
        let tx = sql.begin().await?;
        tx.exec(&format!("CREATE TABLE {t} (k {text})")).await?;
        tx.run(&format!("INSERT INTO {t} (k) VALUES (?)"), ["inside"])
            .await?;
        let got = tx
            .get(&format!("SELECT k FROM {t} WHERE k = ?"), ["inside"])
            .await?
            .ok_or_else(|| Failure::new("the row written inside the transaction is not there"))?;
        ensure_eq!(
            got.get::<String>("k")?,
            "inside",
            "row read inside the transaction"
        );
        if commit {
            tx.commit().await?;
            ensure_eq!(keys(&sql, &t).await?, ["inside"], "rows after commit");
        } else {
            tx.rollback().await?;
            let gone = sql.get(&format!("SELECT k FROM {t}"), ()).await;
            ensure!(
                gone.is_err(),
                "the table created in a rolled-back transaction still exists"
            );
        }
    }
    Ok(())
}

/// `begin` + `commit` keeps the writes; `begin` + `rollback` discards them;
/// a transaction sees its own writes before it ends.
async fn explicit_commit_and_rollback(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create_key_table(&ctx, &sql, "explicit").await?;
    let insert = format!("INSERT INTO {t} (k) VALUES (?)");

    let tx = sql.begin().await?;
    ensure_eq!(tx.depth(), 0, "depth of a transaction");
    tx.run(&insert, ["committed 1"]).await?;
    tx.run(&insert, ["committed 2"]).await?;
    ensure_eq!(
        tx_keys(&tx, &t).await?,
        ["committed 1", "committed 2"],
        "own writes inside the transaction"
    );
    tx.commit().await?;
    ensure_eq!(
        keys(&sql, &t).await?,
        ["committed 1", "committed 2"],
        "rows after commit"
    );

    let tx = sql.begin().await?;
    tx.run(&insert, ["rolled back"]).await?;
    tx.run(&format!("DELETE FROM {t} WHERE k = ?"), ["committed 1"])
        .await?;
    ensure_eq!(
        tx_keys(&tx, &t).await?,
        ["committed 2", "rolled back"],
        "own writes inside the transaction"
    );
    tx.rollback().await?;
    ensure_eq!(
        keys(&sql, &t).await?,
        ["committed 1", "committed 2"],
        "rows after rollback"
    );

    let tx = sql.begin().await?;
    tx.exec(&format!(
        "INSERT INTO {t} (k) VALUES ('exec 1'); INSERT INTO {t} (k) VALUES ('exec 2')"
    ))
    .await?;
    tx.commit().await?;
    ensure_eq!(
        count_rows(&sql, &t).await?,
        4,
        "rows after a committed exec script"
    );
    Ok(())
}

/// Savepoints nest: a released one keeps its writes, one rolled back or
/// dropped loses them (a dropped one before the parent's next statement),
/// depth-2 savepoints work inside depth-1 ones, `nested` rolls back on `Err`,
/// and only the outer commit makes it all durable.
async fn nested_savepoints(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = create_key_table(&ctx, &sql, "savepoints").await?;
    let insert = format!("INSERT INTO {t} (k) VALUES (?)");

    let mut tx = sql.begin().await?;
    tx.run(&insert, ["a"]).await?;

    // Released savepoint: its write stays.
    let sp = tx.savepoint().await?;
    ensure_eq!(sp.depth(), 1, "depth of the first savepoint");
    sp.run(&insert, ["b"]).await?;
    sp.commit().await?;
    ensure_eq!(
        tx_keys(&tx, &t).await?,
        ["a", "b"],
        "after releasing savepoint 1"
    );

    // Rolled-back savepoint: its write goes, the parent's stay.
    let sp = tx.savepoint().await?;
    ensure_eq!(
        sp.depth(),
        1,
        "depth of a savepoint after the previous one ended"
    );
    sp.run(&insert, ["c"]).await?;
    ensure_eq!(
        tx_keys(&sp, &t).await?,
        ["a", "b", "c"],
        "inside savepoint 2"
    );
    sp.rollback().await?;
    ensure_eq!(
        tx_keys(&tx, &t).await?,
        ["a", "b"],
        "after rolling back savepoint 2"
    );

    // Dropped savepoint: rolled back before the parent's next statement.
    let sp = tx.savepoint().await?;
    sp.run(&insert, ["d"]).await?;
    drop(sp);
    ensure_eq!(
        tx_keys(&tx, &t).await?,
        ["a", "b"],
        "after dropping savepoint 3 without commit"
    );

    // Nesting: depth 2 inside depth 1.
    let mut outer = tx.savepoint().await?;
    ensure_eq!(
        outer.depth(),
        1,
        "depth of the outer savepoint after a dropped one"
    );
    outer.run(&insert, ["e"]).await?;
    let inner = outer.savepoint().await?;
    ensure_eq!(inner.depth(), 2, "depth of a nested savepoint");
    inner.run(&insert, ["f"]).await?;
    inner.commit().await?;
    let inner = outer.savepoint().await?;
    ensure_eq!(inner.depth(), 2, "depth of the second nested savepoint");
    inner.run(&insert, ["g"]).await?;
    inner.rollback().await?;
    ensure_eq!(
        tx_keys(&outer, &t).await?,
        ["a", "b", "e", "f"],
        "inside the outer savepoint"
    );
    let inner = outer.savepoint().await?;
    inner.run(&insert, ["h"]).await?;
    drop(inner); // rolled back before the outer savepoint's release
    outer.commit().await?;
    ensure_eq!(
        tx_keys(&tx, &t).await?,
        ["a", "b", "e", "f"],
        "after releasing the outer savepoint"
    );

    // `nested`: Err rolls back, Ok releases.
    let ins = insert.clone();
    let result = tx
        .nested(move |sp| {
            Box::pin(async move {
                sp.run(&ins, ["i"]).await?;
                Err::<(), _>(Failure::new("deliberate error"))
            })
        })
        .await;
    match result {
        Err(f) if f.message() == "deliberate error" => {}
        other => {
            return Err(Failure::new(format!(
                "expected the nested closure's error back, got {other:?}"
            )));
        }
    }
    let ins = insert.clone();
    let depth = tx
        .nested(move |sp| {
            Box::pin(async move {
                sp.run(&ins, ["j"]).await?;
                Ok::<_, Failure>(sp.depth())
            })
        })
        .await?;
    ensure_eq!(depth, 1, "depth inside `nested`");
    ensure_eq!(
        tx_keys(&tx, &t).await?,
        ["a", "b", "e", "f", "j"],
        "before the outer commit"
    );
    tx.commit().await?;
    ensure_eq!(
        keys(&sql, &t).await?,
        ["a", "b", "e", "f", "j"],
        "rows after the outer commit"
    );
    Ok(())
}

/// A constraint violation inside `transaction` comes back as a `constraint`
/// error and undoes the transaction's earlier writes; committed rows stay.
async fn error_inside_transaction_rolls_back(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("tx_error");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, v {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let insert = format!("INSERT INTO {t} (id, v) VALUES (?, ?)");
    sql.run(&insert, params![1, "before"]).await?;
    let ins = insert.clone();
    let result = sql
        .transaction(move |tx| {
            Box::pin(async move {
                tx.run(&ins, params![2, "in tx"]).await?;
                tx.run(&ins, params![3, "in tx too"]).await?;
                tx.run(&ins, params![1, "duplicate"]).await?;
                Ok::<(), Error>(())
            })
        })
        .await;
    expect_kind(
        result,
        ErrorKind::Constraint,
        "duplicate key inside a transaction",
    )?;
    let rows = sql
        .all(&format!("SELECT id, v FROM {t} ORDER BY id"), ())
        .await?;
    let got: Vec<Vec<Value>> = rows.into_iter().map(|r| r.into_values()).collect();
    ensure_eq!(
        got,
        vec![vec![Value::Integer(1), Value::from("before")]],
        "rows after the failed transaction"
    );
    // The handle is fine afterwards.
    let ins = insert.clone();
    sql.transaction(move |tx| {
        Box::pin(async move {
            tx.run(&ins, params![2, "after"]).await?;
            Ok::<(), Error>(())
        })
    })
    .await?;
    ensure_eq!(
        count_rows(&sql, &t).await?,
        2,
        "rows after a later transaction"
    );
    Ok(())
}
