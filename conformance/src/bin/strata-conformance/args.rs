//! The command line, parsed by hand (the CLI crate alone depends on clap).

use std::{ffi::OsString, path::PathBuf};

use strata_conformance::Suite;

/// The text of `--help`.
pub(crate) const HELP: &str = "\
strata-conformance: runs the strata contract suites against a plugin library

Usage: strata-conformance --plugin LIBRARY --config FILE [OPTIONS]
       strata-conformance --list [--suite SUITE] [--filter TEXT]

Required:
  --plugin LIBRARY   the plugin library to test (e.g. target/release/libstrata_mydb.so)
  --config FILE      a TOML file holding the plugin's config table (`${VAR}` reads
                     the environment); an optional [conformance] table in it declares
                     the cases the plugin is expected to skip or fail (see below)

Options:
  --suite SUITE      sql, vector, blob or all (default: all); may be repeated
  --filter TEXT      only the cases whose id (`suite::name`) contains TEXT
  --expect FILE      expectations (a TOML file with [skip] and [fail] tables of
                     \"suite::name\" = \"reason\"), in addition to the config's
                     [conformance] table; may be repeated
  --junit FILE       write a JUnit XML report to FILE (also when the plugin cannot
                     be loaded: the report then holds an <error>)
  --timeout SECS     time limit per case, in seconds (default: 120)
  --list             print every case with what it requires and checks, then exit
  -h, --help         print this help
  -V, --version      print the version

Expectations: under [fail], a case that fails is an expected failure (XFAIL)
and one that passes is an unexpected pass (XPASS) that fails the run. When a
[skip] table is present, skips are exact: a skip not listed, or a listed case
that runs and passes, fails the run.

The plugin is loaded, opened, closed and dropped first in a child process
(this program re-run), then the cases run there; if the plugin kills that
process (an abort, a panic in an entry point that cannot unwind), the run
names the entry point or the case, counts it as failed and goes on in a new
child.

Exit status: 0 all cases passed (or failed as expected); 1 a case failed or
the expectations do not match; 2 the arguments, config or expectations are
wrong, or the plugin could not be loaded or opened (or killed the process
while loading); 3 the JUnit report could not be written.";

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Print the help.
    Help,
    /// Print the version.
    Version,
    /// Print the cases.
    List {
        suites: Vec<Suite>,
        filter: Option<String>,
    },
    /// Run the suites.
    Run(Args),
}

/// A run's arguments.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) plugin: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) suites: Vec<Suite>,
    pub(crate) filter: Option<String>,
    pub(crate) expect: Vec<PathBuf>,
    pub(crate) junit: Option<PathBuf>,
    pub(crate) timeout_secs: u64,
}

/// A command-line mistake, said in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ArgsError(String);

fn err(msg: impl Into<String>) -> ArgsError {
    ArgsError(msg.into())
}

/// Parses the arguments after the program name.
pub(crate) fn parse(argv: Vec<OsString>) -> Result<Command, ArgsError> {
    let mut plugin = None;
    let mut config = None;
    let mut suites: Vec<Suite> = Vec::new();
    let mut filter = None;
    let mut expect = Vec::new();
    let mut junit = None;
    let mut timeout_secs = 120u64;
    let mut list = false;
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| err(format!("argument {a:?} is not UTF-8")))?;
        // `--flag=value` or `--flag value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(OsString::from(v))),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<OsString, ArgsError> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => Err(err(format!("{name} needs a value"))),
            }
        };
        let text = |v: OsString, name: &str| -> Result<String, ArgsError> {
            v.into_string()
                .map_err(|v| err(format!("the value of {name} ({v:?}) is not UTF-8")))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--list" => list = true,
            "--plugin" => plugin = Some(PathBuf::from(value("--plugin")?)),
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--expect" => expect.push(PathBuf::from(value("--expect")?)),
            "--junit" => junit = Some(PathBuf::from(value("--junit")?)),
            "--filter" => filter = Some(text(value("--filter")?, "--filter")?),
            "--suite" => {
                let s = text(value("--suite")?, "--suite")?;
                match s.as_str() {
                    "all" => suites.extend(Suite::ALL),
                    name => suites.push(Suite::from_name(name).ok_or_else(|| {
                        err(format!(
                            "unknown suite `{name}` (expected sql, vector, blob or all)"
                        ))
                    })?),
                }
            }
            "--timeout" => {
                let s = text(value("--timeout")?, "--timeout")?;
                timeout_secs = s.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    err(format!(
                        "--timeout takes a positive number of seconds, not `{s}`"
                    ))
                })?;
            }
            other if other.starts_with('-') => {
                return Err(err(format!("unknown option `{other}` (see --help)")));
            }
            other => {
                return Err(err(format!(
                    "unexpected argument `{other}` (options take the form --name VALUE; see --help)"
                )));
            }
        }
    }
    if suites.is_empty() {
        suites.extend(Suite::ALL);
    }
    let mut seen = Vec::new();
    suites.retain(|s| {
        let new = !seen.contains(s);
        seen.push(*s);
        new
    });
    if list {
        return Ok(Command::List { suites, filter });
    }
    let plugin = plugin.ok_or_else(|| err("--plugin LIBRARY is required (see --help)"))?;
    let config = config.ok_or_else(|| err("--config FILE is required (see --help)"))?;
    Ok(Command::Run(Args {
        plugin,
        config,
        suites,
        filter,
        expect,
        junit,
        timeout_secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, ArgsError> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn flags_take_values_either_way() {
        let Command::Run(a) = run(&[
            "--plugin",
            "p.so",
            "--config=c.toml",
            "--suite",
            "vector",
            "--suite=sql",
            "--suite",
            "vector",
            "--expect",
            "e.toml",
            "--timeout=30",
        ])
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(a.plugin, PathBuf::from("p.so"));
        assert_eq!(a.config, PathBuf::from("c.toml"));
        assert_eq!(a.suites, vec![Suite::Vector, Suite::Sql]);
        assert_eq!(a.expect, vec![PathBuf::from("e.toml")]);
        assert_eq!(a.timeout_secs, 30);
        assert!(a.junit.is_none() && a.filter.is_none());
    }

    #[test]
    fn mistakes_are_named() {
        for (args, needle) in [
            (&["--plugin", "p"][..], "--config FILE is required"),
            (&["--config", "c"][..], "--plugin LIBRARY is required"),
            (&["--plugin"][..], "--plugin needs a value"),
            (&["--suite", "graph"][..], "unknown suite `graph`"),
            (&["--timeout", "soon"][..], "positive number of seconds"),
            (&["--verbose"][..], "unknown option `--verbose`"),
            (&["extra"][..], "unexpected argument `extra`"),
        ] {
            let e = run(args).unwrap_err().to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        assert!(matches!(run(&["-h"]).unwrap(), Command::Help));
        assert!(matches!(run(&["--list"]).unwrap(), Command::List { .. }));
    }
}
