//! Criterion microbenchmarks of the 2PC primitives (the Markdown tables for the docs come from
//! `benches/mpc.rs`).
//!
//! Run: `cargo bench -p mp2ml-mpc --bench primitives` (short run: append
//! `-- --warm-up-time 1 --measurement-time 2`; one group: append e.g. `-- ot`).
//!
//! * `gc`: half-gates garbling and evaluation of an AND-only circuit, one core, no channel, and
//!   a whole Garbler/Evaluator session (base OTs, IKNP, tables, decoding) over [`MemChannel`];
//!   throughput in AND gates.
//! * `ot`: 1,000 IKNP random OTs and one batch of 128 Chou–Orlandi base OTs, two threads over
//!   [`MemChannel`]; throughput in OTs.

#![allow(clippy::unwrap_used)]

use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mp2ml_ir::circuit::{Circuit, Gate};
use mp2ml_mpc::crypto::FixedKeyHash;
use mp2ml_mpc::gc::{and_count, eval_chunk, garble_chunk, Chunk, Scratch};
use mp2ml_mpc::ot::{base_ot_receive, base_ot_send, IknpReceiver, IknpSender, KAPPA};
use mp2ml_mpc::{ChannelConfig, Evaluator, Garbler, MemChannel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// `k` garbler and `k` evaluator bits: ANDs them pairwise, then ANDs the results together in a
/// chain (2k − 1 AND gates, one output).
fn and_circuit(k: u32) -> Circuit {
    let mut gates: Vec<Gate> = (0..k).map(|i| Gate::And(i, k + i)).collect();
    let mut acc = 2 * k;
    for i in 1..k {
        gates.push(Gate::And(acc, 2 * k + i));
        acc = 2 * k + gates.len() as u32 - 1;
    }
    Circuit {
        name: format!("and_{k}"),
        garbler_inputs: k,
        evaluator_inputs: k,
        gates,
        outputs: vec![acc],
    }
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn garbled_circuits(c: &mut Criterion) {
    let circuit = and_circuit(128);
    let ands = and_count(&circuit);
    let n = 1024; // instances per chunk
    let hash = FixedKeyHash::new();
    let mut r = rng(1);
    let delta = r.random::<u128>() | 1;
    let (wires, inputs) = (circuit.num_wires() as usize, circuit.num_inputs() as usize);
    let mut zero = vec![0u128; wires * n];
    zero[..inputs * n].iter_mut().for_each(|l| *l = r.random());
    let (mut tables, mut scratch) = (Vec::new(), Scratch::default());
    let chunk = Chunk { first: 0, n };

    let mut g = c.benchmark_group("gc");
    g.throughput(Throughput::Elements((ands * n) as u64));
    g.bench_function("garble_1024x255_and", |b| {
        b.iter(|| {
            let s = &mut scratch;
            garble_chunk(&circuit, &hash, delta, chunk, &mut zero, &mut tables, s).unwrap()
        })
    });
    // Evaluate with the zero labels as active inputs.
    let mut active = vec![0u128; wires * n];
    active[..inputs * n].copy_from_slice(&zero[..inputs * n]);
    g.bench_function("eval_1024x255_and", |b| {
        b.iter(|| eval_chunk(&circuit, &hash, chunk, &mut active, &tables, &mut scratch).unwrap())
    });

    // A whole session: offline (garbling, tables, IKNP) then online (OT derandomization).
    let n = 256;
    let k = circuit.garbler_inputs as usize;
    let bits: Vec<bool> = (0..n * k).map(|_| r.random()).collect();
    g.throughput(Throughput::Elements((ands * n) as u64));
    g.sample_size(20);
    g.bench_function("session_256x255_and", |b| {
        b.iter(|| {
            let (gch, ech) = MemChannel::pair(ChannelConfig::default());
            let (c2, g_bits) = (circuit.clone(), bits.clone());
            let server = thread::spawn(move || {
                let mut garbler = Garbler::new(gch, rng(2));
                let h = garbler.offline(&c2, n, &g_bits).unwrap();
                garbler.online(h).unwrap();
            });
            let mut ev = Evaluator::new(ech, rng(3));
            let h = ev.offline(&circuit, n).unwrap();
            let out = ev.online(h, &bits).unwrap();
            server.join().unwrap();
            out
        })
    });
    g.finish();
}

/// Times `iters` rounds of a two-party step after a one-off setup: the `a` side runs on this
/// thread, the `b` side on another, over one in-memory channel pair.
fn two_party<A, B>(
    iters: u64,
    setup_a: impl FnOnce(&mut MemChannel) -> A,
    mut step_a: impl FnMut(&mut A, &mut MemChannel),
    setup_b: impl FnOnce(&mut MemChannel) -> B + Send + 'static,
    mut step_b: impl FnMut(&mut B, &mut MemChannel) + Send + 'static,
) -> Duration {
    let (mut a, mut b) = MemChannel::pair(ChannelConfig::default());
    let peer = thread::spawn(move || {
        let mut s = setup_b(&mut b);
        (0..iters).for_each(|_| step_b(&mut s, &mut b));
    });
    let mut s = setup_a(&mut a);
    let start = Instant::now();
    (0..iters).for_each(|_| step_a(&mut s, &mut a));
    peer.join().unwrap();
    start.elapsed()
}

fn oblivious_transfer(c: &mut Criterion) {
    let mut g = c.benchmark_group("ot");
    let m = 1000;
    g.throughput(Throughput::Elements(m as u64));
    g.bench_function("iknp_random_1000", |b| {
        b.iter_custom(|iters| {
            let mut r = rng(4);
            let choices: Vec<bool> = (0..m).map(|_| r.random()).collect();
            two_party(
                iters,
                |ch| IknpSender::setup(ch, &mut rng(5)).unwrap(),
                |s, ch| drop(s.extend_random(ch, m).unwrap()),
                |ch| IknpReceiver::setup(ch, &mut rng(6)).unwrap(),
                move |r, ch| drop(r.extend_random(ch, &choices).unwrap()),
            )
        })
    });
    g.throughput(Throughput::Elements(KAPPA as u64));
    g.bench_function("base_ot_128", |b| {
        b.iter_custom(|iters| {
            two_party(
                iters,
                |_| rng(7),
                |r, ch| drop(base_ot_send(ch, r, KAPPA).unwrap()),
                |_| rng(8),
                |r, ch| drop(base_ot_receive(ch, r, &[true; KAPPA]).unwrap()),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = garbled_circuits, oblivious_transfer
}
criterion_main!(benches);
