//! Documents: ingested texts, split into overlapping chunks that are
//! embedded and recalled with the document they came from.

use std::collections::HashMap;

use serde_json::{Value as Json, json};
use strata_host::{Include, Params, Record, Value, params};

use crate::{
    CHUNKS, Memory, MemoryError, Result, now_ms,
    traces::{all_in, in_list},
};

/// How [`Memory::ingest`] chunks a text (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IngestOptions {
    /// The target chunk length, in characters (default 800).
    pub chunk_chars: usize,
    /// How far each chunk reaches back into the previous one (default 100).
    pub overlap_chars: usize,
}

impl Default for IngestOptions {
    fn default() -> IngestOptions {
        IngestOptions {
            chunk_chars: 800,
            overlap_chars: 100,
        }
    }
}

impl IngestOptions {
    /// Chunks of about `chunk_chars` characters overlapping by `overlap_chars`.
    pub fn new(chunk_chars: usize, overlap_chars: usize) -> IngestOptions {
        IngestOptions {
            chunk_chars,
            overlap_chars,
        }
    }
}

/// An ingested document.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The caller's metadata.
    pub metadata: Json,
    /// How many chunks it was split into.
    pub chunks: u64,
}

/// A recalled chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkHit {
    /// The document it belongs to.
    pub document: Document,
    /// Its position in the document (0-based).
    pub chunk: u64,
    /// Where it starts in the document, in characters.
    pub start_char: u64,
    /// Its text.
    pub content: String,
    /// The retrieval score (hybrid, higher is better).
    pub score: f64,
}

/// Splits `text` into `(start_char, chunk)` pieces (see the crate docs):
/// about `chunk_chars` characters each, ending at whitespace when there
/// is some in the last fifth, each starting `overlap_chars` before the
/// previous one ended. Blank text gives no chunks.
pub fn chunk_text(text: &str, options: IngestOptions) -> Vec<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let size = options.chunk_chars.max(1);
    let overlap = options.overlap_chars.min(size / 2);
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + size).min(chars.len());
        if end < chars.len() {
            let floor = end - size / 5;
            if let Some(ws) = (floor..end).rev().find(|&i| chars[i].is_whitespace()) {
                end = ws + 1;
            }
        }
        let piece: String = chars[start..end].iter().collect();
        if !piece.trim().is_empty() {
            out.push((start, piece));
        }
        if end == chars.len() {
            break;
        }
        start = (end - overlap).max(start + 1);
    }
    out
}

