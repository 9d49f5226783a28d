//! The BERT encoder's forward pass, in plain f32 loops.
//!
//! Texts of a batch are *packed*: their tokens are stacked into one
//! `[tokens, hidden]` matrix for the dense layers (where nearly all the
//! time goes), and self-attention runs per text over that text's own
//! tokens. That is exactly what a padded batch with an attention mask
//! computes (a masked key gets weight exp(-inf) = 0), without computing
//! the padding.
//!
//! Weights are transposed once, at load, into panels of 16 output columns
//! (`[in, 16]` each, contiguous), so a dense layer's inner loop is a
//! register-held 4 × 16 block of sums, `acc[r][c] += x[r][i] * w[i][c]`:
//! contiguous, no horizontal reduction, auto-vectorised by the compiler
//! (and compiled a second time for AVX2, chosen at run time when the CPU
//! has it).

use super::{ModelError, safetensors::SafeTensors};

/// The shape parameters from `config.json`.
#[derive(Debug, Clone)]
pub(crate) struct BertConfig {
    pub(crate) vocab: usize,
    pub(crate) hidden: usize,
    pub(crate) layers: usize,
    pub(crate) heads: usize,
    pub(crate) intermediate: usize,
    pub(crate) max_positions: usize,
    pub(crate) type_vocab: usize,
    pub(crate) eps: f32,
}

/// A dense layer, `y = x Wᵀ + b`, W kept in panels (see [`Linear::new`]).
struct Linear {
    wt: Vec<f32>,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

struct LayerNorm {
    g: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    /// Query, key and value fused: `out` = 3 × hidden.
    qkv: Linear,
    attn_out: Linear,
    ln1: LayerNorm,
    up: Linear,
    down: Linear,
    ln2: LayerNorm,
}

/// A loaded BERT encoder.
pub(crate) struct Bert {
    cfg: BertConfig,
    word: Vec<f32>,
    pos: Vec<f32>,
    token_type: Vec<f32>,
    ln: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Loads the weights of a `BertModel` checkpoint (names with or without
    /// a `bert.` prefix), checking every tensor's dtype and shape.
    pub(crate) fn load(st: &SafeTensors, cfg: BertConfig) -> Result<Bert, ModelError> {
        let prefix = if st
            .f32(
                "embeddings.word_embeddings.weight",
                &[cfg.vocab, cfg.hidden],
            )
            .is_err()
            && st
                .f32(
                    "bert.embeddings.word_embeddings.weight",
                    &[cfg.vocab, cfg.hidden],
                )
                .is_ok()
        {
            "bert."
        } else {
            ""
        };
        let t = |name: &str, shape: &[usize]| st.f32(&format!("{prefix}{name}"), shape);
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let linear = |name: &str, out: usize, inp: usize| -> Result<Linear, ModelError> {
            let w = t(&format!("{name}.weight"), &[out, inp])?;
            let b = t(&format!("{name}.bias"), &[out])?;
            Ok(Linear::new(&w, b, out, inp))
        };
        let norm = |name: &str| -> Result<LayerNorm, ModelError> {
            Ok(LayerNorm {
                g: t(&format!("{name}.weight"), &[h])?,
                b: t(&format!("{name}.bias"), &[h])?,
            })
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("encoder.layer.{l}");
            // Query, key and value fused: their [h, h] weights stacked
            // into one [3h, h].
            let (mut w, mut b) = (Vec::with_capacity(3 * h * h), Vec::with_capacity(3 * h));
            for m in ["query", "key", "value"] {
                w.extend(t(&format!("{p}.attention.self.{m}.weight"), &[h, h])?);
                b.extend(t(&format!("{p}.attention.self.{m}.bias"), &[h])?);
            }
            layers.push(Layer {
                qkv: Linear::new(&w, b, 3 * h, h),
                attn_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                ln1: norm(&format!("{p}.attention.output.LayerNorm"))?,
                up: linear(&format!("{p}.intermediate.dense"), i, h)?,
                down: linear(&format!("{p}.output.dense"), h, i)?,
                ln2: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            word: t("embeddings.word_embeddings.weight", &[cfg.vocab, h])?,
            pos: t(
                "embeddings.position_embeddings.weight",
                &[cfg.max_positions, h],
            )?,
            token_type: t(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab, h],
            )?,
            ln: norm("embeddings.LayerNorm")?,
            layers,
            cfg,
        })
    }

    /// The vocabulary size (ids must be below it).
    pub(crate) fn vocab(&self) -> usize {
        self.cfg.vocab
    }

    /// The longest sequence the position embeddings cover.
    pub(crate) fn max_positions(&self) -> usize {
        self.cfg.max_positions
    }

    /// Pooled (and, if `normalize`, L2-normalised) embeddings of the token
    /// sequences `seqs` (each `[CLS] … [SEP]`, within the position range),
    /// using up to `threads` threads for the dense layers.
    pub(crate) fn embed(
        &self,
        seqs: &[Vec<u32>],
        pooling: super::Pooling,
        normalize: bool,
        threads: usize,
    ) -> Vec<Vec<f32>> {
        let h = self.cfg.hidden;
        let total: usize = seqs.iter().map(Vec::len).sum();
        let mut x = vec![0f32; total * h];
        let mut row = 0;
        for seq in seqs {
            for (p, &id) in seq.iter().enumerate() {
                let dst = &mut x[row * h..(row + 1) * h];
                let w = &self.word[id as usize * h..(id as usize + 1) * h];
                let ps = &self.pos[p * h..(p + 1) * h];
                let ty = &self.token_type[..h];
                for j in 0..h {
                    dst[j] = w[j] + ps[j] + ty[j];
                }
                row += 1;
            }
        }
        layer_norm(&mut x, &self.ln, self.cfg.eps);

        let mut qkv = vec![0f32; total * 3 * h];
        let mut ctx = vec![0f32; total * h];
        let mut tmp = vec![0f32; total * h];
        let mut inter = vec![0f32; total * self.cfg.intermediate];
        for layer in &self.layers {
            layer.qkv.forward(&x, &mut qkv, threads);
            self.attention(seqs, &qkv, &mut ctx);
            layer.attn_out.forward(&ctx, &mut tmp, threads);
            add(&mut x, &tmp);
            layer_norm(&mut x, &layer.ln1, self.cfg.eps);
            layer.up.forward(&x, &mut inter, threads);
            inter.iter_mut().for_each(|v| *v = gelu(*v));
            layer.down.forward(&inter, &mut tmp, threads);
            add(&mut x, &tmp);
            layer_norm(&mut x, &layer.ln2, self.cfg.eps);
        }

        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        for seq in seqs {
            let mut v = vec![0f64; h];
            // Mean: every token ([CLS] and [SEP] included); CLS: the first.
            let rows = match pooling {
                super::Pooling::Mean => start..start + seq.len(),
                super::Pooling::Cls => start..start + seq.len().min(1),
            };
            let n = rows.len().max(1) as f64;
            for r in rows {
                for (a, b) in v.iter_mut().zip(&x[r * h..(r + 1) * h]) {
                    *a += f64::from(*b);
                }
            }
            start += seq.len();
            v.iter_mut().for_each(|a| *a /= n);
            let norm = if normalize {
                v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12)
            } else {
                1.0
            };
            out.push(v.iter().map(|a| (a / norm) as f32).collect());
        }
        out
    }

