//! The offline/online split of a ciphertext: its two halves as separate RNS polynomials.
//!
//! With scalar weights every server operation (linear layers, rescale, mod-drop, masking,
//! re-randomization, flooding) is coefficient-wise and acts on c0 and c1 independently. The c1
//! half depends only on the client's seeds, the weights and the server's own randomness, so it
//! can be computed before the client's data exists, and the client can compute c1·s then as
//! well. Online, only c0 moves, and only its first B coefficients (the B images of the batch),
//! because decryption of coefficient j needs c0[j] and (c1·s)[j] alone:
//! phase[j] = c0[j] + (c1·s)[j].
//!
//! [`RnsPoly`] is one such half restricted to its first `width` coefficients (c1 halves have
//! width N, online c0 windows width B).

use std::fmt;
use std::sync::Arc;

use crate::arith::Modulus;
use crate::ciphertext::{
    apply_plain, crt_centered, crt_unsigned, Ciphertext, IntCoeff, SeededCiphertext,
};
use crate::error::{Error, Result};
use rand_core::CryptoRng;

use crate::keys::{PublicKey, SecretKey};
use crate::ops::{check_operands, rescale_limbs};
use crate::params::Params;
use crate::sample::{cbd, expand_seed, small_to_rns, ternary, uniform_symmetric};

/// Windows up to this width are computed by direct convolution with a small polynomial
/// (width·N additions per limb) instead of two NTTs; at N = 4096 the two cost the same near
/// width 8 to 16.
const DIRECT_MAX: usize = 8;

/// Coefficients 0..width of the negacyclic product a·t modulo `md.q`, for a polynomial `a`
/// given by N residues and a small one `t` (ternary or error): with X^N = −1,
/// (a·t)_k = Σ_{i≤k} t_i·a_{k−i} − Σ_{i>k} t_i·a_{N+k−i}.
fn small_window(md: &Modulus, a: &[u64], t: &[i8], width: usize) -> Vec<u64> {
    (0..width)
        .map(|k| {
            let mut acc: i128 = 0;
            for (&ti, &x) in t[..=k].iter().zip(a[..=k].iter().rev()) {
                acc += i128::from(i64::from(ti) * x as i64);
            }
            for (&ti, &x) in t[k + 1..].iter().zip(a[k + 1..].iter().rev()) {
                acc -= i128::from(i64::from(ti) * x as i64);
            }
            md.reduce_i128(acc)
        })
        .collect()
}

/// One half of a ciphertext (c0 or c1) at some level, restricted to its first `width`
/// coefficients, limb-major: `data[j·width + k]` is coefficient k modulo prime j.
#[derive(Clone, PartialEq)]
pub struct RnsPoly {
    pub(crate) params: Arc<Params>,
    pub(crate) level: usize,
    pub(crate) width: usize,
    pub(crate) data: Vec<u64>,
}

impl fmt::Debug for RnsPoly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RnsPoly")
            .field("n", &self.params.n())
            .field("level", &self.level)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

/// The c0 window of a ciphertext: the first `width` coefficients of c0 (the half that travels
/// online). Decryption pairs it with the [`C1TimesS`] of the same ciphertext.
#[derive(Clone, Debug, PartialEq)]
pub struct C0Window(RnsPoly);

/// The c1 half of a ciphertext in full (N coefficients; the half that travels offline).
#[derive(Clone, Debug, PartialEq)]
pub struct C1Half(RnsPoly);

/// (c1·s) restricted to a window: the client's offline half of decryption, made by
/// [`SecretKey::c1_times_s`] only.
#[derive(Clone, Debug, PartialEq)]
pub struct C1TimesS(RnsPoly);

impl C0Window {
    /// A c0 window (any width).
    pub fn new(poly: RnsPoly) -> C0Window {
        C0Window(poly)
    }

    /// The polynomial.
    pub fn poly(&self) -> &RnsPoly {
        &self.0
    }

    /// The polynomial, mutable (adding a plaintext, flooding).
    pub fn poly_mut(&mut self) -> &mut RnsPoly {
        &mut self.0
    }

    /// The polynomial, owned.
    pub fn into_poly(self) -> RnsPoly {
        self.0
    }
}