impl Memory {
    /// Ingests document `text` under `title` with `metadata` (a JSON
    /// object, or null): stores it, splits it into chunks and embeds them.
    pub async fn ingest(
        &self,
        title: &str,
        text: &str,
        metadata: Json,
        options: IngestOptions,
    ) -> Result<Document> {
        let metadata = crate::json_object("document metadata", metadata)?;
        let chunks = chunk_text(text, options);
        if chunks.is_empty() {
            return Err(MemoryError::invalid(format!(
                "document {title:?} has no text to ingest"
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let texts: Vec<String> = chunks.iter().map(|(_, c)| c.clone()).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(64) {
            vectors.extend(self.embed_many(batch).await?);
        }
        // Rows in one transaction, then the vectors; if those fail the rows go.
        let (doc_id, title_s, meta_s, n) = (
            id.clone(),
            title.to_string(),
            metadata.to_string(),
            chunks.len() as i64,
        );
        let rows = chunks.clone();
        self.sql
            .transaction(|tx| {
                Box::pin(async move {
                    tx.run(
                        "INSERT INTO memory_documents (id, title, metadata, chunks, created_ms) VALUES (?, ?, ?, ?, ?)",
                        params![doc_id.as_str(), title_s, meta_s, n, now_ms()],
                    )
                    .await?;
                    for (i, (start, content)) in rows.iter().enumerate() {
                        tx.run(
                            "INSERT INTO memory_chunks (id, document, n, start_char, content) VALUES (?, ?, ?, ?, ?)",
                            params![
                                format!("{doc_id}#{i}"),
                                doc_id.as_str(),
                                i as i64,
                                *start as i64,
                                content.as_str()
                            ],
                        )
                        .await?;
                    }
                    Ok::<(), strata_host::Error>(())
                })
            })
            .await?;
        let records = chunks
            .iter()
            .zip(vectors)
            .enumerate()
            .map(|(i, ((_, c), v))| {
                let mut m = metadata.clone();
                m["document"] = json!(id);
                m["chunk"] = json!(i);
                Record::new(format!("{id}#{i}"), v)
                    .metadata(m)
                    .text(c.clone())
            });
        if let Err(e) = self.vectors.upsert(CHUNKS, records).await {
            let _ = self.forget_document(&id).await;
            return Err(e.into());
        }
        Ok(Document {
            id,
            title: title.to_string(),
            metadata,
            chunks: chunks.len() as u64,
        })
    }

    /// The documents of `ids` that exist, in the order asked.
    pub async fn documents(&self, ids: &[String]) -> Result<Vec<Document>> {
        let mut found = HashMap::new();
        let head = "SELECT id, title, metadata, chunks FROM memory_documents WHERE id IN";
        for r in &all_in(&self.sql, head, ids).await? {
            let metadata: String = r.get("metadata")?;
            let d = Document {
                id: r.get("id")?,
                title: r.get("title")?,
                metadata: serde_json::from_str(&metadata).map_err(|e| MemoryError::Corrupt {
                    message: format!("document metadata is not JSON: {e}"),
                })?,
                chunks: r.get::<i64>("chunks")? as u64,
            };
            found.insert(d.id.clone(), d);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The `k` chunks most relevant to `query` (hybrid: dense + BM25),
    /// with their documents; `filter` applies to the chunk metadata (the
    /// document's, plus `document` and `chunk`).
    pub async fn recall_chunks(
        &self,
        query: &str,
        k: u32,
        filter: Option<Json>,
    ) -> Result<Vec<ChunkHit>> {
        let vector = self.embed_one(query).await?;
        let hits = self
            .ranked(
                CHUNKS,
                query,
                vector,
                k.max(1),
                filter.as_ref(),
                Include::default(),
            )
            .await?;
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        let rows = self
            .sql
            .all(
                &format!(
                    "SELECT id, document, n, start_char, content FROM memory_chunks WHERE id IN ({})",
                    in_list(ids.len())
                ),
                Params::Positional(ids.iter().map(Value::from).collect()),
            )
            .await?;
        let mut by_id = HashMap::new();
        for r in &rows {
            let id: String = r.get("id")?;
            by_id.insert(id, r);
        }
        let doc_ids: Vec<String> = {
            let mut d: Vec<String> = rows
                .iter()
                .map(|r| r.get::<String>("document"))
                .collect::<strata_host::Result<_>>()?;
            d.sort();
            d.dedup();
            d
        };
        let docs: HashMap<String, Document> = self
            .documents(&doc_ids)
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let Some(r) = by_id.get(&h.id) else { continue };
            let Some(document) = docs.get(&r.get::<String>("document")?) else {
                continue;
            };
            out.push(ChunkHit {
                document: document.clone(),
                chunk: r.get::<i64>("n")? as u64,
                start_char: r.get::<i64>("start_char")? as u64,
                content: r.get("content")?,
                score: h.score,
            });
        }
        Ok(out)
    }

    /// Forgets document `id` and its chunks; whether it existed.
    pub async fn forget_document(&self, id: &str) -> Result<bool> {
        self.vectors
            .delete_where(CHUNKS, &json!({"document": id}))
            .await?;
        self.sql
            .run("DELETE FROM memory_chunks WHERE document = ?", params![id])
            .await?;
        let n = self
            .sql
            .run("DELETE FROM memory_documents WHERE id = ?", params![id])
            .await?
            .changes;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(chunk_chars: usize, overlap_chars: usize) -> IngestOptions {
        IngestOptions {
            chunk_chars,
            overlap_chars,
        }
    }

    #[test]
    fn chunks_cover_the_text_overlap_and_end_at_whitespace() {
        let text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu ".repeat(20);
        let chunks = chunk_text(&text, opts(100, 20));
        assert!(chunks.len() > 10);
        let chars: Vec<char> = text.chars().collect();
        let mut covered = 0;
        for (i, (start, piece)) in chunks.iter().enumerate() {
            let n = piece.chars().count();
            assert!(n <= 100, "chunk {i} has {n} chars");
            // The chunk is the text at its start.
            assert_eq!(chars[*start..start + n].iter().collect::<String>(), *piece);
            // It reaches back into the previous one, leaving no gap.
            assert!(*start <= covered, "gap before chunk {i}");
            if i > 0 {
                assert!(
                    covered - start <= 20 && covered > *start,
                    "overlap of chunk {i}"
                );
            }
            if start + n < chars.len() {
                assert!(piece.ends_with(' '), "chunk {i} ends mid-word: {piece:?}");
            }
            covered = start + n;
        }
        assert_eq!(covered, chars.len());
    }

    #[test]
    fn short_blank_and_unbroken_texts() {
        assert_eq!(
            chunk_text("hello", opts(800, 100)),
            [(0, "hello".to_string())]
        );
        assert!(chunk_text("   \n ", opts(800, 100)).is_empty());
        let long = "x".repeat(250);
        let c = chunk_text(&long, opts(100, 10));
        assert_eq!(c.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 90, 180]);
        // Multi-byte characters are counted as characters, never split.
        let greek = "αβγδ εζηθ ".repeat(30);
        assert!(
            chunk_text(&greek, opts(50, 5))
                .iter()
                .all(|(_, p)| p.chars().count() <= 50)
        );
    }
}
