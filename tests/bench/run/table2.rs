//! MP2ML Table 2: ReLU with Yao (the production circuit), CKKS ADD and MULT.

use super::*;

/// One Table 2 ReLU row.
#[derive(Clone, Debug, Default)]
pub struct ReluRow {
    /// ReLUs per session.
    pub n: usize,
    /// Offline seconds (slower party).
    pub offline_s: Stat,
    /// Online seconds (slower party).
    pub online_s: Stat,
    /// Offline MB, both directions.
    pub offline_mb: Stat,
    /// Online MB, both directions.
    pub online_mb: Stat,
}

/// Table 2 figures.
#[derive(Clone, Debug, Default)]
pub struct Table2 {
    /// Q0 of the share circuit.
    pub q0: u128,
    /// Low bits K the circuit truncates.
    pub trunc: u32,
    /// Where q0 came from.
    pub q0_from: String,
    /// AND gates per ReLU.
    pub ands: u64,
    /// Garbler / evaluator input bits and output bits per ReLU.
    pub bits: (usize, usize, usize),
    /// Rows.
    pub relu: Vec<ReluRow>,
    /// CKKS add, seconds per ciphertext.
    pub add_s: Stat,
    /// CKKS ciphertext × scalar, seconds per ciphertext.
    pub mul_s: Stat,
    /// The 54-bit prime.
    pub prime: u64,
}

pub(super) fn tcp_pair() -> BenchResult<(TcpChannel, TcpChannel)> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let t = std::thread::spawn(move || TcpChannel::connect(addr, ChannelConfig::default()));
    let server =
        TcpChannel::accept(&listener, ChannelConfig::default()).map_err(|e| e.to_string())?;
    let client = t
        .join()
        .map_err(|_| "connect thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((server, client))
}

/// One fresh Yao session (base OTs included) of `n` production ReLUs, checked against the
/// plain formula. Returns (offline s, online s, offline MB, online MB).
pub(super) fn relu_once(
    p: &CircuitParams,
    n: usize,
    seed: u64,
) -> BenchResult<(f64, f64, f64, f64)> {
    let sc = relu(p);
    let w = sc.share_bits;
    let mask_bits = sc.mask_bits;
    let z_bits = sc.z_bits() as usize;
    let q0 = p.q0;
    // The circuit's rule (`mp2ml_ir::circuit::activations`, "Truncation"): negative iff
    // ⌊v/2^K⌋ > ⌊h/2^K⌋, else v >> K (v ≤ h, v itself, at K = 0).
    let (k, half_k) = (p.trunc, (q0 / 2) >> p.trunc);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut g, mut e, mut want) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let a = rng.random_range(0..q0);
        let b = rng.random_range(0..q0);
        let r = rng.random_range(0..1u128 << mask_bits);
        g.extend(mp2ml_ir::circuit::to_bits(b, w));
        g.extend(mp2ml_ir::circuit::to_bits(r, mask_bits));
        e.extend(mp2ml_ir::circuit::to_bits(a, w));
        let v = (a + b) % q0;
        want.push(if (v >> k) <= half_k { v >> k } else { 0 } + r);
    }
    let (gch, ech) = tcp_pair()?;
    let c = sc.circuit.clone();
    let server = std::thread::spawn(move || -> Result<Vec<PhaseReport>, MpcError> {
        let mut garbler = Garbler::from_os_rng(gch)?;
        let h = garbler.offline(&c, n, &g)?;
        garbler.online(h)?;
        Ok(garbler.reports().to_vec())
    });
    let mut ev = Evaluator::from_os_rng(ech).map_err(|e| e.to_string())?;
    let h = ev.offline(&sc.circuit, n).map_err(|e| e.to_string())?;
    let out = ev.online(h, &e).map_err(|e| e.to_string())?;
    let gr = server
        .join()
        .map_err(|_| "garbler thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let per = out.len() / n.max(1);
    let got: Vec<u128> = out
        .chunks(per.max(1))
        .map(|c| mp2ml_ir::circuit::from_bits(&c[..z_bits.min(c.len())]))
        .collect();
    if got != want {
        return Err("production ReLU circuit: outputs differ from max(x, 0) + r".into());
    }
    let er = ev.reports();
    let (Some(g0), Some(g1), Some(e0), Some(e1)) = (gr.first(), gr.get(1), er.first(), er.get(1))
    else {
        return Err("missing phase reports".into());
    };
    let secs = |a: &PhaseReport, b: &PhaseReport| a.elapsed.max(b.elapsed).as_secs_f64();
    let mb = |r: &PhaseReport| (r.sent + r.received) as f64 / 1e6;
    Ok((secs(g0, e0), secs(g1, e1), mb(e0), mb(e1)))
}

