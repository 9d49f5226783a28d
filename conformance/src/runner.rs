//! Running cases and reporting them.

use std::{
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use strata_host::{Backend, Error, ErrorKind, Plugin, Sql};

/// A contract suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// The SQL contract.
    Sql,
    /// The vector-store contract.
    Vector,
    /// The blob-store contract.
    Blob,
}

impl Suite {
    /// `sql`, `vector` or `blob`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Sql => "sql",
            Suite::Vector => "vector",
            Suite::Blob => "blob",
        }
    }

    fn contract_bit(self) -> u32 {
        match self {
            Suite::Sql => strata_plugin_api::contracts::SQL,
            Suite::Vector => strata_plugin_api::contracts::VECTOR,
            Suite::Blob => strata_plugin_api::contracts::BLOB,
        }
    }
}

/// Why a case failed (or, with [`Failure::skip`], why it could not apply).
#[derive(Debug, Clone)]
pub struct Failure(pub String, bool);

impl Failure {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure(message.into(), false)
    }

    /// Not a failure: the case found at run time that it does not apply to
    /// this backend's configuration (e.g. persistence on an in-memory
    /// database). Reported as a skip with the reason.
    pub fn skip(reason: impl Into<String>) -> Failure {
        Failure(reason.into(), true)
    }

    /// Whether this is a skip.
    pub fn is_skip(&self) -> bool {
        self.1
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(format!("unexpected error: {e}"))
    }
}

/// What a case returns.
pub type CaseResult = Result<(), Failure>;

type CaseFn = fn(Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One conformance case.
#[derive(Clone)]
pub struct Case {
    /// The suite it belongs to.
    pub suite: Suite,
    /// A stable snake_case name.
    pub name: &'static str,
    /// Capabilities the plugin must list for the case to run.
    pub requires: &'static [&'static str],
    /// The case body.
    pub run: CaseFn,
}

/// The plugin under test and how to open it.
pub struct Target {
    plugin: Arc<Plugin>,
    config: serde_json::Value,
    config_file: PathBuf,
}

