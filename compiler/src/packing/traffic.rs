//! The bytes a session moves, message by message, as the runtime sends them.
//!
//! [`batch_traffic`] (batch packing; the report and the packing choice) and [`image_traffic`]
//! (image packing; the report of an image-packed plan), both through [`session_traffic`]. It follows the
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

/// The bytes of Yao on `inst` instances of `c` (one step, base OTs excluded).
fn yao_bytes(c: &ShareCircuit, inst: f64) -> f64 {
    let stats = c.circuit.stats();
    let ots = f64::from(c.circuit.evaluator_inputs) * inst;
    let outs = c.circuit.outputs.len() as f64 * inst;
    32.0 + 8.0
        + 8.0
        + 16.0
        + KAPPA * 16.0 * (ots / KAPPA).ceil()
        + 32.0 * stats.and as f64 * inst
        + (outs / 8.0).ceil()
        + (ots / 8.0).ceil()
        + 32.0 * ots
}

/// Bit widths of the plan's primes.
fn prime_bits(p: &ClientPlan) -> Vec<f64> {
    p.params
        .moduli
        .iter()
        .map(|&q| f64::from(64 - q.leading_zeros()))
        .collect()
}

/// One framed polynomial of `width` coefficients at `level`.
fn framed_poly(bits: &[f64], level: usize, width: usize) -> f64 {
    FRAME
        + POLY_HEADER
        + bits
            .iter()
            .take(level + 1)
            .map(|b| (width as f64 * b / 8.0).ceil())
            .sum::<f64>()
}

/// `count` seeds in frames of [`SEEDS_PER_FRAME`].
fn seed_bytes(count: usize) -> f64 {
    let c = count as f64;
    32.0 * c + FRAME * (c / SEEDS_PER_FRAME).ceil()
}

/// Hello, verdict and public key.
fn handshake_bytes(p: &ClientPlan, bits: &[f64]) -> f64 {
    let top = p.params.moduli.len().saturating_sub(1);
    let hash_len = 64.0;
    FRAME + 8.0 + 4.0 + 8.0 + hash_len + FRAME + (framed_poly(bits, top, p.params.n()) + 32.0)
}

/// Base OTs once per session: Yao's one IKNP direction, GMW's two.
fn base_ot_bytes(any_yao: bool, any_gmw: bool) -> f64 {
    let base = 32.0 + 32.0 * KAPPA;
    f64::from(u8::from(any_yao) + 2 * u8::from(any_gmw)) * base
}

/// The bytes of a session of `images` images under plan `p` in its packing
/// ([`batch_traffic`] or [`image_traffic`]).
pub fn session_traffic(p: &ClientPlan, images: usize) -> Traffic {
    if p.image.is_some() {
        image_traffic(p, images)
    } else {
        batch_traffic(p, images)
    }
}

/// Coefficients per polynomial of the distinct positions in `at` (the windows the runtime
/// masks, sends and decrypts), by polynomial.
fn window_widths(at: &[(u32, u32)]) -> Vec<usize> {
    let mut m: std::collections::BTreeMap<u32, std::collections::BTreeSet<u32>> =
        Default::default();
    for &(q, c) in at {
        m.entry(q).or_default().insert(c);
    }
    m.values().map(|s| s.len()).collect()
}

