//! The compile pipeline: validated graph → lowered partition → parameters → plan.

use std::path::PathBuf;
use std::time::Instant;

use mp2ml_ir::graph::Graph;
use mp2ml_ir::reference::eval;
use mp2ml_ir::tensor::Tensor;

use crate::error::{CompileError, ErrorKind};
use crate::params::{choose, Chosen, ParamOptions};
use crate::partition::{lower, Lowered, Ranges};
use crate::plan_writer::{build_plan, Compiled, PlanSettings};

/// Compiler options (the CLI's flags).
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Parameter options.
    pub params: ParamOptions,
    /// Declared input range.
    pub input_range: (f32, f32),
    /// Calibration images (`.npy`, float32 `[B, …]`), replacing interval analysis.
    pub calibration: Option<PathBuf>,
    /// Calibration margin (multiplies the observed max |value|).
    pub margin: f64,
    /// Batch size recorded in the plan.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            params: ParamOptions::default(),
            input_range: (0.0, 1.0),
            calibration: None,
            margin: 2.0,
            batch: 1,
        }
    }
}

/// Result of a compilation, with what the report shows.
#[derive(Clone, Debug)]
pub struct Output {
    /// The plans and weights.
    pub compiled: Compiled,
    /// The partition.
    pub lowered: Lowered,
    /// The parameters.
    pub chosen: Chosen,
    /// Options used.
    pub options: Options,
    /// Compile time in milliseconds (after import).
    pub millis: f64,
}

/// Max |value| of every graph tensor over a batch of images (`[B, …]`).
pub fn observe(graph: &Graph, images: &Tensor) -> Result<Vec<f64>, CompileError> {
    let order = graph
        .topo_order()
        .map_err(|_| CompileError::new(ErrorKind::Unsupported, "the graph has a cycle"))?;
    let [input] = graph.inputs() else {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            "calibration needs a model with one input",
        ));
    };
    let exp = graph.tensor(*input).shape.clone();
    let b = images.shape.first().copied().unwrap_or(0);
    if images.shape.len() != exp.len()
        || images.shape.iter().skip(1).ne(exp.iter().skip(1))
        || b == 0
    {
        return Err(CompileError::new(
            ErrorKind::Options,
            format!(
                "calibration images have shape {:?}, the model input is {:?} (batch axis first)",
                images.shape, exp
            ),
        ));
    }
    let factor = b / exp.first().copied().unwrap_or(1).max(1);
    let mut vals: Vec<Option<Tensor>> = graph.tensors().iter().map(|t| t.value.clone()).collect();
    vals[input.index()] = Some(images.clone());
    for n in order {
        let node = graph.node(n);
        let args: Option<Vec<&Tensor>> = node
            .inputs
            .iter()
            .map(|t| vals.get(t.index()).and_then(Option::as_ref))
            .collect();
        let Some(args) = args else { continue };
        let outs = eval(&node.op, &args, factor)
            .map_err(|e| CompileError::node(graph, n, format!("calibration run failed: {e}")))?;
        for (t, v) in node.outputs.iter().zip(outs) {
            vals[t.index()] = Some(v);
        }
    }
    Ok(vals
        .iter()
        .map(|v| {
            v.as_ref().map_or(0.0, |t| {
                t.data
                    .iter()
                    .fold(0.0f64, |m, &x| m.max(f64::from(x).abs()))
            })
        })
        .collect())
}

/// Compiles a validated graph.
pub fn compile_graph(
    graph: &Graph,
    model: &str,
    weights_file: &str,
    opts: &Options,
) -> Result<Output, CompileError> {
    let start = Instant::now();
    let (lo, hi) = opts.input_range;
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(CompileError::new(
            ErrorKind::Options,
            format!("bad input range {lo}:{hi}"),
        ));
    }
    if opts.batch == 0 {
        return Err(CompileError::new(
            ErrorKind::Options,
            "--batch must be at least 1",
        ));
    }
    let ranges = match &opts.calibration {
        None => Ranges::Interval(f64::from(lo), f64::from(hi)),
        Some(path) => {
            if !(opts.margin >= 1.0 && opts.margin.is_finite()) {
                return Err(CompileError::new(
                    ErrorKind::Options,
                    "the calibration margin must be ≥ 1",
                ));
            }
            let bytes = std::fs::read(path).map_err(|e| {
                CompileError::new(
                    ErrorKind::Io,
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            let images = crate::npy::read_f32(&bytes).map_err(|e| {
                CompileError::new(ErrorKind::Options, format!("`{}`: {e}", path.display()))
            })?;
            let obs = observe(graph, &images)?;
            Ranges::Observed(obs.into_iter().map(|m| m * opts.margin).collect())
        }
    };
    let mut lowered = lower(graph, &ranges, opts.params.scale_bits)?;
    let chosen = choose(&mut lowered, &opts.params)?;
    let settings = PlanSettings {
        model: model.to_string(),
        weights_file: weights_file.to_string(),
        scale_bits: opts.params.scale_bits,
        sigma: opts.params.sigma,
        security_bits: opts.params.security.bits(),
        batch: opts.batch,
        input_range: opts.input_range,
    };
    let compiled = build_plan(&lowered, &chosen, &settings)?;
    Ok(Output {
        compiled,
        lowered,
        chosen,
        options: opts.clone(),
        millis: start.elapsed().as_secs_f64() * 1e3,
    })
}
