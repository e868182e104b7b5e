//! Plain f32 reference executor for the IR.
//!
//! It runs every op with straightforward loops and is the ground truth the compiler's plans and
//! the two-party runtime are checked against. Inputs may carry a batch of `B >= 1` along axis 0
//! even though the IR was imported with batch 1: shapes are recomputed from the actual operands,
//! and `Reshape` targets scale their axis 0 by the batch factor. Ops never mix batch elements.

use thiserror::Error;

use crate::graph::{Graph, Node, NodeId};
use crate::op::Op;
use crate::shape::{broadcast, infer, norm_axis, numel, slice_indices, strides, ShapeError};
use crate::tensor::{Tensor, TensorId};

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum RunError {
    /// Wrong number of inputs.
    #[error("graph has {expected} input(s), {found} given")]
    InputCount {
        /// Graph inputs.
        expected: usize,
        /// Given.
        found: usize,
    },
    /// An input's shape does not match the graph (other than along the batch axis).
    #[error("input `{name}` has shape {found:?}, graph expects {expected:?} (axis 0 may differ)")]
    InputShape {
        /// Input name.
        name: String,
        /// IR shape.
        expected: Vec<usize>,
        /// Given shape.
        found: Vec<usize>,
    },
    /// An input tensor's data length disagrees with its shape.
    #[error("input `{0}` has a data length that does not match its shape")]
    InputData(String),
    /// The graph is cyclic or otherwise invalid.
    #[error("graph is invalid: {0}")]
    Invalid(String),
    /// An op failed on the actual shapes.
    #[error("node `{node}` ({op}): {source}")]
    Shape {
        /// Node name.
        node: String,
        /// Op name.
        op: &'static str,
        /// The shape error.
        source: ShapeError,
    },
}

/// Runs `graph` on `inputs` (one per graph input, in order) and returns the graph outputs.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, RunError> {
    if inputs.len() != graph.inputs().len() {
        return Err(RunError::InputCount {
            expected: graph.inputs().len(),
            found: inputs.len(),
        });
    }
    let mut vals: Vec<Option<Tensor>> = vec![None; graph.tensors().len()];
    let mut batch_factor = 1usize;
    for (k, (&id, t)) in graph.inputs().iter().zip(inputs).enumerate() {
        let info = graph
            .get_tensor(id)
            .ok_or_else(|| RunError::Invalid(format!("bad input handle {id}")))?;
        let bad = || RunError::InputShape {
            name: info.name.clone(),
            expected: info.shape.clone(),
            found: t.shape.clone(),
        };
        if numel(&t.shape) != t.data.len() {
            return Err(RunError::InputData(info.name.clone()));
        }
        if t.shape.len() != info.shape.len() || t.shape.iter().skip(1).ne(info.shape.iter().skip(1))
        {
            return Err(bad());
        }
        if let (Some(&a), Some(&e)) = (t.shape.first(), info.shape.first()) {
            if a != e {
                if e == 0 || a % e != 0 || (k > 0 && a / e != batch_factor) {
                    return Err(bad());
                }
                batch_factor = a / e;
            }
        }
        vals[id.index()] = Some(t.clone());
    }
    let order = graph
        .topo_order()
        .map_err(|n| RunError::Invalid(format!("cycle through node {}", n.index())))?;
    for (t, c) in vals.iter_mut().zip(graph.tensors()) {
        if t.is_none() {
            t.clone_from(&c.value);
        }
    }
    propagate(graph, &order, &mut vals, batch_factor, |_| true).map_err(|(n, source)| {
        let node = graph.node(n);
        RunError::Shape {
            node: node.name.clone(),
            op: node.op.name(),
            source,
        }
    })?;
    graph
        .outputs()
        .iter()
        .map(|&t| {
            lookup(graph, &vals, t)
                .cloned()
                .ok_or_else(|| RunError::Invalid(format!("output {t} was not computed")))
        })
        .collect()
}

fn lookup<'a>(graph: &'a Graph, vals: &'a [Option<Tensor>], t: TensorId) -> Option<&'a Tensor> {
    match graph.get_tensor(t)?.value.as_ref() {
        Some(v) => Some(v),
        None => vals.get(t.index())?.as_ref(),
    }
}

