//! The int8 copy of a collection's cached vectors, and exact top-k through it.
//!
//! # Why
//!
//! Exact search over the `f32` cache reads `4·d` bytes per vector per query:
//! 154 MB at 100K × 384, which is memory-bound (≈ 80 queries/s on one core of
//! the 2-core benchmark VM). An `int8` copy is a quarter of that. Scanning
//! it gives *approximate* scores; a provable bound on their error tells which
//! vectors could still be in the exact top-k, and only those are rescored
//! with the `f32` vectors. Results are the exact `f32` top-k: the same
//! vectors and the bit-identical scores the plain `f32` scan returns.
//!
//! # Quantizer
//!
//! Per dimension `j`: an offset `o_j` (midpoint of the values seen) and a
//! step `s_j` (range / 254). Vector `x` is stored as codes
//! `c_j = clamp(round((x_j − o_j) · (1/s_j)), −127, 127)` (rounded half
//! away from zero; the bound below holds for any code, so the rounding
//! need not be exact), standing for
//! `x̂_j = o_j + s_j·c_j` (evaluated exactly, in `f64`). Per vector we keep
//! `e = ‖x − x̂‖` (computed in `f64`, rounded *up* to `f32`) and `‖x̂‖²`
//! (euclidean only needs it). Whatever the codes are — a value outside the
//! fitted range is clamped — `e` describes them exactly, so clamping costs
//! precision (more rescoring), never correctness. The quantizer is refitted
//! from the `f32` cache when the collection has doubled since the last fit
//! or more than 1/16 of the vectors pushed since were clamped (amortised
//! O(d) per insert). Deletes swap-remove like the `f32` cache.
//!
//! # The bound
//!
//! With `q` the prepared query (normalised for cosine) and `qs_j = fl(q_j·s_j)`:
//!
//! - **dot / cosine**: the scan computes `p = fl(Σ qs_j·c_j)`; the
//!   approximate score is `a = p + q·o` (`q·o` once per query in `f64`).
//!   `q·x = q·x̂ + q·(x − x̂)` and `|q·(x − x̂)| ≤ ‖q‖·e` (Cauchy–Schwarz).
//!   Rounding: a length-`d` dot product in `f32` is off by at most
//!   `γ·Σ|a_j b_j|` with `γ ≤ g = 2(d+32)·2⁻²⁴` (generous: it covers FMA or
//!   not, any accumulator split, the final horizontal sum), and
//!   `Σ|a_j b_j| ≤ ‖a‖‖b‖`. So the `f32` score `f` the exact kernel returns
//!   satisfies `f ≤ a + ‖q‖·e + ε` with
//!   `ε = g‖q‖X + 2g‖q‖A + 10⁻⁹‖q‖(‖o‖ + A + X) + 10⁻³⁰`, where
//!   `X ≥ max‖x‖` and `A ≥ max‖s∘c‖` are kept per collection (they only
//!   grow until the next refit: deletes leave them conservative).
//! - **euclidean**: `‖q − x‖ ≥ ‖q − x̂‖ − e` (triangle inequality), and
//!   `‖q − x̂‖² = ‖q‖² − 2q·x̂ + ‖x̂‖²` is known from `p` to within
//!   `η = 4g‖q‖A + 2⁻²³H + 10⁻⁹(‖q‖² + ‖q‖(‖o‖+A+X) + H)` (`H ≥ max‖x̂‖²`).
//!   The `f32` kernel's distance is at least `(1 − 3g)` times the true one
//!   (all its terms are non-negative), so the score `−dist` is at most
//!   `−max(0, √max(0, sq − η) − e)·(1 − 3g) + 10⁻¹⁸`. No fallback to the
//!   `f32` scan is needed for euclidean.
//!
//! Overflow would break the rounding model, so when `‖q‖·X` (or
//! `(‖q‖ + X)²` for euclidean) reaches 10³⁰ the caller scans `f32` instead.
//!
//! # Search
//!
//! 1. scan the codes: `p` for every candidate vector (all, or the rows a
//!    filter selected);
//! 2. take the `k` best by approximate score and rescore them with `f32`:
//!    `T` = the lowest of those `k` exact scores;
//! 3. rescore every vector whose upper bound is `≥ T` (a `NaN` bound counts
//!    as `≥`). Any other vector has an exact score `< T`, below `k` vectors
//!    already found, so it cannot be in the top-k;
//! 4. rank the rescored by (score desc, pk asc) and keep `k`.
//!
//! Ties are broken by pk in both this path and the `f32` scan, so both
//! return the same list. On clustered 384-d data the bound (‖q‖·e ≈ 0.01 for
//! cosine) leaves a few dozen vectors to rescore per query. Adversarial data
//! (many vectors whose scores differ by less than the bound: duplicates,
//! near-duplicates, a zero query) makes step 3 rescore many or all of them:
//! still exact, at up to the `f32` scan's cost plus the int8 scan.
//!
//! # Memory
//!
//! `d + 8` bytes per vector (codes, `e`, `‖x̂‖²`) plus `8d` per collection:
//! +25.5 % over the `f32` cache at d = 384 (39.2 MB on 153.6 MB at 100K).

