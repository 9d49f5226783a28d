//! Values crossing the boundary: every value kind, large values, and
//! placeholders the host must leave alone.

use strata_host::{Sql, Value, named, params};

use super::support::{Types, count_where, first_difference, no_row, types};
use crate::{
    case::{Case, Suite, case},
    ctx::Ctx,
    failure::{CaseResult, ensure, ensure_eq},
};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            Suite::Sql,
            value_round_trip,
            "Every value kind comes back exactly as bound — i64 extremes, -0.0 and other f64 bit patterns, empty and non-ASCII text, empty and all-byte blobs, NULL — and matches itself as a parameter (plugin-api `Value`; the plugin's type mapping)."
        ),
        case!(
            Suite::Sql,
            placeholders_in_literals_and_comments_untouched,
            "The host rewrites placeholders; the plugin must run the rewritten text as is: `?`, `:name`, `@x`, `$y` inside literals, quoted identifiers and comments reach the database unchanged (plugin-api `placeholders`)."
        ),
        case!(
            Suite::Sql,
            large_text_and_blob,
            "A 1 MiB text and a 4 MiB blob round-trip byte for byte through parameters and results (plugin-api `Value::Text`/`Value::Blob`)."
        ),
        case!(
            Suite::Sql,
            a_thousand_parameters,
            "A statement binds at least 1,000 parameters (a multi-row INSERT and an IN list), in order (rules: statements)."
        ),
    ]
}

/// Every value kind — extreme integers, signed zero, huge and tiny reals,
/// empty and non-ASCII text, empty and all-bytes blobs, NULL — comes back
/// exactly as it was bound, through a column of its own type, and matches
/// itself when bound again as a parameter.
async fn value_round_trip(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("values");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, i {int}, r {real}, x {real_exact}, s {text}, b {blob})",
        int = ty.int,
        real = ty.real,
        real_exact = ty.real_exact,
        text = ty.text,
        blob = ty.blob
    ))
    .await?;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let values: Vec<(&str, Value)> = vec![
        ("i", Value::Integer(i64::MIN)),
        ("i", Value::Integer(i64::MAX)),
        ("i", Value::Integer(0)),
        ("i", Value::Integer(-1)),
        ("r", Value::Real(0.0)),
        ("x", Value::Real(-0.0)),
        ("x", Value::Real(1.0 + f64::EPSILON)),
        ("r", Value::Real(1.0)),
        ("r", Value::Real(-2.5)),
        ("r", Value::Real(1.5e300)),
        ("r", Value::Real(-1.5e300)),
        ("r", Value::Real(f64::MIN_POSITIVE)),
        ("r", Value::Real(0.1)),
        ("s", Value::from("")),
        ("s", Value::from("héllo wörld ✓ 日本語 🦀")),
        (
            "s",
            Value::from(
                "it's \"quoted\" `back` [bracket]\nline two\r\n\ttab \\ backslash -- not a comment ? :x",
            ),
        ),
        ("b", Value::from(Vec::<u8>::new())),
        ("b", Value::from(all_bytes)),
    ];
    // Every value is checked, so one lost value does not hide another.
    let mut problems = Vec::new();
    for (n, (column, value)) in values.iter().enumerate() {
        if let Err(f) = check_round_trip(&sql, &t, ty, n as i64, column, value).await {
            problems.push(format!("value #{n} {value:?}: {f}"));
        }
    }
    // NULL in every column.
    let id = values.len() as i64;
    sql.run(
        &format!("INSERT INTO {t} (id, i, r, x, s, b) VALUES (?, ?, ?, ?, ?, ?)"),
        params![
            id,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null
        ],
    )
    .await?;
    let row = sql
        .get(&format!("SELECT i, r, x, s, b FROM {t} WHERE id = ?"), [id])
        .await?
        .ok_or_else(|| no_row("select NULL row"))?;
    ensure_eq!(
        row.values(),
        &[
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null
        ][..],
        "NULLs"
    );
    let nulls = count_where(
        &sql,
        &t,
        "i IS NULL AND r IS NULL AND x IS NULL AND s IS NULL AND b IS NULL",
    )
    .await?;
    ensure_eq!(nulls, 1, "rows with NULL in every column");
    ensure!(
        problems.is_empty(),
        "{} of {} values did not round-trip:\n  {}",
        problems.len(),
        values.len(),
        problems.join("\n  ")
    );
    Ok(())
}

