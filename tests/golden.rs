//! Golden plans of the bundled models, plus properties of the compiled plans.
//!
//! The plans (server and client RON) and the weights SHA-256 of the four bundled models are
//! committed under `tests/golden/` and compared on every run; a plan text larger than 2 MB is
//! compared through its SHA-256 plus a summary. Regenerate after an intended change with:
//!
//! ```text
//! MP2ML_BLESS=1 cargo test -p mp2ml-tests --test golden
//! ```
//!
//! On a mismatch the test prints the first differing lines. Image-packed plans
//! (`--packing image`) are golden too: `NAME.image.ron`, `NAME.image.client.ron`,
//! `NAME.image.weights.sha256` (or `NAME.image.summary.txt`).

use std::path::{Path, PathBuf};

use mp2ml_compiler::driver::{compile_graph, Options, Output, Packing};
use mp2ml_compiler::error::Error;
use mp2ml_compiler::onnx::{import_file, ImportOptions};
use mp2ml_compiler::params::{ParamOptions, SecurityLevel};
use mp2ml_compiler::plan_writer::{load_checked, to_ron, write_all};
use mp2ml_compiler::simulate::simulate;
use mp2ml_ir::graph::Graph;
use mp2ml_ir::plan::{HeOp, Segment};
use mp2ml_ir::reference::run;
use mp2ml_ir::tensor::Tensor;
use mp2ml_ir::weights::WeightsFile;
use sha2::{Digest, Sha256};

const MODELS: [&str; 4] = ["cryptonets_relu", "maxpool_cnn", "residual", "tiny"];
const LARGE: usize = 2 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(name: &str) -> Graph {
    let path = root().join("models").join(format!("{name}.onnx"));
    match import_file(&path, &ImportOptions::default()) {
        Ok(i) => i.graph,
        Err(d) => panic!("import {name}: {d}"),
    }
}

