//! Models: compiling, secure runs, the plaintext baseline (tract) and the choice of batch sizes.

use super::*;

/// One secure run's figures.
#[derive(Clone, Debug)]
pub struct RunFig {
    /// Wall seconds of `run_local`.
    pub seconds: f64,
    /// Bytes both directions (client's counters).
    pub bytes: u64,
    /// Peak RSS of the process during the run, MB (both parties).
    pub peak_mb: f64,
    /// Server's report.
    pub server: SessionReport,
    /// Client's report.
    pub client: SessionReport,
}

/// Throughput at one batch size.
#[derive(Clone, Debug)]
pub struct BatchFig {
    /// Images per session.
    pub batch: usize,
    /// Wall seconds per session.
    pub seconds: Stat,
    /// Images per second (batch / median seconds).
    pub images_per_s: f64,
    /// Bytes per image (both directions).
    pub bytes_per_image: f64,
    /// Peak RSS (max over repeats), MB.
    pub peak_mb: f64,
    /// Ciphertext groups.
    pub groups: usize,
}

/// Per-party figures of one two-process session (`mp2ml-run --role server` and `--role client`
/// as two processes over loopback TCP).
#[derive(Clone, Debug)]
pub struct PartyMem {
    /// Server's peak resident memory (VmHWM), bytes.
    pub server_bytes: Option<u64>,
    /// Client's peak resident memory (VmHWM), bytes.
    pub client_bytes: Option<u64>,
    /// Client's wall seconds of the session (connect to output).
    pub seconds: f64,
    /// Client's online seconds (its steps of phase `online`).
    pub online_s: f64,
}

/// A two-process session at one batch size, or why it did not run.
#[derive(Clone, Debug)]
pub struct PartyMemRun {
    /// Images asked for.
    pub batch: usize,
    /// The figures, or the reason they are missing.
    pub result: Result<PartyMem, String>,
}

/// Plaintext (tract) figures.
#[derive(Clone, Debug, Default)]
pub struct Plain {
    /// Accuracy on the test digits.
    pub accuracy: f64,
    /// Seconds per image at batch 1.
    pub latency_s: Stat,
    /// Images per second at batch 1000.
    pub images_per_s: f64,
    /// Batch of that figure.
    pub batch: usize,
}

/// Everything about one model.
#[derive(Clone, Debug)]
pub struct ModelFig {
    /// Model name.
    pub name: String,
    /// Ring dimension, moduli bits, security.
    pub params: String,
    /// N.
    pub n: usize,
    /// AND gates per image.
    pub ands_per_image: u64,
    /// Compile seconds.
    pub compile_s: f64,
    /// Secure accuracy on the test digits (argmax vs. labels).
    pub accuracy: f64,
    /// Images the accuracy (and the plaintext baseline) is over: the first `images` test digits.
    pub images: usize,
    /// Test digits available.
    pub test_digits: usize,
    /// Why only the first `images` digits: `AND-gate budget`, `quick mode` (empty: all).
    pub digits_why: String,
    /// Agreement of secure and plaintext predicted classes.
    pub agreement: f64,
    /// Batch-1 latency (seconds per session).
    pub latency_s: Stat,
    /// Online part of the batch-1 latency: the client's steps of phase `online`.
    pub latency_online_s: Stat,
    /// A batch-1 run (for the time split).
    pub b1: RunFig,
    /// A best-batch run (for the time split).
    pub best: RunFig,
    /// Throughput per batch size.
    pub batches: Vec<BatchFig>,
    /// Plaintext baseline.
    pub plain: Plain,
    /// Per-party peak memory: two-process sessions at batch 1 and at the largest batch.
    pub party_mem: Vec<PartyMemRun>,
}

impl ModelFig {
    /// The batch with the highest throughput.
    pub fn best_batch(&self) -> Option<&BatchFig> {
        self.batches
            .iter()
            .max_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s))
    }
}

pub(super) fn compile_model(onnx: &Path, work: &Path) -> BenchResult<(PathBuf, f64)> {
    compile_model_for(onnx, work, &Default::default())
}

/// `onnx` compiled for `network` into `work`: the plan path and the compile seconds.
pub fn compile_model_for(
    onnx: &Path,
    work: &Path,
    network: &mp2ml_ir::plan::NetworkProfile,
) -> BenchResult<(PathBuf, f64)> {
    let name = onnx
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let start = Instant::now();
    let imported = import_file(onnx, &ImportOptions::default()).map_err(|d| format!("{d}"))?;
    let weights = format!("{name}.weights.bin");
    // Calibrated on the bundled training digits (not the test digits), as the demo does.
    let calib = onnx.with_file_name("mnist_calib.npy");
    let options = Options {
        calibration: calib.exists().then_some(calib),
        network: *network,
        ..Options::default()
    };
    let out = compile_graph(&imported.graph, &name, &weights, &options)
        .map_err(|e| e.render(&onnx.display().to_string(), &imported.listing))?;
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let plan = work.join(format!("{name}.ron"));
    write_all(&out.compiled, &plan).map_err(|e| format!("{e:?}"))?;
    Ok((plan, start.elapsed().as_secs_f64()))
}