use std::cell::RefCell;

use crate::{kernels::scan_codes, metric::Metric, topk::best_by_key};

/// Unit roundoff of `f32`.
const U: f64 = 1.0 / 16_777_216.0;
/// Largest magnitude the rounding model is trusted for.
const OVERFLOW_GUARD: f64 = 1e30;

/// Collections smaller than this are not quantized (their `f32` scan is cheap).
pub const DEFAULT_MIN_FIT: usize = 1024;

/// The int8 copy of one collection's cache (row `i` mirrors the cache's `i`).
pub struct Quant {
    dim: usize,
    /// Collections smaller than this are not quantized (the `f32` scan is cheap).
    min_fit: usize,
    fitted: bool,
    offset: Vec<f32>,
    scale: Vec<f32>,
    /// `1 / scale` (0 where the scale is 0): encoding multiplies.
    inv_scale: Vec<f64>,
    /// `‖o‖`.
    offset_norm: f64,
    codes: Vec<i8>,
    /// `e_i = ‖x_i − x̂_i‖`, rounded up.
    resid: Vec<f32>,
    /// `‖x̂_i‖²`.
    hat_sq: Vec<f32>,
    /// `≥ max ‖s∘c_i‖`.
    code_norm_max: f64,
    /// `≥ max ‖x_i‖`.
    vec_norm_max: f64,
    /// `≥ max ‖x̂_i‖²`.
    hat_sq_max: f64,
    /// Vectors at the last fit, and pushes clamped since.
    fitted_len: usize,
    clamped: usize,
}

/// What one search did (for tests and tuning).
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchStats {
    /// Vectors whose codes were scanned.
    pub scanned: usize,
    /// Vectors rescored with `f32` (including the first `k`).
    pub rescored: usize,
}

impl Quant {
    /// An empty, unfitted copy for vectors of `dim` dimensions.
    pub fn new(dim: usize) -> Quant {
        Quant {
            dim,
            min_fit: DEFAULT_MIN_FIT,
            fitted: false,
            offset: Vec::new(),
            scale: Vec::new(),
            inv_scale: Vec::new(),
            offset_norm: 0.0,
            codes: Vec::new(),
            resid: Vec::new(),
            hat_sq: Vec::new(),
            code_norm_max: 0.0,
            vec_norm_max: 0.0,
            hat_sq_max: 0.0,
            fitted_len: 0,
            clamped: 0,
        }
    }

    /// Sets the size below which the copy is not made (default
    /// [`DEFAULT_MIN_FIT`]; tests quantize tiny collections with 0).
    pub fn set_min_fit(&mut self, n: usize) {
        self.min_fit = n;
    }

    /// Vectors quantized (0 when not fitted).
    pub fn len(&self) -> usize {
        self.resid.len()
    }

    /// Whether no vector is quantized.
    pub fn is_empty(&self) -> bool {
        self.resid.is_empty()
    }

