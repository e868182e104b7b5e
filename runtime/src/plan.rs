//! Loading and checking plans: everything in a plan file is untrusted until checked here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mp2ml_ckks::{CsrMatrix, NttPoly, Params, SecurityLevel};
use mp2ml_ir::plan::{
    ClientPlan, ClientPlanFile, HeOp, Positions, Segment, ServerPlan, TensorRef, Upload,
    PLAN_VERSION,
};
use mp2ml_ir::weights::WeightsFile;
use sha2::{Digest, Sha256};

use crate::error::{Result, RuntimeError};
use crate::session::MAX_IMAGES;

/// A linear op's weights, ready for the CKKS kernel.
pub struct LoadedMatrix {
    /// Integer weights `round(W·p)`.
    pub matrix: CsrMatrix,
    /// Integer biases `round(b·Δ·p)`, one per row.
    pub bias: Vec<i128>,
}

/// An image-packed linear op's weights, ready for the products.
pub struct PackedOp {
    /// Kernel polynomials in the NTT domain at the op's input level.
    pub kernels: Vec<NttPoly>,
    /// Per output polynomial, the bias at its coefficients (`None` where it has none).
    pub bias: Vec<Option<Vec<i128>>>,
}

/// A checked server plan with its weights and CKKS parameters.
pub struct ServerSetup {
    /// The plan.
    pub plan: ServerPlan,
    /// CKKS parameters (checked against the security level).
    pub params: Arc<Params>,
    /// Weights of every `HeOp::Linear`, indexed `[segment][op]` (None for other ops).
    pub matrices: Vec<Vec<Option<LoadedMatrix>>>,
    /// Weights of every `HeOp::PolyLinear`, indexed `[segment][op]` (None for other ops).
    pub packed: Vec<Vec<Option<PackedOp>>>,
    /// Test-only: protections switched off ([`crate::probe::Weakened`]).
    #[cfg(feature = "test-hooks")]
    pub(crate) weakened: crate::he2mpc::Weakened,
    /// Test-only: skip the entry floods (the positive control of the leakage tests). Private,
    /// set only through [`ServerSetup::disable_entry_flood_for_tests`]; no CLI flag and no plan
    /// field reaches it.
    #[cfg(feature = "test-hooks")]
    unflooded: bool,
}

impl ServerSetup {
    /// Whether the entry floods run (always, unless a test switched them off).
    pub(crate) fn entry_flood_on(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        if self.unflooded {
            return false;
        }
        true
    }

    /// Test-only (feature `test-hooks`, enabled only by the tests package): switches the entry
    /// floods off or on, for the positive control that must see the client's noise leak.
    #[cfg(feature = "test-hooks")]
    pub fn disable_entry_flood_for_tests(&mut self, off: bool) {
        self.unflooded = off;
    }
}

/// A checked client plan.
pub struct ClientSetup {
    /// The public plan.
    pub plan: ClientPlan,
    /// Its hash.
    pub hash: String,
    /// CKKS parameters (checked against the security level).
    pub params: Arc<Params>,
    /// Test-only observation of what the client knows ([`crate::probe`]).
    #[cfg(feature = "test-hooks")]
    pub probe: Option<Arc<crate::probe::Probe>>,
}

/// Largest circuit a plan may carry (wires), so that a crafted plan cannot make a party
/// allocate without bound.
pub const MAX_CIRCUIT_WIRES: u64 = 1 << 26;

/// Largest number of circuit instances per image in one step.
pub const MAX_INSTANCES: usize = 1 << 24;

