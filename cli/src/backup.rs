//! `strata backup now | list | verify | restore (TIMESTAMP|latest) [--to PATH | --into BACKEND] [--force] | prune | schedule`
//!
//! Backups of the source (`[backup] source`, else the `sql` role) into the
//! blob store of the `backup` role, configured by `[backup]` in
//! `plugins.toml`: a SQLite source as a database file, others (Postgres) as
//! a logical JSON Lines snapshot. See `strata_host::backup` for how they
//! are taken.

use std::{io::IsTerminal as _, path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use strata_host::{
    Strata,
    backup::{BackupManager, BackupReport, Which},
};

use crate::{error::Result, output::mb, progress::StepBars};

/// `strata backup …`
#[derive(Args, Debug)]
pub(crate) struct BackupArgs {
    /// The backend backed up, and whose backups are listed and restored
    /// (default: `[backup] source`, else the `sql` role).
    #[arg(long, global = true)]
    source: Option<String>,
    #[command(subcommand)]
    what: BackupCommand,
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Take a backup now (then prune beyond `keep`).
    Now,
    /// List stored backups, oldest first.
    List,
    /// Check every stored backup (manifest, size, sha256); exits 1 naming each bad one.
    ///
    /// With --restore, also prove one backup (--backup, default the latest)
    /// restores by restoring it: a SQLite backup into a temporary file
    /// (integrity check, tables counted, then removed), a logical one into
    /// the scratch backend --into (its tables and collections of the
    /// backup's names are replaced; the copy is left there).
    Verify {
        /// Also restore a backup as a trial.
        #[arg(long)]
        restore: bool,
        /// With --restore: which backup (a timestamp, a unique prefix, or `latest`).
        #[arg(
            long,
            value_name = "WHICH",
            default_value = "latest",
            requires = "restore"
        )]
        backup: String,
        /// With --restore, for a logical backup: the scratch backend to restore into.
        #[arg(long, value_name = "BACKEND", requires = "restore")]
        into: Option<String>,
    },
    /// Restore a backup (a timestamp, a unique prefix of one, or `latest`).
    ///
    /// A SQLite backup is a database file: written to --to PATH (default:
    /// the source backend's `path`). A logical backup (Postgres) is loaded
    /// into a backend with --into BACKEND (Postgres or SQLite): every table
    /// in one transaction, then the vector collections.
    Restore {
        /// `latest`, or a timestamp as listed (e.g. 20261128T073000.123Z).
        which: String,
        /// SQLite backups: where to write the database file.
        #[arg(long, value_name = "PATH", conflicts_with = "into")]
        to: Option<PathBuf>,
        /// Logical backups: the backend (in plugins.toml) to load it into.
        #[arg(long, value_name = "BACKEND")]
        into: Option<String>,
        /// Replace an existing file, or existing tables and collections of the backup's names.
        #[arg(long)]
        force: bool,
    },
    /// Delete the oldest backups beyond `keep`.
    Prune,
    /// Back up every `interval` (the first at once) until interrupted.
    Schedule,
}

fn describe(r: &BackupReport) -> String {
    let m = &r.manifest;
    let mut s = format!(
        "backup {} of `{}`: {} snapshot -> {} {} object {} (sha256 {}), snapshot {:.2} s, upload {:.2} s",
        m.timestamp,
        m.backend,
        mb(m.snapshot_size),
        mb(m.object_size),
        m.compression,
        m.object_key,
        &m.object_sha256[..m.object_sha256.len().min(16)],
        r.snapshot_secs,
        r.upload_secs
    );
    if let Some(e) = &r.export {
        s.push_str(&format!(
            "; logical: {} table(s), {} row(s), {} collection(s), {} record(s)",
            e.tables.len(),
            e.tables.iter().map(|t| t.read).sum::<u64>(),
            e.collections.len(),
            e.collections.iter().map(|c| c.read).sum::<u64>()
        ));
    }
    if !r.pruned.is_empty() {
        s.push_str(&format!("; pruned {}", r.pruned.join(", ")));
    }
    s
}

