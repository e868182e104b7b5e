//! Semi-honest Yao between the server ([`Garbler`]) and the client ([`Evaluator`]), vectorized
//! over many instances of one circuit, with an offline/online split and a streaming variant.
//!
//! # Bit layout
//!
//! All bit vectors are **instance-major, circuit input order**: for `instances` copies of a
//! circuit with `gi` garbler inputs, `ei` evaluator inputs and `no` outputs,
//! `garbler_bits[t * gi + i]` is garbler input `i` of instance `t`, `evaluator_bits[t * ei + j]`
//! evaluator input `j` (circuit wire `gi + j`) of instance `t`, and the returned
//! `outputs[t * no + o]` is output `o` (wire `circuit.outputs[o]`) of instance `t`.
//!
//! # Protocol
//!
//! Offline (no client input needed): circuit fingerprint check; κ base OTs (once per
//! `Garbler`/`Evaluator` pair); IKNP random OTs for every evaluator input bit; then, chunk by
//! chunk of instances, the garbled tables (32 bytes per AND gate) and the output decoding bits
//! (to the client only). The server's input labels cost one 16-byte seed: the active label of
//! garbler input `(t, i)` is block `t · gi + i` of a PRG under a fresh public seed, and the server
//! sets the zero label to `active ⊕ x R`. (The evaluator's view is unchanged: in Yao the active
//! input labels are uniform and independent of `R`, which is all the simulator needs.)
//!
//! Online: the client sends one correction bit per input bit, the server the two labels masked
//! with the random-OT pads, the client evaluates all instances and decodes.
//!
//! Streaming ([`Garbler::run_streaming`] / [`Evaluator::run_streaming`]): one phase; per chunk
//! the server sends tables and decoding bits, the client answers with its IKNP columns for the
//! chunk's input bits (its real bits as choices), the server sends the masked labels, and the
//! client evaluates that chunk while the server garbles the next. Memory on both sides is
//! bounded by the chunk budget ([`GcConfig::chunk_bytes`]) plus the outputs.

use std::time::{Duration, Instant};

use mp2ml_ir::circuit::{Circuit, Gate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::crypto::{lsb, mask, pack_bits, unpack_bits, FixedKeyHash, Prg};
use crate::error::{MpcError, Result};
use crate::gc::{and_count, eval_chunk, garble_chunk, Chunk, Scratch};
use crate::ot::{derandomize_receive, derandomize_send, IknpReceiver, IknpSender};

/// Tuning shared by both parties (must be equal on both sides: it fixes the chunking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcConfig {
    /// Memory budget for one chunk of instances: wire labels (16 B per wire), garbled tables
    /// (32 B per AND) and OT state (≈ 64 B per evaluator input bit), per instance. The chunk
    /// holds `max(1, chunk_bytes / per_instance)` instances.
    pub chunk_bytes: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            chunk_bytes: 8 << 20,
        }
    }
}

/// Time and traffic of one protocol phase on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseReport {
    /// `offline`, `online` or `stream`.
    pub phase: &'static str,
    /// Wall-clock time of the call.
    pub elapsed: Duration,
    /// Bytes this side sent during the call.
    pub sent: u64,
    /// Bytes this side received during the call.
    pub received: u64,
}

/// A validated circuit with its sizes for a given instance count.
#[derive(Clone, Debug)]
struct Shape {
    gi: usize,
    ei: usize,
    no: usize,
    ands: usize,
    wires: usize,
    instances: usize,
    chunk: usize,
}

