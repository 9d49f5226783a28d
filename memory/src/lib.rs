//! strata's agent memory: what an agent calls to remember and recall,
//! on whatever storage a `plugins.toml` names.
//!
//! [`Memory`] sits above the host's two front ends and uses only their
//! public contracts, so it runs on every tier with the same code:
//!
//! - the **SQL role** holds the traces (content, metadata, importance,
//!   access counts and times), the knowledge graph, and the memory's own
//!   settings (which embedder built it);
//! - the **vectors role** holds one embedding per trace, with the trace's
//!   metadata (for filters) and content (for the lexical half of hybrid
//!   recall), in collection [`TRACES`].
//!
//! On one SQLite file both roles are the same backend; with vectors in
//! Qdrant or Pinecone the SQL role is a SQLite sidecar (or Postgres).
//! Moving tiers is `strata migrate`; the code calling [`Memory`] stays.
//!
//! The tables are named `memory_*` (not `strata_*`, the prefix the
//! migration and backup engines keep for strata's own bookkeeping): a
//! brain is user data, and `strata migrate` and `strata backup` move it
//! whole like any other tables and collections.
//!
//! # Recall
//!
//! [`Memory::recall`] embeds the query and asks the vector backend for a
//! hybrid ranking (dense + BM25, fused by reciprocal rank fusion; a
//! backend without hybrid search answers densely), of `max(4k, 20)`
//! candidates passing the metadata filter. The lexical half gets the
//! query without common English function words ("what", "does", "the",
//! …; the whole query if nothing else is left): BM25 gives them next to
//! no weight, but a full-text engine matching them scores nearly every
//! trace, which at 100K traces costs a whole scan per recall. The
//! candidates are then re-ranked, and the best `k` returned:
//!
//! ```text
//! relevance = 0.7 × cosine / best cosine              (exact, query to trace)
//!           + 0.3 × fused score / best fused score    (the hybrid RRF score)
//! recency   = 0.5 ^ (time since last access or creation / half_life)
//! feedback  = (useful + 1) / (useful + not_useful + 2)  (0.5 without feedback)
//! final     = relevance × (1 + importance_weight × importance)
//!                       × (1 − recency_weight + recency_weight × recency)
//!                       × (1 + feedback_weight × (feedback − 0.5))
//! ```
//!
//! with [`RecallWeights`] (defaults 0.5, 0.2, 7 days and 1). Each returned
//! trace's access count goes up by one and its last access becomes now;
//! [`Memory::feedback`] records whether a recalled trace helped.
//!
//! # Consolidation
//!
//! [`Memory::consolidate`] decays the importance of traces idle for
//! longer than a set time and merges near-duplicates (cosine similarity
//! at or above a threshold): the survivor is the more important one (then
//! the older), it takes the larger importance and the summed access and
//! feedback counts, and the other trace is forgotten. Every change is
//! written to `memory_consolidation_log` (time, action, traces,
//! before/after as JSON).
//!
//! # Documents
//!
//! [`Memory::ingest`] splits a text into chunks of about `chunk_chars`
//! characters (default 800), ending at whitespace where one is within the
//! last fifth of the chunk, each starting `overlap_chars` (default 100)
//! before the previous one ended; chunks are embedded in batches and kept
//! in collection [`CHUNKS`] (metadata: the document's, plus `document`
//! and `chunk`), so [`Memory::recall_chunks`] finds passages with the
//! document they came from.
//!
//! # Knowledge graph
//!
//! Typed nodes and weighted, typed, directed edges with JSON properties
//! ([`graph`]). Traversals are recursive CTEs written once for both SQL
//! dialects, depth-limited and cycle-safe (a walk never revisits a node on
//! its own path); results are sorted in Rust, by byte order, so SQLite
//! and Postgres (whose text collations differ) return identical lists.
//!
//! # Embedders
//!
//! Every entry point takes an `Arc<dyn` [`Embedder`]`>`, and a memory
//! remembers which one built it:
//!
//! - [`MiniLmEmbedder`]: all-MiniLM-L6-v2, local, in pure Rust (384
//!   dimensions, semantic; [`minilm`]; `scripts/models/minilm.sh` fetches
//!   the model);
//! - [`OpenAiEmbedder`]: an OpenAI-compatible `/embeddings` endpoint
//!   ([`openai`]);
//! - [`HashEmbedder`]: a model-free **demo**, lexical, not semantic.
//!
//! Traces can be linked to nodes ([`Memory::link`]), and a recall can
//! be expanded through the graph ([`RecallOptions::expand_graph`]): the
//! traces linked to nodes near the hits' nodes are added, their scores
//! discounted per step ([`links`] says exactly how).

