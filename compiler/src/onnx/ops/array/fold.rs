//! `ConstantOfShape` and `Slice`, supported on constant operands only (exporters emit them while
//! computing pads and shapes; the results are folded at import).

use mp2ml_ir::shape::{norm_axis, numel, strides};
use mp2ml_ir::tensor::Tensor;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `ConstantOfShape`.
pub fn constant_of_shape(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let shape = ctx
        .const_ints(node, 0, "shape")?
        .ok_or_else(|| node.invalid("missing shape"))?;
    if shape.iter().any(|&d| d < 0) {
        return Err(node.invalid(format!("negative dimension in {shape:?}")));
    }
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let v = node
        .tensor("value")?
        .and_then(|t| t.data.first().copied())
        .unwrap_or(0.0);
    let n = numel(&shape);
    ctx.bind_const(
        node,
        0,
        Tensor {
            shape,
            data: vec![v; n],
        },
    )
}

/// Builds `Slice` on a constant `data`.
pub fn slice(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let data = ctx
        .const_input(node, 0, "data (Slice is only folded on constants)")?
        .ok_or_else(|| node.invalid("missing data"))?;
    let (starts, ends, axes, steps) = if node.opset() < 10 {
        (
            node.ints("starts")?,
            node.ints("ends")?,
            node.ints("axes")?,
            None,
        )
    } else {
        (
            ctx.const_ints(node, 1, "starts")?,
            ctx.const_ints(node, 2, "ends")?,
            ctx.const_ints(node, 3, "axes")?,
            ctx.const_ints(node, 4, "steps")?,
        )
    };
    let starts = starts.ok_or_else(|| node.invalid("missing starts"))?;
    let ends = ends.ok_or_else(|| node.invalid("missing ends"))?;
    let r = data.rank();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    let mut idx: Vec<Vec<usize>> = data.shape.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts
        .len()
        .min(ends.len())
        .min(axes.len())
        .min(steps.len())
    {
        let a = norm_axis(axes[k], r, false).map_err(|source| ImportError::Shape {
            at: node.loc.clone(),
            source,
        })?;
        let d = data.shape[a] as i64;
        let step = steps[k];
        if step == 0 {
            return Err(node.invalid("slice step 0"));
        }
        let fix = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v + d } else { v };
            v.clamp(lo, hi)
        };
        let mut list = Vec::new();
        if step > 0 {
            let (mut i, e) = (fix(starts[k], 0, d), fix(ends[k], 0, d));
            while i < e {
                list.push(i as usize);
                i += step;
            }
        } else {
            let (mut i, e) = (fix(starts[k], 0, d - 1), fix(ends[k], -1, d - 1));
            while i > e {
                list.push(i as usize);
                i += step;
            }
        }
        idx[a] = list;
    }
    let shape: Vec<usize> = idx.iter().map(Vec::len).collect();
    let st = strides(&data.shape);
    let mut out = Vec::with_capacity(numel(&shape));
    let mut pos = vec![0usize; r];
    for _ in 0..numel(&shape) {
        out.push(data.data[(0..r).map(|a| idx[a][pos[a]] * st[a]).sum::<usize>()]);
        for a in (0..r).rev() {
            pos[a] += 1;
            if pos[a] < shape[a] {
                break;
            }
            pos[a] = 0;
        }
    }
    ctx.bind_const(node, 0, Tensor { shape, data: out })
}
