//! A flat-layout HNSW graph (Malkov & Yashunin, 2016), built in parallel.
//!
//! # Why our own
//!
//! strata's SQLite plugin used `hnsw_rs` until its build time became the one
//! target of the SQLite vector tier it could not meet: 100K × 384 took 47 s on the
//! 2-core benchmark VM. Profiled, 45 % of that build was `search_layer`
//! chasing neighbour pointers (every point an `Arc`, every neighbour list
//! behind its own lock and allocation) and 30 % distances. This graph keeps
//! everything in a few flat arrays, in the style of hnswlib:
//!
//! - vectors contiguous in one `Vec<f32>` (`dim` floats per node);
//! - level-0 links in one `Vec<AtomicU32>`, `m0 + 1` slots per node (a
//!   count, then ids); upper-level links likewise in a second array, found
//!   through a per-node offset (only ~1/M of the nodes have any);
//! - a visited set that is an epoch-stamped array, reused across searches;
//! - the vectors of a node's unvisited neighbours prefetched before their
//!   distances are computed.
//!
//! # Concurrency
//!
//! Inserts run on `available_parallelism()` threads. Writers of a node's
//! links take that node's mutex (one at a time: no thread ever holds two,
//! so there is no lock order to get wrong). Readers take no lock: they load
//! the slots as relaxed atomics, like hnswlib's racy reads but without
//! undefined behaviour. A reader that races a writer can see a mix of the
//! old and new list, which are all valid node ids (every node's storage is
//! allocated before the parallel phase starts), so the worst case is a
//! slightly different path through the graph, never a wrong result: the
//! caller rescores candidates exactly.
//!
//! # Distances
//!
//! `Cosine` is `1 − a·b` on vectors the caller has normalised; `L2` is the
//! squared euclidean distance (same order as the distance, no square root);
//! `Dot` is `−a·b` (inner product search, see [`Space::Dot`]). All come
//! from the crate's SIMD kernels ([`crate::kernels`](mod@crate::kernels)). Smaller is closer.
//!
//! `Dot` is HNSW's weak case when the data lie on a low-dimensional curve
//! (600 points of a spiral in 4-d, norms 0.5–2): about one parallel build
//! in a hundred then leaves stretches of the curve out of reach of an
//! `ef` of 128 (recall@5 down to 0.7–0.85 where the others give 0.95–1).
//! Spread data (16-d random directions, same norms) gave 0.99–1.0 over
//! 1,500 builds; real text embeddings are spread data.
//!
//! # Copies
//!
//! Exact copies of one vector (the same text remembered many times) are
//! kept out of the graph: the first node with a vector is linked as usual,
//! and every later node with bit-for-bit the same vector becomes a *copy*
//! of it, with no links in or out, chained from it (`next_copy`). A search
//! that reaches the first node offers its copies to the results at the same
//! distance, each through the caller's filter. Linked as ordinary nodes, 51
//! copies each of 97 vectors filled every candidate list and neighbour list
//! with zero-distance copies: each group became a closed clique at level 0
//! and a query stayed in whichever group it entered first (a CI failure,
//! now `many_copies_of_few_vectors_keep_recall`).
//!
//! # Levels
//!
//! A node's level is drawn from its pk (SplitMix64 → `⌊−ln u · 1/ln M⌋`,
//! at most [`MAX_LEVEL`]), so the same rows always give the same levels.
//! The parallel insertion order still makes two builds differ slightly.

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
    io::{self, Read, Write},
    sync::{
        Mutex, RwLock,
        atomic::{
            AtomicBool, AtomicU32, AtomicUsize, Ordering::Acquire, Ordering::Relaxed,
            Ordering::Release,
        },
    },
};

/// The highest level a node can get.
pub const MAX_LEVEL: u8 = 16;

const MAGIC: &[u8; 12] = b"STRATA-HNSW\0";
/// 2: exact copies are unlinked (see "Copies"); a format-1 file, whose
/// copies are linked, is rebuilt.
const FORMAT: u32 = 2;
/// No node (end of a copy chain; "not a copy").
const NONE: u32 = u32::MAX;

/// How distances are computed (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// `1 − a·b` on normalised vectors.
    Cosine,
    /// Squared euclidean distance.
    L2,
    /// `−a·b`: maximum inner product search. Not a metric (a point need not
    /// be its own nearest neighbour), but HNSW's greedy search and
    /// neighbour heuristic work on it as hnswlib's `ip` space does; the
    /// unit tests measure its recall on vectors of uneven norms.
    Dot,
}

/// A distance that sorts (NaN last).
#[derive(Clone, Copy, PartialEq)]
struct D(f32);
impl Eq for D {}
impl PartialOrd for D {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for D {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// Epoch-stamped visited marks: clearing is one increment.
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn new() -> Visited {
        Visited {
            marks: Vec::new(),
            epoch: 0,
        }
    }

    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `i`; false when it was already marked.
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }
}

/// Scratch space of one search (kept in a pool between searches).
struct Scratch {
    visited: Visited,
    links: Vec<u32>,
    fresh: Vec<u32>,
}

/// What a build reports to, and is stopped by.
pub struct Progress<'a> {
    /// Nodes inserted so far (added to as the build goes).
    pub done: &'a AtomicUsize,
    /// Set to stop at the next node.
    pub cancelled: &'a AtomicBool,
    /// Called every few hundred nodes with how many were just inserted.
    pub tick: &'a (dyn Fn(u64) + Sync),
}

