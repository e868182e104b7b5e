//! ReLU: `max(x, 0)` of one value.

use super::super::builder::Builder;
use super::{finish_one_value, one_value, reconstruct, CircuitParams, ShareCircuit};

/// Bits of ReLU's output at share width `w`: the result is non-negative and below q0/2.
pub fn out_bits(w: u32) -> u32 {
    w - 1
}

/// ReLU of one value: `y = max(x, 0)` on `w − 1` bits; about `6w + σ` AND gates.
pub fn relu(p: &CircuitParams) -> ShareCircuit {
    let w = p.share_bits();
    let out_bits = out_bits(w);
    let (lay, mut bld) = one_value(p, format!("relu_q{}_s{}", w, p.sigma), out_bits);
    let (a, b) = (lay.a(&bld, 0), lay.b(&bld, 0));
    let v = reconstruct(&mut bld, p, &a, &b);
    let h = Builder::constant(u128::from(p.half()), w);
    let neg = bld.gt(&v, &h);
    let pos = bld.not(neg);
    let y = bld.keep_if(pos, &v[..out_bits as usize]);
    finish_one_value(bld, p, &lay, &y, out_bits, 0, 0)
}
