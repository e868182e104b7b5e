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
//!   (ristretto255 points: 32 bytes from the sender, 32 per OT back);
//! - GMW per step (`runtime/mpc/src/gmw.rs`): fingerprint (32), sequence number (8), one
//!   16-byte input-sharing seed each way; per chunk of instances the triples, two IKNP random-OT
//!   extensions (one per direction) of up to [`GMW_OT_BATCH`] OTs each (κ columns of
//!   ⌈len/128⌉ blocks); online per chunk and AND layer both parties' `d, e` bits (⌈2·ANDs·n/8⌉
//!   each way, the first round of the step carries the 8-byte sequence number), then the
//!   server's output shares (⌈outputs·n/8⌉); once per session both IKNP directions' base OTs.

use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::plan::{ClientPlan, MpcBackend};
use serde::Serialize;

/// Frame length prefix.
const FRAME: f64 = 4.0;
/// Serialized polynomial header (header + width word).
const POLY_HEADER: f64 = 20.0;
/// Seeds per seed frame.
const SEEDS_PER_FRAME: f64 = 256.0;
/// IKNP security parameter (base OTs, columns).
const KAPPA: f64 = 128.0;
/// Random OTs per IKNP call of GMW's triples (`mp2ml_mpc::GmwConfig::ot_batch`).
const GMW_OT_BATCH: usize = 1 << 18;
/// GMW's wire memory per chunk (`mp2ml_mpc::GmwConfig::chunk_bytes`).
const GMW_CHUNK_BYTES: usize = 64 << 20;

/// Bytes of one MPC step.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepTraffic {
    /// Step name.
    pub name: String,
    /// Ciphertext halves: masked c0 windows in, the client's c0 windows out.
    pub he: f64,
    /// The Boolean circuit: Yao's tables, labels, OTs and decoding bits, or GMW's triples'
    /// OT extensions, opened bits and output shares.
    pub mpc: f64,
    /// The back end the step runs.
    pub backend: MpcBackend,
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
            + self.steps.iter().map(|s| s.he + s.mpc).sum::<f64>()
    }

    /// Bytes of ciphertexts, keys and seeds (everything but the garbled circuits).
    pub fn he_total(&self) -> f64 {
        self.total() - self.base_ots - self.steps.iter().map(|s| s.mpc).sum::<f64>()
    }

    /// Bytes per image.
    pub fn per_image(&self) -> f64 {
        self.total() / self.images.max(1) as f64
    }
}

/// The bytes of GMW on `inst` instances of `c` (one step, base OTs excluded).
fn gmw_bytes(c: &ShareCircuit, inst: usize) -> f64 {
    let stats = c.circuit.stats();
    let ands = stats.and as usize;
    let wires = stats.wires.max(1) as usize;
    let chunk = ((GMW_CHUNK_BYTES / (8 * wires)).max(1) * 64).min(inst.max(1));
    // AND gates per AND layer.
    let layers = c.circuit.and_layers();
    let outs = c.circuit.outputs.len();
    let mut b = 32.0 + 8.0 + 16.0 + 16.0;
    let mut first = 0;
    while first < inst {
        let n = chunk.min(inst - first);
        let mut m = ands * n;
        while m > 0 {
            let len = m.min(GMW_OT_BATCH);
            b += 2.0 * KAPPA * 16.0 * (len as f64 / KAPPA).ceil();
            m -= len;
        }
        for &l in &layers {
            b += 2.0 * ((2 * l * n) as f64 / 8.0).ceil();
        }
        b += ((outs * n) as f64 / 8.0).ceil();
        first += n;
    }
    // The sequence number, each way, with the first round (or alone without AND gates).
    b + 16.0
}

/// The bytes of a session of `images` images (at most N: one ciphertext group) under plan `p`,
/// every step on the plan's back end.
pub fn batch_traffic(p: &ClientPlan, images: usize) -> Traffic {
    batch_traffic_with(p, images, None)
}

/// [`batch_traffic`] with every step on `mpc` if given (`mp2ml-run --mpc`).
pub fn batch_traffic_with(p: &ClientPlan, images: usize, mpc: Option<MpcBackend>) -> Traffic {
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
    let (mut any_yao, mut any_gmw) = (false, false);
    for s in &p.mpc_steps {
        let backend = mpc.unwrap_or(s.backend);
        let Ok(c) = p.circuit(s.circuit_for(backend)) else {
            continue;
        };
        let inst = (s.instances * images) as f64;
        let he =
            s.values_in as f64 * poly(0, images) + s.values_out as f64 * poly(s.out_level, images);
        let mpc_bytes = match backend {
            MpcBackend::Yao => {
                let stats = c.circuit.stats();
                let ots = f64::from(c.circuit.evaluator_inputs) * inst;
                let outs = c.circuit.outputs.len() as f64 * inst;
                any_yao |= ots > 0.0;
                32.0 + 8.0
                    + 8.0
                    + 16.0
                    + KAPPA * 16.0 * (ots / KAPPA).ceil()
                    + 32.0 * stats.and as f64 * inst
                    + (outs / 8.0).ceil()
                    + (ots / 8.0).ceil()
                    + 32.0 * ots
            }
            MpcBackend::Gmw => {
                any_gmw = true;
                gmw_bytes(c, s.instances * images)
            }
        };
        t.steps.push(StepTraffic {
            name: s.name.clone(),
            he,
            mpc: mpc_bytes,
            backend,
        });
    }
    // Base OTs once per session: Yao's one IKNP direction, GMW's two.
    let base = 32.0 + 32.0 * KAPPA;
    t.base_ots = f64::from(u8::from(any_yao) + 2 * u8::from(any_gmw)) * base;
    t
}
