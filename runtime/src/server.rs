//! The server's side of a session, in protocol order: handshake; per ciphertext group the
//! offline pass (masks, c1 halves, garbling), then online the input, the HE segments and MPC
//! steps (HE→MPC, circuit, MPC→HE) in plan order, and the output.

use mp2ml_ckks::{linear_polys, os_rng, PublicKey, RnsPoly, RowBias};
use mp2ml_ir::plan::{HeOp, MpcBinding, Segment, TensorRef};
use mp2ml_mpc::{Channel, Garbler, GmwServer};

use rayon::prelude::*;

use crate::backend::{step_circuit, ServerMpc, ServerOffline};
use crate::error::{Inconsistency, Result, RuntimeError};
use crate::he2mpc::{self, ShareModulus, StepMasks};
use crate::mpc2he;
use crate::phase::Phase;
use crate::plan::ServerSetup;
use crate::report::{SessionReport, Step};
use crate::session::{and_gates, groups, offline_first, SessionOptions};
use crate::shares::garbler_bits;
use crate::{handshake, wire};

pub use crate::handshake::Admit;

/// Runs one client session on `ch` to completion.
pub fn serve<C: Channel>(
    setup: &ServerSetup,
    ch: C,
    opts: &SessionOptions,
) -> Result<SessionReport> {
    serve_with(setup, ch, opts, &mut |_| Ok(()))
}

/// [`serve`], with `admit` deciding (after the version, plan and size checks of the hello)
/// whether the session may start: the service's limits (running sessions, memory, batch).
pub fn serve_with<C: Channel>(
    setup: &ServerSetup,
    ch: C,
    opts: &SessionOptions,
    admit: &mut Admit<'_>,
) -> Result<SessionReport> {
    let mut g = Garbler::new(ch, setup.weakened().mpc_rng());
    let mut report = SessionReport {
        role: "server".into(),
        ..Default::default()
    };
    let (images, pk) = report.metered(&mut g, Step::offline("handshake"), |g| {
        handshake::server(setup, g.channel_mut(), opts.mpc, admit)
    })?;
    report.images = images;
    let gs = groups(images, setup.params.n());
    report.groups = gs.len();
    report.offline_first = offline_first(&setup.plan.public, setup.params.n().min(images), opts);
    let mut session = Session {
        setup,
        g,
        gmw: GmwServer::new(setup.weakened().mpc_rng()),
        pk,
        opts,
        report,
        drops: drops_after(&setup.plan),
    };
    for (gi, &b) in gs.iter().enumerate() {
        session.run_group(b, gi)?;
    }
    Ok(session.report)
}

/// One session's state on the server.
struct Session<'a, C: Channel> {
    setup: &'a ServerSetup,
    g: Garbler<C>,
    /// GMW for the steps that run it (fresh randomness, base OTs and triples per session).
    gmw: GmwServer,
    /// The client's public key (for the masks' encryptions).
    pk: PublicKey,
    opts: &'a SessionOptions,
    report: SessionReport,
    /// For each segment, the tensors no later segment reads.
    drops: Vec<Vec<usize>>,
}

/// The server's HE tensors of one group: one half (c1 offline, c0 windows online) per value.
type Tensors = Vec<Option<Vec<RnsPoly>>>;

