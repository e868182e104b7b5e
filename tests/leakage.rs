//! Leakage tests: what MP2ML promises is that the client learns only the number, type and size
//! of the non-linear layers and the output, and the server learns nothing of the input.
//!
//! (a) The client plan of every bundled model and every byte the client receives in a session
//!     contain no encoded weight (as little-endian integers or as decimal text) and no
//!     description of the linear layers.
//! (b) The masked shares the client decrypts in HE→MPC are uniform mod q0 (chi-square over
//!     ≥ 100k coefficients) and differ between two runs on the same input.
//! (c) The ciphertexts the server receives look uniform without the secret key (chi-square of
//!     c0 residues).
//! (d) Parameters below the configured security level are refused by both parties, with the
//!     plan's hash recomputed so that the security check is what refuses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use mp2ml_ckks::{ntt_primes, os_rng, Params, PublicKey, SecretKey, SecurityLevel};
use mp2ml_compiler::driver::{compile_graph, Options};
use mp2ml_compiler::onnx::{import_file, ImportOptions};
use mp2ml_compiler::plan_writer::write_all;
use mp2ml_ir::plan::{ClientPlanFile, HeOp, Segment, ServerPlan};
use mp2ml_ir::weights::WeightsFile;
use mp2ml_mpc::{Channel, ChannelStats, TcpChannel};
use mp2ml_runtime::client::{run_client, Batch};
use mp2ml_runtime::local::{channel_config, client_setup_of};
use mp2ml_runtime::plan::{load_client, load_server};
use mp2ml_runtime::server::serve;
use mp2ml_runtime::session::SessionOptions;
use rand::Rng;

const MODELS: &[&str] = &["tiny", "cryptonets_relu", "maxpool_cnn", "residual"];

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Every bundled model compiled (library API) into one temp folder, once per process.
fn compiled() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mp2ml-leak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmpdir");
        for m in MODELS {
            let imported = import_file(
                &models_dir().join(format!("{m}.onnx")),
                &ImportOptions::default(),
            )
            .unwrap_or_else(|d| panic!("{m}: import failed: {d}"));
            let out = compile_graph(
                &imported.graph,
                m,
                &format!("{m}.weights.bin"),
                &Options::default(),
            )
            .unwrap_or_else(|e| panic!("{m}: compile failed: {e:?}"));
            write_all(&out.compiled, &dir.join(format!("{m}.ron"))).expect("write plan");
        }
        dir
    })
}

/// Encoded weights and biases of a server plan with |value| > 2^20, except exact multiples of
/// a modulus: an integer weight W (e.g. the 1 of a residual connection) encodes as W·p, and p
/// is public anyway.
fn big_weights(dir: &Path, model: &str) -> (Vec<i64>, Vec<i128>) {
    let plan: ServerPlan =
        ron::from_str(&std::fs::read_to_string(dir.join(format!("{model}.ron"))).expect("read"))
            .expect("parse");
    let moduli: Vec<i128> = plan
        .public
        .params
        .moduli
        .iter()
        .map(|&q| i128::from(q))
        .collect();
    let informative = |v: i128| v.unsigned_abs() > 1 << 20 && moduli.iter().all(|q| v % q != 0);
    let wf = WeightsFile::from_bytes(std::fs::read(dir.join(&plan.weights.file)).expect("weights"))
        .expect("magic");
    let (mut w, mut b) = (HashSet::new(), HashSet::new());
    for seg in &plan.segments {
        if let Segment::He(he) = seg {
            for op in &he.ops {
                if let HeOp::Linear { matrix, .. } = op {
                    let m = wf.matrix(matrix).expect("matrix");
                    w.extend(
                        m.val
                            .iter()
                            .copied()
                            .filter(|&v| informative(i128::from(v))),
                    );
                    b.extend(m.bias.iter().copied().filter(|&v| informative(v)));
                }
            }
        }
    }
    (w.into_iter().collect(), b.into_iter().collect())
}

/// Whether `hay` contains `needle` anywhere (byte windows of the needle's length, hashed).
fn windows(hay: &[u8], len: usize) -> HashSet<&[u8]> {
    hay.windows(len).collect()
}

