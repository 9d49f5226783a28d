//! strata-ann: the vector search engine of strata's SQLite plugin, as a
//! plain Rust library.
//!
//! It knows nothing of SQLite, of strata's plugin ABI or kit: vectors are
//! `&[f32]`, rows are named by caller-chosen `i64` keys, and every type is
//! usable from any store — the SQLite plugin, the plugin template, or a
//! third party's in-memory backend.
//!
//! # The parts
//!
//! | module | what |
//! |---|---|
//! | [`kernels`](mod@kernels) | `f32` dot product and squared euclidean distance, portable and AVX2 + FMA (chosen at run time); the int8 scan kernel. The crate's only `unsafe` |
//! | [`metric`] | [`Metric`]: cosine, dot, euclidean |
//! | [`codec`] | vectors as little-endian bytes; normalisation |
//! | [`topk`] | top-k selection in one deterministic order: score descending, then key ascending |
//! | [`quant`] | the int8 copy of a collection and its provable error bound |
//! | [`flat`] | [`Flat`]: a collection in one contiguous array; exact top-k, index-assisted top-k |
//! | [`hnsw`] | [`Hnsw`]: a flat-layout HNSW graph built on all cores, and its binary file |
//! | [`index`] | [`AnnIndex`]: a graph over keys with tombstones and reconciliation, saved as two files |
//! | [`npy`] | `.npy` `f32` matrices read and written (benchmark datasets) |
//!
//! # Exact search: an int8 prefilter, then exact rescoring
//!
//! [`Flat::exact_top_k`] returns the exact top-k by `f32` score. A plain
//! scan reads `4·d` bytes per vector per query and is memory bound; from
//! [`flat::QUANT_MIN_SCAN`] rows on (and `k` at most 1/16 of them) it scans
//! an int8 copy instead (a quarter of the bytes), which gives approximate
//! scores with a *proven* error bound per vector. The `k` best by
//! approximate score are rescored exactly; their lowest exact score is a
//! threshold, and every vector whose upper bound reaches it is rescored
//! too. Any other vector provably scores below `k` others, so the result is
//! the `f32` scan's, vector for vector and bit for bit (see [`quant`] for
//! the bound). Queries whose magnitudes approach `f32` overflow fall back to
//! the plain scan.
//!
//! # Approximate search: HNSW
//!
//! [`AnnIndex`] wraps an [`Hnsw`] graph (Malkov & Yashunin) keyed by the
//! caller's keys. Parameters ([`HnswParams`]): `m` links per node (16;
//! level 0 holds `2m`), `ef_construction` candidates per insert (100),
//! `ef_search` candidates per query (128, overridable per query with
//! [`SearchOptions`]). [`Flat::search`] asks its attached index for candidates,
//! rescores them exactly, and answers by exact search instead when a filter
//! is selective or the graph found fewer than `k` allowed rows, so a
//! filtered query never returns fewer results than exist. Levels are drawn
//! from a hash of the key, so the same keys give the same levels; parallel
//! builds of the same data differ slightly in their links.
//!
//! # One copy of the vectors
//!
//! An HNSW graph keeps each node's vector beside its links (searches read
//! them in the graph's order). A [`Flat`] with an index
//! [attached](Flat::attach) therefore keeps no array of its own: row `i`'s
//! vector is read from its node in the graph, and pushes and removes go
//! through to the index (a push becomes a node, linked at the next
//! [`Flat::maintain`]; a remove a tombstone, whose vector stays for the
//! searches that pass through it). At 1M × 384 that is 1.5 GB held once,
//! not twice. Attaching reconciles the index with the rows and compares
//! every vector bit for bit: an index made from other data is refused,
//! never trusted.
//!
//! Scores are higher-is-better for every [`Metric`]: cosine similarity,
//! dot product, and *negative* euclidean distance.
//!
//! # Index files and versioning
//!
//! [`AnnIndex::save`] writes `<name>.hnsw` (the graph: magic, format
//! number, parameters, data, a checksum) and `<name>.meta.json` (format
//! number, metric, dimension, parameters, generation, point count,
//! tombstones), each to a temporary name, synced and renamed, meta last.
//! [`AnnIndex::load`] returns `Ok(None)` for missing files or files of
//! another format or other parameters (build anew) and
//! [`IndexError::Corrupt`] naming the file and the failed check for a file
//! that is truncated, corrupt or inconsistent with its meta file. Details in
//! [`index`].
//!
//! # Threads
//!
//! Everything is `Send + Sync`. Searches take `&self` and run concurrently
//! (an HNSW search borrows a scratch buffer from a small pool; the int8 scan
//! uses a thread-local buffer). Mutations take `&mut self`. Builds and batch
//! inserts of an index use `available_parallelism()` threads of their own
//! (scoped: they end before the call returns) and can be cancelled through
//! a [`BuildCtl`].
//!
//! # Example
//!
//! ```
//! use strata_ann::{Flat, HnswParams, Metric, SearchOptions};
//!
//! let mut flat = Flat::with_capacity(Metric::Cosine, 3, 3);
//! flat.push(10, &[1.0, 0.0, 0.0]);
//! flat.push(20, &[0.0, 1.0, 0.0]);
//! flat.push(30, &[0.7, 0.7, 0.0]);
//! flat.maintain();
//! let q = flat.prepare_query(&[1.0, 0.1, 0.0]);
//! let exact = flat.exact_top_k(&q, 2, None);
//! assert_eq!(exact.iter().map(|&(row, _)| flat.key(row)).collect::<Vec<_>>(), [10, 30]);
//!
//! let index = flat.build_index(HnswParams::default(), 0);
//! flat.attach(index, 0).expect("built from these rows");
//! let found = flat.search(&q, 2, SearchOptions::default(), None);
//! assert_eq!(found, exact);
//! ```

#![deny(unsafe_code)]

pub mod codec;
pub mod flat;
pub mod hnsw;
pub mod index;
#[allow(unsafe_code)]
pub mod kernels;
pub mod keys;
pub mod metric;
pub mod npy;
pub mod quant;
pub mod topk;

pub use flat::{AttachError, Flat, Refused, SearchOptions};
pub use hnsw::Hnsw;
pub use index::{AnnIndex, BuildCtl, HnswParams, IndexError, Origin};
pub use kernels::{Kernels, kernels};
pub use keys::{KeyMap, KeySet};
pub use metric::Metric;
pub use topk::TopK;