    /// Whether the quantizer is fitted (the collection reached the
    /// minimum size): only then does [`top_k`](Self::top_k) answer.
    pub fn is_fitted(&self) -> bool {
        self.fitted
    }

    /// Heap bytes of the quantized copy.
    pub fn bytes(&self) -> usize {
        self.codes.capacity()
            + 4 * (self.resid.capacity()
                + self.hat_sq.capacity()
                + self.offset.capacity()
                + self.scale.capacity())
            + 8 * self.inv_scale.capacity()
    }

    /// Appends one cached vector (a no-op until fitted).
    pub fn push(&mut self, v: &[f32]) {
        if !self.fitted {
            return;
        }
        if self.encode(v) {
            self.clamped += 1;
        }
    }

    /// Mirrors the cache's swap-remove of row `i` (`last` is the last row).
    pub fn swap_remove(&mut self, i: usize, last: usize) {
        if !self.fitted {
            return;
        }
        let d = self.dim;
        if i != last {
            let (head, tail) = self.codes.split_at_mut(last * d);
            head[i * d..(i + 1) * d].copy_from_slice(&tail[..d]);
        }
        self.codes.truncate(last * d);
        self.resid.swap_remove(i);
        self.hat_sq.swap_remove(i);
    }

    /// Fits, refits or drops the quantizer for the cache `data` (`n × dim`).
    pub fn maintain(&mut self, data: &[f32]) {
        let d = self.dim.max(1);
        self.maintain_rows(data.len() / d, |i| &data[i * d..(i + 1) * d]);
    }