/// The graph. Node `i` is the `i`-th vector pushed; `pks[i]` names its row.
pub struct Hnsw {
    space: Space,
    dim: usize,
    m: usize,
    m0: usize,
    ef_construction: usize,
    kernel: fn(&[f32], &[f32]) -> f32,
    pks: Vec<i64>,
    data: Vec<f32>,
    levels: Vec<u8>,
    /// `m0 + 1` slots per node: count, then ids.
    links0: Vec<AtomicU32>,
    /// Where node `i`'s upper links start in `upper` (levels 1..=level,
    /// `m + 1` slots each).
    upper_start: Vec<usize>,
    upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    /// Level-0 in-degree of each node.
    indeg: Vec<AtomicU32>,
    /// For a copy, the node it copies (the first with its vector); else
    /// [`NONE`].
    copy_of: Vec<u32>,
    /// The next copy of the same vector after node `i` (a chain starting
    /// at the first node), or [`NONE`].
    next_copy: Vec<u32>,
    /// Hash of a vector's bits → the first node with a vector of that hash
    /// (a collision with another vector just leaves that one linked).
    firsts: std::collections::HashMap<u64, u32>,
    /// Nodes whose level-0 in-degree fell to 0 (to [`repair`](Self::repair)).
    orphans: Mutex<Vec<u32>>,
    /// Entry node and its level.
    entry: RwLock<Option<(u32, u8)>>,
    /// Held while inserting a node above the top level.
    promote: Mutex<()>,
    pool: Mutex<Vec<Scratch>>,
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of a vector's bits, for finding copies (not stored: a reader
/// finds the copies again with its own hash, and a collision only leaves a
/// copy linked as an ordinary node). Four independent lanes, so the
/// multiplications overlap: it runs over every vector when a graph is read.
fn bits_hash(v: &[f32]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = [
        0x243F_6A88_85A3_08D3u64,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let mut chunks = v.chunks_exact(4);
    for c in &mut chunks {
        for (h, x) in h.iter_mut().zip(c) {
            *h = (h.rotate_left(5) ^ u64::from(x.to_bits())).wrapping_mul(K);
        }
    }
    for (h, x) in h.iter_mut().zip(chunks.remainder()) {
        *h = (h.rotate_left(5) ^ u64::from(x.to_bits())).wrapping_mul(K);
    }
    h.iter().fold(v.len() as u64, |acc, &x| {
        (acc.rotate_left(23) ^ x).wrapping_mul(K)
    })
}

/// Bit-for-bit equal vectors (what makes a copy: `-0.0` and `0.0` differ).
pub(crate) fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hnsw {
    /// An empty graph. `m` is clamped to 2..=128; level 0 holds `2m` links.
    pub fn new(space: Space, dim: usize, m: usize, ef_construction: usize) -> Hnsw {
        let m = m.clamp(2, 128);
        let k = crate::kernels::kernels();
        Hnsw {
            space,
            dim,
            m,
            m0: 2 * m,
            ef_construction: ef_construction.max(m),
            kernel: match space {
                Space::Cosine | Space::Dot => k.dot,
                Space::L2 => k.l2,
            },
            pks: Vec::new(),
            data: Vec::new(),
            levels: Vec::new(),
            links0: Vec::new(),
            upper_start: Vec::new(),
            upper: Vec::new(),
            locks: Vec::new(),
            indeg: Vec::new(),
            copy_of: Vec::new(),
            next_copy: Vec::new(),
            firsts: std::collections::HashMap::new(),
            orphans: Mutex::new(Vec::new()),
            entry: RwLock::new(None),
            promote: Mutex::new(()),
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Nodes in the graph.
    pub fn len(&self) -> usize {
        self.pks.len()
    }

    /// Whether the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.pks.is_empty()
    }

    /// Node `i`'s pk.
    pub fn pk(&self, i: u32) -> i64 {
        self.pks[i as usize]
    }

    /// Every node's pk, in node order.
    pub fn pks(&self) -> &[i64] {
        &self.pks
    }

    /// Bytes held (vectors, links, pks).
    pub fn bytes(&self) -> usize {
        // Per node: pk, level, upper offset, in-degree, copy links, lock.
        let per_node = 8 + 1 + 8 + 4 + 8 + std::mem::size_of::<Mutex<()>>();
        // A hash map slot: key, value and a control byte, at its capacity.
        let firsts = self.firsts.capacity() * (8 + 4 + 1);
        self.data.len() * 4
            + (self.links0.len() + self.upper.len()) * 4
            + self.len() * per_node
            + firsts
    }

    /// Nodes that are exact copies of an earlier node (kept out of the
    /// graph; see the module docs).
    pub fn copies(&self) -> usize {
        self.copy_of.iter().filter(|&&c| c != NONE).count()
    }

    /// Records node `i` (its vector already stored) as a copy of an earlier
    /// node with bit-for-bit the same vector, if there is one.
    fn note_copy(&mut self, i: u32) {
        let v = self.vector(i);
        let h = bits_hash(v);
        match self.firsts.get(&h) {
            Some(&f) if bits_eq(self.vector(f), v) => {
                self.copy_of[i as usize] = f;
                self.next_copy[i as usize] = self.next_copy[f as usize];
                self.next_copy[f as usize] = i;
            }
            Some(_) => {}
            None => {
                self.firsts.insert(h, i);
            }
        }
    }

    /// Node `i`'s vector.
    #[inline]
    pub fn vector(&self, i: u32) -> &[f32] {
        let s = i as usize * self.dim;
        &self.data[s..s + self.dim]
    }

    #[inline]
    fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut x = (self.kernel)(a, b);
        if !x.is_finite() {
            // Vectors past ~1e19 overflow the f32 kernel; f64 keeps the
            // order where the result fits f32 (beyond, it saturates: the
            // graph only guides, candidates are rescored exactly).
            x = match self.space {
                Space::L2 => crate::kernels::l2_f64(a, b),
                _ => crate::kernels::dot_f64(a, b),
            } as f32;
        }
        match self.space {
            Space::Cosine => 1.0 - x,
            Space::L2 => x,
            Space::Dot => -x,
        }
    }

    fn level_for(&self, pk: i64) -> u8 {
        let u = ((splitmix(pk as u64) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let ml = 1.0 / (self.m as f64).ln();
        ((-u.ln() * ml).floor() as u64).min(MAX_LEVEL as u64) as u8
    }

    #[inline]
    fn slots(&self, node: u32, level: u8) -> &[AtomicU32] {
        if level == 0 {
            let s = node as usize * (self.m0 + 1);
            &self.links0[s..s + self.m0 + 1]
        } else {
            let s = self.upper_start[node as usize] + (level as usize - 1) * (self.m + 1);
            &self.upper[s..s + self.m + 1]
        }
    }

    /// Copies node's links at `level` into `out`.
    #[inline]
    fn links(&self, node: u32, level: u8, out: &mut Vec<u32>) {
        let slots = self.slots(node, level);
        let n = (slots[0].load(Acquire) as usize).min(slots.len() - 1);
        out.clear();
        out.extend(slots[1..=n].iter().map(|s| s.load(Relaxed)));
    }

    /// Replaces node's links at `level` (the caller holds the node's lock).
    fn set_links(&self, node: u32, level: u8, ids: impl ExactSizeIterator<Item = u32>) {
        let slots = self.slots(node, level);
        let n = ids.len().min(slots.len() - 1);
        for (s, id) in slots[1..].iter().zip(ids) {
            s.store(id, Relaxed);
        }
        slots[0].store(n as u32, Release);
    }

    /// Appends nodes for `points` (storage only; [`insert_range`](Self::insert_range) links
    /// them). Returns the first new node.
    pub fn push(&mut self, points: &[(i64, &[f32])]) -> u32 {
        let first = self.pks.len();
        assert!(
            first + points.len() < u32::MAX as usize,
            "an HNSW graph holds fewer than 2^32 − 1 nodes"
        );
        self.data.reserve(points.len() * self.dim);
        for (pk, v) in points {
            assert_eq!(
                v.len(),
                self.dim,
                "vector of pk {pk} has the wrong dimension"
            );
            let node = self.pks.len() as u32;
            self.pks.push(*pk);
            self.data.extend_from_slice(v);
            self.copy_of.push(NONE);
            self.next_copy.push(NONE);
            self.note_copy(node);
            // A copy is never linked: no upper levels.
            let level = if self.copy_of[node as usize] == NONE {
                self.level_for(*pk)
            } else {
                0
            };
            self.levels.push(level);
            self.links0
                .extend((0..self.m0 + 1).map(|_| AtomicU32::new(0)));
            self.upper_start.push(self.upper.len());
            self.upper
                .extend((0..level as usize * (self.m + 1)).map(|_| AtomicU32::new(0)));
            self.locks.push(Mutex::new(()));
            self.indeg.push(AtomicU32::new(0));
        }
        first as u32
    }

    fn scratch(&self) -> Scratch {
        lock(&self.pool).pop().unwrap_or_else(|| Scratch {
            visited: Visited::new(),
            links: Vec::with_capacity(self.m0),
            fresh: Vec::with_capacity(self.m0),
        })
    }

    fn give_back(&self, s: Scratch) {
        lock(&self.pool).push(s);
    }

    /// Links nodes `from..len()` into the graph, on all cores. Returns false
    /// when `progress` was cancelled first (the graph is then partial:
    /// drop it).
    pub fn insert_range(&self, from: u32, progress: Option<&Progress<'_>>) -> bool {
        let end = self.len() as u32;
        let mut from = from;
        if from < end
            && self
                .entry
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
        {
            // The first node only becomes the entry point.
            let mut s = self.scratch();
            self.insert_node(from, &mut s);
            self.give_back(s);
            from += 1;
            if let Some(p) = progress {
                p.done.fetch_add(1, Relaxed);
                (p.tick)(1);
            }
        }
        let count = (end - from) as usize;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(count.div_ceil(64))
            .max(1);
        let next = AtomicUsize::new(from as usize);
        let cancelled = || progress.is_some_and(|p| p.cancelled.load(Acquire));
        let work = || {
            let mut s = self.scratch();
            let mut since = 0u64;
            loop {
                if cancelled() {
                    break;
                }
                let i = next.fetch_add(1, Relaxed);
                if i >= end as usize {
                    break;
                }
                self.insert_node(i as u32, &mut s);
                since += 1;
                if since == 256 {
                    if let Some(p) = progress {
                        p.done.fetch_add(256, Relaxed);
                        (p.tick)(256);
                    }
                    since = 0;
                }
            }
            if let Some(p) = progress {
                p.done.fetch_add(since as usize, Relaxed);
                (p.tick)(since);
            }
            self.give_back(s);
        };
        if threads <= 1 {
            work();
        } else {
            std::thread::scope(|scope| {
                for _ in 1..threads {
                    scope.spawn(work);
                }
                work();
            });
        }
        if cancelled() {
            return false;
        }
        self.repair();
        true
    }

    /// Gives every node that no other node links to at level 0 an in-link,
    /// so searches can reach it. Pruning a full neighbour list drops links,
    /// and in a plain HNSW about 0.5 % of the nodes end up unreachable (22
    /// of 4,000 in the unit test's data): rows no query could ever return.
    /// The orphan is added to the list of its nearest out-neighbour with
    /// room, or replaces that neighbour's farthest link whose target has
    /// other in-links, so no new orphan is made.
    fn repair(&self) {
        let orphans = std::mem::take(&mut *lock(&self.orphans));
        let entry = self
            .entry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .map(|e| e.0);
        let mut links = Vec::with_capacity(self.m0);
        let mut theirs = Vec::with_capacity(self.m0 + 1);
        for o in orphans {
            if Some(o) == entry
                || self.indeg[o as usize].load(Relaxed) > 0
                || self.copy_of[o as usize] != NONE
            {
                continue;
            }
            let vo = self.vector(o);
            self.links(o, 0, &mut links);
            let mut near: Vec<(f32, u32)> = links
                .iter()
                .map(|&n| (self.dist(vo, self.vector(n)), n))
                .collect();
            near.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut linked = false;
            for (_, n) in near {
                let _g = lock(&self.locks[n as usize]);
                self.links(n, 0, &mut theirs);
                if theirs.len() < self.m0 {
                    theirs.push(o);
                } else {
                    let vn = self.vector(n);
                    let victim = theirs
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| self.indeg[**x as usize].load(Relaxed) >= 2)
                        .map(|(k, &x)| (self.dist(vn, self.vector(x)), k))
                        .max_by(|a, b| a.0.total_cmp(&b.0));
                    let Some((_, k)) = victim else { continue };
                    self.indeg[theirs[k] as usize].fetch_sub(1, Relaxed);
                    theirs[k] = o;
                }
                self.set_links(n, 0, theirs.iter().copied());
                self.indeg[o as usize].fetch_add(1, Relaxed);
                linked = true;
                break;
            }
            if !linked {
                // Kept for the next batch's repair (its neighbours' lists
                // change as nodes arrive).
                lock(&self.orphans).push(o);
            }
        }
    }

    /// Greedy descent at `level` from `cur` towards `q`.
    fn greedy(&self, q: &[f32], mut cur: (f32, u32), level: u8, s: &mut Scratch) -> (f32, u32) {
        loop {
            let mut moved = false;
            self.links(cur.1, level, &mut s.links);
            for &n in &s.links {
                let d = self.dist(q, self.vector(n));
                if d < cur.0 {
                    cur = (d, n);
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// The `ef` nodes nearest `q` at `level` reachable from `entry`, sorted
    /// nearest first; with `keep`, only kept nodes are returned (all are
    /// traversed). With `copies`, each node reached offers its copies too
    /// (searches; an insert links to linked nodes only).
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        q: &[f32],
        entry: &[(f32, u32)],
        ef: usize,
        level: u8,
        keep: Option<&dyn Fn(u32) -> bool>,
        copies: bool,
        salt: u64,
        s: &mut Scratch,
    ) -> Vec<(f32, u32)> {
        s.visited.reset(self.len());
        // `ef` comes from configs and queries: no search holds more than
        // every node, whatever it asks for.
        let ef = ef.clamp(1, self.len().max(1));
        // Equal distances are ordered by a hash of (node, salt), not by node
        // id: inserts pass their own node as the salt, so among exact
        // duplicates each new node links to a different subset. By node id,
        // every duplicate linked to the same few oldest ones, whose lists
        // could hold only so many reverse links: a third of 1,500 identical
        // vectors became unreachable.
        let key = |d: f32, n: u32| (D(d), splitmix(n as u64 ^ salt) as u32, n);
        type Key = (D, u32, u32);
        let mut candidates: BinaryHeap<Reverse<(D, u32)>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Key> = BinaryHeap::with_capacity(ef + 1);
        let kept = |i: u32| keep.is_none_or(|k| k(i));
        let worst = |r: &BinaryHeap<Key>| {
            if r.len() >= ef {
                r.peek()
                    .map_or((D(f32::INFINITY), u32::MAX, u32::MAX), |x| *x)
            } else {
                (D(f32::INFINITY), u32::MAX, u32::MAX)
            }
        };
        // The traversal's bound comes from the `ef` best *linked* nodes
        // that gave a result (`reached`), not from the results: 51 copies
        // of one vector would otherwise fill an `ef` of 64 and shrink the
        // search to a greedy walk that stops in the first group it finds.
        // Without copies both heaps hold the same nodes.
        let mut reached: BinaryHeap<Key> = BinaryHeap::with_capacity(ef + 1);
        // Node `n` at distance `d` (and, with `copies`, each copy of it)
        // into the results if kept.
        let offer = |results: &mut BinaryHeap<Key>,
                     reached: &mut BinaryHeap<Key>,
                     bound: &mut Key,
                     d: f32,
                     n: u32| {
            let mut any = false;
            let mut x = n;
            while x != NONE {
                if kept(x) {
                    any = true;
                    results.push(key(d, x));
                    if results.len() > ef {
                        results.pop();
                    }
                }
                x = if copies {
                    self.next_copy[x as usize]
                } else {
                    NONE
                };
            }
            if any {
                reached.push(key(d, n));
                if reached.len() > ef {
                    reached.pop();
                }
                *bound = worst(reached);
            }
        };
        let mut bound = worst(&reached);
        for &(d, e) in entry {
            if s.visited.insert(e) {
                candidates.push(Reverse((D(d), e)));
                offer(&mut results, &mut reached, &mut bound, d, e);
            }
        }
        while let Some(Reverse((D(d), c))) = candidates.pop() {
            if d > bound.0.0 {
                break;
            }
            self.links(c, level, &mut s.links);
            // The likely next candidate's links, fetched while this one's
            // neighbours are scored.
            if let Some(Reverse((_, next))) = candidates.peek() {
                let slots = self.slots(*next, level);
                crate::kernels::prefetch_bytes(slots.as_ptr().cast(), std::mem::size_of_val(slots));
            }
            s.fresh.clear();
            for &n in &s.links {
                if s.visited.insert(n) {
                    crate::kernels::prefetch(self.vector(n));
                    s.fresh.push(n);
                }
            }
            for (j, &n) in s.fresh.iter().enumerate() {
                if let Some(&next) = s.fresh.get(j + 1) {
                    crate::kernels::prefetch_all(self.vector(next));
                }
                let dn = self.dist(q, self.vector(n));
                if key(dn, n) < bound {
                    candidates.push(Reverse((D(dn), n)));
                    offer(&mut results, &mut reached, &mut bound, dn, n);
                }
            }
        }
        let mut out: Vec<Key> = results.into_vec();
        out.sort_unstable();
        out.into_iter().map(|(D(d), _, n)| (d, n)).collect()
    }

    /// The heuristic of the paper (algorithm 4, without extending or keeping
    /// pruned candidates): going out from the nearest, a candidate is kept
    /// unless it is closer to an already kept one than to the base point.
    /// `cands` is sorted nearest first.
    fn select(&self, cands: &[(f32, u32)], m: usize, out: &mut Vec<(f32, u32)>) {
        out.clear();
        for &(d, c) in cands {
            if out.len() >= m {
                break;
            }
            let vc = self.vector(c);
            if out.iter().all(|&(_, s)| self.dist(vc, self.vector(s)) >= d) {
                out.push((d, c));
            }
        }
    }

    fn insert_node(&self, i: u32, s: &mut Scratch) {
        if self.copy_of[i as usize] != NONE {
            return; // reached through the node it copies
        }
        let q = self.vector(i);
        let level = self.levels[i as usize];
        let entry = *self.entry.read().unwrap_or_else(|p| p.into_inner());
        let Some((mut ep, mut top)) = entry else {
            let mut e = self.entry.write().unwrap_or_else(|p| p.into_inner());
            if e.is_none() {
                *e = Some((i, level));
                return;
            }
            drop(e);
            return self.insert_node(i, s);
        };
        // A node that raises the top level is inserted alone among such
        // nodes (as in hnswlib): two at once would each link the new levels
        // without the other. Rare: about one node in M^top.
        let _promote = (level > top).then(|| {
            let g = lock(&self.promote);
            if let Some((e, t)) = *self.entry.read().unwrap_or_else(|p| p.into_inner()) {
                (ep, top) = (e, t);
            }
            g
        });
        let mut cur = (self.dist(q, self.vector(ep)), ep);
        for l in (level.saturating_add(1)..=top).rev() {
            cur = self.greedy(q, cur, l, s);
        }
        let mut eps = vec![cur];
        let mut chosen = Vec::with_capacity(self.m);
        let mut pruned = Vec::with_capacity(self.m0 + 1);
        let mut cands = Vec::with_capacity(self.m0 + 1);
        for l in (0..=level.min(top)).rev() {
            let mut w =
                self.search_layer(q, &eps, self.ef_construction, l, None, false, i as u64, s);
            w.retain(|x| x.1 != i);
            self.select(&w, self.m, &mut chosen);
            {
                // Another insert may already have linked to `i` here (it
                // reached `i` through a level above): keep those links,
                // pruning the union if it overflows. Counted under the
                // lock, since another insert may prune these links (and
                // count that) as soon as it is released.
                let _g = lock(&self.locks[i as usize]);
                self.links(i, l, &mut s.links);
                if s.links.is_empty() {
                    self.set_links(i, l, chosen.iter().map(|x| x.1));
                    if l == 0 {
                        for &(_, n) in &chosen {
                            self.indeg[n as usize].fetch_add(1, Relaxed);
                        }
                    }
                } else {
                    let cap = if l == 0 { self.m0 } else { self.m };
                    cands.clear();
                    cands.extend(s.links.iter().map(|&x| (self.dist(q, self.vector(x)), x)));
                    cands.extend(chosen.iter().filter(|c| !s.links.contains(&c.1)));
                    cands.sort_by(|a, b| a.0.total_cmp(&b.0));
                    if cands.len() > cap {
                        self.select(&cands, cap, &mut pruned);
                    } else {
                        pruned.clone_from(&cands);
                    }
                    self.set_links(i, l, pruned.iter().map(|x| x.1));
                    if l == 0 {
                        self.count_relink(&cands, &pruned, &s.links);
                    }
                }
            }
            let cap = if l == 0 { self.m0 } else { self.m };
            for &(dn, n) in &chosen {
                let _g = lock(&self.locks[n as usize]);
                self.links(n, l, &mut s.links);
                if s.links.contains(&i) {
                    continue;
                }
                if s.links.len() < cap {
                    s.links.push(i);
                    self.set_links(n, l, s.links.iter().copied());
                    if l == 0 {
                        self.indeg[i as usize].fetch_add(1, Relaxed);
                    }
                } else {
                    let vn = self.vector(n);
                    cands.clear();
                    cands.extend(s.links.iter().map(|&x| (self.dist(vn, self.vector(x)), x)));
                    cands.push((dn, i));
                    // Ties (exact duplicates are common: the same text
                    // embedded twice) go to the node with fewer in-links,
                    // else a newcomer would always lose to the hubs.
                    // (Read once per candidate: other threads change them,
                    // and a sort needs keys that hold still.)
                    cands
                        .sort_by_cached_key(|&(d, x)| (D(d), self.indeg[x as usize].load(Relaxed)));
                    self.select(&cands, cap, &mut pruned);
                    self.set_links(n, l, pruned.iter().map(|x| x.1));
                    if l == 0 {
                        self.count_relink(&cands, &pruned, &s.links);
                    }
                }
            }
            if l == 0 && self.indeg[i as usize].load(Relaxed) == 0 {
                lock(&self.orphans).push(i);
            }
            eps = w;
        }
        if level > top {
            let mut e = self.entry.write().unwrap_or_else(|p| p.into_inner());
            if e.is_none_or(|(_, t)| level > t) {
                *e = Some((i, level));
            }
        }
    }

    /// Level-0 in-degrees after a list that held `linked` was replaced by
    /// `after`, chosen from the candidates `before` (`linked` and new ones).
    fn count_relink(&self, before: &[(f32, u32)], after: &[(f32, u32)], linked: &[u32]) {
        for &(_, x) in before {
            let kept = after.iter().any(|y| y.1 == x);
            let was = linked.contains(&x);
            if was && !kept && self.indeg[x as usize].fetch_sub(1, Relaxed) == 1 {
                lock(&self.orphans).push(x);
            } else if !was && kept {
                self.indeg[x as usize].fetch_add(1, Relaxed);
            }
        }
    }

    /// The `k` nodes nearest `q` among those `keep` accepts, exploring `ef`
    /// candidates (at least `k`), as `(distance, node)`, nearest first.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<(f32, u32)> {
        let Some((ep, top)) = *self.entry.read().unwrap_or_else(|p| p.into_inner()) else {
            return Vec::new();
        };
        // `k` and `ef` may come from a caller: never more than the nodes.
        let k = k.min(self.len());
        let mut s = self.scratch();
        let mut cur = (self.dist(q, self.vector(ep)), ep);
        for l in (1..=top).rev() {
            cur = self.greedy(q, cur, l, &mut s);
        }
        let mut found = self.search_layer(q, &[cur], ef.max(k), 0, keep, true, 0, &mut s);
        self.give_back(s);
        found.truncate(k);
        found
    }

    /// Writes the graph (little-endian, checksummed; see [`read`](Self::read)).
    pub fn write(&self, out: impl Write) -> io::Result<()> {
        let mut w = Hashing::new(io::BufWriter::with_capacity(1 << 20, out));
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT.to_le_bytes())?;
        w.write_all(&[match self.space {
            Space::Cosine => 0,
            Space::L2 => 1,
            Space::Dot => 2,
        }])?;
        let (ep, top) = self
            .entry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .map_or((u32::MAX, 0), |e| e);
        for x in [
            self.dim,
            self.m,
            self.ef_construction,
            self.len(),
            self.upper.len(),
        ] {
            w.write_all(&(x as u64).to_le_bytes())?;
        }
        w.write_all(&ep.to_le_bytes())?;
        w.write_all(&[top])?;
        write_le(&mut w, self.pks.iter().map(|x| x.to_le_bytes()))?;
        w.write_all(&self.levels)?;
        write_le(&mut w, self.data.iter().map(|x| x.to_le_bytes()))?;
        write_le(
            &mut w,
            self.links0
                .iter()
                .chain(&self.upper)
                .map(|s| s.load(Relaxed).to_le_bytes()),
        )?;
        let sum = w.sum();
        let mut inner = w.inner;
        inner.write_all(&sum.to_le_bytes())?;
        inner.flush()
    }

    /// Reads a graph written by [`write`](Self::write), which must have been
    /// built for `space`, `dim`, `m` and `ef_construction` (as given to
    /// [`new`](Self::new)). A wrong checksum, a truncated file, other
    /// parameters, a duplicate pk or a link that points nowhere is an error
    /// (the caller rebuilds).
    pub fn read(
        bytes: &[u8],
        space: Space,
        dim: usize,
        m: usize,
        ef_construction: usize,
    ) -> Result<Hnsw, FormatError> {
        Self::read_from(bytes, bytes.len() as u64, space, dim, m, ef_construction)
    }

    /// [`read`](Self::read) from a stream of `len` bytes (a file), parsed as
    /// it is read: no copy of the whole file is held besides the graph.
    /// The header is checked first (magic, format, parameters, and that
    /// `len` is exactly the size it describes, so nothing is allocated
    /// beyond what the file holds); the checksum is checked before any
    /// other field is trusted.
    pub fn read_from(
        input: impl Read,
        len: u64,
        space: Space,
        dim: usize,
        m: usize,
        ef_construction: usize,
    ) -> Result<Hnsw, FormatError> {
        let mut r = HashingReader {
            inner: io::BufReader::with_capacity(1 << 16, input),
            hash: Hashing::new(io::sink()),
        };
        Self::read_inner(&mut r, len, space, dim, m, ef_construction).map_err(FormatError)
    }

    fn read_inner<R: Read>(
        r: &mut HashingReader<R>,
        len: u64,
        space: Space,
        dim: usize,
        m: usize,
        ef_construction: usize,
    ) -> Result<Hnsw, String> {
        let mut g = Hnsw::new(space, dim, m, ef_construction);
        let mut magic = [0u8; MAGIC.len()];
        if len < MAGIC.len() as u64 + 8 || r.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err("not a strata HNSW file".into());
        }
        let u32_ = |r: &mut HashingReader<R>| -> io::Result<u32> {
            let mut b = [0; 4];
            r.read_exact(&mut b)?;
            Ok(u32::from_le_bytes(b))
        };
        let u64_ = |r: &mut HashingReader<R>| -> io::Result<u64> {
            let mut b = [0; 8];
            r.read_exact(&mut b)?;
            Ok(u64::from_le_bytes(b))
        };
        let short = |e: io::Error| format!("truncated: {e}");
        let format = u32_(r).map_err(short)?;
        if format != FORMAT {
            return Err(format!("format {format}, this build reads {FORMAT}"));
        }
        let mut b = [0u8; 1];
        r.read_exact(&mut b).map_err(short)?;
        let file_space = match b[0] {
            0 => Space::Cosine,
            1 => Space::L2,
            2 => Space::Dot,
            x => return Err(format!("unknown space {x}")),
        };
        let mut hdr = [0u64; 5];
        for x in &mut hdr {
            *x = u64_(r).map_err(short)?;
        }
        let [fdim, fm, efc, n, upper_len] = hdr.map(|x| x as usize);
        if file_space != space || fdim != dim || fm != g.m || efc != g.ef_construction {
            return Err(format!(
                "made for {file_space:?} × {fdim} (m {fm}, ef_construction {efc}), wanted \
                 {space:?} × {dim} (m {}, ef_construction {})",
                g.m, g.ef_construction
            ));
        }
        let m = g.m;
        if n >= u32::MAX as usize {
            return Err(format!("implausible header: {n} nodes"));
        }
        let ep = u32_(r).map_err(short)?;
        r.read_exact(&mut b).map_err(short)?;
        let top = b[0];
        // Magic, format, space, five header words, entry point, top level;
        // then the body; then the checksum.
        let head = MAGIC.len() + 4 + 1 + 5 * 8 + 4 + 1;
        let need = n
            .checked_mul(8 + 1 + 4 * dim + 4 * (2 * m + 1))
            .and_then(|x| x.checked_add(upper_len.checked_mul(4)?))
            .and_then(|x| x.checked_add(head + 8));
        if need.map(|x| x as u64) != Some(len) {
            return Err(format!(
                "truncated or corrupt: {len} bytes, where its header describes {} for {n} nodes of {dim} dims",
                need.map_or_else(|| "more than can be".to_string(), |x| x.to_string()),
            ));
        }
        read_le(r, n, &mut g.pks, |c| {
            i64::from_le_bytes(c.try_into().expect("8"))
        })
        .map_err(short)?;
        g.levels = vec![0; n];
        r.read_exact(&mut g.levels).map_err(short)?;
        read_le(r, n * dim, &mut g.data, |c| {
            f32::from_le_bytes(c.try_into().expect("4"))
        })
        .map_err(short)?;
        let word = |c: &[u8]| AtomicU32::new(u32::from_le_bytes(c.try_into().expect("4")));
        read_le(r, n * (g.m0 + 1), &mut g.links0, word).map_err(short)?;
        read_le(r, upper_len, &mut g.upper, word).map_err(short)?;
        let sum = r.hash.sum();
        let mut tail = [0u8; 8];
        r.inner.read_exact(&mut tail).map_err(short)?;
        if sum != u64::from_le_bytes(tail) {
            return Err("checksum mismatch (the file is corrupt or truncated)".into());
        }
        let mut sorted = g.pks.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("pk {} appears twice", w[0]));
        }
        drop(sorted);
        let mut start = 0usize;
        for &level in &g.levels {
            if level > MAX_LEVEL {
                return Err(format!("a node at level {level}"));
            }
            g.upper_start.push(start);
            start += level as usize * (m + 1);
        }
        if start != upper_len {
            return Err(format!(
                "upper links: {upper_len} slots, the levels need {start}"
            ));
        }
        g.locks = (0..n).map(|_| Mutex::new(())).collect();
        g.indeg = (0..n).map(|_| AtomicU32::new(0)).collect();
        g.copy_of = vec![NONE; n];
        g.next_copy = vec![NONE; n];
        for i in 0..n as u32 {
            g.note_copy(i);
            if g.copy_of[i as usize] != NONE
                && (g.levels[i as usize] != 0 || g.slots(i, 0)[0].load(Relaxed) != 0)
            {
                return Err(format!("node {i} is a copy but has links"));
            }
        }
        for i in 0..n as u32 {
            for l in 0..=g.levels[i as usize] {
                let slots = g.slots(i, l);
                let count = slots[0].load(Relaxed) as usize;
                if count >= slots.len() {
                    return Err(format!("node {i} has {count} links at level {l}"));
                }
                for s in &slots[1..=count] {
                    let t = s.load(Relaxed);
                    if t as usize >= n || g.levels[t as usize] < l {
                        return Err(format!("node {i} links to {t} at level {l}"));
                    }
                    if g.copy_of[t as usize] != NONE {
                        return Err(format!("node {i} links to {t}, a copy, at level {l}"));
                    }
                    if l == 0 {
                        g.indeg[t as usize].fetch_add(1, Relaxed);
                    }
                }
            }
        }
        *g.entry.get_mut().unwrap_or_else(|p| p.into_inner()) = match ep {
            u32::MAX if n == 0 => None,
            e if (e as usize) < n && g.levels[e as usize] == top => Some((e, top)),
            e => {
                return Err(format!(
                    "entry point {e} at level {top} is not a node of it"
                ));
            }
        };
        Ok(g)
    }
}

/// A reader that hashes what it reads (the checksum of a graph file).
struct HashingReader<R> {
    inner: io::BufReader<R>,
    hash: Hashing<io::Sink>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Appends `count` little-endian values of `size_of::<T>()` bytes from `r`,
/// decoded by `decode`, to `out`, 64 KiB at a time.
fn read_le<T>(
    r: &mut impl Read,
    count: usize,
    out: &mut Vec<T>,
    decode: impl Fn(&[u8]) -> T,
) -> io::Result<()> {
    let size = std::mem::size_of::<T>();
    let mut buf = vec![0u8; (1 << 16) / size * size];
    let mut left = count * size;
    out.reserve_exact(count);
    while left > 0 {
        let take = left.min(buf.len());
        r.read_exact(&mut buf[..take])?;
        out.extend(buf[..take].chunks_exact(size).map(&decode));
        left -= take;
    }
    Ok(())
}

/// Why a graph file could not be read ([`Hnsw::read`]): a wrong checksum, a
/// truncation, other parameters, a field out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(String);

/// Writes fixed-size little-endian items through a buffer of 64 KiB.
fn write_le<const N: usize>(
    w: &mut impl Write,
    items: impl Iterator<Item = [u8; N]>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for b in items {
        buf.extend_from_slice(&b);
        if buf.len() + N > 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// A writer that hashes what passes through it: a corruption check, not a
/// cryptographic one (anyone can recompute it; the reader validates every
/// field as well). FNV-1a's step over the stream's little-endian 64-bit
/// words (so it runs at memory speed), the last `len % 8` bytes one at a
/// time; independent of how the stream was cut into writes.
struct Hashing<W> {
    inner: W,
    state: u64,
    pending: [u8; 8],
    pending_len: usize,
}

const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            state: 0xcbf2_9ce4_8422_2325,
            pending: [0; 8],
            pending_len: 0,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if self.pending_len > 0 {
            let take = (8 - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len < 8 {
                return;
            }
            self.state = (self.state ^ u64::from_le_bytes(self.pending)).wrapping_mul(FNV_PRIME);
            self.pending_len = 0;
        }
        let words = bytes.chunks_exact(8);
        let rest = words.remainder();
        let mut h = self.state;
        for w in words {
            h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(FNV_PRIME);
        }
        self.state = h;
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// The hash of everything written so far.
    fn sum(&self) -> u64 {
        self.pending[..self.pending_len]
            .iter()
            .fold(self.state, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn data(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        (0..n)
            .map(|i| {
                let c = (i % 20) as u64;
                unit(
                    (0..dim as u64)
                        .map(|j| {
                            let a = splitmix(seed ^ (c * 7919 + j)) as f32 / u64::MAX as f32;
                            let b =
                                splitmix(seed ^ ((i as u64) << 20 | j)) as f32 / u64::MAX as f32;
                            a - 0.5 + 0.4 * (b - 0.5)
                        })
                        .collect(),
                )
            })
            .collect()
    }

    fn build(space: Space, points: &[Vec<f32>]) -> Hnsw {
        let mut g = Hnsw::new(space, points[0].len(), 16, 100);
        let pts: Vec<(i64, &[f32])> = points
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 3 + 7, v.as_slice()))
            .collect();
        let first = g.push(&pts);
        assert!(g.insert_range(first, None));
        g
    }

    fn recall(g: &Hnsw, points: &[Vec<f32>], queries: &[Vec<f32>], ef: usize) -> f64 {
        let mut hit = 0;
        for q in queries {
            let mut exact: Vec<(f32, usize)> = points
                .iter()
                .enumerate()
                .map(|(i, p)| (g.dist(q, p), i))
                .collect();
            exact.sort_by(|a, b| a.0.total_cmp(&b.0));
            let want: std::collections::HashSet<i64> =
                exact[..10].iter().map(|&(_, i)| i as i64 * 3 + 7).collect();
            let got = g.search(q, 10, ef, None);
            assert_eq!(got.len(), 10);
            assert!(
                got.windows(2).all(|w| w[0].0 <= w[1].0),
                "sorted nearest first"
            );
            hit += got
                .iter()
                .filter(|&&(_, i)| want.contains(&g.pk(i)))
                .count();
        }
        hit as f64 / (queries.len() * 10) as f64
    }

    #[test]
    fn recall_against_exact_search_in_both_spaces() {
        // Queries held out from the data's own clusters, as an agent's
        // queries resemble its memories.
        let mut points = data(4_050, 32, 1);
        let queries = points.split_off(4_000);
        for space in [Space::Cosine, Space::L2] {
            let g = build(space, &points);
            assert_eq!(g.len(), 4_000);
            let r = recall(&g, &points, &queries, 64);
            assert!(r >= 0.95, "{space:?}: recall@10 {r}");
        }
    }

    #[test]
    fn inner_product_recall_on_uneven_norms() {
        // Norms from 0.5 to 2: the largest inner products are not simply
        // the nearest points, as they are for unit vectors.
        let scale =
            |i: usize| 0.5 + 1.5 * ((splitmix(i as u64) >> 11) as f32 / (1u64 << 53) as f32);
        let mut points: Vec<Vec<f32>> = data(4_050, 32, 3)
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.into_iter().map(|x| x * scale(i)).collect())
            .collect();
        let queries = points.split_off(4_000);
        let g = build(Space::Dot, &points);
        let r = recall(&g, &points, &queries, 32);
        assert!(r >= 0.95, "Dot: recall@10 {r}");
        check_indegrees(&g);
    }

    #[test]
    fn every_node_is_reachable_and_links_are_bounded() {
        let points = data(3_000, 16, 5);
        let g = build(Space::L2, &points);
        check_indegrees(&g);
        assert_eq!(reachable(&g), g.len());
        let mut links = Vec::new();
        // Each point finds itself as its own nearest neighbour.
        let mut found = 0;
        for (i, p) in points.iter().enumerate() {
            let got = g.search(p, 1, 32, None);
            if g.pk(got[0].1) == i as i64 * 3 + 7 {
                found += 1;
            }
        }
        assert!(found >= 2_990, "{found} of 3000 points found themselves");
        // No node is unreachable: each has an in-link at level 0 (the
        // entry point needs none), so an exhaustive search finds them all.
        let mut indeg = vec![0; g.len()];
        for i in 0..g.len() as u32 {
            g.links(i, 0, &mut links);
            for &t in &links {
                indeg[t as usize] += 1;
            }
        }
        let entry = g.entry.read().unwrap().unwrap().0 as usize;
        let orphans: Vec<usize> = (0..g.len())
            .filter(|&i| indeg[i] == 0 && i != entry)
            .collect();
        assert!(orphans.is_empty(), "unreachable nodes: {orphans:?}");
        for (i, p) in points.iter().enumerate() {
            let got = g.search(p, 1, g.len(), None);
            assert_eq!(
                g.pk(got[0].1),
                i as i64 * 3 + 7,
                "exhaustive search for {i}"
            );
        }
        for i in 0..g.len() as u32 {
            g.links(i, 0, &mut links);
            assert!(
                !links.is_empty() && links.len() <= g.m0,
                "node {i}: {links:?}"
            );
            assert!(!links.contains(&i), "node {i} links to itself");
        }
    }

    #[test]
    fn keep_filters_results_but_not_the_traversal() {
        let points = data(3_000, 16, 7);
        let g = build(Space::Cosine, &points);
        let keep = |i: u32| g.pk(i) % 2 == 0;
        for q in data(20, 16, 11) {
            let got = g.search(&q, 10, 64, Some(&keep));
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|&(_, i)| g.pk(i) % 2 == 0));
        }
        let none = |_: u32| false;
        assert!(g.search(&points[0], 10, 64, Some(&none)).is_empty());
    }

