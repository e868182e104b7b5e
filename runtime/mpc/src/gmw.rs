//! Semi-honest two-party GMW (Goldreich–Micali–Wigderson) over XOR shares, as ABY runs it
//! (Demmler, Schneider, Zohner, NDSS 2015, §III-B): the second Boolean back end next to
//! [`crate::yao`], evaluating the same circuits with the same bit layout.
//!
//! # Protocol
//!
//! Every wire value `x` is held as `x = x_S ⊕ x_C`. XOR is local, NOT is applied by the server
//! alone, and an AND gate `z = x ∧ y` consumes one Beaver triple `c = a ∧ b` (shared the same
//! way): both parties open `d = x ⊕ a` and `e = y ⊕ b`, then `z_P = c_P ⊕ d·b_P ⊕ e·a_P`, and the
//! server adds `d·e`. All AND gates of one AND layer are opened in one simultaneous round
//! ([`Channel::exchange`]), so the online phase takes `depth` rounds per chunk of instances.
//!
//! Evaluation is bit-sliced: wire `w` of a chunk of `n` instances is `⌈n/64⌉` `u64` words, bit
//! `t mod 64` of word `t / 64` belonging to instance `t`, so one XOR instruction evaluates a
//! gate for 64 instances.
//!
//! **Offline** (no client input needed; channel phase `offline`): circuit fingerprint and batch
//! number; input sharing by two 16-byte PRG seeds (the client's share of server input bits is a
//! PRG stream under the server's seed, the server's share of client input bits a PRG stream
//! under the client's seed, so sharing the inputs costs nothing online); then the triples, from
//! IKNP random OTs, two per AND gate as in ABY (§IV-A): each party is random-OT receiver with a
//! random choice bit `a_R` (getting `u_R = m_{a_R}`) in one OT and sender (getting `m_0, m_1`,
//! setting `b_S = m_0 ⊕ m_1`, `v_S = m_0`) in the other, so `a_R·b_S = u_R ⊕ v_S` shares each
//! cross term and `c_P = a_P·b_P ⊕ u_P ⊕ v_P` gives `c_S ⊕ c_C = (a_S ⊕ a_C)(b_S ⊕ b_C)`. The
//! OT pads are 128-bit hashes; one bit of each is used. Both IKNP directions have their own κ
//! base OTs, run once per [`GmwServer`]/[`GmwClient`] pair.
//!
//! **Online** (channel phase `online`): per AND layer both parties send their `d, e` bits
//! (2 bits per AND per instance each way, exactly packed), and at the end the server sends its
//! shares of the output wires to the client, which alone learns the outputs.
//!
//! Triples are drawn fresh for every batch (they are one-time pads of the opened values);
//! they take 3 bits per AND per instance on each side between offline and online.

use mp2ml_ir::circuit::{Circuit, Gate};
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::crypto::{lsb, Prg};
use crate::error::{MpcError, Result};
use crate::ot::{IknpReceiver, IknpSender};
use crate::yao::{check_len, hash_circuit, os_rng, Meter, PhaseReport};

/// Tuning shared by both parties (must be equal on both sides: it fixes the chunking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GmwConfig {
    /// Memory budget for the wire values of one chunk of instances (8 bytes per wire per 64
    /// instances). Each chunk costs one round per AND layer online, so a larger budget means
    /// fewer rounds for very large batches.
    pub chunk_bytes: usize,
    /// Random OTs extended per IKNP call while making triples (bounds the OT buffers).
    pub ot_batch: usize,
}

impl Default for GmwConfig {
    fn default() -> Self {
        GmwConfig {
            chunk_bytes: 64 << 20,
            ot_batch: 1 << 18,
        }
    }
}

/// Gates grouped by AND depth: layer `L` holds the AND gates at depth `L` (their inputs are
/// all at depth `< L`) and the free gates at depth `L`, in circuit order.
#[derive(Clone, Debug)]
struct Layer {
    ands: Vec<usize>,
    free: Vec<usize>,
}

/// A validated circuit's evaluation schedule and sizes for a given instance count.
#[derive(Clone, Debug)]
struct Shape {
    gi: usize,
    ei: usize,
    no: usize,
    wires: usize,
    ands: usize,
    instances: usize,
    /// Instances per chunk: a multiple of 64 unless it is the whole batch.
    chunk: usize,
    /// `⌈instances / 64⌉`.
    words: usize,
    layers: Vec<Layer>,
}

