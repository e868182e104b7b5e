//! Automatic choice of the CKKS and circuit parameters.
//!
//! Given the lowered model (levels, value bounds, noise coefficients) and the options, picks
//! (see `docs/ARCHITECTURE.md`, "Arithmetic"):
//! 1. the truncation K = σ_v + ⌈log2 B_ε⌉ (B_ε the largest random noise of a value entering a
//!    circuit: the client's W·e, rescale roundings, re-randomization), and the share modulus
//!    Q0 of `w` bits with `w ≥ ⌈log2(Δ·2^K·B + B_ε + 2^K)⌉ + 2` over every value shared into a
//!    circuit (B its bound; the tensors that feed circuits carry the scale Δ·2^K) and every
//!    circuit output: one NTT-friendly prime up to 62 bits, else the product of the fewest
//!    primes under the cap (`share_primes`);
//! 2. p1…pL, lowest level first, each the smallest NTT-friendly prime of at least `weight_bits`
//!    bits that satisfies the constraints at its level: a tensor at level ℓ and scale Δ_t needs
//!    `Q_ℓ ≥ 4·(Δ_t·B + B_e)`; the output level needs `Q_ℓo ≥ 8·(Δ_out·B_out + 2^σ·B_e)`.
//!    Tensors that feed the output carry the output scale `Δ_out = 2^(σ + ⌈log2 B_e⌉ + f)` so that
//!    the flooding noise stays `f` bits below it (masked MPC outputs are encrypted exactly mod
//!    Q_ℓ at their scale, so the mask puts no bound on Q). Greedy bottom-up sizing minimises log2 Q_L because
//!    every constraint is on a prefix product;
//!    Each prime is capped so that `round(W·p)` fits an i64; when a level's constraint cannot be
//!    met under the cap, the output level is raised by one and the levels are reassigned;
//! 3. N: the smallest power of two ≥ 1024 (or the forced one) whose HomomorphicEncryption.org
//!    bound admits the sum of the primes' bit lengths; primes depend on N (≡ 1 mod 2N) and the
//!    noise grows with N, so the choice iterates until N is stable.

pub mod noise;

use crate::error::{CompileError, Error};
use crate::partition::{assign_levels, Lowered, MKind, MTensor, NoiseCoeffs, OUTPUT_LEVEL};
use mp2ml_ir::primes;
pub use mp2ml_ir::security::{max_log_q, SecurityLevel};

/// Bits of precision of the outputs above the flooding noise: the output scale is
/// `2^(flood_bits + OUTPUT_PRECISION_BITS)`, so flooding perturbs an output by at most
/// 2^-OUTPUT_PRECISION_BITS.
pub const OUTPUT_PRECISION_BITS: u32 = 12;

/// Options that steer the parameter choice.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamOptions {
    /// log2 Δ.
    pub scale_bits: u32,
    /// Minimum bits of each p_ℓ (weight precision).
    pub weight_bits: u32,
    /// Statistical security bits of a session (≥ 40).
    pub sigma: u32,
    /// Most images per session: the per-value widths count the masked values over them.
    pub session_images: usize,
    /// Security level.
    pub security: SecurityLevel,
    /// Forced log2 N (checked against the table).
    pub log_n: Option<u32>,
}

impl Default for ParamOptions {
    fn default() -> Self {
        ParamOptions {
            scale_bits: 20,
            weight_bits: 30,
            sigma: 40,
            session_images: 4096,
            security: SecurityLevel::Bits128,
            log_n: None,
        }
    }
}

/// One constraint on Q at a level, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    /// Level.
    pub level: usize,
    /// Required log2 Q_level.
    pub log2: f64,
    /// Why.
    pub why: String,
}

