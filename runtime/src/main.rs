//! `mp2ml-run`: run an mp2ml plan as server, client, or both locally.
//!
//! ```text
//! mp2ml-run --role server plan.ron --listen 127.0.0.1:7000 [--sessions N] [--max-sessions K]
//!            [--memory-budget 4G] [--max-batch B] [--handshake-timeout S] [--grace S]
//!            [--metrics 127.0.0.1:9100] [--json-log FILE]
//! mp2ml-run --role client plan.client.ron --connect 127.0.0.1:7000 --input x.npy --output y.npy [--labels y.npy] [--retries R]
//! mp2ml-run local plan.ron --input x.npy [--labels y.npy] [--output y.npy]
//! ```
//!
//! Every form takes `--mpc yao|gmw` to run all MPC steps with one back end instead of the
//! plan's per-step choice.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use mp2ml_ir::plan::MpcBackend;
use mp2ml_runtime::client::{check_batch, ClientOutput};
use mp2ml_runtime::local::{channel_config, load_batch, run_local};
use mp2ml_runtime::plan::{load_client, load_server};
use mp2ml_runtime::report::SessionReport;
use mp2ml_runtime::service::retry::{run_client_retrying, Queue};
use mp2ml_runtime::service::{
    limits, metrics, peak_rss, Metrics, Service, ServiceConfig, Shutdown,
};
use mp2ml_runtime::session::SessionOptions;
use mp2ml_runtime::{npy, Result, RuntimeError};

#[derive(Parser)]
#[command(
    name = "mp2ml-run",
    version,
    about = "Run an mp2ml plan between a server (model owner) and a client (data owner)."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    party: PartyArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run both parties in this process over loopback TCP.
    Local(LocalArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

#[derive(Args)]
struct Common {
    /// Seconds to wait for the peer at any step before giving up.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Minimum security level (bits) to accept.
    #[arg(long, default_value_t = 128)]
    min_security: u32,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    json: bool,
    /// Run every MPC step with this Boolean back end instead of the plan's per-step choice
    /// (`yao` or `gmw`); both parties must pass the same (checked at the handshake).
    #[arg(long, value_enum)]
    mpc: Option<MpcBackend>,
}

#[derive(Args)]
struct PartyArgs {
    /// Which party to play.
    #[arg(long, value_enum)]
    role: Option<Role>,
    /// The plan: `NAME.ron` for the server, `NAME.client.ron` for the client.
    plan: Option<PathBuf>,
    /// Server: address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: String,
    /// Server: stop after this many sessions that passed the handshake (default: serve until
    /// stopped by SIGINT/SIGTERM).
    #[arg(long)]
    sessions: Option<u64>,
    #[command(flatten)]
    limits: ServerLimits,
    /// Client: server address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    connect: String,
    /// Client: how often to retry when the server answers "busy" (with back-off).
    #[arg(long, default_value_t = 5)]
    retries: u32,
    #[command(flatten)]
    io: ClientIo,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ServerLimits {
    /// Server: sessions running at once; more clients are refused as "busy" and retry.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_sessions: u64,
    /// Server: handshakes in progress at once; connections beyond are closed at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_pending: u64,
    /// Server: memory all running sessions may hold, by the plan's per-session estimate
    /// (e.g. 4G, 512M; default: three quarters of the available memory).
    #[arg(long, value_parser = limits::parse_bytes)]
    memory_budget: Option<u64>,
    /// Server: largest batch (images) a client may send in one session.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_batch: u64,
    /// Server: seconds a client has for the whole handshake (capped by --timeout).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    handshake_timeout: u64,
    /// Server: after SIGINT/SIGTERM, seconds running sessions get to finish.
    #[arg(long, default_value_t = 30)]
    grace: u64,
    /// Server: serve Prometheus metrics at http://ADDR/metrics and /health (loopback advised).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Server: append one JSON line per connection to FILE (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    json_log: Option<PathBuf>,
}

#[derive(Args)]
struct ClientIo {
    /// Client: float32 `.npy` of shape [B, C, H, W].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Client: where to write the outputs (float32 `.npy`).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Client: int64 `.npy` labels; prints accuracy.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Use only the first N images of the input.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Args)]
struct LocalArgs {
    /// The server plan `NAME.ron` (the client uses its public part).
    plan: PathBuf,
    #[command(flatten)]
    io: ClientIo,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Some(Cmd::Local(a)) => cmd_local(&a),
        None => match cli.party.role {
            Some(Role::Server) => cmd_server(&cli.party),
            Some(Role::Client) => cmd_client(&cli.party),
            None => Err(RuntimeError::Input("say which party to play: `--role server`, `--role client`, or the `local` subcommand (see --help)".into())),
        },
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mp2ml-run: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn options(c: &Common) -> SessionOptions {
    SessionOptions {
        timeout: Duration::from_secs(c.timeout.max(1)),
        min_security: c.min_security,
        progress: !c.json && std::io::stderr().is_terminal(),
        mpc: c.mpc,
    }
}

fn need<'a>(p: &'a Option<PathBuf>, what: &str) -> Result<&'a Path> {
    p.as_deref()
        .ok_or_else(|| RuntimeError::Input(format!("missing {what}")))
}

fn cmd_server(a: &PartyArgs) -> Result<()> {
    let opts = options(&a.common);
    let l = &a.limits;
    let setup = Arc::new(load_server(
        need(&a.plan, "the plan file (NAME.ron)")?,
        opts.min_security,
    )?);
    let stop = Shutdown::install()?;
    let json_log: Option<Box<dyn std::io::Write + Send>> = match l.json_log.as_deref() {
        None => None,
        Some(p) if p == Path::new("-") => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| RuntimeError::File {
                    path: p.to_path_buf(),
                    source,
                })?,
        )),
    };
    let budget = l
        .memory_budget
        .or_else(limits::default_memory_budget)
        .unwrap_or(4 << 30);
    let handshake = Duration::from_secs(l.handshake_timeout).min(opts.timeout);
    let cfg = ServiceConfig {
        max_sessions: l.max_sessions as usize,
        max_pending: l.max_pending as usize,
        memory_budget: budget,
        max_batch: l.max_batch as usize,
        handshake_timeout: handshake,
        grace: Duration::from_secs(l.grace),
        sessions: a.sessions,
        json: a.common.json,
    };
    let listener = TcpListener::bind(&a.listen)
        .map_err(|e| RuntimeError::Net(format!("cannot listen on {}: {e}", a.listen)))?;
    let metrics = Arc::new(Metrics::new());
    let http_stop = Arc::new(AtomicBool::new(false));
    let http = match &l.metrics {
        Some(addr) => Some(metrics::serve_http(
            addr,
            Arc::clone(&metrics),
            Arc::clone(&http_stop),
        )?),
        None => None,
    };
    let service = Service::new(
        Arc::clone(&setup),
        cfg,
        opts,
        channel_config(&setup.params, &opts),
        metrics,
        json_log,
        stop,
    );
    let one = limits::estimate(&setup, 1);
    eprintln!(
        "mp2ml-run: serving `{}` on {} (N = {}, {} MPC steps); up to {} sessions at once, memory budget {:.0} MB ({:.0} MB per 1-image session), deadlines: handshake {} s, each later step {:.0} s for 1 image{}",
        setup.plan.model,
        a.listen,
        setup.params.n(),
        setup.plan.public.mpc_steps.len(),
        l.max_sessions,
        budget as f64 / 1e6,
        one.memory as f64 / 1e6,
        handshake.as_secs(),
        service.step_budget(1).as_secs_f64(),
        l.metrics
            .as_deref()
            .map(|m| format!("; metrics on http://{m}/metrics"))
            .unwrap_or_default()
    );
    let summary = service.run(listener)?;
    http_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(h) = http {
        let _ = h.join();
    }
    eprintln!(
        "mp2ml-run: {} sessions served, {} failed{}",
        summary.admitted,
        summary.failed,
        if summary.stopped {
            " (stopped by a signal)"
        } else {
            ""
        }
    );
    if !summary.stopped && summary.failed > 0 {
        return Err(RuntimeError::SessionsFailed {
            failed: summary.failed,
            served: summary.admitted,
        });
    }
    Ok(())
}

