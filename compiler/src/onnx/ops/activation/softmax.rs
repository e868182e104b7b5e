//! `Softmax` (pre-13 "coerce to 2-D" semantics expanded to Flatten/Softmax/Reshape) and
//! `ArgMax`.

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Softmax`.
pub fn softmax(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    let rank = shape.len() as i64;
    if node.opset() >= 13 {
        let axis = node.int_or("axis", -1)?;
        ctx.emit(node, Op::Softmax { axis }, vec![x])?;
        return Ok(());
    }
    let axis = node.int_or("axis", 1)?;
    let norm = if axis < 0 { axis + rank } else { axis };
    if norm == rank - 1 {
        ctx.emit(node, Op::Softmax { axis: norm }, vec![x])?;
        return Ok(());
    }
    let Some(out) = node.pb.output.first().filter(|o| !o.is_empty()).cloned() else {
        return Err(node.invalid("missing output name"));
    };
    let flat = ctx.emit_named(
        node,
        Op::Flatten { axis },
        vec![x],
        &[format!("{out}::flat")],
    )?;
    let soft = ctx.emit_named(
        node,
        Op::Softmax { axis: 1 },
        flat,
        &[format!("{out}::softmax")],
    )?;
    ctx.emit_named(node, Op::Reshape { shape }, soft, &[out])?;
    Ok(())
}

/// Builds `ArgMax` (indices are produced as f32).
pub fn argmax(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    node.require_int("select_last_index", &[0], "select_last_index = 0")?;
    let x = ctx.req_input(node, 0)?;
    let axis = node.int_or("axis", 0)?;
    let keepdims = node.int_or("keepdims", 1)? != 0;
    ctx.emit(node, Op::ArgMax { axis, keepdims }, vec![x])?;
    Ok(())
}
