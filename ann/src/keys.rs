//! Maps and sets keyed by record keys (`i64`), with a fast hasher.
//!
//! Keys are the caller's row keys (the SQLite plugin's pks), not text an
//! attacker chooses, so `std`'s DoS-resistant SipHash buys nothing here
//! and costs: in a filtered query over 60K rows, building and probing the
//! allowed set with SipHash took more time than evaluating the filter
//! (`benchmarks/vectors-sqlite.md`, session 17). [`KeyHasher`] is two
//! multiplies and two xor-shifts per key, enough that consecutive,
//! strided and random keys all spread over the buckets as random ones do
//! (tested below).

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, Hasher},
};

/// A set of record keys.
pub type KeySet = HashSet<i64, BuildKeyHasher>;

/// A map from record keys.
pub type KeyMap<V> = HashMap<i64, V, BuildKeyHasher>;

/// Builds [`KeyHasher`]s (no per-map seed: see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildKeyHasher;

impl BuildHasher for BuildKeyHasher {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// The hasher of [`KeySet`] and [`KeyMap`]: made for one `i64` (or
/// `u64`) per hash; other input is folded in a word at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHasher(u64);

/// 2^64 / φ, odd: multiplying by it spreads consecutive keys apart.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;
/// SplitMix64's first finalising multiplier.
const MIX2: u64 = 0xBF58_476D_1CE4_E5B9;

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // A second multiply between two xor-shifts: every bit of the key
        // reaches the low bits (hashbrown's bucket index) and the top 7
        // (its tag), for consecutive, strided and random keys alike.
        let x = self.0 ^ (self.0 >> 32);
        let x = x.wrapping_mul(MIX2);
        x ^ (x >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, k: u64) {
        self.0 = (self.0.rotate_left(26) ^ k).wrapping_mul(MIX);
    }

    fn write_i64(&mut self, k: i64) {
        self.write_u64(k as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consecutive keys, keys that share their low bits (multiples of
    /// 2^20) and strided keys fill the low 10 bits of the hash (hashbrown's
    /// bucket index) as random hashes would (~647 of 1024 distinct).
    #[test]
    fn strided_keys_spread_over_the_low_bits() {
        let low = |k: i64| BuildKeyHasher.hash_one(k) & 1023;
        let buckets: KeySet = (0..1024).map(|i| low(i << 20) as i64).collect();
        assert!(buckets.len() > 600, "{} of 1024 buckets", buckets.len());
        let buckets: KeySet = (0..1024).map(|i| low(i + (1 << 61)) as i64).collect();
        assert!(buckets.len() > 600, "{} of 1024 buckets", buckets.len());
        let buckets: KeySet = (0..1024).map(|i| low(i * 100) as i64).collect();
        assert!(buckets.len() > 600, "{} of 1024 buckets", buckets.len());
    }

    #[test]
    fn sets_and_maps_behave_as_std() {
        let set: KeySet = (0..10_000).map(|i| i * 7 - 3).collect();
        assert_eq!(set.len(), 10_000);
        assert!(set.contains(&(7 * 500 - 3)) && !set.contains(&0));
        let mut map: KeyMap<usize> = KeyMap::default();
        map.insert(i64::MIN, 1);
        map.insert(i64::MAX, 2);
        assert_eq!((map[&i64::MIN], map[&i64::MAX]), (1, 2));
    }
}
