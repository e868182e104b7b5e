//! Fusion: forward passes that compose every linear tensor as an affine map over the frontier
//! tensors, the MPC steps found on the way, and the cost decision between one fused Linear and a
//! chain of Linears through cut tensors.

use std::collections::{BTreeMap, BTreeSet};

use mp2ml_ir::graph::{Graph, NodeId};
use mp2ml_ir::op::Op;
use mp2ml_ir::plan::ActivationKind;
use mp2ml_ir::tensor::{Tensor, TensorId};

use super::apply::{apply, conv_macs, Arg};
use super::local::{is_weighted, local_map, Operand};
use super::lowered::{CircuitSpec, Decision, LinMap, OUTPUT_LEVEL};
use super::smap::SMap;
use super::{numel, per_image};
use crate::activations::{self, maxpool, Shapes, Site};
use crate::error::CompileError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Frontier {
    Input,
    Step(usize),
    Cut,
}

/// One frontier tensor of a pass.
pub(super) struct FEntry {
    pub(super) tensor: TensorId,
    pub(super) kind: Frontier,
    pub(super) offset: u32,
    pub(super) len: usize,
}

/// A pending MPC step found in a pass (graph-level).
pub(super) struct PStep {
    pub(super) name: String,
    pub(super) kind: ActivationKind,
    pub(super) spec: CircuitSpec,
    pub(super) input: TensorId,
    pub(super) output: TensorId,
    pub(super) instances: usize,
    pub(super) values_in: usize,
    pub(super) values_out: usize,
    pub(super) gather_plane: Vec<u32>,
}

/// The result of one forward pass.
pub(super) struct Pass {
    pub(super) frontier: Vec<FEntry>,
    /// Map used downstream (identity for frontier tensors).
    pub(super) use_map: Vec<Option<LinMap>>,
    /// The structured shadow of expanded maps in `use_map` (see [`Arg`]).
    shadow: Vec<Option<SMap>>,
    /// Definition of cut tensors over the frontier.
    pub(super) def_map: BTreeMap<TensorId, LinMap>,
    pub(super) steps: Vec<PStep>,
    ncols: usize,
}

/// Context shared by the passes.
pub(super) struct Ctx<'g> {
    pub(super) graph: &'g Graph,
    pub(super) order: Vec<NodeId>,
    consts: Vec<Option<Tensor>>,
    skip: BTreeSet<NodeId>,
    /// MPC first-of-pair nodes fused into the following node.
    fused_first: BTreeMap<NodeId, NodeId>,
    pub(super) input: TensorId,
    pub(super) output: TensorId,
    pub(super) scale_bits: u32,
    /// Largest map built as expanded rows.
    expand_limit: u64,
}

impl<'g> Ctx<'g> {
    /// The context of `graph` in topological `order`, with the folded constants `consts`,
    /// the nodes to `skip` (folded, or in the post-processing tail) and the data input and
    /// HE output tensors; finds the MPC pairs (ReLU+MaxPool) to fuse.
    pub(super) fn new(
        graph: &'g Graph,
        order: Vec<NodeId>,
        consts: Vec<Option<Tensor>>,
        skip: BTreeSet<NodeId>,
        (input, output): (TensorId, TensorId),
        scale_bits: u32,
        expand_limit: u64,
    ) -> Self {
        let mut ctx = Ctx {
            graph,
            order,
            consts,
            skip,
            fused_first: BTreeMap::new(),
            input,
            output,
            scale_bits,
            expand_limit,
        };
        ctx.fused_first = find_pairs(&ctx);
        ctx
    }
}

