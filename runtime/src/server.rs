//! The server's side of a session: handshake, HE segments, HE→MPC, garbling, MPC→HE, output.

use mp2ml_ckks::{linear_polys, os_rng, PublicKey, RnsPoly, RowBias};
use mp2ml_ir::plan::{HeOp, MpcBinding, Segment};
use mp2ml_mpc::{Channel, Garbler, GarblerOffline};
use rand::RngCore;
use rayon::prelude::*;

use crate::error::{Result, RuntimeError};
use crate::plan::ServerSetup;
use crate::report::{Meter, SessionReport};
use crate::session::{groups, offline_first, SessionOptions, MAX_IMAGES};
use crate::shares::{garbler_bits, uniform_bits};
use crate::wire::{self, Hello, PROTOCOL_VERSION};

/// The server's material for one MPC step of one group, made before the client's input exists.
struct StepMasks {
    /// For each input value, the uniform mask `r` mod q0 per image.
    r: Vec<Vec<i64>>,
    /// For each input value, the c0 window of a fresh public-key encryption of `r` at level 0
    /// (adding it re-randomizes and masks in one addition); made in [`precompute_c1`], whose
    /// c1 half went to the client there.
    pre0: Vec<RnsPoly>,
    /// The server's shares `b̃ = (−r + input_offset) mod q0` per image.
    shares: Vec<Vec<u64>>,
    /// Output masks `r'` in `[0, 2^mask_bits)` per output and image.
    out: Vec<Vec<u128>>,
}

fn draw_masks(
    setup: &ServerSetup,
    step: usize,
    images: usize,
    rng: &mut impl RngCore,
) -> StepMasks {
    let public = &setup.plan.public;
    let s = &public.mpc_steps[step];
    let sc = &public.circuits[s.circuit];
    let q0 = setup.params.q0();
    let bits = sc.share_bits;
    // Uniform mod q0 by rejection on `bits` bits (q0 > 2^(bits−1): acceptance > ½). Only the
    // batch's coefficients of c0 ever leave the server, so only they need one.
    let r: Vec<Vec<i64>> = (0..s.values_in)
        .map(|_| {
            (0..images)
                .map(|_| loop {
                    let x = rng.next_u64() >> (64 - bits);
                    if x < q0 {
                        break x as i64;
                    }
                })
                .collect()
        })
        .collect();
    let shares = r
        .iter()
        .map(|v| {
            v.iter()
                .map(|&x| ((q0 - x as u64) % q0 + sc.input_offset) % q0)
                .collect()
        })
        .collect();
    let out = (0..s.values_out)
        .map(|_| {
            (0..images)
                .map(|_| uniform_bits(rng, sc.mask_bits))
                .collect()
        })
        .collect();
    StepMasks {
        r,
        pre0: Vec::new(),
        shares,
        out,
    }
}

/// For each segment, the tensors to drop after it: those no later segment reads (the output
/// tensor is kept).
fn drops_after(plan: &mp2ml_ir::plan::ServerPlan) -> Vec<Vec<usize>> {
    let mut last = vec![0usize; plan.tensors.len()];
    for (si, seg) in plan.segments.iter().enumerate() {
        let reads: Vec<usize> = match seg {
            Segment::He(he) => he
                .ops
                .iter()
                .flat_map(|op| match op {
                    HeOp::Linear { inputs, .. } => inputs.clone(),
                    HeOp::ModDrop { input, .. } => vec![*input],
                })
                .collect(),
            Segment::Mpc(b) => vec![b.input],
        };
        for t in reads {
            if let Some(l) = last.get_mut(t) {
                *l = si;
            }
        }
    }
    let mut drops = vec![Vec::new(); plan.segments.len()];
    for (t, &l) in last.iter().enumerate() {
        if t != plan.output_tensor {
            if let Some(d) = drops.get_mut(l) {
                d.push(t);
            }
        }
    }
    drops
}

