//! LeakyReLU: `x ≥ 0 ? x : alpha·x` with a fixed-point slope.

use super::super::builder::{pad, Builder};
use super::{finish_one_value, one_value, reconstruct_all, CircuitParams, ShareCircuit};

/// Bits of LeakyReLU's output at (truncated) width `w` (offset form, `[0, q0 >> K)`).
pub fn out_bits(w: u32) -> u32 {
    w
}

/// LeakyReLU with slope `alpha = alpha_num / 2^alpha_shift` in `[0, 1]`: `x ≥ 0 ? x :
/// round(alpha·x)` (x in truncated units). Output offset `h_K >> K`.
pub fn leaky_relu(p: &CircuitParams, alpha_num: u64, alpha_shift: u32) -> ShareCircuit {
    let (w, wt) = (p.share_bits(), p.trunc_bits());
    let name = format!(
        "leaky_relu_{alpha_num}_{alpha_shift}_q{}_s{}{}",
        w,
        p.sigma,
        p.trunc_tag()
    );
    let (lay, mut bld) = one_value(p, name, out_bits(wt));
    let s = reconstruct_all(&mut bld, p, &lay).remove(0);
    let h = Builder::constant(p.trunc_half(), wt);
    // neg ⇔ s < h; then |x| = h − s < 2^w.
    // `h ≥ s` stands in for `s < h`: at s = h, x = 0 and both branches give h.
    let (mag, neg) = bld.sub(&h, &s);
    let wide = wt + alpha_shift + 1;
    let prod = bld.mul_const(&mag, u128::from(alpha_num), wide);
    // round(α|x|) = (α_num·|x| + 2^(shift−1)) >> shift
    let rounded = if alpha_shift > 0 {
        let half = Builder::constant(1u128 << (alpha_shift - 1), wide);
        bld.add_trunc(&prod, &half)
    } else {
        prod
    };
    let scaled = pad(&rounded[alpha_shift as usize..], wt);
    let (neg_val, _) = bld.sub(&h, &scaled);
    let y = bld.mux(neg, &neg_val, &s);
    finish_one_value(bld, p, &lay, &y, out_bits(wt), p.offset(), p.trunc_half())
}
