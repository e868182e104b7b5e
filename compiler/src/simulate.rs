//! Fixed-point plaintext simulation of a server plan.
//!
//! Runs the plan on one image without encryption but with exactly the integer arithmetic of the
//! protocol: the input is `round(Δ_in·x)`; a Linear at level ℓ computes `Σ w·x + bias` with the
//! integer weights of the weights file and divides by `p_ℓ` with rounding (the rescale); ModDrop
//! is the identity; an MPC step runs its actual circuit in plaintext on the shares `a = 0`,
//! `b = v mod q0` with a zero mask, removes the output offset and multiplies by
//! `2^(out_scale_bits − scale_bits)`; the output is divided by `2^output.scale_bits`. Encryption noise is left out,
//! so the result differs from the real protocol by at most the plan's noise bound.
//! The runtime can use it as an oracle.

use mp2ml_ir::circuit::ShareCircuit;
use std::collections::BTreeMap;

use mp2ml_ir::layout::Layout;
use mp2ml_ir::plan::{HeOp, Segment, ServerPlan, StepRef, TensorRef};
use mp2ml_ir::weights::{WeightsError, WeightsFile};

/// A simulation failure.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Input of the wrong size.
    #[error("input has {got} values, the plan expects {expected}")]
    Input {
        /// Expected count.
        expected: usize,
        /// Given count.
        got: usize,
    },
    /// The plan refers to something that does not exist.
    #[error("malformed plan: {0}")]
    Plan(String),
    /// A weights section is bad.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A value left the range the share modulus can represent.
    #[error("value {value} entering MPC step {step} exceeds q0/2 (range analysis violated)")]
    Overflow {
        /// Step.
        step: StepRef,
        /// Value.
        value: i128,
    },
}

fn div_round(a: i128, p: i128) -> i128 {
    (2 * a + p).div_euclid(2 * p)
}

/// Low bits of a value kept apart in the Linear accumulation.
const SPLIT: u32 = 48;

/// round((hi·2^SPLIT + lo) / p) without forming the (possibly > 128-bit) numerator:
/// hi = qh·p + rh, so the quotient is qh·2^SPLIT + round((rh·2^SPLIT + lo) / p).
fn div_round_split(hi: i128, lo: i128, p: i128) -> Option<i128> {
    let (qh, rh) = (hi.div_euclid(p), hi.rem_euclid(p));
    let rest = rh.checked_mul(1 << SPLIT)?.checked_add(lo)?;
    qh.checked_mul(1 << SPLIT)?.checked_add(div_round(rest, p))
}

