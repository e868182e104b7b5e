//! The partition report (text, JSON) and the Graphviz picture of the partition.
//!
//! Built from a [`ServerPlan`] alone (`mp2mlc inspect`) or with the compiler's extra
//! information (fusion decisions, value bounds, noise). Cost estimates:
//! - bytes: the session's messages as the runtime sends them
//!   ([`crate::packing::traffic::session_traffic`]: bit-packed c1 halves offline, c0 windows
//!   online, seeds, keys, garbled tables, OTs), divided by the plan's batch;
//! - time: the HE primitives the runtime runs, counted from the plan and priced per RNS limb
//!   ([`crate::cost::he`]: linear ops on both halves, encryptions, seed expansions, c1·s,
//!   transforms, rescales, at constants measured with `mp2ml-bench cost`); each MPC step by the
//!   back-end cost model ([`crate::cost`]: measured compute per AND gate, its bytes and round
//!   trips on the plan's network); the ciphertexts at the plan's network bandwidth.

use std::fmt::Write as _;

use mp2ml_ir::plan::{HeOp, MpcBackend, Segment, ServerPlan, TensorRef};
use serde::Serialize;

use crate::cost;

use crate::driver::Output;
use crate::packing::estimate::{estimate, PackingEstimate};
use crate::packing::traffic::session_traffic;
use mp2ml_ir::weights::WeightsFile;

/// One row of the segment table.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentRow {
    /// `HE` or `MPC`.
    pub kind: String,
    /// Segment or step name.
    pub name: String,
    /// Model ops (fused names).
    pub ops: Vec<String>,
    /// Input shapes.
    pub inputs: Vec<Vec<usize>>,
    /// Output shapes.
    pub outputs: Vec<Vec<usize>>,
    /// Level in.
    pub level_in: Option<usize>,
    /// Level out.
    pub level_out: Option<usize>,
    /// Ciphertexts produced (HE) or received by the client (MPC), per group.
    pub ciphertexts: usize,
    /// MACs as planned.
    pub macs: u64,
    /// Linear ops (HE) and depth.
    pub depth: usize,
    /// MPC: values in / out per image.
    pub values: Option<(usize, usize)>,
    /// MPC: circuit name.
    pub circuit: Option<String>,
    /// MPC: AND gates per image.
    pub and_gates: u64,
    /// Estimated bytes per image.
    pub bytes: f64,
    /// Estimated seconds per image.
    pub seconds: f64,
}

/// Circuit summary.
#[derive(Clone, Debug, Serialize)]
pub struct CircuitRow {
    /// Name.
    pub name: String,
    /// AND gates per instance.
    pub and: u64,
    /// XOR gates.
    pub xor: u64,
    /// AND depth.
    pub and_depth: u32,
    /// Share width w.
    pub share_bits: u32,
    /// Mask bits.
    pub mask_bits: u32,
    /// Bound 6·w − 4·K + σ (ReLU only).
    pub relu_bound: Option<u64>,
    /// Low bits K the circuit truncates.
    pub trunc: u32,
}

/// A fusion decision (compile mode only).
#[derive(Clone, Debug, Serialize)]
pub struct FusionRow {
    /// Target.
    pub target: String,
    /// Nodes.
    pub nodes: Vec<String>,
    /// Fused MACs.
    pub fused_macs: u64,
    /// Unfused MACs.
    pub unfused_macs: u64,
    /// Chain depth.
    pub depth: usize,
    /// Fused cost (MACs × limbs).
    pub fused_cost: u64,
    /// Unfused cost.
    pub unfused_cost: u64,
    /// `fused` or `chain`.
    pub decision: String,
}

