//! Issue 13, part 1, with its positive control: the outputs a client decrypts do not depend on
//! the noise of its own encryptions (which it knows), because every circuit drops the noise of
//! its inputs: the server floods its share with K = σ_v + ⌈log2 B_ε⌉ bits and the circuit
//! keeps ⌊v/2^K⌋ (docs/ARCHITECTURE.md, "Flood the share, truncate in the circuit").
//!
//! The client records, through the test-only probe (feature `test-hooks`, enabled only by this
//! package), the noise of its own input encryptions and re-encryptions of the first ReLU's
//! outputs; it sends the same input in every coefficient of a full batch and regresses the
//! logit on that noise. The positive control compiles the same model with K = 0 (no raised
//! scale, no share flood, no truncation) through the test-only calls
//! `params::without_truncation_for_tests` (compiler) and `plan::accept_untruncated_for_tests`
//! (runtime, which otherwise refuses such a plan); no CLI flag and no plan field reaches
//! either. Without truncation the regression finds the dependence; with the shipped protocol it
//! does not. The same holds in image packing, where the kernels mix every coefficient's noise
//! (`image_outputs_do_not_depend_on_the_clients_noise`).

use std::sync::Arc;

use mp2ml_compiler::driver::{compile_graph, Options, Packing};
use mp2ml_compiler::params::without_truncation_for_tests;
use mp2ml_compiler::plan_writer::write_all;
use mp2ml_ir::graph::{Graph, Node};
use mp2ml_ir::op::Op;
use mp2ml_ir::tensor::{Tensor, TensorId};
use mp2ml_mpc::MemChannel;
use mp2ml_runtime::client::{run_client, Batch};
use mp2ml_runtime::local::{channel_config, client_setup_of};
use mp2ml_runtime::plan::{accept_untruncated_for_tests, load_server, ServerSetup};
use mp2ml_runtime::probe::Probe;
use mp2ml_runtime::server::serve;
use mp2ml_runtime::session::SessionOptions;

/// A ReLU node on `x` with output shape `shape`.
fn relu(g: &mut Graph, name: &str, x: TensorId, shape: Vec<usize>) -> TensorId {
    let y = g.add_value(format!("{name}.y"), shape);
    g.add_node(Node {
        name: name.into(),
        onnx_op: "Relu".into(),
        op: Op::Relu,
        inputs: vec![x],
        outputs: vec![y],
        line: 0,
    });
    y
}

/// `x → relu(64·x + 1) → relu(5·h) → Σ` on 4 values: every pre-activation is positive, so the
/// noise of the input's encryption (times 64, above the server's re-randomization noise) and of
/// the first ReLU's re-encryption would pass linearly into the logit.
fn noise_model() -> Graph {
    let mut g = Graph::new("noise");
    let gemm = |g: &mut Graph, name: &str, x: TensorId, w: Vec<f32>, b: Vec<f32>, n: usize| {
        let k = w.len() / n;
        let wt = g.add_const(format!("{name}.w"), Tensor::new(vec![k, n], w).expect("w"));
        let bt = g.add_const(format!("{name}.b"), Tensor::new(vec![n], b).expect("b"));
        let y = g.add_value(format!("{name}.y"), vec![1, n]);
        g.add_node(Node {
            name: name.into(),
            onnx_op: "Gemm".into(),
            op: Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false,
            },
            inputs: vec![x, wt, bt],
            outputs: vec![y],
            line: 0,
        });
        y
    };
    let relu = |g: &mut Graph, name: &str, x: TensorId| relu(g, name, x, vec![1, 4]);
    let eye = |s: f32| -> Vec<f32> { (0..16).map(|i| if i % 5 == 0 { s } else { 0.0 }).collect() };
    let x = g.add_input("x", vec![1, 4]);
    let a = gemm(&mut g, "g1", x, eye(64.0), vec![1.0; 4], 4);
    let a = relu(&mut g, "r1", a);
    let b = gemm(&mut g, "g2", a, eye(5.0), vec![0.0; 4], 4);
    let b = relu(&mut g, "r2", b);
    let y = gemm(&mut g, "g3", b, vec![1.0; 4], vec![0.0], 1);
    g.set_outputs(vec![y]);
    g
}

