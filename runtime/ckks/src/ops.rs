//! Homomorphic operations (all coefficient-wise: no NTT, no key switching).

use std::sync::Arc;

use rand_core::CryptoRng;

use crate::arith::Modulus;
use crate::ciphertext::{apply_plain, Ciphertext, IntCoeff, SeededCiphertext};
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::params::Params;
use crate::sample::uniform_symmetric;

/// Two operands of a binary operation: same parameters and level.
pub(crate) fn check_operands(
    pa: &Arc<Params>,
    la: usize,
    pb: &Arc<Params>,
    lb: usize,
) -> Result<()> {
    if !Arc::ptr_eq(pa, pb) && **pa != **pb {
        return Err(Error::ParamsMismatch);
    }
    if la != lb {
        return Err(Error::LevelMismatch { a: la, b: lb });
    }
    Ok(())
}

impl Ciphertext {
    fn check_compatible(&self, other: &Ciphertext) -> Result<()> {
        check_operands(&self.params, self.level, &other.params, other.level)
    }

    fn zip_assign(&mut self, other: &Ciphertext, op: impl Fn(&Modulus, u64, u64) -> u64) {
        let n = self.params.n();
        let mods = &self.params.mods[..=self.level];
        for (dst, src) in [(&mut self.c0, &other.c0), (&mut self.c1, &other.c1)] {
            for (md, (d, s)) in mods
                .iter()
                .zip(dst.chunks_exact_mut(n).zip(src.chunks_exact(n)))
            {
                for (x, &y) in d.iter_mut().zip(s) {
                    *x = op(md, *x, y);
                }
            }
        }
    }

    /// self += other (same parameters and level).
    pub fn add_assign(&mut self, other: &Ciphertext) -> Result<()> {
        self.check_compatible(other)?;
        self.zip_assign(other, Modulus::add);
        Ok(())
    }

    /// self −= other (same parameters and level).
    pub fn sub_assign(&mut self, other: &Ciphertext) -> Result<()> {
        self.check_compatible(other)?;
        self.zip_assign(other, Modulus::sub);
        Ok(())
    }

    /// self + other.
    pub fn add(&self, other: &Ciphertext) -> Result<Ciphertext> {
        let mut out = self.clone();
        out.add_assign(other)?;
        Ok(out)
    }

    /// self − other.
    pub fn sub(&self, other: &Ciphertext) -> Result<Ciphertext> {
        let mut out = self.clone();
        out.sub_assign(other)?;
        Ok(out)
    }

    /// −self.
    pub fn neg_assign(&mut self) {
        let n = self.params.n();
        let mods = &self.params.mods[..=self.level];
        for c in [&mut self.c0, &mut self.c1] {
            for (md, limb) in mods.iter().zip(c.chunks_exact_mut(n)) {
                for x in limb.iter_mut() {
                    *x = md.neg(*x);
                }
            }
        }
    }

    /// Adds the plaintext `m` (≤ N signed coefficients; coefficient j of m goes to coefficient j,
    /// the rest unchanged) to c0.
    pub fn add_plain<C: IntCoeff>(&mut self, m: &[C]) -> Result<()> {
        self.plain_op(m, Modulus::add)
    }

    /// Subtracts the plaintext `m` (≤ N signed coefficients) from c0.
    pub fn sub_plain<C: IntCoeff>(&mut self, m: &[C]) -> Result<()> {
        self.plain_op(m, Modulus::sub)
    }

    fn plain_op<C: IntCoeff>(
        &mut self,
        m: &[C],
        op: impl Fn(&Modulus, u64, u64) -> u64,
    ) -> Result<()> {
        let mods = &self.params.mods[..=self.level];
        apply_plain(mods, self.params.n(), m, &mut self.c0, op)
    }

    /// self ·= w for a signed integer scalar (Shoup multiplication per limb).
    /// Noise is multiplied by |w|.
    pub fn mul_scalar_assign(&mut self, w: i64) {
        let n = self.params.n();
        let mods = &self.params.mods[..=self.level];
        for c in [&mut self.c0, &mut self.c1] {
            for (md, limb) in mods.iter().zip(c.chunks_exact_mut(n)) {
                let wm = md.reduce_i64(w);
                let ws = md.shoup(wm);
                for x in limb.iter_mut() {
                    *x = md.mul_shoup(*x, wm, ws);
                }
            }
        }
    }

    /// self · w.
    pub fn mul_scalar(&self, w: i64) -> Ciphertext {
        let mut out = self.clone();
        out.mul_scalar_assign(w);
        out
    }

