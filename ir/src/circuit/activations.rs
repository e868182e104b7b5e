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

use super::builder::{pad, Bit, Builder, Word};
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

/// ReLU of one value: `y = max(x, 0)` on `w − 1` bits; about `6w + σ` AND gates.
pub fn relu(p: &CircuitParams) -> ShareCircuit {
    let w = p.share_bits();
    let out_bits = w - 1;
    let lay = Layout {
        w,
        mask_bits: out_bits + p.sigma,
        values_in: 1,
    };
    let mut bld = new_builder(
        p,
        format!("relu_q{}_s{}", w, p.sigma),
        lay.garbler_bits(1),
        w,
    );
    let (a, b, r) = (lay.a(&bld, 0), lay.b(&bld, 0), lay.mask(&bld, 0));
    let v = reconstruct(&mut bld, p, &a, &b);
    let h = Builder::constant(u128::from(p.half()), w);
    let neg = bld.gt(&v, &h);
    let pos = bld.not(neg);
    let y = bld.keep_if(pos, &v[..out_bits as usize]);
    let z = add_mask(&mut bld, &y, &r);
    share_circuit(bld, p, vec![z], 1, out_bits, 0, 0)
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

/// MaxPool over one plane: `values_in` inputs, one output per window (a list of input
/// indices; windows may overlap, every input is reconstructed once). With `fuse_relu` the
/// result is `max(window ∪ {0})`. Output offset `h`, `w` bits.
pub fn maxpool(
    p: &CircuitParams,
    values_in: u32,
    windows: &[Vec<u32>],
    fuse_relu: bool,
) -> ShareCircuit {
    let w = p.share_bits();
    let values_out = windows.len() as u32;
    let lay = Layout {
        w,
        mask_bits: w + p.sigma,
        values_in,
    };
    let name = format!(
        "maxpool{}_{}in_{}out_q{}_s{}",
        if fuse_relu { "_relu" } else { "" },
        values_in,
        values_out,
        w,
        p.sigma
    );
    let mut bld = new_builder(p, name, lay.garbler_bits(values_out), values_in * w);
    let s = reconstruct_all(&mut bld, p, &lay);
    let h = Builder::constant(u128::from(p.half()), w);
    let mut outs = Vec::with_capacity(windows.len());
    for (o, win) in windows.iter().enumerate() {
        let mut items: Vec<Word> = if fuse_relu {
            vec![h.clone()]
        } else {
            Vec::new()
        };
        items.extend(win.iter().filter_map(|&i| s.get(i as usize).cloned()));
        let m = match p.style {
            // A running maximum: fewest gates.
            Style::Size => items.into_iter().reduce(|m, si| max2(&mut bld, &m, &si)),
            // A tournament: depth log2(window) comparisons.
            Style::Depth => {
                while items.len() > 1 {
                    let mut next = Vec::with_capacity(items.len().div_ceil(2));
                    let mut it = items.into_iter();
                    while let Some(x) = it.next() {
                        next.push(match it.next() {
                            Some(y) => max2(&mut bld, &x, &y),
                            None => x,
                        });
                    }
                    items = next;
                }
                items.pop()
            }
        }
        .unwrap_or_else(|| h.clone());
        let r = lay.mask(&bld, o as u32);
        outs.push(add_mask(&mut bld, &m, &r));
    }
    share_circuit(bld, p, outs, values_in, w, p.half(), p.half())
}

/// Clip of one value to `[lo, hi]` (integers at scale Δ, centered). Output offset `h`.
pub fn clip(p: &CircuitParams, lo: i64, hi: i64) -> ShareCircuit {
    let w = p.share_bits();
    let lay = Layout {
        w,
        mask_bits: w + p.sigma,
        values_in: 1,
    };
    let mut bld = new_builder(
        p,
        format!("clip_{lo}_{hi}_q{}_s{}", w, p.sigma),
        lay.garbler_bits(1),
        w,
    );
    let s = reconstruct_all(&mut bld, p, &lay).remove(0);
    let h = p.half() as i128;
    let clamp = |v: i64| (i128::from(v) + h).clamp(0, i128::from(p.q0) - 1) as u128;
    let lo_c = Builder::constant(clamp(lo), w);
    let hi_c = Builder::constant(clamp(hi), w);
    let s = max2(&mut bld, &s, &lo_c);
    let above = bld.gt(&s, &hi_c);
    let y = bld.mux(above, &hi_c, &s);
    let r = lay.mask(&bld, 0);
    let z = add_mask(&mut bld, &y, &r);
    share_circuit(bld, p, vec![z], 1, w, p.half(), p.half())
}

/// LeakyReLU with slope `alpha = alpha_num / 2^alpha_shift` in `[0, 1]`: `x ≥ 0 ? x :
/// round(alpha·x)`. Output offset `h`.
pub fn leaky_relu(p: &CircuitParams, alpha_num: u64, alpha_shift: u32) -> ShareCircuit {
    let w = p.share_bits();
    let lay = Layout {
        w,
        mask_bits: w + p.sigma,
        values_in: 1,
    };
    let mut bld = new_builder(
        p,
        format!("leaky_relu_{alpha_num}_{alpha_shift}_q{}_s{}", w, p.sigma),
        lay.garbler_bits(1),
        w,
    );
    let s = reconstruct_all(&mut bld, p, &lay).remove(0);
    let h = Builder::constant(u128::from(p.half()), w);
    // neg ⇔ s < h; then |x| = h − s < 2^w.
    // `h ≥ s` stands in for `s < h`: at s = h, x = 0 and both branches give h.
    let (mag, neg) = bld.sub(&h, &s);
    let wide = w + alpha_shift + 1;
    let prod = bld.mul_const(&mag, u128::from(alpha_num), wide);
    // round(α|x|) = (α_num·|x| + 2^(shift−1)) >> shift
    let rounded = if alpha_shift > 0 {
        let half = Builder::constant(1u128 << (alpha_shift - 1), wide);
        bld.add_trunc(&prod, &half)
    } else {
        prod
    };
    let scaled = pad(&rounded[alpha_shift as usize..], w);
    let (neg_val, _) = bld.sub(&h, &scaled);
    let y = bld.mux(neg, &neg_val, &s);
    let r = lay.mask(&bld, 0);
    let z = add_mask(&mut bld, &y, &r);
    share_circuit(bld, p, vec![z], 1, w, p.half(), p.half())
}

/// Square with rescaling: `y = round(x² / 2^frac_bits)` on `w − 1` bits (the range analysis
/// guarantees it fits). No output offset.
pub fn square(p: &CircuitParams, frac_bits: u32) -> ShareCircuit {
    let w = p.share_bits();
    let out_bits = w - 1;
    let lay = Layout {
        w,
        mask_bits: out_bits + p.sigma,
        values_in: 1,
    };
    let mut bld = new_builder(
        p,
        format!("square_f{frac_bits}_q{}_s{}", w, p.sigma),
        lay.garbler_bits(1),
        w,
    );
    let s = reconstruct_all(&mut bld, p, &lay).remove(0);
    let h = Builder::constant(u128::from(p.half()), w);
    // d = s − h (two's complement on w bits), |x| = ge ? d : −d = (d ⊕ m) + m with m = ¬ge.
    let (d, ge) = bld.sub(&s, &h);
    let m = bld.not(ge);
    let flipped: Word = d.iter().map(|&x| bld.xor(x, m)).collect();
    let (mag, _) = bld.add_with_carry(&flipped, &[], m);
    let mag = &mag[..(w - 1) as usize];
    let sq_bits = 2 * (w - 1);
    let sq = bld.mul(mag, mag, sq_bits);
    let rounded = if frac_bits > 0 {
        let half = Builder::constant(1u128 << (frac_bits - 1), sq_bits);
        bld.add_trunc(&sq, &half)
    } else {
        sq
    };
    let y = pad(
        &rounded[(frac_bits as usize).min(rounded.len())..],
        out_bits,
    );
    let r = lay.mask(&bld, 0);
    let z = add_mask(&mut bld, &y, &r);
    share_circuit(bld, p, vec![z], 1, out_bits, p.half(), 0)
}

#[cfg(test)]
mod tests;
