//! `Slice`: constant data is folded at import (exporters slice shapes and pads); on activations
//! it becomes [`Op::Slice`] (e.g. ShuffleNet v2's channel split), which the HE side lowers as
//! data movement (a channel gather when whole planes move); the partition refuses slicing the
//! batch axis.

use mp2ml_ir::op::Op;
use mp2ml_ir::shape::norm_axis;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Slice` (attributes before opset 10, constant inputs from opset 10 on).
pub fn slice(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let (starts, ends, axes, steps) = if node.opset() < 10 {
        (
            node.ints("starts")?,
            node.ints("ends")?,
            node.ints("axes")?,
            None,
        )
    } else {
        (
            ctx.const_ints(node, 1, "starts")?,
            ctx.const_ints(node, 2, "ends")?,
            ctx.const_ints(node, 3, "axes")?,
            ctx.const_ints(node, 4, "steps")?,
        )
    };
    let starts = starts.ok_or_else(|| node.invalid("missing starts"))?;
    let ends = ends.ok_or_else(|| node.invalid("missing ends"))?;
    if ends.len() != starts.len() {
        return Err(node.invalid(format!(
            "starts {starts:?} and ends {ends:?} differ in length"
        )));
    }
    let rank = ctx.shape(x).len();
    let axes = match axes {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, rank, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ImportError::Shape {
                at: node.loc.clone(),
                source,
            })?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]); // ONNX: steps of 1 when absent
    ctx.emit(
        node,
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        },
        vec![x],
    )?;
    Ok(())
}
