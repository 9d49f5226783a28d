//! Rows: what is read from and written to a collection's table and its
//! FTS5 table. Every function runs on a connection the caller holds (a
//! reader, or the writer inside its transaction); none touches the caches.
//!
//! An overwrite deletes the old row and inserts a new one, so every stored
//! vector has its own `pk` forever (which keeps derived indexes simple).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params_from_iter};
use strata_ann::{
    KeySet,
    codec::{decode, encode},
};
use strata_plugin::{
    PluginError, PluginResult, Value,
    filter::Filter,
    vector::{Match, ScanPage, VectorRecord, include},
};

use super::catalog::{Meta, fts_table, vec_table};
use crate::{error::map, filter_sql, sql::Bind};

/// One stored record.
pub(super) struct Row {
    id: String,
    vector: Vec<f32>,
    metadata: String,
    text: Option<String>,
}

impl Row {
    /// The stored vector (as written).
    pub(super) fn vector(&self) -> &[f32] {
        &self.vector
    }
}

/// `row` as a result carrying what `flags` ask for.
pub(super) fn to_match(row: &Row, score: f64, flags: u32) -> Match {
    Match {
        id: row.id.clone(),
        score,
        vector: (flags & include::VECTOR != 0).then(|| row.vector.clone()),
        metadata_json: (flags & include::METADATA != 0).then(|| row.metadata.clone()),
        text: row.text.clone().filter(|_| flags & include::TEXT != 0),
    }
}

fn blob<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> PluginResult<&'a [u8]> {
    r.get_ref(i)
        .map_err(map)?
        .as_blob()
        .map_err(|e| PluginError::internal(e.to_string()))
}

/// Calls `f(pk, id, vector bytes)` for every row of `meta`'s collection,
/// in pk order.
pub(super) fn each_vector(
    c: &Connection,
    meta: &Meta,
    mut f: impl FnMut(i64, String, &[u8]) -> PluginResult<()>,
) -> PluginResult<()> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT pk, id, vector FROM {} ORDER BY pk",
            vec_table(&meta.name)
        ))
        .map_err(map)?;
    let mut rows = stmt.query([]).map_err(map)?;
    while let Some(r) = rows.next().map_err(map)? {
        f(r.get(0).map_err(map)?, r.get(1).map_err(map)?, blob(r, 2)?)?;
    }
    Ok(())
}

/// Every row's metadata text, as `(pk, text)`.
pub(super) type MetadataRows = Vec<(i64, Box<str>)>;

/// Every row's metadata of `meta`'s collection and the generation they
/// belong to, read in one snapshot (scanned from the metadata index: the
/// vectors are not read).
pub(super) fn all_metadata(c: &Connection, meta: &Meta) -> PluginResult<(i64, MetadataRows)> {
    let _snapshot = if c.is_autocommit() {
        Some(c.unchecked_transaction().map_err(map)?)
    } else {
        None
    };
    let generation = super::catalog::generation(c, &meta.name)?;
    let mut stmt = c.prepare(&all_metadata_sql(meta)).map_err(map)?;
    let rows = stmt
        .query_map([], |r| {
            let text = r.get_ref(1)?;
            let text = text.as_str().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, text.data_type(), Box::new(e))
            })?;
            Ok((r.get::<_, i64>(0)?, Box::<str>::from(text)))
        })
        .map_err(map)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map)?;
    Ok((generation, rows))
}

fn all_metadata_sql(meta: &Meta) -> String {
    format!("SELECT pk, metadata FROM {}", vec_table(&meta.name))
}

/// `SELECT {what}` over the rows passing filter `f`: read from the
/// collection's metadata index, not its table
/// ([`ensure_metadata_index`](super::catalog::ensure_metadata_index)),
/// when `what` needs nothing else.
fn matching(meta: &Meta, what: &str, f: &filter_sql::SqlFilter) -> String {
    format!(
        "SELECT {what} FROM {} WHERE {}",
        vec_table(&meta.name),
        f.sql
    )
}

/// The pks matching `filter` (`None`: no restriction).
pub(super) fn filtered_pks(
    c: &Connection,
    meta: &Meta,
    filter: &Filter,
) -> PluginResult<Option<KeySet>> {
    if filter.is_all() {
        return Ok(None);
    }
    let f = filter_sql::translate(filter, "metadata")?;
    let mut stmt = c.prepare_cached(&matching(meta, "pk", &f)).map_err(map)?;
    let pks = stmt
        .query_map(params_from_iter(f.params.iter().map(Bind)), |r| {
            r.get::<_, i64>(0)
        })
        .map_err(map)?
        .collect::<Result<KeySet, _>>()
        .map_err(map)?;
    Ok(Some(pks))
}

