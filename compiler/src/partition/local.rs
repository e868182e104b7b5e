//! Per-op affine maps ([`LocalMap`]) of the linear ops, in terms of their non-constant operands.
//!
//! Arithmetic ops are derived structurally; pure data movement is derived by running
//! [`mp2ml_ir::reference::eval`] on an index tensor (element `i` holds `i + 1`, 0 marks padding),
//! which is exact in f32 below 2^24 elements.

use mp2ml_ir::op::Op;
use mp2ml_ir::reference::eval;
use mp2ml_ir::shape::{numel, strides};
use mp2ml_ir::tensor::Tensor;

use super::affine::{LocalMap, Term};

/// An operand of a linear op: either a constant value or a non-constant tensor of a shape.
pub enum Operand<'a> {
    /// A compile-time constant.
    Const(&'a Tensor),
    /// A non-constant tensor (index among the non-constant operands, shape).
    Var(u32, &'a [usize]),
}

impl Operand<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Operand::Const(t) => &t.shape,
            Operand::Var(_, s) => s,
        }
    }
}

/// Whether a linear op multiplies by weights (costs a level on its own); the others are free
/// (data movement, sums, per-element scalings that fold into neighbouring weights).
pub fn is_weighted(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv { .. } | Op::Gemm { .. } | Op::MatMul | Op::AvgPool { .. } | Op::GlobalAvgPool
    )
}

/// The cells of each pooling window of one `h×w` plane (row-major over the `oh×ow` output),
/// with the window size counted over the padded input (the divisor with `count_include_pad`).
pub fn pool_windows(
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    oh: usize,
    ow: usize,
) -> Vec<(Vec<u32>, usize)> {
    let (h, w) = (h as isize, w as isize);
    let mut out = Vec::with_capacity(oh * ow);
    for r in 0..oh {
        let h0 = (r * stride[0]) as isize - pads[0] as isize;
        for q in 0..ow {
            let w0 = (q * stride[1]) as isize - pads[1] as isize;
            let h_end = (h0 + kernel[0] as isize).min(h + pads[2] as isize);
            let w_end = (w0 + kernel[1] as isize).min(w + pads[3] as isize);
            let padded = ((h_end - h0) * (w_end - w0)).max(0) as usize;
            let mut cells = Vec::new();
            for i in h0.max(0)..h_end.min(h) {
                for j in w0.max(0)..w_end.min(w) {
                    cells.push((i * w + j) as u32);
                }
            }
            out.push((cells, padded));
        }
    }
    out
}

/// Maps each element of `out` to the element of `inp` it reads under numpy broadcasting.
fn broadcast_index(out: &[usize], inp: &[usize]) -> Vec<u32> {
    let n = numel(out);
    let r = out.len();
    let k = inp.len();
    let in_strides = strides(inp);
    let out_strides = strides(out);
    (0..n)
        .map(|flat| {
            let mut idx = 0usize;
            for d in 0..k {
                let od = r - k + d;
                let coord = (flat / out_strides[od]) % out[od];
                if inp[d] != 1 {
                    idx += coord * in_strides[d];
                }
            }
            idx as u32
        })
        .collect()
}

/// Element `i` of a constant operand; a constant with too few elements for the op is an error
/// (never a silent zero weight).
fn cval(t: &Tensor, i: usize) -> Result<f64, String> {
    t.data.get(i).map(|&v| f64::from(v)).ok_or_else(|| {
        format!(
            "constant of shape {:?} has no element {i} (too few weights for the op)",
            t.shape
        )
    })
}

