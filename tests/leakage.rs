//! Leakage tests on recorded real sessions. Each session runs the real server
//! (`mp2ml_runtime::server::serve`) and the real client (`client::run_client`) over loopback
//! TCP; the client's channel is wrapped in a [`Recorder`] that keeps every frame and every
//! unframed chunk it sends and receives, with the protocol phase it belongs to. The client's
//! decrypted HE→MPC shares come from the client's own code path through the test-only
//! [`Probe`] (feature `test-hooks`). Models: every bundled model except ResNet-20, in image
//! packing (cheap); in batch packing `tiny` and `cryptonets_relu`, while `maxpool_cnn` and
//! `residual` (tens of seconds per batch-packed session) are `#[ignore]`d variants of the same
//! checks.
//!
//! What is checked, per model and packing, on two sessions with the same input:
//! 1. **Shares.** The client's decrypted shares are uniform mod Q0 (q0 or the product of the
//!    first k primes): chi-square over k = min(256, n/40) equal buckets of [0, Q0) and over the
//!    low byte, below (k−1) + 6·√(2(k−1)) (false alarm < 1e-6); and fresh: the share positions
//!    related between the two sessions (difference mod Q0 below Q0/2^16 in absolute value,
//!    probability 2^-15
//!    each for independent shares) stay below the Poisson bound λ + 6√λ + 6.
//! 2. **Seeds.** Every seed on the wire is distinct within and across the two sessions: the
//!    32-byte `a` seeds of the client's seeded encryptions (its precompute frames), the seed of
//!    its public key, and every single 128-bit block moved on its own (Yao's garbler seed, the
//!    GMW PRG seeds).
//! 3. **Weights.** No scaled integer weight or bias of the weights file (entries of every
//!    `Linear` matrix, `PolyLinear` kernel and bias, |w| > 2^20 since smaller integers are what
//!    headers and counters hold, and no multiple W·p of a public prime) appears as its residue `w mod q_i` in limb i of any
//!    polynomial frame the client receives (every frame is parsed as an RNS polynomial; per
//!    prime, the hits must stay below the Poisson bound λ + 6√λ + 6 of uniform limbs, with
//!    λ = limbs·|R_i|/q_i), nor as a full 64-bit word at any 8-byte-aligned offset of the
//!    other bytes it receives (garbled tables, OT, unparsable frames; residues ≥ 2^32, no hit
//!    allowed), nor as a decimal integer in the client plan (no hit allowed).
//! 4. **Re-randomization.** The c1 halves the client receives for the first MPC step, minus
//!    what they would be without the server's re-randomization (the plan's linear ops run by
//!    this test on a(seed) of the client's recorded input seeds, mod-dropped to Q0), are
//!    full-width in their first limb: the coefficients mod q0 that are short (|d| < q0/2^16)
//!    stay below the
//!    Poisson bound of uniform ones, and they pass the chi-square bound of 1.
//!
//! Positive controls (on `tiny` in both packings and `cryptonets_relu` in image packing; the
//! detectors are the same code for every model): the same detectors run on sessions whose
//! server had protections switched off by `ServerSetup::weaken_for_tests` (a library call of
//! feature `test-hooks`, unreachable from the CLI and from plan files) and must fire: no HE→MPC
//! mask (1: the chi-square and the related count exceed their bounds), no re-randomization
//! (4: every difference is zero), the server's garbling/GMW randomness fixed (2: its seed
//! repeats across sessions), weights planted in the clear in place of the c1 halves (3). The
//! seed detector must also fire on a replayed session, and the plan detector on a client plan
//! with one weight written into it (the client's own seeds and the plan writer have no switch).
//!
//! Kept from before: parameters below the security level are refused by both parties, and
//! extreme values in an edited plan are refused without overflow.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mp2ml_ckks::{linear_polys, ntt_primes, poly_dot, NttPoly, Params, RnsPoly};
use mp2ml_compiler::driver::{compile_graph, Options, Packing};
use mp2ml_compiler::onnx::{import_file, ImportOptions};
use mp2ml_compiler::plan_writer::write_all;
use mp2ml_ir::plan::{ClientPlanFile, HeOp, Segment, ServerPlan, TensorRef};
use mp2ml_ir::weights::WeightsFile;
use mp2ml_mpc::{Channel, ChannelStats, TcpChannel};
use mp2ml_runtime::client::{run_client, Batch};
use mp2ml_runtime::local::{channel_config, client_setup_of};
use mp2ml_runtime::plan::{load_client, load_server, ServerSetup};
use mp2ml_runtime::probe::{Probe, Weakened};
use mp2ml_runtime::server::serve;
use mp2ml_runtime::session::SessionOptions;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A compiled plan on disk (server plan, client plan, weights) in a temporary folder that is
/// removed when it is dropped.
struct Compiled {
    dir: tempfile::TempDir,
    name: String,
}

