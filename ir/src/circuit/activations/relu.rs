//! ReLU: `max(x, 0)` of one value.

use super::super::builder::Builder;
use super::{finish_one_value, one_value, reconstruct_high, CircuitParams, ShareCircuit};

/// Bits of ReLU's output at (truncated) width `w`: the result is non-negative and at most
/// `⌊q0/2⌋ >> K`.
pub fn out_bits(w: u32) -> u32 {
    w.saturating_sub(1)
}

/// ReLU of one value: `y = max(x, 0) >> K` on `w − 1 − K` bits; about `6w + σ` AND gates at
/// K = 0, `6w − 4K + σ` with truncation. Negative iff `⌊v/2^K⌋ > ⌊h/2^K⌋` (`v > h` at K = 0).
pub fn relu(p: &CircuitParams) -> ShareCircuit {
    let w = p.share_bits();
    let wt = p.trunc_bits();
    let out_bits = out_bits(wt);
    let name = format!("relu_q{}_s{}{}", w, p.sigma, p.trunc_tag());
    let (lay, mut bld) = one_value(p, name, out_bits);
    let (a, b) = (lay.a(&bld, 0), lay.b(&bld, 0));
    let v = reconstruct_high(&mut bld, p, &a, &b);
    let h = Builder::constant(p.trunc_half(), wt);
    let neg = bld.gt(&v, &h);
    let pos = bld.not(neg);
    let y = bld.keep_if(pos, &v[..out_bits as usize]);
    finish_one_value(bld, p, &lay, &y, out_bits, 0, 0)
}