/// The bytes of an image-packed session of `images` images (`runtime/src/image.rs`; every
/// MPC step on Yao), its images as one group: the seeds of every upload polynomial of its images; offline the masked c1
/// (full N) of every window polynomial of every step (level 0) and of the output (output
/// level); online the full c0 of every upload polynomial at its level, the window
/// coefficients of c0 per step and of the output, and Yao as in batch packing.
pub fn image_traffic(p: &ClientPlan, images: usize) -> Traffic {
    let n = p.params.n();
    let images = images.max(1);
    let bits = prime_bits(p);
    let poly = |level: usize, width: usize| framed_poly(&bits, level, width);
    let mut t = Traffic {
        images,
        handshake: handshake_bytes(p, &bits),
        ..Default::default()
    };
    let Some(l) = p.image.as_ref() else {
        return t;
    };
    // Uploads are encrypted at their source's level (the entry flood's primes above it).
    let upload_at =
        |u: &mp2ml_ir::plan::Upload, level: usize| u.layout.polys() as f64 * poly(level, n);
    let upload_polys: usize = l
        .input
        .iter()
        .chain(l.steps.iter().flat_map(|s| &s.uploads))
        .map(|u| u.layout.polys())
        .sum();
    let out_w = window_widths(&l.output.at);
    let step_w: Vec<Vec<usize>> = l.steps.iter().map(|s| window_widths(&s.input.at)).collect();
    // The runtime runs a session's images as one group.
    let group = images;
    let mut any_yao = false;
    let mut left = images;
    while left > 0 {
        let g = left.min(group);
        left -= g;
        let im = g as f64;
        t.precompute += seed_bytes(upload_polys * g)
            + im * step_w
                .iter()
                .map(|w| w.len() as f64 * poly(0, n))
                .sum::<f64>()
            + im * out_w.len() as f64 * poly(p.output.level, n);
        t.input += im
            * l.input
                .iter()
                .map(|u| upload_at(u, p.input.level))
                .sum::<f64>();
        t.output += im * out_w.iter().map(|&w| poly(p.output.level, w)).sum::<f64>();
        for (k, (s, st)) in p.mpc_steps.iter().zip(&l.steps).enumerate() {
            let Ok(c) = p.circuit(s.circuit) else {
                continue;
            };
            let inst = (s.instances * g) as f64;
            any_yao |= c.circuit.evaluator_inputs > 0 && inst > 0.0;
            let windows: f64 = step_w[k].iter().map(|&w| poly(0, w)).sum();
            let he = im
                * (windows
                    + st.uploads
                        .iter()
                        .map(|u| upload_at(u, s.out_level))
                        .sum::<f64>());
            let mpc = yao_bytes(c, inst);
            match t.steps.get_mut(k) {
                Some(x) => {
                    x.he += he;
                    x.mpc += mpc;
                }
                None => t.steps.push(StepTraffic {
                    name: s.name.clone(),
                    he,
                    mpc,
                    backend: MpcBackend::Yao,
                }),
            }
        }
    }
    t.base_ots = base_ot_bytes(any_yao, false);
    t
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
    let bits = prime_bits(p);
    let poly = |level: usize, width: usize| framed_poly(&bits, level, width);
    let in_len: usize = p.input.shape.iter().product();
    let out_len: usize = p.output.shape.iter().product();
    let mut t = Traffic {
        images,
        handshake: handshake_bytes(p, &bits),
        ..Default::default()
    };
    let uploads: usize = in_len + p.mpc_steps.iter().map(|s| s.values_out).sum::<usize>();
    t.precompute = seed_bytes(uploads)
        + p.mpc_steps
            .iter()
            .map(|s| s.values_in as f64 * poly(0, n))
            .sum::<f64>()
        + out_len as f64 * poly(p.output.level, n);
    t.input = in_len as f64 * poly(p.input.level, images);
    t.output = out_len as f64 * poly(p.output.level, images);
    let (mut any_yao, mut any_gmw) = (false, false);
    for s in &p.mpc_steps {
        let backend = mpc.unwrap_or(s.backend); // a forced back end, else the step's own
        let Ok(c) = p.circuit(s.circuit_for(backend)) else {
            continue;
        };
        let inst = (s.instances * images) as f64;
        let he =
            s.values_in as f64 * poly(0, images) + s.values_out as f64 * poly(s.out_level, images);
        let mpc_bytes = match backend {
            MpcBackend::Yao => {
                any_yao |= c.circuit.evaluator_inputs > 0 && inst > 0.0;
                yao_bytes(c, inst)
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
    t.base_ots = base_ot_bytes(any_yao, any_gmw);
    t
}
