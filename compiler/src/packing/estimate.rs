//! The cost of a plan's linear layers in image packing, beside batch packing, per image.
//!
//! Every `HeOp::Linear` of a (batch-packed) plan is re-packed with [`PolyMap::build`] from the
//! integer matrix it stores. Assumptions (image packing: one image per set of polynomials, so
//! the batch does not divide anything):
//! - residues travel bit-packed (⌈log2 q⌉ bits per coefficient and limb), as the runtime sends
//!   them;
//! - the client uploads each input layout's polynomials as seeded encryptions (full c0 of
//!   `N·(ℓ+1)` residues plus a 32-byte seed), again for every layout an MPC output feeds;
//! - HE→MPC: the c1 of every polynomial holding circuit inputs goes to the client offline
//!   (`N` residues at level 0), online only the wanted coefficients of c0;
//! - batch packing: [`batch_traffic`] without the garbled circuits (keys, seeds, c1 halves,
//!   c0 windows), divided by the batch;
//! - output: c1 offline, the wanted coefficients of c0 online, per limb of the output level;
//! - time: the prices of [`crate::cost::he`]: both halves of every product (a forward
//!   transform per input polynomial, a pointwise product per term, an inverse transform and a
//!   rescale per output polynomial), the uploads' encryptions, expansions and entry floods, the
//!   masks' encryptions and the client's c1·s; batch packing: [`crate::cost::he::seconds`] of
//!   the plan; in both, packing and decoding the ciphertext frames
//!   ([`crate::cost::he::wire`]).
//!
//! The garbled circuits are the same in both packings and are not counted here.

use std::collections::BTreeMap;

use mp2ml_ir::layout::StructuredMatrix;
use mp2ml_ir::plan::{HeOp, Segment, ServerPlan, TensorRef};
use mp2ml_ir::weights::{IntMatrix, Section, WeightsFile};
use serde::Serialize;

use super::cost::MapCost;
use super::traffic::batch_traffic;
use super::{MapKind, PolyMap, Product};

/// Largest structured section expanded to CSR for the estimate (entries); larger ones are
/// estimated term by term ([`per_term_map`]).
const EXPAND_LIMIT: usize = 1 << 22;

/// The image-packed cost shape of a structured section too large to expand: one HomConv (or
/// scaled copy) per convolution term, their products and output polynomials added (an upper
/// bound: terms whose output layouts agree could share output polynomials).
fn per_term_map(
    s: &StructuredMatrix,
    shapes: &[Vec<usize>],
    n: usize,
) -> Result<PolyMap, super::conv::PackError> {
    let empty = IntMatrix {
        rows: s.rows,
        cols: s.cols,
        row_ptr: vec![0; s.rows + 1],
        ..Default::default()
    };
    let mut offsets = Vec::with_capacity(shapes.len());
    let mut acc = 0usize;
    for sh in shapes {
        offsets.push(acc);
        acc += sh.iter().product::<usize>();
    }
    let mut out: Option<PolyMap> = None;
    for t in &s.convs {
        let one = StructuredMatrix {
            rows: s.rows,
            cols: s.cols,
            convs: vec![t.clone()],
            extra: Vec::new(),
            bias: s.bias.clone(),
        };
        let m = PolyMap::build(&empty, Some(&one), shapes, n)?;
        let k = offsets
            .partition_point(|&o| o <= t.geom.col_offset)
            .saturating_sub(1);
        match &mut out {
            None => out = Some(m),
            Some(a) => {
                let base = a.kernels.len() as u32;
                if let (Some(dst), Some(src)) = (a.inputs.get_mut(k), m.inputs.get(k)) {
                    *dst = src.clone();
                }
                if m.output.polys() > a.output.polys() {
                    a.output = m.output.clone();
                }
                a.kernels.extend(m.kernels);
                a.outputs.extend(m.outputs.into_iter().map(|terms| {
                    terms
                        .into_iter()
                        .map(|p| match p {
                            Product::Kernel {
                                input,
                                poly,
                                kernel,
                            } => Product::Kernel {
                                input,
                                poly,
                                kernel: kernel + base,
                            },
                            other => other,
                        })
                        .collect()
                }));
            }
        }
    }
    out.ok_or_else(|| super::conv::PackError("a structured section without terms".into()))
}