impl Compiled {
    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
    fn server_path(&self) -> PathBuf {
        self.path(&format!("{}.ron", self.name))
    }
    fn client_path(&self) -> PathBuf {
        self.path(&format!("{}.client.ron", self.name))
    }
}

fn compile(model: &str, packing: Packing) -> Compiled {
    // One folder per call: tests compiling the same model run in parallel.
    let dir = tempfile::Builder::new()
        .prefix(&format!("mp2ml-leak-{model}-"))
        .tempdir()
        .expect("tmpdir");
    let imported = import_file(
        &root().join(format!("models/{model}.onnx")),
        &ImportOptions::default(),
    )
    .unwrap_or_else(|d| panic!("{model}: import failed: {}", d.render()));
    let opts = Options {
        packing,
        ..Options::default()
    };
    let out = compile_graph(
        &imported.graph,
        model,
        &format!("{model}.weights.bin"),
        &opts,
    )
    .unwrap_or_else(|e| panic!("{model}: compile failed: {e:?}"));
    let c = Compiled {
        dir,
        name: model.to_string(),
    };
    write_all(&out.compiled, &c.server_path()).expect("write plan");
    c
}

/// The batch-packed `tiny` plan, for the tests that edit plans.
fn tiny_batch() -> Compiled {
    compile("tiny", Packing::Batch)
}

/// `count` test digits, image-major.
fn digits(count: usize) -> Batch {
    let bytes = std::fs::read(root().join("models/mnist_test_x.npy")).expect("test digits");
    let all = mp2ml_compiler::npy::read_f32(&bytes).expect("npy");
    let per: usize = all.shape.iter().skip(1).product();
    let images = count.min(all.shape[0]);
    Batch {
        images,
        data: all.data[..images * per].to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// Recording

/// One thing the client's channel moved.
#[derive(Clone, Debug)]
struct Rec {
    /// Sent by the client (else received).
    sent: bool,
    /// The protocol phase (`mp2ml_runtime::phase::Phase::name`) it was moved in.
    phase: String,
    /// A frame (`send_frame`/`recv_frame`) or an unframed chunk (`send`/`recv`).
    framed: bool,
    bytes: Vec<u8>,
}

/// Records everything the wrapped channel sends and receives.
struct Recorder<C: Channel> {
    inner: C,
    phase: String,
    log: Arc<Mutex<Vec<Rec>>>,
}

impl<C: Channel> Recorder<C> {
    fn push(&self, sent: bool, framed: bool, bytes: &[u8]) {
        if let Ok(mut l) = self.log.lock() {
            l.push(Rec {
                sent,
                phase: self.phase.clone(),
                framed,
                bytes: bytes.to_vec(),
            });
        }
    }
}

impl<C: Channel> Channel for Recorder<C> {
    fn send(&mut self, bytes: &[u8]) -> mp2ml_mpc::Result<()> {
        self.push(true, false, bytes);
        self.inner.send(bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> mp2ml_mpc::Result<()> {
        self.inner.recv(buf)?;
        self.push(false, false, buf);
        Ok(())
    }
    fn send_frame(&mut self, data: &[u8]) -> mp2ml_mpc::Result<()> {
        self.push(true, true, data);
        self.inner.send_frame(data)
    }
    fn recv_frame(&mut self) -> mp2ml_mpc::Result<Vec<u8>> {
        let f = self.inner.recv_frame()?;
        self.push(false, true, &f);
        Ok(f)
    }
    fn flush(&mut self) -> mp2ml_mpc::Result<()> {
        self.inner.flush()
    }
    fn set_phase(&mut self, phase: &str) {
        self.phase = phase.to_string();
        self.inner.set_phase(phase)
    }
    fn stats(&self) -> ChannelStats {
        self.inner.stats()
    }
    fn max_frame(&self) -> usize {
        self.inner.max_frame()
    }
    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.inner.set_deadline(deadline)
    }
}

/// A recorded session: what the client's channel moved and the shares the client decrypted.
struct Session {
    log: Vec<Rec>,
    /// All decrypted shares of the session (every step, value and image), mod Q0.
    shares: Vec<u128>,
}

/// Runs one real session of `setup` on `batch` with the client's channel recorded.
fn record(setup: &ServerSetup, batch: &Batch) -> Session {
    record_with(setup, batch, false)
}

/// [`record`]; with `garbled_ok`, a session whose shares the test hooks made garbage (planted
/// plaintexts in place of c1 halves) may fail at the client's end (its output then decodes
/// out of range) and the server's: what was moved until then is what the detector reads.
fn record_with(setup: &ServerSetup, batch: &Batch, garbled_ok: bool) -> Session {
    let probe = Arc::new(Probe::default());
    let mut cs = client_setup_of(setup);
    cs.probe = Some(probe.clone());
    let o = SessionOptions::default();
    let cfg = channel_config(&setup.params, &o);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            serve(
                setup,
                TcpChannel::accept(&listener, cfg).expect("accept"),
                &o,
            )
        });
        let ch = Recorder {
            inner: TcpChannel::connect(addr, cfg).expect("connect"),
            phase: String::new(),
            log: log.clone(),
        };
        let client = run_client(&cs, ch, batch, &o);
        let server = h.join().expect("server thread");
        if !garbled_ok {
            client.expect("client");
            server.expect("server");
        }
    });
    let log = std::mem::take(&mut *log.lock().expect("log"));
    let shares = std::mem::take(&mut *probe.shares.lock().expect("shares"))
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    Session { log, shares }
}

