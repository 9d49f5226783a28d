//! `strata memory …`: the agent memory layer (`strata-memory`) from the
//! command line, over the `sql` and `vectors` roles of `plugins.toml`.
//!
//! The embedder (`--embedder`): `hash`, the model-free demo (lexical, not
//! semantic; `--dimension`, default 256), `minilm`, the local
//! all-MiniLM-L6-v2 (384 dimensions; `--model-dir`, default where
//! `scripts/models/minilm.sh` puts it), or `openai`, an OpenAI-compatible
//! `/v1/embeddings` endpoint (`--openai-url`, `--openai-model`,
//! `--openai-dimension`; the key from `$OPENAI_API_KEY`, never an
//! argument). A memory remembers which embedder built it and refuses
//! another, so use the same choice every time.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Subcommand, ValueEnum};
use serde_json::{Value as Json, json};
use strata_host::Strata;
use strata_memory::{
    Advice, ConsolidateOptions, Embedder, HashEmbedder, IngestOptions, Memory, MiniLmEmbedder,
    OpenAiConfig, OpenAiEmbedder, RecallOptions, graph::Direction,
};

use crate::{
    error::Result,
    output::{clip, table},
};

/// `strata memory` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum MemoryCommand {
    /// Remember a text; prints its id.
    Remember {
        /// What to remember.
        text: String,
        /// Metadata, a JSON object.
        #[arg(long, default_value = "{}")]
        metadata: String,
        /// 0 (trivia) to 1 (essential).
        #[arg(long, default_value_t = 0.5)]
        importance: f64,
        /// Use this id (replacing the trace of that id) instead of a new UUID.
        #[arg(long)]
        id: Option<String>,
    },
    /// Recall the traces most relevant to a query (hybrid search, then the re-rank).
    Recall {
        /// The query.
        query: String,
        /// How many.
        #[arg(long, short, default_value_t = 5)]
        k: u32,
        /// A metadata filter (the filter language, as JSON).
        #[arg(long)]
        filter: Option<String>,
        /// Also return up to k traces linked to graph nodes within this many
        /// steps of the hits' nodes (`graph link`), each scored at the hit's
        /// score × 0.5 ^ (steps + 1).
        #[arg(long, value_name = "DEPTH")]
        expand: Option<u32>,
    },
    /// Forget traces by id, or every trace whose metadata match --where.
    Forget {
        /// Trace ids.
        ids: Vec<String>,
        /// A metadata filter instead of ids.
        #[arg(long = "where", conflicts_with = "ids")]
        filter: Option<String>,
    },
    /// Mark a recalled trace as useful or not (the re-rank uses it).
    Feedback {
        /// The trace id.
        id: String,
        /// Useful.
        #[arg(
            long,
            conflicts_with = "not_useful",
            required_unless_present = "not_useful"
        )]
        useful: bool,
        /// Not useful.
        #[arg(long)]
        not_useful: bool,
    },
    /// Ingest a text file as a document (chunked, embedded).
    Ingest {
        /// The file (UTF-8 text).
        file: PathBuf,
        /// Its title (default: the file name).
        #[arg(long)]
        title: Option<String>,
        /// Metadata, a JSON object.
        #[arg(long, default_value = "{}")]
        metadata: String,
        /// Chunk length in characters.
        #[arg(long, default_value_t = 800)]
        chunk_chars: usize,
        /// Overlap between chunks in characters.
        #[arg(long, default_value_t = 100)]
        overlap_chars: usize,
    },
    /// Search document chunks.
    Docs {
        /// The query.
        query: String,
        /// How many chunks.
        #[arg(long, short, default_value_t = 5)]
        k: u32,
    },
    /// Decay idle traces and merge near-duplicates (logged).
    Consolidate {
        /// Traces idle this many days decay.
        #[arg(long, default_value_t = 30.0)]
        idle_days: f64,
        /// The decay factor.
        #[arg(long, default_value_t = 0.9)]
        decay: f64,
        /// Cosine similarity at or above which traces merge.
        #[arg(long, default_value_t = 0.95)]
        merge_threshold: f64,
    },
    /// The knowledge graph.
    Graph {
        #[command(subcommand)]
        what: GraphCommand,
    },
    /// Sizes, measured recall latency, and which tier fits.
    Stats {
        /// Recalls to time.
        #[arg(long, default_value_t = 50)]
        samples: u32,
    },
}

