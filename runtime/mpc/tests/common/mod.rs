//! Test and bench helpers: the production ReLU circuit
//! ([`mp2ml_ir::circuit::activations::relu`], the one the compiler writes into plans) at a
//! 32-bit share modulus, its input encoding and an integer reference.
#![allow(dead_code)]

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use mp2ml_ir::circuit::activations::{relu, CircuitParams};
use mp2ml_ir::circuit::{from_bits, to_bits, Circuit, Gate, ShareCircuit};
use mp2ml_mpc::{ChannelConfig, MemChannel, TcpChannel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Share modulus: the prime 2^32 − 5, so that shares are 32 bits wide as in MP2ML's Table 2.
pub const Q0: u128 = 4_294_967_291;
/// Statistical security bits of the server's output mask.
pub const SIGMA: u32 = 40;
/// Bits per share.
pub const W: u32 = 32;
/// Bits of the server's output mask r' (`out_bits + σ` with `out_bits = W − 1`).
pub const MASK: u32 = W - 1 + SIGMA;
/// Bits of each masked output `z = y + r'`.
pub const Z: u32 = MASK + 1;

/// The production ReLU on additive shares mod [`Q0`], with its layout.
pub fn relu_share() -> ShareCircuit {
    let sc = relu(&CircuitParams {
        q0: Q0,
        trunc: 0,
        sigma: SIGMA,
        style: Default::default(),
    });
    assert_eq!(
        (sc.share_bits, sc.mask_bits, sc.z_bits(), sc.input_offset),
        (W, MASK, Z, 0),
        "layout of the production ReLU"
    );
    sc
}

/// The Boolean circuit of [`relu_share`].
pub fn relu_circuit() -> Circuit {
    relu_share().circuit
}

/// Integer reference of the ReLU circuit: client share `a`, server share `b`, mask `r'`:
/// `v = (a + b) mod q0`, `y = v` if `v ≤ ⌊q0/2⌋` (a non-negative value) else 0, `z = y + r'`.
pub fn relu_reference(a: u128, b: u128, r: u128) -> u128 {
    let v = (a + b) % Q0;
    let y = if v <= Q0 / 2 { v } else { 0 };
    (y + r) & ((1u128 << Z) - 1)
}

/// Bits of one ReLU instance in the [`ShareCircuit`] layout: (garbler bits: its share, then the
/// mask; evaluator bits: the client's share).
pub fn relu_inputs(a: u128, b: u128, r: u128) -> (Vec<bool>, Vec<bool>) {
    let mut g = to_bits(b, W);
    g.extend(to_bits(r, MASK));
    (g, to_bits(a, W))
}

/// `n` uniformly random bits.
pub fn random_bits(r: &mut ChaCha20Rng, n: usize) -> Vec<bool> {
    (0..n).map(|_| r.random()).collect()
}

/// A random valid circuit; every gate reads earlier wires, outputs include inputs and gates.
pub fn random_circuit(r: &mut ChaCha20Rng, gi: u32, ei: u32, gates: usize, outs: usize) -> Circuit {
    let base = gi + ei;
    let mut gs = Vec::with_capacity(gates);
    for i in 0..gates as u32 {
        let avail = base + i;
        let (a, b) = (r.random_range(0..avail), r.random_range(0..avail));
        gs.push(match r.random_range(0..5) {
            0 | 1 => Gate::And(a, b),
            2 | 3 => Gate::Xor(a, b),
            _ => Gate::Inv(a),
        });
    }
    let total = base + gates as u32;
    let outputs = (0..outs).map(|_| r.random_range(0..total)).collect();
    Circuit {
        name: "random".into(),
        garbler_inputs: gi,
        evaluator_inputs: ei,
        gates: gs,
        outputs,
    }
}

/// A seeded generator.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Plaintext outputs of every instance (instance-major), via the reference evaluator.
pub fn plaintext(c: &Circuit, n: usize, g: &[bool], e: &[bool]) -> Vec<bool> {
    let (gi, ei) = (c.garbler_inputs as usize, c.evaluator_inputs as usize);
    (0..n)
        .flat_map(|t| {
            c.eval(&g[t * gi..(t + 1) * gi], &e[t * ei..(t + 1) * ei])
                .expect("valid circuit")
        })
        .collect()
}

/// An in-memory channel pair with a 20 s read timeout.
pub fn mem() -> (MemChannel, MemChannel) {
    MemChannel::pair(ChannelConfig {
        read_timeout: Duration::from_secs(20),
        ..Default::default()
    })
}

/// A loopback TCP channel pair: (accepting side, connecting side).
pub fn tcp_pair(config: ChannelConfig) -> (TcpChannel, TcpChannel) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let t = thread::spawn(move || TcpChannel::connect(addr, config));
    let server = TcpChannel::accept(&listener, config).expect("accept");
    (server, t.join().expect("thread").expect("connect"))
}

/// A channel configuration that gives up after `timeout` either way.
pub fn quick(timeout: Duration) -> ChannelConfig {
    ChannelConfig {
        read_timeout: timeout,
        write_timeout: timeout,
        ..Default::default()
    }
}

/// Every gate type on every kind of operand (garbler/server wires g0, g1 and
/// evaluator/client wires e0, e1), with all 16 input combinations, one per instance: the
/// circuit, the instances, the garbler's and the evaluator's inputs.
pub fn all_gates() -> (Circuit, usize, Vec<bool>, Vec<bool>) {
    let gates = vec![
        Gate::And(0, 2), // garbler ∧ evaluator
        Gate::And(0, 1), // garbler ∧ garbler
        Gate::And(2, 3), // evaluator ∧ evaluator
        Gate::Xor(1, 3),
        Gate::Inv(2),
        Gate::And(8, 4), // ¬e0 ∧ (g0 ∧ e0) = 0
        Gate::Inv(9),
        Gate::And(4, 4), // same wire twice
        Gate::Xor(2, 2), // constant 0
        Gate::Inv(12),   // constant 1
    ];
    let c = Circuit {
        name: "gates".into(),
        garbler_inputs: 2,
        evaluator_inputs: 2,
        gates,
        outputs: (0..14).collect(),
    };
    let n = 16;
    let mut g = Vec::new();
    let mut e = Vec::new();
    for t in 0..n {
        g.extend([t & 1 == 1, t & 2 == 2]);
        e.extend([t & 4 == 4, t & 8 == 8]);
    }
    (c, n, g, e)
}

/// `n` ReLU instances on random shares (the first two with the edge values 0 and Q0 − 1):
/// the garbler's and the evaluator's input bits and the expected masked outputs.
pub fn relu_batch(r: &mut ChaCha20Rng, n: usize) -> (Vec<bool>, Vec<bool>, Vec<u128>) {
    let mut g = Vec::new();
    let mut e = Vec::new();
    let mut want = Vec::new();
    for i in 0..n {
        let a = match i {
            0 => 0,
            1 => Q0 - 1,
            _ => r.random_range(0..Q0),
        };
        let b = r.random_range(0..Q0);
        let mask = r.random_range(0..1u128 << MASK);
        let (gb, eb) = relu_inputs(a, b, mask);
        g.extend(gb);
        e.extend(eb);
        want.push(relu_reference(a, b, mask));
    }
    (g, e, want)
}

/// The masked output words of a ReLU batch's output bits.
pub fn decode_words(out: &[bool]) -> Vec<u128> {
    out.chunks(Z as usize).map(from_bits).collect()
}
