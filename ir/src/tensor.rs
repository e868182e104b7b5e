//! Tensors: the arena handle [`TensorId`], per-tensor metadata [`TensorInfo`] and dense f32
//! values [`Tensor`].

use std::fmt;

use crate::shape::{numel, Shape};

/// Handle of a tensor in [`crate::graph::Graph`]'s tensor arena (an index into it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub u32);

impl TensorId {
    /// The arena index of this handle.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for TensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// A dense row-major f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Shape,
    /// Row-major elements; `data.len() == shape.iter().product()`.
    pub data: Vec<f32>,
}

impl Tensor {
    /// Builds a tensor, checking that `data` has as many elements as `shape` describes.
    pub fn new(shape: Shape, data: Vec<f32>) -> Option<Tensor> {
        (numel(&shape) == data.len()).then_some(Tensor { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Shape) -> Tensor {
        let n = numel(&shape);
        Tensor {
            shape,
            data: vec![0.0; n],
        }
    }

    /// A rank-0 tensor holding `v`.
    pub fn scalar(v: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: vec![v],
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Index of the first element that is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.data.iter().position(|v| !v.is_finite())
    }
}

/// What the graph knows about one tensor: its ONNX name, concrete shape (dimension 0 is the batch
/// axis, fixed to the import batch size) and, for weights and folded constants, its value.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// ONNX value name.
    pub name: String,
    /// Concrete shape.
    pub shape: Shape,
    /// Constant value (initializers, `Constant` nodes, folded subgraphs); `None` for activations.
    pub value: Option<Tensor>,
}

impl TensorInfo {
    /// Whether the tensor is a compile-time constant.
    pub fn is_const(&self) -> bool {
        self.value.is_some()
    }
}
