//! `ConstantOfShape` (exporters emit it while computing pads and shapes; the result is a
//! constant at import).

use mp2ml_ir::shape::numel;
use mp2ml_ir::tensor::Tensor;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `ConstantOfShape`.
pub fn constant_of_shape(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let shape = ctx
        .const_ints(node, 0, "shape")?
        .ok_or_else(|| node.invalid("missing shape"))?;
    if shape.iter().any(|&d| d < 0) {
        return Err(node.invalid(format!("negative dimension in {shape:?}")));
    }
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    // ONNX: `value` is a one-element tensor, 0.0 (float32) when absent.
    let v = match node.tensor("value")? {
        None => 0.0,
        Some(t) => match t.data.as_slice() {
            [v] => *v,
            d => {
                return Err(node.invalid(format!("`value` must hold one element, not {}", d.len())))
            }
        },
    };
    let n = numel(&shape);
    ctx.bind_const(
        node,
        0,
        Tensor {
            shape,
            data: vec![v; n],
        },
    )
}
