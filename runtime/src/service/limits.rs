//! What one session costs the server, estimated from the plan before the session starts: the
//! memory it will hold (checked against `--memory-budget` at admission) and the work it will do
//! (traffic, AND gates, coefficient operations), from which every step's deadline is derived.
//!
//! The estimates are upper bounds computed from the plan's shapes, not measurements:
//! - memory: the largest set of ciphertext halves alive at once in either pass of
//!   [`crate::server`] (the c1 halves are full polynomials of N coefficients, the online c0
//!   windows hold one coefficient per image), plus the masks, the garbler's label state and the
//!   channel buffers;
//! - work: bytes on the wire, AND gates garbled, and coefficient operations of the HE segments
//!   and encryptions, converted to seconds at deliberately low floor rates ([`LINK_FLOOR`],
//!   [`AND_FLOOR`], [`COEFF_FLOOR`]).

use std::time::Duration;

use mp2ml_ir::plan::{HeOp, Segment, TensorRef};

use crate::plan::ServerSetup;

/// Slowest link a session is planned for: 1 MB/s.
pub const LINK_FLOOR: f64 = 1e6;
/// Slowest garbling or evaluation rate planned for: 10⁶ AND gates per second (one core
/// garbles or evaluates ~10⁷).
pub const AND_FLOOR: f64 = 1e6;
/// Slowest rate of coefficient operations planned for (one multiply-add mod a 60-bit prime).
pub const COEFF_FLOOR: f64 = 5e7;
/// Factor on the estimate in a step's deadline.
pub const MARGIN: f64 = 2.0;
/// Fixed memory of a session: two 1 MiB channel buffers, thread stack, bookkeeping.
pub const SESSION_OVERHEAD: u64 = 8 << 20;

/// What one session of `images` images costs the server, per the plan.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Images of the session.
    pub images: usize,
    /// Peak bytes the session holds.
    pub memory: u64,
    /// Bytes sent plus received.
    pub traffic: u64,
    /// AND gates garbled.
    pub and_gates: u64,
    /// Coefficient operations (HE segments, encryptions, NTTs) on both sides.
    pub coeff_ops: u64,
}

impl Estimate {
    /// Seconds the whole session takes at the floor rates.
    pub fn floor_seconds(&self) -> f64 {
        self.traffic as f64 / LINK_FLOOR
            + self.and_gates as f64 / AND_FLOOR
            + self.coeff_ops as f64 / COEFF_FLOOR
    }

    /// The deadline of each step after the handshake: the per-read `timeout` plus [`MARGIN`]
    /// times the whole session's floor-rate estimate, scaled by `contention` (sessions that may
    /// share each core). A step never legitimately takes longer than the whole session; a peer
    /// trickling bytes is dropped once it has had that long.
    pub fn step_budget(&self, timeout: Duration, contention: f64) -> Duration {
        let extra = MARGIN * contention.max(1.0) * self.floor_seconds();
        timeout + Duration::from_secs_f64(extra.min(7.0 * 86400.0))
    }
}

/// Bytes of one RNS polynomial of `width` coefficients at `level` on the wire or in memory.
fn poly_bytes(level: usize, width: usize) -> u64 {
    8 * (level as u64 + 1) * width as u64 + 64
}

