//! Image packing in the protocol (Cheetah, Huang et al., USENIX Security 2022, §3–4): one
//! image's tensors in the coefficients of a few polynomials per image, a batch of B images as
//! B independent sets; the circuits are those of batch packing.
//!
//! - Uploads (the input, every MPC step's outputs): the client packs the values into the
//!   plan's layouts and encrypts each polynomial with seeded secret-key encryption. Offline it
//!   sends every seed (c1 = a(seed)); online the whole c0.
//! - Linear ops ([`mp2ml_ir::plan::HeOp::PolyLinear`]): sums of products of input polynomials
//!   with kernel polynomials in the NTT domain, on c1 offline and on c0 online (the bias goes
//!   into c0), then a rescale.
//! - HE→MPC: the server adds a fresh public-key encryption of a mask polynomial r (uniform
//!   mod q0 at every position a circuit reads) to each polynomial holding circuit inputs. That
//!   addition also re-randomizes c1: without it, c1 = Σ a(seed)·K would hand the client the
//!   kernel polynomials K. Offline the client receives the c1 of those polynomials and
//!   computes c1·s at the wanted coefficients; online only those coefficients of c0 move. The
//!   other coefficients carry partial sums and never leave the server.
//! - MPC→HE: the client packs its masked circuit outputs z into the layouts of the next
//!   segment; the server subtracts its masks at the same coefficients (exact mod Q_ℓ).
//! - Output: as HE→MPC with an encryption of zero flooded at every coefficient, and only the
//!   output's coefficients sent.

use std::collections::BTreeMap;

use mp2ml_ckks::{
    os_rng, poly_dot, C0Window, C1Half, C1TimesS, NttPoly, Params, PublicKey, RnsPoly, SecretKey,
};
use mp2ml_ir::layout::Layout;
use mp2ml_ir::plan::{HeOp, ImageLayouts, MpcStep, Positions, Segment, TensorRef, Upload};
use mp2ml_mpc::{Channel, Evaluator, EvaluatorOffline, Garbler, GarblerOffline};
use rand::RngCore;
use rayon::prelude::*;
use std::sync::Arc;

use crate::error::{Inconsistency, Result, RuntimeError};
use crate::flood;
use crate::he2mpc::{self, StepMasks, Weakened};
use crate::phase::Phase;
use crate::plan::{ClientSetup, PackedOp, ServerSetup};
use crate::report::{SessionReport, Step};
use crate::session::{and_gates, offline_first, SessionOptions};
use crate::shares::{decode_outputs, evaluator_bits, garbler_bits, uniform_bits};
use crate::wire;

/// The distinct positions of a [`Positions`], grouped by polynomial (both ascending): the
/// coefficients that are masked, sent and decrypted, in wire order.
pub(crate) struct Windows {
    /// `(polynomial, coefficients)`.
    pub by_poly: Vec<(u32, Vec<u32>)>,
    /// Index of every position in the concatenation of the windows.
    pub index: BTreeMap<(u32, u32), usize>,
}

impl Windows {
    pub fn of(p: &Positions) -> Windows {
        let mut m: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &(q, c) in &p.at {
            m.entry(q).or_default().push(c);
        }
        let mut index = BTreeMap::new();
        let mut by_poly = Vec::with_capacity(m.len());
        for (q, mut cs) in m {
            cs.sort_unstable();
            cs.dedup();
            for &c in &cs {
                let k = index.len();
                index.insert((q, c), k);
            }
            by_poly.push((q, cs));
        }
        Windows { by_poly, index }
    }

    /// Position of value `i` in the decrypted windows.
    fn slot(&self, p: &Positions, i: usize) -> Result<usize> {
        p.at.get(i)
            .and_then(|pos| self.index.get(pos))
            .copied()
            .ok_or_else(|| RuntimeError::Input(format!("position of value {i} is missing")))
    }
}

/// The polynomials of `layout` filled with `value(e)` for element e (zeros elsewhere).
fn pack<T: Copy + Default>(layout: &Layout, n: usize, value: impl Fn(usize) -> T) -> Vec<Vec<T>> {
    let mut polys = vec![vec![T::default(); n]; layout.polys()];
    for (p, c, e) in layout.slots() {
        // Layouts are checked against N and their polynomial count at load time.
        if let Some(x) = polys
            .get_mut(p as usize)
            .and_then(|q| q.get_mut(c as usize))
        {
            *x = value(e as usize);
        }
    }
    polys
}

fn layouts(plan: &mp2ml_ir::plan::ClientPlan) -> Result<&ImageLayouts> {
    plan.image
        .as_ref()
        .ok_or_else(|| RuntimeError::Input("the plan is not image packed".into()))
}

