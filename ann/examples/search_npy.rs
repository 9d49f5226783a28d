//! The engine alone, without the plugin around it: builds a [`Flat`] and
//! its HNSW index from a `.npy` matrix of `f32` (the last `QUERIES` rows
//! are the queries) and times one query at a time per ef, as
//! `strata-bench vectors --data` does through the plugin. The difference
//! between the two is the plugin's per-query cost. Exact search (the
//! recall ground truth) is timed too.
//!
//! ```sh
//! cargo run --release -p strata-ann --example search_npy -- DATA.npy [N] [QUERIES] [ROUNDS]
//! ```

use std::time::Instant;

use strata_ann::{Flat, HnswParams, Metric, SearchOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strata_ann::npy::Matrix {
        values, cols: d, ..
    } = strata_ann::npy::read_f32_matrix(args[0].as_ref()).unwrap_or_else(|e| panic!("{e}"));
    let rows = values.len() / d;
    let nq: usize = args.get(2).map_or(200, |s| s.parse().unwrap());
    let n: usize = args
        .get(1)
        .map_or(rows - nq, |s| s.parse().unwrap())
        .min(rows - nq);
    let rounds: usize = args.get(3).map_or(5, |s| s.parse().unwrap());
    let mut flat = Flat::with_capacity(Metric::Cosine, d, n);
    for (i, v) in values[..n * d].chunks_exact(d).enumerate() {
        flat.push(i as i64, v);
    }
    flat.maintain();
    let t = Instant::now();
    let params = HnswParams {
        m: 16,
        ef_construction: 100,
        ef_search: 64,
    };
    let index = flat.build_index(params, 0);
    flat.attach(index, 0)
        .map_err(|e| e.reason())
        .expect("built from these rows");
    eprintln!(
        "{n} × {d}: index built in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let queries: Vec<Vec<f32>> = values[(rows - nq) * d..]
        .chunks_exact(d)
        .map(|q| flat.prepare_query(q))
        .collect();
    let t = Instant::now();
    let truth: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| {
            flat.exact_top_k(q, 10, None)
                .into_iter()
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    let elapsed = t.elapsed();
    let rescored: usize = queries
        .iter()
        .filter_map(|q| {
            let (_, stats) = flat.quant().top_k(
                Metric::Cosine,
                q,
                10,
                None,
                |i| flat.score(q, i),
                |i| flat.key(i),
            )?;
            Some(stats.rescored)
        })
        .sum();
    println!(
        "exact (int8 prefilter + f32 rescoring): {:.0} QPS, {:.1} vectors rescored per query",
        queries.len() as f64 / elapsed.as_secs_f64(),
        rescored as f64 / queries.len() as f64
    );
    for ef in [16, 32, 64, 128, 256] {
        let options = SearchOptions::new(Some(ef), false);
        let mut hits = 0;
        let mut lat = Vec::new();
        for _ in 0..rounds {
            for (q, t) in queries.iter().zip(&truth) {
                let s = Instant::now();
                let found = flat.search(q, 10, options, None);
                lat.push(s.elapsed());
                hits += found.iter().filter(|(i, _)| t.contains(i)).count();
            }
        }
        let total: f64 = lat.iter().map(|d| d.as_secs_f64()).sum();
        lat.sort_unstable();
        println!(
            "ef {ef:>3}: recall {:.3}  {:>6.0} QPS  p50 {:.3} ms",
            hits as f64 / (10 * queries.len() * rounds) as f64,
            lat.len() as f64 / total,
            lat[lat.len() / 2].as_secs_f64() * 1e3
        );
    }
}