impl Shape {
    fn new(c: &Circuit, instances: usize, config: &GcConfig) -> Result<Shape> {
        c.validate()?;
        let gi = c.garbler_inputs as usize;
        let ei = c.evaluator_inputs as usize;
        let ands = and_count(c);
        let wires =
            usize::try_from(c.num_wires()).map_err(|_| MpcError::TooLarge("wire count".into()))?;
        let too_large = || MpcError::TooLarge(format!("{instances} instances of `{}`", c.name));
        // Every per-instance size below must fit comfortably for the whole batch.
        for per in [gi, ei, c.outputs.len(), 2 * ands] {
            instances
                .checked_mul(per)
                .and_then(|v| v.checked_mul(16))
                .ok_or_else(too_large)?;
        }
        let per_instance = 16 * wires + 32 * ands + 64 * ei + 1;
        let chunk = (config.chunk_bytes / per_instance).clamp(1, instances.max(1));
        Ok(Shape {
            gi,
            ei,
            no: c.outputs.len(),
            ands,
            wires,
            instances,
            chunk,
        })
    }

    /// `(first, n)` of every chunk.
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.instances)
            .step_by(self.chunk)
            .map(move |first| (first, self.chunk.min(self.instances - first)))
    }
}

/// SHA-256 over the circuit structure, the instance count, the chunking and the mode.
fn fingerprint(c: &Circuit, s: &Shape, mode: u8) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mp2ml yao v1");
    h.update([mode]);
    hash_circuit(&mut h, c, &[s.instances, s.chunk]);
    h.finalize().into()
}

/// Feeds the circuit structure (input counts, gates, outputs) and the given sizes to `h`.
pub(crate) fn hash_circuit(h: &mut Sha256, c: &Circuit, sizes: &[usize]) {
    for v in [c.garbler_inputs, c.evaluator_inputs] {
        h.update(v.to_le_bytes());
    }
    for &v in sizes.iter().chain(&[c.gates.len(), c.outputs.len()]) {
        h.update((v as u64).to_le_bytes());
    }
    for g in &c.gates {
        let (tag, a, b) = match *g {
            Gate::Xor(a, b) => (0u8, a, b),
            Gate::And(a, b) => (1, a, b),
            Gate::Inv(a) => (2, a, 0),
        };
        h.update([tag]);
        h.update(a.to_le_bytes());
        h.update(b.to_le_bytes());
    }
    for o in &c.outputs {
        h.update(o.to_le_bytes());
    }
}

pub(crate) fn check_len(who: &'static str, got: usize, per: usize, instances: usize) -> Result<()> {
    let expected = per * instances;
    if got != expected {
        return Err(MpcError::InputLength {
            who,
            expected,
            got,
            instances,
        });
    }
    Ok(())
}

fn recv_block(ch: &mut impl Channel) -> Result<u128> {
    let mut b = [0u128];
    ch.recv_blocks(&mut b)?;
    Ok(b[0])
}

/// ChaCha20 seeded from the operating system.
pub fn os_rng() -> Result<ChaCha20Rng> {
    ChaCha20Rng::try_from_os_rng().map_err(|e| MpcError::Entropy(e.to_string()))
}

fn random_block(rng: &mut ChaCha20Rng) -> u128 {
    rng.random()
}

/// Byte counters at the start of a phase.
pub(crate) struct Meter {
    start: Instant,
    sent: u64,
    received: u64,
}

impl Meter {
    pub(crate) fn start(ch: &mut impl Channel, phase: &'static str) -> Meter {
        ch.set_phase(phase);
        let s = ch.stats();
        Meter {
            start: Instant::now(),
            sent: s.sent(),
            received: s.received(),
        }
    }

    pub(crate) fn finish(self, ch: &impl Channel, phase: &'static str) -> PhaseReport {
        let s = ch.stats();
        PhaseReport {
            phase,
            elapsed: self.start.elapsed(),
            sent: s.sent() - self.sent,
            received: s.received() - self.received,
        }
    }
}

/// The [`Chunk`] of `n` instances from `first` (the tweaks' instance index is a `u64`).
fn gc_chunk(first: usize, n: usize) -> Chunk {
    Chunk {
        first: first as u64,
        n,
    }
}

