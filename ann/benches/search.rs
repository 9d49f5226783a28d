//! Exact `f32` scan vs int8-prefiltered exact scan vs HNSW, on random data.
//!
//! `cargo bench -p strata-ann` (sizes: `ANN_BENCH_N` vectors, default
//! 5,000, of `ANN_BENCH_DIM` dimensions, default 128; top 10, cosine).
//! Kept small by default so it finishes in well under a minute; the
//! plugin-level numbers are in `benchmarks/vectors-sqlite.md`.

// `criterion_group!` defines an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use strata_ann::{Flat, HnswParams, Metric, SearchOptions};

/// splitmix64-based values in [-1, 1): deterministic, no rand dependency.
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn search(c: &mut Criterion) {
    let (n, d, k) = (env("ANN_BENCH_N", 5_000), env("ANN_BENCH_DIM", 128), 10);
    let data = random(n * d, 1);
    let queries: Vec<Vec<f32>> = (0..64).map(|i| random(d, 1_000 + i)).collect();
    let fill = |flat: &mut Flat| {
        for (i, v) in data.chunks_exact(d).enumerate() {
            flat.push(i as i64, v);
        }
        flat.maintain();
    };
    // The plain f32 scan: the int8 copy is never made.
    let mut plain = Flat::with_capacity(Metric::Cosine, d, n);
    plain.quant_mut().set_min_fit(usize::MAX);
    fill(&mut plain);
    let mut quantized = Flat::with_capacity(Metric::Cosine, d, n);
    fill(&mut quantized);
    assert!(quantized.quant().is_fitted() || n < strata_ann::quant::DEFAULT_MIN_FIT);
    // Attached, as in the SQLite plugin: the graph holds the vectors and
    // the int8 path rescores from it.
    let index = quantized.build_index(HnswParams::default(), 0);
    quantized
        .attach(index, 0)
        .map_err(|e| e.reason())
        .expect("built from these rows");
    let prepared: Vec<Vec<f32>> = queries.iter().map(|q| plain.prepare_query(q)).collect();

    let mut group = c.benchmark_group(format!("top{k} of {n}x{d} cosine"));
    group.sample_size(20);
    let mut i = 0;
    group.bench_function("exact f32 scan", |b| {
        b.iter(|| {
            i += 1;
            black_box(plain.exact_top_k(&prepared[i % 64], k, None))
        })
    });
    group.bench_function("exact, int8 prefilter + rescoring", |b| {
        b.iter(|| {
            i += 1;
            black_box(quantized.exact_top_k(&prepared[i % 64], k, None))
        })
    });
    group.bench_function("hnsw ef 64, rescored", |b| {
        let options = SearchOptions::new(Some(64), false);
        b.iter(|| {
            i += 1;
            black_box(quantized.search(&prepared[i % 64], k, options, None))
        })
    });
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
