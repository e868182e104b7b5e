//! Shared helpers for the integration tests in this folder.

pub mod netsim;

/// The workspace's binaries (`mp2mlc`, `mp2ml-run`) for tests that run them as processes.
///
/// They are built on first use with `$CARGO build --bins -p mp2ml-compiler -p mp2ml-runtime`
/// in the test's profile (a no-op when they are fresh): `cargo test` builds binaries only for
/// packages with integration tests of their own, so depending on the two crates is not enough
/// to get `target/<profile>/mp2mlc` built or up to date.
pub mod bins {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;

    /// `target/<profile>` of the running test binary.
    pub fn target_dir() -> PathBuf {
        // target/<profile>/deps/<test>-<hash>
        let exe = std::env::current_exe().expect("current exe");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf()
    }

    /// Builds (if needed) and returns the path of binary `name`.
    pub fn bin(name: &str) -> PathBuf {
        static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
        let dir = target_dir();
        let built = BUILT.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "-q",
                "--bins",
                "-p",
                "mp2ml-compiler",
                "-p",
                "mp2ml-runtime",
            ]);
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            if let Some(t) = dir.parent() {
                cmd.env("CARGO_TARGET_DIR", t);
            }
            cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
            match cmd.status() {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!("cargo build of the binaries failed: {s}")),
                Err(e) => Err(format!("cannot run cargo: {e}")),
            }
        });
        if let Err(e) = built {
            panic!("{e}");
        }
        let p = dir.join(name);
        assert!(p.exists(), "{} was not built", p.display());
        p
    }
}

/// A hand-built two-party plan, `y = W2 · relu(W1 · x + b1) + b2` on 4 inputs, written without
/// the compiler (used by the protocol and fault tests).
pub mod toy {
    use std::path::Path;

    use mp2ml_ckks::ntt_primes;
    use mp2ml_ir::circuit::activations::{relu, CircuitParams};
    use mp2ml_ir::plan::*;
    use mp2ml_ir::weights::{IntMatrix, WeightsWriter};
    use rand::{rngs::StdRng, Rng};
    use sha2::{Digest, Sha256};

    /// Ring dimension of the toy plan.
    pub const N: usize = 8192;
    /// Δ = 2^20, as the compiler picks by default.
    pub const F: u32 = 20;

    /// The toy model's weights.
    pub struct Model {
        /// First layer.
        pub w1: Vec<Vec<f64>>,
        /// First bias.
        pub b1: Vec<f64>,
        /// Second layer.
        pub w2: Vec<Vec<f64>>,
        /// Second bias.
        pub b2: Vec<f64>,
    }

