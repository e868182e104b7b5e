//! Ciphertexts, encryption and decryption.
//!
//! A ciphertext at level ℓ is (c0, c1) with c0 + c1·s = m + e (mod Q_ℓ); both components are
//! kept in coefficient form, limb-major: `c0[j·N + k]` is coefficient k modulo prime j.

use std::fmt;
use std::sync::Arc;

use rand_core::CryptoRng;

use crate::arith::Modulus;
use crate::error::{Error, Result};
use crate::keys::{PublicKey, SecretKey};
use crate::params::Params;
use crate::sample::{cbd, expand_seed, small_to_rns, ternary};

/// A signed integer plaintext coefficient (the scale Δ is the caller's business).
pub trait IntCoeff: Copy + Send + Sync {
    /// The residue in [0, q).
    fn residue(self, q: u64) -> u64;
}

impl IntCoeff for i64 {
    #[inline]
    fn residue(self, q: u64) -> u64 {
        self.rem_euclid(q as i64) as u64
    }
}

impl IntCoeff for i128 {
    #[inline]
    fn residue(self, q: u64) -> u64 {
        self.rem_euclid(i128::from(q)) as u64
    }
}

impl IntCoeff for u128 {
    #[inline]
    fn residue(self, q: u64) -> u64 {
        (self % u128::from(q)) as u64
    }
}

impl IntCoeff for i32 {
    #[inline]
    fn residue(self, q: u64) -> u64 {
        i64::from(self).rem_euclid(q as i64) as u64
    }
}

/// An RNS-CKKS ciphertext (c0, c1) at some level, in coefficient form.
#[derive(Clone, PartialEq)]
pub struct Ciphertext {
    pub(crate) params: Arc<Params>,
    pub(crate) level: usize,
    pub(crate) c0: Vec<u64>,
    pub(crate) c1: Vec<u64>,
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ciphertext")
            .field("n", &self.params.n())
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

/// A seeded secret-key ciphertext (c0, seed): c1 = a is expanded from the seed by ChaCha20.
/// Half the size of a [`Ciphertext`] on the wire; [`SeededCiphertext::expand`] recovers it.
#[derive(Clone, PartialEq)]
pub struct SeededCiphertext {
    pub(crate) params: Arc<Params>,
    pub(crate) level: usize,
    pub(crate) c0: Vec<u64>,
    pub(crate) seed: [u8; 32],
}

impl fmt::Debug for SeededCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeededCiphertext")
            .field("n", &self.params.n())
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl SeededCiphertext {
    /// Expands c1 = a(seed) and returns the full ciphertext.
    pub fn expand(&self) -> Ciphertext {
        let mods = &self.params.mods[..=self.level];
        Ciphertext {
            params: self.params.clone(),
            level: self.level,
            c0: self.c0.clone(),
            c1: expand_seed(&self.seed, mods, self.params.n()),
        }
    }

    /// Level.
    pub fn level(&self) -> usize {
        self.level
    }

    /// Parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
}

impl Ciphertext {
    /// The trivial (noiseless, insecure) encryption of zero at `level`: c0 = c1 = 0.
    pub fn zero(params: &Arc<Params>, level: usize) -> Result<Ciphertext> {
        params.check_level(level)?;
        let len = (level + 1) * params.n();
        Ok(Ciphertext {
            params: params.clone(),
            level,
            c0: vec![0; len],
            c1: vec![0; len],
        })
    }

    /// Level ℓ (the ciphertext lives modulo Q_ℓ = q0·p1⋯pℓ).
    pub fn level(&self) -> usize {
        self.level
    }

    /// Parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// c0, limb-major residues.
    pub fn c0(&self) -> &[u64] {
        &self.c0
    }

