//! Statements and their results: `exec`, `run`, `get`, `all`.

use strata_host::{Value, params};
use strata_plugin_api::capabilities as cap;

use super::support::{count_rows, no_row, types};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Sql,
            exec_runs_several_statements,
            "`exec` runs a script of one or more statements separated by `;`, all of them, in order (SqlConnection::exec; plugin-api `sql` module, kit SqlBackend::exec)."
        ),
        case!(
            Suite::Sql,
            run_reports_changes,
            "`run` reports in `changes` the rows the statement inserted, updated or deleted, 0 when none (RunResult::changes; plugin-api `sql` module)."
        ),
        case!(
            Suite::Sql,
            run_reports_last_insert_rowid,
            "With `sql.last_insert_rowid`, `run` of an INSERT reports the rowid it assigned in `last_insert_rowid`, without RETURNING (plugin-api `capabilities::SQL_LAST_INSERT_ROWID`, RunResult).",
            cap::SQL_LAST_INSERT_ROWID
        ),
        case!(
            Suite::Sql,
            last_insert_rowid_from_returning,
            "With `sql.last_insert_rowid.returning`, `run` of `INSERT … RETURNING id` reports the first column of the last row returned as `last_insert_rowid` (plugin-api `capabilities::SQL_LAST_INSERT_ROWID_RETURNING`).",
            cap::SQL_LAST_INSERT_ROWID_RETURNING
        ),
        case!(
            Suite::Sql,
            get_without_row_is_none,
            "A query matching nothing returns zero rows (`get` → None, `all` → empty), never an error (SqlConnection::query; plugin-api `sql` module)."
        ),
        case!(
            Suite::Sql,
            all_keeps_order,
            "`query` returns rows in the order the statement produces them (ORDER BY is honoured) with the column names as selected (Rows; plugin-api `sql` module)."
        ),
        case!(
            Suite::Sql,
            get_returns_first_row_only,
            "`query` with `max_rows` 1 (what `get` sends) returns the first row in ORDER BY order, with its column names (SqlConnection::query, `max_rows`; plugin-api `sql` module)."
        ),
        case!(
            Suite::Sql,
            run_with_returning_or_select,
            "`run` of a SELECT reports 0 changes (not the previous statement's); `run` of INSERT … RETURNING reports its insert; `query` of INSERT … RETURNING returns the row (SqlConnection::run/query)."
        ),
        case!(
            Suite::Sql,
            query_starting_with_a_comment_returns_rows,
            "Whether a statement returns rows is decided from the prepared statement, not from its first word: a query that starts with a comment or a WITH still returns its rows; `run` of it reports 0 changes (rules: statements)."
        ),
        case!(
            Suite::Sql,
            duplicate_and_computed_column_names,
            "Rows carry every selected column in order, including duplicate names and computed expressions with an alias (Rows::columns; plugin-api `sql` module)."
        ),
    ]
}

/// `exec` runs a script of several statements.
async fn exec_runs_several_statements(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let (a, b) = (ctx.table("a"), ctx.table("b"));
    let t = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {a} (x {int}); CREATE TABLE {b} (y {int});
         INSERT INTO {a} VALUES (1); INSERT INTO {a} VALUES (2); INSERT INTO {b} VALUES (3);",
        int = t.int
    ))
    .await?;
    let n: i64 = sql
        .get(&format!("SELECT COUNT(*) AS n FROM {a}"), ())
        .await?
        .ok_or_else(|| Failure::new("no row"))?
        .get_idx(0)?;
    ensure_eq!(n, 2);
    let y: i64 = sql
        .get(&format!("SELECT y FROM {b}"), ())
        .await?
        .ok_or_else(|| Failure::new("no row"))?
        .get("y")?;
    ensure_eq!(y, 3);
    Ok(())
}

/// `run` reports how many rows an insert, update and delete touched.
async fn run_reports_changes(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("changes");
    sql.exec(&format!(
        "CREATE TABLE {t} (k {int}, v {text})",
        int = types(&ctx).int,
        text = types(&ctx).text
    ))
    .await?;
    for k in 0..5 {
        let r = sql
            .run(
                &format!("INSERT INTO {t} (k, v) VALUES (?, ?)"),
                params![k, "x"],
            )
            .await?;
        ensure_eq!(r.changes, 1, "insert changes");
    }
    let r = sql
        .run(
            &format!("UPDATE {t} SET v = ? WHERE k >= ?"),
            params!["y", 2],
        )
        .await?;
    ensure_eq!(r.changes, 3, "update changes");
    let r = sql
        .run(&format!("DELETE FROM {t} WHERE k < ?"), [1])
        .await?;
    ensure_eq!(r.changes, 1, "delete changes");
    let r = sql
        .run(&format!("UPDATE {t} SET v = 'z' WHERE k = ?"), [999])
        .await?;
    ensure_eq!(r.changes, 0, "update of no row");
    Ok(())
}

