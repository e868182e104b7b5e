//! The cost model that picks each MPC step's Boolean back end (Yao or GMW) and GMW's circuit
//! variant (size-optimal or depth-optimized) for a network profile.
//!
//! For `n` instances of a circuit with `A` AND gates, AND depth `D`, `e` client input bits and
//! `o` output bits, on a link of round-trip time `RTT` and bandwidth `B` (bytes/s each way):
//!
//! - **Yao** (half-gates; `runtime/mpc/src/yao.rs`). Offline: 32 bytes of tables per AND and
//!   16 bytes of IKNP columns per client input bit, two round trips (fingerprint and OT
//!   extension): `2·RTT + (32·A + 16·e)·n/B + A·n·c_yao_off`. Online: the client's correction
//!   bits and two 16-byte labels per input bit back, one round trip:
//!   `RTT + 32·e·n/B + A·n·c_yao_on`.
//! - **GMW** (`runtime/mpc/src/gmw.rs`). Offline: two IKNP random OTs per AND (16 bytes of
//!   columns each, one direction after the other), one round trip per batch of
//!   [`GMW_OT_BATCH`] OTs: `2·RTT + ⌈A·n/OT_BATCH⌉·RTT + 32·A·n/B + A·n·c_gmw_off`. Online:
//!   per chunk of instances one simultaneous exchange per AND layer (a one-way delay each), 2
//!   bits per AND each way, then the server's output shares:
//!   `chunks·(D + 1)·RTT/2 + (A·n/4 + o·n/8)/B + A·n·c_gmw_on`.
//!
//! The step runs the back end with the smaller cost under the plan's [`MpcObjective`]: online
//! time (default; the offline phase runs before the client's input exists) or the whole
//! session; GMW runs whichever of its two circuits is cheaper under the same objective. The `c_*` constants are compute seconds per AND
//! gate (the slower party, both parties on one core each), measured on the development machine
//! (2 cores, shared) with `mp2ml-bench cost` (docs/BENCHMARKS.md, "GMW and Yao"); they are
//! constants so that a compile is deterministic.

use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::plan::{MpcBackend, MpcObjective, NetworkProfile};

/// Yao garbling and table transfer compute per AND gate, seconds (`mp2ml-bench cost`).
pub const YAO_OFFLINE_S_PER_AND: f64 = MEASURED[0];
/// Yao evaluation per AND gate, seconds.
pub const YAO_ONLINE_S_PER_AND: f64 = MEASURED[1];
/// GMW triple generation (two random OTs) per AND gate, seconds.
pub const GMW_OFFLINE_S_PER_AND: f64 = MEASURED[2];
/// GMW online evaluation per AND gate, seconds.
pub const GMW_ONLINE_S_PER_AND: f64 = MEASURED[3];

/// The four constants above as `mp2ml-bench cost --repeats 3` printed them (2,000 ReLUs at
/// q0 = 2^31 − 1 over in-memory channels, the machine's two cores shared, load ≈ 2.3; a run
/// on the quiet machine on 2 Dec 2026 gave 8.9e-8, 4.4e-8, 1.4e-7, 1.7e-8, docs/BENCHMARKS.md,
/// kept as they are so that the back-end choices of the golden plans stay).
const MEASURED: [f64; 4] = [9.684e-8, 3.197e-8, 1.193e-7, 9.344e-9];

/// A session's fixed Yao cost beyond its per-AND work: the base OTs of the first step
/// (`mp2ml-bench cost`, "fixed Yao seconds", in-memory channels).
pub const YAO_SESSION_S: f64 = FIXED[0];
/// Every MPC step's fixed cost beyond its per-AND work and round trips: one ReLU instance
/// garbled, its OT extension and evaluation, in a session whose base OTs are done.
pub const YAO_STEP_S: f64 = FIXED[1];

/// The two constants above as `mp2ml-bench cost` printed them.
const FIXED: [f64; 2] = [1.365e-2, 5.646e-4];

/// Random OTs per IKNP call in GMW's triple generation (`mp2ml_mpc::GmwConfig::ot_batch`).
pub const GMW_OT_BATCH: f64 = (1u64 << 18) as f64;
/// GMW's wire memory per chunk of instances (`mp2ml_mpc::GmwConfig::chunk_bytes`).
pub const GMW_CHUNK_BYTES: f64 = (64u64 << 20) as f64;

/// Estimated time and traffic of one step under one back end.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Cost {
    /// Seconds end to end (offline and online).
    pub seconds: f64,
    /// Seconds after the client's input is known.
    pub online_seconds: f64,
    /// Bytes both ways.
    pub bytes: f64,
    /// Bytes both ways after the client's input is known.
    pub online_bytes: f64,
}

