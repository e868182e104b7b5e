//! Clip: clamp one value to `[lo, hi]`.

use super::super::builder::Builder;
use super::{
    add_mask, max2, new_builder, reconstruct_all, share_circuit, CircuitParams, Layout,
    ShareCircuit,
};

/// Bits of Clip's output at share width `w` (offset form, `[0, q0)`).
pub fn out_bits(w: u32) -> u32 {
    w
}

/// Clip of one value to `[lo, hi]` (integers at scale Δ, centered). Output offset `h`.
pub fn clip(p: &CircuitParams, lo: i64, hi: i64) -> ShareCircuit {
    let w = p.share_bits();
    let lay = Layout {
        w,
        mask_bits: out_bits(w) + p.sigma,
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
    share_circuit(bld, p, vec![z], 1, out_bits(w), p.half(), p.half())
}