impl C1Half {
    /// A c1 half: all N coefficients, else [`Error::LengthMismatch`].
    pub fn new(poly: RnsPoly) -> Result<C1Half> {
        let n = poly.params.n();
        if poly.width != n {
            return Err(Error::LengthMismatch {
                expected: n,
                actual: poly.width,
            });
        }
        Ok(C1Half(poly))
    }

    /// The c1 half a = a(seed) of a seeded encryption at `level` ([`RnsPoly::from_seed`]).
    pub fn from_seed(params: &Arc<Params>, level: usize, seed: &[u8; 32]) -> Result<C1Half> {
        Ok(C1Half(RnsPoly::from_seed(params, level, seed)?))
    }

    /// The polynomial.
    pub fn poly(&self) -> &RnsPoly {
        &self.0
    }

    /// The polynomial, owned.
    pub fn into_poly(self) -> RnsPoly {
        self.0
    }
}

impl C1TimesS {
    /// The polynomial.
    pub fn poly(&self) -> &RnsPoly {
        &self.0
    }

    /// The same product at the coefficients `coeffs` of the window (image packing decrypts
    /// only the coefficients that feed circuits or the output); pairs with a c0 gathered the
    /// same way ([`RnsPoly::gather`]).
    pub fn gather(&self, coeffs: &[u32]) -> Result<C1TimesS> {
        self.0.gather(coeffs).map(C1TimesS)
    }
}

/// Keeps the first `width` coefficients of every limb of limb-major `data` (`n` per limb).
fn window(data: &[u64], n: usize, width: usize) -> Vec<u64> {
    data.chunks_exact(n)
        .flat_map(|limb| limb[..width].iter().copied())
        .collect()
}

fn check_width(params: &Params, width: usize) -> Result<()> {
    if width == 0 || width > params.n() {
        return Err(Error::LengthMismatch {
            expected: params.n(),
            actual: width,
        });
    }
    Ok(())
}

/// A window of `width` coefficients for a message of `len` values.
fn check_window(params: &Params, width: usize, len: usize) -> Result<()> {
    check_width(params, width)?;
    if len > width {
        return Err(Error::LengthMismatch {
            expected: width,
            actual: len,
        });
    }
    Ok(())
}

impl RnsPoly {
    /// The zero polynomial at `level` with `width` coefficients (1 ≤ width ≤ N).
    pub fn zero(params: &Arc<Params>, level: usize, width: usize) -> Result<RnsPoly> {
        params.check_level(level)?;
        check_width(params, width)?;
        Ok(RnsPoly {
            params: params.clone(),
            level,
            width,
            data: vec![0; (level + 1) * width],
        })
    }

    /// The uniform polynomial a(seed) of a seeded encryption at `level` (width N): the c1 half
    /// of the [`SeededCiphertext`] with this seed.
    pub fn from_seed(params: &Arc<Params>, level: usize, seed: &[u8; 32]) -> Result<RnsPoly> {
        params.check_level(level)?;
        let n = params.n();
        Ok(RnsPoly {
            params: params.clone(),
            level,
            width: n,
            data: expand_seed(seed, &params.mods[..=level], n),
        })
    }

    pub(crate) fn from_raw(
        params: &Arc<Params>,
        level: usize,
        width: usize,
        data: Vec<u64>,
    ) -> RnsPoly {
        RnsPoly {
            params: params.clone(),
            level,
            width,
            data,
        }
    }

    /// Level ℓ (residues modulo q0, p1, …, pℓ).
    pub fn level(&self) -> usize {
        self.level
    }

    /// Coefficients kept per limb.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Parameters.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }

    /// Limb-major residues.
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// The first `width` coefficients of this polynomial.
    pub fn window(&self, width: usize) -> Result<RnsPoly> {
        if width == 0 || width > self.width {
            return Err(Error::LengthMismatch {
                expected: self.width,
                actual: width,
            });
        }
        Ok(RnsPoly {
            params: self.params.clone(),
            level: self.level,
            width,
            data: window(&self.data, self.width, width),
        })
    }

    fn check_compatible(&self, other: &RnsPoly) -> Result<()> {
        check_operands(&self.params, self.level, &other.params, other.level)?;
        if self.width != other.width {
            return Err(Error::LengthMismatch {
                expected: self.width,
                actual: other.width,
            });
        }
        Ok(())
    }