    /// [`maintain`](Self::maintain) for a cache of `n` vectors wherever
    /// they are: `row(i)` is vector `i`.
    pub fn maintain_rows<'a>(&mut self, n: usize, row: impl Fn(usize) -> &'a [f32]) {
        if n < self.min_fit {
            if self.fitted && n < self.min_fit / 2 {
                *self = Quant {
                    min_fit: self.min_fit,
                    ..Quant::new(self.dim)
                };
            }
            if !self.fitted {
                return;
            }
        }
        let stale = !self.fitted
            || n > 2 * self.fitted_len
            || self.clamped > (n / 16).max(16)
            || self.len() != n;
        if stale {
            self.fit_rows(n, row);
        }
    }

    /// Recomputes offsets and steps from `data`, then encodes every vector.
    pub fn fit(&mut self, data: &[f32]) {
        let d = self.dim.max(1);
        self.fit_rows(data.len() / d, |i| &data[i * d..(i + 1) * d]);
    }

    /// [`fit`](Self::fit) for `n` vectors wherever they are: `row(i)` is
    /// vector `i`.
    pub fn fit_rows<'a>(&mut self, n: usize, row: impl Fn(usize) -> &'a [f32]) {
        let d = self.dim;
        let mut lo = vec![f32::INFINITY; d];
        let mut hi = vec![f32::NEG_INFINITY; d];
        for v in (0..n).map(&row) {
            for j in 0..d {
                lo[j] = lo[j].min(v[j]);
                hi[j] = hi[j].max(v[j]);
            }
        }
        self.offset = (0..d)
            .map(|j| {
                if n == 0 {
                    0.0
                } else {
                    ((f64::from(lo[j]) + f64::from(hi[j])) / 2.0) as f32
                }
            })
            .collect();
        self.scale = (0..d)
            .map(|j| {
                let s = if n == 0 {
                    0.0
                } else {
                    ((f64::from(hi[j]) - f64::from(lo[j])) / 254.0) as f32
                };
                if s.is_finite() && s > 0.0 { s } else { 0.0 }
            })
            .collect();
        self.inv_scale = self
            .scale
            .iter()
            .map(|&s| if s > 0.0 { 1.0 / f64::from(s) } else { 0.0 })
            .collect();
        self.offset_norm = self
            .offset
            .iter()
            .map(|&o| f64::from(o) * f64::from(o))
            .sum::<f64>()
            .sqrt()
            * (1.0 + 1e-12);
        self.codes = Vec::with_capacity(n * d);
        self.resid = Vec::with_capacity(n);
        self.hat_sq = Vec::with_capacity(n);
        self.code_norm_max = 0.0;
        self.vec_norm_max = 0.0;
        self.hat_sq_max = 0.0;
        self.fitted = true;
        for v in (0..n).map(&row) {
            self.encode(v);
        }
        self.fitted_len = n;
        self.clamped = 0;
    }

    /// Appends the codes of `v`; true when a component was clamped.
    fn encode(&mut self, v: &[f32]) -> bool {
        // Which code a component gets only has to be near its value: the
        // bound is computed from the code chosen (`r = x − x̂`), so a
        // multiplication by `1/s` and rounding half away from zero through
        // a truncating conversion (no libm call, no division: this runs
        // for every component of every vector when a collection loads)
        // keep every bound exact.
        let base = self.codes.len();
        self.codes.resize(base + v.len(), 0);
        let codes = &mut self.codes[base..];
        let mut clamped = false;
        for (((code, &x), &o), &inv) in codes
            .iter_mut()
            .zip(v)
            .zip(&self.offset)
            .zip(&self.inv_scale)
        {
            let t = (f64::from(x) - f64::from(o)) * inv;
            clamped |= t.abs() >= 127.5;
            let t = t.clamp(-127.0, 127.0);
            *code = (t + 0.5f64.copysign(t)) as i32 as i8;
        }
        // The sums in four lanes (any order of summation has the error
        // bound allowed for below), so the additions overlap.
        let mut acc = [[0f64; 4]; 4];
        let mut add = |lane: usize, x: f32, o: f32, s: f32, c: i8| {
            let (x, o) = (f64::from(x), f64::from(o));
            let sc = f64::from(s) * f64::from(c);
            let hat = o + sc;
            let r = x - hat;
            acc[0][lane] += r * r;
            acc[1][lane] += hat * hat;
            acc[2][lane] += sc * sc;
            acc[3][lane] += x * x;
        };
        let quads = v
            .chunks_exact(4)
            .zip(self.offset.chunks_exact(4))
            .zip(self.scale.chunks_exact(4))
            .zip(codes.chunks_exact(4));
        for (((x, o), s), c) in quads {
            for lane in 0..4 {
                add(lane, x[lane], o[lane], s[lane], c[lane]);
            }
        }
        let tail = v.len() / 4 * 4;
        for j in tail..v.len() {
            add(0, v[j], self.offset[j], self.scale[j], codes[j]);
        }
        let [r2, h2, c2, x2] = acc.map(|a| (a[0] + a[1]) + (a[2] + a[3]));
        // f64 sums of d squares are within ~d·2⁻⁵³ relative: 1e-9 covers it.
        self.resid.push(round_up(r2.sqrt() * (1.0 + 1e-9)));
        self.hat_sq.push(h2 as f32);
        self.hat_sq_max = self.hat_sq_max.max(h2 * (1.0 + 1e-9));
        self.code_norm_max = self.code_norm_max.max(c2.sqrt() * (1.0 + 1e-9));
        self.vec_norm_max = self.vec_norm_max.max(x2.sqrt() * (1.0 + 1e-9));
        clamped
    }

    /// Exact top-k of the prepared query `q` over rows `idx` (all when
    /// `None`), best first with ties by pk; `None` when the rounding model
    /// does not hold for this query (the caller scans `f32`). `exact(i)` is
    /// the `f32` score of row `i`, `pk(i)` its tie-break key.
    pub fn top_k(
        &self,
        metric: Metric,
        q: &[f32],
        k: usize,
        idx: Option<&[usize]>,
        exact: impl Fn(usize) -> f64,
        pk: impl Fn(usize) -> i64,
    ) -> Option<(Vec<(usize, f64)>, SearchStats)> {
        if !self.fitted || q.len() != self.dim {
            return None;
        }
        let d = self.dim;
        let n = self.len();
        let m = idx.map_or(n, <[usize]>::len);
        let row = |t: usize| idx.map_or(t, |x| x[t]);
        let mut stats = SearchStats {
            scanned: m,
            rescored: 0,
        };
        // A caller's `k` may be far above the rows: keep no more than exist.
        let k = k.min(m);
        if k == 0 || m == 0 {
            return Some((Vec::new(), stats));
        }
        let qq: f64 = q.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let nq = qq.sqrt() * (1.0 + 1e-9);
        let (x_max, a_max, h_max, o_norm) = (
            self.vec_norm_max,
            self.code_norm_max,
            self.hat_sq_max,
            self.offset_norm,
        );
        let magnitude = match metric {
            Metric::Euclidean => (nq + x_max) * (nq + x_max),
            _ => nq * x_max,
        };
        if reaches(magnitude, OVERFLOW_GUARD) || reaches(nq * (a_max + o_norm), OVERFLOW_GUARD) {
            return None;
        }
        let g = 2.0 * (d as f64 + 32.0) * U;
        if g > 0.01 {
            return None;
        }
        let qs: Vec<f32> = q.iter().zip(&self.scale).map(|(a, s)| a * s).collect();
        let qo: f64 = q
            .iter()
            .zip(&self.offset)
            .map(|(&a, &o)| f64::from(a) * f64::from(o))
            .sum();
        let slack_f64 = 1e-9 * nq * (o_norm + a_max + x_max);

        SCRATCH.with_borrow_mut(|p| {
            p.clear();
            p.resize(m, 0.0);
            scan_codes(&qs, &self.codes, d, idx, p);

            // The k best by approximate score, rescored: T.
            let key = |t: usize| -> f32 {
                match metric {
                    Metric::Euclidean => 2.0 * p[t] - self.hat_sq[row(t)],
                    _ => p[t],
                }
            };
            let first = best_by_key(m, k, key);
            let mut threshold = f64::INFINITY;
            for &t in &first {
                threshold = threshold.min(exact(row(t)));
            }
            if first.len() < k || threshold.is_nan() {
                threshold = f64::NEG_INFINITY;
            }
            let t_f64 = threshold;

            // Everything whose bound reaches T.
            let mut found: Vec<(usize, f64)> = Vec::new();
            match metric {
                Metric::Euclidean => {
                    let eta = 4.0 * g * nq * a_max
                        + 2.0 * U * h_max
                        + 1e-9 * (qq + nq * (o_norm + a_max + x_max) + h_max);
                    let shrink = 1.0 - 3.0 * g;
                    for (t, &pt) in p.iter().enumerate() {
                        let i = row(t);
                        let sq = qq - 2.0 * (f64::from(pt) + qo) + f64::from(self.hat_sq[i]);
                        let lb = (sq - eta).max(0.0).sqrt() - f64::from(self.resid[i]);
                        let ub = -(lb.max(0.0) * shrink) + 1e-18;
                        if reaches(ub, t_f64) {
                            found.push((i, exact(i)));
                        }
                    }
                }
                _ => {
                    let eps = g * nq * x_max + 2.0 * g * nq * a_max + slack_f64 + 1e-30;
                    // ub ≥ T  ⇔  p + ‖q‖e ≥ T − q·o − ε.
                    let need = t_f64 - qo - eps;
                    for (t, &pt) in p.iter().enumerate() {
                        let i = row(t);
                        let ub = f64::from(pt) + nq * f64::from(self.resid[i]);
                        if reaches(ub, need) {
                            found.push((i, exact(i)));
                        }
                    }
                }
            }
            stats.rescored = first.len() + found.len();
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then(pk(a.0).cmp(&pk(b.0))));
            found.truncate(k);
            Some((found, stats))
        })
    }
}

thread_local! {
    /// Approximate dot products of the current query (reused: 4 bytes per vector).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `x ≥ t`, or either is `NaN` (then nothing can be ruled out).
fn reaches(x: f64, t: f64) -> bool {
    x.partial_cmp(&t) != Some(std::cmp::Ordering::Less)
}

/// The smallest `f32` that is `≥ x`.
fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x { f.next_up() } else { f }
}
