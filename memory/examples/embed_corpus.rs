//! Embeds a text corpus, one text per line, into a `.npy` matrix of
//! `f32` (rows in line order, 384 columns for all-MiniLM-L6-v2), for
//! `strata-bench vectors --data` (real embeddings instead of synthetic
//! clusters). `scripts/bench/wordnet-embeddings.sh` drives it.
//!
//! ```sh
//! cargo run --release -p strata-memory --example embed_corpus -- TEXTS OUT.npy [MODEL_DIR]
//! ```
//!
//! The vectors are sentence-transformers' own (within 4e-7 a component,
//! `memory/tests/minilm_reference.rs`), computed by the pure-Rust
//! `MiniLmEmbedder` 32 texts per call. The output is written to
//! `OUT.npy.partial` and renamed when complete.

use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    time::Instant,
};

use strata_memory::MiniLmEmbedder;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: embed_corpus TEXTS OUT.npy [MODEL_DIR]");
        std::process::exit(2);
    };
    let dir = args
        .get(2)
        .map(PathBuf::from)
        .or_else(strata_memory::minilm::default_model_dir)
        .expect("no model directory: pass MODEL_DIR or run scripts/models/minilm.sh");
    let texts: Vec<String> = std::fs::read_to_string(input)
        .unwrap_or_else(|e| panic!("cannot read {input}: {e}"))
        .lines()
        .map(str::to_string)
        .collect();
    let model = MiniLmEmbedder::load(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_batch(32);
    let dim = 384usize;
    let partial = format!("{output}.partial");
    let mut out = BufWriter::new(
        std::fs::File::create(&partial).unwrap_or_else(|e| panic!("cannot create {partial}: {e}")),
    );
    out.write_all(&strata_ann::npy::f32_matrix_header(texts.len(), dim))
        .unwrap();
    let started = Instant::now();
    for (i, chunk) in texts.chunks(512).enumerate() {
        for v in model
            .embed_blocking(chunk)
            .unwrap_or_else(|e| panic!("{e}"))
        {
            assert_eq!(v.len(), dim, "the model's dimension");
            for x in v {
                out.write_all(&x.to_le_bytes()).unwrap();
            }
        }
        let done = ((i + 1) * 512).min(texts.len());
        if (i + 1) % 10 == 0 || done == texts.len() {
            let s = started.elapsed().as_secs_f64();
            eprintln!(
                "{done}/{} texts embedded, {:.0} texts/s",
                texts.len(),
                done as f64 / s
            );
        }
    }
    out.into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(&partial, output).unwrap();
}
