//! Traces: remember, recall (hybrid, then re-ranked), forget.

use std::collections::HashMap;

use serde_json::Value as Json;
use strata_host::{Include, Params, Record, Row, Sql, Value, params};

use crate::{Memory, MemoryError, Result, TRACES, now_ms};

/// One stored trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Its id (a UUID unless the caller chose one).
    pub id: String,
    /// What was remembered.
    pub content: String,
    /// The caller's metadata (a JSON object).
    pub metadata: Json,
    /// 0 (trivia) to 1 (essential).
    pub importance: f64,
    /// When it was remembered (ms since the Unix epoch).
    pub created_ms: i64,
    /// When it was last recalled, or created (ms since the Unix epoch).
    pub accessed_ms: i64,
    /// How many times it was recalled.
    pub access_count: i64,
    /// Times a recall of it was marked useful ([`Memory::feedback`]).
    pub useful: i64,
    /// Times a recall of it was marked not useful.
    pub not_useful: i64,
}

/// A trace to remember with [`Memory::remember_many`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewTrace {
    /// Its id (`None`: a new UUID).
    pub id: Option<String>,
    /// What to remember.
    pub content: String,
    /// The caller's metadata (a JSON object, or null).
    pub metadata: Json,
    /// 0 (trivia) to 1 (essential).
    pub importance: f64,
}

impl NewTrace {
    /// `content` with no metadata, importance 0.5 and a new id.
    pub fn new(content: impl Into<String>) -> NewTrace {
        NewTrace {
            id: None,
            content: content.into(),
            metadata: Json::Null,
            importance: 0.5,
        }
    }

    /// Under this id.
    pub fn id(mut self, id: impl Into<String>) -> NewTrace {
        self.id = Some(id.into());
        self
    }

    /// With this metadata.
    pub fn metadata(mut self, metadata: Json) -> NewTrace {
        self.metadata = metadata;
        self
    }

    /// With this importance.
    pub fn importance(mut self, importance: f64) -> NewTrace {
        self.importance = importance;
        self
    }
}

/// A recalled trace with its scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Recalled {
    /// The trace, as it was before this recall counted the access.
    pub trace: Trace,
    /// The re-ranked score (see the crate docs), higher is better.
    pub score: f64,
    /// The retrieval score relative to the best candidate (0..=1; see the
    /// crate docs).
    pub relevance: f64,
    /// How it was reached through the knowledge graph, for a trace added
    /// by [`RecallOptions::expand_graph`] (`None`: recalled directly).
    pub via: Option<crate::Via>,
}

/// The re-rank's weights (see the crate docs for the formula).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecallWeights {
    /// How much importance lifts a trace (default 0.5: an essential trace
    /// scores 1.5× a trivial one of equal relevance).
    pub importance: f64,
    /// The share of the score that recency decides (default 0.2).
    pub recency: f64,
    /// After this long without access, recency counts half (default 7 days).
    pub half_life_ms: i64,
    /// How much feedback moves a trace (default 1: always useful → ×1.5,
    /// never → ×0.5, none → ×1).
    pub feedback: f64,
}

impl Default for RecallWeights {
    fn default() -> RecallWeights {
        RecallWeights {
            importance: 0.5,
            recency: 0.2,
            half_life_ms: 7 * 24 * 3600 * 1000,
            feedback: 1.0,
        }
    }
}

/// What [`Memory::recall`] looks for.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RecallOptions {
    /// Traces wanted (default 5 when 0).
    pub k: u32,
    /// A metadata filter (the host's filter language), if any.
    pub filter: Option<Json>,
    /// Expand the hits through the knowledge graph, up to this many steps
    /// from their linked nodes ([`links`](crate::links); `None`: no
    /// expansion).
    pub expand_graph: Option<u32>,
}

impl RecallOptions {
    /// The best `k` traces.
    pub fn top(k: u32) -> RecallOptions {
        RecallOptions {
            k,
            filter: None,
            expand_graph: None,
        }
    }

