//! MPC→HE, both parties' halves, and the input (the same conversion without a mask).
//!
//! The client encrypts values under its own secret key: its input, and after each MPC step
//! its share `z = y + offset + r'` of the circuit's output, which is masked by the server's
//! `r'`. The server removes offset and mask homomorphically and continues in HE.
//!
//! The encryptions are seeded: c1 = a(seed), so offline the client makes encryptions of zero
//! (the NTT work) and sends their seeds, from which the server expands c1; online the client
//! adds the plaintext to the c0 window over the batch's coefficients and sends only that.

use std::sync::Arc;

use mp2ml_ckks::{os_rng, C0Window, IntCoeff, Params, RnsPoly, SecretKey};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::plan::MpcStep;
use mp2ml_mpc::Channel;
use rayon::prelude::*;

use crate::error::Result;
use crate::wire;

/// Test-only (feature `test-hooks`): the noise the client can compute, per coefficient of its
/// c0 window `w`, for its seeded encryption of zero as it would be after the server's
/// `rescales` entry rescales if the server added nothing: its own e over F plus the rounding
/// of its own c0 and c1 = a(seed). Serves both packings (a window of B coefficients, or N).
#[cfg(feature = "test-hooks")]
pub(crate) fn own_noise(
    sk: &SecretKey,
    seed: &[u8; 32],
    w: &C0Window,
    rescales: usize,
) -> Result<Vec<i64>> {
    use mp2ml_ckks::C1Half;
    let mut c0 = w.poly().clone();
    let mut c1 = RnsPoly::from_seed(sk.params(), c0.level(), seed)?;
    for _ in 0..rescales {
        c0.rescale_assign()?;
        c1.rescale_assign()?;
    }
    let c1s = sk.c1_times_s(&C1Half::new(c1)?, c0.width())?;
    let v = sk.decrypt_halves(&C0Window::new(c0), &c1s)?;
    Ok(v.iter().map(|&x| x as i64).collect())
}

/// Client: seeded encryptions of zero made before their plaintexts exist.
pub(crate) struct Pending {
    /// For each ciphertext, the seed of c1 and the c0 window over the batch's coefficients.
    cts: Vec<([u8; 32], C0Window)>,
}

impl Pending {
    /// Client, offline: `count` seeded encryptions of zero at `level`, keeping the c0 window
    /// over the first `images` coefficients.
    pub fn encrypt_zeros(
        sk: &SecretKey,
        count: usize,
        level: usize,
        images: usize,
    ) -> Result<Pending> {
        let cts = (0..count)
            .into_par_iter()
            .map_init(os_rng, |rng, _| {
                sk.encrypt_seeded_window::<i64, _>(&[], level, images, rng)
            })
            .collect::<Result<_, _>>()?;
        Ok(Pending { cts })
    }

    /// Test-only (feature `test-hooks`): the noise the client can compute for each ciphertext
    /// (`[ciphertext][image]`) as it would be after the server's `rescales` entry rescales if
    /// the server added nothing: its own e over F plus the rounding of its own c0 and
    /// c1 = a(seed). Called before the plaintexts are added (the encryptions are of zero).
    #[cfg(feature = "test-hooks")]
    pub fn own_noise(&self, sk: &SecretKey, rescales: usize) -> Result<Vec<Vec<i64>>> {
        self.cts
            .par_iter()
            .map(|(seed, w)| own_noise(sk, seed, w, rescales))
            .collect()
    }

    /// Number of ciphertexts.
    pub fn len(&self) -> usize {
        self.cts.len()
    }

    /// Client, offline: sends the seeds (the server's c1 halves).
    pub fn send_seeds(&self, ch: &mut impl Channel) -> Result<()> {
        wire::send_seeds(ch, self.cts.iter().map(|(seed, _)| seed))
    }

    /// Client, online: adds plaintext `plain(i)·F` (one value per image) to ciphertext `i` and
    /// sends the c0 windows. F is given by its residues at the ciphertexts' level
    /// ([`Params::factor_residues`]); the product is formed per RNS limb, exact at any size.
    pub fn send<M: IntCoeff>(
        self,
        ch: &mut impl Channel,
        factor: &[u64],
        plain: impl Fn(usize) -> Vec<M> + Sync,
    ) -> Result<()> {
        let windows: Vec<C0Window> = self
            .cts
            .into_par_iter()
            .enumerate()
            .map(|(i, (_, mut w))| {
                w.poly_mut().add_plain_scaled(&plain(i), factor)?;
                Ok(w)
            })
            .collect::<Result<_>>()?;
        for c in &windows {
            wire::send_poly(ch, c.poly())?;
        }
        ch.flush()?;
        Ok(())
    }
}

/// Server, offline: expands seeds into the c1 halves of the client's ciphertexts at `level`.
pub(crate) fn server_expand(
    params: &Arc<Params>,
    seeds: &[[u8; 32]],
    level: usize,
) -> Result<Vec<RnsPoly>> {
    seeds
        .par_iter()
        .map(|s| Ok(RnsPoly::from_seed(params, level, s)?))
        .collect()
}

/// Server, online, an MPC step: receives the client's encryptions of `z = y + offset + r'`
/// (scaled up by `shift` bits and by the entry flood's factor F, the product of the top
/// `rescales` primes of the level) and subtracts `(offset + r')·2^shift·F`, leaving
/// encryptions of the circuit's output `y` (at scale 2^shift·F, until the entry flood's
/// rescales). The products exceed 128 bits, so they are formed per RNS limb.
pub(crate) fn server_unmask(
    ch: &mut impl Channel,
    params: &Arc<Params>,
    step: &MpcStep,
    sc: &ShareCircuit,
    (shift, rescales): (u32, usize),
    images: usize,
    out_masks: &[Vec<u128>],
) -> Result<Vec<RnsPoly>> {
    let factor = params.factor_residues(step.out_level, rescales, shift)?;
    let mut outs = wire::recv_polys(ch, params, step.out_level, images, step.values_out)?;
    outs.par_iter_mut()
        .zip(out_masks.par_iter())
        .try_for_each(|(c, mask)| {
            let sub: Vec<u128> = mask.iter().map(|&r| r + sc.output_offset).collect();
            c.sub_plain_scaled(&sub, &factor)
        })?;
    Ok(outs)
}