/// The garbler's secrets for one batch: the free-XOR offset R (`delta`, lsb 1) and the seeds
/// of the input labels. The garbler's inputs' active labels come from `garbler_seed` (sent to
/// the evaluator), the evaluator's inputs' zero labels from `eval_seed` (kept; the evaluator
/// obtains its active labels by OT).
struct BatchKeys {
    delta: u128,
    garbler_seed: Prg,
    eval_seed: Prg,
}

impl BatchKeys {
    /// Writes the input zero labels of the chunk of `n` instances from `first` into wire-major
    /// `labels`; `garbler_bits` holds the whole batch's garbler inputs, instance-major.
    fn input_labels(
        &self,
        s: &Shape,
        (first, n): (usize, usize),
        garbler_bits: &[bool],
        labels: &mut [u128],
    ) {
        let mut tmp = vec![0u128; n * s.gi.max(s.ei)];
        // Garbler input (t, i): public active label L = PRG_seed[t gi + i]; W^0 = L ⊕ x R.
        self.garbler_seed
            .fill((first * s.gi) as u64, &mut tmp[..n * s.gi]);
        for t in 0..n {
            for i in 0..s.gi {
                let x = garbler_bits[(first + t) * s.gi + i];
                labels[i * n + t] = tmp[t * s.gi + i] ^ (mask(x) & self.delta);
            }
        }
        // Evaluator input (t, j): W^0 = PRG_private[t ei + j].
        self.eval_seed
            .fill((first * s.ei) as u64, &mut tmp[..n * s.ei]);
        for t in 0..n {
            for j in 0..s.ei {
                labels[(s.gi + j) * n + t] = tmp[t * s.ei + j];
            }
        }
    }
}

/// Instance-major decoding bits `lsb(W^0)` of the chunk's outputs.
fn decoding_bits(c: &Circuit, n: usize, labels: &[u128]) -> Vec<bool> {
    let mut d = Vec::with_capacity(n * c.outputs.len());
    for t in 0..n {
        for &o in &c.outputs {
            d.push(lsb(labels[o as usize * n + t]));
        }
    }
    d
}

/// Decodes the chunk's outputs: bit = lsb(active label) ⊕ decoding bit.
fn decode(c: &Circuit, n: usize, labels: &[u128], d: &[bool], out: &mut Vec<bool>) {
    let no = c.outputs.len();
    for t in 0..n {
        for (o, &w) in c.outputs.iter().enumerate() {
            out.push(lsb(labels[w as usize * n + t]) ^ d[t * no + o]);
        }
    }
}

/// The IKNP sender, running the base OTs on first use.
fn ot_sender<'a>(
    ot: &'a mut Option<IknpSender>,
    ch: &mut impl Channel,
    rng: &mut ChaCha20Rng,
) -> Result<&'a mut IknpSender> {
    if ot.is_none() {
        *ot = Some(IknpSender::setup(ch, rng)?);
    }
    ot.as_mut()
        .ok_or_else(|| MpcError::Protocol("OT setup".into()))
}

/// The IKNP receiver, running the base OTs on first use.
fn ot_receiver<'a>(
    ot: &'a mut Option<IknpReceiver>,
    ch: &mut impl Channel,
    rng: &mut ChaCha20Rng,
) -> Result<&'a mut IknpReceiver> {
    if ot.is_none() {
        *ot = Some(IknpReceiver::setup(ch, rng)?);
    }
    ot.as_mut()
        .ok_or_else(|| MpcError::Protocol("OT setup".into()))
}

/// The server's offline state for one batch; consumed by [`Garbler::online`].
#[derive(Debug)]
pub struct GarblerOffline {
    seq: u64,
    instances: usize,
    ei: usize,
    delta: u128,
    eval_seed: Prg,
    pads: Vec<(u128, u128)>,
}

impl GarblerOffline {
    /// Number of instances garbled.
    pub fn instances(&self) -> usize {
        self.instances
    }
}