/// One MPC step's back-end decision: both back ends' estimated costs and the choice.
#[derive(Clone, Debug, Serialize)]
pub struct BackendRow {
    /// Step name.
    pub step: String,
    /// Instances per session (per image × batch).
    pub instances: usize,
    /// AND gates and AND depth of the size-optimal circuit.
    pub size: (u64, u32),
    /// AND gates and AND depth of the depth-optimized circuit.
    pub depth: (u64, u32),
    /// Yao's estimate (size-optimal circuit).
    pub yao: cost::Cost,
    /// GMW's estimate on the size-optimal circuit.
    pub gmw_size: cost::Cost,
    /// GMW's estimate on the depth-optimized circuit.
    pub gmw_depth: cost::Cost,
    /// The back end recorded in the plan.
    pub backend: String,
    /// The circuit variant GMW runs (`size` or `depth`).
    pub gmw_variant: String,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Model.
    pub model: String,
    /// N.
    pub n: usize,
    /// Bits of each modulus (q0 first).
    pub moduli_bits: Vec<u32>,
    /// The moduli.
    pub moduli: Vec<u64>,
    /// Sum of bit lengths.
    pub log_q_bits: u32,
    /// Bound from the table.
    pub max_log_q: Option<u32>,
    /// Security.
    pub security_bits: u32,
    /// log2 Δ.
    pub scale_bits: u32,
    /// σ: statistical security of a whole session.
    pub sigma: u32,
    /// Most images per session.
    pub session_images: usize,
    /// Per-value width of the circuit masks and the flood: σ + ⌈log2(masked values per
    /// session)⌉ (none if the plan's counts overflow, which its check refuses).
    pub value_sigma: Option<u32>,
    /// Batch.
    pub batch: usize,
    /// Input range.
    pub input_range: (f32, f32),
    /// Calibration file and margin.
    pub calibration: Option<(String, f64)>,
    /// Largest Δ·B over circuit inputs (compile mode).
    pub mpc_max_scaled: Option<f64>,
    /// Noise bound of circuit inputs (compile mode).
    pub mpc_noise: Option<f64>,
    /// Noise bound of the output before flooding (compile mode).
    pub output_noise: Option<f64>,
    /// Flooding bits.
    pub flood_bits: u32,
    /// Primes of the share modulus Q0 (k).
    pub share_limbs: usize,
    /// Bits every circuit drops (K; the share flood's width), the largest over the circuits.
    pub trunc: u32,
    /// ⌈log2 B_ε⌉ recorded in the plan.
    pub noise_bits: u32,
    /// Scale bits of the output (and of the tensors feeding it).
    pub output_scale_bits: u32,
    /// Segments.
    pub segments: Vec<SegmentRow>,
    /// Circuits.
    pub circuits: Vec<CircuitRow>,
    /// The network profile the back ends were chosen for: (RTT ms, Mbit/s).
    pub network: (f64, f64),
    /// What the choice minimized (`online` or `total`).
    pub objective: &'static str,
    /// Per MPC step: Yao and GMW costs and the choice.
    pub backends: Vec<BackendRow>,
    /// Fusion decisions.
    pub fusion: Vec<FusionRow>,
    /// Total MACs per image.
    pub total_macs: u64,
    /// Total AND gates per image.
    pub total_and: u64,
    /// Estimated bytes per image.
    pub bytes_per_image: f64,
    /// Estimated seconds per image.
    pub seconds_per_image: f64,
    /// Coefficient MACs per second of the cost model (`cost::he::MAC`, measured once).
    pub coeff_macs_per_sec: f64,
    /// Compile time (ms), compile mode.
    pub compile_ms: Option<f64>,
    /// Plan sizes in bytes (server RON, client RON, weights).
    pub sizes: Option<(usize, usize, usize)>,
    /// The HE part in both packings (needs the weights file), or why it could not be made.
    pub packings: Option<Result<PackingEstimate, String>>,
    /// The packing the compiler chose and why (`--packing image|auto`).
    pub packing: Option<(String, String)>,
    /// Whether the plan is image packed.
    pub image: bool,
}