impl Ctx<'_> {
    pub(super) fn is_const(&self, t: TensorId) -> bool {
        self.consts.get(t.index()).is_some_and(Option::is_some)
    }

    /// Shape of graph tensor `t` (ids come from the graph itself, so the lookup cannot miss).
    pub(super) fn shape(&self, t: TensorId) -> Vec<usize> {
        self.graph.tensor(t).shape.clone()
    }

    fn is_mpc(&self, n: NodeId) -> bool {
        let is_const = |t: TensorId| self.is_const(t);
        activations::is_mpc(&Site {
            graph: self.graph,
            node: n,
            first: None,
            is_const: &is_const,
        })
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
        let is_const = |t: TensorId| self.is_const(t);
        let site = Site {
            graph: g,
            node: n,
            first,
            is_const: &is_const,
        };
        let shapes = Shapes {
            input: per_image(&self.shape(input)),
            output: per_image(&self.shape(output)),
        };
        let l = activations::lower(&site, &shapes).map_err(|m| CompileError::node(g, n, m))?;
        Ok(PStep {
            name,
            kind: l.spec.activation().kind(),
            spec: l.spec,
            input,
            output,
            instances: l.instances,
            values_in: l.values_in,
            values_out: l.values_out,
            gather_plane: l.gather_plane,
        })
    }

    /// One forward pass with the given cut tensors in the frontier.
    pub(super) fn pass(&self, cuts: &BTreeSet<TensorId>) -> Result<Pass, CompileError> {
        let g = self.graph;
        let nt = g.tensors().len();
        let mut p = Pass {
            frontier: Vec::new(),
            use_map: vec![None; nt],
            shadow: vec![None; nt],
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
            p.use_map[t.index()] = Some(LinMap::Ident { col: offset, len });
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
                return Err(CompileError::node(g, n, format!("`{}` is not supported inside the model (only linear ops, {}; Softmax/Sigmoid/ArgMax only at the end)", node.op.name(), activations::names())));
            }
            let shapes: Vec<Vec<usize>> = node.inputs.iter().map(|&t| self.shape(t)).collect();
            let mut args = Vec::with_capacity(node.inputs.len());
            for (i, &t) in node.inputs.iter().enumerate() {
                if let Some(v) = self.consts.get(t.index()).and_then(Option::as_ref) {
                    args.push(Arg::Const(v));
                } else {
                    let m = p
                        .use_map
                        .get(t.index())
                        .and_then(Option::as_ref)
                        .ok_or_else(|| {
                            CompileError::node(g, n, format!("operand {i} is not available"))
                        })?;
                    let shadow = p.shadow.get(t.index()).and_then(Option::as_ref);
                    args.push(Arg::Var(m, &shapes[i], shadow));
                }
            }
            let Some(&out) = node.outputs.first() else {
                continue;
            };
            let out_shape = self.shape(out);
            let (m, shadow) = apply(&node.op, &args, &out_shape, p.ncols, self.expand_limit)
                .map_err(|e| CompileError::node(g, n, e))?;
            if cuts.contains(&out) {
                let len = m.len();
                p.def_map.insert(out, m);
                add_frontier(&mut p, out, Frontier::Cut, len);
            } else {
                p.use_map[out.index()] = Some(m);
                p.shadow[out.index()] = shadow;
            }
        }
        Ok(p)
    }

    /// Local MAC count of every linear node (pass independent).
    fn local_nnz(&self) -> Result<BTreeMap<NodeId, u64>, CompileError> {
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
                let out_shape = self.shape(o);
                // A convolution's count from its kernel (its expansion can be huge).
                let conv = match (&node.op, operands.get(1), shapes.first()) {
                    (Op::Conv { .. }, Some(Operand::Const(w)), Some(xs)) => {
                        conv_macs(&node.op, w, xs, &out_shape)
                    }
                    _ => None,
                };
                let macs = match conv {
                    Some(m) => m,
                    None => local_map(&node.op, &operands, &out_shape)
                        .map_err(|e| CompileError::node(self.graph, n, e))?
                        .nnz(),
                };
                out.insert(n, macs);
            }
        }
        Ok(out)
    }

    /// Linear nodes in the cone of `t` (back to frontier tensors), topological order, and for
    /// each tensor in the cone the number of weighted ops after it on the longest path to `t`.
    pub(super) fn cone(
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
        let Some(&o) = node.outputs.first() else {
            continue;
        };
        if let Some(c) = ctx.sole_consumer(o) {
            if maxpool::fuses(&node.op, &g.node(c).op) {
                pairs.insert(n, c);
                used.insert(c);
            }
        }
    }
    pairs
}

/// Whether `map` just reads `len`-element frontier entry `f` in order.
pub(super) fn frontier_of(p: &Pass, col: u32) -> Option<usize> {
    let i = p.frontier.partition_point(|f| f.offset <= col);
    i.checked_sub(1)
}

