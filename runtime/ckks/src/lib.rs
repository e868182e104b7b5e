//! RNS-CKKS for mp2ml (see `docs/ARCHITECTURE.md`, "Arithmetic").
//!
//! The batch is packed along the batch axis in polynomial **coefficients**: ciphertext i holds
//! tensor element i of up to N images, image j in coefficient j (scaled by Δ). Integer scalar
//! multiplication and addition act coefficient-wise, so a linear layer is an integer matrix
//! product over coefficient vectors modulo each RNS prime ([`linear`]): no NTT on the server's
//! hot path, no rotations, relinearization or key switching. The NTT (`tfhe-ntt`) is used only
//! for the client's encryption/decryption and the server's re-randomization.
//!
//! ```
//! use mp2ml_ckks::*;
//! let primes = ntt_primes(27, 1024, 1, &[]).unwrap();
//! let params = Params::new_secure(1024, &primes, SecurityLevel::Bits128).unwrap();
//! let mut rng = os_rng();
//! let sk = SecretKey::generate(&params, &mut rng);
//! let pk = PublicKey::generate(&sk, &mut rng);
//! let ct = pk.encrypt(&[5i64, -7], 0, &mut rng).unwrap();
//! let y = ct.mul_scalar(3);
//! let m = sk.decrypt(&y).unwrap();
//! assert!((m[0] - 15).abs() < 3 * 1000 && (m[1] + 21).abs() < 3 * 1000);
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod arith;
mod ciphertext;
mod error;
mod keys;
mod linear;
pub mod noise;
mod ops;
mod params;
mod poly;
mod polymul;
mod sample;
mod serial;

pub use arith::is_prime;
pub use ciphertext::{Ciphertext, IntCoeff, SeededCiphertext};
pub use error::{DecodeError, Error, Result};
pub use keys::{PublicKey, SecretKey};
pub use linear::{linear, linear_polys, CsrMatrix, RowBias};
pub use params::{max_log_q, ntt_primes, Params, SecurityLevel, MAX_MODULI};
pub use poly::{C0Window, C1Half, C1TimesS, RnsPoly};
pub use polymul::{poly_dot, NttPoly};
pub use sample::{error_std_dev, os_rng, CBD_ETA};

/// Negacyclic product of two polynomials modulo prime number `limb` of `params` (coefficient
/// form, residues < q_limb), via the NTT. Exposed for tests and tools.
pub fn negacyclic_mul(params: &Params, limb: usize, a: &[u64], b: &[u64]) -> Result<Vec<u64>> {
    params.check_level(limb)?;
    if a.len() != params.n() || b.len() != params.n() {
        return Err(Error::LengthMismatch {
            expected: params.n(),
            actual: a.len().min(b.len()),
        });
    }
    let q = params.moduli()[limb];
    let mut x: Vec<u64> = a.iter().map(|v| v % q).collect();
    let y: Vec<u64> = b.iter().map(|v| v % q).collect();
    params.mul_limb(limb, &mut x, &y);
    Ok(x)
}
