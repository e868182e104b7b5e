//! Partition of a graph into HE segments and MPC steps, with linear fusion, levels and ranges.
//!
//! Every linear tensor is an affine map over *frontier* tensors (graph input, MPC outputs and,
//! for unfused chains, cut tensors), obtained by composing per-op [`local`] maps. Each tensor an
//! MPC step consumes, and the graph output, is *materialized* by one Linear over its frontier
//! tensors (fused, depth 1), or — when the cost model prefers it — as a chain of Linears through
//! cut tensors (the outputs of the weighted ops inside the cone). Levels are assigned backwards
//! (EVA-style): MPC inputs end at level 0, the output at [`OUTPUT_LEVEL`], each Linear consumes
//! its inputs one level above its output.

pub mod affine;
pub mod local;

use std::collections::{BTreeMap, BTreeSet};

use mp2ml_ir::graph::{Graph, NodeId};
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::{ActivationKind, PostProcess};
use mp2ml_ir::tensor::{Tensor, TensorId};

use crate::error::{CompileError, ErrorKind};
use crate::passes::{fold_constants, post_tail};
use affine::{compose, intervals, Affine};
use local::{is_weighted, local_map, pool_windows, Operand};

/// Level at which the graph output is delivered (one prime above q0 leaves room for flooding).
pub const OUTPUT_LEVEL: usize = 1;
/// Fractional bits of the LeakyReLU slope in its circuit.
pub const LEAKY_SHIFT: u32 = 16;

/// How a materialized tensor is produced.
#[derive(Clone, Debug, PartialEq)]
pub enum MKind {
    /// The encrypted model input.
    Input,
    /// Output of MPC step `step` (encrypted by the client).
    MpcOut {
        /// Step index.
        step: usize,
    },
    /// `rescale(W · concat(inputs) + b)`.
    Linear {
        /// Materialized input tensors, concatenated in this order.
        inputs: Vec<usize>,
        /// The map; columns index the concatenation.
        map: Affine,
        /// Names of the model nodes fused into it, in topological order.
        nodes: Vec<String>,
    },
}

/// Linear combination of the primitive noise terms (see [`crate::params::noise`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NoiseCoeffs {
    /// Multiples of the fresh encryption noise bound.
    pub fresh: f64,
    /// Multiples of the rescale rounding bound.
    pub rescale: f64,
    /// Absolute part (weight rounding), in units of the scale's integers.
    pub constant: f64,
}

/// A tensor that exists as ciphertexts.
#[derive(Clone, Debug, PartialEq)]
pub struct MTensor {
    /// Name (model tensor name).
    pub name: String,
    /// Per-image shape (no batch axis).
    pub shape: Vec<usize>,
    /// Production.
    pub kind: MKind,
    /// Level of its ciphertexts.
    pub level: usize,
    /// Bound on |value| (range analysis or calibration with margin).
    pub bound: f64,
    /// Noise bound coefficients.
    pub noise: NoiseCoeffs,
    /// Whether the tensor feeds the output (through Linears only): such tensors carry the
    /// larger output scale that leaves room for the flooding noise.
    pub output_scale: bool,
}

/// The function of an MPC step, with what its circuit generator needs.
#[derive(Clone, Debug, PartialEq)]
pub enum CircuitSpec {
    /// ReLU.
    Relu,
    /// MaxPool over one plane.
    MaxPool {
        /// Inputs per plane.
        values_in: u32,
        /// Window cells (plane element indices) per output.
        windows: Vec<Vec<u32>>,
        /// ReLU fused.
        relu: bool,
    },
    /// Clip to real bounds.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// LeakyReLU with slope `num / 2^LEAKY_SHIFT`.
    LeakyRelu {
        /// Slope numerator.
        num: u64,
    },
    /// x·x.
    Square,
}

/// One MPC step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Name (model node names joined with `+`).
    pub name: String,
    /// Public kind.
    pub kind: ActivationKind,
    /// Circuit to generate.
    pub spec: CircuitSpec,
    /// Materialized input tensor.
    pub input: usize,
    /// Input elements in circuit order.
    pub gather: Vec<u32>,
    /// Materialized output tensor.
    pub output: usize,
    /// Instances per image.
    pub instances: usize,
    /// Values in per instance.
    pub values_in: usize,
    /// Values out per instance.
    pub values_out: usize,
}

