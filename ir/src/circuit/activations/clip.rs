//! Clip: clamp one value to `[lo, hi]`.

use super::super::builder::Builder;
use super::{finish_one_value, max2, one_value, reconstruct_all, CircuitParams, ShareCircuit};

/// Bits of Clip's output at (truncated) width `w` (offset form, `[0, q0 >> K)`).
pub fn out_bits(w: u32) -> u32 {
    w
}

/// Clip of one value to `[lo, hi]` (integers at scale Δ, centered, in truncated units).
/// Output offset `h_K >> K`.
pub fn clip(p: &CircuitParams, lo: i64, hi: i64) -> ShareCircuit {
    let (w, wt) = (p.share_bits(), p.trunc_bits());
    let name = format!("clip_{lo}_{hi}_q{}_s{}{}", w, p.sigma, p.trunc_tag());
    let (lay, mut bld) = one_value(p, name, out_bits(wt));
    let s = reconstruct_all(&mut bld, p, &lay).remove(0);
    let (h, top) = (p.trunc_half(), p.trunc_top());
    // h, top < 2^126: the sums below stay within i128.
    let clamp = |v: i64| (i128::from(v) + h as i128).clamp(0, top as i128) as u128;
    let lo_c = Builder::constant(clamp(lo), wt);
    let hi_c = Builder::constant(clamp(hi), wt);
    let s = max2(&mut bld, &s, &lo_c);
    let above = bld.gt(&s, &hi_c);
    let y = bld.mux(above, &hi_c, &s);
    finish_one_value(bld, p, &lay, &y, out_bits(wt), p.offset(), h)
}