fn plan_err(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Plan {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RuntimeError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// Maps a plan's security bits to a level, refusing anything below `min_bits`.
pub fn security_level(bits: u32, min_bits: u32) -> Result<SecurityLevel> {
    if bits < min_bits {
        return Err(RuntimeError::Insecure(format!(
            "the plan claims {bits}-bit security, below the required {min_bits} bits"
        )));
    }
    match bits {
        128 => Ok(SecurityLevel::Bits128),
        192 => Ok(SecurityLevel::Bits192),
        256 => Ok(SecurityLevel::Bits256),
        _ => Err(RuntimeError::Insecure(format!(
            "unknown security level {bits} (expected 128, 192 or 256)"
        ))),
    }
}

/// Checks the public part: version, parameters, security, circuits, step consistency.
pub fn check_public(path: &Path, plan: &ClientPlan, min_security: u32) -> Result<Arc<Params>> {
    if plan.version != PLAN_VERSION {
        return Err(plan_err(
            path,
            format!(
                "plan version {} is not supported (this runtime reads version {PLAN_VERSION})",
                plan.version
            ),
        ));
    }
    let level = security_level(plan.params.security_bits, min_security)?;
    if !(10..=15).contains(&plan.params.log_n) {
        return Err(RuntimeError::Insecure(format!(
            "ring dimension 2^{} is outside 2^10..2^15",
            plan.params.log_n
        )));
    }
    let params =
        Params::new_secure(plan.params.n(), &plan.params.moduli, level).map_err(|e| match e {
            mp2ml_ckks::Error::Insecure { .. } => RuntimeError::Insecure(e.to_string()),
            other => plan_err(path, format!("invalid CKKS parameters: {other}")),
        })?;
    if plan.sigma < 40 {
        return Err(RuntimeError::Insecure(format!(
            "statistical security σ = {} is below 40 bits",
            plan.sigma
        )));
    }
    if plan.sigma > 128 {
        return Err(plan_err(
            path,
            format!("statistical security σ = {} is above 128 bits", plan.sigma),
        ));
    }
    if plan.scale_bits == 0 || plan.scale_bits > 60 {
        return Err(plan_err(
            path,
            format!("scale bits {} out of range 1..=60", plan.scale_bits),
        ));
    }
    if plan.session_images == 0 || plan.session_images > MAX_IMAGES {
        return Err(plan_err(
            path,
            format!(
                "{} images per session is outside 1..={MAX_IMAGES}",
                plan.session_images
            ),
        ));
    }
    // Per-value width, recomputed from the plan's own counts (σ is per session).
    let value_sigma = plan.value_sigma().filter(|&s| s <= 128).ok_or_else(|| {
        plan_err(
            path,
            "σ plus log2 of the masked values per session exceeds 128 bits",
        )
    })?;
    let max_level = params.max_level();
    let q0 = params.q0();
    for sc in &plan.circuits {
        if sc.circuit.num_wires() > MAX_CIRCUIT_WIRES {
            return Err(plan_err(
                path,
                format!(
                    "circuit `{}` has {} wires, more than {MAX_CIRCUIT_WIRES}",
                    sc.circuit.name,
                    sc.circuit.num_wires()
                ),
            ));
        }
        sc.check_layout()
            .map_err(|e| plan_err(path, e.to_string()))?;
        if sc.q0 != u128::from(q0) {
            return Err(plan_err(
                path,
                format!(
                    "circuit `{}` is for q0 = {}, the parameters have q0 = {q0}",
                    sc.circuit.name, sc.q0
                ),
            ));
        }
        if sc.trunc != 0 {
            // Truncating circuits need the server's share flood, which this runtime does not
            // add yet (docs/ARCHITECTURE.md, "Flood the share, truncate in the circuit").
            return Err(plan_err(
                path,
                format!(
                    "circuit `{}` truncates {} bits; this runtime does not support truncating circuits",
                    sc.circuit.name, sc.trunc
                ),
            ));
        }
        if u64::from(sc.mask_bits) < u64::from(sc.out_bits) + u64::from(value_sigma) {
            return Err(RuntimeError::Insecure(format!(
                "circuit `{}` masks with fewer than σ_v = {value_sigma} extra bits (σ = {} per session of {} images)",
                sc.circuit.name, plan.sigma, plan.session_images
            )));
        }
    }
    for s in &plan.mpc_steps {
        let sc = plan
            .circuit(s.circuit)
            .map_err(|e| plan_err(path, format!("step `{}`: {e}", s.name)))?;
        let gsc = plan
            .circuit(s.depth_circuit)
            .map_err(|e| plan_err(path, format!("step `{}`: depth-optimized {e}", s.name)))?;
        let layout = |c: &mp2ml_ir::circuit::ShareCircuit| {
            (
                c.q0,
                c.share_bits,
                c.values_in,
                c.values_out,
                c.input_offset,
                c.out_bits,
                c.mask_bits,
                c.output_offset,
                c.trunc,
            )
        };
        if layout(gsc) != layout(sc) {
            return Err(plan_err(
                path,
                format!(
                    "step `{}`: its depth-optimized circuit has another layout than its size-optimal one",
                    s.name
                ),
            ));
        }
        if s.instances > MAX_INSTANCES {
            return Err(plan_err(
                path,
                format!(
                    "step `{}` has {} instances per image, more than {MAX_INSTANCES}",
                    s.name, s.instances
                ),
            ));
        }
        let vin = s.instances.checked_mul(sc.values_in as usize);
        let vout = s.instances.checked_mul(sc.values_out as usize);
        if vin != Some(s.values_in) || vout != Some(s.values_out) {
            return Err(plan_err(
                path,
                format!("step `{}`: value counts do not match its circuit", s.name),
            ));
        }
        if s.out_level > max_level {
            return Err(plan_err(
                path,
                format!(
                    "step `{}`: output level {} above the top level",
                    s.name, s.out_level
                ),
            ));
        }
        if s.out_scale_bits < plan.scale_bits || s.out_scale_bits > 120 {
            return Err(plan_err(
                path,
                format!(
                    "step `{}`: output scale 2^{} does not fit the masked values",
                    s.name, s.out_scale_bits
                ),
            ));
        }
    }
    if plan.input.level > max_level || plan.output.level > max_level {
        return Err(plan_err(path, "input or output level above the top level"));
    }
    // The entry flood hides the client's fresh noise (≤ 21 < 2^5) with σ_v bits, and its
    // factor F shrinks it below ½ at every encryption level.
    let entry = plan.entry;
    if entry.bits < value_sigma + 5 || entry.bits > 120 || entry.rescales == 0 {
        return Err(RuntimeError::Insecure(format!(
            "entry flood of {} bits over {} primes: needs at least σ_v + 5 = {} bits and one prime",
            entry.bits,
            entry.rescales,
            value_sigma + 5
        )));
    }
    let levels =
        std::iter::once(plan.input.level).chain(plan.mpc_steps.iter().map(|s| s.out_level));
    for l in levels {
        let f = l
            .checked_sub(entry.rescales)
            .map(|w| params.log2_q_level(l) - params.log2_q_level(w));
        if f.is_none_or(|f| f < f64::from(entry.bits) + 1.0) {
            return Err(plan_err(
                path,
                format!(
                    "the entry flood's factor at level {l} does not exceed 2^{}",
                    entry.bits + 1
                ),
            ));
        }
    }
    if plan.input.scale_bits == 0 || plan.input.scale_bits > 100 || plan.output.scale_bits > 120 {
        return Err(plan_err(path, "input or output scale out of range"));
    }
    if plan.output.flood_bits < value_sigma
        || plan.output.flood_bits > 120
        || f64::from(plan.output.flood_bits) + 2.0 > params.log2_q_level(plan.output.level)
    {
        return Err(plan_err(
            path,
            format!(
                "output flooding of {} bits does not fit level {}",
                plan.output.flood_bits, plan.output.level
            ),
        ));
    }
    let elems = |s: &[usize]| {
        s.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n > 0 && n <= 1 << 24)
    };
    if elems(&plan.input.shape).is_none() || elems(&plan.output.shape).is_none() {
        return Err(plan_err(
            path,
            "input or output shape is empty or too large",
        ));
    }
    if plan.image.is_some() {
        check_image_public(plan, params.n()).map_err(|e| plan_err(path, e))?;
    }
    Ok(params)
}

/// Largest number of polynomials per image of one packed tensor.
pub const MAX_POLYS: usize = 1 << 16;

fn check_positions(
    p: &Positions,
    n: usize,
    count: usize,
    what: &str,
) -> std::result::Result<(), String> {
    if p.polys > MAX_POLYS {
        return Err(format!(
            "{what}: {} polynomials, more than {MAX_POLYS}",
            p.polys
        ));
    }
    if p.at.len() != count {
        return Err(format!(
            "{what}: {} positions for {count} values",
            p.at.len()
        ));
    }
    if let Some(&(q, c)) =
        p.at.iter()
            .find(|&&(q, c)| q as usize >= p.polys || c as usize >= n)
    {
        return Err(format!(
            "{what}: position ({q}, {c}) outside {} polynomials of N = {n}",
            p.polys
        ));
    }
    Ok(())
}

/// Every upload holds `len` values inside N, at a working level `max_level` or below: the
/// client encrypts it at its source's level and the server's entry flood rescales it
/// `entry.rescales` times, so `max_level` is the source's level minus those.
fn check_uploads(
    ups: &[Upload],
    len: usize,
    n: usize,
    max_level: usize,
    what: &str,
) -> std::result::Result<(), String> {
    for u in ups {
        u.layout.check(n).map_err(|e| format!("{what}: {e}"))?;
        if u.layout.len() != len || u.level > max_level || u.layout.polys() > MAX_POLYS {
            return Err(format!(
                "{what}: a layout of {} values at level {} for {len} values",
                u.layout.len(),
                u.level
            ));
        }
    }
    Ok(())
}

/// Checks an image-packed plan's layouts (untrusted input: every position inside N and its
/// polynomials, layouts consistent with the values they hold).
fn check_image_public(plan: &ClientPlan, n: usize) -> std::result::Result<(), String> {
    let Some(im) = &plan.image else {
        return Ok(());
    };
    let elems = |s: &[usize]| s.iter().product::<usize>();
    // The working level below an encryption level (checked above to exceed the rescales).
    let work = |l: usize| l.saturating_sub(plan.entry.rescales);
    check_uploads(
        &im.input,
        elems(&plan.input.shape),
        n,
        work(plan.input.level),
        "input upload",
    )?;
    if im.steps.len() != plan.mpc_steps.len() {
        return Err(format!(
            "{} packed steps for {} MPC steps",
            im.steps.len(),
            plan.mpc_steps.len()
        ));
    }
    for (st, s) in im.steps.iter().zip(&plan.mpc_steps) {
        let what = format!("step `{}`", s.name);
        check_positions(&st.input, n, s.values_in, &what)?;
        check_uploads(&st.uploads, s.values_out, n, work(s.out_level), &what)?;
    }
    check_positions(&im.output, n, elems(&plan.output.shape), "output")?;
    Ok(())
}

/// Reads and checks a client plan file.
pub fn load_client(path: &Path, min_security: u32) -> Result<ClientSetup> {
    let text = String::from_utf8(read(path)?).map_err(|_| plan_err(path, "not UTF-8 text"))?;
    let file: ClientPlanFile =
        ron::from_str(&text).map_err(|e| plan_err(path, format!("not a client plan: {e}")))?;
    if file.version != PLAN_VERSION {
        return Err(plan_err(
            path,
            format!(
                "plan version {} is not supported (this runtime reads version {PLAN_VERSION})",
                file.version
            ),
        ));
    }
    let hash = file.plan.hash().map_err(|e| {
        plan_err(
            path,
            format!("the plan cannot be serialized for hashing: {e}"),
        )
    })?;
    if hash != file.public_hash {
        return Err(plan_err(
            path,
            "the recorded hash does not match the plan's content (edited plan?)",
        ));
    }
    let params = check_public(path, &file.plan, min_security)?;
    Ok(ClientSetup {
        plan: file.plan,
        hash,
        params,
        #[cfg(feature = "test-hooks")]
        probe: None,
    })
}

/// Reads and checks a server plan and its weights file.
pub fn load_server(path: &Path, min_security: u32) -> Result<ServerSetup> {
    let text = String::from_utf8(read(path)?).map_err(|_| plan_err(path, "not UTF-8 text"))?;
    let plan: ServerPlan =
        ron::from_str(&text).map_err(|e| plan_err(path, format!("not a server plan: {e}")))?;
    if plan.version != PLAN_VERSION {
        return Err(plan_err(
            path,
            format!(
                "plan version {} is not supported (this runtime reads version {PLAN_VERSION})",
                plan.version
            ),
        ));
    }
    let hash = plan.public.hash().map_err(|e| {
        plan_err(
            path,
            format!("the plan cannot be serialized for hashing: {e}"),
        )
    })?;
    if hash != plan.public_hash {
        return Err(plan_err(
            path,
            "the recorded hash does not match the plan's public part (edited plan?)",
        ));
    }
    let params = check_public(path, &plan.public, min_security)?;
    check_server_structure(path, &plan, params.max_level())?;
    let wpath: PathBuf = path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(&plan.weights.file);
    if plan.weights.file.contains('/')
        || plan.weights.file.contains('\\')
        || plan.weights.file.starts_with('.')
    {
        return Err(plan_err(
            path,
            format!(
                "weights file name `{}` must be a plain file name",
                plan.weights.file
            ),
        ));
    }
    let bytes = read(&wpath)?;
    let sha = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != plan.weights.bytes || sha != plan.weights.sha256 {
        return Err(plan_err(
            &wpath,
            format!(
                "weights file does not match the plan (SHA-256 {sha}, plan records {})",
                plan.weights.sha256
            ),
        ));
    }
    let wf = WeightsFile::from_bytes(bytes).map_err(|e| plan_err(&wpath, e.to_string()))?;
    let packed = load_packed(&plan, &params, &wf).map_err(|e| plan_err(&wpath, e))?;
    let mut matrices = Vec::new();
    for seg in &plan.segments {
        let mut ms = Vec::new();
        if let Segment::He(he) = seg {
            for op in &he.ops {
                ms.push(match op {
                    HeOp::Linear { matrix, .. } => {
                        let m = wf
                            .matrix(matrix)
                            .map_err(|e| plan_err(&wpath, e.to_string()))?;
                        let row_ptr = m.row_ptr.iter().map(|&p| p as usize).collect();
                        let csr = CsrMatrix::new(row_ptr, m.col, m.val, m.cols)
                            .map_err(|e| plan_err(&wpath, e.to_string()))?;
                        Some(LoadedMatrix {
                            matrix: csr,
                            bias: m.bias,
                        })
                    }
                    HeOp::ModDrop { .. } | HeOp::PolyLinear { .. } => None,
                });
            }
        }
        matrices.push(ms);
    }
    Ok(ServerSetup {
        plan,
        params,
        matrices,
        packed,
        #[cfg(feature = "test-hooks")]
        unflooded: false,
        #[cfg(feature = "test-hooks")]
        weakened: Default::default(),
    })
}

/// The kernel polynomials (transformed at their op's input level) and biases of every
/// `HeOp::PolyLinear`, indexed `[segment][op]`; the plan's structure is checked already.
fn load_packed(
    plan: &ServerPlan,
    params: &Arc<Params>,
    wf: &WeightsFile,
) -> std::result::Result<Vec<Vec<Option<PackedOp>>>, String> {
    let n = params.n();
    let mut out = Vec::new();
    for seg in &plan.segments {
        let mut ops = Vec::new();
        if let Segment::He(he) = seg {
            for op in &he.ops {
                let HeOp::PolyLinear {
                    name,
                    kernels,
                    bias,
                    terms,
                    positions,
                    level_in,
                    ..
                } = op
                else {
                    ops.push(None);
                    continue;
                };
                let km = wf.matrix(kernels).map_err(|e| e.to_string())?;
                if km.cols != n {
                    return Err(format!(
                        "`{name}`: kernels of {} coefficients, N = {n}",
                        km.cols
                    ));
                }
                let mut ks = Vec::with_capacity(km.rows);
                for k in 0..km.rows {
                    let mut dense = vec![0i64; n];
                    for (c, v) in km.row(k) {
                        // Columns are below `cols` = N (checked by the weights reader).
                        if let Some(d) = dense.get_mut(c as usize) {
                            *d = v;
                        }
                    }
                    ks.push(
                        NttPoly::from_plain(params, *level_in, &dense)
                            .map_err(|e| e.to_string())?,
                    );
                }
                if let Some(&(_, _, k)) = terms.iter().flatten().find(|t| t.2 as usize >= ks.len())
                {
                    return Err(format!("`{name}`: kernel {k} of {}", ks.len()));
                }
                let bm = wf.matrix(bias).map_err(|e| e.to_string())?;
                if bm.rows != positions.len() {
                    return Err(format!(
                        "`{name}`: {} biases for {} outputs",
                        bm.rows,
                        positions.len()
                    ));
                }
                let mut b: Vec<Option<Vec<i128>>> = vec![None; terms.len()];
                for (&(p, c), &v) in positions.iter().zip(&bm.bias) {
                    let poly = b
                        .get_mut(p as usize)
                        .ok_or_else(|| format!("`{name}`: output position in polynomial {p}"))?
                        .get_or_insert_with(|| vec![0; n]);
                    *poly
                        .get_mut(c as usize)
                        .ok_or_else(|| format!("`{name}`: output coefficient {c} ≥ N"))? = v;
                }
                ops.push(Some(PackedOp {
                    kernels: ks,
                    bias: b,
                }));
            }
        }
        out.push(ops);
    }
    Ok(out)
}

/// Checks tensor references, levels and shapes of the server-only part, so that execution can
/// index without further checks.
fn check_server_structure(path: &Path, plan: &ServerPlan, max_level: usize) -> Result<()> {
    let t = &plan.tensors;
    let get = |r: TensorRef| plan.tensor(r).map_err(|e| plan_err(path, e.to_string()));
    let input = get(TensorRef(0))?;
    let pubp = &plan.public;
    // The client's encryptions are `entry.rescales` levels above their tensors' working levels
    // (checked ≤ the encryption levels by check_public).
    let entry = pubp.entry.rescales;
    if input.len() != pubp.input.shape.iter().product::<usize>()
        || input.level.checked_add(entry) != Some(pubp.input.level)
    {
        return Err(plan_err(path, "tensor 0 does not match the declared input"));
    }
    let out = get(plan.output_tensor)?;
    if out.len() != pubp.output.shape.iter().product::<usize>() {
        return Err(plan_err(
            path,
            "output tensor does not match the declared output shape",
        ));
    }
    if out.level < pubp.output.level {
        return Err(plan_err(path, "output tensor is below the output level"));
    }
    for x in t {
        if x.level > max_level || x.len() > 1 << 24 {
            return Err(plan_err(
                path,
                format!(
                    "tensor `{}`: level {} or size {} out of range",
                    x.name,
                    x.level,
                    x.len()
                ),
            ));
        }
    }
    let mut mpc_seen = 0usize;
    for seg in &plan.segments {
        match seg {
            Segment::He(he) => {
                for op in &he.ops {
                    match op {
                        HeOp::Linear {
                            inputs,
                            output,
                            matrix,
                            level_in,
                            name,
                        } => {
                            if plan.image.is_some() {
                                return Err(plan_err(
                                    path,
                                    format!("linear `{name}`: a batch op in an image-packed plan"),
                                ));
                            }
                            let mut cols = 0usize;
                            for &i in inputs {
                                let x = get(i)?;
                                if x.level != *level_in {
                                    return Err(plan_err(path, format!("linear `{name}`: input `{}` is at level {}, not {level_in}", x.name, x.level)));
                                }
                                cols += x.len();
                            }
                            let o = get(*output)?;
                            if *level_in == 0
                                || o.level + 1 != *level_in
                                || o.len() != matrix.rows
                                || cols != matrix.cols
                                || inputs.is_empty()
                            {
                                return Err(plan_err(
                                    path,
                                    format!("linear `{name}`: shapes or levels are inconsistent"),
                                ));
                            }
                        }
                        HeOp::PolyLinear {
                            name,
                            inputs,
                            output,
                            terms,
                            positions,
                            level_in,
                            ..
                        } => {
                            let bad =
                                |m: &str| plan_err(path, format!("packed linear `{name}`: {m}"));
                            if plan.image.is_none() {
                                return Err(bad("a packed op in a batch-packed plan"));
                            }
                            let mut polys = Vec::with_capacity(inputs.len());
                            for &i in inputs {
                                let x = get(i)?;
                                if x.level != *level_in {
                                    return Err(bad("an input is not at the op's level"));
                                }
                                polys.push(x.polys.ok_or_else(|| bad("an input is not packed"))?);
                            }
                            let o = get(*output)?;
                            if *level_in == 0
                                || o.level + 1 != *level_in
                                || o.polys != Some(terms.len())
                                || o.len() != positions.len()
                                || inputs.is_empty()
                            {
                                return Err(bad("shapes or levels are inconsistent"));
                            }
                            for &(i, p, _) in terms.iter().flatten() {
                                if polys.get(i as usize).is_none_or(|&n| p as usize >= n) {
                                    return Err(bad(
                                        "a term reads a polynomial that does not exist",
                                    ));
                                }
                            }
                            let n = pubp.params.n();
                            if positions
                                .iter()
                                .any(|&(p, c)| p as usize >= terms.len() || c as usize >= n)
                            {
                                return Err(bad("an output position is outside its polynomials"));
                            }
                        }
                        HeOp::ModDrop {
                            input,
                            output,
                            level,
                        } => {
                            let (i, o) = (get(*input)?, get(*output)?);
                            if i.polys != o.polys {
                                return Err(plan_err(path, "mod-drop: packing differs"));
                            }
                            if i.len() != o.len() || o.level != *level || *level > i.level {
                                return Err(plan_err(
                                    path,
                                    "mod-drop: shapes or levels are inconsistent",
                                ));
                            }
                        }
                    }
                }
            }
            Segment::Mpc(b) => {
                let step = pubp
                    .step(b.step)
                    .map_err(|e| plan_err(path, format!("MPC binding: {e}")))?;
                if b.step.index() != mpc_seen {
                    return Err(plan_err(path, "MPC steps are bound out of order"));
                }
                mpc_seen += 1;
                let (i, o) = (get(b.input)?, get(b.output)?);
                if b.gather.len() != step.values_in
                    || b.gather.iter().any(|&g| g as usize >= i.len())
                {
                    return Err(plan_err(
                        path,
                        format!(
                            "MPC step `{}`: gather list does not fit its input",
                            step.name
                        ),
                    ));
                }
                if o.len() != step.values_out || o.level.checked_add(entry) != Some(step.out_level)
                {
                    return Err(plan_err(
                        path,
                        format!("MPC step `{}`: output tensor does not match", step.name),
                    ));
                }
            }
        }
    }
    if mpc_seen != pubp.mpc_steps.len() {
        return Err(plan_err(path, "not every MPC step is bound"));
    }
    check_image_tensors(path, plan)
}

/// Image packing: the upload tensors match the public layouts, the MPC inputs and the output
/// are packed tensors with the public positions' polynomial counts.
fn check_image_tensors(path: &Path, plan: &ServerPlan) -> Result<()> {
    let pubp = &plan.public;
    let (tensors, layouts) = match (&plan.image, &pubp.image) {
        (None, None) => return Ok(()),
        (Some(t), Some(l)) => (t, l),
        _ => {
            return Err(plan_err(
                path,
                "the server and public parts disagree on the packing",
            ))
        }
    };
    let bad = |m: String| plan_err(path, m);
    let check = |refs: &[TensorRef], ups: &[Upload], what: &str| -> Result<()> {
        if refs.len() != ups.len() {
            return Err(bad(format!(
                "{what}: {} tensors for {} uploads",
                refs.len(),
                ups.len()
            )));
        }
        for (&r, u) in refs.iter().zip(ups) {
            let t = plan.tensor(r).map_err(|e| bad(format!("{what}: {e}")))?;
            if t.polys != Some(u.layout.polys()) || t.level != u.level {
                return Err(bad(format!(
                    "{what}: tensor `{}` does not match its layout",
                    t.name
                )));
            }
        }
        Ok(())
    };
    check(&tensors.input, &layouts.input, "input")?;
    if tensors.steps.len() != layouts.steps.len() {
        return Err(bad("upload tensors do not cover the steps".into()));
    }
    for ((refs, st), s) in tensors
        .steps
        .iter()
        .zip(&layouts.steps)
        .zip(&pubp.mpc_steps)
    {
        check(refs, &st.uploads, &format!("step `{}`", s.name))?;
    }
    for seg in &plan.segments {
        if let Segment::Mpc(b) = seg {
            let polys = plan.tensor(b.input).ok().and_then(|t| t.polys);
            let want = layouts.steps.get(b.step.index()).map(|s| s.input.polys);
            if polys.is_none() || polys != want {
                return Err(bad(format!(
                    "MPC step {}: its input is not packed as declared",
                    b.step
                )));
            }
        }
    }
    let out = plan.tensor(plan.output_tensor).ok();
    if out.and_then(|t| t.polys) != Some(layouts.output.polys) {
        return Err(bad("the output tensor is not packed as declared".into()));
    }
    Ok(())
}
