//! `Pad` in constant mode (attributes before opset 11, constant inputs from 11 on, `axes` from 18).

use mp2ml_ir::op::Op;
use mp2ml_ir::shape::norm_axis;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Pad`.
pub fn pad(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let mode = node.string("mode")?.unwrap_or_else(|| "constant".into()); // the ONNX default
    if mode != "constant" {
        return Err(node.unsupported("mode", format!("{mode:?}"), "mode = \"constant\""));
    }
    let x = ctx.req_input(node, 0)?;
    let rank = ctx.shape(x).len();
    let (pads, value, axes) = if node.opset() < 11 {
        let pads = node
            .ints("pads")?
            .or(node.ints("paddings")?)
            .ok_or_else(|| node.invalid("missing `pads`"))?;
        (pads, node.float("value")?.unwrap_or(0.0), None) // ONNX: 0 when absent
    } else {
        let pads = ctx
            .const_ints(node, 1, "pads")?
            .ok_or_else(|| node.invalid("missing `pads` input"))?;
        let value = match ctx.const_input(node, 2, "constant_value")? {
            Some(t) if t.len() == 1 => t.data[0],
            Some(t) => {
                return Err(node.invalid(format!(
                    "constant_value must be a scalar, found {:?}",
                    t.shape
                )))
            }
            None => 0.0,
        };
        (pads, value, ctx.const_ints(node, 3, "axes")?)
    };
    let pads = match axes {
        None => pads,
        Some(axes) => {
            if pads.len() != 2 * axes.len() {
                return Err(node.invalid(format!("pads {pads:?} do not match axes {axes:?}")));
            }
            let mut full = vec![0i64; 2 * rank];
            for (k, &a) in axes.iter().enumerate() {
                let a = norm_axis(a, rank, false).map_err(|source| ImportError::Shape {
                    at: node.loc.clone(),
                    source,
                })?;
                full[a] = pads[k];
                full[a + rank] = pads[k + axes.len()];
            }
            full
        }
    };
    ctx.emit(node, Op::Pad { pads, value }, vec![x])?;
    Ok(())
}
