//! `mp2mlc`: compile an ONNX model into an mp2ml two-party plan.
//!
//! ```text
//! mp2mlc MODEL.onnx [-o DIR/NAME.ron] [--report] [--report-format text|json] [--dot FILE]
//!        [--emit-circuits DIR] [--input-range LO:HI | --calibration IMAGES.npy [--margin M]]
//!        [--scale-bits F] [--weight-bits B] [--sigma S] [--security 128|192|256]
//!        [--log-n LOGN] [--batch B] [--session-images M] [--packing batch|image|auto]
//! mp2mlc inspect PLAN.ron [--report-format text|json]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use mp2ml_compiler::driver::{compile_validated, Options, Packing};
use mp2ml_compiler::error::{CompileError, ErrorKind};
use mp2ml_compiler::onnx::{import_file, ImportOptions};
use mp2ml_compiler::params::{ParamOptions, SecurityLevel};
use mp2ml_compiler::plan_writer::{load_checked, output_paths, write_all};
use mp2ml_compiler::report;
use mp2ml_ir::plan::{MpcObjective, NetworkProfile};

/// Compile an ONNX model into an mp2ml plan (server plan, client plan, weights).
#[derive(Parser, Debug)]
#[command(name = "mp2mlc", version)]
struct Cli {
    /// The ONNX model.
    model: PathBuf,
    /// Output plan `DIR/NAME.ron` (also writes NAME.client.ron and NAME.weights.bin).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Print the partition report.
    #[arg(long)]
    report: bool,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    report_format: ReportFormat,
    /// Write a Graphviz picture of the partition.
    #[arg(long)]
    dot: Option<PathBuf>,
    /// Write every circuit in Bristol Fashion into this folder.
    #[arg(long)]
    emit_circuits: Option<PathBuf>,
    /// Declared input range LO:HI.
    #[arg(long, default_value = "0:1", allow_hyphen_values = true)]
    input_range: String,
    /// Calibration images (float32 .npy, [B, C, H, W]) instead of interval analysis.
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Margin on calibrated ranges.
    #[arg(long, default_value_t = 2.0)]
    margin: f64,
    /// log2 of the activation scale Δ.
    #[arg(long, default_value_t = 20)]
    scale_bits: u32,
    /// Minimum bits of each rescaling prime (weight precision).
    #[arg(long, default_value_t = 30)]
    weight_bits: u32,
    /// Statistical security bits of a whole session (≥ 40); masks and floods are
    /// σ + ⌈log2(masked values per session)⌉ bits wider than what they hide.
    #[arg(long, default_value_t = 40)]
    sigma: u32,
    /// Most images one session may carry (at least --batch); σ counts over them.
    #[arg(long, default_value_t = 4096)]
    session_images: usize,
    /// Security level (128, 192 or 256).
    #[arg(long, value_enum, default_value = "128")]
    security: SecurityLevel,
    /// Force log2 N (refused if insecure).
    #[arg(long)]
    log_n: Option<u32>,
    /// Batch size recorded in the plan.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Memory budget in MiB: a step whose estimate exceeds it is refused before it runs.
    #[arg(long, default_value_t = 4096)]
    memory_budget: u64,
    /// Packing: batch (one ciphertext per value, one coefficient per image), image (one
    /// image's tensors in a few polynomials) or auto (the cheaper by the cost model at --batch).
    #[arg(long, value_enum, default_value_t = Packing::Auto)]
    packing: Packing,
    /// Network between the parties: `lan` (0.2 ms, 1 Gbit/s), `wan` (40 ms, 100 Mbit/s),
    /// `loopback` (both parties on one machine, as measured here) or `RTT_ms:Mbit_s`; the cost
    /// model picks Yao or GMW per MPC step for it, and the report's seconds assume it.
    #[arg(long, default_value = "lan")]
    network: NetworkProfile,
    /// What the cost model minimizes when it picks Yao or GMW.
    #[arg(long, value_enum, default_value_t = MpcObjective::Online)]
    mpc_objective: MpcObjective,
}

/// `--report-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Human-readable text.
    Text,
    /// One JSON document.
    Json,
}

impl ReportFormat {
    /// `report` rendered in this format.
    fn render(self, report: &report::Report) -> String {
        match self {
            ReportFormat::Text => report.text(),
            ReportFormat::Json => report.json(),
        }
    }
}