/// `strata memory graph` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum GraphCommand {
    /// Add (or replace) a node.
    AddNode {
        /// Node id.
        id: String,
        /// Its type.
        #[arg(long)]
        kind: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// Properties, a JSON object.
        #[arg(long, default_value = "{}")]
        props: String,
    },
    /// Add (or replace) a directed edge; both nodes must exist.
    AddEdge {
        /// Source node.
        src: String,
        /// Target node.
        dst: String,
        /// Its type.
        #[arg(long)]
        kind: String,
        /// Its weight.
        #[arg(long, default_value_t = 1.0)]
        weight: f64,
        /// Properties, a JSON object.
        #[arg(long, default_value = "{}")]
        props: String,
    },
    /// Link a trace to a node (recall --expand follows links).
    Link {
        /// Trace id.
        trace: String,
        /// Node id.
        node: String,
    },
    /// A node's neighbours, one step away.
    Neighbors {
        /// Node id.
        id: String,
        /// Which edges to follow.
        #[arg(long, value_enum, default_value_t = Dir::Both)]
        direction: Dir,
    },
    /// Every node within --depth steps, with the fewest steps to it.
    Traverse {
        /// Start node.
        id: String,
        /// Steps (at most 16).
        #[arg(long, default_value_t = 2)]
        depth: u32,
        /// Which edges to follow.
        #[arg(long, value_enum, default_value_t = Dir::Out)]
        direction: Dir,
        /// Follow only edges of this type.
        #[arg(long)]
        kind: Option<String>,
    },
    /// A shortest path (fewest steps).
    Path {
        /// From.
        from: String,
        /// To.
        to: String,
        /// Steps (at most 16).
        #[arg(long, default_value_t = 6)]
        depth: u32,
        /// Which edges to follow.
        #[arg(long, value_enum, default_value_t = Dir::Out)]
        direction: Dir,
    },
}

/// Edge direction on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Dir {
    Out,
    In,
    Both,
}

impl From<Dir> for Direction {
    fn from(d: Dir) -> Direction {
        match d {
            Dir::Out => Direction::Out,
            Dir::In => Direction::In,
            Dir::Both => Direction::Both,
        }
    }
}

fn json_arg(what: &str, text: &str) -> Result<Json> {
    serde_json::from_str(text).map_err(|e| {
        strata_memory::MemoryError::InvalidInput {
            message: format!("{what} is not JSON ({e}): {text}"),
        }
        .into()
    })
}

fn print(json_out: bool, value: Json, human: impl FnOnce()) {
    if json_out {
        println!("{value}");
    } else {
        human();
    }
}

/// Which embedder `strata memory` uses.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub(crate) enum EmbedderKind {
    /// The model-free hashing demo (lexical, not semantic).
    #[default]
    Hash,
    /// The local all-MiniLM-L6-v2 sentence-transformer.
    Minilm,
    /// An OpenAI-compatible /v1/embeddings endpoint.
    Openai,
}

