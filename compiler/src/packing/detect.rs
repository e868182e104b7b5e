//! Finds convolution structure in a linear op's integer matrix, exactly.
//!
//! The fused map of a Conv (with BatchNorm, bias, AvgPool or Pad folded in) is weight-shared: the
//! entry for output `(o, i, j)` and input `(c, y, x)` depends only on `(o, c, y − i·sh, x − j·sw)`.
//! [`detect`] reads strides and the kernel window off the matrix, fills a kernel, and keeps the
//! structure only when the expansion reproduces the matrix with few leftover entries (the
//! integer matrix is `expand(kernels) + leftovers` exactly, so batch packing is unchanged).

use std::collections::BTreeMap;

use mp2ml_ir::layout::{Bias, ConvGeom, ConvTerm, StructuredMatrix};
use mp2ml_ir::weights::IntMatrix;

/// Leftover entries allowed, as a fraction (1/`LEFTOVER_DIV`) of the matrix's entries.
const LEFTOVER_DIV: usize = 8;

fn three(shape: &[usize]) -> Option<[usize; 3]> {
    match shape {
        [c, h, w] => Some([*c, *h, *w]),
        _ => None,
    }
}

/// Most frequent positive value of `v` (ties: the smallest), or `None`.
fn mode(v: &[i64]) -> Option<usize> {
    let mut count: BTreeMap<i64, usize> = BTreeMap::new();
    for &d in v.iter().filter(|&&d| d > 0) {
        *count.entry(d).or_default() += 1;
    }
    let best = count.values().copied().max()?;
    count
        .into_iter()
        .find(|&(_, c)| c == best)
        .map(|(d, _)| d as usize)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Tries one convolution term over input `[c, h, w]` at columns `off ..`.
fn conv_term(m: &IntMatrix, off: usize, input: [usize; 3], output: [usize; 3]) -> Option<ConvTerm> {
    let [c, h, w] = input;
    let [o, oh, ow] = output;
    let len = c * h * w;
    let plane = oh * ow;
    // Entries of this input, decoded: (row o, i, j, channel, y, x, value).
    let mut ent = Vec::new();
    for r in 0..m.rows {
        for (col, v) in m.row(r) {
            let col = col as usize;
            if col >= off && col < off + len {
                let e = col - off;
                ent.push((
                    r / plane,
                    (r / ow) % oh,
                    r % ow,
                    e / (h * w),
                    (e / w) % h,
                    e % w,
                    v,
                ));
            }
        }
    }
    if ent.is_empty() {
        return None;
    }
    // Strides: the most frequent step of the window's first row (column) between vertically
    // (horizontally) adjacent outputs whose windows are not clipped by the padding.
    let mut first: BTreeMap<(usize, usize, usize), (usize, usize)> = BTreeMap::new();
    for &(ro, i, j, _, y, x, _) in &ent {
        let f = first.entry((ro, i, j)).or_insert((y, x));
        f.0 = f.0.min(y);
        f.1 = f.1.min(x);
    }
    let mut dys = Vec::new();
    let mut dxs = Vec::new();
    for (&(ro, i, j), &(y, x)) in &first {
        if y > 0 {
            if let Some(&(y2, _)) = first.get(&(ro, i + 1, j)) {
                dys.push(y2 as i64 - y as i64);
            }
        }
        if x > 0 {
            if let Some(&(_, x2)) = first.get(&(ro, i, j + 1)) {
                dxs.push(x2 as i64 - x as i64);
            }
        }
    }
    // A guess, checked below: with no unclipped adjacent pair (one output row or column) the
    // stride is 1; whatever the guess, the leftovers of `detect` keep the matrix exact.
    let sh = mode(&dys).unwrap_or(1);
    let sw = mode(&dxs).unwrap_or(1);
    // Window offsets relative to (i·sh, j·sw).
    let (mut dy0, mut dy1, mut dx0, mut dx1) = (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
    for &(_, i, j, _, y, x, _) in &ent {
        let dy = y as i64 - (i * sh) as i64;
        let dx = x as i64 - (j * sw) as i64;
        dy0 = dy0.min(dy);
        dy1 = dy1.max(dy);
        dx0 = dx0.min(dx);
        dx1 = dx1.max(dx);
    }
    let pt = (-dy0).max(0) as usize;
    let pl = (-dx0).max(0) as usize;
    let kh = (dy1 + pt as i64 + 1) as usize;
    let kw = (dx1 + pl as i64 + 1) as usize;
    // Groups: the most groups consistent with every entry.
    let mut g = gcd(c, o);
    while g > 1 {
        let (ci, oi) = (c / g, o / g);
        if ent.iter().all(|e| e.3 / ci == e.0 / oi) {
            break;
        }
        g -= 1;
        while g > 1 && (c % g != 0 || o % g != 0) {
            g -= 1;
        }
    }
    let geom = ConvGeom {
        col_offset: off,
        input,
        output,
        kernel: [kh, kw],
        strides: [sh, sw],
        pads: [pt, pl],
        dilations: [1, 1],
        groups: g.max(1),
    };
    if geom.check(m.rows, m.cols).is_err() || geom.kernel_len() > ent.len() {
        return None;
    }
    let ci = geom.group_in();
    let mut kernel = vec![0i64; geom.kernel_len()];
    let mut set = vec![false; kernel.len()];
    for &(ro, i, j, ch, y, x, v) in &ent {
        let cl = ch - (ro / geom.group_out()) * ci;
        let l = (y as i64 - (i * sh) as i64 + pt as i64) as usize;
        let mm = (x as i64 - (j * sw) as i64 + pl as i64) as usize;
        let k = geom.kernel_index(ro, cl, l, mm);
        if !set[k] {
            set[k] = true;
            kernel[k] = v;
        }
    }
    Some(ConvTerm { geom, kernel })
}

/// `m` as convolution terms plus leftovers, when every 3-D input with entries is
/// convolution-shaped into the 3-D output and the leftovers are few; `None` otherwise.
/// `inputs` are the per-image shapes of the concatenated inputs, `output` the output's.
pub fn detect(m: &IntMatrix, inputs: &[Vec<usize>], output: &[usize]) -> Option<StructuredMatrix> {
    let out = three(output)?;
    if out.iter().product::<usize>() != m.rows || m.check().is_err() {
        return None;
    }
    let mut convs = Vec::new();
    let mut off = 0usize;
    for s in inputs {
        let len: usize = s.iter().product();
        if let Some(inp) = three(s) {
            if let Some(t) = conv_term(m, off, inp, out) {
                convs.push(t);
            }
        }
        off += len;
    }
    if convs.is_empty() || off != m.cols {
        return None;
    }
    // Leftovers: original minus the convolutions' expansion, row by row.
    let mut extra = Vec::new();
    let mut taps: Vec<(usize, i64)> = Vec::new();
    for r in 0..m.rows {
        taps.clear();
        for t in &convs {
            for (col, k) in t.geom.row_taps(r) {
                taps.push((col, t.kernel[k]));
            }
        }
        let mut diff: BTreeMap<usize, i64> = BTreeMap::new();
        for &(col, v) in &taps {
            *diff.entry(col).or_default() -= v;
        }
        for (col, v) in m.row(r) {
            *diff.entry(col as usize).or_default() += v;
        }
        for (col, v) in diff {
            if v != 0 {
                extra.push((r as u32, col as u32, v));
            }
        }
        if extra.len() > m.nnz() / LEFTOVER_DIV + 1 {
            return None;
        }
    }
    let per = out[1] * out[2];
    let per_channel = m
        .bias
        .chunks(per.max(1))
        .all(|ch| ch.iter().all(|&b| b == ch[0]));
    let bias = if per_channel {
        Bias::PerChannel(m.bias.chunks(per.max(1)).map(|ch| ch[0]).collect())
    } else {
        Bias::PerRow(m.bias.clone())
    };
    let s = StructuredMatrix {
        rows: m.rows,
        cols: m.cols,
        convs,
        extra,
        bias,
    };
    // Exactness is the contract: keep the structure only if it expands to `m`.
    (s.to_csr().ok().as_ref() == Some(m)).then_some(s)
}

/// Bytes of a CSR section of `m` (kind word included).
pub fn csr_bytes(m: &IntMatrix) -> usize {
    8 + 24 + 8 * (m.rows + 1) + 12 * m.nnz() + 16 * m.rows
}

/// Bytes of a structured section of `s`.
pub fn structured_bytes(s: &StructuredMatrix) -> usize {
    let bias = match &s.bias {
        Bias::PerRow(b) | Bias::PerChannel(b) => b.len(),
    };
    8 + 32
        + s.convs
            .iter()
            .map(|t| 8 * 17 + 8 * t.kernel.len())
            .sum::<usize>()
        + 8
        + 16 * s.extra.len()
        + 16
        + 16 * bias
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The plain convolution as a CSR matrix (an independent reference: direct loops).
    fn conv_matrix(g: &ConvGeom, kernel: &[i64], bias: &[i128]) -> IntMatrix {
        let plane = g.output[1] * g.output[2];
        let mut rows: Vec<BTreeMap<usize, i64>> = vec![BTreeMap::new(); g.out_len()];
        crate::test_conv::conv_taps(g, |row, col, k| {
            *rows[row].entry(col).or_insert(0) += kernel[k];
        });
        let mut m = IntMatrix {
            rows: g.out_len(),
            cols: g.in_len(),
            row_ptr: vec![0],
            ..Default::default()
        };
        for (r, row) in rows.into_iter().enumerate() {
            for (col, v) in row {
                if v != 0 {
                    m.col.push(col as u32);
                    m.val.push(v);
                }
            }
            m.row_ptr.push(m.col.len() as u64);
            m.bias.push(bias[r / plane]);
        }
        m
    }

    #[test]
    fn finds_random_convolutions_exactly() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut found = 0;
        for _ in 0..40 {
            let groups = [1, 1, 2][rng.random_range(0..3)];
            let c = groups * rng.random_range(1..4);
            let o = groups * rng.random_range(1..4);
            let (h, w) = (rng.random_range(5..11), rng.random_range(5..11));
            let k = [rng.random_range(1..4), rng.random_range(1..4)];
            let s = [rng.random_range(1..4), rng.random_range(1..4)];
            let p = [rng.random_range(0..k[0]), rng.random_range(0..k[1])];
            let oh = (h + 2 * p[0] - k[0]) / s[0] + 1;
            let ow = (w + 2 * p[1] - k[1]) / s[1] + 1;
            let g = ConvGeom {
                col_offset: 0,
                input: [c, h, w],
                output: [o, oh, ow],
                kernel: k,
                strides: s,
                pads: p,
                dilations: [1, 1],
                groups,
            };
            let kernel: Vec<i64> = (0..g.kernel_len())
                .map(|_| rng.random_range(-1000..1000))
                .collect();
            let bias: Vec<i128> = (0..o).map(|_| rng.random_range(-99..99)).collect();
            let m = conv_matrix(&g, &kernel, &bias);
            if let Some(st) = detect(&m, &[vec![c, h, w]], &[o, oh, ow]) {
                assert_eq!(st.to_csr().expect("valid"), m);
                assert!(matches!(st.bias, Bias::PerChannel(_)));
                found += 1;
            }
        }
        // Small outputs (one row or column) can hide the stride; most cases must be found.
        assert!(found >= 30, "only {found} of 40 convolutions found");
    }

    #[test]
    fn residual_identity_is_a_second_term_and_dense_is_refused() {
        let g = ConvGeom {
            pads: [1, 1],
            ..ConvGeom::plain([2, 6, 6], [2, 6, 6], [3, 3])
        };
        let kernel: Vec<i64> = (0..g.kernel_len() as i64).map(|v| v - 17).collect();
        let conv = conv_matrix(&g, &kernel, &[1, 2]);
        // Append an identity over a second input of the same shape (the residual Add).
        let mut m = IntMatrix {
            rows: conv.rows,
            cols: 144,
            row_ptr: vec![0],
            bias: conv.bias.clone(),
            ..Default::default()
        };
        for r in 0..conv.rows {
            for (c, v) in conv.row(r) {
                m.col.push(c);
                m.val.push(v);
            }
            m.col.push(72 + r as u32);
            m.val.push(5);
            m.row_ptr.push(m.col.len() as u64);
        }
        let st = detect(&m, &[vec![2, 6, 6], vec![2, 6, 6]], &[2, 6, 6]).expect("structured");
        assert_eq!(st.convs.len(), 2);
        assert_eq!(st.convs[1].geom.kernel, [1, 1]);
        assert_eq!(st.convs[1].geom.groups, 2);
        assert!(st.extra.is_empty());
        assert_eq!(st.to_csr().expect("valid"), m);
        assert!(structured_bytes(&st) < csr_bytes(&m) / 4);
        // A dense map is not a convolution.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let dense = IntMatrix {
            rows: 8,
            cols: 18,
            row_ptr: (0..=8).map(|r| r * 18).collect(),
            col: (0..8).flat_map(|_| 0..18u32).collect(),
            val: (0..144).map(|_| rng.random_range(1..50)).collect(),
            bias: vec![0; 8],
        };
        assert!(detect(&dense, &[vec![2, 3, 3]], &[2, 2, 2]).is_none());
    }
}