/// The client's offline state for one batch: garbled tables, decoding bits and random OTs;
/// consumed by [`Evaluator::online`].
#[derive(Debug)]
pub struct EvaluatorOffline {
    seq: u64,
    circuit: Circuit,
    shape: Shape,
    garbler_seed: Prg,
    tables: Vec<u128>,
    decoding: Vec<bool>,
    random_choices: Vec<bool>,
    pads: Vec<u128>,
}

impl EvaluatorOffline {
    /// Number of instances garbled.
    pub fn instances(&self) -> usize {
        self.shape.instances
    }

    /// Bytes of garbled tables held.
    pub fn table_bytes(&self) -> usize {
        16 * self.tables.len()
    }
}

/// The server side: garbles and answers OTs.
#[derive(Debug)]
pub struct Garbler<C: Channel> {
    ch: C,
    rng: ChaCha20Rng,
    ot: Option<IknpSender>,
    hash: FixedKeyHash,
    config: GcConfig,
    seq: u64,
    reports: Vec<PhaseReport>,
}

/// The client side: evaluates and decodes.
#[derive(Debug)]
pub struct Evaluator<C: Channel> {
    ch: C,
    rng: ChaCha20Rng,
    ot: Option<IknpReceiver>,
    hash: FixedKeyHash,
    config: GcConfig,
    seq: u64,
    reports: Vec<PhaseReport>,
}

/// The constructors and channel accessors both parties share (the types differ only in
/// their OT role and what their phases do).
macro_rules! party_common {
    ($party:ident, $peer:literal) => {
        impl<C: Channel> $party<C> {
            #[doc = concat!("A party on `ch` drawing randomness from `rng` (use [`", stringify!($party), "::from_os_rng`] outside tests).")]
            pub fn new(ch: C, rng: ChaCha20Rng) -> Self {
                Self::with_config(ch, rng, GcConfig::default())
            }

            /// A party with a ChaCha20 generator seeded from the operating system.
            ///
            /// # Errors
            /// [`MpcError::Entropy`] if the operating system has no randomness to give.
            pub fn from_os_rng(ch: C) -> Result<Self> {
                Ok(Self::new(ch, os_rng()?))
            }

            #[doc = concat!("A party with explicit tuning (the ", $peer, " must use the same).")]
            pub fn with_config(ch: C, rng: ChaCha20Rng, config: GcConfig) -> Self {
                $party {
                    ch,
                    rng,
                    ot: None,
                    hash: FixedKeyHash::new(),
                    config,
                    seq: 0,
                    reports: Vec::new(),
                }
            }

            /// The channel, for other messages of the protocol between circuit runs.
            pub fn channel_mut(&mut self) -> &mut C {
                &mut self.ch
            }

            /// The channel, for reading its statistics.
            pub fn channel(&self) -> &C {
                &self.ch
            }

            /// Gives the channel back.
            pub fn into_channel(self) -> C {
                self.ch
            }

            /// Time and bytes of every phase run so far.
            pub fn reports(&self) -> &[PhaseReport] {
                &self.reports
            }
        }
    };
}

party_common!(Garbler, "evaluator");
party_common!(Evaluator, "garbler");

impl<C: Channel> Garbler<C> {
    /// Offline phase: garbles `instances` copies of `circuit` with the server's input bits
    /// (instance-major) and sends tables, input labels and decoding bits; prepares the random
    /// OTs for the client's inputs. Channel phase `offline`.
    pub fn offline(
        &mut self,
        circuit: &Circuit,
        instances: usize,
        garbler_bits: &[bool],
    ) -> Result<GarblerOffline> {
        let meter = Meter::start(&mut self.ch, "offline");
        let s = Shape::new(circuit, instances, &self.config)?;
        check_len("garbler", garbler_bits.len(), s.gi, instances)?;
        self.ch.send(&fingerprint(circuit, &s, b'O'))?;
        self.seq += 1;
        self.ch.send_u64(self.seq)?;
        let pads = ot_sender(&mut self.ot, &mut self.ch, &mut self.rng)?
            .extend_random(&mut self.ch, instances * s.ei)?;
        let (delta, eval_seed) = self.garble_all(circuit, &s, garbler_bits, |_, _, _, _| Ok(()))?;
        self.ch.flush()?;
        self.reports.push(meter.finish(&self.ch, "offline"));
        Ok(GarblerOffline {
            seq: self.seq,
            instances,
            ei: s.ei,
            delta,
            eval_seed,
            pads,
        })
    }

