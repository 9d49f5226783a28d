//! Finding, loading and opening plugin libraries.
//!
//! Each library is loaded with
//! `lib_header_from_path(path)?.init_root_module::<PluginModRef>()` — not
//! `RootModule::load_from_file`, which caches one module per root-module type
//! per process and would hand the first plugin back for every later one.
//! abi_stable checks, in this order, the library's abi_stable header, the
//! plugin-api version (semver: a `0.y` plugin loads only into a `0.y` host)
//! and the layout of every type reachable from the root module; each failure
//! becomes an [`Error`] naming the path and both sides' versions.
//!
//! Libraries are never unloaded (abi_stable leaks them on purpose: code of a
//! plugin may still be referenced by a vtable). A library named by several
//! backends is loaded once; every `open` returns an independent backend.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use abi_stable::{
    library::{LibraryError, RootModule, lib_header_from_path},
    std_types::RVec,
};
use strata_plugin_api::{
    BackendBox, ErrorKind, ManifestRef, OpenArgs, PluginError, PluginModRef, contracts,
    placeholders::Dialect,
};

use crate::{
    boundary::call,
    config::{BackendConfig, Config, PluginSource},
    error::{Error, Result},
    sql::Sql,
};

/// What a loaded plugin says about itself.
#[derive(Clone, Debug)]
pub struct PluginInfo {
    /// Short name (`sqlite`).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The plugin-api version it was built against, read from the
    /// library's header (what abi_stable checked), not from the manifest.
    pub api_version: String,
    /// One-line description.
    pub description: String,
    /// Contract bit set ([`strata_plugin_api::contracts`]).
    pub contracts: u32,
    /// Capability flags.
    pub capabilities: Vec<String>,
    /// The SQL dialect name, empty without the SQL contract.
    pub dialect: String,
    /// The config JSON Schema.
    pub config_schema: serde_json::Value,
}

impl PluginInfo {
    fn from_manifest(m: ManifestRef, api_version: String) -> PluginInfo {
        PluginInfo {
            name: m.name().to_string(),
            version: m.version().to_string(),
            api_version,
            description: m.description().to_string(),
            contracts: m.contracts(),
            capabilities: m.capabilities().iter().map(|c| c.to_string()).collect(),
            dialect: m.dialect().to_string(),
            config_schema: serde_json::from_str(m.config_schema().as_str())
                .unwrap_or(serde_json::Value::Null),
        }
    }

    /// The contract names (`sql`, `vector`, `blob`).
    pub fn contract_names(&self) -> Vec<&'static str> {
        contracts::names(self.contracts)
    }

    /// Whether the plugin lists `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// A loaded plugin library.
pub struct Plugin {
    path: PathBuf,
    module: PluginModRef,
    info: PluginInfo,
    validator: OnceLock<std::result::Result<jsonschema::Validator, String>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

/// The file name of plugin `name` on this platform (`libstrata_sqlite.so`).
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}strata_{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// The directories searched for plugins by name: the config's `plugin_dirs`,
/// then `STRATA_PLUGIN_PATH` (colon-separated), then the directory of the
/// running executable (and its parent when that is a cargo `deps` directory).
pub fn search_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs = config.plugin_dirs.clone();
    if let Some(paths) = std::env::var_os("STRATA_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.extend(exe_dirs());
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// The running executable's directory, and its parent when that is a cargo
/// `deps` directory (test binaries), where `cargo build` puts plugin libraries.
fn exe_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if exe_dir.ends_with("deps")
            && let Some(parent) = exe_dir.parent()
        {
            dirs.push(parent.to_path_buf());
        }
        dirs.push(exe_dir);
    }
    dirs
}

/// The most recently modified of `paths` that is a file; on equal times the
/// earlier path wins.
fn newest_file(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut best: Option<(std::time::SystemTime, &PathBuf)> = None;
    for path in paths {
        let Some(modified) = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
        else {
            continue;
        };
        if best.is_none_or(|(t, _)| modified > t) {
            best = Some((modified, path));
        }
    }
    best.map(|(_, p)| p.clone())
}

