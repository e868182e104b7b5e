//! Builds the server and client plans and the weights file from the lowered model and the
//! chosen parameters, and writes them atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::plan::{
    CircuitRef, CkksParams, ClientPlan, ClientPlanFile, ClientPlanFileRef, HeOp, HeSegment,
    HeTensor, InputSpec, MpcBinding, MpcStep, OutputSpec, Segment, ServerPlan, StepRef, TensorRef,
    WeightsRef, PLAN_VERSION,
};
use mp2ml_ir::weights::{IntMatrix, WeightsWriter};
use sha2::{Digest, Sha256};

use crate::error::{CompileError, ErrorKind};
use crate::packing::detect::{csr_bytes, detect, structured_bytes};
use crate::params::{noise, Chosen};
use crate::partition::affine::Affine;
use crate::partition::{CircuitSpec, LinMap, Lowered, MKind};
use mp2ml_ir::circuit::activations::CircuitParams;
use mp2ml_ir::circuit::Style;

use crate::cost;

/// Everything the compiler produces for one model.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The server plan.
    pub server: ServerPlan,
    /// The weights file contents.
    pub weights: Vec<u8>,
}

impl Compiled {
    /// The client plan file, borrowing the plan (what [`write_all`] writes).
    pub fn client_file_ref(&self) -> ClientPlanFileRef<'_> {
        ClientPlanFileRef {
            version: PLAN_VERSION,
            public_hash: &self.server.public_hash,
            plan: &self.server.public,
        }
    }

    /// The client plan file (a copy of the public part).
    pub fn client_file(&self) -> ClientPlanFile {
        ClientPlanFile {
            version: PLAN_VERSION,
            public_hash: self.server.public_hash.clone(),
            plan: self.server.public.clone(),
        }
    }
}

/// Generates the circuit of a step.
pub fn circuit_for(spec: &CircuitSpec, p: &CircuitParams, scale_bits: u32) -> ShareCircuit {
    spec.activation().circuit(p, scale_bits)
}

/// Plan-level settings recorded in the plan.
#[derive(Clone, Debug)]
pub struct PlanSettings {
    /// Model name.
    pub model: String,
    /// Weights file name (relative to the plan).
    pub weights_file: String,
    /// log2 Δ.
    pub scale_bits: u32,
    /// σ.
    pub sigma: u32,
    /// Security bits.
    pub security_bits: u32,
    /// Batch size.
    pub batch: usize,
    /// Most images per session.
    pub session_images: usize,
    /// Declared input range.
    pub input_range: (f32, f32),
    /// The network the back ends are chosen for.
    pub network: mp2ml_ir::plan::NetworkProfile,
    /// What the cost model minimizes.
    pub objective: mp2ml_ir::plan::MpcObjective,
}

