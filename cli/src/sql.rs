//! `strata sql`: one statement or a script, printed as a table or JSON.

use std::process::ExitCode;

use strata_host::{Error, Params, Strata, Value};

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

/// Whether the statement returns rows (so `all` is used rather than `run`).
fn returns_rows(sql: &str) -> bool {
    let lower = sql.trim_start().to_ascii_lowercase();
    [
        "select", "with", "pragma", "values", "explain", "show", "table",
    ]
    .iter()
    .any(|k| lower.starts_with(k))
        || lower.contains(" returning ")
}

/// Runs `strata sql` on backend `backend` (default: the `sql` role).
pub(crate) async fn run_sql(
    strata: &Strata,
    backend: Option<&str>,
    json: bool,
    exec: bool,
    text: &str,
    params: &[String],
) -> Result<ExitCode> {
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
    let values = Params::Positional(params.iter().map(|p| parse_param(p)).collect());
    let values = if params.is_empty() {
        Params::None
    } else {
        values
    };
    if returns_rows(text) {
        let rows = sql.all(text, values).await?;
        if json {
            let arr: Vec<_> = rows.iter().map(|r| r.to_json()).collect();
            println!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
        } else {
            let mut t = table();
            if let Some(first) = rows.first() {
                t.set_header(first.columns());
            }
            for r in &rows {
                t.add_row(r.values().iter().map(|v| v.to_string()));
            }
            println!("{t}");
            println!(
                "({} row{})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            );
        }
    } else {
        let r = sql.run(text, values).await?;
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
    Ok(ExitCode::SUCCESS)
}