/// The embedder options of `strata memory`.
#[derive(clap::Args, Debug)]
pub(crate) struct EmbedderArgs {
    /// The embedder: hash (demo), minilm (local model) or openai (HTTP endpoint).
    #[arg(long, global = true, value_enum, default_value_t = EmbedderKind::Hash)]
    embedder: EmbedderKind,
    /// The all-MiniLM-L6-v2 directory for --embedder minilm (default: $STRATA_MINILM_DIR,
    /// else ~/.cache/strata/models/all-MiniLM-L6-v2, where scripts/models/minilm.sh puts it).
    #[arg(long, global = true)]
    model_dir: Option<PathBuf>,
    /// The API root for --embedder openai (the key comes from $OPENAI_API_KEY).
    #[arg(long, global = true, default_value = "https://api.openai.com/v1")]
    openai_url: String,
    /// The model for --embedder openai.
    #[arg(long, global = true, default_value = "text-embedding-3-small")]
    openai_model: String,
    /// The vector length the --embedder openai model returns.
    #[arg(long, global = true, default_value_t = 1536)]
    openai_dimension: u32,
    /// Retries after a 429, a 5xx or a transport error (Retry-After, else
    /// full-jitter backoff), for --embedder openai.
    #[arg(long, global = true, default_value_t = 4)]
    openai_max_retries: u32,
}

impl EmbedderArgs {
    fn build(&self, dimension: u32) -> Result<Arc<dyn Embedder>> {
        Ok(match self.embedder {
            EmbedderKind::Hash => Arc::new(HashEmbedder::new(dimension)),
            EmbedderKind::Minilm => {
                let dir = self
                    .model_dir
                    .clone()
                    .or_else(strata_memory::minilm::default_model_dir)
                    .ok_or_else(|| strata_memory::MemoryError::InvalidInput {
                        message: "no model directory: pass --model-dir or set STRATA_MINILM_DIR"
                            .into(),
                    })?;
                Arc::new(MiniLmEmbedder::load(dir)?)
            }
            EmbedderKind::Openai => {
                let mut config =
                    OpenAiConfig::new(&self.openai_url, &self.openai_model, self.openai_dimension);
                config.max_retries = self.openai_max_retries;
                config.api_key = std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty());
                Arc::new(OpenAiEmbedder::new(config)?)
            }
        })
    }
}

