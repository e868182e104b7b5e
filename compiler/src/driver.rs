//! The compile pipeline: validated graph → lowered partition → parameters → plan.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use mp2ml_ir::graph::Graph;
use mp2ml_ir::reference::propagate;
use mp2ml_ir::tensor::Tensor;
use mp2ml_ir::validate::{validate, GraphInfo};

use crate::error::{CompileError, ErrorKind};
use crate::packing::estimate::{estimate, PackingEstimate};
use crate::packing::plan::image_plan;
use crate::params::{choose, Chosen, ParamOptions};
use crate::partition::{lower_with, Lowered, NoiseCoeffs, Ranges};
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
    /// Memory budget in bytes: steps whose estimate exceeds it are refused before they run.
    pub memory_budget: u64,
    /// Largest fused map (stored entries) the lowering builds as expanded rows; larger maps
    /// stay convolution terms ([`crate::partition::SPARSE_LIMIT`] by default; tests lower it
    /// to run the structured path on small graphs).
    pub expand_limit: u64,
    /// Packing of the plan.
    pub packing: Packing,
    /// The network the cost model picks each step's back end for.
    pub network: mp2ml_ir::plan::NetworkProfile,
    /// What the cost model minimizes (online time or the whole session).
    pub objective: mp2ml_ir::plan::MpcObjective,
}

/// How a plan packs its ciphertexts (`--packing batch|image|auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Packing {
    /// One ciphertext per value, one coefficient per image (MP2ML).
    Batch,
    /// One image's tensors in the coefficients of a few polynomials (Cheetah).
    Image,
    /// Image packing when the cost model finds it cheaper at the plan's batch.
    Auto,
}

/// The packing a compilation chose, and why.
#[derive(Clone, Debug)]
pub struct PackingChoice {
    /// `batch` or `image`.
    pub packing: &'static str,
    /// Why (both estimates, or why image packing was not possible).
    pub why: String,
    /// Both packings' HE cost per image, from the fully fused partition.
    pub estimate: Option<PackingEstimate>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            params: ParamOptions::default(),
            input_range: (0.0, 1.0),
            calibration: None,
            margin: 2.0,
            batch: 1,
            memory_budget: crate::budget::DEFAULT_BUDGET,
            expand_limit: crate::partition::SPARSE_LIMIT,
            packing: Packing::Batch,
            network: Default::default(),
            objective: Default::default(),
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
    /// The packing chosen (for `--packing image|auto`).
    pub packing: Option<PackingChoice>,
}

/// Max |value| of every graph tensor over a batch of images (`[B, …]`); `None` for a tensor the
/// run does not reach.
pub fn observe(
    graph: &Graph,
    info: &GraphInfo,
    images: &Tensor,
) -> Result<Vec<Option<f64>>, CompileError> {
    let [input] = graph.inputs() else {
        return Err(CompileError::new(
            ErrorKind::Unsupported,
            "calibration needs a model with one input",
        ));
    };
    let exp = graph.tensor(*input).shape.clone();
    let (b, e0) = match (images.shape.first(), exp.first()) {
        (Some(&b), Some(&e0))
            if b > 0
                && images.shape.len() == exp.len()
                && images.shape.iter().skip(1).eq(exp.iter().skip(1)) =>
        {
            (b, e0)
        }
        _ => {
            return Err(CompileError::new(
                ErrorKind::Options,
                format!(
                "calibration images have shape {:?}, the model input is {:?} (batch axis first)",
                images.shape, exp
            ),
            ))
        }
    };
    let factor = b / e0.max(1);
    let mut vals: Vec<Option<Tensor>> = graph.tensors().iter().map(|t| t.value.clone()).collect();
    vals[input.index()] = Some(images.clone());
    propagate(graph, &info.order, &mut vals, factor, |_| true)
        .map_err(|(n, e)| CompileError::node(graph, n, format!("calibration run failed: {e}")))?;
    Ok(vals
        .iter()
        .map(|v| {
            v.as_ref().map(|t| {
                t.data
                    .iter()
                    .fold(0.0f64, |m, &x| m.max(f64::from(x).abs()))
            })
        })
        .collect())
}

/// Validates `graph` and compiles it (for graphs built without the importer, which validates
/// already: use [`compile_validated`] with its [`GraphInfo`]).
pub fn compile_graph(
    graph: &Graph,
    model: &str,
    weights_file: &str,
    opts: &Options,
) -> Result<Output, CompileError> {
    let info = validate(graph).map_err(|e| match e.node() {
        Some(n) => CompileError::node(graph, n, e.to_string()),
        None => CompileError::new(ErrorKind::Unsupported, format!("invalid graph: {e}")),
    })?;
    compile_validated(graph, &info, model, weights_file, opts)
}

