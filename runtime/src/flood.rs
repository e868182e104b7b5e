//! The entry flood (docs/ARCHITECTURE.md, "Flooding the noise the client can correlate").
//!
//! The client encrypts every value it sends (its input, its re-encrypted circuit outputs) at
//! scale Δ_t·F, F the product of the `rescales` primes above the tensor's working level
//! (`Params::factor_residues(level, rescales, shift)`). Before any weight touches such a
//! ciphertext the server adds a public-key encryption of a flood f uniform in
//! [−2^bits, 2^bits], bits = σ_v + ⌈log2 B_fresh⌉, and rescales `rescales` times ([`apply`]):
//! - the client's own noise e is hidden in e + f (statistical distance ≤ B_fresh/2^bits =
//!   2^-σ_v per coefficient);
//! - the public-key encryption replaces the client's c1 = a(seed) by a(seed) + a_pk·u + e1, so
//!   the rounding of the rescales is no longer the client's to compute;
//! - F > 2^(bits+1), so after the rescales the flood is below ½ at scale Δ_t.
//!
//! Both halves of a ciphertext go through [`apply`] with the matching half of the same
//! pre-made encryption ([`draw`]): c1 in the offline pass, the c0 part online. The functions
//! act on one [`RnsPoly`] of any width and never look at how values sit in it, so they serve
//! both packings: in batch packing c0 is a window of B coefficients (one per image), in image
//! packing it is the whole polynomial (`width` = N), flooded before the first polynomial
//! product.

use mp2ml_ckks::{os_rng, PublicKey, RnsPoly};
use rayon::prelude::*;

use crate::error::{Inconsistency, Result};

/// Pre-made entry floods of one tensor: the c0 parts (kept by the server until the client's
/// c0 arrive) and the c1 halves (applied in the offline pass).
pub struct EntryFloods {
    /// c0 of each encryption, over its first `width` coefficients.
    pub c0: Vec<RnsPoly>,
    /// c1 of each encryption, in full.
    pub c1: Vec<RnsPoly>,
}

/// Server, offline: `count` public-key encryptions of fresh floods of `bits` bits at `level`,
/// as c0 over the first `width` coefficients and c1 in full.
pub fn draw(
    pk: &PublicKey,
    count: usize,
    level: usize,
    width: usize,
    bits: u32,
) -> Result<EntryFloods> {
    let pairs = (0..count)
        .into_par_iter()
        .map_init(os_rng, |rng, _| -> Result<(RnsPoly, RnsPoly)> {
            let (mut c0, c1) = pk.encrypt_halves::<i64, _>(&[], level, width, rng)?;
            c0.poly_mut().flood(bits, rng)?;
            Ok((c0.into_poly(), c1.into_poly()))
        })
        .collect::<Result<Vec<_>>>()?;
    let (c0, c1) = pairs.into_iter().unzip();
    Ok(EntryFloods { c0, c1 })
}

/// Server: adds the pre-made half `pre` (from [`draw`]; `None` only in the tests' unflooded
/// control) to one ciphertext half and rescales it `rescales` times, back to the tensor's
/// working level.
pub fn apply(half: &mut RnsPoly, pre: Option<&RnsPoly>, rescales: usize) -> Result<()> {
    if let Some(p) = pre {
        half.add_assign(p)?;
    }
    for _ in 0..rescales {
        half.rescale_assign()?;
    }
    Ok(())
}

/// [`apply`] over a tensor's ciphertext halves, in parallel.
pub fn apply_all(halves: &mut [RnsPoly], pre: Option<&[RnsPoly]>, rescales: usize) -> Result<()> {
    if let Some(p) = pre {
        if p.len() != halves.len() {
            return Err(Inconsistency::EntryFloods {
                floods: p.len(),
                ciphertexts: halves.len(),
            }
            .into());
        }
    }
    halves
        .par_iter_mut()
        .enumerate()
        .try_for_each(|(i, h)| apply(h, pre.map(|p| &p[i]), rescales))
}
