//! `BatchNormalization` (inference mode).

use mp2ml_ir::op::Op;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;

/// Builds `BatchNormalization`.
pub fn batch_norm(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    node.require_int("spatial", &[1], "spatial = 1")?;
    node.require_int("training_mode", &[0], "training_mode = 0 (inference)")?;
    if node.pb.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(node.unsupported(
            "outputs",
            node.pb.output.len().to_string(),
            "a single output (inference mode)",
        ));
    }
    let x = ctx.req_input(node, 0)?;
    let mut inputs = vec![x];
    for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")] {
        let t = ctx.req_input(node, i)?;
        if !ctx.graph.is_const(t) {
            return Err(ImportError::NonConstant {
                at: node.loc.clone(),
                input: node.pb.input[i].clone(),
                what,
            });
        }
        inputs.push(t);
    }
    let epsilon = node.float("epsilon")?.unwrap_or(1e-5); // the ONNX default
    ctx.emit(node, Op::BatchNorm { epsilon }, inputs)?;
    Ok(())
}
