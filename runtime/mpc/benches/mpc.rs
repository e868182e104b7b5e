//! Benchmarks for garbling, OT and MP2ML's Table 2 (ReLU with Yao), printed as tables.
//!
//! Run: `cargo bench -p mp2ml-mpc --bench mpc` (add `-- quick` for a short run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::thread;
use std::time::Instant;

use mp2ml_mpc::crypto::FixedKeyHash;
use mp2ml_mpc::gc::{and_count, eval_chunk, garble_chunk, Chunk, Scratch};
use mp2ml_mpc::ot::{base_ot_receive, base_ot_send, IknpReceiver, IknpSender, KAPPA};
use mp2ml_mpc::{ChannelConfig, Evaluator, Garbler, MemChannel, MpcError, PhaseReport, TcpChannel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn tcp_pair() -> (TcpChannel, TcpChannel) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let t = thread::spawn(move || TcpChannel::connect(addr, ChannelConfig::default()));
    let server = TcpChannel::accept(&listener, ChannelConfig::default()).expect("accept");
    (server, t.join().expect("thread").expect("connect"))
}

/// Garbling and evaluation throughput on one core, with no channel.
fn bench_gc(reps: usize) {
    let c = common::relu_circuit();
    let ands = and_count(&c);
    println!(
        "\n## Half-gates, one core (`{}`: {ands} AND, {} XOR/INV per instance)",
        c.name,
        c.gates.len() - ands
    );
    println!("Best / median of {reps} runs over a chunk of n instances (labels wire-major).");
    println!("| n | garbling M AND/s (best / median) | evaluation M AND/s (best / median) | table bytes per AND |");
    println!("|---|---|---|---|");
    for n in [256, 1024, 4096] {
        bench_gc_chunk(&c, n, reps);
    }
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn bench_gc_chunk(c: &mp2ml_ir::circuit::Circuit, n: usize, reps: usize) {
    let ands = and_count(c);
    let hash = FixedKeyHash::new();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let delta: u128 = rng.random::<u128>() | 1;
    let wires = c.num_wires() as usize;
    let inputs = c.num_inputs() as usize;
    let mut zero = vec![0u128; wires * n];
    for l in zero.iter_mut().take(inputs * n) {
        *l = rng.random();
    }
    let mut tables = Vec::new();
    let mut scratch = Scratch::default();
    let mut g_times = Vec::new();
    for r in 0..reps {
        let start = Instant::now();
        garble_chunk(
            c,
            &hash,
            delta,
            Chunk {
                first: (r * n) as u64,
                n,
            },
            &mut zero,
            &mut tables,
            &mut scratch,
        )
        .expect("garble");
        g_times.push(start.elapsed().as_secs_f64());
    }
    // Evaluate the last garbling with all-zero inputs (active = zero labels).
    let first = ((reps - 1) * n) as u64;
    let mut active = vec![0u128; wires * n];
    active[..inputs * n].copy_from_slice(&zero[..inputs * n]);
    let mut e_times = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let chunk = Chunk { first, n };
        eval_chunk(c, &hash, chunk, &mut active, &tables, &mut scratch).expect("eval");
        e_times.push(start.elapsed().as_secs_f64());
    }
    // Zero inputs: every output label must be the zero label (a sanity check on the timing).
    let ok = c.outputs.iter().all(|&o| {
        (0..n).all(|t| {
            let w = o as usize * n + t;
            active[w] == zero[w] || active[w] == zero[w] ^ delta
        })
    });
    assert!(ok, "evaluation produced labels outside {{W0, W1}}");
    let total = (ands * n) as f64 / 1e6;
    println!(
        "| {n} | {:.1} / {:.1} | {:.1} / {:.1} | {} |",
        total / best(&g_times),
        total / median(g_times.clone()),
        total / best(&e_times),
        total / median(e_times.clone()),
        tables.len() * 16 / (ands * n)
    );
}

/// Base OT and IKNP random OTs over an in-memory channel (two threads).
fn bench_ot(reps: usize, m: usize) {
    let mut base = Vec::new();
    let mut iknp = Vec::new();
    for r in 0..reps {
        let (mut a, mut b) = MemChannel::pair(ChannelConfig::default());
        let start = Instant::now();
        let t = thread::spawn(move || -> Result<_, MpcError> {
            let mut rng = ChaCha20Rng::seed_from_u64(r as u64);
            base_ot_receive(&mut b, &mut rng, &[true; KAPPA])?;
            let mut recv = IknpReceiver::setup(&mut b, &mut rng)?;
            let choices: Vec<bool> = (0..m).map(|_| rng.random()).collect();
            let s = Instant::now();
            recv.extend_random(&mut b, &choices)?;
            Ok(s)
        });
        let mut rng = ChaCha20Rng::seed_from_u64(1000 + r as u64);
        base_ot_send(&mut a, &mut rng, KAPPA).expect("base send");
        base.push(start.elapsed().as_secs_f64());
        let mut send = IknpSender::setup(&mut a, &mut rng).expect("setup");
        let _ = send.extend_random(&mut a, m).expect("extend");
        let s = t.join().expect("thread").expect("receiver");
        iknp.push(s.elapsed().as_secs_f64());
    }
    println!("\n## Oblivious transfer (two threads, in-memory channel)");
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| base OT (Chou–Orlandi, ristretto255), 128 OTs | {:.1} ms ({:.0} OT/s) |",
        median(base.clone()) * 1e3,
        KAPPA as f64 / median(base)
    );
    println!(
        "| IKNP random OT, {m} OTs | {:.1} ms ({:.1} M OT/s) |",
        median(iknp.clone()) * 1e3,
        m as f64 / median(iknp) / 1e6
    );
}

