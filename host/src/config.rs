//! `plugins.toml`: which plugins to load, how to configure each backend, and
//! which backend serves which role.
//!
//! ```toml
//! plugin_dirs = ["target/release"]          # searched in order, relative to this file
//!
//! [backends.local]
//! plugin = "sqlite"                         # -> libstrata_sqlite.so in plugin_dirs
//! config = { path = "./strata-data/brain.sqlite" }
//!
//! [backends.pg]
//! library = "/opt/strata/libstrata_postgres.so"   # or an explicit library path
//! config = { url = "${DATABASE_URL}", schema = "agent_main" }
//!
//! [roles]
//! sql = "local"
//! vectors = "local"
//! ```
//!
//! Every string may use `${VAR}` (the variable must be set) or
//! `${VAR:-default}`; `$$` is a literal `$`. Unknown keys are errors that name
//! the file, the table and the key. A backend's `config` table is checked
//! against its plugin's JSON Schema when the plugin is loaded
//! ([`crate::loader`]), before it is opened.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};
pub use crate::redact::{is_secret_key, redact_secrets};

/// The parsed configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// Plugin directories, resolved against the file's directory, in search order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Backends by name.
    pub backends: BTreeMap<String, BackendConfig>,
    /// Role assignments.
    pub roles: Roles,
    /// The `[backup]` table (defaults when absent).
    pub backup: BackupSettings,
}

/// Backup compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// zstd (level 3): fast, good ratio. The default.
    #[default]
    Zstd,
    /// gzip (level 6), for tools that only read gzip.
    Gzip,
}

impl Compression {
    /// `zstd` or `gzip`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }

    /// The file extension after `.sqlite` (`zst`, `gz`).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "zst",
            Compression::Gzip => "gz",
        }
    }

    /// Parses `zstd` / `gzip`.
    pub fn from_name(s: &str) -> Option<Compression> {
        match s {
            "zstd" => Some(Compression::Zstd),
            "gzip" => Some(Compression::Gzip),
            _ => None,
        }
    }
}

/// `[backup]`: how backups are taken and kept.
///
/// ```toml
/// [backup]
/// interval = "6h"          # scheduled runs; the first runs at start
/// keep = 28                # newest backups kept by prune
/// compression = "zstd"     # or "gzip"
/// prefix = "backups/"      # key prefix in the backup store
/// source = "local"         # backend to back up (default: the `sql` role)
/// stale_upload_age = "1h"  # open multipart uploads older than this are aborted by prune
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSettings {
    /// Time between scheduled backups (default 24 h).
    pub interval: std::time::Duration,
    /// How many backups prune keeps (default 7, at least 1).
    pub keep: usize,
    /// Compression (default zstd).
    pub compression: Compression,
    /// Key prefix (default `backups/`); keys are `{prefix}{backend}/{timestamp}.{sqlite|jsonl}.{ext}`.
    pub prefix: String,
    /// The backend backed up (default: the `sql` role).
    pub source: Option<String>,
    /// A multipart upload under the backup prefix begun longer ago than
    /// this and still open is one a killed backup left: prune aborts it
    /// (default 1 h; a running backup's own upload is younger).
    pub stale_upload_age: std::time::Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            interval: std::time::Duration::from_secs(24 * 3600),
            keep: 7,
            compression: Compression::Zstd,
            prefix: "backups/".into(),
            source: None,
            stale_upload_age: std::time::Duration::from_secs(3600),
        }
    }
}

/// Parses a duration like `90s`, `15m`, `6h`, `1d`, `1h30m`, `500ms`, or a
/// bare number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "{text:?} is not a duration like 90s, 15m, 6h, 1d or 1h30m"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit = rest
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect::<String>();
        rest = &rest[unit.len()..];
        let unit_ms: u64 = match unit.as_str() {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
                ));
            }
        };
        total += std::time::Duration::from_millis(n.saturating_mul(unit_ms));
    }
    Ok(total)
}

/// One `[backends.NAME]` table.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// The backend's name (the table key).
    pub name: String,
    /// Where its plugin comes from.
    pub source: PluginSource,
    /// The plugin config table, as JSON, after `${VAR}` interpolation.
    pub config: serde_json::Value,
}

/// How a backend names its plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// `plugin = "sqlite"`: `libstrata_sqlite.so` searched in the plugin dirs.
    Name(String),
    /// `library = "path"`: an explicit library file (relative to the config file).
    Library(PathBuf),
}

