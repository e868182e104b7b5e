//! MaxPool over the windows of each plane, one circuit per plane (channel). A ReLU that
//! precedes or follows the MaxPool as the sole consumer is fused into it: the circuit computes
//! `max(window ∪ {0})`.

use mp2ml_ir::circuit::activations::{self as circuits, CircuitParams};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;

use super::{Activation, Bounds, CircuitSpec, Entry, Lowering, Shapes, Site};
use crate::partition::local::pool_windows;

/// MaxPool over one plane, optionally followed by ReLU.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPool {
    /// Kernel `[kh, kw]` (recorded in the plan).
    pub kernel: [usize; 2],
    /// Strides `[sh, sw]` (recorded in the plan).
    pub strides: [usize; 2],
    /// Inputs per plane.
    pub values_in: u32,
    /// Window cells (plane element indices) per output.
    pub windows: Vec<Vec<u32>>,
    /// ReLU fused.
    pub relu: bool,
}

/// The registry entry.
pub const ENTRY: Entry = Entry {
    name: "MaxPool",
    takes,
    lower,
};

/// Whether `first` followed by `next` (its sole consumer) is one fused step.
pub fn fuses(first: &Op, next: &Op) -> bool {
    matches!(
        (first, next),
        (Op::Relu, Op::MaxPool { .. }) | (Op::MaxPool { .. }, Op::Relu)
    )
}

fn takes(s: &Site) -> bool {
    match s.first_op() {
        Some(f) => fuses(f, s.op()),
        None => matches!(s.op(), Op::MaxPool { .. }),
    }
}

fn lower(s: &Site, shapes: &Shapes) -> Result<Lowering, String> {
    let pool = match (s.first_op(), s.op()) {
        (Some(Op::MaxPool { .. }), _) => s.first_op(),
        _ => Some(s.op()),
    };
    let Some(&Op::MaxPool {
        kernel,
        strides,
        pads,
        ..
    }) = pool
    else {
        return Err("not a MaxPool".into());
    };
    let relu = s.first.is_some();
    let (in_shape, out_shape) = (&shapes.input, &shapes.output);
    if in_shape.len() != 3 || out_shape.len() != 3 {
        return Err("MaxPool needs a [N,C,H,W] input".into());
    }
    let (c, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
    let (oh, ow) = (out_shape[1], out_shape[2]);
    let windows: Vec<Vec<u32>> = pool_windows(h, w, kernel, strides, pads, oh, ow)
        .into_iter()
        .map(|(cells, _)| cells)
        .collect();
    Ok(Lowering {
        spec: CircuitSpec::MaxPool(MaxPool {
            kernel,
            strides,
            values_in: (h * w) as u32,
            windows,
            relu,
        }),
        instances: c,
        values_in: h * w,
        values_out: oh * ow,
        gather_plane: (0..(c * h * w) as u32).collect(),
    })
}

impl Activation for MaxPool {
    fn kind(&self) -> ActivationKind {
        ActivationKind::MaxPool {
            kernel: self.kernel,
            strides: self.strides,
            relu: self.relu,
        }
    }

    fn out_bits(&self, w: u32) -> u32 {
        circuits::maxpool::out_bits(w)
    }

    fn bounds(&self, instances: usize, lo: &[f64], hi: &[f64]) -> Result<Bounds, String> {
        let at = |v: &[f64], e: usize| -> Result<f64, String> {
            v.get(e)
                .copied()
                .ok_or_else(|| format!("element {e} of {} has no bound", v.len()))
        };
        let mut l = Vec::new();
        let mut h = Vec::new();
        for inst in 0..instances {
            let base = inst * self.values_in as usize;
            for w in &self.windows {
                let mut a = if self.relu { 0.0 } else { f64::NEG_INFINITY };
                let mut b = a;
                for &c in w {
                    a = a.max(at(lo, base + c as usize)?);
                    b = b.max(at(hi, base + c as usize)?);
                }
                // An empty window: the circuit outputs 0 (its offset h).
                l.push(if a.is_finite() { a } else { 0.0 });
                h.push(if b.is_finite() { b } else { 0.0 });
            }
        }
        Ok((l, h))
    }

    fn circuit(&self, p: &CircuitParams, _scale_bits: u32) -> ShareCircuit {
        circuits::maxpool(p, self.values_in, &self.windows, self.relu)
    }
}
