//! What a memory holds, how fast it recalls, and which tier fits it.

use std::time::Instant;

use strata_host::Dialect;

use crate::{CHUNKS, Memory, MemoryError, RecallOptions, Result, TRACES};

/// A memory's size, measured recall latency and tier advice.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// The embedder that built the memory.
    pub embedder: String,
    /// Traces stored.
    pub traces: u64,
    /// Documents ingested.
    pub documents: u64,
    /// Their chunks.
    pub chunks: u64,
    /// Graph nodes.
    pub nodes: u64,
    /// Graph edges.
    pub edges: u64,
    /// Vectors in the vector backend (traces + chunks).
    pub vectors: u64,
    /// Bytes of text stored (trace contents and chunks, UTF-8).
    pub text_bytes: u64,
    /// Bytes of the raw vectors (count × dimension × 4).
    pub vector_bytes: u64,
    /// Recalls timed (0 on an empty memory).
    pub recalls_timed: u32,
    /// Median time of the search part of a recall (embedding excluded), ms.
    pub recall_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub recall_p99_ms: f64,
    /// Median time to embed one query, ms.
    pub embed_p50_ms: f64,
    /// Which tier fits, and why.
    pub advice: Advice,
}

/// The tier that fits a memory (AgentOS's guidance).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// Stay where it is; the reason says why.
    Stay(String),
    /// Move to Postgres + pgvector; the reason says why.
    Postgres(String),
    /// Move to Qdrant; the reason says why.
    Qdrant(String),
}

impl Advice {
    /// Advice for `vectors` vectors recalled in `p99_ms`.
    pub fn for_size(vectors: u64, p99_ms: f64) -> Advice {
        if vectors > 10_000_000 {
            Advice::Qdrant(format!(
                "{vectors} vectors: past ~10M, Qdrant's sharding and quantization fit"
            ))
        } else if vectors > 500_000 {
            Advice::Postgres(format!(
                "{vectors} vectors: past ~500K, Postgres + pgvector fits (and serves several writers)"
            ))
        } else if p99_ms > 200.0 {
            Advice::Postgres(format!(
                "recall p99 {p99_ms:.0} ms is over 200 ms: Postgres + pgvector fits"
            ))
        } else if vectors >= 1_000 {
            Advice::Stay(format!(
                "{vectors} vectors: the SQLite tier's HNSW index serves this (it is built past 1,000); move to Postgres when several processes must write"
            ))
        } else {
            Advice::Stay(format!(
                "{vectors} vectors: exact search on one SQLite file is plenty"
            ))
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Memory {
    async fn scalar(&self, sql: &str) -> Result<u64> {
        let row = self
            .sql
            .get(sql, ())
            .await?
            .ok_or_else(|| MemoryError::Corrupt {
                message: format!("{sql}: no row"),
            })?;
        let n: Option<i64> = row.get("n")?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Counts what the memory holds, times `samples` recalls (of the
    /// first words of stored traces, searching only: embedding is timed
    /// apart), and advises a tier.
    pub async fn stats(&self, samples: u32) -> Result<MemoryStats> {
        let postgres = self.sql.dialect() == Dialect::Postgres;
        let text_bytes = |table: &str| {
            if postgres {
                format!("SELECT SUM(octet_length(content)) AS n FROM {table}")
            } else {
                format!("SELECT SUM(length(CAST(content AS BLOB))) AS n FROM {table}")
            }
        };
        let traces = self
            .scalar("SELECT count(*) AS n FROM memory_traces")
            .await?;
        let documents = self
            .scalar("SELECT count(*) AS n FROM memory_documents")
            .await?;
        let chunks = self
            .scalar("SELECT count(*) AS n FROM memory_chunks")
            .await?;
        let nodes = self
            .scalar("SELECT count(*) AS n FROM memory_nodes")
            .await?;
        let edges = self
            .scalar("SELECT count(*) AS n FROM memory_edges")
            .await?;
        let text = self.scalar(&text_bytes("memory_traces")).await?
            + self.scalar(&text_bytes("memory_chunks")).await?;
        let vectors =
            self.vectors.count(TRACES, None).await? + self.vectors.count(CHUNKS, None).await?;
        let samples_rows = self
            .sql
            .all(
                "SELECT content FROM memory_traces ORDER BY created_ms, id LIMIT ?",
                strata_host::params![i64::from(samples)],
            )
            .await?;
        let mut search = Vec::new();
        let mut embed = Vec::new();
        for r in &samples_rows {
            let content: String = r.get("content")?;
            let query: String = content
                .split_whitespace()
                .take(6)
                .collect::<Vec<_>>()
                .join(" ");
            let t = Instant::now();
            let v = self.embed_one(&query).await?;
            embed.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            self.search_traces(&query, v, &RecallOptions::top(10))
                .await?;
            search.push(t.elapsed().as_secs_f64() * 1e3);
        }
        search.sort_by(f64::total_cmp);
        embed.sort_by(f64::total_cmp);
        let p99 = percentile(&search, 0.99);
        Ok(MemoryStats {
            embedder: self.embedder.name().to_string(),
            traces,
            documents,
            chunks,
            nodes,
            edges,
            vectors,
            text_bytes: text,
            vector_bytes: vectors * u64::from(self.embedder.dimension()) * 4,
            recalls_timed: search.len() as u32,
            recall_p50_ms: percentile(&search, 0.5),
            recall_p99_ms: p99,
            embed_p50_ms: percentile(&embed, 0.5),
            advice: Advice::for_size(vectors, p99),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_follows_the_tier_guidance() {
        assert!(matches!(Advice::for_size(10, 1.0), Advice::Stay(r) if r.contains("exact")));
        assert!(matches!(Advice::for_size(5_000, 1.0), Advice::Stay(r) if r.contains("HNSW")));
        assert!(
            matches!(Advice::for_size(5_000, 250.0), Advice::Postgres(r) if r.contains("200 ms"))
        );
        assert!(matches!(
            Advice::for_size(600_000, 1.0),
            Advice::Postgres(_)
        ));
        assert!(matches!(
            Advice::for_size(20_000_000, 1.0),
            Advice::Qdrant(_)
        ));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.5), 2.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
