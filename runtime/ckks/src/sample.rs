//! Samplers: uniform residues, ternary secrets, centered-binomial errors, flooding noise.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore};

use crate::arith::Modulus;

/// Parameter η of the centered binomial error distribution: e = Σ_{i<η} (a_i − b_i) with
/// independent fair bits, so Var(e) = η/2 = 10.5, σ ≈ 3.24 (the HE standard's σ ≈ 3.2),
/// |e| ≤ η. It is the usual constant-time stand-in for the rounded Gaussian.
pub const CBD_ETA: u32 = 21;

/// Standard deviation of one error coefficient, √(η/2).
pub fn error_std_dev() -> f64 {
    (f64::from(CBD_ETA) / 2.0).sqrt()
}

/// A fresh ChaCha20 generator seeded from the operating system.
pub fn os_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_os_rng()
}

/// N uniform ternary coefficients in {−1, 0, 1}: 2-bit chunks, rejecting the value 3.
pub(crate) fn ternary<R: CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<i8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut word = rng.next_u64();
        for _ in 0..32 {
            let v = (word & 3) as i8;
            word >>= 2;
            if v != 3 && out.len() < n {
                out.push(v - 1);
            }
        }
    }
    out
}

/// N centered-binomial error coefficients (see [`CBD_ETA`]).
pub(crate) fn cbd<R: CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<i8> {
    let mask = (1u64 << CBD_ETA) - 1;
    (0..n)
        .map(|_| {
            let w = rng.next_u64();
            let a = (w & mask).count_ones() as i8;
            let b = ((w >> CBD_ETA) & mask).count_ones() as i8;
            a - b
        })
        .collect()
}

/// Uniform integer in [−2^bits, 2^bits] (bits ≤ 120), by rejection on bits + 2 random bits.
pub(crate) fn uniform_symmetric<R: CryptoRng + ?Sized>(rng: &mut R, bits: u32) -> i128 {
    let range: u128 = (1u128 << (bits + 1)) + 1; // number of values
    let mask: u128 = (1u128 << (bits + 2)) - 1;
    loop {
        let x = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        if x < range {
            return x as i128 - (1i128 << bits);
        }
    }
}

/// Small signed coefficients to residues mod each prime: `out[j·N + k] = v[k] mod q_j`.
pub(crate) fn small_to_rns(v: &[i8], mods: &[Modulus], out: &mut [u64]) {
    let n = v.len();
    for (m, limb) in mods.iter().zip(out.chunks_exact_mut(n)) {
        for (o, &x) in limb.iter_mut().zip(v) {
            *o = if x < 0 {
                m.q - u64::from(x.unsigned_abs())
            } else {
                x as u64
            };
        }
    }
}

/// Expands the uniform polynomial `a` of seeded encryption from a 32-byte seed: limb j comes from
/// ChaCha20(seed) on stream j by rejection sampling on the bit length w of q_j (4-byte draws
/// when w ≤ 32, 8-byte draws otherwise; NTT primes sit just below 2^w, so almost every draw is
/// accepted), so a truncated expansion equals the expansion at a lower level.
pub(crate) fn expand_seed(seed: &[u8; 32], mods: &[Modulus], n: usize) -> Vec<u64> {
    let mut out = vec![0u64; n * mods.len()];
    let mut buf = [0u8; 4096];
    for (j, (m, limb)) in mods.iter().zip(out.chunks_exact_mut(n)).enumerate() {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        rng.set_stream(j as u64);
        let q = m.q;
        let w = 64 - (q - 1).leading_zeros();
        let mask = u64::MAX >> (64 - w);
        let step = if w <= 32 { 4 } else { 8 };
        let mut k = 0;
        while k < n {
            rng.fill_bytes(&mut buf);
            for c in buf.chunks_exact(step) {
                let x = if step == 4 {
                    u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                } else {
                    u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                } & mask;
                if x < q {
                    limb[k] = x;
                    k += 1;
                    if k == n {
                        break;
                    }
                }
            }
        }
    }
    out
}
