//! Distance kernels: the only `unsafe` code of the crate.
//!
//! Two families, each in a portable version and x86-64 SIMD ones (AVX2 +
//! FMA; also AVX-512F for the int8 scan) chosen at run time
//! (`is_x86_feature_detected!`, once per process for the `f32` kernels):
//!
//! - `f32 · f32` dot product and squared euclidean distance ([`Kernels`]),
//!   written with 16 independent accumulators and `mul_add` so the compiler
//!   vectorises them. The AVX2 versions are the *same* Rust functions
//!   compiled with the features enabled: `mul_add` is one fused rounding on
//!   both paths and the summation order is fixed, so both return the same
//!   bits (the unit tests check it);
//! - `f32 · i8` dot product of a query with int8 codes (the scan of
//!   [`crate::quant`]), hand-written with intrinsics: 8 codes widened to
//!   `f32` at a time with AVX2, 16 with AVX-512F (preferred when the CPU
//!   has it), 4 accumulators. They sum in other orders than the portable
//!   version, so all agree within the rounding bound the quantizer's proof
//!   allows for (the unit tests check each kernel the CPU runs).
//!
//! Every `unsafe` block says why it is sound (`SAFETY:`). Calling a
//! `#[target_feature]` function is sound once the CPU is known to have the
//! features; the intrinsics' loads stay within the slices they read.

use std::sync::OnceLock;

/// The `f32` kernels for this CPU (see [`kernels`]).
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    /// `a · b` (the shorter length of the two is used).
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// `‖a − b‖²`.
    pub l2: fn(&[f32], &[f32]) -> f32,
    /// `"avx2+fma"` or `"generic"`.
    pub name: &'static str,
}

impl Kernels {
    /// The portable kernels (what [`kernels`] returns on CPUs without AVX2
    /// and FMA).
    pub fn generic() -> Kernels {
        Kernels {
            dot: dot_generic,
            l2: l2_generic,
            name: "generic",
        }
    }
}

/// The best kernels this CPU runs, detected once.
pub fn kernels() -> Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    *K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            return Kernels {
                // SAFETY: the CPU has AVX2 and FMA (checked just above), the
                // features these functions are compiled for.
                dot: |a, b| unsafe { dot_avx2(a, b) },
                // SAFETY: as above.
                l2: |a, b| unsafe { l2_avx2(a, b) },
                name: "avx2+fma",
            };
        }
        Kernels::generic()
    })
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Dot product with 16 independent accumulators so the loop vectorises.
#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// Squared euclidean distance, shaped like [`dot_generic`].
#[inline(always)]
fn l2_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let d = x[i] - y[i];
            acc[i] = d.mul_add(d, acc[i]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += (x - y) * (x - y);
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
    l2_generic(a, b)
}

/// `a · b` in `f64` arithmetic: exact products, no overflow for any
/// finite `f32` input (the fallback of a score the `f32` kernel overflowed).
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// `‖a − b‖²` in `f64` arithmetic (see [`dot_f64`]).
pub fn l2_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

/// Hints the CPU to fetch the first two cache lines of `v` (HNSW search
/// prefetches the vectors of a node's neighbours before scoring them).
#[inline]
pub(crate) fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = v.as_ptr().cast::<i8>();
        // SAFETY: prefetching is a hint; it never faults, whatever the
        // address (`wrapping_add` keeps the pointer arithmetic defined).
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Hints the CPU to fetch every cache line of `v`: issued for the next
/// vector HNSW search scores while it scores the current one, so the
/// stream of misses overlaps the arithmetic.
#[inline]
pub(crate) fn prefetch_all(v: &[f32]) {
    prefetch_bytes(v.as_ptr().cast(), std::mem::size_of_val(v));
}

