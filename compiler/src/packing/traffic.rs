//! The bytes a batch-packed session moves, message by message, as the runtime sends them.
//!
//! One function, [`batch_traffic`], used by the report and by the packing choice. It follows the
//! runtime's wire format (`runtime/src/wire.rs`, `runtime/ckks/src/serial.rs`,
//! `runtime/mpc/src/{yao,ot}.rs`):
//! - every frame carries a 4-byte length; a polynomial (a c1 half or a c0 window) is a 16-byte
//!   header, a 4-byte width and ⌈width·log2 q_i / 8⌉ bytes per limb of its level;
//! - handshake: the hello (magic, version, image count, plan hash), the verdict, the public key
//!   (header, `b` at the top level, a 32-byte seed for `a`);
//! - precompute: the client's seeds (32 bytes each, 256 per frame) of every ciphertext it will
//!   send (the input and every MPC output); the server's masked c1 (full N, level 0) of every
//!   MPC input value and (output level) of every output value;
//! - online: the input's c0 windows (width = images) at the input level; per MPC step the masked
//!   c0 windows at level 0 and the client's c0 windows of the outputs at the step's level;
//!   the output's c0 windows;
//! - Yao per step: circuit fingerprint (32), sequence numbers (8 each way), the IKNP columns
//!   (κ = 128 columns of ⌈m/128⌉ blocks for m evaluator input bits), the garbler's label seed
//!   (16), the tables (32 bytes per AND gate), the output decoding bits; online the correction
//!   bits (⌈m/8⌉) and two 16-byte masked labels per OT; once per session the κ base OTs
//!   (ristretto255 points: 32 bytes from the sender, 32 per OT back).

use mp2ml_ir::plan::ClientPlan;
use serde::Serialize;

/// Frame length prefix.
const FRAME: f64 = 4.0;
/// Serialized polynomial header (header + width word).
const POLY_HEADER: f64 = 20.0;
/// Seeds per seed frame.
const SEEDS_PER_FRAME: f64 = 256.0;
/// IKNP security parameter (base OTs, columns).
const KAPPA: f64 = 128.0;

/// Bytes of one MPC step.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepTraffic {
    /// Step name.
    pub name: String,
    /// Ciphertext halves: masked c0 windows in, the client's c0 windows out.
    pub he: f64,
    /// Garbled circuit: tables, labels, OTs, decoding bits.
    pub yao: f64,
}

/// Bytes of one batch-packed session, by part (both directions summed).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Traffic {
    /// Images in the session (one ciphertext group when at most N).
    pub images: usize,
    /// Hello, verdict, public key.
    pub handshake: f64,
    /// Seeds and c1 halves.
    pub precompute: f64,
    /// Input c0 windows.
    pub input: f64,
    /// Per MPC step.
    pub steps: Vec<StepTraffic>,
    /// Base OTs (once per session).
    pub base_ots: f64,
    /// Output c0 windows.
    pub output: f64,
}

impl Traffic {
    /// All bytes of the session.
    pub fn total(&self) -> f64 {
        self.handshake
            + self.precompute
            + self.input
            + self.base_ots
            + self.output
            + self.steps.iter().map(|s| s.he + s.yao).sum::<f64>()
    }

    /// Bytes of ciphertexts, keys and seeds (everything but the garbled circuits).
    pub fn he_total(&self) -> f64 {
        self.total() - self.base_ots - self.steps.iter().map(|s| s.yao).sum::<f64>()
    }

    /// Bytes per image.
    pub fn per_image(&self) -> f64 {
        self.total() / self.images.max(1) as f64
    }
}

/// The bytes of a session of `images` images (at most N: one ciphertext group) under plan `p`.
pub fn batch_traffic(p: &ClientPlan, images: usize) -> Traffic {
    let n = p.params.n();
    let images = images.clamp(1, n.max(1));
    let bits: Vec<f64> = p
        .params
        .moduli
        .iter()
        .map(|&q| f64::from(64 - q.leading_zeros()))
        .collect();
    // One framed polynomial of `width` coefficients at `level`.
    let poly = |level: usize, width: usize| {
        FRAME
            + POLY_HEADER
            + bits
                .iter()
                .take(level + 1)
                .map(|b| (width as f64 * b / 8.0).ceil())
                .sum::<f64>()
    };
    let seeds = |count: usize| {
        let c = count as f64;
        32.0 * c + FRAME * (c / SEEDS_PER_FRAME).ceil()
    };
    let top = p.params.moduli.len().saturating_sub(1);
    let in_len: usize = p.input.shape.iter().product();
    let out_len: usize = p.output.shape.iter().product();
    let hash_len = 64.0;
    let mut t = Traffic {
        images,
        handshake: FRAME + 8.0 + 4.0 + 8.0 + hash_len + FRAME + (poly(top, n) + 32.0),
        ..Default::default()
    };
    let uploads: usize = in_len + p.mpc_steps.iter().map(|s| s.values_out).sum::<usize>();
    t.precompute = seeds(uploads)
        + p.mpc_steps
            .iter()
            .map(|s| s.values_in as f64 * poly(0, n))
            .sum::<f64>()
        + out_len as f64 * poly(p.output.level, n);
    t.input = in_len as f64 * poly(p.input.level, images);
    t.output = out_len as f64 * poly(p.output.level, images);
    let mut any_ot = false;
    for s in &p.mpc_steps {
        let Some(c) = p.circuits.get(s.circuit) else {
            continue;
        };
        let inst = (s.instances * images) as f64;
        let stats = c.circuit.stats();
        let ots = f64::from(c.circuit.evaluator_inputs) * inst;
        let outs = c.circuit.outputs.len() as f64 * inst;
        any_ot |= ots > 0.0;
        let yao = 32.0
            + 8.0
            + 8.0
            + 16.0
            + KAPPA * 16.0 * (ots / KAPPA).ceil()
            + 32.0 * stats.and as f64 * inst
            + (outs / 8.0).ceil()
            + (ots / 8.0).ceil()
            + 32.0 * ots;
        let he =
            s.values_in as f64 * poly(0, images) + s.values_out as f64 * poly(s.out_level, images);
        t.steps.push(StepTraffic {
            name: s.name.clone(),
            he,
            yao,
        });
    }
    if any_ot {
        t.base_ots = 32.0 + 32.0 * KAPPA;
    }
    t
}
