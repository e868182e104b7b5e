//! Parameters: ring dimension, RNS moduli chain, NTT plans, the security table.

use std::fmt;
use std::sync::Arc;

use tfhe_ntt::prime64::Plan;

use mp2ml_ir::primes::is_prime;
pub use mp2ml_ir::security::{max_log_q, SecurityLevel};

use crate::arith::Modulus;
use crate::error::{Error, Result};

/// Highest number of moduli (levels + 1); the serialization header stores the level in a byte.
pub const MAX_MODULI: usize = 64;

/// Generates `count` distinct primes p ≡ 1 (mod 2n) with exactly `bits` bits
/// (2^(bits−1) < p < 2^bits), searching downwards from 2^bits deterministically and skipping
/// the primes in `exclude`. Works for 2n | p − 1 with `bits` in 12..=62.
pub fn ntt_primes(bits: u32, n: usize, count: usize, exclude: &[u64]) -> Result<Vec<u64>> {
    let two_n = 2 * n as u64;
    if !(12..=62).contains(&bits) || two_n >= (1u64 << (bits - 1)) {
        return Err(Error::InvalidPrimeBits { bits });
    }
    let lower = 1u64 << (bits - 1);
    // Largest candidate ≡ 1 mod 2n strictly below 2^bits (2n divides 2^bits).
    let mut cand = (1u64 << bits) - two_n + 1;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if cand <= lower {
            return Err(Error::PrimeSearchExhausted { bits, n, count });
        }
        if is_prime(cand) && !exclude.contains(&cand) {
            out.push(cand);
        }
        cand -= two_n;
    }
    Ok(out)
}

/// Validated CKKS parameters: ring dimension N and the RNS chain q0, p1, …, pL.
///
/// Level ℓ uses the first ℓ + 1 moduli, Q_ℓ = q0·p1⋯pℓ; the top level is L = `max_level()`.
/// Shared through `Arc`; ciphertexts and keys hold one and refuse to mix with another set.
pub struct Params {
    n: usize,
    log_n: u32,
    moduli: Vec<u64>,
    pub(crate) mods: Vec<Modulus>,
    pub(crate) plans: Vec<Plan>,
    fingerprint: u64,
    /// rescale_inv[l][j] = p_l^{-1} mod q_j for j < l.
    pub(crate) rescale_inv: Vec<Vec<u64>>,
    /// garner_prefix[i][k] = (q_0⋯q_{k−1}) mod q_i for k < i.
    pub(crate) garner_prefix: Vec<Vec<u64>>,
    /// garner_inv[i] = (q_0⋯q_{i−1})^{-1} mod q_i.
    pub(crate) garner_inv: Vec<u64>,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("n", &self.n)
            .field("moduli", &self.moduli)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.moduli == other.moduli
    }
}

