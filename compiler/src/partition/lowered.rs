//! The lowered model: materialized tensors, MPC steps and the fusion decisions.

use mp2ml_ir::plan::{ActivationKind, PostProcess};

pub use crate::activations::CircuitSpec;

use super::affine::Affine;
use super::noise::NoiseCoeffs;
use super::smap::SMap;

/// Level at which the graph output is delivered (one prime above q0 leaves room for flooding).
pub const OUTPUT_LEVEL: usize = 1;

/// How a materialized tensor is produced.
#[derive(Clone, Debug, PartialEq)]
pub enum MKind {
    /// The encrypted model input.
    Input,
    /// Output of MPC step `step` (encrypted by the client).
    MpcOut {
        /// Step index.
        step: usize,
    },
    /// `rescale(W · concat(inputs) + b)`.
    Linear {
        /// Materialized input tensors, concatenated in this order.
        inputs: Vec<usize>,
        /// The map; columns index the concatenation.
        map: LinMap,
        /// Names of the model nodes fused into it, in topological order.
        nodes: Vec<String>,
    },
}

/// A linear tensor's affine map over the frontier (or, materialized, over its inputs).
#[derive(Clone, Debug, PartialEq)]
pub enum LinMap {
    /// Expanded rows (small maps: the exact path of every bundled model).
    Rows(Affine),
    /// Convolution terms (maps too large to expand).
    Conv(SMap),
    /// The identity over `len` columns from `col` (a frontier tensor).
    Ident {
        /// First column.
        col: u32,
        /// Elements.
        len: usize,
    },
    /// Too large to expand and not weight-shared: only its size is known (a fusion candidate
    /// the cost model must refuse).
    Opaque {
        /// Elements.
        len: usize,
        /// Estimated stored entries.
        macs: u64,
    },
}

impl LinMap {
    /// Elements (rows).
    pub fn len(&self) -> usize {
        match self {
            LinMap::Rows(a) => a.rows.len(),
            LinMap::Conv(s) => s.len(),
            LinMap::Ident { len, .. } | LinMap::Opaque { len, .. } => *len,
        }
    }

    /// Whether the map has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stored entries (multiply-accumulates per image).
    pub fn nnz(&self) -> u64 {
        match self {
            LinMap::Rows(a) => a.nnz(),
            LinMap::Conv(s) => s.nnz(),
            LinMap::Ident { len, .. } => *len as u64,
            LinMap::Opaque { macs, .. } => *macs,
        }
    }

    /// Largest |coefficient| (an upper bound for structured maps).
    pub fn max_abs(&self) -> f64 {
        match self {
            LinMap::Rows(a) => a
                .rows
                .iter()
                .flat_map(|r| r.vals.iter())
                .fold(0.0f64, |m, v| m.max(v.abs())),
            LinMap::Conv(s) => s.max_abs(),
            LinMap::Ident { .. } => 1.0,
            LinMap::Opaque { .. } => 0.0,
        }
    }
}

/// A tensor that exists as ciphertexts.
#[derive(Clone, Debug, PartialEq)]
pub struct MTensor {
    /// Name (model tensor name).
    pub name: String,
    /// Per-image shape (no batch axis).
    pub shape: Vec<usize>,
    /// Production.
    pub kind: MKind,
    /// Level of its ciphertexts.
    pub level: usize,
    /// Bound on |value| (range analysis or calibration with margin).
    pub bound: f64,
    /// Noise bound coefficients.
    pub noise: NoiseCoeffs,
    /// Whether the tensor feeds the output (through Linears only): such tensors carry the
    /// larger output scale that leaves room for the flooding noise.
    pub output_scale: bool,
}

/// One MPC step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Name (model node names joined with `+`).
    pub name: String,
    /// Public kind.
    pub kind: ActivationKind,
    /// Circuit to generate.
    pub spec: CircuitSpec,
    /// Materialized input tensor.
    pub input: usize,
    /// Input elements in circuit order.
    pub gather: Vec<u32>,
    /// Materialized output tensor.
    pub output: usize,
    /// Instances per image.
    pub instances: usize,
    /// Values in per instance.
    pub values_in: usize,
    /// Values out per instance.
    pub values_out: usize,
}

/// The fusion decision for one materialized target.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Target tensor name.
    pub target: String,
    /// Model nodes in its cone.
    pub nodes: Vec<String>,
    /// MACs of the fused map.
    pub fused_macs: u64,
    /// MACs of the unfused chain (sum over weighted ops).
    pub chain_macs: u64,
    /// Weighted-op depth of the chain.
    pub depth: usize,
    /// Fused cost: MACs × limbs.
    pub fused_cost: u64,
    /// Chain cost: Σ MACs × limbs at each op's level.
    pub chain_cost: u64,
    /// Whether the chain was chosen.
    pub chain: bool,
}

/// The lowered model.
#[derive(Clone, Debug, PartialEq)]
pub struct Lowered {
    /// Materialized tensors in topological order; 0 is the input.
    pub tensors: Vec<MTensor>,
    /// MPC steps in execution order.
    pub steps: Vec<Step>,
    /// The materialized output tensor.
    pub output: usize,
    /// Name of the model output.
    pub output_name: String,
    /// Post-processing.
    pub post: PostProcess,
    /// Fusion decisions.
    pub decisions: Vec<Decision>,
    /// Level of the delivered output (starts at [`OUTPUT_LEVEL`]; parameter choice may raise it).
    pub out_level: usize,
}

/// Where value bounds come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Ranges {
    /// Interval analysis from an input interval.
    Interval(f64, f64),
    /// Observed max |value| per graph tensor (already times the margin); `None` for a tensor
    /// the calibration run did not compute.
    Observed(Vec<Option<f64>>),
}