    /// Multi-head self-attention of each sequence over its own tokens;
    /// `qkv` rows are `[q | k | v]`, `ctx` gets the heads' outputs side by side.
    fn attention(&self, seqs: &[Vec<u32>], qkv: &[f32], ctx: &mut [f32]) {
        let h = self.cfg.hidden;
        let heads = self.cfg.heads;
        let dh = h / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let w = 3 * h;
        let mut start = 0;
        let mut scores = Vec::new();
        // Keys and values of one head, gathered contiguous: [len, dh].
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for seq in seqs {
            let len = seq.len();
            scores.resize(len, 0f32);
            for head in 0..heads {
                keys.clear();
                values.clear();
                for j in 0..len {
                    let r = (start + j) * w;
                    keys.extend_from_slice(&qkv[r + h + head * dh..r + h + (head + 1) * dh]);
                    values.extend_from_slice(
                        &qkv[r + 2 * h + head * dh..r + 2 * h + (head + 1) * dh],
                    );
                }
                for i in 0..len {
                    let r = (start + i) * w;
                    let q = &qkv[r + head * dh..r + (head + 1) * dh];
                    let mut max = f32::NEG_INFINITY;
                    for (j, s) in scores.iter_mut().enumerate() {
                        *s = dot(q, &keys[j * dh..(j + 1) * dh]) * scale;
                        max = max.max(*s);
                    }
                    let mut sum = 0f32;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let out =
                        &mut ctx[(start + i) * h + head * dh..(start + i) * h + (head + 1) * dh];
                    out.fill(0.0);
                    for (j, s) in scores.iter().enumerate() {
                        let p = s / sum;
                        for (o, v) in out.iter_mut().zip(&values[j * dh..(j + 1) * dh]) {
                            *o += p * v;
                        }
                    }
                }
            }
            start += len;
        }
    }
}

/// Output columns per weight panel (two AVX registers of f32).
const PANEL: usize = 16;
/// Rows of `x` per micro-kernel call.
const TILE: usize = 4;

impl Linear {
    /// A dense layer from PyTorch's `[out, inp]` weight: stored as panels
    /// of [`PANEL`] output columns, each `[inp, PANEL]` contiguous (the
    /// last one zero-padded), so the micro-kernel streams its weights.
    fn new(w: &[f32], b: Vec<f32>, out: usize, inp: usize) -> Linear {
        let panels = out.div_ceil(PANEL);
        let mut wt = vec![0f32; panels * inp * PANEL];
        for o in 0..out {
            let (p, c) = (o / PANEL, o % PANEL);
            for i in 0..inp {
                wt[p * inp * PANEL + i * PANEL + c] = w[o * inp + i];
            }
        }
        Linear { wt, b, inp, out }
    }