/// `x → relu(64·x + 1) → relu(5·h) → h` on one 64×64 plane, as 1×1 convolutions (one value per
/// coefficient in image packing, so one image gives 4096 samples of the same structure).
fn plane_model() -> Graph {
    let mut g = Graph::new("plane");
    let shape = vec![1, 1, 64, 64];
    let conv = |g: &mut Graph, name: &str, x: TensorId, w: f32, b: f32| {
        let wt = g.add_const(
            format!("{name}.w"),
            Tensor::new(vec![1, 1, 1, 1], vec![w]).expect("w"),
        );
        let bt = g.add_const(
            format!("{name}.b"),
            Tensor::new(vec![1], vec![b]).expect("b"),
        );
        let y = g.add_value(format!("{name}.y"), vec![1, 1, 64, 64]);
        g.add_node(Node {
            name: name.into(),
            onnx_op: "Conv".into(),
            op: Op::Conv {
                kernel: [1, 1],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
                group: 1,
            },
            inputs: vec![x, wt, bt],
            outputs: vec![y],
            line: 0,
        });
        y
    };
    let relu = |g: &mut Graph, name: &str, x: TensorId| relu(g, name, x, vec![1, 1, 64, 64]);
    let x = g.add_input("x", shape);
    let a = conv(&mut g, "c1", x, 64.0, 1.0);
    let a = relu(&mut g, "r1", a);
    let b = conv(&mut g, "c2", a, 5.0, 0.0);
    let b = relu(&mut g, "r2", b);
    let y = conv(&mut g, "c3", b, 1.0, 0.0);
    g.set_outputs(vec![y]);
    g
}

/// F statistic of the least-squares regression of `y` on the columns `x` (with intercept).
fn regression_f(y: &[f64], x: &[Vec<f64>]) -> f64 {
    let (n, d) = (y.len(), x.len());
    // Normal equations over [1, x_1 … x_d], solved by Gauss–Jordan elimination.
    let col = |i: usize, j: usize| if i == 0 { 1.0 } else { x[i - 1][j] };
    let k = d + 1;
    let mut a = vec![vec![0.0f64; k + 1]; k];
    for (r, row) in a.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate().take(k) {
            *v = (0..n).map(|j| col(r, j) * col(c, j)).sum();
        }
        row[k] = (0..n).map(|j| col(r, j) * y[j]).sum();
    }
    for p in 0..k {
        let piv = a[p][p];
        assert!(piv.abs() > 1e-9, "singular regression");
        let pivot_row = a[p].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != p {
                let f = row[p] / piv;
                for (x, &y) in row.iter_mut().zip(&pivot_row).skip(p) {
                    *x -= f * y;
                }
            }
        }
    }
    let beta: Vec<f64> = (0..k).map(|r| a[r][k] / a[r][r]).collect();
    let mean = y.iter().sum::<f64>() / n as f64;
    let tss: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let rss: f64 = (0..n)
        .map(|j| {
            let fit: f64 = (0..k).map(|r| beta[r] * col(r, j)).sum();
            (y[j] - fit).powi(2)
        })
        .sum();
    ((tss - rss) / d as f64) / (rss / (n - d - 1) as f64)
}

/// One session of `batch` on `setup`: the logits and the client's own noise as the probe
/// recorded it.
fn session(setup: &ServerSetup, batch: &Batch) -> (Vec<f64>, Vec<Vec<Vec<i64>>>) {
    let mut cs = client_setup_of(setup);
    let probe = Arc::new(Probe::default());
    cs.probe = Some(probe.clone());
    let o = SessionOptions::default();
    let (a, b) = MemChannel::pair(channel_config(&setup.params, &o));
    let (y, _) = std::thread::scope(|s| {
        let h = s.spawn(|| serve(setup, a, &o));
        let r = run_client(&cs, b, batch, &o).expect("client");
        h.join().expect("server thread").expect("server");
        r
    });
    let noise = std::mem::take(&mut *probe.noise.lock().expect("probe"));
    (y.logits.iter().map(|&v| f64::from(v)).collect(), noise)
}

/// Compiles `g` with `opts` (with K = 0 if `untruncated`, the positive control) and loads the
/// server's setup; checks the plan's truncation against its σ_v and noise bound.
fn compiled(g: &Graph, name: &str, opts: &Options, untruncated: bool) -> ServerSetup {
    let dir = tempfile::TempDir::new().expect("tmpdir");
    let compile = || compile_graph(g, name, &format!("{name}.weights.bin"), opts).expect("compile");
    let out = if untruncated {
        without_truncation_for_tests(compile)
    } else {
        compile()
    };
    let plan = dir.path().join(format!("{name}.ron"));
    write_all(&out.compiled, &plan).expect("write");
    let setup = if untruncated {
        // A release runtime refuses the plan; the test hook lets it load.
        assert!(
            load_server(&plan, 128).is_err(),
            "an untruncated plan loads"
        );
        accept_untruncated_for_tests(|| load_server(&plan, 128)).expect("load")
    } else {
        load_server(&plan, 128).expect("load")
    };
    let p = &setup.plan.public;
    let sv = p.value_sigma().expect("σ_v");
    for c in &p.circuits {
        if untruncated {
            assert_eq!(c.trunc, 0);
        } else {
            assert!(
                c.trunc >= sv + p.noise_bits && p.noise_bits > 0,
                "K = {}",
                c.trunc
            );
        }
    }
    setup
}

