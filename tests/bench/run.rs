//! The benchmark behind `mp2ml-bench`: MP2ML Table 2 (ReLU with Yao, CKKS ADD/MULT), Table 3
//! (CryptoNets-ReLU: accuracy, latency, throughput, bytes, memory) for every bundled model, and
//! the plaintext baseline (tract), written as `docs/BENCHMARKS.md` with SVG plots.
//!
//! Both parties run in this process over loopback TCP (`mp2ml_runtime::local::run_local`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mp2ml_compiler::driver::{compile_graph, Options};
use mp2ml_compiler::onnx::{import_file, ImportOptions};
use mp2ml_compiler::plan_writer::write_all;
use mp2ml_ir::circuit::activations::{relu, CircuitParams};
use mp2ml_mpc::{ChannelConfig, Evaluator, Garbler, MpcError, PhaseReport, TcpChannel};
use mp2ml_runtime::client::Batch;
use mp2ml_runtime::local::run_local;
use mp2ml_runtime::plan::{load_server, ServerSetup};
use mp2ml_runtime::report::SessionReport;
use mp2ml_runtime::session::SessionOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::plots;

/// Marker above the sections written by hand (engine engineers' microbenchmarks). Everything
/// below it in an existing page is kept verbatim; everything above it is regenerated.
pub const MARKER: &str =
    "<!-- mp2ml-bench: everything below this line is kept verbatim when the page is regenerated -->";

/// Default AND gates per secure session (`--budget-ands`): about 2 minutes of garbling on two
/// cores, which keeps the full four-model run near 15 minutes.
pub const DEFAULT_BUDGET_ANDS: f64 = 1e9;

/// Result type of the bench.
pub type BenchResult<T> = Result<T, String>;

/// Settings of a run (the binary's flags).
#[derive(Clone, Debug)]
pub struct Opts {
    /// Short run for the smoke test: `tiny` only, few repeats, small ReLU counts.
    pub quick: bool,
    /// Repeats of each timed figure.
    pub repeats: usize,
    /// The Markdown page to (re)write.
    pub out: PathBuf,
    /// Folder for the SVG plots.
    pub plots: PathBuf,
    /// Folder with the bundled models and test digits.
    pub models_dir: PathBuf,
    /// Scratch folder for compiled plans.
    pub work: PathBuf,
    /// Models to run (file stems in `models_dir`); empty = all bundled (or `tiny` if quick).
    pub models: Vec<String>,
    /// Extra CryptoNets batch sizes beyond the test set (digits tiled; one session each).
    pub tiles: Vec<usize>,
    /// The command line, written into the page.
    pub command: String,
    /// AND gates per secure session: a model uses only the first ⌊budget / AND per image⌋ test
    /// digits, and batch sizes above the budget are skipped.
    pub budget_ands: f64,
    /// A batch size stops repeating once its sessions have taken this many seconds in total.
    pub batch_seconds: f64,
    /// The `mp2ml-run` binary for the two-process (per-party memory) sessions; `None` = next
    /// to the current executable (or its parent folder, for test executables in `deps/`).
    pub runner: Option<PathBuf>,
}

impl Opts {
    /// Defaults relative to a workspace root.
    pub fn new(root: &Path) -> Opts {
        Opts {
            quick: false,
            repeats: 3,
            out: root.join("docs/BENCHMARKS.md"),
            plots: root.join("docs"),
            models_dir: root.join("models"),
            work: std::env::temp_dir().join(format!("mp2ml-bench-{}", std::process::id())),
            models: Vec::new(),
            tiles: vec![4096],
            command: "bash scripts/bench.sh".into(),
            budget_ands: DEFAULT_BUDGET_ANDS,
            batch_seconds: 60.0,
            runner: None,
        }
    }
}

/// Median and spread of repeated measurements.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    /// Median.
    pub med: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Samples.
    pub n: usize,
}

impl Stat {
    /// Median, min and max of `v` (empty: NaN).
    pub fn of(v: &[f64]) -> Stat {
        if v.is_empty() {
            return Stat {
                med: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                n: 0,
            };
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let k = s.len();
        let med = if k % 2 == 1 {
            s[k / 2]
        } else {
            (s[k / 2 - 1] + s[k / 2]) / 2.0
        };
        Stat {
            med,
            min: s[0],
            max: s[k - 1],
            n: k,
        }
    }

    /// `median (min–max)` with `f` applied to each, e.g. for units.
    fn show(&self, digits: usize, scale: f64) -> String {
        if self.n <= 1 {
            format!("{:.*}", digits, self.med * scale)
        } else {
            format!(
                "{:.*} ({:.*}–{:.*})",
                digits,
                self.med * scale,
                digits,
                self.min * scale,
                digits,
                self.max * scale
            )
        }
    }
}

/// The machine and its load.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// `/proc/loadavg` (1, 5, 15 min) at the start.
    pub load_start: String,
    /// `/proc/loadavg` at the end.
    pub load_end: String,
    /// Git commit of the tree measured (with `-dirty` if modified).
    pub commit: String,
    /// UTC date of the run.
    pub date: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cmd_out(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mut commit = cmd_out("git", &["rev-parse", "--short", "HEAD"]);
    if !cmd_out("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str("-dirty");
    }
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_start: loadavg(),
        load_end: String::new(),
        commit,
        date: cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

/// Resets the process's peak RSS (Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of this process (VmHWM) in MB (10^6 bytes).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

// ---------------------------------------------------------------------------------------------
// Table 2: ReLU with Yao (production circuit), CKKS ADD and MULT.

/// One Table 2 ReLU row.
#[derive(Clone, Debug, Default)]
pub struct ReluRow {
    /// ReLUs per session.
    pub n: usize,
    /// Offline seconds (slower party).
    pub offline_s: Stat,
    /// Online seconds (slower party).
    pub online_s: Stat,
    /// Offline MB, both directions.
    pub offline_mb: Stat,
    /// Online MB, both directions.
    pub online_mb: Stat,
}

/// Table 2 figures.
#[derive(Clone, Debug, Default)]
pub struct Table2 {
    /// q0 of the share circuit.
    pub q0: u64,
    /// Where q0 came from.
    pub q0_from: String,
    /// AND gates per ReLU.
    pub ands: u64,
    /// Garbler / evaluator input bits and output bits per ReLU.
    pub bits: (usize, usize, usize),
    /// Rows.
    pub relu: Vec<ReluRow>,
    /// CKKS add, seconds per ciphertext.
    pub add_s: Stat,
    /// CKKS ciphertext × scalar, seconds per ciphertext.
    pub mul_s: Stat,
    /// The 54-bit prime.
    pub prime: u64,
}

fn tcp_pair() -> BenchResult<(TcpChannel, TcpChannel)> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let t = std::thread::spawn(move || TcpChannel::connect(addr, ChannelConfig::default()));
    let server =
        TcpChannel::accept(&listener, ChannelConfig::default()).map_err(|e| e.to_string())?;
    let client = t
        .join()
        .map_err(|_| "connect thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((server, client))
}

/// One fresh Yao session (base OTs included) of `n` production ReLUs, checked against the
/// plain formula. Returns (offline s, online s, offline MB, online MB).
fn relu_once(p: &CircuitParams, n: usize, seed: u64) -> BenchResult<(f64, f64, f64, f64)> {
    let sc = relu(p);
    let w = sc.share_bits;
    let mask_bits = sc.mask_bits;
    let z_bits = sc.z_bits() as usize;
    let q0 = u128::from(p.q0);
    let half = q0 / 2;
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut g, mut e, mut want) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let a = rng.random_range(0..q0);
        let b = rng.random_range(0..q0);
        let r = rng.random_range(0..1u128 << mask_bits);
        g.extend(mp2ml_ir::circuit::to_bits(b, w));
        g.extend(mp2ml_ir::circuit::to_bits(r, mask_bits));
        e.extend(mp2ml_ir::circuit::to_bits(a, w));
        let v = (a + b) % q0;
        want.push(if v <= half { v } else { 0 } + r);
    }
    let (gch, ech) = tcp_pair()?;
    let c = sc.circuit.clone();
    let server = std::thread::spawn(move || -> Result<Vec<PhaseReport>, MpcError> {
        let mut garbler = Garbler::from_os_rng(gch)?;
        let h = garbler.offline(&c, n, &g)?;
        garbler.online(h)?;
        Ok(garbler.reports().to_vec())
    });
    let mut ev = Evaluator::from_os_rng(ech).map_err(|e| e.to_string())?;
    let h = ev.offline(&sc.circuit, n).map_err(|e| e.to_string())?;
    let out = ev.online(h, &e).map_err(|e| e.to_string())?;
    let gr = server
        .join()
        .map_err(|_| "garbler thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let per = out.len() / n.max(1);
    let got: Vec<u128> = out
        .chunks(per.max(1))
        .map(|c| mp2ml_ir::circuit::from_bits(&c[..z_bits.min(c.len())]))
        .collect();
    if got != want {
        return Err("production ReLU circuit: outputs differ from max(x, 0) + r".into());
    }
    let er = ev.reports();
    let (Some(g0), Some(g1), Some(e0), Some(e1)) = (gr.first(), gr.get(1), er.first(), er.get(1))
    else {
        return Err("missing phase reports".into());
    };
    let secs = |a: &PhaseReport, b: &PhaseReport| a.elapsed.max(b.elapsed).as_secs_f64();
    let mb = |r: &PhaseReport| (r.sent + r.received) as f64 / 1e6;
    Ok((secs(g0, e0), secs(g1, e1), mb(e0), mb(e1)))
}

/// Per-call time of `f`: `reps` samples, each the mean over a ≥ 20 ms batch.
fn per_call<T>(reps: usize, mut f: impl FnMut() -> T) -> Stat {
    std::hint::black_box(f());
    let mut v = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let mut iters = 0u32;
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(f());
            iters += 1;
        }
        v.push(start.elapsed().as_secs_f64() / f64::from(iters));
    }
    Stat::of(&v)
}