/// Hints the CPU to fetch the cache lines of `bytes` bytes from `p` (any
/// address: a prefetch never faults).
#[inline]
pub(crate) fn prefetch_bytes(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = p.cast::<i8>();
        let mut off = 0;
        while off < bytes {
            // SAFETY: as in `prefetch`: a hint that never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

/// `out[t] = qs · codes[row t]` for every candidate row (`rows[t]`, or `t`
/// itself when `rows` is `None`); `codes` holds `d` codes per row.
pub(crate) fn scan_codes(
    qs: &[f32],
    codes: &[i8],
    d: usize,
    rows: Option<&[usize]>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        unsafe { scan_avx512(qs, codes, d, rows, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { scan_avx2(qs, codes, d, rows, out) };
        return;
    }
    scan_with(qs, codes, d, rows, out, dot_codes_generic);
}

#[inline(always)]
fn scan_with(
    qs: &[f32],
    codes: &[i8],
    d: usize,
    rows: Option<&[usize]>,
    out: &mut [f32],
    dot: impl Fn(&[f32], &[i8]) -> f32,
) {
    match rows {
        None => {
            for (o, c) in out.iter_mut().zip(codes.chunks_exact(d)) {
                *o = dot(qs, c);
            }
        }
        Some(rows) => {
            for (o, &i) in out.iter_mut().zip(rows) {
                *o = dot(qs, &codes[i * d..(i + 1) * d]);
            }
        }
    }
}

/// `q · c` with the codes widened to `f32`, portable.
#[inline(always)]
pub(crate) fn dot_codes_generic(q: &[f32], c: &[i8]) -> f32 {
    let mut acc = [0f32; 16];
    let (cq, cc) = (q.chunks_exact(16), c.chunks_exact(16));
    let (rq, rc) = (cq.remainder(), cc.remainder());
    for (x, y) in cq.zip(cc) {
        for i in 0..16 {
            acc[i] += x[i] * f32::from(y[i]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in rq.iter().zip(rc) {
        tail += x * f32::from(*y);
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scan_avx2(qs: &[f32], codes: &[i8], d: usize, rows: Option<&[usize]>, out: &mut [f32]) {
    // A safe call: a closure in a `#[target_feature]` function has its
    // features, the ones `dot_codes_avx2` needs.
    scan_with(qs, codes, d, rows, out, |q, c| dot_codes_avx2(q, c));
}

/// `q · c` with the codes widened to `f32` 8 at a time, 4 accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn dot_codes_avx2(q: &[f32], c: &[i8]) -> f32 {
    use std::arch::x86_64::*;
    let d = q.len().min(c.len());
    let (qp, cp) = (q.as_ptr(), c.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY: every load reads q[j..j+8] (32 bytes) or c[j..j+8] (8 bytes)
    // with j + 8 <= d, the length of both slices; the loads are unaligned
    // ones (`loadu`, `loadl_epi64`), so any address is fine.
    unsafe {
        let widen = |j: usize| {
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                cp.add(j) as *const __m128i
            )))
        };
        while j + 32 <= d {
            for (u, a) in acc.iter_mut().enumerate() {
                let o = j + 8 * u;
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(o)), widen(o), *a);
            }
            j += 32;
        }
        while j + 8 <= d {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(j)), widen(j), acc[0]);
            j += 8;
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    let mut total = _mm_cvtss_f32(h);
    while j < d {
        total += q[j] * f32::from(c[j]);
        j += 1;
    }
    total
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scan_avx512(qs: &[f32], codes: &[i8], d: usize, rows: Option<&[usize]>, out: &mut [f32]) {
    // A safe call, as in `scan_avx2`.
    scan_with(qs, codes, d, rows, out, |q, c| dot_codes_avx512(q, c));
}

/// `q · c` with the codes widened to `f32` 16 at a time, 4 accumulators:
/// half the instructions of the AVX2 kernel per code (the int8 scan is
/// bound by widening and multiplying, not by memory: 23 MB of codes at
/// 60K × 384 take ~2 ms with AVX2, far under what the memory delivers).
/// It sums in another order than the others, within the same rounding
/// bound (the unit tests check each kernel the CPU has).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn dot_codes_avx512(q: &[f32], c: &[i8]) -> f32 {
    use std::arch::x86_64::*;
    let d = q.len().min(c.len());
    let (qp, cp) = (q.as_ptr(), c.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY: every load reads q[j..j+16] (64 bytes) or c[j..j+16] (16
    // bytes) with j + 16 <= d, the length of both slices; the loads are
    // unaligned ones (`loadu`), so any address is fine.
    unsafe {
        let widen = |j: usize| {
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                cp.add(j) as *const __m128i
            )))
        };
        while j + 64 <= d {
            for (u, a) in acc.iter_mut().enumerate() {
                let o = j + 16 * u;
                *a = _mm512_fmadd_ps(_mm512_loadu_ps(qp.add(o)), widen(o), *a);
            }
            j += 64;
        }
        while j + 16 <= d {
            acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(qp.add(j)), widen(j), acc[0]);
            j += 16;
        }
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut total = _mm512_reduce_add_ps(s);
    while j < d {
        total += q[j] * f32::from(c[j]);
        j += 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) (splitmix64).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Lengths around every boundary the kernels have (16-wide chunks,
    /// 32- and 8-wide AVX2 steps, the scalar tail).
    const LENGTHS: [usize; 14] = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 384, 1000];

    #[test]
    fn simd_and_generic_f32_kernels_return_the_same_bits() {
        let (k, g) = (kernels(), Kernels::generic());
        if k.name == "generic" {
            eprintln!("this CPU has no AVX2+FMA: only the generic kernels run");
        }
        for (i, &d) in LENGTHS.iter().enumerate() {
            let a = values(d, i as u64);
            let b = values(d, 100 + i as u64);
            assert_eq!(
                (k.dot)(&a, &b).to_bits(),
                (g.dot)(&a, &b).to_bits(),
                "dot d={d}"
            );
            assert_eq!(
                (k.l2)(&a, &b).to_bits(),
                (g.l2)(&a, &b).to_bits(),
                "l2 d={d}"
            );
        }
    }

    #[test]
    fn f32_kernels_match_f64_arithmetic() {
        let k = kernels();
        for (i, &d) in LENGTHS.iter().enumerate() {
            let a = values(d, 7 + i as u64);
            let b = values(d, 70 + i as u64);
            let dot: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let l2: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum();
            let tol = 1e-5 * (d as f64).max(1.0);
            assert!((f64::from((k.dot)(&a, &b)) - dot).abs() <= tol, "dot d={d}");
            assert!((f64::from((k.l2)(&a, &b)) - l2).abs() <= tol, "l2 d={d}");
        }
        // The same vector is at distance 0 from itself.
        let a = values(384, 3);
        assert_eq!((k.l2)(&a, &a), 0.0);
    }

    #[test]
    fn simd_and_generic_int8_scans_agree_within_the_rounding_bound() {
        for (i, &d) in LENGTHS.iter().enumerate().filter(|(_, d)| **d > 0) {
            let n = 5;
            let q = values(d, 30 + i as u64);
            let codes: Vec<i8> = values(n * d, 40 + i as u64)
                .into_iter()
                .map(|x| (x * 127.0) as i8)
                .collect();
            for (name, scan) in int8_scans() {
                let mut simd = vec![0f32; n];
                scan(&q, &codes, d, None, &mut simd);
                let rows = [4usize, 0, 2];
                let mut picked = vec![0f32; rows.len()];
                scan(&q, &codes, d, Some(&rows), &mut picked);
                for r in 0..n {
                    let c = &codes[r * d..(r + 1) * d];
                    let generic = dot_codes_generic(&q, c);
                    // The quantizer's rounding model: γ·Σ|q_j c_j| with γ = 2(d+32)·2⁻²⁴.
                    let mag: f64 = q
                        .iter()
                        .zip(c)
                        .map(|(x, y)| f64::from(*x * f32::from(*y)).abs())
                        .sum();
                    let bound = 2.0 * 2.0 * (d as f64 + 32.0) / 16_777_216.0 * mag;
                    assert!(
                        (f64::from(simd[r]) - f64::from(generic)).abs() <= bound,
                        "{name} d={d} row {r}: {} vs {generic}",
                        simd[r]
                    );
                }
                for (t, &r) in rows.iter().enumerate() {
                    assert_eq!(
                        picked[t].to_bits(),
                        simd[r].to_bits(),
                        "{name} row {r} through rows"
                    );
                }
            }
        }
    }

    type Scan = fn(&[f32], &[i8], usize, Option<&[usize]>, &mut [f32]);

    /// Every int8 scan this CPU runs (not only the one `scan_codes` picks).
    fn int8_scans() -> Vec<(&'static str, Scan)> {
        let mut scans: Vec<(&'static str, Scan)> = vec![
            ("dispatched", scan_codes),
            ("generic", |q, c, d, rows, out| {
                scan_with(q, c, d, rows, out, dot_codes_generic)
            }),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                scans.push(("avx2", |q, c, d, rows, out| unsafe {
                    scan_avx2(q, c, d, rows, out)
                }));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                scans.push(("avx512", |q, c, d, rows, out| unsafe {
                    scan_avx512(q, c, d, rows, out)
                }));
            }
        }
        scans
    }
}
