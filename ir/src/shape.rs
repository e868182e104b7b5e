//! Shapes and per-op shape inference, shared by validation, import and the reference executor.

use thiserror::Error;

use crate::op::Op;

/// A concrete tensor shape, outermost dimension first.
pub type Shape = Vec<usize>;

/// Number of elements of a shape (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Why an op's output shape cannot be computed from its input shapes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ShapeError {
    /// Wrong number of inputs.
    #[error("expected {expected} input(s), found {found}")]
    Arity {
        /// Accepted count, e.g. "2" or "2 or 3".
        expected: &'static str,
        /// Actual count.
        found: usize,
    },
    /// An input has the wrong rank.
    #[error("input {input} must have rank {expected}, found shape {found:?}")]
    Rank {
        /// Input position.
        input: usize,
        /// Accepted rank description.
        expected: String,
        /// Actual shape.
        found: Shape,
    },
    /// Shapes that must agree do not.
    #[error("incompatible shapes {a:?} and {b:?}: {why}")]
    Mismatch {
        /// First shape.
        a: Shape,
        /// Second shape.
        b: Shape,
        /// Explanation.
        why: &'static str,
    },
    /// An axis attribute is outside the rank.
    #[error("axis {axis} out of range for rank {rank}")]
    Axis {
        /// The axis (normalized when possible).
        axis: i64,
        /// Input rank.
        rank: usize,
    },
    /// Any other invalid attribute/shape combination.
    #[error("{0}")]
    Invalid(String),
}

/// Normalizes a possibly negative axis (counted from `rank`) to `0..rank`, or `0..=rank` when
/// `inclusive` (e.g. Flatten's split point).
pub fn norm_axis(axis: i64, rank: usize, inclusive: bool) -> Result<usize, ShapeError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    let hi = if inclusive { r } else { r - 1 };
    if a < 0 || a > hi {
        return Err(ShapeError::Axis { axis, rank });
    }
    Ok(a as usize)
}

/// The input indices an ONNX `Slice` keeps along every axis of `shape` (all of them on axes
/// not listed). Per listed axis: a negative start or end counts from the end; then, for a
/// positive step, start and end clamp to `0..=dim` and the indices are `start, start + step,
/// …` below `end`; for a negative step they clamp to `-1..=dim - 1` (start at most `dim - 1`)
/// and the indices run down above `end` (ONNX operator spec, Slice-13).
pub fn slice_indices(
    shape: &[usize],
    axes: &[usize],
    starts: &[i64],
    ends: &[i64],
    steps: &[i64],
) -> Result<Vec<Vec<usize>>, ShapeError> {
    if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
        return Err(ShapeError::Invalid(format!(
            "slice axes {axes:?}, starts {starts:?}, ends {ends:?} and steps {steps:?} differ in length"
        )));
    }
    let mut idx: Vec<Vec<usize>> = shape.iter().map(|&d| (0..d).collect()).collect();
    let mut seen = vec![false; shape.len()];
    for (k, &a) in axes.iter().enumerate() {
        if a >= shape.len() || seen[a] {
            return Err(ShapeError::Invalid(format!(
                "slice axes {axes:?} must be distinct axes below rank {}",
                shape.len()
            )));
        }
        seen[a] = true;
        let d = shape[a] as i64;
        let step = steps[k];
        if step == 0 {
            return Err(ShapeError::Invalid("slice step 0".into()));
        }
        let from_end = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let mut list = Vec::new();
        if step > 0 {
            let (mut i, e) = (
                from_end(starts[k]).clamp(0, d),
                from_end(ends[k]).clamp(0, d),
            );
            while i < e {
                list.push(i as usize);
                i += step;
            }
        } else {
            let (mut i, e) = (
                from_end(starts[k]).clamp(0, d - 1),
                from_end(ends[k]).clamp(-1, d - 1),
            );
            while i > e {
                list.push(i as usize);
                i += step;
            }
        }
        idx[a] = list;
    }
    Ok(idx)
}