fn bytes_per_second(net: &NetworkProfile) -> f64 {
    net.mbit_s * 1e6 / 8.0
}

/// Yao's cost for `n` instances of `sc`.
pub fn yao(sc: &ShareCircuit, n: usize, net: &NetworkProfile) -> Cost {
    let s = sc.circuit.stats();
    let (a, e, n) = (
        s.and as f64,
        f64::from(sc.circuit.evaluator_inputs),
        n as f64,
    );
    let rtt = net.rtt_ms / 1e3;
    let bw = bytes_per_second(net);
    let offline_bytes = (32.0 * a + 16.0 * e) * n;
    let online_bytes = 32.125 * e * n;
    let offline = 2.0 * rtt + offline_bytes / bw + a * n * YAO_OFFLINE_S_PER_AND;
    let online = rtt + online_bytes / bw + a * n * YAO_ONLINE_S_PER_AND;
    Cost {
        seconds: offline + online,
        online_seconds: online,
        bytes: offline_bytes + online_bytes,
        online_bytes,
    }
}

/// GMW's cost for `n` instances of `sc`.
pub fn gmw(sc: &ShareCircuit, n: usize, net: &NetworkProfile) -> Cost {
    let s = sc.circuit.stats();
    let (a, d, o) = (
        s.and as f64,
        f64::from(s.and_depth),
        sc.circuit.outputs.len() as f64,
    );
    let nf = n as f64;
    let rtt = net.rtt_ms / 1e3;
    let bw = bytes_per_second(net);
    let per_chunk = ((GMW_CHUNK_BYTES / (8.0 * s.wires.max(1) as f64))
        .floor()
        .max(1.0))
        * 64.0;
    let chunks = (nf / per_chunk).ceil().max(1.0);
    let offline_bytes = 32.0 * a * nf;
    let online_bytes = a * nf / 2.0 + o * nf / 8.0;
    let offline = 2.0 * rtt
        + (a * nf / GMW_OT_BATCH).ceil() * rtt
        + offline_bytes / bw
        + a * nf * GMW_OFFLINE_S_PER_AND;
    let online = chunks * (d + 1.0) * rtt / 2.0
        + (a * nf / 4.0 + o * nf / 8.0) / bw
        + a * nf * GMW_ONLINE_S_PER_AND;
    Cost {
        seconds: offline + online,
        online_seconds: online,
        bytes: offline_bytes + online_bytes,
        online_bytes,
    }
}

/// The cost model's verdict for one step.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Choice {
    /// Yao on the size-optimal circuit.
    pub yao: Cost,
    /// GMW on the size-optimal circuit.
    pub gmw_size: Cost,
    /// GMW on the depth-optimized circuit.
    pub gmw_depth: Cost,
    /// The cheaper back end under the objective.
    pub backend: MpcBackend,
    /// Whether GMW runs the depth-optimized circuit (its cheaper variant).
    pub gmw_depth_circuit: bool,
}

/// The figure `objective` minimizes.
pub fn objective_seconds(c: &Cost, objective: MpcObjective) -> f64 {
    match objective {
        MpcObjective::Online => c.online_seconds,
        MpcObjective::Total => c.seconds,
    }
}

/// Picks the back end and GMW's variant for `n` instances (instances per image × batch).
/// Ties go to Yao and to the size-optimal circuit.
pub fn choose(
    size: &ShareCircuit,
    depth: &ShareCircuit,
    n: usize,
    net: &NetworkProfile,
    objective: MpcObjective,
) -> Choice {
    let y = yao(size, n, net);
    let gs = gmw(size, n, net);
    let gd = gmw(depth, n, net);
    let f = |c: &Cost| objective_seconds(c, objective);
    let gmw_depth_circuit = f(&gd) < f(&gs);
    let g = if gmw_depth_circuit { gd } else { gs };
    Choice {
        yao: y,
        gmw_size: gs,
        gmw_depth: gd,
        backend: if f(&g) < f(&y) {
            MpcBackend::Gmw
        } else {
            MpcBackend::Yao
        },
        gmw_depth_circuit,
    }
}