    #[test]
    fn incremental_inserts_join_the_graph() {
        let points = data(3_000, 16, 13);
        let mut g = Hnsw::new(Space::L2, 16, 16, 100);
        for chunk in points.chunks(700) {
            let base = g.len();
            let pts: Vec<(i64, &[f32])> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| ((base + i) as i64 * 3 + 7, v.as_slice()))
                .collect();
            let first = g.push(&pts);
            assert!(g.insert_range(first, None));
        }
        let queries: Vec<Vec<f32>> = data(3_040, 16, 13).split_off(3_000);
        let r = recall(&g, &points, &queries, 64);
        assert!(r >= 0.95, "recall@10 {r}");
    }

    #[test]
    fn write_read_round_trip_and_corruption() {
        let mut points = data(1_500, 8, 3);
        // With copies: the reader finds them again, as the writer had them.
        points.extend(std::iter::repeat_n(points[10].clone(), 40));
        let g = build(Space::Cosine, &points);
        let mut bytes = Vec::new();
        g.write(&mut bytes).unwrap();
        let h = Hnsw::read(&bytes, Space::Cosine, 8, 16, 100).unwrap();
        assert_eq!(h.pks, g.pks);
        assert_eq!(h.levels, g.levels);
        assert_eq!((h.copies(), &h.copy_of), (40, &g.copy_of));
        assert_eq!(h.next_copy, g.next_copy);
        let q = &points[10];
        assert_eq!(h.search(q, 5, 32, None), g.search(q, 5, 32, None));
        assert_eq!(h.search(q, 41, 64, None).len(), 41);
        assert!(h.search(q, 41, 64, None).iter().all(|x| x.0.abs() < 1e-6));
        // Wrong space or dimension.
        assert!(
            Hnsw::read(&bytes, Space::L2, 8, 16, 100)
                .map(|_| ())
                .unwrap_err()
                .to_string()
                .contains("made for")
        );
        assert!(Hnsw::read(&bytes, Space::Cosine, 9, 16, 100).is_err());
        // One flipped bit anywhere, or a truncation, is caught.
        for at in [20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(
                Hnsw::read(&bad, Space::Cosine, 8, 16, 100).is_err(),
                "flip at {at}"
            );
        }
        assert!(Hnsw::read(&bytes[..bytes.len() - 100], Space::Cosine, 8, 16, 100).is_err());
        assert!(Hnsw::read(b"nonsense", Space::Cosine, 8, 16, 100).is_err());
    }

