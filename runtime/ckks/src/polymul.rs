//! Products of ciphertext halves with plaintext polynomials, for image packing (Cheetah's
//! HomConv and HomFC, Huang et al., USENIX Security 2022, §3).
//!
//! In image packing a linear layer is `y_k = Σ_t x_{a(t)} · K_t` with plaintext kernel
//! polynomials `K_t`. Each half (c0 and c1) of every input is transformed to the NTT domain
//! once, each kernel polynomial once (offline, at load time), and every output is a sum of
//! pointwise products, normalized and transformed back once: with I inputs and O outputs that
//! is I + O transforms for I·O products. The product acts on c0 and c1 alike, so the offline
//! pass computes c1·K (c1 = a(seed)) before the client's data exists.

use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::params::Params;
use crate::poly::RnsPoly;

/// A polynomial in the NTT domain at some level: limb-major, N values per limb (unnormalized
/// forward transforms, as `tfhe-ntt` produces them).
#[derive(Clone, PartialEq)]
pub struct NttPoly {
    params: Arc<Params>,
    level: usize,
    data: Vec<u64>,
}

impl std::fmt::Debug for NttPoly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NttPoly")
            .field("n", &self.params.n())
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl NttPoly {
    /// A signed integer plaintext polynomial (at most N coefficients, zero-extended) at `level`.
    pub fn from_plain(params: &Arc<Params>, level: usize, coeffs: &[i64]) -> Result<NttPoly> {
        params.check_level(level)?;
        let n = params.n();
        if coeffs.len() > n {
            return Err(Error::LengthMismatch {
                expected: n,
                actual: coeffs.len(),
            });
        }
        let mut data = vec![0u64; (level + 1) * n];
        data.par_chunks_exact_mut(n)
            .enumerate()
            .for_each(|(j, limb)| {
                let q = params.moduli()[j];
                for (o, &c) in limb.iter_mut().zip(coeffs) {
                    *o = c.rem_euclid(q as i64) as u64;
                }
                params.fwd_limb(j, limb);
            });
        Ok(NttPoly {
            params: params.clone(),
            level,
            data,
        })
    }

    /// The forward transform of a full-width half (c1, or a c0 known in full).
    pub fn from_half(x: &RnsPoly) -> Result<NttPoly> {
        let params = x.params().clone();
        let n = params.n();
        if x.width() != n {
            return Err(Error::LengthMismatch {
                expected: n,
                actual: x.width(),
            });
        }
        let mut data = x.data().to_vec();
        data.par_chunks_exact_mut(n)
            .enumerate()
            .for_each(|(j, limb)| params.fwd_limb(j, limb));
        Ok(NttPoly {
            params,
            level: x.level(),
            data,
        })
    }

    /// Level.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The same polynomial at a lower level (drops limbs: exact).
    pub fn mod_drop(&self, level: usize) -> Result<NttPoly> {
        if level > self.level {
            return Err(Error::InvalidLevel {
                level,
                max: self.level,
            });
        }
        let n = self.params.n();
        Ok(NttPoly {
            params: self.params.clone(),
            level,
            data: self.data[..(level + 1) * n].to_vec(),
        })
    }
}

/// `Σ_t inputs[t.0] · kernels[t.1]` over `terms`, back in coefficient form (width N), at the
/// common level. Limbs run in parallel.
pub fn poly_dot(inputs: &[NttPoly], kernels: &[NttPoly], terms: &[(u32, u32)]) -> Result<RnsPoly> {
    let first = terms
        .first()
        .and_then(|&(a, _)| inputs.get(a as usize))
        .ok_or(Error::LengthMismatch {
            expected: 1,
            actual: 0,
        })?;
    let params = first.params.clone();
    let level = first.level;
    let n = params.n();
    let mut pairs = Vec::with_capacity(terms.len());
    for &(a, k) in terms {
        let (x, w) = match (inputs.get(a as usize), kernels.get(k as usize)) {
            (Some(x), Some(w)) => (x, w),
            _ => {
                return Err(Error::LengthMismatch {
                    expected: inputs.len().max(kernels.len()),
                    actual: a.max(k) as usize,
                })
            }
        };
        if *x.params != *params || *w.params != *params {
            return Err(Error::ParamsMismatch);
        }
        if x.level != level || w.level < level {
            return Err(Error::LevelMismatch {
                a: level,
                b: if x.level != level { x.level } else { w.level },
            });
        }
        pairs.push((x, w));
    }
    let mut data = vec![0u64; (level + 1) * n];
    data.par_chunks_exact_mut(n)
        .enumerate()
        .for_each(|(j, acc)| {
            let r = j * n..(j + 1) * n;
            for (x, w) in &pairs {
                params.mul_acc_limb(j, acc, &x.data[r.clone()], &w.data[r.clone()]);
            }
            params.normalize_inv_limb(j, acc);
        });
    Ok(RnsPoly::from_raw(&params, level, n, data))
}