struct Table2Row {
    offline_ms: f64,
    online_ms: f64,
    offline_mb: f64,
    online_mb: f64,
}

/// One fresh session (base OTs included) on loopback TCP: offline then online.
fn table2_once(n: usize, seed: u64) -> Table2Row {
    let c = common::relu_circuit();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut g = Vec::new();
    let mut e = Vec::new();
    let mut want = Vec::new();
    for _ in 0..n {
        let (a, b, r) = (
            rng.random_range(0..common::Q0),
            rng.random_range(0..common::Q0),
            rng.random_range(0..1u128 << common::MASK),
        );
        let (gb, eb) = common::relu_inputs(a, b, r);
        g.extend(gb);
        e.extend(eb);
        want.push(common::relu_reference(a, b, r));
    }
    let (gch, ech) = tcp_pair();
    let c2 = c.clone();
    let server = thread::spawn(move || -> Result<Vec<PhaseReport>, MpcError> {
        let mut garbler = Garbler::from_os_rng(gch)?;
        let h = garbler.offline(&c2, n, &g)?;
        garbler.online(h)?;
        Ok(garbler.reports().to_vec())
    });
    let mut ev = Evaluator::from_os_rng(ech).expect("os rng");
    let h = ev.offline(&c, n).expect("offline");
    let out = ev.online(h, &e).expect("online");
    let got: Vec<u128> = out
        .chunks(common::Z as usize)
        .map(mp2ml_ir::circuit::from_bits)
        .collect();
    assert_eq!(got, want, "ReLU outputs");
    let gr = server.join().expect("thread").expect("server");
    let er = ev.reports();
    let ms = |a: &PhaseReport, b: &PhaseReport| a.elapsed.max(b.elapsed).as_secs_f64() * 1e3;
    // Traffic in both directions, counted on the client.
    let mb = |r: &PhaseReport| (r.sent + r.received) as f64 / 1e6;
    Table2Row {
        offline_ms: ms(&gr[0], &er[0]),
        online_ms: ms(&gr[1], &er[1]),
        offline_mb: mb(&er[0]),
        online_mb: mb(&er[1]),
    }
}

fn bench_table2(reps: usize) {
    let ands = common::relu_circuit().stats().and;
    println!(
        "\n## MP2ML Table 2: ReLU with Yao, loopback TCP, fresh session each (median of {reps})"
    );
    println!(
        "Production ReLU circuit: {}-bit shares mod q0 = {}, {}-bit mask, {ands} AND gates per ReLU.",
        common::W,
        common::Q0,
        common::MASK
    );
    println!("| ReLUs | offline ms | online ms | offline MB | online MB | MP2ML offline ms | MP2ML online ms | MP2ML offline MB | MP2ML online MB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (n, paper) in [(1000, "161 | 57 | 22.3 | 2.0"), (2048, "– | – | – | –")] {
        let _ = table2_once(n, 0); // warm-up
        let rows: Vec<Table2Row> = (0..reps).map(|r| table2_once(n, r as u64 + 1)).collect();
        let med = |f: fn(&Table2Row) -> f64| median(rows.iter().map(f).collect());
        println!(
            "| {n} | {:.1} | {:.1} | {:.2} | {:.2} | {paper} |",
            med(|r| r.offline_ms),
            med(|r| r.online_ms),
            med(|r| r.offline_mb),
            med(|r| r.online_mb)
        );
    }
}

/// Peak resident memory of this process (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1e3)
}

/// Streams `n` ReLUs (garble → send → OT → evaluate, chunk by chunk) on loopback TCP, both
/// parties in this process; prints one table row including the process's peak memory.
fn bench_stream(n: usize) {
    let c = common::relu_circuit();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let g: Vec<bool> = (0..n * c.garbler_inputs as usize)
        .map(|_| rng.random())
        .collect();
    let e: Vec<bool> = (0..n * c.evaluator_inputs as usize)
        .map(|_| rng.random())
        .collect();
    let (gch, ech) = tcp_pair();
    let start = Instant::now();
    let c2 = c.clone();
    let server = thread::spawn(move || {
        Garbler::from_os_rng(gch).and_then(|mut g2| g2.run_streaming(&c2, n, &g))
    });
    let mut ev = Evaluator::from_os_rng(ech).expect("os rng");
    let out = ev.run_streaming(&c, n, &e).expect("stream");
    server.join().expect("thread").expect("server");
    let secs = start.elapsed().as_secs_f64();
    let r = &ev.reports()[0];
    let ands = c.stats().and as f64 * n as f64;
    println!(
        "| {n} | {:.0} ms | {:.1} M AND/s | {:.1} MB | {:.0} MB | {} output bits |",
        secs * 1e3,
        ands / secs / 1e6,
        (r.sent + r.received) as f64 / 1e6,
        peak_rss_mb(),
        out.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "stream-only") {
        let n = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        bench_stream(n);
        return;
    }
    let quick = args.iter().any(|a| a == "quick");
    let reps = if quick { 3 } else { 11 };
    let t = Instant::now();
    bench_gc(reps);
    bench_ot(reps, if quick { 1 << 16 } else { 1 << 20 });
    bench_table2(reps);
    // Streaming in a child process so that its peak memory is its own.
    println!("\n## Streaming (run_streaming), loopback TCP, both parties in one process");
    println!("Default chunk budget (`GcConfig::default()`, 8 MiB per party per chunk).");
    println!("| ReLUs | time | throughput | traffic | peak RSS (both parties) | check |");
    println!("|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("current exe");
    for n in [10_000usize, 100_000] {
        let out = std::process::Command::new(&exe)
            .args(["stream-only", &n.to_string()])
            .output()
            .expect("child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    eprintln!("(bench took {:?})", t.elapsed());
}
