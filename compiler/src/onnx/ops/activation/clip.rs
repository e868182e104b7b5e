//! `Clip` (bounds as attributes before opset 11, as constant inputs from 11 on).

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Clip`.
pub fn clip(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let (min, max) = if node.opset() < 11 {
        // ONNX: an absent bound does not clip.
        (
            node.float("min")?.unwrap_or(f32::NEG_INFINITY),
            node.float("max")?.unwrap_or(f32::INFINITY),
        )
    } else {
        let bound = |i, what, default| -> Result<f32, ImportError> {
            match ctx.const_input(node, i, what)? {
                None => Ok(default),
                Some(t) if t.len() == 1 => Ok(t.data[0]),
                Some(t) => Err(node.invalid(format!(
                    "{what} must be a scalar, found shape {:?}",
                    t.shape
                ))),
            }
        };
        (
            bound(1, "min", f32::NEG_INFINITY)?,
            bound(2, "max", f32::INFINITY)?,
        )
    };
    ctx.emit(node, Op::Clip { min, max }, vec![x])?;
    Ok(())
}
