//! Word-size modular arithmetic for primes below 2^62.

/// A prime modulus q < 2^62 with precomputed Barrett constants.
///
/// `ratio = floor(2^128 / q)` split into two words; `reduce_u128` follows the classic
/// two-word Barrett reduction: the estimated quotient is at most 2 below the true one, so the
/// remainder computed modulo 2^64 is below 3q < 2^64 and two conditional subtractions finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Modulus {
    pub(crate) q: u64,
    ratio_lo: u64,
    ratio_hi: u64,
}

impl Modulus {
    pub(crate) fn new(q: u64) -> Self {
        // floor(2^128 / q) = floor((2^128 - 1) / q) because q is an odd prime (not a power of 2).
        let ratio = u128::MAX / u128::from(q);
        Modulus {
            q,
            ratio_lo: ratio as u64,
            ratio_hi: (ratio >> 64) as u64,
        }
    }

    /// x mod q for any 128-bit x.
    #[inline(always)]
    pub(crate) fn reduce_u128(&self, x: u128) -> u64 {
        let x0 = x as u64;
        let x1 = (x >> 64) as u64;
        // floor(x * ratio / 2^128), computed modulo 2^64 (enough: see the type's comment).
        let carry = ((u128::from(x0) * u128::from(self.ratio_lo)) >> 64) as u64;
        let t = u128::from(x0) * u128::from(self.ratio_hi) + u128::from(carry);
        let t2 = u128::from(x1) * u128::from(self.ratio_lo) + u128::from(t as u64);
        let qhat = x1
            .wrapping_mul(self.ratio_hi)
            .wrapping_add((t >> 64) as u64)
            .wrapping_add((t2 >> 64) as u64);
        let mut r = x0.wrapping_sub(qhat.wrapping_mul(self.q));
        if r >= self.q {
            r -= self.q;
        }
        if r >= self.q {
            r -= self.q;
        }
        r
    }

    /// a·b mod q for a, b < 2^64.
    #[inline(always)]
    pub(crate) fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(u128::from(a) * u128::from(b))
    }

    #[inline(always)]
    pub(crate) fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.q {
            s - self.q
        } else {
            s
        }
    }

    #[inline(always)]
    pub(crate) fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            a - b
        } else {
            a + self.q - b
        }
    }

    #[inline(always)]
    pub(crate) fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.q - a
        }
    }

    /// Signed integer to its residue in [0, q).
    #[inline(always)]
    pub(crate) fn reduce_i64(&self, x: i64) -> u64 {
        // q < 2^62 fits in i64.
        x.rem_euclid(self.q as i64) as u64
    }

    /// Signed 128-bit integer to its residue in [0, q).
    #[inline(always)]
    pub(crate) fn reduce_i128(&self, x: i128) -> u64 {
        x.rem_euclid(i128::from(self.q)) as u64
    }

    /// Shoup precomputation for multiplying many values by the constant `w < q`.
    #[inline(always)]
    pub(crate) fn shoup(&self, w: u64) -> u64 {
        ((u128::from(w) << 64) / u128::from(self.q)) as u64
    }

    /// x·w mod q using the Shoup constant `ws = shoup(w)`; x < 2^64, result in [0, q).
    #[inline(always)]
    pub(crate) fn mul_shoup(&self, x: u64, w: u64, ws: u64) -> u64 {
        let qhat = ((u128::from(x) * u128::from(ws)) >> 64) as u64;
        // x·w − qhat·q lies in [0, 2q) (Shoup, "NTL: number theory library").
        let r = x.wrapping_mul(w).wrapping_sub(qhat.wrapping_mul(self.q));
        if r >= self.q {
            r - self.q
        } else {
            r
        }
    }

    pub(crate) fn pow(&self, mut base: u64, mut exp: u64) -> u64 {
        let mut acc = 1 % self.q;
        base %= self.q;
        while exp > 0 {
            if exp & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            exp >>= 1;
        }
        acc
    }

    /// Inverse modulo the prime q (Fermat); `a` must be non-zero mod q.
    pub(crate) fn inv(&self, a: u64) -> u64 {
        self.pow(a, self.q - 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp2ml_ir::primes::mul_mod_u64;
    use rand::{RngCore, SeedableRng};

    #[test]
    fn barrett_and_shoup_match_u128_remainder() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for &q in &[
            12289u64,
            (1 << 61) - 1,
            0x3fff_ffff_fffc_0001, // not necessarily prime: Barrett only needs q < 2^62
            1_152_921_504_606_584_833,
        ] {
            let m = Modulus::new(q);
            for _ in 0..10_000 {
                let x = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
                assert_eq!(u128::from(m.reduce_u128(x)), x % u128::from(q));
                let a = rng.next_u64() % q;
                let b = rng.next_u64();
                assert_eq!(m.mul(a, b), mul_mod_u64(a, b, q));
                assert_eq!(m.mul_shoup(b, a, m.shoup(a)), mul_mod_u64(a, b, q));
            }
            assert_eq!(m.reduce_u128(u128::MAX), (u128::MAX % u128::from(q)) as u64);
        }
    }
}