/// Assembles the plans and the weights file.
pub fn build_plan(low: &Lowered, ch: &Chosen, s: &PlanSettings) -> Result<Compiled, CompileError> {
    let cp = CircuitParams {
        q0: u128::from(ch.moduli[0]),
        trunc: 0,
        sigma: ch.value_sigma,
        style: Default::default(),
    };
    let dp = CircuitParams {
        style: Style::Depth,
        ..cp
    };
    // Circuits, deduplicated.
    let mut circuits: Vec<ShareCircuit> = Vec::new();
    let mut intern = |c: ShareCircuit| match circuits.iter().position(|x| *x == c) {
        Some(i) => CircuitRef(i),
        None => {
            circuits.push(c);
            CircuitRef(circuits.len() - 1)
        }
    };
    let mut steps = Vec::new();
    for st in &low.steps {
        let size = circuit_for(&st.spec, &cp, s.scale_bits);
        let depth = circuit_for(&st.spec, &dp, s.scale_bits);
        let pick = cost::choose(
            &size,
            &depth,
            st.instances * s.batch.max(1),
            &s.network,
            s.objective,
        );
        let idx = intern(size);
        let depth_idx = intern(depth);
        steps.push(MpcStep {
            name: st.name.clone(),
            kind: st.kind.clone(),
            circuit: idx,
            depth_circuit: depth_idx,
            gmw_variant: if pick.gmw_depth_circuit {
                Style::Depth
            } else {
                Style::Size
            },
            backend: pick.backend,
            instances: st.instances,
            values_in: st.instances * st.values_in,
            values_out: st.instances * st.values_out,
            // The client encrypts `entry.rescales` levels above the working level.
            out_level: low.tensors[st.output].level + ch.entry.rescales,
            out_scale_bits: if low.tensors[st.output].output_scale {
                ch.out_scale_bits
            } else {
                s.scale_bits
            },
        });
    }
    let input = &low.tensors[0];
    let out = &low.tensors[low.output];
    let public = ClientPlan {
        version: PLAN_VERSION,
        params: CkksParams {
            log_n: ch.log_n,
            moduli: ch.moduli.clone(),
            security_bits: s.security_bits,
            error_std: noise::ERROR_STD,
        },
        scale_bits: s.scale_bits,
        sigma: s.sigma,
        batch: s.batch,
        session_images: s.session_images,
        entry: ch.entry,
        input: InputSpec {
            name: input.name.clone(),
            shape: input.shape.clone(),
            level: input.level + ch.entry.rescales,
            range: s.input_range,
            scale_bits: if input.output_scale {
                ch.out_scale_bits
            } else {
                s.scale_bits
            },
        },
        network: s.network,
        objective: s.objective,
        mpc_steps: steps,
        circuits,
        output: OutputSpec {
            name: low.output_name.clone(),
            shape: out.shape.clone(),
            level: low.out_level,
            flood_bits: ch.flood_bits,
            scale_bits: ch.out_scale_bits,
            post: low.post,
        },
        image: None,
    };

    // Server side: tensors, HE ops, weights.
    let mut b = Builder {
        low,
        ch,
        s,
        tensors: Vec::new(),
        plan_of: vec![None; low.tensors.len()],
        drops: BTreeMap::new(),
        weights: WeightsWriter::new(),
    };
    let t0 = b.plan_tensor(0);
    debug_assert_eq!(t0, TensorRef(0));
    let mut segments = Vec::new();
    for (k, st) in low.steps.iter().enumerate() {
        let mut seg = HeSegment {
            name: format!("he{k}"),
            ops: Vec::new(),
            macs: 0,
        };
        let input = b.emit(st.input, &mut seg)?;
        segments.push(Segment::He(seg));
        let output = b.plan_tensor(st.output);
        segments.push(Segment::Mpc(MpcBinding {
            step: StepRef(k),
            input,
            gather: st.gather.clone(),
            output,
        }));
    }
    let mut seg = HeSegment {
        name: format!("he{}", low.steps.len()),
        ops: Vec::new(),
        macs: 0,
    };
    let mut output_tensor = b.emit(low.output, &mut seg)?;
    let ol = low.out_level;
    if b.tensors[output_tensor.index()].level > ol {
        output_tensor = b.drop_to(output_tensor, ol, &mut seg);
    }
    segments.push(Segment::He(seg));
    let weights = b.weights.into_bytes();
    let tensors = b.tensors;
    let sha = hex::encode(Sha256::digest(&weights));
    let server = ServerPlan {
        version: PLAN_VERSION,
        model: s.model.clone(),
        public_hash: public
            .hash()
            .map_err(|e| CompileError::internal(format!("cannot hash the plan: {e}")))?,
        public,
        tensors,
        output_tensor,
        segments,
        weights: WeightsRef {
            file: s.weights_file.clone(),
            bytes: weights.len() as u64,
            sha256: sha,
        },
        image: None,
    };
    Ok(Compiled { server, weights })
}