impl Target {
    /// Loads the plugin library and remembers its config (checked against
    /// the plugin's schema on every open).
    pub fn load(
        plugin: impl AsRef<Path>,
        config: serde_json::Value,
        config_file: impl Into<PathBuf>,
    ) -> Result<Target, Error> {
        Ok(Target {
            plugin: Plugin::load(plugin)?,
            config,
            config_file: config_file.into(),
        })
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Opens a fresh, independent backend.
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

/// What a case gets: the target, a unique name prefix and its cleanup list.
#[derive(Clone)]
pub struct Ctx {
    target: Arc<Target>,
    prefix: String,
    tables: Arc<Mutex<Vec<String>>>,
    collections: Arc<Mutex<Vec<String>>>,
    key_prefixes: Arc<Mutex<Vec<String>>>,
    backends: Arc<Mutex<Vec<Arc<Backend>>>>,
    capabilities: Arc<Vec<String>>,
}

impl Ctx {
    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A table name unique to this case run (and remembered for cleanup).
    pub fn table(&self, name: &str) -> String {
        let t = format!("{}_{name}", self.prefix);
        self.tables.lock().unwrap().push(t.clone());
        t
    }

    /// A collection name unique to this case run (dropped after the case).
    pub fn collection(&self, name: &str) -> String {
        let c = format!("{}_{name}", self.prefix);
        self.collections.lock().unwrap().push(c.clone());
        c
    }

    /// A blob key prefix unique to this case run (`strata_t…/`); every
    /// object under it is deleted after the case.
    pub fn key_prefix(&self) -> String {
        let p = format!("{}/", self.prefix);
        self.key_prefixes.lock().unwrap().push(p.clone());
        p
    }

    /// The blob-store front end of a fresh backend.
    pub async fn blobs(&self) -> Result<strata_host::Blobs, Failure> {
        Ok(self.backend().await?.blobs()?)
    }

    /// The VectorStore front end of a fresh backend.
    pub async fn vectors(&self) -> Result<strata_host::Vectors, Failure> {
        Ok(self.backend().await?.vectors()?)
    }

    /// Opens a fresh backend, closed after the case.
    pub async fn backend(&self) -> Result<Arc<Backend>, Failure> {
        let b = Arc::new(self.target.open().await?);
        self.backends.lock().unwrap().push(b.clone());
        Ok(b)
    }

    /// The SQL front end of a fresh backend.
    pub async fn sql(&self) -> Result<Sql, Failure> {
        Ok(self.backend().await?.sql()?)
    }

    /// Whether the backend under test has `capability` (as an opened
    /// backend reports it: the config or the server may narrow what the
    /// plugin's manifest lists).
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Drops what the case made and closes its backends; returns the close
    /// errors (a backend that cannot close says the case left a
    /// transaction or stream open).
    async fn cleanup(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let tables = std::mem::take(&mut *self.tables.lock().unwrap());
        let collections = std::mem::take(&mut *self.collections.lock().unwrap());
        if (!tables.is_empty() || !collections.is_empty())
            && let Ok(backend) = self.target.open().await
        {
            if let Ok(sql) = backend.sql() {
                for t in tables.iter().rev() {
                    let _ = sql.exec(&format!("DROP TABLE IF EXISTS {t}")).await;
                }
            }
            if let Ok(v) = backend.vectors() {
                for c in &collections {
                    let _ = v.drop_collection(c).await;
                }
            }
            if let Err(e) = backend.close().await {
                problems.push(format!("closing the backend: {e}"));
            }
        }
        let key_prefixes = std::mem::take(&mut *self.key_prefixes.lock().unwrap());
        if !key_prefixes.is_empty()
            && let Ok(backend) = self.target.open().await
        {
            if let Ok(blobs) = backend.blobs() {
                for p in &key_prefixes {
                    if let Ok(objects) = blobs.list(p).await {
                        for o in objects {
                            let _ = blobs.delete(&o.key).await;
                        }
                    }
                }
            }
            if let Err(e) = backend.close().await {
                problems.push(format!("closing the backend: {e}"));
            }
        }
        let backends = std::mem::take(&mut *self.backends.lock().unwrap());
        for b in backends {
            if let Err(e) = b.close().await {
                problems.push(format!("closing a backend the case opened: {e}"));
            }
        }
        problems
    }
}

/// Expects `result` to be an error of `kind`.
pub fn expect_kind<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    what: &str,
) -> CaseResult {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "{what}: expected a `{kind}` error, got `{}`: {e}",
            e.kind()
        ))),
        Ok(v) => Err(Failure::new(format!(
            "{what}: expected a `{kind}` error, got Ok({v:?})"
        ))),
    }
}

/// How one case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed, with the reason.
    Failed(String),
    /// It did not run: the plugin lacks this capability or contract.
    Skipped(String),
}

/// One case's result.
#[derive(Clone, Debug)]
pub struct CaseOutcome {
    /// `suite::name`.
    pub id: String,
    /// The outcome.
    pub outcome: Outcome,
    /// How long it ran.
    pub duration: Duration,
}

/// All results of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Results in run order.
    pub cases: Vec<CaseOutcome>,
}

impl Report {
    /// Number passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Passed)
            .count()
    }
    /// Number failed.
    pub fn failed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
            .count()
    }
    /// Number skipped.
    pub fn skipped(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
            .count()
    }
    /// The closing line: `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }

    /// JUnit XML for CI systems.
    pub fn junit(&self, suite_name: &str) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            esc(suite_name),
            self.cases.len(),
            self.failed(),
            self.skipped()
        ));
        for c in &self.cases {
            let (class, name) = c.id.split_once("::").unwrap_or(("", &c.id));
            out.push_str(&format!(
                "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                esc(class),
                esc(name),
                c.duration.as_secs_f64()
            ));
            match &c.outcome {
                Outcome::Passed => out.push_str("/>\n"),
                Outcome::Failed(m) => out.push_str(&format!(
                    "><failure message=\"{}\">{}</failure></testcase>\n",
                    esc(m.lines().next().unwrap_or("")),
                    esc(m)
                )),
                Outcome::Skipped(m) => {
                    out.push_str(&format!("><skipped message=\"{}\"/></testcase>\n", esc(m)))
                }
            }
        }
        out.push_str("</testsuite>\n");
        out
    }
}