    impl Model {
        /// The model in f64.
        pub fn eval(&self, x: &[f32]) -> Vec<f64> {
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

    /// Integer CSR matrix `round(W·p)` with biases `round(b·2^scale_bits·p)`.
    pub fn int_matrix(w: &[Vec<f64>], b: &[f64], p: u64, scale_bits: u32) -> IntMatrix {
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
    pub fn write_plan(dir: &Path, model: &Model) -> std::path::PathBuf {
        write_plan_with(dir, model, false)
    }

    /// [`write_plan`], optionally with the input encrypted one level higher than the first
    /// layer needs and an explicit `ModDrop` before it (the path no bundled model takes).
    pub fn write_plan_with(dir: &Path, model: &Model, mod_drop: bool) -> std::path::PathBuf {
        let q0 = ntt_primes(30, N, 1, &[]).expect("q0")[0];
        let p1 = ntt_primes(44, N, 1, &[q0]).expect("p1")[0];
        let p2 = ntt_primes(30, N, 1, &[q0, p1]).expect("p2")[0];
        // Entry-flood primes: F = p2·p3 above the input's level 1, F = p3·p4 above the ReLU
        // outputs' level 2 (docs/ARCHITECTURE.md, "Flooding").
        let p34 = ntt_primes(30, N, 2, &[q0, p1, p2]).expect("p3, p4");
        // σ = 40 per session of at most 64 images: the masks are σ_v = 40 + ⌈log2(64·(2·3
        // hidden + 4 inputs + 2 outputs))⌉ = 50 bits wider than what they hide
        // (`ClientPlan::value_sigma`).
        let sc = relu(&CircuitParams {
            q0: u128::from(q0),
            trunc: 0,
            sigma: 50,
            style: Default::default(),
        });
        let mut ww = WeightsWriter::new();
        let m1 = ww.push(&int_matrix(&model.w1, &model.b1, p1, F));
        let m2 = ww.push(&int_matrix(&model.w2, &model.b2, p2, F + 40));
        let bytes = ww.into_bytes();
        std::fs::write(dir.join("toy.weights.bin"), &bytes).expect("write weights");
        let public = ClientPlan {
            version: PLAN_VERSION,
            params: CkksParams {
                log_n: N.trailing_zeros(),
                moduli: vec![q0, p1, p2, p34[0], p34[1]],
                security_bits: 128,
                error_std: 3.2,
            },
            scale_bits: F,
            sigma: 40,
            batch: 1,
            session_images: 64,
            entry: EntryFlood {
                bits: 55,
                rescales: 2,
            },
            input: InputSpec {
                name: "x".into(),
                shape: vec![4],
                level: if mod_drop { 4 } else { 3 },
                range: (-1.0, 1.0),
                scale_bits: F,
            },
            network: Default::default(),
            objective: Default::default(),
            mpc_steps: vec![MpcStep {
                name: "relu".into(),
                kind: ActivationKind::Relu,
                circuit: CircuitRef(0),
                depth_circuit: CircuitRef(0),
                gmw_variant: Default::default(),
                backend: Default::default(),
                instances: 3,
                values_in: 3,
                values_out: 3,
                out_level: 4,
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
            image: None,
        };
        let t = |name: &str, n: usize, level: usize| HeTensor {
            name: name.into(),
            shape: vec![n],
            level,
            polys: None,
        };
        let mut tensors = vec![
            t("x", 4, public.input.level - public.entry.rescales),
            t("h", 3, 0),
            t("r", 3, 2),
            t("y", 2, 1),
        ];
        let fc1 = |input: TensorRef| HeOp::Linear {
            name: "fc1".into(),
            inputs: vec![input],
            output: TensorRef(1),
            matrix: m1,
            level_in: 1,
        };
        let fc1_ops = if mod_drop {
            tensors.push(t("x_dropped", 4, 1));
            vec![
                HeOp::ModDrop {
                    input: TensorRef(0),
                    output: TensorRef(4),
                    level: 1,
                },
                fc1(TensorRef(4)),
            ]
        } else {
            vec![fc1(TensorRef(0))]
        };
        let plan = ServerPlan {
            version: PLAN_VERSION,
            model: "toy".into(),
            public_hash: public.hash().expect("hash"),
            public,
            tensors,
            output_tensor: TensorRef(3),
            segments: vec![
                Segment::He(HeSegment {
                    name: "fc1".into(),
                    ops: fc1_ops,
                    macs: 12,
                }),
                Segment::Mpc(MpcBinding {
                    step: StepRef(0),
                    input: TensorRef(1),
                    gather: vec![0, 1, 2],
                    output: TensorRef(2),
                }),
                Segment::He(HeSegment {
                    name: "fc2".into(),
                    ops: vec![HeOp::Linear {
                        name: "fc2".into(),
                        inputs: vec![TensorRef(2)],
                        output: TensorRef(3),
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
            image: None,
        };
        let path = dir.join("toy.ron");
        std::fs::write(
            &path,
            ron::ser::to_string_pretty(&plan, Default::default()).expect("ron"),
        )
        .expect("write plan");
        path
    }

    /// Random weights in [−1, 1) and the fixed biases.
    pub fn model(rng: &mut StdRng) -> Model {
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
}

/// The bundled models end to end (`e2e_models.rs` in batch packing, `image_e2e.rs` in image
/// packing): compile, write the plan, read the test digits, and compare the two parties'
/// outputs with the plan's fixed-point simulation and the f32 reference.
pub mod e2e {
    use std::path::{Path, PathBuf};

    use mp2ml_compiler::driver::{compile_graph, Options, Output};
    use mp2ml_compiler::onnx::{import_file, ImportOptions, Imported};
    use mp2ml_compiler::plan_writer::write_all;
    use mp2ml_compiler::simulate::simulate;
    use mp2ml_ir::plan::ServerPlan;
    use mp2ml_ir::reference::run;
    use mp2ml_ir::tensor::Tensor;
    use mp2ml_ir::weights::WeightsFile;

    /// Largest accepted |secure − simulated| and |secure − f32| per logit: five times the
    /// largest deviation measured on the bundled models. The noise budget: the
    /// re-randomization noise of every HE→MPC conversion (tail bound 9.12·3.24·√(4N/3 + 1) ≈
    /// 2.2e3 at N = 4096, i.e. ≈ 2e-3 at Δ = 2^20) carried through the following layers, plus
    /// flooding 2^-12 at the output. Measured against the simulation: 1e-3 to 4e-3 in batch
    /// packing, 1.2e-3 to 5.0e-3 in image packing (the per-kernel-polynomial noise, Σ‖k‖₁ over
    /// a product's terms, is larger than batch packing's Σ|W| of one row); the f32 reference
    /// differs from the simulation by another ≤ 2.3e-5 (golden.rs).
    pub const NOISE_TOL: f64 = 2e-2;

    /// The workspace root.
    pub fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Index of the largest value (the first of equal ones).
    pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
        (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
    }

    /// Imports `models/NAME.onnx` and compiles it with `opts`.
    pub fn compile(name: &str, opts: &Options) -> (Imported, Output) {
        let graph = import_file(
            &root().join(format!("models/{name}.onnx")),
            &ImportOptions::default(),
        )
        .unwrap_or_else(|d| panic!("{name}: {}", d.render()));
        let out = compile_graph(&graph.graph, name, &format!("{name}.weights.bin"), opts)
            .unwrap_or_else(|e| panic!("compile {name}: {e}"));
        (graph, out)
    }

    /// Writes the plan's three files into a fresh `mp2ml-TAG-{pid}` folder under the temp
    /// folder; returns the folder and the plan's path.
    pub fn write_plan(out: &Output, name: &str, tag: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("mp2ml-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let plan_path = dir.join(format!("{name}.ron"));
        write_all(&out.compiled, &plan_path).expect("write plan");
        (dir, plan_path)
    }

    /// The first `count` bundled MNIST test digits, flattened, and the values per image.
    pub fn digits(count: usize) -> (Vec<f32>, usize) {
        let bytes = std::fs::read(root().join("models/mnist_test_x.npy")).expect("test digits");
        let all = mp2ml_compiler::npy::read_f32(&bytes).expect("npy");
        let per: usize = all.shape.iter().skip(1).product();
        (all.data[..count * per].to_vec(), per)
    }

    /// The secure outputs of a compiled model against its plan's simulation and its f32
    /// reference, with the largest deviations seen so far.
    pub struct Compare<'a> {
        graph: &'a Imported,
        server: &'a ServerPlan,
        wf: WeightsFile,
        /// Per-image input shape, batch axis 1 first.
        shape: Vec<usize>,
        /// max |secure − simulated|.
        pub sim: f64,
        /// max |secure − f32 reference|.
        pub reference: f64,
    }

    impl<'a> Compare<'a> {
        /// For the model `graph` compiled to `out`.
        pub fn new(graph: &'a Imported, out: &'a Output) -> Self {
            let input = graph.graph.inputs()[0];
            let mut shape = graph.graph.tensor(input).shape.clone();
            shape[0] = 1;
            Compare {
                graph,
                server: &out.compiled.server,
                wf: WeightsFile::from_bytes(out.compiled.weights.clone()).expect("weights"),
                shape,
                sim: 0.0,
                reference: 0.0,
            }
        }

        /// Compares the secure `logits` of `images` (back to back) and asserts that each
        /// image's top-1 class is the reference's; `first` is the index of the first image
        /// among the test digits, `label` names the run in messages.
        pub fn add(&mut self, images: &[f32], logits: &[f32], first: usize, label: &str) {
            let per: usize = self.shape.iter().product();
            let count = images.len() / per;
            let outs = logits.len() / count.max(1);
            for k in 0..count {
                let img = &images[k * per..(k + 1) * per];
                let sim = simulate(self.server, &self.wf, img).expect("simulate");
                let reference = run(
                    &self.graph.graph,
                    &[Tensor::new(self.shape.clone(), img.to_vec()).expect("image")],
                )
                .expect("reference");
                let got = &logits[k * outs..(k + 1) * outs];
                for ((g, s), r) in got.iter().zip(&sim).zip(&reference[0].data) {
                    self.sim = self.sim.max((f64::from(*g) - s).abs());
                    self.reference = self.reference.max((g - r).abs() as f64);
                }
                assert_eq!(
                    argmax(got),
                    argmax(&reference[0].data),
                    "{label} image {}: secure top-1 differs from the f32 reference",
                    first + k
                );
            }
        }

        /// Asserts both deviations are below [`NOISE_TOL`].
        pub fn assert_within(&self, name: &str) {
            assert!(
                self.sim < NOISE_TOL,
                "{name}: secure outputs deviate from the plan's simulation by {}",
                self.sim
            );
            assert!(
                self.reference < NOISE_TOL,
                "{name}: secure outputs deviate from the f32 reference by {}",
                self.reference
            );
        }
    }
}