/// Runs `strata memory …`.
pub(crate) async fn run(
    strata: &Strata,
    json_out: bool,
    dimension: u32,
    embedder: EmbedderArgs,
    what: MemoryCommand,
) -> Result<ExitCode> {
    let memory = Memory::open(strata, embedder.build(dimension)?).await?;
    match what {
        MemoryCommand::Remember {
            text,
            metadata,
            importance,
            id,
        } => {
            let metadata = json_arg("--metadata", &metadata)?;
            let id = match id {
                Some(id) => {
                    memory.remember_as(&id, &text, metadata, importance).await?;
                    id
                }
                None => memory.remember(&text, metadata, importance).await?,
            };
            print(json_out, json!({"id": id}), || println!("remembered {id}"));
        }
        MemoryCommand::Recall {
            query,
            k,
            filter,
            expand,
        } => {
            let mut options = RecallOptions::top(k);
            if let Some(d) = expand {
                options = options.expand_graph(d);
            }
            if let Some(f) = filter {
                options = options.filter(json_arg("--filter", &f)?);
            }
            let hits = memory.recall(&query, &options).await?;
            let rows: Vec<Json> = hits
                .iter()
                .map(|h| {
                    json!({
                        "id": h.trace.id, "score": h.score, "relevance": h.relevance,
                        "importance": h.trace.importance, "content": h.trace.content,
                        "metadata": h.trace.metadata, "access_count": h.trace.access_count,
                        "via": h.via.as_ref().map(|v| json!({"hit": v.hit, "node": v.node, "steps": v.steps})),
                    })
                })
                .collect();
            print(json_out, Json::Array(rows), || {
                let mut t = table();
                t.set_header(["score", "importance", "content", "id", "via"]);
                for h in &hits {
                    t.add_row([
                        format!("{:.4}", h.score),
                        format!("{:.2}", h.trace.importance),
                        clip(&h.trace.content),
                        h.trace.id.clone(),
                        h.via.as_ref().map_or(String::new(), |v| {
                            format!("{} → {} ({} steps)", v.hit, v.node, v.steps)
                        }),
                    ]);
                }
                println!("{t}");
            });
        }
        MemoryCommand::Forget { ids, filter } => {
            let n = match filter {
                Some(f) => memory.forget_where(&json_arg("--where", &f)?).await?,
                None => memory.forget(&ids).await?,
            };
            print(json_out, json!({"forgotten": n}), || {
                println!("forgot {n} traces")
            });
        }
        MemoryCommand::Feedback { id, useful, .. } => {
            if !memory.feedback(&id, useful).await? {
                return Err(strata_memory::MemoryError::InvalidInput {
                    message: format!("no trace {id:?}"),
                }
                .into());
            }
            print(json_out, json!({"id": id, "useful": useful}), || {
                println!("noted: {id} was {}useful", if useful { "" } else { "not " })
            });
        }
        MemoryCommand::Ingest {
            file,
            title,
            metadata,
            chunk_chars,
            overlap_chars,
        } => {
            let text = std::fs::read_to_string(&file).map_err(|e| strata_host::Error::Io {
                context: format!("reading {}", file.display()),
                source: e,
            })?;
            let title = title.unwrap_or_else(|| {
                file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into(),
                )
            });
            let doc = memory
                .ingest(
                    &title,
                    &text,
                    json_arg("--metadata", &metadata)?,
                    IngestOptions::new(chunk_chars, overlap_chars),
                )
                .await?;
            print(
                json_out,
                json!({"id": doc.id, "title": doc.title, "chunks": doc.chunks}),
                || {
                    println!(
                        "ingested {:?} as {} ({} chunks)",
                        doc.title, doc.id, doc.chunks
                    )
                },
            );
        }
        MemoryCommand::Docs { query, k } => {
            let hits = memory.recall_chunks(&query, k, None).await?;
            let rows: Vec<Json> = hits
                .iter()
                .map(|h| {
                    json!({"document": h.document.id, "title": h.document.title, "chunk": h.chunk,
                           "start_char": h.start_char, "score": h.score, "content": h.content})
                })
                .collect();
            print(json_out, Json::Array(rows), || {
                let mut t = table();
                t.set_header(["score", "document", "chunk", "content"]);
                for h in &hits {
                    t.add_row([
                        format!("{:.4}", h.score),
                        h.document.title.clone(),
                        h.chunk.to_string(),
                        clip(&h.content),
                    ]);
                }
                println!("{t}");
            });
        }
        MemoryCommand::Consolidate {
            idle_days,
            decay,
            merge_threshold,
        } => {
            let options = ConsolidateOptions::default()
                .idle_ms((idle_days * 86_400_000.0) as i64)
                .decay(decay)
                .merge_threshold(merge_threshold);
            let r = memory.consolidate(&options).await?;
            print(
                json_out,
                json!({"decayed": r.decayed, "merged": r.merged}),
                || {
                    println!(
                        "decayed {} traces, merged {} (see memory_consolidation_log)",
                        r.decayed, r.merged
                    )
                },
            );
        }
        MemoryCommand::Graph { what } => graph(&memory, json_out, what).await?,
        MemoryCommand::Stats { samples } => {
            let s = memory.stats(samples).await?;
            let (tier, why) = match &s.advice {
                Advice::Stay(r) => ("stay", r.clone()),
                Advice::Postgres(r) => ("postgres", r.clone()),
                Advice::Qdrant(r) => ("qdrant", r.clone()),
                other => ("unknown", format!("{other:?}")),
            };
            let command = migrate_hint(strata, tier);
            print(
                json_out,
                json!({
                    "embedder": s.embedder, "traces": s.traces, "documents": s.documents,
                    "chunks": s.chunks, "nodes": s.nodes, "edges": s.edges, "vectors": s.vectors,
                    "text_bytes": s.text_bytes, "vector_bytes": s.vector_bytes,
                    "recalls_timed": s.recalls_timed, "recall_p50_ms": s.recall_p50_ms,
                    "recall_p99_ms": s.recall_p99_ms, "embed_p50_ms": s.embed_p50_ms,
                    "advice": {"tier": tier, "reason": why, "command": command},
                }),
                || {
                    println!("embedder   {}", s.embedder);
                    println!(
                        "traces     {}   documents {} ({} chunks)   graph {} nodes, {} edges",
                        s.traces, s.documents, s.chunks, s.nodes, s.edges
                    );
                    println!(
                        "stored     {} vectors, {} bytes of vectors, {} bytes of text",
                        s.vectors, s.vector_bytes, s.text_bytes
                    );
                    println!(
                        "recall     p50 {:.2} ms, p99 {:.2} ms over {} searches (embedding apart: p50 {:.3} ms)",
                        s.recall_p50_ms, s.recall_p99_ms, s.recalls_timed, s.embed_p50_ms
                    );
                    println!("advice     {tier}: {why}");
                    if let Some(c) = &command {
                        println!("           {c}");
                    }
                },
            );
        }
    }
    memory.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// The `strata migrate` command that moves this memory to a tier, naming
