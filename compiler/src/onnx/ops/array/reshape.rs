//! `Reshape`: the target shape must be constant (possibly folded from a Shape chain) and is
//! resolved to concrete dimensions (`0` copies, `-1` infers) at import.

use mp2ml_ir::op::Op;
use mp2ml_ir::shape::numel;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `Reshape`.
pub fn reshape(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let target = if node.opset() < 5 {
        node.ints("shape")?
    } else {
        ctx.const_ints(node, 1, "target shape")?
    }
    .ok_or_else(|| node.invalid("missing target shape"))?;
    let allowzero = node.int_or("allowzero", 0)? != 0;
    let input = ctx.shape(x).to_vec();
    let mut shape = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                shape.push(1);
            }
            0 if !allowzero => match input.get(i) {
                Some(&v) => shape.push(v),
                None => {
                    return Err(
                        node.invalid(format!("target {target:?} copies axis {i} the input lacks"))
                    )
                }
            },
            d if d >= 0 => shape.push(d as usize),
            _ => return Err(node.invalid(format!("invalid target shape {target:?}"))),
        }
    }
    if let Some(i) = infer_at {
        let known = numel(&shape);
        if known == 0 || !numel(&input).is_multiple_of(known) {
            return Err(node.invalid(format!(
                "cannot infer -1 in {target:?} from input shape {input:?}"
            )));
        }
        shape[i] = numel(&input) / known;
    }
    ctx.emit(node, Op::Reshape { shape }, vec![x])?;
    Ok(())
}