/// Compiles a validated graph: `info` is what [`validate`] returned for it (the topological
/// order every stage walks).
pub fn compile_validated(
    graph: &Graph,
    info: &GraphInfo,
    model: &str,
    weights_file: &str,
    opts: &Options,
) -> Result<Output, CompileError> {
    let start = Instant::now();
    let mut clock = crate::phases::Phases::new();
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
    crate::budget::check_lowering(graph, info, opts.memory_budget)?;
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
            let Some(&count) = images.shape.first() else {
                return Err(CompileError::new(
                    ErrorKind::Options,
                    format!(
                        "`{}`: calibration images need a batch axis (the file holds a scalar)",
                        path.display()
                    ),
                ));
            };
            crate::budget::check_calibration(graph, count, opts.memory_budget)?;
            let obs = observe(graph, info, &images)?;
            clock.mark("calibration run");
            Ranges::Observed(
                obs.into_iter()
                    .map(|m| m.map(|m| m * opts.margin))
                    .collect(),
            )
        }
    };
    // A session carries at least the plan's batch.
    let mut params = opts.params.clone();
    params.session_images = params.session_images.max(opts.batch);
    let settings = PlanSettings {
        model: model.to_string(),
        weights_file: weights_file.to_string(),
        scale_bits: opts.params.scale_bits,
        sigma: opts.params.sigma,
        security_bits: opts.params.security.bits(),
        batch: opts.batch,
        session_images: params.session_images,
        input_range: opts.input_range,
        network: opts.network,
        objective: opts.objective,
    };
    let batch = || -> Result<(Compiled, Lowered, Chosen), CompileError> {
        let mut clock = crate::phases::Phases::new();
        let mut lowered = lower_with(
            graph,
            info,
            &ranges,
            opts.params.scale_bits,
            true,
            opts.expand_limit,
        )?;
        clock.mark("batch: lowering");
        let chosen = choose(&mut lowered, &params)?;
        clock.mark("batch: parameters");
        crate::budget::check_plan(&lowered, "batch packing", opts.memory_budget)?;
        let compiled = build_plan(&lowered, &chosen, &settings)?;
        clock.mark("batch: plan and weights");
        Ok((compiled, lowered, chosen))
    };
    let image = || {
        compile_image(
            graph,
            info,
            &ranges,
            &params,
            &settings,
            (opts.expand_limit, opts.memory_budget),
        )
    };
    let (compiled, lowered, chosen, packing) = match opts.packing {
        Packing::Batch => {
            let (c, l, ch) = batch()?;
            (c, l, ch, None)
        }
        Packing::Image => {
            let (c, l, ch, est) = image()?;
            let choice = PackingChoice {
                packing: "image",
                why: "--packing image".into(),
                estimate: est,
            };
            (c, l, ch, Some(choice))
        }
        Packing::Auto => {
            let (bc, bl, bch) = batch()?;
            let mut clock = crate::phases::Phases::new();
            let batch_est = mp2ml_ir::weights::WeightsFile::from_bytes(bc.weights.clone())
                .map_err(|e| e.to_string())
                .and_then(|w| estimate(&bc.server, &w));
            clock.mark("batch: estimate");
            match (image(), batch_est) {
                (Ok((ic, il, ich, Some(ie))), Ok(be)) => {
                    // Batch cost from the plan batch packing would run (chains allowed),
                    // image cost from the fused plan image packing runs.
                    let cmp = PackingEstimate {
                        batch_bytes: be.batch_bytes,
                        batch_seconds: be.batch_seconds,
                        ..ie
                    };
                    let (which, why) = cmp.cheaper();
                    let est = Some(cmp.clone());
                    if which == "image" {
                        let c = PackingChoice {
                            packing: "image",
                            why,
                            estimate: est,
                        };
                        (ic, il, ich, Some(c))
                    } else {
                        let c = PackingChoice {
                            packing: "batch",
                            why,
                            estimate: est,
                        };
                        (bc, bl, bch, Some(c))
                    }
                }
                (Err(e), _) => {
                    let c = PackingChoice {
                        packing: "batch",
                        why: format!("image packing is not possible: {e}"),
                        estimate: None,
                    };
                    (bc, bl, bch, Some(c))
                }
                (Ok(_), Err(e)) => {
                    let c = PackingChoice {
                        packing: "batch",
                        why: format!("image packing is not possible: {e}"),
                        estimate: None,
                    };
                    (bc, bl, bch, Some(c))
                }
                (Ok((_, _, _, None)), Ok(_)) => {
                    let c = PackingChoice {
                        packing: "batch",
                        why: "image packing could not be estimated".into(),
                        estimate: None,
                    };
                    (bc, bl, bch, Some(c))
                }
            }
        }
    };
    Ok(Output {
        compiled,
        lowered,
        chosen,
        options: opts.clone(),
        millis: start.elapsed().as_secs_f64() * 1e3,
        packing,
    })
}