    fn zip_assign(
        &mut self,
        other: &RnsPoly,
        op: impl Fn(&Modulus, u64, u64) -> u64,
    ) -> Result<()> {
        self.check_compatible(other)?;
        let mods = &self.params.mods[..=self.level];
        for (md, (d, s)) in mods.iter().zip(
            self.data
                .chunks_exact_mut(self.width)
                .zip(other.data.chunks_exact(self.width)),
        ) {
            for (x, &y) in d.iter_mut().zip(s) {
                *x = op(md, *x, y);
            }
        }
        Ok(())
    }

    /// self += other (same parameters, level and width).
    pub fn add_assign(&mut self, other: &RnsPoly) -> Result<()> {
        self.zip_assign(other, Modulus::add)
    }

    /// self −= other (same parameters, level and width).
    pub fn sub_assign(&mut self, other: &RnsPoly) -> Result<()> {
        self.zip_assign(other, Modulus::sub)
    }

    fn plain_op<C: IntCoeff>(
        &mut self,
        m: &[C],
        op: impl Fn(&Modulus, u64, u64) -> u64,
    ) -> Result<()> {
        let mods = &self.params.mods[..=self.level];
        apply_plain(mods, self.width, m, &mut self.data, op)
    }

    /// Adds the signed integers `m` (≤ width of them) to the first coefficients, modulo every
    /// prime: on a c0 half this adds a plaintext.
    pub fn add_plain<C: IntCoeff>(&mut self, m: &[C]) -> Result<()> {
        self.plain_op(m, Modulus::add)
    }

    /// Subtracts the signed integers `m` (≤ width of them) from the first coefficients.
    pub fn sub_plain<C: IntCoeff>(&mut self, m: &[C]) -> Result<()> {
        self.plain_op(m, Modulus::sub)
    }

    /// Adds `m[k]·F` to the first coefficients, for an integer factor F given by its residues
    /// modulo each prime of the level ([`Params::factor_residues`]): exact for any size of
    /// `m[k]·F`, as the product is formed modulo every prime separately.
    pub fn add_plain_scaled<C: IntCoeff>(&mut self, m: &[C], factor: &[u64]) -> Result<()> {
        self.scaled_op(m, factor, Modulus::add)
    }

    /// Subtracts `m[k]·F` from the first coefficients (see [`RnsPoly::add_plain_scaled`]).
    pub fn sub_plain_scaled<C: IntCoeff>(&mut self, m: &[C], factor: &[u64]) -> Result<()> {
        self.scaled_op(m, factor, Modulus::sub)
    }

    fn scaled_op<C: IntCoeff>(
        &mut self,
        m: &[C],
        factor: &[u64],
        op: impl Fn(&Modulus, u64, u64) -> u64,
    ) -> Result<()> {
        let mods = &self.params.mods[..=self.level];
        if factor.len() != mods.len() {
            return Err(Error::LengthMismatch {
                expected: mods.len(),
                actual: factor.len(),
            });
        }
        if m.len() > self.width {
            return Err(Error::LengthMismatch {
                expected: self.width,
                actual: m.len(),
            });
        }
        for ((md, limb), &f) in mods
            .iter()
            .zip(self.data.chunks_exact_mut(self.width))
            .zip(factor)
        {
            for (o, &x) in limb.iter_mut().zip(m) {
                *o = op(md, *o, md.mul(x.residue(md.q), f));
            }
        }
        Ok(())
    }

    /// Rescale by the last prime (level ℓ → ℓ − 1), exactly as [`Ciphertext::rescale_assign`]
    /// does to each half.
    pub fn rescale_assign(&mut self) -> Result<()> {
        let l = self.level;
        if l == 0 {
            return Err(Error::InvalidLevel { level: 0, max: 0 });
        }
        let params = self.params.clone();
        rescale_limbs(&params, l, self.width, &mut self.data);
        self.level = l - 1;
        Ok(())
    }

    /// Noise flooding: adds an independent uniform integer in [−2^bits, 2^bits] to every
    /// coefficient of the window (`bits` ≤ 120), as [`Ciphertext::flood`] does to c0.
    pub fn flood<R: CryptoRng + ?Sized>(&mut self, bits: u32, rng: &mut R) -> Result<()> {
        if bits > 120 {
            return Err(Error::FloodingTooWide { bits });
        }
        let noise: Vec<i128> = (0..self.width)
            .map(|_| uniform_symmetric(rng, bits))
            .collect();
        self.add_plain(&noise)
    }

