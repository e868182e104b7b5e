//! Stable-Rust mutation fuzzing of every decoder, bounded so that it runs in CI: each loop first
//! replays the committed corpus of its cargo-fuzz target (`fuzz/seeds/<target>`, findings
//! included), then mutates valid seeds (bit flips, byte overwrites with interesting values,
//! truncation, duplication, splicing, and for text: replacing numbers by extreme values) for its
//! budget and fails on the first panic, saving the input under `target/fuzz-findings/`.
//!
//! Defaults: 2 s per loop with the fixed seed 1 (reproducible in CI). Longer or other runs:
//!   MP2ML_FUZZ_SECS=300 MP2ML_FUZZ_SEED=7 cargo test -p mp2ml-tests --test fuzz_loops
//! The cargo-fuzz targets themselves (`fuzz/`) need an instrumented build (docs/RELIABILITY.md).

#[path = "support/cli.rs"]
mod cli;

use std::path::Path;
use std::time::{Duration, Instant};

use cli::{inputs_dir, models_dir, small_plan, tmpdir};
use mp2ml_ir::plan::{ClientPlanFile, ServerPlan};
use mp2ml_tests::bins::target_dir;

mod fuzz {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// `MP2ML_FUZZ_SECS`, else 2 s (a CI run's share).
    pub fn budget() -> Duration {
        Duration::from_secs_f64(
            std::env::var("MP2ML_FUZZ_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(2.0),
        )
    }

    /// The committed corpus of cargo-fuzz target `target` (`fuzz/seeds/<target>`, which must
    /// exist and not be empty), without the files named in `skip`.
    pub fn corpus(target: &str, skip: &[&str]) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files.retain(|p| !skip.iter().any(|s| p.ends_with(s)));
        assert!(!files.is_empty(), "{} is empty", dir.display());
        files
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .collect()
    }

    const INTERESTING: &[u64] = &[
        0,
        1,
        2,
        7,
        8,
        16,
        31,
        32,
        63,
        64,
        127,
        128,
        255,
        256,
        4095,
        4096,
        65535,
        65536,
        1 << 24,
        (1 << 31) - 1,
        1 << 31,
        u32::MAX as u64,
        1 << 32,
        (1 << 62) - 1,
        i64::MAX as u64,
        u64::MAX,
    ];