impl Shape {
    fn new(c: &Circuit, instances: usize, config: &GmwConfig) -> Result<Shape> {
        c.validate()?;
        let gi = c.garbler_inputs as usize;
        let ei = c.evaluator_inputs as usize;
        let wires =
            usize::try_from(c.num_wires()).map_err(|_| MpcError::TooLarge("wire count".into()))?;
        let base = gi + ei;
        let mut depth = vec![0u32; wires];
        let mut layers: Vec<Layer> = vec![Layer {
            ands: Vec::new(),
            free: Vec::new(),
        }];
        let mut ands = 0;
        // After `validate`, every gate reads only earlier wires.
        for (i, g) in c.gates.iter().enumerate() {
            let (a, b) = g.inputs();
            let d_in = depth[a as usize].max(b.map_or(0, |b| depth[b as usize]));
            let (d, is_and) = match g {
                Gate::And(..) => (d_in + 1, true),
                _ => (d_in, false),
            };
            depth[base + i] = d;
            let d = d as usize;
            while layers.len() <= d {
                layers.push(Layer {
                    ands: Vec::new(),
                    free: Vec::new(),
                });
            }
            if is_and {
                layers[d].ands.push(i);
                ands += 1;
            } else {
                layers[d].free.push(i);
            }
        }
        let too_large = || MpcError::TooLarge(format!("{instances} instances of `{}`", c.name));
        let words = instances.div_ceil(64);
        for per in [gi, ei, c.outputs.len(), 3 * ands] {
            words
                .checked_mul(per)
                .and_then(|v| v.checked_mul(8))
                .ok_or_else(too_large)?;
        }
        let per_64 = (8 * wires).max(1);
        let chunk = ((config.chunk_bytes / per_64).max(1) * 64).min(instances.max(1));
        Ok(Shape {
            gi,
            ei,
            no: c.outputs.len(),
            wires,
            ands,
            instances,
            chunk,
            words,
            layers,
        })
    }

    /// `(first, n)` of every chunk (`first` is a multiple of 64).
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.instances)
            .step_by(self.chunk)
            .map(move |first| (first, self.chunk.min(self.instances - first)))
    }

    /// Number of AND layers (the online rounds per chunk).
    fn depth(&self) -> usize {
        self.layers.iter().filter(|l| !l.ands.is_empty()).count()
    }
}

/// SHA-256 over the circuit structure, the instance count and the chunking.
fn fingerprint(c: &Circuit, s: &Shape) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mp2ml gmw v1");
    hash_circuit(&mut h, c, &[s.instances, s.chunk]);
    h.finalize().into()
}

/// Words `first .. first + out.len()` of the PRG stream of input wire `wire` (each wire owns
/// `⌈words / 2⌉` consecutive 128-bit blocks).
fn prg_words(prg: &Prg, wire: usize, words: usize, first: usize, out: &mut [u64]) {
    if out.is_empty() {
        return;
    }
    let base = (wire * words.div_ceil(2)) as u64;
    let b0 = first / 2;
    let b1 = (first + out.len()).div_ceil(2);
    let mut blocks = vec![0u128; b1 - b0];
    prg.fill(base + b0 as u64, &mut blocks);
    for (k, o) in out.iter_mut().enumerate() {
        let w = first + k;
        let blk = blocks[w / 2 - b0];
        *o = if w & 1 == 0 {
            blk as u64
        } else {
            (blk >> 64) as u64
        };
    }
}

/// Bit-slices instance-major bits `bits[t * per + i]` of instances `first .. first + n` into
/// wire-major words `out[i * nw + t / 64]`.
fn slice_bits(bits: &[bool], per: usize, first: usize, n: usize, out: &mut [u64]) {
    let nw = n.div_ceil(64);
    for t in 0..n {
        let row = &bits[(first + t) * per..(first + t + 1) * per];
        for (i, &b) in row.iter().enumerate() {
            out[i * nw + t / 64] |= u64::from(b) << (t % 64);
        }
    }
}

/// Packs rows of `n` bits (each row `⌈n/64⌉` words) exactly.
struct BitWriter {
    out: Vec<u8>,
    acc: u128,
    bits: u32,
}