    /// The coefficients `coeffs` (each below the width) of every limb, as a window of
    /// `coeffs.len()` coefficients: image packing sends and decrypts only these.
    pub fn gather(&self, coeffs: &[u32]) -> Result<RnsPoly> {
        check_width(&self.params, coeffs.len())?;
        if let Some(&c) = coeffs.iter().find(|&&c| c as usize >= self.width) {
            return Err(Error::LengthMismatch {
                expected: self.width,
                actual: c as usize + 1,
            });
        }
        let data = self
            .data
            .chunks_exact(self.width)
            .flat_map(|limb| coeffs.iter().map(move |&c| limb[c as usize]))
            .collect();
        Ok(RnsPoly {
            params: self.params.clone(),
            level: self.level,
            width: coeffs.len(),
            data,
        })
    }

    /// Modulus drop to `level` ≤ the current level (keeps the first `level + 1` limbs).
    pub fn mod_drop(&self, level: usize) -> Result<RnsPoly> {
        if level > self.level {
            return Err(Error::InvalidLevel {
                level,
                max: self.level,
            });
        }
        Ok(RnsPoly {
            params: self.params.clone(),
            level,
            width: self.width,
            data: self.data[..(level + 1) * self.width].to_vec(),
        })
    }
}

impl Ciphertext {
    /// Splits into (the first `width` coefficients of c0, all of c1).
    pub fn into_halves(self, width: usize) -> Result<(C0Window, C1Half)> {
        check_width(&self.params, width)?;
        let n = self.params.n();
        let c0 = RnsPoly::from_raw(&self.params, self.level, width, window(&self.c0, n, width));
        let c1 = RnsPoly::from_raw(&self.params, self.level, n, self.c1);
        Ok((C0Window(c0), C1Half(c1)))
    }
}

impl PublicKey {
    /// Public-key encryption of `m` (≤ width values) at `level`, split into (the c0 window over
    /// the first `width` coefficients, all of c1): c1 = a·u + e1 in full, and for small windows
    /// only the window's coefficients of c0 = b·u + e0 + m. The window has exactly the
    /// distribution of the same coefficients of [`PublicKey::encrypt`]'s c0.
    pub fn encrypt_halves<C: IntCoeff, R: CryptoRng + ?Sized>(
        &self,
        m: &[C],
        level: usize,
        width: usize,
        rng: &mut R,
    ) -> Result<(C0Window, C1Half)> {
        check_window(&self.params, width, m.len())?;
        if width > DIRECT_MAX {
            return self.encrypt(m, level, rng)?.into_halves(width);
        }
        let params = &self.params;
        params.check_level(level)?;
        let n = params.n();
        let mods = &params.mods[..=level];
        let u = ternary(rng, n);
        let e0 = cbd(rng, width);
        let e1 = cbd(rng, n);
        let mut u_ntt = vec![0u64; mods.len() * n];
        small_to_rns(&u, mods, &mut u_ntt);
        let mut c1 = vec![0u64; mods.len() * n];
        small_to_rns(&e1, mods, &mut c1);
        let mut c0 = Vec::with_capacity(mods.len() * width);
        for (j, md) in mods.iter().enumerate() {
            let r = j * n..(j + 1) * n;
            let ul = &mut u_ntt[r.clone()];
            params.fwd_limb(j, ul);
            let mut au = self.a_ntt[r.clone()].to_vec();
            params.plans[j].mul_assign_normalize(&mut au, ul);
            params.plans[j].inv(&mut au);
            for (c, x) in c1[r.clone()].iter_mut().zip(au) {
                *c = md.add(*c, x);
            }
            let bu = small_window(md, &self.b[r], &u, width);
            c0.extend(
                bu.iter()
                    .zip(&e0)
                    .map(|(&x, &ei)| md.add(x, md.reduce_i64(i64::from(ei)))),
            );
        }
        let mut w = RnsPoly::from_raw(params, level, width, c0);
        w.add_plain(m)?;
        Ok((C0Window(w), C1Half(RnsPoly::from_raw(params, level, n, c1))))
    }
}

impl SeededCiphertext {
    /// The seed from which c1 = a is expanded ([`RnsPoly::from_seed`]).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The first `width` coefficients of c0.
    pub fn c0_window(&self, width: usize) -> Result<C0Window> {
        check_width(&self.params, width)?;
        Ok(C0Window(RnsPoly::from_raw(
            &self.params,
            self.level,
            width,
            window(&self.c0, self.params.n(), width),
        )))
    }
}