/// Full rows by pk.
pub(super) fn rows_by_pk(
    c: &Connection,
    meta: &Meta,
    pks: &[i64],
) -> PluginResult<HashMap<i64, Row>> {
    let mut out = HashMap::with_capacity(pks.len());
    for chunk in pks.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = c
            .prepare(&format!(
                "SELECT pk, id, vector, metadata, text FROM {} WHERE pk IN ({marks})",
                vec_table(&meta.name)
            ))
            .map_err(map)?;
        let mut rows = stmt.query(params_from_iter(chunk.iter())).map_err(map)?;
        while let Some(r) = rows.next().map_err(map)? {
            let pk: i64 = r.get(0).map_err(map)?;
            out.insert(
                pk,
                Row {
                    id: r.get(1).map_err(map)?,
                    vector: decode(blob(r, 2)?),
                    metadata: r.get(3).map_err(map)?,
                    text: r.get(4).map_err(map)?,
                },
            );
        }
    }
    Ok(out)
}

/// The current rows (with their pks) of records `ids` that pass `filter`,
/// by id: how a query reads back a record that was written again (a new
/// pk) after the cache it was ranked in.
pub(super) fn rows_by_id(
    c: &Connection,
    meta: &Meta,
    ids: &[String],
    filter: &Filter,
) -> PluginResult<HashMap<String, (i64, Row)>> {
    let mut out = HashMap::with_capacity(ids.len());
    let f = (!filter.is_all())
        .then(|| filter_sql::translate(filter, "metadata"))
        .transpose()?;
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let (cond, params) = match &f {
            Some(f) => (format!(" AND ({})", f.sql), f.params.as_slice()),
            None => (String::new(), &[][..]),
        };
        let mut stmt = c
            .prepare(&format!(
                "SELECT pk, id, vector, metadata, text FROM {} WHERE id IN ({marks}){cond}",
                vec_table(&meta.name)
            ))
            .map_err(map)?;
        // Positional parameters in text order: the ids, then the filter's.
        let values: Vec<Value> = chunk
            .iter()
            .map(|id| Value::Text(id.as_str().into()))
            .chain(params.iter().cloned())
            .collect();
        let mut rows = stmt
            .query(params_from_iter(values.iter().map(Bind)))
            .map_err(map)?;
        while let Some(r) = rows.next().map_err(map)? {
            let pk: i64 = r.get(0).map_err(map)?;
            let row = Row {
                id: r.get(1).map_err(map)?,
                vector: decode(blob(r, 2)?),
                metadata: r.get(3).map_err(map)?,
                text: r.get(4).map_err(map)?,
            };
            out.insert(row.id.clone(), (pk, row));
        }
    }
    Ok(out)
}

/// Records by id, in the order asked (ids not found are left out).
pub(super) fn fetch(
    c: &Connection,
    meta: &Meta,
    ids: &[String],
    flags: u32,
) -> PluginResult<Vec<Match>> {
    let mut found: HashMap<String, Row> = HashMap::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = c
            .prepare(&format!(
                "SELECT id, vector, metadata, text FROM {} WHERE id IN ({marks})",
                vec_table(&meta.name)
            ))
            .map_err(map)?;
        let mut rows = stmt
            .query(params_from_iter(chunk.iter().map(|s| s.as_str())))
            .map_err(map)?;
        while let Some(r) = rows.next().map_err(map)? {
            let row = Row {
                id: r.get(0).map_err(map)?,
                vector: decode(blob(r, 1)?),
                metadata: r.get(2).map_err(map)?,
                text: r.get(3).map_err(map)?,
            };
            found.insert(row.id.clone(), row);
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| found.get(id.as_str()).map(|r| to_match(r, 0.0, flags)))
        .collect())
}

/// Rows matching `filter`.
pub(super) fn count(c: &Connection, meta: &Meta, filter: &Filter) -> PluginResult<u64> {
    let f = filter_sql::translate(filter, "metadata")?;
    let n: i64 = c
        .prepare_cached(&matching(meta, "count(*)", &f))
        .map_err(map)?
        .query_row(params_from_iter(f.params.iter().map(Bind)), |r| r.get(0))
        .map_err(map)?;
    Ok(n as u64)
}

