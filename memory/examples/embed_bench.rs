//! Throughput of the local all-MiniLM-L6-v2 embedder (`MiniLmEmbedder`).
//!
//! ```sh
//! scripts/models/minilm.sh     # the model, into ~/.cache/strata/models
//! cargo run --release -p strata-memory --example embed_bench -- \
//!     [MODEL_DIR] [TEXTS_FILE] [THREADS]
//! ```
//!
//! Embeds every line of TEXTS_FILE (default `benchmarks/embeddings-texts.txt`,
//! 256 texts) one text per call (batch 1), then 32 texts per call
//! (batch 32); each mode runs three times after a warm-up and the best run
//! is reported, as texts/s and tokens/s. `benchmarks/embeddings_reference.py`
//! does the same with sentence-transformers; `benchmarks/embeddings.md`
//! has the numbers.

use std::{path::PathBuf, time::Instant};

use strata_memory::MiniLmEmbedder;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = args.first().map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".cache/strata/models/all-MiniLM-L6-v2")
    });
    let file = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("benchmarks/embeddings-texts.txt"));
    let threads = args.get(2).map(|t| t.parse().expect("THREADS is a number"));
    let texts: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let t = Instant::now();
    let mut model = MiniLmEmbedder::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    if let Some(n) = threads {
        model = model.with_threads(n);
    }
    println!(
        "model {} loaded in {:.2} s; {model:?}",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    let tokens: usize = texts.iter().map(|t| model.token_ids(t).len()).sum();
    println!(
        "{} texts, {tokens} tokens ({:.1} per text, [CLS] and [SEP] included)",
        texts.len(),
        tokens as f64 / texts.len() as f64
    );
    for batch in [1usize, 32] {
        let m = model.clone().with_batch(batch);
        m.embed_blocking(&texts[..8]).unwrap();
        let best = (0..3)
            .map(|_| {
                let t = Instant::now();
                for chunk in texts.chunks(batch) {
                    std::hint::black_box(m.embed_blocking(chunk).unwrap());
                }
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "batch {batch:>2}: {:>7.1} texts/s  {:>8.0} tokens/s  ({:.2} s for {} texts, best of 3)",
            texts.len() as f64 / best,
            tokens as f64 / best,
            best,
            texts.len()
        );
    }
}