/// One linear op in image packing.
#[derive(Clone, Debug, Serialize)]
pub struct ImageLinear {
    /// Op name (fused model nodes).
    pub name: String,
    /// HomConv, HomFC or copies.
    pub kind: String,
    /// Products per image (one half).
    pub products: usize,
    /// Input polynomials (all layouts).
    pub input_polys: usize,
    /// Output polynomials.
    pub output_polys: usize,
    /// Level of the inputs.
    pub level_in: usize,
    /// Whether an input is the output of another linear op (a chain): image packing then
    /// needs the fused form, whose cost is not counted here.
    pub chained: bool,
}

/// Both packings' HE cost per image at the plan's batch.
#[derive(Clone, Debug, Serialize)]
pub struct PackingEstimate {
    /// Ring dimension.
    pub n: usize,
    /// The plan's batch (images per ciphertext group in batch packing).
    pub batch: usize,
    /// Linear ops in image packing.
    pub linears: Vec<ImageLinear>,
    /// Image packing: ciphertext bytes per image.
    pub image_bytes: f64,
    /// Image packing: HE seconds per image (both halves).
    pub image_seconds: f64,
    /// Batch packing: ciphertext bytes per image at the plan's batch.
    pub batch_bytes: f64,
    /// Batch packing: HE seconds per image at the plan's batch.
    pub batch_seconds: f64,
}

impl PackingEstimate {
    /// The packing with the smaller estimated time (bytes as the tie-break), and why.
    pub fn cheaper(&self) -> (&'static str, String) {
        let image = (self.image_seconds, self.image_bytes);
        let batch = (self.batch_seconds, self.batch_bytes);
        if image < batch {
            (
                "image",
                format!(
                    "image packing: {:.1} ms and {:.2} MB of ciphertexts per image against {:.1} ms and {:.2} MB in batch packing at batch {}",
                    image.0 * 1e3,
                    image.1 / 1e6,
                    batch.0 * 1e3,
                    batch.1 / 1e6,
                    self.batch
                ),
            )
        } else {
            (
                "batch",
                format!(
                    "batch packing at batch {}: {:.1} ms and {:.2} MB of ciphertexts per image against {:.1} ms and {:.2} MB in image packing",
                    self.batch,
                    batch.0 * 1e3,
                    batch.1 / 1e6,
                    image.0 * 1e3,
                    image.1 / 1e6
                ),
            )
        }
    }
}

