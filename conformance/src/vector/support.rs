//! What the vector cases share: generated data, the exact reference
//! ranking, and small helpers.

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value as Json;
use strata_host::{Hit, Metric, Vectors};

use crate::{ctx::Ctx, failure::Failure};

pub(super) fn random_vectors(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

/// Clustered data shaped like real embeddings: `clusters` centres, each
/// with its own 8-dimensional subspace the points spread along, plus a little
/// isotropic noise. (Isotropic noise alone in 128 dimensions makes every
/// point of a cluster nearly equidistant from every other — a distribution no
/// embedding model produces, on which any graph index needs a huge `ef`.)
pub fn clustered(seed: u64, n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
    const LATENT: usize = 8;
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let bases: Vec<Vec<Vec<f32>>> = (0..clusters)
        .map(|_| {
            (0..LATENT)
                .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
                .collect()
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = rng.random_range(0..clusters);
            let z: Vec<f32> = (0..LATENT)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            (0..dim)
                .map(|d| {
                    let spread: f32 =
                        (0..LATENT).map(|l| bases[c][l][d] * z[l]).sum::<f32>() * 0.25;
                    centres[c][d] + spread + rng.random_range(-0.02f32..0.02)
                })
                .collect()
        })
        .collect()
}

/// Exact top-k ids by the reference scores.
pub(super) fn exact(
    metric: Metric,
    data: &[(String, Vec<f32>)],
    q: &[f32],
    k: usize,
) -> Vec<(String, f64)> {
    let mut scored: Vec<(String, f64)> = data
        .iter()
        .map(|(id, v)| (id.clone(), metric.score(q, v)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

pub(super) async fn store_with(
    ctx: &Ctx,
    name: &str,
    dim: u32,
    metric: Metric,
) -> Result<(Vectors, String), Failure> {
    let v = ctx.vectors().await?;
    let c = ctx.collection(name);
    v.create_collection(&c, dim, metric).await?;
    Ok((v, c))
}

/// The index a collection's details say answers its queries: the string
/// under `"index"`, unless it says there is none (`"exact"`, `"none…"`).
pub(super) fn index_kind(details: &Json) -> Option<String> {
    details
        .get("index")
        .and_then(Json::as_str)
        .filter(|k| !k.is_empty() && *k != "exact" && !k.starts_with("none"))
        .map(str::to_string)
}

/// The ids of `hits`, in order.
pub(super) fn ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}