/// The one interpreter loop (reference run, constant folding, calibration): evaluates, in
/// `order`, every node that `wanted` accepts and whose inputs all have values in `vals`
/// (indexed by tensor arena index), storing its outputs there; returns the evaluated nodes.
/// A node with an unknown input is skipped, so its outputs stay unknown.
///
/// # Errors
/// The node whose op failed on its operands, and why.
pub fn propagate(
    graph: &Graph,
    order: &[NodeId],
    vals: &mut [Option<Tensor>],
    batch_factor: usize,
    mut wanted: impl FnMut(&Node) -> bool,
) -> Result<Vec<NodeId>, (NodeId, ShapeError)> {
    let mut done = Vec::new();
    for &n in order {
        let node = graph.node(n);
        if !wanted(node) {
            continue;
        }
        let args: Option<Vec<&Tensor>> = node
            .inputs
            .iter()
            .map(|t| vals.get(t.index()).and_then(Option::as_ref))
            .collect();
        let Some(args) = args else { continue };
        let outs = eval(&node.op, &args, batch_factor).map_err(|e| (n, e))?;
        for (t, v) in node.outputs.iter().zip(outs) {
            if let Some(slot) = vals.get_mut(t.index()) {
                *slot = Some(v);
            }
        }
        done.push(n);
    }
    Ok(done)
}

/// Evaluates one op on concrete operands. `batch_factor` scales axis 0 of `Reshape` targets.
pub fn eval(op: &Op, args: &[&Tensor], batch_factor: usize) -> Result<Vec<Tensor>, ShapeError> {
    let op_for_shape;
    let op_ref = match op {
        Op::Reshape { shape } if batch_factor != 1 && !shape.is_empty() => {
            let mut s = shape.clone();
            s[0] *= batch_factor;
            op_for_shape = Op::Reshape { shape: s };
            &op_for_shape
        }
        _ => op,
    };
    let shapes: Vec<&[usize]> = args.iter().map(|a| a.shape.as_slice()).collect();
    let mut out_shapes = infer(op_ref, &shapes)?;
    let out_shape = out_shapes.swap_remove(0);
    let x = args[0];
    let data = match op_ref {
        Op::Conv {
            kernel,
            strides,
            pads,
            dilations,
            group,
        } => conv(
            args, *kernel, *strides, *pads, *dilations, *group, &out_shape,
        ),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => gemm(args, *alpha, *beta, *trans_a, *trans_b, &out_shape)?,
        Op::MatMul => matmul(x, args[1], &out_shape)?,
        Op::Add => binary(x, args[1], &out_shape, |a, b| a + b),
        Op::Sub => binary(x, args[1], &out_shape, |a, b| a - b),
        Op::Mul => binary(x, args[1], &out_shape, |a, b| a * b),
        Op::Div => binary(x, args[1], &out_shape, |a, b| a / b),
        Op::Sum => {
            let mut acc = Tensor {
                shape: out_shape.clone(),
                data: expand(x, &out_shape),
            };
            for a in &args[1..] {
                acc.data = binary(&acc, a, &out_shape, |p, q| p + q);
            }
            acc.data
        }
        Op::BatchNorm { epsilon } => {
            let c = x.shape[1];
            let inner = numel(&x.shape[2..]);
            let (sc, bi, me, va) = (&args[1].data, &args[2].data, &args[3].data, &args[4].data);
            let mut out = x.data.clone();
            for (i, chunk) in out.chunks_mut(inner.max(1)).enumerate() {
                let ch = i % c;
                let g = sc[ch] / (va[ch] + epsilon).sqrt();
                let b = bi[ch] - me[ch] * g;
                chunk.iter_mut().for_each(|v| *v = *v * g + b);
            }
            out
        }
        Op::AvgPool {
            kernel,
            strides,
            pads,
            count_include_pad,
            ..
        } => pool(
            x,
            *kernel,
            *strides,
            *pads,
            &out_shape,
            PoolKind::Avg {
                count_include_pad: *count_include_pad,
            },
        ),
        Op::MaxPool {
            kernel,
            strides,
            pads,
            ..
        } => pool(x, *kernel, *strides, *pads, &out_shape, PoolKind::Max),
        Op::GlobalAvgPool => {
            let inner = numel(&x.shape[2..]).max(1);
            x.data
                .chunks(inner)
                .map(|c| c.iter().sum::<f32>() / inner as f32)
                .collect()
        }
        Op::Relu => x.data.iter().map(|&v| v.max(0.0)).collect(),
        Op::Clip { min, max } => x.data.iter().map(|&v| v.max(*min).min(*max)).collect(),
        Op::LeakyRelu { alpha } => x
            .data
            .iter()
            .map(|&v| if v < 0.0 { alpha * v } else { v })
            .collect(),
        Op::Sigmoid => x.data.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
        Op::Flatten { .. }
        | Op::Reshape { .. }
        | Op::Squeeze { .. }
        | Op::Unsqueeze { .. }
        | Op::Identity
        | Op::Dropout => x.data.clone(),
        Op::Transpose { perm } => transpose(x, perm),
        Op::Concat { axis } => concat(args, *axis, &out_shape)?,
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => slice(x, &slice_indices(&x.shape, axes, starts, ends, steps)?),
        Op::Pad { pads, value } => pad(x, pads, *value, &out_shape),
        Op::Softmax { axis } => softmax(x, norm_axis(*axis, x.rank(), false)?),
        Op::ArgMax { axis, .. } => argmax(x, norm_axis(*axis, x.rank(), false)?),
    };
    Ok(vec![Tensor {
        shape: out_shape,
        data,
    }])
}