/// The fusion decision for one materialized target.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Target tensor name.
    pub target: String,
    /// Model nodes in its cone.
    pub nodes: Vec<String>,
    /// MACs of the fused map.
    pub fused_macs: u64,
    /// MACs of the unfused chain (sum over weighted ops).
    pub chain_macs: u64,
    /// Weighted-op depth of the chain.
    pub depth: usize,
    /// Fused cost: MACs × limbs.
    pub fused_cost: u64,
    /// Chain cost: Σ MACs × limbs at each op's level.
    pub chain_cost: u64,
    /// Whether the chain was chosen.
    pub chain: bool,
}

/// The lowered model.
#[derive(Clone, Debug, PartialEq)]
pub struct Lowered {
    /// Materialized tensors in topological order; 0 is the input.
    pub tensors: Vec<MTensor>,
    /// MPC steps in execution order.
    pub steps: Vec<Step>,
    /// The materialized output tensor.
    pub output: usize,
    /// Name of the model output.
    pub output_name: String,
    /// Post-processing.
    pub post: PostProcess,
    /// Fusion decisions.
    pub decisions: Vec<Decision>,
    /// Level of the delivered output (starts at [`OUTPUT_LEVEL`]; parameter choice may raise it).
    pub out_level: usize,
}

/// Where value bounds come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Ranges {
    /// Interval analysis from an input interval.
    Interval(f64, f64),
    /// Observed max |value| per graph tensor (already times the margin).
    Observed(Vec<f64>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frontier {
    Input,
    Step(usize),
    Cut,
}

/// One frontier tensor of a pass.
struct FEntry {
    tensor: TensorId,
    kind: Frontier,
    offset: u32,
    len: usize,
}

/// A pending MPC step found in a pass (graph-level).
struct PStep {
    name: String,
    kind: ActivationKind,
    spec: CircuitSpec,
    input: TensorId,
    output: TensorId,
    instances: usize,
    values_in: usize,
    values_out: usize,
    gather_plane: Vec<u32>,
}

struct Pass {
    frontier: Vec<FEntry>,
    /// Map used downstream (identity for frontier tensors).
    use_map: Vec<Option<Affine>>,
    /// Definition of cut tensors over the frontier.
    def_map: BTreeMap<TensorId, Affine>,
    steps: Vec<PStep>,
    ncols: usize,
}

fn per_image(shape: &[usize]) -> Vec<usize> {
    shape.iter().skip(1).copied().collect()
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Context shared by the passes.
struct Ctx<'g> {
    graph: &'g Graph,
    order: Vec<NodeId>,
    consts: Vec<Option<Tensor>>,
    skip: BTreeSet<NodeId>,
    /// MPC first-of-pair nodes fused into the following node.
    fused_first: BTreeMap<NodeId, NodeId>,
    input: TensorId,
    output: TensorId,
    scale_bits: u32,
}

impl Ctx<'_> {
    fn is_const(&self, t: TensorId) -> bool {
        self.consts.get(t.index()).is_some_and(Option::is_some)
    }

    fn shape(&self, t: TensorId) -> Vec<usize> {
        self.graph
            .get_tensor(t)
            .map(|i| i.shape.clone())
            .unwrap_or_default()
    }

    fn is_mpc(&self, n: NodeId) -> bool {
        let node = self.graph.node(n);
        match node.op {
            Op::Relu | Op::MaxPool { .. } | Op::Clip { .. } | Op::LeakyRelu { .. } => true,
            Op::Mul => {
                node.inputs.len() == 2
                    && node.inputs[0] == node.inputs[1]
                    && !self.is_const(node.inputs[0])
            }
            _ => false,
        }
    }

    /// Sole consumer of `t` (not a graph output).
    fn sole_consumer(&self, t: TensorId) -> Option<NodeId> {
        match self.graph.consumers(t) {
            [c] if t != self.output => Some(*c),
            _ => None,
        }
    }

    fn step_for(&self, first: Option<NodeId>, n: NodeId) -> Result<PStep, CompileError> {
        let g = self.graph;
        let node = g.node(n);
        let input = match first {
            Some(f) => g.node(f).inputs[0],
            None => node.inputs[0],
        };
        let output = node.outputs[0];
        let name = match first {
            Some(f) => format!("{}+{}", g.node(f).name, node.name),
            None => node.name.clone(),
        };
        let in_shape = per_image(&self.shape(input));
        let len = numel(&in_shape);
        let elementwise = |kind: ActivationKind, spec: CircuitSpec| PStep {
            name: name.clone(),
            kind,
            spec,
            input,
            output,
            instances: len,
            values_in: 1,
            values_out: 1,
            gather_plane: (0..len as u32).collect(),
        };
        let pool = match (first.map(|f| &g.node(f).op), &node.op) {
            (
                Some(Op::Relu),
                Op::MaxPool {
                    kernel,
                    strides,
                    pads,
                    ..
                },
            ) => Some((*kernel, *strides, *pads, true)),
            (
                Some(Op::MaxPool {
                    kernel,
                    strides,
                    pads,
                    ..
                }),
                Op::Relu,
            ) => Some((*kernel, *strides, *pads, true)),
            (
                None,
                Op::MaxPool {
                    kernel,
                    strides,
                    pads,
                    ..
                },
            ) => Some((*kernel, *strides, *pads, false)),
            _ => None,
        };
        if let Some((kernel, strides, pads, relu)) = pool {
            let out_shape = per_image(&self.shape(output));
            if in_shape.len() != 3 || out_shape.len() != 3 {
                return Err(CompileError::node(
                    g,
                    n,
                    "MaxPool needs a [N,C,H,W] input".into(),
                ));
            }
            let (c, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
            let (oh, ow) = (out_shape[1], out_shape[2]);
            let windows: Vec<Vec<u32>> = pool_windows(h, w, kernel, strides, pads, oh, ow)
                .into_iter()
                .map(|(cells, _)| cells)
                .collect();
            return Ok(PStep {
                name,
                kind: ActivationKind::MaxPool {
                    kernel,
                    strides,
                    relu,
                },
                spec: CircuitSpec::MaxPool {
                    values_in: (h * w) as u32,
                    windows,
                    relu,
                },
                input,
                output,
                instances: c,
                values_in: h * w,
                values_out: oh * ow,
                gather_plane: (0..(c * h * w) as u32).collect(),
            });
        }
        Ok(match &node.op {
            Op::Relu => elementwise(ActivationKind::Relu, CircuitSpec::Relu),
            Op::Clip { min, max } => elementwise(
                ActivationKind::Clip {
                    min: *min,
                    max: *max,
                },
                CircuitSpec::Clip {
                    min: *min,
                    max: *max,
                },
            ),
            Op::LeakyRelu { alpha } => {
                if !(0.0..=1.0).contains(alpha) {
                    return Err(CompileError::node(
                        g,
                        n,
                        format!("LeakyRelu slope {alpha} outside [0, 1] is not supported"),
                    ));
                }
                let num = (f64::from(*alpha) * f64::from(1u32 << LEAKY_SHIFT)).round() as u64;
                elementwise(
                    ActivationKind::LeakyRelu { alpha: *alpha },
                    CircuitSpec::LeakyRelu { num },
                )
            }
            Op::Mul => elementwise(ActivationKind::Square, CircuitSpec::Square),
            _ => return Err(CompileError::node(g, n, "not an MPC op".into())),
        })
    }

    /// One forward pass with the given cut tensors in the frontier.
    fn pass(&self, cuts: &BTreeSet<TensorId>) -> Result<Pass, CompileError> {
        let g = self.graph;
        let nt = g.tensors().len();
        let mut p = Pass {
            frontier: Vec::new(),
            use_map: vec![None; nt],
            def_map: BTreeMap::new(),
            steps: Vec::new(),
            ncols: 0,
        };
        let add_frontier = |p: &mut Pass, t: TensorId, kind: Frontier, len: usize| {
            let offset = p.ncols as u32;
            p.frontier.push(FEntry {
                tensor: t,
                kind,
                offset,
                len,
            });
            p.ncols += len;
            p.use_map[t.index()] = Some(Affine::identity(offset, len));
        };
        let in_len = numel(&per_image(&self.shape(self.input)));
        add_frontier(&mut p, self.input, Frontier::Input, in_len);
        for &n in &self.order {
            if self.skip.contains(&n) || self.fused_first.contains_key(&n) {
                continue;
            }
            let node = g.node(n);
            if self.is_mpc(n) {
                let first = self
                    .fused_first
                    .iter()
                    .find(|(_, &s)| s == n)
                    .map(|(&f, _)| f);
                let st = self.step_for(first, n)?;
                if p.use_map.get(st.input.index()).is_none_or(Option::is_none) {
                    return Err(CompileError::node(
                        g,
                        n,
                        "its input is not computed on the HE side".into(),
                    ));
                }
                let out = st.output;
                let len = numel(&per_image(&self.shape(out)));
                let k = p.steps.len();
                p.steps.push(st);
                add_frontier(&mut p, out, Frontier::Step(k), len);
                continue;
            }
            if !node.op.is_linear() {
                return Err(CompileError::node(g, n, format!("`{}` is not supported inside the model (only linear ops, ReLU, MaxPool, Clip, LeakyReLU and x·x; Softmax/Sigmoid/ArgMax only at the end)", node.op.name())));
            }
            let mut operands = Vec::new();
            let mut arg_maps: Vec<&Affine> = Vec::new();
            let shapes: Vec<Vec<usize>> = node.inputs.iter().map(|&t| self.shape(t)).collect();
            for (i, &t) in node.inputs.iter().enumerate() {
                if let Some(v) = self.consts.get(t.index()).and_then(Option::as_ref) {
                    operands.push(Operand::Const(v));
                } else {
                    let m = p
                        .use_map
                        .get(t.index())
                        .and_then(Option::as_ref)
                        .ok_or_else(|| {
                            CompileError::node(g, n, format!("operand {i} is not available"))
                        })?;
                    operands.push(Operand::Var(arg_maps.len() as u32, &shapes[i]));
                    arg_maps.push(m);
                }
            }
            let Some(&out) = node.outputs.first() else {
                continue;
            };
            let out_shape = self.shape(out);
            let local = local_map(&node.op, &operands, &out_shape)
                .map_err(|e| CompileError::node(g, n, e))?;
            let m = compose(&local, &arg_maps, p.ncols);
            if cuts.contains(&out) {
                let len = m.rows.len();
                p.def_map.insert(out, m);
                add_frontier(&mut p, out, Frontier::Cut, len);
            } else {
                p.use_map[out.index()] = Some(m);
            }
        }
        Ok(p)
    }

    /// Local MAC count of every linear node (pass independent).
    fn local_nnz(&self) -> BTreeMap<NodeId, u64> {
        let mut out = BTreeMap::new();
        for &n in &self.order {
            let node = self.graph.node(n);
            if self.skip.contains(&n) || !node.op.is_linear() {
                continue;
            }
            let shapes: Vec<Vec<usize>> = node.inputs.iter().map(|&t| self.shape(t)).collect();
            let mut k = 0;
            let operands: Vec<Operand> = node
                .inputs
                .iter()
                .enumerate()
                .map(
                    |(i, &t)| match self.consts.get(t.index()).and_then(Option::as_ref) {
                        Some(v) => Operand::Const(v),
                        None => {
                            k += 1;
                            Operand::Var(k - 1, &shapes[i])
                        }
                    },
                )
                .collect();
            if let Some(&o) = node.outputs.first() {
                if let Ok(l) = local_map(&node.op, &operands, &self.shape(o)) {
                    out.insert(n, l.nnz());
                }
            }
        }
        out
    }

    /// Linear nodes in the cone of `t` (back to frontier tensors), topological order, and for
    /// each tensor in the cone the number of weighted ops after it on the longest path to `t`.
    fn cone(
        &self,
        t: TensorId,
        frontier: &BTreeSet<TensorId>,
    ) -> (Vec<NodeId>, BTreeMap<TensorId, usize>) {
        let g = self.graph;
        let mut nodes = BTreeSet::new();
        let mut stack = vec![t];
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) || (x != t && frontier.contains(&x)) || self.is_const(x) {
                continue;
            }
            if let Some(n) = g.producer(x) {
                if g.node(n).op.is_linear() && !self.skip.contains(&n) {
                    nodes.insert(n);
                    stack.extend(g.node(n).inputs.iter().copied());
                }
            }
        }
        let ordered: Vec<NodeId> = self
            .order
            .iter()
            .copied()
            .filter(|n| nodes.contains(n))
            .collect();
        let mut h: BTreeMap<TensorId, usize> = BTreeMap::new();
        h.insert(t, 0);
        for &n in ordered.iter().rev() {
            let node = g.node(n);
            let Some(&o) = node.outputs.first() else {
                continue;
            };
            let Some(&ho) = h.get(&o) else { continue };
            let add = usize::from(is_weighted(&node.op));
            for &i in &node.inputs {
                if self.is_const(i) {
                    continue;
                }
                let e = h.entry(i).or_insert(0);
                *e = (*e).max(ho + add);
            }
        }
        (ordered, h)
    }
}

