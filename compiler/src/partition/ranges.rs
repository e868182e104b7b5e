//! Value ranges of the materialized tensors: interval analysis from the input interval, or
//! observed (calibrated) bounds.

use super::affine::intervals;
use super::fusion::Ctx;
use super::lowered::{LinMap, Lowered, MKind, Ranges};
use super::noise::{self, NoiseCoeffs};
use super::numel;
use crate::error::CompileError;

/// Interval (or observed) bounds and noise coefficients of every materialized tensor.
///
/// Every lookup below is by construction in range (gathers index their input tensor, Linears
/// read their concatenated inputs, materialized tensors carry graph tensor names); a miss is
/// reported as an internal error rather than bounded by a default, because an under-estimated
/// bound means too small a q0 and silently wrong results.
pub(super) fn analyze_ranges(
    ctx: &Ctx,
    low: &mut Lowered,
    ranges: &Ranges,
) -> Result<(), CompileError> {
    let n = low.tensors.len();
    let mut lo: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut hi: Vec<Vec<f64>> = vec![Vec::new(); n];
    // Observed bound of the graph tensor behind a materialized tensor.
    let observed = |name: &str| -> Result<f64, CompileError> {
        let Ranges::Observed(v) = ranges else {
            return Err(CompileError::internal("observed bound without calibration"));
        };
        ctx.graph
            .tensors()
            .iter()
            .position(|t| t.name == name)
            .and_then(|i| v.get(i).copied().flatten())
            .ok_or_else(|| {
                CompileError::internal(format!(
                    "the calibration run computed no value for `{name}`"
                ))
            })
    };
    let at = |v: &[f64], e: usize, what: &str| -> Result<f64, CompileError> {
        v.get(e).copied().ok_or_else(|| {
            CompileError::internal(format!("{what}: element {e} of {} has no bound", v.len()))
        })
    };
    // Calibrated bounds replace every interval, so none is computed (an ImageNet-size model
    // would hold two f64 per element of every tensor for nothing).
    let calibrated = matches!(ranges, Ranges::Observed(_));
    for i in 0..n {
        let name = low.tensors[i].name.clone();
        let len = numel(&low.tensors[i].shape);
        let (l, h, noise) = match &low.tensors[i].kind {
            MKind::Input => {
                let (a, b) = match ranges {
                    Ranges::Interval(a, b) => (*a, *b),
                    Ranges::Observed(_) => {
                        let m = observed(&name)?;
                        (-m, m)
                    }
                };
                (vec![a; len], vec![b; len], NoiseCoeffs::FRESH)
            }
            MKind::MpcOut { step } => {
                let st = low.steps.get(*step).ok_or_else(|| {
                    CompileError::internal(format!("`{name}` is the output of missing step {step}"))
                })?;
                if calibrated {
                    lo[i] = Vec::new();
                    hi[i] = Vec::new();
                    low.tensors[i].bound = observed(&name)?;
                    low.tensors[i].noise = NoiseCoeffs::FRESH;
                    continue;
                }
                let (il, ih) = (&lo[st.input], &hi[st.input]);
                let gather = |v: &[f64]| -> Result<Vec<f64>, CompileError> {
                    st.gather
                        .iter()
                        .map(|&e| at(v, e as usize, &st.name))
                        .collect()
                };
                let (gl, gh) = (gather(il)?, gather(ih)?);
                let (l, h) = st
                    .spec
                    .activation()
                    .bounds(st.instances, &gl, &gh)
                    .map_err(|e| CompileError::internal(format!("{}: {e}", st.name)))?;
                if l.len() != len || h.len() != len {
                    return Err(CompileError::internal(format!(
                        "step `{}` yields {} bounds for the {len} elements of `{name}`",
                        st.name,
                        l.len()
                    )));
                }
                // The client's fresh encryption: the circuit dropped its input's noise
                // (docs/ARCHITECTURE.md, "Flood the share, truncate in the circuit").
                (l, h, NoiseCoeffs::FRESH)
            }
            MKind::Linear { inputs, map, .. } => {
                let missing = || {
                    CompileError::internal(format!(
                        "the Linear of `{name}` reads a column beyond its inputs"
                    ))
                };
                match map {
                    LinMap::Rows(map) => {
                        let mut cl = Vec::new();
                        let mut ch = Vec::new();
                        let mut col_noise = Vec::new();
                        let mut col_bound = Vec::new();
                        for &f in inputs {
                            let flen = numel(&low.tensors[f].shape);
                            cl.extend_from_slice(&lo[f]);
                            ch.extend_from_slice(&hi[f]);
                            let nf = low.tensors[f].noise;
                            let bf = low.tensors[f].bound;
                            col_noise.extend(std::iter::repeat_n(nf, flen));
                            col_bound.extend(std::iter::repeat_n(bf, flen));
                        }
                        let (l, h) = if calibrated {
                            (Vec::new(), Vec::new())
                        } else {
                            intervals(map, &cl, &ch).ok_or_else(missing)?
                        };
                        let nz = noise::linear(map, &col_noise, &col_bound, ctx.scale_bits)
                            .ok_or_else(missing)?;
                        (l, h, nz)
                    }
                    LinMap::Conv(s) => {
                        // Inputs by first column.
                        let mut per_input = Vec::with_capacity(inputs.len());
                        let mut off = 0u32;
                        for &f in inputs {
                            per_input.push((off, low.tensors[f].noise, low.tensors[f].bound));
                            off += numel(&low.tensors[f].shape) as u32;
                        }
                        let nz =
                            noise::structured(s, &per_input, ctx.scale_bits).ok_or_else(missing)?;
                        // Calibrated bounds replace the intervals below; interval analysis
                        // streams the rows (never held as a matrix).
                        let (l, h) = match ranges {
                            Ranges::Observed(_) => (Vec::new(), Vec::new()),
                            Ranges::Interval(..) => {
                                let mut cl = Vec::new();
                                let mut ch = Vec::new();
                                for &f in inputs {
                                    cl.extend_from_slice(&lo[f]);
                                    ch.extend_from_slice(&hi[f]);
                                }
                                let mut l = vec![0.0; len];
                                let mut h = vec![0.0; len];
                                let mut bad = false;
                                s.for_each_row(|r, taps, b| {
                                    let (mut a, mut z) = (b, b);
                                    for &(c, v) in taps {
                                        let (Some(&x0), Some(&x1)) =
                                            (cl.get(c as usize), ch.get(c as usize))
                                        else {
                                            bad = true;
                                            return;
                                        };
                                        if v >= 0.0 {
                                            a += v * x0;
                                            z += v * x1;
                                        } else {
                                            a += v * x1;
                                            z += v * x0;
                                        }
                                    }
                                    if let (Some(x), Some(y)) = (l.get_mut(r), h.get_mut(r)) {
                                        *x = a;
                                        *y = z;
                                    }
                                });
                                if bad {
                                    return Err(missing());
                                }
                                (l, h)
                            }
                        };
                        (l, h, nz)
                    }
                    LinMap::Ident { .. } | LinMap::Opaque { .. } => {
                        return Err(CompileError::internal(format!(
                            "`{name}` is a Linear without a materialized map"
                        )))
                    }
                }
            }
        };
        let bound = match ranges {
            Ranges::Interval(..) => l.iter().chain(h.iter()).fold(0.0f64, |m, x| m.max(x.abs())),
            Ranges::Observed(_) => observed(&name)?,
        };
        // With observed ranges, later intervals start from the observed bounds.
        let (l, h) = match ranges {
            Ranges::Observed(_) => (Vec::new(), Vec::new()),
            Ranges::Interval(..) => (l, h),
        };
        lo[i] = l;
        hi[i] = h;
        low.tensors[i].bound = bound;
        low.tensors[i].noise = noise;
    }
    Ok(())
}
