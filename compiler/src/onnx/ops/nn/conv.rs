//! `Conv` (2-D, grouped, strided, dilated, padded or auto-padded).

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;
use super::{kernel, require_4d, window};

/// Builds `Conv`.
pub fn conv(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let w = ctx.req_input(node, 1)?;
    if !ctx.graph.is_const(w) {
        return Err(ImportError::NonConstant {
            at: node.loc.clone(),
            input: node.pb.input[1].clone(),
            what: "weights",
        });
    }
    let b = ctx.input(node, 2)?;
    if let Some(b) = b {
        if !ctx.graph.is_const(b) {
            return Err(ImportError::NonConstant {
                at: node.loc.clone(),
                input: node.pb.input[2].clone(),
                what: "bias",
            });
        }
    }
    let xs = ctx.shape(x).to_vec();
    require_4d(node, &xs)?;
    let ws = ctx.shape(w).to_vec();
    require_4d(node, &ws)?;
    let k = kernel(node, Some([ws[2], ws[3]]))?;
    let win = window(node, &xs[2..], k)?;
    let group = node.int_or("group", 1)?;
    if group < 1 {
        return Err(node.unsupported("group", group.to_string(), "a positive group count"));
    }
    let op = Op::Conv {
        kernel: k,
        strides: win.strides,
        pads: win.pads,
        dilations: win.dilations,
        group: group as usize,
    };
    let mut inputs = vec![x, w];
    inputs.extend(b);
    ctx.emit(node, op, inputs)?;
    Ok(())
}
