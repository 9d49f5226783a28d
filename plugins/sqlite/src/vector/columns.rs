//! A collection's metadata held in memory for filters: every row's JSON
//! text, and a column of values for each path filters have named.
//!
//! Selecting the rows that pass a filter in SQL meant SQLite's JSON
//! functions on every row of the collection, every query (~330 ns a row:
//! 17–36 ms at 60K rows). Here the first filter on a path reads that path
//! out of every row's text once ([`PathReader`]: only the value at the
//! path is built, the rest of the text skipped), and later filters on it
//! test a column of values: a few nanoseconds a row. The columns follow
//! the rows: writes push and swap-remove them with the cache's rows.
//!
//! The answer is [`Filter::matches`]'s on each row's parsed metadata: a
//! field condition resolves its path the same way ([`PathReader`] is
//! property-tested against it in plugin-api) and is tested by the same
//! [`FieldOp::matches`].
//!
//! At most [`MAX_COLUMNS`] columns are kept (a filter naming more paths
//! than that is evaluated on the texts directly, [`TextMatcher`]); a new
//! path past the limit replaces a column the filter does not use.
//! Memory: the texts as stored, plus 32 bytes a row per column (and the
//! strings and arrays in it).
//!
//! [`TextMatcher`]: strata_plugin::filter::TextMatcher

use std::{collections::HashMap, sync::RwLock};

use serde_json::Value as Json;
use strata_ann::KeySet;
use strata_plugin::filter::{FieldOp, Filter, PathReader};

/// Columns kept per collection.
pub(super) const MAX_COLUMNS: usize = 16;

/// The values at one path, row for row (`None`: missing).
type Column = Vec<Option<Json>>;

/// Metadata of every row, row for row with the cache.
pub(super) struct Metadata {
    texts: Vec<Box<str>>,
    /// By path. Filled under the lock by the first query naming a path.
    columns: RwLock<HashMap<Vec<String>, Column>>,
}

