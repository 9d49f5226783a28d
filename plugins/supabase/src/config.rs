//! The Supabase plugin's configuration: Supabase's own keys, then every key
//! of the Postgres engine ([`PostgresConfig`]: `schema`, `pool_size`, …),
//! whose `url` here is the pooler's.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use strata_postgres_engine::config::PostgresConfig;

/// Configuration of one Supabase backend (`[backends.NAME.config]`).
#[derive(Clone, Deserialize, JsonSchema)]
pub struct SupabaseConfig {
    /// The Postgres connection through Supabase's pooler in transaction
    /// mode (port 6543), and the engine's other keys. Never printed.
    #[serde(flatten)]
    pub postgres: PostgresConfig,
    /// A direct connection (port 5432, bypassing the pooler) for DDL
    /// (`exec` scripts), HNSW index builds and migrations. Optional:
    /// without it they go through the pooler too. Never printed.
    #[serde(default)]
    pub direct_url: Option<String>,
    /// The project's JWT secret (HS256). When set, a request runs as a user
    /// only with a token that verifies (`as_user_jwt`), never with bare
    /// claims; unset, the application's claims are trusted as given.
    /// Never printed.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// Whether a request may run as `service_role` (which bypasses
    /// row-level security). Default: no, such a request is refused.
    #[serde(default)]
    pub service_role: bool,
    /// The roles a request may run as (its claims' `role`), besides
    /// `service_role` when allowed. Any other role is refused (the
    /// connection's own role could be a superuser).
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    /// The role of claims without a `role` (PostgREST's anonymous role).
    #[serde(default = "default_anon_role")]
    pub anon_role: String,
    /// Keys neither Supabase's nor the engine's (refused at open, by name).
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for SupabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs hold passwords and the JWT secret is one: say whether
        // they are set, never what they are.
        f.debug_struct("SupabaseConfig")
            .field("url", &"<set>")
            .field("direct_url", &self.direct_url.as_ref().map(|_| "<set>"))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("service_role", &self.service_role)
            .field("roles", &self.roles)
            .field("anon_role", &self.anon_role)
            .field("schema", &self.postgres.schema)
            .field("pool_size", &self.postgres.pool_size)
            .finish_non_exhaustive()
    }
}

fn default_roles() -> Vec<String> {
    vec!["anon".into(), "authenticated".into()]
}

fn default_anon_role() -> String {
    "anon".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plugin::parse_config;

    #[test]
    fn engine_keys_and_supabase_keys_in_one_table() {
        let c = parse_config::<SupabaseConfig>(
            "supabase",
            r#"{"url": "postgres://u:pw@h:6543/db", "jwt_secret": "s3cret-jwt", "pool_size": 3, "service_role": true}"#,
        )
        .unwrap();
        assert_eq!(c.postgres.pool_size, 3);
        assert!(c.service_role);
        assert!(c.unknown.is_empty());
        assert_eq!(c.roles, ["anon", "authenticated"]);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret-jwt") && !shown.contains("pw@"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_keys_are_kept_to_be_refused() {
        let c = parse_config::<SupabaseConfig>(
            "supabase",
            r#"{"url": "postgres://h/db", "jwt_secrets": "x"}"#,
        )
        .unwrap();
        assert_eq!(c.unknown.keys().collect::<Vec<_>>(), ["jwt_secrets"]);
    }
}
