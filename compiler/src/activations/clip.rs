//! Clip, `clamp(x, min, max)`: one circuit per element, the bounds at the fixed-point scale.

use mp2ml_ir::circuit::activations::{self as circuits, CircuitParams};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;

use super::{
    elementwise_entry, monotone, Activation, Bounds, CircuitSpec, Elementwise, Entry, Site,
};

/// Clamp to `[min, max]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clip {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

/// The registry entry.
pub const ENTRY: Entry = elementwise_entry::<Clip>("Clip");

impl Elementwise for Clip {
    fn spec(s: &Site) -> Option<Result<CircuitSpec, String>> {
        let Op::Clip { min, max } = *s.op() else {
            return None;
        };
        Some(Ok(CircuitSpec::Clip(Clip { min, max })))
    }
}

impl Activation for Clip {
    fn kind(&self) -> ActivationKind {
        ActivationKind::Clip {
            min: self.min,
            max: self.max,
        }
    }

    fn out_bits(&self, w: u32) -> u32 {
        circuits::clip::out_bits(w)
    }

    fn bounds(&self, _instances: usize, lo: &[f64], hi: &[f64]) -> Result<Bounds, String> {
        let (a, b) = (f64::from(self.min), f64::from(self.max));
        Ok(monotone(lo, hi, |x| x.clamp(a, b)))
    }

    fn circuit(&self, p: &CircuitParams, scale_bits: u32) -> ShareCircuit {
        let delta = 2f64.powi(scale_bits as i32);
        let fix = |v: f32| (f64::from(v) * delta).round() as i64;
        circuits::clip(p, fix(self.min), fix(self.max))
    }
}