/// Frees the tensors listed in `drops` (after the segment they were last read in).
fn free(tensors: &mut [Option<Vec<RnsPoly>>], drops: &[usize]) {
    for &t in drops {
        if let Some(x) = tensors.get_mut(t) {
            *x = None;
        }
    }
}

/// Runs one client session on `ch` to completion.
pub fn serve<C: Channel>(
    setup: &ServerSetup,
    ch: C,
    opts: &SessionOptions,
) -> Result<SessionReport> {
    serve_with(setup, ch, opts, &mut |_| Ok(()))
}

/// The server's admission decision on a client's hello once the plan checks passed:
/// `Err(reason)` refuses the session with that reason, which the client prints.
pub type Admit<'a> = dyn FnMut(&Hello) -> std::result::Result<(), String> + 'a;

/// [`serve`], with `admit` deciding (after the version, plan and size checks) whether the
/// session may start: the service's limits (running sessions, memory, batch size).
pub fn serve_with<C: Channel>(
    setup: &ServerSetup,
    ch: C,
    opts: &SessionOptions,
    admit: &mut Admit<'_>,
) -> Result<SessionReport> {
    let mut g = Garbler::new(ch, os_rng());
    let mut report = SessionReport {
        role: "server".into(),
        ..Default::default()
    };
    let meter = Meter::start(g.channel());
    let (images, pk) = handshake(setup, g.channel_mut(), admit)?;
    meter.finish(
        g.channel(),
        &mut report,
        "handshake".into(),
        "offline",
        0,
        0,
    );
    report.images = images;
    let gs = groups(images, setup.params.n());
    report.groups = gs.len();
    report.offline_first = offline_first(&setup.plan.public, setup.params.n().min(images), opts);
    for (gi, &b) in gs.iter().enumerate() {
        run_group(setup, &mut g, &pk, b, gi, opts, &mut report)?;
    }
    Ok(report)
}

fn handshake(
    setup: &ServerSetup,
    ch: &mut impl Channel,
    admit: &mut Admit<'_>,
) -> Result<(usize, PublicKey)> {
    ch.set_phase("handshake");
    let hello = Hello::from_bytes(&ch.recv_frame()?)?;
    let refusal = if hello.version != PROTOCOL_VERSION {
        Some(format!(
            "protocol version {} is not supported (server speaks {PROTOCOL_VERSION})",
            hello.version
        ))
    } else if hello.plan_hash != setup.plan.public_hash {
        Some(format!(
            "the client's plan (hash {}) does not belong to this server's plan (hash {})",
            hello.plan_hash, setup.plan.public_hash
        ))
    } else if hello.images == 0 || hello.images > MAX_IMAGES as u64 {
        Some(format!(
            "batch of {} images is outside 1..={MAX_IMAGES}",
            hello.images
        ))
    } else {
        admit(&hello).err()
    };
    wire::send_verdict(ch, refusal.as_deref())?;
    if let Some(r) = refusal {
        return Err(RuntimeError::Protocol(format!("refused the client: {r}")));
    }
    let pk = wire::recv_pk(ch, &setup.params)?;
    Ok((hello.images as usize, pk))
}

