//! ReLU, `max(x, 0)`: one circuit per element (a ReLU followed or preceded by a MaxPool is
//! fused into the MaxPool, `maxpool.rs`).

use mp2ml_ir::circuit::activations::{self as circuits, CircuitParams};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;

use super::{
    elementwise_entry, monotone, Activation, Bounds, CircuitSpec, Elementwise, Entry, Site,
};

/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relu;

/// The registry entry.
pub const ENTRY: Entry = elementwise_entry::<Relu>("ReLU");

impl Elementwise for Relu {
    fn spec(s: &Site) -> Option<Result<CircuitSpec, String>> {
        matches!(s.op(), Op::Relu).then_some(Ok(CircuitSpec::Relu(Relu)))
    }
}

impl Activation for Relu {
    fn kind(&self) -> ActivationKind {
        ActivationKind::Relu
    }

    fn out_bits(&self, w: u32) -> u32 {
        circuits::relu::out_bits(w)
    }

    fn bounds(&self, _instances: usize, lo: &[f64], hi: &[f64]) -> Result<Bounds, String> {
        Ok(monotone(lo, hi, |x| x.max(0.0)))
    }

    fn circuit(&self, p: &CircuitParams, _scale_bits: u32) -> ShareCircuit {
        circuits::relu(p)
    }
}