/// Integer tokens of a text (optionally signed).
fn int_tokens(text: &str) -> HashSet<i128> {
    let mut out = HashSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let neg = b[i] == b'-';
        let start = if neg { i + 1 } else { i };
        let mut j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > start {
            if let Ok(v) = text[start..j].parse::<i128>() {
                out.insert(if neg { -v } else { v });
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn assert_no_weights(what: &str, bytes: &[u8], w: &[i64], b: &[i128]) {
    let w8 = windows(bytes, 8);
    let w16 = windows(bytes, 16);
    for v in w {
        assert!(
            !w8.contains(&v.to_le_bytes()[..]),
            "{what}: contains the encoded weight {v} as i64 LE"
        );
    }
    for v in b {
        assert!(
            !w16.contains(&v.to_le_bytes()[..]),
            "{what}: contains the encoded bias {v} as i128 LE"
        );
        if let Ok(x) = i64::try_from(*v) {
            assert!(
                !w8.contains(&x.to_le_bytes()[..]),
                "{what}: contains the encoded bias {v} as i64 LE"
            );
        }
    }
    let toks = int_tokens(&String::from_utf8_lossy(bytes));
    for v in w.iter().map(|&v| i128::from(v)).chain(b.iter().copied()) {
        assert!(
            !toks.contains(&v),
            "{what}: contains the encoded weight/bias {v} as text"
        );
    }
}

#[test]
fn client_plans_hold_no_weights_and_no_linear_layers() {
    let dir = compiled();
    for m in MODELS {
        let (w, b) = big_weights(dir, m);
        assert!(
            w.len() > 10,
            "{m}: expected non-trivial encoded weights, got {}",
            w.len()
        );
        let cpath = dir.join(format!("{m}.client.ron"));
        let bytes = std::fs::read(&cpath).expect("client plan");
        assert_no_weights(&format!("{m}.client.ron"), &bytes, &w, &b);
        let text = String::from_utf8(bytes).expect("utf-8");
        // No server-side structure: segments, HE ops, tensors, matrices, weights file.
        for word in [
            "Linear", "ModDrop", "segments", "tensors", "matrix", "weights", "macs", "sha256",
            "level_in", "gather",
        ] {
            assert!(!text.contains(word), "{m}: client plan mentions `{word}`");
        }
        // No linear layer's name (from the model) appears.
        let plan: ServerPlan =
            ron::from_str(&std::fs::read_to_string(dir.join(format!("{m}.ron"))).expect("read"))
                .expect("parse");
        let mut linear_names = 0;
        for seg in &plan.segments {
            if let Segment::He(he) = seg {
                for op in &he.ops {
                    if let HeOp::Linear { name, .. } = op {
                        linear_names += 1;
                        assert!(
                            !text.contains(&format!("\"{name}\"")),
                            "{m}: client plan names the linear layer `{name}`"
                        );
                    }
                }
                assert!(
                    !text.contains(&format!("\"{}\"", he.name)),
                    "{m}: client plan names the HE segment `{}`",
                    he.name
                );
            }
        }
        assert!(linear_names > 0);
        // The parsed client plan is exactly the public part (no extra fields smuggled in).
        let file: ClientPlanFile = ron::from_str(&text).expect("client plan parses");
        assert_eq!(
            file.plan, plan.public,
            "{m}: client plan differs from the server's public part"
        );
        // The values per MPC step are the only sizes: none exceeds the step's own sizes.
        for s in &file.plan.mpc_steps {
            assert_eq!(
                s.values_in,
                s.instances * file.plan.circuits[s.circuit.index()].values_in as usize
            );
        }
    }
}

/// Records every byte the wrapped channel receives.
struct Recorder<C: Channel> {
    inner: C,
    log: Arc<Mutex<Vec<u8>>>,
}

impl<C: Channel> Channel for Recorder<C> {
    fn send(&mut self, bytes: &[u8]) -> mp2ml_mpc::Result<()> {
        self.inner.send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.inner.recv(buf)?;
        if let Ok(mut l) = self.log.lock() {
            l.extend_from_slice(buf);
        }
        Ok(())
    }
    fn flush(&mut self) -> mp2ml_mpc::Result<()> {
        self.inner.flush()
    }
    fn set_phase(&mut self, phase: &str) {
        self.inner.set_phase(phase)
    }
    fn stats(&self) -> ChannelStats {
        self.inner.stats()
    }
    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }
}

#[test]
fn bytes_the_client_receives_hold_no_weights() {
    let dir = compiled();
    let m = "tiny";
    let (w, b) = big_weights(dir, m);
    let setup = load_server(&dir.join(format!("{m}.ron")), 128).expect("load");
    let cs = client_setup_of(&setup);
    let o = SessionOptions::default();
    let cfg = channel_config(&setup.params, &o);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let elems: usize = cs.plan.input.shape.iter().product();
    let x: Vec<f32> = (0..2 * elems).map(|i| (i % 13) as f32 / 13.0).collect();
    let batch = Batch { images: 2, data: x };
    let log = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            serve(
                &setup,
                TcpChannel::accept(&listener, cfg).expect("accept"),
                &o,
            )
        });
        let ch = Recorder {
            inner: TcpChannel::connect(addr, cfg).expect("connect"),
            log: log.clone(),
        };
        run_client(&cs, ch, &batch, &o).expect("client");
        h.join().expect("server thread").expect("server");
    });
    let got = log.lock().expect("log").clone();
    assert!(got.len() > 100_000, "recorded only {} bytes", got.len());
    assert_no_weights("bytes received by the client", &got, &w, &b);
}