/// `mp2mlc inspect PLAN.ron`.
#[derive(Parser, Debug)]
#[command(name = "mp2mlc inspect")]
struct Inspect {
    /// The server plan.
    plan: PathBuf,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    report_format: ReportFormat,
}

fn parse_range(s: &str) -> Result<(f32, f32), CompileError> {
    let bad = || {
        CompileError::new(
            ErrorKind::Options,
            format!("--input-range `{s}` is not LO:HI"),
        )
    };
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

fn fail(e: &CompileError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(1)
}

fn inspect(args: &[String]) -> ExitCode {
    let cli = match Inspect::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match load_checked(&cli.plan) {
        Ok((plan, weights)) => {
            let r = report::Report::from_plan(&plan, None).with_weights(&plan, &weights);
            print!("{}", cli.report_format.render(&r));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("inspect") {
        let mut rest = vec![format!("{} inspect", args[0])];
        rest.extend(args.iter().skip(2).cloned());
        return inspect(&rest);
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let range = match parse_range(&cli.input_range) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let opts = Options {
        params: ParamOptions {
            scale_bits: cli.scale_bits,
            weight_bits: cli.weight_bits,
            sigma: cli.sigma,
            session_images: cli.session_images,
            security: cli.security,
            log_n: cli.log_n,
        },
        input_range: range,
        calibration: cli.calibration.clone(),
        margin: cli.margin,
        batch: cli.batch,
        memory_budget: cli.memory_budget.saturating_mul(1 << 20),
        expand_limit: mp2ml_compiler::partition::SPARSE_LIMIT,
        packing: cli.packing,
        network: cli.network,
        objective: cli.mpc_objective,
    };
    let Some(model_name) = cli
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
    else {
        return fail(&CompileError::new(
            ErrorKind::Options,
            format!("`{}` names no model file", cli.model.display()),
        ));
    };
    // The weights file is named after the plan (`-o DIR/NAME.ron`), else after the model.
    let weights_name = match cli.output.as_deref().map(output_paths).transpose() {
        Ok(Some((_, _, w))) => match w.file_name() {
            Some(n) => n.to_string_lossy().to_string(),
            None => return fail(&CompileError::internal("the weights path names no file")),
        },
        Ok(None) => format!("{model_name}.weights.bin"),
        Err(e) => return fail(&e),
    };
    let mut clock = mp2ml_compiler::phases::Phases::new();
    let imported = match import_file(&cli.model, &ImportOptions::default()) {
        Ok(i) => i,
        Err(d) => {
            eprint!("{d}");
            return ExitCode::from(1);
        }
    };
    clock.mark("import");
    let out = match compile_validated(
        &imported.graph,
        &imported.info,
        &model_name,
        &weights_name,
        &opts,
    ) {
        Ok(o) => o,
        Err(e) => {
            eprint!(
                "{}",
                e.render(&cli.model.display().to_string(), &imported.listing)
            );
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &cli.output {
        clock.mark("compile");
        if let Err(e) = write_all(&out.compiled, path) {
            return fail(&e);
        }
        clock.mark("write plans");
    }
    if let Some(dir) = &cli.emit_circuits {
        if let Err(e) = emit_circuits(&out.compiled.server, dir) {
            return fail(&e);
        }
    }
    let rep = report::Report::from_plan(&out.compiled.server, Some(&out));
    if let Some(dot) = &cli.dot {
        if let Err(e) = std::fs::write(dot, rep.dot()) {
            return fail(&CompileError::new(
                ErrorKind::Io,
                format!("cannot write `{}`: {e}", dot.display()),
            ));
        }
    }
    clock.mark("report");
    if cli.report || cli.output.is_none() {
        print!("{}", cli.report_format.render(&rep));
    }
    ExitCode::SUCCESS
}

fn emit_circuits(plan: &mp2ml_ir::plan::ServerPlan, dir: &Path) -> Result<(), CompileError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CompileError::new(
            ErrorKind::Io,
            format!("cannot create `{}`: {e}", dir.display()),
        )
    })?;
    for c in &plan.public.circuits {
        let path = dir.join(format!("{}.txt", c.circuit.name));
        std::fs::write(&path, c.circuit.to_bristol_fashion()).map_err(|e| {
            CompileError::new(
                ErrorKind::Io,
                format!("cannot write `{}`: {e}", path.display()),
            )
        })?;
    }
    Ok(())
}