    /// c1, limb-major residues.
    pub fn c1(&self) -> &[u64] {
        &self.c1
    }
}

/// Combines `m` (at most `n` values, zero-extended) modulo every prime of `mods` into the
/// limb-major `out` (`n` coefficients per limb) with `op`; a longer `m` is an error.
pub(crate) fn apply_plain<C: IntCoeff>(
    mods: &[Modulus],
    n: usize,
    m: &[C],
    out: &mut [u64],
    op: impl Fn(&Modulus, u64, u64) -> u64,
) -> Result<()> {
    if m.len() > n {
        return Err(Error::LengthMismatch {
            expected: n,
            actual: m.len(),
        });
    }
    for (md, limb) in mods.iter().zip(out.chunks_exact_mut(n)) {
        for (o, &x) in limb.iter_mut().zip(m) {
            *o = op(md, *o, x.residue(md.q));
        }
    }
    Ok(())
}

fn check_plain_len(params: &Params, len: usize) -> Result<()> {
    if len > params.n() {
        return Err(Error::LengthMismatch {
            expected: params.n(),
            actual: len,
        });
    }
    Ok(())
}

impl PublicKey {
    /// Public-key encryption of `m` (≤ N signed coefficients, rest zero) at `level`:
    /// c0 = b·u + e0 + m, c1 = a·u + e1 with u ternary and e0, e1 centered binomial.
    /// Phase: m + e·u + e1·s + e0 (see [`crate::noise::fresh_noise_bound`]).
    pub fn encrypt<C: IntCoeff, R: CryptoRng + ?Sized>(
        &self,
        m: &[C],
        level: usize,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let params = &self.params;
        params.check_level(level)?;
        check_plain_len(params, m.len())?;
        let n = params.n();
        let mods = &params.mods[..=level];
        let u = ternary(rng, n);
        let e0 = cbd(rng, n);
        let e1 = cbd(rng, n);
        let len = (level + 1) * n;
        let mut u_rns = vec![0u64; len];
        let mut c0 = vec![0u64; len];
        let mut c1 = vec![0u64; len];
        small_to_rns(&u, mods, &mut u_rns);
        small_to_rns(&e0, mods, &mut c0);
        small_to_rns(&e1, mods, &mut c1);
        for (j, md) in mods.iter().enumerate() {
            let r = j * n..(j + 1) * n;
            let plan = &params.plans[j];
            let ul = &mut u_rns[r.clone()];
            plan.fwd(ul);
            let mut bu = ul.to_vec();
            plan.mul_assign_normalize(&mut bu, &self.b_ntt[r.clone()]);
            plan.inv(&mut bu);
            let mut au = ul.to_vec();
            plan.mul_assign_normalize(&mut au, &self.a_ntt[r.clone()]);
            plan.inv(&mut au);
            for (c, x) in c0[r.clone()].iter_mut().zip(bu) {
                *c = md.add(*c, x);
            }
            for (c, x) in c1[r].iter_mut().zip(au) {
                *c = md.add(*c, x);
            }
        }
        apply_plain(mods, n, m, &mut c0, Modulus::add)?;
        Ok(Ciphertext {
            params: params.clone(),
            level,
            c0,
            c1,
        })
    }

    /// A fresh public-key encryption of zero at `level` (for re-randomization).
    pub fn encrypt_zero<R: CryptoRng + ?Sized>(
        &self,
        level: usize,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        self.encrypt::<i64, R>(&[], level, rng)
    }
}

impl SecretKey {
    /// Seeded secret-key encryption of `m` (≤ N signed coefficients) at `level`:
    /// a = ChaCha20-expand(seed), c0 = −a·s + m + e. Phase noise is e alone.
    pub fn encrypt_seeded<C: IntCoeff, R: CryptoRng + ?Sized>(
        &self,
        m: &[C],
        level: usize,
        rng: &mut R,
    ) -> Result<SeededCiphertext> {
        let params = &self.params;
        params.check_level(level)?;
        check_plain_len(params, m.len())?;
        let n = params.n();
        let mods = &params.mods[..=level];
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let e = cbd(rng, n);
        let mut c0 = vec![0u64; (level + 1) * n];
        small_to_rns(&e, mods, &mut c0);
        let mut a = expand_seed(&seed, mods, n);
        for (j, md) in mods.iter().enumerate() {
            let r = j * n..(j + 1) * n;
            let al = &mut a[r.clone()];
            params.mul_limb_ntt(j, al, &self.s_ntt[r.clone()]);
            for (c, &x) in c0[r].iter_mut().zip(al.iter()) {
                *c = md.sub(*c, x);
            }
        }
        apply_plain(mods, n, m, &mut c0, Modulus::add)?;
        Ok(SeededCiphertext {
            params: params.clone(),
            level,
            c0,
            seed,
        })
    }

    /// Secret-key encryption returning the expanded ciphertext.
    pub fn encrypt<C: IntCoeff, R: CryptoRng + ?Sized>(
        &self,
        m: &[C],
        level: usize,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        Ok(self.encrypt_seeded(m, level, rng)?.expand())
    }

    fn check_ct(&self, ct: &Ciphertext) -> Result<()> {
        if !Arc::ptr_eq(&self.params, &ct.params) && *self.params != *ct.params {
            return Err(Error::ParamsMismatch);
        }
        Ok(())
    }

    /// The phase c0 + c1·s modulo each prime of the ciphertext's level (limb-major).
    fn phase(&self, ct: &Ciphertext, limbs: usize) -> Vec<u64> {
        let params = &self.params;
        let n = params.n();
        let mut out = ct.c1[..limbs * n].to_vec();
        for (j, (limb, c0)) in out
            .chunks_exact_mut(n)
            .zip(ct.c0.chunks_exact(n))
            .enumerate()
        {
            params.mul_limb_ntt(j, limb, &self.s_ntt[j * n..(j + 1) * n]);
            let md = &params.mods[j];
            for (o, &c) in limb.iter_mut().zip(c0) {
                *o = md.add(*o, c);
            }
        }
        out
    }