/// The HE side of a session's time: every CKKS primitive the runtime runs, counted from the
/// plan (levels, ring dimension, ciphertexts or polynomials, products, matrix entries) and
/// priced at seconds per RNS limb measured on the development machine with `mp2ml-bench cost`
/// (2 cores, rayon over the polynomials as the runtime does; docs/BENCHMARKS.md, "The
/// report's estimates against measured sessions"). Constants, so that a compile is
/// deterministic. Both parties' work is summed: in a session they mostly take turns. The
/// report adds the CPU of the wire ([`he::wire`]: bit-packing and decoding every ciphertext
/// frame, which a loopback link's bandwidth does not charge) and the fixed costs of a session
/// ([`YAO_SESSION_S`], [`YAO_STEP_S`] per MPC step, [`he::KEYGEN`]).
pub mod he {
    use mp2ml_ir::plan::{HeOp, Segment, ServerPlan};

    /// Ring dimension the constants were measured at; transforms scale as N·log2 N, the
    /// coefficient-wise primitives as N.
    const N0: f64 = 8192.0;
    /// Seed expansion c1 = a(seed), per limb (server).
    pub const EXPAND: f64 = 1.895e-5;
    /// Public-key encryption, both halves in full, per limb (server: masks, floods).
    pub const PK_ENC_FULL: f64 = 1.941e-4;
    /// Public-key encryption with a c0 window of ≤ 8 coefficients, per limb.
    pub const PK_ENC_WINDOW: f64 = 1.208e-4;
    /// Seeded secret-key encryption, whole c0, per limb (client uploads).
    pub const SK_ENC_FULL: f64 = 1.385e-4;
    /// Seeded secret-key encryption with a c0 window of ≤ 8 coefficients, per limb.
    pub const SK_ENC_WINDOW: f64 = 2.420e-5;
    /// c1·s in full, per limb (client, offline half of a decryption).
    pub const C1S_FULL: f64 = 3.283e-5;
    /// c1·s at ≤ 8 coefficients, per limb.
    pub const C1S_WINDOW: f64 = 8.945e-6;
    /// Forward transform of one limb (image packing: every input polynomial of a product).
    pub const NTT: f64 = 4.984e-5;
    /// Inverse transform of one limb (image packing: every output polynomial).
    pub const INV_NTT: f64 = 2.162e-5;
    /// One pointwise product-accumulate of one limb (image packing: per kernel term).
    pub const PMUL: f64 = 3.350e-6;
    /// Rescale of one limb of N coefficients.
    pub const RESCALE: f64 = 3.653e-5;
    /// One coefficient multiply-accumulate of a batch-packed Linear.
    pub const MAC: f64 = 7.201e-10;
    /// The client's key pair (a ternary secret and its transform, b = −a·s + e), one thread,
    /// per limb of the whole modulus.
    pub const KEYGEN: f64 = 3.469e-4;
    /// Bit-packing a ciphertext half into its frame, one thread, per byte sent.
    pub const WIRE_PACK: f64 = 1.662e-9;
    /// Decoding received frames in parallel, per byte.
    pub const WIRE_UNPACK: f64 = 1.363e-9;
    /// Windows up to this many coefficients take the direct (transform-free) paths.
    const DIRECT_MAX: usize = 8;

    /// Seconds to pack and decode `bytes` of ciphertext frames (the CPU side of the wire,
    /// which the network profile's bandwidth does not include).
    pub fn wire(bytes: f64) -> f64 {
        bytes * (WIRE_PACK + WIRE_UNPACK)
    }

    /// Estimated HE seconds of one session of the plan's batch, per image: per segment (the
    /// linear ops on both halves), per MPC step (its masks, the client's c1·s and
    /// decryptions, the re-encryption and upload of its outputs), the input's upload and the
    /// output.
    #[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
    pub struct HeSeconds {
        /// Per plan segment (zero for MPC segments).
        pub segments: Vec<f64>,
        /// Per MPC step.
        pub steps: Vec<f64>,
        /// The input's encryption, expansion and entry flood.
        pub input: f64,
        /// The output's mask encryption and the client's decryption.
        pub output: f64,
        /// The client's key generation ([`KEYGEN`] per limb of the whole modulus), once per
        /// session.
        pub keygen: f64,
    }

    impl HeSeconds {
        /// Everything.
        pub fn total(&self) -> f64 {
            self.segments.iter().sum::<f64>()
                + self.steps.iter().sum::<f64>()
                + self.input
                + self.output
                + self.keygen
        }
    }

    /// Prices at one ring dimension, for a plan's entry flood.
    pub struct Prices {
        n: f64,
        ntt: f64,
        lin: f64,
        rescales: usize,
        flood: bool,
    }