/// a configured backend of that plugin when there is one.
fn migrate_hint(strata: &Strata, tier: &str) -> Option<String> {
    if tier == "stay" || tier == "unknown" {
        return None;
    }
    let config = strata.config();
    let from = config.backend_for_role("sql").ok()?.name.clone();
    let target = config.backends.values().find(|b| {
        b.name != from
            && matches!(&b.source, strata_host::config::PluginSource::Name(n) if n == tier)
    });
    Some(match target {
        Some(b) => format!("strata migrate --from {from} --to {}", b.name),
        None => format!(
            "add a [backends.{tier}] table with plugin = \"{tier}\" to {}, then: strata migrate --from {from} --to {tier}",
            config.file.display()
        ),
    })
}

async fn graph(memory: &Memory, json_out: bool, what: GraphCommand) -> Result<()> {
    let g = memory.graph();
    match what {
        GraphCommand::AddNode {
            id,
            kind,
            name,
            props,
        } => {
            let name = name.unwrap_or_else(|| id.clone());
            g.add_node(&id, &kind, &name, json_arg("--props", &props)?)
                .await?;
            print(json_out, json!({"node": id}), || println!("node {id}"));
        }
        GraphCommand::AddEdge {
            src,
            dst,
            kind,
            weight,
            props,
        } => {
            g.add_edge(&src, &dst, &kind, weight, json_arg("--props", &props)?)
                .await?;
            print(
                json_out,
                json!({"src": src, "dst": dst, "kind": kind}),
                || println!("edge {src} -{kind}-> {dst}"),
            );
        }
        GraphCommand::Link { trace, node } => {
            memory.link(&trace, &node).await?;
            print(json_out, json!({"trace": trace, "node": node}), || {
                println!("linked trace {trace} to node {node}")
            });
        }
        GraphCommand::Neighbors { id, direction } => {
            let n = g.neighbours(&id, direction.into()).await?;
            print(json_out, json!(n), || {
                for x in &n {
                    println!("{x}");
                }
            });
        }
        GraphCommand::Traverse {
            id,
            depth,
            direction,
            kind,
        } => {
            let r = g
                .traverse(&id, depth, direction.into(), kind.as_deref())
                .await?;
            let rows: Vec<Json> = r
                .iter()
                .map(|x| json!({"id": x.id, "depth": x.depth}))
                .collect();
            print(json_out, Json::Array(rows), || {
                for x in &r {
                    println!("{}\t{}", x.depth, x.id);
                }
            });
        }
        GraphCommand::Path {
            from,
            to,
            depth,
            direction,
        } => {
            let p = g.shortest_path(&from, &to, depth, direction.into()).await?;
            print(json_out, json!(p), || match &p {
                Some(p) => println!("{}", p.join(" -> ")),
                None => println!("no path from {from} to {to} within {depth} steps"),
            });
        }
    }
    Ok(())
}
