//! The memory's tables (both SQL dialects) and its vector collection.

use strata_host::{Dialect, Metric, Sql, Vectors, params};

use crate::{CHUNKS, Embedder, MemoryError, Result, TRACES};

/// Creates what is missing and checks the memory was built with
/// `embedder` (same name and dimension).
pub(crate) async fn ensure(sql: &Sql, vectors: &Vectors, embedder: &dyn Embedder) -> Result<()> {
    let real = match sql.dialect() {
        Dialect::Postgres => "DOUBLE PRECISION",
        _ => "REAL",
    };
    sql.exec(&format!(
        "CREATE TABLE IF NOT EXISTS memory_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS memory_traces (
            id TEXT PRIMARY KEY,
            content TEXT NOT NULL,
            metadata TEXT NOT NULL,
            importance {real} NOT NULL,
            created_ms BIGINT NOT NULL,
            accessed_ms BIGINT NOT NULL,
            access_count BIGINT NOT NULL DEFAULT 0,
            useful BIGINT NOT NULL DEFAULT 0,
            not_useful BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS memory_feedback (
            id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            useful BIGINT NOT NULL,
            at_ms BIGINT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS memory_consolidation_log (
            id TEXT PRIMARY KEY,
            at_ms BIGINT NOT NULL,
            action TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            other_id TEXT,
            detail TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS memory_documents (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            metadata TEXT NOT NULL,
            chunks BIGINT NOT NULL,
            created_ms BIGINT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS memory_chunks (
            id TEXT PRIMARY KEY,
            document TEXT NOT NULL,
            n BIGINT NOT NULL,
            start_char BIGINT NOT NULL,
            content TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS memory_chunks_document ON memory_chunks (document);
        CREATE TABLE IF NOT EXISTS memory_nodes (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            props TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS memory_edges (
            src TEXT NOT NULL,
            dst TEXT NOT NULL,
            kind TEXT NOT NULL,
            weight {real} NOT NULL,
            props TEXT NOT NULL,
            PRIMARY KEY (src, dst, kind)
        );
        CREATE INDEX IF NOT EXISTS memory_edges_dst ON memory_edges (dst);
        CREATE TABLE IF NOT EXISTS memory_trace_links (
            trace_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            PRIMARY KEY (trace_id, node_id)
        );
        CREATE INDEX IF NOT EXISTS memory_trace_links_node ON memory_trace_links (node_id);"
    ))
    .await?;
    let (name, dim) = (embedder.name().to_string(), embedder.dimension());
    let stored = sql
        .get("SELECT value FROM memory_meta WHERE key = 'embedder'", ())
        .await?;
    match stored {
        None => {
            sql.run(
                "INSERT INTO memory_meta (key, value) VALUES ('embedder', ?)",
                params![serde_json::json!({"name": name, "dimension": dim}).to_string()],
            )
            .await?;
        }
        Some(row) => {
            let text: String = row.get("value")?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| MemoryError::Corrupt {
                    message: format!("memory_meta.embedder = {text:?}: {e}"),
                })?;
            let (s_name, s_dim) = (
                v["name"].as_str().unwrap_or_default().to_string(),
                v["dimension"].as_u64().unwrap_or_default() as u32,
            );
            if s_name != name || s_dim != dim {
                return Err(MemoryError::EmbedderMismatch {
                    stored: s_name,
                    stored_dim: s_dim,
                    given: name,
                    given_dim: dim,
                });
            }
        }
    }
    for collection in [TRACES, CHUNKS] {
        if !vectors.exists(collection).await? {
            vectors
                .create_collection(collection, dim, Metric::Cosine)
                .await?;
        }
    }
    Ok(())
}