struct Builder<'a> {
    low: &'a Lowered,
    ch: &'a Chosen,
    s: &'a PlanSettings,
    tensors: Vec<HeTensor>,
    plan_of: Vec<Option<TensorRef>>,
    drops: BTreeMap<(TensorRef, usize), TensorRef>,
    weights: WeightsWriter,
}

impl Builder<'_> {
    fn plan_tensor(&mut self, m: usize) -> TensorRef {
        if let Some(i) = self.plan_of[m] {
            return i;
        }
        let t = &self.low.tensors[m];
        self.tensors.push(HeTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            level: t.level,
            polys: None,
        });
        let i = TensorRef(self.tensors.len() - 1);
        self.plan_of[m] = Some(i);
        i
    }

    fn drop_to(&mut self, t: TensorRef, level: usize, seg: &mut HeSegment) -> TensorRef {
        if let Some(&d) = self.drops.get(&(t, level)) {
            return d;
        }
        let src = &self.tensors[t.index()];
        let name = format!("{}@{level}", src.name);
        let shape = src.shape.clone();
        self.tensors.push(HeTensor {
            name,
            shape,
            level,
            polys: None,
        });
        let out = TensorRef(self.tensors.len() - 1);
        seg.ops.push(HeOp::ModDrop {
            input: t,
            output: out,
            level,
        });
        self.drops.insert((t, level), out);
        out
    }

    /// Emits the ops producing materialized tensor `m` (and what it needs) into `seg`.
    fn emit(&mut self, m: usize, seg: &mut HeSegment) -> Result<TensorRef, CompileError> {
        if let Some(i) = self.plan_of[m] {
            return Ok(i);
        }
        let t = &self.low.tensors[m];
        let MKind::Linear { inputs, map, nodes } = &t.kind else {
            return Ok(self.plan_tensor(m));
        };
        let level_in = t.level + 1;
        let mut ins = Vec::with_capacity(inputs.len());
        for &f in inputs {
            let pi = self.emit(f, seg)?;
            let pi = if self.tensors[pi.index()].level > level_in {
                self.drop_to(pi, level_in, seg)
            } else {
                pi
            };
            ins.push(pi);
        }
        let p = *self.ch.moduli.get(level_in).ok_or_else(|| {
            CompileError::new(
                ErrorKind::Parameters,
                "internal: level above the modulus chain",
            )
        })? as f64;
        let delta = 2f64.powi(if t.output_scale {
            self.ch.out_scale_bits
        } else {
            self.s.scale_bits
        } as i32);
        let cols: usize = inputs
            .iter()
            .map(|&f| self.low.tensors[f].shape.iter().product::<usize>())
            .sum();
        let (matrix, nnz) = match map {
            LinMap::Rows(a) => {
                let im = int_matrix(a, cols, p, delta, &t.name)?;
                // Convolutions are stored as kernels (expanded again at load time, exactly).
                let shapes: Vec<Vec<usize>> = inputs
                    .iter()
                    .map(|&f| self.low.tensors[f].shape.clone())
                    .collect();
                let matrix = match detect(&im, &shapes, &t.shape)
                    .filter(|st| structured_bytes(st) < csr_bytes(&im))
                {
                    Some(st) => self.weights.push_structured(&st, im.nnz()),
                    None => self.weights.push(&im),
                };
                (matrix, im.nnz())
            }
            LinMap::Conv(sm) => {
                // Structured maps are written as kernels directly (never expanded).
                let (st, nnz) = sm.to_structured(cols, p, delta).map_err(|e| {
                    CompileError::new(ErrorKind::Parameters, format!("`{}`: {e}", t.name))
                })?;
                (self.weights.push_structured(&st, nnz), nnz)
            }
            LinMap::Ident { .. } | LinMap::Opaque { .. } => {
                return Err(CompileError::internal(format!(
                    "`{}` has no materialized map",
                    t.name
                )))
            }
        };
        seg.macs += nnz as u64;
        let output = self.plan_tensor(m);
        seg.ops.push(HeOp::Linear {
            name: nodes.join("+"),
            inputs: ins,
            output,
            matrix,
            level_in,
        });
        Ok(output)
    }
}

