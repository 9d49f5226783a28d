//! The `$n` parameters of a statement, found by a lexer: what adds the
//! casts of parameters sent as text (`$3` → `($3::text)::timestamptz`).
//!
//! Statements reach the plugin with the host's placeholders already
//! rewritten into `$1, $2, …`. This lexer finds those and leaves string
//! literals (`'…'`, `E'…'` with backslash escapes), quoted identifiers,
//! `--` and nested `/* */` comments and `$tag$ … $tag$` bodies alone; a `$`
//! right after an identifier character is part of the identifier.
//!
//! It stands in for plugin-api's `placeholders::rewrite_params`, which the
//! plugin kit does not re-export (and a kit plugin does not depend on
//! plugin-api). Unlike that general rewriter it only ever touches `$n`: a
//! `?` left in the statement is Postgres' jsonb operator (the host's `??`),
//! not a parameter.

use strata_plugin::{PluginError, PluginResult};

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// What the lexer finds outside literals, identifiers and comments.
enum Found {
    /// A `$n` parameter at `start..end`, numbered `n` (1-based, checked).
    Param { start: usize, end: usize, n: usize },
    /// A `;` at this byte.
    Semicolon(usize),
}

/// Walks `sql`, calling `on` for every parameter and `;` outside string
/// literals, quoted identifiers, comments and dollar-quoted bodies; stops
/// early when `on` answers `false`.
fn lex(sql: &str, mut on: impl FnMut(Found) -> bool) -> PluginResult<()> {
    let bytes = sql.as_bytes();
    let mut i = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => {
                // E'…' strings take backslash escapes.
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && (i < 2 || !is_ident_char(bytes[i - 2]));
                i = skip_quoted(bytes, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(bytes, i, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = match bytes[i..].iter().position(|&c| c == b'\n') {
                    Some(p) => i + p + 1,
                    None => bytes.len(),
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b';' => {
                if !on(Found::Semicolon(i)) {
                    return Ok(());
                }
                i += 1;
            }
            b'$' if i > 0 && is_ident_char(bytes[i - 1]) => i += 1,
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let end = i
                    + 1
                    + bytes[i + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                let n: usize = sql[i + 1..end].parse().unwrap_or(0);
                if n == 0 || n > 65_535 {
                    return Err(PluginError::invalid_input(format!(
                        "placeholder `{}` at byte {i} is not a valid 1-based parameter number",
                        &sql[i..end]
                    )));
                }
                if !on(Found::Param { start: i, end, n }) {
                    return Ok(());
                }
                i = end;
            }
            b'$' => {
                i = match dollar_tag_len(bytes, i) {
                    Some(tag_len) => {
                        let tag = &bytes[i..i + tag_len];
                        let body = i + tag_len;
                        match bytes[body..].windows(tag_len).position(|w| w == tag) {
                            Some(p) => body + p + tag_len,
                            None => bytes.len(),
                        }
                    }
                    None => i + 1,
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// `sql` with every `$n` replaced by `render(n - 1)`.
pub(crate) fn rewrite_params(
    sql: &str,
    mut render: impl FnMut(usize) -> String,
) -> PluginResult<String> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0usize;
    lex(sql, |found| {
        if let Found::Param { start, end, n } = found {
            out.push_str(&sql[copied..start]);
            out.push_str(&render(n - 1));
            copied = end;
        }
        true
    })?;
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// Whether `sql` can be sent as one simple-protocol `Query` message: no
/// `$n` parameter (not even an invalid one) and one statement — nothing
/// but whitespace, comments and `;` after its first `;`. The simple
/// protocol runs every statement of a string, where a prepared statement
/// refuses a second one; a string that is not plainly one statement keeps
/// the prepared path and its error.
pub(crate) fn is_one_statement_without_params(sql: &str) -> bool {
    let mut params = false;
    let mut semicolons = Vec::new();
    let lexed = lex(sql, |found| match found {
        Found::Param { .. } => {
            params = true;
            false
        }
        Found::Semicolon(at) => {
            semicolons.push(at);
            true
        }
    });
    if lexed.is_err() || params {
        return false;
    }
    let Some(&first) = semicolons.first() else {
        return true;
    };
    // Every piece after the first `;` holds nothing but whitespace and comments.
    let mut from = first + 1;
    for &at in semicolons[1..].iter().chain(std::iter::once(&sql.len())) {
        if lead_keyword(&sql[from..at]).is_some() {
            return false;
        }
        from = at + 1;
    }
    true
}

/// Skips a quoted token starting at `start` (the opening quote); a doubled
/// quote is an escaped quote. Returns the index after the closing quote.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let c = bytes[i];
        if backslash_escapes && c == b'\\' {
            i += 2;
        } else if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skips a `/* … */` comment (they nest in Postgres).
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 1usize;
    let mut i = start + 2;
    while i < bytes.len() {
        if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Length of a `$tag$` opener at `i` (`$$` or `$ident$`), if there is one.
fn dollar_tag_len(bytes: &[u8], i: usize) -> Option<usize> {
    let rest = &bytes[i + 1..];
    if rest.first() == Some(&b'$') {
        return Some(2);
    }
    if !rest.first().copied().is_some_and(is_ident_start) {
        return None;
    }
    let n = rest.iter().take_while(|&&c| is_ident_char(c)).count();
    (rest.get(n) == Some(&b'$')).then_some(n + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast(sql: &str) -> String {
        rewrite_params(sql, |i| format!("(${}::text)::uuid", i + 1)).unwrap()
    }

    #[test]
    fn only_parameters_are_rewritten() {
        assert_eq!(
            cast("SELECT * FROM t WHERE id = $1 AND n = $12"),
            "SELECT * FROM t WHERE id = ($1::text)::uuid AND n = ($12::text)::uuid"
        );
        // Literals, identifiers, comments and dollar-quoted bodies keep their `$1`.
        for kept in [
            "SELECT '$1', \"$1\", E'\\'$1', 'it''s $1'",
            "SELECT 1 -- $1\n",
            "SELECT /* $1 /* nested $2 */ $3 */ 1",
            "SELECT $$ $1 $$, $body$ $2 $body$",
            "SELECT a$1 FROM t",
        ] {
            assert_eq!(cast(kept), kept);
        }
        // A jsonb `?` (the host's `??`) is an operator, not a parameter.
        assert_eq!(
            cast("SELECT m ? 'k' FROM t WHERE id = $1"),
            "SELECT m ? 'k' FROM t WHERE id = ($1::text)::uuid"
        );
        assert_eq!(
            cast("SELECT '$1' || $1 /* $1 */ -- $1"),
            "SELECT '$1' || ($1::text)::uuid /* $1 */ -- $1"
        );
        assert!(rewrite_params("SELECT $0", |_| String::new()).is_err());
    }

    #[test]
    fn one_statement_without_params_is_told_apart() {
        for one in [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 1; ; -- done\n",
            "SELECT 1; /* a; b */",
            "SELECT ';', \"a;b\", $$ ; $$, $t$ $1 ; $t$ -- ; $1\n",
            "SELECT E'\\'; $1'",
            "SELECT a$1 FROM t",
            "INSERT INTO t VALUES ('x;y') /* $2 */",
        ] {
            assert!(is_one_statement_without_params(one), "{one:?}");
        }
        for not in [
            "SELECT $1",
            "SELECT 1 WHERE x = $2",
            "SELECT $0",
            "SELECT 1; SELECT 2",
            "SELECT 1; -- c\n DROP TABLE t",
            "SELECT 1; /* unterminated",
            "SELECT 1;; SELECT 2;",
        ] {
            assert!(!is_one_statement_without_params(not), "{not:?}");
        }
    }
}

/// The statement's first keyword, lower-cased, after whitespace, `--` line
/// comments and (nested, as Postgres nests them) `/* */` block comments;
/// `None` when nothing else is there.
pub(crate) fn lead_keyword(sql: &str) -> Option<String> {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if rest.starts_with("/*") {
            let bytes = rest.as_bytes();
            let (mut depth, mut i) = (0usize, 0usize);
            while i + 1 < bytes.len() {
                match (bytes[i], bytes[i + 1]) {
                    (b'/', b'*') => {
                        depth += 1;
                        i += 2;
                    }
                    (b'*', b'/') => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => i += 1,
                }
            }
            if depth > 0 {
                // Unterminated: the server names the error.
                return Some(String::new());
            }
            rest = &rest[i..];
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    (!rest.is_empty()).then(|| word.to_ascii_lowercase())
}

#[cfg(test)]
mod lead_keyword_tests {
    use super::lead_keyword;

    #[test]
    fn comments_and_whitespace_are_skipped() {
        for (sql, want) in [
            ("SELECT 1", Some("select")),
            ("  \n\t select 1", Some("select")),
            ("/* note */ SELECT 42", Some("select")),
            ("-- note\nSELECT 42", Some("select")),
            ("/* a /* nested */ comment */ VALUES (1)", Some("values")),
            (
                "-- one\n-- two\n/* three */ insert into t values (1)",
                Some("insert"),
            ),
            ("(SELECT 1)", Some("")),
            ("/* unterminated SELECT 1", Some("")),
            ("", None),
            ("   \n\t", None),
            ("-- only a comment", None),
            ("/* only a comment */", None),
        ] {
            assert_eq!(lead_keyword(sql).as_deref(), want, "{sql:?}");
        }
    }
}
