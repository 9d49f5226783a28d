//! `strata-conformance --plugin PATH --config FILE [--suite sql|vector|blob|all] [--junit FILE]`
//!
//! Loads the plugin through strata's loader, runs every applicable case,
//! prints one line per case and closes with `N passed, N failed, N skipped`.
//! Exits 1 when a case failed, 2 when the plugin or config cannot be loaded.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, ValueEnum};
use strata_conformance::{Outcome, Suite, Target, run};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SuiteArg {
    Sql,
    Vector,
    Blob,
    All,
}

/// Runs the strata contract suites against a plugin library.
#[derive(Parser, Debug)]
#[command(name = "strata-conformance", version)]
struct Args {
    /// The plugin library (e.g. target/release/libstrata_sqlite.so).
    #[arg(long)]
    plugin: PathBuf,
    /// A TOML file holding the plugin's config table (`${VAR}` allowed).
    #[arg(long)]
    config: PathBuf,
    /// Which suite to run.
    #[arg(long, value_enum, default_value = "all")]
    suite: SuiteArg,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Only cases whose id (`suite::name`) contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Per-case time limit in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async_main(args))
}

async fn async_main(args: Args) -> ExitCode {
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: {}: cannot read the config file: {e}",
                args.config.display()
            );
            return ExitCode::from(2);
        }
    };
    let config = match strata_host::Config::plugin_config_from_toml(&args.config, &text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let target = match Target::load(&args.plugin, config, &args.config) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let info = target.plugin().info().clone();
    println!(
        "strata-conformance {}: plugin {} {} (plugin-api {}), contracts [{}]",
        env!("CARGO_PKG_VERSION"),
        info.name,
        info.version,
        info.api_version,
        info.contract_names().join(", ")
    );
    let suites: Vec<Suite> = match args.suite {
        SuiteArg::Sql => vec![Suite::Sql],
        SuiteArg::Vector => vec![Suite::Vector],
        SuiteArg::Blob => vec![Suite::Blob],
        SuiteArg::All => vec![Suite::Sql, Suite::Vector, Suite::Blob],
    };
    let report = run(
        target,
        &suites,
        args.filter.as_deref(),
        Duration::from_secs(args.timeout),
        |c| match &c.outcome {
            Outcome::Passed => println!("PASS {} ({} ms)", c.id, c.duration.as_millis()),
            Outcome::Failed(m) => println!(
                "FAIL {} ({} ms): {}",
                c.id,
                c.duration.as_millis(),
                m.replace('\n', "\n    ")
            ),
            Outcome::Skipped(m) => println!("SKIP {}: {m}", c.id),
        },
    )
    .await;
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(
            path,
            report.junit(&format!("strata-conformance {}", info.name)),
        )
    {
        eprintln!("error: cannot write {}: {e}", path.display());
    }
    println!("{}", report.summary());
    if report.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
