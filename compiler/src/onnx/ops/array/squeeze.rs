//! `Squeeze` and `Unsqueeze` (axes as attribute before opset 13, as constant input from 13 on).

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

fn axes(ctx: &Ctx, node: &NodeRef) -> Result<Option<Vec<i64>>, ImportError> {
    if node.opset() < 13 {
        node.ints("axes")
    } else {
        ctx.const_ints(node, 1, "axes")
    }
}

/// Builds `Squeeze`.
pub fn squeeze(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    // ONNX: no axes squeezes every axis of size 1, which `Op::Squeeze` writes as `[]`.
    let axes = axes(ctx, node)?.unwrap_or_default();
    ctx.emit(node, Op::Squeeze { axes }, vec![x])?;
    Ok(())
}

/// Builds `Unsqueeze`.
pub fn unsqueeze(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let axes = axes(ctx, node)?.ok_or_else(|| node.invalid("missing `axes`"))?;
    ctx.emit(node, Op::Unsqueeze { axes }, vec![x])?;
    Ok(())
}
