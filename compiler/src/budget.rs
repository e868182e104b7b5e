//! Memory estimates of the compiler's expensive steps, checked before the step runs, so that a
//! model too big for the budget is refused with the step and the estimate named instead of the
//! process being killed by the kernel.
//!
//! Two steps dominate: the calibration run (the f32 reference executor keeps every tensor of
//! the calibration batch) and the lowering. The lowering expands a fused map into one
//! [`crate::partition::affine::Row`] per element only while it stays below
//! [`crate::partition::SPARSE_LIMIT`] entries; larger maps are kept as convolution terms
//! ([`crate::partition::smap::SMap`]: kernels, never the weight-shared expansion). The estimate
//! bounds each expanded row's length by the product of the local fan-ins along the linear chain
//! (capped by the frontier width), the way [`crate::partition::affine::compose`] builds it, and
//! counts a structured map by its kernels plus a few words per element.

use mp2ml_ir::graph::Graph;
use mp2ml_ir::op::Op;
use mp2ml_ir::validate::GraphInfo;

use crate::error::{CompileError, ErrorKind};
use crate::partition::{LinMap, Lowered, MKind};

/// The default budget: 4 GiB.
pub const DEFAULT_BUDGET: u64 = 4 << 30;

/// Bytes per stored term of the expanded maps, measured: a term lives as a local-map term
/// `(u32, u32, f64)`, a composed row entry (`u32` + `f64`), the materialized copy and the
/// integer CSR written to the weights file (`u32` + `i64`), with vector slack.
/// Fitted on ResNet-20: the estimate counts 62 M terms (the fan-in products overcount the
/// overlap of composed maps; the fused maps hold 40.6 M) and `mp2mlc` peaked at 2.8 GB.
const BYTES_PER_TERM: u64 = 44;
/// Bytes per row (per linear tensor element): the `Row`'s two vector headers, bias, interval
/// bounds and allocator overhead, in both lowering passes.
const BYTES_PER_ROW: u64 = 128;
/// Bytes per element of a structured map's tensor: interval bounds, the plan's gather lists
/// and the calibration-free bookkeeping.
const BYTES_PER_STRUCTURED_ELEMENT: u64 = 48;
/// Bytes per kernel weight of a structured map: the f64 kernel, its composed copies (fusion
/// passes, materialization) and the integer kernel in the weights file.
const BYTES_PER_KERNEL_WEIGHT: u64 = 64;

/// What the lowering of a graph in batch packing would hold.
#[derive(Clone, Debug, PartialEq)]
pub struct LoweringEstimate {
    /// Terms of all expanded affine maps (upper bound).
    pub terms: u64,
    /// Linear ops kept as convolution terms (their expansion would exceed the sparse limit).
    pub structured: usize,
    /// Rows (elements of linear tensors).
    pub rows: u64,
    /// Estimated peak bytes.
    pub bytes: u64,
    /// The nodes with the most bytes: (name, bytes), largest first (at most 3).
    pub largest: Vec<(String, u64)>,
}

/// Per-element fan-in of a linear op's output from its non-constant input of shape
/// `in_shape`; `None` if the shape lacks the axis the op reads (validation rules that out).
fn fan_in(op: &Op, in_shape: &[usize]) -> Option<u64> {
    let d = |k: usize| in_shape.get(k).map(|&x| x as u64);
    Some(match op {
        Op::Conv { kernel, group, .. } => {
            d(1)? / (*group).max(1) as u64 * kernel[0] as u64 * kernel[1] as u64
        }
        Op::Gemm { trans_a, .. } => {
            if *trans_a {
                d(0)?
            } else {
                d(1)?
            }
        }
        Op::MatMul => *in_shape.last()? as u64,
        Op::AvgPool { kernel, .. } => kernel[0] as u64 * kernel[1] as u64,
        Op::GlobalAvgPool => in_shape.iter().skip(2).product::<usize>() as u64,
        _ => 1,
    })
}