/// Fails early (before any session) when `path` cannot be written: a probe file is created
/// beside it and removed.
fn check_writable(path: &Path) -> Result<()> {
    let err = |source| RuntimeError::File {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        return Err(err(std::io::Error::other("is a folder, not a file")));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".mp2ml-probe{}", std::process::id()));
    std::fs::File::create(&probe).map_err(err)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn cmd_client(a: &PartyArgs) -> Result<()> {
    let opts = options(&a.common);
    let setup = load_client(
        need(&a.plan, "the plan file (NAME.client.ron)")?,
        opts.min_security,
    )?;
    let batch = load_batch(
        need(&a.io.input, "--input images.npy")?,
        &setup.plan.input.shape,
        a.io.limit,
    )?;
    let labels = a.io.labels.as_deref().map(npy::read_labels).transpose()?;
    check_batch(&setup, &batch)?;
    if let Some(p) = a.io.output.as_deref() {
        check_writable(p)?;
    }
    let cfg = channel_config(&setup.params, &opts);
    let t = Instant::now();
    let (out, rep, queue) = run_client_retrying(
        &setup,
        &a.connect,
        cfg,
        &batch,
        &opts,
        a.retries,
        |reason, attempt, wait| {
            eprintln!(
                "mp2ml-run: the server is busy ({reason}); retry {attempt} of {} in {:.2} s",
                a.retries,
                wait.as_secs_f64()
            )
        },
    )?;
    let secs = t.elapsed().as_secs_f64();
    let run = Finished {
        out: &out,
        rep: &rep,
        server: None,
        queue: Some(queue),
        secs,
    };
    finish(
        &run,
        labels.as_deref(),
        a.io.output.as_deref(),
        a.common.json,
    )
}

