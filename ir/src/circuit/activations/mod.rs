//! The production circuits of the non-linear layers, on additive shares mod Q0.
//!
//! Every circuit follows the layout of [`ShareCircuit`]: it reconstructs each input value from
//! the client's share `a` and the server's share `b̃ = (b + input_offset) mod Q0`, applies the
//! function, and outputs `z = y + output_offset + r'` with the server's mask `r'` uniform in
//! `[0, 2^(out_bits+σ))`, added over the integers so that nothing wraps (`docs/ARCHITECTURE.md`,
//! "Arithmetic"). Values are fixed-point integers; a value x is *centered* if it lies in
//! `[−h, h]` with `h = ⌊Q0/2⌋`.
//!
//! - [`relu`]: no offset; `v = (a + b) mod Q0`, negative iff `v > h`.
//! - the others use `input_offset = h`, so the reconstructed `s = x + h` lies in `[0, Q0)` and
//!   unsigned comparisons of `s` order the signed values; their outputs keep the offset `h`.
//!
//! # Truncation
//!
//! With `trunc = K > 0` (`docs/ARCHITECTURE.md`, "Flood the share, truncate in the circuit")
//! the value entering the circuit is `v = X + ε + f` at scale Δ·2^K: the exact value `X`, the
//! noise `ε` of the homomorphic part (|ε| ≤ B_ε) and the server's share flood `f`, uniform in
//! `[0, 2^K)`. Every circuit reconstructs `v` on the full width `w` of Q0 and keeps only
//! `⌊v/2^K⌋`, which for `2^K ≥ 2^σ_v·B_ε` is within statistical distance 2^−σ_v of the stochastic
//! rounding `⌊(X + f)/2^K⌋`, whose law depends on `X` alone: ε is removed exactly. The
//! function then runs on the `w − K` high bits, in the truncated units (scale Δ):
//!
//! - ReLU: the sign is `⌊v/2^K⌋ > ⌊h/2^K⌋`, the result `v >> K` (`w − 1 − K` bits). This is
//!   `v > h` whenever `v` is not within 2^K of h, which the range condition
//!   `|X| + B_ε + 2^K < h` guarantees; it needs no low bit of `v`.
//! - offset form: `input_offset = h_K = ⌊h/2^K⌋·2^K`, a multiple of 2^K, so that
//!   `s' = (x + h_K) >> K = ⌊x/2^K⌋ + (h_K >> K)` exactly; the activation then runs on `s'`
//!   (`w − K` bits) with the half `h_K >> K` and the top `(Q0 − 1) >> K` in place of `h` and
//!   `Q0 − 1`, its constants (clip bounds) in truncated units, its output offset `h_K >> K`.
//! - `out_bits` and `mask_bits` are those of the truncated width.
//!
//! Only the high `w − K` bits of `(a + b̃) mod Q0` are computed (`reconstruct_high`): the
//! low K bits contribute the carry of `a + b̃` and the borrow of the comparison with Q0, the
//! selection between `a + b̃` and `a + b̃ − Q0` runs on the high bits only. With K = 0 every
//! circuit is gate for gate the one without truncation.
//!
//! One file per activation (its generator and its `out_bits`); the compiler's side of each
//! activation (recognizing the ONNX node, the step's layout, its output bounds) is in
//! `compiler/src/activations/`, one file per activation as well.

pub mod clip;
pub mod leaky_relu;
pub mod maxpool;
pub mod relu;
pub mod square;

pub use clip::clip;
pub use leaky_relu::leaky_relu;
pub use maxpool::maxpool;
pub use relu::relu;
pub use square::square;

use super::builder::{Bit, Builder, Word};
use super::prefix::Style;
use super::ShareCircuit;

/// Parameters shared by all circuits of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitParams {
    /// Share modulus Q0 (odd, at least 5, below 2^126).
    pub q0: u128,
    /// Low bits K every circuit drops from its reconstructed inputs (0: none; at most
    /// `share_bits − 2`). See "Truncation" above.
    pub trunc: u32,
    /// Statistical security bits of the output mask.
    pub sigma: u32,
    /// Size-optimal (Yao) or depth-optimized (GMW) arithmetic.
    pub style: Style,
}