#[allow(clippy::too_many_arguments)]
fn run_group<C: Channel>(
    setup: &ServerSetup,
    g: &mut Garbler<C>,
    pk: &PublicKey,
    images: usize,
    group: usize,
    opts: &SessionOptions,
    report: &mut SessionReport,
) -> Result<()> {
    let plan = &setup.plan;
    let public = &plan.public;
    let params = &setup.params;
    let mut rng = os_rng();
    let first = offline_first(public, images, opts);

    // Offline: the masks of every step; then the c1 halves of every ciphertext of the group,
    // with the encryptions of the masks and of the output's re-randomization and flooding.
    let meter = Meter::start(g.channel());
    let mut masks: Vec<StepMasks> = (0..public.mpc_steps.len())
        .map(|s| draw_masks(setup, s, images, &mut rng))
        .collect();
    let drops = drops_after(plan);
    let out_pre0 = precompute_c1(setup, g.channel_mut(), pk, images, &mut masks, &drops)?;
    meter.finish(
        g.channel(),
        report,
        format!("precompute[{group}]"),
        "offline",
        0,
        0,
    );

    // Offline: garbling, when the tables fit the budget.
    let meter = Meter::start(g.channel());
    let mut handles: Vec<Option<GarblerOffline>> = Vec::new();
    let mut offline_ands = 0;
    if first {
        for (s, m) in public.mpc_steps.iter().zip(&masks) {
            let sc = &public.circuits[s.circuit];
            let bits = garbler_bits(sc, s.instances, images, &m.shares, &m.out);
            handles.push(Some(g.offline(&sc.circuit, s.instances * images, &bits)?));
            offline_ands += sc.circuit.stats().and * (s.instances * images) as u64;
        }
    }
    meter.finish(
        g.channel(),
        report,
        format!("offline[{group}]"),
        "offline",
        offline_ands,
        0,
    );

    // Input: the c0 windows of the client's encryptions.
    let meter = Meter::start(g.channel());
    let ch = g.channel_mut();
    ch.set_phase("input");
    let mut tensors: Vec<Option<Vec<RnsPoly>>> = vec![None; plan.tensors.len()];
    tensors[0] = Some(wire::recv_polys(
        ch,
        params,
        public.input.level,
        images,
        plan.tensors[0].len(),
    )?);
    meter.finish(
        g.channel(),
        report,
        format!("input[{group}]"),
        "online",
        0,
        0,
    );

    for (si, seg) in plan.segments.iter().enumerate() {
        match seg {
            Segment::He(he) => {
                let meter = Meter::start(g.channel());
                for (oi, op) in he.ops.iter().enumerate() {
                    run_he_op(
                        &mut tensors,
                        op,
                        setup.matrices[si][oi].as_ref(),
                        Some(images),
                    )?;
                }
                meter.finish(
                    g.channel(),
                    report,
                    format!("he:{}", he.name),
                    "online",
                    0,
                    0,
                );
            }
            Segment::Mpc(b) => {
                let m = &masks[b.step];
                let handle = handles.get_mut(b.step).and_then(Option::take);
                run_mpc_step(setup, g, &mut tensors, b, m, handle, images, report)?;
            }
        }
        free(&mut tensors, &drops[si]);
    }

    // Output: add the pre-made re-randomization and flooding to every output window, send.
    let meter = Meter::start(g.channel());
    let out = take_tensor(&tensors, plan.output_tensor)?;
    let level = public.output.level;
    let all: Vec<u32> = (0..out.len() as u32).collect();
    let windows = masked_halves(out, &all, &out_pre0, level)?;
    let ch = g.channel_mut();
    ch.set_phase("output");
    for c in &windows {
        wire::send_poly(ch, c)?;
    }
    ch.flush()?;
    meter.finish(
        g.channel(),
        report,
        format!("output[{group}]"),
        "online",
        0,
        0,
    );
    Ok(())
}

