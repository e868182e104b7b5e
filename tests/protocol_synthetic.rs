//! The two-party protocol end to end on a hand-built plan (no compiler involved):
//! `y = W2 · relu(W1 · x + b1) + b2`, checked against the same computation in f64, over real
//! TCP on loopback; plus the handshake's refusals.

use std::path::Path;

use mp2ml_ckks::ntt_primes;
use mp2ml_compiler::circuits::{relu, CircuitParams};
use mp2ml_ir::plan::*;
use mp2ml_ir::weights::{IntMatrix, WeightsWriter};
use mp2ml_runtime::client::Batch;
use mp2ml_runtime::local::run_local;
use mp2ml_runtime::plan::load_server;
use mp2ml_runtime::session::SessionOptions;
use rand::{rngs::StdRng, Rng, SeedableRng};
use sha2::{Digest, Sha256};

const N: usize = 4096;
/// Δ = 2^20, as the compiler picks by default.
const F: u32 = 20;

struct Model {
    w1: Vec<Vec<f64>>,
    b1: Vec<f64>,
    w2: Vec<Vec<f64>>,
    b2: Vec<f64>,
}

impl Model {
    fn eval(&self, x: &[f32]) -> Vec<f64> {
        let h: Vec<f64> = self
            .w1
            .iter()
            .zip(&self.b1)
            .map(|(r, b)| {
                (r.iter().zip(x).map(|(w, &x)| w * f64::from(x)).sum::<f64>() + b).max(0.0)
            })
            .collect();
        self.w2
            .iter()
            .zip(&self.b2)
            .map(|(r, b)| r.iter().zip(&h).map(|(w, h)| w * h).sum::<f64>() + b)
            .collect()
    }
}

fn int_matrix(w: &[Vec<f64>], b: &[f64], p: u64, scale_bits: u32) -> IntMatrix {
    let rows = w.len();
    let cols = w[0].len();
    let mut m = IntMatrix {
        rows,
        cols,
        row_ptr: vec![0],
        ..Default::default()
    };
    for (r, bias) in w.iter().zip(b) {
        for (c, &x) in r.iter().enumerate() {
            m.col.push(c as u32);
            m.val.push((x * p as f64).round() as i64);
        }
        m.row_ptr.push(m.col.len() as u64);
        m.bias
            .push((bias * 2f64.powi(scale_bits as i32) * p as f64).round() as i128);
    }
    m
}