impl CircuitParams {
    /// Bits per share: the bit length of `q0`.
    pub fn share_bits(&self) -> u32 {
        128 - self.q0.leading_zeros()
    }

    /// `h = ⌊q0/2⌋`, the largest centered magnitude.
    pub fn half(&self) -> u128 {
        self.q0 / 2
    }

    /// Width `w − K` of the truncated values.
    pub fn trunc_bits(&self) -> u32 {
        self.share_bits().saturating_sub(self.trunc)
    }

    /// `⌊h/2^K⌋`, the half in truncated units.
    pub fn trunc_half(&self) -> u128 {
        self.half().checked_shr(self.trunc).unwrap_or(0)
    }

    /// The largest truncated offset-form value, `(q0 − 1) >> K`.
    pub fn trunc_top(&self) -> u128 {
        self.q0
            .saturating_sub(1)
            .checked_shr(self.trunc)
            .unwrap_or(0)
    }

    /// `h_K = ⌊h/2^K⌋·2^K`, the input offset of the offset-form circuits (`h` for K = 0).
    pub fn offset(&self) -> u128 {
        self.trunc_half().checked_shl(self.trunc).unwrap_or(0)
    }

    /// The circuit name's suffix for the truncation (empty for K = 0).
    fn trunc_tag(&self) -> String {
        if self.trunc == 0 {
            String::new()
        } else {
            format!("_k{}", self.trunc)
        }
    }
}

/// Lays out inputs of a circuit with `values_in` inputs and `values_out` outputs.
struct Layout {
    w: u32,
    mask_bits: u32,
    values_in: u32,
}

impl Layout {
    fn garbler_bits(&self, values_out: u32) -> u32 {
        self.values_in * self.w + values_out * self.mask_bits
    }

    /// Server share of input `i`.
    fn b(&self, bld: &Builder, i: u32) -> Word {
        bld.garbler_word(i * self.w, self.w)
    }

    /// Server mask of output `o`.
    fn mask(&self, bld: &Builder, o: u32) -> Word {
        bld.garbler_word(self.values_in * self.w + o * self.mask_bits, self.mask_bits)
    }

    /// Client share of input `i`.
    fn a(&self, bld: &Builder, i: u32) -> Word {
        bld.evaluator_word(i * self.w, self.w)
    }
}

/// `(a + b) mod q0` for `a, b < q0`, on `w` bits: add (w ANDs), subtract q0 keeping the
/// carry as `t ≥ q0` (w+1 ANDs), select (w ANDs).
fn reconstruct(bld: &mut Builder, p: &CircuitParams, a: &[Bit], b: &[Bit]) -> Word {
    let w = p.share_bits();
    let t = bld.add(a, b);
    let q = Builder::constant(p.q0, w + 1);
    let (u, ge) = bld.sub(&t, &q);
    bld.mux(ge, &u[..w as usize], &t[..w as usize])
}

/// `⌊((a + b) mod q0) / 2^K⌋` on `w − K` bits (`reconstruct` itself for K = 0).
///
/// With `t = a + b = t_h·2^K + t_l` and `q0 = q_h·2^K + q_l`: the low K bits give the carry
/// `c` into `t_h` (K ANDs) and `β = t_l ≥ q_l` (at most K ANDs), the borrow-free flag of the
/// low half of `t − q0`; then `t_h` (w − K ANDs), `u_h = t_h + ¬q_h + β = ⌊(t − q0)/2^K⌋` with
/// carry out `t ≥ q0` (w − K + 1 ANDs), and the selection on the high bits only (w − K ANDs).
fn reconstruct_high(bld: &mut Builder, p: &CircuitParams, a: &[Bit], b: &[Bit]) -> Word {
    let k = p.trunc as usize;
    if k == 0 {
        return reconstruct(bld, p, a, b);
    }
    let wt = p.trunc_bits();
    let (k, n) = (k.min(a.len()).min(b.len()), a.len().max(b.len()));
    let (tl, c) = bld.add_with_carry(&a[..k], &b[..k], Bit::Const(false));
    let ql_v = p.q0 & 1u128.checked_shl(k as u32).map_or(u128::MAX, |m| m - 1);
    let ql = Builder::constant(ql_v, k as u32);
    let beta = bld.ge(&tl, &ql);
    let (mut th, top) = bld.add_with_carry(&a[k..n.min(a.len())], &b[k..n.min(b.len())], c);
    th.push(top);
    let nq: Word = Builder::constant(p.q0 >> k, wt + 1)
        .into_iter()
        .map(|x| bld.not(x))
        .collect();
    let (u, ge) = bld.add_with_carry(&th, &nq, beta);
    bld.mux(ge, &u[..wt as usize], &th[..wt as usize])
}

