//! Primes: a deterministic Miller–Rabin test for `u64` and a search for the smallest
//! NTT-friendly prime `p ≡ 1 (mod 2N)` above a bound — arithmetic facts (no cryptography) that the
//! compiler's parameter choice and the runtime's CKKS parameter checks share.

/// `a·b mod m` through u128.
pub fn mul_mod_u64(a: u64, b: u64, m: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(m)) as u64
}

/// `base^exp mod m` by square-and-multiply.
pub fn pow_mod_u64(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut acc = 1 % m;
    base %= m;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul_mod_u64(acc, base, m);
        }
        base = mul_mod_u64(base, base, m);
        exp >>= 1;
    }
    acc
}

/// Deterministic Miller–Rabin primality test for 64-bit integers.
///
/// The first twelve primes as bases are a proven witness set for all n < 3.3·10^24 > 2^64.
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for &p in &BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for &a in &BASES {
        let mut x = pow_mod_u64(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod_u64(x, x, n);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// The smallest prime `p ≥ lower` with `p ≡ 1 (mod two_n)`, `p < 2^62`, not in `exclude`.
pub fn ntt_prime_at_least(lower: u64, two_n: u64, exclude: &[u64]) -> Option<u64> {
    if two_n == 0 {
        return None;
    }
    let limit = 1u64 << 62;
    let k = lower.saturating_sub(1).div_ceil(two_n);
    let mut p = k.checked_mul(two_n)?.checked_add(1)?;
    while p < limit {
        if p >= lower && is_prime(p) && !exclude.contains(&p) {
            return Some(p);
        }
        p = p.checked_add(two_n)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miller_rabin_matches_trial_division() {
        let trial = |n: u64| {
            n >= 2
                && (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
        };
        for n in 0..5000 {
            assert_eq!(is_prime(n), trial(n), "{n}");
        }
        assert!(is_prime((1 << 61) - 1));
        assert!(!is_prime(3_215_031_751)); // strong pseudoprime to bases 2, 3, 5, 7
        assert!(!is_prime(((1u64 << 31) - 1) * ((1 << 31) - 1)));
        assert!(is_prime(u64::MAX - 58)); // the largest 64-bit prime
    }

    #[test]
    fn ntt_primes() {
        let p = ntt_prime_at_least(1 << 30, 8192, &[]).expect("prime");
        assert!(p >= 1 << 30 && p % 8192 == 1 && is_prime(p));
        let q = ntt_prime_at_least(1 << 30, 8192, &[p]).expect("prime");
        assert!(q > p);
    }
}