/// Estimates the batch-packing lowering of the validated `graph` (shapes with the batch axis
/// first).
pub fn estimate_lowering(
    graph: &Graph,
    info: &GraphInfo,
) -> Result<LoweringEstimate, CompileError> {
    let per_image = |shape: &[usize]| shape.iter().skip(1).product::<usize>() as u64;
    // Row length (terms per element) of every tensor's affine map; frontier tensors are 1.
    let mut row_len = vec![1u64; graph.tensors().len()];
    let mut frontier: u64 = graph
        .inputs()
        .iter()
        .filter(|&&t| !graph.is_const(t))
        .map(|&t| per_image(&graph.tensor(t).shape))
        .sum();
    let (mut terms, mut rows, mut extra, mut structured) = (0u64, 0u64, 0u64, 0usize);
    let mut per_node: Vec<(String, u64)> = Vec::new();
    for &n in &info.order {
        let node = graph.node(n);
        let vars: Vec<_> = node
            .inputs
            .iter()
            .copied()
            .filter(|&t| !graph.is_const(t))
            .collect();
        if vars.is_empty() {
            continue; // folded at compile time
        }
        let outs: u64 = node
            .outputs
            .iter()
            .map(|&t| per_image(&graph.tensor(t).shape))
            .sum();
        if !node.op.is_linear() {
            // An MPC step: its outputs are frontier tensors.
            frontier = frontier.saturating_add(outs);
            continue;
        }
        let (len, node_terms) = if matches!(node.op, Op::Concat { .. }) {
            // Each output element is one input element.
            let t = vars.iter().fold(0u64, |a, &v| {
                a.saturating_add(
                    per_image(&graph.tensor(v).shape).saturating_mul(row_len[v.index()]),
                )
            });
            // Row lengths are at least 1.
            let l = vars.iter().map(|&v| row_len[v.index()]).fold(1, u64::max);
            (l, t)
        } else {
            let mut l = 0u64;
            for &v in &vars {
                let shape = &graph.tensor(v).shape;
                let f = fan_in(&node.op, shape).ok_or_else(|| {
                    CompileError::node(
                        graph,
                        n,
                        format!("input of shape {shape:?} lacks the axis the op reduces"),
                    )
                })?;
                l = l.saturating_add(f.saturating_mul(row_len[v.index()]));
            }
            let l = l.min(frontier.max(1));
            (l, outs.saturating_mul(l))
        };
        for &o in &node.outputs {
            row_len[o.index()] = len;
        }
        let node_bytes = if node_terms > crate::partition::SPARSE_LIMIT {
            // Kept by structure: the kernels (constants of the node) and per-element words.
            structured += 1;
            let weights: u64 = node
                .inputs
                .iter()
                .filter(|&&t| graph.is_const(t))
                .map(|&t| graph.tensor(t).shape.iter().product::<usize>() as u64)
                .sum();
            extra = extra
                .saturating_add(weights.saturating_mul(BYTES_PER_KERNEL_WEIGHT))
                .saturating_add(outs.saturating_mul(BYTES_PER_STRUCTURED_ELEMENT));
            weights.saturating_mul(BYTES_PER_KERNEL_WEIGHT)
                + outs.saturating_mul(BYTES_PER_STRUCTURED_ELEMENT)
        } else {
            terms = terms.saturating_add(node_terms);
            rows = rows.saturating_add(outs);
            node_terms
                .saturating_mul(BYTES_PER_TERM)
                .saturating_add(outs.saturating_mul(BYTES_PER_ROW))
        };
        per_node.push((node.name.clone(), node_bytes));
    }
    per_node.sort_by_key(|b| std::cmp::Reverse(b.1));
    per_node.truncate(3);
    Ok(LoweringEstimate {
        terms,
        structured,
        rows,
        bytes: terms
            .saturating_mul(BYTES_PER_TERM)
            .saturating_add(rows.saturating_mul(BYTES_PER_ROW))
            .saturating_add(extra),
        largest: per_node,
    })
}

/// Bytes in GB, or MB below 1 GB (so a small budget's message is readable).
fn gb(b: u64) -> String {
    if b >= 1_000_000_000 {
        format!("{:.1} GB", b as f64 / 1e9)
    } else {
        format!("{:.1} MB", b as f64 / 1e6)
    }
}

