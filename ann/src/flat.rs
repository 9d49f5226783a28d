//! [`Flat`]: a collection's vectors in one contiguous array, and exact and
//! index-assisted top-k over it.
//!
//! Row `i` holds key `keys()[i]` and `dimension` floats (normalised for
//! cosine, as given otherwise). Deletes swap-remove: the last row moves
//! into the hole, exactly as [`Vec::swap_remove`] does, so a caller keeping
//! per-row data beside (the SQLite plugin keeps record ids) mirrors each
//! [`remove`](Flat::remove) with a `swap_remove` of the row it returns.
//!
//! The vectors live in an array of the store's own until an HNSW index is
//! [attached](Flat::attach); from then on they live in the index's graph
//! (row `i` is a node of it) and the array is freed (see the crate docs,
//! "One copy of the vectors").
//!
//! From [`QUANT_MIN_SCAN`] rows on, an exact scan reads the int8 copy
//! ([`crate::quant`]) and rescores with `f32` only what its error bound
//! cannot rule out; the answer is the `f32` scan's, row for row and bit for
//! bit (ties broken by key on both paths).

use crate::{
    codec,
    hnsw::bits_eq,
    index::{AnnIndex, HnswParams},
    kernels::{self, Kernels},
    keys::{KeyMap, KeySet},
    metric::Metric,
    quant::Quant,
    topk::{TopK, rank},
};

/// Exact scans of at least this many rows go through the int8 copy.
pub const QUANT_MIN_SCAN: usize = 1024;

/// How one query searches ([`Flat::search`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// Candidates the HNSW search explores (default: the index's
    /// `ef_search`; always at least `k`).
    pub ef_search: Option<usize>,
    /// Skip the index: exact search.
    pub exact: bool,
}

impl SearchOptions {
    /// Options with `ef_search` and `exact` as given.
    pub fn new(ef_search: Option<usize>, exact: bool) -> SearchOptions {
        SearchOptions { ef_search, exact }
    }
}

/// The vectors of one collection (see the module docs).
pub struct Flat {
    metric: Metric,
    dimension: usize,
    keys: Vec<i64>,
    store: Store,
    rows: KeyMap<usize>,
    /// The int8 copy of the vectors (row for row).
    quant: Quant,
}

/// Where a [`Flat`]'s vectors are.
enum Store {
    /// In one array of its own, row after row.
    Own(Vec<f32>),
    /// In its index's graph: row `i` is node `nodes[i]`.
    Index {
        index: Box<AnnIndex>,
        nodes: Vec<u32>,
    },
}

impl Store {
    #[inline]
    fn vector(&self, row: usize, d: usize) -> &[f32] {
        match self {
            Store::Own(data) => &data[row * d..(row + 1) * d],
            Store::Index { index, nodes } => index.node_vector(nodes[row]),
        }
    }
}

/// Why [`Flat::attach`] refused an index (handed back with the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// It was built for another metric or dimension.
    Shape,
    /// It holds another vector than this store under this key: it was made
    /// from other data (a sidecar beside a database restored from elsewhere).
    Mismatch {
        /// The first key found whose vectors differ.
        key: i64,
    },
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachError::Shape => f.write_str("the index is for another metric or dimension"),
            AttachError::Mismatch { key } => write!(
                f,
                "the index holds another vector than the data under key {key}"
            ),
        }
    }
}

impl std::error::Error for AttachError {}

/// An index [`Flat::attach`] refused, handed back with the reason.
#[derive(Debug)]
pub struct Refused {
    index: Box<AnnIndex>,
    reason: AttachError,
}

impl Refused {
    /// Why it was refused.
    pub fn reason(&self) -> AttachError {
        self.reason
    }

    /// The index, back.
    pub fn into_index(self) -> AnnIndex {
        *self.index
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reason.fmt(f)
    }
}

impl std::error::Error for Refused {}

impl Flat {
    /// An empty store of `dimension`-dimensional vectors, with room for
    /// `capacity` of them.
    pub fn with_capacity(metric: Metric, dimension: usize, capacity: usize) -> Flat {
        Flat {
            metric,
            dimension,
            keys: Vec::with_capacity(capacity),
            store: Store::Own(Vec::with_capacity(capacity * dimension)),
            rows: KeyMap::with_capacity_and_hasher(capacity, Default::default()),
            quant: Quant::new(dimension),
        }
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The vectors' dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every row's key, in row order.
    pub fn keys(&self) -> &[i64] {
        &self.keys
    }

    /// Row `row`'s key.
    pub fn key(&self, row: usize) -> i64 {
        self.keys[row]
    }

    /// The row holding `key`.
    pub fn row_of(&self, key: i64) -> Option<usize> {
        self.rows.get(&key).copied()
    }

    /// Row `row`'s vector, as stored (normalised for cosine).
    #[inline]
    pub fn vector(&self, row: usize) -> &[f32] {
        self.store.vector(row, self.dimension)
    }

    /// `(key, vector)` of every row, in row order.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (i64, &[f32])> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| (*key, self.vector(i)))
    }

    /// The int8 copy.
    pub fn quant(&self) -> &Quant {
        &self.quant
    }

    /// Mutable access to the int8 copy (tests lower its minimum size).
    pub fn quant_mut(&mut self) -> &mut Quant {
        &mut self.quant
    }

    /// Bytes of the store's own `f32` array (its capacity): 0 while an
    /// index is attached, whose graph then holds the only copy.
    pub fn data_bytes(&self) -> usize {
        match &self.store {
            Store::Own(data) => data.capacity() * 4,
            Store::Index { .. } => 0,
        }
    }

    /// The attached index (see [`attach`](Self::attach)).
    pub fn index(&self) -> Option<&AnnIndex> {
        match &self.store {
            Store::Own(_) => None,
            Store::Index { index, .. } => Some(index),
        }
    }

    /// The attached index, mutably (to label, tune or save it; its keys
    /// follow the store through [`push`](Self::push) and
    /// [`remove`](Self::remove)).
    pub fn index_mut(&mut self) -> Option<&mut AnnIndex> {
        match &mut self.store {
            Store::Own(_) => None,
            Store::Index { index, .. } => Some(index),
        }
    }

