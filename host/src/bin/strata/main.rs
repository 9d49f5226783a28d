//! The `strata` command line.

mod backup;
mod migrate;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use strata_host::{
    Error, Params, Plugin, Result, Strata, Value,
    config::PluginSource,
    loader::{library_file_name, resolve, search_dirs},
};

/// strata: one storage API for agent memory, backends as plugins.
#[derive(Parser, Debug)]
#[command(name = "strata", version, about)]
struct Cli {
    /// The plugins.toml to use.
    #[arg(long, global = true, default_value = "plugins.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the configured backends and their plugins (versions, contracts, capabilities).
    Plugins {
        #[command(subcommand)]
        what: Option<PluginsCommand>,
    },
    /// Check the config, open every backend and run its health check.
    Check,
    /// Run one SQL statement (or a script with --exec) and print the result.
    Sql {
        /// The backend to use (default: the `sql` role).
        #[arg(long)]
        backend: Option<String>,
        /// Print rows as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Run the text as a script of several statements (no parameters).
        #[arg(long)]
        exec: bool,
        /// The SQL text.
        sql: String,
        /// Positional parameters: JSON literals (1, 2.5, null, "text") or bare text.
        params: Vec<String>,
    },
    /// Vector collections: create, list, stats, upsert, query, drop.
    Vectors {
        /// The backend to use (default: the `vectors` role).
        #[arg(long, global = true)]
        backend: Option<String>,
        /// Print JSON instead of tables.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        what: VectorsCommand,
    },
    /// The main job: write and read agent memories through the loaded SQL plugin.
    Quickstart,
    /// Copy tables and vector collections between backends: streaming, resumable, verified.
    Migrate(migrate::MigrateArgs),
    /// Export a backend's tables and collections to a JSON Lines file.
    Export(migrate::ExportArgs),
    /// Import a JSON Lines export into a backend (one transaction per table).
    Import(migrate::ImportArgs),
    /// Backups to the `backup` role's blob store: now, list, verify, restore, prune, schedule.
    Backup(backup::BackupArgs),
    /// Run a benchmark (runs the `strata-bench` binary next to this one).
    Bench {
        /// Arguments for strata-bench, e.g. `sql-get --rows 100000`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum VectorsCommand {
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

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// Print the JSON Schema of a plugin's config (by backend or plugin name).
    Schema {
        /// A backend name from plugins.toml, or a plugin name.
        name: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("STRATA_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    if let Command::Bench { args } = &cli.command {
        return bench(args);
    }
    let strata = Strata::load(&cli.config)?;
    let code = match cli.command {
        Command::Plugins { what: None } => plugins(&strata)?,
        Command::Plugins {
            what: Some(PluginsCommand::Schema { name }),
        } => schema(&strata, &name)?,
        Command::Check => check(&strata).await?,
        Command::Sql {
            backend,
            json,
            exec,
            sql,
            params,
        } => run_sql(&strata, backend.as_deref(), json, exec, &sql, &params).await?,
        Command::Vectors {
            backend,
            json,
            what,
        } => vectors(&strata, backend.as_deref(), json, what).await?,
        Command::Migrate(args) => migrate::run_migrate(&strata, args).await?,
        Command::Export(args) => migrate::run_export(&strata, args).await?,
        Command::Import(args) => migrate::run_import(&strata, args).await?,
        Command::Backup(args) => backup::run(&strata, args).await?,
        Command::Quickstart => {
            let mut out = std::io::stdout();
            strata_host::quickstart::run(&strata, &mut out).await?;
            ExitCode::SUCCESS
        }
        Command::Bench { .. } => unreachable!("handled above"),
    };
    strata.close().await?;
    Ok(code)
}

fn bench(args: &[String]) -> Result<ExitCode> {
    let exe = std::env::current_exe().map_err(|e| Error::Io {
        context: "locating the strata binary".into(),
        source: e,
    })?;
    let bench = exe.with_file_name(format!("strata-bench{}", std::env::consts::EXE_SUFFIX));
    let status = std::process::Command::new(&bench)
        .args(args)
        .status()
        .map_err(|e| Error::Io {
            context: format!(
                "running {} (build it with `cargo build --release -p strata-bench`)",
                bench.display()
            ),
            source: e,
        })?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_input(path: Option<&Path>) -> Result<String> {
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

fn parse_json(text: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::Params(format!("{what} is not valid JSON: {e}")))
}

fn stats_row(s: &strata_host::CollectionStats) -> Vec<String> {
    vec![
        s.name.clone(),
        s.dimension.to_string(),
        s.metric.name().to_string(),
        s.count.to_string(),
        s.details.to_string(),
    ]
}

async fn vectors(
    strata: &Strata,
    backend: Option<&str>,
    json: bool,
    what: VectorsCommand,
) -> Result<ExitCode> {
    use strata_host::{Hybrid, Include, Metric, Query, Record};
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
                Error::Plugin(strata_host::PluginError::new(
                    strata_host::ErrorKind::NotFound,
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
        VectorsCommand::Upsert { name, file, batch } => {
            let text = read_input(Some(&file))?;
            let mut pending = Vec::new();
            let mut total = 0u64;
            let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
            // Drawn only when stderr is a terminal.
            let bar = indicatif::ProgressBar::new(lines as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "upserting [{bar:30}] {pos}/{len} records ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let doc = parse_json(line, &format!("line {}", n + 1))?;
                let id = doc["id"]
                    .as_str()
                    .ok_or_else(|| Error::Params(format!("line {}: missing string `id`", n + 1)))?;
                let vector: Vec<f32> =
                    serde_json::from_value(doc["vector"].clone()).map_err(|e| {
                        Error::Params(format!(
                            "line {}: `vector` must be an array of numbers: {e}",
                            n + 1
                        ))
                    })?;
                let mut r = Record::new(id, vector).metadata(doc["metadata"].clone());
                if let Some(t) = doc["text"].as_str() {
                    r = r.text(t);
                }
                pending.push(r);
                if pending.len() >= batch.max(1) {
                    let n = v.upsert(&name, std::mem::take(&mut pending)).await?;
                    total += n;
                    bar.inc(n);
                }
            }
            if !pending.is_empty() {
                total += v.upsert(&name, pending).await?;
            }
            bar.finish_and_clear();
            println!("upserted {total} records into {name}");
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
                        h.metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        h.text.clone().unwrap_or_default(),
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

fn table() -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

fn plugins(strata: &Strata) -> Result<ExitCode> {
    let cfg = strata.config();
    let mut t = table();
    t.set_header([
        "backend",
        "plugin",
        "version",
        "plugin-api",
        "contracts",
        "capabilities",
        "library",
    ]);
    let mut failed = false;
    for (name, b) in &cfg.backends {
        match strata.plugin(name) {
            Ok(p) => {
                let i = p.info();
                t.add_row([
                    name.clone(),
                    i.name.clone(),
                    i.version.clone(),
                    i.api_version.clone(),
                    i.contract_names().join(", "),
                    i.capabilities.join(", "),
                    p.path().display().to_string(),
                ]);
            }
            Err(e) => {
                failed = true;
                let plugin = match &b.source {
                    PluginSource::Name(n) => n.clone(),
                    PluginSource::Library(p) => p.display().to_string(),
                };
                t.add_row([
                    name.clone(),
                    plugin,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("error: {e}"),
                ]);
            }
        }
    }
    println!("{t}");
    let roles = &cfg.roles;
    println!(
        "roles: sql = {}, vectors = {}, backup = {}",
        roles.sql.as_deref().unwrap_or("-"),
        roles.vectors.as_deref().unwrap_or("-"),
        roles.backup.as_deref().unwrap_or("-")
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn schema(strata: &Strata, name: &str) -> Result<ExitCode> {
    let cfg = strata.config();
    let plugin = if cfg.backends.contains_key(name) {
        strata.plugin(name)?
    } else {
        let file = library_file_name(name);
        let searched = search_dirs(cfg);
        let path = searched.iter().map(|d| d.join(&file)).find(|p| p.is_file());
        match path {
            Some(p) => Plugin::load(p)?,
            None => {
                return Err(Error::PluginNotFound {
                    name: name.to_string(),
                    file,
                    searched,
                });
            }
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&plugin.info().config_schema).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

async fn check(strata: &Strata) -> Result<ExitCode> {
    let cfg = strata.config();
    println!(
        "{}: config ok, {} backend(s)",
        cfg.file.display(),
        cfg.backends.len()
    );
    let mut failed = 0;
    for name in cfg.backends.keys() {
        let result = async {
            let path = resolve(cfg, cfg.backend(name)?)?;
            let backend = strata.backend(name).await?;
            let health = backend.health().await?;
            Ok::<_, Error>(format!("{} ({})", health, short(&path)))
        }
        .await;
        match result {
            Ok(s) => println!("ok    {name}: {s}"),
            Err(e) => {
                failed += 1;
                println!("FAIL  {name}: {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("error: {failed} backend(s) failed the check");
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

fn short(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}

fn parse_param(s: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Null) => Value::Null,
        Ok(serde_json::Value::Bool(b)) => Value::from(b),
        Ok(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Value::Integer)
            .or_else(|| n.as_f64().map(Value::Real))
            .unwrap_or_else(|| Value::from(s)),
        Ok(serde_json::Value::String(t)) => Value::from(t),
        _ => Value::from(s),
    }
}

/// Whether the statement returns rows (so `all` is used rather than `run`).
fn returns_rows(sql: &str) -> bool {
    let lower = sql.trim_start().to_ascii_lowercase();
    [
        "select", "with", "pragma", "values", "explain", "show", "table",
    ]
    .iter()
    .any(|k| lower.starts_with(k))
        || lower.contains(" returning ")
}

async fn run_sql(
    strata: &Strata,
    backend: Option<&str>,
    json: bool,
    exec: bool,
    text: &str,
    params: &[String],
) -> Result<ExitCode> {
    let sql = match backend {
        Some(b) => strata.sql_backend(b).await?,
        None => strata.sql().await?,
    };
    if exec {
        if !params.is_empty() {
            return Err(Error::Params("--exec scripts take no parameters".into()));
        }
        sql.exec(text).await?;
        println!("ok");
        return Ok(ExitCode::SUCCESS);
    }
    let values = Params::Positional(params.iter().map(|p| parse_param(p)).collect());
    let values = if params.is_empty() {
        Params::None
    } else {
        values
    };
    if returns_rows(text) {
        let rows = sql.all(text, values).await?;
        if json {
            let arr: Vec<_> = rows.iter().map(|r| r.to_json()).collect();
            println!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
        } else {
            let mut t = table();
            if let Some(first) = rows.first() {
                t.set_header(first.columns());
            }
            for r in &rows {
                t.add_row(r.values().iter().map(|v| v.to_string()));
            }
            println!("{t}");
            println!(
                "({} row{})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            );
        }
    } else {
        let r = sql.run(text, values).await?;
        if json {
            println!(
                "{}",
                serde_json::json!({"changes": r.changes, "last_insert_rowid": r.last_insert_rowid})
            );
        } else {
            match r.last_insert_rowid {
                Some(id) => println!("{} row(s) changed, last insert rowid {id}", r.changes),
                None => println!("{} row(s) changed", r.changes),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