    pub fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], text: bool) -> Vec<u8> {
        let mut d = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(1..=4) {
            let len = d.len();
            match rng.random_range(0..if text { 8 } else { 7 }) {
                0 if len > 0 => {
                    let i = rng.random_range(0..len);
                    d[i] ^= 1 << rng.random_range(0..8);
                }
                1 if len > 0 => {
                    let i = rng.random_range(0..len);
                    d[i] = [0u8, 0xff, 0x7f, 0x80, b'0', b'9', b'-', b'(', b')', b'"']
                        [rng.random_range(0..10)];
                }
                2 if len > 8 => {
                    let i = rng.random_range(0..len - 8);
                    let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                    let k = [1usize, 2, 4, 8][rng.random_range(0..4)];
                    d[i..i + k].copy_from_slice(&v.to_le_bytes()[..k]);
                }
                3 if len > 0 => d.truncate(rng.random_range(0..len)),
                4 if len > 1 => {
                    let a = rng.random_range(0..len);
                    let b = rng.random_range(a..len.min(a + 256));
                    let chunk = d[a..b].to_vec();
                    let at = rng.random_range(0..len);
                    d.splice(at..at, chunk);
                }
                5 if len > 1 => {
                    let a = rng.random_range(0..len);
                    let b = rng.random_range(a..len.min(a + 64));
                    d.drain(a..b);
                }
                6 => {
                    let other = &seeds[rng.random_range(0..seeds.len())];
                    if !other.is_empty() && len > 0 {
                        let cut = rng.random_range(0..len);
                        let from = rng.random_range(0..other.len());
                        d.truncate(cut);
                        d.extend_from_slice(&other[from..]);
                    }
                }
                7 => {
                    // Replace one decimal number by an extreme one.
                    let digits: Vec<usize> = (0..len)
                        .filter(|&i| {
                            d[i].is_ascii_digit() && (i == 0 || !d[i - 1].is_ascii_digit())
                        })
                        .collect();
                    if !digits.is_empty() {
                        let s = digits[rng.random_range(0..digits.len())];
                        let mut e = s;
                        while e < len && d[e].is_ascii_digit() {
                            e += 1;
                        }
                        let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                        let v = if rng.random_bool(0.3) {
                            v.wrapping_add(rng.random_range(0..3)).wrapping_sub(1)
                        } else {
                            v
                        };
                        d.splice(s..e, v.to_string().into_bytes());
                    }
                }
                _ => {}
            }
        }
        d
    }

    /// Runs `f` on every seed as it is, then on mutants of `seeds` for the budget; panics (with
    /// the saved input) on the first panic of `f`. Returns the number of executions.
    pub fn run(name: &str, seeds: Vec<Vec<u8>>, text: bool, f: impl Fn(&[u8])) -> u64 {
        let seed = std::env::var("MP2ML_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Instant::now();
        let mut execs = 0u64;
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let mut finding = None;
        let mut replay = seeds.iter().cloned();
        while finding.is_none() {
            let input = match replay.next() {
                Some(s) => s,
                None if start.elapsed() < budget() => mutate(&mut rng, &seeds, text),
                None => break,
            };
            execs += 1;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(&input))) {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                finding = Some((input, msg));
            }
        }
        std::panic::set_hook(prev);
        let secs = start.elapsed().as_secs_f64();
        println!("fuzz {name}: {execs} executions in {secs:.0} s (seed {seed})");
        if let Some((input, msg)) = finding {
            let dir = target_dir().join("fuzz-findings");
            let _ = std::fs::create_dir_all(&dir);
            let p = dir.join(format!("{name}-{seed}"));
            let _ = std::fs::write(&p, &input);
            panic!(
                "fuzz {name}: panic `{msg}` on input saved to {}",
                p.display()
            );
        }
        execs
    }
}

#[test]
fn fuzz_onnx_import() {
    let mut seeds = vec![std::fs::read(models_dir().join("tiny.onnx")).expect("tiny")];
    for e in std::fs::read_dir(inputs_dir()).expect("dir").flatten() {
        if e.path().extension().is_some_and(|x| x == "onnx")
            && !e.path().ends_with("huge_shape.onnx")
        {
            seeds.push(std::fs::read(e.path()).expect("read"));
        }
    }
    // The huge declared shape has a test of its own (bad_input.rs); as a seed it would spend the
    // budget allocating.
    seeds.extend(fuzz::corpus("onnx_import", &["huge_shape.onnx"]));
    fuzz::run("onnx_import", seeds, false, |d| {
        let _ = mp2ml_compiler::onnx::import_bytes(d, &Default::default());
    });
}

#[test]
fn fuzz_plan_parse() {
    let dir = small_plan();
    let mut seeds = vec![
        std::fs::read(dir.join("small.ron")).expect("plan"),
        std::fs::read(dir.join("small.client.ron")).expect("client plan"),
    ];
    seeds.extend(fuzz::corpus("plan_parse", &[]));
    let path = Path::new("fuzz.ron");
    fuzz::run("plan_parse", seeds, true, |d| {
        let Ok(text) = std::str::from_utf8(d) else {
            return;
        };
        if let Ok(p) = ron::from_str::<ServerPlan>(text) {
            let _ = mp2ml_runtime::plan::check_public(path, &p.public, 128);
        }
        if let Ok(p) = ron::from_str::<ClientPlanFile>(text) {
            let _ = mp2ml_runtime::plan::check_public(path, &p.plan, 128);
        }
    });
}