/// The back-end rows of a plan, recomputed with the compiler's cost model.
fn backend_rows(p: &mp2ml_ir::plan::ClientPlan) -> Vec<BackendRow> {
    p.mpc_steps
        .iter()
        .filter_map(|st| {
            let size = p.circuit(st.circuit).ok()?;
            let depth = p.circuit(st.depth_circuit).ok()?;
            let n = st.instances * p.batch.max(1);
            let c = cost::choose(size, depth, n, &p.network, p.objective);
            let (ss, ds) = (size.circuit.stats(), depth.circuit.stats());
            Some(BackendRow {
                step: st.name.clone(),
                instances: n,
                size: (ss.and, ss.and_depth),
                depth: (ds.and, ds.and_depth),
                yao: c.yao,
                gmw_size: c.gmw_size,
                gmw_depth: c.gmw_depth,
                backend: st.backend.tag().into(),
                gmw_variant: st.gmw_variant.tag().into(),
            })
        })
        .collect()
}

impl Report {
    /// Builds the report.
    pub fn from_plan(plan: &ServerPlan, out: Option<&Output>) -> Report {
        let p = &plan.public;
        let n = p.params.n();
        let bits = |q: u64| 64 - q.leading_zeros();
        let he = cost::he::seconds(plan);
        let traffic = session_traffic(p, p.batch);
        let bandwidth = p.network.mbit_s * 1e6 / 8.0;
        let per_img = |bytes: f64| bytes / traffic.images as f64;
        let mut segments = Vec::new();
        let mut total_macs = 0;
        let mut total_and = 0;
        let mut bytes_total = 0.0;
        let mut secs_total = 0.0;
        // Handshake, seeds and c1 halves (offline), the input upload.
        let in_bytes = per_img(traffic.handshake + traffic.precompute + traffic.input);
        bytes_total += in_bytes;
        secs_total += he.input + he.output + he.keygen;
        // Packing and decoding every ciphertext frame (the garbled tables are not framed
        // halves: their CPU is in the per-AND constants).
        secs_total += cost::he::wire(per_img(traffic.he_total()));
        // The base OTs, once per session.
        if !p.mpc_steps.is_empty() {
            secs_total += cost::YAO_SESSION_S / traffic.images as f64;
        }
        for (si, seg) in plan.segments.iter().enumerate() {
            match seg {
                Segment::He(h) => {
                    let mut ops = Vec::new();
                    let (mut lin, mut lout) = (None, None);
                    let mut inputs = Vec::new();
                    let mut outputs = Vec::new();
                    let mut cts = 0;
                    let mut depth_of: std::collections::BTreeMap<TensorRef, usize> =
                        Default::default();
                    let mut depth = 0;
                    for op in &h.ops {
                        match op {
                            HeOp::Linear {
                                name,
                                inputs: ins,
                                output,
                                level_in,
                                ..
                            } => {
                                ops.push(name.clone());
                                lin = Some(lin.map_or(*level_in, |l: usize| l.max(*level_in)));
                                lout = Some(level_in - 1);
                                // Tensors no op of this segment made (uploads, MPC outputs,
                                // earlier segments' results) start it at depth 0.
                                let d = ins
                                    .iter()
                                    .map(|i| depth_of.get(i).copied().unwrap_or(0))
                                    .fold(0, usize::max)
                                    + 1;
                                depth_of.insert(*output, d);
                                depth = depth.max(d);
                                for &i in ins {
                                    if !depth_of.contains_key(&i) {
                                        if let Ok(t) = plan.tensor(i) {
                                            inputs.push(t.shape.clone());
                                        }
                                    }
                                }
                                if let Ok(t) = plan.tensor(*output) {
                                    outputs.push(t.shape.clone());
                                    cts += t.len();
                                }
                            }
                            HeOp::PolyLinear {
                                name,
                                inputs: ins,
                                output,
                                terms,
                                level_in,
                                ..
                            } => {
                                ops.push(format!("{name} (packed)"));
                                lin = Some(lin.map_or(*level_in, |l: usize| l.max(*level_in)));
                                lout = Some(level_in.saturating_sub(1));
                                depth_of.insert(*output, 1);
                                depth = depth.max(1);
                                for &i in ins {
                                    if let Ok(t) = plan.tensor(i) {
                                        inputs.push(t.shape.clone());
                                    }
                                }
                                if let Ok(t) = plan.tensor(*output) {
                                    outputs.push(t.shape.clone());
                                    // One output polynomial per list of terms.
                                    cts += terms.len();
                                }
                            }
                            HeOp::ModDrop { input, output, .. } => {
                                ops.push(format!(
                                    "moddrop({})",
                                    plan.tensor(*input).ok().map_or("?", |t| t.name.as_str())
                                ));
                                // Depth 0 for a tensor made outside the segment (as above).
                                let d = depth_of.get(input).copied().unwrap_or(0);
                                depth_of.insert(*output, d);
                            }
                        }
                    }
                    // Both halves of the linear ops (cost::he).
                    let secs = he.segments.get(si).copied().unwrap_or_default();
                    total_macs += h.macs;
                    secs_total += secs;
                    segments.push(SegmentRow {
                        kind: "HE".into(),
                        name: h.name.clone(),
                        ops,
                        inputs,
                        outputs,
                        level_in: lin,
                        level_out: lout,
                        ciphertexts: cts,
                        macs: h.macs,
                        depth,
                        values: None,
                        circuit: None,
                        and_gates: 0,
                        bytes: 0.0,
                        seconds: secs,
                    });
                }
                Segment::Mpc(m) => {
                    let Ok(st) = p.step(m.step) else {
                        continue;
                    };
                    let Ok(c) = p.circuit(st.circuit_for(st.backend)) else {
                        continue;
                    };
                    let s = c.circuit.stats();
                    let ands = s.and * st.instances as u64;
                    let t = traffic.steps.get(m.step.index());
                    let bytes = t.map_or(0.0, |t| per_img(t.he + t.mpc));
                    // The back end's cost model (compute per AND, its bytes and round trips
                    // on the plan's network) plus the step's ciphertext windows.
                    let inst = st.instances * traffic.images;
                    let mpc = match st.backend {
                        MpcBackend::Yao => cost::yao(c, inst, &p.network),
                        MpcBackend::Gmw => cost::gmw(c, inst, &p.network),
                    };
                    // Its masks, decryptions and re-encryptions (cost::he).
                    let secs = per_img(mpc.seconds + cost::YAO_STEP_S)
                        + t.map_or(0.0, |t| per_img(t.he)) / bandwidth
                        + he.steps.get(m.step.index()).copied().unwrap_or_default();
                    total_and += ands;
                    bytes_total += bytes;
                    secs_total += secs;
                    segments.push(SegmentRow {
                        kind: "MPC".into(),
                        name: st.name.clone(),
                        ops: vec![format!("{:?}", st.kind)],
                        // A report describes unchecked plans too: a tensor index
                        // outside the plan shows as no shape (the plan check refuses it).
                        inputs: plan
                            .tensor(m.input)
                            .ok()
                            .map(|t| vec![t.shape.clone()])
                            .unwrap_or_default(),
                        outputs: plan
                            .tensor(m.output)
                            .ok()
                            .map(|t| vec![t.shape.clone()])
                            .unwrap_or_default(),
                        level_in: Some(0),
                        level_out: Some(st.out_level),
                        ciphertexts: st.values_in,
                        macs: 0,
                        depth: 0,
                        values: Some((st.values_in, st.values_out)),
                        circuit: Some(c.circuit.name.clone()),
                        and_gates: ands,
                        bytes,
                        seconds: secs,
                    });
                }
            }
        }
        let out_bytes = per_img(traffic.output + traffic.base_ots);
        bytes_total += out_bytes;
        secs_total += (in_bytes + out_bytes) / bandwidth;
        let circuits = p
            .circuits
            .iter()
            .map(|c| {
                let s = c.circuit.stats();
                CircuitRow {
                    name: c.circuit.name.clone(),
                    and: s.and,
                    xor: s.xor,
                    and_depth: s.and_depth,
                    share_bits: c.share_bits,
                    mask_bits: c.mask_bits,
                    // Size-optimal ReLU: 6 AND per share bit, 2 per truncated low bit,
                    // one per extra mask bit (`ir/src/circuit/activations/relu.rs`).
                    relu_bound: c.circuit.name.starts_with("relu").then_some(
                        (6 * u64::from(c.share_bits)).saturating_sub(4 * u64::from(c.trunc))
                            + u64::from(c.mask_bits.saturating_sub(c.out_bits)),
                    ),
                    trunc: c.trunc,
                }
            })
            .collect();
        let fusion = out
            .map(|o| {
                o.lowered
                    .decisions
                    .iter()
                    .map(|d| FusionRow {
                        target: d.target.clone(),
                        nodes: d.nodes.clone(),
                        fused_macs: d.fused_macs,
                        unfused_macs: d.chain_macs,
                        depth: d.depth,
                        fused_cost: d.fused_cost,
                        unfused_cost: d.chain_cost,
                        decision: if d.chain {
                            "chain".into()
                        } else {
                            "fused".into()
                        },
                    })
                    .collect()
            })
            // A report from a plan file alone has no fusion decisions to show.
            .unwrap_or_default();
        let sizes = out.and_then(|o| {
            let s = crate::plan_writer::ron_len(&o.compiled.server).ok()?;
            let c = crate::plan_writer::ron_len(&o.compiled.client_file_ref()).ok()?;
            Some((s, c, o.compiled.weights.len()))
        });
        let report = Report {
            model: plan.model.clone(),
            n,
            moduli_bits: p.params.moduli.iter().map(|&q| bits(q)).collect(),
            moduli: p.params.moduli.clone(),
            log_q_bits: p.params.moduli.iter().map(|&q| bits(q)).sum(),
            max_log_q: crate::params::SecurityLevel::from_bits(p.params.security_bits)
                .and_then(|s| crate::params::max_log_q(n, s)),
            security_bits: p.params.security_bits,
            scale_bits: p.scale_bits,
            sigma: p.sigma,
            session_images: p.session_images,
            value_sigma: p.value_sigma(),
            batch: p.batch,
            input_range: p.input.range,
            calibration: out.and_then(|o| {
                o.options
                    .calibration
                    .as_ref()
                    .map(|c| (c.display().to_string(), o.options.margin))
            }),
            mpc_max_scaled: out.map(|o| o.chosen.mpc_max_scaled),
            mpc_noise: out.map(|o| o.chosen.mpc_noise),
            output_noise: out.map(|o| o.chosen.output_noise),
            flood_bits: p.output.flood_bits,
            share_limbs: p.params.share_limbs,
            trunc: p.circuits.iter().map(|c| c.trunc).max().unwrap_or(0),
            noise_bits: p.noise_bits,
            output_scale_bits: p.output.scale_bits,
            segments,
            circuits,
            network: (p.network.rtt_ms, p.network.mbit_s),
            objective: p.objective.tag(),
            backends: backend_rows(p),
            fusion,
            total_macs,
            total_and,
            bytes_per_image: bytes_total,
            seconds_per_image: secs_total,
            coeff_macs_per_sec: 1.0 / cost::he::MAC,
            compile_ms: out.map(|o| o.millis),
            sizes,
            packings: None,
            image: plan.image.is_some(),
            packing: out
                .and_then(|o| o.packing.as_ref())
                .map(|c| (c.packing.to_string(), c.why.clone())),
        };
        match out {
            Some(o) => match o.packing.as_ref().and_then(|c| c.estimate.clone()) {
                Some(e) => Report {
                    packings: Some(Ok(e)),
                    ..report
                },
                None if plan.image.is_some() => report,
                None => report.with_weights(plan, &o.compiled.weights),
            },
            None if plan.image.is_some() => report,
            None => report,
        }
    }