/// The chosen parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    /// log2 N.
    pub log_n: u32,
    /// q_0, …, q_{k−1} (the share modulus Q0), then the primes above them.
    pub moduli: Vec<u64>,
    /// k: the primes Q0 spans (tensor levels are physical: the compiler's level 0 is k − 1).
    pub share_limbs: usize,
    /// Bits of Q0 (share width w).
    pub share_bits: u32,
    /// K: the low bits every circuit drops (σ_v + `noise_bits`; 0 without steps). The tensors
    /// that feed circuits carry the scale Δ·2^K.
    pub trunc: u32,
    /// ⌈log2 B_ε⌉, B_ε the largest random noise of a value entering a circuit.
    pub noise_bits: u32,
    /// B_ε: the largest random noise bound of a value entering a circuit (after
    /// re-randomization), in its integer units.
    pub mpc_noise: f64,
    /// Largest |X| = Δ·2^K·B (plus the scaled weight rounding) over circuit inputs.
    pub mpc_max_scaled: f64,
    /// Noise bound of the output before flooding.
    pub output_noise: f64,
    /// Per-value statistical bits σ_v = σ + ⌈log2(masked values per session)⌉ of the circuit
    /// masks and the flood.
    pub value_sigma: u32,
    /// Flooding bits (σ_v + ⌈log2 B_e⌉).
    pub flood_bits: u32,
    /// Scale bits of the tensors that feed the output (`flood_bits + scale_bits`).
    pub out_scale_bits: u32,
    /// Sum of the primes' bit lengths.
    pub log_q_bits: u32,
    /// Constraints on Q per level.
    pub constraints: Vec<Constraint>,
}

impl Chosen {
    /// Ring dimension.
    pub fn n(&self) -> usize {
        1usize << self.log_n
    }
}

fn bits(p: u64) -> u32 {
    64 - p.leading_zeros()
}