    /// Online phase for a batch prepared by [`Garbler::offline`]: answers the client's OT
    /// corrections with its input labels. Channel phase `online`.
    pub fn online(&mut self, handle: GarblerOffline) -> Result<()> {
        let meter = Meter::start(&mut self.ch, "online");
        let seq = self.ch.recv_u64()?;
        if seq != handle.seq {
            return Err(MpcError::Mismatch(format!(
                "client runs offline batch {seq}, server batch {}",
                handle.seq
            )));
        }
        let m = handle.instances * handle.ei;
        let mut zero = vec![0u128; m];
        handle.eval_seed.fill(0, &mut zero);
        let msgs: Vec<(u128, u128)> = zero.into_iter().map(|w0| (w0, w0 ^ handle.delta)).collect();
        derandomize_send(&mut self.ch, &handle.pads, &msgs)?;
        self.reports.push(meter.finish(&self.ch, "online"));
        Ok(())
    }

    /// Offline and online together, pipelined chunk by chunk with memory bounded by the chunk
    /// budget; for batches whose tables do not fit in memory. Channel phase `stream`.
    pub fn run_streaming(
        &mut self,
        circuit: &Circuit,
        instances: usize,
        garbler_bits: &[bool],
    ) -> Result<()> {
        let meter = Meter::start(&mut self.ch, "stream");
        let s = Shape::new(circuit, instances, &self.config)?;
        check_len("garbler", garbler_bits.len(), s.gi, instances)?;
        self.ch.send(&fingerprint(circuit, &s, b'S'))?;
        ot_sender(&mut self.ot, &mut self.ch, &mut self.rng)?;
        let ei = s.ei;
        let gi = s.gi;
        self.garble_all(circuit, &s, garbler_bits, |g, n, labels, delta| {
            let mut msgs = Vec::with_capacity(n * ei);
            for t in 0..n {
                for j in 0..ei {
                    let w0 = labels[(gi + j) * n + t];
                    msgs.push((w0, w0 ^ delta));
                }
            }
            let ot =
                g.ot.as_mut()
                    .ok_or_else(|| MpcError::Protocol("OT setup".into()))?;
            ot.send(&mut g.ch, &msgs)
        })?;
        self.ch.flush()?;
        self.reports.push(meter.finish(&self.ch, "stream"));
        Ok(())
    }

    /// Draws Δ (lsb 1 for free XOR, so W⁰ and W¹ have different colours) and the label seeds,
    /// sends the seed of the garbler's input labels, then garbles the instances chunk by chunk
    /// and sends each chunk's tables and decoding bits. `after_chunk(self, n, labels, Δ)` runs
    /// after each chunk (streaming sends the evaluator's input labels there). Returns Δ and
    /// the generator of the evaluator's zero labels.
    fn garble_all(
        &mut self,
        circuit: &Circuit,
        s: &Shape,
        garbler_bits: &[bool],
        mut after_chunk: impl FnMut(&mut Self, usize, &[u128], u128) -> Result<()>,
    ) -> Result<(u128, Prg)> {
        let delta = random_block(&mut self.rng) | 1;
        let garbler_seed = random_block(&mut self.rng);
        let eval_seed = Prg::new(random_block(&mut self.rng));
        self.ch.send_blocks(&[garbler_seed])?;
        let keys = BatchKeys {
            delta,
            garbler_seed: Prg::new(garbler_seed),
            eval_seed,
        };
        let mut labels = Vec::new();
        let mut tables = Vec::new();
        let mut scratch = Scratch::default();
        for (first, n) in s.chunks() {
            labels.clear();
            labels.resize(s.wires * n, 0);
            keys.input_labels(s, (first, n), garbler_bits, &mut labels);
            garble_chunk(
                circuit,
                &self.hash,
                delta,
                gc_chunk(first, n),
                &mut labels,
                &mut tables,
                &mut scratch,
            )?;
            self.ch.send_blocks(&tables)?;
            self.ch
                .send(&pack_bits(&decoding_bits(circuit, n, &labels)))?;
            after_chunk(self, n, &labels, delta)?;
        }
        Ok((delta, keys.eval_seed))
    }
}