impl<C: Channel> Session<'_, C> {
    /// One ciphertext group of `images` images.
    fn run_group(&mut self, images: usize, group: usize) -> Result<()> {
        let setup = self.setup;
        if setup.plan.image.is_some() {
            return crate::image::server_group(
                setup,
                &mut self.g,
                &self.pk,
                self.opts,
                &mut self.report,
                &self.drops,
                images,
                group,
            );
        }
        let plan = &setup.plan;
        let public = &plan.public;
        let mut rng = os_rng();
        let q = ShareModulus::of(&public.params)?;

        // Offline: the masks of every step; then the c1 halves of every ciphertext of the
        // group, with the encryptions of the masks and of the output's re-randomization and
        // flooding.
        let mut masks: Vec<StepMasks> = public
            .mpc_steps
            .iter()
            .map(|s| {
                let (_, sc) = step_circuit(public, s, self.opts)?;
                Ok(StepMasks::draw(
                    s,
                    sc,
                    q,
                    images,
                    setup.weakened(),
                    &mut rng,
                ))
            })
            .collect::<Result<_>>()?;
        let (pk, drops) = (&self.pk, &self.drops);
        let out_pre0 = self.report.metered(
            &mut self.g,
            Step::offline(format!("precompute[{group}]")),
            |g| precompute_c1(setup, g.channel_mut(), pk, images, &mut masks, drops),
        )?;

        // Offline: garbling, when the tables fit the budget.
        let first = offline_first(public, images, self.opts);
        let offline_ands = if first {
            and_gates(public, images, self.opts)
        } else {
            0
        };
        let step = Step::offline(format!("offline[{group}]")).gates(offline_ands, 0);
        let (gmw, opts) = (&mut self.gmw, self.opts);
        let mut handles: Vec<Option<ServerOffline>> =
            self.report.metered(&mut self.g, step, |g| {
                let mut mpc = ServerMpc { yao: g, gmw };
                let mut handles = Vec::new();
                if first {
                    for (s, m) in public.mpc_steps.iter().zip(&masks) {
                        let (b, sc) = step_circuit(public, s, opts)?;
                        let bits = garbler_bits(sc, s.instances, images, &m.shares, &m.out);
                        handles.push(Some(mpc.offline(b, sc, s.instances * images, &bits)?));
                    }
                }
                Ok::<_, RuntimeError>(handles)
            })?;

        // Input: the c0 windows of the client's encryptions.
        let mut tensors: Tensors = vec![None; plan.tensors.len()];
        tensors[0] = Some(self.report.metered(
            &mut self.g,
            Step::online(format!("input[{group}]")),
            |g| {
                let ch = g.channel_mut();
                Phase::Input.enter(ch);
                wire::recv_polys(
                    ch,
                    &setup.params,
                    public.input.level,
                    images,
                    plan.tensors[0].len(),
                )
            },
        )?);

        // The segments in plan order.
        for (si, seg) in plan.segments.iter().enumerate() {
            match seg {
                Segment::He(he) => {
                    let step = Step::online(format!("he:{}", he.name));
                    self.report.metered(&mut self.g, step, |_| {
                        for (oi, op) in he.ops.iter().enumerate() {
                            run_he_op(
                                &mut tensors,
                                op,
                                setup.matrices[si][oi].as_ref(),
                                Some(images),
                            )?;
                        }
                        Ok::<_, RuntimeError>(())
                    })?;
                }
                Segment::Mpc(b) => {
                    let handle = handles.get_mut(b.step.index()).and_then(Option::take);
                    let m = &masks[b.step.index()];
                    self.run_mpc_step(&mut tensors, b, m, handle, images)?;
                }
            }
            free(&mut tensors, &self.drops[si]);
        }

        // Output: add the pre-made re-randomization and flooding to every output window, send.
        self.report
            .metered(&mut self.g, Step::online(format!("output[{group}]")), |g| {
                let out = take_tensor(&tensors, plan.output_tensor)?;
                let ch = g.channel_mut();
                Phase::Output.enter(ch);
                he2mpc::server_send(ch, out, None, &out_pre0, public.output.level)
            })
    }

    /// One MPC step online: HE→MPC, the circuit, MPC→HE.
    fn run_mpc_step(
        &mut self,
        tensors: &mut Tensors,
        b: &MpcBinding,
        masks: &StepMasks,
        handle: Option<ServerOffline>,
        images: usize,
    ) -> Result<()> {
        let setup = self.setup;
        let public = &setup.plan.public;
        let step = &public.mpc_steps[b.step.index()];
        let (backend, sc) = step_circuit(public, step, self.opts)?;
        let n = step.instances * images;
        let ands = sc.circuit.stats().and * n as u64;
        let ots = u64::from(sc.circuit.evaluator_inputs) * n as u64;
        let metered = Step::online(format!("mpc:{}", step.name)).gates(ands, ots);
        let gmw = &mut self.gmw;
        let out = self.report.metered(&mut self.g, metered, |g| {
            // HE→MPC: mod-drop to Q0 (level k − 1), re-randomize and mask with the pre-made
            // encryption of the mask, whose c1 half went out offline; send the c0 windows.
            let input = take_tensor(tensors, b.input)?;
            let ch = g.channel_mut();
            Phase::He2Mpc.enter(ch);
            let level = ShareModulus::of(&public.params)?.level;
            he2mpc::server_send(ch, input, Some(&b.gather), &masks.pre0, level)?;

            // The circuits.
            ServerMpc { yao: g, gmw }.online(backend, handle, sc, n, || {
                garbler_bits(sc, step.instances, images, &masks.shares, &masks.out)
            })?;

            // MPC→HE: the client's encryptions of z = y + offset + r'; remove offset and mask.
            let ch = g.channel_mut();
            Phase::Mpc2He.enter(ch);
            let shift = step.out_scale_bits - public.scale_bits;
            mpc2he::server_unmask(ch, &setup.params, step, sc, shift, images, &masks.out)
        })?;
        tensors[b.output.index()] = Some(out);
        Ok(())
    }
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
    Phase::Precompute.enter(ch);
    let mut tensors: Tensors = vec![None; plan.tensors.len()];
    let input_seeds = wire::recv_seeds(ch, plan.tensors[0].len())?;
    tensors[0] = Some(mpc2he::server_expand(
        params,
        &input_seeds,
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
                    .get_mut(b.step.index())
                    .ok_or(Inconsistency::StepOutOfRange { step: b.step })?;
                let input = take_tensor(&tensors, b.input)?;
                let level = ShareModulus::of(&public.params)?.level;
                he2mpc::server_offline(
                    ch,
                    pk,
                    images,
                    m,
                    input,
                    &b.gather,
                    level,
                    setup.weakened(),
                )?;
                let step = &public.mpc_steps[b.step.index()];
                let seeds = step_seeds
                    .get_mut(b.step.index())
                    .and_then(Option::take)
                    .ok_or(Inconsistency::StepUsedTwice { step: b.step })?;
                tensors[b.output.index()] =
                    Some(mpc2he::server_expand(params, &seeds, step.out_level)?);
            }
        }
        free(&mut tensors, &drops[si]);
    }
    let out = take_tensor(&tensors, plan.output_tensor)?;
    let out0 = he2mpc::server_output_offline(
        ch,
        pk,
        images,
        out,
        public.output.level,
        public.output.flood_bits,
        setup.weakened(),
    )?;
    ch.flush()?;
    Ok(out0)
}

