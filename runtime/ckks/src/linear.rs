//! The linear-layer kernel: y_k = Σ_i w_ki·ct_i (+ bias_k) for a sparse integer matrix.
//!
//! Everything is coefficient-wise: for row k and prime q_j, the output limb is
//! Σ_i (w_ki mod q_j)·ct_i[j] accumulated in u128 and reduced once at the end (lazy reduction:
//! products are < q_j², so ⌊(2^128 − q_j)/(q_j − 1)²⌋ ≥ 16 of them fit; for primes below 2^54
//! that is over a million, i.e. never reached in practice). Rows run in parallel with rayon.

use std::sync::Arc;

use rayon::prelude::*;

use crate::arith::Modulus;
use crate::ciphertext::Ciphertext;
use crate::error::{Error, Result};
use crate::params::Params;
use crate::poly::RnsPoly;

/// A sparse integer matrix in compressed-sparse-row form. Row k's non-zeros are
/// `cols[row_ptr[k]..row_ptr[k+1]]` with weights `weights[..]` (|w| up to ~2^62 allowed; the
/// linear-layer plan uses ≤ 2^50).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrMatrix {
    row_ptr: Vec<usize>,
    cols: Vec<u32>,
    weights: Vec<i64>,
    n_cols: usize,
}

impl CsrMatrix {
    /// Validates and builds a CSR matrix with `n_cols` columns: `row_ptr` starts at 0, is
    /// non-decreasing and ends at `cols.len() == weights.len()`; every column is < `n_cols`.
    pub fn new(
        row_ptr: Vec<usize>,
        cols: Vec<u32>,
        weights: Vec<i64>,
        n_cols: usize,
    ) -> Result<CsrMatrix> {
        if row_ptr.first() != Some(&0) {
            return Err(Error::InvalidMatrix {
                reason: "row_ptr must start with 0",
            });
        }
        if row_ptr.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::InvalidMatrix {
                reason: "row_ptr must be non-decreasing",
            });
        }
        if row_ptr.last() != Some(&cols.len()) || cols.len() != weights.len() {
            return Err(Error::InvalidMatrix {
                reason: "row_ptr end, cols and weights lengths disagree",
            });
        }
        for (row, w) in row_ptr.windows(2).enumerate() {
            for &col in &cols[w[0]..w[1]] {
                if col as usize >= n_cols {
                    return Err(Error::ColumnOutOfRange {
                        row,
                        col,
                        inputs: n_cols,
                    });
                }
            }
        }
        Ok(CsrMatrix {
            row_ptr,
            cols,
            weights,
            n_cols,
        })
    }

    /// Builds a CSR matrix from a dense row-major matrix, skipping zeros.
    pub fn from_dense(rows: usize, n_cols: usize, dense: &[i64]) -> Result<CsrMatrix> {
        if dense.len() != rows * n_cols {
            return Err(Error::LengthMismatch {
                expected: rows * n_cols,
                actual: dense.len(),
            });
        }
        let mut row_ptr = vec![0];
        let mut cols = Vec::new();
        let mut weights = Vec::new();
        for r in 0..rows {
            for (c, &w) in dense[r * n_cols..(r + 1) * n_cols].iter().enumerate() {
                if w != 0 {
                    cols.push(c as u32);
                    weights.push(w);
                }
            }
            row_ptr.push(cols.len());
        }
        CsrMatrix::new(row_ptr, cols, weights, n_cols)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.row_ptr.len() - 1
    }

    /// Number of columns (inputs).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of non-zeros.
    pub fn nnz(&self) -> usize {
        self.cols.len()
    }

    /// Row k's (columns, weights).
    pub fn row(&self, k: usize) -> (&[u32], &[i64]) {
        let (a, b) = (self.row_ptr[k], self.row_ptr[k + 1]);
        (&self.cols[a..b], &self.weights[a..b])
    }

    /// max_k Σ_i |w_ki|: the factor by which a linear layer can grow a noise bound.
    pub fn max_row_l1(&self) -> u128 {
        (0..self.rows())
            .map(|k| {
                self.row(k)
                    .1
                    .iter()
                    .map(|w| u128::from(w.unsigned_abs()))
                    .sum()
            })
            .max()
            .unwrap_or(0)
    }
}

/// Per-row plaintext bias for [`linear`]: `values[k]` is added to coefficients
/// `0..coeffs` of row k's c0 (only the used batch slots, so unused coefficients stay zero).
#[derive(Debug, Clone, Copy)]
pub struct RowBias<'a> {
    /// One signed integer per row (e.g. round(b_k·Δ·p_ℓ)).
    pub values: &'a [i128],
    /// Number of leading coefficients that receive the bias (the batch size B ≤ N).
    pub coeffs: usize,
    /// When given, every bias is added times the integer F whose residues modulo the level's
    /// primes these are ([`crate::Params::factor_residues`]): a bias `round(b·Δ·p)·2^shift`
    /// beyond 128 bits, formed per limb.
    pub factor: Option<&'a [u64]>,
}