impl<C: Channel> Evaluator<C> {
    fn check_fingerprint(&mut self, circuit: &Circuit, s: &Shape, mode: u8) -> Result<()> {
        let mut theirs = [0u8; 32];
        self.ch.recv(&mut theirs)?;
        if theirs != fingerprint(circuit, s, mode) {
            return Err(MpcError::Mismatch(format!(
                "server garbles a different circuit, instance count, chunking or mode than `{}` × {}",
                circuit.name, s.instances
            )));
        }
        Ok(())
    }

    fn recv_chunk(
        &mut self,
        s: &Shape,
        n: usize,
        tables: &mut [u128],
        decoding: &mut Vec<bool>,
    ) -> Result<()> {
        self.ch.recv_blocks(tables)?;
        let mut raw = vec![0u8; (n * s.no).div_ceil(8)];
        self.ch.recv(&mut raw)?;
        decoding.extend(
            unpack_bits(&raw, n * s.no)
                .ok_or_else(|| MpcError::Protocol("decoding bits".into()))?,
        );
        Ok(())
    }

    /// Offline phase: receives and stores the garbled tables, the server's input labels and
    /// the decoding bits for `instances` copies of `circuit`; runs the random OTs. Channel
    /// phase `offline`. The handle holds `32 · ands · instances` bytes of tables.
    pub fn offline(&mut self, circuit: &Circuit, instances: usize) -> Result<EvaluatorOffline> {
        let meter = Meter::start(&mut self.ch, "offline");
        let s = Shape::new(circuit, instances, &self.config)?;
        self.check_fingerprint(circuit, &s, b'O')?;
        let seq = self.ch.recv_u64()?;
        if seq != self.seq + 1 {
            return Err(MpcError::Mismatch(format!(
                "server starts batch {seq}, client expected {}",
                self.seq + 1
            )));
        }
        self.seq = seq;
        let random_choices: Vec<bool> = (0..instances * s.ei).map(|_| self.rng.random()).collect();
        let pads = ot_receiver(&mut self.ot, &mut self.ch, &mut self.rng)?
            .extend_random(&mut self.ch, &random_choices)?;
        let garbler_seed = Prg::new(recv_block(&mut self.ch)?);
        let mut tables = vec![0u128; 2 * s.ands * instances];
        let mut decoding = Vec::with_capacity(instances * s.no);
        for (first, n) in s.chunks() {
            let range = 2 * s.ands * first..2 * s.ands * (first + n);
            self.recv_chunk(&s, n, &mut tables[range], &mut decoding)?;
        }
        self.reports.push(meter.finish(&self.ch, "offline"));
        Ok(EvaluatorOffline {
            seq,
            circuit: circuit.clone(),
            shape: s,
            garbler_seed,
            tables,
            decoding,
            random_choices,
            pads,
        })
    }

