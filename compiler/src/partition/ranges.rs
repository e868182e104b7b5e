//! Value ranges of the materialized tensors: interval analysis from the input interval, or
//! observed (calibrated) bounds.

use std::collections::BTreeMap;

use super::affine::intervals;
use super::fusion::Ctx;
use super::lowered::{CircuitSpec, Lowered, MKind, Ranges, LEAKY_SHIFT};
use super::noise::{self, NoiseCoeffs};
use super::numel;

/// Bounds of an elementwise activation's outputs from the bounds of its inputs.
fn activation_interval(spec: &CircuitSpec, lo: &[f64], hi: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let f = |g: &dyn Fn(f64) -> f64| -> (Vec<f64>, Vec<f64>) {
        (
            lo.iter().map(|&x| g(x)).collect(),
            hi.iter().map(|&x| g(x)).collect(),
        )
    };
    match spec {
        CircuitSpec::Relu => f(&|x| x.max(0.0)),
        CircuitSpec::Clip { min, max } => f(&|x| x.clamp(f64::from(*min), f64::from(*max))),
        CircuitSpec::LeakyRelu { num } => {
            let a = *num as f64 / f64::from(1u32 << LEAKY_SHIFT);
            f(&|x| if x >= 0.0 { x } else { a * x })
        }
        CircuitSpec::Square => {
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
            (l, h)
        }
        CircuitSpec::MaxPool { .. } => (lo.to_vec(), hi.to_vec()),
    }
}

/// Interval (or observed) bounds and noise coefficients of every materialized tensor.
pub(super) fn analyze_ranges(ctx: &Ctx, low: &mut Lowered, ranges: &Ranges) {
    let n = low.tensors.len();
    let mut lo: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut hi: Vec<Vec<f64>> = vec![Vec::new(); n];
    let step_of_out: BTreeMap<usize, usize> = low
        .steps
        .iter()
        .enumerate()
        .map(|(k, s)| (s.output, k))
        .collect();
    // Graph tensor of each materialized tensor, for observed ranges.
    let observed = |name: &str| -> Option<f64> {
        match ranges {
            Ranges::Observed(v) => ctx
                .graph
                .tensors()
                .iter()
                .position(|t| t.name == name)
                .and_then(|i| v.get(i).copied()),
            Ranges::Interval(..) => None,
        }
    };
    for i in 0..n {
        let len = numel(&low.tensors[i].shape);
        let (l, h, noise) = match &low.tensors[i].kind {
            MKind::Input => {
                let (a, b) = match ranges {
                    Ranges::Interval(a, b) => (*a, *b),
                    Ranges::Observed(_) => {
                        let m = observed(&low.tensors[i].name).unwrap_or(1.0);
                        (-m, m)
                    }
                };
                (vec![a; len], vec![b; len], NoiseCoeffs::FRESH)
            }
            MKind::MpcOut { .. } => {
                let k = step_of_out.get(&i).copied().unwrap_or(0);
                let st = &low.steps[k];
                let (il, ih) = (&lo[st.input], &hi[st.input]);
                let gl: Vec<f64> = st
                    .gather
                    .iter()
                    .map(|&e| il.get(e as usize).copied().unwrap_or(0.0))
                    .collect();
                let gh: Vec<f64> = st
                    .gather
                    .iter()
                    .map(|&e| ih.get(e as usize).copied().unwrap_or(0.0))
                    .collect();
                let (mut l, mut h) = match &st.spec {
                    CircuitSpec::MaxPool {
                        values_in,
                        windows,
                        relu,
                    } => {
                        let mut l = Vec::new();
                        let mut h = Vec::new();
                        for inst in 0..st.instances {
                            let base = inst * *values_in as usize;
                            for w in windows {
                                let mut a = if *relu { 0.0 } else { f64::NEG_INFINITY };
                                let mut b = a;
                                for &c in w {
                                    a = a.max(gl.get(base + c as usize).copied().unwrap_or(0.0));
                                    b = b.max(gh.get(base + c as usize).copied().unwrap_or(0.0));
                                }
                                l.push(if a.is_finite() { a } else { 0.0 });
                                h.push(if b.is_finite() { b } else { 0.0 });
                            }
                        }
                        (l, h)
                    }
                    spec => activation_interval(spec, &gl, &gh),
                };
                l.resize(len, 0.0);
                h.resize(len, 0.0);
                (l, h, NoiseCoeffs::FRESH)
            }
            MKind::Linear { inputs, map, .. } => {
                let mut cl = Vec::new();
                let mut ch = Vec::new();
                let mut col_noise = Vec::new();
                let mut col_bound = Vec::new();
                for &f in inputs {
                    cl.extend_from_slice(&lo[f]);
                    ch.extend_from_slice(&hi[f]);
                    let nf = low.tensors[f].noise;
                    let bf = low.tensors[f].bound;
                    col_noise.extend(std::iter::repeat_n(nf, lo[f].len()));
                    col_bound.extend(std::iter::repeat_n(bf, lo[f].len()));
                }
                let (l, h) = intervals(map, &cl, &ch);
                let nz = noise::linear(map, &col_noise, &col_bound, ctx.scale_bits);
                (l, h, nz)
            }
        };
        let interval_bound = l.iter().chain(h.iter()).fold(0.0f64, |m, x| m.max(x.abs()));
        let bound = match ranges {
            Ranges::Interval(..) => interval_bound,
            Ranges::Observed(_) => observed(&low.tensors[i].name).unwrap_or(interval_bound),
        };
        // With observed ranges, later intervals start from the observed bounds.
        let (l, h) = match ranges {
            Ranges::Observed(_) => (vec![-bound; len], vec![bound; len]),
            Ranges::Interval(..) => (l, h),
        };
        lo[i] = l;
        hi[i] = h;
        low.tensors[i].bound = bound;
        low.tensors[i].noise = noise;
    }
}