impl BitWriter {
    fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(bytes),
            acc: 0,
            bits: 0,
        }
    }

    fn row(&mut self, words: &[u64], n: usize) {
        for (i, &w) in words.iter().enumerate() {
            let take = (n - 64 * i).min(64) as u32;
            let v = if take == 64 {
                w
            } else {
                w & ((1u64 << take) - 1)
            };
            self.acc |= u128::from(v) << self.bits;
            self.bits += take;
            if self.bits >= 64 {
                self.out.extend_from_slice(&(self.acc as u64).to_le_bytes());
                self.acc >>= 64;
                self.bits -= 64;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let bytes = self.bits.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&(self.acc as u64).to_le_bytes()[..bytes]);
        self.out
    }
}

/// Reads rows written by [`BitWriter`].
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u128,
    bits: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            bits: 0,
        }
    }

    /// The next `take ≤ 64` bits (zero past the end: lengths are fixed by the schedule and the
    /// buffer was received whole, so that never happens).
    fn take(&mut self, take: u32) -> u64 {
        while self.bits < take {
            let mut b = [0u8; 8];
            let src = self.data.get(self.pos..).unwrap_or_default();
            let k = src.len().min(8);
            b[..k].copy_from_slice(&src[..k]);
            self.pos += k;
            self.acc |= u128::from(u64::from_le_bytes(b)) << self.bits;
            self.bits += 64;
        }
        let v = if take == 64 {
            self.acc as u64
        } else {
            (self.acc as u64) & ((1u64 << take) - 1)
        };
        self.acc >>= take;
        self.bits -= take;
        v
    }

    fn row(&mut self, out: &mut [u64], n: usize) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.take((n - 64 * i).min(64) as u32);
        }
    }
}

/// Which party this is: the server provides the garbler inputs and applies NOT gates; the
/// client provides the evaluator inputs and learns the outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// One batch's offline state (triples and input-sharing seeds), consumed by `online`.
#[derive(Debug)]
pub struct GmwOffline {
    seq: u64,
    circuit: Circuit,
    shape: Shape,
    /// Per chunk starting at word `w0`: `[a | b | c]`, each `ands × nw` words, at `3·ands·w0`.
    triples: Vec<u64>,
    /// Server: its shares `x ⊕ M_S` of its own inputs (`gi × words`); client: empty.
    own: Vec<u64>,
    /// The server's input-sharing PRG (the client's shares of server inputs).
    server_prg: Prg,
    /// The client's input-sharing PRG (the server's shares of client inputs).
    client_prg: Prg,
}

impl GmwOffline {
    /// Number of instances prepared.
    pub fn instances(&self) -> usize {
        self.shape.instances
    }

    /// Bytes of triples held (3 bits per AND per instance, rounded up to whole words).
    pub fn triple_bytes(&self) -> usize {
        8 * self.triples.len()
    }

    /// AND layers of the circuit (online rounds per chunk).
    pub fn depth(&self) -> usize {
        self.shape.depth()
    }
}

/// The state both parties keep between batches: randomness, the two IKNP directions, the
/// batch counter and the phase reports.
#[derive(Debug)]
struct Core {
    role: Role,
    rng: ChaCha20Rng,
    /// IKNP where this party is the OT sender.
    sender: Option<IknpSender>,
    /// IKNP where this party is the OT receiver.
    receiver: Option<IknpReceiver>,
    config: GmwConfig,
    seq: u64,
    reports: Vec<PhaseReport>,
}

impl Core {
    fn new(role: Role, rng: ChaCha20Rng, config: GmwConfig) -> Self {
        Core {
            role,
            rng,
            sender: None,
            receiver: None,
            config,
            seq: 0,
            reports: Vec::new(),
        }
    }

    /// Base OTs for both IKNP directions, on first use: first the server-sends direction,
    /// then the client-sends one.
    fn setup_ots(&mut self, ch: &mut impl Channel) -> Result<()> {
        if self.sender.is_some() && self.receiver.is_some() {
            return Ok(());
        }
        match self.role {
            Role::Server => {
                self.sender = Some(IknpSender::setup(ch, &mut self.rng)?);
                self.receiver = Some(IknpReceiver::setup(ch, &mut self.rng)?);
            }
            Role::Client => {
                self.receiver = Some(IknpReceiver::setup(ch, &mut self.rng)?);
                self.sender = Some(IknpSender::setup(ch, &mut self.rng)?);
            }
        }
        Ok(())
    }

