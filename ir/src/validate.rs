//! Graph validation: the one stage that checks handles, acyclicity, arity and shapes, so later
//! passes may assume a well-formed graph (as in naga's `Validator`).

use thiserror::Error;

use crate::graph::{Graph, NodeId};
use crate::shape::{infer, numel, ShapeError};
use crate::tensor::TensorId;

/// Facts established by validation, passed alongside the graph to later stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphInfo {
    /// All nodes in a topological order.
    pub order: Vec<NodeId>,
}

/// What is wrong with a graph. Variants about a node carry its handle and name so callers can
/// point at the listing line.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ValidationError {
    /// A node refers to a tensor that is not in the arena.
    #[error("node `{name}` refers to tensor {tensor} which does not exist")]
    BadHandle {
        /// The node.
        node: NodeId,
        /// Its name.
        name: String,
        /// The bad handle.
        tensor: TensorId,
    },
    /// A graph input/output handle is out of range.
    #[error("graph input/output {0} does not exist")]
    BadGraphHandle(TensorId),
    /// Two nodes write the same tensor.
    #[error("tensor `{tensor}` is produced by more than one node (again by `{name}`)")]
    DuplicateProducer {
        /// The second producer.
        node: NodeId,
        /// Its name.
        name: String,
        /// The tensor's name.
        tensor: String,
    },
    /// A tensor that is neither input, constant nor produced is read.
    #[error("node `{name}` reads `{tensor}`, which is not a graph input, a constant, or produced by any node")]
    Dangling {
        /// The reader.
        node: NodeId,
        /// Its name.
        name: String,
        /// The tensor's name.
        tensor: String,
    },
    /// A graph input has a value or a producer.
    #[error("graph input `{0}` must be a plain data tensor")]
    InputNotData(String),
    /// A graph output is never computed.
    #[error("graph output `{0}` is not produced by any node, nor an input or constant")]
    OutputUndefined(String),
    /// The graph has a cycle through this node.
    #[error("the graph has a cycle through node `{name}`")]
    Cycle {
        /// A node on the cycle.
        node: NodeId,
        /// Its name.
        name: String,
    },
    /// A tensor has more elements than the compiler handles.
    #[error(
        "tensor `{name}` with shape {shape:?} is too large (more than {max} elements per image)"
    )]
    TooLarge {
        /// Tensor name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The limit.
        max: usize,
    },
    /// A constant's data length does not match its shape.
    #[error("constant `{name}` has {len} elements but shape {shape:?}")]
    ConstantSize {
        /// Tensor name.
        name: String,
        /// Element count.
        len: usize,
        /// Declared shape.
        shape: Vec<usize>,
    },
    /// Shape inference fails, or disagrees with the recorded shapes.
    #[error("node `{name}` ({op}): {source}")]
    Shape {
        /// The node.
        node: NodeId,
        /// Its name.
        name: String,
        /// Op name.
        op: &'static str,
        /// The shape problem.
        source: ShapeError,
    },
}

impl ValidationError {
    /// The node the error is about, if any.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            ValidationError::BadHandle { node, .. }
            | ValidationError::DuplicateProducer { node, .. }
            | ValidationError::Dangling { node, .. }
            | ValidationError::Cycle { node, .. }
            | ValidationError::Shape { node, .. } => Some(*node),
            _ => None,
        }
    }
}

/// Largest tensor (elements, batch of one) a graph may hold: far above any model that runs
/// under encryption (one ciphertext per element), and small enough that no pass can be made to
/// allocate without bound.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 24;

/// Validates `graph`; on success returns a topological order and later passes may index tensors
/// and nodes without checks.
pub fn validate(graph: &Graph) -> Result<GraphInfo, ValidationError> {
    let nt = graph.tensors().len();
    for &t in graph.inputs().iter().chain(graph.outputs()) {
        if t.index() >= nt {
            return Err(ValidationError::BadGraphHandle(t));
        }
    }
    for (id, node) in graph.nodes() {
        for &t in node.inputs.iter().chain(&node.outputs) {
            if t.index() >= nt {
                return Err(ValidationError::BadHandle {
                    node: id,
                    name: node.name.clone(),
                    tensor: t,
                });
            }
        }
    }
    if let Some(&(t, node)) = graph.duplicate_producers().first() {
        return Err(ValidationError::DuplicateProducer {
            node,
            name: graph.node(node).name.clone(),
            tensor: graph.tensor(t).name.clone(),
        });
    }
    for info in graph.tensors() {
        let elements = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if elements.is_none_or(|e| e > MAX_TENSOR_ELEMENTS) {
            return Err(ValidationError::TooLarge {
                name: info.name.clone(),
                shape: info.shape.clone(),
                max: MAX_TENSOR_ELEMENTS,
            });
        }
        if let Some(v) = &info.value {
            if v.shape != info.shape || numel(&v.shape) != v.data.len() {
                return Err(ValidationError::ConstantSize {
                    name: info.name.clone(),
                    len: v.data.len(),
                    shape: info.shape.clone(),
                });
            }
        }
    }
    for &i in graph.inputs() {
        if graph.is_const(i) || graph.producer(i).is_some() {
            return Err(ValidationError::InputNotData(graph.tensor(i).name.clone()));
        }
    }
    let defined = |t: TensorId| {
        graph.is_const(t) || graph.producer(t).is_some() || graph.inputs().contains(&t)
    };
    for (id, node) in graph.nodes() {
        if let Some(&t) = node.inputs.iter().find(|&&t| !defined(t)) {
            return Err(ValidationError::Dangling {
                node: id,
                name: node.name.clone(),
                tensor: graph.tensor(t).name.clone(),
            });
        }
    }
    if let Some(&o) = graph.outputs().iter().find(|&&t| !defined(t)) {
        return Err(ValidationError::OutputUndefined(
            graph.tensor(o).name.clone(),
        ));
    }
    let order = graph.topo_order().map_err(|node| ValidationError::Cycle {
        node,
        name: graph.node(node).name.clone(),
    })?;
    for &id in &order {
        let node = graph.node(id);
        let shape_err = |source| ValidationError::Shape {
            node: id,
            name: node.name.clone(),
            op: node.op.name(),
            source,
        };
        let ins: Vec<&[usize]> = node
            .inputs
            .iter()
            .map(|&t| graph.tensor(t).shape.as_slice())
            .collect();
        let outs = infer(&node.op, &ins).map_err(shape_err)?;
        if outs.len() != node.outputs.len() {
            return Err(shape_err(ShapeError::Invalid(format!(
                "op has {} output(s), node lists {}",
                outs.len(),
                node.outputs.len()
            ))));
        }
        for (s, &t) in outs.iter().zip(&node.outputs) {
            let recorded = &graph.tensor(t).shape;
            if s != recorded {
                return Err(shape_err(ShapeError::Mismatch {
                    a: s.clone(),
                    b: recorded.clone(),
                    why: "inferred output shape differs from the recorded one",
                }));
            }
        }
    }
    Ok(GraphInfo { order })
}