/// Compiles for image packing: the fully fused partition, its batch plan re-packed
/// ([`image_plan`]); the fresh-noise factors of the packed ops (per kernel polynomial) replace
/// the partition's, and the parameters are chosen again until they are stable.
fn compile_image(
    graph: &Graph,
    info: &GraphInfo,
    ranges: &Ranges,
    params: &ParamOptions,
    settings: &PlanSettings,
    (expand_limit, budget): (u64, u64),
) -> Result<(Compiled, Lowered, Chosen, Option<PackingEstimate>), CompileError> {
    let mut clock = crate::phases::Phases::new();
    let mut lowered = lower_with(graph, info, ranges, params.scale_bits, false, expand_limit)?;
    clock.mark("image: fused lowering");
    let image_err =
        |e: String| CompileError::new(ErrorKind::Unsupported, format!("image packing: {e}"));
    // The batch partition's noise of every tensor, before the image factors raise it.
    let base: BTreeMap<String, NoiseCoeffs> = lowered
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.noise))
        .collect();
    for _ in 0..4 {
        let chosen = choose(&mut lowered, params)?;
        clock.mark("image: parameters");
        crate::budget::check_plan(&lowered, "image packing", budget)?;
        let fused = build_plan(&lowered, &chosen, settings)?;
        clock.mark("image: fused plan and weights");
        let img = image_plan(&fused.server, &fused.weights).map_err(|e| image_err(e.0))?;
        clock.mark("image: packing");
        let mut raised = false;
        // Every packed op reads client tensors only, entry-flooded ([`NoiseCoeffs::ENTRY`]):
        // its output noise is f·ENTRY plus its own rescale rounding, with f = Σ‖k‖₁/p of its
        // worst output polynomial; the batch partition's constant (which holds the weight
        // rounding) is kept on top. Raised only, so the loop settles.
        for t in &mut lowered.tensors {
            let (Some(&f), Some(b)) = (img.fresh.get(&t.name), base.get(&t.name)) else {
                continue;
            };
            let e = NoiseCoeffs::ENTRY;
            let want = NoiseCoeffs {
                fresh: b.fresh.max(f * e.fresh),
                rescale: b.rescale.max(f * e.rescale + 1.0),
                constant: b.constant + f * e.constant,
            };
            let grow = |new: f64, old: &mut f64| {
                let up = new > *old * (1.0 + 1e-9);
                if up {
                    *old = new;
                }
                up
            };
            let n = &mut t.noise;
            raised |= grow(want.fresh, &mut n.fresh);
            raised |= grow(want.rescale, &mut n.rescale);
            raised |= grow(want.constant, &mut n.constant);
        }
        // σ_v counts every coefficient the image plan's entry floods cover.
        let flooded = img.server.public.entry_flooded_per_image();
        if lowered.entry_flooded_per_image.is_none_or(|c| flooded > c) {
            lowered.entry_flooded_per_image = Some(flooded);
            raised = true;
        }
        if !raised {
            let est = mp2ml_ir::weights::WeightsFile::from_bytes(fused.weights.clone())
                .map_err(|e| e.to_string())
                .and_then(|w| estimate(&fused.server, &w))
                .ok();
            let compiled = Compiled {
                server: img.server,
                weights: img.weights,
            };
            return Ok((compiled, lowered, chosen, est));
        }
    }
    Err(CompileError::internal(
        "image packing: the noise bounds did not settle in 4 parameter choices",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::simulate;
    use mp2ml_ir::graph::Node;
    use mp2ml_ir::op::Op;
    use mp2ml_ir::plan::{HeOp, Segment};
    use mp2ml_ir::weights::WeightsFile;

    fn gemm(
        g: &mut Graph,
        name: &str,
        x: mp2ml_ir::tensor::TensorId,
        k: usize,
        n: usize,
        seed: u32,
    ) -> mp2ml_ir::tensor::TensorId {
        let w: Vec<f32> = (0..k * n)
            .map(|i| (((i as u32 * 7919 + seed * 104729) % 17) as f32 - 8.0) / 16.0)
            .collect();
        let b: Vec<f32> = (0..n).map(|i| (i as f32 - 2.0) / 10.0).collect();
        let wt = g.add_const(format!("{name}.w"), Tensor::new(vec![k, n], w).expect("w"));
        let bt = g.add_const(format!("{name}.b"), Tensor::new(vec![n], b).expect("b"));
        let y = g.add_value(format!("{name}.y"), vec![1, n]);
        let op = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        };
        g.add_node(Node {
            name: name.into(),
            onnx_op: "Gemm".into(),
            op,
            inputs: vec![x, wt, bt],
            outputs: vec![y],
            line: 0,
        });
        y
    }

    fn unary(
        g: &mut Graph,
        name: &str,
        op: Op,
        x: mp2ml_ir::tensor::TensorId,
        n: usize,
    ) -> mp2ml_ir::tensor::TensorId {
        let y = g.add_value(format!("{name}.y"), vec![1, n]);
        g.add_node(Node {
            name: name.into(),
            onnx_op: op.name().into(),
            op,
            inputs: vec![x],
            outputs: vec![y],
            line: 0,
        });
        y
    }

    /// a = relu(g1(x)); c = clip(relu(g2(a))) (adjacent MPC steps: an empty HE segment);
    /// out = g4(relu(g3(c) + a)) (a residual Add over two MPC outputs). The fixed-point
    /// simulation matches the reference.
    #[test]
    fn residual_and_adjacent_steps() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", vec![1, 6]);
        let h = gemm(&mut g, "g1", x, 6, 5, 1);
        let a = unary(&mut g, "r1", Op::Relu, h, 5);
        let b = gemm(&mut g, "g2", a, 5, 5, 2);
        let r = unary(&mut g, "r2", Op::Relu, b, 5);
        let c = unary(&mut g, "clip", Op::Clip { min: 0.0, max: 0.5 }, r, 5);
        let d = gemm(&mut g, "g3", c, 5, 5, 3);
        let sum = g.add_value("sum", vec![1, 5]);
        g.add_node(Node {
            name: "add".into(),
            onnx_op: "Add".into(),
            op: Op::Add,
            inputs: vec![d, a],
            outputs: vec![sum],
            line: 0,
        });
        let r3 = unary(&mut g, "r3", Op::Relu, sum, 5);
        let out = gemm(&mut g, "g4", r3, 5, 3, 4);
        g.set_outputs(vec![out]);
        let o = compile_graph(&g, "t", "t.weights.bin", &Options::default()).expect("compile");
        let s = &o.compiled.server;
        assert_eq!(s.public.mpc_steps.len(), 4);
        let empty = s
            .segments
            .iter()
            .filter(|x| matches!(x, Segment::He(h) if h.ops.is_empty()))
            .count();
        assert_eq!(empty, 1, "relu → clip leaves one empty HE segment");
        let add = s
            .segments
            .iter()
            .filter_map(|x| {
                if let Segment::He(h) = x {
                    Some(h)
                } else {
                    None
                }
            })
            .flat_map(|h| h.ops.iter())
            .find(|op| matches!(op, HeOp::Linear { name, .. } if name.contains("add")));
        assert!(
            matches!(add, Some(HeOp::Linear { inputs, .. }) if inputs.len() == 2),
            "the residual Add reads two sources"
        );
        let wf = WeightsFile::from_bytes(o.compiled.weights.clone()).expect("weights");
        for k in 0..20 {
            let img: Vec<f32> = (0..6)
                .map(|i| ((i * 5 + k * 3) % 11) as f32 / 10.0)
                .collect();
            let r =
                mp2ml_ir::reference::run(&g, &[Tensor::new(vec![1, 6], img.clone()).expect("x")])
                    .expect("run");
            let sim = simulate(s, &wf, &img).expect("simulate");
            for (p, q) in r[0].data.iter().zip(&sim) {
                assert!((f64::from(*p) - q).abs() < 1e-3, "{p} vs {q}");
            }
        }
    }

    /// `g2(op(g1(x)))` on 4 inputs, `op` named `name`.
    fn two_layers(name: &str, op: Op) -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", vec![1, 4]);
        let h = gemm(&mut g, "g1", x, 4, 4, 1);
        let s = unary(&mut g, name, op, h, 4);
        let y = gemm(&mut g, "g2", s, 4, 4, 2);
        g.set_outputs(vec![y]);
        g
    }

    #[test]
    fn unsupported_op_is_named() {
        let g = two_layers("sig", Op::Sigmoid);
        let e = compile_graph(&g, "t", "t.weights.bin", &Options::default()).expect_err("refused");
        assert!(e.to_string().contains("sig"), "{e}");
    }

    /// A calibration file holding a 0-d array (no batch axis) is an options error, not a
    /// calibration over zero images.
    #[test]
    fn scalar_calibration_file_is_refused() {
        let g = two_layers("r1", Op::Relu);
        let dir = std::env::temp_dir().join(format!("mp2ml-scalar-calib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("scalar.npy");
        let bytes = mp2ml_ir::files::f32_to_bytes(&[], &[0.5]).expect("npy");
        std::fs::write(&path, bytes).expect("write");
        let opts = Options {
            calibration: Some(path),
            ..Options::default()
        };
        let e = compile_graph(&g, "t", "t.weights.bin", &opts).expect_err("refused");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(e.kind(), ErrorKind::Options, "{e}");
        assert!(e.to_string().contains("batch axis"), "{e}");
    }
}
