//! Error kinds: what a caller can match on.

use strata_host::{ErrorKind, Value, params};

use super::support::{count_rows, count_where, types};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, Failure, ensure, ensure_eq, expect_error, expect_kind},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Sql,
            constraint_violation_kind,
            "UNIQUE, PRIMARY KEY, NOT NULL and CHECK violations are `constraint` errors carrying the backend's own code (`with_backend_code`), and write nothing (plugin-api `ErrorKind::Constraint`, `PluginError::backend_code`)."
        ),
        case!(
            Suite::Sql,
            syntax_error_kind,
            "A statement that does not parse is a `syntax` error from every entry point: exec, run, query (plugin-api `ErrorKind::Syntax`)."
        ),
        case!(
            Suite::Sql,
            missing_table_kind,
            "Reading from or writing to a table that does not exist is `not_found` (plugin-api `ErrorKind::NotFound`: \"table, collection, key, file\")."
        ),
        case!(
            Suite::Sql,
            exec_script_error_reports_syntax,
            "A script whose second statement does not parse fails with `syntax` (SqlConnection::exec; ErrorKind::Syntax)."
        ),
        case!(
            Suite::Sql,
            empty_statement_is_invalid_input,
            "`run` or `query` of an empty statement (empty, blanks, only a comment) is `invalid_input`, never `internal`; `exec` of an empty script does nothing (rules: statements)."
        ),
        case!(
            Suite::Sql,
            a_failed_statement_leaves_the_handle_usable,
            "After any error (syntax, constraint, missing table) the same handle keeps serving: the next statements succeed and see the earlier committed rows (rules: handles)."
        ),
    ]
}

/// UNIQUE, PRIMARY KEY, NOT NULL and CHECK violations are `constraint`
/// errors carrying the backend's own code, and change nothing.
async fn constraint_violation_kind(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("constraints");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, email {text} UNIQUE, name {text} NOT NULL, n {int} CHECK (n >= 0))",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let insert = format!("INSERT INTO {t} (id, email, name, n) VALUES (?, ?, ?, ?)");
    sql.run(&insert, params![1, "a@example.com", "a", 1])
        .await?;
    let attempts = [
        (
            "duplicate UNIQUE value",
            params![2, "a@example.com", "b", 1],
        ),
        ("duplicate PRIMARY KEY", params![1, "b@example.com", "b", 1]),
        (
            "NULL in a NOT NULL column",
            params![3, "c@example.com", Value::Null, 1],
        ),
        ("CHECK violation", params![4, "d@example.com", "d", -1]),
    ];
    for (what, p) in attempts {
        let e = expect_error(sql.run(&insert, p).await, ErrorKind::Constraint, what)?;
        let code = e.plugin_error().and_then(|p| p.backend_code());
        ensure!(
            code.is_some_and(|c| !c.is_empty()),
            "{what}: no backend code on the error `{e}`"
        );
    }
    let e = expect_error(
        sql.run(&format!("UPDATE {t} SET name = NULL WHERE id = ?"), [1])
            .await,
        ErrorKind::Constraint,
        "UPDATE to NULL in a NOT NULL column",
    )?;
    ensure!(
        e.plugin_error().and_then(|p| p.backend_code()).is_some(),
        "UPDATE: no backend code on `{e}`"
    );
    ensure_eq!(
        count_rows(&sql, &t).await?,
        1,
        "rows after the refused writes"
    );
    ensure_eq!(
        count_where(&sql, &t, "name = 'a'").await?,
        1,
        "the original row unchanged"
    );
    Ok(())
}

/// Statements that do not parse are `syntax` errors, from every entry point.
async fn syntax_error_kind(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    expect_kind(
        sql.get("SELEC 1", ()).await,
        ErrorKind::Syntax,
        "get of `SELEC 1`",
    )?;
    expect_kind(
        sql.all("SELEC 1", ()).await,
        ErrorKind::Syntax,
        "all of `SELEC 1`",
    )?;
    expect_kind(
        sql.run("SELEC 1", ()).await,
        ErrorKind::Syntax,
        "run of `SELEC 1`",
    )?;
    expect_kind(
        sql.exec("SELEC 1").await,
        ErrorKind::Syntax,
        "exec of `SELEC 1`",
    )?;
    expect_kind(
        sql.get("SELECT 'abc", ()).await,
        ErrorKind::Syntax,
        "unterminated string literal",
    )?;
    expect_kind(
        sql.get("SELECT (1 + 2", ()).await,
        ErrorKind::Syntax,
        "unterminated parenthesis",
    )?;
    expect_kind(
        sql.run("SELECT 1 +", ()).await,
        ErrorKind::Syntax,
        "statement ending mid-expression",
    )?;
    Ok(())
}

