//! Square: `x·x` rescaled by the fixed-point scale.

use super::super::builder::{pad, Builder, Word};
use super::{finish_one_value, one_value, reconstruct_all, CircuitParams, ShareCircuit};

/// Bits of the square's output at (truncated) width `w`: non-negative and below `q0/2 >> K`.
pub fn out_bits(w: u32) -> u32 {
    w.saturating_sub(1)
}

/// Square with rescaling: `y = round(x² / 2^frac_bits)` on `w − 1 − K` bits (x in truncated
/// units; the range analysis guarantees it fits). No output offset.
pub fn square(p: &CircuitParams, frac_bits: u32) -> ShareCircuit {
    let (w, wt) = (p.share_bits(), p.trunc_bits());
    let out_bits = out_bits(wt);
    let name = format!("square_f{frac_bits}_q{}_s{}{}", w, p.sigma, p.trunc_tag());
    let (lay, mut bld) = one_value(p, name, out_bits);
    let s = reconstruct_all(&mut bld, p, &lay).remove(0);
    let h = Builder::constant(p.trunc_half(), wt);
    // d = s − h (two's complement on wt bits), |x| = ge ? d : −d = (d ⊕ m) + m with m = ¬ge.
    let (d, ge) = bld.sub(&s, &h);
    let m = bld.not(ge);
    let flipped: Word = d.iter().map(|&x| bld.xor(x, m)).collect();
    let (mag, _) = bld.add_with_carry(&flipped, &[], m);
    let mag = &mag[..out_bits as usize];
    let sq_bits = 2 * out_bits;
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
    finish_one_value(bld, p, &lay, &y, out_bits, p.offset(), 0)
}
