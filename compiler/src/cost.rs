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
/// q0 = 2^31 − 1 over in-memory channels, the machine's two cores shared, load ≈ 2.3).
const MEASURED: [f64; 4] = [9.684e-8, 3.197e-8, 1.193e-7, 9.344e-9];

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
    fn networks_and_objectives_parse() {
        assert_eq!("lan".parse::<NetworkProfile>(), Ok(NetworkProfile::LAN));
        assert_eq!("40:100".parse::<NetworkProfile>(), Ok(NetworkProfile::WAN));
        assert!("40".parse::<NetworkProfile>().is_err());
        assert!("-1:10".parse::<NetworkProfile>().is_err());
        assert!("1:0".parse::<NetworkProfile>().is_err());
        assert_eq!("total".parse::<MpcObjective>(), Ok(MpcObjective::Total));
        assert!("fast".parse::<MpcObjective>().is_err());
    }
}
