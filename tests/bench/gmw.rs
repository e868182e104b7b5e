//! Yao against GMW (issue 14): `mp2ml-bench cost` measures the per-AND compute constants of
//! the compiler's cost model (`compiler/src/cost.rs`); `mp2ml-bench relay` runs the network
//! relay; `mp2ml-bench gmw` runs MP2ML Table 2's ReLU rows with both back ends and
//! CryptoNets-ReLU end to end with each, directly and through the relay as LAN and WAN, and
//! prints the Markdown section of `docs/BENCHMARKS.md`.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mp2ml_compiler::cost;
use mp2ml_ir::circuit::activations::{relu, CircuitParams};
use mp2ml_ir::circuit::{ShareCircuit, Style};
use mp2ml_ir::plan::{MpcBackend, MpcObjective, NetworkProfile};
use mp2ml_mpc::{
    Channel, ChannelConfig, Evaluator, Garbler, GmwClient, GmwServer, MemChannel, PhaseReport,
    TcpChannel,
};
use mp2ml_runtime::client::{run_client, Batch};
use mp2ml_runtime::local::{channel_config, client_setup_of};
use mp2ml_runtime::plan::load_server;
use mp2ml_runtime::server::serve;
use mp2ml_runtime::session::SessionOptions;
use mp2ml_tests::netsim::{Link, Relay};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::run::BenchResult;

/// One ReLU batch's figures: (offline s, online s, offline MB, online MB), the slower party's
/// time, bytes both ways.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fig {
    /// Offline seconds.
    pub off_s: f64,
    /// Online seconds.
    pub on_s: f64,
    /// Offline MB.
    pub off_mb: f64,
    /// Online MB.
    pub on_mb: f64,
}

/// Inputs of `n` ReLUs with random shares and masks, and the expected `max(x, 0) + r'`.
pub fn relu_inputs(
    sc: &ShareCircuit,
    q0: u64,
    n: usize,
    seed: u64,
) -> (Vec<bool>, Vec<bool>, Vec<u128>) {
    let (w, mask_bits) = (sc.share_bits, sc.mask_bits);
    let q0 = u128::from(q0);
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
        want.push(if v <= q0 / 2 { v } else { 0 } + r);
    }
    (g, e, want)
}

fn decode(sc: &ShareCircuit, out: &[bool], n: usize) -> Vec<u128> {
    let z = sc.z_bits() as usize;
    out.chunks((out.len() / n.max(1)).max(1))
        .map(|c| mp2ml_ir::circuit::from_bits(&c[..z.min(c.len())]))
        .collect()
}

fn fig(s: &[PhaseReport], c: &[PhaseReport], k: usize) -> BenchResult<Fig> {
    let (Some(s0), Some(s1), Some(c0), Some(c1)) = (s.get(k), s.get(k + 1), c.get(k), c.get(k + 1))
    else {
        return Err("missing phase reports".into());
    };
    let secs = |a: &PhaseReport, b: &PhaseReport| a.elapsed.max(b.elapsed).as_secs_f64();
    let mb = |r: &PhaseReport| (r.sent + r.received) as f64 / 1e6;
    Ok(Fig {
        off_s: secs(s0, c0),
        on_s: secs(s1, c1),
        off_mb: mb(c0),
        on_mb: mb(c1),
    })
}

