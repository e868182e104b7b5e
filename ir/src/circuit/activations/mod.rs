//! The production circuits of the non-linear layers, on additive shares mod q0.
//!
//! Every circuit follows the layout of [`ShareCircuit`]: it reconstructs each input value from
//! the client's share `a` and the server's share `b̃ = (b + input_offset) mod q0`, applies the
//! function, and outputs `z = y + output_offset + r'` with the server's mask `r'` uniform in
//! `[0, 2^(out_bits+σ))`, added over the integers so that nothing wraps (`docs/ARCHITECTURE.md`,
//! "Arithmetic"). Values are fixed-point integers at scale Δ; a value x is *centered* if it lies in
//! `[−h, h]` with `h = ⌊q0/2⌋`.
//!
//! - [`relu`]: no offset; `v = (a + b) mod q0`, negative iff `v > h`.
//! - the others use `input_offset = h`, so the reconstructed `s = x + h` lies in `[0, q0)` and
//!   unsigned comparisons of `s` order the signed values; their outputs keep the offset `h`.
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
    /// Share modulus (odd, at least 5).
    pub q0: u64,
    /// Statistical security bits of the output mask.
    pub sigma: u32,
    /// Size-optimal (Yao) or depth-optimized (GMW) arithmetic.
    pub style: Style,
}

impl CircuitParams {
    /// Bits per share: the bit length of `q0`.
    pub fn share_bits(&self) -> u32 {
        64 - self.q0.leading_zeros()
    }

    /// `h = ⌊q0/2⌋`, the largest centered magnitude.
    pub fn half(&self) -> u64 {
        self.q0 / 2
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
    let q = Builder::constant(u128::from(p.q0), w + 1);
    let (u, ge) = bld.sub(&t, &q);
    bld.mux(ge, &u[..w as usize], &t[..w as usize])
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
    in_offset: u64,
    out_offset: u64,
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
    input_offset: u64,
    output_offset: u64,
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
    }
}

/// Reconstructs every input in offset form `s = x + h ∈ [0, q0)`.
fn reconstruct_all(bld: &mut Builder, p: &CircuitParams, lay: &Layout) -> Vec<Word> {
    (0..lay.values_in)
        .map(|i| {
            let (a, b) = (lay.a(bld, i), lay.b(bld, i));
            reconstruct(bld, p, &a, &b)
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
