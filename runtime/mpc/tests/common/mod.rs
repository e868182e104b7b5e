//! Test and bench helpers: the production ReLU circuit
//! ([`mp2ml_ir::circuit::activations::relu`], the one the compiler writes into plans) at a
//! 32-bit share modulus, its input encoding and an integer reference.
#![allow(dead_code)]

use mp2ml_ir::circuit::activations::{relu, CircuitParams};
use mp2ml_ir::circuit::{to_bits, Circuit, Gate, ShareCircuit};
use rand::Rng;
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