/// Derives the local map of a linear op. `out_shape` is the op's output shape.
pub fn local_map(op: &Op, args: &[Operand], out_shape: &[usize]) -> Result<LocalMap, String> {
    let n_out = numel(out_shape);
    let mut m = LocalMap {
        rows: vec![Vec::new(); n_out],
        bias: vec![0.0; n_out],
    };
    let var = |i: usize| -> Result<(u32, &[usize]), String> {
        match args.get(i) {
            Some(Operand::Var(k, s)) => Ok((*k, s)),
            _ => Err(format!("operand {i} must be a non-constant tensor")),
        }
    };
    let cst = |i: usize| -> Result<&Tensor, String> {
        match args.get(i) {
            Some(Operand::Const(t)) => Ok(*t),
            _ => Err(format!("operand {i} must be a constant (weights)")),
        }
    };
    match op {
        Op::Conv {
            kernel,
            strides: st,
            pads,
            dilations,
            group,
        } => {
            let (x, xs) = var(0)?;
            let wt = cst(1)?;
            let bias = if args.len() > 2 { Some(cst(2)?) } else { None };
            if xs.len() != 4 || out_shape.len() != 4 || wt.shape.len() != 4 {
                return Err("Conv expects 4-D tensors".into());
            }
            let (c, h, w) = (xs[1], xs[2] as isize, xs[3] as isize);
            let (mo, oh, ow) = (out_shape[1], out_shape[2], out_shape[3]);
            let g = (*group).max(1);
            let (cg, mg) = (c / g, mo / g);
            let (kh, kw) = (kernel[0], kernel[1]);
            for mi in 0..mo {
                let gi = mi / mg.max(1);
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = (mi * oh + oy) * ow + ox;
                        let mut terms: Vec<Term> = Vec::new();
                        for ci in 0..cg {
                            for ky in 0..kh {
                                let iy = (oy * st[0]) as isize - pads[0] as isize
                                    + (ky * dilations[0]) as isize;
                                if iy < 0 || iy >= h {
                                    continue;
                                }
                                for kx in 0..kw {
                                    let ix = (ox * st[1]) as isize - pads[1] as isize
                                        + (kx * dilations[1]) as isize;
                                    if ix < 0 || ix >= w {
                                        continue;
                                    }
                                    let wv = cval(wt, ((mi * cg + ci) * kh + ky) * kw + kx)?;
                                    if wv != 0.0 {
                                        let e = ((gi * cg + ci) as isize * h + iy) * w + ix;
                                        terms.push((x, e as u32, wv));
                                    }
                                }
                            }
                        }
                        m.rows[o] = terms;
                        m.bias[o] = bias.map_or(Ok(0.0), |b| cval(b, mi))?;
                    }
                }
            }
        }
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let (x, xs) = var(0)?;
            let b = cst(1)?;
            if xs.len() != 2 || b.shape.len() != 2 {
                return Err("Gemm expects 2-D operands".into());
            }
            let (rows_a, k) = if *trans_a {
                (xs[1], xs[0])
            } else {
                (xs[0], xs[1])
            };
            let nn = if *trans_b { b.shape[0] } else { b.shape[1] };
            let a_idx = |i: usize, kk: usize| {
                if *trans_a {
                    kk * xs[1] + i
                } else {
                    i * xs[1] + kk
                }
            };
            let b_val = |kk: usize, j: usize| {
                if *trans_b {
                    cval(b, j * k + kk)
                } else {
                    cval(b, kk * nn + j)
                }
            };
            let cidx = if args.len() > 2 {
                Some((cst(2)?, broadcast_index(&[rows_a, nn], &cst(2)?.shape)))
            } else {
                None
            };
            for i in 0..rows_a {
                for j in 0..nn {
                    let o = i * nn + j;
                    for kk in 0..k {
                        let v = f64::from(*alpha) * b_val(kk, j)?;
                        if v != 0.0 {
                            m.rows[o].push((x, a_idx(i, kk) as u32, v));
                        }
                    }
                    if let Some((ct, idx)) = &cidx {
                        m.bias[o] = f64::from(*beta) * cval(ct, idx[o] as usize)?;
                    }
                }
            }
        }
        Op::MatMul => {
            let (x, xs) = var(0)?;
            let b = cst(1)?;
            if b.shape.len() != 2 || xs.is_empty() {
                return Err("MatMul is supported with a constant 2-D right operand".into());
            }
            let (k, nn) = (b.shape[0], b.shape[1]);
            let rows_a = numel(xs) / k.max(1);
            for i in 0..rows_a {
                for j in 0..nn {
                    for kk in 0..k {
                        let v = cval(b, kk * nn + j)?;
                        if v != 0.0 {
                            m.rows[i * nn + j].push((x, (i * k + kk) as u32, v));
                        }
                    }
                }
            }
        }
        Op::Add | Op::Sub | Op::Sum => {
            for (ai, a) in args.iter().enumerate() {
                let sign = if matches!(op, Op::Sub) && ai == 1 {
                    -1.0
                } else {
                    1.0
                };
                let idx = broadcast_index(out_shape, a.shape());
                match a {
                    Operand::Const(t) => {
                        for (o, &i) in idx.iter().enumerate() {
                            m.bias[o] += sign * cval(t, i as usize)?;
                        }
                    }
                    Operand::Var(k, _) => {
                        for (o, &i) in idx.iter().enumerate() {
                            m.rows[o].push((*k, i, sign));
                        }
                    }
                }
            }
        }
        Op::Mul | Op::Div => {
            let (vi, ci) = match (args.first(), args.get(1)) {
                (Some(Operand::Var(..)), Some(Operand::Const(_))) => (0, 1),
                (Some(Operand::Const(_)), Some(Operand::Var(..))) if matches!(op, Op::Mul) => {
                    (1, 0)
                }
                _ => {
                    return Err("needs exactly one constant operand (or a constant divisor)".into())
                }
            };
            let (x, xs) = var(vi)?;
            let c = cst(ci)?;
            let xi = broadcast_index(out_shape, xs);
            let cidx = broadcast_index(out_shape, &c.shape);
            for o in 0..n_out {
                let cv = cval(c, cidx[o] as usize)?;
                let v = if matches!(op, Op::Div) {
                    if cv == 0.0 {
                        return Err("division by zero".into());
                    }
                    1.0 / cv
                } else {
                    cv
                };
                if v != 0.0 {
                    m.rows[o].push((x, xi[o], v));
                }
            }
        }
        Op::BatchNorm { epsilon } => {
            let (x, xs) = var(0)?;
            let (sc, bi, mean, var_) = (cst(1)?, cst(2)?, cst(3)?, cst(4)?);
            let &ch = xs
                .get(1)
                .ok_or("BatchNorm needs an input of rank ≥ 2 (channels on axis 1)")?;
            let inner: usize = xs.iter().skip(2).product();
            for o in 0..n_out {
                let c = (o / inner.max(1)) % ch.max(1);
                let s = cval(sc, c)? / (cval(var_, c)? + f64::from(*epsilon)).sqrt();
                m.rows[o].push((x, o as u32, s));
                m.bias[o] = cval(bi, c)? - cval(mean, c)? * s;
            }
        }
        Op::AvgPool {
            kernel,
            strides: st,
            pads,
            count_include_pad,
            ..
        } => {
            let (x, xs) = var(0)?;
            if xs.len() != 4 || out_shape.len() != 4 {
                return Err("AvgPool expects 4-D tensors".into());
            }
            let planes = xs[0] * xs[1];
            let (h, w, oh, ow) = (xs[2], xs[3], out_shape[2], out_shape[3]);
            let wins = pool_windows(h, w, *kernel, *st, *pads, oh, ow);
            for p in 0..planes {
                for (o, (cells, padded)) in wins.iter().enumerate() {
                    let div = if *count_include_pad {
                        *padded
                    } else {
                        cells.len()
                    }
                    .max(1) as f64;
                    m.rows[p * oh * ow + o] = cells
                        .iter()
                        .map(|&c| (x, (p * h * w) as u32 + c, 1.0 / div))
                        .collect();
                }
            }
        }
        Op::GlobalAvgPool => {
            let (x, xs) = var(0)?;
            let inner: usize = xs.iter().skip(2).product();
            for o in 0..n_out {
                m.rows[o] = (0..inner)
                    .map(|i| (x, (o * inner + i) as u32, 1.0 / inner.max(1) as f64))
                    .collect();
            }
        }
        Op::Identity | Op::Dropout => {
            let (x, _) = var(0)?;
            for o in 0..n_out {
                m.rows[o].push((x, o as u32, 1.0));
            }
        }
        Op::Slice { axes, .. } if axes.contains(&0) => return Err(
            "Slice along the batch axis 0 is not supported (the plan computes each image apart)"
                .into(),
        ),
        Op::Flatten { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. } => return movement(op, args, out_shape),
        other => return Err(format!("`{}` is not a linear op", other.name())),
    }
    Ok(m)
}