/// Inserts `value` into `column` of row `id`, reads the row back and matches
/// the value as a parameter (for [`value_round_trip`]).
async fn check_round_trip(
    sql: &Sql,
    t: &str,
    ty: Types,
    id: i64,
    column: &str,
    value: &Value,
) -> CaseResult {
    sql.run(
        &format!("INSERT INTO {t} (id, {column}) VALUES (?, ?)"),
        params![id, value.clone()],
    )
    .await?;
    let row = sql
        .get(&format!("SELECT i, r, x, s, b FROM {t} WHERE id = ?"), [id])
        .await?
        .ok_or_else(|| no_row("select by id"))?;
    let expected: Vec<Value> = ["i", "r", "x", "s", "b"]
        .iter()
        .map(|c| {
            if *c == column {
                value.clone()
            } else {
                Value::Null
            }
        })
        .collect();
    ensure_eq!(
        row.values(),
        &expected[..],
        "{} in column {column}",
        value.kind_name()
    );
    if let Value::Real(want) = value {
        // The bare parameter first, so a failure says which layer lost the bits.
        let echoed: f64 = sql
            .get(
                &format!("SELECT CAST(? AS {real}) AS v", real = ty.real),
                [*want],
            )
            .await?
            .ok_or_else(|| no_row("parameter echo"))?
            .get("v")?;
        ensure_eq!(
            echoed.to_bits(),
            want.to_bits(),
            "bits of real {want:?} bound as a parameter and selected back (got {echoed:?})"
        );
        if let Some(Value::Real(got)) = row.value(column) {
            ensure_eq!(
                got.to_bits(),
                want.to_bits(),
                "bits of real {want:?} stored in column {column} (read back as {got:?}; the bare parameter kept them)"
            );
        }
    }
    // The value bound again as a parameter matches the stored one.
    let ids: Vec<i64> = sql
        .all(
            &format!("SELECT id FROM {t} WHERE {column} = ? ORDER BY id"),
            [value.clone()],
        )
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect::<Result<_, _>>()?;
    ensure!(
        ids.contains(&id),
        "does not match itself as a parameter (matched ids {ids:?})"
    );
    Ok(())
}