/// For each segment, the tensors to drop after it: those no later segment reads (the output
/// tensor is kept).
fn drops_after(plan: &mp2ml_ir::plan::ServerPlan) -> Vec<Vec<usize>> {
    let mut last = vec![0usize; plan.tensors.len()];
    for (si, seg) in plan.segments.iter().enumerate() {
        let reads: Vec<TensorRef> = match seg {
            Segment::He(he) => he
                .ops
                .iter()
                .flat_map(|op| match op {
                    HeOp::Linear { inputs, .. } | HeOp::PolyLinear { inputs, .. } => inputs.clone(),
                    HeOp::ModDrop { input, .. } => vec![*input],
                })
                .collect(),
            Segment::Mpc(b) => vec![b.input],
        };
        for t in reads {
            if let Some(l) = last.get_mut(t.index()) {
                *l = si;
            }
        }
    }
    let mut drops = vec![Vec::new(); plan.segments.len()];
    for (t, &l) in last.iter().enumerate() {
        if t != plan.output_tensor.index() {
            if let Some(d) = drops.get_mut(l) {
                d.push(t);
            }
        }
    }
    drops
}

/// Frees the tensors listed in `drops` (after the segment they were last read in).
fn free(tensors: &mut Tensors, drops: &[usize]) {
    for &t in drops {
        if let Some(x) = tensors.get_mut(t) {
            *x = None;
        }
    }
}

fn take_tensor(tensors: &[Option<Vec<RnsPoly>>], t: TensorRef) -> Result<&Vec<RnsPoly>> {
    tensors
        .get(t.index())
        .and_then(Option::as_ref)
        .ok_or(RuntimeError::Inconsistent(
            Inconsistency::TensorNotComputed { tensor: t },
        ))
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
            let m = matrix.ok_or_else(|| Inconsistency::NoWeights { op: name.clone() })?;
            let mut refs: Vec<&RnsPoly> = Vec::new();
            for &i in inputs {
                refs.extend(take_tensor(tensors, i)?.iter());
            }
            let bias = bias_coeffs.map(|coeffs| RowBias {
                values: &m.bias,
                coeffs,
                factor: Some(&m.bias_factor),
            });
            let mut y = linear_polys(&refs, &m.matrix, bias)?;
            y.par_iter_mut().try_for_each(|c| c.rescale_assign())?;
            (*output, y)
        }
        HeOp::PolyLinear { name, .. } => {
            return Err(Inconsistency::NoWeights { op: name.clone() }.into());
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
    tensors[out_ref.index()] = Some(out);
    Ok(())
}