/// Data movement by evaluating the op on index tensors: non-constant operand elements are
/// encoded as `offset + i + 1` (offsets keep operands apart), constant elements as `−(j + 1)`
/// over the concatenation of the constant operands, padding as 0.
fn movement(op: &Op, args: &[Operand], out_shape: &[usize]) -> Result<LocalMap, String> {
    let mut tensors = Vec::with_capacity(args.len());
    let mut var_off: Vec<(u32, usize, usize)> = Vec::new(); // (operand, first code, len)
    let mut const_vals: Vec<f32> = Vec::new();
    let mut next = 1usize;
    for a in args {
        match a {
            Operand::Var(k, s) => {
                let n = numel(s);
                var_off.push((*k, next, n));
                tensors.push(Tensor {
                    shape: s.to_vec(),
                    data: (0..n).map(|i| (next + i) as f32).collect(),
                });
                next += n;
            }
            Operand::Const(t) => {
                let base = const_vals.len();
                const_vals.extend_from_slice(&t.data);
                tensors.push(Tensor {
                    shape: t.shape.clone(),
                    data: (0..t.len()).map(|j| -((base + j + 1) as f32)).collect(),
                });
            }
        }
    }
    if next + const_vals.len() >= 1 << 24 {
        return Err("tensor too large for index-based data movement (2^24 elements)".into());
    }
    let (eval_op, pad_value) = match op {
        Op::Pad { pads, value } => (
            Op::Pad {
                pads: pads.clone(),
                value: 0.0,
            },
            f64::from(*value),
        ),
        o => (o.clone(), 0.0),
    };
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let out = eval(&eval_op, &refs, 1).map_err(|e| e.to_string())?;
    let out = out.into_iter().next().ok_or("no output")?;
    if numel(out_shape) != out.len() {
        return Err("data movement changed the element count unexpectedly".into());
    }
    let mut m = LocalMap {
        rows: vec![Vec::new(); out.len()],
        bias: vec![0.0; out.len()],
    };
    for (o, &v) in out.data.iter().enumerate() {
        let code = v as i64;
        if code == 0 {
            m.bias[o] = pad_value;
        } else if code < 0 {
            let v = const_vals
                .get((-code - 1) as usize)
                .ok_or("data movement produced an unknown constant element")?;
            m.bias[o] = f64::from(*v);
        } else {
            let c = code as usize;
            let &(k, first, _) = var_off
                .iter()
                .find(|&&(_, f, n)| c >= f && c < f + n)
                .ok_or("data movement produced an unknown operand element")?;
            m.rows[o].push((k, (c - first) as u32, 1.0));
        }
    }
    Ok(m)
}
