//! NTT-friendly primes: a deterministic Miller–Rabin test for `u64` and a search for the
//! smallest prime `p ≡ 1 (mod 2N)` above a bound.

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(m)) as u64
}

fn pow_mod(mut b: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, b, m);
        }
        b = mul_mod(b, b, m);
        e >>= 1;
    }
    r
}

/// Deterministic primality for all `u64` (Miller–Rabin with the first twelve prime bases,
/// which is exact below 3.3·10^24).
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
    let mut d = n - 1;
    let mut s = 0;
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    'outer: for &a in &BASES {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'outer;
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
    }

    #[test]
    fn ntt_primes() {
        let p = ntt_prime_at_least(1 << 30, 8192, &[]).expect("prime");
        assert!(p >= 1 << 30 && p % 8192 == 1 && is_prime(p));
        let q = ntt_prime_at_least(1 << 30, 8192, &[p]).expect("prime");
        assert!(q > p);
    }
}
