//! `strata sql`: one statement or a script, printed as a table or JSON.

use std::process::ExitCode;

use strata_host::{Dialect, Error, ErrorKind, Params, PluginError, Row, RunOutcome, Strata, Value};

use crate::{error::Result, output::table};

fn parse_param(s: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Null) => Value::Null,
        Ok(serde_json::Value::Bool(b)) => Value::from(b),
        Ok(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Value::Integer)
            .or_else(|| n.as_f64().map(Value::Real))
            .unwrap_or_else(|| Value::from(s)),
        Ok(serde_json::Value::String(t)) => Value::from(t),
        _ => Value::from(s),
    }
}

/// The text-based guess of whether a statement returns rows, used only for
/// a backend whose cursors refuse statements that are not queries
/// (PostgreSQL's `DECLARE … CURSOR FOR`), where the prepared statement
/// cannot be asked through a stream.
fn returns_rows_by_text(sql: &str) -> bool {
    let lower = sql.trim_start().to_ascii_lowercase();
    [
        "select", "with", "pragma", "values", "explain", "show", "table",
    ]
    .iter()
    .any(|k| lower.starts_with(k))
        || lower.contains(" returning ")
}

fn print_rows(rows: &[Row], columns: &[String], json: bool) {
    if json {
        let arr: Vec<_> = rows.iter().map(|r| r.to_json()).collect();
        println!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
        return;
    }
    let mut t = table();
    t.set_header(columns);
    for r in rows {
        t.add_row(r.values().iter().map(|v| v.to_string()));
    }
    println!("{t}");
    println!(
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
}

fn print_run(r: &RunOutcome, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({"changes": r.changes, "last_insert_rowid": r.last_insert_rowid})
        );
    } else {
        match r.last_insert_rowid {
            Some(id) => println!("{} row(s) changed, last insert rowid {id}", r.changes),
            None => println!("{} row(s) changed", r.changes),
        }
    }
}

/// Runs `strata sql` on backend `backend` (default: the `sql` role).
///
/// Whether the statement returns rows is decided by the backend's prepared
/// statement, not by the text (`/* note */ SELECT 42` is a query, `INSERT
/// … RETURNING` returns rows): the statement is opened as a stream, which
/// prepares it and reports its result columns before any row is read (so
/// before a statement without a result runs). With columns, the rows are
/// read and printed; without, the stream is dropped unread and the
/// statement is run, printing the rows it changed.
pub(crate) async fn run_sql(
    strata: &Strata,
    backend: Option<&str>,
    json: bool,
    exec: bool,
    text: &str,
    params: &[String],
) -> Result<ExitCode> {
    if text.trim().is_empty() {
        return Err(Error::Plugin(PluginError::invalid_input(
            "no SQL given: the statement text is empty",
        ))
        .into());
    }
    let sql = match backend {
        Some(b) => strata.sql_backend(b).await?,
        None => strata.sql().await?,
    };
    if exec {
        if !params.is_empty() {
            return Err(Error::Params("--exec scripts take no parameters".into()).into());
        }
        sql.exec(text).await?;
        println!("ok");
        return Ok(ExitCode::SUCCESS);
    }
    let values = if params.is_empty() {
        Params::None
    } else {
        Params::Positional(params.iter().map(|p| parse_param(p)).collect())
    };
    match sql.stream(text, values.clone()).await {
        Ok(mut stream) if !stream.columns().is_empty() => {
            let columns = stream.columns().to_vec();
            let mut rows = Vec::new();
            while let Some(row) = stream.next().await? {
                rows.push(row);
            }
            print_rows(&rows, &columns, json);
        }
        Ok(stream) => {
            drop(stream);
            print_run(&sql.run(text, values).await?, json);
        }
        Err(e) if e.kind() == ErrorKind::Syntax && sql.dialect() != Dialect::Sqlite => {
            if returns_rows_by_text(text) {
                let rows = sql.all(text, values).await?;
                let columns = rows
                    .first()
                    .map(|r| r.columns().to_vec())
                    .unwrap_or_default();
                print_rows(&rows, &columns, json);
            } else {
                print_run(&sql.run(text, values).await?, json);
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}
