//! MaxPool over the windows of one plane, optionally with a fused ReLU.

use super::super::builder::{Builder, Word};
use super::super::prefix::Style;
use super::{
    add_mask, max2, new_builder, reconstruct_all, share_circuit, CircuitParams, Layout,
    ShareCircuit,
};

/// Bits of MaxPool's output at (truncated) width `w` (offset form, `[0, q0 >> K)`).
pub fn out_bits(w: u32) -> u32 {
    w
}

/// MaxPool over one plane: `values_in` inputs, one output per window (a list of input
/// indices; windows may overlap, every input is reconstructed once). With `fuse_relu` the
/// result is `max(window ∪ {0})`. Output offset `h_K >> K`, `w − K` bits.
pub fn maxpool(
    p: &CircuitParams,
    values_in: u32,
    windows: &[Vec<u32>],
    fuse_relu: bool,
) -> ShareCircuit {
    let (w, wt) = (p.share_bits(), p.trunc_bits());
    let values_out = windows.len() as u32;
    let lay = Layout {
        w,
        mask_bits: out_bits(wt) + p.sigma,
        values_in,
    };
    let name = format!(
        "maxpool{}_{}in_{}out_q{}_s{}{}",
        if fuse_relu { "_relu" } else { "" },
        values_in,
        values_out,
        w,
        p.sigma,
        p.trunc_tag()
    );
    let mut bld = new_builder(p, name, lay.garbler_bits(values_out), values_in * w);
    let s = reconstruct_all(&mut bld, p, &lay);
    let h = Builder::constant(p.trunc_half(), wt);
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
    share_circuit(
        bld,
        p,
        outs,
        values_in,
        out_bits(wt),
        p.offset(),
        p.trunc_half(),
    )
}
