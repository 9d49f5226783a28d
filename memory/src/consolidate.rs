//! Consolidation: importance decay and near-duplicate merging, logged.

use serde_json::json;
use strata_host::{Include, Query, params};

use crate::{
    Memory, Result, TRACES, now_ms,
    traces::{COLUMNS, Trace, trace},
};

/// What [`Memory::consolidate`] does.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ConsolidateOptions {
    /// Traces not accessed for this long lose importance (default 30 days).
    pub idle_ms: i64,
    /// Their importance is multiplied by this (default 0.9).
    pub decay: f64,
    /// Traces this similar (cosine, 0..=1) are merged (default 0.95).
    pub merge_threshold: f64,
}

impl Default for ConsolidateOptions {
    fn default() -> ConsolidateOptions {
        ConsolidateOptions {
            idle_ms: 30 * 24 * 3600 * 1000,
            decay: 0.9,
            merge_threshold: 0.95,
        }
    }
}

impl ConsolidateOptions {
    /// Sets how long a trace may go without access before it decays.
    pub fn idle_ms(mut self, ms: i64) -> Self {
        self.idle_ms = ms;
        self
    }
    /// Sets the decay factor.
    pub fn decay(mut self, factor: f64) -> Self {
        self.decay = factor;
        self
    }
    /// Sets the similarity at or above which traces merge.
    pub fn merge_threshold(mut self, cosine: f64) -> Self {
        self.merge_threshold = cosine;
        self
    }
}

/// What a consolidation changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsolidationReport {
    /// Traces whose importance decayed.
    pub decayed: u64,
    /// Traces merged into another (and forgotten).
    pub merged: u64,
}

impl Memory {
    /// Decays idle traces and merges near-duplicates (see the crate docs);
    /// every change goes to `memory_consolidation_log`.
    pub async fn consolidate(&self, options: &ConsolidateOptions) -> Result<ConsolidationReport> {
        let mut report = ConsolidationReport::default();
        let now = now_ms();
        let rows = self
            .sql
            .all(
                &format!("SELECT {COLUMNS} FROM memory_traces ORDER BY created_ms, id"),
                (),
            )
            .await?;
        let traces: Vec<Trace> = rows.iter().map(trace).collect::<Result<_>>()?;
        for t in &traces {
            if now - t.accessed_ms >= options.idle_ms && t.importance > 0.0 {
                let after = t.importance * options.decay;
                self.sql
                    .run(
                        "UPDATE memory_traces SET importance = ? WHERE id = ?",
                        params![after, t.id.as_str()],
                    )
                    .await?;
                self.log(
                    now,
                    "decay",
                    &t.id,
                    None,
                    json!({"importance": [t.importance, after]}),
                )
                .await?;
                report.decayed += 1;
            }
        }
        // Near-duplicates: each trace's own vector finds its neighbours.
        let mut gone: std::collections::HashSet<String> = Default::default();
        for t in &traces {
            if gone.contains(&t.id) {
                continue;
            }
            let Some(hit) = self
                .vectors
                .fetch(TRACES, &[t.id.as_str()], Include::ALL)
                .await?
                .pop()
            else {
                continue;
            };
            let Some(v) = hit.vector else { continue };
            let near = self
                .vectors
                .query(
                    TRACES,
                    &Query::new(v)
                        .top_k(6)
                        .min_score(options.merge_threshold)
                        .include(Include::default()),
                )
                .await?;
            for other in near {
                if other.id == t.id || gone.contains(&other.id) {
                    continue;
                }
                // Read both again: an earlier merge may have changed them.
                let pair = self.get(&[t.id.clone(), other.id.clone()]).await?;
                let [a, b] =
                    <[Trace; 2]>::try_from(pair).map_err(|_| crate::MemoryError::Corrupt {
                        message: format!(
                            "trace {} or {} vanished while consolidating",
                            t.id, other.id
                        ),
                    })?;
                // The survivor: the more important, then the older, then the lower id.
                let a_first =
                    (b.importance, -a.created_ms, &b.id) < (a.importance, -b.created_ms, &a.id);
                let (keep, drop) = if a_first { (a, b) } else { (b, a) };
                let importance = keep.importance.max(drop.importance);
                self.sql
                    .run(
                        "UPDATE memory_traces SET importance = ?, access_count = access_count + ?,
                             useful = useful + ?, not_useful = not_useful + ? WHERE id = ?",
                        params![
                            importance,
                            drop.access_count,
                            drop.useful,
                            drop.not_useful,
                            keep.id.as_str()
                        ],
                    )
                    .await?;
                // The merged trace's graph links go to the survivor.
                self.sql
                    .run(
                        "INSERT INTO memory_trace_links (trace_id, node_id)
                         SELECT CAST(? AS TEXT), node_id FROM memory_trace_links WHERE trace_id = ?
                         ON CONFLICT DO NOTHING",
                        params![keep.id.as_str(), drop.id.as_str()],
                    )
                    .await?;
                self.forget(std::slice::from_ref(&drop.id)).await?;
                self.log(
                    now,
                    "merge",
                    &keep.id,
                    Some(&drop.id),
                    json!({
                        "similarity": other.score,
                        "kept": keep.content,
                        "merged": drop.content,
                        "importance": [keep.importance, importance],
                    }),
                )
                .await?;
                gone.insert(drop.id.clone());
                report.merged += 1;
                if drop.id == t.id {
                    break;
                }
            }
        }
        Ok(report)
    }

    async fn log(
        &self,
        at: i64,
        action: &str,
        trace_id: &str,
        other: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.sql
            .run(
                "INSERT INTO memory_consolidation_log (id, at_ms, action, trace_id, other_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
                params![
                    uuid::Uuid::new_v4().to_string(),
                    at,
                    action,
                    trace_id,
                    other,
                    detail.to_string()
                ],
            )
            .await?;
        Ok(())
    }
}
