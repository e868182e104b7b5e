//! LeakyReLU, `x ≥ 0 ? x : alpha·x` with `alpha` in `[0, 1]` as the fixed-point slope
//! `num / 2^SHIFT`: one circuit per element.

use mp2ml_ir::circuit::activations::{self as circuits, CircuitParams};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;

use super::{
    elementwise_entry, monotone, Activation, Bounds, CircuitSpec, Elementwise, Entry, Site,
};

/// Fractional bits of the slope.
pub const SHIFT: u32 = 16;

/// LeakyReLU with slope `num / 2^SHIFT`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyRelu {
    /// The model's slope (recorded in the plan).
    pub alpha: f32,
    /// Slope numerator.
    pub num: u64,
}

/// The registry entry.
pub const ENTRY: Entry = elementwise_entry::<LeakyRelu>("LeakyReLU");

impl Elementwise for LeakyRelu {
    fn spec(s: &Site) -> Option<Result<CircuitSpec, String>> {
        let Op::LeakyRelu { alpha } = *s.op() else {
            return None;
        };
        if !(0.0..=1.0).contains(&alpha) {
            return Some(Err(format!(
                "LeakyRelu slope {alpha} outside [0, 1] is not supported"
            )));
        }
        let num = (f64::from(alpha) * f64::from(1u32 << SHIFT)).round() as u64;
        Some(Ok(CircuitSpec::LeakyRelu(LeakyRelu { alpha, num })))
    }
}

impl Activation for LeakyRelu {
    fn kind(&self) -> ActivationKind {
        ActivationKind::LeakyRelu { alpha: self.alpha }
    }

    fn out_bits(&self, w: u32) -> u32 {
        circuits::leaky_relu::out_bits(w)
    }

    fn bounds(&self, _instances: usize, lo: &[f64], hi: &[f64]) -> Result<Bounds, String> {
        let a = self.num as f64 / f64::from(1u32 << SHIFT);
        Ok(monotone(lo, hi, |x| if x >= 0.0 { x } else { a * x }))
    }

    fn circuit(&self, p: &CircuitParams, _scale_bits: u32) -> ShareCircuit {
        circuits::leaky_relu(p, self.num, SHIFT)
    }
}
