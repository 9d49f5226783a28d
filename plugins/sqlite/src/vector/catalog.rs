//! The catalog: which collections exist, their shape and generation, and
//! the DDL that makes and drops them.
//!
//! `strata_collections(name, dimension, metric, options, generation)` lists
//! collections; each is a table `strata_vec_<name>` (`pk` rowid with
//! AUTOINCREMENT, string `id` UNIQUE, `vector` BLOB, `metadata` JSON text,
//! `text`) and an external-content FTS5 table `strata_fts_<name>` kept in
//! sync by triggers. Every write sets a new random `generation` in its
//! transaction ([`bump_generation`]); equal generations mean identical
//! contents, even across processes.

use rusqlite::{Connection, OptionalExtension};
use strata_plugin::{
    ErrorKind, PluginError, PluginResult,
    vector::{CollectionInfo, CollectionSpec, Metric, validate_collection_name},
};

use crate::error::map;

const CATALOG: &str = "CREATE TABLE IF NOT EXISTS strata_collections (
    name TEXT PRIMARY KEY,
    dimension INTEGER NOT NULL,
    metric TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    generation INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)";

/// The quoted table of collection `name`.
pub(super) fn vec_table(name: &str) -> String {
    format!("\"strata_vec_{name}\"")
}

/// The quoted FTS5 table of collection `name`.
pub(super) fn fts_table(name: &str) -> String {
    format!("\"strata_fts_{name}\"")
}

/// A collection's catalog row.
#[derive(Clone, Debug)]
pub(super) struct Meta {
    pub(super) name: String,
    pub(super) dimension: u32,
    pub(super) metric: Metric,
    pub(super) generation: i64,
}

impl Meta {
    /// The metric in strata-ann's terms.
    pub(super) fn ann_metric(&self) -> strata_ann::Metric {
        match self.metric {
            Metric::Cosine => strata_ann::Metric::Cosine,
            Metric::Dot => strata_ann::Metric::Dot,
            Metric::Euclidean => strata_ann::Metric::Euclidean,
        }
    }
}

fn metric_from_db(s: &str) -> PluginResult<Metric> {
    Metric::from_name(s)
        .ok_or_else(|| PluginError::internal(format!("catalog holds unknown metric {s:?}")))
}

fn catalog_exists(c: &Connection) -> PluginResult<bool> {
    c.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'strata_collections'",
        [],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(map)
}

/// The catalog row of `name`, `None` when there is none (or no catalog).
pub(super) fn read_meta(c: &Connection, name: &str) -> PluginResult<Option<Meta>> {
    // One statement on the hot path: a missing catalog shows up as a
    // prepare error ("no such table"), checked only then.
    let mut stmt = match c.prepare_cached(
        "SELECT name, dimension, metric, generation FROM strata_collections WHERE name = ?1",
    ) {
        Ok(stmt) => stmt,
        Err(e) => {
            return if catalog_exists(c)? {
                Err(map(e))
            } else {
                Ok(None)
            };
        }
    };
    stmt.query_row([name], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })
    .optional()
    .map_err(map)?
    .map(|(name, dimension, metric, generation)| {
        Ok(Meta {
            name,
            dimension,
            metric: metric_from_db(&metric)?,
            generation,
        })
    })
    .transpose()
}

/// The catalog row of `name`, or `not_found`.
pub(super) fn require_meta(c: &Connection, name: &str) -> PluginResult<Meta> {
    read_meta(c, name)?.ok_or_else(|| {
        PluginError::new(
            ErrorKind::NotFound,
            format!("collection {name:?} does not exist"),
        )
    })
}

/// The current generation of `name` (`not_found` once it was dropped).
pub(super) fn generation(c: &Connection, name: &str) -> PluginResult<i64> {
    c.prepare_cached("SELECT generation FROM strata_collections WHERE name = ?1")
        .map_err(map)?
        .query_row([name], |r| r.get(0))
        .optional()
        .map_err(map)?
        .ok_or_else(|| {
            PluginError::new(
                ErrorKind::NotFound,
                format!("collection {name:?} was dropped"),
            )
        })
}

/// Sets a new random generation token (SQLite's `random()`): equal tokens
/// mean identical contents, even when several processes write.
pub(super) fn bump_generation(c: &Connection, name: &str) -> PluginResult<i64> {
    c.prepare_cached("UPDATE strata_collections SET generation = abs(random()) WHERE name = ?1 RETURNING generation")
        .map_err(map)?
        .query_row([name], |r| r.get(0))
        .map_err(map)
}

/// Checks a create request before anything is written: the dimension is
/// in range and no collection options are given (the index is tuned in the
/// backend config).
pub(super) fn check_spec(spec: &CollectionSpec) -> PluginResult<()> {
    validate_collection_name(&spec.name)?;
    if spec.dimension == 0 || spec.dimension > 65_536 {
        return Err(PluginError::invalid_input(format!(
            "dimension {} is out of range (1..=65536)",
            spec.dimension
        )));
    }
    if !spec.options_json.is_empty() {
        let opts: serde_json::Value = serde_json::from_str(&spec.options_json).map_err(|e| {
            PluginError::invalid_input(format!("collection options are not JSON: {e}"))
        })?;
        if opts.as_object().is_some_and(|o| !o.is_empty()) {
            return Err(PluginError::invalid_input(format!(
                "the sqlite backend takes no collection options (got {opts}); tune the index in the backend config"
            )));
        }
    }
    Ok(())
}