/// Runs `strata backup …`.
pub(crate) async fn run(strata: &Strata, args: BackupArgs) -> Result<ExitCode> {
    let mut manager = BackupManager::new(strata)?;
    if std::io::stderr().is_terminal() {
        manager = manager.with_progress(StepBars::default());
    }
    if let Some(source) = args.source {
        let mut settings = manager.settings().clone();
        settings.source = Some(source);
        manager = manager.with_settings(settings);
    }
    match args.what {
        BackupCommand::Now => {
            let r = manager.backup_now().await?;
            println!("{}", describe(&r));
        }
        BackupCommand::List => {
            let list = manager.list().await?;
            let mut t = comfy_table::Table::new();
            t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header(["timestamp", "kind", "object", "size", "manifest"]);
            for b in &list {
                let kind = match &b.object {
                    Some(o) if o.key.contains(".jsonl.") => "logical",
                    Some(_) => "sqlite file",
                    None => "-",
                };
                t.add_row([
                    b.timestamp.clone(),
                    kind.to_string(),
                    b.object
                        .as_ref()
                        .map_or("(missing)".to_string(), |o| o.key.clone()),
                    b.object.as_ref().map_or("-".to_string(), |o| mb(o.size)),
                    if b.manifest_key.is_some() {
                        "yes".to_string()
                    } else {
                        "MISSING".to_string()
                    },
                ]);
            }
            println!("{t}");
            println!(
                "{} backup(s) of `{}` under {}{}/",
                list.len(),
                manager.source(),
                manager.settings().prefix,
                manager.source()
            );
        }
        BackupCommand::Verify {
            restore,
            backup,
            into,
        } => {
            let results = manager.verify().await?;
            let mut bad = 0;
            for v in &results {
                if v.problems.is_empty() {
                    println!("ok    {}", v.timestamp);
                } else {
                    bad += 1;
                    println!("BAD   {}: {}", v.timestamp, v.problems.join("; "));
                }
            }
            println!("{} ok, {bad} bad", results.len() - bad);
            if restore {
                let trial = manager
                    .trial_restore(&Which::parse(&backup), into.as_deref())
                    .await?;
                let held: Vec<String> = trial
                    .items
                    .iter()
                    .map(|(kind, name, rows)| format!("{kind} {name}: {rows}"))
                    .collect();
                if trial.problems.is_empty() {
                    println!(
                        "restored {} into {}: ok ({})",
                        trial.timestamp,
                        trial.into,
                        if held.is_empty() {
                            "empty".to_string()
                        } else {
                            held.join(", ")
                        }
                    );
                } else {
                    println!(
                        "restored {} into {}: BAD: {}",
                        trial.timestamp,
                        trial.into,
                        trial.problems.join("; ")
                    );
                    eprintln!(
                        "error: backup {} does not restore: {}",
                        trial.timestamp,
                        trial.problems.join("; ")
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            if bad > 0 {
                let names: Vec<&str> = results
                    .iter()
                    .filter(|v| !v.problems.is_empty())
                    .map(|v| v.timestamp.as_str())
                    .collect();
                eprintln!("error: {bad} bad backup(s): {}", names.join(", "));
                return Ok(ExitCode::FAILURE);
            }
        }
        BackupCommand::Restore {
            which,
            into: Some(into),
            force,
            ..
        } => {
            let r = manager
                .restore_into(&Which::parse(&which), &into, force)
                .await?;
            let rows: u64 = r.loaded.tables.iter().map(|t| t.read).sum();
            let records: u64 = r.loaded.collections.iter().map(|c| c.read).sum();
            println!(
                "restored logical backup {} ({}) into `{}`: {} table(s), {rows} row(s), {} collection(s), {records} record(s){}; download {:.2} s, load {:.2} s",
                r.manifest.timestamp,
                mb(r.manifest.snapshot_size),
                r.backend,
                r.loaded.tables.len(),
                r.loaded.collections.len(),
                if r.replaced.is_empty() {
                    String::new()
                } else {
                    format!(" (replaced {})", r.replaced.join(", "))
                },
                r.download_secs,
                r.load_secs
            );
        }
        BackupCommand::Restore {
            which, to, force, ..
        } => {
            let r = manager
                .restore(&Which::parse(&which), to.as_deref(), force)
                .await?;
            let check = if r.checked_at_backup {
                "integrity_check ok when the backup was taken, same SHA-256".to_string()
            } else {
                format!("integrity_check ok ({:.2} s)", r.check_secs)
            };
            println!(
                "restored backup {} ({}) to {}{}: {check}, download {:.2} s",
                r.manifest.timestamp,
                mb(r.manifest.snapshot_size),
                r.path.display(),
                if r.replaced {
                    " (replaced the existing file)"
                } else {
                    ""
                },
                r.download_secs,
            );
        }
        BackupCommand::Prune => {
            let pruned = manager.prune().await?;
            if pruned.is_empty() {
                println!("nothing to prune (keep = {})", manager.settings().keep);
            } else {
                println!("pruned {} backup(s): {}", pruned.len(), pruned.join(", "));
            }
            let stale = manager.abort_stale_uploads().await?;
            if !stale.listed {
                println!(
                    "incomplete multipart uploads: not checked (the blob store's plugin cannot list them; \
                     give the bucket a lifecycle rule that aborts them)"
                );
            } else {
                let keys: Vec<&str> = stale.aborted.iter().map(|u| u.key.as_str()).collect();
                println!(
                    "aborted {} incomplete upload(s) left by interrupted backups{}{}",
                    keys.len(),
                    if keys.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", keys.join(", "))
                    },
                    if stale.young > 0 {
                        format!(
                            " ({} younger than stale_upload_age = {:?} left alone)",
                            stale.young,
                            manager.settings().stale_upload_age
                        )
                    } else {
                        String::new()
                    }
                );
            }
        }
        BackupCommand::Schedule => {
            println!(
                "backing up `{}` every {:?} (keep {}); Ctrl-C stops",
                manager.source(),
                manager.settings().interval,
                manager.settings().keep
            );
            // Runs until the process is interrupted (SIGINT's default action).
            manager
                .run_schedule(None, |r| match r {
                    Ok(r) => println!("{}", describe(r)),
                    Err(e) => eprintln!("error: backup failed: {e}"),
                })
                .await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