/// `[roles]`: which backend serves what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// The SQL (StorageAdapter) backend.
    pub sql: Option<String>,
    /// The vector-store backend.
    pub vectors: Option<String>,
    /// The backup target.
    pub backup: Option<String>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path, format!("cannot read the file: {e}")))?;
        Config::parse(path, &text)
    }

    /// Parses `text` as if read from `file` (relative paths resolve against its directory).
    pub fn parse(file: &Path, text: &str) -> Result<Config> {
        Parser {
            file,
            env: &|name| std::env::var(name).ok(),
            interpolated: Default::default(),
        }
        .parse(text)
    }

    /// Parses with a custom environment lookup (for tests and embedding).
    pub fn parse_with_env(
        file: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        Parser {
            file,
            env,
            interpolated: Default::default(),
        }
        .parse(text)
    }

    /// Reads a standalone plugin config table (the conformance runner's
    /// `--config FILE`): the whole file is the table, with `${VAR}` interpolation.
    pub fn plugin_config_from_toml(file: &Path, text: &str) -> Result<serde_json::Value> {
        let parser = Parser {
            file,
            env: &|name| std::env::var(name).ok(),
            interpolated: Default::default(),
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            parser.err(format!("invalid TOML: {}", e.to_string().trim_end()))
        })?;
        parser.to_json(&toml::Value::Table(table), "[config]", "")
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        base_dir(&self.file)
    }

    /// The backend for `role`, or the only backend when there is exactly one
    /// and the role is unassigned.
    pub fn backend_for_role(&self, role: &str) -> Result<&BackendConfig> {
        let assigned = match role {
            "sql" => self.roles.sql.as_ref(),
            "vectors" => self.roles.vectors.as_ref(),
            "backup" => self.roles.backup.as_ref(),
            _ => None,
        };
        match assigned {
            Some(name) => self.backend(name),
            None if self.backends.len() == 1 => {
                Ok(self.backends.values().next().expect("one backend"))
            }
            None => Err(Error::config(
                &self.file,
                format!("[roles]: no `{role}` backend assigned (set `{role} = \"NAME\"`)"),
            )),
        }
    }

    /// The backend called `name`.
    pub fn backend(&self, name: &str) -> Result<&BackendConfig> {
        self.backends
            .get(name)
            .ok_or_else(|| Error::UnknownBackend {
                name: name.to_string(),
                known: self.backends.keys().cloned().collect(),
            })
    }
}

fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