fn find_pairs(ctx: &Ctx) -> BTreeMap<NodeId, NodeId> {
    let g = ctx.graph;
    let mut pairs = BTreeMap::new();
    let mut used = BTreeSet::new();
    for &n in &ctx.order {
        if ctx.skip.contains(&n) || used.contains(&n) {
            continue;
        }
        let node = g.node(n);
        let is_relu = matches!(node.op, Op::Relu);
        let is_max = matches!(node.op, Op::MaxPool { .. });
        if !(is_relu || is_max) {
            continue;
        }
        let Some(&o) = node.outputs.first() else {
            continue;
        };
        if let Some(c) = ctx.sole_consumer(o) {
            let next = &g.node(c).op;
            if (is_relu && matches!(next, Op::MaxPool { .. }))
                || (is_max && matches!(next, Op::Relu))
            {
                pairs.insert(n, c);
                used.insert(c);
            }
        }
    }
    pairs
}

/// Whether `map` just reads `len`-element frontier entry `f` in order.
fn frontier_of(p: &Pass, col: u32) -> Option<usize> {
    let i = p.frontier.partition_point(|f| f.offset <= col);
    i.checked_sub(1)
}

/// Lowers a validated graph.
pub fn lower(graph: &Graph, ranges: &Ranges, scale_bits: u32) -> Result<Lowered, CompileError> {
    let order = graph
        .topo_order()
        .map_err(|n| CompileError::node(graph, n, "the graph has a cycle".into()))?;
    let folded = fold_constants(graph, &order)?;
    let inputs: Vec<TensorId> = graph
        .inputs()
        .iter()
        .copied()
        .filter(|t| !graph.is_const(*t))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            format!(
                "the model must have exactly one data input, it has {}",
                inputs.len()
            ),
        ));
    };
    let [out0] = graph.outputs() else {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            format!(
                "the model must have exactly one output, it has {}",
                graph.outputs().len()
            ),
        ));
    };
    let tail = post_tail(graph, *out0)?;
    let mut skip = folded.folded.clone();
    skip.extend(tail.nodes.iter().copied());
    let mut ctx = Ctx {
        graph,
        order,
        consts: folded.values,
        skip,
        fused_first: BTreeMap::new(),
        input: *input,
        output: tail.output,
        scale_bits,
    };
    if ctx.is_const(ctx.output) {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            "the model output is a constant",
        ));
    }
    ctx.fused_first = find_pairs(&ctx);

    // Pass 1: everything fused; decide per target.
    let p1 = ctx.pass(&BTreeSet::new())?;
    let nnz = ctx.local_nnz();
    let sources: BTreeSet<TensorId> = p1.frontier.iter().map(|f| f.tensor).collect();
    let mut targets: Vec<(TensorId, usize)> = p1.steps.iter().map(|s| (s.input, 0)).collect();
    targets.push((ctx.output, OUTPUT_LEVEL));
    let mut cuts = BTreeSet::new();
    let mut decisions = Vec::new();
    let mut seen_targets = BTreeSet::new();
    for &(t, base) in &targets {
        if sources.contains(&t) || !seen_targets.insert(t) {
            continue;
        }
        let (nodes, h) = ctx.cone(t, &sources);
        let fused_macs = p1
            .use_map
            .get(t.index())
            .and_then(Option::as_ref)
            .map_or(0, Affine::nnz);
        let (mut chain_macs, mut chain_cost, mut depth) = (0u64, 0u64, 0usize);
        let mut my_cuts = Vec::new();
        for &n in &nodes {
            let node = graph.node(n);
            if !is_weighted(&node.op) {
                continue;
            }
            let Some(&o) = node.outputs.first() else {
                continue;
            };
            let ho = h.get(&o).copied().unwrap_or(0);
            let m = nnz.get(&n).copied().unwrap_or(0);
            chain_macs += m;
            chain_cost += m * (base + ho + 2) as u64;
            depth = depth.max(ho + 1);
            if ho >= 1 {
                my_cuts.push(o);
            }
        }
        let fused_cost = fused_macs * (base + 2) as u64;
        let chain = depth >= 2 && chain_cost < fused_cost;
        if chain {
            cuts.extend(my_cuts);
        }
        decisions.push(Decision {
            target: graph
                .get_tensor(t)
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            nodes: nodes.iter().map(|&n| graph.node(n).name.clone()).collect(),
            fused_macs,
            chain_macs,
            depth,
            fused_cost,
            chain_cost,
            chain,
        });
    }
    let p = if cuts.is_empty() {
        p1
    } else {
        ctx.pass(&cuts)?
    };
    build(&ctx, p, ranges, decisions, tail.post)
}