fn cmd_local(a: &LocalArgs) -> Result<()> {
    let opts = options(&a.common);
    let setup = load_server(&a.plan, opts.min_security)?;
    let batch = load_batch(
        need(&a.io.input, "--input images.npy")?,
        &setup.plan.public.input.shape,
        a.io.limit,
    )?;
    let labels = a.io.labels.as_deref().map(npy::read_labels).transpose()?;
    let t = Instant::now();
    let (out, crep, srep) = run_local(&setup, &batch, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    let run = Finished {
        out: &out,
        rep: &crep,
        server: Some(&srep),
        queue: None,
        secs,
    };
    finish(
        &run,
        labels.as_deref(),
        a.io.output.as_deref(),
        a.common.json,
    )
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// A client run that ended: what it computed and what it cost.
#[derive(Clone, Copy)]
struct Finished<'a> {
    out: &'a ClientOutput,
    /// The client's report.
    rep: &'a SessionReport,
    /// The server's report, when both parties ran in this process.
    server: Option<&'a SessionReport>,
    /// The wait for admission, for a client of a service.
    queue: Option<Queue>,
    /// Wall-clock seconds of the run.
    secs: f64,
}

/// Writes the outputs of `run` to `output` (if any) and prints its summary (JSON with
/// `json`), with the accuracy against `labels` (if any).
fn finish(run: &Finished, labels: Option<&[i64]>, output: Option<&Path>, json: bool) -> Result<()> {
    let Finished {
        out,
        rep,
        server,
        queue,
        secs,
    } = *run;
    let images = rep.images;
    // The handshake (waiting for admission) is queue time, not offline work.
    let handshake = if queue.is_some() {
        rep.steps
            .iter()
            .filter(|s| s.name == "handshake")
            .map(|s| s.seconds)
            .sum()
    } else {
        0.0
    };
    let offline = rep.seconds(Some("offline")) - handshake;
    if let Some(p) = output {
        npy::write_f32(p, &[images, out.post_elems], &out.post)?;
    }
    let accuracy = match labels {
        Some(l) if l.len() < images => {
            return Err(RuntimeError::Input(format!(
                "{} labels for {images} images",
                l.len()
            )));
        }
        Some(l) => {
            let correct = out
                .classes
                .iter()
                .zip(l)
                .filter(|(&c, &y)| c as i64 == y)
                .count();
            Some(correct as f64 / images as f64)
        }
        None => None,
    };
    if json {
        let v = serde_json::json!({
            "images": images,
            "seconds": secs,
            "images_per_second": images as f64 / secs,
            "accuracy": accuracy,
            "bytes_total": rep.bytes(None),
            "bytes_per_image": rep.bytes(None) as f64 / images as f64,
            "queue": queue,
            "offline": { "seconds": offline, "bytes": rep.bytes(Some("offline")) },
            "online": { "seconds": rep.seconds(Some("online")), "bytes": rep.bytes(Some("online")) },
            "peak_rss_bytes": peak_rss(),
            "client": rep,
            "server": server,
            "classes": out.classes,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let shown = images.min(20);
    let preds: Vec<String> = out.classes[..shown].iter().map(|c| c.to_string()).collect();
    println!(
        "predicted classes: {}{}",
        preds.join(" "),
        if images > shown { " …" } else { "" }
    );
    if let Some(a) = accuracy {
        println!("accuracy:   {:.2}% ({} images)", 100.0 * a, images);
    }
    if let Some(q) = queue {
        println!(
            "queue:      {:.3} s until the server admitted the session ({} busy refusals)",
            q.seconds, q.refusals
        );
    }
    println!(
        "latency:    {:.3} s for {} images ({} ciphertext groups): {:.3} s offline (input-independent), {:.3} s online",
        secs,
        images,
        rep.groups,
        offline,
        rep.seconds(Some("online"))
    );
    println!("throughput: {:.1} images/s", images as f64 / secs);
    println!(
        "traffic:    {:.1} MB total, {:.1} KB per image (offline {:.1} MB in {:.3} s, online {:.1} MB in {:.3} s)",
        mb(rep.bytes(None)),
        rep.bytes(None) as f64 / images as f64 / 1e3,
        mb(rep.bytes(Some("offline"))),
        offline,
        mb(rep.bytes(Some("online"))),
        rep.seconds(Some("online"))
    );
    println!(
        "AND gates:  {} ({} per image)",
        rep.and_gates(),
        rep.and_gates() / images.max(1) as u64
    );
    if let Some(p) = peak_rss() {
        let who = if server.is_some() {
            "both parties, one process"
        } else {
            "this party"
        };
        println!("peak memory: {:.0} MB ({who})", p as f64 / 1e6);
    }
    let steps = |view: &str, steps: &[mp2ml_runtime::report::StepReport]| {
        println!("steps ({view} view):");
        for s in steps {
            println!(
                "  {:<28} {:>8.3} s  sent {:>9.2} MB  received {:>9.2} MB",
                s.name,
                s.seconds,
                mb(s.sent),
                mb(s.received)
            );
        }
    };
    steps("client", &rep.steps);
    if let Some(sr) = server {
        steps("server", &sr.steps);
    }
    Ok(())
}