impl SecretKey {
    /// The client's offline half of decryption: (c1·s) restricted to its first `width`
    /// coefficients, at c1's level. With it, [`SecretKey::decrypt_halves`] needs only the c0
    /// window.
    pub fn c1_times_s(&self, c1: &C1Half, width: usize) -> Result<C1TimesS> {
        let c1 = &c1.0;
        if !Arc::ptr_eq(&self.params, &c1.params) && *self.params != *c1.params {
            return Err(Error::ParamsMismatch);
        }
        let n = self.params.n();
        if c1.width != n {
            return Err(Error::LengthMismatch {
                expected: n,
                actual: c1.width,
            });
        }
        check_width(&self.params, width)?;
        let mut data = Vec::with_capacity((c1.level + 1) * width);
        if width <= DIRECT_MAX {
            for (md, limb) in self.params.mods.iter().zip(c1.data.chunks_exact(n)) {
                data.extend(small_window(md, limb, &self.s, width));
            }
            return Ok(C1TimesS(RnsPoly::from_raw(
                &self.params,
                c1.level,
                width,
                data,
            )));
        }
        for (j, limb) in c1.data.chunks_exact(n).enumerate() {
            let mut t = limb.to_vec();
            self.params
                .mul_limb_ntt(j, &mut t, &self.s_ntt[j * n..(j + 1) * n]);
            data.extend_from_slice(&t[..width]);
        }
        Ok(C1TimesS(RnsPoly::from_raw(
            &self.params,
            c1.level,
            width,
            data,
        )))
    }

    /// Seeded secret-key encryption of `m` (≤ width values) of which only the c0 window over
    /// the first `width` coefficients is kept: returns (seed, window). The server expands
    /// c1 = a(seed) itself ([`RnsPoly::from_seed`]). For small windows only the window's
    /// coefficients of a·s are computed.
    pub fn encrypt_seeded_window<C: IntCoeff, R: CryptoRng + ?Sized>(
        &self,
        m: &[C],
        level: usize,
        width: usize,
        rng: &mut R,
    ) -> Result<([u8; 32], C0Window)> {
        check_window(&self.params, width, m.len())?;
        if width > DIRECT_MAX {
            let ct = self.encrypt_seeded(m, level, rng)?;
            return Ok((ct.seed, ct.c0_window(width)?));
        }
        self.params.check_level(level)?;
        let params = &self.params;
        let n = params.n();
        let mods = &params.mods[..=level];
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let e = cbd(rng, width);
        let a = expand_seed(&seed, mods, n);
        let mut data = Vec::with_capacity(mods.len() * width);
        for (md, limb) in mods.iter().zip(a.chunks_exact(n)) {
            let as_ = small_window(md, limb, &self.s, width);
            // c0 = −a·s + e
            data.extend(
                as_.iter()
                    .zip(&e)
                    .map(|(&x, &ei)| md.sub(md.reduce_i64(i64::from(ei)), x)),
            );
        }
        let mut w = RnsPoly::from_raw(params, level, width, data);
        w.add_plain(m)?;
        Ok((seed, C0Window(w)))
    }

    /// c0 + c1·s over the window; the halves must agree in parameters, level and width.
    fn phase_of_halves(&self, c0: &C0Window, c1s: &C1TimesS) -> Result<RnsPoly> {
        let mut p = c0.0.clone();
        p.add_assign(&c1s.0)?;
        Ok(p)
    }

    /// Exact phase residues (m + e) mod q0 of the first `width` coefficients, from the online c0
    /// window and the offline [`SecretKey::c1_times_s`] (both at the same level and width).
    pub fn decrypt_halves_mod_q0(&self, c0: &C0Window, c1s: &C1TimesS) -> Result<Vec<u64>> {
        let p = self.phase_of_halves(c0, c1s)?;
        Ok(p.data[..p.width].to_vec())
    }