    /// Exact phase residues (m + e) mod q0, coefficient by coefficient (any level; q0 | Q_ℓ).
    /// For a share masked with r (an encryption of r added at level 0) this is (m + e + r) mod q0.
    pub fn decrypt_mod_q0(&self, ct: &Ciphertext) -> Result<Vec<u64>> {
        self.check_ct(ct)?;
        Ok(self.phase(ct, 1))
    }

    /// Exact phase residues (m + e) mod Q0 = q_0⋯q_{limbs−1} (Garner), for a ciphertext at any
    /// level ≥ `limbs − 1` (Q0 | Q_ℓ); Q0 must be below 2^128 ([`Params::modulus_product`]).
    /// For a share masked with r < Q0 (an encryption of r at level `limbs − 1`) this is
    /// (m + e + r) mod Q0.
    pub fn decrypt_mod_prefix(&self, ct: &Ciphertext, limbs: usize) -> Result<Vec<u128>> {
        self.check_ct(ct)?;
        if limbs == 0 || limbs > ct.level + 1 {
            return Err(Error::InvalidLevel {
                level: limbs.wrapping_sub(1),
                max: ct.level,
            });
        }
        let phase = self.phase(ct, limbs);
        crt_unsigned(&self.params, &phase, self.params.n(), limbs)
    }

    /// Decrypts to centered signed integers m + e ∈ (−Q_ℓ/2, Q_ℓ/2] via CRT (Garner's mixed
    /// radix, sign decided on the digits). Works at any level; errors with
    /// [`Error::DecodeOverflow`] if a coefficient's magnitude does not fit in i128.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<i128>> {
        self.check_ct(ct)?;
        let limbs = ct.level + 1;
        let phase = self.phase(ct, limbs);
        crt_centered(&self.params, &phase, self.params.n(), limbs)
    }
}

/// Garner's mixed-radix digits of coefficient `k` of limb-major residues (`n` per limb) over
/// the first `limbs` primes: v = d0 + d1·q0 + d2·q0·q1 + …, 0 ≤ d_i < q_i.
fn garner_digits(params: &Params, res: &[u64], n: usize, k: usize, digits: &mut [u64]) {
    let mods = &params.mods[..digits.len()];
    for i in 0..digits.len() {
        let md = &mods[i];
        let mut acc = 0u64;
        for (d, &pre) in digits[..i].iter().zip(&params.garner_prefix[i]) {
            acc = md.add(acc, md.mul(*d % md.q, pre));
        }
        digits[i] = md.mul(md.sub(res[i * n + k], acc), params.garner_inv[i]);
    }
}

/// Horner evaluation of mixed-radix digits, or with `flip` of the digits q_i − 1 − d_i
/// (`None` past 128 bits).
fn horner(mods: &[Modulus], digits: &[u64], flip: bool) -> Option<u128> {
    let mut acc: u128 = 0;
    for (md, &d) in mods.iter().zip(digits).rev() {
        let d = if flip { md.q - 1 - d } else { d };
        acc = acc
            .checked_mul(u128::from(md.q))?
            .checked_add(u128::from(d))?;
    }
    Some(acc)
}

/// Exact residues in [0, Q0), Q0 = q_0⋯q_{limbs−1} < 2^128, of limb-major residues (`n`
/// coefficients per limb), by Garner's mixed radix.
pub(crate) fn crt_unsigned(
    params: &Params,
    res: &[u64],
    n: usize,
    limbs: usize,
) -> Result<Vec<u128>> {
    params.modulus_product(limbs)?;
    let mods = &params.mods[..limbs];
    let mut digits = vec![0u64; limbs];
    (0..n)
        .map(|k| {
            garner_digits(params, res, n, k, &mut digits);
            horner(mods, &digits, false).ok_or(Error::DecodeOverflow { index: k })
        })
        .collect()
}

/// Centered CRT reconstruction of limb-major residues (`n` coefficients per limb) over the
/// first `limbs` primes.
pub(crate) fn crt_centered(
    params: &Params,
    res: &[u64],
    n: usize,
    limbs: usize,
) -> Result<Vec<i128>> {
    let mods = &params.mods[..limbs];
    let mut digits = vec![0u64; limbs];
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        garner_digits(params, res, n, k, &mut digits);
        // v > (Q − 1)/2 ⇔ v > Q − 1 − v, whose digits are q_i − 1 − d_i: compare from the top.
        let mut negative = false;
        for i in (0..limbs).rev() {
            let other = mods[i].q - 1 - digits[i];
            if digits[i] != other {
                negative = digits[i] > other;
                break;
            }
        }
        let value = if negative {
            // v − Q = −((Q − 1 − v) + 1)
            horner(mods, &digits, true)
                .and_then(|x| x.checked_add(1))
                .and_then(|x| i128::try_from(x).ok())
                .map(|x| -x)
        } else {
            horner(mods, &digits, false).and_then(|x| i128::try_from(x).ok())
        };
        out.push(value.ok_or(Error::DecodeOverflow { index: k })?);
    }
    Ok(out)
}