#![deny(missing_docs)]

mod consolidate;
mod documents;
pub mod embed;
mod error;
pub mod graph;
pub mod links;
pub mod minilm;
pub mod openai;
mod schema;
mod stats;
mod traces;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use strata_host::{Config, Sql, Strata, Vectors};

pub use consolidate::{ConsolidateOptions, ConsolidationReport};
pub use documents::{ChunkHit, Document, IngestOptions, chunk_text};
pub use embed::{EmbedError, Embedder, HashEmbedder};
pub use error::{MemoryError, Result};
pub use links::{GRAPH_DISCOUNT, Via};
pub use minilm::{MiniLmEmbedder, ModelError, Pooling};
pub use openai::{OpenAiConfig, OpenAiEmbedder};
pub use stats::{Advice, MemoryStats};
pub use traces::{NewTrace, RecallOptions, RecallWeights, Recalled, Trace};

/// The vector collection holding the traces' embeddings.
pub const TRACES: &str = "memory_traces";

/// The vector collection holding the document chunks' embeddings.
pub const CHUNKS: &str = "memory_chunks";

/// An agent's memory over a SQL backend and a vector backend.
pub struct Memory {
    /// Set when this memory opened the storage itself ([`Memory::create_at`]).
    owned: Option<Strata>,
    sql: Sql,
    vectors: Vectors,
    embedder: Arc<dyn Embedder>,
    weights: RecallWeights,
}

impl Memory {
    /// Opens the memory on `strata`'s `sql` and `vectors` roles, creating
    /// its tables and collection on first use. Refuses a memory built with
    /// another embedder ([`MemoryError::EmbedderMismatch`]).
    pub async fn open(strata: &Strata, embedder: Arc<dyn Embedder>) -> Result<Memory> {
        let sql = strata.sql().await?;
        let vectors = strata.vectors().await?;
        Memory::on(None, sql, vectors, embedder).await
    }

