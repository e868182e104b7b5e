//! `Gemm` and `MatMul`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Gemm`.
pub fn gemm(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let a = ctx.req_input(node, 0)?;
    let b = ctx.req_input(node, 1)?;
    let c = ctx.input(node, 2)?;
    let op = Op::Gemm {
        // The ONNX defaults.
        alpha: node.float("alpha")?.unwrap_or(1.0),
        beta: node.float("beta")?.unwrap_or(1.0),
        trans_a: node.int_or("transA", 0)? != 0,
        trans_b: node.int_or("transB", 0)? != 0,
    };
    let mut inputs = vec![a, b];
    inputs.extend(c);
    ctx.emit(node, op, inputs)?;
    Ok(())
}

/// Builds `MatMul`.
pub fn matmul(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let a = ctx.req_input(node, 0)?;
    let b = ctx.req_input(node, 1)?;
    ctx.emit(node, Op::MatMul, vec![a, b])?;
    Ok(())
}