/// Writes `bytes` to a temporary file next to `path`.
fn write_temp_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<PathBuf, CompileError> {
    mp2ml_ir::files::write_temp_with(path, fill).map_err(|e| {
        CompileError::new(
            ErrorKind::Io,
            format!("cannot write next to `{}`: {e}", path.display()),
        )
    })
}

/// The affine map `map` over `cols` columns as integers: weights `round(w·p)` (an error
/// past 62 bits), biases `round(b·Δ·p)`.
fn int_matrix(
    map: &Affine,
    cols: usize,
    p: f64,
    delta: f64,
    name: &str,
) -> Result<IntMatrix, CompileError> {
    let mut im = IntMatrix {
        rows: map.rows.len(),
        cols,
        row_ptr: vec![0],
        ..Default::default()
    };
    for r in &map.rows {
        for (&c, &v) in r.cols.iter().zip(&r.vals) {
            let w = (v * p).round();
            if w.abs() >= 2f64.powi(62) {
                return Err(CompileError::new(
                    ErrorKind::Parameters,
                    format!("weight {v} of `{name}` does not fit 62 bits at p = {p}"),
                ));
            }
            if w != 0.0 {
                im.col.push(c);
                im.val.push(w as i64);
            }
        }
        im.row_ptr.push(im.col.len() as u64);
        im.bias.push((r.bias * delta * p).round() as i128);
    }
    Ok(im)
}

/// The three output paths for `-o DIR/NAME.ron`: plan, client plan, weights; an options
/// error if `out` names no file (`..`, `/`, `.ron`).
pub fn output_paths(out: &Path) -> Result<(PathBuf, PathBuf, PathBuf), CompileError> {
    let name = out.file_name().map(|n| n.to_string_lossy().to_string());
    let stem = name.as_deref().map(|n| n.strip_suffix(".ron").unwrap_or(n));
    let Some(stem) = stem.filter(|s| !s.is_empty()) else {
        return Err(CompileError::new(
            ErrorKind::Options,
            format!(
                "`-o {}` names no plan file (want DIR/NAME.ron)",
                out.display()
            ),
        ));
    };
    Ok((
        out.with_file_name(format!("{stem}.ron")),
        out.with_file_name(format!("{stem}.client.ron")),
        out.with_file_name(format!("{stem}.weights.bin")),
    ))
}

/// Serializes a value as pretty RON down to the fields of a plan's parts; the bulk below
/// (circuit gates, layouts, positions) goes on one line each, which makes a plan with large
/// circuits less than half as long and faster to load.
pub fn to_ron<T: serde::Serialize>(v: &T) -> Result<String, CompileError> {
    ron::ser::to_string_pretty(v, pretty())
        .map_err(|e| CompileError::new(ErrorKind::Plan, format!("cannot serialize the plan: {e}")))
}

/// The layout of every plan text ([`to_ron`], [`write_all`], [`ron_len`]).
fn pretty() -> ron::ser::PrettyConfig {
    ron::ser::PrettyConfig::default().depth_limit(4)
}

/// Pretty RON of `v` written to `w` as it is produced.
fn ron_to(w: &mut dyn std::io::Write, v: &impl serde::Serialize) -> std::io::Result<()> {
    ron::Options::default()
        .to_io_writer_pretty(w, v, pretty())
        .map_err(std::io::Error::other)
}

/// Length in bytes of [`to_ron`]'s text, without holding it.
pub fn ron_len(v: &impl serde::Serialize) -> Result<usize, CompileError> {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut n = Count(0);
    ron::ser::to_writer_pretty(&mut n, v, pretty()).map_err(|e| {
        CompileError::new(ErrorKind::Plan, format!("cannot serialize the plan: {e}"))
    })?;
    Ok(n.0)
}