    /// Also return up to `k` traces linked to graph nodes within `depth`
    /// steps of the hits' nodes (at most [`MAX_DEPTH`](crate::graph::MAX_DEPTH)),
    /// scored down by [`GRAPH_DISCOUNT`](crate::GRAPH_DISCOUNT) per step
    /// (see [`links`](crate::links)).
    pub fn expand_graph(mut self, depth: u32) -> RecallOptions {
        self.expand_graph = Some(depth);
        self
    }

    /// Only traces whose metadata pass `filter`.
    pub fn filter(mut self, filter: Json) -> RecallOptions {
        self.filter = Some(filter);
        self
    }
}

/// The share of relevance the exact cosine decides (the rest: the fused
/// hybrid score).
const DENSE_SHARE: f64 = 0.7;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

pub(crate) const COLUMNS: &str =
    "id, content, metadata, importance, created_ms, accessed_ms, access_count, useful, not_useful";

pub(crate) fn trace(row: &Row) -> Result<Trace> {
    let metadata: String = row.get("metadata")?;
    Ok(Trace {
        id: row.get("id")?,
        content: row.get("content")?,
        metadata: serde_json::from_str(&metadata).map_err(|e| MemoryError::Corrupt {
            message: format!("metadata of a trace is not JSON: {e}"),
        })?,
        importance: row.get("importance")?,
        created_ms: row.get("created_ms")?,
        accessed_ms: row.get("accessed_ms")?,
        access_count: row.get("access_count")?,
        useful: row.get("useful")?,
        not_useful: row.get("not_useful")?,
    })
}

pub(crate) fn in_list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

pub(crate) fn positional<'a>(ids: impl IntoIterator<Item = &'a String>) -> Params {
    Params::Positional(ids.into_iter().map(Value::from).collect())
}

/// Keys bound per `IN (…)` list: well under SQLite's parameter limit
/// (999 in older builds).
const IN_CHUNK: usize = 500;

/// The rows of `head (?, ?, …)` for every key of `keys`, `head` being a
/// query ending in `… IN`; sent `IN_CHUNK` keys at a time.
pub(crate) async fn all_in(sql: &Sql, head: &str, keys: &[String]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for chunk in keys.chunks(IN_CHUNK) {
        let sql_text = format!("{head} ({})", in_list(chunk.len()));
        rows.extend(sql.all(&sql_text, positional(chunk)).await?);
    }
    Ok(rows)
}

