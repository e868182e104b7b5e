//! Noise coefficients of the materialized tensors, as multiples of the primitive noise terms
//! that [`crate::params::noise`] bounds once N is known.

use super::affine::Affine;

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
    /// A freshly encrypted ciphertext (the input, or a client-encrypted MPC output).
    pub const FRESH: NoiseCoeffs = NoiseCoeffs {
        fresh: 1.0,
        rescale: 0.0,
        constant: 0.0,
    };
}

/// Noise of `rescale(W · x + b)` for the Linear `map` over columns with noise `col_noise` and
/// value bound `col_bound`: per row, Σ|w|·noise of its column, plus one rescale rounding and the
/// weight rounding; the maximum over rows.
pub(super) fn linear(
    map: &Affine,
    col_noise: &[NoiseCoeffs],
    col_bound: &[f64],
    scale_bits: u32,
) -> NoiseCoeffs {
    let mut nz = NoiseCoeffs::default();
    for r in &map.rows {
        let mut acc = NoiseCoeffs {
            rescale: 1.0,
            constant: 1.0,
            ..Default::default()
        };
        for (&c, &v) in r.cols.iter().zip(&r.vals) {
            let a = v.abs();
            if let Some(cn) = col_noise.get(c as usize) {
                acc.fresh += a * cn.fresh;
                acc.rescale += a * cn.rescale;
                acc.constant += a * cn.constant;
            }
            // Weight rounding: |round(W p) − W p| ≤ ½ times |x|·Δ, divided by p.
            acc.constant += col_bound.get(c as usize).copied().unwrap_or(0.0)
                * f64::from(1u32 << scale_bits.min(31))
                * 0.5
                / MIN_PRIME;
        }
        nz.fresh = nz.fresh.max(acc.fresh);
        nz.rescale = nz.rescale.max(acc.rescale);
        nz.constant = nz.constant.max(acc.constant);
    }
    nz
}
