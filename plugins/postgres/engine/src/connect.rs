//! Opening and closing a backend's connection pool, and what `open` learns
//! about the server on the way (whether pgvector can serve the vector
//! contract).

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    ConnectOptions, PgPool, Row,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use strata_plugin::{ErrorKind, OpenContext, PluginError, PluginResult};

use crate::{
    config::{PostgresConfig, valid_identifier},
    db::LocalSettings,
    error,
};

/// Connects the pool `cfg` describes to `url` (within `connect_timeout_ms`)
/// and creates the backend's schema when it is missing. Returns the pool
/// and the session settings: `SET` on every new connection, unless
/// `pooler_safe`, when nothing is set at connect and the caller applies
/// them per transaction ([`crate::db`]); sqlx's statement cache is off then
/// (no named statements).
pub(crate) async fn connect(
    cfg: &PostgresConfig,
    ctx: &OpenContext,
    url: &str,
    pooler_safe: bool,
) -> PluginResult<(PgPool, LocalSettings)> {
    if let Some(s) = &cfg.schema
        && !valid_identifier(s)
    {
        return Err(PluginError::new(
            ErrorKind::InvalidConfig,
            format!(
                "schema {s:?} is not a valid name: use letters, digits and `_`, starting with a letter or `_`, at most 63"
            ),
        ));
    }
    // sqlx reads any URL (a `mysql://` one connects to its host and port);
    // a URL of another database is a configuration mistake.
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    if !matches!(scheme, "postgres" | "postgresql") {
        return Err(PluginError::new(
            ErrorKind::InvalidConfig,
            format!(
                "url must be a postgres:// or postgresql:// URL, not {}",
                if scheme.is_empty() {
                    "one without a scheme".to_string()
                } else {
                    format!("a {scheme}:// one")
                }
            ),
        ));
    }
    let mut opts = PgConnectOptions::from_str(url).map_err(|e| {
        PluginError::new(
            ErrorKind::InvalidConfig,
            format!(
                "url is not a valid postgres URL: {}",
                redact(&e.to_string(), url)
            ),
        )
    })?;
    opts = opts.application_name(&cfg.application_name);
    if pooler_safe {
        opts = opts.statement_cache_capacity(0);
    }
    if let Some(mode) = cfg.ssl_mode {
        opts = opts.ssl_mode(mode.sqlx());
    }
    if let Some(ca) = &cfg.ssl_root_cert {
        // Relative to the directory of `plugins.toml` when the host says
        // which it is; otherwise to the working directory.
        let ca = ctx.resolve(ca);
        if !ca.is_file() {
            return Err(PluginError::new(
                ErrorKind::InvalidConfig,
                format!("ssl_root_cert {ca:?} is not a readable file"),
            ));
        }
        opts = opts.ssl_root_cert(ca);
    }
    // Session settings, sent as `SET`s when each pooled connection opens
    // rather than as the startup packet's `options` (poolers such as
    // PgBouncer refuse startup parameters they do not know). pgvector
    // reads its two when its library loads in the session (they are
    // placeholders until then): the default ef_search, and iterative
    // index scans, so a filtered query keeps walking the graph until
    // top_k rows pass the filter, in exact distance order.
    let mut settings: LocalSettings = Vec::new();
    if let Some(s) = &cfg.schema {
        settings.push(("search_path".into(), format!("\"{s}\", public")));
    }
    if cfg.statement_timeout_ms > 0 {
        settings.push((
            "statement_timeout".into(),
            cfg.statement_timeout_ms.to_string(),
        ));
    }
    settings.push(("hnsw.ef_search".into(), cfg.hnsw_ef_search.to_string()));
    settings.push(("hnsw.iterative_scan".into(), "strict_order".into()));
    let session: String = settings
        .iter()
        .map(|(k, v)| match k.as_str() {
            "search_path" => format!("SET search_path = {v}; "),
            _ => format!("SET {k} = {v}; "),
        })
        .collect();
    let session = Arc::new(session);
    let timeout = Duration::from_millis(cfg.connect_timeout_ms);
    // One direct connection first: the pool retries a refused or reset
    // connection until its timeout and then reports only `timeout`; this
    // says at once what went wrong (refused port → `connection`, bad
    // password, missing database).
    let cannot = |e: sqlx::Error| {
        let err = error::map(e);
        PluginError::new(
            err.kind(),
            format!("cannot connect: {}", redact(err.message(), url)),
        )
        .with_backend_code(err.backend_code().unwrap_or_default())
    };
    let probe = tokio::time::timeout(timeout, opts.connect())
        .await
        .map_err(|_| {
            PluginError::new(
                ErrorKind::Timeout,
                format!("could not connect within {} ms", cfg.connect_timeout_ms),
            )
        })?
        .map_err(cannot)?;
    let _ = sqlx::Connection::close(probe).await;
    let mut pool_opts = PgPoolOptions::new()
        .max_connections(cfg.pool_size)
        .acquire_timeout(timeout);
    if !pooler_safe {
        pool_opts = pool_opts.after_connect(move |conn, _| {
            let session = session.clone();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(session.as_str().to_owned()))
                    .execute(conn)
                    .await
                    .map(drop)
            })
        });
    } else {
        pool_opts = pool_opts.after_connect(|conn, _| Box::pin(warm_type_cache(conn)));
    }
    let pool = tokio::time::timeout(timeout, pool_opts.connect_with(opts))
        .await
        .map_err(|_| {
            PluginError::new(
                ErrorKind::Timeout,
                format!("could not connect within {} ms", cfg.connect_timeout_ms),
            )
        })?
        .map_err(cannot)?;
    if let Some(s) = &cfg.schema {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{s}\""
        )))
        .execute(&pool)
        .await
        .map_err(error::map)?;
    }
    Ok((pool, settings))
}