/// The first `count` digits, tiled when `count` exceeds the test set.
pub(super) fn tile(x: &[f32], per: usize, count: usize) -> Batch {
    let have = x.len() / per;
    let mut data = Vec::with_capacity(count * per);
    for i in 0..count {
        let j = i % have;
        data.extend_from_slice(&x[j * per..(j + 1) * per]);
    }
    Batch {
        images: count,
        data,
    }
}

pub(super) fn secure_run(setup: &ServerSetup, batch: &Batch) -> BenchResult<(RunFig, Vec<usize>)> {
    let opts = SessionOptions {
        timeout: Duration::from_secs(600),
        ..SessionOptions::default()
    };
    let reset = reset_peak_rss();
    let start = Instant::now();
    let (out, crep, srep) = run_local(setup, batch, &opts).map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let peak_mb = if reset { peak_rss_mb() } else { f64::NAN };
    Ok((
        RunFig {
            seconds,
            bytes: crep.bytes(None),
            peak_mb,
            server: srep,
            client: crep,
        },
        out.classes,
    ))
}

pub(super) fn tract_plain(
    model_path: &Path,
    x: &[f32],
    per: usize,
    shape: &[usize],
    labels: &[i64],
    opts: &Opts,
) -> BenchResult<Plain> {
    use tract_onnx::prelude::*;
    let te = |e: TractError| format!("tract: {e:?}");
    let build = |b: usize| -> BenchResult<_> {
        let mut fact = vec![b];
        fact.extend(shape);
        tract_onnx::onnx()
            .model_for_path(model_path)
            .and_then(|m| m.with_input_fact(0, f32::fact(&fact).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(te)
    };
    let images = x.len() / per;
    let one = build(1)?;
    let mut fact1 = vec![1usize];
    fact1.extend(shape);
    let mut correct = 0usize;
    let mut lat = Vec::new();
    let mut classes = Vec::new();
    for (i, img) in x.chunks(per).enumerate() {
        let t = Tensor::from_shape(&fact1, img).map_err(te)?;
        let s = Instant::now();
        let r = one.run(tvec!(t.into())).map_err(te)?;
        lat.push(s.elapsed().as_secs_f64());
        let v: Vec<f32> = r[0]
            .to_plain_array_view::<f32>()
            .map_err(te)?
            .iter()
            .copied()
            .collect();
        let c = argmax(&v);
        classes.push(c);
        if labels.get(i).is_some_and(|&l| l == c as i64) {
            correct += 1;
        }
    }
    let batch = images;
    let big = build(batch)?;
    let mut fact = vec![batch];
    fact.extend(shape);
    let t = Tensor::from_shape(&fact, &x[..batch * per]).map_err(te)?;
    let mut tp = Vec::new();
    for _ in 0..opts.repeats.max(3) {
        let s = Instant::now();
        big.run(tvec!(t.clone().into())).map_err(te)?;
        tp.push(s.elapsed().as_secs_f64());
    }
    Ok(Plain {
        accuracy: correct as f64 / images.max(1) as f64,
        latency_s: Stat::of(&lat),
        images_per_s: batch as f64 / Stat::of(&tp).med,
        batch,
    })
}

pub(super) fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

pub(super) fn plain_classes(
    model_path: &Path,
    x: &[f32],
    per: usize,
    shape: &[usize],
) -> BenchResult<Vec<usize>> {
    use tract_onnx::prelude::*;
    let te = |e: TractError| format!("tract: {e:?}");
    let b = x.len() / per;
    let mut fact = vec![b];
    fact.extend(shape);
    let m = tract_onnx::onnx()
        .model_for_path(model_path)
        .and_then(|m| m.with_input_fact(0, f32::fact(&fact).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(te)?;
    let t = Tensor::from_shape(&fact, x).map_err(te)?;
    let r = m.run(tvec!(t.into())).map_err(te)?;
    let v: Vec<f32> = r[0]
        .to_plain_array_view::<f32>()
        .map_err(te)?
        .iter()
        .copied()
        .collect();
    Ok(v.chunks(v.len() / b.max(1)).map(argmax).collect())
}

pub(super) fn bench_model(
    opts: &Opts,
    name: &str,
    x: &[f32],
    labels: &[i64],
) -> BenchResult<ModelFig> {
    let onnx = opts.models_dir.join(format!("{name}.onnx"));
    let (plan, compile_s) = compile_model(&onnx, &opts.work)?;
    let setup = load_server(&plan, 128).map_err(|e| e.to_string())?;
    let shape = setup.plan.public.input.shape.clone();
    let per: usize = shape.iter().product();
    let n = setup.params.n();
    let cp = &setup.plan.public.params;
    let bits: Vec<String> = cp
        .moduli
        .iter()
        .map(|&q| (64 - q.leading_zeros()).to_string())
        .collect();
    let params = format!(
        "N={} log q={} ({}-bit security)",
        n,
        bits.join("+"),
        cp.security_bits
    );
    let ands_per_image: u64 = setup
        .plan
        .public
        .mpc_steps
        .iter()
        .map(|s| {
            setup
                .plan
                .public
                .circuit(s.circuit)
                .ok()
                .map_or(0, |c| c.circuit.stats().and)
                * s.instances as u64
        })
        .sum();
    let total = x.len() / per;
    let plan_b = plan_batches(opts, name, total, n, ands_per_image);
    let images = plan_b.images;
    let xs = &x[..images * per];
    let sizes = plan_b.sizes.clone();
    eprintln!(
        "[bench] {name}: {ands_per_image} AND/image; {images} of {total} digits; batches {sizes:?}"
    );

    // Throughput against batch size. Batch 1 is also the latency (a different digit each
    // repeat); the first session over all `images` digits gives the accuracy.
    let mut batches = Vec::new();
    let mut best_run: Option<RunFig> = None;
    let mut b1: Option<RunFig> = None;
    let mut lat = Vec::new();
    let mut lat_online = Vec::new();
    let mut classes: Vec<usize> = Vec::new();
    // Warm-up. A slow one (a model with a large fixed cost per session) is also the first
    // batch-1 run: first-session effects are negligible beside it.
    let warm = secure_run(&setup, &tile(xs, per, 1))?;
    let mut warm = (warm.0.seconds > WARM_COUNTS_S).then_some(warm);
    for &b in &sizes {
        let reps = if b > images {
            1
        } else if b >= 1000 {
            opts.repeats.clamp(1, 3)
        } else {
            opts.repeats
        };
        let mut secs = Vec::new();
        let mut bytes = 0u64;
        let mut peak = 0f64;
        let mut groups = 0;
        let mut first = None;
        for r in 0..reps {
            let (f, cls) = match warm.take_if(|_| b == 1) {
                Some(w) => w,
                None if b == 1 => secure_run(&setup, &tile(&xs[(r % images) * per..], per, 1))?,
                None => secure_run(&setup, &tile(xs, per, b))?,
            };
            if b == images && classes.is_empty() {
                classes = cls;
            }
            if b == 1 {
                lat.push(f.seconds);
                lat_online.push(f.client.seconds(Some("online")));
                b1.get_or_insert(f.clone());
            }
            secs.push(f.seconds);
            bytes = f.bytes;
            peak = peak.max(f.peak_mb);
            groups = f.server.groups;
            first.get_or_insert(f);
            // Enough of this batch size: at least one run, stop once past the time budget.
            if secs.iter().sum::<f64>() > opts.batch_seconds {
                break;
            }
        }
        let st = Stat::of(&secs);
        let ips = b as f64 / st.med;
        if best_run
            .as_ref()
            .is_none_or(|r| (r.server.images as f64 / r.seconds) < ips)
        {
            best_run = first;
        }
        batches.push(BatchFig {
            batch: b,
            seconds: st,
            images_per_s: ips,
            bytes_per_image: bytes as f64 / b as f64,
            peak_mb: peak,
            groups,
        });
        eprintln!(
            "[bench] {name}: batch {b}: {ips:.1} images/s ({} runs, {:.1} s)",
            st.n,
            secs.iter().sum::<f64>()
        );
    }
    let best = best_run.ok_or("no batches")?;
    let b1 = b1.ok_or("no batch-1 session")?;
    let correct = classes
        .iter()
        .zip(labels)
        .filter(|(&c, &l)| c as i64 == l)
        .count();
    let plain_cls = plain_classes(&onnx, xs, per, &shape)?;
    let agree = classes
        .iter()
        .zip(&plain_cls)
        .filter(|(a, b)| a == b)
        .count();
    eprintln!(
        "[bench] {name}: accuracy {:.2}% over {images}",
        100.0 * correct as f64 / images as f64
    );
    let plain = tract_plain(&onnx, xs, per, &shape, labels, opts)?;

    // Per-party peak memory: two processes, at batch 1 and at the largest batch whose session
    // fits the time limit. The server setup is dropped first (its memory back to the system).
    drop(setup);
    let mut party_mem = Vec::new();
    let big = mem_batch(&batches, plan_b.mem_batch, opts.batch_seconds);
    let mem_batches: Vec<usize> = [1, big]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for b in mem_batches {
        let result =
            find_runner(opts).and_then(|runner| two_process(&runner, &plan, xs, per, &shape, b));
        match &result {
            Ok(m) => eprintln!(
                "[bench] {name}: two processes, batch {b}: server {:.0} MB, client {:.0} MB, {:.2} s",
                m.server_bytes.map_or(f64::NAN, |v| v as f64 / 1e6),
                m.client_bytes.map_or(f64::NAN, |v| v as f64 / 1e6),
                m.seconds
            ),
            Err(e) => eprintln!("[bench] {name}: two processes, batch {b}: {e}"),
        }
        party_mem.push(PartyMemRun { batch: b, result });
    }
    Ok(ModelFig {
        name: name.into(),
        params,
        n,
        ands_per_image,
        compile_s,
        accuracy: correct as f64 / images as f64,
        images,
        test_digits: total,
        digits_why: plan_b.why.clone(),
        agreement: agree as f64 / images as f64,
        latency_s: Stat::of(&lat),
        latency_online_s: Stat::of(&lat_online),
        b1,
        best,
        batches,
        plain,
        party_mem,
    })
}

/// A warm-up session slower than this counts as the first batch-1 run.
pub(super) const WARM_COUNTS_S: f64 = 5.0;

/// The batch of the second two-process session: the largest batch ≤ `cap` whose one-process
/// session took at most `limit_s` (median), or, when the largest took longer, the largest power
/// of two whose time, predicted linearly between the batch-1 and the largest session, fits.
pub fn mem_batch(batches: &[BatchFig], cap: usize, limit_s: f64) -> usize {
    let within: Vec<&BatchFig> = batches.iter().filter(|b| b.batch <= cap).collect();
    let Some(largest) = within.iter().max_by_key(|b| b.batch) else {
        return 1;
    };
    if largest.seconds.med <= limit_s {
        return largest.batch;
    }
    let measured = within
        .iter()
        .filter(|b| b.seconds.med <= limit_s)
        .map(|b| b.batch)
        .max()
        .unwrap_or(1);
    let t1 = within
        .iter()
        .find(|b| b.batch == 1)
        .map_or(0.0, |b| b.seconds.med);
    let slope = (largest.seconds.med - t1) / (largest.batch.max(2) - 1) as f64;
    let mut p = 1usize;
    while p * 2 < largest.batch && t1 + slope * (p * 2 - 1) as f64 <= limit_s {
        p *= 2;
    }
    measured.max(p)
}

/// What a model runs under the AND-gate budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Test digits used (accuracy, throughput, plaintext baseline): the first `images`.
    pub images: usize,
    /// Batch sizes of the throughput sessions, ascending; 1 and `images` always.
    pub sizes: Vec<usize>,
    /// The largest batch of the two-process (per-party memory) session.
    pub mem_batch: usize,
    /// Why `images` is below the test set: `AND-gate budget`, `quick mode`, or empty.
    pub why: String,
}

/// Digits, batch sizes and the two-process batch of a model with `ands` AND gates per image,
/// `total` test digits and ring dimension `n`, under `opts.budget_ands` AND gates per session:
/// the first ⌊budget / ands⌋ digits (all if they fit); intermediate batches 16, 64, 256 only
/// when one session costs at most a sixteenth of the budget; CryptoNets' tiled batches (beyond the
/// test set, up to N) when within the budget.
pub fn plan_batches(opts: &Opts, name: &str, total: usize, n: usize, ands: u64) -> BatchPlan {
    let budget = opts.budget_ands.max(1.0);
    let cost = |b: usize| b as f64 * ands as f64;
    let fit = if ands == 0 {
        total
    } else {
        ((budget / ands as f64).floor() as usize).max(1)
    };
    let cap = if opts.quick { 200 } else { total };
    let images = total.min(fit).min(cap).max(1);
    let mids: &[usize] = if opts.quick { &[16] } else { &[16, 64, 256] };
    let mut sizes = vec![1, images];
    sizes.extend(
        mids.iter()
            .copied()
            .filter(|&b| b < images && cost(b) <= budget / 16.0),
    );
    if !opts.quick && name == "cryptonets_relu" {
        // Beyond the test set (digits tiled), up to one full ciphertext group of N images.
        sizes.extend(
            opts.tiles
                .iter()
                .copied()
                .filter(|&t| t > images && t <= n && cost(t) <= budget),
        );
    }
    sizes.sort_unstable();
    sizes.dedup();
    let mem_batch = sizes
        .iter()
        .copied()
        .filter(|&b| cost(b) <= budget)
        .max()
        .unwrap_or(1);
    let why = if images >= total {
        String::new()
    } else if fit < total && fit <= cap {
        "AND-gate budget".into()
    } else {
        "quick mode".into()
    };
    BatchPlan {
        images,
        sizes,
        mem_batch,
        why,
    }
}
