//! Reads: ranked dense queries (through the HNSW index or exact), hybrid
//! queries in one statement, fetch, count and scan.

use std::{collections::HashMap, sync::Arc};

use serde::Deserialize;
use sqlx::{
    AssertSqlSafe, Row,
    postgres::{PgArguments, PgRow},
};
use strata_plugin::{
    PluginError, PluginResult,
    filter::Filter,
    vector::{HybridRequest, Match, QueryRequest, ScanPage, ScanRequest, include, validate_vector},
};

use super::{
    catalog::{Meta, Shared},
    codec::{PgVector, arguments},
};
use crate::{
    error::map,
    filter_sql::{Arg, Args, translate},
};

/// Per-query options (`QueryRequest::options_json`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryOptions {
    /// `hnsw.ef_search` for this query (1..=1000).
    #[serde(default)]
    ef_search: Option<u32>,
    /// Skip the index: exact search.
    #[serde(default)]
    exact: bool,
}

fn query_options(text: &str) -> PluginResult<QueryOptions> {
    if text.trim().is_empty() {
        return Ok(QueryOptions::default());
    }
    let o: QueryOptions = serde_json::from_str(text).map_err(|e| {
        PluginError::invalid_input(format!(
            "query options {text}: {e} (the postgres backend takes ef_search and exact)"
        ))
    })?;
    if let Some(ef) = o.ef_search
        && !(1..=1000).contains(&ef)
    {
        return Err(PluginError::invalid_input(format!(
            "query option ef_search = {ef} is out of range (pgvector takes 1..=1000)"
        )));
    }
    Ok(o)
}

/// The select list for `include` flags (after `id` and the score).
fn columns(flags: u32, alias: &str) -> String {
    let mut s = String::new();
    if flags & include::VECTOR != 0 {
        s.push_str(&format!(", {alias}embedding"));
    }
    if flags & include::METADATA != 0 {
        s.push_str(&format!(", {alias}metadata::text AS metadata"));
    }
    if flags & include::TEXT != 0 {
        s.push_str(&format!(", {alias}text"));
    }
    s
}

fn to_match(row: &PgRow, flags: u32, scored: bool) -> PluginResult<Match> {
    let id: String = row.try_get("id").map_err(map)?;
    let score = if scored {
        let s: f64 = row.try_get("score").map_err(map)?;
        // pgvector's cosine distance to a zero vector is NaN; the contract's score is 0.
        if s.is_nan() { 0.0 } else { s }
    } else {
        0.0
    };
    Ok(Match {
        id,
        score,
        vector: if flags & include::VECTOR != 0 {
            let v: PgVector = row.try_get("embedding").map_err(map)?;
            Some(v.0)
        } else {
            None
        },
        metadata_json: if flags & include::METADATA != 0 {
            Some(row.try_get("metadata").map_err(map)?)
        } else {
            None
        },
        text: if flags & include::TEXT != 0 {
            row.try_get("text").map_err(map)?
        } else {
            None
        },
    })
}

impl Shared {
    /// Runs a ranked query: as one statement, or when `ef_search` is given
    /// in a transaction begun with `BEGIN; SET LOCAL hnsw.ef_search = …` (one
    /// round trip) and then dropped: sqlx queues the `ROLLBACK` (the same as
    /// a commit for a read) and sends it ahead of the connection's next
    /// statement, so the override costs one round trip, not three.
    pub(super) async fn ranked(
        &self,
        sql: String,
        args: PgArguments,
        ef_search: Option<u32>,
    ) -> PluginResult<Vec<PgRow>> {
        let q = sqlx::query_with(AssertSqlSafe(sql), args);
        match ef_search {
            None => q.fetch_all(&*self.db).await.map_err(map),
            Some(ef) => {
                let mut tx = self
                    .db
                    .begin_with(
                        Some(format!("BEGIN; SET LOCAL hnsw.ef_search = {ef}")),
                        &Vec::new(),
                    )
                    .await
                    .map_err(map)?;
                // In pooler-safe mode the session settings were just
                // applied after the BEGIN: set the override again.
                if self.db.pooler_safe {
                    sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL hnsw.ef_search = {ef}")))
                        .execute(&mut *tx)
                        .await
                        .map_err(map)?;
                }
                let rows = q.fetch_all(self.db.on(&mut tx)).await.map_err(map)?;
                drop(tx);
                Ok(rows)
            }
        }
    }