/// Writes the plan, client plan and weights atomically: all three are written to temporary
/// files first and renamed only when every write succeeded; on error nothing remains. The
/// plan texts are streamed to their files (an ImageNet-size plan is over a gigabyte of RON).
pub fn write_all(c: &Compiled, out: &Path) -> Result<(), CompileError> {
    let (plan, client, weights) = output_paths(out)?;
    type Fill<'a> = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + 'a>;
    let texts: [(PathBuf, Fill); 3] = [
        (plan, Box::new(|w| ron_to(w, &c.server))),
        (client, Box::new(|w| ron_to(w, &c.client_file_ref()))),
        (weights, Box::new(|w| w.write_all(&c.weights))),
    ];
    let mut temps = Vec::new();
    for (path, fill) in texts {
        match write_temp_with(&path, fill) {
            Ok(t) => temps.push((t, path.clone())),
            Err(e) => {
                for (t, _) in &temps {
                    let _ = std::fs::remove_file(t);
                }
                return Err(e);
            }
        }
    }
    let mut done: Vec<PathBuf> = Vec::new();
    for (tmp, path) in &temps {
        if let Err(e) = std::fs::rename(tmp, path) {
            for (t, _) in &temps {
                let _ = std::fs::remove_file(t);
            }
            for d in &done {
                let _ = std::fs::remove_file(d);
            }
            return Err(CompileError::new(
                ErrorKind::Io,
                format!("cannot rename to `{}`: {e}", path.display()),
            ));
        }
        done.push(path.clone());
    }
    Ok(())
}

/// Reads a server plan and checks its weights file (size and SHA-256) and public hash.
pub fn load_checked(plan_path: &Path) -> Result<(ServerPlan, Vec<u8>), CompileError> {
    let text = std::fs::read_to_string(plan_path).map_err(|e| {
        CompileError::new(
            ErrorKind::Io,
            format!("cannot read `{}`: {e}", plan_path.display()),
        )
    })?;
    let plan: ServerPlan = ron::from_str(&text).map_err(|e| {
        CompileError::new(
            ErrorKind::Plan,
            format!("`{}` is not a server plan: {e}", plan_path.display()),
        )
    })?;
    if plan.version != PLAN_VERSION {
        return Err(CompileError::new(
            ErrorKind::Plan,
            format!("plan version {} is not {PLAN_VERSION}", plan.version),
        ));
    }
    let hash = plan
        .public
        .hash()
        .map_err(|e| CompileError::new(ErrorKind::Plan, format!("cannot hash the plan: {e}")))?;
    if hash != plan.public_hash {
        return Err(CompileError::new(
            ErrorKind::Plan,
            "the plan's public hash does not match its public part",
        ));
    }
    // The weights file sits beside the plan (`parent` is `None` only for `/` or an empty path).
    let dir = plan_path.parent().unwrap_or(Path::new("."));
    let wpath = dir.join(&plan.weights.file);
    let bytes = std::fs::read(&wpath).map_err(|e| {
        CompileError::new(
            ErrorKind::Io,
            format!("cannot read `{}`: {e}", wpath.display()),
        )
    })?;
    let sha = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != plan.weights.bytes || sha != plan.weights.sha256 {
        return Err(CompileError::new(
            ErrorKind::Plan,
            format!(
                "weights file `{}` does not match the plan's SHA-256 (tampered or stale)",
                wpath.display()
            ),
        ));
    }
    Ok((plan, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_need_a_file_name() {
        let (plan, client, weights) = output_paths(Path::new("out/m.ron")).expect("paths");
        assert_eq!(plan, Path::new("out/m.ron"));
        assert_eq!(client, Path::new("out/m.client.ron"));
        assert_eq!(weights, Path::new("out/m.weights.bin"));
        assert_eq!(
            output_paths(Path::new("m")).expect("paths").0,
            Path::new("m.ron")
        );
        for bad in ["..", "/", "out/.ron", ""] {
            let e = output_paths(Path::new(bad)).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Options, "{bad}: {e}");
        }
    }
}