/// Broadcast-aware strides of `shape` viewed as `out` (0 on broadcast axes).
fn bstrides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                s[i - off]
            }
        })
        .collect()
}

/// Calls `f(out_index, a_offset, b_offset)` for each element of `out` in row-major order.
fn walk2(out: &[usize], sa: &[usize], sb: &[usize], mut f: impl FnMut(usize, usize, usize)) {
    let n = numel(out);
    if n == 0 {
        return;
    }
    let r = out.len();
    let mut idx = vec![0usize; r];
    let (mut oa, mut ob) = (0usize, 0usize);
    for i in 0..n {
        f(i, oa, ob);
        for d in (0..r).rev() {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out[d] {
                break;
            }
            oa -= sa[d] * out[d];
            ob -= sb[d] * out[d];
            idx[d] = 0;
        }
    }
}

fn binary(a: &Tensor, b: &Tensor, out: &[usize], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    if a.shape == b.shape {
        return a.data.iter().zip(&b.data).map(|(&p, &q)| f(p, q)).collect();
    }
    if b.data.len() == 1 && a.shape == out {
        return a.data.iter().map(|&p| f(p, b.data[0])).collect();
    }
    let mut v = vec![0.0; numel(out)];
    walk2(
        out,
        &bstrides(&a.shape, out),
        &bstrides(&b.shape, out),
        |i, p, q| v[i] = f(a.data[p], b.data[q]),
    );
    v
}

fn expand(a: &Tensor, out: &[usize]) -> Vec<f32> {
    if a.shape == out {
        return a.data.clone();
    }
    let mut v = vec![0.0; numel(out)];
    let sa = bstrides(&a.shape, out);
    walk2(out, &sa, &sa, |i, p, _| v[i] = a.data[p]);
    v
}

