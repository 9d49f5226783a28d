//! The lexical side of hybrid search for engines that rank sparse vectors
//! (Qdrant's sparse vectors, Pinecone's sparse-dense records): text as a
//! sparse vector of term weights, the same for every plugin that uses it.
//!
//! Words are maximal runs of letters and digits (any script), lower-cased.
//! A term's index is the FNV-1a hash of its UTF-8 bytes (32 bits: two words
//! share an index about once in 4 billion pairs, and then count as one
//! term). A document weighs each term by BM25's saturated term frequency
//! `tf · (k1 + 1) / (tf + k1)` (k1 = 1.2, without length normalisation:
//! the corpus's average length is not known when one record is written).
//! A query weighs each distinct term 1, so a record's score is the sum of
//! its matched terms' weights: BM25 without length normalisation (b = 0)
//! where the engine multiplies in each term's inverse document frequency
//! (Qdrant's `idf` modifier), saturated term frequency alone where it does
//! not (Pinecone).

use std::collections::BTreeMap;

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;

/// Lower-cased words.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// FNV-1a, 32 bits.
fn term_index(word: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in word.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A document's sparse vector (indices ascending); empty for no words.
pub fn document(text: &str) -> (Vec<u32>, Vec<f32>) {
    let mut tf: BTreeMap<u32, f32> = BTreeMap::new();
    for w in words(text) {
        *tf.entry(term_index(&w)).or_default() += 1.0;
    }
    tf.into_iter()
        .map(|(i, f)| (i, f * (K1 + 1.0) / (f + K1)))
        .unzip()
}

/// A query's sparse vector: each distinct term weighs 1.
pub fn query(text: &str) -> (Vec<u32>, Vec<f32>) {
    let mut terms: BTreeMap<u32, f32> = BTreeMap::new();
    for w in words(text) {
        terms.insert(term_index(&w), 1.0);
    }
    terms.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_in_any_script_and_repeat_saturates() {
        let (q, _) = query("Zürich ZÜRICH");
        let (d, w) = document("le café à zürich, zürich!");
        assert_eq!(q.len(), 1);
        let at = d.iter().position(|i| *i == q[0]).expect("zürich indexed");
        // tf 2 weighs more than tf 1, less than twice as much.
        let once = w[d.iter().position(|i| *i == query("café").0[0]).unwrap()];
        assert!(w[at] > once && w[at] < 2.0 * once, "{w:?}");
        assert!(document(" ,; ").0.is_empty());
    }
}