/// Every case of `suites`, in order.
pub fn cases(suites: &[Suite]) -> Vec<Case> {
    let mut all = Vec::new();
    for s in suites {
        match s {
            Suite::Sql => all.extend(crate::sql::cases()),
            Suite::Vector => all.extend(crate::vector::cases()),
            Suite::Blob => all.extend(crate::blob::cases()),
        }
    }
    all
}

/// Runs the cases of `suites` whose id contains `filter`, calling `on_case`
/// after each (the binary prints a line there).
pub async fn run(
    target: Arc<Target>,
    suites: &[Suite],
    filter: Option<&str>,
    case_timeout: Duration,
    mut on_case: impl FnMut(&CaseOutcome),
) -> Report {
    let mut report = Report::default();
    let info = target.plugin.info().clone();
    // What an opened backend reports; the manifest's list when none opens
    // (every case then fails on opening, which says why).
    let capabilities = Arc::new(match target.open().await {
        Ok(backend) => {
            let caps = backend
                .capabilities()
                .unwrap_or_else(|_| info.capabilities.clone());
            let _ = backend.close().await;
            caps
        }
        Err(_) => info.capabilities.clone(),
    });
    for case in cases(suites) {
        let id = format!("{}::{}", case.suite.name(), case.name);
        if filter.is_some_and(|f| !id.contains(f)) {
            continue;
        }
        let start = Instant::now();
        let outcome = if info.contracts & case.suite.contract_bit() == 0 {
            Outcome::Skipped(format!(
                "plugin does not implement the {} contract",
                case.suite.name()
            ))
        } else if let Some(missing) = case
            .requires
            .iter()
            .find(|c| !capabilities.iter().any(|have| have == *c))
        {
            Outcome::Skipped(format!("missing capability {missing}"))
        } else {
            let ctx = Ctx {
                target: target.clone(),
                prefix: format!("strata_t{:08x}", rand::random::<u32>()),
                tables: Default::default(),
                collections: Default::default(),
                key_prefixes: Default::default(),
                backends: Default::default(),
                capabilities: capabilities.clone(),
            };
            let fut = (case.run)(ctx.clone());
            let result =
                tokio::spawn(async move { tokio::time::timeout(case_timeout, fut).await }).await;
            let outcome = match result {
                Ok(Ok(Ok(()))) => Outcome::Passed,
                Ok(Ok(Err(f))) if f.is_skip() => Outcome::Skipped(f.0),
                Ok(Ok(Err(f))) => Outcome::Failed(f.0),
                Ok(Err(_)) => Outcome::Failed(format!("timed out after {case_timeout:?}")),
                Err(join) => Outcome::Failed(format!("the case panicked: {join}")),
            };
            // Cleanup closes the case's backends, which waits for anything
            // the case left holding a connection (a transaction, a task it
            // spawned): bounded, so one bad case cannot stall the suite.
            let problem = match tokio::time::timeout(case_timeout, ctx.cleanup()).await {
                Ok(problems) if problems.is_empty() => None,
                Ok(problems) => Some(format!("cleanup: {}", problems.join("; "))),
                Err(_) => Some(format!(
                    "cleanup (dropping the case's tables, collections and objects, closing its backends) did not finish within {case_timeout:?}: the case left a transaction, stream or task holding a connection"
                )),
            };
            match (problem, outcome) {
                (None, outcome) => outcome,
                (Some(p), Outcome::Failed(f)) => Outcome::Failed(format!("{f}; then {p}")),
                (Some(p), _) => Outcome::Failed(p),
            }
        };
        let done = CaseOutcome {
            id,
            outcome,
            duration: start.elapsed(),
        };
        on_case(&done);
        report.cases.push(done);
    }
    report
}
