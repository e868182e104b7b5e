//! Noise bounds the compiler and the runtime assume.
//!
//! All bounds are per coefficient, on |phase − m| (the phase is c0 + c1·s over the integers,
//! centered mod Q_ℓ). Probabilistic bounds fail with probability ≤ 2^−[`STAT_BITS`] for a whole
//! ciphertext (union bound over its N coefficients). Growth rules:
//!
//! * add / sub: bounds add.
//! * scalar multiply by w: bound × |w|; a CSR row: bound × Σ_i |w_ki| ([`linear_noise_bound`]),
//!   exact integer arithmetic, no extra term.
//! * plaintext add: none.
//! * rescale by p: bound / p + [`rescale_noise_bound`] ([`after_rescale`]).
//! * mod-drop: unchanged.
//! * re-randomize: + [`fresh_noise_bound`].

use crate::params::Params;
use crate::sample::{error_std_dev, CBD_ETA};

/// Statistical security parameter for the tail bounds (failure ≤ 2^−40 per ciphertext).
pub const STAT_BITS: u32 = 40;

/// ln(2·N·2^λ): the exponent that makes a per-coefficient tail ≤ 2^−λ/N.
fn log_tail(n: usize) -> f64 {
    (2.0 * n as f64).ln() + f64::from(STAT_BITS) * std::f64::consts::LN_2
}

/// Noise bound of a fresh seeded secret-key encryption: the error is centered binomial, so
/// |e| ≤ η = 21 always.
pub fn fresh_sk_noise_bound(_params: &Params) -> f64 {
    f64::from(CBD_ETA)
}

/// Noise bound of a fresh public-key encryption (also what re-randomization adds).
///
/// The noise is e0 + e·u + e1·s (e, e0, e1 centered binomial with σ² = 10.5; u, s ternary with
/// P(±1) = 2/3), so each coefficient has variance σ²·(1 + 4N/3). The bound is
/// √(2·ln(2N·2^λ))·σ·√(1 + 4N/3) (Gaussian tail of the sum of 2N + 1 independent terms, the
/// usual CKKS heuristic), about 8.5σ_total at N = 2048.
pub fn fresh_noise_bound(params: &Params) -> f64 {
    let n = params.n() as f64;
    let sigma_total = error_std_dev() * (1.0 + 4.0 * n / 3.0).sqrt();
    (2.0 * log_tail(params.n())).sqrt() * sigma_total
}

/// Rounding noise that a rescale adds: ε0 + ε1·s with |ε_i| ≤ ½. By Hoeffding over the ≤ N
/// terms ε1_i·s_{k−i} ∈ [−½, ½] (ε1 is the rounding of the uniform c1), each coefficient is
/// below ½ + √(N/2 · ln(2N·2^λ)) except with probability 2^−λ per ciphertext.
pub fn rescale_noise_bound(params: &Params) -> f64 {
    0.5 + (params.n() as f64 / 2.0 * log_tail(params.n())).sqrt()
}

/// Noise bound after rescaling a ciphertext at `level` (≥ 1) with noise bound `bound`:
/// bound / p_level + [`rescale_noise_bound`].
pub fn after_rescale(params: &Params, level: usize, bound: f64) -> f64 {
    let p = params.moduli().get(level).copied().unwrap_or(1) as f64;
    bound / p + rescale_noise_bound(params)
}

/// Noise bound after a linear combination with weights of L1 norm `l1` (see
/// [`crate::CsrMatrix::max_row_l1`]) of inputs each bounded by `bound`: `l1 · bound`.
pub fn linear_noise_bound(bound: f64, l1: u128) -> f64 {
    bound * l1 as f64
}

/// Flooding width for output decryption: the smallest b with 2^b ≥ 2^λ·`bound`, so that the
/// flooded noise statistically hides a noise term bounded by `bound` (distance ≤ 2^−λ per
/// coefficient).
pub fn flooding_bits(bound: f64) -> u32 {
    STAT_BITS + bound.max(1.0).log2().ceil() as u32
}
