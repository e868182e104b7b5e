//! Noise coefficients of the materialized tensors, as multiples of the primitive noise terms
//! that [`crate::params::noise`] bounds once N is known.

use super::affine::Affine;
use super::smap::SMap;

/// Lower bound on any prime p_ℓ used by the noise model (weights bits ≥ 20).
pub const MIN_PRIME: f64 = (1u64 << 19) as f64;

/// Linear combination of the primitive noise terms (see [`crate::params::noise`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NoiseCoeffs {
    /// Multiples of the fresh encryption noise bound.
    pub fresh: f64,
    /// Multiples of the rescale rounding bound.
    pub rescale: f64,
    /// Absolute part (weight rounding), in units of the scale's integers.
    pub constant: f64,
}

impl NoiseCoeffs {
    /// A freshly encrypted ciphertext (the input, or a client-encrypted MPC output). Resetting
    /// the noise to this at every re-encryption is exact: every circuit drops the noise of its
    /// inputs (docs/ARCHITECTURE.md, "Flood the share, truncate in the circuit").
    pub const FRESH: NoiseCoeffs = NoiseCoeffs {
        fresh: 1.0,
        rescale: 0.0,
        constant: 0.0,
    };
}

/// Noise of `rescale(W · x + b)` for the Linear `map` over columns with noise `col_noise` and
/// value bound `col_bound`: per row, Σ|w|·noise of its column, plus one rescale rounding and the
/// weight rounding; the maximum over rows. `None` if a row reads a column without noise or bound.
pub(super) fn linear(
    map: &Affine,
    col_noise: &[NoiseCoeffs],
    col_bound: &[f64],
    scale_bits: u32,
) -> Option<NoiseCoeffs> {
    let mut nz = NoiseCoeffs::default();
    for r in &map.rows {
        let mut acc = NoiseCoeffs {
            rescale: 1.0,
            constant: 1.0,
            ..Default::default()
        };
        for (&c, &v) in r.cols.iter().zip(&r.vals) {
            let a = v.abs();
            let (cn, &cb) = (col_noise.get(c as usize)?, col_bound.get(c as usize)?);
            acc.fresh += a * cn.fresh;
            acc.rescale += a * cn.rescale;
            acc.constant += a * cn.constant;
            // Weight rounding: |round(W p) − W p| ≤ ½ times |x|·Δ, divided by p.
            acc.constant += cb * f64::from(1u32 << scale_bits.min(31)) * 0.5 / MIN_PRIME;
        }
        nz.fresh = nz.fresh.max(acc.fresh);
        nz.rescale = nz.rescale.max(acc.rescale);
        nz.constant = nz.constant.max(acc.constant);
    }
    Some(nz)
}

/// [`linear`] for a structured map over inputs given as `(first column, noise, bound)`:
/// per output channel, Σ over its kernel rows of |w| times the noise of the row's input, the
/// full kernels counted (rows away from the padding attain it, so the maximum is exact for any
/// plane larger than the kernel and an upper bound otherwise).
pub(super) fn structured(
    map: &SMap,
    inputs: &[(u32, NoiseCoeffs, f64)],
    scale_bits: u32,
) -> Option<NoiseCoeffs> {
    let of = |col: u32| {
        let i = inputs.partition_point(|e| e.0 <= col).checked_sub(1)?;
        inputs.get(i)
    };
    let mut nz = NoiseCoeffs::default();
    for ch in map.channel_l1() {
        let mut acc = NoiseCoeffs {
            rescale: 1.0,
            constant: 1.0,
            ..Default::default()
        };
        for (col, l1, taps) in ch {
            let &(_, cn, cb) = of(col)?;
            acc.fresh += l1 * cn.fresh;
            acc.rescale += l1 * cn.rescale;
            acc.constant += l1 * cn.constant;
            acc.constant +=
                taps as f64 * cb * f64::from(1u32 << scale_bits.min(31)) * 0.5 / MIN_PRIME;
        }
        nz.fresh = nz.fresh.max(acc.fresh);
        nz.rescale = nz.rescale.max(acc.rescale);
        nz.constant = nz.constant.max(acc.constant);
    }
    Some(nz)
}
