//! Writes: upserts (one transaction, `INSERT … SELECT unnest(…) ON
//! CONFLICT DO UPDATE` in chunks) and deletes.

use sqlx::AssertSqlSafe;
use strata_plugin::{
    ErrorKind, PluginError, PluginResult,
    filter::Filter,
    vector::{DeleteRequest, DeleteTarget, VectorRecord, validate_batch},
};

use super::{
    catalog::{IndexState, Meta, Shared},
    codec::{PgVector, arguments},
};
use crate::{
    error::map,
    filter_sql::{Arg, Args, translate},
};

/// Records per `INSERT … SELECT unnest(…)` statement.
const UPSERT_CHUNK: usize = 500;

/// Writes `records` into the collection (all or nothing); then notes whether
/// the collection reached its index threshold.
pub(super) async fn upsert(
    shared: &Shared,
    meta: &Meta,
    records: &[VectorRecord],
) -> PluginResult<u64> {
    validate_batch(records, meta.dimension)?;
    for r in records {
        super::catalog::check_scorable(&r.vector, meta.metric, &format!("record {:?}", r.id))?;
    }
    if records.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "INSERT INTO {} (id, embedding, metadata, text)
         SELECT u.id, u.embedding, u.metadata::jsonb, u.text
         FROM unnest($1::text[], $2::vector[], $3::text[], $4::text[]) AS u(id, embedding, metadata, text)
         ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata, text = EXCLUDED.text",
        meta.table
    );
    // One transaction: an upsert is all or nothing.
    let mut tx = shared.db.begin_with(None, &Vec::new()).await.map_err(map)?;
    for chunk in records.chunks(UPSERT_CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
        let vectors: Vec<PgVector> = chunk.iter().map(|r| PgVector(r.vector.to_vec())).collect();
        let metadata: Vec<&str> = chunk
            .iter()
            .map(|r| {
                if r.metadata_json.is_empty() {
                    "{}"
                } else {
                    r.metadata_json.as_str()
                }
            })
            .collect();
        let texts: Vec<Option<&str>> = chunk.iter().map(|r| r.text.as_deref()).collect();
        sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(&ids)
            .bind(&vectors)
            .bind(&metadata)
            .bind(&texts)
            .execute(shared.db.on(&mut tx))
            .await
            .map_err(map)?;
    }
    tx.commit().await.map_err(map)?;
    if meta.hnsw && shared.index_state(meta) != Some(IndexState::Built) {
        shared.refresh_index_state(meta).await?;
    }
    Ok(records.len() as u64)
}

/// Deletes by ids, filter or all.
pub(super) async fn delete(shared: &Shared, request: DeleteRequest) -> PluginResult<u64> {
    let (by_ids, filter) = match request.target()? {
        DeleteTarget::Ids(_) => (true, Filter::All),
        DeleteTarget::Filter(f) => (false, f),
        DeleteTarget::All => (false, Filter::All),
        // A kind of delete added to plugin-api after this plugin was
        // written must never fall through to "delete everything".
        other => {
            return Err(PluginError::new(
                ErrorKind::Unsupported,
                format!("the postgres backend cannot delete by {other:?}"),
            ));
        }
    };
    let (ids, filter) = (&request.ids, &filter);
    shared
        .with_meta(&request.collection, |meta| async move {
            let mut args = Args::default();
            let cond = if by_ids {
                let p = args.push(Arg::TextArray(ids.clone()));
                format!("id = ANY({p}::text[])")
            } else {
                translate(filter, "metadata", &mut args)?
            };
            let r = sqlx::query_with(
                AssertSqlSafe(format!("DELETE FROM {} WHERE {cond}", meta.table)),
                arguments(None, &args.values)?,
            )
            .execute(&*shared.db)
            .await
            .map_err(map)?;
            Ok(r.rows_affected())
        })
        .await
}