/// `run` reports the rowid of the row it inserted.
async fn run_reports_last_insert_rowid(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("rowid");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {pk}, v {text})",
        pk = ty.autoinc_pk,
        text = ty.text
    ))
    .await?;
    let first = sql
        .run(&format!("INSERT INTO {t} (v) VALUES (?)"), ["a"])
        .await?;
    let second = sql
        .run(&format!("INSERT INTO {t} (v) VALUES (?)"), ["b"])
        .await?;
    let (Some(a), Some(b)) = (first.last_insert_rowid, second.last_insert_rowid) else {
        return Err(Failure::new(format!(
            "no last_insert_rowid: {first:?}, {second:?}"
        )));
    };
    ensure!(b > a, "rowids must increase: {a} then {b}");
    let v: String = sql
        .get(&format!("SELECT v FROM {t} WHERE id = ?"), [b])
        .await?
        .ok_or_else(|| Failure::new("row not found by its rowid"))?
        .get("v")?;
    ensure_eq!(v, "b");
    Ok(())
}

/// `get` of a query matching nothing is `None`, not an error.
async fn get_without_row_is_none(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("empty");
    sql.exec(&format!(
        "CREATE TABLE {t} (x {int})",
        int = types(&ctx).int
    ))
    .await?;
    let row = sql
        .get(&format!("SELECT x FROM {t} WHERE x = ?"), [1])
        .await?;
    ensure!(row.is_none(), "expected no row, got {row:?}");
    let all = sql.all(&format!("SELECT x FROM {t}"), ()).await?;
    ensure!(all.is_empty(), "expected no rows, got {}", all.len());
    Ok(())
}

