//! `strata plugins`, `strata plugins schema NAME` and `strata check`: what
//! is configured, and whether it loads and opens.

use std::{path::Path, process::ExitCode};

use clap::Subcommand;
use strata_host::{
    Error, Plugin, Strata,
    config::PluginSource,
    loader::{library_file_name, resolve, search_dirs},
};

use crate::{error::Result, output::table};

/// `strata plugins` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum PluginsCommand {
    /// Print the JSON Schema of a plugin's config (by backend or plugin name).
    Schema {
        /// A backend name from plugins.toml, or a plugin name.
        name: String,
    },
}

/// `strata plugins`: the backends, their plugins and the roles.
pub(crate) fn plugins(strata: &Strata) -> Result<ExitCode> {
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

/// `strata plugins schema NAME`: a plugin's config JSON Schema, by backend or plugin name.
pub(crate) fn schema(strata: &Strata, name: &str) -> Result<ExitCode> {
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
                }
                .into());
            }
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&plugin.info().config_schema).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `strata check`: the config, then every backend opened and health-checked.
pub(crate) async fn check(strata: &Strata) -> Result<ExitCode> {
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
