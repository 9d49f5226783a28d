//! `strata-conformance --plugin LIBRARY --config FILE [--suite …] [--junit FILE] …`
//!
//! Runs the strata contract suites against a plugin library and judges the
//! result against the plugin's declared expectations (`--help` says how).
//!
//! The cases run in a child process — this program again, with a hidden
//! `--worker` flag ([`worker`]) — watched by the parent ([`supervisor`]):
//! the child loads the plugin, calls each entry point as a step of its own
//! (load, manifest, open, the accessors, health, close, drop), then runs
//! the cases, reporting each step and case as it goes ([`protocol`]). A
//! plugin that aborts the process therefore cannot take the report with it:
//! the parent names the entry point or case that killed the child, counts
//! it, and goes on with the remaining cases in a new child. The summary
//! and the JUnit report are written whatever happened.

mod args;
mod protocol;
mod supervisor;
mod worker;

use std::process::ExitCode;

use args::{Command, HELP};

fn main() -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if argv.first().is_some_and(|a| a == worker::FLAG) {
        argv.remove(0);
        worker::main(argv);
    }
    match args::parse(argv) {
        Ok(Command::Help) => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("strata-conformance {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::List { suites, filter }) => {
            for c in strata_conformance::select(&suites, filter.as_deref()) {
                let needs = if c.requires.is_empty() {
                    String::new()
                } else {
                    format!(" [needs {}]", c.requires.join(", "))
                };
                println!("{}{needs}\n    {}", c.id(), c.help);
            }
            ExitCode::SUCCESS
        }
        Ok(Command::Run(args)) => supervisor::run(args),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