/// The plugin library `name` built next to the running executable (for tests
/// and benchmarks run from the cargo target directory).
///
/// A test binary lives in `target/<profile>/deps/`, where cargo compiles a
/// workspace cdylib for `cargo test`; only `cargo build` copies it up to
/// `target/<profile>/`. Both copies may exist and either may be stale, so
/// the most recently written one wins (ties go to the one nearer the
/// executable).
pub fn built_plugin(name: &str) -> Result<PathBuf> {
    let file = library_file_name(name);
    let searched = exe_dirs();
    let candidates: Vec<PathBuf> = searched.iter().rev().map(|d| d.join(&file)).collect();
    newest_file(&candidates).ok_or(Error::PluginNotFound {
        name: name.to_string(),
        file,
        searched,
    })
}

/// The library path for a backend.
pub fn resolve(config: &Config, backend: &BackendConfig) -> Result<PathBuf> {
    match &backend.source {
        PluginSource::Library(path) => Ok(path.clone()),
        PluginSource::Name(name) => {
            let file = library_file_name(name);
            let searched = search_dirs(config);
            searched
                .iter()
                .map(|d| d.join(&file))
                .find(|p| p.is_file())
                .ok_or(Error::PluginNotFound {
                    name: name.clone(),
                    file,
                    searched,
                })
        }
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Plugin>>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Plugin>>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

impl Plugin {
    /// Loads (once per process) the plugin library at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Arc<Plugin>> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::NotAPlugin {
                path: path.to_path_buf(),
                reason: "no such file".into(),
            });
        }
        let canonical = path.canonicalize().map_err(|e| Error::Io {
            context: format!("resolving {}", path.display()),
            source: e,
        })?;
        let mut loaded = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = loaded.get(&canonical) {
            return Ok(p.clone());
        }
        let header = lib_header_from_path(&canonical).map_err(|e| library_error(path, e, None))?;
        let declared = header.version_strings().version.to_string();
        let module = header
            .init_root_module::<PluginModRef>()
            .map_err(|e| library_error(path, e, Some(&declared)))?;
        let manifest = (module.manifest())();
        let plugin = Arc::new(Plugin {
            path: path.to_path_buf(),
            module,
            info: PluginInfo::from_manifest(manifest, declared),
            validator: OnceLock::new(),
        });
        loaded.insert(canonical, plugin.clone());
        Ok(plugin)
    }

    /// The library path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The manifest.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The SQL dialect, for plugins with the SQL contract.
    pub fn dialect(&self) -> Option<Dialect> {
        Dialect::from_name(&self.info.dialect)
    }

    /// Checks a backend's config against the plugin's JSON Schema. Errors name
    /// the file, the `[backends.NAME.config]` table and the key.
    pub fn validate_config(
        &self,
        file: &Path,
        backend: &str,
        config: &serde_json::Value,
    ) -> Result<()> {
        let table = format!("[backends.{backend}.config]");
        let validator = self.validator.get_or_init(|| {
            jsonschema::validator_for(&self.info.config_schema).map_err(|e| e.to_string())
        });
        let validator = validator.as_ref().map_err(|e| Error::NotAPlugin {
            path: self.path.clone(),
            reason: format!("its config schema is invalid: {e}"),
        })?;
        let problems: Vec<String> = validator
            .iter_errors(config)
            .map(|e| describe_schema_error(&table, &e, &self.info.config_schema))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::config(file, problems.join("; ")))
        }
    }

    /// Opens a backend with an already validated config. `backend` names
    /// it for the plugin's messages; relative paths in the config resolve
    /// against `base_dir` (the directory of the config file).
    pub async fn open_raw(
        &self,
        backend: &str,
        base_dir: Option<&Path>,
        config: &serde_json::Value,
    ) -> Result<BackendBox> {
        let args = OpenArgs {
            config_json: config.to_string().into(),
            backend: backend.into(),
            base_dir: base_dir
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_default()
                .into(),
            host_version: env!("CARGO_PKG_VERSION").into(),
            features: RVec::new(),
            ext: Default::default(),
        };
        call((self.module.open())(args)).await
    }
}

