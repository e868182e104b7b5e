//! Secret and public keys.

use std::fmt;
use std::sync::Arc;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::params::Params;
use crate::sample::{cbd, expand_seed, small_to_rns, ternary};

/// The client's secret key: a uniform ternary polynomial s ∈ {−1, 0, 1}^N, kept in coefficient
/// form and as NTT images modulo every prime. Overwritten with zeros on drop.
pub struct SecretKey {
    pub(crate) params: Arc<Params>,
    pub(crate) s: Vec<i8>,
    /// NTT(s mod q_j) for every j, limb-major ((L + 1)·N words).
    pub(crate) s_ntt: Vec<u64>,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.s.zeroize();
        self.s_ntt.zeroize();
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Samples a uniform ternary secret.
    pub fn generate<R: CryptoRng + ?Sized>(params: &Arc<Params>, rng: &mut R) -> SecretKey {
        let n = params.n();
        let s = ternary(rng, n);
        let mut s_ntt = vec![0u64; n * params.moduli().len()];
        small_to_rns(&s, &params.mods, &mut s_ntt);
        for (j, limb) in s_ntt.chunks_exact_mut(n).enumerate() {
            params.fwd_limb(j, limb);
        }
        SecretKey {
            params: params.clone(),
            s,
            s_ntt,
        }
    }

    /// The parameters this key belongs to.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
}

/// The public key (b, a) = (−a·s + e, a) modulo Q_L, with a expanded from a 32-byte seed
/// (so it serializes as b and the seed). Encryption at level ℓ uses its first ℓ + 1 limbs.
#[derive(Clone)]
pub struct PublicKey {
    pub(crate) params: Arc<Params>,
    pub(crate) seed: [u8; 32],
    /// b in coefficient form, limb-major.
    pub(crate) b: Vec<u64>,
    pub(crate) a_ntt: Vec<u64>,
    pub(crate) b_ntt: Vec<u64>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Public key for `sk`: a uniform (from a fresh seed), e centered binomial (σ ≈ 3.24).
    pub fn generate<R: CryptoRng + ?Sized>(sk: &SecretKey, rng: &mut R) -> PublicKey {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let params = &sk.params;
        let n = params.n();
        let e = cbd(rng, n);
        let mut e_rns = vec![0u64; n * params.moduli().len()];
        small_to_rns(&e, &params.mods, &mut e_rns);
        let a = expand_seed(&seed, &params.mods, n);
        let mut b = Vec::with_capacity(a.len());
        for (j, m) in params.mods.iter().enumerate() {
            let range = j * n..(j + 1) * n;
            let mut t = a[range.clone()].to_vec();
            params.mul_limb_ntt(j, &mut t, &sk.s_ntt[range.clone()]);
            // b = −a·s + e
            b.extend(t.iter().zip(&e_rns[range]).map(|(&as_, &e)| m.sub(e, as_)));
        }
        PublicKey::from_parts(params.clone(), seed, b)
    }

    pub(crate) fn from_parts(params: Arc<Params>, seed: [u8; 32], b: Vec<u64>) -> PublicKey {
        let n = params.n();
        let mut a_ntt = expand_seed(&seed, &params.mods, n);
        let mut b_ntt = b.clone();
        for (j, (la, lb)) in a_ntt
            .chunks_exact_mut(n)
            .zip(b_ntt.chunks_exact_mut(n))
            .enumerate()
        {
            params.fwd_limb(j, la);
            params.fwd_limb(j, lb);
        }
        PublicKey {
            params,
            seed,
            b,
            a_ntt,
            b_ntt,
        }
    }

    /// The parameters this key belongs to.
    pub fn params(&self) -> &Arc<Params> {
        &self.params
    }
}