/// Pooler-safe mode: teaches a new connection pgvector's type, so no
/// query ever has to look it up between its Parse and its Bind. sqlx looks
/// up a result column's unknown type with a simple query, which destroys
/// the unnamed statement just parsed (a named one would survive, but is
/// not safe behind the pooler): the Bind then fails with SQLSTATE 26000.
/// So the lookup happens here, once per connection: in one transaction
/// (one server connection), a named statement is prepared and deallocated
/// again. Nothing to do while pgvector is not installed; a failure only
/// leaves the cache cold.
async fn warm_type_cache(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    let warmed: Result<(), sqlx::Error> = async {
        let row = sqlx::raw_sql(
            "SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t \
             JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typname = 'vector' LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            let ty: String = row.try_get(0)?;
            conn.prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                format!("SELECT NULL::{ty}"),
            )))
            .await?;
            sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *conn).await?;
        }
        Ok(())
    }
    .await;
    sqlx::raw_sql(if warmed.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether pgvector can serve this backend's vector contract, as far as one
/// catalog query at open can tell: it is installed in a schema on the
/// backend's `search_path`, or it is not installed yet but available on
/// the server and this role could install it on first vector use (a
/// superuser, or a trusted extension and `CREATE` on the database).
///
/// It is a forecast, not a guarantee: the first vector call still checks
/// (and installs) pgvector and answers `unsupported` naming the cause,
/// as it always did. Should the query itself fail (a proxy that hides the
/// catalogs), the answer is yes, the manifest's claim.
pub(crate) async fn pgvector_usable(pool: &PgPool) -> bool {
    // The simple protocol (no prepared statement): safe behind
    // transaction-mode poolers.
    const PROBE: &str = "SELECT CASE \
         WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN \
           (SELECT n.nspname = ANY (current_schemas(false)) FROM pg_extension e \
            JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector') \
         ELSE EXISTS (SELECT 1 FROM pg_available_extension_versions v WHERE v.name = 'vector' \
           AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                OR (v.trusted AND has_database_privilege(current_database(), 'CREATE')))) \
         END";
    match sqlx::raw_sql(PROBE).fetch_one(pool).await {
        Ok(row) => row.try_get::<Option<bool>, _>(0).ok().flatten() != Some(false),
        Err(_) => true,
    }
}

/// Closes `pool`: new work fails at once, and connections still checked out
/// (an open transaction, a stream not read to its end) are waited for as
/// long as a connection is (`connect_timeout_ms`), then `busy`: a close
/// awaited while the caller's own transaction is open would otherwise
/// wait for itself forever. Those connections close when dropped.
pub(crate) async fn close_pool(pool: &PgPool) -> PluginResult<()> {
    let wait = pool.options().get_acquire_timeout();
    if tokio::time::timeout(wait, pool.close()).await.is_ok() {
        return Ok(());
    }
    let held = (pool.size() as usize).saturating_sub(pool.num_idle());
    Err(PluginError::new(
        ErrorKind::Busy,
        format!(
            "close: {held} connection(s) still in use after {} ms (connect_timeout_ms) by an \
             open transaction or a stream not read to its end; the backend takes no new work, \
             and they close when dropped (commit, roll back or drop them before closing)",
            wait.as_millis()
        ),
    ))
}

/// Removes the password of `url` from a message.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_string(),
    }
}