    /// Makes this party's halves of `ands × n` triples for every chunk (ABY's two random OTs
    /// per AND; see the module notes).
    fn triples(&mut self, ch: &mut impl Channel, s: &Shape) -> Result<Vec<u64>> {
        let mut tri = vec![0u64; 3 * s.ands * s.words];
        let batch = self.config.ot_batch.max(1);
        for (first, n) in s.chunks() {
            let nw = n.div_ceil(64);
            let base = 3 * s.ands * (first / 64);
            let block = &mut tri[base..base + 3 * s.ands * nw];
            let (a_words, rest) = block.split_at_mut(s.ands * nw);
            let (b_words, c_words) = rest.split_at_mut(s.ands * nw);
            let m = s.ands * n;
            let mut j0 = 0;
            while j0 < m {
                let len = batch.min(m - j0);
                // Server-sends direction, then client-sends direction.
                for server_sends in [true, false] {
                    let sending = server_sends == (self.role == Role::Server);
                    if sending {
                        let ot = self
                            .sender
                            .as_mut()
                            .ok_or_else(|| MpcError::Protocol("OT setup".into()))?;
                        let pads = ot.extend_random(ch, len)?;
                        for (off, (p0, p1)) in pads.iter().enumerate() {
                            let j = j0 + off;
                            let (k, t) = (j / n, j % n);
                            let idx = k * nw + t / 64;
                            let sh = t % 64;
                            let (m0, m1) = (lsb(*p0), lsb(*p1));
                            b_words[idx] |= u64::from(m0 ^ m1) << sh;
                            c_words[idx] ^= u64::from(m0) << sh;
                        }
                    } else {
                        let choices: Vec<bool> = (0..len).map(|_| self.rng.random()).collect();
                        let ot = self
                            .receiver
                            .as_mut()
                            .ok_or_else(|| MpcError::Protocol("OT setup".into()))?;
                        let pads = ot.extend_random(ch, &choices)?;
                        for (off, (&a, p)) in choices.iter().zip(&pads).enumerate() {
                            let j = j0 + off;
                            let (k, t) = (j / n, j % n);
                            let idx = k * nw + t / 64;
                            let sh = t % 64;
                            a_words[idx] |= u64::from(a) << sh;
                            c_words[idx] ^= u64::from(lsb(*p)) << sh;
                        }
                    }
                }
                j0 += len;
            }
            // c_P = a_P·b_P ⊕ u_P ⊕ v_P.
            for ((c, a), b) in c_words.iter_mut().zip(a_words.iter()).zip(b_words.iter()) {
                *c ^= a & b;
            }
        }
        ch.flush()?;
        Ok(tri)
    }