fn describe_schema_error(
    table: &str,
    e: &jsonschema::ValidationError<'_>,
    schema: &serde_json::Value,
) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let path = e.instance_path().to_string();
    let key = path.trim_start_matches('/').replace('/', ".");
    let allowed = || {
        schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    match e.kind() {
        K::AdditionalProperties { unexpected } => {
            let keys = unexpected
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let where_ = if key.is_empty() {
                table.to_string()
            } else {
                format!("{table} key `{key}`")
            };
            format!("{where_}: unknown key {keys} (allowed: {})", allowed())
        }
        K::Required { property } => {
            format!(
                "{table}: missing required key `{}`",
                property.as_str().unwrap_or(&property.to_string())
            )
        }
        // The value of a secret key is not quoted (URL passwords in other
        // values are hidden by `Error::config`).
        _ if crate::redact::is_secret_key(&key) => {
            let value = e.instance().to_string();
            format!(
                "{table} key `{key}`: {}",
                e.to_string().replace(&value, "(value hidden)")
            )
        }
        _ => format!("{table} key `{key}`: {e}"),
    }
}

fn library_error(path: &Path, e: LibraryError, declared: Option<&str>) -> Error {
    let path = path.to_path_buf();
    match e {
        LibraryError::OpenError { err, .. } => Error::NotAPlugin {
            path,
            reason: format!("cannot load it as a shared library: {err}"),
        },
        LibraryError::GetSymbolError { symbol, .. } => Error::NotAPlugin {
            path,
            reason: format!(
                "it exports no strata root module (symbol `{}` is missing); is it built with #[export_root_module]?",
                String::from_utf8_lossy(&symbol)
            ),
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => Error::IncompatibleApi {
            path,
            expected: expected_version.to_string(),
            found: actual_version.to_string(),
        },
        LibraryError::ParseVersionError(v) => Error::NotAPlugin {
            path,
            reason: format!("its plugin-api version cannot be parsed: {v}"),
        },
        LibraryError::InvalidAbiHeader(h) => Error::IncompatibleApi {
            path,
            expected: format!(
                "abi_stable {}",
                <PluginModRef as RootModule>::VERSION_STRINGS
            ),
            found: format!("an abi_stable header {h:?}"),
        },
        LibraryError::AbiInstability(detail) => Error::AbiMismatch {
            path,
            detail: format!(
                "the plugin declares strata-plugin-api {}, this host speaks {}, but their types differ: {} (rebuild the plugin against strata-plugin-api {})",
                declared.unwrap_or("?"),
                strata_plugin_api::API_VERSION,
                layout_cause(&detail),
                strata_plugin_api::API_VERSION,
            ),
        },
        other => Error::NotAPlugin {
            path,
            reason: other.to_string().trim().replace('\n', " "),
        },
    }
}

/// The cause of a layout mismatch in one line: each mismatching type and
/// what differs ("in `Manifest`: too many fields (expected 8, found 9)").
///
/// abi_stable reports a mismatch as text only (the error is formatted
/// before it leaves the checker), some 270 lines of layouts per mismatch
/// with the cause at the end of each block; this picks out the causes.
fn layout_cause(detail: &abi_stable::std_types::RBoxError) -> String {
    layout_cause_in(&detail.to_string())
}

fn layout_cause_in(report: &str) -> String {
    let lines: Vec<&str> = report.lines().collect();
    let value_after = |i: usize, label: &str| {
        lines
            .get(i + 1)
            .filter(|l| l.trim() == label)
            .and_then(|_| lines.get(i + 2))
            .map(|v| v.trim().to_string())
    };
    let mut causes: Vec<String> = Vec::new();
    let mut current_type = String::from("the root module");
    let mut in_errors = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if let Some(n) = t.strip_suffix(" error(s)inside:") {
            in_errors = n != "0";
        } else if t.starts_with("Layout of expected type") {
            in_errors = false;
        } else if let Some(ty) = t.strip_prefix("type:")
            && in_errors
        {
            current_type = ty.to_string();
        } else if let Some(msg) = t.strip_prefix("Error:") {
            let expected = value_after(i, "Expected:");
            let found = expected.as_ref().and_then(|_| value_after(i + 2, "Found:"));
            let cause = match (expected, found) {
                (Some(e), Some(f)) => {
                    format!("in `{current_type}`: {msg} (expected {e}, found {f})")
                }
                _ => format!("in `{current_type}`: {msg}"),
            };
            if !causes.contains(&cause) {
                causes.push(cause);
            }
        }
    }
    if causes.is_empty() {
        let first: Vec<&str> = lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .take(3)
            .collect();
        return first.join(" ");
    }
    if causes.iter().all(|c| c.contains("package version")) {
        return format!("only the versions differ: {}", causes.join("; "));
    }
    causes.join("; ")
}