/// Gives collection `name` its index on `metadata` unless it has it
/// (inside the caller's write transaction; a no-op statement then).
///
/// Filters are evaluated by reading each row's metadata (`filter_sql`:
/// JSON functions over the column). Read from the table, that touches
/// every row, vector BLOB included: at 384 dimensions ~1.6 KB a row, two
/// rows to a page, 30K pages for 60K records. The index holds only the
/// metadata and the pk, so SQLite's planner scans it instead (`SCAN …
/// USING COVERING INDEX`) for the filter's pk selection, counts and
/// deletes: a hundred times fewer pages for small metadata. Collections
/// created before the index existed get it at their next write.
pub(super) fn ensure_metadata_index(c: &Connection, name: &str) -> PluginResult<()> {
    c.prepare_cached(&format!(
        "CREATE INDEX IF NOT EXISTS \"strata_vec_{name}_metadata\" ON {} (metadata)",
        vec_table(name)
    ))
    .and_then(|mut stmt| stmt.execute([]))
    .map(|_| ())
    .map_err(map)
}

/// Creates collection `spec` (inside the caller's write transaction); a
/// collection of the same name, dimension and metric is a no-op, one that
/// differs `already_exists`.
pub(super) fn create(c: &Connection, spec: &CollectionSpec) -> PluginResult<()> {
    let name = spec.name.as_str();
    c.execute_batch(CATALOG).map_err(map)?;
    if let Some(existing) = read_meta(c, name)? {
        if existing.dimension == spec.dimension && existing.metric == spec.metric {
            return Ok(());
        }
        return Err(PluginError::new(
            ErrorKind::AlreadyExists,
            format!(
                "collection {name:?} exists with dimension {} and metric {} (asked: {} and {})",
                existing.dimension,
                existing.metric.name(),
                spec.dimension,
                spec.metric.name()
            ),
        ));
    }
    let (v, f) = (vec_table(name), fts_table(name));
    let trig = |s: &str| format!("\"strata_vec_{name}_{s}\"");
    c.execute_batch(&format!(
        "CREATE TABLE {v} (
            pk INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            vector BLOB NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{{}}',
            text TEXT
        );
        CREATE VIRTUAL TABLE {f} USING fts5(text, content='strata_vec_{name}', content_rowid='pk', tokenize='unicode61 remove_diacritics 2');
        CREATE TRIGGER {ai} AFTER INSERT ON {v} BEGIN
            INSERT INTO {f}(rowid, text) VALUES (new.pk, new.text);
        END;
        CREATE TRIGGER {ad} AFTER DELETE ON {v} BEGIN
            INSERT INTO {f}({f}, rowid, text) VALUES ('delete', old.pk, old.text);
        END;",
        ai = trig("ai"),
        ad = trig("ad"),
    ))
    .map_err(map)?;
    ensure_metadata_index(c, name)?;
    // Row keys start at a random offset below 2^62, so the pks of a
    // collection dropped and created again under the same name never meet
    // (SQLite forgets a dropped table's AUTOINCREMENT counter): derived data
    // keyed by pk — a sidecar index a racing build saved late — then
    // matches none of the new rows and is rebuilt instead of serving the
    // old vectors.
    c.execute(
        "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, random() & 4611686018427387903)",
        [format!("strata_vec_{name}")],
    )
    .map_err(map)?;
    c.execute(
        "INSERT INTO strata_collections (name, dimension, metric, generation) VALUES (?1, ?2, ?3, abs(random()))",
        rusqlite::params![name, spec.dimension, spec.metric.name()],
    )
    .map_err(map)?;
    Ok(())
}

/// Drops collection `name` (inside the caller's write transaction);
/// whether it existed.
pub(super) fn drop(c: &Connection, name: &str) -> PluginResult<bool> {
    if read_meta(c, name)?.is_none() {
        return Ok(false);
    }
    c.execute_batch(&format!(
        "DROP TABLE IF EXISTS {f}; DROP TABLE IF EXISTS {v};",
        f = fts_table(name),
        v = vec_table(name)
    ))
    .map_err(map)?;
    c.execute("DELETE FROM strata_collections WHERE name = ?1", [name])
        .map_err(map)?;
    Ok(true)
}

/// Every collection, by name, with its index state as it will be on first
/// use (HNSW at or past `threshold`).
pub(super) fn list(c: &Connection, threshold: u32) -> PluginResult<Vec<CollectionInfo>> {
    if !catalog_exists(c)? {
        return Ok(Vec::new());
    }
    let names: Vec<String> = c
        .prepare("SELECT name FROM strata_collections ORDER BY name")
        .map_err(map)?
        .query_map([], |r| r.get(0))
        .map_err(map)?
        .collect::<Result<_, _>>()
        .map_err(map)?;
    names.iter().map(|n| info(c, n, threshold)).collect()
}

/// A collection's row for `list_collections`.
fn info(c: &Connection, name: &str, threshold: u32) -> PluginResult<CollectionInfo> {
    let meta = require_meta(c, name)?;
    let count = row_count(c, name)?;
    Ok(CollectionInfo {
        name: name.to_string(),
        dimension: meta.dimension,
        metric: meta.metric,
        count,
        details_json: serde_json::json!({
            "storage": "sqlite",
            "index": if threshold > 0 && count >= u64::from(threshold) { "hnsw" } else { "exact" },
            "hnsw_threshold": threshold,
        })
        .to_string(),
    })
}

/// Rows of collection `name`.
pub(super) fn row_count(c: &Connection, name: &str) -> PluginResult<u64> {
    let n: i64 = c
        .query_row(
            &format!("SELECT count(*) FROM {}", vec_table(name)),
            [],
            |r| r.get(0),
        )
        .map_err(map)?;
    Ok(n as u64)
}