impl Params {
    /// Validates N (power of two in 1024..=32768) and the moduli (distinct primes < 2^62,
    /// ≡ 1 mod 2N, at most [`MAX_MODULI`]); modulus 0 is q0. Does not check security: use
    /// [`Params::new_secure`] or [`Params::check_security`].
    pub fn new(n: usize, moduli: &[u64]) -> Result<Arc<Params>> {
        if !n.is_power_of_two() || !(1024..=32768).contains(&n) {
            return Err(Error::InvalidRingDimension { n });
        }
        if moduli.is_empty() {
            return Err(Error::NoModuli);
        }
        if moduli.len() > MAX_MODULI {
            return Err(Error::TooManyModuli {
                count: moduli.len(),
                max: MAX_MODULI,
            });
        }
        let two_n = 2 * n;
        for (index, &modulus) in moduli.iter().enumerate() {
            if modulus >= 1 << 62 {
                return Err(Error::ModulusTooLarge { index, modulus });
            }
            if !is_prime(modulus) {
                return Err(Error::NotPrime { index, modulus });
            }
            if modulus % two_n as u64 != 1 {
                return Err(Error::NotNttFriendly {
                    index,
                    modulus,
                    two_n,
                });
            }
            if moduli[..index].contains(&modulus) {
                return Err(Error::DuplicateModulus { modulus });
            }
        }
        let mut plans = Vec::with_capacity(moduli.len());
        for (index, &modulus) in moduli.iter().enumerate() {
            // A prime ≡ 1 mod 2N always has a primitive 2N-th root, so this cannot fail.
            plans.push(Plan::try_new(n, modulus).ok_or(Error::NotNttFriendly {
                index,
                modulus,
                two_n,
            })?);
        }
        let mods: Vec<Modulus> = moduli.iter().map(|&q| Modulus::new(q)).collect();
        let rescale_inv = (0..moduli.len())
            .map(|l| (0..l).map(|j| mods[j].inv(moduli[l] % moduli[j])).collect())
            .collect();
        let mut garner_prefix = Vec::with_capacity(moduli.len());
        let mut garner_inv = Vec::with_capacity(moduli.len());
        for (i, m) in mods.iter().enumerate() {
            let mut pre = Vec::with_capacity(i);
            let mut acc = 1u64;
            for &q in &moduli[..i] {
                pre.push(acc);
                acc = m.mul(acc, q % m.q);
            }
            garner_prefix.push(pre);
            garner_inv.push(if i == 0 { 1 } else { m.inv(acc) });
        }
        // FNV-1a over N and the moduli: detects a peer using other parameters.
        let mut fingerprint: u64 = 0xcbf2_9ce4_8422_2325;
        for word in std::iter::once(n as u64).chain(moduli.iter().copied()) {
            for byte in word.to_le_bytes() {
                fingerprint ^= u64::from(byte);
                fingerprint = fingerprint.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Ok(Arc::new(Params {
            n,
            log_n: n.trailing_zeros(),
            moduli: moduli.to_vec(),
            mods,
            plans,
            fingerprint,
            rescale_inv,
            garner_prefix,
            garner_inv,
        }))
    }

    /// [`Params::new`] followed by [`Params::check_security`].
    pub fn new_secure(n: usize, moduli: &[u64], security: SecurityLevel) -> Result<Arc<Params>> {
        let p = Params::new(n, moduli)?;
        p.check_security(security)?;
        Ok(p)
    }

    /// Refuses parameters whose total modulus size exceeds the HomomorphicEncryption.org bound
    /// for N at `security`. log2 Q is counted as the sum of the primes' bit lengths (as SEAL
    /// does), which is ≥ the exact log2 Q, so the check errs on the safe side.
    pub fn check_security(&self, security: SecurityLevel) -> Result<()> {
        let max = max_log_q(self.n, security).ok_or(Error::NoSecurityEntry { n: self.n })?;
        let log_q = self.log_q_bits();
        if log_q > max {
            return Err(Error::Insecure {
                n: self.n,
                log_q,
                max_log_q: max,
                security,
            });
        }
        Ok(())
    }

    /// Sum of the moduli's bit lengths (≥ log2 Q_L).
    pub fn log_q_bits(&self) -> u32 {
        self.moduli.iter().map(|q| 64 - q.leading_zeros()).sum()
    }

    /// Ring dimension N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// log2 N.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// The moduli chain, q0 first.
    pub fn moduli(&self) -> &[u64] {
        &self.moduli
    }

    /// The top level L (number of moduli − 1).
    pub fn max_level(&self) -> usize {
        self.moduli.len() - 1
    }

    /// q0.
    pub fn q0(&self) -> u64 {
        self.moduli[0]
    }

    /// Q0 = q_0⋯q_{limbs−1}, the conversion modulus of shares spanning `limbs` primes; an error
    /// unless 1 ≤ `limbs` ≤ L + 1 and Q0 < 2^128.
    pub fn modulus_product(&self, limbs: usize) -> Result<u128> {
        if limbs == 0 || limbs > self.moduli.len() {
            return Err(Error::InvalidLevel {
                level: limbs.wrapping_sub(1),
                max: self.max_level(),
            });
        }
        self.moduli[..limbs]
            .iter()
            .try_fold(1u128, |a, &q| a.checked_mul(u128::from(q)))
            .ok_or(Error::ModulusProductTooWide { limbs })
    }

    /// Residues, modulo each prime of `level`, of F = 2^shift · p_{level−top+1} ⋯ p_level (the
    /// product of the `top` highest primes of the level; `top` = 0 gives 2^shift). A value
    /// encoded times F at `level` returns to its own scale exactly after `top` rescales — the
    /// entry flood's raised scale (docs/ARCHITECTURE.md, "Flooding").
    pub fn factor_residues(&self, level: usize, top: usize, shift: u32) -> Result<Vec<u64>> {
        self.check_level(level)?;
        if top > level {
            return Err(Error::InvalidLevel {
                level: top,
                max: level,
            });
        }
        Ok(self.mods[..=level]
            .iter()
            .map(|md| {
                let mut f = md.reduce_u128(1);
                for _ in 0..shift {
                    f = md.add(f, f);
                }
                for &p in &self.moduli[level + 1 - top..=level] {
                    f = md.mul(f, md.reduce_u128(u128::from(p)));
                }
                f
            })
            .collect())
    }

    /// A 64-bit fingerprint of (N, moduli), written into serialized objects.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// log2 Q_ℓ (exact, as a float).
    pub fn log2_q_level(&self, level: usize) -> f64 {
        self.moduli
            .iter()
            .take(level + 1)
            .map(|&q| (q as f64).log2())
            .sum()
    }

    pub(crate) fn check_level(&self, level: usize) -> Result<()> {
        if level > self.max_level() {
            return Err(Error::InvalidLevel {
                level,
                max: self.max_level(),
            });
        }
        Ok(())
    }

    /// Negacyclic product of two polynomials given as residues modulo prime `limb`, in place
    /// into `a` (coefficient form in and out). Both inputs must be reduced.
    pub(crate) fn mul_limb(&self, limb: usize, a: &mut [u64], b: &[u64]) {
        let plan = &self.plans[limb];
        let mut tb = b.to_vec();
        plan.fwd(a);
        plan.fwd(&mut tb);
        plan.mul_assign_normalize(a, &tb);
        plan.inv(a);
    }

    /// Negacyclic product where `b_ntt` is already forward-transformed, in place into `a`.
    pub(crate) fn mul_limb_ntt(&self, limb: usize, a: &mut [u64], b_ntt: &[u64]) {
        let plan = &self.plans[limb];
        plan.fwd(a);
        plan.mul_assign_normalize(a, b_ntt);
        plan.inv(a);
    }

    /// Forward transform of one limb in place.
    pub(crate) fn fwd_limb(&self, limb: usize, a: &mut [u64]) {
        self.plans[limb].fwd(a);
    }

    /// `acc += a·b` pointwise for NTT-domain limbs (unnormalized; see
    /// [`Params::normalize_inv_limb`]).
    pub(crate) fn mul_acc_limb(&self, limb: usize, acc: &mut [u64], a: &[u64], b: &[u64]) {
        self.plans[limb].mul_accumulate(acc, a, b);
    }

    /// Normalizes an accumulated NTT-domain limb and transforms it back in place.
    pub(crate) fn normalize_inv_limb(&self, limb: usize, a: &mut [u64]) {
        self.plans[limb].normalize(a);
        self.plans[limb].inv(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_generation_is_ntt_friendly_and_sized() {
        for &(bits, n) in &[(54u32, 2048usize), (30, 4096), (62, 32768), (20, 1024)] {
            let ps = ntt_primes(bits, n, 3, &[]).expect("primes");
            for &p in &ps {
                assert!(is_prime(p));
                assert_eq!(p % (2 * n as u64), 1);
                assert_eq!(64 - p.leading_zeros(), bits);
            }
            assert!(ps[0] > ps[1] && ps[1] > ps[2]);
            let more = ntt_primes(bits, n, 1, &ps).expect("primes");
            assert!(!ps.contains(&more[0]));
        }
        assert!(ntt_primes(63, 2048, 1, &[]).is_err());
        assert!(ntt_primes(12, 4096, 1, &[]).is_err());
    }

    #[test]
    fn validation_errors() {
        let p = ntt_primes(40, 2048, 2, &[]).expect("primes");
        assert!(Params::new(2048, &p).is_ok());
        assert_eq!(
            Params::new(3000, &p).unwrap_err(),
            Error::InvalidRingDimension { n: 3000 }
        );
        assert_eq!(
            Params::new(512, &p).unwrap_err(),
            Error::InvalidRingDimension { n: 512 }
        );
        assert_eq!(Params::new(2048, &[]).unwrap_err(), Error::NoModuli);
        assert!(matches!(
            Params::new(2048, &[p[0], p[0]]),
            Err(Error::DuplicateModulus { .. })
        ));
        assert!(matches!(
            Params::new(2048, &[p[0] + 4096]),
            Err(Error::NotPrime { .. })
        ));
        // 12289 = 3·2^12 + 1 is prime and NTT-friendly for N ≤ 2048 but not N = 4096.
        assert!(Params::new(2048, &[12289]).is_ok());
        assert!(matches!(
            Params::new(4096, &[12289]),
            Err(Error::NotNttFriendly { .. })
        ));
        assert!(matches!(
            Params::new(2048, &[(1 << 62) + 1]),
            Err(Error::ModulusTooLarge { .. })
        ));
    }

    #[test]
    fn security_table_and_check() {
        assert_eq!(max_log_q(2048, SecurityLevel::Bits128), Some(54));
        assert_eq!(max_log_q(32768, SecurityLevel::Bits256), Some(476));
        assert_eq!(max_log_q(16384, SecurityLevel::Bits192), Some(305));
        assert_eq!(max_log_q(4000, SecurityLevel::Bits128), None);
        // N = 2048 with a 60-bit Q: refused at 128 bits.
        let q60 = ntt_primes(60, 2048, 1, &[]).expect("primes");
        let err = Params::new_secure(2048, &q60, SecurityLevel::Bits128).unwrap_err();
        assert_eq!(
            err,
            Error::Insecure {
                n: 2048,
                log_q: 60,
                max_log_q: 54,
                security: SecurityLevel::Bits128
            }
        );
        assert!(err.to_string().contains("insecure"));
        // 54 bits at N = 2048 (MP2ML's setting) is accepted at 128 but not 192 bits.
        let q54 = ntt_primes(54, 2048, 1, &[]).expect("primes");
        assert!(Params::new_secure(2048, &q54, SecurityLevel::Bits128).is_ok());
        assert!(Params::new_secure(2048, &q54, SecurityLevel::Bits192).is_err());
        let q = ntt_primes(54, 8192, 4, &[]).expect("primes");
        assert!(Params::new_secure(8192, &q, SecurityLevel::Bits128).is_ok());
        assert!(Params::new_secure(8192, &q, SecurityLevel::Bits192).is_err());
    }
}
