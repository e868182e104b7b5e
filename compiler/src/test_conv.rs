//! A plain convolution by direct loops, the reference the packing, detection and structured
//! map tests compare against (independent of `ConvGeom::row_taps` and the packings).

use mp2ml_ir::layout::ConvGeom;

/// Calls `tap(row, col, k)` for every in-bounds tap of the convolution `g`: output element
/// `row` (in `[O, OH, OW]` order) reads input element `col` (in `[C, H, W]` order) with kernel
/// entry `k` (in `[O, C/groups, KH, KW]` order). Rows come in increasing order.
pub fn conv_taps(g: &ConvGeom, mut tap: impl FnMut(usize, usize, usize)) {
    let [c, h, w] = g.input;
    let [o, oh, ow] = g.output;
    let (ci, oi) = (c / g.groups, o / g.groups);
    for oc in 0..o {
        for i in 0..oh {
            for j in 0..ow {
                let row = (oc * oh + i) * ow + j;
                for cl in 0..ci {
                    let ch = (oc / oi) * ci + cl;
                    for l in 0..g.kernel[0] {
                        for m in 0..g.kernel[1] {
                            let y =
                                (i * g.strides[0] + l * g.dilations[0]) as i64 - g.pads[0] as i64;
                            let x =
                                (j * g.strides[1] + m * g.dilations[1]) as i64 - g.pads[1] as i64;
                            if y < 0 || x < 0 || y >= h as i64 || x >= w as i64 {
                                continue;
                            }
                            let col = (ch * h + y as usize) * w + x as usize;
                            let k = ((oc * ci + cl) * g.kernel[0] + l) * g.kernel[1] + m;
                            tap(row, col, k);
                        }
                    }
                }
            }
        }
    }
}
