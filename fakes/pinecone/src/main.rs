//! `pinecone-fake`: runs the test double of Pinecone's data plane
//! ([`strata_pinecone_fake`]) until interrupted. For tests only.
//!
//! ```text
//! pinecone-fake [--port P] [--api-key K] [--lag-ms N] --index DIM:METRIC [--index …]
//! ```
//!
//! Each `--index 4:cosine` serves an index named `d4-cosine` at
//! `http://127.0.0.1:P/d4-cosine`. `--lag-ms` delays the visibility of
//! every write (Pinecone is eventually consistent). The first line on
//! stdout is the base URL.

use strata_pinecone_fake::{Fake, IndexSpec};

fn usage(msg: &str) -> ! {
    eprintln!(
        "pinecone-fake: {msg}\nusage: pinecone-fake [--port P] [--api-key K] [--lag-ms N] --index DIM:METRIC [--index ...]"
    );
    std::process::exit(2)
}

fn main() {
    let mut port = 0u16;
    let mut key = None;
    let mut lag = 0u64;
    let mut indexes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage("bad --port")),
            "--api-key" => key = Some(value()),
            "--lag-ms" => lag = value().parse().unwrap_or_else(|_| usage("bad --lag-ms")),
            "--index" => {
                let v = value();
                let (dim, metric) = v
                    .split_once(':')
                    .unwrap_or_else(|| usage(&format!("--index {v}: expected DIM:METRIC")));
                let dim = dim
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("--index {v}: bad dimension")));
                if !["cosine", "dotproduct", "euclidean"].contains(&metric) {
                    usage(&format!(
                        "--index {v}: metric is cosine, dotproduct or euclidean"
                    ));
                }
                indexes.push(IndexSpec::new(dim, metric));
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if indexes.is_empty() {
        usage("give at least one --index");
    }
    let fake = Fake::start(port, key, indexes).unwrap_or_else(|e| {
        eprintln!("pinecone-fake: cannot listen: {e}");
        std::process::exit(1)
    });
    fake.set_lag(std::time::Duration::from_millis(lag));
    println!("{}", fake.url());
    // Until SIGINT / SIGTERM.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    drop(fake);
}
