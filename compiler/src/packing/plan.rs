//! Image-packed plans: a batch-packed plan of a fully fused partition (every linear op reads
//! only the model input and MPC outputs) re-packed op by op with [`PolyMap::build`].
//!
//! - Every `HeOp::Linear` becomes an `HeOp::PolyLinear`: its kernel polynomials (scaled copies
//!   become one-coefficient kernels) and its bias go to the weights file, its terms and output
//!   positions into the server plan.
//! - Every (client tensor, layout, level) a linear op reads becomes an *upload*: the client
//!   packs the model input, or an MPC step's outputs, into that layout and encrypts it at that
//!   level, so the mod-drops of client tensors disappear.
//! - An MPC step reads its values at the positions of the producing op's output layout; the
//!   output likewise. A step or output reading a client tensor directly gets a flat upload.
//!
//! Noise (Huang et al. 2022, §3; `|e·k|∞ ≤ ‖k‖₁·|e|∞`): a wanted coefficient of an output
//! polynomial collects every kernel coefficient times *some* input coefficient's noise, so its
//! fresh-noise factor is Σ over its terms of ‖k‖₁/p, not the row's Σ|W|; [`ImagePlan::fresh`]
//! reports it per output tensor for the parameter choice.

use std::collections::BTreeMap;

use mp2ml_ir::layout::Layout;
use mp2ml_ir::plan::{
    HeOp, HeSegment, HeTensor, ImageLayouts, ImageStep, ImageTensors, MpcBinding, Positions,
    Segment, ServerPlan, StepRef, TensorRef, Upload, WeightsRef,
};
use mp2ml_ir::weights::{IntMatrix, Section, WeightsFile, WeightsWriter};
use sha2::{Digest, Sha256};

use super::conv::PackError;
use super::{PolyMap, Product};

/// An image-packed plan and its weights.
#[derive(Clone, Debug)]
pub struct ImagePlan {
    /// The plan.
    pub server: ServerPlan,
    /// The weights file contents.
    pub weights: Vec<u8>,
    /// Per linear-op output tensor (by name): the fresh-noise factor Σ‖k‖₁/p of its worst
    /// output polynomial.
    pub fresh: BTreeMap<String, f64>,
    /// Products per image (one half), over all ops.
    pub products: usize,
}

/// Who produces a client tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Input,
    Step(StepRef),
}

fn err(s: impl Into<String>) -> PackError {
    PackError(s.into())
}

/// Positions of every element of `l`, in element order (the first slot of each element); an
/// error if an element has no slot (a layout that would drop it).
fn element_positions(l: &Layout) -> Result<Vec<(u32, u32)>, PackError> {
    match l {
        Layout::Scattered { positions, .. } => Ok(positions.clone()),
        _ => {
            let mut v = vec![None; l.len()];
            for (p, c, e) in l.slots() {
                if let Some(x) = v.get_mut(e as usize) {
                    x.get_or_insert((p, c));
                }
            }
            v.into_iter()
                .enumerate()
                .map(|(e, x)| x.ok_or_else(|| err(format!("element {e} has no slot in {l:?}"))))
                .collect()
        }
    }
}

/// Where an element sits: `(polynomial, coefficient)`.
type Slot = (u32, u32);
/// A sparse kernel polynomial: `(coefficient, value)`.
type Kernel = Vec<(u32, i64)>;
/// The `(input, polynomial, kernel)` products of one output polynomial.
type Terms = Vec<(u32, u32, u32)>;

/// The kernel list and `(input, polynomial, kernel)` terms of `map`: scaled copies become
/// one-coefficient kernels (deduplicated by value).
fn kernel_terms(map: &PolyMap) -> (Vec<Kernel>, Vec<Terms>) {
    let mut kernels = map.kernels.clone();
    let mut scalar: BTreeMap<i64, u32> = BTreeMap::new();
    let terms = map
        .outputs
        .iter()
        .map(|ts| {
            ts.iter()
                .map(|t| match *t {
                    Product::Kernel {
                        input,
                        poly,
                        kernel,
                    } => (input, poly, kernel),
                    Product::Scalar { input, poly, value } => {
                        let k = *scalar.entry(value).or_insert_with(|| {
                            kernels.push(vec![(0, value)]);
                            (kernels.len() - 1) as u32
                        });
                        (input, poly, k)
                    }
                })
                .collect()
        })
        .collect();
    (kernels, terms)
}

