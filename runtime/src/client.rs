//! The client's side of a session: handshake, encrypted input, share decryption, circuit
//! evaluation, re-encryption of masked outputs, output decryption and post-processing.

use indicatif::{ProgressBar, ProgressStyle};
use mp2ml_ckks::{os_rng, PublicKey, RnsPoly, SecretKey};
use mp2ml_ir::plan::PostProcess;
use mp2ml_mpc::{Channel, Evaluator, EvaluatorOffline};
use rayon::prelude::*;

use crate::error::{Result, RuntimeError};
use crate::plan::ClientSetup;
use crate::report::{Meter, SessionReport};
use crate::session::{groups, offline_first, SessionOptions, MAX_IMAGES};
use crate::shares::{decode_outputs, evaluator_bits};
use crate::wire::{self, Hello, PROTOCOL_VERSION};

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
    if batch.images == 0 || batch.images > MAX_IMAGES || batch.data.len() != batch.images * elems {
        return Err(RuntimeError::Input(format!(
            "expected 1..={MAX_IMAGES} images of {elems} values, got {} values for {} images",
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
    let mut rng = os_rng();
    let sk = SecretKey::generate(&setup.params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    let mut e = Evaluator::new(ch, os_rng());
    let mut report = SessionReport {
        role: "client".into(),
        images: batch.images,
        ..Default::default()
    };

    let meter = Meter::start(e.channel());
    {
        let ch = e.channel_mut();
        ch.set_phase("handshake");
        let hello = Hello {
            version: PROTOCOL_VERSION,
            plan_hash: setup.hash.clone(),
            images: batch.images as u64,
        };
        ch.send_frame(&hello.to_bytes())?;
        ch.flush()?;
        wire::recv_verdict(ch)?;
        wire::send_pk(ch, &pk)?;
    }
    meter.finish(
        e.channel(),
        &mut report,
        "handshake".into(),
        "offline",
        0,
        0,
    );

    let n = setup.params.n();
    let gs = groups(batch.images, n);
    report.groups = gs.len();
    report.offline_first = offline_first(&setup.plan, n.min(batch.images), opts);
    let out_elems: usize = setup.plan.output.shape.iter().product();
    let in_elems: usize = setup.plan.input.shape.iter().product();
    let mut logits = Vec::with_capacity(batch.images * out_elems);
    let mut start = 0;
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
    for (gi, &b) in gs.iter().enumerate() {
        let data = &batch.data[start * in_elems..(start + b) * in_elems];
        let group = GroupCtx {
            data,
            images: b,
            group: gi,
            pb: pb.as_ref(),
        };
        logits.extend(run_group(setup, &mut e, &sk, &group, opts, &mut report)?);
        start += b;
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let output = post_process(setup.plan.output.post, &logits, out_elems);
    Ok((output, report))
}

/// One ciphertext group's data and where to report progress.
struct GroupCtx<'a> {
    data: &'a [f32],
    images: usize,
    group: usize,
    pb: Option<&'a ProgressBar>,
}

fn run_group<C: Channel>(
    setup: &ClientSetup,
    e: &mut Evaluator<C>,
    sk: &SecretKey,
    g: &GroupCtx<'_>,
    opts: &SessionOptions,
    report: &mut SessionReport,
) -> Result<Vec<f32>> {
    let (data, images, group) = (g.data, g.images, g.group);
    let tick = |msg: String| {
        if let Some(pb) = g.pb {
            pb.set_message(msg);
            pb.inc(1);
        }
    };
    let plan = &setup.plan;
    let params = &setup.params;
    let in_scale = f64::from(plan.input.scale_bits).exp2();
    let out_scale = f64::from(plan.output.scale_bits).exp2();

    let meter = Meter::start(e.channel());
    // Encryptions of zero for every ciphertext this group will send (the NTT work); the data
    // is added coefficient-wise when it exists.
    let in_elems: usize = plan.input.shape.iter().product();
    // Each is (seed, c0 window over the batch's coefficients).
    let zeros = |count: usize, level: usize| -> Result<Vec<([u8; 32], RnsPoly)>> {
        (0..count)
            .into_par_iter()
            .map_init(os_rng, |rng, _| {
                sk.encrypt_seeded_window::<i64, _>(&[], level, images, rng)
            })
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    };
    let input_pre = zeros(in_elems, plan.input.level)?;
    let mut step_pre: Vec<Vec<([u8; 32], RnsPoly)>> = plan
        .mpc_steps
        .iter()
        .map(|s| zeros(s.values_out, s.out_level))
        .collect::<Result<_>>()?;
    meter.finish(
        e.channel(),
        report,
        format!("encrypt[{group}]"),
        "offline",
        0,
        0,
    );

    // Offline: send the seeds (c1 of every encryption this group will send); receive the c1 of
    // every ciphertext to decrypt, and compute c1·s over the batch's coefficients.
    let meter = Meter::start(e.channel());
    let ch = e.channel_mut();
    ch.set_phase("precompute");
    wire::send_seeds(ch, input_pre.iter().map(|(seed, _)| seed))?;
    for pre in &step_pre {
        wire::send_seeds(ch, pre.iter().map(|(seed, _)| seed))?;
    }
    ch.flush()?;
    let times_s = |c1: Vec<RnsPoly>| -> Result<Vec<RnsPoly>> {
        c1.par_iter()
            .map(|c| Ok(sk.c1_times_s(c, images)?))
            .collect()
    };
    let n = params.n();
    let mut step_c1_times_s: Vec<Vec<RnsPoly>> = Vec::with_capacity(plan.mpc_steps.len());
    for step in &plan.mpc_steps {
        step_c1_times_s.push(times_s(wire::recv_polys(
            ch,
            params,
            0,
            n,
            step.values_in,
        )?)?);
    }
    let out_elems: usize = plan.output.shape.iter().product();
    let out_c1_times_s = times_s(wire::recv_polys(
        ch,
        params,
        plan.output.level,
        n,
        out_elems,
    )?)?;
    meter.finish(
        e.channel(),
        report,
        format!("precompute[{group}]"),
        "offline",
        0,
        0,
    );

    // Offline: garbled tables and random OTs, when the tables fit the budget.
    let meter = Meter::start(e.channel());
    let mut handles: Vec<Option<EvaluatorOffline>> = Vec::new();
    let mut offline_ands = 0;
    if offline_first(plan, images, opts) {
        for s in &plan.mpc_steps {
            let sc = &plan.circuits[s.circuit];
            handles.push(Some(e.offline(&sc.circuit, s.instances * images)?));
            offline_ands += sc.circuit.stats().and * (s.instances * images) as u64;
        }
    }
    meter.finish(
        e.channel(),
        report,
        format!("offline[{group}]"),
        "offline",
        offline_ands,
        0,
    );
    tick(format!("group {group}: offline done"));

    // Input: element i of every image goes into one ciphertext, image j in coefficient j; only
    // the c0 window over the batch is sent.
    let meter = Meter::start(e.channel());
    let windows: Vec<RnsPoly> = input_pre
        .into_par_iter()
        .enumerate()
        .map(|(i, (_, mut w))| {
            let m: Vec<i64> = (0..images)
                .map(|j| (f64::from(data[j * in_elems + i]) * in_scale).round() as i64)
                .collect();
            w.add_plain(&m)?;
            Ok(w)
        })
        .collect::<Result<_>>()?;
    let ch = e.channel_mut();
    ch.set_phase("input");
    for c in &windows {
        wire::send_poly(ch, c)?;
    }
    ch.flush()?;
    drop(windows);
    meter.finish(
        e.channel(),
        report,
        format!("input[{group}]"),
        "online",
        0,
        0,
    );
    tick(format!("group {group}: input sent"));

    for (si, step) in plan.mpc_steps.iter().enumerate() {
        let meter = Meter::start(e.channel());
        let sc = &plan.circuits[step.circuit];
        // HE→MPC: decrypt the masked c0 windows into this party's shares.
        let ch = e.channel_mut();
        ch.set_phase("he2mpc");
        let windows = wire::recv_polys(ch, params, 0, images, step.values_in)?;
        let shares: Vec<Vec<u64>> = windows
            .par_iter()
            .zip(step_c1_times_s[si].par_iter())
            .map(|(c0, c1s)| Ok(sk.decrypt_halves_mod_q0(c0, c1s)?))
            .collect::<Result<_>>()?;
        drop(windows);
        let bits = evaluator_bits(sc, step.instances, images, &shares);
        let n = step.instances * images;
        let out = match handles.get_mut(si).and_then(Option::take) {
            Some(h) => e.online(h, &bits)?,
            None => e.run_streaming(&sc.circuit, n, &bits)?,
        };
        let z = decode_outputs(sc, step.instances, images, &out)?;
        let shift = step.out_scale_bits - plan.scale_bits;
        // MPC→HE: encrypt the masked results at the next segment's level.
        let cts: Vec<RnsPoly> = std::mem::take(&mut step_pre[si])
            .into_par_iter()
            .zip(z.par_iter())
            .map(|((_, mut w), zo)| {
                // Exact: the plan check bounds z_bits + shift by 126 bits.
                let m: Vec<i128> = zo.iter().map(|&v| (v as i128) << shift).collect();
                w.add_plain(&m)?;
                Ok(w)
            })
            .collect::<Result<_>>()?;
        let ch = e.channel_mut();
        ch.set_phase("mpc2he");
        for c in &cts {
            wire::send_poly(ch, c)?;
        }
        ch.flush()?;
        let ands = sc.circuit.stats().and * n as u64;
        let ots = u64::from(sc.circuit.evaluator_inputs) * n as u64;
        meter.finish(
            e.channel(),
            report,
            format!("mpc:{}", step.name),
            "online",
            ands,
            ots,
        );
        tick(format!("group {group}: {} done", step.name));
    }

    // Output.
    let meter = Meter::start(e.channel());
    let ch = e.channel_mut();
    ch.set_phase("output");
    let windows = wire::recv_polys(ch, params, plan.output.level, images, out_elems)?;
    let dec: Vec<Vec<i128>> = windows
        .par_iter()
        .zip(out_c1_times_s.par_iter())
        .map(|(c0, c1s)| sk.decrypt_halves(c0, c1s))
        .collect::<Result<_, _>>()?;
    let mut logits = vec![0f32; images * out_elems];
    for (i, d) in dec.iter().enumerate() {
        for j in 0..images {
            logits[j * out_elems + i] = (d[j] as f64 / out_scale) as f32;
        }
    }
    meter.finish(
        e.channel(),
        report,
        format!("output[{group}]"),
        "online",
        0,
        0,
    );
    tick(format!("group {group}: output decrypted"));
    Ok(logits)
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
