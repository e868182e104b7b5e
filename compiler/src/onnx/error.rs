//! Import errors: one thiserror enum with structured fields; rendered by
//! [`crate::onnx::diagnostic::Diagnostics`].

use std::fmt;

use mp2ml_ir::shape::ShapeError;
use mp2ml_ir::validate::ValidationError;
use thiserror::Error;

use super::registry::supported_ops;
use super::{MAX_OPSET, MIN_OPSET};

/// Where in the model a node-level error happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLoc {
    /// ONNX node name (or a synthesized `#index` name).
    pub name: String,
    /// ONNX `op_type`.
    pub op_type: String,
    /// ONNX domain ("" = ai.onnx).
    pub domain: String,
    /// Opset version in force for the domain.
    pub opset: i64,
    /// 1-based line in the listing.
    pub line: usize,
}

impl fmt::Display for NodeLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` ({}, opset {})",
            self.name, self.op_type, self.opset
        )
    }
}

/// Everything that can go wrong while importing an ONNX model.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {message}")]
    Io {
        /// Path.
        path: String,
        /// OS error text.
        message: String,
    },
    /// The bytes are not a valid ONNX protobuf.
    #[error("malformed ONNX file: {message}")]
    Malformed {
        /// Decoder message.
        message: String,
    },
    /// The model has no graph or an empty one.
    #[error("the model has no graph nodes or no inputs/outputs")]
    EmptyGraph,
    /// The model's opset is outside what we read.
    #[error("unsupported opset {version} for domain `{domain}`")]
    UnsupportedOpset {
        /// Domain.
        domain: String,
        /// Version.
        version: i64,
    },
    /// An operator we do not import.
    #[error("unsupported operator `{}` in {at}", at.op_type)]
    UnsupportedOp {
        /// The node.
        at: Box<NodeLoc>,
    },
    /// A supported operator with an attribute value we do not handle.
    #[error("{at}: unsupported {attribute} = {value}")]
    UnsupportedAttribute {
        /// The node.
        at: Box<NodeLoc>,
        /// Attribute (or input) name.
        attribute: String,
        /// Its value.
        value: String,
        /// What is supported.
        supported: String,
    },
    /// An input that must be known at compile time is computed at run time.
    #[error("{at}: input `{input}` ({what}) must be a constant")]
    NonConstant {
        /// The node.
        at: Box<NodeLoc>,
        /// Input name.
        input: String,
        /// Role of the input.
        what: &'static str,
    },
    /// A node is ill-formed (missing input/attribute, wrong type...).
    #[error("{at}: {message}")]
    InvalidNode {
        /// The node.
        at: Box<NodeLoc>,
        /// Explanation.
        message: String,
    },
    /// Output shape cannot be computed.
    #[error("{at}: {source}")]
    Shape {
        /// The node.
        at: Box<NodeLoc>,
        /// Shape error.
        source: ShapeError,
    },
    /// A node reads a value nobody defines.
    #[error("{at}: input `{input}` is not a graph input, an initializer, or an output of an earlier node")]
    Dangling {
        /// The node.
        at: Box<NodeLoc>,
        /// Missing value name.
        input: String,
    },
    /// A shape dimension cannot be resolved to a number.
    #[error("dynamic shape of `{tensor}`: {message}")]
    DynamicShape {
        /// Tensor name.
        tensor: String,
        /// Listing line.
        line: Option<usize>,
        /// Explanation.
        message: String,
    },
    /// An element type we do not import.
    #[error("tensor `{tensor}` has unsupported element type {dtype}")]
    UnsupportedType {
        /// Tensor name.
        tensor: String,
        /// Listing line.
        line: Option<usize>,
        /// Type name.
        dtype: String,
    },
    /// A weight holds NaN or infinity.
    #[error("tensor `{tensor}` holds a non-finite value ({value}) at element {index}")]
    NonFinite {
        /// Tensor name.
        tensor: String,
        /// Listing line.
        line: Option<usize>,
        /// Element index.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A tensor with no elements.
    #[error("tensor `{tensor}` has zero elements (shape {shape:?})")]
    ZeroSized {
        /// Tensor name.
        tensor: String,
        /// Listing line.
        line: Option<usize>,
        /// Shape.
        shape: Vec<usize>,
    },
    /// Tensor data that does not decode.
    #[error("tensor `{tensor}`: {message}")]
    BadTensor {
        /// Tensor name.
        tensor: String,
        /// Listing line.
        line: Option<usize>,
        /// Explanation.
        message: String,
    },
    /// A declared graph output is never computed.
    #[error("graph output `{name}` is not computed by any node")]
    UnknownOutput {
        /// Output name.
        name: String,
        /// Listing line.
        line: Option<usize>,
    },
    /// The imported graph failed IR validation (an importer bug or an odd model).
    #[error("imported graph is invalid: {source}")]
    Validation {
        /// The validation error.
        source: Box<ValidationError>,
        /// Listing line of the node involved.
        line: Option<usize>,
    },
}

impl ImportError {
    /// Listing line the error points at.
    pub fn line(&self) -> Option<usize> {
        use ImportError::*;
        match self {
            DynamicShape { line, .. }
            | UnsupportedType { line, .. }
            | NonFinite { line, .. }
            | ZeroSized { line, .. }
            | BadTensor { line, .. }
            | UnknownOutput { line, .. }
            | Validation { line, .. } => *line,
            // The node's line, for the errors at a node.
            _ => self.node().map(|at| at.line),
        }
    }

    /// The node involved, if any.
    pub fn node(&self) -> Option<&NodeLoc> {
        use ImportError::*;
        match self {
            UnsupportedOp { at }
            | UnsupportedAttribute { at, .. }
            | NonConstant { at, .. }
            | InvalidNode { at, .. }
            | Shape { at, .. }
            | Dangling { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Stable error code.
    pub fn code(&self) -> &'static str {
        use ImportError::*;
        match self {
            Io { .. } => "E0001",
            Malformed { .. } => "E0002",
            EmptyGraph => "E0003",
            UnsupportedOpset { .. } => "E0004",
            UnsupportedOp { .. } => "E0100",
            UnsupportedAttribute { .. } => "E0101",
            NonConstant { .. } => "E0102",
            InvalidNode { .. } => "E0103",
            Shape { .. } => "E0104",
            Dangling { .. } => "E0105",
            DynamicShape { .. } => "E0200",
            UnsupportedType { .. } => "E0201",
            NonFinite { .. } => "E0202",
            ZeroSized { .. } => "E0203",
            BadTensor { .. } => "E0204",
            UnknownOutput { .. } => "E0205",
            Validation { .. } => "E0300",
        }
    }

    /// Short text for the label under the listing line.
    pub fn label(&self) -> String {
        match self.node() {
            Some(at) => match self {
                ImportError::UnsupportedOp { .. } => format!("`{}` is not supported", at.op_type),
                _ => format!("in {at}"),
            },
            None => "here".to_string(),
        }
    }

    /// Help notes: what is supported, how to fix.
    pub fn notes(&self) -> Vec<String> {
        use ImportError::*;
        match self {
            UnsupportedOp { at } => vec![
                format!("node `{}` uses `{}` from domain `{}` at opset {}", at.name, at.op_type, display_domain(&at.domain), at.opset),
                format!("supported ops (ai.onnx, opsets {MIN_OPSET}..={MAX_OPSET}): {}", supported_ops().join(", ")),
            ],
            UnsupportedAttribute { supported, .. } => vec![format!("supported: {supported}")],
            NonConstant { .. } => vec!["weights and shape/pad/clip parameters must be initializers, Constant nodes, or foldable from them".into()],
            DynamicShape { .. } => vec!["only the batch axis (axis 0) may be symbolic; give the other dimensions fixed sizes when exporting".into()],
            Malformed { .. } => vec!["the file is not a complete ONNX ModelProto (truncated or not ONNX?)".into()],
            NonFinite { .. } => vec!["NaN/Inf weights cannot be encoded; re-export the model".into()],
            UnsupportedOpset { .. } => vec![format!("supported: ai.onnx opsets {MIN_OPSET}..={MAX_OPSET} (ai.onnx.ml is not supported)")],
            _ => vec![],
        }
    }
}

fn display_domain(d: &str) -> &str {
    if d.is_empty() {
        "ai.onnx"
    } else {
        d
    }
}
