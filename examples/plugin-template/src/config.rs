//! The plugin's configuration: the `config` table of a `[backends.NAME]`
//! entry in `plugins.toml`, handed to `open` as JSON.
//!
//! The host validates the table against the JSON Schema published in the
//! manifest *before* calling `open`, so a typo (`max_vector = 10`) is an
//! `invalid_config` error naming the file, the table and the key, and no
//! backend is opened. `deny_unknown_fields` is what puts
//! `"additionalProperties": false` in that schema — and it makes `open`
//! refuse the key too when a caller skips the host's check.

use schemars::JsonSchema;
use serde::Deserialize;

// Doc comments become the schema's descriptions (`strata plugins schema
// NAME` prints them): write them for the operator.
/// Configuration of one in-memory backend (`[backends.NAME.config]`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Most records this backend holds, over all its collections. An upsert
    /// that would go past it is refused as a whole (`constraint` error)
    /// instead of growing the process's memory without bound.
    #[serde(default = "default_max_vectors")]
    #[schemars(range(min = 1))]
    pub max_vectors: u64,
    /// Largest dimension a collection may be created with (the contract's
    /// own limit is 65536).
    #[serde(default = "default_max_dimension")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_dimension: u32,
}

fn default_max_vectors() -> u64 {
    1_000_000
}

fn default_max_dimension() -> u32 {
    4_096
}

#[cfg(test)]
mod tests {
    use strata_plugin::{ErrorKind, parse_config};

    use super::TemplateConfig;

    /// A key the plugin does not know is refused, naming the key. (The host
    /// refuses it earlier, from the schema; the kit's parse is the same
    /// check for a caller that skips the host's.)
    #[test]
    fn an_unknown_key_is_named() {
        let err = parse_config::<TemplateConfig>(crate::NAME, r#"{"max_vector": 5}"#)
            .expect_err("parsed a config with an unknown key");
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(err.to_string().contains("max_vector"), "{err}");
    }

    #[test]
    fn defaults_apply() {
        let config = parse_config::<TemplateConfig>(crate::NAME, "{}").unwrap();
        assert_eq!(config.max_vectors, 1_000_000);
    }
}