/// One page of rows matching `filter` with a pk above `after`, in pk
/// order; the cursor of the next page is the last pk of a full page.
pub(super) fn scan(
    c: &Connection,
    meta: &Meta,
    filter: &Filter,
    after: i64,
    limit: u32,
    flags: u32,
) -> PluginResult<ScanPage> {
    let f = filter_sql::translate(filter, "metadata")?;
    let mut params = vec![Value::Integer(after)];
    params.extend(f.params);
    params.push(Value::Integer(i64::from(limit)));
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT pk, id, vector, metadata, text FROM {} WHERE pk > ? AND {} ORDER BY pk LIMIT ?",
            vec_table(&meta.name),
            f.sql
        ))
        .map_err(map)?;
    let mut rows = stmt
        .query(params_from_iter(params.iter().map(Bind)))
        .map_err(map)?;
    let mut records = Vec::new();
    let mut last = None;
    while let Some(r) = rows.next().map_err(map)? {
        let pk: i64 = r.get(0).map_err(map)?;
        let row = Row {
            id: r.get(1).map_err(map)?,
            vector: decode(blob(r, 2)?),
            metadata: r.get(3).map_err(map)?,
            text: r.get(4).map_err(map)?,
        };
        records.push(to_match(&row, 0.0, flags));
        last = Some(pk);
    }
    let next_cursor = match last {
        Some(pk) if records.len() == limit as usize => Some(pk.to_string()),
        _ => None,
    };
    Ok(ScanPage {
        records,
        next_cursor,
    })
}

/// The words of a hybrid query's text, each quoted as an FTS5 phrase (so
/// nothing in the text is read as query syntax), without repeats; `None`
/// when the text has no word.
pub(super) fn fts_words(text: &str) -> Option<Vec<String>> {
    let mut words: Vec<String> = Vec::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let quoted = format!("\"{}\"", w.replace('"', "\"\""));
        if !words.contains(&quoted) {
            words.push(quoted);
        }
    }
    (!words.is_empty()).then_some(words)
}

/// The words of `words` that carry weight in BM25 for this collection: the
/// others are in at least half of its rows, where FTS5's BM25 gives a word
/// no weight (its idf, `ln((N - n + 0.5) / (n + 0.5))`, is not positive and
/// FTS5 clamps it to 10⁻⁶). Leaving them out of the `OR` query changes no
/// score by more than ~2·10⁻⁶ per word, but spares ranking every row they
/// match — at 100K notes a word such as a user's name or "lunch" matches
/// most of them, and ranking those rows was almost all of a hybrid query's
/// time. What changes: rows matching *only* such words are no longer
/// lexical candidates (they would have ranked last), and rows whose scores
/// differ only in those words tie. When every word is such a word, all are
/// kept. Each word's row count stops at half the collection, so the check
/// costs at most one pass over half of each word's posting list.
fn weighty_words(c: &Connection, meta: &Meta, words: Vec<String>) -> PluginResult<Vec<String>> {
    if words.len() < 2 {
        return Ok(words);
    }
    let fts = fts_table(&meta.name);
    let rows: i64 = c
        .prepare_cached(&format!(
            "SELECT count(*) FROM \"strata_fts_{}_docsize\"",
            meta.name
        ))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(map)?;
    // n >= N / 2 is the same test as idf <= 0.
    let half = (rows + 1) / 2;
    let mut count = c
        .prepare_cached(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM {fts} WHERE {fts} MATCH ?1 LIMIT ?2)"
        ))
        .map_err(map)?;
    let mut weighty = Vec::with_capacity(words.len());
    for w in &words {
        let n: i64 = count
            .query_row(rusqlite::params![w, half], |r| r.get(0))
            .map_err(map)?;
        if 2 * n < rows {
            weighty.push(w.clone());
        }
    }
    Ok(if weighty.is_empty() { words } else { weighty })
}

/// The `(pk, id)` of the best `limit` BM25 matches of `words` (OR-ed, less
/// the words BM25 gives no weight: [`weighty_words`]), best first. A
/// filtered query ranks among the rows its filter selected:
/// [`lexical_among`].
pub(super) fn lexical(
    c: &Connection,
    meta: &Meta,
    words: Vec<String>,
    limit: usize,
) -> PluginResult<Vec<(i64, String)>> {
    let q = weighty_words(c, meta, words)?.join(" OR ");
    let (fts, vt) = (fts_table(&meta.name), vec_table(&meta.name));
    // Ranked first, joined after: only the best `limit` matches read their
    // row for the id. Joined before the ORDER BY, every match read its row
    // — with its vector, ~1.6 KB at 384 dimensions — and those reads were
    // most of a hybrid query.
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT v.pk, v.id FROM (SELECT rowid AS pk, bm25({fts}) AS score FROM {fts} WHERE {fts} MATCH ?1 ORDER BY score, rowid LIMIT ?2) AS top JOIN {vt} AS v ON v.pk = top.pk ORDER BY top.score, top.pk"
        ))
        .map_err(map)?;
    stmt.query_map(rusqlite::params![q, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })
    .map_err(map)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(map)
}

