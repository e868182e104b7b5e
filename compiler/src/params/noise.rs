//! The noise model (all bounds are per coefficient, in units of the integers at scale Δ).
//!
//! The engine samples errors from a centered binomial with η = 21 (σ_e ≈ 3.24, |e| ≤ 21) and
//! ternary secrets and re-randomization polynomials uniform in {−1, 0, 1} (2N/3 non-zero
//! coefficients on average). Sums of many independent terms are bounded by their standard
//! deviation times [`TAIL`], so each bound holds except with probability ≈ 2^-60 per coefficient
//! (the usual independence heuristic of CKKS noise analysis; the engine's tests measure the
//! actual noise against these bounds).
//!
//! - Fresh encryption (the client's seeded secret-key encryption of the input and of every
//!   masked MPC output): `|e| ≤ 21` exactly ([`fresh`]).
//! - Rescale by p: both components are rounded by at most ½; after decryption this is
//!   `r0 + r1·s`, a sum of ≈ 2N/3 terms uniform in [−½, ½] ([`rescale`]).
//! - Weight rounding: `|round(W·p) − W·p| ≤ ½`, so an input `|Δx| ≤ ΔB` adds `ΔB/(2p)` per
//!   term (tracked by the partition as the constant part).
//! - A Linear row maps input noise `e_j` to `Σ_j |W_kj|·e_j` (worst case over signs).
//! - Re-randomization (server adds `Enc_pk(0) = (p0·u + e0, p1·u + e1)`): decrypts to
//!   `e·u + e0 + s·e1`, variance `σ_e²·(4N/3 + 1)` ([`rerandomize`]). It is added before every
//!   HE→MPC conversion and before the output is flooded.

use crate::partition::NoiseCoeffs;

/// Standard deviation of the encryption error (centered binomial, η = 21).
pub const ERROR_STD: f64 = 3.24;

/// Largest fresh error of the centered binomial with η = 21.
pub const ERROR_MAX: f64 = 21.0;

/// Tail factor: a centered sum exceeds TAIL standard deviations with probability ≈ 2^-60
/// (`√(2·ln 2^60)`).
pub const TAIL: f64 = 9.12;

/// Bound on fresh encryption noise.
pub fn fresh() -> f64 {
    ERROR_MAX
}

/// Bound on the rescale rounding noise for ring dimension `n`.
pub fn rescale(n: usize) -> f64 {
    0.5 + TAIL * (2.0 * n as f64 / 3.0 / 12.0).sqrt()
}

/// Bound on the noise of `Enc_pk(0)` for ring dimension `n`.
pub fn rerandomize(n: usize) -> f64 {
    TAIL * ERROR_STD * (4.0 * n as f64 / 3.0 + 1.0).sqrt()
}

/// Evaluates a tensor's noise coefficients at ring dimension `n`.
pub fn bound(c: &NoiseCoeffs, n: usize) -> f64 {
    c.fresh * fresh() + c.rescale * rescale(n) + c.constant
}