    pub(super) async fn query(
        &self,
        meta: Arc<Meta>,
        request: &QueryRequest,
    ) -> PluginResult<Vec<Match>> {
        validate_vector(&request.vector, meta.dimension, "query")?;
        super::catalog::check_scorable(&request.vector, meta.metric, "query vector")?;
        let filter = Filter::parse_str(&request.filter_json)?;
        let options = query_options(&request.options_json)?;
        let k = request.top_k as usize;
        if k == 0 {
            return Ok(Vec::new());
        }
        let run = |exact: bool| {
            let mut args = Args::starting_after(1);
            let cond = translate(&filter, "metadata", &mut args);
            let limit = args.push(Arg::Int(k as i64));
            let meta = meta.clone();
            async move {
                let cond = cond?;
                let distance = format!("embedding {} $1", meta.op());
                // Ordering by the score (not the bare distance) is what no
                // index provides: PostgreSQL scans and sorts, exactly.
                let order = if exact {
                    "score DESC, id".to_string()
                } else {
                    distance.clone()
                };
                let sql = format!(
                    "SELECT id, {score}::float8 AS score{cols} FROM {t} WHERE {cond} ORDER BY {order} LIMIT {limit}",
                    score = meta.score(&distance),
                    cols = columns(request.include, ""),
                    t = meta.table,
                );
                let pg_args = arguments(Some(&request.vector), &args.values)?;
                self.ranked(sql, pg_args, options.ef_search.filter(|_| !exact))
                    .await
            }
        };
        let exact = options.exact || !self.ensure_index(&meta).await?;
        let mut rows = run(exact).await?;
        if !exact && !filter.is_all() && rows.len() < k {
            rows = run(true).await?;
        }
        let min = request.min_score;
        rows.iter()
            .map(|r| to_match(r, request.include, true))
            .filter(|m| match (m, min) {
                (Ok(m), Some(min)) => m.score >= min,
                _ => true,
            })
            .collect()
    }

    /// The hybrid text less the words found in at least half of the
    /// collection's rows (unless every word is such a word), by the rule the
    /// SQLite tier applies because BM25 gives those words no weight. Here it
    /// is `ts_rank_cd`, which has no idf at all: a word in every row adds to
    /// every row's rank and makes every row a match to rank — at 100K notes
    /// ranking those rows was almost all of a hybrid query's time. Leaving
    /// the same words out on both SQL tiers also keeps a brain's recall alike
    /// after `strata migrate`. Words are split as the SQLite tier splits them
    /// (runs of letters and digits); each is read with `plainto_tsquery` in
    /// the collection's language, and counted up to half the collection in
    /// one statement (one extra round trip, only for texts of two words or
    /// more). When nothing is left out, the text goes through unchanged.
    async fn weighty_text(&self, meta: &Meta, text: &str) -> PluginResult<String> {
        let mut words: Vec<&str> = Vec::new();
        for w in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if !words.iter().any(|x| x.to_lowercase() == w.to_lowercase()) {
                words.push(w);
            }
        }
        if words.len() < 2 {
            return Ok(text.to_string());
        }
        let sql = format!(
            "WITH z AS (SELECT count(*) AS n FROM {t})
             SELECT z.n, ARRAY(
                 SELECT (SELECT count(*) FROM (
                     SELECT 1 FROM {t} AS c WHERE c.tsv @@ plainto_tsquery('{lang}'::regconfig, u.w) LIMIT (z.n + 1) / 2
                 ) s)
                 FROM unnest($1::text[]) WITH ORDINALITY AS u(w, i) ORDER BY u.i
             ) FROM z",
            t = meta.table,
            lang = meta.language,
        );
        let (rows, counts): (i64, Vec<i64>) = sqlx::query_as(AssertSqlSafe(sql))
            .bind(&words)
            .fetch_one(&*self.db)
            .await
            .map_err(map)?;
        let kept: Vec<&str> = words
            .iter()
            .zip(&counts)
            .filter(|(_, n)| 2 * **n < rows)
            .map(|(w, _)| *w)
            .collect();
        Ok(if kept.is_empty() || kept.len() == words.len() {
            text.to_string()
        } else {
            kept.join(" ")
        })
    }

    pub(super) async fn hybrid(
        &self,
        meta: Arc<Meta>,
        request: &HybridRequest,
    ) -> PluginResult<Vec<Match>> {
        self.ensure_index(&meta).await?;
        validate_vector(&request.vector, meta.dimension, "hybrid query")?;
        super::catalog::check_scorable(&request.vector, meta.metric, "query vector")?;
        let filter = Filter::parse_str(&request.filter_json)?;
        let k = request.top_k as usize;
        if k == 0 {
            return Ok(Vec::new());
        }
        let candidates = request.candidates_or_default();
        let text = self.weighty_text(&meta, &request.text).await?;
        let mut args = Args::starting_after(1);
        let text = args.push(Arg::Text(text));
        let cand = args.push(Arg::Int(candidates as i64));
        let top = args.push(Arg::Int(k as i64));
        let rrf_k = args.push(Arg::Float(f64::from(request.rrf_k)));
        let wd = args.push(Arg::Float(request.dense_weight));
        let wl = args.push(Arg::Float(request.lexical_weight));
        // The filter's parameters are bound once and referenced by both CTEs.
        let cond = translate(&filter, "metadata", &mut args)?;
        let op = meta.op();
        let sql = format!(
            "WITH q AS (
                SELECT replace(plainto_tsquery('{lang}'::regconfig, {text}::text)::text, ' & ', ' | ')::tsquery AS tq
            ), dense AS (
                SELECT id, row_number() OVER (ORDER BY d, id) AS r FROM (
                    SELECT id, embedding {op} $1 AS d FROM {t}
                    WHERE {cond} ORDER BY embedding {op} $1 LIMIT {cand}
                ) s
            ), lex AS (
                SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM (
                    SELECT c.id, ts_rank_cd(c.tsv, q.tq) AS rank FROM {t} AS c, q
                    WHERE c.tsv @@ q.tq AND {cond} ORDER BY rank DESC, c.id LIMIT {cand}
                ) s
            ), fused AS (
                SELECT coalesce(d.id, l.id) AS id,
                       coalesce({wd}::float8 / ({rrf_k}::float8 + d.r), 0)
                     + coalesce({wl}::float8 / ({rrf_k}::float8 + l.r), 0) AS score
                FROM dense AS d FULL OUTER JOIN lex AS l ON d.id = l.id
                ORDER BY score DESC, id LIMIT {top}
            )
            SELECT f.id, f.score{cols} FROM fused AS f JOIN {t} AS c ON c.id = f.id
            ORDER BY f.score DESC, f.id",
            lang = meta.language,
            t = meta.table,
            cols = columns(request.include, "c."),
        );
        let rows = self
            .ranked(sql, arguments(Some(&request.vector), &args.values)?, None)
            .await?;
        rows.iter()
            .map(|r| to_match(r, request.include, true))
            .collect()
    }
}

