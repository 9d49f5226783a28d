//! Embedders: text in, vectors out.
//!
//! [`Embedder`] is the seam where a real model plugs in (an
//! OpenAI-compatible HTTP endpoint, a local sentence-transformer). The
//! built-in [`HashEmbedder`] needs no model and no network: it hashes
//! words and character trigrams into a fixed number of signed buckets
//! ("feature hashing"), so texts sharing words or word pieces land near
//! each other. It is lexical, not semantic ("car" and "automobile" are
//! unrelated to it): good for tests, demos and a first run, and the
//! memory layer says which embedder it uses.

use std::{future::Future, pin::Pin};

/// What an embedder returns: one vector per input text, or why not.
pub type EmbedFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Vec<f32>>, EmbedError>> + Send + 'a>>;

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The embedder (model, endpoint) failed; `message` says how.
    #[error("embedder {embedder}: {message}")]
    Failed {
        /// The embedder's [`Embedder::name`].
        embedder: String,
        /// What went wrong.
        message: String,
    },
    /// It returned vectors of another length, or another number of them.
    #[error("embedder {embedder}: {message}")]
    BadOutput {
        /// The embedder's [`Embedder::name`].
        embedder: String,
        /// What was wrong with the output.
        message: String,
    },
}

/// Turns texts into vectors of one fixed dimension.
pub trait Embedder: Send + Sync {
    /// A short name saying which model this is (stored with the memory, so
    /// a brain is never searched with vectors of another model).
    fn name(&self) -> &str;
    /// The length of every vector it returns.
    fn dimension(&self) -> u32;
    /// One vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> EmbedFuture<'a>;
}

/// The model-free demo embedder (see the module docs): words and
/// character trigrams, lower-cased, hashed (FNV-1a) into `dimension`
/// signed buckets, words weighted twice a trigram, L2-normalised.
#[derive(Clone, Debug)]
pub struct HashEmbedder {
    dimension: u32,
    name: String,
}

impl HashEmbedder {
    /// A hash embedder of `dimension` buckets (at least 8).
    pub fn new(dimension: u32) -> HashEmbedder {
        let dimension = dimension.max(8);
        HashEmbedder {
            dimension,
            name: format!("hash-{dimension}"),
        }
    }

    /// The vector of one text (all zeros for a text without letters or digits).
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let d = self.dimension as usize;
        let mut v = vec![0f32; d];
        let mut add = |feature: &[u8], weight: f32| {
            let h = fnv1a(feature);
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[(h % d as u64) as usize] += sign * weight;
        };
        let lower = text.to_lowercase();
        for word in lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            add(word.as_bytes(), 2.0);
            let padded: Vec<char> = format!(" {word} ").chars().collect();
            for tri in padded.windows(3) {
                let s: String = tri.iter().collect();
                add(s.as_bytes(), 1.0);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl Default for HashEmbedder {
    /// 256 buckets.
    fn default() -> HashEmbedder {
        HashEmbedder::new(256)
    }
}

impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> u32 {
        self.dimension
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> EmbedFuture<'a> {
        Box::pin(async move { Ok(texts.iter().map(|t| self.vector(t)).collect()) })
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn shared_words_are_closer_than_unrelated_text() {
        let e = HashEmbedder::default();
        let tea = e.vector("the user drinks green tea every morning");
        let tea2 = e.vector("green tea in the morning");
        let code = e.vector("compile the rust workspace with cargo");
        assert!(cos(&tea, &tea2) > cos(&tea, &code) + 0.2);
        assert!((cos(&tea, &tea) - 1.0).abs() < 1e-5);
        assert_eq!(tea.len(), 256);
    }

    #[test]
    fn deterministic_and_case_insensitive() {
        let e = HashEmbedder::new(64);
        assert_eq!(e.vector("Green Tea"), e.vector("green tea"));
        assert!(e.vector("!!!").iter().all(|x| *x == 0.0));
    }
}
