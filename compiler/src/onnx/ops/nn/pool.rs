//! `AveragePool`, `MaxPool`, `GlobalAveragePool`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;
use super::{kernel, require_4d, window, Window};

fn pool_window(
    ctx: &Ctx,
    node: &NodeRef,
) -> Result<(mp2ml_ir::tensor::TensorId, [usize; 2], Window, bool), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let xs = ctx.shape(x).to_vec();
    require_4d(node, &xs)?;
    let k = kernel(node, None)?;
    let win = window(node, &xs[2..], k)?;
    if win.dilations != [1, 1] {
        return Err(node.unsupported(
            "dilations",
            format!("{:?}", win.dilations),
            "dilations [1,1] for pooling",
        ));
    }
    let ceil = node.int_or("ceil_mode", 0)? != 0;
    Ok((x, k, win, ceil))
}

/// Builds `AveragePool`.
pub fn average_pool(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let (x, kernel, win, ceil_mode) = pool_window(ctx, node)?;
    let count_include_pad = node.int_or("count_include_pad", 0)? != 0;
    let op = Op::AvgPool {
        kernel,
        strides: win.strides,
        pads: win.pads,
        count_include_pad,
        ceil_mode,
    };
    ctx.emit(node, op, vec![x])?;
    Ok(())
}

/// Builds `MaxPool` (the optional `Indices` output is not supported).
pub fn max_pool(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    if node.pb.output.get(1).is_some_and(|o| !o.is_empty()) {
        return Err(node.unsupported(
            "output",
            "Indices",
            "MaxPool with a single output (no Indices)",
        ));
    }
    let (x, kernel, win, ceil_mode) = pool_window(ctx, node)?;
    let op = Op::MaxPool {
        kernel,
        strides: win.strides,
        pads: win.pads,
        ceil_mode,
    };
    ctx.emit(node, op, vec![x])?;
    Ok(())
}

/// Builds `GlobalAveragePool`.
pub fn global_average_pool(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    ctx.emit(node, Op::GlobalAvgPool, vec![x])?;
    Ok(())
}

/// Builds `ReduceMean` over the two spatial axes of a 4-D tensor (`x.mean([2, 3])`, as
/// torchvision's ShuffleNet ends) as `GlobalAveragePool`, followed by a `Flatten` when
/// `keepdims = 0`. Other axes are refused.
pub fn reduce_mean(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let xs = ctx.shape(x).to_vec();
    require_4d(node, &xs)?;
    let axes = if node.opset() >= 18 {
        ctx.const_ints(node, 1, "axes")?
    } else {
        node.ints("axes")?
    };
    // No axes (ONNX: all of them) is refused below like any set other than [2, 3].
    let mut axes: Vec<i64> = axes
        .unwrap_or_default()
        .iter()
        .map(|&a| if a < 0 { a + 4 } else { a })
        .collect();
    axes.sort_unstable();
    if axes != [2, 3] {
        return Err(node.unsupported(
            "axes",
            format!("{axes:?}"),
            "the spatial axes [2, 3] of a 4-D tensor (a global average pool)",
        ));
    }
    if node.int_or("keepdims", 1)? != 0 {
        ctx.emit(node, Op::GlobalAvgPool, vec![x])?;
        return Ok(());
    }
    let out = node
        .pb
        .output
        .first()
        .ok_or_else(|| node.invalid("missing output #0"))?;
    let pooled = format!("{out}/global_average_pool");
    let p = ctx.emit_named(node, Op::GlobalAvgPool, vec![x], &[pooled])?;
    ctx.emit_named(node, Op::Flatten { axis: 1 }, p, std::slice::from_ref(out))?;
    Ok(())
}