/// Chooses the parameters for `low`.
pub fn choose(low: &mut Lowered, opts: &ParamOptions) -> Result<Chosen, CompileError> {
    // Largest |W| bounds the primes: round(W·p) must fit an i64.
    let max_w = low
        .tensors
        .iter()
        .filter_map(|t| match &t.kind {
            MKind::Linear { map, .. } => Some(map.max_abs()),
            _ => None,
        })
        .fold(1.0f64, f64::max);
    let cap_bits = (61.0 - max_w.log2().ceil()).min(60.0);
    // Candidates: every output level, with primes below 2^32 (the CKKS kernel's fast 32-bit
    // path) or up to the i64 cap. The smallest N wins, then the fast path, then the smallest Q.
    let mut best: Option<(Chosen, usize)> = None;
    let mut last = None;
    for out_level in OUTPUT_LEVEL..OUTPUT_LEVEL + 6 {
        assign_levels(low, out_level);
        for cap in [FAST_PRIME_BITS.min(cap_bits), cap_bits] {
            match choose_at(low, opts, cap) {
                Ok(c) => {
                    let key = |c: &Chosen| {
                        (
                            c.log_n,
                            !c.moduli.iter().all(|&p| p < 1 << 32),
                            c.log_q_bits,
                        )
                    };
                    if best.as_ref().is_none_or(|(b, _)| key(&c) < key(b)) {
                        best = Some((c, out_level));
                    }
                }
                Err(
                    e @ CompileError {
                        error: Error::PrimeTooLarge { .. },
                        ..
                    },
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
    }
    match best {
        Some((mut c, out_level)) => {
            assign_levels(low, out_level);
            shift_levels(low, c.share_limbs - 1);
            for k in &mut c.constraints {
                k.level += c.share_limbs - 1;
            }
            Ok(c)
        }
        // Every candidate failed with `PrimeTooLarge` (any other error returned above).
        None => Err(last.unwrap_or_else(|| Error::NoConvergence.into())),
    }
}

/// The widest share (bits of Q0) the runtime's circuits and share arithmetic support: Q0 < 2^126.
pub const MAX_SHARE_BITS: u32 = 126;

/// The widest share a plan can hold: at most [`MAX_SHARE_BITS`], and narrow enough that a
/// circuit's output mask (`out_bits + σ_v` bits, σ_v the per-value width) stays within the
/// 126 bits the circuits' masks support (`mp2ml_ir::circuit`).
/// With truncation by K the circuit's output has the truncated width w − K, so the share may
/// be K bits wider.
fn widest_share(value_sigma: u32, trunc: u32) -> u32 {
    (127u32.saturating_sub(value_sigma) + trunc).min(MAX_SHARE_BITS)
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static UNTRUNCATED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Test-only (feature `test-hooks`, enabled only by the tests package): runs `f` with K = 0 for
/// every parameter choice on this thread (no raised scale, no share flood, no truncation), the
/// positive control of the leakage tests. No CLI flag and no plan field reaches it.
#[cfg(feature = "test-hooks")]
pub fn without_truncation_for_tests<T>(f: impl FnOnce() -> T) -> T {
    let before = UNTRUNCATED.with(|u| u.replace(true));
    let out = f();
    UNTRUNCATED.with(|u| u.set(before));
    out
}

/// Whether a test switched truncation off ([`without_truncation_for_tests`]); never otherwise.
fn untruncated() -> bool {
    #[cfg(feature = "test-hooks")]
    return UNTRUNCATED.with(std::cell::Cell::get);
    #[cfg(not(feature = "test-hooks"))]
    false
}

/// Moves every tensor (and the output) `by` levels up: the compiler assigns levels with the
/// share modulus as level 0; the plan's levels index the chain, where Q0 spans k primes.
fn shift_levels(low: &mut Lowered, by: usize) {
    for t in &mut low.tensors {
        t.level += by;
    }
    low.out_level += by;
}

/// The primes q_0, …, q_{k−1} of a share modulus Q0 of exactly `w` bits (Q0 ≥ 2^(w−1)), each
/// NTT-friendly for ring dimension `two_n`/2: one prime of `w` bits up to 62 bits (the
/// single-prime plans of before), else k = ⌈w / limb_bits⌉ primes of at most `limb_bits` bits,
/// k − 1 of ⌈w/k⌉ bits and the last the smallest prime that brings the product to 2^(w−1).
fn share_primes(w: u32, two_n: u64, limb_bits: u32) -> Option<Vec<u64>> {
    if !(2..=MAX_SHARE_BITS).contains(&w) {
        return None;
    }
    let limb_bits = limb_bits.min(62);
    if w <= 62 {
        let q = primes::ntt_prime_at_least(1u64 << (w - 1), two_n, &[])?;
        return (bits(q) == w).then(|| vec![q]);
    }
    // The last prime may need a bit more than the others: one more prime if it does not fit.
    let k0 = w.div_ceil(limb_bits);
    (k0..k0 + 3).find_map(|k| {
        let b = w.div_ceil(k);
        let mut qs: Vec<u64> = Vec::with_capacity(k as usize);
        let mut prod: u128 = 1;
        for _ in 0..k - 1 {
            let q = primes::ntt_prime_at_least(1u64 << (b - 1), two_n, &qs)?;
            prod = prod.checked_mul(u128::from(q))?;
            qs.push(q);
        }
        let target = 1u128 << (w - 1);
        let lower = u64::try_from(target.div_ceil(prod)).ok()?;
        let q = primes::ntt_prime_at_least(lower.max(2), two_n, &qs)?;
        let q0 = prod.checked_mul(u128::from(q))?;
        qs.push(q);
        (bits(q) <= limb_bits && 128 - q0.leading_zeros() == w).then_some(qs)
    })
}

/// The error for value bounds that need more than `widest` share bits: names the first step
/// (in execution order) whose values do not fit and the node that produces its input.
fn share_too_wide(
    low: &Lowered,
    opts: &ParamOptions,
    step_bits: &[u32],
    w: u32,
    widest: u32,
) -> CompileError {
    let base = format!(
        "the value bounds need a {w}-bit share modulus, more than the {widest} bits this plan can hold"
    );
    let mut e = CompileError::from(Error::Parameters(base.clone()));
    if let Some(k) = step_bits.iter().position(|&b| b > widest) {
        let st = &low.steps[k];
        let t = &low.tensors[st.input];
        let producer = match &t.kind {
            MKind::Linear { nodes, .. } => nodes.last().cloned(),
            _ => None,
        }
        .unwrap_or_else(|| t.name.clone());
        e = CompileError::from(Error::Parameters(format!(
            "{}: the range first exceeds it at node `{producer}`, whose output `{}` (bounded by ±{:.3e}) feeds step {} `{}` and needs {} bits at Δ = 2^{}",
            base,
            t.name,
            t.bound,
            k + 1,
            st.name,
            step_bits[k],
            opts.scale_bits
        )));
        e.node = Some(producer);
        let shown: Vec<String> = low
            .steps
            .iter()
            .zip(step_bits)
            .take(k + 1)
            .map(|(s, b)| format!("{} {b}", s.name))
            .collect();
        e = e.with_note(format!(
            "share bits needed per step up to there: {}",
            shown.join(", ")
        ));
    }
    e.with_note(format!(
        "worst-case interval analysis (the default) lets bounds grow with every layer: pass `--calibration IMAGES.npy` (sample inputs, float32 [B, C, H, W]) to bound values by what real inputs reach, or narrow --input-range or lower --scale-bits; with --calibration, lower --margin (the runtime supports shares of at most {MAX_SHARE_BITS} bits)"
    ))
}

/// σ_v = σ + ⌈log2 M⌉ with M the statistically masked values of a session: `session_images`
/// times (every circuit output, masked by r', every circuit input, hidden by the share flood
/// and truncation, and every output element, flooded) — the same count
/// [`mp2ml_ir::plan::ClientPlan::value_sigma`] makes from the plan, in both packings.
pub fn session_value_sigma(low: &Lowered, opts: &ParamOptions) -> Result<u32, CompileError> {
    if opts.session_images == 0 {
        return Err(Error::Parameters("--session-images must be at least 1".into()).into());
    }
    let per_step: u128 = low
        .steps
        .iter()
        .map(|s| s.instances as u128 * (s.values_out as u128 + s.values_in as u128))
        .sum();
    let elems: u128 = low.tensors[low.output]
        .shape
        .iter()
        .map(|&d| d as u128)
        .product();
    (opts.session_images as u128)
        .checked_mul(per_step + elems)
        .and_then(|m| mp2ml_ir::plan::value_sigma(opts.sigma, m))
        .filter(|&s| s <= 128)
        .ok_or_else(|| {
            Error::Parameters(
                "σ plus log2 of the masked values per session exceeds 128 bits".into(),
            )
            .into()
        })
}

/// Primes below 2^32 take the CKKS kernel's vectorized 32-bit path (`runtime/ckks/src/linear.rs`).
const FAST_PRIME_BITS: f64 = 31.99;

/// [`choose`] with the levels already assigned and primes capped at `cap_bits`.
fn choose_at(low: &Lowered, opts: &ParamOptions, cap_bits: f64) -> Result<Chosen, CompileError> {
    if opts.sigma < 40 {
        return Err(Error::OptionRange {
            name: "σ",
            value: opts.sigma,
            range: "40.. statistical bits",
        }
        .into());
    }
    if !(20..=60).contains(&opts.weight_bits) {
        return Err(Error::OptionRange {
            name: "--weight-bits",
            value: opts.weight_bits,
            range: "20..=60",
        }
        .into());
    }
    if !(1..=40).contains(&opts.scale_bits) {
        return Err(Error::OptionRange {
            name: "--scale-bits",
            value: opts.scale_bits,
            range: "1..=40",
        }
        .into());
    }
    let delta = 2f64.powi(opts.scale_bits as i32);
    let value_sigma = session_value_sigma(low, opts)?;
    let max_level = low
        .tensors
        .iter()
        .map(|t| t.level)
        .fold(OUTPUT_LEVEL, usize::max);
    // The search starts at the smallest table entry (N = 1024) or the forced N.
    let mut log_n = opts.log_n.map_or(10, |l| l.max(10));
    for _round in 0..8 {
        let n = 1usize << log_n;
        let two_n = 2 * n as u64;
        // Output scale: the flooding noise 2^flood_bits must sit `scale_bits` below it.
        let out = &low.tensors[low.output];
        let random = NoiseCoeffs {
            constant: 0.0,
            ..out.noise
        };
        let out_noise = noise::bound(&random, n) + noise::rerandomize(n);
        let flood_bits = value_sigma + out_noise.log2().ceil().max(0.0) as u32;
        // B_ε: the random noise of every value entering a circuit, in its integer units (the
        // client's W·e, the rescale roundings, the mask encryption's re-randomization); it does
        // not depend on the scale. The weight rounding (the constant part) is a deterministic
        // function of the value and stays in X.
        let mpc_noise = low
            .steps
            .iter()
            .map(|st| {
                let t = &low.tensors[st.input];
                let random = NoiseCoeffs {
                    constant: 0.0,
                    ..t.noise
                };
                noise::bound(&random, n) + noise::rerandomize(n)
            })
            .fold(0.0f64, f64::max);
        let noise_bits = if low.steps.is_empty() {
            0
        } else {
            mpc_noise.log2().ceil().max(0.0) as u32
        };
        // K = σ_v + ⌈log2 B_ε⌉: every circuit drops K low bits of v = X + ε + f (f the server's
        // share flood in [0, 2^K)), within 2^-σ_v of the stochastic rounding of X alone
        // (docs/ARCHITECTURE.md, "Flood the share, truncate in the circuit"). The tensors that
        // feed circuits carry the scale Δ·2^K.
        let trunc = if low.steps.is_empty() || untruncated() {
            0
        } else {
            value_sigma + noise_bits
        };
        let conv_scale = delta * 2f64.powi(trunc as i32);
        let kf = 2f64.powi(trunc as i32);
        // Q0: |X| + B_ε + 2^K < Q0/2 with a factor 2 to spare, for every step input.
        let mut max_scaled = 0.0f64;
        let mut step_bits = Vec::with_capacity(low.steps.len());
        for st in &low.steps {
            let t = &low.tensors[st.input];
            let x = conv_scale * t.bound + kf * t.noise.constant;
            let e = mpc_noise + if trunc > 0 { kf } else { 0.0 };
            max_scaled = max_scaled.max(x);
            let o = &low.tensors[st.output];
            let need = (x + e).log2().max((delta * o.bound + 1.0).log2());
            step_bits.push((need.ceil().max(0.0) as u32) + 2);
        }
        let w = step_bits.iter().copied().max().unwrap_or(0).max(log_n + 3);
        let widest = widest_share(value_sigma, trunc);
        if w > widest {
            return Err(share_too_wide(low, opts, &step_bits, w, widest));
        }
        // Q0 spans as few primes of at most `cap_bits` as hold w bits.
        // A share modulus the cap cannot split lets the other candidates (caps, levels) try.
        let share =
            share_primes(w, two_n, cap_bits.floor() as u32).ok_or(Error::PrimeTooLarge {
                level: 0,
                want_bits: f64::from(w),
                cap_bits,
            })?;
        // Masked circuit outputs are lifted to the output scale per RNS limb (exact at any
        // size, `Params::factor_residues`); the runtime bounds scales and floods by 120 bits.
        let out_scale_bits = flood_bits + OUTPUT_PRECISION_BITS;
        if out_scale_bits > 120 {
            return Err(Error::OutputPrecision {
                out_scale_bits,
                flood_bits,
            }
            .into());
        }
        let scale_of = |t: &MTensor| {
            if t.output_scale {
                2f64.powi(out_scale_bits as i32)
            } else {
                conv_scale
            }
        };
        // Constraints per level.
        let mut cons: Vec<Constraint> = Vec::new();
        for t in &low.tensors {
            if t.level >= 1 {
                // The weight rounding (constant part) grows with the tensor's scale.
                let e = noise::bound(&t.noise, n) + t.noise.constant * (scale_of(t) / delta - 1.0);
                cons.push(Constraint {
                    level: t.level,
                    log2: (4.0 * (scale_of(t) * t.bound + e)).log2(),
                    why: format!("value range of `{}`", t.name),
                });
            }
        }
        cons.push(Constraint {
            level: low.out_level,
            log2: (8.0 * (scale_of(out) * out.bound + 2f64.powi(flood_bits as i32))).log2(),
            why: "output with noise flooding".into(),
        });
        // Levels whose prime a Linear rescales by need `weight_bits` of precision; the others
        // only add modulus (e.g. below a raised output level) and may be small.
        let rescale_levels: Vec<usize> = low
            .tensors
            .iter()
            .filter(|t| matches!(t.kind, MKind::Linear { .. }))
            .map(|t| t.level + 1)
            .collect();
        // Primes bottom-up.
        let mut moduli = share.clone();
        let mut log_q: f64 = share.iter().map(|&q| (q as f64).log2()).sum();
        for l in 1..=max_level {
            let need = cons
                .iter()
                .filter(|c| c.level == l)
                .map(|c| c.log2)
                .fold(0.0f64, f64::max);
            let min_bits = if rescale_levels.contains(&l) {
                f64::from(opts.weight_bits - 1)
            } else {
                f64::from(log_n + 2)
            };
            let want = (need - log_q).max(min_bits);
            if want > cap_bits {
                return Err(Error::PrimeTooLarge {
                    level: l,
                    want_bits: want,
                    cap_bits,
                }
                .into());
            }
            let lower = 2f64.powf(want).ceil() as u64;
            let p = primes::ntt_prime_at_least(lower, two_n, &moduli)
                .ok_or(Error::NoPrime { bits: want, n })?;
            log_q += (p as f64).log2();
            moduli.push(p);
        }
        let log_q_bits: u32 = moduli.iter().map(|&p| bits(p)).sum();
        let needed = (10..=15u32)
            .find(|&ln| max_log_q(1 << ln, opts.security).is_some_and(|m| log_q_bits <= m));
        match (needed, opts.log_n) {
            (_, Some(forced)) => {
                let ok = max_log_q(1 << forced, opts.security).is_some_and(|m| log_q_bits <= m);
                if !ok {
                    return Err(Error::Insecure {
                        n: 1 << forced,
                        log_q: log_q_bits,
                        security: opts.security.bits(),
                        max_log_q: max_log_q(1 << forced, opts.security),
                    }
                    .into());
                }
                return Ok(Chosen {
                    log_n: forced,
                    share_limbs: share.len(),
                    moduli,
                    share_bits: w,
                    trunc,
                    noise_bits,
                    mpc_noise,
                    mpc_max_scaled: max_scaled,
                    output_noise: out_noise,
                    value_sigma,
                    flood_bits,
                    out_scale_bits,
                    log_q_bits,
                    constraints: cons,
                });
            }
            (None, None) => {
                return Err(Error::ModulusTooLarge {
                    log_q: log_q_bits,
                    security: opts.security.bits(),
                }
                .into())
            }
            (Some(ln), None) if ln <= log_n => {
                return Ok(Chosen {
                    log_n,
                    share_limbs: share.len(),
                    moduli,
                    share_bits: w,
                    trunc,
                    noise_bits,
                    mpc_noise,
                    mpc_max_scaled: max_scaled,
                    output_noise: out_noise,
                    value_sigma,
                    flood_bits,
                    out_scale_bits,
                    log_q_bits,
                    constraints: cons,
                });
            }
            (Some(ln), None) => log_n = ln,
        }
    }
    Err(Error::NoConvergence.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_moduli_have_exactly_the_asked_width() {
        // N = 1024 and 8192 (the bundled models' rings).
        for two_n in [2048u64, 16384] {
            for limb in [27u32, 31, 40, 58, 59, 60] {
                for w in (two_n.ilog2() + 3..=126).step_by(7) {
                    let qs = share_primes(w, two_n, limb).expect("a share modulus");
                    let q0 = qs.iter().fold(1u128, |a, &q| a * u128::from(q));
                    assert_eq!(128 - q0.leading_zeros(), w, "w = {w}, limbs of {limb} bits");
                    assert!(qs.iter().all(|&q| q % two_n == 1 && primes::is_prime(q)));
                    if w <= 62 {
                        assert_eq!(qs.len(), 1);
                    } else {
                        assert!(qs.iter().all(|&q| bits(q) <= limb));
                    }
                    let mut d = qs.clone();
                    d.dedup();
                    assert_eq!(d.len(), qs.len());
                }
            }
        }
        assert!(share_primes(127, 2048, 60).is_none());
    }
}
