//! ReLU, `max(x, 0)`: one circuit per element (a ReLU followed or preceded by a MaxPool is
//! fused into the MaxPool, `maxpool.rs`).

use mp2ml_ir::circuit::activations::{self as circuits, CircuitParams};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;

use super::{monotone, Activation, Bounds, CircuitSpec, Entry, Lowering, Shapes, Site};

/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relu;

/// The registry entry.
pub const ENTRY: Entry = Entry {
    name: "ReLU",
    takes,
    lower,
};

fn takes(s: &Site) -> bool {
    s.first.is_none() && matches!(s.op(), Op::Relu)
}

fn lower(_: &Site, shapes: &Shapes) -> Result<Lowering, String> {
    Ok(Lowering::elementwise(
        CircuitSpec::Relu(Relu),
        &shapes.input,
    ))
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
