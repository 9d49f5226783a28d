//! Traces linked to knowledge-graph nodes, and recall expanded through
//! the graph ([`RecallOptions::expand_graph`](crate::RecallOptions::expand_graph)).
//!
//! A link says a trace is about a node ("the user drinks green tea" is
//! about node `ana` and node `tea`); links live in `memory_trace_links`
//! (trace, node) and go when either side is forgotten or removed; when
//! [`Memory::consolidate`] merges a trace into another, its links move to
//! the survivor.
//!
//! An expanded recall first ranks and keeps the best `k` traces as usual,
//! then, for each of them in rank order, walks the graph from every node
//! it is linked to, up to `depth` steps along edges in either direction
//! (the walk of [`Graph::traverse`](crate::graph::Graph::traverse)), and
//! adds the traces linked to the nodes reached (the start node
//! included, at 0 steps) that were not already returned, passing the
//! recall's filter, up to `k` more. An added trace scores
//!
//! ```text
//! score = score of the hit it was reached from × GRAPH_DISCOUNT ^ (steps + 1)
//! ```
//!
//! ([`GRAPH_DISCOUNT`] = 0.5: a trace on the hit's own node scores half
//! the hit, one step further a quarter), its relevance likewise, and it
//! says how it was reached ([`Recalled::via`](crate::Recalled::via)).
//! Reached from several hits, a trace keeps its best score. The whole list
//! is then sorted by score.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;
use strata_host::params;

use crate::{Memory, MemoryError, Recalled, Result, graph::Direction, traces::all_in};

/// How much a trace reached through the graph keeps of the score of the
/// hit it was reached from, per step (see the [module docs](self)).
pub const GRAPH_DISCOUNT: f64 = 0.5;

/// How a recalled trace was reached through the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// The directly recalled trace it was reached from.
    pub hit: String,
    /// The node it is linked to.
    pub node: String,
    /// Steps from a node of `hit` to `node` (0: the same node).
    pub steps: u32,
}

impl Memory {
    /// Links trace `trace` to graph node `node` (both must exist); linking
    /// twice is one link.
    pub async fn link(&self, trace: &str, node: &str) -> Result<()> {
        if self.get(&[trace.to_string()]).await?.is_empty() {
            return Err(MemoryError::invalid(format!(
                "cannot link trace {trace:?}: there is no such trace"
            )));
        }
        if self.graph().node(node).await?.is_none() {
            return Err(MemoryError::invalid(format!(
                "cannot link to node {node:?}: there is no such node"
            )));
        }
        self.sql
            .run(
                "INSERT INTO memory_trace_links (trace_id, node_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                params![trace, node],
            )
            .await?;
        Ok(())
    }

    /// Removes the link of `trace` to `node`; false when there was none.
    pub async fn unlink(&self, trace: &str, node: &str) -> Result<bool> {
        Ok(self
            .sql
            .run(
                "DELETE FROM memory_trace_links WHERE trace_id = ? AND node_id = ?",
                params![trace, node],
            )
            .await?
            .changes
            > 0)
    }

    /// The nodes trace `trace` is linked to, sorted.
    pub async fn links(&self, trace: &str) -> Result<Vec<String>> {
        let rows = self
            .sql
            .all(
                "SELECT node_id FROM memory_trace_links WHERE trace_id = ?",
                params![trace],
            )
            .await?;
        let mut out = rows
            .iter()
            .map(|r| r.get::<String>("node_id").map_err(Into::into))
            .collect::<Result<Vec<_>>>()?;
        out.sort();
        Ok(out)
    }

    /// The traces linked to each of `nodes`.
    async fn traces_on(&self, nodes: &[String]) -> Result<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let head = "SELECT trace_id, node_id FROM memory_trace_links WHERE node_id IN";
        for r in &all_in(&self.sql, head, nodes).await? {
            out.entry(r.get("node_id")?)
                .or_default()
                .push(r.get("trace_id")?);
        }
        for v in out.values_mut() {
            v.sort();
        }
        Ok(out)
    }

    /// The traces reached through the graph from `hits` (see the [module
    /// docs](self)), at most `limit`.
    pub(crate) async fn expand(
        &self,
        hits: &[Recalled],
        depth: u32,
        limit: usize,
        filter: Option<&Json>,
    ) -> Result<Vec<Recalled>> {
        let filter = match filter {
            Some(f) => Some(strata_plugin_api::filter::Filter::parse(f).map_err(|e| {
                MemoryError::invalid(format!("the recall filter: {}", e.message()))
            })?),
            None => None,
        };
        let seen: HashSet<&str> = hits.iter().map(|h| h.trace.id.as_str()).collect();
        // trace -> (score, relevance, via), best score kept.
        let mut found: HashMap<String, (f64, f64, Via)> = HashMap::new();
        let graph = self.graph();
        for hit in hits {
            for start in self.links(&hit.trace.id).await? {
                let mut reached = vec![(start.clone(), 0u32)];
                if depth > 0 {
                    reached.extend(
                        graph
                            .traverse(&start, depth, Direction::Both, None)
                            .await?
                            .into_iter()
                            .map(|r| (r.id, r.depth)),
                    );
                }
                let nodes: Vec<String> = reached.iter().map(|r| r.0.clone()).collect();
                let on = self.traces_on(&nodes).await?;
                for (node, steps) in reached {
                    let factor = GRAPH_DISCOUNT.powi(steps as i32 + 1);
                    for t in on.get(&node).into_iter().flatten() {
                        if seen.contains(t.as_str()) {
                            continue;
                        }
                        let score = hit.score * factor;
                        let better = found.get(t).is_none_or(|(s, _, v)| {
                            score > *s || (score == *s && (&node, steps) < (&v.node, v.steps))
                        });
                        if better {
                            found.insert(
                                t.clone(),
                                (
                                    score,
                                    hit.relevance * factor,
                                    Via {
                                        hit: hit.trace.id.clone(),
                                        node: node.clone(),
                                        steps,
                                    },
                                ),
                            );
                        }
                    }
                }
            }
        }
        let ids: Vec<String> = found.keys().cloned().collect();
        let mut out: Vec<Recalled> = self
            .get(&ids)
            .await?
            .into_iter()
            .filter(|t| filter.as_ref().is_none_or(|f| f.matches(&t.metadata)))
            .map(|t| {
                let (score, relevance, via) = found.remove(&t.id).expect("found above");
                Recalled {
                    trace: t,
                    score,
                    relevance,
                    via: Some(via),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.trace.id.cmp(&b.trace.id))
        });
        out.truncate(limit);
        Ok(out)
    }
}