fn ckks_add_mul(reps: usize) -> BenchResult<(Stat, Stat, u64)> {
    use mp2ml_ckks::{ntt_primes, Params, PublicKey, SecretKey, SecurityLevel};
    let n = 2048;
    let prime = ntt_primes(54, n, 1, &[]).map_err(|e| e.to_string())?[0];
    let params: Arc<Params> =
        Params::new_secure(n, &[prime], SecurityLevel::Bits128).map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(7);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    let m: Vec<i64> = (0..n)
        .map(|_| rng.random_range(-(1 << 30)..(1 << 30)))
        .collect();
    let ct = pk.encrypt(&m, 0, &mut rng).map_err(|e| e.to_string())?;
    let ct2 = pk.encrypt(&m, 0, &mut rng).map_err(|e| e.to_string())?;
    let mut acc = ct.clone();
    let add = per_call(reps, || {
        let _ = acc.add_assign(&ct2);
    });
    let mut acc = ct.clone();
    let mul = per_call(reps, || acc.mul_scalar_assign(-123_456_789));
    Ok((add, mul, prime))
}

fn table2(opts: &Opts, q0: u64, q0_from: &str) -> BenchResult<Table2> {
    let p = CircuitParams {
        q0,
        sigma: 40,
        style: Default::default(),
    };
    let sc = relu(&p);
    let counts: &[usize] = if opts.quick { &[100] } else { &[1000, 2048] };
    let mut rows = Vec::new();
    for &n in counts {
        relu_once(&p, n, 0)?; // warm-up
        let mut s = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for r in 0..opts.repeats {
            let (a, b, c, d) = relu_once(&p, n, r as u64 + 1)?;
            for (v, x) in s.iter_mut().zip([a, b, c, d]) {
                v.push(x);
            }
        }
        rows.push(ReluRow {
            n,
            offline_s: Stat::of(&s[0]),
            online_s: Stat::of(&s[1]),
            offline_mb: Stat::of(&s[2]),
            online_mb: Stat::of(&s[3]),
        });
        eprintln!("[bench] ReLU x{n}: done");
    }
    let (add_s, mul_s, prime) = ckks_add_mul(opts.repeats.max(3))?;
    let st = sc.circuit.stats();
    let g_bits = (sc.values_in * sc.share_bits + sc.values_out * sc.mask_bits) as usize;
    let e_bits = (sc.values_in * sc.share_bits) as usize;
    Ok(Table2 {
        q0,
        q0_from: q0_from.into(),
        ands: st.and,
        bits: (g_bits, e_bits, (sc.values_out * sc.z_bits()) as usize),
        relu: rows,
        add_s,
        mul_s,
        prime,
    })
}

// ---------------------------------------------------------------------------------------------
// Models: secure runs and the plaintext baseline.

/// One secure run's figures.
#[derive(Clone, Debug)]
pub struct RunFig {
    /// Wall seconds of `run_local`.
    pub seconds: f64,
    /// Bytes both directions (client's counters).
    pub bytes: u64,
    /// Peak RSS of the process during the run, MB (both parties).
    pub peak_mb: f64,
    /// Server's report.
    pub server: SessionReport,
    /// Client's report.
    pub client: SessionReport,
}

/// Throughput at one batch size.
#[derive(Clone, Debug)]
pub struct BatchFig {
    /// Images per session.
    pub batch: usize,
    /// Wall seconds per session.
    pub seconds: Stat,
    /// Images per second (batch / median seconds).
    pub images_per_s: f64,
    /// Bytes per image (both directions).
    pub bytes_per_image: f64,
    /// Peak RSS (max over repeats), MB.
    pub peak_mb: f64,
    /// Ciphertext groups.
    pub groups: usize,
}

/// Per-party figures of one two-process session (`mp2ml-run --role server` and `--role client`
/// as two processes over loopback TCP).
#[derive(Clone, Debug)]
pub struct PartyMem {
    /// Server's peak resident memory (VmHWM), bytes.
    pub server_bytes: Option<u64>,
    /// Client's peak resident memory (VmHWM), bytes.
    pub client_bytes: Option<u64>,
    /// Client's wall seconds of the session (connect to output).
    pub seconds: f64,
    /// Client's online seconds (its steps of phase `online`).
    pub online_s: f64,
}

/// A two-process session at one batch size, or why it did not run.
#[derive(Clone, Debug)]
pub struct PartyMemRun {
    /// Images asked for.
    pub batch: usize,
    /// The figures, or the reason they are missing.
    pub result: Result<PartyMem, String>,
}

/// Plaintext (tract) figures.
#[derive(Clone, Debug, Default)]
pub struct Plain {
    /// Accuracy on the test digits.
    pub accuracy: f64,
    /// Seconds per image at batch 1.
    pub latency_s: Stat,
    /// Images per second at batch 1000.
    pub images_per_s: f64,
    /// Batch of that figure.
    pub batch: usize,
}