/// The offline pass over the c1 halves. The client sends the seeds of all its encryptions of
/// the session (the input's and every MPC→HE step's); c1 of each is a(seed), so the server runs
/// every HE segment on the c1 halves now, encrypts its masks (and the output's
/// re-randomization and flooding) with the client's public key, adds their c1 halves, and
/// sends the client the c1 of every ciphertext the client will decrypt, so that the client can
/// compute c1·s before its input exists. The c0 windows of the mask encryptions are kept in
/// `masks`; those of the output's are returned. Tensors are freed after their last use.
fn precompute_c1(
    setup: &ServerSetup,
    ch: &mut impl Channel,
    pk: &PublicKey,
    images: usize,
    masks: &mut [StepMasks],
    drops: &[Vec<usize>],
) -> Result<Vec<RnsPoly>> {
    let plan = &setup.plan;
    let public = &plan.public;
    let params = &setup.params;
    ch.set_phase("precompute");
    let expand = |seeds: Vec<[u8; 32]>, level: usize| -> Result<Vec<RnsPoly>> {
        seeds
            .par_iter()
            .map(|s| Ok(RnsPoly::from_seed(params, level, s)?))
            .collect()
    };
    // Encryptions of `r[i]` (or of zero, flooded) at `level`, split into halves.
    let encrypt = |r: &[Vec<i64>], count: usize, level: usize, flood: Option<u32>| {
        (0..count)
            .into_par_iter()
            .map_init(os_rng, |rng, i| {
                let m = r.get(i).map_or(&[][..], Vec::as_slice);
                let (mut c0, c1) = pk.encrypt_halves(m, level, images, rng)?;
                if let Some(bits) = flood {
                    c0.flood(bits, rng)?;
                }
                Ok((c0, c1))
            })
            .collect::<Result<Vec<(RnsPoly, RnsPoly)>>>()
            .map(|v| v.into_iter().unzip::<_, _, Vec<_>, Vec<_>>())
    };
    let mut tensors: Vec<Option<Vec<RnsPoly>>> = vec![None; plan.tensors.len()];
    tensors[0] = Some(expand(
        wire::recv_seeds(ch, plan.tensors[0].len())?,
        public.input.level,
    )?);
    let mut step_seeds: Vec<Option<Vec<[u8; 32]>>> = public
        .mpc_steps
        .iter()
        .map(|s| wire::recv_seeds(ch, s.values_out).map(Some))
        .collect::<Result<_>>()?;
    for (si, seg) in plan.segments.iter().enumerate() {
        match seg {
            Segment::He(he) => {
                for (oi, op) in he.ops.iter().enumerate() {
                    run_he_op(&mut tensors, op, setup.matrices[si][oi].as_ref(), None)?;
                }
            }
            Segment::Mpc(b) => {
                let m = masks
                    .get_mut(b.step)
                    .ok_or_else(|| RuntimeError::Protocol("MPC step out of range".into()))?;
                let (pre0, pre1) = encrypt(&m.r, m.r.len(), 0, None)?;
                m.pre0 = pre0;
                let input = take_tensor(&tensors, b.input)?;
                for c in masked_halves(input, &b.gather, &pre1, 0)? {
                    wire::send_poly(ch, &c)?;
                }
                drop(pre1);
                let step = &public.mpc_steps[b.step];
                let seeds = step_seeds
                    .get_mut(b.step)
                    .and_then(Option::take)
                    .ok_or_else(|| RuntimeError::Protocol("MPC step used twice".into()))?;
                tensors[b.output] = Some(expand(seeds, step.out_level)?);
            }
        }
        free(&mut tensors, &drops[si]);
    }
    let out = take_tensor(&tensors, plan.output_tensor)?;
    let (out0, out1) = encrypt(
        &[],
        out.len(),
        public.output.level,
        Some(public.output.flood_bits),
    )?;
    let all: Vec<u32> = (0..out.len() as u32).collect();
    for c in masked_halves(out, &all, &out1, public.output.level)? {
        wire::send_poly(ch, &c)?;
    }
    ch.flush()?;
    Ok(out0)
}

/// `input[gather[i]]` mod-dropped to `level` plus `pre[i]` (a half of a pre-made encryption),
/// in parallel.
fn masked_halves(
    input: &[RnsPoly],
    gather: &[u32],
    pre: &[RnsPoly],
    level: usize,
) -> Result<Vec<RnsPoly>> {
    if gather.len() != pre.len() {
        return Err(RuntimeError::Protocol(format!(
            "{} values gathered for {} masks",
            gather.len(),
            pre.len()
        )));
    }
    gather
        .par_iter()
        .zip(pre.par_iter())
        .map(|(&e, p)| {
            let x = input.get(e as usize).ok_or_else(|| {
                RuntimeError::Protocol(format!("gather index {e} outside the tensor"))
            })?;
            let mut c = x.mod_drop(level)?;
            c.add_assign(p)?;
            Ok(c)
        })
        .collect()
}