/// Numpy-style multidirectional broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Shape, ShapeError> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(ShapeError::Mismatch {
                a: a.to_vec(),
                b: b.to_vec(),
                why: "not broadcastable",
            });
        };
    }
    Ok(out)
}

/// Output spatial size of a sliding window.
fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    (pad_begin, pad): (usize, usize),
    dilation: usize,
    ceil: bool,
) -> Result<usize, ShapeError> {
    let eff = dilation * (kernel.max(1) - 1) + 1;
    let padded = input + pad;
    if padded < eff || stride == 0 {
        return Err(ShapeError::Invalid(format!(
            "window of extent {eff} does not fit padded input {padded} (stride {stride})"
        )));
    }
    let span = padded - eff;
    let mut out = if ceil {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    // In ceil mode a last window that would start in the end padding is dropped.
    if ceil && (out - 1) * stride >= input + pad_begin {
        out -= 1;
    }
    Ok(out)
}

fn arity(
    inputs: &[&[usize]],
    lo: usize,
    hi: usize,
    expected: &'static str,
) -> Result<(), ShapeError> {
    if inputs.len() < lo || inputs.len() > hi {
        return Err(ShapeError::Arity {
            expected,
            found: inputs.len(),
        });
    }
    Ok(())
}

fn rank_at_least(inputs: &[&[usize]], i: usize, r: usize) -> Result<(), ShapeError> {
    if inputs[i].len() < r {
        return Err(ShapeError::Rank {
            input: i,
            expected: format!(">= {r}"),
            found: inputs[i].to_vec(),
        });
    }
    Ok(())
}

/// Pooling output shape for `[N, C, spatial...]` input (2-D windows).
fn pool_shape(
    x: &[usize],
    kernel: &[usize; 2],
    strides: &[usize; 2],
    pads: &[usize; 4],
    dilations: &[usize; 2],
    ceil: bool,
) -> Result<Shape, ShapeError> {
    if x.len() != 4 {
        return Err(ShapeError::Rank {
            input: 0,
            expected: "4 (N,C,H,W)".into(),
            found: x.to_vec(),
        });
    }
    let h = window_out(
        x[2],
        kernel[0],
        strides[0],
        (pads[0], pads[0] + pads[2]),
        dilations[0],
        ceil,
    )?;
    let w = window_out(
        x[3],
        kernel[1],
        strides[1],
        (pads[1], pads[1] + pads[3]),
        dilations[1],
        ceil,
    )?;
    Ok(vec![x[0], x[1], h, w])
}

/// Computes the output shapes of `op` from its input shapes.
pub fn infer(op: &Op, inputs: &[&[usize]]) -> Result<Vec<Shape>, ShapeError> {
    use Op::*;
    let one = |s: Shape| Ok(vec![s]);
    match op {
        Conv {
            kernel,
            strides,
            pads,
            dilations,
            group,
        } => {
            arity(inputs, 2, 3, "2 or 3")?;
            let (x, w) = (inputs[0], inputs[1]);
            if x.len() != 4 || w.len() != 4 {
                return Err(ShapeError::Rank {
                    input: 0,
                    expected: "4 for x and W".into(),
                    found: x.to_vec(),
                });
            }
            let g = *group;
            if g == 0 || x[1] != w[1] * g || w[0] % g != 0 {
                return Err(ShapeError::Mismatch {
                    a: x.to_vec(),
                    b: w.to_vec(),
                    why: "channels do not match W and group",
                });
            }
            if [w[2], w[3]] != *kernel {
                return Err(ShapeError::Mismatch {
                    a: kernel.to_vec(),
                    b: w.to_vec(),
                    why: "kernel_shape differs from W",
                });
            }
            if let Some(b) = inputs.get(2) {
                if *b != [w[0]] {
                    return Err(ShapeError::Mismatch {
                        a: b.to_vec(),
                        b: w.to_vec(),
                        why: "bias must be [M]",
                    });
                }
            }
            let mut s = pool_shape(x, kernel, strides, pads, dilations, false)?;
            s[1] = w[0];
            one(s)
        }
        Gemm {
            trans_a, trans_b, ..
        } => {
            arity(inputs, 2, 3, "2 or 3")?;
            let (a, b) = (inputs[0], inputs[1]);
            if a.len() != 2 || b.len() != 2 {
                return Err(ShapeError::Rank {
                    input: 0,
                    expected: "2 for A and B".into(),
                    found: a.to_vec(),
                });
            }
            let (m, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
            let (k2, n) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
            if k != k2 {
                return Err(ShapeError::Mismatch {
                    a: a.to_vec(),
                    b: b.to_vec(),
                    why: "inner dimensions differ",
                });
            }
            if let Some(c) = inputs.get(2) {
                let bc = broadcast(c, &[m, n])?;
                if bc != [m, n] {
                    return Err(ShapeError::Mismatch {
                        a: c.to_vec(),
                        b: vec![m, n],
                        why: "C must broadcast to [M,N]",
                    });
                }
            }
            one(vec![m, n])
        }
        MatMul => {
            arity(inputs, 2, 2, "2")?;
            let (a, b) = (inputs[0], inputs[1]);
            if a.is_empty() || b.is_empty() {
                return Err(ShapeError::Invalid("MatMul of a scalar".into()));
            }
            let a2 = if a.len() == 1 {
                vec![1, a[0]]
            } else {
                a.to_vec()
            };
            let b2 = if b.len() == 1 {
                vec![b[0], 1]
            } else {
                b.to_vec()
            };
            let (ra, rb) = (a2.len(), b2.len());
            if a2[ra - 1] != b2[rb - 2] {
                return Err(ShapeError::Mismatch {
                    a: a.to_vec(),
                    b: b.to_vec(),
                    why: "inner dimensions differ",
                });
            }
            let mut s = broadcast(&a2[..ra - 2], &b2[..rb - 2])?;
            if a.len() > 1 {
                s.push(a2[ra - 2]);
            }
            if b.len() > 1 {
                s.push(b2[rb - 1]);
            }
            one(s)
        }
        Add | Sub | Mul | Div | Sum => {
            if inputs.is_empty() || (!matches!(op, Sum) && inputs.len() != 2) {
                return Err(ShapeError::Arity {
                    expected: if matches!(op, Sum) { ">= 1" } else { "2" },
                    found: inputs.len(),
                });
            }
            let mut s = inputs[0].to_vec();
            for i in &inputs[1..] {
                s = broadcast(&s, i)?;
            }
            one(s)
        }
        BatchNorm { .. } => {
            arity(inputs, 5, 5, "5")?;
            rank_at_least(inputs, 0, 2)?;
            let c = inputs[0][1];
            for (i, p) in inputs[1..].iter().enumerate() {
                if *p != [c] {
                    return Err(ShapeError::Rank {
                        input: i + 1,
                        expected: format!("[{c}]"),
                        found: p.to_vec(),
                    });
                }
            }
            one(inputs[0].to_vec())
        }
        AvgPool {
            kernel,
            strides,
            pads,
            ceil_mode,
            ..
        }
        | MaxPool {
            kernel,
            strides,
            pads,
            ceil_mode,
        } => {
            arity(inputs, 1, 1, "1")?;
            one(pool_shape(
                inputs[0],
                kernel,
                strides,
                pads,
                &[1, 1],
                *ceil_mode,
            )?)
        }
        GlobalAvgPool => {
            arity(inputs, 1, 1, "1")?;
            rank_at_least(inputs, 0, 3)?;
            let mut s = inputs[0].to_vec();
            for d in s.iter_mut().skip(2) {
                *d = 1;
            }
            one(s)
        }
        Relu | Clip { .. } | LeakyRelu { .. } | Sigmoid | Identity | Dropout => {
            arity(inputs, 1, 1, "1")?;
            one(inputs[0].to_vec())
        }
        Softmax { axis } => {
            arity(inputs, 1, 1, "1")?;
            norm_axis(*axis, inputs[0].len(), false)?;
            one(inputs[0].to_vec())
        }
        ArgMax { axis, keepdims } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            let a = norm_axis(*axis, x.len(), false)?;
            let mut s = x.to_vec();
            if *keepdims {
                s[a] = 1;
            } else {
                s.remove(a);
            }
            one(s)
        }
        Flatten { axis } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            let a = norm_axis(*axis, x.len(), true)?;
            one(vec![numel(&x[..a]), numel(&x[a..])])
        }
        Reshape { shape } => {
            arity(inputs, 1, 1, "1")?;
            if numel(shape) != numel(inputs[0]) {
                return Err(ShapeError::Mismatch {
                    a: inputs[0].to_vec(),
                    b: shape.clone(),
                    why: "element counts differ",
                });
            }
            one(shape.clone())
        }
        Transpose { perm } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            let mut seen = vec![false; x.len()];
            if perm.len() != x.len() {
                return Err(ShapeError::Invalid(format!(
                    "perm {perm:?} does not match rank {}",
                    x.len()
                )));
            }
            for &p in perm {
                if p >= x.len() || seen[p] {
                    return Err(ShapeError::Invalid(format!(
                        "perm {perm:?} is not a permutation"
                    )));
                }
                seen[p] = true;
            }
            one(perm.iter().map(|&p| x[p]).collect())
        }
        Concat { axis } => {
            if inputs.is_empty() {
                return Err(ShapeError::Arity {
                    expected: ">= 1",
                    found: 0,
                });
            }
            let first = inputs[0];
            let a = norm_axis(*axis, first.len(), false)?;
            let mut s = first.to_vec();
            for i in &inputs[1..] {
                if i.len() != first.len()
                    || i.iter().enumerate().any(|(d, &v)| d != a && v != first[d])
                {
                    return Err(ShapeError::Mismatch {
                        a: first.to_vec(),
                        b: i.to_vec(),
                        why: "concat operands differ off the axis",
                    });
                }
                s[a] += i[a];
            }
            one(s)
        }
        Slice {
            axes,
            starts,
            ends,
            steps,
        } => {
            arity(inputs, 1, 1, "1")?;
            let idx = slice_indices(inputs[0], axes, starts, ends, steps)?;
            one(idx.iter().map(Vec::len).collect())
        }
        Pad { pads, .. } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            if pads.len() != 2 * x.len() {
                return Err(ShapeError::Invalid(format!(
                    "pads {pads:?} must have 2*rank = {} entries",
                    2 * x.len()
                )));
            }
            let mut s = Vec::with_capacity(x.len());
            for (i, &d) in x.iter().enumerate() {
                let v = d as i64 + pads[i] + pads[i + x.len()];
                if v < 0 {
                    return Err(ShapeError::Invalid(format!(
                        "pads {pads:?} crop axis {i} below zero"
                    )));
                }
                s.push(v as usize);
            }
            one(s)
        }
        Squeeze { axes } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            let mut drop = vec![false; x.len()];
            if axes.is_empty() {
                for (i, &d) in x.iter().enumerate() {
                    drop[i] = d == 1;
                }
            }
            for &a in axes {
                let a = norm_axis(a, x.len(), false)?;
                if x[a] != 1 {
                    return Err(ShapeError::Invalid(format!(
                        "cannot squeeze axis {a} of size {}",
                        x[a]
                    )));
                }
                drop[a] = true;
            }
            one(x
                .iter()
                .zip(drop)
                .filter(|(_, d)| !d)
                .map(|(&v, _)| v)
                .collect())
        }
        Unsqueeze { axes } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            let r = x.len() + axes.len();
            let mut ins = vec![false; r];
            for &a in axes {
                let a = norm_axis(a, r, false)?;
                if ins[a] {
                    return Err(ShapeError::Invalid(format!("duplicate unsqueeze axis {a}")));
                }
                ins[a] = true;
            }
            let mut it = x.iter();
            one(ins
                .iter()
                .map(|&b| {
                    if b {
                        1
                    } else {
                        it.next().copied().unwrap_or(1)
                    }
                })
                .collect())
        }
    }
}