    /// Exact phase residues (m + e) mod Q0 = q_0⋯q_{limbs−1} (Garner, as
    /// [`SecretKey::decrypt_mod_prefix`]) of the window's coefficients, from the online c0
    /// window and the offline [`SecretKey::c1_times_s`]; the halves' level must be at least
    /// `limbs − 1`.
    pub fn decrypt_halves_mod_prefix(
        &self,
        c0: &C0Window,
        c1s: &C1TimesS,
        limbs: usize,
    ) -> Result<Vec<u128>> {
        let p = self.phase_of_halves(c0, c1s)?;
        if limbs == 0 || limbs > p.level + 1 {
            return Err(Error::InvalidLevel {
                level: limbs.wrapping_sub(1),
                max: p.level,
            });
        }
        crt_unsigned(&self.params, &p.data[..limbs * p.width], p.width, limbs)
    }

    /// Centered decryption (as [`SecretKey::decrypt`]) of the first `width` coefficients from
    /// the c0 window and the offline [`SecretKey::c1_times_s`].
    pub fn decrypt_halves(&self, c0: &C0Window, c1s: &C1TimesS) -> Result<Vec<i128>> {
        let p = self.phase_of_halves(c0, c1s)?;
        crt_centered(&self.params, &p.data, p.width, p.level + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;
    use crate::linear::{linear, linear_polys, CsrMatrix, RowBias};
    use crate::params::ntt_primes;
    use crate::sample::os_rng;

    fn params() -> Arc<Params> {
        let primes = ntt_primes(30, 1024, 2, &[]).unwrap();
        // 60 bits at N = 1024 exceeds the 128-bit table; the split is about arithmetic.
        Params::new(1024, &primes).unwrap()
    }

    /// Running a layer on the halves separately and decrypting from the window and c1·s gives
    /// exactly what the whole-ciphertext path decrypts to.
    #[test]
    fn halves_reproduce_the_whole_ciphertext_path() {
        let params = params();
        let mut rng = os_rng();
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&sk, &mut rng);
        let b = 5;
        let cts: Vec<SeededCiphertext> = (0..3)
            .map(|i| {
                let m: Vec<i64> = (0..b as i64).map(|j| ((i + 1) << 40) + j).collect();
                sk.encrypt_seeded(&m, 1, &mut rng).unwrap()
            })
            .collect();
        let m = CsrMatrix::from_dense(2, 3, &[3, -2, 1, 0, 7, -5]).unwrap();
        let bias = [11i128, -4];
        let rb = Some(RowBias {
            values: &bias,
            coeffs: b,
        });
        // Whole ciphertexts.
        let full: Vec<Ciphertext> = cts.iter().map(SeededCiphertext::expand).collect();
        let refs: Vec<&Ciphertext> = full.iter().collect();
        let mut y = linear(&refs, &m, rb).unwrap();
        let pre = pk.encrypt(&[17i64, 0, 3], 0, &mut rng).unwrap();
        for c in &mut y {
            c.rescale_assign().unwrap();
            c.add_assign(&pre).unwrap();
        }
        // Halves.
        let c1s: Vec<RnsPoly> = cts
            .iter()
            .map(|c| RnsPoly::from_seed(&params, 1, c.seed()).unwrap())
            .collect();
        let c0s: Vec<RnsPoly> = cts
            .iter()
            .map(|c| c.c0_window(b).unwrap().into_poly())
            .collect();
        let (pre0, pre1) = pre.clone().into_halves(b).unwrap();
        let (pre0, pre1) = (pre0.into_poly(), pre1.into_poly());
        let r1: Vec<&RnsPoly> = c1s.iter().collect();
        let r0: Vec<&RnsPoly> = c0s.iter().collect();
        let mut y1 = linear_polys(&r1, &m, None).unwrap();
        let mut y0 = linear_polys(&r0, &m, rb).unwrap();
        for (a, c) in y0.iter_mut().zip(y1.iter_mut()) {
            a.rescale_assign().unwrap();
            c.rescale_assign().unwrap();
            a.add_assign(&pre0).unwrap();
            c.add_assign(&pre1).unwrap();
        }
        for ((whole, h0), h1) in y.iter().zip(&y0).zip(&y1) {
            let d = sk.c1_times_s(&C1Half::new(h1.clone()).unwrap(), b).unwrap();
            let h0 = &C0Window::new(h0.clone());
            let want = sk.decrypt(whole).unwrap();
            assert_eq!(sk.decrypt_halves(h0, &d).unwrap(), want[..b].to_vec());
            let want_q0 = sk.decrypt_mod_q0(whole).unwrap();
            assert_eq!(
                sk.decrypt_halves_mod_q0(h0, &d).unwrap(),
                want_q0[..b].to_vec()
            );
        }
        // And the values are the layer's: row 0 of image 0 is (3 − 4 + 3)·2^40 + 11, divided by
        // p1, plus the mask 17 (the noise is a few hundred at most).
        let p1 = params.moduli()[1] as f64;
        let want0 = (2f64.powi(41) + 11.0) / p1;
        let got = sk.decrypt(&y[0]).unwrap()[0] as f64 - 17.0;
        assert!((got - want0).abs() < 4096.0, "{got} vs {want0}");
    }

    /// Halves of different widths or levels do not decrypt together, and a c1 half must be
    /// whole.
    #[test]
    fn halves_of_different_ciphertext_shapes_do_not_decrypt_together() {
        let params = params();
        let mut rng = os_rng();
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&sk, &mut rng);
        let (c0, c1) = pk.encrypt_halves(&[5i64], 1, 3, &mut rng).unwrap();
        let d = sk.c1_times_s(&c1, 3).unwrap();
        assert!(sk.decrypt_halves(&c0, &d).is_ok());
        let narrow = sk.c1_times_s(&c1, 2).unwrap();
        assert!(matches!(
            sk.decrypt_halves(&c0, &narrow),
            Err(Error::LengthMismatch { .. })
        ));
        let low = C1Half::new(c1.poly().mod_drop(0).unwrap()).unwrap();
        let d0 = sk.c1_times_s(&low, 3).unwrap();
        assert!(matches!(
            sk.decrypt_halves_mod_q0(&c0, &d0),
            Err(Error::LevelMismatch { .. })
        ));
        assert!(matches!(
            C1Half::new(c0.into_poly()),
            Err(Error::LengthMismatch { .. })
        ));
    }