/// Refuses the batch-packing lowering when its estimate exceeds `budget` bytes.
pub fn check_lowering(
    graph: &Graph,
    info: &GraphInfo,
    budget: u64,
) -> Result<LoweringEstimate, CompileError> {
    let e = estimate_lowering(graph, info)?;
    if e.bytes <= budget {
        return Ok(e);
    }
    let largest: Vec<String> = e
        .largest
        .iter()
        .map(|(n, b)| format!("`{n}` {}", gb(*b)))
        .collect();
    Err(CompileError::new(
        ErrorKind::Options,
        format!(
            "batch packing: the lowering step would need about {} (expanded maps of {:.0} M terms, {} linear ops kept as convolution kernels), more than the memory budget of {}",
            gb(e.bytes),
            e.terms as f64 / 1e6,
            e.structured,
            gb(budget)
        ),
    )
    .with_note(format!("the largest maps: {}", largest.join(", ")))
    .with_note("raise --memory-budget (MiB) if the machine has the memory"))
}

/// Bytes per stored entry of an expanded map in the weights writer: the integer CSR (`u32`
/// column, `i64` value) and the file buffer's copy of it, with the buffer's growth slack.
const WRITER_BYTES_PER_ENTRY: u64 = 36;
/// Bytes per row of an expanded map in the writer: row pointer and 128-bit bias, in the CSR
/// and the file buffer.
const WRITER_BYTES_PER_ROW: u64 = 64;
/// Bytes per stored kernel entry of a structured map in the writer: the `i64` kernel, its `f64`
/// copy (the expanded-entry count) and the file buffer's copy with growth slack.
const WRITER_BYTES_PER_KERNEL: u64 = 32;
/// Bytes per gathered circuit input or output of an MPC step in the plans: the server plan's
/// and the client plan's bindings, and the lowered gather list.
const PLAN_BYTES_PER_VALUE: u64 = 24;

/// What writing the plans and the weights file of a lowered partition would hold.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanEstimate {
    /// Bytes of the weights file (kernels and matrices as stored).
    pub weights_file: u64,
    /// Estimated peak bytes of the step (writer, circuits, plans).
    pub bytes: u64,
    /// The tensors with the most bytes: (name and what it holds, bytes), largest first (at
    /// most 3).
    pub largest: Vec<(String, u64)>,
}

/// Estimates writing the plans and weights of `low` (after the parameter choice, before
/// [`crate::plan_writer::build_plan`]): every Linear's stored form as
/// [`crate::plan_writer`] writes it (expanded rows as CSR, structured maps as the kernels
/// [`crate::partition::smap::SMap::stored_kernel_entries`] counts, including the dense
/// `[O, C, kh, kw]` kernels of terms that land on a subset of the output channels), the MPC
/// steps' bindings and their circuits (deduplicated: each distinct circuit once).
pub fn estimate_plan(low: &Lowered) -> PlanEstimate {
    let mut per: Vec<(String, u64)> = Vec::new();
    let (mut file, mut bytes) = (0u64, 0u64);
    for t in &low.tensors {
        let MKind::Linear { map, inputs, .. } = &t.kind else {
            continue;
        };
        let (f, b) = match map {
            LinMap::Rows(a) => {
                let (nnz, rows) = (a.nnz(), a.rows.len() as u64);
                (
                    nnz * 12 + rows * 24,
                    nnz * WRITER_BYTES_PER_ENTRY + rows * WRITER_BYTES_PER_ROW,
                )
            }
            LinMap::Conv(sm) => {
                let k = sm.stored_kernel_entries();
                let bias = sm.shape[0] as u64 * 16;
                (k * 8 + bias, k * WRITER_BYTES_PER_KERNEL + bias * 2)
            }
            LinMap::Ident { .. } | LinMap::Opaque { .. } => (0, 0),
        };
        file = file.saturating_add(f);
        bytes = bytes.saturating_add(b);
        let terms = match map {
            LinMap::Conv(sm) => format!(", {} convolution terms", sm.terms.len()),
            _ => String::new(),
        };
        per.push((format!("`{}` ({} inputs{terms})", t.name, inputs.len()), b));
    }
    let values: u64 = low
        .steps
        .iter()
        .map(|s| (s.instances * (s.values_in + s.values_out)) as u64)
        .sum();
    bytes = bytes.saturating_add(values.saturating_mul(PLAN_BYTES_PER_VALUE));
    per.sort_by_key(|b| std::cmp::Reverse(b.1));
    per.truncate(3);
    PlanEstimate {
        weights_file: file,
        bytes,
        largest: per,
    }
}

