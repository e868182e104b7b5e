//! Clip: clamp one value to `[lo, hi]`.

use super::super::builder::Builder;
use super::{finish_one_value, max2, one_value, reconstruct_all, CircuitParams, ShareCircuit};

/// Bits of Clip's output at share width `w` (offset form, `[0, q0)`).
pub fn out_bits(w: u32) -> u32 {
    w
}

/// Clip of one value to `[lo, hi]` (integers at scale Δ, centered). Output offset `h`.
pub fn clip(p: &CircuitParams, lo: i64, hi: i64) -> ShareCircuit {
    let w = p.share_bits();
    let name = format!("clip_{lo}_{hi}_q{}_s{}", w, p.sigma);
    let (lay, mut bld) = one_value(p, name, out_bits(w));
    let s = reconstruct_all(&mut bld, p, &lay).remove(0);
    let h = p.half() as i128;
    let clamp = |v: i64| (i128::from(v) + h).clamp(0, i128::from(p.q0) - 1) as u128;
    let lo_c = Builder::constant(clamp(lo), w);
    let hi_c = Builder::constant(clamp(hi), w);
    let s = max2(&mut bld, &s, &lo_c);
    let above = bld.gt(&s, &hi_c);
    let y = bld.mux(above, &hi_c, &s);
    finish_one_value(bld, p, &lay, &y, out_bits(w), p.half(), p.half())
}