fn take_tensor(tensors: &[Option<Vec<RnsPoly>>], t: usize) -> Result<&Vec<RnsPoly>> {
    tensors
        .get(t)
        .and_then(Option::as_ref)
        .ok_or_else(|| RuntimeError::Protocol(format!("tensor {t} is used before it is computed")))
}

/// One HE op on one half of the ciphertexts: `bias_coeffs` is `Some(B)` for the c0 windows
/// (the plaintext bias goes into c0's B batch coefficients) and `None` for the c1 halves.
fn run_he_op(
    tensors: &mut [Option<Vec<RnsPoly>>],
    op: &HeOp,
    matrix: Option<&crate::plan::LoadedMatrix>,
    bias_coeffs: Option<usize>,
) -> Result<()> {
    let (out_ref, out) = match op {
        HeOp::Linear {
            inputs,
            output,
            name,
            ..
        } => {
            let m =
                matrix.ok_or_else(|| RuntimeError::Protocol(format!("no weights for `{name}`")))?;
            let mut refs: Vec<&RnsPoly> = Vec::new();
            for &i in inputs {
                refs.extend(take_tensor(tensors, i)?.iter());
            }
            let bias = bias_coeffs.map(|coeffs| RowBias {
                values: &m.bias,
                coeffs,
            });
            let mut y = linear_polys(&refs, &m.matrix, bias)?;
            y.par_iter_mut().try_for_each(|c| c.rescale_assign())?;
            (*output, y)
        }
        HeOp::ModDrop {
            input,
            output,
            level,
        } => {
            let x = take_tensor(tensors, *input)?;
            (
                *output,
                x.iter()
                    .map(|c| c.mod_drop(*level))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
    };
    tensors[out_ref] = Some(out);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_mpc_step<C: Channel>(
    setup: &ServerSetup,
    g: &mut Garbler<C>,
    tensors: &mut [Option<Vec<RnsPoly>>],
    b: &MpcBinding,
    masks: &StepMasks,
    handle: Option<GarblerOffline>,
    images: usize,
    report: &mut SessionReport,
) -> Result<()> {
    let public = &setup.plan.public;
    let step = &public.mpc_steps[b.step];
    let sc = &public.circuits[step.circuit];
    let params = &setup.params;
    let meter = Meter::start(g.channel());

    // HE→MPC: mod-drop to q0, re-randomize (the ciphertext no longer carries the weights'
    // linear combination of the client's ciphertexts) and add the uniform mask: both with the
    // pre-made encryption of the mask, whose c1 half went out offline. Send the c0 windows.
    let input = take_tensor(tensors, b.input)?;
    let shared = masked_halves(input, &b.gather, &masks.pre0, 0)?;
    let ch = g.channel_mut();
    ch.set_phase("he2mpc");
    for c in &shared {
        wire::send_poly(ch, c)?;
    }
    ch.flush()?;
    drop(shared);

    // The circuits.
    let n = step.instances * images;
    match handle {
        Some(h) => g.online(h)?,
        None => {
            let bits = garbler_bits(sc, step.instances, images, &masks.shares, &masks.out);
            g.run_streaming(&sc.circuit, n, &bits)?;
        }
    }

    // MPC→HE: the client's encryptions of z = y + offset + r'; remove offset and mask.
    let ch = g.channel_mut();
    ch.set_phase("mpc2he");
    let shift = step.out_scale_bits - public.scale_bits;
    let mut outs = wire::recv_polys(ch, params, step.out_level, images, step.values_out)?;
    outs.par_iter_mut()
        .zip(masks.out.par_iter())
        .try_for_each(|(c, mask)| {
            let sub: Vec<i128> = mask
                .iter()
                .map(|&r| ((r + u128::from(sc.output_offset)) as i128) << shift)
                .collect();
            c.sub_plain(&sub)
        })?;
    tensors[b.output] = Some(outs);
    let ands = sc.circuit.stats().and * n as u64;
    let ots = u64::from(sc.circuit.evaluator_inputs) * n as u64;
    meter.finish(
        g.channel(),
        report,
        format!("mpc:{}", step.name),
        "online",
        ands,
        ots,
    );
    Ok(())
}