/// Saturating `a · b` for size arithmetic on plan numbers.
fn mul(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

/// The estimate for a session of `images` images (groups of at most N run one after another,
/// so memory is that of the largest group and work sums over the groups).
pub fn estimate(setup: &ServerSetup, images: usize) -> Estimate {
    let n = setup.params.n();
    let mut est = Estimate {
        images,
        ..Estimate::default()
    };
    for b in crate::session::groups(images, n) {
        let g = group(setup, b);
        est.memory = est.memory.max(g.memory);
        est.traffic = est.traffic.saturating_add(g.traffic);
        est.and_gates = est.and_gates.saturating_add(g.and_gates);
        est.coeff_ops = est.coeff_ops.saturating_add(g.coeff_ops);
    }
    est.memory = est.memory.saturating_add(SESSION_OVERHEAD);
    est
}

/// One ciphertext group of `b` images.
fn group(setup: &ServerSetup, b: usize) -> Estimate {
    let plan = &setup.plan;
    let public = &plan.public;
    let n = setup.params.n();
    let log_n = n.max(2).ilog2() as u64;
    let tensors = &plan.tensors;
    // Image packing: a tensor is `polys` whole polynomials per image on both halves.
    let t_bytes = |t: usize, width: usize| {
        tensors.get(t).map_or(0, |x| match x.polys {
            Some(p) => mul(mul(p as u64, b as u64), poly_bytes(x.level, n)),
            None => mul(x.len() as u64, poly_bytes(x.level, width)),
        })
    };

    // Liveness of each tensor over the segments: produced at `born`, last read at `last`.
    let segs = plan.segments.len();
    let mut born = vec![0usize; tensors.len()];
    let mut last = vec![0usize; tensors.len()];
    for (si, seg) in plan.segments.iter().enumerate() {
        let (reads, writes): (Vec<TensorRef>, Vec<TensorRef>) = match seg {
            Segment::He(he) => {
                let mut r = Vec::new();
                let mut w = Vec::new();
                for op in &he.ops {
                    match op {
                        HeOp::Linear { inputs, output, .. }
                        | HeOp::PolyLinear { inputs, output, .. } => {
                            r.extend(inputs.iter().copied());
                            w.push(*output);
                        }
                        HeOp::ModDrop { input, output, .. } => {
                            r.push(*input);
                            w.push(*output);
                        }
                    }
                }
                (r, w)
            }
            Segment::Mpc(m) => (vec![m.input], vec![m.output]),
        };
        for t in reads {
            if let Some(l) = last.get_mut(t.index()) {
                *l = (*l).max(si);
            }
        }
        for t in writes {
            if let Some(x) = born.get_mut(t.index()) {
                *x = si;
            }
        }
    }
    if let Some(l) = last.get_mut(plan.output_tensor.index()) {
        *l = segs;
    }
    let peak = |width: usize| -> u64 {
        (0..=segs)
            .map(|si| {
                (0..tensors.len())
                    .filter(|&t| born[t] <= si && si <= last[t])
                    .map(|t| t_bytes(t, width))
                    .fold(0u64, u64::saturating_add)
            })
            .max()
            .unwrap_or(0)
    };

    let mut est = Estimate::default();
    let out_len = plan.tensor(plan.output_tensor).map_or(0, |t| t.len()) as u64;
    let out_level = public.output.level;
    let t0 = tensors.first().map_or(0, |t| t.len()) as u64;
    // Masks: r and shares per input value, output masks, the pre-made c0 windows.
    let mut masks = mul(out_len, poly_bytes(out_level, b));
    // Traffic: seeds and c1 halves offline, c0 windows online.
    let mut traffic = mul(t0, poly_bytes(public.input.level, b));
    traffic = traffic.saturating_add(mul(32, t0));
    traffic = traffic.saturating_add(mul(2 * out_len, poly_bytes(out_level, n.max(b))));
    let mut encryptions = t0.saturating_add(out_len);
    for s in &public.mpc_steps {
        let (vi, vo) = (s.values_in as u64, s.values_out as u64);
        let inst = mul(s.instances as u64, b as u64);
        masks = masks
            .saturating_add(mul(vi, poly_bytes(0, b) + 24 * b as u64))
            .saturating_add(mul(vo, 16 * b as u64));
        traffic = traffic
            .saturating_add(mul(vi, poly_bytes(0, n) + poly_bytes(0, b)))
            .saturating_add(mul(vo, poly_bytes(s.out_level, b) + 32));
        encryptions = encryptions.saturating_add(vi).saturating_add(vo);
        // The larger of the step's two circuits: either may run (`--mpc` overrides the plan).
        let c = [s.circuit, s.depth_circuit]
            .iter()
            .filter_map(|&i| public.circuit(i).ok())
            .max_by_key(|c| c.circuit.stats().and);
        if let Some(c) = c {
            let ands = mul(c.circuit.stats().and, inst);
            let inputs =
                u64::from(c.circuit.garbler_inputs) + u64::from(c.circuit.evaluator_inputs);
            let outputs = c.circuit.outputs.len() as u64;
            est.and_gates = est.and_gates.saturating_add(ands);
            // Tables (32 B per AND), labels and OT messages (≤ 64 B per input bit).
            traffic = traffic
                .saturating_add(mul(32, ands))
                .saturating_add(mul(64 * (inputs + outputs), inst));
            // The garbler's label pairs for the client's inputs and the output decoding.
            masks = masks.saturating_add(mul(
                32 * (u64::from(c.circuit.evaluator_inputs) + outputs),
                inst,
            ));
        }
    }
    // Coefficient work: every linear op on the c1 halves (N wide) and the c0 windows (b
    // wide), plus ~4 NTTs per encryption or decryption on either side.
    let mut coeff = 0u64;
    for (si, seg) in plan.segments.iter().enumerate() {
        if let Segment::He(he) = seg {
            for (oi, op) in he.ops.iter().enumerate() {
                if let HeOp::PolyLinear {
                    terms, level_in, ..
                } = op
                {
                    // Both halves of every image: one product per term, N wide.
                    let products: usize = terms.iter().map(Vec::len).sum();
                    let per = mul(mul(products as u64, *level_in as u64 + 1), 2 * n as u64);
                    coeff = coeff.saturating_add(mul(per, b as u64));
                }
                if let HeOp::Linear { level_in, .. } = op {
                    let nnz = setup
                        .matrices
                        .get(si)
                        .and_then(|m| m.get(oi))
                        .and_then(Option::as_ref)
                        .map_or(0, |m| m.matrix.nnz() as u64);
                    coeff =
                        coeff.saturating_add(mul(mul(nnz, *level_in as u64 + 1), (n + b) as u64));
                }
            }
        }
    }
    let limbs = setup.params.max_level() as u64 + 1;
    coeff = coeff.saturating_add(mul(mul(encryptions, 4 * log_n), mul(n as u64, limbs)));
    est.coeff_ops = coeff;
    est.traffic = traffic;
    est.memory = peak(n)
        .max(peak(b))
        .saturating_add(masks)
        .saturating_add(mul(out_len, poly_bytes(out_level, b)));
    est
}

/// Parses a byte size: a number with an optional `K`, `M`, `G` or `T` suffix (powers of 1024,
/// an optional trailing `B` or `iB`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let upper = s.trim().to_ascii_uppercase();
    let t = upper.as_str();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 512M, 4G, 1073741824)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}` is not a size"));
    }
    let bytes = v * (1u64 << shift) as f64;
    if bytes >= u64::MAX as f64 {
        return Err(format!("`{s}` is too large"));
    }
    Ok(bytes as u64)
}

/// Three quarters of the memory the system reports available (`MemAvailable`), the default
/// `--memory-budget`; `None` where `/proc/meminfo` cannot be read.
pub fn default_memory_budget() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024) / 4 * 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2gb"), Ok(2 << 30));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1M").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn budget_grows_with_work_and_contention() {
        let e = Estimate {
            traffic: 2_000_000,
            ..Estimate::default()
        };
        assert_eq!(e.floor_seconds(), 2.0);
        let t = Duration::from_secs(10);
        assert_eq!(e.step_budget(t, 1.0), Duration::from_secs(14));
        assert_eq!(e.step_budget(t, 0.5), Duration::from_secs(14));
        assert_eq!(e.step_budget(t, 3.0), Duration::from_secs(22));
    }
}
