//! The client's side of a session, in protocol order: handshake; per ciphertext group the
//! offline pass (encryptions of zero, c1·s, garbled tables), then online the input, each MPC
//! step (HE→MPC share decryption, circuit, MPC→HE re-encryption) and the output; finally
//! post-processing.

use indicatif::{ProgressBar, ProgressStyle};
use mp2ml_ckks::{os_rng, SecretKey};
use mp2ml_ir::plan::{PostProcess, StepRef};
use mp2ml_mpc::{Channel, Evaluator, GmwClient};

use crate::backend::{step_circuit, ClientMpc, ClientOffline};
use crate::error::{Inconsistency, Result, RuntimeError};
use crate::handshake;
use crate::he2mpc::{self, ShareModulus};
use crate::mpc2he::Pending;
use crate::phase::Phase;
use crate::plan::ClientSetup;
use crate::report::{SessionReport, Step};
use crate::session::{and_gates, groups, offline_first, SessionOptions};
use crate::shares::{decode_outputs, evaluator_bits};

/// A batch of images, image-major: `data[j·elems + i]` is element `i` of image `j`.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Number of images.
    pub images: usize,
    /// Values.
    pub data: Vec<f32>,
}

/// The client's result: outputs after post-processing, image-major.
#[derive(Clone, Debug)]
pub struct ClientOutput {
    /// Decrypted outputs divided by Δ (before post-processing), `[images × out_elems]`.
    pub logits: Vec<f32>,
    /// Post-processed outputs (softmax/sigmoid applied, or argmax indices as f32).
    pub post: Vec<f32>,
    /// Elements per image of `post`.
    pub post_elems: usize,
    /// Predicted class per image (argmax of the logits).
    pub classes: Vec<usize>,
}

/// Checks a batch against the plan: size, finiteness, declared range.
pub fn check_batch(setup: &ClientSetup, batch: &Batch) -> Result<()> {
    let elems: usize = setup.plan.input.shape.iter().product();
    let most = crate::handshake::session_limit(&setup.plan);
    if batch.images == 0 || batch.images > most || batch.data.len() != batch.images * elems {
        return Err(RuntimeError::Input(format!(
            "expected 1..={most} images of {elems} values (the plan's session limit), got {} values for {} images",
            batch.data.len(),
            batch.images
        )));
    }
    if let Some(i) = batch.data.iter().position(|x| !x.is_finite()) {
        return Err(RuntimeError::Input(format!(
            "value {i} (image {}) is not finite",
            i / elems
        )));
    }
    let (lo, hi) = setup.plan.input.range;
    let slack = 1e-6 * (hi - lo).abs().max(1.0);
    if let Some(i) = batch
        .data
        .iter()
        .position(|&x| x < lo - slack || x > hi + slack)
    {
        return Err(RuntimeError::Input(format!(
            "value {} at index {i} (image {}) is outside the range {lo}..{hi} the plan was compiled for; \
             recompile with `mp2mlc --input-range` to widen it",
            batch.data[i],
            i / elems
        )));
    }
    Ok(())
}

/// Runs a session as the client; returns the outputs and the report.
pub fn run_client<C: Channel>(
    setup: &ClientSetup,
    ch: C,
    batch: &Batch,
    opts: &SessionOptions,
) -> Result<(ClientOutput, SessionReport)> {
    check_batch(setup, batch)?;
    let (sk, pk) = handshake::client_keys(setup);
    let mut e = Evaluator::new(ch, os_rng());
    let mut report = SessionReport {
        role: "client".into(),
        images: batch.images,
        ..Default::default()
    };
    report.metered(&mut e, Step::offline("handshake"), |e| {
        handshake::client(setup, e.channel_mut(), batch.images, opts.mpc, &pk)
    })?;

    let n = setup.params.n();
    let gs = groups(batch.images, n);
    report.groups = gs.len();
    report.offline_first = offline_first(&setup.plan, n.min(batch.images), opts);
    let out_elems: usize = setup.plan.output.shape.iter().product();
    let in_elems: usize = setup.plan.input.shape.iter().product();
    let steps_per_group = setup.plan.mpc_steps.len() as u64 + 3;
    let pb = opts.progress.then(|| {
        let pb = ProgressBar::new(steps_per_group * gs.len() as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    });
    let mut session = Session {
        setup,
        e,
        gmw: GmwClient::new(os_rng()),
        sk,
        opts,
        report,
        pb: pb.as_ref(),
    };
    let mut logits = Vec::with_capacity(batch.images * out_elems);
    let mut start = 0;
    for (gi, &b) in gs.iter().enumerate() {
        let data = &batch.data[start * in_elems..(start + b) * in_elems];
        logits.extend(session.run_group(data, b, gi)?);
        start += b;
    }
    let report = session.report;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let output = post_process(setup.plan.output.post, &logits, out_elems);
    Ok((output, report))
}

/// One session's state on the client.
struct Session<'a, C: Channel> {
    setup: &'a ClientSetup,
    e: Evaluator<C>,
    /// GMW for the steps that run it (fresh randomness, base OTs and triples per session).
    gmw: GmwClient,
    sk: SecretKey,
    opts: &'a SessionOptions,
    report: SessionReport,
    /// Where to report progress.
    pb: Option<&'a ProgressBar>,
}