    /// The offline phase of either party. `server_bits` is `Some` exactly for the server.
    fn offline(
        &mut self,
        ch: &mut impl Channel,
        circuit: &Circuit,
        instances: usize,
        server_bits: Option<&[bool]>,
    ) -> Result<GmwOffline> {
        let meter = Meter::start(ch, "offline");
        let s = Shape::new(circuit, instances, &self.config)?;
        let fp = fingerprint(circuit, &s);
        let own_seed: u128 = self.rng.random();
        let (seq, peer_seed) = match self.role {
            Role::Server => {
                let bits = server_bits.ok_or_else(|| MpcError::Protocol("server bits".into()))?;
                check_len("garbler", bits.len(), s.gi, instances)?;
                self.seq += 1;
                ch.send(&fp)?;
                ch.send_u64(self.seq)?;
                ch.send_blocks(&[own_seed])?;
                ch.flush()?;
                let mut peer = [0u128];
                ch.recv_blocks(&mut peer)?;
                (self.seq, peer[0])
            }
            Role::Client => {
                let mut theirs = [0u8; 32];
                ch.recv(&mut theirs)?;
                if theirs != fp {
                    return Err(MpcError::Mismatch(format!(
                        "server runs GMW on a different circuit, instance count or chunking than `{}` × {instances}",
                        circuit.name
                    )));
                }
                let seq = ch.recv_u64()?;
                if seq != self.seq + 1 {
                    return Err(MpcError::Mismatch(format!(
                        "server starts batch {seq}, client expected {}",
                        self.seq + 1
                    )));
                }
                self.seq = seq;
                let mut peer = [0u128];
                ch.recv_blocks(&mut peer)?;
                ch.send_blocks(&[own_seed])?;
                ch.flush()?;
                (seq, peer[0])
            }
        };
        let (server_prg, client_prg) = match self.role {
            Role::Server => (Prg::new(own_seed), Prg::new(peer_seed)),
            Role::Client => (Prg::new(peer_seed), Prg::new(own_seed)),
        };
        self.setup_ots(ch)?;
        let triples = self.triples(ch, &s)?;
        // The server's shares of its own inputs: x ⊕ M_S.
        let mut own = Vec::new();
        if let Some(bits) = server_bits {
            own = vec![0u64; s.gi * s.words];
            for (first, n) in s.chunks() {
                let nw = n.div_ceil(64);
                let w0 = first / 64;
                let mut tmp = vec![0u64; s.gi * nw];
                slice_bits(bits, s.gi, first, n, &mut tmp);
                let mut m = vec![0u64; nw];
                for i in 0..s.gi {
                    prg_words(&server_prg, i, s.words, w0, &mut m);
                    for (k, mv) in m.iter().enumerate() {
                        own[i * s.words + w0 + k] = tmp[i * nw + k] ^ mv;
                    }
                }
            }
        }
        self.reports.push(meter.finish(ch, "offline"));
        Ok(GmwOffline {
            seq,
            circuit: circuit.clone(),
            shape: s,
            triples,
            own,
            server_prg,
            client_prg,
        })
    }

