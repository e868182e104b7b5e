//! The op set: every ONNX operator the compiler accepts, with attributes normalized at import
//! (auto_pad resolved, defaults filled in, attribute-vs-input forms unified).

use std::fmt;

/// One IR operation. Inputs are listed per variant; "constant" inputs are tensors whose
/// [`crate::tensor::TensorInfo::value`] is set.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// 2-D convolution. Inputs: x `[N,C,H,W]`, W `[M,C/group,kh,kw]` (constant), optional B `[M]`
    /// (constant).
    Conv {
        /// Kernel size `[kh, kw]`.
        kernel: [usize; 2],
        /// Strides `[sh, sw]`.
        strides: [usize; 2],
        /// Padding `[top, left, bottom, right]`.
        pads: [usize; 4],
        /// Dilations `[dh, dw]`.
        dilations: [usize; 2],
        /// Number of groups.
        group: usize,
    },
    /// `alpha * A' * B' + beta * C`. Inputs: A, B, optional C.
    Gemm {
        /// Scale of the product.
        alpha: f32,
        /// Scale of C.
        beta: f32,
        /// Transpose A first.
        trans_a: bool,
        /// Transpose B first.
        trans_b: bool,
    },
    /// Numpy matmul. Inputs: A, B.
    MatMul,
    /// Broadcasting elementwise addition.
    Add,
    /// Broadcasting elementwise subtraction.
    Sub,
    /// Broadcasting sum of any number of inputs.
    Sum,
    /// Broadcasting elementwise product (the HE partition requires one constant operand).
    Mul,
    /// Broadcasting elementwise division (the HE partition requires a constant divisor).
    Div,
    /// Inference batch normalization. Inputs: x, scale, bias, mean, var (constants `[C]`).
    BatchNorm {
        /// Variance epsilon.
        epsilon: f32,
    },
    /// 2-D average pooling.
    AvgPool {
        /// Window `[kh, kw]`.
        kernel: [usize; 2],
        /// Strides.
        strides: [usize; 2],
        /// Padding `[top, left, bottom, right]`.
        pads: [usize; 4],
        /// Whether padded cells count in the divisor.
        count_include_pad: bool,
        /// Output size rounds up.
        ceil_mode: bool,
    },
    /// Mean over all spatial axes.
    GlobalAvgPool,
    /// 2-D max pooling (dilation 1, single output).
    MaxPool {
        /// Window `[kh, kw]`.
        kernel: [usize; 2],
        /// Strides.
        strides: [usize; 2],
        /// Padding `[top, left, bottom, right]` (padded cells are -inf).
        pads: [usize; 4],
        /// Output size rounds up.
        ceil_mode: bool,
    },
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`.
    Clip {
        /// Lower bound (`-inf` when absent).
        min: f32,
        /// Upper bound (`+inf` when absent).
        max: f32,
    },
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// Reshape to 2-D `[prod(dims[..axis]), prod(dims[axis..])]`.
    Flatten {
        /// Split axis (normalized, 0..=rank).
        axis: i64,
    },
    /// Reshape to a concrete shape (dimension 0 is the batch axis when the input's is).
    Reshape {
        /// Target shape, fully resolved.
        shape: Vec<usize>,
    },
    /// Axis permutation.
    Transpose {
        /// `out.dim[i] = in.dim[perm[i]]`.
        perm: Vec<usize>,
    },
    /// Concatenation along an axis.
    Concat {
        /// Axis (may be negative).
        axis: i64,
    },
    /// ONNX `Slice`: along each listed axis, the elements `start, start + step, …` short of
    /// `end`, with ONNX's clamping of negative and out-of-range bounds (see
    /// [`crate::shape::slice_indices`]).
    Slice {
        /// Axes (normalized to `0..rank`, distinct).
        axes: Vec<usize>,
        /// Start per axis (negative counts from the end).
        starts: Vec<i64>,
        /// Exclusive end per axis (negative counts from the end; clamped).
        ends: Vec<i64>,
        /// Step per axis (nonzero).
        steps: Vec<i64>,
    },
    /// Constant-mode padding.
    Pad {
        /// ONNX layout: all begins, then all ends (negative values crop).
        pads: Vec<i64>,
        /// Fill value.
        value: f32,
    },
    /// Removes size-1 axes.
    Squeeze {
        /// Axes to remove (empty = all size-1 axes).
        axes: Vec<i64>,
    },
    /// Inserts size-1 axes.
    Unsqueeze {
        /// Positions in the output.
        axes: Vec<i64>,
    },
    /// Copy.
    Identity,
    /// Inference-mode dropout (identity; the mask output is not supported).
    Dropout,
    /// Softmax along an axis (client-side post-processing when it ends the graph).
    Softmax {
        /// Axis (may be negative).
        axis: i64,
    },
    /// Logistic sigmoid.
    Sigmoid,
    /// Index of the maximum along an axis, as f32 (first occurrence).
    ArgMax {
        /// Axis (may be negative).
        axis: i64,
        /// Keep the reduced axis with size 1.
        keepdims: bool,
    },
}

impl Op {
    /// Short name used in listings and diagnostics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "Conv",
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Sum => "Sum",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::BatchNorm { .. } => "BatchNorm",
            Op::AvgPool { .. } => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::MaxPool { .. } => "MaxPool",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Slice { .. } => "Slice",
            Op::Pad { .. } => "Pad",
            Op::Squeeze { .. } => "Squeeze",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Identity => "Identity",
            Op::Dropout => "Dropout",
            Op::Softmax { .. } => "Softmax",
            Op::Sigmoid => "Sigmoid",
            Op::ArgMax { .. } => "ArgMax",
        }
    }

    /// Whether the op is linear in its (non-constant) inputs, i.e. a candidate for the HE side.
    pub fn is_linear(&self) -> bool {
        matches!(
            self,
            Op::Conv { .. }
                | Op::Gemm { .. }
                | Op::MatMul
                | Op::Add
                | Op::Sub
                | Op::Sum
                | Op::Mul
                | Op::Div
                | Op::BatchNorm { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Flatten { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Concat { .. }
                | Op::Slice { .. }
                | Op::Pad { .. }
                | Op::Squeeze { .. }
                | Op::Unsqueeze { .. }
                | Op::Identity
                | Op::Dropout
        )
    }

    /// Whether the op only moves data around (no arithmetic).
    pub fn is_data_movement(&self) -> bool {
        matches!(
            self,
            Op::Flatten { .. }
                | Op::Reshape { .. }
                | Op::Transpose { .. }
                | Op::Concat { .. }
                | Op::Slice { .. }
                | Op::Squeeze { .. }
                | Op::Unsqueeze { .. }
                | Op::Identity
                | Op::Dropout
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Conv { kernel, strides, pads, dilations, group } => write!(
                f,
                "Conv kernel={kernel:?} strides={strides:?} pads={pads:?} dilations={dilations:?} group={group}"
            ),
            Op::Gemm { alpha, beta, trans_a, trans_b } => {
                write!(f, "Gemm alpha={alpha} beta={beta} trans_a={trans_a} trans_b={trans_b}")
            }
            Op::BatchNorm { epsilon } => write!(f, "BatchNorm epsilon={epsilon}"),
            Op::AvgPool { kernel, strides, pads, count_include_pad, ceil_mode } => write!(
                f,
                "AvgPool kernel={kernel:?} strides={strides:?} pads={pads:?} count_include_pad={count_include_pad} ceil_mode={ceil_mode}"
            ),
            Op::MaxPool { kernel, strides, pads, ceil_mode } => write!(
                f,
                "MaxPool kernel={kernel:?} strides={strides:?} pads={pads:?} ceil_mode={ceil_mode}"
            ),
            Op::Clip { min, max } => write!(f, "Clip min={min} max={max}"),
            Op::LeakyRelu { alpha } => write!(f, "LeakyRelu alpha={alpha}"),
            Op::Flatten { axis } => write!(f, "Flatten axis={axis}"),
            Op::Reshape { shape } => write!(f, "Reshape shape={shape:?}"),
            Op::Transpose { perm } => write!(f, "Transpose perm={perm:?}"),
            Op::Concat { axis } => write!(f, "Concat axis={axis}"),
            Op::Slice { axes, starts, ends, steps } => write!(
                f,
                "Slice axes={axes:?} starts={starts:?} ends={ends:?} steps={steps:?}"
            ),
            Op::Pad { pads, value } => write!(f, "Pad pads={pads:?} value={value}"),
            Op::Squeeze { axes } => write!(f, "Squeeze axes={axes:?}"),
            Op::Unsqueeze { axes } => write!(f, "Unsqueeze axes={axes:?}"),
            Op::Softmax { axis } => write!(f, "Softmax axis={axis}"),
            Op::ArgMax { axis, keepdims } => write!(f, "ArgMax axis={axis} keepdims={keepdims}"),
            other => f.write_str(other.name()),
        }
    }
}