    impl Prices {
        /// Prices at ring dimension `n`, with `rescales` entry rescales after every upload
        /// and, if `flood`, a public-key encryption of its entry flood.
        pub fn new(n: usize, rescales: usize, flood: bool) -> Prices {
            let nf = n as f64;
            Prices {
                n: nf,
                ntt: nf / N0 * nf.log2() / N0.log2(),
                lin: nf / N0,
                rescales,
                flood,
            }
        }
        /// Prices for `plan`'s ring. Plans since PLAN_VERSION 7 have no entry flood (the
        /// server floods its share of each circuit input instead, a per-value addition).
        pub fn of(plan: &ServerPlan) -> Prices {
            Prices::new(plan.public.params.n(), 0, false)
        }
        fn limbs(level: usize) -> f64 {
            level as f64 + 1.0
        }
        /// The client's upload of one ciphertext/polynomial at `level` (c0 window `width`)
        /// and the server's expansion, entry flood and rescales of it (both halves, the c0
        /// over `width` coefficients).
        pub fn upload(&self, level: usize, width: usize) -> f64 {
            let l = Prices::limbs(level);
            let small = width <= DIRECT_MAX;
            let sk = if small {
                SK_ENC_WINDOW * self.lin
            } else {
                SK_ENC_FULL * self.ntt
            };
            let mut s = l * (sk + EXPAND * self.lin);
            if self.flood {
                s += l * self.pk(width);
            }
            let share = 1.0 + width as f64 / self.n;
            for r in 0..self.rescales {
                s += Prices::limbs(level.saturating_sub(r)) * RESCALE * self.lin * share;
            }
            s
        }
        fn pk(&self, width: usize) -> f64 {
            if width <= DIRECT_MAX {
                PK_ENC_WINDOW * self.ntt
            } else {
                PK_ENC_FULL * self.ntt
            }
        }
        fn c1s(&self, width: usize) -> f64 {
            if width <= DIRECT_MAX {
                C1S_WINDOW * self.lin
            } else {
                C1S_FULL * self.ntt
            }
        }
        /// A server mask encryption at `level` and the client's c1·s of it.
        pub fn unmask(&self, level: usize, width: usize) -> f64 {
            Prices::limbs(level) * (self.pk(width) + self.c1s(width))
        }
    }

    /// An image-packed linear op on both halves at `level`: a forward transform of each of
    /// `polys` input polynomials, `products` pointwise products, an inverse transform and a
    /// rescale of each of `outputs` polynomials.
    pub fn poly_linear(
        pr: &Prices,
        level: usize,
        polys: usize,
        products: usize,
        outputs: usize,
    ) -> f64 {
        2.0 * Prices::limbs(level)
            * (polys as f64 * NTT * pr.ntt
                + products as f64 * PMUL * pr.lin
                + outputs as f64 * (INV_NTT * pr.ntt + RESCALE * pr.lin))
    }

