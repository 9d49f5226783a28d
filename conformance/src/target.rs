//! The plugin under test and how to open it.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use strata_host::{Backend, Error, Plugin};

use crate::expect::{Expectations, ExpectationsError};

/// The table of a conformance config file that is not the plugin's:
/// expectations ([`Expectations`]).
pub const CONFORMANCE_TABLE: &str = "conformance";

/// Why a conformance config file cannot be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read the config file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a `${VAR}` is unset.
    #[error("{0}")]
    Parse(String),
    /// Its `[conformance]` table is wrong.
    #[error(transparent)]
    Expectations(#[from] ExpectationsError),
}

/// A conformance config file: the plugin's config table, and the
/// expectations its `[conformance]` table declares (the table is not part
/// of the plugin's config, and never reaches the plugin).
#[derive(Clone, Debug)]
pub struct ConformanceConfig {
    /// The plugin's config.
    pub plugin: serde_json::Value,
    /// What the plugin is expected to skip and fail.
    pub expectations: Expectations,
}

impl ConformanceConfig {
    /// Reads a conformance config file (TOML, `${VAR}` interpolated).
    pub fn read(path: &Path) -> Result<ConformanceConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut plugin = strata_host::Config::plugin_config_from_toml(path, &text)
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        let table = plugin
            .as_object_mut()
            .and_then(|m| m.remove(CONFORMANCE_TABLE));
        let expectations = match table {
            Some(t) => Expectations::from_json(
                &t,
                &format!("the [{CONFORMANCE_TABLE}] table of {}", path.display()),
            )?,
            None => Expectations::none(),
        };
        Ok(ConformanceConfig {
            plugin,
            expectations,
        })
    }
}

/// The plugin under test: a loaded library and the config every backend of
/// the run is opened with.
pub struct Target {
    plugin: Arc<Plugin>,
    config: serde_json::Value,
    config_file: PathBuf,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("plugin", &self.plugin.info().name)
            .field("config_file", &self.config_file)
            .finish()
    }
}

impl Target {
    /// Loads the plugin library and remembers its config (checked against
    /// the plugin's schema on every open). Relative paths in the config
    /// resolve against the directory of `config_file`.
    pub fn load(
        plugin: impl AsRef<Path>,
        config: serde_json::Value,
        config_file: impl Into<PathBuf>,
    ) -> Result<Target, Error> {
        Ok(Target::new(Plugin::load(plugin)?, config, config_file))
    }

    /// A target for an already loaded plugin.
    pub fn new(
        plugin: Arc<Plugin>,
        config: serde_json::Value,
        config_file: impl Into<PathBuf>,
    ) -> Target {
        Target {
            plugin,
            config,
            config_file: config_file.into(),
        }
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The config backends are opened with.
    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }

    /// Opens a fresh, independent backend from the config.
    pub async fn open(&self) -> Result<Backend, Error> {
        Backend::open(
            "conformance",
            self.plugin.clone(),
            &self.config_file,
            &self.config,
        )
        .await
    }
}