    /// Appends `vector` under `key` (normalised for cosine); returns its
    /// row. The caller keeps keys unique and the dimension right.
    ///
    /// With an index attached the vector goes into the graph as a new node,
    /// linked at the next [`maintain`](Self::maintain) (until then, searches
    /// are exact). A key the index holds as a tombstone with the same
    /// vector is revived; with another vector, the index no longer
    /// describes the data and is dropped (see [`index`](Self::index)).
    pub fn push(&mut self, key: i64, vector: &[f32]) -> usize {
        let row = self.keys.len();
        let d = self.dimension;
        if let Store::Own(data) = &mut self.store {
            // The common case (loading a collection): straight into the array.
            if self.metric == Metric::Cosine {
                codec::normalize_into(vector, data);
            } else {
                data.extend_from_slice(vector);
            }
            self.rows.insert(key, row);
            self.keys.push(key);
            self.quant.push(self.store.vector(row, d));
            return row;
        }
        let normalized;
        let v: &[f32] = if self.metric == Metric::Cosine {
            normalized = codec::normalized(vector);
            &normalized
        } else {
            vector
        };
        if let Store::Index { index, .. } = &self.store
            && index
                .node_of(key)
                .is_some_and(|node| !bits_eq(index.node_vector(node), v))
        {
            self.detach_index();
        }
        self.rows.insert(key, row);
        self.keys.push(key);
        match &mut self.store {
            Store::Own(data) => data.extend_from_slice(v),
            Store::Index { index, nodes } => {
                let node = match index.node_of(key) {
                    Some(node) => {
                        index.revive(key);
                        node
                    }
                    None => index.append(key, v),
                };
                nodes.push(node);
            }
        }
        self.quant.push(self.store.vector(row, d));
        row
    }

    /// Removes `key`'s row by swap-remove (the last row takes its place);
    /// returns the row it had, `None` when the key is not held. An attached
    /// index tombstones the key (its node keeps the vector: searches still
    /// pass through it).
    pub fn remove(&mut self, key: i64) -> Option<usize> {
        let i = self.rows.remove(&key)?;
        let last = self.keys.len() - 1;
        let d = self.dimension;
        if i != last {
            self.keys.swap(i, last);
            self.rows.insert(self.keys[i], i);
        }
        match &mut self.store {
            Store::Own(data) => {
                if i != last {
                    let (head, tail) = data.split_at_mut(last * d);
                    head[i * d..(i + 1) * d].copy_from_slice(&tail[..d]);
                }
                data.truncate(last * d);
            }
            Store::Index { index, nodes } => {
                nodes.swap_remove(i);
                index.remove(&[key]);
            }
        }
        self.quant.swap_remove(i, last);
        self.keys.pop();
        Some(i)
    }

    /// After a batch of pushes and removes: links the new nodes of an
    /// attached index (on all cores), and fits or refits the int8 copy when
    /// due (cheap when nothing is due).
    pub fn maintain(&mut self) {
        if let Store::Index { index, .. } = &mut self.store {
            index.link_pending();
        }
        self.fit_quant();
    }

    /// The int8 half of [`maintain`](Self::maintain): nodes appended to an
    /// attached index stay unlinked (for a loader that decides what to do
    /// with them, see [`with_index`](Self::with_index)).
    pub fn fit_quant(&mut self) {
        let Flat {
            quant,
            store,
            dimension,
            keys,
            ..
        } = self;
        quant.maintain_rows(keys.len(), |i| store.vector(i, *dimension));
    }

    /// Builds an HNSW index over every row, here and now (not attached:
    /// see [`attach`](Self::attach)).
    pub fn build_index(&self, params: HnswParams, generation: i64) -> AnnIndex {
        AnnIndex::build(
            self.metric,
            self.dimension,
            params,
            generation,
            self.points(),
        )
    }

    /// Attaches `index`, labelled `generation`, after bringing it in line
    /// with the rows held (the store stays the source of truth): keys it
    /// lacks are appended and linked, keys gone are tombstoned. From then
    /// on the index's graph holds the only copy of the vectors (this
    /// store's own array is freed) and [`search`](Self::search) uses it.
    /// An index attached before is dropped first.
    ///
    /// Refused, and handed back, when it is for another metric or
    /// dimension, or holds any key with other vector bits than this store
    /// (it was made from other data: a sidecar that does not belong to
    /// this database). Returns whether reconciling changed the index.
    pub fn attach(&mut self, mut index: AnnIndex, generation: i64) -> Result<bool, Refused> {
        let refuse = |index: AnnIndex, reason| Refused {
            index: Box::new(index),
            reason,
        };
        if index.metric() != self.metric || index.dimension() != self.dimension {
            return Err(refuse(index, AttachError::Shape));
        }
        self.detach_index();
        let mut nodes = Vec::with_capacity(self.len());
        let mut missing = Vec::new();
        for (row, (key, v)) in self.points().enumerate() {
            match index.node_of(key) {
                Some(node) if bits_eq(index.node_vector(node), v) => nodes.push(node),
                Some(_) => return Err(refuse(index, AttachError::Mismatch { key })),
                None => {
                    nodes.push(u32::MAX);
                    missing.push(row);
                }
            }
        }
        let mut revived = false;
        for (row, &key) in self.keys.iter().enumerate() {
            if nodes[row] != u32::MAX {
                revived |= index.revive(key);
            }
        }
        for row in missing {
            nodes[row] = index.append(self.keys[row], self.vector(row));
        }
        self.store = Store::Index {
            index: Box::new(index),
            nodes,
        };
        // Gone keys tombstoned, appended rows linked, the label set.
        let changed = self.finish_attach(generation);
        Ok(revived || changed)
    }