impl<C: Channel> Session<'_, C> {
    fn tick(&self, msg: String) {
        if let Some(pb) = self.pb {
            pb.set_message(msg);
            pb.inc(1);
        }
    }

    /// One ciphertext group: `data` holds its `images` images, image-major.
    fn run_group(&mut self, data: &[f32], images: usize, group: usize) -> Result<Vec<f32>> {
        let setup = self.setup;
        if setup.plan.image.is_some() {
            let logits = crate::image::client_group(
                setup,
                &mut self.e,
                &self.sk,
                self.opts,
                &mut self.report,
                data,
                images,
                group,
            )?;
            self.tick(format!("group {group}: output decrypted"));
            return Ok(logits);
        }
        let plan = &setup.plan;
        let params = &setup.params;
        let sk = &self.sk;
        // The input is quantized at Δ; the rest of its scale is a per-limb factor.
        let in_scale = f64::from(plan.scale_bits).exp2();
        let out_scale = f64::from(plan.output.scale_bits).exp2();
        let in_elems: usize = plan.input.shape.iter().product();
        let out_elems: usize = plan.output.shape.iter().product();

        // Offline: encryptions of zero for every ciphertext this group will send (the NTT
        // work); the data is added coefficient-wise when it exists.
        let (input_pre, mut step_pre) = self.report.metered(
            &mut self.e,
            Step::offline(format!("encrypt[{group}]")),
            |_| {
                let input = Pending::encrypt_zeros(sk, in_elems, plan.input.level, images)?;
                let steps = plan
                    .mpc_steps
                    .iter()
                    .map(|s| {
                        Pending::encrypt_zeros(sk, s.values_out, s.out_level, images).map(Some)
                    })
                    .collect::<Result<Vec<_>>>()?;
                #[cfg(feature = "test-hooks")]
                if let Some(p) = &setup.probe {
                    p.record_noise(input.own_noise(sk)?);
                    for pre in steps.iter().flatten() {
                        p.record_noise(pre.own_noise(sk)?);
                    }
                }
                Ok::<_, RuntimeError>((input, steps))
            },
        )?;

        // Offline: send the seeds (c1 of every encryption this group will send); receive the
        // c1 of every ciphertext to decrypt, and compute c1·s over the batch's coefficients.
        let (step_c1_times_s, out_c1_times_s) = self.report.metered(
            &mut self.e,
            Step::offline(format!("precompute[{group}]")),
            |e| {
                let ch = e.channel_mut();
                Phase::Precompute.enter(ch);
                input_pre.send_seeds(ch)?;
                for pre in step_pre.iter().flatten() {
                    pre.send_seeds(ch)?;
                }
                ch.flush()?;
                let level = ShareModulus::of(&plan.params)?.level;
                let steps = plan
                    .mpc_steps
                    .iter()
                    .map(|s| he2mpc::client_offline(ch, sk, params, level, s.values_in, images))
                    .collect::<Result<Vec<_>>>()?;
                let level = plan.output.level;
                let out = he2mpc::client_offline(ch, sk, params, level, out_elems, images)?;
                Ok::<_, RuntimeError>((steps, out))
            },
        )?;

        // Offline: garbled tables and random OTs, when the tables fit the budget.
        let first = offline_first(plan, images, self.opts);
        let offline_ands = if first {
            and_gates(plan, images, self.opts)
        } else {
            0
        };
        let step = Step::offline(format!("offline[{group}]")).gates(offline_ands, 0);
        let (gmw, opts) = (&mut self.gmw, self.opts);
        let mut handles: Vec<Option<ClientOffline>> =
            self.report.metered(&mut self.e, step, |e| {
                let mut mpc = ClientMpc { yao: e, gmw };
                let mut handles = Vec::new();
                if first {
                    for s in &plan.mpc_steps {
                        let (b, sc) = step_circuit(plan, s, opts)?;
                        handles.push(Some(mpc.offline(b, sc, s.instances * images)?));
                    }
                }
                Ok::<_, RuntimeError>(handles)
            })?;
        self.tick(format!("group {group}: offline done"));

        // Input: element i of every image goes into one ciphertext, image j in coefficient j;
        // only the c0 window over the batch is sent.
        self.report
            .metered(&mut self.e, Step::online(format!("input[{group}]")), |e| {
                // Quantized at Δ, encoded times 2^(input scale − Δ) (Δ·2^K before a circuit),
                // exact per RNS limb.
                let shift = plan.input.scale_bits - plan.scale_bits;
                let factor = params.factor_residues(plan.input.level, 0, shift)?;
                let ch = e.channel_mut();
                Phase::Input.enter(ch);
                input_pre.send(ch, &factor, |i| {
                    (0..images)
                        .map(|j| (f64::from(data[j * in_elems + i]) * in_scale).round() as i64)
                        .collect()
                })
            })?;
        self.tick(format!("group {group}: input sent"));

        // The MPC steps in plan order (the HE segments between them run on the server).
        for (si, step) in plan.mpc_steps.iter().enumerate() {
            let (backend, sc) = step_circuit(plan, step, self.opts)?;
            let n = step.instances * images;
            let ands = sc.circuit.stats().and * n as u64;
            let ots = u64::from(sc.circuit.evaluator_inputs) * n as u64;
            let handle = handles.get_mut(si).and_then(Option::take);
            let pre = step_pre
                .get_mut(si)
                .and_then(Option::take)
                .ok_or(Inconsistency::StepUsedTwice { step: StepRef(si) })?;
            let c1s = &step_c1_times_s[si];
            let metered = Step::online(format!("mpc:{}", step.name)).gates(ands, ots);
            let gmw = &mut self.gmw;
            self.report.metered(&mut self.e, metered, |e| {
                // HE→MPC: decrypt the masked c0 windows into this party's shares.
                let ch = e.channel_mut();
                Phase::He2Mpc.enter(ch);
                let q = ShareModulus::of(&plan.params)?;
                let shares = he2mpc::client_shares(ch, sk, params, q, images, c1s)?;
                #[cfg(feature = "test-hooks")]
                if let Some(p) = &setup.probe {
                    p.record_shares(&shares);
                }

                // The circuit.
                let bits = evaluator_bits(sc, step.instances, images, &shares);
                let out = ClientMpc { yao: e, gmw }.online(backend, handle, sc, n, &bits)?;
                let z = decode_outputs(sc, step.instances, images, &out)?;
                if z.len() != pre.len() {
                    return Err(Inconsistency::CircuitOutputs {
                        step: step.name.clone(),
                        got: z.len(),
                        expected: pre.len(),
                    }
                    .into());
                }

                // MPC→HE: encrypt the masked results z·2^shift at the next segment's level,
                // exact per RNS limb whatever their size.
                let shift = step.out_scale_bits - plan.scale_bits;
                let factor = params.factor_residues(step.out_level, 0, shift)?;
                let ch = e.channel_mut();
                Phase::Mpc2He.enter(ch);
                pre.send(ch, &factor, |o| z[o].clone())
            })?;
            self.tick(format!("group {group}: {} done", step.name));
        }

        // Output.
        let dec =
            self.report
                .metered(&mut self.e, Step::online(format!("output[{group}]")), |e| {
                    let ch = e.channel_mut();
                    Phase::Output.enter(ch);
                    he2mpc::client_output(
                        ch,
                        sk,
                        params,
                        plan.output.level,
                        images,
                        &out_c1_times_s,
                    )
                })?;
        let mut logits = vec![0f32; images * out_elems];
        for (i, d) in dec.iter().enumerate() {
            for j in 0..images {
                logits[j * out_elems + i] = (d[j] as f64 / out_scale) as f32;
            }
        }
        self.tick(format!("group {group}: output decrypted"));
        Ok(logits)
    }
}

/// Applies the plan's post-processing per image.
pub fn post_process(post: PostProcess, logits: &[f32], elems: usize) -> ClientOutput {
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv {
                    (i, v)
                } else {
                    (bi, bv)
                }
            })
            .0
    };
    let classes: Vec<usize> = logits.chunks(elems.max(1)).map(argmax).collect();
    let (post_vals, post_elems) = match post {
        PostProcess::None => (logits.to_vec(), elems),
        PostProcess::Sigmoid => (
            logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect(),
            elems,
        ),
        PostProcess::Softmax => {
            let mut v = Vec::with_capacity(logits.len());
            for row in logits.chunks(elems.max(1)) {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let ex: Vec<f32> = row.iter().map(|&x| (x - m).exp()).collect();
                let s: f32 = ex.iter().sum();
                v.extend(ex.iter().map(|&x| x / s));
            }
            (v, elems)
        }
        PostProcess::ArgMax => (classes.iter().map(|&c| c as f32).collect(), 1),
    };
    ClientOutput {
        logits: logits.to_vec(),
        post: post_vals,
        post_elems,
        classes,
    }
}
