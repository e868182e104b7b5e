//! `Identity` and inference-mode `Dropout`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Identity`.
pub fn identity(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    ctx.emit(node, Op::Identity, vec![x])?;
    Ok(())
}

/// Builds `Dropout` as an identity (inference mode). The optional `mask` output is accepted
/// when nothing reads it (exporters often name it anyway); training mode and a mask that a
/// node or the graph's outputs read are refused.
pub fn dropout(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    if node.opset() >= 12 {
        if let Some(t) = ctx.const_input(node, 2, "training_mode")? {
            if t.data.iter().any(|&v| v != 0.0) {
                return Err(node.unsupported(
                    "training_mode",
                    "true",
                    "training_mode = false (inference)",
                ));
            }
        }
    }
    if ctx.output_is_read(node, 1) {
        return Err(node.unsupported(
            "output",
            format!("mask `{}` (read by the graph)", node.pb.output[1]),
            "Dropout whose mask output is absent or unused",
        ));
    }
    let x = ctx.req_input(node, 0)?;
    ctx.emit(node, Op::Dropout, vec![x])?;
    Ok(())
}