/// Coefficients processed per block: 256 u128 accumulators = 4 KiB, resident in L1.
const BLOCK: usize = 256;

/// Checks that all inputs share parameters and level; returns them.
fn check_inputs<T>(
    inputs: &[&T],
    m: &CsrMatrix,
    meta: impl Fn(&T) -> (Arc<Params>, usize),
) -> Result<(Arc<Params>, usize)> {
    let first = inputs.first().ok_or(Error::InvalidMatrix {
        reason: "no input ciphertexts",
    })?;
    if inputs.len() != m.n_cols {
        return Err(Error::LengthMismatch {
            expected: m.n_cols,
            actual: inputs.len(),
        });
    }
    let (params, level) = meta(first);
    for x in inputs {
        let (p, l) = meta(x);
        if !Arc::ptr_eq(&p, &params) && *p != *params {
            return Err(Error::ParamsMismatch);
        }
        if l != level {
            return Err(Error::LevelMismatch { a: level, b: l });
        }
    }
    Ok((params, level))
}

fn check_bias(bias: Option<&RowBias<'_>>, rows: usize, width: usize) -> Result<()> {
    if let Some(b) = bias {
        if b.values.len() != rows {
            return Err(Error::LengthMismatch {
                expected: rows,
                actual: b.values.len(),
            });
        }
        if b.coeffs > width {
            return Err(Error::LengthMismatch {
                expected: width,
                actual: b.coeffs,
            });
        }
    }
    Ok(())
}

fn check_factor(bias: Option<&RowBias<'_>>, limbs: usize) -> Result<()> {
    match bias.and_then(|b| b.factor) {
        Some(f) if f.len() != limbs => Err(Error::LengthMismatch {
            expected: limbs,
            actual: f.len(),
        }),
        _ => Ok(()),
    }
}

/// Adds row `k`'s bias to the first `coeffs` coefficients of every limb of `data`.
fn add_bias(
    mods: &[Modulus],
    width: usize,
    bias: Option<&RowBias<'_>>,
    k: usize,
    data: &mut [u64],
) {
    let Some(b) = bias else { return };
    let v = b.values[k];
    if v == 0 {
        return;
    }
    for (j, (md, limb)) in mods.iter().zip(data.chunks_exact_mut(width)).enumerate() {
        let mut r = md.reduce_i128(v);
        if let Some(f) = b.factor {
            r = md.mul(r, f[j]);
        }
        for x in &mut limb[..b.coeffs] {
            *x = md.add(*x, r);
        }
    }
}

/// y_k = Σ_i w_ki·ct_i (+ bias_k) for every row k of `m`, over `inputs` (all at one level and
/// parameter set; `inputs.len() == m.n_cols()`). Rows are computed in parallel (rayon).
/// Noise: |e_k| ≤ Σ_i |w_ki|·|e_i| (exact integer arithmetic; see [`CsrMatrix::max_row_l1`]).
pub fn linear(
    inputs: &[&Ciphertext],
    m: &CsrMatrix,
    bias: Option<RowBias<'_>>,
) -> Result<Vec<Ciphertext>> {
    let (params, level) = check_inputs(inputs, m, |c: &Ciphertext| (c.params.clone(), c.level))?;
    let n = params.n();
    check_bias(bias.as_ref(), m.rows(), n)?;
    check_factor(bias.as_ref(), level + 1)?;
    let mods = &params.mods[..=level];
    let c0s: Vec<&[u64]> = inputs.iter().map(|c| c.c0.as_slice()).collect();
    let c1s: Vec<&[u64]> = inputs.iter().map(|c| c.c1.as_slice()).collect();
    let y0 = linear_limbs(&c0s, n, mods, m);
    let y1 = linear_limbs(&c1s, n, mods, m);
    Ok(y0
        .into_iter()
        .zip(y1)
        .enumerate()
        .map(|(k, (mut c0, c1))| {
            add_bias(mods, n, bias.as_ref(), k, &mut c0);
            Ciphertext {
                params: params.clone(),
                level,
                c0,
                c1,
            }
        })
        .collect())
}

/// [`linear`] on one half of the ciphertexts ([`RnsPoly`], any width): the server runs it on
/// the c1 halves offline (without bias) and on the c0 windows online (with bias).
pub fn linear_polys(
    inputs: &[&RnsPoly],
    m: &CsrMatrix,
    bias: Option<RowBias<'_>>,
) -> Result<Vec<RnsPoly>> {
    let (params, level) = check_inputs(inputs, m, |p: &RnsPoly| (p.params.clone(), p.level))?;
    let width = inputs[0].width;
    if let Some(p) = inputs.iter().find(|p| p.width != width) {
        return Err(Error::LengthMismatch {
            expected: width,
            actual: p.width,
        });
    }
    check_bias(bias.as_ref(), m.rows(), width)?;
    check_factor(bias.as_ref(), level + 1)?;
    let mods = &params.mods[..=level];
    let xs: Vec<&[u64]> = inputs.iter().map(|p| p.data.as_slice()).collect();
    Ok(linear_limbs(&xs, width, mods, m)
        .into_iter()
        .enumerate()
        .map(|(k, mut data)| {
            add_bias(mods, width, bias.as_ref(), k, &mut data);
            RnsPoly {
                params: params.clone(),
                level,
                width,
                data,
            }
        })
        .collect())
}