// ---------------------------------------------------------------------------------------------
// 1. Shares

/// Chi-square statistic of `values` (each < `q` < 2^127) over `buckets` equal-width buckets.
fn chi_square(values: impl Iterator<Item = u128>, q: u128, buckets: usize) -> f64 {
    let mut counts = vec![0u64; buckets];
    let mut n = 0usize;
    // Bucket of v: ⌊v·k/q⌋, from the top 64 bits of v and q (exact enough for k ≤ 256).
    // Without a shift (q ≤ 2^64, e.g. the low byte's q = 256) the bucket is exact: ⌊v·k/q⌋;
    // dividing by q + 1 there would put 0 and 1 in bucket 0 and leave bucket k − 1 empty,
    // adding 2n/k to the statistic.
    let shift = (128 - q.leading_zeros()).saturating_sub(64);
    let qh = (q >> shift) + u128::from(shift > 0);
    for v in values {
        assert!(v < q);
        let b = ((v >> shift) * buckets as u128 / qh) as usize;
        counts[b.min(buckets - 1)] += 1;
        n += 1;
    }
    let e = n as f64 / buckets as f64;
    counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum()
}

/// Buckets for `n` values (≥ 40 expected per bucket) and the chi-square bound: mean + 6 sd of
/// chi-square with k − 1 degrees of freedom.
fn buckets_and_bound(n: usize) -> (usize, f64) {
    let k = (n / 40).clamp(8, 256);
    let df = (k - 1) as f64;
    (k, df + 6.0 * (2.0 * df).sqrt())
}

/// The shares statistics: chi-square over [0, Q0) and its bound, chi-square of the low byte
/// and its bound (over a power of two of buckets, so that they are equal).
fn shares_stats(shares: &[u128], q0: u128) -> (f64, f64, f64, f64) {
    let (k, bound) = buckets_and_bound(shares.len());
    let hi = chi_square(shares.iter().copied(), q0, k);
    let k_lo = 1 << k.ilog2();
    let (_, bound_lo) = buckets_and_bound(40 * k_lo);
    let lo = chi_square(shares.iter().map(|&v| v % 256), 256, k_lo);
    (hi, bound, lo, bound_lo)
}

/// Bound on a Poisson count of mean `lambda`: λ + 6√λ + 6 (exceeded with probability below
/// 1e-6 for every λ).
fn poisson_bound(lambda: f64) -> f64 {
    lambda + 6.0 * lambda.sqrt() + 6.0
}

/// Probability that a uniform value mod q0 is short: |d| < q0/2^16 (centered).
fn p_short(q0: u128) -> f64 {
    (2 * (q0 >> 16) - 1) as f64 / q0 as f64
}

