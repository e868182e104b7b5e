//! The compiler's side of each MPC activation, one file per activation (as `onnx/ops` has one
//! file per ONNX op): which graph nodes it takes, the layout of its step (instances, values in
//! and out, the gather order), the public kind the plan records, the bounds of its outputs for
//! the range analysis, the bit width of its outputs for the parameters, and its circuit (the
//! generators are in `mp2ml_ir::circuit::activations`, one file per activation too).
//!
//! Adding an activation: a file here with an [`Entry`] (for one node, element by element: an
//! [`Elementwise`] impl and [`elementwise_entry`]) and an [`Activation`] impl, a variant
//! of [`CircuitSpec`], its line in [`REGISTRY`] and in [`CircuitSpec::activation`].

pub mod clip;
pub mod leaky_relu;
pub mod maxpool;
pub mod relu;
pub mod square;

use mp2ml_ir::circuit::activations::CircuitParams;
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::graph::{Graph, NodeId};
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;
use mp2ml_ir::tensor::TensorId;

/// Lower and upper bounds of a step's outputs, in output order.
pub type Bounds = (Vec<f64>, Vec<f64>);

/// What the compiler knows about one activation, once its step is built.
pub trait Activation {
    /// The public kind the plan records.
    fn kind(&self) -> ActivationKind;
    /// Bits of the circuit's output at (truncated) share width `w` (`share_bits − K`; see the
    /// circuit generator).
    fn out_bits(&self, w: u32) -> u32;
    /// Bounds of the outputs of `instances` instances from the bounds of their inputs (in
    /// circuit order, `instances × values_in`); an error names an input without a bound.
    fn bounds(&self, instances: usize, lo: &[f64], hi: &[f64]) -> Result<Bounds, String>;
    /// The circuit at parameters `p`, for values at scale `2^scale_bits`.
    fn circuit(&self, p: &CircuitParams, scale_bits: u32) -> ShareCircuit;
}

/// The function of an MPC step, with what its circuit generator needs.
#[derive(Clone, Debug, PartialEq)]
pub enum CircuitSpec {
    /// ReLU.
    Relu(relu::Relu),
    /// MaxPool over one plane.
    MaxPool(maxpool::MaxPool),
    /// Clip to real bounds.
    Clip(clip::Clip),
    /// LeakyReLU with a fixed-point slope.
    LeakyRelu(leaky_relu::LeakyRelu),
    /// x·x.
    Square(square::Square),
}

impl CircuitSpec {
    /// The activation behind the spec.
    pub fn activation(&self) -> &dyn Activation {
        match self {
            CircuitSpec::Relu(a) => a,
            CircuitSpec::MaxPool(a) => a,
            CircuitSpec::Clip(a) => a,
            CircuitSpec::LeakyRelu(a) => a,
            CircuitSpec::Square(a) => a,
        }
    }
}

/// A graph node the partition asks about: `first` is the first node of a fused pair (ReLU and
/// MaxPool in either order) whose second node is `node`.
pub struct Site<'a> {
    /// The graph.
    pub graph: &'a Graph,
    /// The node.
    pub node: NodeId,
    /// First node of a fused pair.
    pub first: Option<NodeId>,
    /// Whether a tensor is a constant.
    pub is_const: &'a dyn Fn(TensorId) -> bool,
}

impl Site<'_> {
    fn op(&self) -> &Op {
        &self.graph.node(self.node).op
    }

    fn first_op(&self) -> Option<&Op> {
        self.first.map(|f| &self.graph.node(f).op)
    }
}

/// Per-image shapes of a step's input (the first node's input for a pair) and output.
pub struct Shapes {
    /// Input, without the batch axis.
    pub input: Vec<usize>,
    /// Output, without the batch axis.
    pub output: Vec<usize>,
}

/// The layout of a step and its spec.
pub struct Lowering {
    /// The function.
    pub spec: CircuitSpec,
    /// Circuit instances per image.
    pub instances: usize,
    /// Values in per instance.
    pub values_in: usize,
    /// Values out per instance.
    pub values_out: usize,
    /// Input elements in circuit order.
    pub gather_plane: Vec<u32>,
}

/// An activation of one node (not a fused pair), one circuit instance per element: ReLU,
/// Clip, LeakyReLU, x·x. Its registry entry is [`elementwise_entry`].
pub trait Elementwise {
    /// The spec of `site`'s node, `None` if the node is not this activation; an error message
    /// for a node of this activation that cannot be lowered.
    fn spec(site: &Site) -> Option<Result<CircuitSpec, String>>;

    /// Whether the activation takes `site` (a single node that [`Elementwise::spec`] knows).
    fn takes(site: &Site) -> bool {
        site.first.is_none() && Self::spec(site).is_some()
    }

    /// Its step: one instance per element of the input.
    fn lower(site: &Site, shapes: &Shapes) -> Result<Lowering, String> {
        let spec = Self::spec(site).ok_or_else(|| "not this activation".to_string())??;
        let len: usize = shapes.input.iter().product();
        Ok(Lowering {
            spec,
            instances: len,
            values_in: 1,
            values_out: 1,
            gather_plane: (0..len as u32).collect(),
        })
    }
}

/// The registry entry of the elementwise activation `T`, named `name` in messages.
pub const fn elementwise_entry<T: Elementwise>(name: &'static str) -> Entry {
    Entry {
        name,
        takes: T::takes,
        lower: T::lower,
    }
}

/// One activation in the [`REGISTRY`].
pub struct Entry {
    /// Name in messages.
    pub name: &'static str,
    /// Whether the activation takes the node (with its pair, if any).
    pub takes: fn(&Site) -> bool,
    /// Its step; an error message for a node it cannot lower.
    pub lower: fn(&Site, &Shapes) -> Result<Lowering, String>,
}

/// Every activation the partition evaluates under MPC.
pub const REGISTRY: &[Entry] = &[
    relu::ENTRY,
    maxpool::ENTRY,
    clip::ENTRY,
    leaky_relu::ENTRY,
    square::ENTRY,
];

/// Whether some activation takes `site`.
pub fn is_mpc(site: &Site) -> bool {
    REGISTRY.iter().any(|e| (e.takes)(site))
}

/// The step of `site`; an error message if no activation takes it or it cannot be lowered.
pub fn lower(site: &Site, shapes: &Shapes) -> Result<Lowering, String> {
    let e = REGISTRY
        .iter()
        .find(|e| (e.takes)(site))
        .ok_or_else(|| "not an MPC op".to_string())?;
    (e.lower)(site, shapes)
}

/// The activations' names as a list (`A, B and C`).
pub fn names() -> String {
    let n: Vec<&str> = REGISTRY.iter().map(|e| e.name).collect();
    match n.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => String::new(),
    }
}

/// Elementwise bounds through a monotone non-decreasing `f`.
fn monotone(lo: &[f64], hi: &[f64], f: impl Fn(f64) -> f64) -> Bounds {
    (
        lo.iter().map(|&x| f(x)).collect(),
        hi.iter().map(|&x| f(x)).collect(),
    )
}
