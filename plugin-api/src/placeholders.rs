//! Placeholder normalisation: one SQL spelling for applications, each
//! backend's own on the wire.
//!
//! Applications write `?` (positional), `?NNN` (numbered, 1-based) or named
//! `:name`, `@name`, `$name` parameters. [`rewrite`] lexes the statement —
//! skipping string literals, quoted identifiers, comments and Postgres
//! `$tag$ … $tag$` bodies — and rewrites every placeholder into the target
//! [`Dialect`]'s form, returning the [`Slot`]s that say which argument feeds
//! each wire parameter. It is a lexer, not a regex: a `?` inside `'it?'` or
//! `-- why?` is left alone.
//!
//! Rules worth knowing:
//! - A statement uses positional *or* named parameters, not both.
//! - `??` stands for a literal `?` (Postgres' jsonb `?` operators).
//! - `::` is a cast, never a named parameter.
//! - In the Postgres dialect `$1` is a numbered parameter and `$tag$` opens a
//!   dollar-quoted body; `$` right after an identifier character is part of
//!   the identifier.
//! - Where a named parameter can start depends on the dialect. SQLite takes
//!   `:name`, `@name` and `$name` (its own three forms). PostgreSQL takes
//!   `:name` and `$name`, but **not `@name`**: `@` is Postgres' prefix
//!   absolute-value operator (`@x`, `@ -5`) and part of `@>`, `<@`, `@@`;
//!   and **not `:name` inside `[…]`**, where `:` separates an array
//!   slice's bounds (`arr[2:n]`, `(ARRAY[1,2,3])[2:cardinality(a)]`).

use std::fmt;

/// A SQL dialect the host can rewrite placeholders for.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite: wire placeholders `?1, ?2, …`; `[ident]` and `` `ident` `` quoting.
    Sqlite,
    /// PostgreSQL: wire placeholders `$1, $2, …`; nested comments, `E'…'`, `$tag$…$tag$`.
    Postgres,
    /// Plain `?` per occurrence (named parameters are repeated as needed).
    Question,
}

impl Dialect {
    /// Parses a manifest dialect name.
    pub fn from_name(name: &str) -> Option<Dialect> {
        match name {
            "sqlite" => Some(Dialect::Sqlite),
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "question" | "mysql" => Some(Dialect::Question),
            _ => None,
        }
    }

    /// The manifest name of this dialect.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::Question => "question",
        }
    }
}

/// Where one wire parameter takes its value from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The argument at this 0-based position.
    Index(usize),
    /// The named argument (without its sigil).
    Name(String),
}

/// The arguments a statement expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No placeholders.
    Nothing,
    /// This many positional arguments.
    Positional(usize),
    /// These named arguments (without sigils), in order of first use.
    Named(Vec<String>),
}

/// A statement rewritten for one dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewritten {
    /// The SQL to send.
    pub sql: String,
    /// One entry per wire parameter, in wire order.
    pub slots: Vec<Slot>,
    /// What the caller must supply.
    pub expected: Expected,
}

impl Rewritten {
    /// True when wire parameter `i` is argument `i` for every `i`, so a
    /// positional argument list can be passed through unchanged.
    pub fn is_identity(&self) -> bool {
        self.slots
            .iter()
            .enumerate()
            .all(|(i, s)| *s == Slot::Index(i))
    }
}

/// Why a statement's placeholders cannot be rewritten.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceholderError {
    /// Both positional and named placeholders appear.
    #[error(
        "statement mixes positional (`?`) and named (`{name}`) placeholders; use one style per statement"
    )]
    Mixed {
        /// The first named placeholder seen.
        name: String,
    },
    /// `?0` or `$0`, or a number too large.
    #[error("placeholder `{text}` at byte {offset} is not a valid 1-based parameter number")]
    BadNumber {
        /// The placeholder as written.
        text: String,
        /// Byte offset in the statement.
        offset: usize,
    },
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

enum Param<'a> {
    Next,
    Number(usize),
    Named(&'a str),
}

/// Rewrites `sql`'s placeholders for `dialect`.
pub fn rewrite(sql: &str, dialect: Dialect) -> Result<Rewritten, PlaceholderError> {
    rewrite_with(sql, dialect, None)
}