/// A builder in the style of `p`; depth-optimized circuits carry a `_depth` suffix.
fn new_builder(p: &CircuitParams, name: String, garbler: u32, evaluator: u32) -> Builder {
    let name = match p.style {
        Style::Size => name,
        Style::Depth => format!("{name}_depth"),
    };
    Builder::new(name, garbler, evaluator).with_style(p.style)
}

/// Layout and builder of a circuit on one value in and one value out whose output has
/// `out_bits` bits (ReLU, Square, Clip, LeakyReLU).
fn one_value(p: &CircuitParams, name: String, out_bits: u32) -> (Layout, Builder) {
    let w = p.share_bits();
    let lay = Layout {
        w,
        mask_bits: out_bits + p.sigma,
        values_in: 1,
    };
    let bld = new_builder(p, name, lay.garbler_bits(1), w);
    (lay, bld)
}

/// Ends a one-value circuit: masks its result `y` with the server's mask and declares the
/// output (`out_bits` bits, offsets `in_offset` and `out_offset` as in [`share_circuit`]).
fn finish_one_value(
    mut bld: Builder,
    p: &CircuitParams,
    lay: &Layout,
    y: &[Bit],
    out_bits: u32,
    in_offset: u128,
    out_offset: u128,
) -> ShareCircuit {
    let r = lay.mask(&bld, 0);
    let z = add_mask(&mut bld, y, &r);
    share_circuit(bld, p, vec![z], 1, out_bits, in_offset, out_offset)
}

/// Adds the server's mask: `y + r'` on `mask_bits + 1` bits.
fn add_mask(bld: &mut Builder, y: &[Bit], mask: &[Bit]) -> Word {
    bld.add(y, mask)
}

fn share_circuit(
    bld: Builder,
    p: &CircuitParams,
    outputs: Vec<Word>,
    values_in: u32,
    out_bits: u32,
    input_offset: u128,
    output_offset: u128,
) -> ShareCircuit {
    let values_out = outputs.len() as u32;
    let flat: Vec<Bit> = outputs.into_iter().flatten().collect();
    ShareCircuit {
        circuit: bld.finish(&flat),
        q0: p.q0,
        share_bits: p.share_bits(),
        values_in,
        values_out,
        input_offset,
        out_bits,
        mask_bits: out_bits + p.sigma,
        output_offset,
        trunc: p.trunc,
    }
}

/// Reconstructs every input in offset form `s = x + h_K ∈ [0, q0)` and truncates it:
/// `s >> K` on `w − K` bits.
fn reconstruct_all(bld: &mut Builder, p: &CircuitParams, lay: &Layout) -> Vec<Word> {
    (0..lay.values_in)
        .map(|i| {
            let (a, b) = (lay.a(bld, i), lay.b(bld, i));
            reconstruct_high(bld, p, &a, &b)
        })
        .collect()
}

/// Unsigned max of two words (one comparison and one select).
fn max2(bld: &mut Builder, x: &[Bit], y: &[Bit]) -> Word {
    let ge = bld.ge(x, y);
    bld.mux(ge, x, y)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trunc_tests;
