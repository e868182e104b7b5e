//! Every bundled model end to end: compiled by `mp2mlc`'s driver, run by the two parties over
//! loopback TCP, and checked against the plan's own fixed-point simulation (same integer weights
//! and circuits, no CKKS noise) and against the f32 reference executor; the report's traffic
//! model against the bytes the session moved.

use mp2ml_compiler::driver::{compile_graph, Options};
use mp2ml_compiler::onnx::{import_file, ImportOptions};
use mp2ml_compiler::packing::traffic::batch_traffic_with;
use mp2ml_compiler::simulate::simulate;
use mp2ml_ir::plan::MpcBackend;
use mp2ml_ir::reference::run;
use mp2ml_ir::tensor::Tensor;
use mp2ml_ir::weights::WeightsFile;
use mp2ml_runtime::client::Batch;
use mp2ml_runtime::local::run_local;
use mp2ml_runtime::plan::load_server;
use mp2ml_runtime::session::SessionOptions;
use mp2ml_tests::e2e::{argmax, compile, digits, root, write_plan, Compare};

/// Runs `name` on the first `count` test digits with each step on the plan's back end, or on
/// `mpc` for every step (`mp2ml-run --mpc`), and checks the outputs and the traffic model.
/// Returns the back end each step ran.
fn check(name: &str, count: usize) -> Vec<MpcBackend> {
    check_with(name, count, None)
}

fn check_with(name: &str, count: usize, mpc: Option<MpcBackend>) -> Vec<MpcBackend> {
    let (graph, out) = compile(name, &Options::default());
    let tag = mpc.map_or("plan", MpcBackend::tag);
    let (dir, plan_path) = write_plan(&out, name, &format!("e2e-{name}-{tag}"));
    let setup = load_server(&plan_path, 128).expect("runtime loads the compiled plan");

    let (data, _) = digits(count);
    let batch = Batch {
        images: count,
        data: data.clone(),
    };
    // The server's offline pass (entry floods: a public-key encryption per client ciphertext)
    // can exceed the default 60 s of silence on a loaded 2-core machine.
    let opts = SessionOptions {
        timeout: std::time::Duration::from_secs(300),
        mpc,
        ..SessionOptions::default()
    };
    let (secure, crep, _srep) = run_local(&setup, &batch, &opts).expect("two-party run");

    // The report's traffic model against the bytes the client actually sent and received
    // (both directions of every message pass through the client): exact up to a few framing
    // bytes, far inside the 1.5× the cost model promises.
    let est = batch_traffic_with(&out.compiled.server.public, count, mpc).total();
    let measured = crep.bytes(None) as f64;
    assert!(
        (est - measured).abs() <= measured * 1e-3,
        "{name} ({tag}): estimated {est} bytes, the session moved {measured}"
    );

    let mut cmp = Compare::new(&graph, &out);
    cmp.add(&data, &secure.logits, 0, &format!("{name} ({tag})"));
    eprintln!(
        "{name} ({tag}): {count} images, max |secure − simulated| = {:.2e}, max |secure − f32| = {:.2e}, {:.1} MB, {} AND gates",
        cmp.sim,
        cmp.reference,
        crep.bytes(None) as f64 / 1e6,
        crep.and_gates()
    );
    cmp.assert_within(name);
    std::fs::remove_dir_all(&dir).ok();
    let plan = &out.compiled.server.public;
    plan.mpc_steps
        .iter()
        .map(|s| mpc.unwrap_or(s.backend))
        .collect()
}

// The plans are compiled for the default network (LAN), where the cost model puts the larger
// steps on GMW: together the runs below cover both back ends on every bundled model but
// ResNet-20 (each model on GMW, Yao on all but `residual`), each at no extra session.

#[test]
fn tiny_two_party_matches_simulation() {
    assert_eq!(check("tiny", 32), [MpcBackend::Yao]);
    // Its one step forced onto GMW (`mp2ml-run --mpc gmw`).
    check_with("tiny", 8, Some(MpcBackend::Gmw));
}

#[test]
fn cryptonets_relu_two_party_matches_simulation() {
    let used = check("cryptonets_relu", 16);
    assert_eq!(used, [MpcBackend::Gmw, MpcBackend::Yao]);
}

#[test]
fn maxpool_cnn_two_party_matches_simulation() {
    let used = check("maxpool_cnn", 4);
    assert!(
        used.contains(&MpcBackend::Gmw) && used.contains(&MpcBackend::Yao),
        "{used:?}"
    );
}

#[test]
fn residual_two_party_matches_simulation() {
    let used = check("residual", 4);
    assert!(used.iter().all(|&b| b == MpcBackend::Gmw), "{used:?}");
}

/// The bundled ResNet-20 compiles with `--calibration` (worst-case interval analysis cannot
/// bound it, see `bad_input.rs`), and the plan's fixed-point simulation (the integer weights
/// and circuits the two parties run, without CKKS noise) agrees with the f32 reference on the
/// first test images. (The two-party run at batch 1 takes minutes with batch packing, so it is
/// a benchmark, not a test.)
#[test]
fn resnet20_calibrated_plan_matches_reference() {
    let models = root().join("models");
    let graph = import_file(&models.join("resnet20.onnx"), &ImportOptions::default())
        .unwrap_or_else(|d| panic!("resnet20: {}", d.render()));
    let opts = Options {
        calibration: Some(models.join("fmnist32_calib.npy")),
        ..Options::default()
    };
    let out = compile_graph(&graph.graph, "resnet20", "resnet20.weights.bin", &opts)
        .unwrap_or_else(|e| panic!("compile resnet20 with calibration: {e}"));
    assert_eq!(out.lowered.steps.len(), 19, "ResNet-20 has 19 ReLU layers");
    let bytes = std::fs::read(models.join("fmnist32_test_x.npy")).expect("test images");
    let all = mp2ml_compiler::npy::read_f32(&bytes).expect("npy");
    let per: usize = all.shape.iter().skip(1).product();
    assert_eq!(all.shape[1..], [1, 32, 32]);
    let wf = WeightsFile::from_bytes(out.compiled.weights.clone()).expect("weights");
    let mut worst = 0.0f64;
    for j in 0..3 {
        let img = &all.data[j * per..(j + 1) * per];
        let sim = simulate(&out.compiled.server, &wf, img).expect("simulate");
        let reference = run(
            &graph.graph,
            &[Tensor::new(vec![1, 1, 32, 32], img.to_vec()).expect("image")],
        )
        .expect("reference");
        for (s, r) in sim.iter().zip(&reference[0].data) {
            worst = worst.max((s - f64::from(*r)).abs());
        }
        assert_eq!(
            argmax(&sim),
            argmax(&reference[0].data),
            "resnet20 image {j}: simulated top-1 differs from the f32 reference"
        );
    }
    eprintln!("resnet20: max |simulated − f32| = {worst:.2e} on 3 images");
    // Fixed-point rounding at Δ = 2^20 through 19 layers (measured: 3e-6).
    assert!(worst < 1e-4, "simulated logits deviate by {worst}");
}