struct Converter<'a> {
    plan: &'a ServerPlan,
    n: usize,
    tensors: Vec<HeTensor>,
    /// ModDrop outputs of client tensors, to their input.
    alias: BTreeMap<TensorRef, TensorRef>,
    /// Client tensors.
    sources: BTreeMap<TensorRef, Source>,
    /// Element positions of every materialized (image) tensor.
    positions: BTreeMap<TensorRef, Vec<(u32, u32)>>,
    /// Uploads: (source, layout, level) and their tensor.
    uploads: Vec<(Source, Upload, TensorRef)>,
    weights: WeightsWriter,
    fresh: BTreeMap<String, f64>,
    products: usize,
}

impl Converter<'_> {
    fn resolve(&self, mut t: TensorRef) -> TensorRef {
        while let Some(&s) = self.alias.get(&t) {
            t = s;
        }
        t
    }

    /// The tensor of the upload of `src` (whose batch tensor is `t`) in `layout` at `level`.
    fn upload(
        &mut self,
        src: Source,
        t: TensorRef,
        layout: Layout,
        level: usize,
    ) -> Result<TensorRef, PackError> {
        let up = Upload { layout, level };
        if let Some((_, _, r)) = self.uploads.iter().find(|(s, u, _)| *s == src && *u == up) {
            return Ok(*r);
        }
        let positions = element_positions(&up.layout)?;
        let base = &self.plan.tensors[t.index()];
        let k = self.uploads.iter().filter(|(s, _, _)| *s == src).count();
        self.tensors.push(HeTensor {
            name: format!("{}#{k}", base.name),
            shape: base.shape.clone(),
            level,
            polys: Some(up.layout.polys()),
        });
        let r = TensorRef(self.tensors.len() - 1);
        self.positions.insert(r, positions);
        self.uploads.push((src, up, r));
        Ok(r)
    }

    /// The image tensor holding batch tensor `t` at `level`, flat-uploaded if a client makes it.
    fn readable(&mut self, t: TensorRef, level: usize) -> Result<TensorRef, PackError> {
        let src = self.resolve(t);
        if let Some(&s) = self.sources.get(&src) {
            let len = self.plan.tensors[src.index()].len();
            let chunk = self.n;
            return self.upload(s, src, Layout::Flat { len, chunk }, level);
        }
        if self.positions.contains_key(&t) {
            Ok(t)
        } else {
            Err(err(format!("tensor {t} is read before it is computed")))
        }
    }

    /// The polynomial count and element positions of image tensor `t` (one that
    /// [`Converter::readable`] returned).
    fn placed(&self, t: TensorRef) -> Result<(usize, &[Slot]), PackError> {
        let at = self.positions.get(&t);
        let polys = self.tensors.get(t.index()).and_then(|x| x.polys);
        match (polys, at) {
            (Some(polys), Some(at)) => Ok((polys, at)),
            _ => Err(err(format!("tensor {t} has no image layout"))),
        }
    }

    fn linear(
        &mut self,
        op: &HeOp,
        weights: &WeightsFile,
        ops: &mut Vec<HeOp>,
    ) -> Result<u64, PackError> {
        let HeOp::Linear {
            name,
            inputs,
            output,
            matrix,
            level_in,
        } = op
        else {
            return Ok(0);
        };
        let section = weights
            .section(matrix)
            .map_err(|e| err(format!("`{name}`: {e}")))?;
        let (m, st) = match section {
            Section::Csr(m) => (m, None),
            Section::Structured(s) => (
                s.to_csr().map_err(|e| err(format!("`{name}`: {e}")))?,
                Some(s),
            ),
        };
        let shapes: Vec<Vec<usize>> = inputs
            .iter()
            .map(|&i| self.plan.tensors[i.index()].shape.clone())
            .collect();
        let map = PolyMap::build(&m, st.as_ref(), &shapes, self.n)
            .map_err(|e| err(format!("`{name}`: {e}")))?;
        let mut ins = Vec::with_capacity(inputs.len());
        for (&i, layout) in inputs.iter().zip(&map.inputs) {
            let src = self.resolve(i);
            let Some(&s) = self.sources.get(&src) else {
                return Err(err(format!(
                    "`{name}` reads the output of another linear op (a chain); image packing \
                     needs every linear op to read only the input and MPC outputs"
                )));
            };
            ins.push(self.upload(s, src, layout.clone(), *level_in)?);
        }
        let (kernels, terms) = kernel_terms(&map);
        let mut km = IntMatrix {
            rows: kernels.len(),
            cols: self.n,
            row_ptr: vec![0],
            bias: vec![0; kernels.len()],
            ..Default::default()
        };
        for k in &kernels {
            for &(c, v) in k {
                km.col.push(c);
                km.val.push(v);
            }
            km.row_ptr.push(km.col.len() as u64);
        }
        let positions = element_positions(&map.output)?;
        if map.bias.len() != positions.len() {
            return Err(err(format!(
                "`{name}`: {} biases for {} outputs",
                map.bias.len(),
                positions.len()
            )));
        }
        let bm = IntMatrix {
            rows: positions.len(),
            cols: 1,
            row_ptr: vec![0; positions.len() + 1],
            bias: map.bias.clone(),
            ..Default::default()
        };
        // Fresh-noise factor: Σ‖k‖₁ over the terms of the worst output polynomial, over p.
        let l1: Vec<f64> = kernels
            .iter()
            .map(|k| k.iter().map(|&(_, v)| (v as f64).abs()).sum())
            .collect();
        let worst = terms
            .iter()
            .map(|ts| ts.iter().map(|&(_, _, k)| l1[k as usize]).sum::<f64>())
            .fold(0.0, f64::max);
        let p = *self
            .plan
            .public
            .params
            .moduli
            .get(*level_in)
            .ok_or_else(|| err(format!("`{name}`: level {level_in} above the chain")))?
            as f64;
        let out = &mut self.tensors[output.index()];
        out.polys = Some(terms.len());
        self.fresh.insert(out.name.clone(), worst / p);
        let products: usize = terms.iter().map(Vec::len).sum();
        self.products += products;
        self.positions.insert(*output, positions.clone());
        ops.push(HeOp::PolyLinear {
            name: name.clone(),
            inputs: ins,
            output: *output,
            kernels: self.weights.push(&km),
            bias: self.weights.push(&bm),
            terms,
            positions,
            level_in: *level_in,
        });
        Ok((products * self.n) as u64)
    }
}

