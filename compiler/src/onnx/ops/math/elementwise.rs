//! Broadcasting `Add`, `Sub`, `Mul`, `Div` and variadic `Sum`. Import accepts any operands; the
//! HE partition decides whether a product or quotient has a constant side.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

fn binary(ctx: &mut Ctx, node: &NodeRef, op: Op) -> Result<(), ImportError> {
    if node.attr("broadcast").is_some() || node.attr("axis").is_some() {
        return Err(node.unsupported(
            "broadcast/axis",
            "legacy attribute",
            "numpy broadcasting (opset >= 7)",
        ));
    }
    let a = ctx.req_input(node, 0)?;
    let b = ctx.req_input(node, 1)?;
    ctx.emit(node, op, vec![a, b])?;
    Ok(())
}

/// Builds `Add`.
pub fn add(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    binary(ctx, node, Op::Add)
}

/// Builds `Sub`.
pub fn sub(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    binary(ctx, node, Op::Sub)
}

/// Builds `Mul`.
pub fn mul(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    binary(ctx, node, Op::Mul)
}

/// Builds `Div`.
pub fn div(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    binary(ctx, node, Op::Div)
}

/// Builds `Sum`.
pub fn sum(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let mut inputs = Vec::with_capacity(node.n_inputs());
    for i in 0..node.n_inputs() {
        inputs.push(ctx.req_input(node, i)?);
    }
    if inputs.is_empty() {
        return Err(node.invalid("Sum needs at least one input"));
    }
    ctx.emit(node, Op::Sum, inputs)?;
    Ok(())
}