    /// The online phase of either party; returns the outputs (instance-major) on the client
    /// and nothing on the server. `client_bits` is `Some` exactly for the client.
    fn online(
        &mut self,
        ch: &mut impl Channel,
        h: GmwOffline,
        client_bits: Option<&[bool]>,
    ) -> Result<Vec<bool>> {
        let meter = Meter::start(ch, "online");
        let s = &h.shape;
        if let Some(bits) = client_bits {
            check_len("evaluator", bits.len(), s.ei, s.instances)?;
        }
        let server = self.role == Role::Server;
        let mut out = Vec::new();
        if !server {
            out.reserve(s.instances * s.no);
        }
        // The batch number travels with the first round.
        let mut seq_pending = true;
        let mut vals: Vec<u64> = Vec::new();
        for (first, n) in s.chunks() {
            let nw = n.div_ceil(64);
            let w0 = first / 64;
            vals.clear();
            vals.resize(s.wires * nw, 0);
            // Input shares.
            for i in 0..s.gi {
                let dst = &mut vals[i * nw..(i + 1) * nw];
                if server {
                    dst.copy_from_slice(&h.own[i * s.words + w0..i * s.words + w0 + nw]);
                } else {
                    prg_words(&h.server_prg, i, s.words, w0, dst);
                }
            }
            for j in 0..s.ei {
                let dst = &mut vals[(s.gi + j) * nw..(s.gi + j + 1) * nw];
                prg_words(&h.client_prg, j, s.words, w0, dst);
            }
            if let Some(bits) = client_bits {
                let mut tmp = vec![0u64; s.ei * nw];
                slice_bits(bits, s.ei, first, n, &mut tmp);
                for (v, t) in vals[s.gi * nw..(s.gi + s.ei) * nw].iter_mut().zip(&tmp) {
                    *v ^= t;
                }
            }
            let base = 3 * s.ands * w0;
            let tri = &h.triples[base..base + 3 * s.ands * nw];
            let (ta, rest) = tri.split_at(s.ands * nw);
            let (tb, tc) = rest.split_at(s.ands * nw);
            let mut k0 = 0;
            let mut d_own = vec![0u64; nw];
            let mut e_own = vec![0u64; nw];
            for layer in &s.layers {
                if !layer.ands.is_empty() {
                    let rows = 2 * layer.ands.len();
                    let payload = (rows * n).div_ceil(8);
                    let prefix = if seq_pending { 8 } else { 0 };
                    let mut w = BitWriter::with_capacity(prefix + payload + 8);
                    if seq_pending {
                        w.out.extend_from_slice(&h.seq.to_le_bytes());
                    }
                    for (k, &g) in (k0..).zip(&layer.ands) {
                        let (x, y) = gate_inputs(&h.circuit.gates[g]);
                        for i in 0..nw {
                            d_own[i] = vals[x * nw + i] ^ ta[k * nw + i];
                            e_own[i] = vals[y * nw + i] ^ tb[k * nw + i];
                        }
                        w.row(&d_own, n);
                        w.row(&e_own, n);
                    }
                    let msg = w.finish();
                    let mut peer = vec![0u8; msg.len()];
                    ch.exchange(&msg, &mut peer)?;
                    let mut body = &peer[..];
                    if seq_pending {
                        check_seq(&peer, h.seq)?;
                        body = &peer[8..];
                        seq_pending = false;
                    }
                    let mut r = BitReader::new(body);
                    let mut d_peer = vec![0u64; nw];
                    let mut e_peer = vec![0u64; nw];
                    for (k, &g) in (k0..).zip(&layer.ands) {
                        let (x, y) = gate_inputs(&h.circuit.gates[g]);
                        r.row(&mut d_peer, n);
                        r.row(&mut e_peer, n);
                        let z = s.gi + s.ei + g;
                        for i in 0..nw {
                            let d = vals[x * nw + i] ^ ta[k * nw + i] ^ d_peer[i];
                            let e = vals[y * nw + i] ^ tb[k * nw + i] ^ e_peer[i];
                            let mut v =
                                tc[k * nw + i] ^ (d & tb[k * nw + i]) ^ (e & ta[k * nw + i]);
                            if server {
                                v ^= d & e;
                            }
                            vals[z * nw + i] = v;
                        }
                    }
                    k0 += layer.ands.len();
                }
                for &g in &layer.free {
                    let z = s.gi + s.ei + g;
                    match h.circuit.gates[g] {
                        Gate::Xor(a, b) => {
                            for i in 0..nw {
                                vals[z * nw + i] =
                                    vals[a as usize * nw + i] ^ vals[b as usize * nw + i];
                            }
                        }
                        Gate::Inv(a) => {
                            for i in 0..nw {
                                let v = vals[a as usize * nw + i];
                                vals[z * nw + i] = if server { !v } else { v };
                            }
                        }
                        Gate::And(..) => {}
                    }
                }
            }
            if seq_pending {
                // A circuit without AND gates: the batch number gets its own round.
                let mut peer = [0u8; 8];
                ch.exchange(&h.seq.to_le_bytes(), &mut peer)?;
                check_seq(&peer, h.seq)?;
                seq_pending = false;
            }
            // Output shares go to the client only.
            if server {
                let mut w = BitWriter::with_capacity((s.no * n).div_ceil(8) + 8);
                for &o in &h.circuit.outputs {
                    w.row(&vals[o as usize * nw..(o as usize + 1) * nw], n);
                }
                ch.send(&w.finish())?;
                ch.flush()?;
            } else {
                let mut raw = vec![0u8; (s.no * n).div_ceil(8)];
                ch.recv(&mut raw)?;
                let mut r = BitReader::new(&raw);
                let mut peer = vec![0u64; nw];
                let mut words = vec![0u64; s.no * nw];
                for (o, &wire) in h.circuit.outputs.iter().enumerate() {
                    r.row(&mut peer, n);
                    for i in 0..nw {
                        words[o * nw + i] = vals[wire as usize * nw + i] ^ peer[i];
                    }
                }
                for t in 0..n {
                    for o in 0..s.no {
                        out.push((words[o * nw + t / 64] >> (t % 64)) & 1 == 1);
                    }
                }
            }
        }
        if seq_pending {
            let mut peer = [0u8; 8];
            ch.exchange(&h.seq.to_le_bytes(), &mut peer)?;
            check_seq(&peer, h.seq)?;
        }
        self.reports.push(meter.finish(ch, "online"));
        Ok(out)
    }
}

/// The two input wires of an AND gate.
fn gate_inputs(g: &Gate) -> (usize, usize) {
    let (a, b) = g.inputs();
    (a as usize, b.unwrap_or(a) as usize)
}

fn check_seq(peer: &[u8], seq: u64) -> Result<()> {
    let mut b = [0u8; 8];
    b.copy_from_slice(peer.get(..8).unwrap_or(&[0; 8]));
    let theirs = u64::from_le_bytes(b);
    if theirs != seq {
        return Err(MpcError::Mismatch(format!(
            "peer runs GMW batch {theirs}, this side batch {seq}"
        )));
    }
    Ok(())
}