/// Records by id, in the order asked (ids not found are left out).
pub(super) async fn fetch(
    shared: &Shared,
    collection: String,
    ids: Vec<String>,
    flags: u32,
) -> PluginResult<Vec<Match>> {
    let ids = &ids;
    shared
        .with_meta(&collection, |meta| async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT id{} FROM {} WHERE id = ANY($1::text[])",
                columns(flags, ""),
                meta.table
            )))
            .bind(ids)
            .fetch_all(&*shared.db)
            .await
            .map_err(map)?;
            let mut found: HashMap<String, Match> = HashMap::with_capacity(rows.len());
            for r in &rows {
                let m = to_match(r, flags, false)?;
                found.insert(m.id.clone(), m);
            }
            Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
        })
        .await
}

/// Rows matching a filter.
pub(super) async fn count(
    shared: &Shared,
    collection: String,
    filter_json: String,
) -> PluginResult<u64> {
    let filter = &Filter::parse_str(&filter_json)?;
    shared
        .with_meta(&collection, |meta| async move {
            let mut args = Args::default();
            let cond = translate(filter, "metadata", &mut args)?;
            let n: i64 = sqlx::query_scalar_with(
                AssertSqlSafe(format!("SELECT count(*) FROM {} WHERE {cond}", meta.table)),
                arguments(None, &args.values)?,
            )
            .fetch_one(&*shared.db)
            .await
            .map_err(map)?;
            Ok(n as u64)
        })
        .await
}

/// One page of rows in id order (the cursor is the last id of a full page).
pub(super) async fn scan(shared: &Shared, request: ScanRequest) -> PluginResult<ScanPage> {
    let filter = &Filter::parse_str(&request.filter_json)?;
    // The cursor is the last id of the previous page (ids sort by bytes).
    let after = request.cursor.as_deref();
    let limit = request.limit.clamp(1, 10_000);
    let include = request.include;
    shared
        .with_meta(&request.collection, |meta| async move {
            let mut args = Args::default();
            let after_cond = match after {
                Some(a) => format!("id > {}::text AND ", args.push(Arg::Text(a.to_string()))),
                None => String::new(),
            };
            let cond = translate(filter, "metadata", &mut args)?;
            let lim = args.push(Arg::Int(i64::from(limit)));
            let rows = sqlx::query_with(
                AssertSqlSafe(format!(
                    "SELECT id{} FROM {} WHERE {after_cond}{cond} ORDER BY id LIMIT {lim}",
                    columns(include, ""),
                    meta.table
                )),
                arguments(None, &args.values)?,
            )
            .fetch_all(&*shared.db)
            .await
            .map_err(map)?;
            let records = rows
                .iter()
                .map(|r| to_match(r, include, false))
                .collect::<PluginResult<Vec<_>>>()?;
            let next_cursor = match records.last() {
                Some(last) if records.len() == limit as usize => Some(last.id.clone()),
                _ => None,
            };
            Ok(ScanPage {
                records,
                next_cursor,
            })
        })
        .await
}