/// Decides, for every MPC input and the output of the all-fused pass `p1`, whether to
/// materialize it as one fused Linear or as a chain through cut tensors; returns the cut
/// tensors and the decisions.
pub(super) fn decide(
    ctx: &Ctx,
    p1: &Pass,
) -> Result<(BTreeSet<TensorId>, Vec<Decision>), CompileError> {
    let graph = ctx.graph;
    let nnz = ctx.local_nnz()?;
    let sources: BTreeSet<TensorId> = p1.frontier.iter().map(|f| f.tensor).collect();
    let mut targets: Vec<(TensorId, usize)> = p1.steps.iter().map(|s| (s.input, 0)).collect();
    targets.push((ctx.output, OUTPUT_LEVEL));
    let mut cuts = BTreeSet::new();
    let mut decisions = Vec::new();
    let mut seen_targets = BTreeSet::new();
    // Weighted-op outputs in the cones of fused targets: (target base level, height) per use.
    let mut shared: BTreeMap<TensorId, Vec<(usize, usize)>> = BTreeMap::new();
    for &(t, base) in &targets {
        if sources.contains(&t) || !seen_targets.insert(t) {
            continue;
        }
        let (nodes, h) = ctx.cone(t, &sources);
        let fused_macs = p1
            .use_map
            .get(t.index())
            .and_then(Option::as_ref)
            .map_or(0, LinMap::nnz);
        let (mut chain_macs, mut chain_cost, mut depth) = (0u64, 0u64, 0usize);
        let mut my_cuts = Vec::new();
        // Weighted-op outputs other than the target, with their heights.
        let mut in_cone = Vec::new();
        for &n in &nodes {
            let node = graph.node(n);
            if !is_weighted(&node.op) {
                continue;
            }
            let Some(&o) = node.outputs.first() else {
                continue;
            };
            // The cone's heights cover every tensor on a path to `t`, and `local_nnz` every
            // linear node.
            let (Some(&ho), Some(&m)) = (h.get(&o), nnz.get(&n)) else {
                return Err(CompileError::node(
                    graph,
                    n,
                    "internal error: no height or MAC count in the fusion cone".into(),
                ));
            };
            chain_macs += m;
            chain_cost += m * (base + ho + 2) as u64;
            depth = depth.max(ho + 1);
            if ho >= 1 {
                my_cuts.push(o);
            }
            if o != t {
                in_cone.push((o, ho));
            }
        }
        let fused_cost = fused_macs * (base + 2) as u64;
        let chain = depth >= 2 && chain_cost < fused_cost;
        if chain {
            cuts.extend(my_cuts);
        } else {
            for &(o, ho) in &in_cone {
                shared.entry(o).or_default().push((base, ho));
            }
        }
        decisions.push(Decision {
            target: graph.tensor(t).name.clone(),
            nodes: nodes.iter().map(|&n| graph.node(n).name.clone()).collect(),
            fused_macs,
            chain_macs,
            depth,
            fused_cost,
            chain_cost,
            chain,
        });
    }
    // A weighted op's output inside the cones of several fused targets is recomputed in each
    // of them (DenseNet: every 3×3 convolution of a dense block feeds the BatchNorm of every
    // later layer through the block's Concat, so fusing costs O(layers²) convolutions). Cut it
    // when computing it once, one level deeper, and reading the cut tensor in every target is
    // cheaper than the recomputations (the per-target decision above cannot see the sharing).
    for (o, uses) in shared {
        if uses.len() < 2 || cuts.contains(&o) {
            continue;
        }
        let Some(n) = graph.producer(o) else {
            continue;
        };
        let Some(&m) = nnz.get(&n) else {
            continue;
        };
        let len = numel(&per_image(&ctx.shape(o))) as u64;
        let fused: u64 = uses.iter().map(|&(b, _)| m * (b + 2) as u64).sum();
        // The cut tensor sits at most one level above its deepest use's chain position (a
        // non-weighted op such as BatchNorm between it and the target becomes a Linear).
        let deepest = uses
            .iter()
            .map(|&(b, ho)| b + ho + 1)
            .max()
            .expect("two or more uses: fewer were skipped above");
        let cut =
            m * (deepest + 2) as u64 + uses.iter().map(|&(b, _)| len * (b + 2) as u64).sum::<u64>();
        if cut < fused {
            cuts.insert(o);
        }
    }
    Ok((cuts, decisions))
}