/// The deepest first read of the full-text order in [`lexical_among`].
const MAX_LEXICAL_DEPTH: usize = 1024;

/// The `(pk, id)` of the best `limit` BM25 matches of `words` (as
/// [`lexical`] picks them) among the `allowed` pks (of a collection of
/// `total` rows), best first.
///
/// The rows passing a filter are already known (the dense half of a
/// hybrid query selected them): matches are read in BM25 order, rowids
/// only, and kept while among them; only the kept ones read their row, for
/// the id. Filtering in SQL instead joined every match to its row and
/// evaluated the filter on its JSON before the cut.
///
/// A full sort of every match costs ~40 % more than keeping the best few
/// (FTS5 scores them all either way), so the order is first read only as
/// deep as the filter's share of rows suggests — twice the depth at which
/// `limit` allowed rows are expected — and read again in full only if
/// that was not deep enough. Past [`MAX_LEXICAL_DEPTH`] the cut saves
/// nothing (SQLite's top-N sorter keeping 10,000 rows was slower than a
/// full sort: `benchmarks/vectors-sqlite.md`, session 18) and the order is
/// read in full at once.
pub(super) fn lexical_among(
    c: &Connection,
    meta: &Meta,
    words: Vec<String>,
    allowed: &KeySet,
    total: usize,
    limit: usize,
) -> PluginResult<Vec<(i64, String)>> {
    if allowed.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let q = weighty_words(c, meta, words)?.join(" OR ");
    let (fts, vt) = (fts_table(&meta.name), vec_table(&meta.name));
    let mut id = c
        .prepare_cached(&format!("SELECT id FROM {vt} WHERE pk = ?1"))
        .map_err(map)?;
    let expected = limit.saturating_mul(total).div_ceil(allowed.len());
    let mut depth = Some(expected.saturating_mul(2).saturating_add(16))
        .filter(|&d| d < total && d <= MAX_LEXICAL_DEPTH);
    loop {
        let mut ranked = c
            .prepare_cached(&match depth {
                Some(_) => format!(
                    "SELECT rowid FROM {fts} WHERE {fts} MATCH ?1 ORDER BY bm25({fts}), rowid LIMIT ?2"
                ),
                None => format!(
                    "SELECT rowid FROM {fts} WHERE {fts} MATCH ?1 ORDER BY bm25({fts}), rowid"
                ),
            })
            .map_err(map)?;
        let mut rows = match depth {
            Some(d) => ranked.query(rusqlite::params![q, d as i64]),
            None => ranked.query(rusqlite::params![q]),
        }
        .map_err(map)?;
        let mut out = Vec::with_capacity(limit.min(allowed.len()));
        let mut seen = 0usize;
        while out.len() < limit {
            let Some(row) = rows.next().map_err(map)? else {
                break;
            };
            seen += 1;
            let pk: i64 = row.get(0).map_err(map)?;
            if !allowed.contains(&pk) {
                continue;
            }
            // A row deleted since the selection is not a match.
            if let Some(id) = id
                .query_row([pk], |r| r.get::<_, String>(0))
                .optional()
                .map_err(map)?
            {
                out.push((pk, id));
            }
        }
        match depth {
            // Not deep enough: more matches exist past the cut.
            Some(d) if out.len() < limit && seen >= d => depth = None,
            _ => return Ok(out),
        }
    }
}

/// What a write changed: pks deleted, rows inserted.
#[derive(Default)]
pub(super) struct Written {
    pub(super) removed: Vec<i64>,
    pub(super) added: Vec<Added>,
}

/// A row a write inserted, as the cache keeps it.
pub(super) struct Added {
    pub(super) pk: i64,
    pub(super) id: String,
    pub(super) vector: Vec<f32>,
    /// The metadata text as stored (`{}` for none).
    pub(super) metadata: String,
}

