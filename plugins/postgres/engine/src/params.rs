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

/// `sql` with every `$n` replaced by `render(n - 1)`.
pub(crate) fn rewrite_params(
    sql: &str,
    mut render: impl FnMut(usize) -> String,
) -> PluginResult<String> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0usize;
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
                out.push_str(&sql[copied..i]);
                out.push_str(&render(n - 1));
                i = end;
                copied = end;
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
    out.push_str(&sql[copied..]);
    Ok(out)
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
}
