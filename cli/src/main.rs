//! The `strata` command line, on the `strata-host` library.
//!
//! Everything a terminal needs and an application embedding strata does
//! not lives here: argument parsing (clap), tables (comfy-table), progress
//! bars (indicatif, behind the host's [`strata_host::progress::Progress`]),
//! logging to stderr (tracing-subscriber, `STRATA_LOG`) and the quickstart.
//! Each command has its module; `main` parses and dispatches.

mod backup;
mod error;
mod memory;
mod migrate;
mod output;
mod plugins;
mod progress;
mod quickstart;
mod sql;
mod upsert;
mod vectors;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use strata_host::{Error, Strata};

use crate::{error::Result, plugins::PluginsCommand, vectors::VectorsCommand};

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
        /// The SQL text (it may begin with `--`, a comment: it is never taken for a flag).
        #[arg(allow_hyphen_values = true)]
        sql: String,
        /// Positional parameters: JSON literals (1, 2.5, -3, null, "text") or bare text
        /// (one starting with `-` that is not a number goes after `--`).
        #[arg(allow_negative_numbers = true)]
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
    /// Agent memory: remember, recall, forget, feedback, documents, consolidation,
    /// the knowledge graph, and stats with tier advice.
    Memory {
        /// Print JSON instead of tables.
        #[arg(long, global = true)]
        json: bool,
        /// Dimension of the built-in hashing embedder (a memory keeps the one it was built with).
        #[arg(long, global = true, default_value_t = 256)]
        dimension: u32,
        #[command(flatten)]
        embedder: memory::EmbedderArgs,
        #[command(subcommand)]
        what: memory::MemoryCommand,
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
        Command::Plugins { what: None } => plugins::plugins(&strata)?,
        Command::Plugins {
            what: Some(PluginsCommand::Schema { name }),
        } => plugins::schema(&strata, &name)?,
        Command::Check => plugins::check(&strata).await?,
        Command::Sql {
            backend,
            json,
            exec,
            sql,
            params,
        } => sql::run_sql(&strata, backend.as_deref(), json, exec, &sql, &params).await?,
        Command::Vectors {
            backend,
            json,
            what,
        } => vectors::vectors(&strata, backend.as_deref(), json, what).await?,
        Command::Migrate(args) => migrate::run_migrate(&strata, args).await?,
        Command::Export(args) => migrate::run_export(&strata, args).await?,
        Command::Import(args) => migrate::run_import(&strata, args).await?,
        Command::Backup(args) => backup::run(&strata, args).await?,
        Command::Memory {
            json,
            dimension,
            embedder,
            what,
        } => memory::run(&strata, json, dimension, embedder, what).await?,
        Command::Quickstart => {
            let mut out = std::io::stdout();
            quickstart::run(&strata, &mut out).await?;
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