/// Refuses writing the plans and weights of `low` (`what`: the packing, for the message) when
/// its estimate exceeds `budget` bytes.
pub fn check_plan(low: &Lowered, what: &str, budget: u64) -> Result<PlanEstimate, CompileError> {
    let e = estimate_plan(low);
    if e.bytes <= budget {
        return Ok(e);
    }
    let largest: Vec<String> = e
        .largest
        .iter()
        .map(|(n, b)| format!("{n} {}", gb(*b)))
        .collect();
    Err(CompileError::new(
        ErrorKind::Options,
        format!(
            "{what}: writing the plans and weights would need about {} (a weights file of {}, the circuits' bindings), more than the memory budget of {}",
            gb(e.bytes),
            gb(e.weights_file),
            gb(budget)
        ),
    )
    .with_note(format!("the largest maps: {}", largest.join(", ")))
    .with_note("raise --memory-budget (MiB) if the machine has the memory"))
}

/// Refuses the calibration run when keeping every tensor of `images` images would exceed
/// `budget` bytes (f32 values; constants are shared with the graph).
pub fn check_calibration(graph: &Graph, images: usize, budget: u64) -> Result<(), CompileError> {
    let per_image: u64 = graph
        .tensors()
        .iter()
        .filter(|t| !t.is_const())
        .map(|t| t.shape.iter().skip(1).product::<usize>() as u64)
        .sum();
    let bytes = per_image
        .saturating_mul(images as u64)
        .saturating_mul(4)
        .saturating_add(
            graph
                .tensors()
                .iter()
                .filter(|t| t.is_const())
                .map(|t| t.shape.iter().product::<usize>() as u64 * 4)
                .sum(),
        );
    if bytes > budget {
        return Err(CompileError::new(
            ErrorKind::Options,
            format!(
                "calibration: running {images} images through the model keeps every tensor, about {}, more than the memory budget of {}; pass fewer calibration images or raise --memory-budget (MiB)",
                gb(bytes),
                gb(budget)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp2ml_ir::graph::Node;
    use mp2ml_ir::tensor::Tensor;

    fn conv_graph(c: usize, hw: usize, m: usize, k: usize) -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", vec![1, c, hw, hw]);
        let w = g.add_const(
            "w",
            Tensor::new(vec![m, c, k, k], vec![0.5; m * c * k * k]).expect("w"),
        );
        let y = g.add_value("y", vec![1, m, hw, hw]);
        let p = k / 2;
        g.add_node(Node {
            name: "conv".into(),
            onnx_op: "Conv".into(),
            op: Op::Conv {
                kernel: [k, k],
                strides: [1, 1],
                pads: [p, p, p, p],
                dilations: [1, 1],
                group: 1,
            },
            inputs: vec![x, w],
            outputs: vec![y],
            line: 1,
        });
        g.set_outputs(vec![y]);
        g
    }

    #[test]
    fn conv_terms_are_the_expanded_matrix() {
        // 16×8×8 → 32×8×8 with 3×3 kernels: 2048 rows of 16·9 terms (padding not subtracted).
        let g = conv_graph(16, 8, 32, 3);
        let info = mp2ml_ir::validate::validate(&g).expect("valid");
        let e = estimate_lowering(&g, &info).expect("estimate");
        assert_eq!(e.rows, 32 * 64);
        assert_eq!(e.terms, 32 * 64 * 16 * 9);
        assert_eq!(e.largest[0].0, "conv");
    }

    #[test]
    fn over_budget_is_refused_naming_the_step() {
        let g = conv_graph(64, 56, 64, 3);
        let info = mp2ml_ir::validate::validate(&g).expect("valid");
        let e = estimate_lowering(&g, &info).expect("estimate");
        // 115 M expanded terms: kept as its kernel, a few MB.
        assert_eq!((e.structured, e.terms), (1, 0));
        assert!(e.bytes < 20 << 20, "{}", e.bytes);
        let err = check_lowering(&g, &info, e.bytes - 1).expect_err("over budget");
        assert!(
            err.to_string().contains("batch packing: the lowering step"),
            "{err}"
        );
        assert!(err.notes[0].contains("`conv`"), "{err}");
        assert!(check_lowering(&g, &info, e.bytes).is_ok());
        assert!(check_calibration(&g, 1, 10).is_err());
        assert!(check_calibration(&g, 1, 1 << 30).is_ok());
    }
}
