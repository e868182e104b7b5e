//! CKKS engine benchmark: prints a Markdown table.
//!
//! Run with `cargo bench -p mp2ml-ckks --bench ckks`. Single-core figures run inside a one-thread
//! rayon pool.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use mp2ml_ckks::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Time per call: the minimum over batches (each ≥ 20 ms or one call) of the batch mean,
/// repeated until `min` has elapsed. Taking the minimum filters out preemption on a shared,
/// loaded machine.
fn time<T>(min: Duration, mut f: impl FnMut() -> T) -> Duration {
    black_box(f());
    let start = Instant::now();
    let mut best = Duration::MAX;
    while start.elapsed() < min {
        let b = Instant::now();
        let mut iters = 0u32;
        while b.elapsed() < Duration::from_millis(20) {
            black_box(f());
            iters += 1;
        }
        best = best.min(b.elapsed() / iters);
    }
    best
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn memory_bandwidth() {
    let len = 32 << 20; // 32 Mi u64 = 256 MiB
    let src: Vec<u64> = (0..len as u64).collect();
    let mut dst = vec![0u64; len];
    let t = time(Duration::from_millis(500), || {
        dst.copy_from_slice(&src);
        dst[7]
    });
    let bytes = (2 * len * 8) as f64; // read + write
    println!(
        "memcpy 256 MiB: {:.1} GB/s (read+write), ",
        bytes / t.as_secs_f64() / 1e9
    );
    let t = time(Duration::from_millis(500), || {
        src.iter().fold(0u64, |a, &x| a.wrapping_add(x))
    });
    println!(
        "stream sum 256 MiB: {:.1} GB/s, i.e. {:.2}e9 u64 words/s",
        (len * 8) as f64 / t.as_secs_f64() / 1e9,
        len as f64 / t.as_secs_f64() / 1e9
    );
}

fn bench(n: usize, bits: &[u32], one: &rayon::ThreadPool, all: &rayon::ThreadPool) {
    let mut moduli = Vec::new();
    for &b in bits {
        let p = ntt_primes(b, n, 1, &moduli).unwrap();
        moduli.push(p[0]);
    }
    let params = Params::new_secure(n, &moduli, SecurityLevel::Bits128).unwrap();
    let top = params.max_level();
    let limbs = top + 1;
    let mut r = ChaCha20Rng::seed_from_u64(1);
    let short = Duration::from_millis(300);

    let keygen = time(short, || {
        let sk = SecretKey::generate(&params, &mut r);
        PublicKey::generate(&sk, &mut r)
    });
    let sk = SecretKey::generate(&params, &mut r);
    let pk = PublicKey::generate(&sk, &mut r);
    let m: Vec<i64> = (0..n)
        .map(|_| r.random_range(-(1 << 30)..(1 << 30)))
        .collect();
    let enc_pk = time(short, || pk.encrypt(&m, top, &mut r).unwrap());
    let enc_sk = time(short, || sk.encrypt_seeded(&m, top, &mut r).unwrap());
    let ct = pk.encrypt(&m, top, &mut r).unwrap();
    let ct2 = pk.encrypt(&m, top, &mut r).unwrap();
    let dec = time(short, || sk.decrypt(&ct).unwrap());
    let dec_q0 = time(short, || sk.decrypt_mod_q0(&ct).unwrap());
    let mut acc = ct.clone();
    let add = time(short, || {
        acc.add_assign(&ct2).unwrap();
        acc.c0()[0]
    });
    let mut acc = ct.clone();
    let mul = time(short, || {
        acc.mul_scalar_assign(-123_456_789);
        acc.c0()[0]
    });
    let rescale = if top >= 1 {
        fmt(time(short, || ct.rescale().unwrap()))
    } else {
        "–".to_string()
    };
    let rerand = time(short, || {
        let mut c = ct.clone();
        c.rerandomize(&pk, &mut r).unwrap();
        c
    });
    let ser = time(short, || ct.to_bytes());
    let bytes = ct.to_bytes();
    let de = time(short, || Ciphertext::from_bytes(&params, &bytes).unwrap());

    // Linear kernel: 64 inputs, 64 rows × 32 non-zeros, weights up to 2^50.
    let inputs: Vec<Ciphertext> = (0..64)
        .map(|_| pk.encrypt(&m, top, &mut r).unwrap())
        .collect();
    let refs: Vec<&Ciphertext> = inputs.iter().collect();
    let (rows, nnz) = (64usize, 32usize);
    let mut row_ptr = vec![0];
    let mut cols = Vec::new();
    let mut weights = Vec::new();
    for _ in 0..rows {
        for _ in 0..nnz {
            cols.push(r.random_range(0..64u32));
            weights.push(r.random_range(-(1i64 << 50)..(1i64 << 50)));
        }
        row_ptr.push(cols.len());
    }
    let mat = CsrMatrix::new(row_ptr, cols, weights, 64).unwrap();
    let macs = (rows * nnz * 2 * n * limbs) as f64;
    let t1 = one.install(|| {
        time(Duration::from_millis(500), || {
            linear(&refs, &mat, None).unwrap()
        })
    });
    let t2 = all.install(|| {
        time(Duration::from_millis(500), || {
            linear(&refs, &mat, None).unwrap()
        })
    });

    let label = format!(
        "N={n} log q={}",
        bits.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("+")
    );
    println!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2}e9 | {:.2}e9 |",
        fmt(keygen),
        fmt(enc_pk),
        fmt(enc_sk),
        fmt(dec),
        fmt(dec_q0),
        fmt(add),
        fmt(mul),
        rescale,
        fmt(rerand),
        fmt(ser),
        fmt(de),
        bytes.len(),
        macs / t1.as_secs_f64() / 1e9,
        macs / t2.as_secs_f64() / 1e9,
    );
}

fn main() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let all = rayon::ThreadPoolBuilder::new().build().unwrap();
    println!(
        "threads for the parallel column: {}",
        all.current_num_threads()
    );
    memory_bandwidth();
    println!();
    println!(
        "| params | keygen (sk+pk) | encrypt pk | encrypt seeded sk | decrypt (CRT) | decrypt mod q0 | add | ct×scalar | rescale | re-randomize | serialize | deserialize | ct bytes | linear MAC/s 1 core | linear MAC/s all cores |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let configs: [(usize, &[u32]); 6] = [
        (2048, &[54]),
        (2048, &[30, 24]),
        (4096, &[54, 54]),
        (4096, &[49, 30, 30]),
        (8192, &[54, 54, 54, 54]),
        (8192, &[60, 50, 50, 50]),
    ];
    for (n, bits) in configs {
        bench(n, bits, &one, &all);
    }
}
