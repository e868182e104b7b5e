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

mod machine;
mod models;
mod page;
mod processes;
mod table2;

pub use machine::*;
pub use models::*;
pub use page::*;
pub use processes::*;
pub use table2::*;

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
    // Q0 and K of the plan's ReLU circuit (the first prime, no truncation, without one).
    let (q0, trunc) = setup
        .plan
        .public
        .circuits
        .iter()
        .find(|c| c.circuit.name.starts_with("relu"))
        .map_or((u128::from(setup.plan.public.params.moduli[0]), 0), |c| {
            (c.q0, c.trunc)
        });
    let table2 = table2(
        opts,
        q0,
        trunc,
        &format!("the compiled `{}` plan", q0_model.name),
    )?;
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