impl Memory {
    /// Remembers `content` with `metadata` (a JSON object, or null) and
    /// `importance` (0..=1); returns the new trace's id.
    pub async fn remember(&self, content: &str, metadata: Json, importance: f64) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        self.remember_as(&id, content, metadata, importance).await?;
        Ok(id)
    }

    /// [`remember`](Self::remember) under the caller's `id`, replacing the
    /// trace of that id if there is one (its access count is kept).
    pub async fn remember_as(
        &self,
        id: &str,
        content: &str,
        metadata: Json,
        importance: f64,
    ) -> Result<()> {
        if id.is_empty() {
            return Err(MemoryError::invalid("a trace id must not be empty"));
        }
        if content.trim().is_empty() {
            return Err(MemoryError::invalid(
                "nothing to remember: the content is empty",
            ));
        }
        let metadata = crate::json_object("trace metadata", metadata)?;
        if !(0.0..=1.0).contains(&importance) {
            return Err(MemoryError::invalid(format!(
                "importance must be between 0 and 1, got {importance}"
            )));
        }
        let vector = self.embed_one(content).await?;
        let now = now_ms();
        // The row first, then the vector; if the vector cannot be written
        // the row goes again, so a trace is never half remembered.
        let existed = self
            .sql
            .get("SELECT id FROM memory_traces WHERE id = ?", params![id])
            .await?
            .is_some();
        self.sql
            .run(
                "INSERT INTO memory_traces (id, content, metadata, importance, created_ms, accessed_ms, access_count)
                 VALUES (?, ?, ?, ?, ?, ?, 0)
                 ON CONFLICT (id) DO UPDATE SET content = excluded.content, metadata = excluded.metadata,
                     importance = excluded.importance, accessed_ms = excluded.accessed_ms",
                params![id, content, metadata.to_string(), importance, now, now],
            )
            .await?;
        let record = Record::new(id, vector).metadata(metadata).text(content);
        if let Err(e) = self.vectors.upsert(TRACES, [record]).await {
            if !existed {
                let _ = self
                    .sql
                    .run("DELETE FROM memory_traces WHERE id = ?", params![id])
                    .await;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Remembers many traces at once: embedded in one call to the embedder,
    /// written in multi-row statements and one vector upsert (what a bulk
    /// import wants; [`remember_as`](Self::remember_as) one by one does the
    /// same, slower). A trace whose id exists replaces it. Returns the ids,
    /// in order. If the vectors cannot be written, the rows this call
    /// created are removed again.
    pub async fn remember_many(&self, traces: &[NewTrace]) -> Result<Vec<String>> {
        let mut rows = Vec::with_capacity(traces.len());
        for t in traces {
            let id = match &t.id {
                Some(id) if id.is_empty() => {
                    return Err(MemoryError::invalid("a trace id must not be empty"));
                }
                Some(id) => id.clone(),
                None => uuid::Uuid::new_v4().to_string(),
            };
            if t.content.trim().is_empty() {
                return Err(MemoryError::invalid(format!(
                    "nothing to remember for trace {id}: the content is empty"
                )));
            }
            if !(0.0..=1.0).contains(&t.importance) {
                return Err(MemoryError::invalid(format!(
                    "importance must be between 0 and 1, got {} for trace {id}",
                    t.importance
                )));
            }
            let metadata = crate::json_object("trace metadata", t.metadata.clone())?;
            rows.push((id, metadata));
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<String> = traces.iter().map(|t| t.content.clone()).collect();
        let vectors = self.embed_many(&texts).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut existed = std::collections::HashSet::new();
        for r in &all_in(&self.sql, "SELECT id FROM memory_traces WHERE id IN", &ids).await? {
            existed.insert(r.get::<String>("id")?);
        }
        let now = now_ms();
        const ROWS_PER_INSERT: usize = 100;
        for (chunk, tchunk) in rows
            .chunks(ROWS_PER_INSERT)
            .zip(traces.chunks(ROWS_PER_INSERT))
        {
            let mut values = Vec::with_capacity(chunk.len() * 6);
            for ((id, metadata), t) in chunk.iter().zip(tchunk) {
                values.extend([
                    Value::from(id.as_str()),
                    Value::from(t.content.as_str()),
                    Value::from(metadata.to_string()),
                    Value::from(t.importance),
                    Value::from(now),
                    Value::from(now),
                ]);
            }
            self.sql
                .run(
                    &format!(
                        "INSERT INTO memory_traces (id, content, metadata, importance, created_ms, accessed_ms, access_count)
                         VALUES {}
                         ON CONFLICT (id) DO UPDATE SET content = excluded.content, metadata = excluded.metadata,
                             importance = excluded.importance, accessed_ms = excluded.accessed_ms",
                        vec!["(?, ?, ?, ?, ?, ?, 0)"; chunk.len()].join(", ")
                    ),
                    Params::Positional(values),
                )
                .await?;
        }
        let records = rows
            .iter()
            .zip(traces)
            .zip(vectors)
            .map(|(((id, metadata), t), v)| {
                Record::new(id.as_str(), v)
                    .metadata(metadata.clone())
                    .text(t.content.as_str())
            });
        if let Err(e) = self.vectors.upsert(TRACES, records).await {
            let new: Vec<String> = ids
                .iter()
                .filter(|id| !existed.contains(*id))
                .cloned()
                .collect();
            for chunk in new.chunks(500) {
                let _ = self
                    .sql
                    .run(
                        &format!(
                            "DELETE FROM memory_traces WHERE id IN ({})",
                            in_list(chunk.len())
                        ),
                        positional(chunk),
                    )
                    .await;
            }
            return Err(e.into());
        }
        Ok(ids)
    }

    pub(crate) async fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let mut out = self.embed_many(&[text.to_string()]).await?;
        Ok(out.pop().unwrap_or_default())
    }

    /// One vector per text, checked: as many as texts, each of the
    /// declared dimension.
    pub(crate) async fn embed_many(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let e = self.embedder.as_ref();
        let out = e.embed(texts).await?;
        let bad = |message: String| crate::EmbedError::BadOutput {
            embedder: e.name().to_string(),
            message,
        };
        if out.len() != texts.len() {
            return Err(bad(format!("{} vectors for {} texts", out.len(), texts.len())).into());
        }
        if let Some(v) = out.iter().find(|v| v.len() != e.dimension() as usize) {
            return Err(bad(format!(
                "a vector of {} dimensions, declared {}",
                v.len(),
                e.dimension()
            ))
            .into());
        }
        Ok(out)
    }

    /// Records whether recalled trace `id` was useful; the re-rank uses it
    /// (see the crate docs). False when there is no such trace.
    pub async fn feedback(&self, id: &str, useful: bool) -> Result<bool> {
        let column = if useful { "useful" } else { "not_useful" };
        let n = self
            .sql
            .run(
                &format!("UPDATE memory_traces SET {column} = {column} + 1 WHERE id = ?"),
                params![id],
            )
            .await?
            .changes;
        if n == 0 {
            return Ok(false);
        }
        self.sql
            .run(
                "INSERT INTO memory_feedback (id, trace_id, useful, at_ms) VALUES (?, ?, ?, ?)",
                params![
                    uuid::Uuid::new_v4().to_string(),
                    id,
                    i64::from(useful),
                    now_ms()
                ],
            )
            .await?;
        Ok(true)
    }

    /// The traces of `ids` that exist, in the order asked.
    pub async fn get(&self, ids: &[String]) -> Result<Vec<Trace>> {
        let mut found = HashMap::new();
        let head = format!("SELECT {COLUMNS} FROM memory_traces WHERE id IN");
        for r in &all_in(&self.sql, &head, ids).await? {
            let t = trace(r)?;
            found.insert(t.id.clone(), t);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The traces most relevant to `query` (see the crate docs for the
    /// ranking); counts an access on each returned trace.
    pub async fn recall(&self, query: &str, options: &RecallOptions) -> Result<Vec<Recalled>> {
        let vector = self.embed_one(query).await?;
        self.recall_by_vector(query, vector, options).await
    }

    /// [`recall`](Self::recall) with the query's embedding computed by the
    /// caller (with this memory's [`embedder`](Self::embedder), e.g. many
    /// queries in one batch): the same ranking, without the embedding step.
    /// Refuses a vector of another dimension than the embedder's.
    pub async fn recall_by_vector(
        &self,
        query: &str,
        vector_q: Vec<f32>,
        options: &RecallOptions,
    ) -> Result<Vec<Recalled>> {
        let k = if options.k == 0 { 5 } else { options.k };
        if vector_q.len() != self.embedder.dimension() as usize {
            return Err(MemoryError::invalid(format!(
                "the query vector has {} dimensions; the memory's embedder {} makes {}",
                vector_q.len(),
                self.embedder.name(),
                self.embedder.dimension()
            )));
        }
        let hits = self.search_traces(query, vector_q.clone(), options).await?;
        // Relevance (see the crate docs): mostly the exact cosine of the
        // trace to the query, relative to the best candidate's, partly the
        // fused rank score relative to the best. Fused RRF scores alone
        // are nearly flat at the top (1/61 against 1/62), so importance
        // would outweigh them and lift an unrelated trace.
        let cosines: Vec<f64> = hits
            .iter()
            .map(|h| {
                h.vector
                    .as_deref()
                    .map_or(0.0, |v| cosine(&vector_q, v))
                    .max(0.0)
            })
            .collect();
        let best_cos = cosines.iter().copied().fold(0.0, f64::max);
        let best = hits.iter().map(|h| h.score).fold(0.0, f64::max);
        let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        let traces = self.get(&ids).await?;
        let score_of: HashMap<&str, f64> = hits
            .iter()
            .zip(&cosines)
            .map(|(h, c)| {
                let dense = if best_cos > 0.0 { c / best_cos } else { 0.0 };
                let fused = if best > 0.0 { h.score / best } else { 0.0 };
                (
                    h.id.as_str(),
                    DENSE_SHARE * dense + (1.0 - DENSE_SHARE) * fused,
                )
            })
            .collect();
        let now = now_ms();
        let w = self.weights;
        let mut ranked: Vec<Recalled> = traces
            .into_iter()
            .map(|t| {
                let relevance = score_of.get(t.id.as_str()).copied().unwrap_or(0.0);
                let age = (now - t.accessed_ms).max(0) as f64;
                let recency = 0.5f64.powf(age / w.half_life_ms.max(1) as f64);
                let feedback = (t.useful as f64 + 1.0) / ((t.useful + t.not_useful) as f64 + 2.0);
                let score = relevance
                    * (1.0 + w.importance * t.importance)
                    * (1.0 - w.recency + w.recency * recency)
                    * (1.0 + w.feedback * (feedback - 0.5));
                Recalled {
                    trace: t,
                    score,
                    relevance,
                    via: None,
                }
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.trace.id.cmp(&b.trace.id))
        });
        ranked.truncate(k as usize);
        if let Some(depth) = options.expand_graph {
            if depth > crate::graph::MAX_DEPTH {
                return Err(MemoryError::invalid(format!(
                    "expand_graph depth {depth} is over the limit of {}",
                    crate::graph::MAX_DEPTH
                )));
            }
            let more = self
                .expand(&ranked, depth, k as usize, options.filter.as_ref())
                .await?;
            ranked.extend(more);
            ranked.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then_with(|| a.trace.id.cmp(&b.trace.id))
            });
        }
        if !ranked.is_empty() {
            let ids: Vec<String> = ranked.iter().map(|r| r.trace.id.clone()).collect();
            let mut values = vec![Value::from(now)];
            values.extend(ids.iter().map(Value::from));
            self.sql
                .run(
                    &format!(
                        "UPDATE memory_traces SET access_count = access_count + 1, accessed_ms = ? WHERE id IN ({})",
                        in_list(ids.len())
                    ),
                    Params::Positional(values),
                )
                .await?;
        }
        Ok(ranked)
    }

    /// The candidates of a recall, before the re-rank: a hybrid ranking
    /// (dense answer when the backend has no hybrid search).
    pub(crate) async fn search_traces(
        &self,
        query: &str,
        vector: Vec<f32>,
        options: &RecallOptions,
    ) -> Result<Vec<strata_host::Hit>> {
        let k = if options.k == 0 { 5 } else { options.k };
        let candidates = k.saturating_mul(4).max(20);
        // The vectors come back too: the re-rank scores them exactly.
        let ids = Include {
            vector: true,
            ..Include::default()
        };
        self.ranked(
            TRACES,
            query,
            vector,
            candidates,
            options.filter.as_ref(),
            ids,
        )
        .await
    }

    /// Forgets the traces of `ids`; how many there were.
    pub async fn forget(&self, ids: &[String]) -> Result<u64> {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.vectors.delete_ids(TRACES, &refs).await?;
        let mut n = 0;
        for chunk in ids.chunks(500) {
            self.sql
                .run(
                    &format!(
                        "DELETE FROM memory_trace_links WHERE trace_id IN ({})",
                        in_list(chunk.len())
                    ),
                    positional(chunk),
                )
                .await?;
            n += self
                .sql
                .run(
                    &format!(
                        "DELETE FROM memory_traces WHERE id IN ({})",
                        in_list(chunk.len())
                    ),
                    positional(chunk),
                )
                .await?
                .changes;
        }
        Ok(n)
    }

    /// Forgets every trace whose metadata pass `filter`; how many.
    pub async fn forget_where(&self, filter: &Json) -> Result<u64> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .vectors
                .scan(
                    TRACES,
                    cursor.as_deref(),
                    1_000,
                    Some(filter),
                    Include::default(),
                )
                .await?;
            ids.extend(page.records.into_iter().map(|h| h.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        self.forget(&ids).await
    }

    /// How many traces there are.
    pub async fn count(&self) -> Result<u64> {
        let row = self
            .sql
            .get("SELECT count(*) AS n FROM memory_traces", ())
            .await?
            .ok_or_else(|| MemoryError::Corrupt {
                message: "count(*) returned no row".into(),
            })?;
        Ok(row.get::<i64>("n")? as u64)
    }
}