    /// Adds the estimate of both packings from the plan's weights file.
    pub fn with_weights(mut self, plan: &ServerPlan, weights: &[u8]) -> Report {
        self.packings = Some(
            WeightsFile::from_bytes(weights.to_vec())
                .map_err(|e| e.to_string())
                .and_then(|w| estimate(plan, &w)),
        );
        self
    }

    /// JSON text.
    pub fn json(&self) -> String {
        // Serializing plain numbers and strings does not fail (serde_json writes a NaN as
        // null); should it, the text still is JSON and says why.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
            + "\n"
    }

    /// Human-readable text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "mp2ml plan report: {}", self.model);
        let _ = writeln!(s, "== parameters ==");
        let _ = writeln!(
            s,
            "  N = {}   moduli bits = {:?} (q0 first)   log Q = {} bits (≤ {} for {}-bit security)",
            self.n,
            self.moduli_bits,
            self.log_q_bits,
            self.max_log_q.map_or("?".into(), |m| m.to_string()),
            self.security_bits
        );
        let _ = writeln!(s, "  moduli = {:?}", self.moduli);
        let _ = writeln!(
            s,
            "  Δ = 2^{}   output scale = 2^{}   σ = {} per session of ≤ {} images (per value σ_v = {})   share width w = Q0 bits = {} over {} prime(s)   batch = {}",
            self.scale_bits,
            self.output_scale_bits,
            self.sigma,
            self.session_images,
            self.value_sigma
                .map_or_else(|| "overflow".into(), |v| v.to_string()),
            self.share_bits(),
            self.share_limbs,
            self.batch
        );
        match &self.calibration {
            Some((f, m)) => {
                let _ = writeln!(s, "  ranges: calibration on {f}, margin {m}×");
            }
            None => {
                let _ = writeln!(
                    s,
                    "  ranges: interval analysis from input range [{}, {}]",
                    self.input_range.0, self.input_range.1
                );
            }
        }
        if let (Some(m), Some(e), Some(o)) =
            (self.mpc_max_scaled, self.mpc_noise, self.output_noise)
        {
            let _ = writeln!(s, "  circuit inputs: max Δ·2^K·|x| = 2^{:.1}, noise bound B_ε = {:.0} (2^{:.1}); output noise {:.0}, flooding 2^{} ", m.max(1.0).log2(), e, e.log2(), o, self.flood_bits);
        } else {
            let _ = writeln!(s, "  flooding bits = {}", self.flood_bits);
        }
        let _ = writeln!(
            s,
            "  share flood and truncation: every circuit drops K = {} low bits (σ_v + ⌈log2 B_ε⌉ = {} + {}) after the server adds a flood of K bits to its share",
            self.trunc,
            self.value_sigma
                .map_or_else(|| "overflow".into(), |v| v.to_string()),
            self.noise_bits
        );
        if !self.fusion.is_empty() {
            let _ = writeln!(s, "== linear fusion (cost = MACs × limbs) ==");
            for f in &self.fusion {
                let _ = writeln!(
                    s,
                    "  {:<16} fused {:>9} MACs (cost {:>9}) | unfused {:>9} MACs depth {} (cost {:>9}) -> {}   [{}]",
                    f.target,
                    f.fused_macs,
                    f.fused_cost,
                    f.unfused_macs,
                    f.depth,
                    f.unfused_cost,
                    f.decision,
                    f.nodes.join(", ")
                );
            }
        }
        let _ = writeln!(s, "== segments ==");
        let _ = writeln!(
            s,
            "  {:<4} {:<22} {:>7} {:>7} {:>6} {:>10} {:>14} {:>12} {:>12} {:>9}",
            "kind",
            "name",
            "lvl in",
            "lvl out",
            "depth",
            "cts",
            "MACs",
            "AND/image",
            "bytes/image",
            "ms/image"
        );
        for r in &self.segments {
            let _ = writeln!(
                s,
                "  {:<4} {:<22} {:>7} {:>7} {:>6} {:>10} {:>14} {:>12} {:>12.0} {:>9.3}",
                r.kind,
                r.name,
                r.level_in.map_or("-".into(), |l| l.to_string()),
                r.level_out.map_or("-".into(), |l| l.to_string()),
                r.depth,
                r.ciphertexts,
                r.macs,
                r.and_gates,
                r.bytes,
                r.seconds * 1e3
            );
            let shapes = |v: &Vec<Vec<usize>>| {
                v.iter()
                    .map(|x| format!("{x:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = writeln!(
                s,
                "       in {}  out {}",
                shapes(&r.inputs),
                shapes(&r.outputs)
            );
            if let (Some((vi, vo)), Some(c)) = (r.values, &r.circuit) {
                let _ = writeln!(
                    s,
                    "       values {vi} in / {vo} out, circuit {c}, {}",
                    r.ops.join(" ")
                );
            } else {
                for op in &r.ops {
                    let _ = writeln!(s, "       op {op}");
                }
            }
        }
        let _ = writeln!(s, "== circuits ==");
        for c in &self.circuits {
            let _ = write!(
                s,
                "  {:<40} AND {:>8}  XOR {:>8}  AND depth {:>4}  w = {}  mask bits = {}",
                c.name, c.and, c.xor, c.and_depth, c.share_bits, c.mask_bits
            );
            match (c.relu_bound, c.trunc) {
                (Some(b), 0) => {
                    let _ = write!(s, "  (≤ 6·w + σ_v = {b})");
                }
                (Some(b), k) => {
                    let _ = write!(s, "  (≤ 6·w − 4·K + σ_v = {b}, K = {k})");
                }
                (None, _) => {}
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "== MPC back ends (network {} ms RTT, {} Mbit/s; minimizing {} time; est. ms per session: total / online) ==",
            self.network.0, self.network.1, self.objective
        );
        for r in &self.backends {
            let ms =
                |c: &cost::Cost| format!("{:.2} / {:.2}", c.seconds * 1e3, c.online_seconds * 1e3);
            let _ = writeln!(
                s,
                "  {:<22} ×{:<7} yao (AND {}, depth {}) {} | gmw size {} | gmw depth (AND {}, depth {}) {} -> {}{}",
                r.step,
                r.instances,
                r.size.0,
                r.size.1,
                ms(&r.yao),
                ms(&r.gmw_size),
                r.depth.0,
                r.depth.1,
                ms(&r.gmw_depth),
                r.backend,
                if r.backend == "gmw" {
                    format!(" ({})", r.gmw_variant)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(s, "== totals per image (batch {}) ==", self.batch);
        let _ = writeln!(
            s,
            "  MACs {}   AND gates {}   communication ≈ {:.2} MB   time ≈ {:.1} ms",
            self.total_macs,
            self.total_and,
            self.bytes_per_image / 1e6,
            self.seconds_per_image * 1e3
        );
        let _ = writeln!(
            s,
            "  (measured {:.2e} coefficient MACs/s on this machine; MPC steps by the back-end cost model on the plan's network, {} ms RTT, {} Mbit/s)",
            self.coeff_macs_per_sec,
            self.network.0,
            self.network.1
        );
        if let Some(ms) = self.compile_ms {
            let _ = writeln!(s, "  compile time {ms:.0} ms");
        }
        if let Some((a, b, c)) = self.sizes {
            let _ = writeln!(s, "  plan sizes: server {a} B, client {b} B, weights {c} B");
        }
        match &self.packings {
            Some(Ok(e)) => {
                let _ = writeln!(
                    s,
                    "== packings: HE part per image (garbled circuits are the same in both) =="
                );
                let _ = writeln!(
                    s,
                    "  batch packing at batch {}: ≈ {:.2} MB of ciphertexts, ≈ {:.2} ms HE",
                    e.batch,
                    e.batch_bytes / 1e6,
                    e.batch_seconds * 1e3
                );
                let _ = writeln!(
                    s,
                    "  image packing (Cheetah HomConv/HomFC, N = {}): ≈ {:.2} MB, ≈ {:.2} ms HE",
                    e.n,
                    e.image_bytes / 1e6,
                    e.image_seconds * 1e3
                );
                for l in &e.linears {
                    let _ = writeln!(
                        s,
                        "    {:<40} {:<8} {:>5} products  {:>4} → {:>4} polynomials{}",
                        l.name,
                        l.kind,
                        l.products,
                        l.input_polys,
                        l.output_polys,
                        if l.chained {
                            "  (chained: needs the fused form)"
                        } else {
                            ""
                        }
                    );
                }
                let (which, why) = e.cheaper();
                let _ = writeln!(s, "  cheaper by this estimate: {which} ({why})");
            }
            Some(Err(why)) => {
                let _ = writeln!(s, "== packings ==\n  image packing not estimated: {why}");
            }
            None => {}
        }
        let packed = if self.image { "image" } else { "batch" };
        match &self.packing {
            Some((which, why)) => {
                let _ = writeln!(s, "  this plan is {which} packed: {why}");
            }
            None => {
                let _ = writeln!(s, "  this plan is {packed} packed");
            }
        }
        let _ = writeln!(
            s,
            "  the client learns: {}; the truncation K = {} bits and the noise bound 2^{} behind \
             it (σ_v + ⌈log2 B_ε⌉, B_ε from the weights' ℓ1 norms and the noise analysis)",
            if self.image {
                "the parameters (N, every prime's size, q0's width, scale, sigma, mask and flood \
                 widths), input/output shapes, the MPC steps (type, size, back end, level and scale \
                 of each re-encryption) and the layouts of the packed tensors, which reveal every \
                 layer's shape (channels, kernel sizes, strides, padding); not the weights"
            } else {
                "the parameters (N, every prime's size, q0's width, scale, sigma, mask and flood \
                 widths), input/output shapes and the MPC steps (type, size, back end, level and \
                 scale of each re-encryption), hence the output size of every layer that feeds an \
                 activation and the number of rescales per segment; not the weights, not the other \
                 layer shapes"
            },
            self.trunc,
            self.noise_bits
        );
        s
    }

    /// Bits of Q0 = q_0⋯q_{k−1}.
    fn share_bits(&self) -> u32 {
        let q0 = self
            .moduli
            .iter()
            .take(self.share_limbs)
            .try_fold(1u128, |a, &q| a.checked_mul(u128::from(q)));
        q0.map_or(0, |q| 128 - q.leading_zeros())
    }

    /// Graphviz picture: HE segments and MPC steps as clusters.
    pub fn dot(&self) -> String {
        let mut s = String::from("digraph partition {\n  rankdir=TB;\n  node [shape=box];\n");
        let mut prev: Option<String> = None;
        for (i, r) in self.segments.iter().enumerate() {
            let color = if r.kind == "HE" {
                "lightblue"
            } else {
                "orange"
            };
            let _ = writeln!(
                s,
                "  subgraph cluster_{i} {{\n    label=\"{} {}\"; style=filled; color={color};",
                r.kind,
                r.name.replace('"', "'")
            );
            let mut first = None;
            let mut last = None;
            for (j, op) in r.ops.iter().enumerate() {
                let id = format!("s{i}_{j}");
                let _ = writeln!(s, "    {id} [label=\"{}\"];", op.replace('"', "'"));
                if let Some(l) = &last {
                    let _ = writeln!(s, "    {l} -> {id};");
                }
                first.get_or_insert(id.clone());
                last = Some(id);
            }
            if first.is_none() {
                let id = format!("s{i}_empty");
                let _ = writeln!(s, "    {id} [label=\"(empty)\"];");
                first = Some(id.clone());
                last = Some(id);
            }
            s.push_str("  }\n");
            if let (Some(p), Some(f)) = (&prev, &first) {
                let _ = writeln!(s, "  {p} -> {f};");
            }
            prev = last;
        }
        s.push_str("}\n");
        s
    }
}