/// The server side of GMW: provides the garbler inputs (its shares and output masks) and
/// learns nothing. The channel is passed to every call, so one connection can carry Yao and
/// GMW steps alike.
#[derive(Debug)]
pub struct GmwServer {
    core: Core,
}

/// The client side of GMW: provides the evaluator inputs and learns the outputs.
#[derive(Debug)]
pub struct GmwClient {
    core: Core,
}

impl GmwServer {
    /// A server party drawing randomness from `rng` (use [`GmwServer::from_os_rng`] outside
    /// tests).
    pub fn new(rng: ChaCha20Rng) -> Self {
        Self::with_config(rng, GmwConfig::default())
    }

    /// A server party with a ChaCha20 generator seeded from the operating system.
    ///
    /// # Errors
    /// [`MpcError::Entropy`] if the operating system has no randomness to give.
    pub fn from_os_rng() -> Result<Self> {
        Ok(Self::new(os_rng()?))
    }

    /// A server party with explicit tuning (the client must use the same).
    pub fn with_config(rng: ChaCha20Rng, config: GmwConfig) -> Self {
        GmwServer {
            core: Core::new(Role::Server, rng, config),
        }
    }

    /// Offline phase: shares the server's input bits (instance-major, circuit input order, as
    /// for [`crate::Garbler::offline`]) and makes the triples for `instances` copies of
    /// `circuit`. Channel phase `offline`.
    pub fn offline(
        &mut self,
        ch: &mut impl Channel,
        circuit: &Circuit,
        instances: usize,
        server_bits: &[bool],
    ) -> Result<GmwOffline> {
        self.core.offline(ch, circuit, instances, Some(server_bits))
    }

    /// Online phase: one round per AND layer, then the server's output shares go to the
    /// client. Channel phase `online`.
    pub fn online(&mut self, ch: &mut impl Channel, handle: GmwOffline) -> Result<()> {
        self.core.online(ch, handle, None).map(|_| ())
    }

    /// Time and bytes of every phase run so far.
    pub fn reports(&self) -> &[PhaseReport] {
        &self.core.reports
    }
}

impl GmwClient {
    /// A client party drawing randomness from `rng` (use [`GmwClient::from_os_rng`] outside
    /// tests).
    pub fn new(rng: ChaCha20Rng) -> Self {
        Self::with_config(rng, GmwConfig::default())
    }

    /// A client party with a ChaCha20 generator seeded from the operating system.
    ///
    /// # Errors
    /// [`MpcError::Entropy`] if the operating system has no randomness to give.
    pub fn from_os_rng() -> Result<Self> {
        Ok(Self::new(os_rng()?))
    }

    /// A client party with explicit tuning (the server must use the same).
    pub fn with_config(rng: ChaCha20Rng, config: GmwConfig) -> Self {
        GmwClient {
            core: Core::new(Role::Client, rng, config),
        }
    }

    /// Offline phase: checks the server's circuit fingerprint and makes the triples for
    /// `instances` copies of `circuit`. Channel phase `offline`.
    pub fn offline(
        &mut self,
        ch: &mut impl Channel,
        circuit: &Circuit,
        instances: usize,
    ) -> Result<GmwOffline> {
        self.core.offline(ch, circuit, instances, None)
    }

    /// Online phase: evaluates every instance on the client's input bits (instance-major) and
    /// returns the outputs (instance-major). Channel phase `online`.
    pub fn online(
        &mut self,
        ch: &mut impl Channel,
        handle: GmwOffline,
        client_bits: &[bool],
    ) -> Result<Vec<bool>> {
        self.core.online(ch, handle, Some(client_bits))
    }

    /// Time and bytes of every phase run so far.
    pub fn reports(&self) -> &[PhaseReport] {
        &self.core.reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelConfig, MemChannel};
    use rand::SeedableRng;

    fn and_circuit() -> Circuit {
        Circuit {
            name: "and".into(),
            garbler_inputs: 1,
            evaluator_inputs: 1,
            gates: vec![Gate::And(0, 1)],
            outputs: vec![2],
        }
    }