/// Writes `records` into collection `name` (inside the caller's
/// transaction): each id's old row, if any, is deleted, a new one inserted.
pub(super) fn upsert(
    c: &Connection,
    name: &str,
    records: &[VectorRecord],
) -> PluginResult<Written> {
    let v = vec_table(name);
    let mut written = Written {
        removed: Vec::new(),
        added: Vec::with_capacity(records.len()),
    };
    let mut del = c
        .prepare_cached(&format!("DELETE FROM {v} WHERE id = ?1 RETURNING pk"))
        .map_err(map)?;
    let mut ins = c
        .prepare_cached(&format!(
            "INSERT INTO {v} (id, vector, metadata, text) VALUES (?1, ?2, ?3, ?4)"
        ))
        .map_err(map)?;
    for r in records {
        if let Some(pk) = del
            .query_row([r.id.as_str()], |row| row.get::<_, i64>(0))
            .optional()
            .map_err(map)?
        {
            written.removed.push(pk);
        }
        let metadata = if r.metadata_json.is_empty() {
            "{}"
        } else {
            r.metadata_json.as_str()
        };
        ins.execute(rusqlite::params![
            r.id.as_str(),
            encode(&r.vector),
            metadata,
            r.text.as_deref()
        ])
        .map_err(map)?;
        written.added.push(Added {
            pk: c.last_insert_rowid(),
            id: r.id.clone(),
            vector: r.vector.clone(),
            metadata: metadata.to_string(),
        });
    }
    Ok(written)
}

/// Which rows a delete removes.
pub(super) enum Doomed<'a> {
    Ids(&'a [String]),
    Filter(&'a Filter),
    All,
}

/// Deletes rows of collection `name` (inside the caller's transaction);
/// returns their pks.
pub(super) fn delete(c: &Connection, name: &str, doomed: Doomed<'_>) -> PluginResult<Written> {
    let v = vec_table(name);
    let removed = match doomed {
        Doomed::Ids(ids) => {
            let mut del = c
                .prepare_cached(&format!("DELETE FROM {v} WHERE id = ?1 RETURNING pk"))
                .map_err(map)?;
            let mut removed = Vec::new();
            for id in ids {
                if let Some(pk) = del
                    .query_row([id.as_str()], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(map)?
                {
                    removed.push(pk);
                }
            }
            removed
        }
        Doomed::Filter(_) | Doomed::All => {
            let (cond, params) = match doomed {
                Doomed::Filter(filter) => {
                    let f = filter_sql::translate(filter, "metadata")?;
                    (f.sql, f.params)
                }
                _ => ("1".to_string(), Vec::new()),
            };
            let mut stmt = c
                .prepare(&format!("DELETE FROM {v} WHERE {cond} RETURNING pk"))
                .map_err(map)?;
            stmt.query_map(params_from_iter(params.iter().map(Bind)), |r| {
                r.get::<_, i64>(0)
            })
            .map_err(map)?
            .collect::<Result<_, _>>()
            .map_err(map)?
        }
    };
    Ok(Written {
        removed,
        added: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use strata_plugin::vector::{CollectionSpec, Metric};

    use super::*;

    /// The plan SQLite makes for `what` over the rows passing `filter`.
    fn plan(c: &Connection, meta: &Meta, what: &str, filter: &str) -> String {
        let f = filter_sql::translate(&Filter::parse_str(filter).unwrap(), "metadata").unwrap();
        let mut stmt = c
            .prepare(&format!("EXPLAIN QUERY PLAN {}", matching(meta, what, &f)))
            .unwrap();
        let rows = stmt
            .query_map(params_from_iter(f.params.iter().map(Bind)), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn filters_read_the_metadata_index_not_the_table() {
        let c = Connection::open_in_memory().unwrap();
        let spec = CollectionSpec {
            name: "notes".into(),
            dimension: 384,
            metric: Metric::Cosine,
            options_json: String::new(),
        };
        super::super::catalog::create(&c, &spec).unwrap();
        let meta = super::super::catalog::require_meta(&c, "notes").unwrap();
        for filter in [
            r#"{"bucket": 7}"#,
            r#"{"bucket": {"$lt": 50}}"#,
            r#"{"$or": [{"kind": "fact"}, {"tags": {"$in": ["rust", "sql"]}}]}"#,
            r#"{"$not": {"source.app": {"$exists": true}}}"#,
        ] {
            for what in ["pk", "count(*)"] {
                let plan = plan(&c, &meta, what, filter);
                assert!(
                    plan.contains(
                        "SCAN strata_vec_notes USING COVERING INDEX strata_vec_notes_metadata"
                    ),
                    "SELECT {what} with {filter}: {plan}"
                );
            }
        }
        let plan: String = c
            .query_row(
                &format!("EXPLAIN QUERY PLAN {}", all_metadata_sql(&meta)),
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.contains("USING COVERING INDEX strata_vec_notes_metadata"),
            "every row's metadata: {plan}"
        );
    }
}