/// The server's full plan checks (structure, weights) on mutated plans next to genuine weights.
#[test]
fn fuzz_load_server() {
    let src = small_plan();
    let dir = tmpdir("fuzz-load");
    std::fs::copy(src.join("small.weights.bin"), dir.join("small.weights.bin")).expect("copy");
    // Seed with the plan rewritten so that mutations of the public part can keep a valid hash.
    let seeds = vec![std::fs::read(src.join("small.ron")).expect("plan")];
    let p = dir.join("small.ron");
    fuzz::run("load_server", seeds, true, |d| {
        let Ok(text) = std::str::from_utf8(d) else {
            return;
        };
        let Ok(mut plan) = ron::from_str::<ServerPlan>(text) else {
            return;
        };
        plan.public_hash = plan.public.hash().expect("hash");
        let Ok(t) = ron::ser::to_string(&plan) else {
            return;
        };
        if std::fs::write(&p, t).is_ok() {
            let _ = mp2ml_runtime::plan::load_server(&p, 128);
        }
    });
}

#[test]
fn fuzz_message_decoders() {
    use mp2ml_ckks::{
        ntt_primes, os_rng, Ciphertext, Params, PublicKey, SecretKey, SeededCiphertext,
    };
    use mp2ml_runtime::wire::Hello;
    let n = 1024;
    let primes = ntt_primes(30, n, 3, &[]).expect("primes");
    let params = Params::new(n, &primes).expect("params");
    let mut rng = os_rng();
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    let m = vec![3i64; 8];
    let mut seeds = vec![
        pk.to_bytes(),
        Hello {
            version: mp2ml_runtime::wire::PROTOCOL_VERSION,
            plan_hash: "ab".repeat(32),
            images: 3,
            mpc: None,
        }
        .to_bytes(),
    ];
    for level in 0..3 {
        let s = sk.encrypt_seeded(&m, level, &mut rng).expect("encrypt");
        seeds.push(s.to_bytes());
        seeds.push(s.expand().to_bytes());
        for width in [1, 5] {
            seeds.push(s.c0_window(width).expect("window").poly().to_bytes());
        }
    }
    seeds.extend(fuzz::corpus("ckks_decode", &[]));
    seeds.extend(fuzz::corpus("hello", &[]));
    fuzz::run("message_decoders", seeds, false, |d| {
        if let Ok(w) = mp2ml_ckks::RnsPoly::from_bytes(&params, d) {
            assert_eq!(w.to_bytes(), d, "polynomial re-encodes differently");
            if let Ok(c1) = mp2ml_ckks::C1Half::from_seed(&params, w.level(), &[1; 32]) {
                let width = w.width();
                let w = mp2ml_ckks::C0Window::new(w);
                let _ = sk.c1_times_s(&c1, width).map(|d| sk.decrypt_halves(&w, &d));
            }
        }
        if let Ok(ct) = Ciphertext::from_bytes(&params, d) {
            let _ = sk.decrypt(&ct);
            let _ = ct.mod_drop(0);
        }
        if let Ok(ct) = SeededCiphertext::from_bytes(&params, d) {
            let _ = sk.decrypt(&ct.expand());
        }
        let _ = PublicKey::from_bytes(&params, d);
        let _ = Hello::from_bytes(d);
    });
}