/// An opened backend.
pub struct Backend {
    name: String,
    plugin: Arc<Plugin>,
    inner: BackendBox,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("plugin", &self.plugin.info.name)
            .finish()
    }
}

impl Backend {
    /// Validates `config` against the plugin's schema and opens it.
    pub async fn open(
        name: &str,
        plugin: Arc<Plugin>,
        config_file: &Path,
        config: &serde_json::Value,
    ) -> Result<Backend> {
        plugin.validate_config(config_file, name, config)?;
        // Absolute, so that a plugin resolving a relative path later (after
        // the application changed its working directory) still lands
        // beside plugins.toml.
        let base_dir = config_file
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| std::path::absolute(d).ok());
        let inner = plugin
            .open_raw(name, base_dir.as_deref(), config)
            .await
            .map_err(|e| match e {
                Error::Plugin(pe) => {
                    let mut e = PluginError::new(
                        pe.kind(),
                        format!(
                            "opening backend `{name}` ({}): {}",
                            plugin.info.name,
                            pe.message()
                        ),
                    );
                    if let Some(code) = pe.backend_code() {
                        e = e.with_backend_code(code);
                    }
                    Error::Plugin(e)
                }
                other => other,
            })?;
        Ok(Backend {
            name: name.to_string(),
            plugin,
            inner,
        })
    }

    /// The backend's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin it runs on.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The SQL front end, when the plugin implements the SQL contract.
    pub fn sql(&self) -> Result<Sql> {
        let no_contract = || Error::NoContract {
            backend: self.name.clone(),
            plugin: self.plugin.info.name.clone(),
            contract: "sql",
        };
        if self.plugin.info.contracts & contracts::SQL == 0 {
            return Err(no_contract());
        }
        let dialect = self.plugin.dialect().ok_or_else(|| Error::NotAPlugin {
            path: self.plugin.path.clone(),
            reason: format!("unknown SQL dialect {:?}", self.plugin.info.dialect),
        })?;
        let conn = self
            .inner
            .sql()
            .into_result()
            .map_err(Error::Plugin)?
            .into_option()
            .ok_or_else(no_contract)?;
        // An optional fast path: a plugin serving it with another layout
        // keeps its SQL contract, without the fast path.
        let transaction_bulk = self
            .interface::<strata_plugin_api::sql::SqlTransactionBulkBox>(
                strata_plugin_api::sql::SQL_TRANSACTION_BULK_V1,
            )
            .unwrap_or_else(|e| {
                tracing::warn!(backend = %self.name, "{e}; transactions take no bulk writes or reads");
                None
            });
        Ok(Sql::new(
            conn,
            dialect,
            self.name.clone(),
            self.has_capability(strata_plugin_api::capabilities::SQL_AS_USER),
        )
        .with_transaction_bulk(
            transaction_bulk,
            self.has_capability(strata_plugin_api::capabilities::SQL_BULK_READ),
        ))
    }

    /// The VectorStore front end, when the plugin implements the vector contract.
    pub fn vectors(&self) -> Result<crate::vector::Vectors> {
        let no_contract = || Error::NoContract {
            backend: self.name.clone(),
            plugin: self.plugin.info.name.clone(),
            contract: "vector",
        };
        if self.plugin.info.contracts & contracts::VECTOR == 0 {
            return Err(no_contract());
        }
        let store = self
            .inner
            .vectors()
            .into_result()
            .map_err(Error::Plugin)?
            .into_option()
            .ok_or_else(no_contract)?;
        Ok(crate::vector::Vectors::new(
            store,
            self.name.clone(),
            self.has_capability(strata_plugin_api::capabilities::VECTOR_AS_USER),
        ))
    }

    /// The blob-store front end, when the plugin implements the blob contract.
    ///
    /// `Backend::blobs` was appended to the ABI after the first release, so
    /// it is called only when the manifest lists the blob contract: an older
    /// plugin's vtable has no such entry.
    pub fn blobs(&self) -> Result<crate::blob::Blobs> {
        let no_contract = || Error::NoContract {
            backend: self.name.clone(),
            plugin: self.plugin.info.name.clone(),
            contract: "blob",
        };
        if self.plugin.info.contracts & contracts::BLOB == 0 {
            return Err(no_contract());
        }
        let store = self
            .inner
            .blobs()
            .into_result()
            .map_err(Error::Plugin)?
            .into_option()
            .ok_or_else(no_contract)?;
        let uploads = self.interface::<strata_plugin_api::blob::BlobUploadsBox>(
            strata_plugin_api::blob::BLOB_UPLOADS_V1,
        )?;
        Ok(crate::blob::Blobs::new(store, self.name.clone(), uploads))
    }

    /// This backend's capability flags: what the opened backend reports
    /// (it may depend on the config or on what the server supports), a
    /// subset of the plugin's manifest.
    pub fn capabilities(&self) -> Result<Vec<String>> {
        Ok(self
            .inner
            .capabilities()
            .into_result()
            .map_err(Error::Plugin)?
            .into_iter()
            .map(|c| c.into_string())
            .collect())
    }

    /// The interface `name` as the `T` this host knows it by, when the
    /// backend implements it (see `strata_plugin_api::interface`): `None`
    /// from a plugin built before the interface existed. A plugin that
    /// serves something else under the name is an `Unsupported` error
    /// naming the layout difference.
    pub fn interface<T: abi_stable::StableAbi + 'static>(&self, name: &str) -> Result<Option<T>> {
        let Some(found) = self
            .inner
            .interface(name.into())
            .into_result()
            .map_err(Error::Plugin)?
            .into_option()
        else {
            return Ok(None);
        };
        found.downcast::<T>().map(Some).map_err(|report| {
            Error::Plugin(PluginError::new(
                ErrorKind::Unsupported,
                format!(
                    "backend `{}` ({}) serves interface {name:?} with another layout: {}",
                    self.name,
                    self.plugin.info.name,
                    layout_cause_in(&report)
                ),
            ))
        })
    }

    /// Whether this backend has `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities()
            .is_ok_and(|caps| caps.iter().any(|c| c == capability))
    }

    /// A liveness check; returns the plugin's description of what it checked.
    pub async fn health(&self) -> Result<String> {
        call(self.inner.health()).await.map(|s| s.to_string())
    }

    /// Closes every handle of the backend.
    pub async fn close(&self) -> Result<()> {
        call(self.inner.close()).await
    }
}