/// Everything about one model.
#[derive(Clone, Debug)]
pub struct ModelFig {
    /// Model name.
    pub name: String,
    /// Ring dimension, moduli bits, security.
    pub params: String,
    /// N.
    pub n: usize,
    /// AND gates per image.
    pub ands_per_image: u64,
    /// Compile seconds.
    pub compile_s: f64,
    /// Secure accuracy on the test digits (argmax vs. labels).
    pub accuracy: f64,
    /// Images the accuracy (and the plaintext baseline) is over: the first `images` test digits.
    pub images: usize,
    /// Test digits available.
    pub test_digits: usize,
    /// Why only the first `images` digits: `AND-gate budget`, `quick mode` (empty: all).
    pub digits_why: String,
    /// Agreement of secure and plaintext predicted classes.
    pub agreement: f64,
    /// Batch-1 latency (seconds per session).
    pub latency_s: Stat,
    /// Online part of the batch-1 latency: the client's steps of phase `online`.
    pub latency_online_s: Stat,
    /// A batch-1 run (for the time split).
    pub b1: RunFig,
    /// A best-batch run (for the time split).
    pub best: RunFig,
    /// Throughput per batch size.
    pub batches: Vec<BatchFig>,
    /// Plaintext baseline.
    pub plain: Plain,
    /// Per-party peak memory: two-process sessions at batch 1 and at the largest batch.
    pub party_mem: Vec<PartyMemRun>,
}

impl ModelFig {
    /// The batch with the highest throughput.
    pub fn best_batch(&self) -> Option<&BatchFig> {
        self.batches
            .iter()
            .max_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s))
    }
}

fn compile_model(onnx: &Path, work: &Path) -> BenchResult<(PathBuf, f64)> {
    compile_model_for(onnx, work, &Default::default())
}

/// CryptoNets-ReLU compiled for `network` into `work` (for the GMW/Yao comparison).
pub fn compile_for(work: &Path, network: &mp2ml_ir::plan::NetworkProfile) -> BenchResult<PathBuf> {
    let onnx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cryptonets_relu.onnx");
    let dir = work.join(format!("{}ms_{}mbit", network.rtt_ms, network.mbit_s));
    Ok(compile_model_for(&onnx, &dir, network)?.0)
}

/// The bundled MNIST test digits (values) and labels.
pub fn test_digits(models: &Path) -> BenchResult<(Vec<f32>, Vec<i64>)> {
    let (_, x) = mp2ml_runtime::npy::read_f32(&models.join("mnist_test_x.npy"))
        .map_err(|e| e.to_string())?;
    let y = mp2ml_runtime::npy::read_labels(&models.join("mnist_test_y.npy"))
        .map_err(|e| e.to_string())?;
    Ok((x, y))
}

fn compile_model_for(
    onnx: &Path,
    work: &Path,
    network: &mp2ml_ir::plan::NetworkProfile,
) -> BenchResult<(PathBuf, f64)> {
    let name = onnx
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let start = Instant::now();
    let imported = import_file(onnx, &ImportOptions::default()).map_err(|d| format!("{d}"))?;
    let weights = format!("{name}.weights.bin");
    // Calibrated on the bundled training digits (not the test digits), as the demo does.
    let calib = onnx.with_file_name("mnist_calib.npy");
    let options = Options {
        calibration: calib.exists().then_some(calib),
        network: *network,
        ..Options::default()
    };
    let out = compile_graph(&imported.graph, &name, &weights, &options)
        .map_err(|e| e.render(&onnx.display().to_string(), &imported.listing))?;
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let plan = work.join(format!("{name}.ron"));
    write_all(&out.compiled, &plan).map_err(|e| format!("{e:?}"))?;
    Ok((plan, start.elapsed().as_secs_f64()))
}

/// The first `count` digits, tiled when `count` exceeds the test set.
fn tile(x: &[f32], per: usize, count: usize) -> Batch {
    let have = x.len() / per;
    let mut data = Vec::with_capacity(count * per);
    for i in 0..count {
        let j = i % have;
        data.extend_from_slice(&x[j * per..(j + 1) * per]);
    }
    Batch {
        images: count,
        data,
    }
}

fn secure_run(setup: &ServerSetup, batch: &Batch) -> BenchResult<(RunFig, Vec<usize>)> {
    let opts = SessionOptions {
        timeout: Duration::from_secs(600),
        ..SessionOptions::default()
    };
    let reset = reset_peak_rss();
    let start = Instant::now();
    let (out, crep, srep) = run_local(setup, batch, &opts).map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let peak_mb = if reset { peak_rss_mb() } else { f64::NAN };
    Ok((
        RunFig {
            seconds,
            bytes: crep.bytes(None),
            peak_mb,
            server: srep,
            client: crep,
        },
        out.classes,
    ))
}

// ---------------------------------------------------------------------------------------------
// Per-party memory: one session as two `mp2ml-run` processes over loopback TCP.

/// The `mp2ml-run` binary: `opts.runner`, else next to the current executable, else in its
/// parent folder (test executables live in `target/<profile>/deps/`).
pub fn find_runner(opts: &Opts) -> Result<PathBuf, String> {
    if let Some(p) = &opts.runner {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(format!("`{}` does not exist", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let dir = exe.parent().ok_or("current executable has no folder")?;
    let name = format!("mp2ml-run{}", std::env::consts::EXE_SUFFIX);
    let mut tried = vec![dir.join(&name)];
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent() {
            tried.push(up.join(&name));
        }
    }
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let shown: Vec<String> = tried.iter().map(|p| format!("`{}`", p.display())).collect();
    Err(format!(
        "`mp2ml-run` not found ({}); build it with `cargo build --release -p mp2ml-runtime --bin mp2ml-run`",
        shown.join(", ")
    ))
}

/// A child process killed and reaped when dropped (whatever path leaves the caller).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Reads a pipe to its end in a thread, line by line, forwarding each line.
fn pump(
    pipe: impl std::io::Read + Send + 'static,
    tx: std::sync::mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    })
}

/// The last lines of a process's output, for an error message.
fn tail(lines: &[String]) -> String {
    let k = lines.len().saturating_sub(3);
    if lines.is_empty() {
        "(no output)".into()
    } else {
        lines[k..].join(" / ")
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A started server: the child, its port, its stdout lines and its stderr lines (both still
/// arriving).
type ServerChild = (
    Reaped,
    u16,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Receiver<String>,
);

/// Starts `mp2ml-run --role server` for one session and waits until it listens; retries with
/// another port when the listen fails.
fn start_server(runner: &Path, plan: &Path) -> Result<ServerChild, String> {
    use std::process::{Command, Stdio};
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let mut child = Command::new(runner)
            .arg("--role")
            .arg("server")
            .arg(plan)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--sessions", "1", "--json", "--timeout", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", runner.display()))?;
        let (otx, orx) = channel();
        let (etx, erx) = channel();
        let out = child.stdout.take();
        let err = child.stderr.take();
        let child = Reaped(child);
        if let (Some(o), Some(e)) = (out, err) {
            pump(o, otx);
            pump(e, etx);
        } else {
            return Err("server: no pipes".into());
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut seen = Vec::new();
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match erx.recv_timeout(wait) {
                Ok(line) if line.contains("serving") => return Ok((child, port, orx, erx)),
                Ok(line) => seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "server did not listen within 300 s: {}",
                        tail(&seen)
                    ))
                }
                // The server exited before listening.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        last = tail(&seen);
        if !last.contains("cannot listen") {
            return Err(format!("server failed before listening: {last}"));
        }
        // Port taken between our probe and the server's bind: another port.
    }
    Err(format!("server could not listen (5 ports tried): {last}"))
}

fn json_u64(v: &serde_json::Value, key: &str) -> Option<u64> {
    v.get(key).and_then(serde_json::Value::as_u64)
}

