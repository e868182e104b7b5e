//! `Flatten`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Flatten`.
pub fn flatten(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let axis = node.int_or("axis", 1)?;
    ctx.emit(node, Op::Flatten { axis }, vec![x])?;
    Ok(())
}
