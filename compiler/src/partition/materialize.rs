//! Materialization: the final pass becomes ciphertext tensors (the input, MPC outputs and one
//! Linear per target or cut tensor) and MPC steps with their gather lists.

use std::collections::{BTreeMap, BTreeSet};

use mp2ml_ir::plan::PostProcess;
use mp2ml_ir::tensor::TensorId;

use super::affine;
use super::fusion::{frontier_of, Ctx, Frontier, Pass};
use super::lowered::{Decision, LinMap, Lowered, MKind, MTensor, Step, OUTPUT_LEVEL};
use super::noise::NoiseCoeffs;
use super::per_image;
use crate::error::{CompileError, ErrorKind};

/// Builds the materialized tensors and steps from the final pass (levels, bounds and noise
/// are filled in later).
pub(super) fn build(
    ctx: &Ctx,
    p: Pass,
    decisions: Vec<Decision>,
    post: PostProcess,
) -> Result<Lowered, CompileError> {
    let g = ctx.graph;
    let frontier_set: BTreeSet<TensorId> = p.frontier.iter().map(|f| f.tensor).collect();
    let mut mt: Vec<MTensor> = Vec::new();
    let mut f_mt: Vec<usize> = Vec::with_capacity(p.frontier.len());
    let mut target_mt: BTreeMap<TensorId, usize> = BTreeMap::new();
    let mut steps: Vec<Step> = Vec::new();
    let name_of = |t: TensorId| g.tensor(t).name.clone();
    // Every column of a pass's maps lies in a frontier entry (the first one starts at 0).
    let entry_of = |c: u32| {
        frontier_of(&p, c)
            .ok_or_else(|| CompileError::internal(format!("column {c} lies in no frontier tensor")))
    };

    // Materializes `map` (over the frontier) as a Linear, or returns the frontier entry it
    // copies exactly.
    let materialize = |mt: &mut Vec<MTensor>,
                       f_mt: &[usize],
                       t: TensorId,
                       map: &LinMap,
                       nodes: Vec<String>|
     -> Result<usize, CompileError> {
        // Referenced frontier entries.
        let mut used: BTreeSet<usize> = BTreeSet::new();
        match map {
            LinMap::Rows(a) => {
                for r in &a.rows {
                    for &c in &r.cols {
                        used.insert(entry_of(c)?);
                    }
                }
            }
            LinMap::Conv(s) => {
                for term in &s.terms {
                    used.insert(entry_of(term.col)?);
                }
            }
            LinMap::Ident { col, .. } => {
                used.insert(entry_of(*col)?);
            }
            LinMap::Opaque { macs, .. } => {
                return Err(CompileError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "the fused map of `{}` would hold about {:.0} M entries and is not convolution-shaped; the lowering does not expand maps that large",
                        name_of(t),
                        *macs as f64 / 1e6
                    ),
                ))
            }
        }
        if let (1, Some(&fi)) = (used.len(), used.first()) {
            let f = &p.frontier[fi];
            let ident = match map {
                LinMap::Rows(a) => {
                    a.rows.len() == f.len
                        && a.rows.iter().enumerate().all(|(i, r)| {
                            r.bias == 0.0 && r.cols == [f.offset + i as u32] && r.vals == [1.0]
                        })
                }
                LinMap::Conv(s) => s.as_identity() == Some(f.offset) && s.len() == f.len,
                LinMap::Ident { col, len } => *col == f.offset && *len == f.len,
                LinMap::Opaque { .. } => false,
            };
            if ident {
                return Ok(f_mt[fi]);
            }
        }
        let mut local_off = BTreeMap::new();
        let mut acc = 0u32;
        let mut inputs = Vec::new();
        for &fi in &used {
            local_off.insert(fi, acc);
            acc += p.frontier[fi].len as u32;
            inputs.push(f_mt[fi]);
        }
        let local_col = |c: u32| -> Result<u32, CompileError> {
            let fi = entry_of(c)?;
            // `used` holds every entry a column lies in, so `local_off` has `fi`.
            let off = local_off.get(&fi).copied().ok_or_else(|| {
                CompileError::internal(format!("frontier entry {fi} has no offset"))
            })?;
            Ok(off + (c - p.frontier[fi].offset))
        };
        let local = match map {
            LinMap::Rows(a) => {
                let mut rows = Vec::with_capacity(a.rows.len());
                for r in &a.rows {
                    let cols = r
                        .cols
                        .iter()
                        .map(|&c| local_col(c))
                        .collect::<Result<_, CompileError>>()?;
                    rows.push(affine::Row {
                        cols,
                        vals: r.vals.clone(),
                        bias: r.bias,
                    });
                }
                LinMap::Rows(affine::Affine { rows })
            }
            LinMap::Conv(s) => LinMap::Conv(
                s.remap_cols(|c| local_col(c).ok())
                    .ok_or_else(|| CompileError::internal("a term reads no frontier entry"))?,
            ),
            LinMap::Ident { col, len } => LinMap::Ident {
                col: local_col(*col)?,
                len: *len,
            },
            LinMap::Opaque { .. } => return Err(CompileError::internal("opaque map")),
        };
        mt.push(MTensor {
            name: name_of(t),
            shape: per_image(&ctx.shape(t)),
            kind: MKind::Linear {
                inputs,
                map: local,
                nodes,
            },
            level: 0,
            bound: 0.0,
            noise: NoiseCoeffs::default(),
            output_scale: false,
        });
        Ok(mt.len() - 1)
    };
    let cone_names = |t: TensorId| -> Vec<String> {
        ctx.cone(t, &frontier_set)
            .0
            .iter()
            .map(|&n| g.node(n).name.clone())
            .collect()
    };

    for f in &p.frontier {
        match f.kind {
            Frontier::Input => {
                mt.push(MTensor {
                    name: name_of(f.tensor),
                    shape: per_image(&ctx.shape(f.tensor)),
                    kind: MKind::Input,
                    level: 0,
                    bound: 0.0,
                    noise: NoiseCoeffs::default(),
                    output_scale: false,
                });
                f_mt.push(mt.len() - 1);
            }
            Frontier::Cut => {
                // A pass defines every cut tensor it adds to the frontier.
                let map = p.def_map.get(&f.tensor).ok_or_else(|| {
                    CompileError::internal(format!("cut `{}` has no map", name_of(f.tensor)))
                })?;
                let names = cone_names(f.tensor);
                let i = materialize(&mut mt, &f_mt, f.tensor, map, names)?;
                f_mt.push(i);
            }
            Frontier::Step(k) => {
                let st = p.steps.get(k).ok_or_else(|| {
                    CompileError::internal(format!("frontier names missing step {k}"))
                })?;
                // `Ctx::pass` refuses a step whose input has no map.
                let map = p
                    .use_map
                    .get(st.input.index())
                    .and_then(Option::as_ref)
                    .ok_or_else(|| {
                        CompileError::internal(format!("step `{}` input has no map", st.name))
                    })?;
                // A pure gather from one frontier tensor needs no Linear.
                let gather_src = match map {
                    LinMap::Rows(a) => {
                        let mut src = None;
                        let mut idx = Vec::with_capacity(a.rows.len());
                        let mut ok = !a.rows.is_empty();
                        for r in &a.rows {
                            if !(r.bias == 0.0 && r.vals == [1.0]) {
                                ok = false;
                                break;
                            }
                            let c = r.cols[0];
                            let fi = entry_of(c)?;
                            if src.is_some_and(|s| s != fi) {
                                ok = false;
                                break;
                            }
                            src = Some(fi);
                            idx.push(c - p.frontier[fi].offset);
                        }
                        if ok {
                            src.map(|s| (s, idx))
                        } else {
                            None
                        }
                    }
                    LinMap::Ident { col, len } => {
                        let fi = entry_of(*col)?;
                        let o = *col - p.frontier[fi].offset;
                        Some((fi, (o..o + *len as u32).collect()))
                    }
                    LinMap::Conv(s) => match s.as_identity() {
                        Some(col) => {
                            let fi = entry_of(col)?;
                            let o = col - p.frontier[fi].offset;
                            Some((fi, (o..o + s.len() as u32).collect()))
                        }
                        None => None,
                    },
                    LinMap::Opaque { .. } => None,
                };
                let (input, elem_map): (usize, Vec<u32>) =
                    match (target_mt.get(&st.input), gather_src) {
                        (Some(&i), _) => (i, (0..map.len() as u32).collect()),
                        (None, Some((fi, idx))) => (f_mt[fi], idx),
                        (None, None) => {
                            let names = cone_names(st.input);
                            let i = materialize(&mut mt, &f_mt, st.input, map, names)?;
                            target_mt.insert(st.input, i);
                            (i, (0..map.len() as u32).collect())
                        }
                    };
                // The step's gather plane indexes its input tensor, which `elem_map` covers.
                let gather = st
                    .gather_plane
                    .iter()
                    .map(|&e| {
                        elem_map.get(e as usize).copied().ok_or_else(|| {
                            CompileError::internal(format!(
                                "step `{}` gathers element {e} of {}",
                                st.name,
                                elem_map.len()
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                mt.push(MTensor {
                    name: name_of(st.output),
                    shape: per_image(&ctx.shape(st.output)),
                    kind: MKind::MpcOut { step: k },
                    level: 0,
                    bound: 0.0,
                    noise: NoiseCoeffs::default(),
                    output_scale: false,
                });
                let output = mt.len() - 1;
                f_mt.push(output);
                steps.push(Step {
                    name: st.name.clone(),
                    kind: st.kind.clone(),
                    spec: st.spec.clone(),
                    input,
                    gather,
                    output,
                    instances: st.instances,
                    values_in: st.values_in,
                    values_out: st.values_out,
                });
            }
        }
    }
    let out_map = p
        .use_map
        .get(ctx.output.index())
        .and_then(Option::as_ref)
        .ok_or_else(|| {
            CompileError::new(
                ErrorKind::Unsupported,
                "the model output is not computed on the HE side",
            )
        })?;
    let output = match target_mt.get(&ctx.output) {
        Some(&i) => i,
        None => {
            let names = cone_names(ctx.output);
            materialize(&mut mt, &f_mt, ctx.output, out_map, names)?
        }
    };
    Ok(Lowered {
        tensors: mt,
        steps,
        output,
        output_name: name_of(ctx.output),
        post,
        decisions,
        out_level: OUTPUT_LEVEL,
    })
}