    /// Online phase: obtains the labels of `evaluator_bits` (instance-major) by derandomized
    /// OT, evaluates every instance and returns the outputs (instance-major). Channel phase
    /// `online`.
    pub fn online(
        &mut self,
        handle: EvaluatorOffline,
        evaluator_bits: &[bool],
    ) -> Result<Vec<bool>> {
        let meter = Meter::start(&mut self.ch, "online");
        let s = &handle.shape;
        check_len("evaluator", evaluator_bits.len(), s.ei, s.instances)?;
        self.ch.send_u64(handle.seq)?;
        let active = derandomize_receive(
            &mut self.ch,
            &handle.random_choices,
            &handle.pads,
            evaluator_bits,
        )?;
        let mut out = Vec::with_capacity(s.instances * s.no);
        let mut labels = Vec::new();
        let mut scratch = Scratch::default();
        for (first, n) in s.chunks() {
            labels.clear();
            labels.resize(s.wires * n, 0);
            self.active_input_labels(
                s,
                first,
                n,
                &handle.garbler_seed,
                &active[first * s.ei..(first + n) * s.ei],
                &mut labels,
            );
            let tables = &handle.tables[2 * s.ands * first..2 * s.ands * (first + n)];
            eval_chunk(
                &handle.circuit,
                &self.hash,
                gc_chunk(first, n),
                &mut labels,
                tables,
                &mut scratch,
            )?;
            decode(
                &handle.circuit,
                n,
                &labels,
                &handle.decoding[first * s.no..(first + n) * s.no],
                &mut out,
            );
        }
        self.reports.push(meter.finish(&self.ch, "online"));
        Ok(out)
    }

    /// Writes the active input labels of one chunk (`active` holds the chunk's evaluator-input
    /// labels, instance-major).
    fn active_input_labels(
        &self,
        s: &Shape,
        first: usize,
        n: usize,
        garbler_seed: &Prg,
        active: &[u128],
        labels: &mut [u128],
    ) {
        let mut tmp = vec![0u128; n * s.gi];
        garbler_seed.fill((first * s.gi) as u64, &mut tmp);
        for t in 0..n {
            for i in 0..s.gi {
                labels[i * n + t] = tmp[t * s.gi + i];
            }
        }
        for t in 0..n {
            for j in 0..s.ei {
                labels[(s.gi + j) * n + t] = active[t * s.ei + j];
            }
        }
    }

    /// Offline and online together, pipelined chunk by chunk (see [`Garbler::run_streaming`]);
    /// returns the outputs (instance-major). Channel phase `stream`.
    pub fn run_streaming(
        &mut self,
        circuit: &Circuit,
        instances: usize,
        evaluator_bits: &[bool],
    ) -> Result<Vec<bool>> {
        let meter = Meter::start(&mut self.ch, "stream");
        let s = Shape::new(circuit, instances, &self.config)?;
        check_len("evaluator", evaluator_bits.len(), s.ei, instances)?;
        self.check_fingerprint(circuit, &s, b'S')?;
        ot_receiver(&mut self.ot, &mut self.ch, &mut self.rng)?;
        let garbler_seed = Prg::new(recv_block(&mut self.ch)?);
        let mut out = Vec::with_capacity(instances * s.no);
        let mut labels = Vec::new();
        let mut tables = Vec::new();
        let mut decoding = Vec::new();
        let mut scratch = Scratch::default();
        for (first, n) in s.chunks() {
            tables.clear();
            tables.resize(2 * s.ands * n, 0);
            decoding.clear();
            self.recv_chunk(&s, n, &mut tables, &mut decoding)?;
            let bits = &evaluator_bits[first * s.ei..(first + n) * s.ei];
            let ot = self
                .ot
                .as_mut()
                .ok_or_else(|| MpcError::Protocol("OT setup".into()))?;
            let active = ot.receive(&mut self.ch, bits)?;
            labels.clear();
            labels.resize(s.wires * n, 0);
            self.active_input_labels(&s, first, n, &garbler_seed, &active, &mut labels);
            eval_chunk(
                circuit,
                &self.hash,
                gc_chunk(first, n),
                &mut labels,
                &tables,
                &mut scratch,
            )?;
            decode(circuit, n, &labels, &decoding, &mut out);
        }
        self.reports.push(meter.finish(&self.ch, "stream"));
        Ok(out)
    }
}