/// Simulates the plan on one image; returns the output tensor (before post-processing) in
/// real units.
pub fn simulate(
    plan: &ServerPlan,
    weights: &WeightsFile,
    input: &[f32],
) -> Result<Vec<f64>, SimError> {
    let pubp = &plan.public;
    let delta_in = 2f64.powi(pubp.input.scale_bits as i32);
    let delta_out = 2f64.powi(pubp.output.scale_bits as i32);
    let bad = |s: &str| SimError::Plan(s.to_string());
    let expected = plan.tensors.first().map_or(0, |t| t.len());
    if input.len() != expected {
        return Err(SimError::Input {
            expected,
            got: input.len(),
        });
    }
    let mut vals: Vec<Option<Vec<i128>>> = vec![None; plan.tensors.len()];
    vals[0] = Some(
        input
            .iter()
            .map(|&x| (f64::from(x) * delta_in).round() as i128)
            .collect(),
    );
    // Image packing: an upload holds its source's elements (the input or a step's outputs).
    let uploads = upload_sources(plan);
    let get = |vals: &[Option<Vec<i128>>], t: TensorRef| -> Result<Vec<i128>, SimError> {
        let t = uploads.get(&t).map_or(t, |u| u.0);
        vals.get(t.index())
            .and_then(Clone::clone)
            .ok_or_else(|| SimError::Plan(format!("tensor {t} used before it is computed")))
    };
    for seg in &plan.segments {
        match seg {
            Segment::He(h) => {
                for op in &h.ops {
                    match op {
                        HeOp::ModDrop { input, output, .. } => {
                            let v = get(&vals, *input)?;
                            *vals
                                .get_mut(output.index())
                                .ok_or_else(|| bad("bad tensor"))? = Some(v);
                        }
                        HeOp::Linear {
                            inputs,
                            output,
                            matrix,
                            level_in,
                            ..
                        } => {
                            let mut x = Vec::new();
                            for &i in inputs {
                                x.extend(get(&vals, i)?);
                            }
                            let m = weights.matrix(matrix)?;
                            if m.cols != x.len() {
                                return Err(bad("matrix width does not match its inputs"));
                            }
                            let p = i128::from(
                                *pubp
                                    .params
                                    .moduli
                                    .get(*level_in)
                                    .ok_or_else(|| bad("level out of range"))?,
                            );
                            let mut y = Vec::with_capacity(m.rows);
                            for r in 0..m.rows {
                                // Values at the output scale times weights exceed 128 bits:
                                // accumulate x = x_h·2^SPLIT + x_l in two parts.
                                let (mut hi, mut lo) =
                                    (0i128, *m.bias.get(r).ok_or_else(|| bad("bias too short"))?);
                                for (c, w) in m.row(r) {
                                    let v = *x
                                        .get(c as usize)
                                        .ok_or_else(|| bad("matrix column out of range"))?;
                                    let (vh, vl) = (v >> SPLIT, v & ((1 << SPLIT) - 1));
                                    hi = hi
                                        .checked_add(i128::from(w) * vh)
                                        .ok_or_else(|| bad("accumulator overflow"))?;
                                    lo = lo
                                        .checked_add(i128::from(w) * vl)
                                        .ok_or_else(|| bad("accumulator overflow"))?;
                                }
                                y.push(
                                    div_round_split(hi, lo, p)
                                        .ok_or_else(|| bad("accumulator overflow"))?,
                                );
                            }
                            *vals
                                .get_mut(output.index())
                                .ok_or_else(|| bad("bad tensor"))? = Some(y);
                        }
                        HeOp::PolyLinear {
                            inputs,
                            output,
                            kernels,
                            bias,
                            terms,
                            positions,
                            level_in,
                            ..
                        } => {
                            let n = pubp.params.n();
                            let mut polys = Vec::with_capacity(inputs.len());
                            for &i in inputs {
                                let layout = uploads.get(&i).map(|u| u.1).ok_or_else(|| {
                                    bad("a packed op reads a tensor that is not an upload")
                                })?;
                                polys.push(pack(&get(&vals, i)?, layout, n)?);
                            }
                            let km = weights.matrix(kernels)?;
                            let bm = weights.matrix(bias)?;
                            let p = i128::from(
                                *pubp
                                    .params
                                    .moduli
                                    .get(*level_in)
                                    .ok_or_else(|| bad("level out of range"))?,
                            );
                            let mut y = Vec::with_capacity(positions.len());
                            let overflow = || bad("accumulator overflow");
                            for (e, &(poly, coeff)) in positions.iter().enumerate() {
                                // In two parts, as for Linear (values at the output scale
                                // times kernels exceed 128 bits).
                                let (mut hi, mut lo) =
                                    (0i128, *bm.bias.get(e).ok_or_else(|| bad("bias too short"))?);
                                let ts = terms
                                    .get(poly as usize)
                                    .ok_or_else(|| bad("output position outside the op"))?;
                                for &(i, ip, k) in ts {
                                    let x = polys
                                        .get(i as usize)
                                        .and_then(|x| x.get(ip as usize))
                                        .ok_or_else(|| bad("term input out of range"))?;
                                    let (h, l) =
                                        negacyclic_at(x, km.row(k as usize), coeff as usize, n)?;
                                    hi = hi.checked_add(h).ok_or_else(overflow)?;
                                    lo = lo.checked_add(l).ok_or_else(overflow)?;
                                }
                                y.push(div_round_split(hi, lo, p).ok_or_else(overflow)?);
                            }
                            *vals
                                .get_mut(output.index())
                                .ok_or_else(|| bad("bad tensor"))? = Some(y);
                        }
                    }
                }
            }
            Segment::Mpc(b) => {
                let step = pubp.step(b.step).map_err(|e| bad(&e.to_string()))?;
                let circ = pubp
                    .circuit(step.circuit)
                    .map_err(|e| bad(&e.to_string()))?;
                let x = get(&vals, b.input)?;
                let gathered: Vec<i128> = b
                    .gather
                    .iter()
                    .map(|&g| {
                        x.get(g as usize)
                            .copied()
                            .ok_or_else(|| bad("gather index out of range"))
                    })
                    .collect::<Result<_, _>>()?;
                let q0 = i128::try_from(circ.q0).map_err(|_| bad("q0 wider than 127 bits"))?;
                if let Some(&v) = gathered.iter().find(|&&v| 2 * v.abs() >= q0) {
                    return Err(SimError::Overflow {
                        step: b.step,
                        value: v,
                    });
                }
                let up = step
                    .out_scale_bits
                    .checked_sub(pubp.scale_bits)
                    .ok_or_else(|| bad("output scale below Δ"))?;
                let y = run_circuit(circ, &gathered, step.instances)?
                    .into_iter()
                    .map(|v| v << up)
                    .collect();
                *vals
                    .get_mut(b.output.index())
                    .ok_or_else(|| bad("bad tensor"))? = Some(y);
            }
        }
    }
    let out = get(&vals, plan.output_tensor)?;
    Ok(out.into_iter().map(|v| v as f64 / delta_out).collect())
}