/// Reading from or writing to a table that does not exist is `not_found`.
async fn missing_table_kind(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("never_created");
    expect_kind(
        sql.get(&format!("SELECT * FROM {t}"), ()).await,
        ErrorKind::NotFound,
        "get from a missing table",
    )?;
    expect_kind(
        sql.all(&format!("SELECT * FROM {t}"), ()).await,
        ErrorKind::NotFound,
        "all from a missing table",
    )?;
    expect_kind(
        sql.run(&format!("INSERT INTO {t} (x) VALUES (?)"), [1])
            .await,
        ErrorKind::NotFound,
        "insert into a missing table",
    )?;
    Ok(())
}

/// A script whose second statement does not parse fails with `syntax`.
async fn exec_script_error_reports_syntax(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("bad_script");
    expect_kind(
        sql.exec(&format!(
            "CREATE TABLE {t} (x {int}); SELEC oops FROM {t}; INSERT INTO {t} (x) VALUES (1);",
            int = types(&ctx).int
        ))
        .await,
        ErrorKind::Syntax,
        "script with a bad second statement",
    )?;
    Ok(())
}

/// Empty statements are `invalid_input`; an empty script does nothing.
async fn empty_statement_is_invalid_input(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    for stmt in ["", "   \n\t", "-- only a comment", "/* only a comment */"] {
        expect_kind(
            sql.run(stmt, ()).await,
            ErrorKind::InvalidInput,
            &format!("run of {stmt:?}"),
        )?;
        expect_kind(
            sql.get(stmt, ()).await,
            ErrorKind::InvalidInput,
            &format!("get of {stmt:?}"),
        )?;
        expect_kind(
            sql.all(stmt, ()).await,
            ErrorKind::InvalidInput,
            &format!("all of {stmt:?}"),
        )?;
    }
    sql.exec("").await?;
    sql.exec("  -- nothing to do\n").await?;
    ensure_eq!(
        sql.get("SELECT 1 AS one", ())
            .await?
            .map(|r| r.get::<i64>("one"))
            .transpose()?,
        Some(1),
        "the handle after empty statements"
    );
    Ok(())
}

/// Errors of every kind leave the handle serving.
async fn a_failed_statement_leaves_the_handle_usable(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("after_error");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, v {text} NOT NULL)",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let insert = format!("INSERT INTO {t} (id, v) VALUES (?, ?)");
    sql.run(&insert, params![1, "first"]).await?;
    let missing = ctx.table("missing");
    let after = |what: &'static str, id: i64| {
        let (sql, insert) = (sql.clone(), insert.clone());
        async move {
            sql.run(&insert, params![id, format!("after {what}")])
                .await
                .map(|_| ())
                .map_err(|e| Failure::from(e).context(format!("an insert after {what}")))
        }
    };
    expect_kind(
        sql.run("SELEC nothing", ()).await,
        ErrorKind::Syntax,
        "a syntax error",
    )?;
    after("a syntax error", 10).await?;
    expect_kind(
        sql.run(&insert, params![1, "again"]).await,
        ErrorKind::Constraint,
        "a duplicate key",
    )?;
    after("a duplicate key", 11).await?;
    expect_kind(
        sql.run(&insert, params![2, Value::Null]).await,
        ErrorKind::Constraint,
        "a NULL in a NOT NULL column",
    )?;
    after("a NULL in a NOT NULL column", 12).await?;
    expect_kind(
        sql.get(&format!("SELECT * FROM {missing}"), ()).await,
        ErrorKind::NotFound,
        "a missing table",
    )?;
    after("a missing table", 13).await?;
    ensure_eq!(count_rows(&sql, &t).await?, 5, "rows after the errors");
    ensure_eq!(
        count_where(&sql, &t, "v = 'first'").await?,
        1,
        "the first row, untouched"
    );
    Ok(())
}
