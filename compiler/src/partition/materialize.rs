//! Materialization: the final pass becomes ciphertext tensors (the input, MPC outputs and one
//! Linear per target or cut tensor) and MPC steps with their gather lists.

use std::collections::{BTreeMap, BTreeSet};

use mp2ml_ir::plan::PostProcess;
use mp2ml_ir::tensor::TensorId;

use super::affine::{self, Affine};
use super::fusion::{frontier_of, Ctx, Frontier, Pass};
use super::lowered::{Decision, Lowered, MKind, MTensor, Step, OUTPUT_LEVEL};
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
    let name_of = |t: TensorId| g.get_tensor(t).map(|i| i.name.clone()).unwrap_or_default();

    // Materializes `map` (over the frontier) as a Linear, or returns the frontier entry it
    // copies exactly.
    let materialize = |mt: &mut Vec<MTensor>,
                       f_mt: &[usize],
                       t: TensorId,
                       map: &Affine,
                       nodes: Vec<String>|
     -> usize {
        // Referenced frontier entries.
        let mut used: BTreeSet<usize> = BTreeSet::new();
        for r in &map.rows {
            for &c in &r.cols {
                if let Some(i) = frontier_of(&p, c) {
                    used.insert(i);
                }
            }
        }
        if used.len() == 1 {
            let fi = used.iter().next().copied().unwrap_or(0);
            let f = &p.frontier[fi];
            let ident = map.rows.len() == f.len
                && map.rows.iter().enumerate().all(|(i, r)| {
                    r.bias == 0.0 && r.cols == [f.offset + i as u32] && r.vals == [1.0]
                });
            if ident {
                return f_mt[fi];
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
        let rows = map
            .rows
            .iter()
            .map(|r| affine::Row {
                cols: r
                    .cols
                    .iter()
                    .map(|&c| {
                        let fi = frontier_of(&p, c).unwrap_or(0);
                        local_off.get(&fi).copied().unwrap_or(0) + (c - p.frontier[fi].offset)
                    })
                    .collect(),
                vals: r.vals.clone(),
                bias: r.bias,
            })
            .collect();
        mt.push(MTensor {
            name: name_of(t),
            shape: per_image(&ctx.shape(t)),
            kind: MKind::Linear {
                inputs,
                map: Affine { rows },
                nodes,
            },
            level: 0,
            bound: 0.0,
            noise: NoiseCoeffs::default(),
            output_scale: false,
        });
        mt.len() - 1
    };
    let cone_names = |t: TensorId| -> Vec<String> {
        ctx.cone(t, &frontier_set)
            .0
            .iter()
            .map(|&n| g.node(n).name.clone())
            .collect()
    };

    let mut steps_iter = p.steps.iter();
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
                let map = p.def_map.get(&f.tensor).cloned().unwrap_or_default();
                let names = cone_names(f.tensor);
                let i = materialize(&mut mt, &f_mt, f.tensor, &map, names);
                f_mt.push(i);
            }
            Frontier::Step(k) => {
                let Some(st) = steps_iter.next() else {
                    continue;
                };
                let map = p
                    .use_map
                    .get(st.input.index())
                    .and_then(Option::as_ref)
                    .cloned()
                    .unwrap_or_default();
                // A pure gather from one frontier tensor needs no Linear.
                let gather_src = {
                    let mut src = None;
                    let mut idx = Vec::with_capacity(map.rows.len());
                    let mut ok = !map.rows.is_empty();
                    for r in &map.rows {
                        if !(r.bias == 0.0 && r.vals == [1.0]) {
                            ok = false;
                            break;
                        }
                        let c = r.cols[0];
                        let fi = frontier_of(&p, c);
                        if src.is_some() && src != fi {
                            ok = false;
                            break;
                        }
                        src = fi;
                        idx.push(c - fi.map_or(0, |i| p.frontier[i].offset));
                    }
                    if ok {
                        src.map(|s| (s, idx))
                    } else {
                        None
                    }
                };
                let (input, elem_map): (usize, Vec<u32>) =
                    match (target_mt.get(&st.input), gather_src) {
                        (Some(&i), _) => (i, (0..map.rows.len() as u32).collect()),
                        (None, Some((fi, idx))) => (f_mt[fi], idx),
                        (None, None) => {
                            let names = cone_names(st.input);
                            let i = materialize(&mut mt, &f_mt, st.input, &map, names);
                            target_mt.insert(st.input, i);
                            (i, (0..map.rows.len() as u32).collect())
                        }
                    };
                let gather = st
                    .gather_plane
                    .iter()
                    .map(|&e| elem_map.get(e as usize).copied().unwrap_or(0))
                    .collect();
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
        .cloned()
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
            materialize(&mut mt, &f_mt, ctx.output, &out_map, names)
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
