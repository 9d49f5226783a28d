//! Top-k selection with a deterministic order.
//!
//! Results are ranked by score, higher first; equal scores by key (the
//! caller's stable row identity, e.g. a database row id), lower first. Every
//! search path of the crate (the `f32` scan, the int8-prefiltered scan, the
//! HNSW candidates after rescoring) ends in this order, so two paths that
//! find the same vectors return the same list, ties included.

use std::{cmp::Ordering, collections::BinaryHeap};

/// The `k` best of a stream of `(row, key, score)` offers.
///
/// Memory is sized by what can be kept, `min(k, candidates)`, never by `k`
/// alone: `k` is often a caller's `top_k`, which may be `u32::MAX`.
///
/// ```
/// let mut top = strata_ann::TopK::new(2, 4);
/// for (row, key, score) in [(0, 30, 0.5), (1, 10, 0.9), (2, 20, 0.5), (3, 40, 0.1)] {
///     top.offer(row, key, score);
/// }
/// // 0.9 first; of the two 0.5s the lower key (20, row 2) wins the last place.
/// assert_eq!(top.into_sorted(), vec![(1, 0.9), (2, 0.5)]);
/// ```
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

/// An offer, ordered so the heap keeps the worst on top: lower score, then
/// (a tie) larger key.
#[derive(Clone, Copy, Debug)]
struct Entry {
    score: f64,
    key: i64,
    row: usize,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reverse: the heap's top is the lowest score (ties: the larger key).
        o.score.total_cmp(&self.score).then(self.key.cmp(&o.key))
    }
}

impl TopK {
    /// Keeps the best `k` of at most `candidates` offers (more offers are
    /// taken, but the room reserved up front is for `min(k, candidates)`).
    pub fn new(k: usize, candidates: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(candidates).saturating_add(1)),
        }
    }

    /// Offers row `row` (tie-break key `key`) with `score`.
    #[inline]
    pub fn offer(&mut self, row: usize, key: i64, score: f64) {
        let c = Entry { score, key, row };
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if let Some(top) = self.heap.peek()
            && c < *top
        {
            self.heap.pop();
            self.heap.push(c);
        }
    }

    /// Offers kept so far (at most `k`).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The kept `(row, score)`s, best first (ties: lower key first).
    pub fn into_sorted(self) -> Vec<(usize, f64)> {
        let mut v = self.heap.into_vec();
        v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
        v.into_iter().map(|e| (e.row, e.score)).collect()
    }
}

/// Sorts `(row, score)`s best first (ties: lower `key(row)` first) and
/// keeps `k`.
pub fn rank(scored: &mut Vec<(usize, f64)>, k: usize, key: impl Fn(usize) -> i64) {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(key(a.0).cmp(&key(b.0))));
    scored.truncate(k);
}

/// Positions `0..m` of the `k` largest `key`s (any order; ties arbitrary:
/// the int8 scan only picks the first vectors to rescore with it).
pub(crate) fn best_by_key(m: usize, k: usize, key: impl Fn(usize) -> f32) -> Vec<usize> {
    use std::cmp::Reverse;
    // f32 → i32 with the order of `f32::total_cmp`.
    let ordered = |f: f32| {
        let b = f.to_bits() as i32;
        b ^ (((b >> 31) as u32) >> 1) as i32
    };
    let mut heap: BinaryHeap<(Reverse<i32>, usize)> =
        BinaryHeap::with_capacity(k.min(m).saturating_add(1));
    for t in 0..m {
        let s = ordered(key(t));
        if heap.len() < k {
            heap.push((Reverse(s), t));
        } else if let Some(&(Reverse(top), _)) = heap.peek()
            && s > top
        {
            heap.pop();
            heap.push((Reverse(s), t));
        }
    }
    heap.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_broken_by_the_lower_key_whatever_the_offer_order() {
        // Five rows with one score, keys scrambled against rows.
        let keys = [50i64, 10, 40, 20, 30];
        for rotation in 0..keys.len() {
            let mut top = TopK::new(3, keys.len());
            for i in 0..keys.len() {
                let row = (i + rotation) % keys.len();
                top.offer(row, keys[row], 1.0);
            }
            // Keys 10, 20, 30 are rows 1, 3, 4.
            assert_eq!(
                top.into_sorted(),
                vec![(1, 1.0), (3, 1.0), (4, 1.0)],
                "rotation {rotation}"
            );
        }
    }

    #[test]
    fn higher_scores_first_then_keys() {
        let mut top = TopK::new(4, 5);
        for (row, key, score) in [
            (0, 5, 0.1),
            (1, 4, 0.7),
            (2, 3, 0.7),
            (3, 2, -1.0),
            (4, 1, 0.9),
        ] {
            top.offer(row, key, score);
        }
        assert_eq!(top.len(), 4);
        assert_eq!(
            top.into_sorted(),
            vec![(4, 0.9), (2, 0.7), (1, 0.7), (0, 0.1)]
        );
    }

    #[test]
    fn k_zero_and_fewer_offers_than_k() {
        let mut none = TopK::new(0, 1);
        none.offer(0, 0, 1.0);
        assert!(none.is_empty());
        let mut few = TopK::new(10, 1);
        few.offer(7, 1, 0.5);
        assert_eq!(few.into_sorted(), vec![(7, 0.5)]);
    }

    #[test]
    fn a_huge_k_reserves_room_for_the_candidates_only() {
        // Before the fix `TopK::new(k)` reserved `k + 1` entries: 103 GB for
        // `u32::MAX`, an abort. Offers beyond `candidates` still fit.
        let mut top = TopK::new(usize::MAX, 2);
        assert!(top.heap.capacity() < 16);
        for row in 0..5 {
            top.offer(row, row as i64, 1.0);
        }
        assert_eq!(top.len(), 5);
        assert_eq!(best_by_key(3, usize::MAX, |t| t as f32).len(), 3);
    }

    #[test]
    fn rank_sorts_ties_by_key_and_truncates() {
        let keys = [9i64, 3, 5];
        let mut v = vec![(0, 0.5), (1, 0.5), (2, 0.8)];
        rank(&mut v, 2, |r| keys[r]);
        assert_eq!(v, vec![(2, 0.8), (1, 0.5)]);
    }

    #[test]
    fn best_by_key_picks_the_k_largest() {
        let scores = [0.1f32, -3.0, 7.0, 2.0, -0.0, 0.0];
        let mut got = best_by_key(scores.len(), 3, |t| scores[t]);
        got.sort_unstable();
        assert_eq!(got, vec![0, 2, 3]);
        assert!(best_by_key(scores.len(), 0, |t| scores[t]).is_empty());
    }
}