    /// The direct small-window products agree with the NTT path, and window encryptions
    /// decrypt to their message.
    #[test]
    fn small_windows_match_the_ntt_path() {
        let params = params();
        let mut rng = os_rng();
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&sk, &mut rng);
        let c1 = C1Half::from_seed(&params, 1, &[7u8; 32]).unwrap();
        let direct = sk.c1_times_s(&c1, DIRECT_MAX).unwrap();
        let ntt = sk.c1_times_s(&c1, DIRECT_MAX + 1).unwrap();
        assert_eq!(direct.poly(), &ntt.poly().window(DIRECT_MAX).unwrap());
        let bound = crate::noise::fresh_noise_bound(&params);
        for width in [1, 3, DIRECT_MAX, DIRECT_MAX + 1, 40] {
            let m: Vec<i64> = (0..width as i64).map(|j| (j - 2) * 100_000).collect();
            let (seed, w) = sk.encrypt_seeded_window(&m, 1, width, &mut rng).unwrap();
            let d = sk
                .c1_times_s(&C1Half::from_seed(&params, 1, &seed).unwrap(), width)
                .unwrap();
            let (c0, c1) = pk.encrypt_halves(&m, 1, width, &mut rng).unwrap();
            let d2 = sk.c1_times_s(&c1, width).unwrap();
            for (got, label) in [
                (sk.decrypt_halves(&w, &d).unwrap(), "seeded"),
                (sk.decrypt_halves(&c0, &d2).unwrap(), "public"),
            ] {
                for (g, &want) in got.iter().zip(&m) {
                    let err = (g - i128::from(want)).unsigned_abs() as f64;
                    assert!(err <= bound, "{label} width {width}: error {err}");
                }
            }
        }
    }

    #[test]
    fn mismatched_halves_are_errors() {
        let params = params();
        let a = RnsPoly::zero(&params, 1, 4).unwrap();
        let b = RnsPoly::zero(&params, 1, 5).unwrap();
        let c = RnsPoly::zero(&params, 0, 4).unwrap();
        assert!(a.clone().add_assign(&b).is_err());
        assert!(a.clone().add_assign(&c).is_err());
        assert!(RnsPoly::zero(&params, 0, 0).is_err());
        assert!(RnsPoly::zero(&params, 0, 1025).is_err());
        assert!(RnsPoly::zero(&params, 2, 4).is_err());
        assert!(a.window(5).is_err());
        assert!(c.clone().rescale_assign().is_err());
        assert!(a.clone().add_plain(&[1i64; 5]).is_err());
    }
}