/// Chi-square statistic of `values` (each < `q`) over `buckets` equal-width buckets.
fn chi_square(values: impl Iterator<Item = u64>, q: u64, buckets: usize) -> (f64, usize) {
    let mut counts = vec![0u64; buckets];
    let mut n = 0usize;
    for v in values {
        assert!(v < q);
        counts[(u128::from(v) * buckets as u128 / u128::from(q)) as usize] += 1;
        n += 1;
    }
    let e = n as f64 / buckets as f64;
    (counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum(), n)
}

/// Bound on chi-square with k = 255 degrees of freedom: mean 255, sd √510 ≈ 22.6; mean + 6 sd
/// (false alarm probability below 1e-6).
const CHI_255: f64 = 255.0 + 6.0 * 22.6;

fn test_params() -> Arc<Params> {
    let n = 4096;
    let q0 = ntt_primes(30, n, 1, &[]).expect("q0")[0];
    let p1 = ntt_primes(44, n, 1, &[q0]).expect("p1")[0];
    let p2 = ntt_primes(30, n, 1, &[q0, p1]).expect("p2")[0];
    Params::new_secure(n, &[q0, p1, p2], SecurityLevel::Bits128).expect("params")
}

/// HE→MPC as the server runs it: mod-drop to level 0, re-randomize with Enc_pk(0), add r
/// uniform mod q0 to every coefficient; the client decrypts mod q0.
fn he2mpc_shares(
    params: &Arc<Params>,
    sk: &SecretKey,
    pk: &PublicKey,
    m: &[i64],
    cts: usize,
) -> Vec<u64> {
    let mut rng = os_rng();
    let q0 = params.q0();
    let mut out = Vec::new();
    let n = params.n();
    for _ in 0..cts {
        // As the runtime does it: the client's seeded window encryption, c1 = a(seed) on the
        // server; mod-drop to q0, add the pre-made Enc_pk(r) half by half; the client decrypts
        // the c0 window with its precomputed c1·s.
        let (seed, w) = sk
            .encrypt_seeded_window(m, 2, n, &mut rng)
            .expect("encrypt");
        let c1 = mp2ml_ckks::C1Half::from_seed(params, 2, &seed).expect("c1");
        let r: Vec<i64> = (0..n).map(|_| rng.random_range(0..q0) as i64).collect();
        let (pre0, pre1) = pk.encrypt_halves(&r, 0, n, &mut rng).expect("mask");
        let mut c0 = w.poly().mod_drop(0).expect("mod-drop");
        c0.add_assign(pre0.poly()).expect("add");
        let mut c1 = c1.poly().mod_drop(0).expect("mod-drop");
        c1.add_assign(pre1.poly()).expect("add");
        let c0 = mp2ml_ckks::C0Window::new(c0);
        let c1 = mp2ml_ckks::C1Half::new(c1).expect("whole c1");
        let d = sk.c1_times_s(&c1, n).expect("c1 s");
        out.extend(sk.decrypt_halves_mod_q0(&c0, &d).expect("decrypt"));
    }
    out
}