#[cfg(test)]
mod tests {
    use super::{layout_cause_in, newest_file};

    #[test]
    fn the_newest_built_copy_of_a_plugin_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (deps, up, missing) = (
            dir.path().join("deps.so"),
            dir.path().join("up.so"),
            dir.path().join("missing.so"),
        );
        std::fs::write(&deps, b"new").unwrap();
        std::fs::write(&up, b"old").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&up)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let paths = [missing.clone(), up.clone(), deps.clone()];
        assert_eq!(newest_file(&paths), Some(deps.clone()));
        // A directory of that name is not a plugin; nothing found is None.
        assert_eq!(newest_file(&[dir.path().to_path_buf(), missing]), None);
        // Equal times: the earlier path wins.
        std::fs::File::options()
            .write(true)
            .open(&deps)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(newest_file(&[deps.clone(), up.clone()]), Some(deps));
        assert_eq!(newest_file(std::slice::from_ref(&up)), Some(up));
    }

    #[test]
    fn a_layout_report_is_cut_to_its_causes() {
        // The shape of abi_stable's report: layouts, then per mismatching
        // type a block naming it and ending with the errors.
        let report = "Compared <this>:\n    --- Type Layout ---\n    type:PrefixRef<'a, PluginMod>\n\
            0 error(s).\n\n1 error(s)inside:\n    <other>\n\n    field_name:0\n    type:PluginMod\n    size:16 align:8\n\n\
            Layout of expected type:\n    --- Type Layout ---\n    type:PluginMod\n\n\n\
            Error:too many fields\nExpected:\n    3\nFound:\n    2\n0 error(s)inside:\n    <other>\n\n\
            1 error(s)inside:\n    <other>\n    type:PluginMod\n    field_name:manifest\n    type:Manifest\n\
            Layout of expected type:\n    type:Manifest\n\nError:incompatible type size\nExpected:\n    232\nFound:\n    264\n";
        assert_eq!(
            layout_cause_in(report),
            "in `PluginMod`: too many fields (expected 3, found 2); \
             in `Manifest`: incompatible type size (expected 232, found 264)"
        );
        assert_eq!(layout_cause_in("odd\nreport"), "odd report");
    }
}
