//! `Transpose`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Transpose` (default permutation: reverse the axes).
pub fn transpose(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let rank = ctx.shape(x).len();
    let perm = match node.ints("perm")? {
        Some(p) => {
            if p.iter().any(|&v| v < 0) {
                return Err(node.unsupported("perm", format!("{p:?}"), "a permutation of 0..rank"));
            }
            p.iter().map(|&v| v as usize).collect()
        }
        None => (0..rank).rev().collect(),
    };
    ctx.emit(node, Op::Transpose { perm }, vec![x])?;
    Ok(())
}