    /// Rescale: divides by the last prime p = p_ℓ with rounding and drops it (level ℓ → ℓ − 1).
    /// Each component becomes round(c / p) (computed as (c + h − ((c_ℓ + h) mod p))·p⁻¹ mod q_j
    /// with h = ⌊p/2⌋), so the phase becomes m/p + e/p + ε0 + ε1·s with |ε_i| ≤ ½
    /// (see [`crate::noise::rescale_noise_bound`]).
    pub fn rescale_assign(&mut self) -> Result<()> {
        let l = self.level;
        if l == 0 {
            return Err(Error::InvalidLevel { level: 0, max: 0 });
        }
        let n = self.params.n();
        let params = self.params.clone();
        rescale_limbs(&params, l, n, &mut self.c0);
        rescale_limbs(&params, l, n, &mut self.c1);
        self.level = l - 1;
        Ok(())
    }

    /// Rescaled copy.
    pub fn rescale(&self) -> Result<Ciphertext> {
        let mut out = self.clone();
        out.rescale_assign()?;
        Ok(out)
    }

    /// Modulus drop to `level` ≤ the current level: keeps the first `level + 1` limbs. The
    /// plaintext and noise are unchanged (a phase below Q_level/2 is still decrypted correctly).
    pub fn mod_drop_assign(&mut self, level: usize) -> Result<()> {
        if level > self.level {
            return Err(Error::InvalidLevel {
                level,
                max: self.level,
            });
        }
        let len = (level + 1) * self.params.n();
        self.c0.truncate(len);
        self.c1.truncate(len);
        self.level = level;
        Ok(())
    }

    /// Mod-dropped copy.
    pub fn mod_drop(&self, level: usize) -> Result<Ciphertext> {
        let mut out = self.clone();
        out.mod_drop_assign(level)?;
        Ok(out)
    }

    /// Re-randomization: adds a fresh public-key encryption of zero at this level, so c1 no
    /// longer is a public function of the inputs. Adds fresh noise
    /// ([`crate::noise::fresh_noise_bound`]).
    pub fn rerandomize<R: CryptoRng + ?Sized>(
        &mut self,
        pk: &PublicKey,
        rng: &mut R,
    ) -> Result<()> {
        let z = pk.encrypt_zero(self.level, rng)?;
        self.add_assign(&z)
    }

    /// Noise flooding: adds to c0 an independent uniform integer in [−2^bits, 2^bits] per
    /// coefficient (all N coefficients), `bits` ≤ 120.
    pub fn flood<R: CryptoRng + ?Sized>(&mut self, bits: u32, rng: &mut R) -> Result<()> {
        if bits > 120 {
            return Err(Error::FloodingTooWide { bits });
        }
        let n = self.params.n();
        let noise: Vec<i128> = (0..n).map(|_| uniform_symmetric(rng, bits)).collect();
        self.add_plain(&noise)
    }
}

/// Rescale of one component given as `l + 1` limbs of `width` coefficients (limb-major): each
/// coefficient becomes round(c / p_ℓ), computed as (c + h − ((c_ℓ + h) mod p))·p⁻¹ mod q_j with
/// h = ⌊p/2⌋, and the last limb is dropped. Coefficient-wise, so any prefix of the
/// coefficients rescales to the same prefix of the result.
pub(crate) fn rescale_limbs(params: &Params, l: usize, width: usize, c: &mut Vec<u64>) {
    let p = params.mods[l];
    let h = (p.q - 1) / 2;
    let (low, last) = c.split_at_mut(l * width);
    // r = (c_ℓ + h) mod p, in place.
    for x in last.iter_mut() {
        *x = p.add(*x, h);
    }
    for (j, limb) in low.chunks_exact_mut(width).enumerate() {
        let md = &params.mods[j];
        let inv = params.rescale_inv[l][j];
        let inv_s = md.shoup(inv);
        let h_j = h % md.q;
        for (x, &r) in limb.iter_mut().zip(last.iter()) {
            let r_j = if r >= md.q {
                md.reduce_u128(u128::from(r))
            } else {
                r
            };
            let t = md.sub(md.add(*x, h_j), r_j);
            *x = md.mul_shoup(t, inv, inv_s);
        }
    }
    c.truncate(l * width);
}

impl SeededCiphertext {
    /// Adds the plaintext `m` (≤ N signed coefficients) to c0. With this, a client can encrypt
    /// zeros ahead of time (the NTT work) and add its data when it exists (coefficient-wise).
    pub fn add_plain<C: IntCoeff>(&mut self, m: &[C]) -> Result<()> {
        let mods = &self.params.mods[..=self.level];
        apply_plain(mods, self.params.n(), m, &mut self.c0, Modulus::add)
    }
}