/// One image's tensors: polynomials per tensor.
type Tensors = Vec<Option<Vec<RnsPoly>>>;

fn take(t: &Tensors, r: TensorRef) -> Result<&Vec<RnsPoly>> {
    t.get(r.index())
        .and_then(Option::as_ref)
        .ok_or(RuntimeError::Inconsistent(
            Inconsistency::TensorNotComputed { tensor: r },
        ))
}

/// One HE op on one half of one image's tensors; `bias` adds the op's bias (the c0 half).
fn run_op(t: &mut Tensors, op: &HeOp, packed: Option<&PackedOp>, bias: bool) -> Result<()> {
    match op {
        HeOp::PolyLinear {
            name,
            inputs,
            output,
            terms,
            level_in,
            ..
        } => {
            let k = packed.ok_or_else(|| Inconsistency::NoWeights { op: name.clone() })?;
            let mut flat: Vec<&RnsPoly> = Vec::new();
            let mut offset = Vec::with_capacity(inputs.len());
            for &i in inputs {
                offset.push(flat.len() as u32);
                flat.extend(take(t, i)?.iter());
            }
            let ntt: Vec<NttPoly> = flat
                .par_iter()
                .map(|p| NttPoly::from_half(p))
                .collect::<std::result::Result<_, _>>()?;
            let params = flat
                .first()
                .map(|p| p.params().clone())
                .ok_or_else(|| Inconsistency::NoWeights { op: name.clone() })?;
            let out = terms
                .par_iter()
                .enumerate()
                .map(|(o, ts)| {
                    let pairs: Vec<(u32, u32)> = ts
                        .iter()
                        .map(|&(i, p, kk)| {
                            (
                                offset
                                    .get(i as usize)
                                    .copied()
                                    .unwrap_or(u32::MAX)
                                    .saturating_add(p),
                                kk,
                            )
                        })
                        .collect();
                    let mut y = if pairs.is_empty() {
                        RnsPoly::zero(&params, *level_in, params.n())?
                    } else {
                        poly_dot(&ntt, &k.kernels, &pairs)?
                    };
                    if bias {
                        if let Some(b) = k.bias.get(o).and_then(Option::as_ref) {
                            y.add_plain(b)?;
                        }
                    }
                    y.rescale_assign()?;
                    Ok(y)
                })
                .collect::<Result<Vec<_>>>()?;
            t[output.index()] = Some(out);
        }
        HeOp::ModDrop {
            input,
            output,
            level,
        } => {
            let x = take(t, *input)?
                .iter()
                .map(|p| p.mod_drop(*level))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            t[output.index()] = Some(x);
        }
        HeOp::Linear { name, .. } => {
            return Err(Inconsistency::NoWeights { op: name.clone() }.into());
        }
    }
    Ok(())
}

/// One upload of the plan: its tensor (on the server), its layout and working level
/// (`upload.level`), and the level the client encrypts it at (its source's level, the input's
/// or the MPC step's output level: the entry flood's primes above the source's working level).
struct UploadAt<'a> {
    tensor: Option<TensorRef>,
    upload: &'a Upload,
    enc_level: usize,
}

/// Every upload of the plan in wire order (input uploads, then each step's).
fn upload_order<'a>(
    plan: &mp2ml_ir::plan::ClientPlan,
    l: &'a ImageLayouts,
    tensors: Option<&'a mp2ml_ir::plan::ImageTensors>,
) -> Result<Vec<UploadAt<'a>>> {
    let mut v = Vec::new();
    for (i, u) in l.input.iter().enumerate() {
        v.push(UploadAt {
            tensor: tensors.and_then(|t| t.input.get(i).copied()),
            upload: u,
            enc_level: plan.input.level,
        });
    }
    for (k, st) in l.steps.iter().enumerate() {
        let step = plan.mpc_steps.get(k).ok_or(Inconsistency::StepOutOfRange {
            step: mp2ml_ir::plan::StepRef(k),
        })?;
        for (i, u) in st.uploads.iter().enumerate() {
            let tensor = tensors
                .and_then(|t| t.steps.get(k))
                .and_then(|s| s.get(i).copied());
            v.push(UploadAt {
                tensor,
                upload: u,
                enc_level: step.out_level,
            });
        }
    }
    Ok(v)
}