#[test]
fn fuzz_weights_file() {
    use mp2ml_ir::weights::WeightsFile;
    let dir = small_plan();
    let plan: ServerPlan =
        ron::from_str(&std::fs::read_to_string(dir.join("small.ron")).expect("read"))
            .expect("parse");
    let refs: Vec<mp2ml_ir::plan::MatrixRef> = plan
        .segments
        .iter()
        .filter_map(|s| match s {
            mp2ml_ir::plan::Segment::He(he) => Some(he.ops.iter().filter_map(|op| match op {
                mp2ml_ir::plan::HeOp::Linear { matrix, .. } => Some(matrix.clone()),
                _ => None,
            })),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(!refs.is_empty());
    // The first 32 bytes of each input encode a matrix reference; the rest is the file.
    let mut seeds = Vec::new();
    let w = std::fs::read(dir.join("small.weights.bin")).expect("weights");
    for r in &refs {
        let mut s = Vec::new();
        for v in [r.offset, r.rows as u64, r.cols as u64, r.nnz as u64] {
            s.extend_from_slice(&v.to_le_bytes());
        }
        s.extend_from_slice(&w);
        seeds.push(s);
    }
    // The cargo-fuzz corpus holds bare weights files: behind the first reference.
    for c in fuzz::corpus("weights", &[]) {
        let mut s = seeds[0][..32].to_vec();
        s.extend_from_slice(&c);
        seeds.push(s);
    }
    fuzz::run("weights_file", seeds, false, |d| {
        if d.len() < 32 {
            return;
        }
        let u = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().expect("8 bytes"));
        let r = mp2ml_ir::plan::MatrixRef {
            offset: u(0),
            rows: u(8) as usize,
            cols: u(16) as usize,
            nnz: u(24) as usize,
        };
        if let Ok(f) = WeightsFile::from_bytes(d[32..].to_vec()) {
            if let Ok(m) = f.matrix(&r) {
                let _ = mp2ml_ckks::CsrMatrix::new(
                    m.row_ptr.iter().map(|&p| p as usize).collect(),
                    m.col,
                    m.val,
                    m.cols,
                );
            }
        }
    });
}

#[test]
fn fuzz_circuits() {
    use mp2ml_ir::circuit::{Circuit, Gate, ShareCircuit};
    let sc = mp2ml_ir::circuit::activations::relu(&mp2ml_ir::circuit::activations::CircuitParams {
        q0: u128::from(mp2ml_ckks::ntt_primes(30, 4096, 1, &[]).expect("q0")[0]),
        trunc: 0,
        sigma: 40,
        style: Default::default(),
    });
    // Encoding: header (garbler inputs, evaluator inputs, share_bits, mask_bits: u32 each), then
    // gates as (tag u8, a u32, b u32), then outputs after a 0xff tag.
    let enc = |s: &ShareCircuit| {
        let c = &s.circuit;
        let mut v = Vec::new();
        for x in [
            c.garbler_inputs,
            c.evaluator_inputs,
            s.share_bits,
            s.mask_bits,
        ] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        for g in &c.gates {
            let (t, a, b) = match *g {
                Gate::Xor(a, b) => (0u8, a, b),
                Gate::And(a, b) => (1, a, b),
                Gate::Inv(a) => (2, a, 0),
            };
            v.push(t);
            v.extend_from_slice(&a.to_le_bytes());
            v.extend_from_slice(&b.to_le_bytes());
        }
        for o in &c.outputs {
            v.push(0xff);
            v.extend_from_slice(&o.to_le_bytes());
            v.extend_from_slice(&[0; 4]);
        }
        v
    };
    let seeds = vec![enc(&sc)];
    fuzz::run("circuits", seeds, false, |d| {
        if d.len() < 16 {
            return;
        }
        let u = |i: usize| u32::from_le_bytes(d[i..i + 4].try_into().expect("4 bytes"));
        let mut c = Circuit {
            name: "f".into(),
            garbler_inputs: u(0),
            evaluator_inputs: u(4),
            gates: Vec::new(),
            outputs: Vec::new(),
        };
        for ch in d[16..].chunks_exact(9) {
            let a = u32::from_le_bytes(ch[1..5].try_into().expect("4"));
            let b = u32::from_le_bytes(ch[5..9].try_into().expect("4"));
            match ch[0] % 4 {
                0 => c.gates.push(Gate::Xor(a, b)),
                1 => c.gates.push(Gate::And(a, b)),
                2 => c.gates.push(Gate::Inv(a)),
                _ => c.outputs.push(a),
            }
        }
        // `stats` sizes a vector by the declared input count: only on small validated circuits
        // (see docs/RELIABILITY.md: plans do not bound circuit sizes yet).
        if c.validate().is_ok() && c.num_inputs() < 1 << 16 {
            let _ = c.stats();
            let g = vec![0x5555u64; c.garbler_inputs as usize];
            let e = vec![0x0f0fu64; c.evaluator_inputs as usize];
            c.eval_bitsliced(&g, &e).expect("a valid circuit evaluates");
        }
        let s = ShareCircuit {
            circuit: c,
            share_bits: u(8),
            mask_bits: u(12),
            ..sc.clone()
        };
        let _ = s.check_layout();
    });
}