#[test]
fn decrypted_shares_are_uniform_mod_q0_and_fresh_per_run() {
    let params = test_params();
    let mut rng = os_rng();
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    let q0 = params.q0();
    // A highly structured input: the same small values (Δ = 2^20 times 0.5) everywhere.
    let m: Vec<i64> = (0..params.n())
        .map(|j| ((j % 3) as i64 - 1) << 19)
        .collect();
    let cts = 100_000usize.div_ceil(params.n()) + 1;
    let a = he2mpc_shares(&params, &sk, &pk, &m, cts);
    assert!(a.len() >= 100_000);
    let (chi, n) = chi_square(a.iter().copied(), q0, 256);
    println!("HE→MPC shares: chi-square {chi:.1} over {n} coefficients, 256 buckets (bound {CHI_255:.0})");
    assert!(
        chi < CHI_255,
        "shares are not uniform mod q0: chi-square {chi}"
    );
    // Low bits too (bucket by a mod 256: would catch a mask that leaves low bits alone).
    let (chi_low, _) = chi_square(a.iter().map(|&v| v % 256), 256, 256);
    assert!(
        chi_low < CHI_255,
        "low bits of shares are not uniform: {chi_low}"
    );
    // Power check: without the mask the same statistic is enormous.
    let mut unmasked = Vec::new();
    for _ in 0..cts {
        let mut c = sk
            .encrypt_seeded(&m, 2, &mut rng)
            .expect("encrypt")
            .expand()
            .mod_drop(0)
            .expect("drop");
        c.rerandomize(&pk, &mut rng).expect("rerandomize");
        unmasked.extend(sk.decrypt_mod_q0(&c).expect("decrypt"));
    }
    let (chi0, _) = chi_square(unmasked.into_iter(), q0, 256);
    assert!(
        chi0 > 100.0 * CHI_255,
        "the test has no power: unmasked chi-square {chi0}"
    );
    // Two runs on the same input give different shares.
    let b = he2mpc_shares(&params, &sk, &pk, &m, cts);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(
        same * 1000 < a.len(),
        "{same} of {} shares repeat between runs",
        a.len()
    );
}

#[test]
fn ciphertexts_the_server_receives_look_uniform() {
    let params = test_params();
    let mut rng = os_rng();
    let sk = SecretKey::generate(&params, &mut rng);
    // The client's input upload (seeded secret-key encryptions, sent and decoded as the
    // server does) of an all-zero and an all-constant input: the worst case for structure.
    for (label, v) in [("zeros", 0i64), ("constant", 1 << 20)] {
        let m = vec![v; params.n()];
        let mut per_limb: Vec<Vec<u64>> = vec![Vec::new(); 3];
        for _ in 0..25 {
            let wire = sk
                .encrypt_seeded(&m, 2, &mut rng)
                .expect("encrypt")
                .to_bytes();
            let ct = mp2ml_ckks::SeededCiphertext::from_bytes(&params, &wire)
                .expect("decode")
                .expand();
            for (l, limb) in ct.c0().chunks(params.n()).enumerate() {
                per_limb[l].extend_from_slice(limb);
            }
        }
        for (l, vals) in per_limb.iter().enumerate() {
            let q = params.moduli()[l];
            let (chi, n) = chi_square(vals.iter().copied(), q, 256);
            println!(
                "input ciphertexts ({label}), limb {l}: chi-square {chi:.1} over {n} residues"
            );
            assert!(
                n >= 100_000 && chi < CHI_255,
                "c0 of {label} input, limb {l}, is not uniform: chi-square {chi}"
            );
        }
    }
    // Power check: the plaintext itself (what c0 would be without the mask a·s) is not uniform.
    let (chi, _) = chi_square(
        (0..100_000u64).map(|i| (i % 3) << 20),
        params.moduli()[0],
        256,
    );
    assert!(chi > 100.0 * CHI_255);
}