/// A filter compiled against the columns.
enum Expr<'a> {
    All,
    And(Vec<Expr<'a>>),
    Or(Vec<Expr<'a>>),
    Not(Box<Expr<'a>>),
    Field(&'a [Option<Json>], &'a FieldOp),
}

impl Expr<'_> {
    fn eval(&self, row: usize) -> bool {
        match self {
            Expr::All => true,
            Expr::And(es) => es.iter().all(|e| e.eval(row)),
            Expr::Or(es) => es.iter().any(|e| e.eval(row)),
            Expr::Not(e) => !e.eval(row),
            Expr::Field(column, op) => op.matches(column[row].as_ref()),
        }
    }
}

fn paths<'f>(filter: &'f Filter, out: &mut Vec<&'f Vec<String>>) {
    match filter {
        Filter::All => {}
        Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| paths(f, out)),
        Filter::Not(f) => paths(f, out),
        Filter::Field { path, .. } => {
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
}

fn compile<'a>(filter: &'a Filter, columns: &'a HashMap<Vec<String>, Column>) -> Expr<'a> {
    match filter {
        Filter::All => Expr::All,
        Filter::And(fs) => Expr::And(fs.iter().map(|f| compile(f, columns)).collect()),
        Filter::Or(fs) => Expr::Or(fs.iter().map(|f| compile(f, columns)).collect()),
        Filter::Not(f) => Expr::Not(Box::new(compile(f, columns))),
        Filter::Field { path, op } => Expr::Field(&columns[path], op),
    }
}

/// The value at `path` in `text`; `Err` when the text is not JSON.
fn read(reader: &mut PathReader<'_>, text: &str) -> Result<Option<Json>, ()> {
    reader.read(text).map_err(|_| ())
}

impl Metadata {
    /// Row `i`'s metadata is `texts[i]`.
    pub(super) fn new(texts: Vec<Box<str>>) -> Metadata {
        Metadata {
            texts,
            columns: RwLock::default(),
        }
    }

    /// Appends a row.
    pub(super) fn push(&mut self, text: &str) {
        let columns = self.columns.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut broken = false;
        for (path, column) in columns.iter_mut() {
            match read(&mut PathReader::new(path), text) {
                Ok(v) => column.push(v),
                Err(()) => broken = true,
            }
        }
        if broken {
            // Not JSON: no column can hold the row; filters fall back to
            // SQL, which names the fault.
            columns.clear();
        }
        self.texts.push(text.into());
    }

    /// Removes row `row`, the last row taking its place.
    pub(super) fn swap_remove(&mut self, row: usize) {
        self.texts.swap_remove(row);
        let columns = self.columns.get_mut().unwrap_or_else(|p| p.into_inner());
        for column in columns.values_mut() {
            column.swap_remove(row);
        }
    }

    /// Bytes held: the texts, and 32 a row per column (not counting the
    /// strings and arrays inside the values).
    pub(super) fn bytes(&self) -> usize {
        let columns = self.columns.read().unwrap_or_else(|p| p.into_inner());
        self.texts.iter().map(|t| t.len()).sum::<usize>()
            + columns.len() * self.texts.len() * std::mem::size_of::<Option<Json>>()
    }

    /// The keys (`key(row)`) of the rows passing `filter`. `None` when a
    /// row's text is not JSON: the caller asks SQL instead.
    pub(super) fn matching(&self, filter: &Filter, key: impl Fn(usize) -> i64) -> Option<KeySet> {
        let mut wanted = Vec::new();
        paths(filter, &mut wanted);
        if wanted.len() > MAX_COLUMNS {
            let mut m = filter.text_matcher();
            let mut pks = KeySet::default();
            for (row, text) in self.texts.iter().enumerate() {
                if m.matches(text).ok()? {
                    pks.insert(key(row));
                }
            }
            return Some(pks);
        }
        let eval = |columns: &HashMap<Vec<String>, Column>| {
            let expr = compile(filter, columns);
            (0..self.texts.len())
                .filter(|&row| expr.eval(row))
                .map(&key)
                .collect::<KeySet>()
        };
        {
            let columns = self.columns.read().unwrap_or_else(|p| p.into_inner());
            if wanted.iter().all(|p| columns.contains_key(*p)) {
                return Some(eval(&columns));
            }
        }
        let mut columns = self.columns.write().unwrap_or_else(|p| p.into_inner());
        for path in wanted.iter().copied() {
            if columns.contains_key(path) {
                continue;
            }
            if columns.len() >= MAX_COLUMNS {
                let unused = columns.keys().find(|p| !wanted.contains(p)).cloned();
                if let Some(unused) = unused {
                    columns.remove(&unused);
                }
            }
            let mut reader = PathReader::new(path);
            let column = self
                .texts
                .iter()
                .map(|t| read(&mut reader, t))
                .collect::<Result<Column, ()>>()
                .ok()?;
            columns.insert(path.clone(), column);
        }
        Some(eval(&columns))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys(set: Option<KeySet>) -> Vec<i64> {
        let mut v: Vec<i64> = set.expect("answered").into_iter().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn columns_follow_pushes_and_swap_removes() {
        let docs = [
            json!({"kind": "fact", "n": 1}),
            json!({"kind": "event", "n": 2, "src": {"app": "cli"}}),
            json!({"kind": "fact", "n": 3, "src": {"app": "web"}}),
        ];
        let mut m = Metadata::new(docs.iter().map(|d| d.to_string().into()).collect());
        let mut rows: Vec<Json> = docs.to_vec();
        let key = |row: usize| row as i64;
        let check = |m: &Metadata, rows: &[Json]| {
            for f in [
                json!({"kind": "fact"}),
                json!({"n": {"$gte": 2}}),
                json!({"$or": [{"src.app": "cli"}, {"kind": {"$exists": false}}]}),
                json!({"src.app": {"$ne": "web"}, "n": {"$lt": 10}}),
            ] {
                let filter = Filter::parse(&f).unwrap();
                let want: Vec<i64> = (0..rows.len())
                    .filter(|&r| filter.matches(&rows[r]))
                    .map(|r| r as i64)
                    .collect();
                assert_eq!(keys(m.matching(&filter, key)), want, "{f} over {rows:?}");
            }
        };
        // Builds the columns, then patches them.
        check(&m, &rows);
        assert_eq!(m.columns.read().unwrap().len(), 3);
        let more = json!({"n": 7, "src": {"app": "cli"}});
        m.push(&more.to_string());
        rows.push(more);
        m.swap_remove(0);
        rows.swap_remove(0);
        check(&m, &rows);
        // A text that is not JSON: no answer from memory (SQL names it).
        m.push("{not json");
        assert!(
            m.matching(&Filter::parse(&json!({"n": 1})).unwrap(), key)
                .is_none()
        );
    }

    #[test]
    fn a_filter_naming_more_paths_than_columns_reads_the_texts() {
        let doc = json!({"a0": 0, "a1": 1, "a2": 2});
        let m = Metadata::new(vec![doc.to_string().into()]);
        let clauses: Vec<Json> = (0..MAX_COLUMNS + 1)
            .map(|i| json!({ format!("a{i}"): {"$ne": 5} }))
            .collect();
        let filter = Filter::parse(&json!({ "$and": clauses })).unwrap();
        assert_eq!(keys(m.matching(&filter, |r| r as i64)), [0]);
        assert!(m.columns.read().unwrap().is_empty());
        // Past the limit, a new path replaces a column the filter does not use.
        for i in 0..MAX_COLUMNS + 3 {
            let f = Filter::parse(&json!({ format!("a{i}"): {"$exists": i < 3} })).unwrap();
            assert_eq!(keys(m.matching(&f, |r| r as i64)), [0]);
        }
        assert_eq!(m.columns.read().unwrap().len(), MAX_COLUMNS);
    }
}