/// `all` returns rows in the query's ORDER BY order, with column names.
async fn all_keeps_order(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("order");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (k {int}, name {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    for k in [5, 3, 9, 1, 7] {
        sql.run(
            &format!("INSERT INTO {t} VALUES (?, ?)"),
            params![k, format!("n{k}")],
        )
        .await?;
    }
    let rows = sql
        .all(&format!("SELECT k, name FROM {t} ORDER BY k DESC"), ())
        .await?;
    let ks: Vec<i64> = rows.iter().map(|r| r.get("k")).collect::<Result<_, _>>()?;
    ensure_eq!(ks, vec![9, 7, 5, 3, 1]);
    ensure_eq!(
        rows[0].columns(),
        &["k".to_string(), "name".to_string()][..]
    );
    ensure_eq!(rows[4].get::<String>("name")?, "n1");
    Ok(())
}

/// `get` on a query matching several rows returns the first in ORDER BY order.
async fn get_returns_first_row_only(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("first");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (k {int}, name {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    for k in [3, 5, 1, 4, 2] {
        sql.run(
            &format!("INSERT INTO {t} (k, name) VALUES (?, ?)"),
            params![k, format!("n{k}")],
        )
        .await?;
    }
    let row = sql
        .get(&format!("SELECT k, name FROM {t} ORDER BY k DESC"), ())
        .await?
        .ok_or_else(|| no_row("descending"))?;
    ensure_eq!(
        row.values(),
        &[Value::Integer(5), Value::from("n5")][..],
        "first row, descending"
    );
    let row = sql
        .get(
            &format!("SELECT k, name FROM {t} WHERE k > ? ORDER BY k"),
            [1],
        )
        .await?
        .ok_or_else(|| no_row("ascending"))?;
    ensure_eq!(
        row.values(),
        &[Value::Integer(2), Value::from("n2")][..],
        "first row, ascending"
    );
    ensure_eq!(
        row.columns(),
        &["k".to_string(), "name".to_string()][..],
        "columns"
    );
    Ok(())
}

/// `run` of a SELECT steps it without error and reports no changes (not the
/// previous statement's); `run` of `INSERT … RETURNING` reports its insert.
async fn run_with_returning_or_select(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("run_select");
    sql.exec(&format!(
        "CREATE TABLE {t} (k {int})",
        int = types(&ctx).int
    ))
    .await?;
    let r = sql
        .run(&format!("INSERT INTO {t} (k) VALUES (1), (2), (3)"), ())
        .await?;
    ensure_eq!(r.changes, 3, "changes of the insert");
    let r = sql.run(&format!("SELECT k FROM {t}"), ()).await?;
    ensure_eq!(r.changes, 0, "changes of a SELECT run after a 3-row insert");
    let r = sql
        .run(&format!("SELECT k FROM {t} WHERE k = ?"), [2])
        .await?;
    ensure_eq!(r.changes, 0, "changes of a SELECT with a parameter");
    let r = sql
        .run(&format!("INSERT INTO {t} (k) VALUES (?) RETURNING k"), [9])
        .await?;
    ensure_eq!(r.changes, 1, "changes of INSERT … RETURNING");
    let row = sql
        .get(&format!("INSERT INTO {t} (k) VALUES (?) RETURNING k"), [10])
        .await?
        .ok_or_else(|| no_row("get of INSERT … RETURNING"))?;
    ensure_eq!(
        row.get::<i64>("k")?,
        10,
        "row returned by INSERT … RETURNING"
    );
    ensure_eq!(
        count_rows(&sql, &t).await?,
        5,
        "rows after the RETURNING inserts"
    );
    Ok(())
}

/// With `sql.last_insert_rowid.returning`, `run` of `INSERT … RETURNING id`
/// reports the id of the last row it returned.
async fn last_insert_rowid_from_returning(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("returning");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {pk}, v {text})",
        pk = ty.autoinc_pk,
        text = ty.text
    ))
    .await?;
    let mut ids = Vec::new();
    for v in ["a", "b"] {
        let r = sql
            .run(&format!("INSERT INTO {t} (v) VALUES (?) RETURNING id"), [v])
            .await?;
        ensure_eq!(r.changes, 1, "changes of INSERT … RETURNING id");
        let id = r.last_insert_rowid.ok_or_else(|| {
            Failure::new(format!(
                "INSERT … RETURNING id reported no last_insert_rowid: {r:?}"
            ))
        })?;
        let stored: String = sql
            .get(&format!("SELECT v FROM {t} WHERE id = ?"), [id])
            .await?
            .ok_or_else(|| no_row("the row by the reported id"))?
            .get("v")?;
        ensure_eq!(stored, v, "the row found by the reported id");
        ids.push(id);
    }
    ensure!(ids[1] > ids[0], "ids must increase: {ids:?}");
    // Several rows: the id of the last one returned.
    let r = sql
        .run(
            &format!("INSERT INTO {t} (v) VALUES ('c'), ('d') RETURNING id"),
            (),
        )
        .await?;
    ensure_eq!(r.changes, 2, "changes of a two-row INSERT … RETURNING");
    let d: i64 = sql
        .get(&format!("SELECT id FROM {t} WHERE v = 'd'"), ())
        .await?
        .ok_or_else(|| no_row("row d"))?
        .get("id")?;
    ensure_eq!(
        r.last_insert_rowid,
        Some(d),
        "last_insert_rowid of a two-row insert is the last row's id"
    );
    Ok(())
}

/// A statement that starts with a comment, blanks or a `WITH` is still a
/// query: its rows come back, and `run` of it changes nothing.
async fn query_starting_with_a_comment_returns_rows(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    for (stmt, want) in [
        ("/* note */ SELECT 42 AS answer", 42i64),
        ("-- note\nSELECT 42 AS answer", 42),
        ("  \n\t SELECT 42 AS answer", 42),
        (
            "WITH x(answer) AS (SELECT 40 UNION ALL SELECT 42) SELECT answer FROM x ORDER BY answer DESC",
            42,
        ),
    ] {
        let row = sql
            .get(stmt, ())
            .await?
            .ok_or_else(|| no_row(&format!("{stmt:?}")))?;
        ensure_eq!(row.get::<i64>("answer")?, want, "{stmt:?}");
        ensure_eq!(
            row.columns(),
            &["answer".to_string()][..],
            "columns of {stmt:?}"
        );
    }
    let t = ctx.table("commented");
    sql.exec(&format!(
        "CREATE TABLE {t} (k {int})",
        int = types(&ctx).int
    ))
    .await?;
    sql.run(&format!("INSERT INTO {t} (k) VALUES (1), (2)"), ())
        .await?;
    let r = sql
        .run(&format!("/* a query */ SELECT k FROM {t}"), ())
        .await?;
    ensure_eq!(
        r.changes,
        0,
        "changes reported by `run` of a query starting with a comment"
    );
    let rows = sql
        .all(&format!("-- all of them\nSELECT k FROM {t} ORDER BY k"), ())
        .await?;
    ensure_eq!(
        rows.len(),
        2,
        "rows of a query starting with a line comment"
    );
    ensure_eq!(count_rows(&sql, &t).await?, 2, "rows in the table");
    Ok(())
}

/// Duplicate column names and computed columns come back as selected.
async fn duplicate_and_computed_column_names(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let row = sql
        .get(
            "SELECT 1 AS a, 2 AS a, 1 + 2 AS total, 'x' AS \"Mixed Case\"",
            (),
        )
        .await?
        .ok_or_else(|| no_row("select of literals"))?;
    ensure_eq!(
        row.columns(),
        &[
            "a".to_string(),
            "a".to_string(),
            "total".to_string(),
            "Mixed Case".to_string()
        ][..],
        "column names"
    );
    ensure_eq!(
        row.values(),
        &[
            Value::Integer(1),
            Value::Integer(2),
            Value::Integer(3),
            Value::from("x")
        ][..],
        "values"
    );
    Ok(())
}