    #[test]
    fn cancelled_build_stops_part_way() {
        let points = data(5_000, 16, 21);
        let mut g = Hnsw::new(Space::L2, 16, 16, 100);
        let pts: Vec<(i64, &[f32])> = points
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.as_slice()))
            .collect();
        let first = g.push(&pts);
        let done = AtomicUsize::new(0);
        let cancelled = AtomicBool::new(false);
        // Cancelled from the progress callback once 1,000 nodes are in.
        let tick = |_| {
            if done.load(Relaxed) >= 1_000 {
                cancelled.store(true, Release);
            }
        };
        let p = Progress {
            done: &done,
            cancelled: &cancelled,
            tick: &tick,
        };
        assert!(!g.insert_range(first, Some(&p)));
        let n = done.load(Relaxed);
        assert!((1_000..2_000).contains(&n), "stopped after {n} nodes");
        // Uncancelled, every node is counted (the first one included).
        let mut g = Hnsw::new(Space::L2, 16, 16, 100);
        let first = g.push(&pts);
        let (done, cancelled) = (AtomicUsize::new(0), AtomicBool::new(false));
        let p = Progress {
            done: &done,
            cancelled: &cancelled,
            tick: &|_| {},
        };
        assert!(g.insert_range(first, Some(&p)));
        assert_eq!(done.load(Relaxed), 5_000);
    }

    /// Nodes reachable from the entry point at level 0.
    /// (A copy counts as reached with the node it copies, as searches offer
    /// it.)
    fn reachable(g: &Hnsw) -> usize {
        let Some((entry, _)) = *g.entry.read().unwrap() else {
            return 0;
        };
        let mut seen = vec![false; g.len()];
        let mut stack = vec![entry];
        seen[entry as usize] = true;
        let mut links = Vec::new();
        let mut count = 1;
        while let Some(x) = stack.pop() {
            let mut c = g.next_copy[x as usize];
            while c != NONE {
                count += 1;
                c = g.next_copy[c as usize];
            }
            g.links(x, 0, &mut links);
            for &t in &links {
                if !seen[t as usize] {
                    seen[t as usize] = true;
                    count += 1;
                    stack.push(t);
                }
            }
        }
        count
    }

    /// Level-0 in-degrees counted from the links, checked against the
    /// graph's own counters.
    fn check_indegrees(g: &Hnsw) {
        let mut indeg = vec![0u32; g.len()];
        let mut links = Vec::new();
        for i in 0..g.len() as u32 {
            g.links(i, 0, &mut links);
            for &t in &links {
                indeg[t as usize] += 1;
            }
        }
        for (i, d) in indeg.iter().enumerate() {
            assert_eq!(
                g.indeg[i].load(Relaxed),
                *d,
                "in-degree counter of node {i}"
            );
        }
    }

    #[test]
    fn exact_duplicates_stay_reachable() {
        // The same text embedded many times: 1,500 identical vectors among
        // 1,500 others. Ties go to the node with fewer in-links, so the
        // newcomers are not all cut off by the first ones.
        let mut points = data(1_500, 16, 31);
        let twin = points[0].clone();
        points.extend(std::iter::repeat_n(twin.clone(), 1_500));
        for space in [Space::Cosine, Space::L2] {
            let g = build(space, &points);
            check_indegrees(&g);
            let r = reachable(&g);
            assert!(
                r as f64 >= 0.99 * g.len() as f64,
                "{space:?}: {r} of {} reachable",
                g.len()
            );
            // Every twin is found by a search that accepts only it.
            let mut missed = 0;
            for i in (1_500..3_000).step_by(50) {
                let pk = i as i64 * 3 + 7;
                let only = |n: u32| g.pk(n) == pk;
                if g.search(&twin, 1, g.len(), Some(&only)).is_empty() {
                    missed += 1;
                }
            }
            assert!(missed <= 1, "{space:?}: {missed} of 30 twins unreachable");
        }
    }

    #[test]
    fn many_copies_of_few_vectors_keep_recall() {
        // Found by CI: 5,000 records holding 97 distinct vectors (~51
        // copies each, as when an agent stores the same few texts over and
        // over). Neighbour lists filled with zero-distance copies, each
        // cluster of copies became a closed clique at level 0, and a query
        // stayed in whichever cluster it entered first.
        let distinct = data(97, 24, 5);
        let points: Vec<Vec<f32>> = (0..5_000).map(|i| distinct[i % 97].clone()).collect();
        let queries = data(140, 24, 77).split_off(100);
        for space in [Space::Cosine, Space::L2] {
            let g = build(space, &points);
            check_indegrees(&g);
            assert_eq!(
                g.copies(),
                5_000 - 97,
                "{space:?}: copies kept out of the graph"
            );
            let mut worst = 0.0f32;
            for q in &queries {
                let mut exact: Vec<f32> = distinct.iter().map(|p| g.dist(q, p)).collect();
                exact.sort_by(f32::total_cmp);
                // The 20 nearest records are copies of the nearest distinct
                // vector (51 or 52 of each): all at exact[0].
                let got = g.search(q, 20, 64, None);
                assert_eq!(got.len(), 20, "{space:?}");
                for &(d, _) in &got {
                    worst = worst.max(d - exact[0]);
                }
                // Through a filter that rejects every node the graph links
                // (the first of each vector): only copies can answer.
                let linked_out = |n: u32| g.copy_of[n as usize] != NONE;
                let got = g.search(q, 20, 64, Some(&linked_out));
                assert_eq!(got.len(), 20, "{space:?}, filtered");
                for &(d, n) in &got {
                    assert!(linked_out(n));
                    worst = worst.max(d - exact[0]);
                }
            }
            assert!(
                worst <= 1e-5,
                "{space:?}: a top-20 result is {worst} farther than the nearest vector"
            );
            assert!(
                reachable(&g) as f64 >= 0.99 * g.len() as f64,
                "{space:?}: {} of {} reachable",
                reachable(&g),
                g.len()
            );
        }
    }

    #[test]
    fn tiny_graphs_and_extreme_parameters() {
        for space in [Space::Cosine, Space::L2] {
            // One and two nodes; dimension 1.
            let one = vec![vec![1.0f32]];
            let g = build(space, &one);
            assert_eq!(g.search(&[1.0], 5, 10, None).len(), 1);
            let two = vec![vec![1.0f32], vec![-1.0]];
            let g = build(space, &two);
            let got = g.search(&[-0.9], 5, 10, None);
            assert_eq!(got.len(), 2);
            assert_eq!(g.pk(got[0].1), 10, "nearest first");
            // k = 0, and an ef far beyond the graph, allocate nothing absurd.
            assert!(g.search(&[1.0], 0, 10, None).is_empty());
            assert_eq!(g.search(&[1.0], 2, usize::MAX, None).len(), 2);
        }
        // An empty graph answers nothing.
        let g = Hnsw::new(Space::L2, 4, 16, 100);
        assert!(g.search(&[0.0; 4], 3, 10, None).is_empty());
    }

    /// Rewrites a field of a written graph and its checksum, so only the
    /// reader's field checks can catch it.
    fn tamper(bytes: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
        let mut b = bytes[..bytes.len() - 8].to_vec();
        b[at..at + value.len()].copy_from_slice(value);
        let mut h = Hashing::new(io::sink());
        h.update(&b);
        let sum = h.sum();
        b.extend_from_slice(&sum.to_le_bytes());
        b
    }

    #[test]
    fn a_stream_of_another_length_than_given_is_refused() {
        // d = 5: the four-lane hash's remainder path, with copies.
        let mut points = data(200, 5, 3);
        points.extend(points[..20].to_vec());
        let g = build(Space::Cosine, &points);
        assert_eq!(g.copies(), 20);
        let mut bytes = Vec::new();
        g.write(&mut bytes).unwrap();
        let len = bytes.len() as u64;
        let read = |b: &[u8], len: u64| Hnsw::read_from(b, len, Space::Cosine, 5, 16, 100);
        let back = read(&bytes, len).unwrap();
        assert_eq!((back.copies(), &back.copy_of), (20, &g.copy_of));
        // Told the right length, but the stream ends early.
        let e = read(&bytes[..bytes.len() - 1], len)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        // Told another length than the header describes.
        for wrong in [len - 8, len + 8] {
            let e = read(&bytes, wrong).err().unwrap().to_string();
            assert!(
                e.contains(&format!("{wrong} bytes, where its header describes {len}")),
                "{e}"
            );
        }
        // A header whose node count describes more than any file can hold.
        let mut huge = bytes.clone();
        let at = 12 + 4 + 1 + 24;
        huge[at..at + 8].copy_from_slice(&(u32::MAX as u64 - 2).to_le_bytes());
        huge[at + 8..at + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = read(&huge, len).err().unwrap().to_string();
        assert!(e.contains("more than can be"), "{e}");
    }

    #[test]
    fn the_reader_checks_every_field_not_just_the_checksum() {
        let points = data(300, 4, 9);
        let g = build(Space::L2, &points);
        let mut bytes = Vec::new();
        g.write(&mut bytes).unwrap();
        let read = |b: &[u8]| Hnsw::read(b, Space::L2, 4, 16, 100).map(|_| ());
        read(&tamper(&bytes, 0, &[])).unwrap();
        // Header: magic 12, format 4, space 1, then dim, m, efc, n, upper_len
        // (8 each), entry 4, top 1; then pks, levels, vectors, links.
        let hdr = 12 + 4 + 1;
        let body = hdr + 5 * 8 + 4 + 1;
        let n = 300;
        let cases: Vec<(&str, usize, Vec<u8>)> = vec![
            ("format", 12, 9u32.to_le_bytes().to_vec()),
            ("ef_construction", hdr + 16, 0u64.to_le_bytes().to_vec()),
            ("m", hdr + 8, 64u64.to_le_bytes().to_vec()),
            ("node count", hdr + 24, 299u64.to_le_bytes().to_vec()),
            ("entry point", hdr + 40, 7_000u32.to_le_bytes().to_vec()),
            ("a duplicate pk", body + 8, bytes[body..body + 8].to_vec()),
            ("a level above 16", body + n * 8, vec![40]),
            (
                "a link count",
                body + n * 9 + n * 16,
                200u32.to_le_bytes().to_vec(),
            ),
            (
                "a link target",
                body + n * 9 + n * 16 + 4,
                9_999u32.to_le_bytes().to_vec(),
            ),
        ];
        for (what, at, value) in cases {
            let e = read(&tamper(&bytes, at, &value));
            assert!(e.is_err(), "{what} was not caught");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release -p strata-ann --lib hnsw::speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a test"]
    fn build_100k_384() {
        let (n, dim) = (100_000usize, 384usize);
        let mut data = Vec::with_capacity(n);
        for i in 0..n {
            let c = (i % 100) as u64;
            let v: Vec<f32> = (0..dim as u64)
                .map(|j| {
                    let a = splitmix(c * 100_003 + j) as f32 / u64::MAX as f32 - 0.5;
                    let b =
                        splitmix(((i as u64) << 20) ^ j ^ 0xABCD) as f32 / u64::MAX as f32 - 0.5;
                    a + 0.5 * b
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            data.push(v.into_iter().map(|x| x / norm).collect::<Vec<f32>>());
        }
        let mut g = Hnsw::new(Space::Cosine, dim, 16, 100);
        let pts: Vec<(i64, &[f32])> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.as_slice()))
            .collect();
        let t = std::time::Instant::now();
        let first = g.push(&pts);
        g.insert_range(first, None);
        eprintln!("built {n} × {dim} in {:.2}s", t.elapsed().as_secs_f64());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.hnsw");
        let t = std::time::Instant::now();
        let f = std::fs::File::create(&path).unwrap();
        g.write(&f).unwrap();
        f.sync_all().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        eprintln!(
            "wrote {:.1} MB in {:.2}s",
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        let t = std::time::Instant::now();
        let bytes = std::fs::read(&path).unwrap();
        let h = Hnsw::read(&bytes, Space::Cosine, dim, 16, 100).unwrap();
        eprintln!("read and validated in {:.2}s", t.elapsed().as_secs_f64());
        assert_eq!(h.len(), n);
    }
}
