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
mod apply;
pub mod local;

mod fusion;
mod levels;
mod lowered;
mod materialize;
pub mod noise;
mod ranges;
pub mod smap;

use std::collections::BTreeSet;

use mp2ml_ir::graph::Graph;
use mp2ml_ir::tensor::TensorId;
use mp2ml_ir::validate::GraphInfo;

use crate::error::{CompileError, ErrorKind};
use crate::passes::{fold_constants, post_tail};
pub use apply::SPARSE_LIMIT;
pub use levels::assign_levels;
pub use lowered::{
    CircuitSpec, Decision, LinMap, Lowered, MKind, MTensor, Ranges, Step, OUTPUT_LEVEL,
};
pub use noise::NoiseCoeffs;

fn per_image(shape: &[usize]) -> Vec<usize> {
    shape.iter().skip(1).copied().collect()
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Lowers a validated graph (`info` is what [`validate`](mp2ml_ir::validate::validate)
/// returned for it).
pub fn lower(
    graph: &Graph,
    info: &GraphInfo,
    ranges: &Ranges,
    scale_bits: u32,
) -> Result<Lowered, CompileError> {
    lower_with(graph, info, ranges, scale_bits, true, SPARSE_LIMIT)
}

/// Lowers a validated graph; with `chains` false every materialized tensor is one fused
/// Linear over frontier tensors (what image packing needs: its linear ops read only the input
/// and MPC outputs, whose layouts the client packs). Fused maps above `expand_limit` stored
/// entries stay convolution terms ([`SPARSE_LIMIT`] is the default).
pub fn lower_with(
    graph: &Graph,
    info: &GraphInfo,
    ranges: &Ranges,
    scale_bits: u32,
    chains: bool,
    expand_limit: u64,
) -> Result<Lowered, CompileError> {
    let order = info.order.clone();
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
    let ctx = fusion::Ctx::new(
        graph,
        order,
        folded.values,
        skip,
        (*input, tail.output),
        scale_bits,
        expand_limit,
    );
    if ctx.is_const(ctx.output) {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            "the model output is a constant",
        ));
    }

    // Pass 1: everything fused; decide per target.
    let mut clock = crate::phases::Phases::new();
    let p1 = ctx.pass(&BTreeSet::new())?;
    clock.mark("  fusion pass 1");
    let (mut cuts, mut decisions) = fusion::decide(&ctx, &p1)?;
    clock.mark("  fusion decisions");
    if std::env::var_os("MP2MLC_PHASES").is_some() {
        let chained = decisions.iter().filter(|d| d.chain).count();
        eprintln!(
            "  {} targets ({chained} chained), {} cut tensors",
            decisions.len(),
            cuts.len()
        );
    }
    if !chains {
        cuts.clear();
        for d in &mut decisions {
            d.chain = false;
        }
    }
    let p = if cuts.is_empty() {
        p1
    } else {
        ctx.pass(&cuts)?
    };
    clock.mark("  fusion pass 2");
    let mut low = materialize::build(&ctx, p, decisions, tail.post)?;
    clock.mark("  materialize");
    assign_levels(&mut low, OUTPUT_LEVEL);
    levels::assign_scales(&mut low)?;
    ranges::analyze_ranges(&ctx, &mut low, ranges)?;
    clock.mark("  levels and ranges");
    Ok(low)
}