/// One session at `batch` images as two processes: the server and the client `mp2ml-run`, each
/// reporting its own peak resident memory in its `--json` summary.
fn two_process(
    runner: &Path,
    plan: &Path,
    x: &[f32],
    per: usize,
    shape: &[usize],
    batch: usize,
) -> Result<PartyMem, String> {
    use std::process::{Command, Stdio};
    let b = tile(x, per, batch);
    let client_plan = plan.with_extension("client.ron");
    let input = plan.with_extension(format!("b{batch}.npy"));
    let mut dims = vec![batch];
    dims.extend(shape);
    mp2ml_runtime::npy::write_f32(&input, &dims, &b.data).map_err(|e| e.to_string())?;
    let (server, port, orx, erx) = start_server(runner, plan)?;
    let out = Command::new(runner)
        .arg("--role")
        .arg("client")
        .arg(&client_plan)
        .arg("--connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--input")
        .arg(&input)
        .args(["--json", "--timeout", "600"])
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_file(&input);
    let out = out.map_err(|e| format!("cannot start the client: {e}"))?;
    if !out.status.success() {
        drop(server); // kills the server
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<String> = err.lines().map(String::from).collect();
        let srv: Vec<String> = erx.try_iter().collect();
        return Err(format!(
            "client failed ({}): {}; server: {}",
            out.status,
            tail(&lines),
            tail(&srv)
        ));
    }
    let client: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("client's JSON summary: {e}"))?;
    // The server prints one JSON line per session, then exits (`--sessions 1`).
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match server.0.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    drop(server);
    let lines: Vec<String> = orx.iter().collect();
    let srv_json = lines
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let server_bytes = srv_json
        .as_ref()
        .and_then(|v| json_u64(v, "peak_rss_bytes"));
    if srv_json.is_none() {
        let err: Vec<String> = erx.try_iter().collect();
        return Err(format!(
            "server printed no JSON summary (exit {}): {}",
            status.map_or("killed after 120 s".into(), |s| s.to_string()),
            tail(&err)
        ));
    }
    let images = json_u64(&client, "images").unwrap_or(0) as usize;
    if images != batch {
        return Err(format!("client processed {images} images, not {batch}"));
    }
    Ok(PartyMem {
        server_bytes,
        client_bytes: json_u64(&client, "peak_rss_bytes"),
        seconds: client
            .get("seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN),
        online_s: client
            .pointer("/online/seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN),
    })
}

fn tract_plain(
    model_path: &Path,
    x: &[f32],
    per: usize,
    shape: &[usize],
    labels: &[i64],
    opts: &Opts,
) -> BenchResult<Plain> {
    use tract_onnx::prelude::*;
    let te = |e: TractError| format!("tract: {e:?}");
    let build = |b: usize| -> BenchResult<_> {
        let mut fact = vec![b];
        fact.extend(shape);
        tract_onnx::onnx()
            .model_for_path(model_path)
            .and_then(|m| m.with_input_fact(0, f32::fact(&fact).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(te)
    };
    let images = x.len() / per;
    let one = build(1)?;
    let mut fact1 = vec![1usize];
    fact1.extend(shape);
    let mut correct = 0usize;
    let mut lat = Vec::new();
    let mut classes = Vec::new();
    for (i, img) in x.chunks(per).enumerate() {
        let t = Tensor::from_shape(&fact1, img).map_err(te)?;
        let s = Instant::now();
        let r = one.run(tvec!(t.into())).map_err(te)?;
        lat.push(s.elapsed().as_secs_f64());
        let v: Vec<f32> = r[0]
            .to_plain_array_view::<f32>()
            .map_err(te)?
            .iter()
            .copied()
            .collect();
        let c = argmax(&v);
        classes.push(c);
        if labels.get(i).is_some_and(|&l| l == c as i64) {
            correct += 1;
        }
    }
    let batch = images;
    let big = build(batch)?;
    let mut fact = vec![batch];
    fact.extend(shape);
    let t = Tensor::from_shape(&fact, &x[..batch * per]).map_err(te)?;
    let mut tp = Vec::new();
    for _ in 0..opts.repeats.max(3) {
        let s = Instant::now();
        big.run(tvec!(t.clone().into())).map_err(te)?;
        tp.push(s.elapsed().as_secs_f64());
    }
    Ok(Plain {
        accuracy: correct as f64 / images.max(1) as f64,
        latency_s: Stat::of(&lat),
        images_per_s: batch as f64 / Stat::of(&tp).med,
        batch,
    })
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

fn plain_classes(
    model_path: &Path,
    x: &[f32],
    per: usize,
    shape: &[usize],
) -> BenchResult<Vec<usize>> {
    use tract_onnx::prelude::*;
    let te = |e: TractError| format!("tract: {e:?}");
    let b = x.len() / per;
    let mut fact = vec![b];
    fact.extend(shape);
    let m = tract_onnx::onnx()
        .model_for_path(model_path)
        .and_then(|m| m.with_input_fact(0, f32::fact(&fact).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(te)?;
    let t = Tensor::from_shape(&fact, x).map_err(te)?;
    let r = m.run(tvec!(t.into())).map_err(te)?;
    let v: Vec<f32> = r[0]
        .to_plain_array_view::<f32>()
        .map_err(te)?
        .iter()
        .copied()
        .collect();
    Ok(v.chunks(v.len() / b.max(1)).map(argmax).collect())
}

fn bench_model(opts: &Opts, name: &str, x: &[f32], labels: &[i64]) -> BenchResult<ModelFig> {
    let onnx = opts.models_dir.join(format!("{name}.onnx"));
    let (plan, compile_s) = compile_model(&onnx, &opts.work)?;
    let setup = load_server(&plan, 128).map_err(|e| e.to_string())?;
    let shape = setup.plan.public.input.shape.clone();
    let per: usize = shape.iter().product();
    let n = setup.params.n();
    let cp = &setup.plan.public.params;
    let bits: Vec<String> = cp
        .moduli
        .iter()
        .map(|&q| (64 - q.leading_zeros()).to_string())
        .collect();
    let params = format!(
        "N={} log q={} ({}-bit security)",
        n,
        bits.join("+"),
        cp.security_bits
    );
    let ands_per_image: u64 = setup
        .plan
        .public
        .mpc_steps
        .iter()
        .map(|s| {
            setup
                .plan
                .public
                .circuits
                .get(s.circuit)
                .map_or(0, |c| c.circuit.stats().and)
                * s.instances as u64
        })
        .sum();
    let total = x.len() / per;
    let plan_b = plan_batches(opts, name, total, n, ands_per_image);
    let images = plan_b.images;
    let xs = &x[..images * per];
    let sizes = plan_b.sizes.clone();
    eprintln!(
        "[bench] {name}: {ands_per_image} AND/image; {images} of {total} digits; batches {sizes:?}"
    );

    // Throughput against batch size. Batch 1 is also the latency (a different digit each
    // repeat); the first session over all `images` digits gives the accuracy.
    let mut batches = Vec::new();
    let mut best_run: Option<RunFig> = None;
    let mut b1: Option<RunFig> = None;
    let mut lat = Vec::new();
    let mut lat_online = Vec::new();
    let mut classes: Vec<usize> = Vec::new();
    // Warm-up. A slow one (a model with a large fixed cost per session) is also the first
    // batch-1 run: first-session effects are negligible beside it.
    let warm = secure_run(&setup, &tile(xs, per, 1))?;
    let mut warm = (warm.0.seconds > WARM_COUNTS_S).then_some(warm);
    for &b in &sizes {
        let reps = if b > images {
            1
        } else if b >= 1000 {
            opts.repeats.clamp(1, 3)
        } else {
            opts.repeats
        };
        let mut secs = Vec::new();
        let mut bytes = 0u64;
        let mut peak = 0f64;
        let mut groups = 0;
        let mut first = None;
        for r in 0..reps {
            let (f, cls) = match warm.take_if(|_| b == 1) {
                Some(w) => w,
                None if b == 1 => secure_run(&setup, &tile(&xs[(r % images) * per..], per, 1))?,
                None => secure_run(&setup, &tile(xs, per, b))?,
            };
            if b == images && classes.is_empty() {
                classes = cls;
            }
            if b == 1 {
                lat.push(f.seconds);
                lat_online.push(f.client.seconds(Some("online")));
                b1.get_or_insert(f.clone());
            }
            secs.push(f.seconds);
            bytes = f.bytes;
            peak = peak.max(f.peak_mb);
            groups = f.server.groups;
            first.get_or_insert(f);
            // Enough of this batch size: at least one run, stop once past the time budget.
            if secs.iter().sum::<f64>() > opts.batch_seconds {
                break;
            }
        }
        let st = Stat::of(&secs);
        let ips = b as f64 / st.med;
        if best_run
            .as_ref()
            .is_none_or(|r| (r.server.images as f64 / r.seconds) < ips)
        {
            best_run = first;
        }
        batches.push(BatchFig {
            batch: b,
            seconds: st,
            images_per_s: ips,
            bytes_per_image: bytes as f64 / b as f64,
            peak_mb: peak,
            groups,
        });
        eprintln!(
            "[bench] {name}: batch {b}: {ips:.1} images/s ({} runs, {:.1} s)",
            st.n,
            secs.iter().sum::<f64>()
        );
    }
    let best = best_run.ok_or("no batches")?;
    let b1 = b1.ok_or("no batch-1 session")?;
    let correct = classes
        .iter()
        .zip(labels)
        .filter(|(&c, &l)| c as i64 == l)
        .count();
    let plain_cls = plain_classes(&onnx, xs, per, &shape)?;
    let agree = classes
        .iter()
        .zip(&plain_cls)
        .filter(|(a, b)| a == b)
        .count();
    eprintln!(
        "[bench] {name}: accuracy {:.2}% over {images}",
        100.0 * correct as f64 / images as f64
    );
    let plain = tract_plain(&onnx, xs, per, &shape, labels, opts)?;

    // Per-party peak memory: two processes, at batch 1 and at the largest batch whose session
    // fits the time limit. The server setup is dropped first (its memory back to the system).
    drop(setup);
    let mut party_mem = Vec::new();
    let big = mem_batch(&batches, plan_b.mem_batch, opts.batch_seconds);
    let mem_batches: Vec<usize> = [1, big]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for b in mem_batches {
        let result =
            find_runner(opts).and_then(|runner| two_process(&runner, &plan, xs, per, &shape, b));
        match &result {
            Ok(m) => eprintln!(
                "[bench] {name}: two processes, batch {b}: server {:.0} MB, client {:.0} MB, {:.2} s",
                m.server_bytes.map_or(f64::NAN, |v| v as f64 / 1e6),
                m.client_bytes.map_or(f64::NAN, |v| v as f64 / 1e6),
                m.seconds
            ),
            Err(e) => eprintln!("[bench] {name}: two processes, batch {b}: {e}"),
        }
        party_mem.push(PartyMemRun { batch: b, result });
    }
    Ok(ModelFig {
        name: name.into(),
        params,
        n,
        ands_per_image,
        compile_s,
        accuracy: correct as f64 / images as f64,
        images,
        test_digits: total,
        digits_why: plan_b.why.clone(),
        agreement: agree as f64 / images as f64,
        latency_s: Stat::of(&lat),
        latency_online_s: Stat::of(&lat_online),
        b1,
        best,
        batches,
        plain,
        party_mem,
    })
}

/// A warm-up session slower than this counts as the first batch-1 run.
const WARM_COUNTS_S: f64 = 5.0;

/// The batch of the second two-process session: the largest batch ≤ `cap` whose one-process
/// session took at most `limit_s` (median), or, when the largest took longer, the largest power
/// of two whose time, predicted linearly between the batch-1 and the largest session, fits.
pub fn mem_batch(batches: &[BatchFig], cap: usize, limit_s: f64) -> usize {
    let within: Vec<&BatchFig> = batches.iter().filter(|b| b.batch <= cap).collect();
    let Some(largest) = within.iter().max_by_key(|b| b.batch) else {
        return 1;
    };
    if largest.seconds.med <= limit_s {
        return largest.batch;
    }
    let measured = within
        .iter()
        .filter(|b| b.seconds.med <= limit_s)
        .map(|b| b.batch)
        .max()
        .unwrap_or(1);
    let t1 = within
        .iter()
        .find(|b| b.batch == 1)
        .map_or(0.0, |b| b.seconds.med);
    let slope = (largest.seconds.med - t1) / (largest.batch.max(2) - 1) as f64;
    let mut p = 1usize;
    while p * 2 < largest.batch && t1 + slope * (p * 2 - 1) as f64 <= limit_s {
        p *= 2;
    }
    measured.max(p)
}

/// What a model runs under the AND-gate budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Test digits used (accuracy, throughput, plaintext baseline): the first `images`.
    pub images: usize,
    /// Batch sizes of the throughput sessions, ascending; 1 and `images` always.
    pub sizes: Vec<usize>,
    /// The largest batch of the two-process (per-party memory) session.
    pub mem_batch: usize,
    /// Why `images` is below the test set: `AND-gate budget`, `quick mode`, or empty.
    pub why: String,
}

/// Digits, batch sizes and the two-process batch of a model with `ands` AND gates per image,
/// `total` test digits and ring dimension `n`, under `opts.budget_ands` AND gates per session:
/// the first ⌊budget / ands⌋ digits (all if they fit); intermediate batches 16, 64, 256 only
/// when one session costs at most a sixteenth of the budget; CryptoNets' tiled batches (beyond the
/// test set, up to N) when within the budget.
pub fn plan_batches(opts: &Opts, name: &str, total: usize, n: usize, ands: u64) -> BatchPlan {
    let budget = opts.budget_ands.max(1.0);
    let cost = |b: usize| b as f64 * ands as f64;
    let fit = if ands == 0 {
        total
    } else {
        ((budget / ands as f64).floor() as usize).max(1)
    };
    let cap = if opts.quick { 200 } else { total };
    let images = total.min(fit).min(cap).max(1);
    let mids: &[usize] = if opts.quick { &[16] } else { &[16, 64, 256] };
    let mut sizes = vec![1, images];
    sizes.extend(
        mids.iter()
            .copied()
            .filter(|&b| b < images && cost(b) <= budget / 16.0),
    );
    if !opts.quick && name == "cryptonets_relu" {
        // Beyond the test set (digits tiled), up to one full ciphertext group of N images.
        sizes.extend(
            opts.tiles
                .iter()
                .copied()
                .filter(|&t| t > images && t <= n && cost(t) <= budget),
        );
    }
    sizes.sort_unstable();
    sizes.dedup();
    let mem_batch = sizes
        .iter()
        .copied()
        .filter(|&b| cost(b) <= budget)
        .max()
        .unwrap_or(1);
    let why = if images >= total {
        String::new()
    } else if fit < total && fit <= cap {
        "AND-gate budget".into()
    } else {
        "quick mode".into()
    };
    BatchPlan {
        images,
        sizes,
        mem_batch,
        why,
    }
}

// ---------------------------------------------------------------------------------------------
// The page.

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Results {
    /// Machine and load.
    pub machine: Machine,
    /// Table 2.
    pub table2: Table2,
    /// Per model.
    pub models: Vec<ModelFig>,
    /// Wall seconds of the whole bench.
    pub seconds: f64,
    /// Plots written (paths relative to the page's folder).
    pub plots: Vec<String>,
    /// The `mp2ml-run` binary of the two-process sessions, or why there is none.
    pub runner: Result<PathBuf, String>,
}

fn ratio(a: f64, b: f64) -> String {
    if !(a.is_finite() && b.is_finite()) || b == 0.0 {
        return "–".into();
    }
    let r = a / b;
    if r > 0.0 && r < 0.1 {
        return format!("1/{:.0}", 1.0 / r);
    }
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

fn ms(s: &Stat) -> String {
    s.show(1, 1e3)
}

fn secs(x: f64) -> String {
    if x >= 1.0 {
        format!("{x:.2} s")
    } else if x >= 1e-3 {
        format!("{:.1} ms", x * 1e3)
    } else {
        format!("{:.0} µs", x * 1e6)
    }
}

fn mb(bytes: f64) -> String {
    format!("{:.2} MB", bytes / 1e6)
}

fn opt_mb(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{:.0}", b as f64 / 1e6))
}

/// `1.5e9` style, for the budget.
fn sci(x: f64) -> String {
    let e = x.abs().log10().floor();
    if !e.is_finite() || e < 4.0 {
        return format!("{x:.0}");
    }
    let m = x / 10f64.powf(e);
    let m = format!("{m:.2}");
    let m = m.trim_end_matches('0').trim_end_matches('.');
    format!("{m}e{e:.0}")
}

fn runs(n: usize) -> String {
    if n == 1 {
        "1 run".into()
    } else {
        format!("{n} runs")
    }
}

/// "all 1000 test digits" or "the first 200 of the 1000 test digits".
fn digits(f: &ModelFig) -> String {
    if f.images >= f.test_digits {
        format!("all {} bundled test digits", f.images)
    } else {
        format!(
            "the first {} of the {} bundled test digits ({})",
            f.images, f.test_digits, f.digits_why
        )
    }
}

/// Batch-1 latency, end to end and its online part: `0.620 s (online 0.015 s), 3 runs
/// 0.610–0.640 s`.
fn latency(f: &ModelFig) -> String {
    let l = &f.latency_s;
    let mut c = format!(
        "{:.3} s (online {:.3} s), {}",
        l.med,
        f.latency_online_s.med,
        runs(l.n)
    );
    if l.n > 1 {
        let _ = write!(c, " {:.3}–{:.3} s", l.min, l.max);
    }
    c
}

/// Per-party peak memory of a model at batch 1 and its largest two-process batch.
fn party_cell(f: &ModelFig, server: bool) -> String {
    let parts: Vec<String> = f
        .party_mem
        .iter()
        .rev()
        .map(|p| match &p.result {
            Ok(m) => format!(
                "{} MB at batch {}",
                opt_mb(if server {
                    m.server_bytes
                } else {
                    m.client_bytes
                }),
                p.batch
            ),
            Err(_) => format!("– at batch {} (see below)", p.batch),
        })
        .collect();
    if f.party_mem.iter().all(|p| p.result.is_err()) {
        "not measured (see [below](#peak-memory-of-each-party))".into()
    } else {
        parts.join("; ")
    }
}

/// Time per step category, summed over groups: (category, server s, client s, bytes).
pub fn split(run: &RunFig) -> Vec<(String, f64, f64, u64)> {
    let mut m: BTreeMap<usize, (String, f64, f64, u64)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (rep, is_server) in [(&run.server, true), (&run.client, false)] {
        for s in &rep.steps {
            let k = match order.iter().position(|o| *o == s.name) {
                Some(k) => k,
                None => {
                    order.push(s.name.clone());
                    order.len() - 1
                }
            };
            let e = m.entry(k).or_insert((s.name.clone(), 0.0, 0.0, 0));
            if is_server {
                e.1 += s.seconds;
                e.3 += s.sent + s.received;
            } else {
                e.2 += s.seconds;
            }
        }
    }
    m.into_values().collect()
}

/// Markdown of the generated part of the page.
pub fn render(r: &Results, opts: &Opts) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Generated by `mp2ml-bench` ({}) on {} at commit `{}`; total bench time {:.0} s.\n",
        if opts.quick { "quick mode" } else { "full run" },
        m.date,
        m.commit,
        r.seconds
    );
    let _ = writeln!(
        s,
        "Reproduce (release build, regenerates this page and the SVG plots):\n"
    );
    let _ = writeln!(s, "```sh\n{}\n```\n", opts.command);
    let _ = writeln!(
        s,
        "**Machine:** {} — {} logical cores. **Load average (1/5/15 min)** at start `{}`, at end `{}` \
         (other engineers' builds share these cores: figures measured under load are pessimistic \
         and noisy). Both parties run in **one process** over loopback TCP (`run_local`), so they \
         share the cores and every time below includes both parties' computation; only the \
         per-party memory figures come from two processes (`mp2ml-run --role server` and \
         `--role client`). Plans are compiled with `--calibration models/mnist_calib.npy` (256 \
         training digits, not test digits) when that file is present, as the demo does.\n",
        m.cpu, m.cores, m.load_start, m.load_end
    );
    let _ = writeln!(
        s,
        "Figures are the **median (min–max) of up to {} runs**; a batch size stops repeating once \
         its sessions have taken {:.0} s in total (at least one run), and sessions of 1000 images \
         or more run at most 3 times, so every timed figure states its number of runs. Anchors are \
         MP2ML (Boemer et al., ARES 2020) on two 56-core Xeon servers (a LAN between them); ratios \
         are ours relative to the anchor (> 1× for time means we are slower, for throughput that \
         we are faster, as labelled).\n",
        opts.repeats, opts.batch_seconds
    );
    let _ = writeln!(
        s,
        "**Time budget:** at most {} AND gates per secure session (`--budget-ands`). A model whose \
         {} test digits would exceed it uses only the first ⌊budget ÷ AND gates per image⌋ digits \
         for accuracy, throughput and the plaintext baseline (stated per model below); batch sizes \
         16, 64 and 256 run only when a session costs at most a sixteenth of the budget. A warm-up \
         session precedes each model's runs; when it takes more than {:.0} s it counts as the first \
         batch-1 run.\n",
        sci(opts.budget_ands),
        r.models.first().map_or(0, |f| f.test_digits),
        WARM_COUNTS_S
    );

    // Table 3 / CryptoNets-ReLU.
    if let Some(c) = r
        .models
        .iter()
        .find(|f| f.name == "cryptonets_relu")
        .or(r.models.first())
    {
        let best = c.best_batch();
        let _ = writeln!(s, "## MP2ML Table 3: {} (secure, two parties)\n", c.name);
        let _ = writeln!(
            s,
            "Plan: {}, so one ciphertext group packs up to {} images; {} AND gates per image; \
             imported and compiled in {:.0} ms. Accuracy over {}; the secure prediction agrees \
             with the plaintext model on {:.1}% of them.\n",
            c.params,
            c.n,
            c.ands_per_image,
            c.compile_s * 1e3,
            digits(c),
            100.0 * c.agreement
        );
        let _ = writeln!(
            s,
            "| figure | anchor | ours | ratio | plaintext (tract) | secure / plaintext |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        let acc = 100.0 * c.accuracy;
        let _ = writeln!(
            s,
            "| accuracy ({} digits) | MP2ML 98.60% | {acc:.2}% | {:+.2} points | {:.2}% | {:+.2} points |",
            c.images,
            acc - 98.60,
            100.0 * c.plain.accuracy,
            acc - 100.0 * c.plain.accuracy
        );
        let lat = c.latency_s.med;
        let plat = c.plain.latency_s.med;
        let _ = writeln!(
            s,
            "| latency, batch 1 (end to end; online part) | MP2ML 6.79 s | {} | {} faster (end to end) | {} | {} slower |",
            latency(c),
            ratio(6.79, lat),
            secs(plat),
            ratio(lat, plat)
        );
        let _ = writeln!(
            s,
            "| latency, batch 1 | GAZELLE 0.03 s | {} | {} slower (end to end) | | |",
            latency(c),
            ratio(lat, 0.03)
        );
        let _ = writeln!(
            s,
            "| latency, batch 1 | CrypTFlow 0.03 s | {} | {} slower (end to end) | | |",
            latency(c),
            ratio(lat, 0.03)
        );
        if let Some(b) = best {
            let _ = writeln!(
                s,
                "| throughput, best batch ({}) | MP2ML 33.3 images/s | {:.1} images/s ({}) | {} higher | {:.0} images/s (batch {}) | {} of plaintext |",
                b.batch,
                b.images_per_s,
                runs(b.seconds.n),
                ratio(b.images_per_s, 33.3),
                c.plain.images_per_s,
                c.plain.batch,
                ratio(b.images_per_s, c.plain.images_per_s)
            );
            let _ = writeln!(
                s,
                "| throughput, best batch ({}) | nGraph-HE2 2,959 images/s (reveals intermediate values to the client) | {:.1} images/s | {} | | |",
                b.batch,
                b.images_per_s,
                ratio(b.images_per_s, 2959.0)
            );
            let b1 = c.batches.iter().find(|f| f.batch == 1);
            let _ = writeln!(
                s,
                "| bytes per image | – | {} at batch {}; {} at batch 1 | | 0 | |",
                mb(b.bytes_per_image),
                b.batch,
                b1.map_or("–".into(), |f| mb(f.bytes_per_image)),
            );
            let _ = writeln!(
                s,
                "| peak memory (both parties, one process) | – | {:.0} MB at batch {}; {:.0} MB at batch 1 | | | |",
                b.peak_mb,
                b.batch,
                b1.map_or(f64::NAN, |f| f.peak_mb)
            );
        }
        for (label, server) in [("server", true), ("client", false)] {
            let _ = writeln!(
                s,
                "| peak memory, {label} (own process) | – | {} | | | |",
                party_cell(c, server)
            );
        }
        let _ = writeln!(
            s,
            "\nLatency is the wall time of a batch-1 session; its online part is the client's \
             steps of phase `online` (`SessionReport::seconds(Some(\"online\"))`, as `mp2ml-run` \
             reports it): everything after the input is known, whereas garbling, OT and the c1 \
             halves of the ciphertexts run offline. One-process peak memory is the process's VmHWM \
             (`/proc/self/status`) after resetting it (`/proc/self/clear_refs` = 5) before each \
             session: the **sum of both parties** plus the bench's own data (test digits, plan, \
             weights); the reset sets the peak to the current RSS, which includes heap the \
             allocator kept from earlier sessions, so a small batch measured after a large one can \
             show a higher peak. Per-party peak memory: see [Peak memory of each party]\
             (#peak-memory-of-each-party). Bytes are both directions, counted by the client (10^6 \
             bytes per MB).\n"
        );
    }

    // Every model.
    let _ = writeln!(s, "## Every bundled model: secure vs. plaintext\n");
    let _ = writeln!(
        s,
        "| model | params | AND/image | digits | accuracy secure | accuracy plaintext | latency b=1 secure (online) | latency b=1 plaintext | latency ratio | best throughput secure | throughput plaintext | throughput ratio | bytes/image (best batch) | peak MB one process (best batch) | peak MB server / client (batch) |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in &r.models {
        let b = f.best_batch();
        let big = f
            .party_mem
            .iter()
            .rev()
            .find(|p| p.result.is_ok())
            .or(f.party_mem.last());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} of {} | {:.2}% | {:.2}% | {} | {} | {} | {} | {:.0}/s (b={}) | {} | {} | {:.0} | {} |",
            f.name,
            f.params,
            f.ands_per_image,
            f.images,
            f.test_digits,
            100.0 * f.accuracy,
            100.0 * f.plain.accuracy,
            latency(f),
            secs(f.plain.latency_s.med),
            ratio(f.latency_s.med, f.plain.latency_s.med),
            b.map_or("–".into(), |b| format!(
                "{:.1}/s (b={}, {})",
                b.images_per_s,
                b.batch,
                runs(b.seconds.n)
            )),
            f.plain.images_per_s,
            f.plain.batch,
            b.map_or("–".into(), |b| ratio(b.images_per_s, f.plain.images_per_s)),
            b.map_or("–".into(), |b| mb(b.bytes_per_image)),
            b.map_or(f64::NAN, |b| b.peak_mb),
            big.map_or("–".into(), |p| match &p.result {
                Ok(m) => format!(
                    "{} / {} (b={})",
                    opt_mb(m.server_bytes),
                    opt_mb(m.client_bytes),
                    p.batch
                ),
                Err(_) => "– (see below)".into(),
            }),
        );
    }
    let _ = writeln!(
        s,
        "\n*digits*: accuracy (secure and plaintext), the largest batch and the plaintext \
         throughput use the first *digits* test digits (the AND-gate budget above). Plaintext: \
         tract-onnx (optimized model, this machine), latency = median over those digits one at a \
         time; throughput = one batch of all of them (median of ≥ 3).\n"
    );

    // Per-party memory.
    let _ = writeln!(s, "## Peak memory of each party\n");
    match &r.runner {
        Ok(p) => {
            let _ = writeln!(
                s,
                "One session per row as **two processes** over loopback TCP on this machine: \
                 `mp2ml-run --role server NAME.ron --listen 127.0.0.1:PORT --sessions 1 --json` \
                 and `mp2ml-run --role client NAME.client.ron --connect 127.0.0.1:PORT --input \
                 BATCH.npy --json` (binary `{}`); each party's figure is the `peak_rss_bytes` \
                 (VmHWM) of its own `--json` summary, so it includes that party's plan, keys and \
                 (server) weights. Rows at batch 1 and at the model's largest batch, unless its \
                 one-process session took more than {:.0} s: then at the largest power of two \
                 predicted to fit (linearly between the batch-1 and the largest session), stated \
                 in the batch column. Seconds and online seconds are the client's.\n",
                p.display(),
                opts.batch_seconds
            );
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "**Not measured: {e}.** (The two-process sessions need the release `mp2ml-run` \
                 next to `mp2ml-bench`; `bash scripts/bench.sh` builds both.)\n"
            );
        }
    }
    let _ = writeln!(
        s,
        "| model | batch | peak memory, server | peak memory, client | both, one process (same batch) | session s (online s) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for f in &r.models {
        let largest = f.batches.iter().max_by_key(|b| b.batch);
        for p in &f.party_mem {
            let batch = match largest {
                Some(l) if p.batch > 1 && p.batch < l.batch => format!(
                    "{} (largest batch {} took {:.0} s)",
                    p.batch, l.batch, l.seconds.med
                ),
                _ => p.batch.to_string(),
            };
            let one = f
                .batches
                .iter()
                .find(|b| b.batch == p.batch)
                .map_or("–".into(), |b| format!("{:.0} MB", b.peak_mb));
            match &p.result {
                Ok(m) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} MB | {} MB | {} | {:.3} ({:.3}) |",
                        f.name,
                        batch,
                        opt_mb(m.server_bytes),
                        opt_mb(m.client_bytes),
                        one,
                        m.seconds,
                        m.online_s
                    );
                }
                Err(e) => {
                    let short = if r.runner.is_err() {
                        "not measured (no `mp2ml-run`)".to_string()
                    } else {
                        format!("failed: {}", e.replace('|', "\\|"))
                    };
                    let _ = writeln!(s, "| {} | {} | – | – | {} | {short} |", f.name, batch, one);
                }
            }
        }
    }
    let _ = writeln!(s);

    // Throughput against batch.
    let _ = writeln!(s, "## Throughput against batch size\n");
    let _ = writeln!(
        s,
        "| model | batch | groups | runs | seconds per session | images/s | bytes/image | peak MB |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for f in &r.models {
        for b in &f.batches {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.1} | {} | {:.0} |",
                f.name,
                b.batch,
                b.groups,
                b.seconds.n,
                b.seconds.show(3, 1.0),
                b.images_per_s,
                mb(b.bytes_per_image),
                b.peak_mb
            );
        }
    }
    let _ = writeln!(
        s,
        "\nBatch 1 is also the latency figure (a different digit each run). A batch above the \
         number of digits used repeats them (digits tiled) and runs one session.\n"
    );
    for p in &r.plots {
        let _ = writeln!(s, "![{p}]({p})\n");
    }

    // Time split.
    let _ = writeln!(s, "## Time split per step\n");
    let _ = writeln!(
        s,
        "Seconds per step of one session, summed over ciphertext groups, from each party's \
         `SessionReport` (the parties overlap: a party's step includes waiting for the other). \
         Bytes are the server's sent + received in that step.\n"
    );
    for f in &r.models {
        for (label, run) in [("batch 1", &f.b1), ("best batch", &f.best)] {
            let _ = writeln!(
                s,
                "**{}, {} ({} images, {:.3} s wall):**\n",
                f.name, label, run.server.images, run.seconds
            );
            let _ = writeln!(s, "| step | server s | client s | bytes |");
            let _ = writeln!(s, "|---|---|---|---|");
            for (name, sv, cl, by) in split(run) {
                let _ = writeln!(s, "| {name} | {sv:.4} | {cl:.4} | {} |", mb(by as f64));
            }
            let _ = writeln!(s);
        }
    }

    // Table 2.
    let t = &r.table2;
    let _ = writeln!(s, "## MP2ML Table 2: ReLU with Yao, CKKS ADD and MULT\n");
    let _ = writeln!(
        s,
        "Production ReLU circuit `mp2ml_ir::circuit::activations::relu(q0 = {}, σ = 40)` (q0 from {}): \
         {} AND gates, {} garbler / {} evaluator input bits, {} output bits per ReLU. Garbler and \
         evaluator in two threads over loopback TCP, a fresh session each time (128 base OTs \
         included offline), outputs checked against max(x, 0) + r. Times are the slower party's; \
         MB are both directions. Warm-up session not counted.\n",
        t.q0, t.q0_from, t.ands, t.bits.0, t.bits.1, t.bits.2
    );
    let _ = writeln!(s, "| ReLUs | offline ms | online ms | offline MB | online MB | MP2ML offline / online ms | MP2ML offline / online MB | ratio offline / online time (MP2ML ÷ ours) |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for row in &t.relu {
        let (a, b, c, d) = if row.n == 1000 {
            (
                "161 / 57",
                "22.3 / 2.0",
                ratio(0.161, row.offline_s.med),
                ratio(0.057, row.online_s.med),
            )
        } else {
            ("–", "–", "–".into(), "–".into())
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {a} | {b} | {c} / {d} |",
            row.n,
            ms(&row.offline_s),
            ms(&row.online_s),
            row.offline_mb.show(2, 1.0),
            row.online_mb.show(2, 1.0)
        );
    }
    let _ = writeln!(
        s,
        "\n| CKKS op, N = 2048, one {}-bit prime ({}) | ours | MP2ML (SEAL) | MP2ML ÷ ours |",
        64 - t.prime.leading_zeros(),
        t.prime
    );
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| ADD (ciphertext + ciphertext) | {} µs | 0.19 ms | {} |",
        t.add_s.show(2, 1e6),
        ratio(0.19e-3, t.add_s.med)
    );
    let _ = writeln!(
        s,
        "| MULT (ciphertext × integer scalar) | {} µs | 1.2 ms | {} |",
        t.mul_s.show(2, 1e6),
        ratio(1.2e-3, t.mul_s.med)
    );
    let _ = writeln!(
        s,
        "\nADD/MULT: each sample is the mean per call over a ≥ 20 ms loop; coefficient form (no \
         NTT) because the batch-axis packing makes every server-side linear op coefficient-wise, \
         whereas MP2ML's MULT is a SEAL plaintext multiplication in NTT form.\n"
    );
    s
}