    /// Both parties' offline handles for `n` instances of `c` over an in-memory pair.
    fn offline_pair(
        c: &Circuit,
        n: usize,
        server: &mut GmwServer,
        client: &mut GmwClient,
        config: ChannelConfig,
    ) -> (GmwOffline, GmwOffline) {
        let (mut a, mut b) = MemChannel::pair(config);
        std::thread::scope(|sc| {
            let c2 = c.clone();
            let bits = vec![false; n * c2.garbler_inputs as usize];
            let t = sc.spawn(move || server.offline(&mut a, &c2, n, &bits));
            let hc = client.offline(&mut b, c, n).expect("client offline");
            (t.join().expect("thread").expect("server offline"), hc)
        })
    }

    #[test]
    fn triples_are_valid_and_fresh_per_batch_and_session() {
        let c = Circuit {
            name: "two_and".into(),
            garbler_inputs: 2,
            evaluator_inputs: 1,
            gates: vec![Gate::And(0, 2), Gate::And(1, 3)],
            outputs: vec![4],
        };
        let n = 200; // not a multiple of 64: the padding bits stay zero
        let mut seen = Vec::new();
        for session in 0..2u64 {
            let mut server = GmwServer::new(ChaCha20Rng::seed_from_u64(10 + session));
            let mut client = GmwClient::new(ChaCha20Rng::seed_from_u64(20 + session));
            for _batch in 0..2 {
                let (hs, hc) =
                    offline_pair(&c, n, &mut server, &mut client, ChannelConfig::default());
                let ws = hs.shape.ands * hs.shape.words;
                let (sa, sb, scw) = (
                    &hs.triples[..ws],
                    &hs.triples[ws..2 * ws],
                    &hs.triples[2 * ws..],
                );
                let (ca, cb, ccw) = (
                    &hc.triples[..ws],
                    &hc.triples[ws..2 * ws],
                    &hc.triples[2 * ws..],
                );
                for i in 0..ws {
                    assert_eq!((sa[i] ^ ca[i]) & (sb[i] ^ cb[i]), scw[i] ^ ccw[i]);
                }
                // Uniform-looking: about half the bits of a are set.
                let ones: u32 = (0..ws).map(|i| (sa[i] ^ ca[i]).count_ones()).sum();
                let bits = (2 * n) as u32;
                assert!(ones > bits / 3 && ones < 2 * bits / 3, "{ones} of {bits}");
                seen.push(hs.triples.clone());
            }
        }
        for i in 0..seen.len() {
            for j in i + 1..seen.len() {
                assert_ne!(seen[i], seen[j], "batches {i} and {j} share triples");
            }
        }
    }

    #[test]
    fn bit_rows_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for n in [1usize, 5, 63, 64, 65, 200] {
            let nw = n.div_ceil(64);
            let rows: Vec<Vec<u64>> = (0..7)
                .map(|_| (0..nw).map(|_| rng.random()).collect())
                .collect();
            let mut w = BitWriter::with_capacity(0);
            for r in &rows {
                w.row(r, n);
            }
            let bytes = w.finish();
            assert_eq!(bytes.len(), (7 * n).div_ceil(8));
            let mut rd = BitReader::new(&bytes);
            for r in &rows {
                let mut got = vec![0u64; nw];
                rd.row(&mut got, n);
                for (i, (g, want)) in got.iter().zip(r).enumerate() {
                    let bits = (n - 64 * i).min(64);
                    let m = if bits == 64 {
                        u64::MAX
                    } else {
                        (1u64 << bits) - 1
                    };
                    assert_eq!(*g, want & m);
                }
            }
        }
    }

    #[test]
    fn schedule_puts_each_and_after_its_inputs() {
        // AND depth 2, with a free gate between the layers.
        let c = Circuit {
            name: "chain".into(),
            garbler_inputs: 2,
            evaluator_inputs: 1,
            gates: vec![
                Gate::And(0, 2),
                Gate::Xor(3, 1),
                Gate::And(4, 0),
                Gate::Inv(5),
            ],
            outputs: vec![6],
        };
        let s = Shape::new(&c, 10, &GmwConfig::default()).expect("shape");
        assert_eq!(s.depth(), 2);
        assert_eq!(s.layers[1].ands, vec![0]);
        assert_eq!(s.layers[1].free, vec![1]);
        assert_eq!(s.layers[2].ands, vec![2]);
        assert_eq!(s.layers[2].free, vec![3]);
        let _ = and_circuit();
    }
}
