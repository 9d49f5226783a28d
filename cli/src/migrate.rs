//! `strata migrate`, `strata export`, `strata import`.

use std::{io::BufReader, path::PathBuf, process::ExitCode};

use clap::Args;
use comfy_table::Table;
use strata_host::{
    Error, Strata,
    migrate::{ItemKind, MigrateOptions, Report, jsonl, migrate},
};

use crate::{error::Result, output::table, progress::ItemBars};

/// `strata migrate` arguments.
#[derive(Args, Debug)]
pub(crate) struct MigrateArgs {
    /// The source backend (a name from plugins.toml).
    #[arg(long)]
    from: String,
    /// The target backend.
    #[arg(long)]
    to: String,
    /// Only these tables (comma-separated; an empty value copies no tables).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    tables: Option<Vec<String>>,
    /// Only these vector collections (comma-separated; empty = none).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    collections: Option<Vec<String>>,
    /// Rows per page and per target transaction.
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    /// Count what would move and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Continue from the checkpoints of an interrupted run.
    #[arg(long)]
    resume: bool,
    /// Skip the count + checksum verification.
    #[arg(long)]
    no_verify: bool,
    /// Do not treat SQLite BLOB columns named like `embedding` as f32 vectors.
    #[arg(long)]
    no_detect_vectors: bool,
}

/// `strata export` arguments.
#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// The backend to export.
    #[arg(long)]
    backend: String,
    /// The JSON Lines file to write.
    #[arg(long)]
    out: PathBuf,
    /// Only these tables (comma-separated).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    tables: Option<Vec<String>>,
    /// Only these collections (comma-separated).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    collections: Option<Vec<String>>,
    /// Rows per read.
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
}

/// `strata import` arguments.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// The backend to load into.
    #[arg(long)]
    backend: String,
    /// The JSON Lines file written by `strata export`.
    file: PathBuf,
    /// Rows per statement.
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
}

fn summary(report: &Report, verb: &str) -> Table {
    let mut t = table();
    t.set_header(vec![
        "kind", "name", "read", verb, "skipped", "resumed", "time", "verified",
    ]);
    for i in report.items() {
        t.add_row(vec![
            match i.kind {
                ItemKind::Table => "table".to_string(),
                ItemKind::Collection => "collection".to_string(),
            },
            i.name.clone(),
            i.read.to_string(),
            i.written.to_string(),
            i.skipped.to_string(),
            if i.already_done {
                format!("{} (done earlier)", i.resumed)
            } else {
                i.resumed.to_string()
            },
            format!("{:.2}s", i.duration.as_secs_f64()),
            i.verification.to_string(),
        ]);
    }
    t
}

fn warnings(report: &Report) {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
}

/// `strata migrate`.
pub(crate) async fn run_migrate(strata: &Strata, args: MigrateArgs) -> Result<ExitCode> {
    let from = strata.backend(&args.from).await?;
    let to = strata.backend(&args.to).await?;
    let mut options = MigrateOptions::new()
        .batch_size(args.batch_size)
        .dry_run(args.dry_run)
        .resume(args.resume)
        .verify(!args.no_verify)
        .detect_vectors(!args.no_detect_vectors)
        .progress(ItemBars::new());
    options.tables = args
        .tables
        .map(|t| t.into_iter().filter(|s| !s.is_empty()).collect());
    options.collections = args
        .collections
        .map(|c| c.into_iter().filter(|s| !s.is_empty()).collect());
    let report = migrate(&from, &to, &options).await?;
    warnings(&report);
    println!(
        "{}",
        summary(
            &report,
            if report.dry_run {
                "would write"
            } else {
                "written"
            }
        )
    );
    println!(
        "{} {} → {}: {} item(s), {} row(s) {} in {:.2}s",
        if report.dry_run {
            "dry run"
        } else {
            "migrated"
        },
        args.from,
        args.to,
        report.items().count(),
        if report.dry_run {
            report.items().map(|i| i.read).sum::<u64>()
        } else {
            report.written()
        },
        if report.dry_run { "to copy" } else { "written" },
        report.duration.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `strata export`.
pub(crate) async fn run_export(strata: &Strata, args: ExportArgs) -> Result<ExitCode> {
    let backend = strata.backend(&args.backend).await?;
    let mut options = MigrateOptions::new()
        .batch_size(args.batch_size)
        .progress(ItemBars::new());
    options.tables = args.tables;
    options.collections = args.collections;
    // Written beside --out and renamed into place when complete: a failed
    // export leaves no partial file.
    let report = jsonl::export_file(&backend, &args.out, &options).await?;
    warnings(&report);
    println!("{}", summary(&report, "exported"));
    println!(
        "exported {} to {} in {:.2}s",
        args.backend,
        args.out.display(),
        report.duration.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `strata import`.
pub(crate) async fn run_import(strata: &Strata, args: ImportArgs) -> Result<ExitCode> {
    let backend = strata.backend(&args.backend).await?;
    let file = std::fs::File::open(&args.file).map_err(|e| Error::Io {
        context: format!("opening {}", args.file.display()),
        source: e,
    })?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let options = MigrateOptions::new()
        .batch_size(args.batch_size)
        .progress(ItemBars::new());
    let report = jsonl::import(
        &backend,
        &mut input,
        &args.file.display().to_string(),
        &options,
    )
    .await?;
    println!("{}", summary(&report, "written"));
    println!(
        "imported {} into {} in {:.2}s",
        args.file.display(),
        args.backend,
        report.duration.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
