//! ReLU: `max(x, 0)` of one value.

use super::super::builder::Builder;
use super::{
    add_mask, new_builder, reconstruct, share_circuit, CircuitParams, Layout, ShareCircuit,
};

/// Bits of ReLU's output at share width `w`: the result is non-negative and below q0/2.
pub fn out_bits(w: u32) -> u32 {
    w - 1
}

/// ReLU of one value: `y = max(x, 0)` on `w − 1` bits; about `6w + σ` AND gates.
pub fn relu(p: &CircuitParams) -> ShareCircuit {
    let w = p.share_bits();
    let out_bits = out_bits(w);
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