/// Estimates both packings for the batch-packed `plan` with its weights file.
pub fn estimate(plan: &ServerPlan, weights: &WeightsFile) -> Result<PackingEstimate, String> {
    let p = &plan.public;
    let n = p.params.n();
    let nf = n as f64;
    let pr = crate::cost::he::Prices::of(plan);
    // Residues travel bit-packed: ⌈log2 q⌉ bits per coefficient and limb.
    let bits: Vec<f64> = p
        .params
        .moduli
        .iter()
        .map(|&q| f64::from(64 - q.leading_zeros()))
        .collect();
    let limb_bytes =
        |level: usize, coeffs: f64| coeffs * bits.iter().take(level + 1).sum::<f64>() / 8.0;
    let residues = |level: usize| limb_bytes(level, nf);
    // Producer of every tensor: linear op output or MPC output (or the input, tensor 0).
    let mut linear_out: BTreeMap<TensorRef, usize> = BTreeMap::new();
    let mut maps: Vec<(PolyMap, usize)> = Vec::new();
    let mut est = PackingEstimate {
        n,
        batch: p.batch,
        linears: Vec::new(),
        image_bytes: 0.0,
        image_seconds: 0.0,
        batch_bytes: 0.0,
        batch_seconds: 0.0,
    };
    // Batch packing: every message but the garbled circuits, as the runtime sends them.
    let traffic = batch_traffic(p, p.batch);
    est.batch_bytes = traffic.he_total() / traffic.images as f64;
    est.batch_seconds = crate::cost::he::seconds(plan).total();
    // Mod-drops are limb truncations: every tensor a mod-drop makes is its source.
    let mut alias: BTreeMap<TensorRef, TensorRef> = BTreeMap::new();
    let resolve = |alias: &BTreeMap<TensorRef, TensorRef>, mut t: TensorRef| {
        while let Some(&s) = alias.get(&t) {
            t = s;
        }
        t
    };
    for seg in &plan.segments {
        match seg {
            Segment::He(h) => {
                for op in &h.ops {
                    match op {
                        HeOp::Linear {
                            name,
                            inputs,
                            output,
                            matrix,
                            level_in,
                            ..
                        } => {
                            let section = weights.section(matrix).map_err(|e| e.to_string())?;
                            let shapes: Vec<Vec<usize>> = inputs
                                .iter()
                                .map(|&i| {
                                    plan.tensor(i)
                                        .map(|t| t.shape.clone())
                                        .map_err(|e| format!("`{name}`: {e}"))
                                })
                                .collect::<Result<_, _>>()?;
                            let map = match section {
                                Section::Csr(m) => PolyMap::build(&m, None, &shapes, n),
                                Section::Structured(s) if matrix.nnz <= EXPAND_LIMIT => {
                                    let m = s.to_csr().map_err(|e| e.to_string())?;
                                    PolyMap::build(&m, Some(&s), &shapes, n)
                                }
                                Section::Structured(s) => per_term_map(&s, &shapes, n),
                            }
                            .map_err(|e| format!("`{name}`: {e}"))?;
                            let c = MapCost::of(&map);
                            // Both halves: transforms in and out, products, copies.
                            est.image_seconds += crate::cost::he::poly_linear(
                                &pr,
                                *level_in,
                                c.forward,
                                c.products + c.scalars,
                                c.inverse,
                            );
                            let chained = inputs
                                .iter()
                                .any(|&i| linear_out.contains_key(&resolve(&alias, i)));
                            // Uploads of the inputs in this op's layouts (the input and MPC
                            // outputs; the client encrypts one copy per consuming layout).
                            for (l, &i) in map.inputs.iter().zip(inputs) {
                                if !linear_out.contains_key(&resolve(&alias, i)) {
                                    let lvl = plan.tensor(i).ok().map_or(0, |t| t.level);
                                    est.image_bytes += l.polys() as f64 * (residues(lvl) + 32.0);
                                    est.image_seconds += l.polys() as f64 * pr.upload(lvl, n);
                                }
                            }
                            est.linears.push(ImageLinear {
                                name: name.clone(),
                                kind: match map.kind {
                                    MapKind::Conv => "HomConv",
                                    MapKind::Dense => "HomFC",
                                    MapKind::Copy => "copy",
                                }
                                .into(),
                                products: c.products,
                                input_polys: c.input_polys,
                                output_polys: c.output_polys,
                                level_in: *level_in,
                                chained,
                            });
                            linear_out.insert(*output, maps.len());
                            maps.push((map, *level_in));
                        }
                        HeOp::ModDrop { input, output, .. } => {
                            alias.insert(*output, *input);
                        }
                        HeOp::PolyLinear { name, .. } => {
                            return Err(format!(
                                "`{name}` is image packed already (estimate its batch plan)"
                            ))
                        }
                    }
                }
            }
            Segment::Mpc(bind) => {
                let Ok(st) = p.step(bind.step) else {
                    continue;
                };
                // c1 of the polynomials holding the step's inputs, and the wanted c0s.
                let src = resolve(&alias, bind.input);
                let polys = linear_out
                    .get(&src)
                    .and_then(|&k| maps.get(k))
                    .map_or(st.values_in, |(m, _)| m.output.polys());
                est.image_bytes += polys as f64 * residues(0) + limb_bytes(0, st.values_in as f64);
                est.image_seconds += polys as f64 * pr.unmask(0, n);
            }
        }
    }
    let out = resolve(&alias, plan.output_tensor);
    let out_level = p.output.level;
    let (polys, wanted) = linear_out
        .get(&out)
        .and_then(|&k| maps.get(k))
        .map_or((1, 1), |(m, _)| (m.output.polys(), m.output.len()));
    est.image_bytes += polys as f64 * residues(out_level) + limb_bytes(out_level, wanted as f64);
    est.image_seconds += polys as f64 * pr.unmask(out_level, n);
    // Packing and decoding the frames of both packings' ciphertexts.
    est.image_seconds += crate::cost::he::wire(est.image_bytes);
    est.batch_seconds += crate::cost::he::wire(est.batch_bytes);
    Ok(est)
}