    /// Opens the memory on the given SQL and vector front ends (of any
    /// backends: e.g. a SQLite sidecar for the SQL part and Qdrant for the
    /// vectors).
    pub async fn open_on(
        sql: Sql,
        vectors: Vectors,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Memory> {
        Memory::on(None, sql, vectors, embedder).await
    }

    /// A zero-config memory: one SQLite file, `brain.sqlite`, in `dir`
    /// (created if missing), through the `sqlite` plugin found where the
    /// host looks for plugins (`STRATA_PLUGIN_PATH`, the executable's
    /// directory).
    pub async fn create_at(dir: &Path, embedder: Arc<dyn Embedder>) -> Result<Memory> {
        std::fs::create_dir_all(dir).map_err(|e| {
            MemoryError::invalid(format!(
                "cannot create the memory directory {}: {e}",
                dir.display()
            ))
        })?;
        let config = Config::parse(
            &dir.join("plugins.toml"),
            "[backends.brain]\nplugin = \"sqlite\"\nconfig = { path = \"brain.sqlite\" }\n",
        )?;
        let strata = Strata::from_config(config);
        let sql = strata.sql().await?;
        let vectors = strata.vectors().await?;
        Memory::on(Some(strata), sql, vectors, embedder).await
    }

    /// [`create_at`](Self::create_at) in the per-user data directory:
    /// `$STRATA_MEMORY_DIR`, else `$XDG_DATA_HOME/strata`, else
    /// `~/.local/share/strata`.
    pub async fn create(embedder: Arc<dyn Embedder>) -> Result<Memory> {
        Memory::create_at(&default_dir()?, embedder).await
    }

    async fn on(
        owned: Option<Strata>,
        sql: Sql,
        vectors: Vectors,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Memory> {
        schema::ensure(&sql, &vectors, embedder.as_ref()).await?;
        Ok(Memory {
            owned,
            sql,
            vectors,
            embedder,
            weights: RecallWeights::default(),
        })
    }

    /// Sets the re-rank weights used by [`recall`](Self::recall).
    pub fn with_weights(mut self, weights: RecallWeights) -> Memory {
        self.weights = weights;
        self
    }

    /// The embedder.
    pub fn embedder(&self) -> &dyn Embedder {
        self.embedder.as_ref()
    }

    /// The SQL front end the memory writes to.
    pub fn sql(&self) -> &Sql {
        &self.sql
    }

    /// The vector front end the memory writes to.
    pub fn vectors(&self) -> &Vectors {
        &self.vectors
    }

    /// The knowledge graph.
    pub fn graph(&self) -> graph::Graph<'_> {
        graph::Graph::new(&self.sql)
    }

    /// The `k` best records of `collection` for `query` (its embedding
    /// `vector`) passing `filter`: a hybrid ranking (dense + BM25), or a
    /// dense one when the vector backend has no hybrid search.
    pub(crate) async fn ranked(
        &self,
        collection: &str,
        query: &str,
        vector: Vec<f32>,
        k: u32,
        filter: Option<&serde_json::Value>,
        include: strata_host::Include,
    ) -> Result<Vec<strata_host::Hit>> {
        let lexical = lexical_text(query);
        let mut hybrid = strata_host::Hybrid::new(vector.clone(), lexical.as_str())
            .top_k(k)
            .include(include);
        if let Some(f) = filter {
            hybrid = hybrid.filter(f.clone());
        }
        Ok(match self.vectors.hybrid_query(collection, &hybrid).await {
            Err(e) if e.kind() == strata_host::ErrorKind::Unsupported => {
                let mut q = strata_host::Query::new(vector).top_k(k).include(include);
                if let Some(f) = filter {
                    q = q.filter(f.clone());
                }
                self.vectors.query(collection, &q).await?
            }
            other => other?,
        })
    }

    /// Closes the storage this memory opened itself (a memory from
    /// [`open`](Self::open) leaves the caller's [`Strata`] open).
    pub async fn close(self) -> Result<()> {
        if let Some(s) = self.owned {
            s.close().await?;
        }
        Ok(())
    }
}

/// Common English function words, left out of the lexical half of a
/// hybrid search (see the crate docs).
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from",
    "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if",
    "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "ours", "she", "should",
    "so", "some", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "to", "too", "us", "was", "we", "were", "what", "when", "where", "which", "who",
    "whom", "why", "will", "with", "would", "you", "your", "yours",
];

/// `query` without [`STOP_WORDS`] for the full-text half (the whole query
/// when nothing else is left).
pub(crate) fn lexical_text(query: &str) -> String {
    let kept: Vec<&str> = query
        .split_whitespace()
        .filter(|w| {
            let bare = w
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            !STOP_WORDS.contains(&bare.as_str())
        })
        .collect();
    if kept.is_empty() {
        query.to_string()
    } else {
        kept.join(" ")
    }
}

fn default_dir() -> Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("STRATA_MEMORY_DIR") {
        return Ok(d);
    }
    if let Some(d) = var("XDG_DATA_HOME") {
        return Ok(d.join("strata"));
    }
    var("HOME")
        .map(|h| h.join(".local/share/strata"))
        .ok_or_else(|| {
            MemoryError::invalid(
                "no directory for the memory: set STRATA_MEMORY_DIR (or HOME / XDG_DATA_HOME)",
            )
        })
}

/// `value` as a JSON object (`null` is an empty one); anything else is
/// refused naming `what`.
pub(crate) fn json_object(what: &str, value: serde_json::Value) -> Result<serde_json::Value> {
    match value {
        serde_json::Value::Null => Ok(serde_json::Value::Object(Default::default())),
        v @ serde_json::Value::Object(_) => Ok(v),
        other => Err(MemoryError::invalid(format!(
            "{what} must be a JSON object, got {other}"
        ))),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lexical_half_drops_function_words() {
        assert_eq!(
            super::lexical_text("What does Ana like to drink in the morning?"),
            "Ana like drink morning?"
        );
        assert_eq!(super::lexical_text("what is it?"), "what is it?");
        assert_eq!(
            super::lexical_text("The rust 1.95 build"),
            "rust 1.95 build"
        );
    }
}