/// Image packing: every upload tensor with (its source tensor, its layout).
fn upload_sources(plan: &ServerPlan) -> BTreeMap<TensorRef, (TensorRef, &Layout)> {
    let mut m = BTreeMap::new();
    let (Some(t), Some(l)) = (&plan.image, &plan.public.image) else {
        return m;
    };
    for (&r, u) in t.input.iter().zip(&l.input) {
        m.insert(r, (TensorRef(0), &u.layout));
    }
    for seg in &plan.segments {
        if let Segment::Mpc(b) = seg {
            if let (Some(rs), Some(st)) = (t.steps.get(b.step.index()), l.steps.get(b.step.index()))
            {
                for (&r, u) in rs.iter().zip(&st.uploads) {
                    m.insert(r, (b.output, &u.layout));
                }
            }
        }
    }
    m
}

/// The polynomials of `layout` filled with `x` (zeros elsewhere).
fn pack(x: &[i128], layout: &Layout, n: usize) -> Result<Vec<Vec<i128>>, SimError> {
    let mut polys = vec![vec![0i128; n]; layout.polys()];
    for (p, c, e) in layout.slots() {
        let v = x
            .get(e as usize)
            .ok_or_else(|| SimError::Plan("layout larger than its tensor".into()))?;
        let slot = polys
            .get_mut(p as usize)
            .and_then(|q| q.get_mut(c as usize))
            .ok_or_else(|| SimError::Plan("layout position outside N".into()))?;
        *slot = *v;
    }
    Ok(polys)
}

/// Coefficient `c` of `x · k` in Z[X]/(X^N + 1), for a sparse kernel `k`, as `(hi, lo)` with
/// the value `hi·2^SPLIT + lo` (the inputs split at [`SPLIT`] bits).
fn negacyclic_at(
    x: &[i128],
    k: impl Iterator<Item = (u32, i64)>,
    c: usize,
    n: usize,
) -> Result<(i128, i128), SimError> {
    let (mut hi, mut lo) = (0i128, 0i128);
    let out = || SimError::Plan("kernel or position outside N".into());
    let overflow = || SimError::Plan("accumulator overflow".into());
    for (e, w) in k {
        let e = e as usize;
        // x_j·X^(j+e) lands on c for j = c − e, or on c + N (sign flip) for j = c + N − e.
        let v = match c.checked_sub(e) {
            Some(j) => *x.get(j).ok_or_else(out)?,
            None => -*x
                .get((c + n).checked_sub(e).ok_or_else(out)?)
                .ok_or_else(out)?,
        };
        let (vh, vl) = (v >> SPLIT, v & ((1 << SPLIT) - 1));
        let w = i128::from(w);
        let (ph, pl) = (w.checked_mul(vh), w.checked_mul(vl));
        hi = ph.and_then(|t| hi.checked_add(t)).ok_or_else(overflow)?;
        lo = pl.and_then(|t| lo.checked_add(t)).ok_or_else(overflow)?;
    }
    Ok((hi, lo))
}

/// Runs `instances` instances of a share circuit in plaintext, 64 at a time, on the signed
/// values `v` (client share 0, server share `v mod q0`, zero masks); returns the signed results.
pub fn run_circuit(c: &ShareCircuit, v: &[i128], instances: usize) -> Result<Vec<i128>, SimError> {
    let (vi, vo) = (c.values_in as usize, c.values_out as usize);
    let w = c.share_bits as usize;
    if v.len() != instances * vi {
        return Err(SimError::Plan(
            "gather length does not match the step".into(),
        ));
    }
    let wide = || {
        SimError::Plan(format!(
            "circuit `{}`: q0 or an offset wider than 127 bits",
            c.circuit.name
        ))
    };
    let q0 = i128::try_from(c.q0).map_err(|_| wide())?;
    let in_off = i128::try_from(c.input_offset).map_err(|_| wide())?;
    let out_off = i128::try_from(c.output_offset).map_err(|_| wide())?;
    let mut out = vec![0i128; instances * vo];
    for chunk in (0..instances).collect::<Vec<_>>().chunks(64) {
        let mut g = vec![0u64; c.circuit.garbler_inputs as usize];
        let e = vec![0u64; c.circuit.evaluator_inputs as usize];
        for (lane, &inst) in chunk.iter().enumerate() {
            for j in 0..vi {
                let b = (v[inst * vi + j].rem_euclid(q0) + in_off).rem_euclid(q0) as u128;
                for bit in 0..w {
                    if (b >> bit) & 1 == 1 {
                        if let Some(x) = g.get_mut(j * w + bit) {
                            *x |= 1 << lane;
                        }
                    }
                }
            }
        }
        let res = c
            .circuit
            .eval_bitsliced(&g, &e)
            .map_err(|e| SimError::Plan(e.to_string()))?;
        let zb = c.z_bits() as usize;
        for (lane, &inst) in chunk.iter().enumerate() {
            for o in 0..vo {
                let mut z: i128 = 0;
                for bit in 0..zb {
                    if res.get(o * zb + bit).is_some_and(|&x| (x >> lane) & 1 == 1) {
                        z |= 1 << bit;
                    }
                }
                out[inst * vo + o] = z - out_off;
            }
        }
    }
    Ok(out)
}