/// Builds the materialized tensors, steps, levels, ranges and noise from the final pass.
fn build(
    ctx: &Ctx,
    p: Pass,
    ranges: &Ranges,
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
    let mut low = Lowered {
        tensors: mt,
        steps,
        output,
        output_name: name_of(ctx.output),
        post,
        decisions,
        out_level: OUTPUT_LEVEL,
    };
    assign_levels(&mut low, OUTPUT_LEVEL);
    assign_scales(&mut low)?;
    analyze_ranges(ctx, &mut low, ranges);
    Ok(low)
}

/// Backward level assignment: MPC inputs ≥ 0, output = `out_level`, Linear inputs one
/// level above their output (the client encrypts masked MPC outputs exactly mod Q_ℓ, so they
/// need no minimum level).
pub fn assign_levels(low: &mut Lowered, out_level: usize) {
    let n = low.tensors.len();
    let mut level = vec![0usize; n];
    level[low.output] = out_level;
    low.out_level = out_level;
    for i in (0..n).rev() {
        if let MKind::Linear { inputs, .. } = &low.tensors[i].kind {
            for &f in inputs {
                level[f] = level[f].max(level[i] + 1);
            }
        }
    }
    for (t, l) in low.tensors.iter_mut().zip(level) {
        t.level = l;
    }
}