#[test]
fn insecure_parameters_are_refused_by_both_parties() {
    let dir = compiled();
    let m = "tiny";
    let tmp = std::env::temp_dir().join(format!("mp2ml-leak-insecure-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmpdir");
    for f in [
        format!("{m}.ron"),
        format!("{m}.client.ron"),
        format!("{m}.weights.bin"),
    ] {
        std::fs::copy(dir.join(&f), tmp.join(&f)).expect("copy");
    }
    let sp = tmp.join(format!("{m}.ron"));
    let cp = tmp.join(format!("{m}.client.ron"));
    let server: ServerPlan =
        ron::from_str(&std::fs::read_to_string(&sp).expect("read")).expect("parse");
    let client: ClientPlanFile =
        ron::from_str(&std::fs::read_to_string(&cp).expect("read")).expect("parse");
    // The genuine plans load at 128 bits, and are refused when 192 bits are required.
    assert!(load_server(&sp, 128).is_ok() && load_client(&cp, 128).is_ok());
    for e in [load_server(&sp, 192).err(), load_client(&cp, 192).err()] {
        let e = e
            .expect("192-bit requirement must refuse a 128-bit plan")
            .to_string();
        assert!(e.contains("refusing insecure parameters"), "{e}");
    }
    type Edit = fn(&mut mp2ml_ir::plan::ClientPlan);
    let edits: &[(&str, Edit)] = &[
        ("smaller N", |p| p.params.log_n -= 1),
        ("N = 2^9", |p| p.params.log_n = 9),
        ("more modulus bits", |p| {
            // 960 bits more: above the 128-bit bound of every N up to 2^15.
            let extra = ntt_primes(60, p.params.n(), 16, &p.params.moduli).expect("primes");
            p.params.moduli.extend(extra);
        }),
        ("claimed 64-bit level", |p| p.params.security_bits = 64),
        ("sigma 30", |p| p.sigma = 30),
        ("output flooding below sigma", |p| p.output.flood_bits = 10),
    ];
    for (case, edit) in edits {
        let mut s = server.clone();
        edit(&mut s.public);
        s.public_hash = s.public.hash().expect("hash");
        std::fs::write(&sp, ron::ser::to_string(&s).expect("ron")).expect("write");
        let mut c = client.clone();
        edit(&mut c.plan);
        c.public_hash = c.plan.hash().expect("hash");
        std::fs::write(&cp, ron::ser::to_string(&c).expect("ron")).expect("write");
        let se = load_server(&sp, 128)
            .err()
            .unwrap_or_else(|| panic!("{case}: the server accepted"))
            .to_string();
        let ce = load_client(&cp, 128)
            .err()
            .unwrap_or_else(|| panic!("{case}: the client accepted"))
            .to_string();
        for e in [&se, &ce] {
            assert!(
                !e.contains("hash"),
                "{case}: refused by the hash check, not the security check: {e}"
            );
            let ok = e.contains("refusing insecure parameters")
                || (*case == "output flooding below sigma" && e.contains("flooding"));
            assert!(ok, "{case}: unexpected reason: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Extreme values in an edited plan (hash recomputed) must be refused, not overflow.
#[test]
fn extreme_sigma_and_flooding_are_refused_without_overflow() {
    let dir = compiled();
    let text = std::fs::read_to_string(dir.join("tiny.client.ron")).expect("read");
    let file: ClientPlanFile = ron::from_str(&text).expect("parse");
    for (case, edit) in [
        (
            "sigma = u32::MAX",
            (|p: &mut mp2ml_ir::plan::ClientPlan| p.sigma = u32::MAX)
                as fn(&mut mp2ml_ir::plan::ClientPlan),
        ),
        ("flood_bits = u32::MAX", |p| p.output.flood_bits = u32::MAX),
        ("out_scale_bits = u32::MAX", |p| {
            p.mpc_steps[0].out_scale_bits = u32::MAX
        }),
    ] {
        let mut p = file.plan.clone();
        edit(&mut p);
        let r = std::panic::catch_unwind(|| {
            mp2ml_runtime::plan::check_public(Path::new("x.ron"), &p, 128).map(|_| ())
        });
        match r {
            Ok(r) => assert!(r.is_err(), "{case}: accepted"),
            Err(_) => panic!("{case}: check_public panicked"),
        }
    }
}