    /// [`HeSeconds`] of `plan` at its batch (batch packing: one ciphertext group of
    /// min(batch, N) images; image packing: per image).
    pub fn seconds(plan: &ServerPlan) -> HeSeconds {
        let p = &plan.public;
        let n = p.params.n();
        let nf = n as f64;
        let pr = Prices::of(plan);
        let mut out = HeSeconds {
            segments: vec![0.0; plan.segments.len()],
            steps: vec![0.0; p.mpc_steps.len()],
            ..Default::default()
        };
        let all_limbs = p.params.moduli.len() as f64;
        let keygen = all_limbs * KEYGEN * pr.ntt;
        let in_len: usize = p.input.shape.iter().product();
        let out_len: usize = p.output.shape.iter().product();
        match p.image.as_ref() {
            None => {
                // One group of b images: c1 halves in full, c0 windows of b coefficients.
                let b = p.batch.clamp(1, n);
                let bf = b as f64;
                let share = 1.0 + bf / nf;
                out.keygen = keygen / bf;
                out.input = in_len as f64 * pr.upload(p.input.level, b) / bf;
                for (k, st) in p.mpc_steps.iter().enumerate() {
                    out.steps[k] = (st.values_in as f64 * pr.unmask(0, b)
                        + st.values_out as f64 * pr.upload(st.out_level, b))
                        / bf;
                }
                out.output = out_len as f64 * pr.unmask(p.output.level, b) / bf;
                for (si, seg) in plan.segments.iter().enumerate() {
                    let Segment::He(h) = seg else { continue };
                    for op in &h.ops {
                        if let HeOp::Linear {
                            output,
                            matrix,
                            level_in,
                            ..
                        } = op
                        {
                            let l = Prices::limbs(*level_in);
                            let rows = plan.tensor(*output).map_or(0, |t| t.len()) as f64;
                            out.segments[si] += (matrix.nnz as f64 * l * nf * MAC * share
                                + rows * l * RESCALE * pr.lin * share)
                                / bf;
                        }
                    }
                }
            }
            Some(l) => {
                let ups = |u: &[mp2ml_ir::plan::Upload], level: usize| -> f64 {
                    u.iter().map(|u| u.layout.polys() as f64).sum::<f64>() * pr.upload(level, n)
                };
                // Both halves are whole polynomials: the c0's flood rescale is in `upload`.
                out.keygen = keygen / p.batch.max(1) as f64;
                out.input = ups(&l.input, p.input.level);
                let windows = |at: &[(u32, u32)]| {
                    at.iter()
                        .map(|&(q, _)| q)
                        .collect::<std::collections::BTreeSet<_>>()
                        .len() as f64
                };
                for (k, (st, ls)) in p.mpc_steps.iter().zip(&l.steps).enumerate() {
                    out.steps[k] =
                        windows(&ls.input.at) * pr.unmask(0, n) + ups(&ls.uploads, st.out_level);
                }
                out.output = windows(&l.output.at) * pr.unmask(p.output.level, n);
                for (si, seg) in plan.segments.iter().enumerate() {
                    let Segment::He(h) = seg else { continue };
                    for op in &h.ops {
                        if let HeOp::PolyLinear {
                            inputs,
                            terms,
                            level_in,
                            ..
                        } = op
                        {
                            let polys: usize = inputs
                                .iter()
                                .filter_map(|&i| plan.tensor(i).ok()?.polys)
                                .sum();
                            let products: usize = terms.iter().map(Vec::len).sum();
                            out.segments[si] +=
                                poly_linear(&pr, *level_in, polys, products, terms.len());
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp2ml_ir::circuit::activations::{relu, CircuitParams};
    use mp2ml_ir::circuit::Style;

    fn relus() -> (ShareCircuit, ShareCircuit) {
        let p = |style| CircuitParams {
            q0: 2_147_483_647,
            trunc: 0,
            sigma: 40,
            style,
        };
        (relu(&p(Style::Size)), relu(&p(Style::Depth)))
    }

    #[test]
    fn gmw_wins_online_on_a_lan_and_yao_on_a_wan() {
        let (s, d) = relus();
        let on = MpcObjective::Online;
        // LAN: a round costs 0.1 ms, GMW opens 2 bits per AND where Yao moves 32 bytes per
        // input bit; the depth-optimized circuit saves ~80 rounds for 3× the ANDs.
        let lan = choose(&s, &d, 1000, &NetworkProfile::LAN, on);
        assert_eq!(lan.backend, MpcBackend::Gmw);
        assert!(lan.gmw_depth_circuit);
        // WAN: 25 rounds at 20 ms each exceed Yao's one round trip and its labels.
        let wan = choose(&s, &d, 1000, &NetworkProfile::WAN, on);
        assert_eq!(wan.backend, MpcBackend::Yao);
        assert!(wan.gmw_depth.online_seconds < wan.gmw_size.online_seconds);
        // No latency at all: fewer ANDs wins GMW's variant.
        let free = NetworkProfile {
            rtt_ms: 0.0,
            mbit_s: 1000.0,
        };
        assert!(!choose(&s, &d, 1000, &free, on).gmw_depth_circuit);
        // Online, GMW moves far fewer bytes than Yao.
        assert!(lan.gmw_size.online_bytes < lan.yao.online_bytes / 5.0);
        // Over the whole session GMW's triples cost as many bytes as Yao's tables (32 per
        // AND), so on a WAN its rounds decide: Yao.
        let total = choose(&s, &d, 1000, &NetworkProfile::WAN, MpcObjective::Total);
        assert_eq!(total.backend, MpcBackend::Yao);
        assert!((total.gmw_size.bytes / total.yao.bytes - 1.0).abs() < 0.2);
    }

    #[test]
    fn networks_parse() {
        assert_eq!("lan".parse::<NetworkProfile>(), Ok(NetworkProfile::LAN));
        assert_eq!("40:100".parse::<NetworkProfile>(), Ok(NetworkProfile::WAN));
        assert_eq!(
            "loopback".parse::<NetworkProfile>(),
            Ok(NetworkProfile::LOOPBACK)
        );
        assert!("40".parse::<NetworkProfile>().is_err());
        assert!("-1:10".parse::<NetworkProfile>().is_err());
        assert!("1:0".parse::<NetworkProfile>().is_err());
    }
}