/// Marks the tensors that feed the output through Linears; refuses a tensor that feeds both
/// the output and an MPC step (it would need two scales).
fn assign_scales(low: &mut Lowered) -> Result<(), CompileError> {
    let n = low.tensors.len();
    let cone = |start: &[usize]| -> Vec<bool> {
        let mut mark = vec![false; n];
        let mut stack = start.to_vec();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut mark[i], true) {
                continue;
            }
            if let MKind::Linear { inputs, .. } = &low.tensors[i].kind {
                stack.extend(inputs.iter().copied());
            }
        }
        mark
    };
    let out = cone(&[low.output]);
    let mpc_inputs: Vec<usize> = low.steps.iter().map(|s| s.input).collect();
    let mpc = cone(&mpc_inputs);
    if let Some(i) = (0..n).find(|&i| out[i] && mpc[i]) {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            format!("tensor `{}` feeds both an MPC step and the model output; the output needs a larger scale (flooding), so this sharing is not supported", low.tensors[i].name),
        ));
    }
    for (t, o) in low.tensors.iter_mut().zip(out) {
        t.output_scale = o;
    }
    Ok(())
}

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
fn analyze_ranges(ctx: &Ctx, low: &mut Lowered, ranges: &Ranges) {
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
                (
                    vec![a; len],
                    vec![b; len],
                    NoiseCoeffs {
                        fresh: 1.0,
                        ..Default::default()
                    },
                )
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
                (
                    l,
                    h,
                    NoiseCoeffs {
                        fresh: 1.0,
                        ..Default::default()
                    },
                )
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
                let mut nz = NoiseCoeffs::default();
                for r in &map.rows {
                    let mut acc = NoiseCoeffs {
                        rescale: 1.0,
                        constant: 1.0,
                        ..Default::default()
                    };
                    for (&c, &v) in r.cols.iter().zip(&r.vals) {
                        let a = v.abs();
                        if let Some(cn) = col_noise.get(c as usize) {
                            acc.fresh += a * cn.fresh;
                            acc.rescale += a * cn.rescale;
                            acc.constant += a * cn.constant;
                        }
                        // Weight rounding: |round(W p) − W p| ≤ ½ times |x|·Δ, divided by p.
                        acc.constant += col_bound.get(c as usize).copied().unwrap_or(0.0)
                            * f64::from(1u32 << ctx.scale_bits.min(31))
                            * 0.5
                            / crate::params::MIN_PRIME;
                    }
                    nz.fresh = nz.fresh.max(acc.fresh);
                    nz.rescale = nz.rescale.max(acc.rescale);
                    nz.constant = nz.constant.max(acc.constant);
                }
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