/// Keeps what lies below the marker in an existing page (or, the first time, the whole old
/// page minus its `# Benchmarks` title) and writes the new page.
pub fn write_page(out: &Path, generated: &str) -> BenchResult<()> {
    let old = std::fs::read_to_string(out).unwrap_or_default();
    let kept = if let Some(i) = old.find(MARKER) {
        old[i + MARKER.len()..].trim_start_matches('\n').to_string()
    } else {
        let t = old.trim_start();
        let t = t.strip_prefix("# Benchmarks").unwrap_or(t);
        t.trim_start_matches('\n').to_string()
    };
    let mut page = String::from("# Benchmarks\n\n");
    page.push_str(generated);
    page.push('\n');
    page.push_str(MARKER);
    page.push_str("\n\n");
    if kept.is_empty() {
        page.push_str("(No hand-written sections.)\n");
    } else {
        page.push_str("# Engine microbenchmarks (written by the engine engineers)\n\n");
        let kept = kept
            .strip_prefix("# Engine microbenchmarks (written by the engine engineers)\n\n")
            .unwrap_or(&kept);
        page.push_str(kept);
    }
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    std::fs::write(out, page).map_err(|e| format!("{}: {e}", out.display()))
}

/// Runs everything and writes the page and plots.
pub fn run(opts: &Opts) -> BenchResult<Results> {
    let start = Instant::now();
    let mut machine = machine();
    eprintln!(
        "[bench] {} cores, load {}; budget {} AND gates per session; mp2ml-run: {}",
        machine.cores,
        machine.load_start,
        sci(opts.budget_ands),
        find_runner(opts).map_or_else(|e| e, |p| p.display().to_string())
    );
    let (shape, x) = mp2ml_runtime::npy::read_f32(&opts.models_dir.join("mnist_test_x.npy"))
        .map_err(|e| e.to_string())?;
    let labels = mp2ml_runtime::npy::read_labels(&opts.models_dir.join("mnist_test_y.npy"))
        .map_err(|e| e.to_string())?;
    let per: usize = shape.iter().skip(1).product();
    if per == 0 || x.len() % per != 0 {
        return Err("mnist_test_x.npy: bad shape".into());
    }
    let names: Vec<String> = if !opts.models.is_empty() {
        opts.models.clone()
    } else if opts.quick {
        vec!["tiny".into()]
    } else {
        ["cryptonets_relu", "maxpool_cnn", "residual", "tiny"]
            .map(String::from)
            .to_vec()
    };
    let mut models = Vec::new();
    for name in &names {
        models.push(bench_model(opts, name, &x, &labels)?);
    }
    // q0 of the compiled CryptoNets plan (or the first model's).
    let q0_model = models
        .iter()
        .find(|m| m.name == "cryptonets_relu")
        .or(models.first())
        .ok_or("no models")?;
    let plan = opts.work.join(format!("{}.ron", q0_model.name));
    let setup = load_server(&plan, 128).map_err(|e| e.to_string())?;
    let q0 = setup.plan.public.params.moduli[0];
    let table2 = table2(opts, q0, &format!("the compiled `{}` plan", q0_model.name))?;
    std::fs::create_dir_all(&opts.plots).map_err(|e| e.to_string())?;
    let rel = |p: &Path| -> String {
        let base = opts.out.parent().unwrap_or(Path::new("."));
        p.strip_prefix(base)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };
    let mut plot_files = Vec::new();
    let tp = opts.plots.join("bench_throughput.svg");
    plots::throughput(&tp, &models).map_err(|e| format!("plot: {e}"))?;
    plot_files.push(rel(&tp));
    let sp = opts.plots.join("bench_time_split.svg");
    plots::time_split(&sp, &models).map_err(|e| format!("plot: {e}"))?;
    plot_files.push(rel(&sp));
    machine.load_end = loadavg();
    let results = Results {
        machine,
        table2,
        models,
        seconds: start.elapsed().as_secs_f64(),
        plots: plot_files,
        runner: find_runner(opts),
    };
    write_page(&opts.out, &render(&results, opts))?;
    let _ = std::fs::remove_dir_all(&opts.work);
    Ok(results)
}
