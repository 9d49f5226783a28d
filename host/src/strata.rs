//! [`Strata`]: a loaded `plugins.toml` with its backends, opened on first use.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use crate::{
    config::Config,
    error::Result,
    loader::{Backend, Plugin, resolve},
    sql::Sql,
};

/// The entry point for applications: the configuration and its backends.
///
/// Nothing is loaded until asked for: [`Strata::backend`] loads the plugin,
/// validates the backend's config against the plugin's schema and opens it
/// once; later calls share it.
pub struct Strata {
    config: Config,
    opened: tokio::sync::Mutex<BTreeMap<String, Arc<Backend>>>,
}

impl Strata {
    /// Reads `plugins.toml` at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Strata> {
        Ok(Strata::from_config(Config::load(path)?))
    }

    /// Wraps an already parsed config.
    pub fn from_config(config: Config) -> Strata {
        Strata {
            config,
            opened: Default::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Loads (without opening) the plugin of backend `name`.
    pub fn plugin(&self, name: &str) -> Result<Arc<Plugin>> {
        let backend = self.config.backend(name)?;
        Plugin::load(resolve(&self.config, backend)?)
    }

    /// Opens backend `name` (once) and returns it.
    pub async fn backend(&self, name: &str) -> Result<Arc<Backend>> {
        let mut opened = self.opened.lock().await;
        if let Some(b) = opened.get(name) {
            return Ok(b.clone());
        }
        let cfg = self.config.backend(name)?;
        let plugin = Plugin::load(resolve(&self.config, cfg)?)?;
        let backend = Arc::new(Backend::open(name, plugin, &self.config.file, &cfg.config).await?);
        opened.insert(name.to_string(), backend.clone());
        Ok(backend)
    }

    /// The SQL front end of the `sql` role (or of the only backend).
    pub async fn sql(&self) -> Result<Sql> {
        let name = self.config.backend_for_role("sql")?.name.clone();
        self.backend(&name).await?.sql()
    }

    /// The VectorStore front end of the `vectors` role (or of the only backend).
    pub async fn vectors(&self) -> Result<crate::vector::Vectors> {
        let name = self.config.backend_for_role("vectors")?.name.clone();
        self.backend(&name).await?.vectors()
    }

    /// The VectorStore front end of backend `name`.
    pub async fn vectors_backend(&self, name: &str) -> Result<crate::vector::Vectors> {
        self.backend(name).await?.vectors()
    }

    /// The blob-store front end of the `backup` role (or of the only backend).
    pub async fn blobs(&self) -> Result<crate::blob::Blobs> {
        let name = self.config.backend_for_role("backup")?.name.clone();
        self.backend(&name).await?.blobs()
    }

    /// The blob-store front end of backend `name`.
    pub async fn blobs_backend(&self, name: &str) -> Result<crate::blob::Blobs> {
        self.backend(name).await?.blobs()
    }

    /// The SQL front end of backend `name`.
    pub async fn sql_backend(&self, name: &str) -> Result<Sql> {
        self.backend(name).await?.sql()
    }

    /// Closes every opened backend, reporting the first error.
    pub async fn close(&self) -> Result<()> {
        let opened = std::mem::take(&mut *self.opened.lock().await);
        let mut first = None;
        for backend in opened.values() {
            if let Err(e) = backend.close().await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