fn compile(name: &str, opts: &Options) -> Output {
    let g = load(name);
    match compile_graph(&g, name, &format!("{name}.weights.bin"), opts) {
        Ok(o) => o,
        Err(e) => panic!("compile {name}: {e}"),
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Compares two texts; on a difference returns a unified-ish diff of the first differing lines.
pub fn diff_texts(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let mut out = format!(
        "@@ first difference at line {} (expected {} lines, got {}) @@\n",
        first + 1,
        e.len(),
        a.len()
    );
    let from = first.saturating_sub(3);
    for l in &e[from..first] {
        out.push_str(&format!(" {l}\n"));
    }
    for l in e.iter().skip(first).take(8) {
        out.push_str(&format!("-{l}\n"));
    }
    for l in a.iter().skip(first).take(8) {
        out.push_str(&format!("+{l}\n"));
    }
    Some(out)
}

fn summary(o: &Output, server: &str, client: &str) -> String {
    let s = &o.compiled.server;
    let p = &s.public;
    let mut t = format!(
        "model {}\nserver_ron_sha256 {}\nserver_ron_bytes {}\nclient_ron_sha256 {}\nclient_ron_bytes {}\npublic_hash {}\nlog_n {}\nmoduli {:?}\ntensors {}\nsegments {}\n",
        s.model,
        sha(server.as_bytes()),
        server.len(),
        sha(client.as_bytes()),
        client.len(),
        s.public_hash,
        p.params.log_n,
        p.params.moduli,
        s.tensors.len(),
        s.segments.len()
    );
    for st in &p.mpc_steps {
        t.push_str(&format!(
            "step {} circuit {} instances {} values {}/{} out_level {}\n",
            st.name, st.circuit, st.instances, st.values_in, st.values_out, st.out_level
        ));
    }
    for c in &p.circuits {
        t.push_str(&format!(
            "circuit {} and {}\n",
            c.circuit.name,
            c.circuit.stats().and
        ));
    }
    t
}

fn check_or_bless(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("MP2ML_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).expect("golden dir");
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) => {
            if let Some(d) = diff_texts(&expected, actual) {
                failures.push(format!("{} differs:\n{d}", path.display()));
            }
        }
        Err(e) => failures.push(format!(
            "{}: {e} (run with MP2ML_BLESS=1 to create it)",
            path.display()
        )),
    }
}

/// Both packings: (file-name suffix, options).
fn packings() -> [(&'static str, Options); 2] {
    [
        ("", Options::default()),
        (
            ".image",
            Options {
                packing: Packing::Image,
                ..Options::default()
            },
        ),
    ]
}

#[test]
fn golden_plans() {
    let dir = root().join("tests").join("golden");
    let mut failures = Vec::new();
    for (suffix, opts) in packings() {
        golden_of(&dir, suffix, &opts, &mut failures);
    }
    assert!(failures.is_empty(), "golden mismatches (regenerate with MP2ML_BLESS=1 cargo test -p mp2ml-tests --test golden):\n{}", failures.join("\n"));
}

fn golden_of(dir: &Path, suffix: &str, opts: &Options, failures: &mut Vec<String>) {
    for model in MODELS {
        let o = compile(model, opts);
        let name = format!("{model}{suffix}");
        let server = to_ron(&o.compiled.server).expect("ron");
        let client = to_ron(&o.compiled.client_file()).expect("ron");
        let w = format!("{}\n", sha(&o.compiled.weights));
        check_or_bless(&dir.join(format!("{name}.weights.sha256")), &w, failures);
        if server.len() > LARGE || client.len() > LARGE {
            check_or_bless(
                &dir.join(format!("{name}.summary.txt")),
                &summary(&o, &server, &client),
                failures,
            );
        } else {
            check_or_bless(&dir.join(format!("{name}.ron")), &server, failures);
            check_or_bless(&dir.join(format!("{name}.client.ron")), &client, failures);
        }
    }
}

/// One security table for both sides: every parameter set the compiler chooses for the bundled
/// models, at the default and the strictest security level, is accepted by the runtime's
/// `Params::new_secure` (which also checks that the moduli are distinct NTT-friendly primes).
#[test]
fn chosen_parameters_are_accepted_by_the_runtime() {
    for name in MODELS {
        for security in [SecurityLevel::Bits128, SecurityLevel::Bits256] {
            let opts = Options {
                params: ParamOptions {
                    security,
                    ..ParamOptions::default()
                },
                ..Options::default()
            };
            let o = compile(name, &opts);
            let (n, moduli) = (o.chosen.n(), &o.chosen.moduli);
            if let Err(e) = mp2ml_ckks::Params::new_secure(n, moduli, security) {
                panic!("{name} at {security}: N = {n}, moduli {moduli:?} refused: {e}");
            }
        }
    }
}

#[test]
fn golden_comparison_detects_changes() {
    let a = "a\nb\nc\nd\n";
    assert!(diff_texts(a, a).is_none());
    let d = diff_texts(a, "a\nb\nX\nd\n").expect("differs");
    assert!(
        d.contains("line 3") && d.contains("-c") && d.contains("+X"),
        "{d}"
    );
    assert!(diff_texts(a, "a\nb\nc\n").is_some());
    // A changed plan: one modulus altered.
    let o = compile("tiny", &Options::default());
    let text = to_ron(&o.compiled.server).expect("ron");
    let mut changed = o.compiled.server.clone();
    changed.public.params.moduli[0] += 2;
    assert!(diff_texts(&text, &to_ron(&changed).expect("ron")).is_some());
}

#[test]
fn compilation_is_deterministic() {
    let a = compile("residual", &Options::default());
    let b = compile("residual", &Options::default());
    assert_eq!(
        to_ron(&a.compiled.server).expect("ron"),
        to_ron(&b.compiled.server).expect("ron")
    );
    assert_eq!(a.compiled.weights, b.compiled.weights);
}

#[test]
fn cryptonets_structure() {
    let o = compile("cryptonets_relu", &Options::default());
    let s = &o.compiled.server;
    let steps = &s.public.mpc_steps;
    assert_eq!(steps.len(), 2);
    assert_eq!((steps[0].values_in, steps[1].values_in), (845, 100));
    assert_eq!((steps[0].values_out, steps[1].values_out), (845, 100));
    let he: Vec<_> = s
        .segments
        .iter()
        .filter_map(|x| {
            if let Segment::He(h) = x {
                Some(h)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(he.len(), 3);
    for h in &he {
        let lin: Vec<_> = h
            .ops
            .iter()
            .filter(|o| matches!(o, HeOp::Linear { .. }))
            .collect();
        assert_eq!(lin.len(), 1, "segment {} has depth 1", h.name);
    }
    let HeOp::Linear { matrix, .. } = &he[1]
        .ops
        .iter()
        .find(|o| matches!(o, HeOp::Linear { .. }))
        .expect("linear")
    else {
        unreachable!()
    };
    assert_eq!((matrix.rows, matrix.cols), (100, 845));
    // N is the smallest the table allows for this log Q.
    let logq: u32 = s
        .public
        .params
        .moduli
        .iter()
        .map(|q| 64 - q.leading_zeros())
        .sum();
    let n = s.public.params.n();
    let max =
        |n: usize| mp2ml_compiler::params::max_log_q(n, SecurityLevel::Bits128).expect("table");
    assert!(logq <= max(n));
    assert!(
        n == 1024 || logq > max(n / 2),
        "N = {n} is larger than needed for log Q = {logq}"
    );
    // ReLU circuit within 6w + σ_v (σ_v the per-value mask width of a session).
    let c = &s.public.circuits[steps[0].circuit.index()];
    let sv = s.public.value_sigma().expect("σ_v");
    assert!(c.circuit.stats().and <= u64::from(6 * c.share_bits + sv));
    let text = mp2ml_compiler::report::Report::from_plan(s, Some(&o)).text();
    assert!(
        text.contains("845") && text.contains("AND") && text.contains("fused"),
        "{text}"
    );
}

fn images(n: usize) -> Vec<Tensor> {
    let bytes = std::fs::read(root().join("models/mnist_test_x.npy")).expect("test images");
    let t = mp2ml_compiler::npy::read_f32(&bytes).expect("npy");
    let per: usize = t.shape.iter().skip(1).product();
    (0..n.min(t.shape[0]))
        .map(|i| {
            Tensor::new(vec![1, 1, 28, 28], t.data[i * per..(i + 1) * per].to_vec()).expect("image")
        })
        .collect()
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |b, (i, &x)| if x > v[b] { i } else { b })
}

/// Tolerance of the fixed-point simulation against the f32 reference: 64 units of the plan's
/// fixed-point resolution 1/Δ (Δ = 2^scale_bits). Input, weights and every activation are
/// rounded to that grid (weights at ½ unit of their own larger scale); measured on the bundled
/// models: 8e-6 to 2.3e-5 at Δ = 2^20, i.e. 9 to 24 units.
fn simulation_tolerance(plan: &mp2ml_ir::plan::ServerPlan) -> f64 {
    64.0 / f64::from(plan.public.scale_bits).exp2()
}

/// The fixed-point simulation of each plan agrees with the f32 reference within
/// [`simulation_tolerance`] on every logit, and on top-1 wherever the reference's top-2 gap
/// exceeds twice that.
#[test]
fn fixed_point_simulation_matches_reference() {
    let imgs = images(100);
    for (name, opts) in MODELS.iter().flat_map(|&m| packings().map(|(_, o)| (m, o))) {
        let g = load(name);
        let o = compile(name, &opts);
        let tol = simulation_tolerance(&o.compiled.server);
        let wf = WeightsFile::from_bytes(o.compiled.weights.clone()).expect("weights");
        let mut worst = 0.0f64;
        for (k, img) in imgs.iter().enumerate() {
            let r = run(&g, std::slice::from_ref(img)).expect("reference");
            let r: Vec<f64> = r[0].data.iter().map(|&x| f64::from(x)).collect();
            let s = simulate(&o.compiled.server, &wf, &img.data).expect("simulate");
            assert_eq!(r.len(), s.len());
            for (a, b) in r.iter().zip(&s) {
                worst = worst.max((a - b).abs());
            }
            let mut sorted = r.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            if sorted[0] - sorted[1] > 2.0 * tol {
                assert_eq!(argmax(&r), argmax(&s), "{name} image {k}: top-1 differs");
            }
        }
        assert!(
            worst <= tol,
            "{name}: max |simulated − reference| = {worst} above {tol:.2e}"
        );
        eprintln!(
            "{name}: max |simulated − reference| over {} images = {worst:.2e}",
            imgs.len()
        );
    }
}

/// The client plan holds no weight value and no linear-layer description, in both packings.
#[test]
fn client_plan_has_no_weights() {
    for (name, opts) in MODELS.iter().flat_map(|&m| packings().map(|(_, o)| (m, o))) {
        let o = compile(name, &opts);
        let client = to_ron(&o.compiled.client_file()).expect("ron");
        for word in [
            "Linear",
            "ModDrop",
            "matrix",
            "MatrixRef",
            "weights",
            "segments",
            "gather",
            "nnz",
            "kernels",
            "terms",
        ] {
            assert!(
                !client.contains(word),
                "{name}: client plan mentions `{word}`"
            );
        }
        // Every integer token of the client plan: all of it, and without the circuits (whose
        // wire numbers go up to a few million and are generated from q0 and σ only).
        let token_set = |text: &str| -> std::collections::BTreeSet<i128> {
            text.split(|c: char| !(c.is_ascii_digit() || c == '-'))
                .filter_map(|t| t.parse::<i128>().ok())
                .collect()
        };
        let tokens = token_set(&client);
        let mut bare = o.compiled.client_file();
        bare.plan.circuits.clear();
        let bare_tokens = token_set(&to_ron(&bare).expect("ron"));
        let moduli: Vec<i128> = o
            .compiled
            .server
            .public
            .params
            .moduli
            .iter()
            .map(|&q| i128::from(q))
            .collect();
        let wf = WeightsFile::from_bytes(o.compiled.weights.clone()).expect("weights");
        let mut checked = 0;
        for seg in &o.compiled.server.segments {
            let Segment::He(h) = seg else { continue };
            for op in &h.ops {
                let m = match op {
                    HeOp::Linear { matrix, .. } => wf.matrix(matrix).expect("matrix"),
                    HeOp::PolyLinear { kernels, bias, .. } => {
                        let mut k = wf.matrix(kernels).expect("kernels");
                        k.bias = wf.matrix(bias).expect("bias").bias;
                        k
                    }
                    HeOp::ModDrop { .. } => continue,
                };
                // Every weight and bias with at least 6 digits (shorter numbers occur in shapes
                // and circuit wires by chance).
                for v in m
                    .val
                    .iter()
                    .map(|&v| i128::from(v))
                    .chain(m.bias.iter().copied())
                {
                    // A weight of exactly ±1 encodes as ±p, a public modulus.
                    if v.abs() >= 100_000 && !moduli.contains(&v.abs()) {
                        assert!(
                            !bare_tokens.contains(&v),
                            "{name}: client plan contains weight {v}"
                        );
                        assert!(
                            v.abs() < 1 << 24 || !tokens.contains(&v),
                            "{name}: client plan contains weight {v}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 0);
    }
}

#[test]
fn tampered_weights_are_detected() {
    let dir = std::env::temp_dir().join(format!("mp2ml-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let o = compile("tiny", &Options::default());
    let plan = dir.join("tiny.ron");
    write_all(&o.compiled, &plan).expect("write");
    // The streamed files hold exactly the texts `to_ron` gives (and the weights).
    let read = |n: &str| std::fs::read(dir.join(n)).expect("written file");
    assert_eq!(
        read("tiny.ron"),
        to_ron(&o.compiled.server).expect("ron").into_bytes()
    );
    assert_eq!(
        read("tiny.client.ron"),
        to_ron(&o.compiled.client_file()).expect("ron").into_bytes()
    );
    assert_eq!(read("tiny.weights.bin"), o.compiled.weights);
    load_checked(&plan).expect("untampered plan loads");
    let wpath = dir.join("tiny.weights.bin");
    let mut bytes = std::fs::read(&wpath).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&wpath, &bytes).expect("write");
    let err = load_checked(&plan).expect_err("tampering must be detected");
    assert!(
        matches!(&err.error, Error::Plan(m) if m.contains("SHA-256")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn insecure_parameters_are_refused() {
    // Forcing N = 1024 (27 bits at 128-bit security) cannot hold cryptonets' modulus chain.
    let g = load("cryptonets_relu");
    let opts = Options {
        params: ParamOptions {
            log_n: Some(10),
            ..ParamOptions::default()
        },
        ..Options::default()
    };
    let e = compile_graph(&g, "c", "c.weights.bin", &opts).expect_err("refused");
    assert!(
        matches!(
            e.error,
            Error::Insecure {
                n: 1024,
                security: 128,
                max_log_q: Some(27),
                ..
            }
        ),
        "{e}"
    );
    // σ below 40 is refused.
    let opts = Options {
        params: ParamOptions {
            sigma: 30,
            ..ParamOptions::default()
        },
        ..Options::default()
    };
    let e = compile_graph(&g, "c", "c.weights.bin", &opts).expect_err("σ = 30");
    assert!(
        matches!(
            e.error,
            Error::OptionRange {
                name: "σ",
                value: 30,
                ..
            }
        ),
        "{e}"
    );
    // 256-bit security needs a larger N than 128-bit.
    let opts = Options {
        params: ParamOptions {
            security: SecurityLevel::Bits256,
            ..ParamOptions::default()
        },
        ..Options::default()
    };
    let o = compile_graph(&g, "c", "c.weights.bin", &opts).expect("256-bit");
    let (n, log_q) = (o.chosen.n(), o.chosen.log_q_bits);
    // Secure at 256 bits, and minimal: half the ring dimension would not be.
    assert!(
        mp2ml_compiler::params::max_log_q(n, SecurityLevel::Bits256).is_some_and(|m| log_q <= m)
    );
    assert!(
        mp2ml_compiler::params::max_log_q(n / 2, SecurityLevel::Bits256).is_none_or(|m| log_q > m)
    );
    assert!(n >= compile("cryptonets_relu", &Options::default()).chosen.n());
}

#[test]
fn calibration_gives_a_smaller_q0() {
    let o = compile(
        "cryptonets_relu",
        &Options {
            calibration: Some(root().join("models/mnist_calib.npy")),
            ..Options::default()
        },
    );
    let base = compile("cryptonets_relu", &Options::default());
    assert!(
        o.chosen.share_bits < base.chosen.share_bits,
        "calibrated q0 of {} bits, uncalibrated {}",
        o.chosen.share_bits,
        base.chosen.share_bits
    );
    // The calibrated plan still simulates correctly on test images.
    let wf = WeightsFile::from_bytes(o.compiled.weights.clone()).expect("weights");
    let g = load("cryptonets_relu");
    let tol = simulation_tolerance(&o.compiled.server);
    for img in images(20) {
        let r = run(&g, std::slice::from_ref(&img)).expect("reference");
        let s = simulate(&o.compiled.server, &wf, &img.data).expect("simulate");
        for (a, b) in r[0].data.iter().zip(&s) {
            assert!((f64::from(*a) - b).abs() <= tol, "{a} vs {b}");
        }
    }
}
