//! The noise model (all bounds are per coefficient, in units of the integers at scale Δ).
//!
//! - Fresh encryption (the client's seeded secret-key encryption of the input and of every
//!   masked MPC output): `e ← χ` with standard deviation σ_e; bound `6σ_e` ([`fresh`]).
//! - Rescale by p: the two ciphertext components are each rounded by at most ½, and the error
//!   seen after decryption is `½ + ½·‖s‖₁ ≤ ½(1 + N)` for a ternary secret ([`rescale`]).
//! - Weight rounding: `|round(W·p) − W·p| ≤ ½`, so an input `|Δx| ≤ ΔB` adds `ΔB/(2p)` per
//!   term (tracked by the partition as the constant part).
//! - A Linear row maps input noise `e_j` to `Σ_j |W_kj|·e_j` (the partition takes the maximum
//!   over rows of each component).
//! - Re-randomization (server adds `Enc_pk(0) = (p0·u + e0, p1·u + e1)`): decrypts to
//!   `e·u + e0 + s·e1`; with ternary `u`, `s` (‖·‖₁ ≤ 2N/3 for the distribution's weight, bounded
//!   here by N to be safe) this is at most `6σ_e·(2N + 1)` ([`rerandomize`]). It is added before
//!   every HE→MPC conversion and before the output is flooded.

use crate::partition::NoiseCoeffs;

/// Standard deviation of the encryption error.
pub const ERROR_STD: f64 = 3.2;

/// Bound on fresh encryption noise.
pub fn fresh() -> f64 {
    6.0 * ERROR_STD
}

/// Bound on the rescale rounding noise for ring dimension `n`.
pub fn rescale(n: usize) -> f64 {
    0.5 * (1.0 + n as f64)
}

/// Bound on the noise of `Enc_pk(0)` for ring dimension `n`.
pub fn rerandomize(n: usize) -> f64 {
    6.0 * ERROR_STD * (2.0 * n as f64 + 1.0)
}

/// Evaluates a tensor's noise coefficients at ring dimension `n`.
pub fn bound(c: &NoiseCoeffs, n: usize) -> f64 {
    c.fresh * fresh() + c.rescale * rescale(n) + c.constant
}
