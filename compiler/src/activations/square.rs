//! Square, `x·x` (an ONNX `Mul` of a non-constant tensor with itself): one circuit per
//! element, rescaled by the fixed-point scale.

use mp2ml_ir::circuit::activations::{self as circuits, CircuitParams};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;

use super::{elementwise_entry, Activation, Bounds, CircuitSpec, Elementwise, Entry, Site};

/// `x·x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Square;

/// The registry entry.
pub const ENTRY: Entry = elementwise_entry::<Square>("x·x");

impl Elementwise for Square {
    fn spec(s: &Site) -> Option<Result<CircuitSpec, String>> {
        let node = s.graph.node(s.node);
        let square = matches!(node.op, Op::Mul)
            && node.inputs.len() == 2
            && node.inputs[0] == node.inputs[1]
            && !(s.is_const)(node.inputs[0]);
        square.then_some(Ok(CircuitSpec::Square(Square)))
    }
}

impl Activation for Square {
    fn kind(&self) -> ActivationKind {
        ActivationKind::Square
    }

    fn out_bits(&self, w: u32) -> u32 {
        circuits::square::out_bits(w)
    }

    fn bounds(&self, _instances: usize, lo: &[f64], hi: &[f64]) -> Result<Bounds, String> {
        let l = lo
            .iter()
            .zip(hi)
            .map(|(&a, &b)| {
                if a <= 0.0 && b >= 0.0 {
                    0.0
                } else {
                    (a * a).min(b * b)
                }
            })
            .collect();
        let h = lo
            .iter()
            .zip(hi)
            .map(|(&a, &b)| (a * a).max(b * b))
            .collect();
        Ok((l, h))
    }

    fn circuit(&self, p: &CircuitParams, scale_bits: u32) -> ShareCircuit {
        circuits::square(p, scale_bits)
    }
}
