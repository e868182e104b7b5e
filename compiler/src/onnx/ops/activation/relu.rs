//! `Relu`, `LeakyRelu`, `Sigmoid`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

fn unary(ctx: &mut Ctx, node: &NodeRef, op: Op) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    ctx.emit(node, op, vec![x])?;
    Ok(())
}

/// Builds `Relu`.
pub fn relu(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    unary(ctx, node, Op::Relu)
}

/// Builds `LeakyRelu`.
pub fn leaky_relu(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let alpha = node.float("alpha")?.unwrap_or(0.01); // the ONNX default
    unary(ctx, node, Op::LeakyRelu { alpha })
}

/// Builds `Sigmoid`.
pub fn sigmoid(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    unary(ctx, node, Op::Sigmoid)
}