/// Server: the entry flood of one upload (docs/ARCHITECTURE.md, "Flooding"): adds the
/// pre-made halves `pre` to the received halves at the encryption level, rescales
/// `rescales` times (the factor F the client encoded with) and mod-drops to the upload's
/// working level, before any kernel touches the polynomials.
fn entry(
    polys: Vec<RnsPoly>,
    pre: Option<&[RnsPoly]>,
    rescales: usize,
    level: usize,
) -> Result<Vec<RnsPoly>> {
    let mut polys = polys;
    flood::apply_all(&mut polys, pre, rescales)?;
    polys.par_iter().map(|p| Ok(p.mod_drop(level)?)).collect()
}

/// Server: the c0 halves of the mask encryptions of one step (or the output) of one image,
/// one per window polynomial, and the masks by position.
struct ImageMasks {
    pre0: Vec<RnsPoly>,
    r: BTreeMap<(u32, u32), u64>,
}

/// Server, offline: encrypts (under the client's key) the mask polynomials of `w` at `level`
/// (uniform mod q0 at the window's positions, or zero flooded with `flood` bits), adds their
/// c1 halves to `input`'s polynomials and sends them.
fn server_mask_offline(
    ch: &mut impl Channel,
    pk: &PublicKey,
    input: &[RnsPoly],
    w: &Windows,
    level: usize,
    flood: Option<u32>,
    weak: &Weakened,
) -> Result<ImageMasks> {
    let params = pk.params();
    let n = params.n();
    let q0 = params.q0();
    let bits = 64 - q0.leading_zeros();
    let made = w
        .by_poly
        .par_iter()
        .map_init(os_rng, |rng, (p, coeffs)| {
            let mut m = vec![0i64; n];
            let mut r = Vec::new();
            if flood.is_none() {
                for &c in coeffs {
                    // Uniform mod q0 by rejection on `bits` bits (acceptance > ½).
                    let x = loop {
                        let x = rng.next_u64() >> (64 - bits);
                        if weak.no_share_mask {
                            break 0;
                        }
                        if x < q0 {
                            break x;
                        }
                    };
                    m[c as usize] = x as i64;
                    r.push(((*p, c), x));
                }
            }
            let (mut c0, c1) = he2mpc::mask_halves(pk, &m, level, n, weak, rng)?;
            if let Some(b) = flood {
                c0.poly_mut().flood(b, rng)?;
            }
            let x = input.get(*p as usize).ok_or(Inconsistency::GatherIndex {
                index: *p,
                len: input.len(),
            })?;
            let mut half = x.mod_drop(level)?;
            half.add_assign(c1.poly())?;
            Ok((c0.into_poly(), half, r))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut masks = ImageMasks {
        pre0: Vec::with_capacity(made.len()),
        r: BTreeMap::new(),
    };
    for (c0, half, r) in made {
        he2mpc::send_c1(ch, &half, weak)?;
        masks.pre0.push(c0);
        masks.r.extend(r);
    }
    Ok(masks)
}

/// Server, online: sends the window coefficients of `input`'s polynomials at `level` plus
/// the mask encryptions' c0.
fn server_mask_online(
    ch: &mut impl Channel,
    input: &[RnsPoly],
    w: &Windows,
    pre0: &[RnsPoly],
    level: usize,
) -> Result<()> {
    let out = w
        .by_poly
        .par_iter()
        .zip(pre0.par_iter())
        .map(|((p, coeffs), m)| {
            let x = input.get(*p as usize).ok_or(Inconsistency::GatherIndex {
                index: *p,
                len: input.len(),
            })?;
            let mut c = x.mod_drop(level)?;
            c.add_assign(m)?;
            Ok(c.gather(coeffs)?)
        })
        .collect::<Result<Vec<_>>>()?;
    for c in &out {
        wire::send_poly(ch, c)?;
    }
    Ok(())
}

/// Server side of one group of `images` images of an image-packed plan.
#[allow(
    clippy::too_many_arguments,
    reason = "the session's parts, borrowed apart"
)]
pub(crate) fn server_group<C: Channel>(
    setup: &ServerSetup,
    g: &mut Garbler<C>,
    pk: &PublicKey,
    opts: &SessionOptions,
    report: &mut SessionReport,
    drops: &[Vec<usize>],
    images: usize,
    group: usize,
) -> Result<()> {
    let plan = &setup.plan;
    let public = &plan.public;
    let params = &setup.params;
    let l = layouts(public)?;
    let ups = upload_order(public, l, plan.image.as_ref())?;
    let rescales = public.entry.rescales;
    let flood_on = setup.entry_flood_on();
    let step_w: Vec<Windows> = l.steps.iter().map(|s| Windows::of(&s.input)).collect();
    let out_w = Windows::of(&l.output);
    let out_level = public.output.level;
    let q0 = params.q0();

    // Offline: the seeds of every upload, the c1 pass (after the entry floods' c1), the masks'
    // encryptions. `entry0[image][upload]`: the c0 of the entry floods, for the online pass.
    let n = params.n();
    let mut entry0: Vec<Vec<Vec<RnsPoly>>> = vec![Vec::with_capacity(ups.len()); images];
    let mut masks: Vec<StepMasks> = Vec::with_capacity(public.mpc_steps.len());
    let mut pre: Vec<Vec<ImageMasks>> = Vec::with_capacity(public.mpc_steps.len());
    let out_pre = report.metered(g, Step::offline(format!("precompute[{group}]")), |g| {
        let ch = g.channel_mut();
        Phase::Precompute.enter(ch);
        let per_image: usize = ups.iter().map(|u| u.upload.layout.polys()).sum();
        let seeds = wire::recv_seeds(ch, per_image * images)?;
        let mut t1: Vec<Tensors> = vec![vec![None; plan.tensors.len()]; images];
        let mut it = seeds.iter();
        for (t, e0) in t1.iter_mut().zip(entry0.iter_mut()) {
            for u in &ups {
                let r = u
                    .tensor
                    .ok_or_else(|| RuntimeError::Input("an upload without tensor".into()))?;
                let polys = (0..u.upload.layout.polys())
                    .map(|_| {
                        let s = it.next().ok_or_else(|| {
                            RuntimeError::Input("fewer seeds than uploads".into())
                        })?;
                        Ok(RnsPoly::from_seed(params, u.enc_level, s)?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                // The entry flood's c1 halves, over whole polynomials.
                let (c1, c0) = if flood_on {
                    let f = flood::draw(pk, polys.len(), u.enc_level, n, public.entry.bits)?;
                    (Some(f.c1), f.c0)
                } else {
                    (None, Vec::new())
                };
                t[r.index()] = Some(entry(polys, c1.as_deref(), rescales, u.upload.level)?);
                e0.push(c0);
            }
        }
        let mut rng = os_rng();
        for (si, seg) in plan.segments.iter().enumerate() {
            match seg {
                Segment::He(he) => {
                    for (oi, op) in he.ops.iter().enumerate() {
                        let k = setup
                            .packed
                            .get(si)
                            .and_then(|s| s.get(oi))
                            .and_then(Option::as_ref);
                        for t in t1.iter_mut() {
                            run_op(t, op, k, false)?;
                        }
                    }
                }
                Segment::Mpc(b) => {
                    let step = public
                        .mpc_steps
                        .get(b.step.index())
                        .ok_or(Inconsistency::StepOutOfRange { step: b.step })?;
                    let sc = yao_circuit(public, step, opts)?;
                    let w = &step_w[b.step.index()];
                    let pos = &l.steps[b.step.index()].input;
                    let mut per = Vec::with_capacity(images);
                    let mut shares = vec![vec![0u64; images]; step.values_in];
                    for (j, t) in t1.iter().enumerate() {
                        let m = server_mask_offline(
                            ch,
                            pk,
                            take(t, b.input)?,
                            w,
                            0,
                            None,
                            setup.weakened(),
                        )?;
                        for (i, s) in shares.iter_mut().enumerate() {
                            let r = pos.at.get(i).and_then(|p| m.r.get(p)).copied().ok_or_else(
                                || RuntimeError::Input("unmasked circuit input".into()),
                            )?;
                            // Below q0 < 2^64, so the cast is exact (the plan check made sc.q0 = q0).
                            s[j] = ((u128::from((q0 - r) % q0) + sc.input_offset) % u128::from(q0))
                                as u64;
                        }
                        per.push(m);
                    }
                    let out = (0..step.values_out)
                        .map(|_| {
                            (0..images)
                                .map(|_| uniform_bits(&mut rng, sc.mask_bits))
                                .collect()
                        })
                        .collect();
                    masks.push(StepMasks {
                        r: Vec::new(),
                        pre0: Vec::new(),
                        shares,
                        out,
                    });
                    pre.push(per);
                }
            }
            for t in t1.iter_mut() {
                free(t, &drops[si]);
            }
        }
        let mut out = Vec::with_capacity(images);
        for t in &t1 {
            let o = take(t, plan.output_tensor)?;
            out.push(server_mask_offline(
                ch,
                pk,
                o,
                &out_w,
                out_level,
                Some(public.output.flood_bits),
                setup.weakened(),
            )?);
        }
        ch.flush()?;
        Ok::<_, RuntimeError>(out)
    })?;

    // Offline: garbling, when the tables fit the budget.
    let first = offline_first(public, images, opts);
    let offline_ands = if first {
        and_gates(public, images, opts)
    } else {
        0
    };
    let step = Step::offline(format!("offline[{group}]")).gates(offline_ands, 0);
    let mut handles: Vec<Option<GarblerOffline>> = report.metered(g, step, |g| {
        let mut handles = Vec::new();
        if first {
            for (s, m) in public.mpc_steps.iter().zip(&masks) {
                let sc = yao_circuit(public, s, opts)?;
                let bits = garbler_bits(sc, s.instances, images, &m.shares, &m.out);
                handles.push(Some(g.offline(&sc.circuit, s.instances * images, &bits)?));
            }
        }
        Ok::<_, RuntimeError>(handles)
    })?;

    // Online: the input's c0 halves, entry-flooded before any kernel touches them.
    let mut t0: Vec<Tensors> = vec![vec![None; plan.tensors.len()]; images];
    let n_in = l.input.len();
    // Index in wire order of each step's first upload.
    let first_up: Vec<usize> = l
        .steps
        .iter()
        .scan(n_in, |k, st| {
            let f = *k;
            *k += st.uploads.len();
            Some(f)
        })
        .collect();
    let pre0 = |j: usize, k: usize| -> Option<&[RnsPoly]> {
        flood_on.then(|| entry0.get(j).and_then(|e| e.get(k)).map(Vec::as_slice))?
    };
    report.metered(g, Step::online(format!("input[{group}]")), |g| {
        let ch = g.channel_mut();
        Phase::Input.enter(ch);
        for (j, t) in t0.iter_mut().enumerate() {
            for (k, u) in ups.iter().enumerate().take(n_in) {
                let r = u
                    .tensor
                    .ok_or_else(|| RuntimeError::Input("an upload without tensor".into()))?;
                let polys = wire::recv_polys(ch, params, u.enc_level, n, u.upload.layout.polys())?;
                t[r.index()] = Some(entry(polys, pre0(j, k), rescales, u.upload.level)?);
            }
        }
        Ok::<_, RuntimeError>(())
    })?;

    for (si, seg) in plan.segments.iter().enumerate() {
        match seg {
            Segment::He(he) => {
                report.metered(g, Step::online(format!("he:{}", he.name)), |_| {
                    for (oi, op) in he.ops.iter().enumerate() {
                        let k = setup
                            .packed
                            .get(si)
                            .and_then(|s| s.get(oi))
                            .and_then(Option::as_ref);
                        for t in t0.iter_mut() {
                            run_op(t, op, k, true)?;
                        }
                    }
                    Ok::<_, RuntimeError>(())
                })?;
            }
            Segment::Mpc(b) => {
                let step = &public.mpc_steps[b.step.index()];
                let sc = yao_circuit(public, step, opts)?;
                let n = step.instances * images;
                let ands = sc.circuit.stats().and * n as u64;
                let ots = u64::from(sc.circuit.evaluator_inputs) * n as u64;
                let handle = handles.get_mut(b.step.index()).and_then(Option::take);
                let m = &masks[b.step.index()];
                let metered = Step::online(format!("mpc:{}", step.name)).gates(ands, ots);
                let w = &step_w[b.step.index()];
                let per = &pre[b.step.index()];
                let first = first_up.get(b.step.index()).copied().unwrap_or(usize::MAX);
                let uploads: Vec<(usize, &UploadAt)> = ups
                    .iter()
                    .enumerate()
                    .skip(first)
                    .take(l.steps[b.step.index()].uploads.len())
                    .collect();
                report.metered(g, metered, |g| {
                    let ch = g.channel_mut();
                    Phase::He2Mpc.enter(ch);
                    for (t, pm) in t0.iter().zip(per) {
                        server_mask_online(ch, take(t, b.input)?, w, &pm.pre0, 0)?;
                    }
                    ch.flush()?;
                    match handle {
                        Some(h) => g.online(h)?,
                        None => {
                            let bits = garbler_bits(sc, step.instances, images, &m.shares, &m.out);
                            g.run_streaming(&sc.circuit, n, &bits)?;
                        }
                    }
                    let ch = g.channel_mut();
                    Phase::Mpc2He.enter(ch);
                    // The client encoded z·2^shift·F (F the entry flood's factor), exact per
                    // RNS limb.
                    let shift = step.out_scale_bits - public.scale_bits;
                    let factor = params.factor_residues(step.out_level, rescales, shift)?;
                    for (j, t) in t0.iter_mut().enumerate() {
                        for &(k, u) in &uploads {
                            let r = u.tensor.ok_or_else(|| {
                                RuntimeError::Input("an upload without tensor".into())
                            })?;
                            let layout = &u.upload.layout;
                            let ring = params.n();
                            let mut polys =
                                wire::recv_polys(ch, params, u.enc_level, ring, layout.polys())?;
                            let sub = pack(layout, ring, |e| {
                                m.out
                                    .get(e)
                                    .and_then(|v| v.get(j))
                                    .map_or(0u128, |&r| r + sc.output_offset)
                            });
                            for (c, s) in polys.iter_mut().zip(&sub) {
                                c.sub_plain_scaled(s, &factor)?;
                            }
                            // The entry flood, before any kernel touches the values.
                            t[r.index()] =
                                Some(entry(polys, pre0(j, k), rescales, u.upload.level)?);
                        }
                    }
                    Ok::<_, RuntimeError>(())
                })?;
            }
        }
        for t in t0.iter_mut() {
            free(t, &drops[si]);
        }
    }

    report.metered(g, Step::online(format!("output[{group}]")), |g| {
        let ch = g.channel_mut();
        Phase::Output.enter(ch);
        for (t, pm) in t0.iter().zip(&out_pre) {
            server_mask_online(
                ch,
                take(t, plan.output_tensor)?,
                &out_w,
                &pm.pre0,
                out_level,
            )?;
        }
        ch.flush()?;
        Ok::<_, RuntimeError>(())
    })
}

fn free(t: &mut Tensors, drops: &[usize]) {
    for &d in drops {
        if let Some(x) = t.get_mut(d) {
            *x = None;
        }
    }
}

/// Client: one image's seeded encryptions of zero for every upload polynomial, made before
/// the plaintexts exist: (seed, whole c0) per polynomial, per upload in wire order.
type PendingImage = Vec<Vec<([u8; 32], C0Window)>>;

fn encrypt_zeros(sk: &SecretKey, ups: &[UploadAt], n: usize) -> Result<PendingImage> {
    ups.iter()
        .map(|u| {
            (0..u.upload.layout.polys())
                .into_par_iter()
                .map_init(os_rng, |rng, _| {
                    sk.encrypt_seeded_window::<i64, _>(&[], u.enc_level, n, rng)
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Into::into)
        })
        .collect()
}

/// Client, online: adds `plain·F` (one vector per polynomial; F given by its residues, the
/// entry flood's factor times any scale shift, formed per RNS limb) to the pending c0s and
/// sends them.
fn send_upload<M: mp2ml_ckks::IntCoeff>(
    ch: &mut impl Channel,
    pending: Vec<([u8; 32], C0Window)>,
    plain: &[Vec<M>],
    factor: &[u64],
) -> Result<()> {
    let out = pending
        .into_par_iter()
        .zip(plain.par_iter())
        .map(|((_, mut w), m)| {
            w.poly_mut().add_plain_scaled(m, factor)?;
            Ok(w)
        })
        .collect::<Result<Vec<C0Window>>>()?;
    for w in &out {
        wire::send_poly(ch, w.poly())?;
    }
    Ok(())
}

/// Client, offline: receives the c1 of every window polynomial at `level` and keeps c1·s at
/// the window's coefficients.
fn client_c1s(
    ch: &mut impl Channel,
    sk: &SecretKey,
    params: &Arc<Params>,
    w: &Windows,
    level: usize,
) -> Result<Vec<C1TimesS>> {
    let n = params.n();
    let c1 = wire::recv_polys(ch, params, level, n, w.by_poly.len())?;
    c1.into_par_iter()
        .zip(w.by_poly.par_iter())
        .map(|(c, (_, coeffs))| Ok(sk.c1_times_s(&C1Half::new(c)?, n)?.gather(coeffs)?))
        .collect()
}

/// Client, online: receives the masked windows and decrypts them (mod q0 for shares, centered
/// for the output) in window order.
fn client_windows(
    ch: &mut impl Channel,
    sk: &SecretKey,
    params: &Arc<Params>,
    w: &Windows,
    c1s: &[C1TimesS],
    level: usize,
) -> Result<Vec<i128>> {
    let mut frames = Vec::with_capacity(w.by_poly.len());
    for (_, coeffs) in &w.by_poly {
        frames.extend(wire::recv_polys(ch, params, level, coeffs.len(), 1)?);
    }
    let dec = frames
        .into_par_iter()
        .zip(c1s.par_iter())
        .map(|(c0, c1s)| {
            let c0 = C0Window::new(c0);
            if level == 0 {
                Ok(sk
                    .decrypt_halves_mod_q0(&c0, c1s)?
                    .into_iter()
                    .map(i128::from)
                    .collect::<Vec<_>>())
            } else {
                Ok(sk.decrypt_halves(&c0, c1s)?)
            }
        })
        .collect::<Result<Vec<Vec<i128>>>>()?;
    Ok(dec.into_iter().flatten().collect())
}

/// Client side of one group of `images` images of an image-packed plan (`data` image-major);
/// returns the logits, image-major.
#[allow(
    clippy::too_many_arguments,
    reason = "the session's parts, borrowed apart"
)]
pub(crate) fn client_group<C: Channel>(
    setup: &ClientSetup,
    e: &mut Evaluator<C>,
    sk: &SecretKey,
    opts: &SessionOptions,
    report: &mut SessionReport,
    data: &[f32],
    images: usize,
    group: usize,
) -> Result<Vec<f32>> {
    let plan = &setup.plan;
    let params = &setup.params;
    let n = params.n();
    let l = layouts(plan)?;
    let ups = upload_order(plan, l, None)?;
    let rescales = plan.entry.rescales;
    let step_w: Vec<Windows> = l.steps.iter().map(|s| Windows::of(&s.input)).collect();
    let out_w = Windows::of(&l.output);
    let in_elems: usize = plan.input.shape.iter().product();
    let out_elems: usize = plan.output.shape.iter().product();
    let in_scale = f64::from(plan.input.scale_bits).exp2();
    let out_scale = f64::from(plan.output.scale_bits).exp2();

    // Offline: encryptions of zero, seeds out, c1 of every window polynomial in.
    let mut pending: Vec<PendingImage> =
        report.metered(e, Step::offline(format!("encrypt[{group}]")), |_| {
            (0..images)
                .map(|_| encrypt_zeros(sk, &ups, n))
                .collect::<Result<Vec<_>>>()
        })?;
    // Test-only: the noise of every upload polynomial as the client can compute it after the
    // server's entry rescales (one probe entry per image and upload, `[polynomial][coeff]`).
    #[cfg(feature = "test-hooks")]
    if let Some(p) = &setup.probe {
        for img in &pending {
            for up in img {
                let noise = up
                    .par_iter()
                    .map(|(seed, w)| crate::mpc2he::own_noise(sk, seed, w, rescales))
                    .collect::<Result<Vec<_>>>()?;
                p.record_noise(noise);
            }
        }
    }
    let (step_c1s, out_c1s) =
        report.metered(e, Step::offline(format!("precompute[{group}]")), |e| {
            let ch = e.channel_mut();
            Phase::Precompute.enter(ch);
            let seeds: Vec<&[u8; 32]> =
                pending.iter().flatten().flatten().map(|(s, _)| s).collect();
            wire::send_seeds(ch, seeds.into_iter())?;
            ch.flush()?;
            let mut steps = Vec::with_capacity(l.steps.len());
            for w in &step_w {
                steps.push(
                    (0..images)
                        .map(|_| client_c1s(ch, sk, params, w, 0))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
            let out = (0..images)
                .map(|_| client_c1s(ch, sk, params, &out_w, plan.output.level))
                .collect::<Result<Vec<_>>>()?;
            Ok::<_, RuntimeError>((steps, out))
        })?;

    let first = offline_first(plan, images, opts);
    let offline_ands = if first {
        and_gates(plan, images, opts)
    } else {
        0
    };
    let step = Step::offline(format!("offline[{group}]")).gates(offline_ands, 0);
    let mut handles: Vec<Option<EvaluatorOffline>> = report.metered(e, step, |e| {
        let mut handles = Vec::new();
        if first {
            for s in &plan.mpc_steps {
                let sc = yao_circuit(plan, s, opts)?;
                handles.push(Some(e.offline(&sc.circuit, s.instances * images)?));
            }
        }
        Ok::<_, RuntimeError>(handles)
    })?;

    // Online: the input, packed into its layouts.
    let n_in = l.input.len();
    report.metered(e, Step::online(format!("input[{group}]")), |e| {
        let ch = e.channel_mut();
        Phase::Input.enter(ch);
        // Encoded times F, the entry flood's factor (docs/ARCHITECTURE.md, "Flooding").
        let factor = params.factor_residues(plan.input.level, rescales, 0)?;
        for (j, p) in pending.iter_mut().enumerate() {
            for (k, u) in ups.iter().enumerate().take(n_in) {
                let plain = pack(&u.upload.layout, n, |el| {
                    data.get(j * in_elems + el)
                        .map_or(0i128, |&x| (f64::from(x) * in_scale).round() as i128)
                });
                send_upload(ch, std::mem::take(&mut p[k]), &plain, &factor)?;
            }
        }
        ch.flush()?;
        Ok::<_, RuntimeError>(())
    })?;

    // The MPC steps in order; `next` is the first upload of the step in wire order.
    let mut next = n_in;
    for (si, step) in plan.mpc_steps.iter().enumerate() {
        let sc = yao_circuit(plan, step, opts)?;
        let count = step.instances * images;
        let ands = sc.circuit.stats().and * count as u64;
        let ots = u64::from(sc.circuit.evaluator_inputs) * count as u64;
        let handle = handles.get_mut(si).and_then(Option::take);
        let w = &step_w[si];
        let pos = &l.steps[si].input;
        let n_up = l.steps[si].uploads.len();
        let metered = Step::online(format!("mpc:{}", step.name)).gates(ands, ots);
        report.metered(e, metered, |e| {
            let ch = e.channel_mut();
            Phase::He2Mpc.enter(ch);
            let mut shares = vec![vec![0u64; images]; step.values_in];
            for j in 0..images {
                let dec = client_windows(ch, sk, params, w, &step_c1s[si][j], 0)?;
                for (i, s) in shares.iter_mut().enumerate() {
                    let v = dec.get(w.slot(pos, i)?).copied().ok_or_else(short)?;
                    s[j] = v as u64;
                }
            }
            #[cfg(feature = "test-hooks")]
            if let Some(p) = &setup.probe {
                p.record_shares(&shares);
            }
            let bits = evaluator_bits(sc, step.instances, images, &shares);
            let out = match handle {
                Some(h) => e.online(h, &bits)?,
                None => e.run_streaming(&sc.circuit, count, &bits)?,
            };
            let z = decode_outputs(sc, step.instances, images, &out)?;
            check_outputs(step, &z)?;
            // MPC→HE: z·2^shift·F at the next segment's level (F the entry flood's factor),
            // exact per RNS limb whatever the size.
            let shift = step.out_scale_bits - plan.scale_bits;
            let factor = params.factor_residues(step.out_level, rescales, shift)?;
            let ch = e.channel_mut();
            Phase::Mpc2He.enter(ch);
            for (j, p) in pending.iter_mut().enumerate() {
                let these = p.iter_mut().zip(&ups).skip(next).take(n_up);
                for (pend, u) in these {
                    let plain = pack(&u.upload.layout, n, |el| {
                        z.get(el).and_then(|v| v.get(j)).copied().unwrap_or(0u128)
                    });
                    send_upload(ch, std::mem::take(pend), &plain, &factor)?;
                }
            }
            ch.flush()?;
            Ok::<_, RuntimeError>(())
        })?;
        next += n_up;
    }

    // Output.
    let mut logits = vec![0f32; images * out_elems];
    report.metered(e, Step::online(format!("output[{group}]")), |e| {
        let ch = e.channel_mut();
        Phase::Output.enter(ch);
        for j in 0..images {
            let dec = client_windows(ch, sk, params, &out_w, &out_c1s[j], plan.output.level)?;
            for el in 0..out_elems {
                let v = dec
                    .get(out_w.slot(&l.output, el)?)
                    .copied()
                    .ok_or_else(short)?;
                logits[j * out_elems + el] = (v as f64 / out_scale) as f32;
            }
        }
        Ok::<_, RuntimeError>(())
    })?;
    Ok(logits)
}

/// The circuit of `step`, which image packing runs with Yao (its GMW path is not written yet).
fn yao_circuit<'a>(
    plan: &'a mp2ml_ir::plan::ClientPlan,
    step: &MpcStep,
    opts: &SessionOptions,
) -> Result<&'a mp2ml_ir::circuit::ShareCircuit> {
    let (b, sc) = crate::backend::step_circuit(plan, step, opts)?;
    if b != mp2ml_ir::plan::MpcBackend::Yao {
        return Err(RuntimeError::Input(format!(
            "step `{}`: image-packed plans run their MPC steps with Yao only, this one is {b:?}",
            step.name
        )));
    }
    Ok(sc)
}

fn short() -> RuntimeError {
    RuntimeError::Input("fewer decrypted coefficients than positions".into())
}

fn check_outputs(step: &MpcStep, z: &[Vec<u128>]) -> Result<()> {
    if z.len() != step.values_out {
        return Err(Inconsistency::CircuitOutputs {
            step: step.name.clone(),
            got: z.len(),
            expected: step.values_out,
        }
        .into());
    }
    Ok(())
}