    /// An empty store that takes its vectors into `index` from the start
    /// (for loading a collection whose index is at hand: the rows are then
    /// never held twice, not even while loading). Each [`push`](Self::push)
    /// finds its key's node (comparing the vector bit for bit) or appends
    /// one; [`finish_attach`](Self::finish_attach) then tombstones the keys
    /// no row named. A row whose vector differs from its node's detaches
    /// the index (the store goes on with its own array, and an
    /// [`attach`](Self::attach) of that index is refused).
    pub fn with_index(index: AnnIndex, capacity: usize) -> Flat {
        let (metric, dimension) = (index.metric(), index.dimension());
        Flat {
            metric,
            dimension,
            keys: Vec::with_capacity(capacity),
            store: Store::Index {
                index: Box::new(index),
                nodes: Vec::with_capacity(capacity),
            },
            rows: KeyMap::with_capacity_and_hasher(capacity, Default::default()),
            quant: Quant::new(dimension),
        }
    }

    /// Ends a load begun by [`with_index`](Self::with_index): keys of the
    /// index that no row named are tombstoned, nodes appended are linked,
    /// and the index is labelled `generation`. Returns whether keys were
    /// tombstoned or nodes appended (`false` as well when the index was
    /// detached meanwhile; revived tombstones are not counted).
    pub fn finish_attach(&mut self, generation: i64) -> bool {
        let Store::Index { index, .. } = &mut self.store else {
            return false;
        };
        let gone: Vec<i64> = index
            .keys()
            .filter(|key| !self.rows.contains_key(key) && !index.is_tombstone(*key))
            .collect();
        let changed = !gone.is_empty() || index.pending() > 0;
        index.remove(&gone);
        index.link_pending();
        index.mark_reconciled(generation);
        changed
    }

    /// Detaches the index, copying the vectors back into an array of the
    /// store's own; `None` when none is attached.
    pub fn detach_index(&mut self) -> Option<AnnIndex> {
        if matches!(self.store, Store::Own(_)) {
            return None;
        }
        let mut data = Vec::with_capacity(self.len() * self.dimension);
        for row in 0..self.len() {
            data.extend_from_slice(self.vector(row));
        }
        match std::mem::replace(&mut self.store, Store::Own(data)) {
            Store::Index { index, .. } => Some(*index),
            Store::Own(_) => unreachable!("checked above"),
        }
    }

    /// The attached index, consuming the store (no copy of the vectors is
    /// made: for a caller about to drop the store and reuse the index).
    pub fn into_index(self) -> Option<AnnIndex> {
        match self.store {
            Store::Own(_) => None,
            Store::Index { index, .. } => Some(*index),
        }
    }

    /// The query in the stored form (normalised for cosine).
    pub fn prepare_query(&self, query: &[f32]) -> Vec<f32> {
        if self.metric == Metric::Cosine {
            codec::normalized(query)
        } else {
            query.to_vec()
        }
    }

    /// The exact score of row `row` against a prepared query: cosine
    /// similarity, dot product or *negative* euclidean distance (higher is
    /// better). Computed by the `f32` kernels and widened to `f64`; where
    /// they overflow (components past about 1e19), in `f64` arithmetic.
    pub fn score(&self, q: &[f32], row: usize) -> f64 {
        score_with(self.metric, kernels::kernels(), q, self.vector(row))
    }

    /// The `k` best rows for a prepared query as `(row, score)`, best first
    /// (ties: lower key first): through the attached index when there is
    /// one and the query allows, exactly otherwise. `allowed` restricts the rows to
    /// those keys.
    ///
    /// The index answers unless `options.exact`, or the filter is selective
    /// (at most 5 % of the rows or 2,000 of them: an exact scan of those is
    /// cheaper and exact), or its search came back with fewer than `k`
    /// results although that many rows are allowed. Its candidates are
    /// rescored exactly, so scores never depend on the index.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        options: SearchOptions,
        allowed: Option<&KeySet>,
    ) -> Vec<(usize, f64)> {
        // `k` is a caller's `top_k`: no more rows than exist are returned,
        // so nothing below is sized by more.
        let k = k.min(self.len());
        let found = match (self.index(), options.exact) {
            (Some(ix), false) => self.ann_top_k(ix, q, k, options, allowed),
            _ => None,
        };
        found.unwrap_or_else(|| self.exact_top_k(q, k, allowed))
    }

    /// Exact top-k of a prepared query, optionally restricted to `allowed`
    /// keys: through the int8 copy when the scan is large enough (same
    /// answer, fewer bytes read), else by scanning the `f32` rows. `k`
    /// may exceed the rows (a caller's `top_k`): memory follows the rows.
    pub fn exact_top_k(&self, q: &[f32], k: usize, allowed: Option<&KeySet>) -> Vec<(usize, f64)> {
        let k = k.min(self.len());
        if k == 0 {
            return Vec::new();
        }
        let rows = self.candidate_rows(allowed);
        let m = rows.as_ref().map_or(self.len(), Vec::len);
        if m >= QUANT_MIN_SCAN
            && k.saturating_mul(16) <= m
            && let Some(found) = self.quant_top_k(q, k, rows.as_deref())
        {
            return found;
        }
        self.f32_top_k(q, k, rows.as_deref())
    }

    /// The rows of the `allowed` keys, ascending (`None`: all rows).
    pub(crate) fn candidate_rows(&self, allowed: Option<&KeySet>) -> Option<Vec<usize>> {
        match allowed {
            None => None,
            Some(set) if set.len() < self.len() / 4 => {
                let mut rows: Vec<usize> = set.iter().filter_map(|key| self.row_of(*key)).collect();
                rows.sort_unstable();
                Some(rows)
            }
            Some(set) => Some(
                (0..self.len())
                    .filter(|&i| set.contains(&self.keys[i]))
                    .collect(),
            ),
        }
    }

    /// Exact top-k through the int8 copy (`None`: not available for this query).
    pub(crate) fn quant_top_k(
        &self,
        q: &[f32],
        k: usize,
        rows: Option<&[usize]>,
    ) -> Option<Vec<(usize, f64)>> {
        if self.quant.len() != self.len() {
            return None;
        }
        let kern = kernels::kernels();
        self.quant
            .top_k(
                self.metric,
                q,
                k,
                rows,
                |i| score_with(self.metric, kern, q, self.vector(i)),
                |i| self.keys[i],
            )
            .map(|(found, _)| found)
    }

    /// Exact top-k by scanning the `f32` rows `rows` (all when `None`).
    pub(crate) fn f32_top_k(
        &self,
        q: &[f32],
        k: usize,
        rows: Option<&[usize]>,
    ) -> Vec<(usize, f64)> {
        if k == 0 {
            return Vec::new();
        }
        let kern = kernels::kernels();
        let mut top = TopK::new(k, rows.map_or(self.len(), <[usize]>::len));
        let mut offer = |i: usize| {
            top.offer(
                i,
                self.keys[i],
                score_with(self.metric, kern, q, self.vector(i)),
            );
        };
        match rows {
            Some(rows) => rows.iter().for_each(|&i| offer(i)),
            None => (0..self.len()).for_each(offer),
        }
        top.into_sorted()
    }

    /// Top-k through `index`, rescored exactly; `None` when exact search
    /// must answer instead (see [`search`](Self::search)).
    fn ann_top_k(
        &self,
        index: &AnnIndex,
        q: &[f32],
        k: usize,
        options: SearchOptions,
        allowed: Option<&KeySet>,
    ) -> Option<Vec<(usize, f64)>> {
        if k == 0 {
            return Some(Vec::new());
        }
        if index.pending() > 0 || !index.is_whole() {
            // Rows not linked yet (no `maintain` since they were pushed):
            // the graph cannot reach them.
            return None;
        }
        let matching = allowed.map_or(self.len(), KeySet::len);
        if allowed.is_some() && matching <= (self.len() / 20).max(2_000) {
            return None;
        }
        let mut ef = options.ef_search.unwrap_or(index.params().ef_search).max(k);
        if allowed.is_some() {
            // Oversample when part of the graph is filtered away.
            ef = ef.max(k * 4);
        }
        let kern = kernels::kernels();
        // In passes, not one loop: finding a key's row (a hash probe) and
        // then its vector are each a likely cache miss past ~10K rows, and
        // the misses of different candidates only overlap when no scoring
        // call sits between them (measured: three stalls per candidate,
        // ~5 % of a query at ef 16 when done one candidate at a time).
        let rows: Vec<usize> = index
            .search(q, k, ef, allowed)
            .into_iter()
            .filter_map(|key| self.row_of(key))
            .collect();
        let vectors: Vec<&[f32]> = rows.iter().map(|&i| self.vector(i)).collect();
        let mut scored: Vec<(usize, f64)> = rows
            .into_iter()
            .zip(vectors)
            .map(|(i, v)| (i, score_with(self.metric, kern, q, v)))
            .collect();
        rank(&mut scored, k, |i| self.keys[i]);
        (scored.len() >= k.min(matching)).then_some(scored)
    }
}