/// Shares at the same position in two sessions that are related: their difference mod q0 is
/// short (|a − b| < q0/2^16; probability 2^-15 for independent uniform shares, 1 for unmasked
/// shares of the same input, which differ only by encryption noise).
fn related(a: &[u128], b: &[u128], q0: u128) -> usize {
    assert_eq!(
        a.len(),
        b.len(),
        "the two sessions decrypt different share counts"
    );
    a.iter()
        .zip(b)
        .filter(|&(&x, &y)| {
            let d = (x + q0 - y) % q0;
            d.min(q0 - d) < q0 >> 16
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// 2. Seeds

/// Every seed of a session on the wire: the client's seeded-encryption seeds (its precompute
/// frames), its public key's seed (the last 32 bytes of its second handshake frame) and every
/// lone 128-bit block either way (garbler seed, GMW PRG seeds).
fn seeds(s: &Session) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut handshake_sent = 0;
    for r in &s.log {
        if r.sent && r.framed && r.phase == "precompute" {
            assert_eq!(
                r.bytes.len() % 32,
                0,
                "a precompute frame of the client that is not seeds"
            );
            out.extend(r.bytes.chunks(32).map(<[u8]>::to_vec));
        }
        if r.sent && r.framed && r.phase == "handshake" {
            handshake_sent += 1;
            if handshake_sent == 2 {
                out.push(r.bytes[r.bytes.len() - 32..].to_vec());
            }
        }
        if !r.framed && r.bytes.len() == 16 {
            out.push(r.bytes.clone());
        }
    }
    out
}

/// Seeds seen more than once over `sessions`, and the number of seeds.
fn repeated_seeds(sessions: &[&Session]) -> (usize, usize) {
    let all: Vec<Vec<u8>> = sessions.iter().flat_map(|s| seeds(s)).collect();
    let distinct: HashSet<&Vec<u8>> = all.iter().collect();
    (all.len() - distinct.len(), all.len())
}

// ---------------------------------------------------------------------------------------------
// 3. Weights

/// Every scaled integer weight and bias of the plan's weights file with |w| > 2^20: entries
/// and biases of `Linear` matrices, kernel coefficients and biases of `PolyLinear` ops. Exact
/// multiples of a modulus are left out: an integer weight W (the 1 of a residual connection)
/// is encoded as W·p, and p is public.
fn weights(c: &Compiled, moduli: &[u64]) -> Vec<i128> {
    let plan: ServerPlan =
        ron::from_str(&std::fs::read_to_string(c.server_path()).expect("read")).expect("parse");
    let wf = WeightsFile::from_bytes(std::fs::read(c.path(&plan.weights.file)).expect("w"))
        .expect("magic");
    let mut out = HashSet::new();
    let mut add = |m: mp2ml_ir::weights::IntMatrix| {
        out.extend(m.val.iter().map(|&v| i128::from(v)));
        out.extend(m.bias.iter().copied());
    };
    for seg in &plan.segments {
        if let Segment::He(he) = seg {
            for op in &he.ops {
                match op {
                    HeOp::Linear { matrix, .. } => add(wf.matrix(matrix).expect("matrix")),
                    HeOp::PolyLinear { kernels, bias, .. } => {
                        add(wf.matrix(kernels).expect("kernels"));
                        add(wf.matrix(bias).expect("bias"));
                    }
                    HeOp::ModDrop { .. } => {}
                }
            }
        }
    }
    let mut v: Vec<i128> = out
        .into_iter()
        .filter(|w| w.unsigned_abs() > 1 << 20)
        .filter(|w| moduli.iter().all(|&q| w % i128::from(q) != 0))
        .collect();
    v.sort_unstable();
    v
}

/// Residues `w mod q_i` of the weights, per prime (0 excluded: a weight that is a multiple of
/// q_i is 0 there, which says nothing).
fn residues(w: &[i128], moduli: &[u64]) -> Vec<HashSet<u64>> {
    moduli
        .iter()
        .map(|&q| {
            w.iter()
                .map(|&v| v.rem_euclid(i128::from(q)) as u64)
                .filter(|&r| r != 0)
                .collect()
        })
        .collect()
}

/// The weight search over what the client received in `s`.
struct WeightHits {
    /// Per prime: (limbs scanned, hits, Poisson bound).
    per_prime: Vec<(usize, usize, f64)>,
    /// Hits among the 8-byte-aligned words of the bytes that are not polynomials.
    raw_hits: usize,
    raw_words: usize,
}

impl WeightHits {
    fn fired(&self) -> bool {
        self.raw_hits > 0 || self.per_prime.iter().any(|&(_, h, b)| h as f64 > b)
    }
}

fn weight_hits(s: &Session, params: &Arc<Params>, res: &[HashSet<u64>]) -> WeightHits {
    let moduli = params.moduli();
    let mut limbs = vec![0usize; moduli.len()];
    let mut hits = vec![0usize; moduli.len()];
    let big: HashSet<u64> = res
        .iter()
        .flatten()
        .copied()
        .filter(|&r| r >= 1 << 32)
        .collect();
    let (mut raw_hits, mut raw_words) = (0, 0);
    for r in s.log.iter().filter(|r| !r.sent) {
        if r.framed {
            if let Ok(p) = RnsPoly::from_bytes(params, &r.bytes) {
                let w = p.width();
                for (i, limb) in p.data().chunks(w).enumerate() {
                    limbs[i] += w;
                    hits[i] += limb.iter().filter(|x| res[i].contains(x)).count();
                }
                continue;
            }
        }
        for word in r.bytes.chunks_exact(8) {
            raw_words += 1;
            let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            raw_hits += usize::from(big.contains(&x));
        }
    }
    let per_prime = (0..moduli.len())
        .map(|i| {
            let lambda = limbs[i] as f64 * res[i].len() as f64 / moduli[i] as f64;
            (limbs[i], hits[i], poisson_bound(lambda))
        })
        .collect();
    WeightHits {
        per_prime,
        raw_hits,
        raw_words,
    }
}

/// Decimal integers of a text (optionally signed).
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

/// A client plan's text with the circuits' gate and output lists taken out, for the weight
/// search: those integers are wire indices (each circuit validates: every wire below its
/// wire count), and the large circuits of the truncating protocol have more than 2^20 wires,
/// so their indices would match weights of the same magnitude by chance. The circuits' other
/// fields (Q0, widths, offsets, K) stay.
fn without_wire_lists(text: &str) -> String {
    let mut file: ClientPlanFile = ron::from_str(text).expect("client plan parses");
    for c in &mut file.plan.circuits {
        c.circuit
            .validate()
            .expect("the circuit's wires are in range");
        c.circuit.gates.clear();
        c.circuit.outputs.clear();
    }
    ron::to_string(&file).expect("client plan serializes")
}

/// Weights (as themselves or as a residue) among the decimal integers > 2^20 of a plan text.
fn plan_hits(text: &str, w: &[i128], res: &[HashSet<u64>]) -> Vec<i128> {
    let ws: HashSet<i128> = w.iter().copied().collect();
    int_tokens(text)
        .into_iter()
        .filter(|t| t.unsigned_abs() > 1 << 20)
        .filter(|t| {
            ws.contains(t) || u64::try_from(*t).is_ok_and(|u| res.iter().any(|r| r.contains(&u)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 4. Re-randomization

/// What the c1 halves of the first MPC step's inputs would be without the server's
/// re-randomization, computed from the client's recorded input seeds: batch packing runs the
/// `Linear` ops (then a rescale) on a(seed); image packing the `PolyLinear` products with the
/// kernels; both mod-drop to q0. In the order the client receives them.
fn c1_without_rerandomization(setup: &ServerSetup, s: &Session, images: usize) -> Vec<RnsPoly> {
    let plan = &setup.plan;
    let params = &setup.params;
    let seeds: Vec<[u8; 32]> = s
        .log
        .iter()
        .filter(|r| r.sent && r.framed && r.phase == "precompute")
        .flat_map(|r| r.bytes.chunks(32).map(|c| c.try_into().expect("seed")))
        .collect();
    // a(seed) at the encryption level.
    let expand = |s: &[[u8; 32]], level: usize| -> Vec<RnsPoly> {
        s.iter()
            .map(|s| RnsPoly::from_seed(params, level, s).expect("a(seed)"))
            .collect()
    };
    let (_, share_level) = plan.public.params.share_modulus().expect("Q0");
    // The tensors of one image (image packing) or of the batch, until the first MPC step.
    let first = |tensors: &mut Vec<Option<Vec<RnsPoly>>>| -> (TensorRef, Vec<u32>) {
        for (si, seg) in plan.segments.iter().enumerate() {
            match seg {
                Segment::Mpc(b) => return (b.input, b.gather.clone()),
                Segment::He(he) => {
                    for (oi, op) in he.ops.iter().enumerate() {
                        let get = |t: &Vec<Option<Vec<RnsPoly>>>, i: TensorRef| -> Vec<RnsPoly> {
                            t[i.index()].clone().expect("tensor computed")
                        };
                        match op {
                            HeOp::Linear { inputs, output, .. } => {
                                let m = setup.matrices[si][oi].as_ref().expect("weights");
                                let ins: Vec<RnsPoly> =
                                    inputs.iter().flat_map(|&i| get(tensors, i)).collect();
                                let refs: Vec<&RnsPoly> = ins.iter().collect();
                                let mut y = linear_polys(&refs, &m.matrix, None).expect("linear");
                                y.iter_mut()
                                    .for_each(|c| c.rescale_assign().expect("rescale"));
                                tensors[output.index()] = Some(y);
                            }
                            HeOp::PolyLinear {
                                inputs,
                                output,
                                terms,
                                level_in,
                                ..
                            } => {
                                let k = setup.packed[si][oi].as_ref().expect("kernels");
                                let mut flat = Vec::new();
                                let mut offset = Vec::new();
                                for &i in inputs {
                                    offset.push(flat.len() as u32);
                                    flat.extend(get(tensors, i));
                                }
                                let ntt: Vec<NttPoly> = flat
                                    .iter()
                                    .map(|p| NttPoly::from_half(p).expect("ntt"))
                                    .collect();
                                let y = terms
                                    .iter()
                                    .map(|ts| {
                                        let pairs: Vec<(u32, u32)> = ts
                                            .iter()
                                            .map(|&(i, p, kk)| (offset[i as usize] + p, kk))
                                            .collect();
                                        let mut y = if pairs.is_empty() {
                                            RnsPoly::zero(params, *level_in, params.n())
                                                .expect("zero")
                                        } else {
                                            poly_dot(&ntt, &k.kernels, &pairs).expect("dot")
                                        };
                                        y.rescale_assign().expect("rescale");
                                        y
                                    })
                                    .collect();
                                tensors[output.index()] = Some(y);
                            }
                            HeOp::ModDrop {
                                input,
                                output,
                                level,
                            } => {
                                let y = get(tensors, *input)
                                    .iter()
                                    .map(|c| c.mod_drop(*level).expect("drop"))
                                    .collect();
                                tensors[output.index()] = Some(y);
                            }
                        }
                    }
                }
            }
        }
        panic!("a plan without MPC step")
    };
    let mut out = Vec::new();
    match (&plan.public.image, &plan.image) {
        (Some(l), Some(t)) => {
            let per_image: usize = l
                .input
                .iter()
                .chain(l.steps.iter().flat_map(|s| &s.uploads))
                .map(|u| u.layout.polys())
                .sum();
            assert_eq!(seeds.len(), per_image * images);
            // The polynomials holding the step's inputs, ascending (the server's windows).
            let mut polys: Vec<u32> = l.steps[0].input.at.iter().map(|&(p, _)| p).collect();
            polys.sort_unstable();
            polys.dedup();
            for j in 0..images {
                let mut tensors = vec![None; plan.tensors.len()];
                let mut at = j * per_image;
                for (u, &r) in l.input.iter().zip(&t.input) {
                    let polys = expand(&seeds[at..at + u.layout.polys()], plan.public.input.level)
                        .iter()
                        .map(|c| c.mod_drop(u.level).expect("drop"))
                        .collect();
                    tensors[r.index()] = Some(polys);
                    at += u.layout.polys();
                }
                let (input, _) = first(&mut tensors);
                let x = tensors[input.index()].as_ref().expect("step input");
                out.extend(
                    polys
                        .iter()
                        .map(|&p| x[p as usize].mod_drop(share_level).expect("drop")),
                );
            }
        }
        _ => {
            let n_in = plan.tensors[0].len();
            let mut tensors = vec![None; plan.tensors.len()];
            tensors[0] = Some(expand(&seeds[..n_in], plan.tensors[0].level));
            let (input, gather) = first(&mut tensors);
            let x = tensors[input.index()].as_ref().expect("step input");
            out.extend(
                gather
                    .iter()
                    .map(|&g| x[g as usize].mod_drop(share_level).expect("drop")),
            );
        }
    }
    out
}

/// The differences between the first MPC step's received c1 halves and
/// [`c1_without_rerandomization`], in their first limb (mod q_0; the other primes of Q0 alike):
/// (fraction short, chi-square, bound, coefficients).
fn rerandomization_stats(
    setup: &ServerSetup,
    s: &Session,
    images: usize,
) -> (f64, f64, f64, usize, f64) {
    let params = &setup.params;
    let q0 = params.q0();
    let (_, share_level) = setup.plan.public.params.share_modulus().expect("Q0");
    let expected = c1_without_rerandomization(setup, s, images);
    let received: Vec<RnsPoly> = s
        .log
        .iter()
        .filter(|r| !r.sent && r.framed && r.phase == "precompute")
        .take(expected.len())
        .map(|r| RnsPoly::from_bytes(params, &r.bytes).expect("a c1 half"))
        .collect();
    assert_eq!(received.len(), expected.len());
    let n = params.n();
    let mut d = Vec::with_capacity(expected.len() * n);
    for (r, e) in received.iter().zip(&expected) {
        assert_eq!(
            (r.level(), r.width()),
            (share_level, n),
            "c1 of an HE→MPC input"
        );
        let mut x = r.clone();
        x.sub_assign(e).expect("same shape");
        d.extend_from_slice(&x.data()[..n]);
    }
    let short = d.iter().filter(|&&v| v.min(q0 - v) < q0 >> 16).count();
    let (k, bound) = buckets_and_bound(d.len());
    let chi = chi_square(d.iter().map(|&v| u128::from(v)), u128::from(q0), k);
    let p = p_short(u128::from(q0));
    (short as f64 / d.len() as f64, chi, bound, d.len(), p)
}

// ---------------------------------------------------------------------------------------------
// The checks on one model and packing

/// Records two shipped sessions and the weakened ones, runs every detector on each and
/// asserts that the shipped sessions pass and the weakened ones are caught.
/// `controls`: also record the weakened sessions (the positive controls; run on the cheap
/// models, as the detectors are the same code for every model).
fn check(model: &str, packing: Packing, images: usize, controls: bool) {
    let c = compile(model, packing);
    let mut setup = load_server(&c.server_path(), 128).expect("load");
    let params = setup.params.clone();
    let (q0, _) = setup.plan.public.params.share_modulus().expect("Q0");
    let batch = digits(images);
    let what = format!("{model} ({packing:?} packing, {images} images)");
    let t = std::time::Instant::now();

    let a = record(&setup, &batch);
    let b = record(&setup, &batch);

    // 1. Shares: uniform and fresh.
    let n = a.shares.len();
    let (hi, bound, lo, bound_lo) = shares_stats(&a.shares, q0);
    let same = related(&a.shares, &b.shares, q0);
    println!(
        "{what}: {n} shares, chi-square {hi:.0} (bound {bound:.0}), low byte {lo:.0} \
         (bound {bound_lo:.0}); {same} related across sessions"
    );
    assert!(n >= 256, "{what}: only {n} shares");
    assert!(
        hi < bound && lo < bound_lo,
        "{what}: shares are not uniform mod Q0"
    );
    let same_bound = poisson_bound(n as f64 * p_short(q0));
    assert!(
        (same as f64) < same_bound,
        "{what}: {same} of {n} shares related between sessions (bound {same_bound:.1})"
    );

    // 2. Seeds distinct within and across sessions.
    let (rep, count) = repeated_seeds(&[&a, &b]);
    println!("{what}: {count} seeds, {rep} repeated");
    assert!(count >= 8, "{what}: only {count} seeds found");
    assert_eq!(rep, 0, "{what}: seeds repeat");
    let (rep_replay, _) = repeated_seeds(&[&a, &a]);
    assert!(
        rep_replay * 2 >= count,
        "{what}: the seed detector misses a replayed session"
    );

    // 3. No weight residue in what the client received, nor in its plan.
    let w = weights(&c, params.moduli());
    assert!(w.len() > 10, "{what}: only {} weights", w.len());
    let res = residues(&w, params.moduli());
    for s in [&a, &b] {
        let h = weight_hits(s, &params, &res);
        println!(
            "{what}: weight residues per prime (limbs, hits, bound): {:?}; raw words {} hits {}",
            h.per_prime, h.raw_words, h.raw_hits
        );
        assert!(!h.fired(), "{what}: weight residues in the received frames");
    }
    let text = without_wire_lists(&std::fs::read_to_string(c.client_path()).expect("plan"));
    assert_eq!(
        plan_hits(&text, &w, &res),
        [],
        "{what}: weights in the client plan"
    );
    let planted = text.replacen("sigma", &format!("{}, sigma", w[w.len() / 2]), 1);
    assert!(
        !plan_hits(&planted, &w, &res).is_empty(),
        "{what}: plan detector misses a weight"
    );

    // 4. c1 re-randomized.
    let (short, chi, bound, n, p1) = rerandomization_stats(&setup, &a, batch.images);
    println!("{what}: c1 − Σ W·a(seed): {short:.2e} short, chi-square {chi:.0} (bound {bound:.0}) over {n}");
    let short_bound = poisson_bound(n as f64 * p1) / n as f64;
    assert!(
        short < short_bound && chi < bound,
        "{what}: c1 is not re-randomized (short fraction bound {short_bound:.1e})"
    );

    if !controls {
        println!("{what}: {:.1} s", t.elapsed().as_secs_f64());
        return;
    }
    // Positive controls.
    // Three protections off at once: their detectors read disjoint parts of a session (the
    // shares, the c1 halves, the lone 128-bit blocks).
    setup.weaken_for_tests(Weakened {
        no_share_mask: true,
        no_rerandomize: true,
        fixed_mpc_rng: Some(7),
        ..Weakened::default()
    });
    let a0 = record(&setup, &batch);
    let b0 = record(&setup, &batch);
    let n0 = a0.shares.len();
    let (hi0, bound0, _, _) = shares_stats(&a0.shares, q0);
    let same0 = related(&a0.shares, &b0.shares, q0);
    println!("{what}, no mask: shares chi-square {hi0:.0} (bound {bound0:.0}); {same0} of {n0} related across sessions");
    assert!(
        hi0 > 10.0 * bound0,
        "{what}: the share detector misses unmasked shares"
    );
    assert!(
        same0 as f64 > poisson_bound(n0 as f64 * p_short(q0)),
        "{what}: the freshness detector misses unmasked shares"
    );
    let (short0, chi0, bound0, _, _) = rerandomization_stats(&setup, &a0, batch.images);
    println!("{what}, no re-randomization: c1 − Σ W·a(seed): {short0:.3} short, chi-square {chi0:.0} (bound {bound0:.0})");
    assert!(
        short0 > 0.99 && chi0 > bound0,
        "{what}: the c1 detector misses Σ W·a(seed)"
    );

    let (rep0, count0) = repeated_seeds(&[&a0, &b0]);
    println!("{what}, fixed MPC randomness: {rep0} of {count0} seeds repeated");
    assert!(
        rep0 > 0,
        "{what}: the seed detector misses the server's fixed MPC randomness"
    );

    let plant: Vec<i128> = w.iter().step_by((w.len() / 64).max(1)).copied().collect();
    setup.weaken_for_tests(Weakened {
        plant,
        ..Weakened::default()
    });
    let p = record_with(&setup, &batch, true);
    let h = weight_hits(&p, &params, &res);
    println!(
        "{what}, planted: per prime (limbs, hits, bound): {:?}",
        h.per_prime
    );
    assert!(
        h.fired(),
        "{what}: the weight detector misses planted weights"
    );
    println!("{what}: {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn tiny_batch_packed_sessions_leak_nothing() {
    check("tiny", Packing::Batch, 16, true);
}

#[test]
fn cryptonets_relu_batch_packed_sessions_leak_nothing() {
    check("cryptonets_relu", Packing::Batch, 8, false);
}

#[test]
#[ignore = "tens of seconds per batch-packed session; tiny and cryptonets_relu cover the same checks"]
fn maxpool_cnn_batch_packed_sessions_leak_nothing() {
    check("maxpool_cnn", Packing::Batch, 2, false);
}

#[test]
#[ignore = "tens of seconds per batch-packed session; tiny and cryptonets_relu cover the same checks"]
fn residual_batch_packed_sessions_leak_nothing() {
    check("residual", Packing::Batch, 2, false);
}

#[test]
fn tiny_image_packed_sessions_leak_nothing() {
    check("tiny", Packing::Image, 16, true);
}

#[test]
fn cryptonets_relu_image_packed_sessions_leak_nothing() {
    check("cryptonets_relu", Packing::Image, 2, true);
}

#[test]
fn maxpool_cnn_image_packed_sessions_leak_nothing() {
    check("maxpool_cnn", Packing::Image, 1, false);
}

#[test]
fn residual_image_packed_sessions_leak_nothing() {
    check("residual", Packing::Image, 1, false);
}

// ---------------------------------------------------------------------------------------------
// Plans

/// The client plans of every bundled model in batch packing (those whose sessions are
/// `#[ignore]`d included; image-packed plans are checked in their session tests): no weight
/// residue, no server-only word, no linear-layer or HE-segment name, and exactly the server
/// plan's public part.
#[test]
fn client_plans_hold_no_weights_and_no_linear_layers() {
    for m in ["tiny", "cryptonets_relu", "maxpool_cnn", "residual"] {
        let c = compile(m, Packing::Batch);
        let text = std::fs::read_to_string(c.client_path()).expect("client plan");
        let file: ClientPlanFile = ron::from_str(&text).expect("client plan parses");
        let moduli = &file.plan.params.moduli;
        let w = weights(&c, moduli);
        let res = residues(&w, moduli);
        assert!(w.len() > 10, "{m}: only {} weights", w.len());
        assert_eq!(
            plan_hits(&without_wire_lists(&text), &w, &res),
            [],
            "{m}: weights in the client plan"
        );
        for word in [
            "Linear", "ModDrop", "segments", "tensors", "matrix", "weights", "macs", "sha256",
            "level_in", "gather",
        ] {
            assert!(!text.contains(word), "{m}: client plan mentions `{word}`");
        }
        let plan: ServerPlan =
            ron::from_str(&std::fs::read_to_string(c.server_path()).expect("read")).expect("parse");
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
                assert!(!text.contains(&format!("\"{}\"", he.name)));
            }
        }
        assert!(linear_names > 0);
        assert_eq!(
            file.plan, plan.public,
            "{m}: client plan differs from the server's public part"
        );
    }
}

#[test]
fn insecure_parameters_are_refused_by_both_parties() {
    let tiny = tiny_batch();
    let dir = tiny.dir.path();
    let m = "tiny";
    let tmp_dir = tempfile::TempDir::new().expect("tmpdir");
    let tmp = tmp_dir.path();
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
}

/// Extreme values in an edited plan (hash recomputed) must be refused, not overflow.
#[test]
fn extreme_sigma_and_flooding_are_refused_without_overflow() {
    let tiny = tiny_batch();
    let text = std::fs::read_to_string(tiny.client_path()).expect("read");
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