/// Writes the plan and weights into `dir`; returns the plan path.
fn write_plan(dir: &Path, model: &Model) -> std::path::PathBuf {
    let q0 = ntt_primes(30, N, 1, &[]).expect("q0")[0];
    let p1 = ntt_primes(44, N, 1, &[q0]).expect("p1")[0];
    let p2 = ntt_primes(30, N, 1, &[q0, p1]).expect("p2")[0];
    let sc = relu(&CircuitParams { q0, sigma: 40 });
    let mut ww = WeightsWriter::new();
    let m1 = ww.push(&int_matrix(&model.w1, &model.b1, p1, F));
    let m2 = ww.push(&int_matrix(&model.w2, &model.b2, p2, F + 40));
    let bytes = ww.into_bytes();
    std::fs::write(dir.join("toy.weights.bin"), &bytes).expect("write weights");
    let public = ClientPlan {
        version: PLAN_VERSION,
        params: CkksParams {
            log_n: 12,
            moduli: vec![q0, p1, p2],
            security_bits: 128,
            error_std: 3.2,
        },
        scale_bits: F,
        sigma: 40,
        batch: 1,
        input: InputSpec {
            name: "x".into(),
            shape: vec![4],
            level: 1,
            range: (-1.0, 1.0),
            scale_bits: F,
        },
        mpc_steps: vec![MpcStep {
            name: "relu".into(),
            kind: ActivationKind::Relu,
            circuit: 0,
            instances: 3,
            values_in: 3,
            values_out: 3,
            out_level: 2,
            out_scale_bits: F + 40,
        }],
        circuits: vec![sc],
        output: OutputSpec {
            name: "y".into(),
            shape: vec![2],
            level: 1,
            flood_bits: 52,
            scale_bits: F + 40,
            post: PostProcess::None,
        },
    };
    let t = |name: &str, n: usize, level: usize| HeTensor {
        name: name.into(),
        shape: vec![n],
        level,
    };
    let plan = ServerPlan {
        version: PLAN_VERSION,
        model: "toy".into(),
        public_hash: public.hash(),
        public,
        tensors: vec![t("x", 4, 1), t("h", 3, 0), t("r", 3, 2), t("y", 2, 1)],
        output_tensor: 3,
        segments: vec![
            Segment::He(HeSegment {
                name: "fc1".into(),
                ops: vec![HeOp::Linear {
                    name: "fc1".into(),
                    inputs: vec![0],
                    output: 1,
                    matrix: m1,
                    level_in: 1,
                }],
                macs: 12,
            }),
            Segment::Mpc(MpcBinding {
                step: 0,
                input: 1,
                gather: vec![0, 1, 2],
                output: 2,
            }),
            Segment::He(HeSegment {
                name: "fc2".into(),
                ops: vec![HeOp::Linear {
                    name: "fc2".into(),
                    inputs: vec![2],
                    output: 3,
                    matrix: m2,
                    level_in: 2,
                }],
                macs: 6,
            }),
        ],
        weights: WeightsRef {
            file: "toy.weights.bin".into(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        },
    };
    let path = dir.join("toy.ron");
    std::fs::write(
        &path,
        ron::ser::to_string_pretty(&plan, Default::default()).expect("ron"),
    )
    .expect("write plan");
    path
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mp2ml-synth-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

fn model(rng: &mut StdRng) -> Model {
    let mut m = |r: usize, c: usize| {
        (0..r)
            .map(|_| (0..c).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect::<Vec<Vec<f64>>>()
    };
    let w1 = m(3, 4);
    let w2 = m(2, 3);
    Model {
        w1,
        w2,
        b1: vec![0.1, -0.2, 0.05],
        b2: vec![0.3, -0.1],
    }
}

#[test]
fn two_party_run_matches_plaintext() {
    let mut rng = StdRng::seed_from_u64(7);
    let model = model(&mut rng);
    let dir = tmpdir("ok");
    let path = write_plan(&dir, &model);
    let setup = load_server(&path, 128).expect("plan loads");
    let images = 37;
    let data: Vec<f32> = (0..images * 4)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let batch = Batch {
        images,
        data: data.clone(),
    };
    let (out, crep, srep) =
        run_local(&setup, &batch, &SessionOptions::default()).expect("protocol runs");
    let mut max_err = 0f64;
    for j in 0..images {
        let want = model.eval(&data[j * 4..(j + 1) * 4]);
        for (k, w) in want.iter().enumerate() {
            max_err = max_err.max((f64::from(out.logits[j * 2 + k]) - w).abs());
        }
    }
    println!(
        "max |secure − plaintext| = {max_err:.2e}; client {} bytes, server steps {}",
        crep.bytes(None),
        srep.steps.len()
    );
    // Error budget: the re-randomization noise of HE→MPC (a public-key encryption of zero,
    // |e·u + e1·s + e0| ≲ 2^12 here) over Δ = 2^20, through |W2| ≤ 3, plus flooding
    // 2^52 over the output scale 2^60: about 1e-2 in the worst case, ~1e-3 typically.
    assert!(max_err < 1e-2, "secure outputs deviate by {max_err}");
    assert!(crep.and_gates() > 0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tampered_weights_and_plans_are_refused() {
    let mut rng = StdRng::seed_from_u64(8);
    let model = model(&mut rng);
    let dir = tmpdir("bad");
    let path = write_plan(&dir, &model);
    // Weights altered → hash mismatch.
    let wpath = dir.join("toy.weights.bin");
    let mut w = std::fs::read(&wpath).expect("read");
    let last = w.len() - 1;
    w[last] ^= 1;
    std::fs::write(&wpath, &w).expect("write");
    let err = load_server(&path, 128)
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("weights file does not match"), "{err}");
    // An edited parameter changes the public hash → refused.
    let text = std::fs::read_to_string(&path).expect("read");
    let edited = text.replacen("log_n: 12", "log_n: 11", 1);
    std::fs::write(&path, edited).expect("write");
    let err = load_server(&path, 128)
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("hash") || err.contains("insecure"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