/// The kernel on limb-major residue vectors of `width` coefficients per limb: one output
/// vector per row of `m`.
fn linear_limbs(inputs: &[&[u64]], width: usize, mods: &[Modulus], m: &CsrMatrix) -> Vec<Vec<u64>> {
    let row_ids: Vec<usize> = (0..m.rows()).collect();
    let tiles: Vec<Vec<Vec<u64>>> = row_ids
        .par_chunks(ROW_TILE)
        .map(|tile| {
            let len = mods.len() * width;
            let mut outs: Vec<Vec<u64>> = tile.iter().map(|_| vec![0u64; len]).collect();
            let mut wj: Vec<Vec<u64>> = tile.iter().map(|_| Vec::new()).collect();
            for (j, md) in mods.iter().enumerate() {
                for (w, &k) in wj.iter_mut().zip(tile) {
                    w.clear();
                    w.extend(m.row(k).1.iter().map(|&x| md.reduce_i64(x)));
                }
                // Coefficient blocks outermost, rows inside: the tile's rows reuse the same
                // input blocks while they are in L1/L2.
                let mut start = 0;
                while start < width {
                    let bl = BLOCK.min(width - start);
                    let at = j * width + start;
                    for ((out, w), &k) in outs.iter_mut().zip(&wj).zip(tile) {
                        mac_block(md, inputs, m.row(k).0, w, at, &mut out[at..at + bl]);
                    }
                    start += bl;
                }
            }
            outs
        })
        .collect();
    tiles.into_iter().flatten().collect()
}

/// Rows per parallel task (they share input blocks in cache).
const ROW_TILE: usize = 16;

/// One block of one limb of one row: out[i] = Σ_t w[t]·inputs[cols[t]][at + i] mod q.
fn mac_block(md: &Modulus, inputs: &[&[u64]], cols: &[u32], w: &[u64], at: usize, out: &mut [u64]) {
    let bl = out.len();
    if md.q < 1 << 32 {
        mac_block_32(md, inputs, cols, w, at, out);
        return;
    }
    let q = md.q;
    // Products are < (q−1)², so this many fit in a u128 on top of a reduced value < q.
    let max_terms = ((u128::MAX - u128::from(q)) / (u128::from(q - 1) * u128::from(q - 1)))
        .min(usize::MAX as u128) as usize;
    let mut acc = [0u128; BLOCK];
    let a = &mut acc[..bl];
    let mut terms = 0usize;
    for (&col, &wt) in cols.iter().zip(w) {
        let x = &inputs[col as usize][at..at + bl];
        let wt = u128::from(wt);
        for (a, &x) in a.iter_mut().zip(x) {
            *a += wt * u128::from(x);
        }
        terms += 1;
        if terms == max_terms {
            for a in a.iter_mut() {
                *a = u128::from(md.reduce_u128(*a));
            }
            terms = 0;
        }
    }
    for (o, &a) in out.iter_mut().zip(a.iter()) {
        *o = md.reduce_u128(a);
    }
}

/// Fast path for q < 2^32: 32×32→64-bit products (one `vpmuludq` lane each) split into two u64
/// accumulators of 32-bit halves, so 2^32 − 1 products fit without reduction and the loop
/// vectorizes.
fn mac_block_32(
    md: &Modulus,
    inputs: &[&[u64]],
    cols: &[u32],
    w: &[u64],
    at: usize,
    out: &mut [u64],
) {
    const LO: u64 = 0xffff_ffff;
    let bl = out.len();
    let mut lo = [0u64; BLOCK];
    let mut hi = [0u64; BLOCK];
    let (lo, hi) = (&mut lo[..bl], &mut hi[..bl]);
    let mut terms = 0usize;
    for (&col, &wt) in cols.iter().zip(w) {
        let src = &inputs[col as usize][at..at + bl];
        let wt = wt & LO;
        for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(src) {
            let p = (x & LO) * wt;
            *l += p & LO;
            *h += p >> 32;
        }
        terms += 1;
        // Each half-accumulator grows by < 2^32 per term (and a flushed value is < q < 2^32).
        if terms == (LO - 1) as usize {
            for (l, h) in lo.iter_mut().zip(hi.iter_mut()) {
                *l = md.reduce_u128((u128::from(*h) << 32) + u128::from(*l));
                *h = 0;
            }
            terms = 0;
        }
    }
    for ((o, &l), &h) in out.iter_mut().zip(lo.iter()).zip(hi.iter()) {
        *o = md.reduce_u128((u128::from(h) << 32) + u128::from(l));
    }
}
