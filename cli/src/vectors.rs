//! `strata vectors …`: collections from the command line.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Subcommand;
use strata_host::{
    CollectionStats, Error, ErrorKind, Hybrid, Include, Metric, PluginError, Query, Strata,
};

use crate::{
    error::Result,
    output::{clip, clip_json, table},
    upsert,
};

/// `strata vectors` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum VectorsCommand {
    /// List collections with their dimension, metric and size.
    List,
    /// Create a collection.
    Create {
        /// Collection name.
        name: String,
        /// Vector dimension.
        #[arg(long)]
        dim: u32,
        /// cosine, dot or euclidean.
        #[arg(long, default_value = "cosine")]
        metric: String,
    },
    /// Show one collection's statistics.
    Stats {
        /// Collection name.
        name: String,
    },
    /// Insert or overwrite records from JSON Lines: {"id", "vector", "metadata"?, "text"?} per line.
    Upsert {
        /// Collection name.
        name: String,
        /// The JSON Lines file (`-` for stdin).
        file: PathBuf,
        /// Records per batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Files up to this many MiB are read and checked whole before anything is
        /// written (a bad record writes nothing); larger ones are written as they
        /// are read. 0 = always as read.
        #[arg(long, default_value_t = upsert::DEFAULT_CHECK_FIRST_MB)]
        check_first_mb: u64,
    },
    /// Nearest neighbours of a vector (a JSON array, from a file or stdin).
    Query {
        /// Collection name.
        name: String,
        /// File holding the query vector as a JSON array (`-` or absent: stdin).
        #[arg(long)]
        vector: Option<PathBuf>,
        /// Results wanted.
        #[arg(long, default_value_t = 10)]
        top_k: u32,
        /// A filter document (JSON).
        #[arg(long)]
        filter: Option<String>,
        /// Also run full-text search with this text and fuse (hybrid query).
        #[arg(long)]
        text: Option<String>,
        /// Include the stored vectors in the output.
        #[arg(long)]
        with_vectors: bool,
    },
    /// Drop a collection.
    Drop {
        /// Collection name.
        name: String,
    },
}

fn read_input(path: Option<&Path>) -> strata_host::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    match path {
        Some(p) if p != Path::new("-") => {
            text = std::fs::read_to_string(p).map_err(|e| Error::Io {
                context: format!("reading {}", p.display()),
                source: e,
            })?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Io {
                    context: "reading stdin".into(),
                    source: e,
                })?;
        }
    }
    Ok(text)
}

fn parse_json(text: &str, what: &str) -> strata_host::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::Params(format!("{what} is not valid JSON: {e}")))
}

fn stats_row(s: &CollectionStats) -> Vec<String> {
    vec![
        s.name.clone(),
        s.dimension.to_string(),
        s.metric.name().to_string(),
        s.count.to_string(),
        s.details.to_string(),
    ]
}

/// Runs `strata vectors …` on backend `backend` (default: the `vectors` role).
pub(crate) async fn vectors(
    strata: &Strata,
    backend: Option<&str>,
    json: bool,
    what: VectorsCommand,
) -> Result<ExitCode> {
    let v = match backend {
        Some(b) => strata.vectors_backend(b).await?,
        None => strata.vectors().await?,
    };
    match what {
        VectorsCommand::List => {
            let list = v.list().await?;
            if json {
                let arr: Vec<_> = list
                    .iter()
                    .map(|s| serde_json::json!({"name": s.name, "dimension": s.dimension, "metric": s.metric.name(), "count": s.count, "details": s.details}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
            } else {
                let mut t = table();
                t.set_header(["collection", "dim", "metric", "records", "details"]);
                for s in &list {
                    t.add_row(stats_row(s));
                }
                println!("{t}");
            }
        }
        VectorsCommand::Create { name, dim, metric } => {
            let m = Metric::from_name(&metric).ok_or_else(|| {
                Error::Params(format!(
                    "unknown metric {metric:?} (cosine, dot, euclidean)"
                ))
            })?;
            v.create_collection(&name, dim, m).await?;
            println!("collection {name} ready ({dim}-d, {})", m.name());
        }
        VectorsCommand::Stats { name } => {
            let s = v.stats(&name).await?.ok_or_else(|| {
                Error::Plugin(PluginError::new(
                    ErrorKind::NotFound,
                    format!("collection {name:?} does not exist"),
                ))
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": s.name, "dimension": s.dimension, "metric": s.metric.name(), "count": s.count, "details": s.details})
                );
            } else {
                let mut t = table();
                t.set_header(["collection", "dim", "metric", "records", "details"]);
                t.add_row(stats_row(&s));
                println!("{t}");
            }
        }
        VectorsCommand::Upsert {
            name,
            file,
            batch,
            check_first_mb,
        } => {
            let dim = v
                .stats(&name)
                .await?
                .ok_or_else(|| {
                    Error::Plugin(PluginError::new(
                        ErrorKind::NotFound,
                        format!("collection {name:?} does not exist (create it first)"),
                    ))
                })?
                .dimension as usize;
            let mut input: Box<dyn std::io::BufRead> = if file == Path::new("-") {
                Box::new(std::io::BufReader::new(std::io::stdin().lock()))
            } else {
                Box::new(std::io::BufReader::with_capacity(
                    1 << 20,
                    std::fs::File::open(&file).map_err(|e| Error::Io {
                        context: format!("reading {}", file.display()),
                        source: e,
                    })?,
                ))
            };
            // Drawn only when stderr is a terminal.
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("upserting: {pos} records ({per_sec})")
            {
                bar.set_style(style);
            }
            let total = upsert::upsert_lines(
                &v,
                &name,
                dim,
                &mut *input,
                batch,
                check_first_mb.saturating_mul(1 << 20),
                &bar,
            )
            .await;
            bar.finish_and_clear();
            println!("upserted {} records into {name}", total?);
        }
        VectorsCommand::Query {
            name,
            vector,
            top_k,
            filter,
            text,
            with_vectors,
        } => {
            let input = read_input(vector.as_deref())?;
            let q: Vec<f32> = serde_json::from_str(input.trim()).map_err(|e| {
                Error::Params(format!(
                    "the query vector must be a JSON array of numbers: {e}"
                ))
            })?;
            let filter = filter
                .as_deref()
                .map(|f| parse_json(f, "--filter"))
                .transpose()?;
            let include = Include {
                vector: with_vectors,
                metadata: true,
                text: true,
            };
            let hits = match text {
                Some(t) => {
                    let mut h = Hybrid::new(q, t).top_k(top_k).include(include);
                    h.filter = filter;
                    v.hybrid_query(&name, &h).await?
                }
                None => {
                    let mut query = Query::new(q).top_k(top_k).include(include);
                    query.filter = filter;
                    v.query(&name, &query).await?
                }
            };
            if json {
                let arr: Vec<_> = hits
                    .iter()
                    .map(|h| serde_json::json!({"id": h.id, "score": h.score, "metadata": h.metadata, "text": h.text, "vector": h.vector}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
            } else {
                let mut t = table();
                t.set_header(["rank", "id", "score", "metadata", "text"]);
                for (i, h) in hits.iter().enumerate() {
                    t.add_row([
                        (i + 1).to_string(),
                        h.id.clone(),
                        format!("{:.6}", h.score),
                        h.metadata.as_ref().map(clip_json).unwrap_or_default(),
                        h.text.as_deref().map(clip).unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
        }
        VectorsCommand::Drop { name } => {
            if v.drop_collection(&name).await? {
                println!("dropped {name}");
            } else {
                println!("{name} did not exist");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