    /// `y = x Wᵀ + b` for every row of `x` (`[rows, inp]` into `[rows, out]`).
    fn forward(&self, x: &[f32], y: &mut [f32], threads: usize) {
        let rows = x.len() / self.inp;
        debug_assert_eq!(y.len(), rows * self.out);
        // Below a few rows per thread, threads cost more than they give.
        let threads = threads.clamp(1, rows.div_ceil(8).max(1));
        if threads == 1 {
            self.rows(x, y);
            return;
        }
        let per = rows.div_ceil(threads).next_multiple_of(TILE);
        std::thread::scope(|s| {
            for (xs, ys) in x.chunks(per * self.inp).zip(y.chunks_mut(per * self.out)) {
                s.spawn(move || self.rows(xs, ys));
            }
        });
    }

    /// [`forward`](Self::forward) on one thread, with AVX2 when the CPU has
    /// it (checked at run time; the same loops, compiled for it).
    fn rows(&self, x: &[f32], y: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, which `rows_avx2` is compiled for.
            unsafe { self.rows_avx2(x, y) };
            return;
        }
        self.rows_with(x, y);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn rows_avx2(&self, x: &[f32], y: &mut [f32]) {
        self.rows_with(x, y);
    }

    /// The blocked product: for each weight panel, for each tile of
    /// [`TILE`] rows, a `TILE × PANEL` block of accumulators (kept in
    /// registers) summed over `inp`. Separate multiply and add (no FMA), so
    /// both compilations give the same sums in the same order.
    #[inline(always)]
    fn rows_with(&self, x: &[f32], y: &mut [f32]) {
        let (inp, out) = (self.inp, self.out);
        let rows = x.len() / inp;
        // x re-laid as tiles of TILE rows interleaved: [tile][i][r].
        let tiles = rows.div_ceil(TILE);
        let mut xp = vec![0f32; tiles * inp * TILE];
        for r in 0..rows {
            let (t, k) = (r / TILE, r % TILE);
            for (i, v) in x[r * inp..(r + 1) * inp].iter().enumerate() {
                xp[t * inp * TILE + i * TILE + k] = *v;
            }
        }
        for (p, panel) in self.wt.chunks_exact(inp * PANEL).enumerate() {
            let c0 = p * PANEL;
            let width = PANEL.min(out - c0);
            for (t, xt) in xp.chunks_exact(inp * TILE).enumerate() {
                let mut acc = [[0f32; PANEL]; TILE];
                for (xs, w) in xt.chunks_exact(TILE).zip(panel.chunks_exact(PANEL)) {
                    let xs: &[f32; TILE] = xs.try_into().expect("TILE values");
                    let w: &[f32; PANEL] = w.try_into().expect("PANEL values");
                    for r in 0..TILE {
                        let a = xs[r];
                        for c in 0..PANEL {
                            acc[r][c] += a * w[c];
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    let row = t * TILE + r;
                    if row < rows {
                        let dst = &mut y[row * out + c0..row * out + c0 + width];
                        for ((d, a), b) in dst.iter_mut().zip(acc).zip(&self.b[c0..]) {
                            *d = a + b;
                        }
                    }
                }
            }
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// A dot product with 8 independent partial sums (so it vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// LayerNorm of each row (biased variance, as PyTorch), in place.
fn layer_norm(x: &mut [f32], ln: &LayerNorm, eps: f32) {
    let h = ln.g.len();
    for row in x.chunks_mut(h) {
        let mean = row.iter().map(|v| f64::from(*v)).sum::<f64>() / h as f64;
        let var = row
            .iter()
            .map(|v| (f64::from(*v) - mean).powi(2))
            .sum::<f64>()
            / h as f64;
        let inv = 1.0 / (var + f64::from(eps)).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&ln.g).zip(&ln.b) {
            *v = ((f64::from(*v) - mean) * inv) as f32 * g + b;
        }
    }
}

/// GELU, the exact (erf) form: x/2 · (1 + erf(x/√2)).
fn gelu(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
}

/// erf via the Chebyshev-fitted complementary error function of Press et
/// al. (Numerical Recipes, `erfcc`): fractional error below 1.2e-7
/// everywhere, well under f32's resolution for GELU.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), from tables.
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (-1.0, -0.842_700_792_949_714_9),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn linear_tiled_threaded_and_plain_agree() {
        let (inp, out, rows) = (7, 21, 11);
        let w: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32 * 0.1).collect();
        let x: Vec<f32> = (0..rows * inp).map(|i| (i as f32 * 0.11).cos()).collect();
        let l = Linear::new(&w, b.clone(), out, inp);
        for threads in [0, 1, 2, 3] {
            let mut y = vec![0f32; rows * out];
            if threads == 0 {
                // The portable kernel, whatever the CPU.
                l.rows_with(&x, &mut y);
            } else {
                l.forward(&x, &mut y, threads);
            }
            for r in 0..rows {
                for o in 0..out {
                    let want: f32 = b[o]
                        + (0..inp)
                            .map(|i| x[r * inp + i] * w[o * inp + i])
                            .sum::<f32>();
                    assert!((y[r * out + o] - want).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..19).map(|i| (i * i) as f32).sum::<f32>());
    }
}
