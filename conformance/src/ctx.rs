//! What a case runs with: the target, names unique to the case, the
//! backends it opened, and the cleanup after it.

use std::sync::{Arc, Mutex, MutexGuard};

use strata_host::{Backend, Blobs, Sql, Vectors};

use crate::{failure::Failure, target::Target};

/// A case's context: opens backends on the target, hands out names unique
/// to the case (remembered, and dropped after it), and closes what it opened.
#[derive(Clone)]
pub struct Ctx {
    target: Arc<Target>,
    prefix: String,
    capabilities: Arc<Vec<String>>,
    made: Arc<Mutex<Made>>,
}

/// What a case made, for the cleanup.
#[derive(Default)]
struct Made {
    tables: Vec<String>,
    collections: Vec<String>,
    key_prefixes: Vec<String>,
    backends: Vec<Arc<Backend>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Ctx {
    /// A context for one case run: `capabilities` are what an opened
    /// backend reported.
    pub(crate) fn new(target: Arc<Target>, capabilities: Arc<Vec<String>>) -> Ctx {
        Ctx {
            target,
            prefix: format!("strata_t{:08x}", rand::random::<u32>()),
            capabilities,
            made: Default::default(),
        }
    }

    fn made(&self) -> MutexGuard<'_, Made> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The name prefix unique to this case run (`strata_t1a2b3c4d`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A table name unique to this case run (dropped after the case).
    pub fn table(&self, name: &str) -> String {
        let t = format!("{}_{name}", self.prefix);
        self.made().tables.push(t.clone());
        t
    }

    /// A collection name unique to this case run (dropped after the case).
    pub fn collection(&self, name: &str) -> String {
        let c = format!("{}_{name}", self.prefix);
        self.made().collections.push(c.clone());
        c
    }

    /// Remembers a collection named by the case itself (derived from
    /// [`Ctx::collection`] or [`Ctx::prefix`]) so the cleanup drops it too.
    pub fn collection_named(&self, name: &str) -> String {
        self.made().collections.push(name.to_string());
        name.to_string()
    }

    /// A blob key prefix unique to this case run (`strata_t…/`); every
    /// object under it is deleted after the case.
    pub fn key_prefix(&self) -> String {
        let p = format!("{}/", self.prefix);
        self.made().key_prefixes.push(p.clone());
        p
    }

    /// Opens a fresh backend, closed after the case.
    pub async fn backend(&self) -> Result<Arc<Backend>, Failure> {
        let b = Arc::new(
            self.target
                .open()
                .await
                .map_err(|e| Failure::from(e).context("opening a backend"))?,
        );
        self.made().backends.push(b.clone());
        Ok(b)
    }

    /// Closes every backend this case has opened so far (each close must
    /// succeed: it is where a backend flushes and saves what it keeps),
    /// then opens a new one from the same config — what an application
    /// restarting does.
    pub async fn reopen(&self) -> Result<Arc<Backend>, Failure> {
        let open = std::mem::take(&mut self.made().backends);
        for b in open {
            b.close()
                .await
                .map_err(|e| Failure::from(e).context("closing the backend before reopening"))?;
        }
        self.backend().await
    }

    /// The SQL front end of a fresh backend.
    pub async fn sql(&self) -> Result<Sql, Failure> {
        Ok(self.backend().await?.sql()?)
    }

    /// The vector-store front end of a fresh backend.
    pub async fn vectors(&self) -> Result<Vectors, Failure> {
        Ok(self.backend().await?.vectors()?)
    }

    /// The blob-store front end of a fresh backend.
    pub async fn blobs(&self) -> Result<Blobs, Failure> {
        Ok(self.backend().await?.blobs()?)
    }

    /// Whether the backend under test has `capability` (as an opened
    /// backend reports it: the config or the server may narrow what the
    /// plugin's manifest lists).
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Drops what the case made and closes its backends; returns the
    /// problems (a backend that cannot close says the case left a
    /// transaction or stream open).
    pub(crate) async fn cleanup(&self) -> Vec<String> {
        let made = std::mem::take(&mut *self.made());
        let mut problems = Vec::new();
        // The case's own backends first: a transaction or stream it left
        // open would otherwise block the drops below.
        for b in made.backends {
            if let Err(e) = b.close().await {
                problems.push(format!("closing a backend the case opened: {e}"));
            }
        }
        if !made.tables.is_empty() || !made.collections.is_empty() {
            match self.target.open().await {
                Ok(backend) => {
                    if let Ok(sql) = backend.sql() {
                        for t in made.tables.iter().rev() {
                            let _ = sql.exec(&format!("DROP TABLE IF EXISTS {t}")).await;
                        }
                    }
                    if let Ok(v) = backend.vectors() {
                        for c in &made.collections {
                            let _ = v.drop_collection(c).await;
                        }
                    }
                    if let Err(e) = backend.close().await {
                        problems.push(format!("closing the cleanup backend: {e}"));
                    }
                }
                Err(e) => problems.push(format!("opening a backend to clean up: {e}")),
            }
        }
        if !made.key_prefixes.is_empty() {
            match self.target.open().await {
                Ok(backend) => {
                    if let Ok(blobs) = backend.blobs() {
                        for p in &made.key_prefixes {
                            if let Ok(objects) = blobs.list(p).await {
                                for o in objects {
                                    let _ = blobs.delete(&o.key).await;
                                }
                            }
                        }
                    }
                    if let Err(e) = backend.close().await {
                        problems.push(format!("closing the cleanup backend: {e}"));
                    }
                }
                Err(e) => problems.push(format!("opening a backend to clean up: {e}")),
            }
        }
        problems
    }
}