/// Runs `batches` (instance counts) of `sc` in one session of `backend` over the channel pair,
/// checks every output, and returns the figures of the last batch.
pub fn relu_session<C: Channel + Send + 'static>(
    backend: MpcBackend,
    sc: &ShareCircuit,
    q0: u64,
    batches: &[usize],
    (sch, cch): (C, C),
) -> BenchResult<Fig> {
    let inputs: Vec<_> = batches
        .iter()
        .enumerate()
        .map(|(i, &n)| relu_inputs(sc, q0, n, 1000 + i as u64))
        .collect();
    let c = sc.circuit.clone();
    let gbits: Vec<(usize, Vec<bool>)> = batches
        .iter()
        .zip(&inputs)
        .map(|(&n, x)| (n, x.0.clone()))
        .collect();
    let server = std::thread::spawn(move || -> mp2ml_mpc::Result<Vec<PhaseReport>> {
        match backend {
            MpcBackend::Yao => {
                let mut g = Garbler::from_os_rng(sch)?;
                for (n, bits) in &gbits {
                    let h = g.offline(&c, *n, bits)?;
                    g.online(h)?;
                }
                Ok(g.reports().to_vec())
            }
            MpcBackend::Gmw => {
                let mut ch = sch;
                let mut g = GmwServer::from_os_rng()?;
                for (n, bits) in &gbits {
                    let h = g.offline(&mut ch, &c, *n, bits)?;
                    g.online(&mut ch, h)?;
                }
                Ok(g.reports().to_vec())
            }
        }
    });
    let client = (|| -> mp2ml_mpc::Result<(Vec<Vec<bool>>, Vec<PhaseReport>)> {
        let mut outs = Vec::new();
        match backend {
            MpcBackend::Yao => {
                let mut e = Evaluator::from_os_rng(cch)?;
                for (&n, x) in batches.iter().zip(&inputs) {
                    let h = e.offline(&sc.circuit, n)?;
                    outs.push(e.online(h, &x.1)?);
                }
                Ok((outs, e.reports().to_vec()))
            }
            MpcBackend::Gmw => {
                let mut ch = cch;
                let mut e = GmwClient::from_os_rng()?;
                for (&n, x) in batches.iter().zip(&inputs) {
                    let h = e.offline(&mut ch, &sc.circuit, n)?;
                    outs.push(e.online(&mut ch, h, &x.1)?);
                }
                Ok((outs, e.reports().to_vec()))
            }
        }
    })();
    let sr = server
        .join()
        .map_err(|_| "server thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let (outs, cr) = client.map_err(|e| e.to_string())?;
    for ((o, x), &n) in outs.iter().zip(&inputs).zip(batches) {
        if decode(sc, o, n) != x.2 {
            return Err(format!(
                "{}: {} outputs differ from max(x, 0) + r",
                backend.tag(),
                sc.circuit.name
            ));
        }
    }
    fig(&sr, &cr, 2 * (batches.len() - 1))
}

fn relu_of(q0: u64, style: Style) -> ShareCircuit {
    relu(&CircuitParams {
        q0: u128::from(q0),
        trunc: 0,
        sigma: 40,
        style,
    })
}

/// `mp2ml-bench cost`: the four per-AND compute constants of `compiler/src/cost.rs`, from
/// sessions over in-memory channels (no network cost), after a warm-up batch (base OTs).
pub fn cost_constants(q0: u64, n: usize, repeats: usize) -> BenchResult<[f64; 4]> {
    let mut v: [Vec<f64>; 4] = Default::default();
    for _ in 0..repeats.max(1) {
        for (backend, style) in [
            (MpcBackend::Yao, Style::Size),
            (MpcBackend::Gmw, Style::Size),
            (MpcBackend::Gmw, Style::Depth),
        ] {
            let sc = relu_of(q0, style);
            let ands = (sc.circuit.stats().and as usize * n) as f64;
            let f = relu_session(
                backend,
                &sc,
                q0,
                &[64, n],
                MemChannel::pair(ChannelConfig::default()),
            )?;
            let k = if backend == MpcBackend::Yao { 0 } else { 2 };
            v[k].push(f.off_s / ands);
            v[k + 1].push(f.on_s / ands);
        }
    }
    let med = |x: &mut Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    Ok([
        med(&mut v[0]),
        med(&mut v[1]),
        med(&mut v[2]),
        med(&mut v[3]),
    ])
}

/// `mp2ml-bench cost`: the fixed Yao costs of `compiler/src/cost.rs` over in-memory channels:
/// (a session's first step beyond a later one: the base OTs, `YAO_SESSION_S`; a later step of
/// one ReLU instance, offline and online: `YAO_STEP_S`), medians of `repeats`.
pub fn fixed_constants(q0: u64, repeats: usize) -> BenchResult<[f64; 2]> {
    let sc = relu_of(q0, Style::Size);
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(1) {
        let pair = || MemChannel::pair(ChannelConfig::default());
        let f = relu_session(MpcBackend::Yao, &sc, q0, &[1], pair())?;
        let l = relu_session(MpcBackend::Yao, &sc, q0, &[1, 1], pair())?;
        first.push(f.off_s + f.on_s);
        later.push(l.off_s + l.on_s);
    }
    let med = |x: &mut Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (f, l) = (med(&mut first), med(&mut later));
    Ok([(f - l).max(0.0), l])
}

/// CryptoNets-ReLU compiled for `network` into `work` (for the GMW/Yao comparison).
pub fn compile_for(work: &Path, network: &mp2ml_ir::plan::NetworkProfile) -> BenchResult<PathBuf> {
    let onnx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/cryptonets_relu.onnx");
    let dir = work.join(format!("{}ms_{}mbit", network.rtt_ms, network.mbit_s));
    Ok(crate::run::compile_model_for(&onnx, &dir, network)?.0)
}

/// The bundled MNIST test digits (values) and labels.
pub fn test_digits(models: &Path) -> BenchResult<(Vec<f32>, Vec<i64>)> {
    let (_, x) = mp2ml_runtime::npy::read_f32(&models.join("mnist_test_x.npy"))
        .map_err(|e| e.to_string())?;
    let y = mp2ml_runtime::npy::read_labels(&models.join("mnist_test_y.npy"))
        .map_err(|e| e.to_string())?;
    Ok((x, y))
}

/// A TCP pair, through a relay of `link` if given.
pub fn tcp_pair(link: Option<Link>) -> BenchResult<(TcpChannel, TcpChannel, Option<Relay>)> {
    let cfg = ChannelConfig {
        read_timeout: Duration::from_secs(120),
        write_timeout: Duration::from_secs(120),
        ..ChannelConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let relay = match link {
        Some(l) => Some(Relay::start("127.0.0.1:0", addr, l).map_err(|e| e.to_string())?),
        None => None,
    };
    let to: SocketAddr = relay.as_ref().map_or(addr, Relay::addr);
    let t = std::thread::spawn(move || TcpChannel::connect(to, cfg));
    let server = TcpChannel::accept(&listener, cfg).map_err(|e| e.to_string())?;
    let client = t
        .join()
        .map_err(|_| "connect thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((server, client, relay))
}

/// The networks of the comparison: loopback, and the relay as LAN and WAN.
fn networks() -> Vec<(&'static str, Option<NetworkProfile>)> {
    vec![
        ("loopback", None),
        ("LAN 0.2 ms, 1 Gbit/s", Some(NetworkProfile::LAN)),
        ("WAN 40 ms, 100 Mbit/s", Some(NetworkProfile::WAN)),
    ]
}

fn link_of(p: &NetworkProfile) -> Link {
    Link::new(p.rtt_ms, p.mbit_s)
}

/// CryptoNets-ReLU at `images` images, one session per back end and network; the plan is
/// compiled for each network (`--network`) and run with `--mpc` overrides.
struct E2e {
    network: &'static str,
    choice: String,
    yao: (f64, f64, f64, f64),
    gmw: (f64, f64, f64, f64),
}

fn e2e(plan_dir: &Path, images: usize, x: &[f32]) -> BenchResult<Vec<E2e>> {
    let mut rows = Vec::new();
    for (name, net) in networks() {
        let profile = net.unwrap_or(NetworkProfile::LAN);
        let plan = compile_for(plan_dir, &profile)?;
        let setup = load_server(&plan, 128).map_err(|e| e.to_string())?;
        let choice = setup
            .plan
            .public
            .mpc_steps
            .iter()
            .map(|s| s.backend.tag())
            .collect::<Vec<_>>()
            .join(", ");
        let per: usize = setup.plan.public.input.shape.iter().product();
        let batch = Batch {
            images,
            data: x[..images * per].to_vec(),
        };
        let mut figs = Vec::new();
        for b in [MpcBackend::Yao, MpcBackend::Gmw] {
            let opts = SessionOptions {
                timeout: Duration::from_secs(600),
                mpc: Some(b),
                ..SessionOptions::default()
            };
            let cfg = channel_config(&setup.params, &opts);
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let relay = match net {
                Some(p) => Some(
                    Relay::start("127.0.0.1:0", addr, link_of(&p)).map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            let to = relay.as_ref().map_or(addr, Relay::addr);
            let cs = client_setup_of(&setup);
            let start = Instant::now();
            let (crep, _srep) = std::thread::scope(|s| -> BenchResult<_> {
                let srv = s.spawn(|| {
                    let ch = TcpChannel::accept(&listener, cfg).map_err(|e| e.to_string())?;
                    serve(&setup, ch, &opts).map_err(|e| e.to_string())
                });
                let ch = TcpChannel::connect(to, cfg).map_err(|e| e.to_string())?;
                let c = run_client(&cs, ch, &batch, &opts).map_err(|e| e.to_string());
                let sr = srv.join().map_err(|_| "server panicked".to_string())?;
                Ok((c?.1, sr?))
            })?;
            let total = start.elapsed().as_secs_f64();
            figs.push((
                total,
                crep.seconds(Some("online")),
                crep.bytes(None) as f64 / 1e6,
                crep.bytes(Some("online")) as f64 / 1e6,
            ));
            drop(relay);
        }
        rows.push(E2e {
            network: name,
            choice,
            yao: figs[0],
            gmw: figs[1],
        });
    }
    Ok(rows)
}

/// `mp2ml-bench gmw`: the Markdown section (Table 2 rows for both back ends and three networks,
/// CryptoNets-ReLU end to end with each, the compiler's choice).
pub fn section(root: &Path, q0: u64, repeats: usize, images: usize) -> BenchResult<String> {
    let mut s = String::new();
    let k = cost_constants(q0, 2000, repeats)?;
    let _ = writeln!(
        s,
        "Per-AND compute (`mp2ml-bench cost`, 2,000 ReLUs over in-memory channels, median of {repeats}): \
         Yao {:.1} ns offline / {:.1} ns online, GMW {:.1} ns offline / {:.1} ns online; the \
         compiler's constants (`compiler/src/cost.rs`) are {:.1} / {:.1} / {:.1} / {:.1} ns.\n",
        k[0] * 1e9,
        k[1] * 1e9,
        k[2] * 1e9,
        k[3] * 1e9,
        cost::YAO_OFFLINE_S_PER_AND * 1e9,
        cost::YAO_ONLINE_S_PER_AND * 1e9,
        cost::GMW_OFFLINE_S_PER_AND * 1e9,
        cost::GMW_ONLINE_S_PER_AND * 1e9,
    );
    let size = relu_of(q0, Style::Size);
    let depth = relu_of(q0, Style::Depth);
    let (ss, ds) = (size.circuit.stats(), depth.circuit.stats());
    let _ = writeln!(
        s,
        "ReLU at q0 = {q0}: size-optimal circuit {} AND, depth {}; depth-optimized {} AND, depth {}.\n",
        ss.and, ss.and_depth, ds.and, ds.and_depth
    );
    let _ = writeln!(
        s,
        "| network | ReLUs | protocol (circuit) | offline ms | online ms | offline MB | online MB | model est. ms (offline / online) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for n in [1000usize, 2048] {
        let _ = writeln!(
            s,
            "| MP2ML (ABY, 2×56 cores, LAN) | {n} | GMW | {} | {} | {} | {} | |",
            if n == 1000 { 304 } else { 533 },
            if n == 1000 { 18 } else { 20 },
            if n == 1000 { "53.9" } else { "110.4" },
            if n == 1000 { "0.9" } else { "1.8" },
        );
    }
    for (name, net) in networks() {
        let profile = net.unwrap_or(NetworkProfile {
            rtt_ms: 0.0,
            mbit_s: 1e5,
        });
        for n in [1000usize, 2048] {
            let choice = cost::choose(&size, &depth, n, &profile, MpcObjective::Online);
            for (b, sc, label, est) in [
                (MpcBackend::Yao, &size, "Yao (size)", choice.yao),
                (MpcBackend::Gmw, &size, "GMW (size)", choice.gmw_size),
                (MpcBackend::Gmw, &depth, "GMW (depth)", choice.gmw_depth),
            ] {
                let mut v = Vec::new();
                for _ in 0..repeats.max(1) {
                    let (a, c, relay) = tcp_pair(net.as_ref().map(link_of))?;
                    v.push(relu_session(b, sc, q0, &[n], (a, c))?);
                    drop(relay);
                }
                v.sort_by(|a, b| (a.off_s + a.on_s).total_cmp(&(b.off_s + b.on_s)));
                let f = v[v.len() / 2];
                let picked = choice.backend == b
                    && (b == MpcBackend::Yao || choice.gmw_depth_circuit == (sc == &depth));
                let _ = writeln!(
                    s,
                    "| {name} | {n} | {label}{} | {:.1} | {:.1} | {:.2} | {:.3} | {:.1} / {:.1} |",
                    if picked { " ← compiler" } else { "" },
                    f.off_s * 1e3,
                    f.on_s * 1e3,
                    f.off_mb,
                    f.on_mb,
                    (est.seconds - est.online_seconds) * 1e3,
                    est.online_seconds * 1e3,
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\nTimes include each session's base OTs (as MP2ML's do). ← compiler: what \
         `cost::choose` picks for that network with the default objective (online time; \
         loopback modelled as 0 ms, 100 Gbit/s).\n"
    );
    let models = root.join("models");
    let (x, _) = test_digits(&models)?;
    let rows = e2e(&root.join("target/bench-gmw"), images, &x)?;
    let _ = writeln!(
        s,
        "CryptoNets-ReLU end to end, {images} image(s), one session per cell (`mp2ml-run --mpc`), \
         plan compiled with `--network` of the row:\n"
    );
    let _ = writeln!(
        s,
        "| network | compiler's choice per step | Yao total s | Yao online s | Yao MB (online) | GMW total s | GMW online s | GMW MB (online) | faster |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.3} | {:.1} ({:.2}) | {:.2} | {:.3} | {:.1} ({:.2}) | {} |",
            r.network,
            r.choice,
            r.yao.0,
            r.yao.1,
            r.yao.2,
            r.yao.3,
            r.gmw.0,
            r.gmw.1,
            r.gmw.2,
            r.gmw.3,
            if r.yao.0 <= r.gmw.0 { "Yao" } else { "GMW" }
        );
    }
    Ok(s)
}