/// `?`, `:name`, `@name` and `$name` inside string literals, quoted
/// identifiers and comments are text, not parameters: they reach the
/// database unchanged while the real parameter beside them binds.
async fn placeholders_in_literals_and_comments_untouched(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("lexer");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (\"odd?:name @at\" {text}, k {int}, note {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let literal = "it's ? :name @at $dollar ?1 ?? /* x */";
    let note = "-- not a comment ? /* nor :this */";
    let r = sql
        .run(
            &format!(
                "/* leading ? :a comment */ INSERT INTO {t} (\"odd?:name @at\", k, note) -- why ? :b\n\
                 VALUES ('it''s ? :name @at $dollar ?1 ?? /* x */', ? /* the key ? :c */, '-- not a comment ? /* nor :this */')"
            ),
            [42],
        )
        .await?;
    ensure_eq!(r.changes, 1, "insert with one real parameter");
    let row = sql
        .get(
            &format!(
                "SELECT \"odd?:name @at\" AS lit, note, k /* ? :x */ FROM {t} -- and ? :y\n\
                 WHERE k = ? /* ? */"
            ),
            [42],
        )
        .await?
        .ok_or_else(|| no_row("select by the real positional parameter"))?;
    ensure_eq!(
        row.get::<String>("lit")?,
        literal,
        "literal text stored through a quoted column"
    );
    ensure_eq!(
        row.get::<String>("note")?,
        note,
        "literal that looks like a comment"
    );
    ensure_eq!(row.get::<i64>("k")?, 42, "the real parameter");
    // With a named parameter, a `?` in a literal must not count as positional.
    let row = sql
        .get(
            &format!(
                "SELECT '?' AS q, '??' AS qq, ':k' AS colon, k FROM {t} WHERE k = :k -- ? :nope"
            ),
            named! {"k" => 42},
        )
        .await?
        .ok_or_else(|| no_row("select by the real named parameter"))?;
    ensure_eq!(
        row.values(),
        &[
            Value::from("?"),
            Value::from("??"),
            Value::from(":k"),
            Value::Integer(42)
        ][..],
        "literals beside a named parameter"
    );
    Ok(())
}

/// A 1 MiB text and a 4 MiB blob round-trip unchanged.
async fn large_text_and_blob(ctx: Ctx) -> CaseResult {
    let sql = ctx.sql().await?;
    let t = ctx.table("large");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (id {int} PRIMARY KEY, s {text}, b {blob})",
        int = ty.int,
        text = ty.text,
        blob = ty.blob
    ))
    .await?;
    let mut text = String::with_capacity(1 << 20);
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789 é✓日🦀\n"
        .chars()
        .collect();
    let mut i = 0usize;
    while text.len() < 1 << 20 {
        let c = alphabet[(i * 7 + i / 13) % alphabet.len()];
        if text.len() + c.len_utf8() > 1 << 20 {
            text.push('.');
        } else {
            text.push(c);
        }
        i += 1;
    }
    ensure_eq!(text.len(), 1 << 20, "test text size");
    let blob: Vec<u8> = (0..4usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    sql.run(
        &format!("INSERT INTO {t} (id, s, b) VALUES (?, ?, ?)"),
        params![1, text.as_str(), blob.clone()],
    )
    .await?;
    let row = sql
        .get(&format!("SELECT s, b FROM {t} WHERE id = ?"), [1])
        .await?
        .ok_or_else(|| no_row("large row"))?;
    let got_text: String = row.get("s")?;
    ensure!(
        got_text == text,
        "1 MiB text differs: {} bytes back, first difference at byte {:?}",
        got_text.len(),
        first_difference(got_text.as_bytes(), text.as_bytes())
    );
    let got_blob: Vec<u8> = row.get("b")?;
    ensure!(
        got_blob == blob,
        "4 MiB blob differs: {} bytes back, first difference at byte {:?}",
        got_blob.len(),
        first_difference(&got_blob, &blob)
    );
    Ok(())
}

/// A statement with 1,000 parameters binds them all, in order.
async fn a_thousand_parameters(ctx: Ctx) -> CaseResult {
    const ROWS: i64 = 500;
    let sql = ctx.sql().await?;
    let t = ctx.table("params1000");
    let ty = types(&ctx);
    sql.exec(&format!(
        "CREATE TABLE {t} (k {int}, v {text})",
        int = ty.int,
        text = ty.text
    ))
    .await?;
    let placeholders = vec!["(?, ?)"; ROWS as usize].join(", ");
    let values: Vec<Value> = (0..ROWS)
        .flat_map(|k| [Value::Integer(k), Value::from(format!("v{k}"))])
        .collect();
    let r = sql
        .run(
            &format!("INSERT INTO {t} (k, v) VALUES {placeholders}"),
            values,
        )
        .await?;
    ensure_eq!(r.changes, ROWS as u64, "rows inserted by 1,000 parameters");
    let list = vec!["?"; 1000].join(", ");
    let wanted: Vec<Value> = (0..1000).map(|k| Value::Integer(k * 2)).collect();
    let n: i64 = sql
        .get(
            &format!("SELECT COUNT(*) AS n FROM {t} WHERE k IN ({list})"),
            wanted,
        )
        .await?
        .ok_or_else(|| no_row("count"))?
        .get("n")?;
    ensure_eq!(n, ROWS / 2, "rows matching an IN list of 1,000 parameters");
    let last: String = sql
        .get(&format!("SELECT v FROM {t} WHERE k = ?"), [ROWS - 1])
        .await?
        .ok_or_else(|| no_row("last row"))?
        .get("v")?;
    ensure_eq!(
        last,
        format!("v{}", ROWS - 1),
        "the last row's value (parameter order)"
    );
    Ok(())
}
