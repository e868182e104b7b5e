//! Graph passes that run before partitioning: constant folding and detection of the client-side
//! post-processing tail. (BatchNorm folding, Identity/Dropout removal and linear fusion happen
//! by affine composition in [`crate::partition`].)

use std::collections::BTreeSet;

use mp2ml_ir::graph::{Graph, NodeId};
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::PostProcess;
use mp2ml_ir::reference::propagate;
use mp2ml_ir::tensor::{Tensor, TensorId};

use crate::error::CompileError;

/// Values of constant tensors after folding, indexed by tensor arena index.
pub struct Folded {
    /// `Some` for every compile-time constant.
    pub values: Vec<Option<Tensor>>,
    /// Nodes whose outputs were all folded.
    pub folded: BTreeSet<NodeId>,
}

/// Evaluates every node whose inputs are all constants.
pub fn fold_constants(graph: &Graph, order: &[NodeId]) -> Result<Folded, CompileError> {
    let mut values: Vec<Option<Tensor>> = graph.tensors().iter().map(|t| t.value.clone()).collect();
    let folded = propagate(graph, order, &mut values, 1, |node| !node.inputs.is_empty())
        .map_err(|(n, e)| CompileError::node(graph, n, format!("constant folding failed: {e}")))?
        .into_iter()
        .collect();
    Ok(Folded { values, folded })
}

/// The client-side tail of the graph: `Softmax`, `Sigmoid`, `ArgMax` ops that end it.
pub struct PostTail {
    /// What the client applies.
    pub post: PostProcess,
    /// The tensor the server delivers (before the tail).
    pub output: TensorId,
    /// The tail's nodes (not compiled).
    pub nodes: BTreeSet<NodeId>,
}

/// Finds the post-processing tail ending at `output`.
pub fn post_tail(graph: &Graph, output: TensorId) -> Result<PostTail, CompileError> {
    let mut t = output;
    let mut kinds = Vec::new();
    let mut nodes = BTreeSet::new();
    while let Some(n) = graph.producer(t) {
        let node = graph.node(n);
        let k = match node.op {
            Op::Softmax { .. } => PostProcess::Softmax,
            Op::Sigmoid => PostProcess::Sigmoid,
            Op::ArgMax { .. } => PostProcess::ArgMax,
            _ => break,
        };
        if graph.consumers(t).len() > usize::from(t != output) {
            break;
        }
        kinds.push((n, k));
        nodes.insert(n);
        t = match node.inputs.first() {
            Some(&i) => i,
            None => break,
        };
    }
    let post = match kinds.as_slice() {
        [] => PostProcess::None,
        [(_, k)] => *k,
        // ArgMax after a monotone Softmax/Sigmoid is ArgMax of the logits.
        [(_, PostProcess::ArgMax), ..] => PostProcess::ArgMax,
        [(n, _), ..] => {
            return Err(CompileError::node(
                graph,
                *n,
                "only one post-processing op (or ArgMax after Softmax) may end the graph"
                    .to_string(),
            ));
        }
    };
    Ok(PostTail {
        post,
        output: t,
        nodes,
    })
}
