//! Criterion microbenchmarks of the CKKS primitives (the Markdown tables for the docs come from
//! `benches/ckks.rs`).
//!
//! Run: `cargo bench -p mp2ml-ckks --bench primitives` (short run: append
//! `-- --warm-up-time 1 --measurement-time 2`; one group: append e.g. `-- linear`).
//!
//! * `n2048_1x54`: MP2ML's Table 2 setting (N = 2048, one 54-bit prime): ADD and ct×scalar MULT.
//! * `n4096_3x30`: N = 4096 with three 30-bit primes: encryption, decryption, rescale, the
//!   offline/online halves and serialization.
//! * `linear_100x845`: a dense random 100×845 layer at N = 4096, 3×30 bits, on whole
//!   ciphertexts and on `RnsPoly` halves of width 1 (online c0 window) and 4096 (offline c1);
//!   throughput in multiply-accumulates (rows × columns × coefficients × primes, per half).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use mp2ml_ckks::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

struct Keys {
    params: Arc<Params>,
    sk: SecretKey,
    pk: PublicKey,
    rng: ChaCha20Rng,
    /// A full plaintext: N signed 30-bit coefficients.
    m: Vec<i64>,
}

fn keys(n: usize, bits: u32, count: usize) -> Keys {
    let primes = ntt_primes(bits, n, count, &[]).unwrap();
    let params = Params::new_secure(n, &primes, SecurityLevel::Bits128).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    let m = (0..n)
        .map(|_| rng.random_range(-(1 << 29)..1 << 29))
        .collect();
    Keys {
        params,
        sk,
        pk,
        rng,
        m,
    }
}

/// ADD and ct×scalar MULT at MP2ML's Table 2 parameters.
fn table2_ops(c: &mut Criterion) {
    let Keys { pk, mut rng, m, .. } = keys(2048, 54, 1);
    let ct = pk.encrypt(&m, 0, &mut rng).unwrap();
    let mut acc = pk.encrypt(&m, 0, &mut rng).unwrap();
    let mut g = c.benchmark_group("n2048_1x54");
    g.throughput(Throughput::Elements(2048));
    g.bench_function("add", |b| {
        b.iter(|| acc.add_assign(black_box(&ct)).unwrap())
    });
    g.bench_function("mul_scalar", |b| {
        b.iter(|| acc.mul_scalar_assign(black_box(-123_456_789)))
    });
    g.finish();
}

fn client_ops(c: &mut Criterion) {
    let Keys {
        params,
        sk,
        pk,
        mut rng,
        m,
    } = keys(4096, 30, 3);
    let top = params.max_level();
    let ct = pk.encrypt(&m, top, &mut rng).unwrap();
    let mut g = c.benchmark_group("n4096_3x30");
    g.throughput(Throughput::Elements(4096));
    g.bench_function("encrypt_pk", |b| {
        b.iter(|| pk.encrypt(&m, top, &mut rng).unwrap())
    });
    g.bench_function("encrypt_seeded", |b| {
        b.iter(|| sk.encrypt_seeded(&m, top, &mut rng).unwrap())
    });
    g.bench_function("decrypt", |b| b.iter(|| sk.decrypt(&ct).unwrap()));
    g.bench_function("rescale", |b| {
        b.iter_batched_ref(
            || ct.clone(),
            |x| x.rescale_assign().unwrap(),
            BatchSize::SmallInput,
        )
    });
    let bytes = ct.to_bytes();
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("serialize_round_trip", |b| {
        b.iter(|| Ciphertext::from_bytes(&params, &black_box(&ct).to_bytes()).unwrap())
    });
    g.finish();

    // Halves: windows of width 1 (direct convolution) vs 4096 (NTTs); time per call.
    let mut g = c.benchmark_group("n4096_3x30_halves");
    let seeded = sk.encrypt_seeded(&m, top, &mut rng).unwrap();
    let c1 = C1Half::from_seed(&params, top, seeded.seed()).unwrap();
    for width in [1, 4096] {
        let mw = &m[..width];
        g.bench_with_input(
            BenchmarkId::new("encrypt_seeded_window", width),
            &width,
            |b, &w| b.iter(|| sk.encrypt_seeded_window(mw, top, w, &mut rng).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("encrypt_halves", width),
            &width,
            |b, &w| b.iter(|| pk.encrypt_halves(mw, top, w, &mut rng).unwrap()),
        );
        g.bench_with_input(BenchmarkId::new("c1_times_s", width), &width, |b, &w| {
            b.iter(|| sk.c1_times_s(&c1, w).unwrap())
        });
    }
    g.finish();
}

fn linear_layer(c: &mut Criterion) {
    let (rows, cols, n, limbs) = (100, 845, 4096, 3);
    let Keys {
        params,
        sk,
        mut rng,
        ..
    } = keys(n, 30, limbs);
    let top = params.max_level();
    let dense: Vec<i64> = (0..rows * cols)
        .map(|_| rng.random_range(-(1 << 20)..1 << 20))
        .collect();
    let mat = CsrMatrix::from_dense(rows, cols, &dense).unwrap();
    let x: Vec<i64> = (0..n)
        .map(|_| rng.random_range(-(1 << 10)..1 << 10))
        .collect();
    let cts: Vec<Ciphertext> = (0..cols)
        .map(|_| sk.encrypt(&x, top, &mut rng).unwrap())
        .collect();
    let (c0s, c1s): (Vec<RnsPoly>, Vec<RnsPoly>) = cts
        .iter()
        .map(|ct| {
            let (c0, c1) = ct.clone().into_halves(1).unwrap();
            (c0.into_poly(), c1.into_poly())
        })
        .unzip();
    let macs = (mat.nnz() * limbs) as u64;

    let mut g = c.benchmark_group("linear_100x845");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    let refs: Vec<&Ciphertext> = cts.iter().collect();
    g.throughput(Throughput::Elements(2 * macs * n as u64));
    g.bench_function("ciphertexts", |b| {
        b.iter(|| linear(&refs, &mat, None).unwrap())
    });
    for (width, halves) in [(1, &c0s), (n, &c1s)] {
        let refs: Vec<&RnsPoly> = halves.iter().collect();
        g.throughput(Throughput::Elements(macs * width as u64));
        g.bench_with_input(BenchmarkId::new("halves", width), &refs, |b, refs| {
            b.iter(|| linear_polys(refs, &mat, None).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = table2_ops, client_ops, linear_layer
}
criterion_main!(benches);