/// The image path of the runtime runs its MPC steps with Yao only: every step on Yao, and
/// only the size-optimal circuits kept (the depth-optimized ones are more than half of a
/// plan's text, and loading it is most of a small model's start-up time).
fn yao_only(public: &mut mp2ml_ir::plan::ClientPlan) {
    let mut keep: BTreeMap<usize, usize> = BTreeMap::new();
    for st in &public.mpc_steps {
        let k = keep.len();
        keep.entry(st.circuit.index()).or_insert(k);
    }
    let old = std::mem::take(&mut public.circuits);
    let mut kept: Vec<(usize, mp2ml_ir::circuit::ShareCircuit)> = old
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| keep.get(&i).map(|&k| (k, c)))
        .collect();
    kept.sort_by_key(|(k, _)| *k);
    public.circuits = kept.into_iter().map(|(_, c)| c).collect();
    for st in &mut public.mpc_steps {
        st.backend = mp2ml_ir::plan::MpcBackend::Yao;
        st.circuit = mp2ml_ir::plan::CircuitRef(keep[&st.circuit.index()]);
        st.depth_circuit = st.circuit;
        st.gmw_variant = mp2ml_ir::circuit::Style::Size;
    }
}

/// Re-packs the batch plan `plan` (with its weights file) for image packing.
pub fn image_plan(plan: &ServerPlan, weights: &[u8]) -> Result<ImagePlan, PackError> {
    let wf = WeightsFile::from_bytes(weights.to_vec()).map_err(|e| err(e.to_string()))?;
    let n = plan.public.params.n();
    let mut sources = BTreeMap::new();
    sources.insert(TensorRef(0), Source::Input);
    for seg in &plan.segments {
        if let Segment::Mpc(b) = seg {
            sources.insert(b.output, Source::Step(b.step));
        }
    }
    let mut c = Converter {
        plan,
        n,
        tensors: plan.tensors.clone(),
        alias: BTreeMap::new(),
        sources,
        positions: BTreeMap::new(),
        uploads: Vec::new(),
        weights: WeightsWriter::new(),
        fresh: BTreeMap::new(),
        products: 0,
    };
    let mut segments = Vec::with_capacity(plan.segments.len());
    let mut step_inputs: Vec<Positions> = Vec::new();
    for seg in &plan.segments {
        match seg {
            Segment::He(h) => {
                let mut ops = Vec::new();
                let mut macs = 0;
                for op in &h.ops {
                    match op {
                        HeOp::ModDrop {
                            input,
                            output,
                            level,
                        } => {
                            let src = c.resolve(*input);
                            if c.sources.contains_key(&src) {
                                c.alias.insert(*output, *input);
                                continue;
                            }
                            let pos = c.positions.get(input).cloned().ok_or_else(|| {
                                err(format!("mod-drop of tensor {input} before it exists"))
                            })?;
                            c.tensors[output.index()].polys = c.tensors[input.index()].polys;
                            c.positions.insert(*output, pos);
                            ops.push(HeOp::ModDrop {
                                input: *input,
                                output: *output,
                                level: *level,
                            });
                        }
                        HeOp::Linear { .. } => macs += c.linear(op, &wf, &mut ops)?,
                        HeOp::PolyLinear { name, .. } => {
                            return Err(err(format!("`{name}` is image packed already")))
                        }
                    }
                }
                segments.push(Segment::He(HeSegment {
                    name: h.name.clone(),
                    ops,
                    macs,
                }));
            }
            Segment::Mpc(b) => {
                let input = c.readable(b.input, 0)?;
                let (polys, pos) = c.placed(input)?;
                let at = b
                    .gather
                    .iter()
                    .map(|&g| {
                        pos.get(g as usize)
                            .copied()
                            .ok_or_else(|| err(format!("gather index {g} outside its tensor")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                step_inputs.push(Positions { polys, at });
                segments.push(Segment::Mpc(MpcBinding {
                    step: b.step,
                    input,
                    gather: b.gather.clone(),
                    output: b.output,
                }));
            }
        }
    }
    let out_level = plan.public.output.level;
    let output_tensor = c.readable(plan.output_tensor, out_level)?;
    let (polys, at) = c.placed(output_tensor)?;
    let output = Positions {
        polys,
        at: at.to_vec(),
    };
    let of = |s: Source| -> (Vec<Upload>, Vec<TensorRef>) {
        c.uploads
            .iter()
            .filter(|(x, _, _)| *x == s)
            .map(|(_, u, t)| (u.clone(), *t))
            .unzip()
    };
    let (input_uploads, input_tensors) = of(Source::Input);
    let mut steps = Vec::new();
    let mut step_tensors = Vec::new();
    for (k, input) in step_inputs.into_iter().enumerate() {
        let (uploads, ts) = of(Source::Step(StepRef(k)));
        steps.push(ImageStep { input, uploads });
        step_tensors.push(ts);
    }
    let mut public = plan.public.clone();
    yao_only(&mut public);
    public.image = Some(ImageLayouts {
        input: input_uploads,
        steps,
        output,
    });
    let weights = std::mem::take(&mut c.weights).into_bytes();
    let server = ServerPlan {
        version: plan.version,
        model: plan.model.clone(),
        public_hash: public
            .hash()
            .map_err(|e| err(format!("cannot hash the plan: {e}")))?,
        public,
        tensors: c.tensors,
        output_tensor,
        segments,
        weights: WeightsRef {
            file: plan.weights.file.clone(),
            bytes: weights.len() as u64,
            sha256: hex::encode(Sha256::digest(&weights)),
        },
        image: Some(ImageTensors {
            input: input_tensors,
            steps: step_tensors,
        }),
    };
    Ok(ImagePlan {
        server,
        weights,
        fresh: c.fresh,
        products: c.products,
    })
}
