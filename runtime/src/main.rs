//! `mp2ml-run`: run an mp2ml plan as server, client, or both locally.
//!
//! ```text
//! mp2ml-run --role server plan.ron --listen 127.0.0.1:7000 [--sessions N]
//! mp2ml-run --role client plan.client.ron --connect 127.0.0.1:7000 --input x.npy --output y.npy [--labels y.npy]
//! mp2ml-run local plan.ron --input x.npy [--labels y.npy] [--output y.npy]
//! ```

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use mp2ml_mpc::TcpChannel;
use mp2ml_runtime::client::{check_batch, run_client, ClientOutput};
use mp2ml_runtime::local::{channel_config, load_batch, run_local};
use mp2ml_runtime::plan::{load_client, load_server};
use mp2ml_runtime::report::SessionReport;
use mp2ml_runtime::server::serve;
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
    /// Server: stop after this many sessions (default: serve until stopped).
    #[arg(long)]
    sessions: Option<u64>,
    /// Client: server address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    connect: String,
    #[command(flatten)]
    io: ClientIo,
    #[command(flatten)]
    common: Common,
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
    }
}

fn need<'a>(p: &'a Option<PathBuf>, what: &str) -> Result<&'a Path> {
    p.as_deref()
        .ok_or_else(|| RuntimeError::Input(format!("missing {what}")))
}

fn cmd_server(a: &PartyArgs) -> Result<()> {
    let opts = options(&a.common);
    let setup = load_server(
        need(&a.plan, "the plan file (NAME.ron)")?,
        opts.min_security,
    )?;
    let listener = TcpListener::bind(&a.listen)
        .map_err(|e| RuntimeError::Net(format!("cannot listen on {}: {e}", a.listen)))?;
    eprintln!(
        "mp2ml-run: serving `{}` on {} (N = {}, {} MPC steps)",
        setup.plan.model,
        a.listen,
        setup.params.n(),
        setup.plan.public.mpc_steps.len()
    );
    let cfg = channel_config(&setup.params, &opts);
    let mut served = 0u64;
    let mut failed = 0u64;
    while a.sessions.is_none_or(|n| served < n) {
        let ch = match TcpChannel::accept(&listener, cfg) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mp2ml-run: accept failed: {e}");
                served += 1;
                failed += 1;
                continue;
            }
        };
        let t = Instant::now();
        match serve(&setup, ch, &opts) {
            Ok(rep) => {
                eprintln!(
                    "mp2ml-run: session {}: {} images in {:.3} s, peak memory {:.0} MB",
                    served + 1,
                    rep.images,
                    t.elapsed().as_secs_f64(),
                    peak_rss().unwrap_or(0) as f64 / 1e6
                );
                if a.common.json {
                    let v = serde_json::json!({ "server": rep, "peak_rss_bytes": peak_rss() });
                    println!("{}", serde_json::to_string(&v).unwrap_or_default());
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("mp2ml-run: session {} failed: {e}", served + 1);
            }
        }
        served += 1;
    }
    if failed > 0 {
        return Err(RuntimeError::SessionsFailed { failed, served });
    }
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
    let cfg = channel_config(&setup.params, &opts);
    let t = Instant::now();
    let ch = TcpChannel::connect(a.connect.as_str(), cfg)
        .map_err(|e| RuntimeError::Net(format!("cannot reach the server at {}: {e}", a.connect)))?;
    let (out, rep) = run_client(&setup, ch, &batch, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    finish(
        &out,
        &rep,
        None,
        labels.as_deref(),
        a.io.output.as_deref(),
        secs,
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
    finish(
        &out,
        &crep,
        Some(&srep),
        labels.as_deref(),
        a.io.output.as_deref(),
        secs,
        a.common.json,
    )
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn finish(
    out: &ClientOutput,
    rep: &SessionReport,
    server: Option<&SessionReport>,
    labels: Option<&[i64]>,
    output: Option<&Path>,
    secs: f64,
    json: bool,
) -> Result<()> {
    let images = rep.images;
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
            "offline": { "seconds": rep.seconds(Some("offline")), "bytes": rep.bytes(Some("offline")) },
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
    println!(
        "latency:    {:.3} s for {} images ({} ciphertext groups): {:.3} s offline (input-independent), {:.3} s online",
        secs,
        images,
        rep.groups,
        rep.seconds(Some("offline")),
        rep.seconds(Some("online"))
    );
    println!("throughput: {:.1} images/s", images as f64 / secs);
    println!(
        "traffic:    {:.1} MB total, {:.1} KB per image (offline {:.1} MB in {:.3} s, online {:.1} MB in {:.3} s)",
        mb(rep.bytes(None)),
        rep.bytes(None) as f64 / images as f64 / 1e3,
        mb(rep.bytes(Some("offline"))),
        rep.seconds(Some("offline")),
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
    println!("steps (client view):");
    for s in &rep.steps {
        println!(
            "  {:<28} {:>8.3} s  sent {:>9.2} MB  received {:>9.2} MB",
            s.name,
            s.seconds,
            mb(s.sent),
            mb(s.received)
        );
    }
    if let Some(sr) = server {
        println!("steps (server view):");
        for s in &sr.steps {
            println!(
                "  {:<28} {:>8.3} s  sent {:>9.2} MB  received {:>9.2} MB",
                s.name,
                s.seconds,
                mb(s.sent),
                mb(s.received)
            );
        }
    }
    Ok(())
}