struct Parser<'a> {
    file: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Every value `${VAR}` interpolation changed, with the text it was
    /// written as: an error quoting a value quotes it as written, since a
    /// variable may hold a secret ([`Parser::shown`]).
    interpolated: std::cell::RefCell<Vec<(String, String)>>,
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::config(self.file, message)
    }

    /// `value` quoted for an error: as written in the file when `${VAR}`
    /// interpolation made it (the variables' values are never shown, they
    /// may be secrets), as is otherwise.
    fn shown(&self, value: &str) -> String {
        self.as_written(value)
            .unwrap_or_else(|| format!("{value:?}"))
    }

    /// `value` as written in the file, quoted, when `${VAR}` interpolation made it.
    fn as_written(&self, value: &str) -> Option<String> {
        self.interpolated
            .borrow()
            .iter()
            .rev()
            .find(|(expanded, _)| expanded == value)
            .map(|(_, written)| {
                format!("{written:?} (as written; the values of variables are not shown)")
            })
    }

    fn parse(&self, text: &str) -> Result<Config> {
        let root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            self.err(format!("invalid TOML: {}", e.to_string().trim_end()))
        })?;
        let base = base_dir(self.file);
        let mut plugin_dirs = Vec::new();
        let mut backends = BTreeMap::new();
        let mut roles = Roles::default();
        let mut backup = BackupSettings::default();
        for (key, value) in &root {
            match key.as_str() {
                "plugin_dirs" => {
                    let toml::Value::Array(items) = value else {
                        return Err(self.err(format!(
                            "top level: key `plugin_dirs` must be an array of strings, found {}",
                            type_name(value)
                        )));
                    };
                    for item in items {
                        let toml::Value::String(s) = item else {
                            return Err(self.err(format!(
                                "top level: key `plugin_dirs` must hold strings, found {}",
                                type_name(item)
                            )));
                        };
                        let s = self.interpolate(s, "top level", "plugin_dirs")?;
                        plugin_dirs.push(base.join(s));
                    }
                }
                "backends" => {
                    let toml::Value::Table(table) = value else {
                        return Err(self.err(
                            "top level: `backends` must be a table of [backends.NAME] tables",
                        ));
                    };
                    for (name, b) in table {
                        backends.insert(name.clone(), self.backend(name, b, &base)?);
                    }
                }
                "roles" => roles = self.roles(value)?,
                "backup" => backup = self.backup(value)?,
                other => {
                    return Err(self.err(format!(
                        "top level: unknown key `{other}` (expected plugin_dirs, backends, roles, backup)"
                    )));
                }
            }
        }
        let cfg = Config {
            file: self.file.to_path_buf(),
            plugin_dirs,
            backends,
            roles,
            backup,
        };
        for (role, name) in [
            ("sql", &cfg.roles.sql),
            ("vectors", &cfg.roles.vectors),
            ("backup", &cfg.roles.backup),
            ("source", &cfg.backup.source),
        ] {
            if let Some(name) = name
                && !cfg.backends.contains_key(name)
            {
                return Err(self.err(format!(
                    "[roles]: key `{role}` names backend {}, which is not defined (defined: {})",
                    self.as_written(name).unwrap_or_else(|| format!("`{name}`")),
                    if cfg.backends.is_empty() {
                        "none".to_string()
                    } else {
                        cfg.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                )));
            }
        }
        Ok(cfg)
    }

    fn backend(&self, name: &str, value: &toml::Value, base: &Path) -> Result<BackendConfig> {
        let table_name = format!("[backends.{name}]");
        let toml::Value::Table(table) = value else {
            return Err(self.err(format!(
                "{table_name}: must be a table, found {}",
                type_name(value)
            )));
        };
        let mut plugin = None;
        let mut library = None;
        let mut config = serde_json::Value::Object(Default::default());
        for (key, v) in table {
            match key.as_str() {
                "plugin" | "library" => {
                    let toml::Value::String(s) = v else {
                        return Err(self.err(format!(
                            "{table_name}: key `{key}` must be a string, found {}",
                            type_name(v)
                        )));
                    };
                    let s = self.interpolate(s, &table_name, key)?;
                    if key == "plugin" {
                        if s.is_empty()
                            || !s
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        {
                            return Err(self.err(format!(
                                "{table_name}: key `plugin` must be a plugin name like \"sqlite\" (letters, digits, `_`, `-`), found {}; use `library` for a path",
                                self.shown(&s)
                            )));
                        }
                        plugin = Some(s);
                    } else {
                        library = Some(base.join(s));
                    }
                }
                "config" => {
                    let toml::Value::Table(_) = v else {
                        return Err(self.err(format!(
                            "{table_name}: key `config` must be a table, found {}",
                            type_name(v)
                        )));
                    };
                    config = self.to_json(v, &format!("[backends.{name}.config]"), "")?;
                }
                other => {
                    return Err(self.err(format!(
                        "{table_name}: unknown key `{other}` (expected plugin or library, and config)"
                    )));
                }
            }
        }
        let source = match (plugin, library) {
            (Some(p), None) => PluginSource::Name(p),
            (None, Some(l)) => PluginSource::Library(l),
            (Some(_), Some(_)) => {
                return Err(self.err(format!("{table_name}: set `plugin` or `library`, not both")));
            }
            (None, None) => {
                return Err(self.err(format!(
                    "{table_name}: missing key `plugin` (a plugin name such as \"sqlite\") or `library` (a path)"
                )));
            }
        };
        Ok(BackendConfig {
            name: name.to_string(),
            source,
            config,
        })
    }

    fn backup(&self, value: &toml::Value) -> Result<BackupSettings> {
        const T: &str = "[backup]";
        let toml::Value::Table(table) = value else {
            return Err(self.err(format!("{T}: must be a table, found {}", type_name(value))));
        };
        let mut b = BackupSettings::default();
        for (key, v) in table {
            let string = |v: &toml::Value| match v {
                toml::Value::String(s) => self.interpolate(s, T, key),
                other => Err(self.err(format!(
                    "{T}: key `{key}` must be a string, found {}",
                    type_name(other)
                ))),
            };
            match key.as_str() {
                "interval" => {
                    let d = match v {
                        toml::Value::Integer(i) if *i > 0 => {
                            std::time::Duration::from_secs(*i as u64)
                        }
                        toml::Value::String(raw) => {
                            let text = string(v)?;
                            parse_duration(&text).map_err(|e| {
                                // The parser's message quotes the text (and
                                // parts of it): not a variable's value.
                                let e = if text == *raw {
                                    e
                                } else {
                                    format!("{} is not a duration", self.shown(&text))
                                };
                                self.err(format!("{T}: key `interval`: {e}"))
                            })?
                        }
                        other => {
                            return Err(self.err(format!(
                                "{T}: key `interval` must be a duration like \"6h\" or a positive number of seconds, found {}",
                                type_name(other)
                            )));
                        }
                    };
                    if d.is_zero() {
                        return Err(self.err(format!("{T}: key `interval` must be more than zero")));
                    }
                    b.interval = d;
                }
                "keep" => match v {
                    toml::Value::Integer(i) if *i >= 1 => b.keep = *i as usize,
                    other => {
                        return Err(self.err(format!(
                            "{T}: key `keep` must be an integer of at least 1, found {}",
                            match other {
                                toml::Value::Integer(i) => i.to_string(),
                                o => type_name(o).to_string(),
                            }
                        )));
                    }
                },
                "compression" => {
                    let s = string(v)?;
                    b.compression = Compression::from_name(&s).ok_or_else(|| {
                        self.err(format!(
                            "{T}: key `compression` must be \"zstd\" or \"gzip\", found {}",
                            self.shown(&s)
                        ))
                    })?;
                }
                "prefix" => {
                    let s = string(v)?;
                    if s.starts_with('/') || s.contains("//") {
                        return Err(self.err(format!(
                            "{T}: key `prefix` must not start with `/` or contain `//`, found {}",
                            self.shown(&s)
                        )));
                    }
                    b.prefix = s;
                }
                "source" => b.source = Some(string(v)?),
                "stale_upload_age" => {
                    b.stale_upload_age = match v {
                        toml::Value::Integer(i) if *i >= 0 => {
                            std::time::Duration::from_secs(*i as u64)
                        }
                        toml::Value::String(_) => {
                            let text = string(v)?;
                            parse_duration(&text).map_err(|_| {
                                self.err(format!(
                                    "{T}: key `stale_upload_age`: {} is not a duration like \"1h\"",
                                    self.shown(&text)
                                ))
                            })?
                        }
                        other => {
                            return Err(self.err(format!(
                                "{T}: key `stale_upload_age` must be a duration like \"1h\" or a number of seconds, found {}",
                                type_name(other)
                            )));
                        }
                    }
                }
                other => {
                    return Err(self.err(format!(
                        "{T}: unknown key `{other}` (expected interval, keep, compression, prefix, source, stale_upload_age)"
                    )));
                }
            }
        }
        Ok(b)
    }

    fn roles(&self, value: &toml::Value) -> Result<Roles> {
        let toml::Value::Table(table) = value else {
            return Err(self.err(format!(
                "[roles]: must be a table, found {}",
                type_name(value)
            )));
        };
        let mut roles = Roles::default();
        for (key, v) in table {
            let toml::Value::String(s) = v else {
                return Err(self.err(format!(
                    "[roles]: key `{key}` must be a backend name (a string), found {}",
                    type_name(v)
                )));
            };
            let s = self.interpolate(s, "[roles]", key)?;
            match key.as_str() {
                "sql" => roles.sql = Some(s),
                "vectors" => roles.vectors = Some(s),
                "backup" => roles.backup = Some(s),
                other => {
                    return Err(self.err(format!(
                        "[roles]: unknown key `{other}` (expected sql, vectors, backup)"
                    )));
                }
            }
        }
        Ok(roles)
    }

    fn to_json(&self, v: &toml::Value, table: &str, key: &str) -> Result<serde_json::Value> {
        Ok(match v {
            toml::Value::String(s) => serde_json::Value::String(self.interpolate(s, table, key)?),
            toml::Value::Integer(i) => (*i).into(),
            toml::Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .ok_or_else(|| self.err(format!("{table}: key `{key}` is not a finite number")))?,
            toml::Value::Boolean(b) => (*b).into(),
            toml::Value::Datetime(d) => d.to_string().into(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| self.to_json(i, table, key))
                .collect::<Result<Vec<_>>>()?
                .into(),
            toml::Value::Table(t) => {
                let mut map = serde_json::Map::new();
                for (k, v) in t {
                    let sub_key = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}.{k}")
                    };
                    map.insert(k.clone(), self.to_json(v, table, &sub_key)?);
                }
                serde_json::Value::Object(map)
            }
        })
    }

    /// Expands `${VAR}`, `${VAR:-default}` and `$$`.
    fn interpolate(&self, s: &str, table: &str, key: &str) -> Result<String> {
        if !s.contains('$') {
            return Ok(s.to_string());
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    self.err(format!("{table}: key `{key}`: unterminated `${{` in {s:?}"))
                })?;
                let expr = &body[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.err(format!(
                        "{table}: key `{key}`: `${{{expr}}}` is not a valid variable reference"
                    )));
                }
                match ((self.env)(name), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        return Err(self.err(format!(
                            "{table}: key `{key}`: environment variable {name} is not set"
                        )));
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        if out != s {
            self.interpolated
                .borrow_mut()
                .push((out.clone(), s.to_string()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse_with_env(
            Path::new("/etc/strata/plugins.toml"),
            text,
            &|name| match name {
                "DB_URL" => Some("postgres://u:p@h/db".into()),
                _ => None,
            },
        )
    }

    fn message(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn full_example() {
        let cfg = parse(
            r#"
plugin_dirs = ["plugins", "/abs"]
[backends.local]
plugin = "sqlite"
config = { path = "./x.sqlite", busy_timeout_ms = 100, nested = { a = [1, 2] } }
[backends.pg]
library = "lib/libpg.so"
config = { url = "${DB_URL}", app = "${APP:-strata}", lit = "$$5" }
[roles]
sql = "local"
vectors = "pg"
"#,
        )
        .unwrap();
        assert_eq!(
            cfg.plugin_dirs,
            vec![PathBuf::from("/etc/strata/plugins"), PathBuf::from("/abs")]
        );
        assert_eq!(
            cfg.backends["local"].source,
            PluginSource::Name("sqlite".into())
        );
        assert_eq!(
            cfg.backends["pg"].source,
            PluginSource::Library("/etc/strata/lib/libpg.so".into())
        );
        assert_eq!(cfg.backends["pg"].config["url"], "postgres://u:p@h/db");
        assert_eq!(cfg.backends["pg"].config["app"], "strata");
        assert_eq!(cfg.backends["pg"].config["lit"], "$5");
        assert_eq!(cfg.backends["local"].config["nested"]["a"][1], 2);
        assert_eq!(cfg.backend_for_role("vectors").unwrap().name, "pg");
    }

    #[test]
    fn errors_name_file_table_and_key() {
        let m = message("[backends.local]\nplugin = \"sqlite\"\npth = 1\n");
        assert!(
            m.contains("/etc/strata/plugins.toml")
                && m.contains("[backends.local]")
                && m.contains("`pth`"),
            "{m}"
        );
        let m = message("plugins_dir = []\n");
        assert!(
            m.contains("top level") && m.contains("`plugins_dir`"),
            "{m}"
        );
        let m = message("[backends.local]\nplugin = 3\n");
        assert!(
            m.contains("[backends.local]") && m.contains("`plugin`") && m.contains("integer"),
            "{m}"
        );
        let m = message("[backends.pg]\nplugin = \"postgres\"\nconfig = { url = \"${NOPE}\" }\n");
        assert!(
            m.contains("[backends.pg.config]") && m.contains("`url`") && m.contains("NOPE"),
            "{m}"
        );
        let m = message("[backends.a]\nplugin = \"sqlite\"\n[roles]\nsql = \"b\"\n");
        assert!(m.contains("[roles]") && m.contains("`b`"), "{m}");
        let m = message("[roles]\nsqll = \"a\"\n");
        assert!(m.contains("[roles]") && m.contains("`sqll`"), "{m}");
        let m = message("[backends.a]\nconfig = {}\n");
        assert!(m.contains("missing key `plugin`"), "{m}");
        let m = message("not toml ===");
        assert!(m.contains("invalid TOML"), "{m}");
    }

    #[test]
    fn backup_table() {
        let cfg = parse(
            "[backends.a]\nplugin = \"sqlite\"\n[backends.s3]\nplugin = \"s3\"\n[roles]\nsql = \"a\"\nbackup = \"s3\"\n[backup]\ninterval = \"1h30m\"\nkeep = 3\ncompression = \"gzip\"\nprefix = \"bk/\"\n",
        )
        .unwrap();
        assert_eq!(cfg.backup.interval, std::time::Duration::from_secs(5400));
        assert_eq!(cfg.backup.keep, 3);
        assert_eq!(cfg.backup.compression, Compression::Gzip);
        assert_eq!(cfg.backup.prefix, "bk/");
        assert_eq!(cfg.backend_for_role("backup").unwrap().name, "s3");
        let d = parse("[backends.a]\nplugin = \"sqlite\"\n").unwrap().backup;
        assert_eq!(d, BackupSettings::default());
        for (text, want) in [
            ("[backup]\nkeep = 0\n", "`keep`"),
            ("[backup]\ncompression = \"lz4\"\n", "`compression`"),
            ("[backup]\ninterval = \"5 parsecs\"\n", "`interval`"),
            ("[backup]\nintervall = \"1h\"\n", "`intervall`"),
            ("[backup]\nsource = \"nope\"\n", "`nope`"),
        ] {
            let m = message(text);
            assert!(m.contains("[backup]") || m.contains("source"), "{m}");
            assert!(m.contains(want), "{text}: {m}");
        }
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        assert_eq!(parse_duration("45").unwrap().as_secs(), 45);
    }

    #[test]
    fn single_backend_serves_every_role() {
        let cfg = parse("[backends.only]\nplugin = \"sqlite\"\n").unwrap();
        assert_eq!(cfg.backend_for_role("sql").unwrap().name, "only");
        let cfg = parse("[backends.a]\nplugin = \"sqlite\"\n[backends.b]\nplugin = \"sqlite\"\n")
            .unwrap();
        assert!(
            cfg.backend_for_role("sql")
                .unwrap_err()
                .to_string()
                .contains("no `sql` backend")
        );
    }
}

#[cfg(test)]
mod secrets_in_errors {
    use super::*;

    fn message(text: &str) -> String {
        Config::parse_with_env(Path::new("/etc/strata/plugins.toml"), text, &|name| {
            (name == "PW").then(|| "from-env-pw".to_string())
        })
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn a_toml_syntax_error_on_the_url_line_does_not_echo_the_password() {
        // An unterminated string: toml quotes the line in its error.
        let m = message(
            "[backends.pg]\nplugin = \"postgres\"\nconfig = { url = \"postgres://agent:hunter2@db.example:5432/mem }\n",
        );
        assert!(m.contains("invalid TOML"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("postgres://agent:***@db.example"), "{m}");
        // A bad escape on a line holding a secret key.
        let m = message(
            "[backends.s3]\nplugin = \"s3\"\nconfig = { secret_access_key = \"wJalr\\qXUtn\" }\n",
        );
        assert!(m.contains("invalid TOML"), "{m}");
        assert!(!m.contains("wJalr") && !m.contains("XUtn"), "{m}");
        // A password on a line of its own, in a multi-line table.
        let m = message(
            "[backends.pg]\nplugin = \"postgres\"\n[backends.pg.config]\npassword = 'sw0rdfish\n",
        );
        assert!(!m.contains("sw0rdfish"), "{m}");
    }

    /// Found by tests/config_props.rs: errors quoting a value quoted it
    /// after interpolation, showing the variable's value.
    #[test]
    fn errors_quote_interpolated_values_as_written() {
        for text in [
            "[backends.b]\nplugin = \"x/${PW}\"\n",
            "[backends.b]\nplugin = \"sqlite\"\n[backup]\ncompression = \"${PW}\"\n",
            "[backends.b]\nplugin = \"sqlite\"\n[backup]\nprefix = \"/${PW}\"\n",
            "[backends.b]\nplugin = \"sqlite\"\n[backup]\ninterval = \"1${PW}\"\n",
            "[backends.b]\nplugin = \"sqlite\"\n[backup]\nsource = \"${PW}\"\n",
            "[backends.b]\nplugin = \"sqlite\"\n[roles]\nsql = \"${PW}\"\n",
        ] {
            let m = message(text);
            assert!(!m.contains("from-env") && !m.contains("env-pw"), "{m}");
            assert!(m.contains("${PW}") && m.contains("as written"), "{m}");
        }
    }

    #[test]
    fn other_config_errors_redact_url_passwords() {
        // An unterminated `${` echoes the value it is in.
        let m = message(
            "[backends.pg]\nplugin = \"postgres\"\nconfig = { url = \"postgres://u:s3cr3t@h/db?x=${PW\" }\n",
        );
        assert!(m.contains("unterminated"), "{m}");
        assert!(!m.contains("s3cr3t"), "{m}");
    }
}