/// Conv of `args` = `[x, w]` or `[x, w, b]` (arity checked by shape inference).
fn conv(
    args: &[&Tensor],
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    dil: [usize; 2],
    group: usize,
    out_shape: &[usize],
) -> Vec<f32> {
    let (x, w, b) = (args[0], args[1], args.get(2).copied());
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (m, oh, ow) = (out_shape[1], out_shape[2], out_shape[3]);
    let cg = c / group;
    let mg = m / group;
    let [kh, kw] = kernel;
    let mut out = vec![0.0f32; n * m * oh * ow];
    for bi in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            let plane = &mut out[(bi * m + oc) * oh * ow..][..oh * ow];
            if let Some(b) = b {
                plane.fill(b.data[oc]);
            }
            for icg in 0..cg {
                let ic = g * cg + icg;
                let xin = &x.data[(bi * c + ic) * h * wd..][..h * wd];
                for ki in 0..kh {
                    for kj in 0..kw {
                        let wv = w.data[((oc * cg + icg) * kh + ki) * kw + kj];
                        if wv == 0.0 {
                            continue;
                        }
                        // iw = ow*s + kj*d - pl must lie in [0, wd).
                        let shift = (kj * dil[1]) as isize - pads[1] as isize;
                        let lo = if shift >= 0 {
                            0
                        } else {
                            ((-shift) as usize).div_ceil(stride[1])
                        };
                        let hi = if (wd as isize) - shift <= 0 {
                            0
                        } else {
                            (((wd as isize - shift) as usize).div_ceil(stride[1])).min(ow)
                        };
                        for r in 0..oh {
                            let ih = (r * stride[0] + ki * dil[0]) as isize - pads[0] as isize;
                            if ih < 0 || ih >= h as isize {
                                continue;
                            }
                            let row = &xin[ih as usize * wd..][..wd];
                            let orow = &mut plane[r * ow..][..ow];
                            for (q, o) in orow.iter_mut().enumerate().take(hi).skip(lo) {
                                *o += wv * row[((q * stride[1]) as isize + shift) as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Gemm of `args` = `[a, b]` or `[a, b, c]` (arity checked by shape inference).
fn gemm(
    args: &[&Tensor],
    alpha: f32,
    beta: f32,
    ta: bool,
    tb: bool,
    out: &[usize],
) -> Result<Vec<f32>, ShapeError> {
    let (a, b, c) = (args[0], args[1], args.get(2).copied());
    let (m, n) = (out[0], out[1]);
    let k = if ta { a.shape[0] } else { a.shape[1] };
    let mut v = match c {
        Some(c) if beta != 0.0 => expand(c, out).into_iter().map(|x| x * beta).collect(),
        _ => vec![0.0; m * n],
    };
    let at = |i: usize, p: usize| {
        if ta {
            a.data[p * m + i]
        } else {
            a.data[i * k + p]
        }
    };
    for i in 0..m {
        let row = &mut v[i * n..][..n];
        for p in 0..k {
            let av = alpha * at(i, p);
            if tb {
                for (j, o) in row.iter_mut().enumerate() {
                    *o += av * b.data[j * k + p];
                }
            } else {
                for (o, &bv) in row.iter_mut().zip(&b.data[p * n..][..n]) {
                    *o += av * bv;
                }
            }
        }
    }
    Ok(v)
}

fn matmul(a: &Tensor, b: &Tensor, out: &[usize]) -> Result<Vec<f32>, ShapeError> {
    let a2 = if a.rank() == 1 {
        vec![1, a.shape[0]]
    } else {
        a.shape.clone()
    };
    let b2 = if b.rank() == 1 {
        vec![b.shape[0], 1]
    } else {
        b.shape.clone()
    };
    let (ra, rb) = (a2.len(), b2.len());
    let (m, k, n) = (a2[ra - 2], a2[ra - 1], b2[rb - 1]);
    let batch = broadcast(&a2[..ra - 2], &b2[..rb - 2])?;
    let sa = bstrides(&a2[..ra - 2], &batch);
    let sb = bstrides(&b2[..rb - 2], &batch);
    let mut v = vec![0.0; numel(out)];
    walk2(&batch, &sa, &sb, |bi, oa, ob| {
        let ad = &a.data[oa * m * k..][..m * k];
        let bd = &b.data[ob * k * n..][..k * n];
        let o = &mut v[bi * m * n..][..m * n];
        for i in 0..m {
            for p in 0..k {
                let av = ad[i * k + p];
                for (oj, &bv) in o[i * n..][..n].iter_mut().zip(&bd[p * n..][..n]) {
                    *oj += av * bv;
                }
            }
        }
    });
    Ok(v)
}

enum PoolKind {
    Avg { count_include_pad: bool },
    Max,
}

fn pool(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    out_shape: &[usize],
    kind: PoolKind,
) -> Vec<f32> {
    let (h, w) = (x.shape[2] as isize, x.shape[3] as isize);
    let (oh, ow) = (out_shape[2], out_shape[3]);
    let planes = x.shape[0] * x.shape[1];
    let mut out = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let xin = &x.data[p * (h * w) as usize..][..(h * w) as usize];
        for r in 0..oh {
            let h0 = (r * stride[0]) as isize - pads[0] as isize;
            for q in 0..ow {
                let w0 = (q * stride[1]) as isize - pads[1] as isize;
                let (mut acc, mut cnt, mut mx) = (0.0f32, 0usize, f32::NEG_INFINITY);
                // The window, clipped to the padded input (ceil_mode windows may overhang it).
                let h_end = (h0 + kernel[0] as isize).min(h + pads[2] as isize);
                let w_end = (w0 + kernel[1] as isize).min(w + pads[3] as isize);
                let padded_cnt = ((h_end - h0) * (w_end - w0)).max(0) as usize;
                for i in h0.max(0)..h_end.min(h) {
                    for j in w0.max(0)..w_end.min(w) {
                        let v = xin[(i * w + j) as usize];
                        acc += v;
                        cnt += 1;
                        mx = mx.max(v);
                    }
                }
                out.push(match kind {
                    PoolKind::Max => mx,
                    PoolKind::Avg {
                        count_include_pad: true,
                    } => acc / padded_cnt.max(1) as f32,
                    PoolKind::Avg {
                        count_include_pad: false,
                    } => acc / cnt.max(1) as f32,
                });
            }
        }
    }
    out
}

fn transpose(x: &Tensor, perm: &[usize]) -> Vec<f32> {
    let out: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let s = strides(&x.shape);
    let sp: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let mut v = vec![0.0; x.len()];
    walk2(&out, &sp, &sp, |i, o, _| v[i] = x.data[o]);
    v
}

fn concat(args: &[&Tensor], axis: i64, out: &[usize]) -> Result<Vec<f32>, ShapeError> {
    let a = norm_axis(axis, out.len(), false)?;
    let outer = numel(&out[..a]);
    let mut v = Vec::with_capacity(numel(out));
    for o in 0..outer {
        for t in args {
            let chunk = numel(&t.shape[a..]);
            v.extend_from_slice(&t.data[o * chunk..][..chunk]);
        }
    }
    Ok(v)
}

/// The elements of `x` at the per-axis indices `idx`, row-major.
fn slice(x: &Tensor, idx: &[Vec<usize>]) -> Vec<f32> {
    let shape: Vec<usize> = idx.iter().map(Vec::len).collect();
    let n = numel(&shape);
    let st = strides(&x.shape);
    let mut out = Vec::with_capacity(n);
    let mut pos = vec![0usize; shape.len()];
    for _ in 0..n {
        out.push(
            x.data[(0..pos.len())
                .map(|a| idx[a][pos[a]] * st[a])
                .sum::<usize>()],
        );
        for a in (0..pos.len()).rev() {
            pos[a] += 1;
            if pos[a] < shape[a] {
                break;
            }
            pos[a] = 0;
        }
    }
    out
}

fn pad(x: &Tensor, pads: &[i64], value: f32, out: &[usize]) -> Vec<f32> {
    let r = x.rank();
    let s = strides(&x.shape);
    let mut v = vec![value; numel(out)];
    let mut idx = vec![0usize; r];
    for o in v.iter_mut() {
        let mut off = 0usize;
        let mut inside = true;
        for d in 0..r {
            let i = idx[d] as i64 - pads[d];
            if i < 0 || i >= x.shape[d] as i64 {
                inside = false;
                break;
            }
            off += i as usize * s[d];
        }
        if inside {
            *o = x.data[off];
        }
        for d in (0..r).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    v
}

/// Iterates the 1-D fibers along `axis`: calls `f(base, stride, len)`.
fn fibers(shape: &[usize], axis: usize, mut f: impl FnMut(usize, usize, usize)) {
    let len = shape[axis];
    let inner = numel(&shape[axis + 1..]);
    let outer = numel(&shape[..axis]);
    for o in 0..outer {
        for i in 0..inner {
            f(o * len * inner + i, inner, len);
        }
    }
}

fn softmax(x: &Tensor, axis: usize) -> Vec<f32> {
    let mut v = x.data.clone();
    fibers(&x.shape, axis, |base, st, len| {
        let mx = (0..len)
            .map(|k| v[base + k * st])
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for k in 0..len {
            let e = (v[base + k * st] - mx).exp();
            v[base + k * st] = e;
            sum += e;
        }
        for k in 0..len {
            v[base + k * st] /= sum;
        }
    });
    v
}

fn argmax(x: &Tensor, axis: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(x.len() / x.shape[axis].max(1));
    fibers(&x.shape, axis, |base, st, len| {
        let mut best = 0;
        for k in 1..len {
            if x.data[base + k * st] > x.data[base + best * st] {
                best = k;
            }
        }
        v.push(best as f32);
    });
    v
}