/// The positive control rejects independence (F above `crit`), the shipped protocol does not.
fn assert_control(stats: &[f64], crit: f64) {
    assert!(
        stats[0] > crit,
        "positive control: without truncation the regression must find the client's noise in the logits (F = {:.2})",
        stats[0]
    );
    assert!(
        stats[1] < crit,
        "the logits depend on the client's own encryption noise (F = {:.2})",
        stats[1]
    );
}

#[test]
fn outputs_do_not_depend_on_the_clients_noise() {
    let mut opts = Options::default();
    opts.params.session_images = 16384;
    let mut stats = Vec::new();
    for untruncated in [true, false] {
        let setup = compiled(&noise_model(), "noise", &opts, untruncated);
        // One full group: N samples of the same input.
        let images = setup.params.n();
        let batch = Batch {
            images,
            data: vec![0.5; images * 4],
        };
        let (logits, noise) = session(&setup, &batch);
        // The input's encryptions, then the first and second ReLU's re-encryptions (4 values
        // each): the first 8 are regressors.
        assert_eq!(noise.len(), 3, "one group: input and two steps");
        let e: Vec<Vec<f64>> = (0..8)
            .map(|k| noise[k / 4][k % 4].iter().map(|&x| x as f64).collect())
            .collect();
        assert_eq!(logits.len(), images);
        // The logit is 5·Σ(64·x + 1) = 660 up to noise.
        let worst = logits.iter().map(|v| (v - 660.0).abs()).fold(0.0, f64::max);
        assert!(worst < 0.1, "outputs off by {worst}");
        let f = regression_f(&logits, &e);
        println!("untruncated = {untruncated}: F = {f:.2} over {images} samples");
        stats.push(f);
    }
    // F(8, ∞) exceeds 5 with probability below 1e-5 (χ²_8 > 40).
    assert_control(&stats, 5.0);
}

/// Image packing: two images of 4096 values each (8192 samples); the regressors of output
/// element e are the client's own noise at e's coefficient in every upload (the input's and
/// each ReLU's re-encryption), read from the public layouts.
#[test]
fn image_outputs_do_not_depend_on_the_clients_noise() {
    let opts = Options {
        packing: Packing::Image,
        ..Options::default()
    };
    let (images, elems) = (2, 64 * 64);
    let batch = Batch {
        images,
        data: vec![0.5; images * elems],
    };
    let mut stats = Vec::new();
    for untruncated in [true, false] {
        let setup = compiled(&plane_model(), "plane", &opts, untruncated);
        let l = setup
            .plan
            .public
            .image
            .clone()
            .expect("an image-packed plan");
        // Every upload in wire order: element → (polynomial, coefficient).
        let slots: Vec<Vec<(usize, usize)>> = l
            .input
            .iter()
            .chain(l.steps.iter().flat_map(|s| &s.uploads))
            .map(|u| {
                let mut at = vec![(usize::MAX, 0); elems];
                for (p, c, e) in u.layout.slots() {
                    if at[e as usize].0 == usize::MAX {
                        at[e as usize] = (p as usize, c as usize);
                    }
                }
                at
            })
            .collect();
        let ups = slots.len();
        assert_eq!(ups, 3, "the input and one upload per ReLU");
        let (logits, noise) = session(&setup, &batch);
        assert_eq!(noise.len(), images * ups, "one entry per image and upload");
        let x: Vec<Vec<f64>> = (0..ups)
            .map(|u| {
                (0..images * elems)
                    .map(|k| {
                        let (img, e) = (k / elems, k % elems);
                        let (p, c) = slots[u][e];
                        noise[img * ups + u][p][c] as f64
                    })
                    .collect()
            })
            .collect();
        assert_eq!(logits.len(), images * elems);
        // 5·(64·0.5 + 1) = 165 up to noise.
        let worst = logits.iter().map(|v| (v - 165.0).abs()).fold(0.0, f64::max);
        assert!(worst < 0.1, "outputs off by {worst}");
        let f = regression_f(&logits, &x);
        println!(
            "image packing, untruncated = {untruncated}: F = {f:.2} over {} samples",
            logits.len()
        );
        stats.push(f);
    }
    // F(3, ∞) exceeds 8 with probability below 3e-5 (χ²_3 > 24).
    assert_control(&stats, 8.0);
}