/// Rewrites every placeholder of `sql` with `render(wire_index)` (0-based),
/// leaving literals, identifiers, comments and dollar-quoted bodies alone.
/// Plugins use it to decorate parameters, e.g. Postgres adding a cast
/// (`$3` → `($3::text)::timestamptz`).
pub fn rewrite_params(
    sql: &str,
    dialect: Dialect,
    mut render: impl FnMut(usize) -> String,
) -> Result<String, PlaceholderError> {
    rewrite_with(sql, dialect, Some(&mut render)).map(|r| r.sql)
}

fn rewrite_with(
    sql: &str,
    dialect: Dialect,
    mut render: Option<&mut dyn FnMut(usize) -> String>,
) -> Result<Rewritten, PlaceholderError> {
    let bytes = sql.as_bytes();
    let pg = dialect == Dialect::Postgres;
    let sqlite = dialect == Dialect::Sqlite;
    let mut out = String::with_capacity(sql.len() + 8);
    let mut slots: Vec<Slot> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut positional = 0usize; // highest positional index used (1-based)
    let mut first_named: Option<String> = None;
    let mut saw_positional = false;
    let mut copied = 0usize; // bytes of `sql` already copied to `out`
    let mut i = 0usize;
    // Postgres: `[` … `]` nesting (array subscripts and slices), where `:`
    // is a slice separator, never a parameter.
    let mut brackets = 0usize;

    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                // E'…' strings take backslash escapes in Postgres.
                let escapes = pg
                    && i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && (i < 2 || !is_ident_char(bytes[i - 2]));
                i = skip_quoted(bytes, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(bytes, i, b'"', false),
            b'`' if !pg => i = skip_quoted(bytes, i, b'`', false),
            b'[' if sqlite => {
                i = match bytes[i + 1..].iter().position(|&c| c == b']') {
                    Some(p) => i + 1 + p + 1,
                    None => bytes.len(),
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = match bytes[i..].iter().position(|&c| c == b'\n') {
                    Some(p) => i + p + 1,
                    None => bytes.len(),
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i, pg),
            b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
            b'[' if pg => {
                brackets += 1;
                i += 1;
            }
            b']' if pg => {
                brackets = brackets.saturating_sub(1);
                i += 1;
            }
            // Postgres: the prefix `@` operator, and slice bounds.
            b'@' if pg => i += 1,
            b':' if pg && brackets > 0 => i += 1,
            b'$' if pg && i > 0 && is_ident_char(bytes[i - 1]) => i += 1,
            b'$' if pg && dollar_tag_len(bytes, i).is_some() => {
                let tag_len = dollar_tag_len(bytes, i).unwrap_or(0);
                let tag = &bytes[i..i + tag_len];
                let body = i + tag_len;
                i = match find(&bytes[body..], tag) {
                    Some(p) => body + p + tag_len,
                    None => bytes.len(),
                };
            }
            b'?' | b':' | b'@' | b'$' => {
                let start = i;
                let (param, end) = match b {
                    b'?' if bytes.get(i + 1) == Some(&b'?') => {
                        // `??` is a literal `?`.
                        out.push_str(&sql[copied..i]);
                        out.push('?');
                        i += 2;
                        copied = i;
                        continue;
                    }
                    b'?' | b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        let end = i
                            + 1
                            + bytes[i + 1..]
                                .iter()
                                .take_while(|c| c.is_ascii_digit())
                                .count();
                        let n: usize = sql[i + 1..end].parse().unwrap_or(0);
                        if n == 0 || n > 65_535 {
                            return Err(PlaceholderError::BadNumber {
                                text: sql[start..end].to_string(),
                                offset: start,
                            });
                        }
                        (Param::Number(n), end)
                    }
                    b'?' => (Param::Next, i + 1),
                    _ if bytes.get(i + 1).copied().is_some_and(is_ident_start) => {
                        let end = i
                            + 1
                            + bytes[i + 1..]
                                .iter()
                                .take_while(|&&c| is_ident_char(c))
                                .count();
                        (Param::Named(&sql[i + 1..end]), end)
                    }
                    _ => {
                        i += 1;
                        continue;
                    }
                };
                out.push_str(&sql[copied..start]);
                let wire_index = match param {
                    Param::Next | Param::Number(_) => {
                        saw_positional = true;
                        if let Some(name) = &first_named {
                            return Err(PlaceholderError::Mixed { name: name.clone() });
                        }
                        let n = match param {
                            Param::Number(n) => n,
                            _ => positional + 1,
                        };
                        positional = positional.max(n);
                        if dialect == Dialect::Question {
                            slots.push(Slot::Index(n - 1));
                            slots.len()
                        } else {
                            grow_identity(&mut slots, n);
                            n
                        }
                    }
                    Param::Named(name) => {
                        if first_named.is_none() {
                            first_named = Some(sql[start..end].to_string());
                        }
                        if saw_positional {
                            return Err(PlaceholderError::Mixed {
                                name: sql[start..end].to_string(),
                            });
                        }
                        let known = names.iter().position(|n| n == name);
                        if known.is_none() {
                            names.push(name.to_string());
                        }
                        if dialect == Dialect::Question {
                            slots.push(Slot::Name(name.to_string()));
                            slots.len()
                        } else {
                            match known {
                                Some(k) => k + 1,
                                None => {
                                    slots.push(Slot::Name(name.to_string()));
                                    slots.len()
                                }
                            }
                        }
                    }
                };
                if let Some(render) = render.as_mut() {
                    out.push_str(&render(wire_index - 1));
                } else {
                    match dialect {
                        Dialect::Sqlite => {
                            out.push('?');
                            out.push_str(itoa(wire_index).as_str());
                        }
                        Dialect::Postgres => {
                            out.push('$');
                            out.push_str(itoa(wire_index).as_str());
                        }
                        Dialect::Question => out.push('?'),
                    }
                }
                i = end;
                copied = end;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    let expected = if !names.is_empty() {
        Expected::Named(names)
    } else if positional > 0 {
        Expected::Positional(positional)
    } else {
        Expected::Nothing
    };
    Ok(Rewritten {
        sql: out,
        slots,
        expected,
    })
}

fn itoa(n: usize) -> String {
    n.to_string()
}

/// Makes `slots` the identity mapping up to `n` entries.
fn grow_identity(slots: &mut Vec<Slot>, n: usize) {
    while slots.len() < n {
        slots.push(Slot::Index(slots.len()));
    }
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

/// Skips a `/* … */` comment; Postgres nests them, SQLite does not.
fn skip_block_comment(bytes: &[u8], start: usize, nested: bool) -> usize {
    let mut depth = 1usize;
    let mut i = start + 2;
    while i < bytes.len() {
        if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else if nested && bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
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
    if !rest
        .first()
        .copied()
        .is_some_and(|c| is_ident_start(c) && c != b'$')
    {
        return None;
    }
    let n = rest.iter().take_while(|&&c| is_ident_char(c)).count();
    (rest.get(n) == Some(&b'$')).then_some(n + 2)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Index(i) => write!(f, "#{}", i + 1),
            Slot::Name(n) => write!(f, ":{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(sql: &str) -> Rewritten {
        rewrite(sql, Dialect::Sqlite).unwrap()
    }
    fn pg(sql: &str) -> Rewritten {
        rewrite(sql, Dialect::Postgres).unwrap()
    }

    #[test]
    fn positional_to_each_dialect() {
        let r = pg("select * from t where a = ? and b = ?");
        assert_eq!(r.sql, "select * from t where a = $1 and b = $2");
        assert_eq!(r.expected, Expected::Positional(2));
        assert!(r.is_identity());
        assert_eq!(sqlite("a = ? and b = ?").sql, "a = ?1 and b = ?2");
        assert_eq!(
            rewrite("a = ? and b = ?", Dialect::Question).unwrap().sql,
            "a = ? and b = ?"
        );
    }

    #[test]
    fn literals_identifiers_and_comments_are_left_alone() {
        let sql = "select '?', 'it''s :x', \"col?\", `b?`, [c?] -- why ?\n, ? /* :y ? */ from t";
        let r = sqlite(sql);
        assert_eq!(
            r.sql,
            "select '?', 'it''s :x', \"col?\", `b?`, [c?] -- why ?\n, ?1 /* :y ? */ from t"
        );
        assert_eq!(r.expected, Expected::Positional(1));
    }

    #[test]
    fn postgres_specials() {
        let r = pg(
            "select $$ ? :x $$, $fn$ ? $fn$, E'\\' ?', x::text, a$b, arr[?] from t where j ?? 'k' /* a /* b ? */ ? */",
        );
        assert_eq!(
            r.sql,
            "select $$ ? :x $$, $fn$ ? $fn$, E'\\' ?', x::text, a$b, arr[$1] from t where j ? 'k' /* a /* b ? */ ? */"
        );
    }

    /// Issue 16: valid Postgres that was read as named parameters.
    #[test]
    fn postgres_slices_and_prefix_at_are_not_parameters() {
        for q in [
            "SELECT (ARRAY[1,2,3])[2:cardinality(ARRAY[1,2,3])]",
            "SELECT a[1:n], a[:n], a[n:], m[1:2][x:y] FROM t",
            "SELECT @x, @ -5, @(a - b), j @> k, k <@ j, v @@ q FROM t",
        ] {
            let r = pg(q);
            assert_eq!(r.sql, q);
            assert_eq!(r.expected, Expected::Nothing, "{q}");
        }
        // Parameters still work around and inside brackets.
        let r = pg("SELECT a[?:?], b[:lo] FROM t WHERE c = ?");
        assert_eq!(r.sql, "SELECT a[$1:$2], b[:lo] FROM t WHERE c = $3");
        let r = pg("SELECT a[1:2] FROM t WHERE c = :c AND d = $d");
        assert_eq!(r.sql, "SELECT a[1:2] FROM t WHERE c = $1 AND d = $2");
        // SQLite keeps its three named forms.
        assert_eq!(sqlite("SELECT @x, :y, $z").sql, "SELECT ?1, ?2, ?3");
    }

    #[test]
    fn mixing_is_an_error() {
        assert!(matches!(
            rewrite("a = ? and b = :b", Dialect::Postgres),
            Err(PlaceholderError::Mixed { .. })
        ));
        assert!(matches!(
            rewrite("a = :a and b = ?", Dialect::Sqlite),
            Err(PlaceholderError::Mixed { .. })
        ));
    }

    #[test]
    fn named_are_numbered_by_first_use_and_reused() {
        // (`@name` is not a parameter on Postgres: see the module docs.)
        let r = pg("insert into t values (:id, $name, $id, :name, :other)");
        assert_eq!(r.sql, "insert into t values ($1, $2, $1, $2, $3)");
        assert_eq!(
            r.expected,
            Expected::Named(vec!["id".into(), "name".into(), "other".into()])
        );
        assert_eq!(
            r.slots,
            vec![
                Slot::Name("id".into()),
                Slot::Name("name".into()),
                Slot::Name("other".into())
            ]
        );
        let q = rewrite("(:id, :id)", Dialect::Question).unwrap();
        assert_eq!(q.sql, "(?, ?)");
        assert_eq!(
            q.slots,
            vec![Slot::Name("id".into()), Slot::Name("id".into())]
        );
    }

    #[test]
    fn numbered_positional() {
        let r = sqlite("a = ?2 and b = ?1 and c = ?2");
        assert_eq!(r.sql, "a = ?2 and b = ?1 and c = ?2");
        assert_eq!(r.expected, Expected::Positional(2));
        let q = rewrite("a = ?2 and b = ?1", Dialect::Question).unwrap();
        assert_eq!(q.slots, vec![Slot::Index(1), Slot::Index(0)]);
        assert!(matches!(
            rewrite("a = ?0", Dialect::Sqlite),
            Err(PlaceholderError::BadNumber { .. })
        ));
    }

    #[test]
    fn unicode_and_unterminated_input() {
        let r = sqlite("select 'héllo ?', ? as \"naïve\"");
        assert_eq!(r.sql, "select 'héllo ?', ?1 as \"naïve\"");
        // An unterminated literal swallows the rest; the database reports the syntax error.
        assert_eq!(sqlite("select 'abc ?").expected, Expected::Nothing);
        assert_eq!(sqlite("select ? -- trailing").sql, "select ?1 -- trailing");
    }

    #[test]
    fn params_can_be_decorated() {
        let out = rewrite_params("select '$1', $1, $2 -- $2", Dialect::Postgres, |i| {
            if i == 1 {
                "($2::text)::uuid".into()
            } else {
                format!("${}", i + 1)
            }
        })
        .unwrap();
        assert_eq!(out, "select '$1', $1, ($2::text)::uuid -- $2");
    }

    #[test]
    fn bare_sigils_are_not_parameters() {
        let r = pg("select a @> b, c <@ d, e::int, 'x' || ':'");
        assert_eq!(r.expected, Expected::Nothing);
        assert_eq!(r.sql, "select a @> b, c <@ d, e::int, 'x' || ':'");
    }
}
