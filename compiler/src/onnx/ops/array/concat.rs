//! `Concat`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Concat`.
pub fn concat(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let axis = match node.int("axis")? {
        Some(a) => a,
        None if node.opset() < 4 => 1,
        None => return Err(node.invalid("missing attribute `axis`")),
    };
    let mut inputs = Vec::with_capacity(node.n_inputs());
    for i in 0..node.n_inputs() {
        if let Some(t) = ctx.input(node, i)? {
            inputs.push(t);
        }
    }
    ctx.emit(node, Op::Concat { axis }, inputs)?;
    Ok(())
}