/// Per-call time of `f`: `reps` samples, each the mean over a ≥ 20 ms batch.
pub(super) fn per_call<T>(reps: usize, mut f: impl FnMut() -> T) -> Stat {
    std::hint::black_box(f());
    let mut v = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let mut iters = 0u32;
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::black_box(f());
            iters += 1;
        }
        v.push(start.elapsed().as_secs_f64() / f64::from(iters));
    }
    Stat::of(&v)
}

pub(super) fn ckks_add_mul(reps: usize) -> BenchResult<(Stat, Stat, u64)> {
    use mp2ml_ckks::{ntt_primes, Params, PublicKey, SecretKey, SecurityLevel};
    let n = 2048;
    let prime = ntt_primes(54, n, 1, &[]).map_err(|e| e.to_string())?[0];
    let params: Arc<Params> =
        Params::new_secure(n, &[prime], SecurityLevel::Bits128).map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(7);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    let m: Vec<i64> = (0..n)
        .map(|_| rng.random_range(-(1 << 30)..(1 << 30)))
        .collect();
    let ct = pk.encrypt(&m, 0, &mut rng).map_err(|e| e.to_string())?;
    let ct2 = pk.encrypt(&m, 0, &mut rng).map_err(|e| e.to_string())?;
    let mut acc = ct.clone();
    let add = per_call(reps, || {
        let _ = acc.add_assign(&ct2);
    });
    let mut acc = ct.clone();
    let mul = per_call(reps, || acc.mul_scalar_assign(-123_456_789));
    Ok((add, mul, prime))
}

/// Table 2 at the share modulus `q0` and truncation `trunc` of a compiled plan's ReLU.
pub(super) fn table2(opts: &Opts, q0: u128, trunc: u32, q0_from: &str) -> BenchResult<Table2> {
    let p = CircuitParams {
        q0,
        trunc,
        sigma: 40,
        style: Default::default(),
    };
    let sc = relu(&p);
    let counts: &[usize] = if opts.quick { &[100] } else { &[1000, 2048] };
    let mut rows = Vec::new();
    for &n in counts {
        relu_once(&p, n, 0)?; // warm-up
        let mut s = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for r in 0..opts.repeats {
            let (a, b, c, d) = relu_once(&p, n, r as u64 + 1)?;
            for (v, x) in s.iter_mut().zip([a, b, c, d]) {
                v.push(x);
            }
        }
        rows.push(ReluRow {
            n,
            offline_s: Stat::of(&s[0]),
            online_s: Stat::of(&s[1]),
            offline_mb: Stat::of(&s[2]),
            online_mb: Stat::of(&s[3]),
        });
        eprintln!("[bench] ReLU x{n}: done");
    }
    let (add_s, mul_s, prime) = ckks_add_mul(opts.repeats.max(3))?;
    let st = sc.circuit.stats();
    let g_bits = (sc.values_in * sc.share_bits + sc.values_out * sc.mask_bits) as usize;
    let e_bits = (sc.values_in * sc.share_bits) as usize;
    Ok(Table2 {
        q0,
        trunc,
        q0_from: q0_from.into(),
        ands: st.and,
        bits: (g_bits, e_bits, (sc.values_out * sc.z_bits()) as usize),
        relu: rows,
        add_s,
        mul_s,
        prime,
    })
}