/// The exact score of stored vector `v` against prepared query `q`.
///
/// The `f32` kernels answer; a result they overflowed (a product or a
/// squared difference past `f32::MAX`: infinite, or `NaN` from `∞ − ∞`) is
/// computed again in `f64`, where no finite `f32` input overflows. Scores
/// are `f64` so that such a score (a dot product of 1e40, a distance of
/// 6e38) is a number, not infinity.
#[inline]
fn score_with(metric: Metric, kern: Kernels, q: &[f32], v: &[f32]) -> f64 {
    match metric {
        Metric::Cosine | Metric::Dot => {
            let s = (kern.dot)(q, v);
            if s.is_finite() {
                f64::from(s)
            } else {
                kernels::dot_f64(q, v)
            }
        }
        Metric::Euclidean => {
            let s = (kern.l2)(q, v);
            if s.is_finite() {
                -f64::from(s.sqrt())
            } else {
                -kernels::l2_f64(q, v).sqrt()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The int8 path against the `f32` scan (identical answers) and against
    //! brute force in `f64` (same top-k up to ties within `f32` rounding).

    use std::collections::HashMap;

    use super::*;
    use crate::quant::SearchStats;

    /// splitmix64 + Box–Muller: deterministic data without a rand dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn gauss(&mut self) -> f32 {
            let u1 = self.unit().max(f64::MIN_POSITIVE);
            let u2 = self.unit();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        }
        fn vector(&mut self, d: usize, sigma: f32) -> Vec<f32> {
            (0..d).map(|_| self.gauss() * sigma).collect()
        }
    }

    /// `n` vectors around `clusters` centres (unit-ish centres, noise `spread`).
    fn clustered(rng: &mut Rng, n: usize, d: usize, clusters: usize, spread: f32) -> Vec<Vec<f32>> {
        let sigma = 1.0 / (d as f32).sqrt();
        let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.vector(d, sigma)).collect();
        (0..n)
            .map(|_| {
                let c = &centres[(rng.next() % clusters as u64) as usize];
                c.iter().map(|x| x + rng.gauss() * sigma * spread).collect()
            })
            .collect()
    }

    /// Distinct pks in a scrambled order, so pk order is not row order.
    fn pk_of(i: usize) -> i64 {
        ((i as i64) * 7919) % 1_000_003 + 1
    }

    fn cache(metric: Metric, d: usize, vecs: &[Vec<f32>]) -> Flat {
        let mut l = Flat::with_capacity(metric, d, 0);
        l.quant_mut().set_min_fit(0);
        for (i, v) in vecs.iter().enumerate() {
            l.push(pk_of(i), v);
        }
        l.maintain();
        l
    }

    fn score64(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
        let dot: f64 = q
            .iter()
            .zip(x)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let n = |v: &[f32]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
        match metric {
            Metric::Dot => dot,
            Metric::Cosine => {
                if n(q) == 0.0 || n(x) == 0.0 {
                    0.0
                } else {
                    dot / (n(q) * n(x))
                }
            }
            Metric::Euclidean => -q
                .iter()
                .zip(x)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum::<f64>()
                .sqrt(),
        }
    }

    /// Runs both paths over `allowed` (all when `None`) and checks them
    /// against each other and against brute force. Returns the int8 path's
    /// statistics.
    fn check(
        l: &Flat,
        raw: &HashMap<i64, Vec<f32>>,
        query: &[f32],
        k: usize,
        allowed: Option<&KeySet>,
    ) -> SearchStats {
        let q = l.prepare_query(query);
        let rows = l.candidate_rows(allowed);
        let (got, stats) = l
            .quant()
            .top_k(
                l.metric(),
                &q,
                k,
                rows.as_deref(),
                |i| l.score(&q, i),
                |i| l.key(i),
            )
            .expect("the int8 path answers");
        assert_eq!(stats.scanned, rows.as_ref().map_or(l.len(), Vec::len));
        let plain = l.f32_top_k(&q, k, rows.as_deref());
        let bits = |v: &[(usize, f64)]| -> Vec<(i64, u64)> {
            v.iter().map(|(i, s)| (l.key(*i), s.to_bits())).collect()
        };
        assert_eq!(
            bits(&got),
            bits(&plain),
            "int8 path and f32 scan differ ({:?}, k {k})",
            l.metric()
        );
        // Brute force in f64 over the original vectors.
        let mut all: Vec<(i64, f64)> = raw
            .iter()
            .filter(|(pk, _)| allowed.is_none_or(|a| a.contains(*pk)))
            .map(|(pk, x)| (*pk, score64(l.metric(), query, x)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        assert_eq!(got.len(), all.len(), "result count");
        let scale = raw
            .values()
            .map(|x| x.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt())
            .fold(0f64, f64::max)
            .max(1.0)
            * query
                .iter()
                .map(|a| f64::from(*a).powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1.0);
        let tol = 1e-5 * scale;
        for (pos, ((i, s), (bpk, bs))) in got.iter().zip(&all).enumerate() {
            let pk = l.key(*i);
            let truth = score64(l.metric(), query, &raw[&pk]);
            assert!(
                (*s - truth).abs() <= tol,
                "position {pos}: score {s} vs true {truth}"
            );
            assert!(
                pk == *bpk || (truth - bs).abs() <= tol,
                "position {pos} ({:?}): pk {pk} (true {truth}) vs brute force pk {bpk} ({bs})",
                l.metric()
            );
        }
        stats
    }

    fn raw_of(vecs: &[Vec<f32>]) -> HashMap<i64, Vec<f32>> {
        vecs.iter()
            .enumerate()
            .map(|(i, v)| (pk_of(i), v.clone()))
            .collect()
    }

    const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::Euclidean];

    /// Scores near the `f32` limit (issue 16 item 9). Before the fix: the
    /// cosine vector `[0,0,0,-3.4e38]` scored 0.0 against `[0,0,0,-1]` (its
    /// `f32` norm overflowed and normalised it to zero), the euclidean
    /// query `[0,0,0,3e38]` scored `-inf` (the squared distance overflowed;
    /// `null` in JSON), and a dot product of 1e40 was infinite.
    #[test]
    fn scores_near_the_f32_limit_are_finite_and_right() {
        let close = |got: f64, want: f64| (got - want).abs() <= want.abs() * 1e-6;
        let mut cos = Flat::with_capacity(Metric::Cosine, 4, 3);
        cos.push(1, &[0.0, 0.0, 0.0, -3.4e38]);
        cos.push(2, &[0.0, 0.0, 0.0, -1e-30]);
        cos.push(3, &[f32::MAX, f32::MAX, f32::MAX, f32::MAX]);
        let q = cos.prepare_query(&[0.0, 0.0, 0.0, -1.0]);
        assert!(close(cos.score(&q, 0), 1.0), "{}", cos.score(&q, 0));
        assert!(close(cos.score(&q, 1), 1.0), "{}", cos.score(&q, 1));
        assert!(close(cos.score(&q, 2), -0.5), "{}", cos.score(&q, 2));

        let mut l2 = Flat::with_capacity(Metric::Euclidean, 4, 2);
        l2.push(1, &[0.0, 0.0, 0.0, -1.0]);
        l2.push(2, &[0.0, 0.0, 0.0, -3e38]);
        let q = l2.prepare_query(&[0.0, 0.0, 0.0, 3e38]);
        let top = l2.exact_top_k(&q, 2, None);
        assert_eq!(
            top.iter().map(|&(r, _)| l2.key(r)).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(close(top[0].1, -3e38), "{top:?}");
        assert!(close(top[1].1, -6e38), "beyond f32::MAX: {top:?}");

        let mut dot = Flat::with_capacity(Metric::Dot, 2, 2);
        dot.push(1, &[1e20, 0.0]);
        dot.push(2, &[-1e20, 1e20]);
        let q = dot.prepare_query(&[1e20, 1e20]);
        let top = dot.exact_top_k(&q, 2, None);
        assert!(close(top[0].1, 1e40) && dot.key(top[0].0) == 1, "{top:?}");
        assert_eq!(top[1].1, 0.0, "1e40 - 1e40 without inf - inf: {top:?}");
        // Ordinary magnitudes keep the f32 kernels' exact bits.
        let mut plain = Flat::with_capacity(Metric::Dot, 3, 1);
        plain.push(1, &[0.1, 0.2, 0.3]);
        let k = crate::kernels::kernels();
        assert_eq!(
            plain.score(&[1.0, 2.0, 3.0], 0),
            f64::from((k.dot)(&[1.0, 2.0, 3.0], &[0.1, 0.2, 0.3]))
        );
    }

    /// A caller's `k` (a `top_k` of `u32::MAX`) never sizes an allocation:
    /// before the fix the `f32` scan reserved a heap of `k + 1` entries and
    /// the process aborted ("memory allocation of 103079215104 bytes failed").
    #[test]
    fn a_huge_k_returns_every_row_without_allocating_by_k() {
        let huge = u32::MAX as usize;
        for metric in METRICS {
            let mut one = Flat::with_capacity(metric, 3, 1);
            one.push(5, &[1.0, 2.0, 3.0]);
            one.maintain();
            let q = one.prepare_query(&[1.0, 0.0, 0.0]);
            assert_eq!(one.exact_top_k(&q, huge, None).len(), 1);
            assert_eq!(one.exact_top_k(&q, usize::MAX, None).len(), 1);
            let allowed = KeySet::from_iter([5]);
            assert_eq!(one.exact_top_k(&q, huge, Some(&allowed)).len(), 1);
            // Through an index, filtered or not, and with a huge ef.
            let mut rng = Rng(1);
            let vecs: Vec<Vec<f32>> = (0..3000).map(|_| rng.vector(8, 1.0)).collect();
            let mut l = cache(metric, 8, &vecs);
            let index = l.build_index(crate::HnswParams::default(), 0);
            l.attach(index, 0).map_err(|e| e.reason()).unwrap();
            let q = l.prepare_query(&vecs[0]);
            let all = l.search(&q, huge, SearchOptions::new(Some(huge), false), None);
            assert_eq!(all.len(), 3000);
            let half: KeySet = (0..3000).step_by(2).map(pk_of).collect();
            let some = l.search(&q, huge, SearchOptions::default(), Some(&half));
            assert_eq!(some.len(), 1500);
            // The int8 path's own entry point.
            let (found, _) = l
                .quant()
                .top_k(metric, &q, huge, None, |i| l.score(&q, i), |i| l.key(i))
                .expect("fitted");
            assert_eq!(found.len(), 3000);
        }
    }

    #[test]
    fn int8_matches_f32_and_brute_force_on_clustered_data() {
        for (d, n) in [(384, 3000), (100, 4000), (7, 2000)] {
            let mut rng = Rng(d as u64);
            let vecs = clustered(&mut rng, n, d, 20, 0.5);
            let queries = clustered(&mut rng, 12, d, 20, 0.5);
            for metric in METRICS {
                let l = cache(metric, d, &vecs);
                let raw = raw_of(&vecs);
                let mut rescored = 0;
                for k in [1, 10, 60] {
                    for q in &queries {
                        rescored += check(&l, &raw, q, k, None).rescored;
                    }
                }
                // The bound prunes (centres differ per query, so this is loose).
                if d >= 100 {
                    assert!(
                        rescored < 3 * queries.len() * n / 4,
                        "{metric:?} d={d}: rescored {rescored} of {} scanned",
                        3 * queries.len() * n
                    );
                }
            }
        }
    }

    #[test]
    fn int8_exact_when_approximate_scores_tie() {
        // Vectors differing by far less than one quantization step: every
        // approximate score ties, the exact ones do not.
        let d = 64;
        let mut rng = Rng(7);
        let base = rng.vector(d, 1.0);
        let dir = rng.vector(d, 1.0);
        let mut vecs: Vec<Vec<f32>> = (0..3000)
            .map(|_| {
                let t = (rng.unit() as f32 - 0.5) * 1e-4;
                base.iter().zip(&dir).map(|(b, v)| b + t * v).collect()
            })
            .collect();
        // Far-away spread so the quantizer's range is wide.
        vecs.extend((0..200).map(|_| rng.vector(d, 3.0)));
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            let towards: Vec<f32> = base.iter().zip(&dir).map(|(b, v)| b + 0.01 * v).collect();
            for q in [&base, &towards, &dir] {
                for k in [1, 10, 100] {
                    check(&l, &raw, q, k, None);
                }
            }
        }
    }

    #[test]
    fn int8_exact_with_duplicates_and_zero_vectors() {
        let d = 48;
        let mut rng = Rng(11);
        let dup = rng.vector(d, 1.0);
        let mut vecs: Vec<Vec<f32>> = vec![dup.clone(); 1500];
        vecs.extend((0..500).map(|_| rng.vector(d, 1.0)));
        vecs.extend(std::iter::repeat_n(vec![0.0; d], 30));
        let zero = vec![0.0; d];
        let other = rng.vector(d, 1.0);
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            for q in [&dup, &zero, &other] {
                for k in [1, 10, 100, 3000] {
                    check(&l, &raw, q, k, None);
                }
            }
        }
    }

    #[test]
    fn int8_exact_on_filtered_rows() {
        let d = 96;
        let mut rng = Rng(5);
        let vecs = clustered(&mut rng, 5000, d, 10, 0.4);
        let queries = clustered(&mut rng, 6, d, 10, 0.4);
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            let small: KeySet = (0..5000).step_by(97).map(pk_of).collect();
            let large: KeySet = (0..5000).filter(|i| i % 3 != 0).map(pk_of).collect();
            let none = KeySet::default();
            for q in &queries {
                for k in [1, 10, 40] {
                    check(&l, &raw, q, k, Some(&small));
                    check(&l, &raw, q, k, Some(&large));
                    check(&l, &raw, q, k, Some(&none));
                }
                // The dispatcher agrees too (int8 for the large set).
                let pq = l.prepare_query(q);
                let rows = l.candidate_rows(Some(&large));
                assert_eq!(
                    l.exact_top_k(&pq, 10, Some(&large)),
                    l.f32_top_k(&pq, 10, rows.as_deref())
                );
            }
        }
    }

    #[test]
    fn int8_copy_follows_cache_patches() {
        let d = 32;
        let mut rng = Rng(3);
        for metric in METRICS {
            let mut vecs = clustered(&mut rng, 300, d, 5, 0.5);
            let mut l = cache(metric, d, &vecs);
            let mut raw = raw_of(&vecs);
            let q = rng.vector(d, 0.2);
            check(&l, &raw, &q, 10, None);
            // Outliers beyond the fitted range: clamped, no refit yet.
            for _ in 0..10 {
                let v = rng.vector(d, 2.0);
                l.push(pk_of(vecs.len()), &v);
                raw.insert(pk_of(vecs.len()), v.clone());
                vecs.push(v);
            }
            assert_eq!(l.quant().len(), l.len());
            check(&l, &raw, &q, 10, None);
            check(&l, &raw, &vecs[305], 5, None);
            // Growth: refits on doubling.
            for v in clustered(&mut rng, 2000, d, 5, 0.5) {
                l.push(pk_of(vecs.len()), &v);
                raw.insert(pk_of(vecs.len()), v.clone());
                vecs.push(v);
            }
            l.maintain();
            check(&l, &raw, &q, 10, None);
            // Deletes swap-remove in both copies.
            for i in (0..vecs.len()).step_by(3) {
                l.remove(pk_of(i));
                raw.remove(&pk_of(i));
            }
            l.maintain();
            assert_eq!(l.quant().len(), l.len());
            for k in [1, 10, 50] {
                check(&l, &raw, &q, k, None);
                check(&l, &raw, &vecs[301], k, None);
            }
        }
    }

    #[test]
    fn int8_exact_on_mixed_magnitudes() {
        let d = 40;
        let mut rng = Rng(13);
        let vecs: Vec<Vec<f32>> = (0..3000)
            .map(|i| {
                let scale = 10f32.powi(i % 7 - 3);
                rng.vector(d, scale)
            })
            .collect();
        for metric in METRICS {
            let l = cache(metric, d, &vecs);
            let raw = raw_of(&vecs);
            for q in [
                rng.vector(d, 0.001),
                rng.vector(d, 1.0),
                rng.vector(d, 1000.0),
            ] {
                for k in [1, 10, 100] {
                    check(&l, &raw, &q, k, None);
                }
            }
        }
    }

    #[test]
    fn huge_magnitudes_fall_back_to_the_f32_scan() {
        let d = 16;
        let mut rng = Rng(17);
        let vecs: Vec<Vec<f32>> = (0..2000).map(|_| rng.vector(d, 1e18)).collect();
        let l = cache(Metric::Dot, d, &vecs);
        let q = rng.vector(d, 1e18);
        assert!(
            l.quant()
                .top_k(l.metric(), &q, 10, None, |i| l.score(&q, i), |i| l.key(i))
                .is_none()
        );
        assert_eq!(l.exact_top_k(&q, 10, None), l.f32_top_k(&q, 10, None));
    }

    /// Every row's `(key, vector bits)`, sorted by key.
    fn snapshot(l: &Flat) -> Vec<(i64, Vec<u32>)> {
        let mut v: Vec<(i64, Vec<u32>)> = l
            .points()
            .map(|(k, v)| (k, v.iter().map(|x| x.to_bits()).collect()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    fn with_index(metric: Metric, vecs: &[Vec<f32>]) -> Flat {
        let mut l = cache(metric, vecs[0].len(), vecs);
        let ix = l.build_index(crate::HnswParams::default(), 1);
        assert_eq!(l.attach(ix, 1).map_err(|e| e.reason()), Ok(false));
        l
    }

    #[test]
    fn an_attached_index_holds_the_only_copy_and_answers_the_same() {
        for metric in METRICS {
            let mut rng = Rng(5);
            let vecs = clustered(&mut rng, 3000, 16, 20, 0.3);
            let plain = cache(metric, 16, &vecs);
            let l = with_index(metric, &vecs);
            assert!(plain.data_bytes() >= 3000 * 16 * 4);
            assert_eq!(l.data_bytes(), 0, "{metric:?}: the graph holds the vectors");
            assert_eq!(snapshot(&l), snapshot(&plain), "{metric:?}");
            for q in vecs.iter().step_by(301) {
                let q = l.prepare_query(q);
                let bits = |v: Vec<(usize, f64)>, f: &Flat| -> Vec<(i64, u64)> {
                    v.iter().map(|(i, s)| (f.key(*i), s.to_bits())).collect()
                };
                assert_eq!(
                    bits(l.exact_top_k(&q, 10, None), &l),
                    bits(plain.exact_top_k(&q, 10, None), &plain),
                    "{metric:?}: exact search reads the graph's vectors"
                );
                let found = l.search(&q, 10, SearchOptions::new(Some(200), false), None);
                let exact = plain.exact_top_k(&q, 10, None);
                let hits = found
                    .iter()
                    .filter(|(i, _)| exact.iter().any(|(j, _)| plain.key(*j) == l.key(*i)))
                    .count();
                assert!(hits >= 9, "{metric:?}: recall {hits}/10");
            }
        }
    }

    #[test]
    fn pushes_and_removes_follow_the_attached_index() {
        let mut rng = Rng(6);
        let vecs = clustered(&mut rng, 2100, 12, 10, 0.3);
        let mut l = with_index(Metric::Cosine, &vecs[..2000]);
        let gone: Vec<i64> = (0..2000).step_by(7).map(pk_of).collect();
        for key in &gone {
            assert!(l.remove(*key).is_some());
        }
        for (i, v) in vecs.iter().enumerate().skip(2000) {
            l.push(pk_of(i), v);
        }
        let ix = l.index().expect("still attached");
        assert_eq!(
            (ix.points(), ix.tombstones(), ix.pending()),
            (2100, gone.len(), 100)
        );
        // Before `maintain` the new rows are not linked: search is exact.
        let q = l.prepare_query(&vecs[2050]);
        let top = l.search(&q, 1, SearchOptions::default(), None);
        assert_eq!(l.key(top[0].0), pk_of(2050));
        l.maintain();
        assert_eq!(l.index().unwrap().pending(), 0);
        assert_eq!(l.data_bytes(), 0);
        let removed: KeySet = gone.iter().copied().collect();
        for i in (0..2100).step_by(13) {
            let q = l.prepare_query(&vecs[i]);
            let top = l.search(&q, 5, SearchOptions::new(Some(64), false), None);
            // The graph itself skips the tombstones (a removed key has no
            // row to map a result to, so check the graph's own answer).
            let ix = l.index().unwrap();
            let found = ix.search(&q, 5, 64, None);
            assert!(
                found
                    .iter()
                    .all(|k| !removed.contains(k) && !ix.is_tombstone(*k))
            );
            if !removed.contains(&pk_of(i)) {
                assert_eq!(l.key(top[0].0), pk_of(i), "row {i} finds itself");
            }
            // Every row's vector is still its own (rows moved by swap-remove).
            if let Some(row) = l.row_of(pk_of(i)) {
                assert_eq!(l.vector(row), &crate::codec::normalized(&vecs[i])[..]);
            }
        }
        // A removed key pushed again with its vector is revived, not a new node.
        l.push(gone[0], &vecs[0]);
        l.maintain();
        let ix = l.index().unwrap();
        assert_eq!((ix.points(), ix.tombstones()), (2100, gone.len() - 1));
        // ... with another vector (gone[1] held vecs[7]), the index no
        // longer describes the data: dropped, the vectors copied back.
        l.push(gone[1], &vecs[1]);
        assert!(l.index().is_none(), "dropped");
        assert!(l.data_bytes() > 0);
        assert_eq!(
            l.vector(l.row_of(gone[1]).unwrap()),
            &crate::codec::normalized(&vecs[1])[..]
        );
        assert_eq!(
            l.vector(l.row_of(gone[0]).unwrap()),
            &crate::codec::normalized(&vecs[0])[..]
        );
    }

    #[test]
    fn detach_copies_the_vectors_back() {
        let mut rng = Rng(7);
        let vecs = clustered(&mut rng, 1500, 8, 5, 0.3);
        let mut l = with_index(Metric::Euclidean, &vecs);
        let before = snapshot(&l);
        let ix = l.detach_index().expect("attached");
        assert_eq!(ix.points(), 1500);
        assert!(l.index().is_none() && l.data_bytes() >= 1500 * 8 * 4);
        assert_eq!(snapshot(&l), before);
        assert!(l.detach_index().is_none());
        // And back again, unchanged.
        assert_eq!(l.attach(ix, 2).map_err(|e| e.reason()), Ok(false));
        assert_eq!(l.index().unwrap().generation(), 2);
        assert_eq!(snapshot(&l), before);
        let ix = l.into_index().expect("the index, without a copy");
        assert_eq!(ix.points(), 1500);
    }

    #[test]
    fn attach_reconciles_and_refuses_an_index_of_other_data() {
        let mut rng = Rng(8);
        let vecs = clustered(&mut rng, 1200, 8, 5, 0.3);
        // An index over rows 0..1100; the store holds rows 100..1200.
        let older = cache(Metric::Cosine, 8, &vecs[..1100]);
        let ix = older.build_index(crate::HnswParams::default(), 1);
        let mut l = Flat::with_capacity(Metric::Cosine, 8, 0);
        for (i, v) in vecs.iter().enumerate().skip(100) {
            l.push(pk_of(i), v);
        }
        l.maintain();
        assert_eq!(l.attach(ix, 9).map_err(|e| e.reason()), Ok(true));
        let ix = l.index().unwrap();
        assert_eq!(
            (ix.points(), ix.tombstones(), ix.generation()),
            (1200, 100, 9)
        );
        let q = l.prepare_query(&vecs[1150]);
        assert_eq!(
            l.key(l.search(&q, 1, SearchOptions::default(), None)[0].0),
            pk_of(1150)
        );
        // Other vector bits under one key: refused, naming the key.
        let ix = l.detach_index().unwrap();
        let mut other = Flat::with_capacity(Metric::Cosine, 8, 0);
        for (i, v) in vecs.iter().enumerate().skip(100) {
            let mut v = v.clone();
            if i == 500 {
                v[3] += 0.25;
            }
            other.push(pk_of(i), &v);
        }
        let refused = other.attach(ix, 9).unwrap_err();
        assert_eq!(refused.reason(), AttachError::Mismatch { key: pk_of(500) });
        assert!(refused.to_string().contains(&pk_of(500).to_string()));
        let ix = refused.into_index();
        assert!(other.index().is_none() && other.data_bytes() > 0);
        // Another metric or dimension.
        let mut dot = cache(Metric::Dot, 8, &vecs);
        let refused = dot.attach(ix, 9).unwrap_err();
        assert_eq!(refused.reason(), AttachError::Shape);
        let ix = refused.into_index();
        let mut wide = Flat::with_capacity(Metric::Cosine, 9, 0);
        assert_eq!(wide.attach(ix, 9).unwrap_err().reason(), AttachError::Shape);
    }

    #[test]
    fn a_store_loaded_into_its_index_matches_one_attached_after() {
        let mut rng = Rng(9);
        let vecs = clustered(&mut rng, 1300, 8, 5, 0.3);
        // Index over rows 0..1200 with 0 and 1 removed; rows now 2..1300.
        let mut old = with_index(Metric::Cosine, &vecs[..1200]);
        old.remove(pk_of(0));
        old.remove(pk_of(1));
        old.maintain();
        let ix = old.into_index().unwrap();
        let (points, tombstones) = (ix.points(), ix.tombstones());
        assert_eq!((points, tombstones), (1200, 2));
        let mut l = Flat::with_index(ix, 1298);
        l.quant_mut().set_min_fit(0);
        for (i, v) in vecs.iter().enumerate().skip(2) {
            if i == 5 {
                continue; // deleted since the save
            }
            l.push(pk_of(i), v);
        }
        assert!(l.finish_attach(42));
        assert_eq!(l.index().unwrap().pending(), 0, "finish_attach links");
        l.maintain();
        let ix = l.index().expect("kept");
        assert_eq!(
            (ix.points(), ix.tombstones(), ix.pending(), ix.generation()),
            (1300, 3, 0, 42)
        );
        assert_eq!(l.data_bytes(), 0);
        let mut plain = Flat::with_capacity(Metric::Cosine, 8, 0);
        plain.quant_mut().set_min_fit(0);
        for (i, v) in vecs.iter().enumerate().skip(2).filter(|(i, _)| *i != 5) {
            plain.push(pk_of(i), v);
        }
        plain.maintain();
        assert_eq!(snapshot(&l), snapshot(&plain));
        for i in [2, 600, 1250] {
            let q = l.prepare_query(&vecs[i]);
            assert_eq!(
                l.key(l.search(&q, 1, SearchOptions::default(), None)[0].0),
                pk_of(i)
            );
        }
        // A row with other bits than its node: the index is let go, the
        // rows are all still there.
        let ix = l.into_index().unwrap();
        let mut other = Flat::with_index(ix, 10);
        other.push(pk_of(2), &vecs[2]);
        other.push(pk_of(3), &vecs[4]);
        other.push(pk_of(4), &vecs[4]);
        assert!(other.index().is_none());
        assert!(!other.finish_attach(43));
        assert_eq!(other.len(), 3);
        assert_eq!(other.vector(1), &crate::codec::normalized(&vecs[4])[..]);
        assert_eq!(other.vector(0), &crate::codec::normalized(&vecs[2])[..]);
    }
}
