//! HE→MPC, both parties' halves, and the output (the same conversion without a mask).
//!
//! The server holds ciphertexts of values the client must not see. For an MPC step it adds a
//! fresh public-key encryption of a uniform mask `r` mod q0 to each (mod-dropped to level 0):
//! one addition both re-randomizes (the ciphertext no longer carries the weights' linear
//! combination of the client's ciphertexts) and masks. The client decrypts `x + r` mod q0
//! exactly; the server's share is `−r` (plus the circuit's input offset). For the output the
//! added encryption is of zero, noise-flooded, and the client decrypts in full.
//!
//! Each ciphertext travels in two halves: c1 offline (the server can compute it before the
//! input exists, since the client's c1 are seeds; the client computes c1·s ahead), the c0
//! window over the batch's coefficients online.

use std::sync::Arc;

use mp2ml_ckks::{os_rng, C0Window, C1Half, C1TimesS, Params, PublicKey, RnsPoly, SecretKey};
use mp2ml_ir::circuit::ShareCircuit;
use mp2ml_ir::plan::MpcStep;
use mp2ml_mpc::Channel;
use rand::RngCore;
use rayon::prelude::*;

use crate::error::{Inconsistency, Result};
use crate::plan::ServerSetup;
use crate::shares::uniform_bits;
use crate::wire;

/// Protections of the server's conversions that a leakage test may switch off, to show that
/// its detector fires (positive controls). Set only through
/// `ServerSetup::weaken_for_tests` (feature `test-hooks`, enabled only by the tests package);
/// no CLI flag and no plan field reaches it, and without the feature every field is off.
#[derive(Clone, Debug, Default)]
pub struct Weakened {
    /// HE→MPC masks are r = 0: the client decrypts the step inputs themselves as its shares.
    pub no_share_mask: bool,
    /// The masks (and the output's flood) are added as trivial encryptions (r, 0) instead of
    /// public-key encryptions: c1 is not re-randomized and stays Σ W·a(seed).
    pub no_rerandomize: bool,
    /// When not empty, every c1 half the server sends is replaced by the plaintext polynomial
    /// whose first coefficients are these integers (a weight leaked in the clear).
    pub plant: Vec<i128>,
    /// When set, the server's garbling and GMW randomness (Δ, its seeds, its OT choices) comes
    /// from this fixed seed instead of the OS: the same in every session.
    pub fixed_mpc_rng: Option<u64>,
}

#[cfg(not(feature = "test-hooks"))]
static SHIPPED: Weakened = Weakened {
    no_share_mask: false,
    no_rerandomize: false,
    plant: Vec::new(),
    fixed_mpc_rng: None,
};

impl ServerSetup {
    /// The protections a test switched off; none outside the tests.
    pub(crate) fn weakened(&self) -> &Weakened {
        #[cfg(feature = "test-hooks")]
        return &self.weakened;
        #[cfg(not(feature = "test-hooks"))]
        &SHIPPED
    }
}

impl Weakened {
    /// The server's MPC randomness: fresh from the OS (or fixed, [`Weakened::fixed_mpc_rng`]).
    pub(crate) fn mpc_rng(&self) -> rand_chacha::ChaCha20Rng {
        match self.fixed_mpc_rng {
            Some(s) => rand::SeedableRng::seed_from_u64(s),
            None => os_rng(),
        }
    }
}

/// Server: a public-key encryption of the mask `m` at `level`, split into (c0 window over
/// `width` coefficients, c1); with [`Weakened::no_rerandomize`] the trivial encryption (m, 0).
pub(crate) fn mask_halves<R: rand_core::CryptoRng + ?Sized>(
    pk: &PublicKey,
    m: &[i64],
    level: usize,
    width: usize,
    weak: &Weakened,
    rng: &mut R,
) -> Result<(C0Window, C1Half)> {
    if !weak.no_rerandomize {
        return Ok(pk.encrypt_halves(m, level, width, rng)?);
    }
    let params = pk.params();
    let mut c0 = RnsPoly::zero(params, level, width)?;
    c0.add_plain(m)?;
    let c1 = RnsPoly::zero(params, level, params.n())?;
    Ok((C0Window::new(c0), C1Half::new(c1)?))
}

/// Server: sends a c1 half (or, with [`Weakened::plant`], the planted plaintext in its place).
pub(crate) fn send_c1(ch: &mut impl Channel, c1: &RnsPoly, weak: &Weakened) -> Result<()> {
    if weak.plant.is_empty() {
        return wire::send_poly(ch, c1);
    }
    let mut p = RnsPoly::zero(c1.params(), c1.level(), c1.width())?;
    p.add_plain(&weak.plant[..weak.plant.len().min(c1.width())])?;
    wire::send_poly(ch, &p)
}

/// Server: its material for one MPC step of one group, made before the client's input exists.
pub(crate) struct StepMasks {
    /// For each input value, the uniform mask `r` mod q0 per image.
    pub r: Vec<Vec<i64>>,
    /// For each input value, the c0 window of a fresh public-key encryption of `r` at level 0
    /// (adding it re-randomizes and masks in one addition); made in [`server_offline`], whose
    /// c1 half went to the client there.
    pub pre0: Vec<RnsPoly>,
    /// The server's shares `b̃ = (−r + input_offset) mod q0` per image.
    pub shares: Vec<Vec<u64>>,
    /// Output masks `r'` in `[0, 2^mask_bits)` per output and image (used by MPC→HE).
    pub out: Vec<Vec<u128>>,
}

impl StepMasks {
    /// Draws the masks of `step` for a group of `images` images.
    /// With [`Weakened::no_share_mask`] every r is 0.
    pub fn draw(
        step: &MpcStep,
        sc: &ShareCircuit,
        q0: u64,
        images: usize,
        weak: &Weakened,
        rng: &mut impl RngCore,
    ) -> StepMasks {
        let bits = sc.share_bits;
        // Uniform mod q0 by rejection on `bits` bits (q0 > 2^(bits−1): acceptance > ½). Only
        // the batch's coefficients of c0 ever leave the server, so only they need one.
        let r: Vec<Vec<i64>> = (0..step.values_in)
            .map(|_| {
                (0..images)
                    .map(|_| loop {
                        let x = rng.next_u64() >> (64 - bits);
                        if weak.no_share_mask {
                            break 0;
                        }
                        if x < q0 {
                            break x as i64;
                        }
                    })
                    .collect()
            })
            .collect();
        let shares = r
            .iter()
            .map(|v| {
                v.iter()
                    .map(|&x| {
                        // Below q0 < 2^64: the cast is exact.
                        ((u128::from((q0 - x as u64) % q0) + sc.input_offset) % u128::from(q0))
                            as u64
                    })
                    .collect()
            })
            .collect();
        let out = (0..step.values_out)
            .map(|_| {
                (0..images)
                    .map(|_| uniform_bits(rng, sc.mask_bits))
                    .collect()
            })
            .collect();
        StepMasks {
            r,
            pre0: Vec::new(),
            shares,
            out,
        }
    }
}

/// Server: `count` public-key encryptions of `r[i]` (of zero past `r`'s end, flooded with
/// `flood` bits if given) at `level`, split into (c0 windows over `images` coefficients, c1).
fn encrypt_masks(
    pk: &PublicKey,
    r: &[Vec<i64>],
    count: usize,
    level: usize,
    images: usize,
    flood: Option<u32>,
    weak: &Weakened,
) -> Result<(Vec<RnsPoly>, Vec<RnsPoly>)> {
    (0..count)
        .into_par_iter()
        .map_init(os_rng, |rng, i| {
            let m = r.get(i).map_or(&[][..], Vec::as_slice);
            let (mut c0, c1) = mask_halves(pk, m, level, images, weak, rng)?;
            if let Some(bits) = flood {
                c0.poly_mut().flood(bits, rng)?;
            }
            Ok((c0.into_poly(), c1.into_poly()))
        })
        .collect::<Result<Vec<(RnsPoly, RnsPoly)>>>()
        .map(|v| v.into_iter().unzip())
}

/// Server: `input[gather[i]]` mod-dropped to `level` plus `pre[i]` (a half of a pre-made
/// encryption), in parallel.
fn masked_halves(
    input: &[RnsPoly],
    gather: &[u32],
    pre: &[RnsPoly],
    level: usize,
) -> Result<Vec<RnsPoly>> {
    if gather.len() != pre.len() {
        return Err(Inconsistency::GatherCount {
            gathered: gather.len(),
            masks: pre.len(),
        }
        .into());
    }
    gather
        .par_iter()
        .zip(pre.par_iter())
        .map(|(&e, p)| {
            let x = input.get(e as usize).ok_or(Inconsistency::GatherIndex {
                index: e,
                len: input.len(),
            })?;
            let mut c = x.mod_drop(level)?;
            c.add_assign(p)?;
            Ok(c)
        })
        .collect()
}

/// Server, offline, one MPC step: encrypts the masks of `m` at level 0, keeps their c0
/// windows in `m.pre0` and sends the c1 halves of `input[gather] + Enc(r)`.
pub(crate) fn server_offline(
    ch: &mut impl Channel,
    pk: &PublicKey,
    images: usize,
    m: &mut StepMasks,
    input_c1: &[RnsPoly],
    gather: &[u32],
    weak: &Weakened,
) -> Result<()> {
    let (pre0, pre1) = encrypt_masks(pk, &m.r, m.r.len(), 0, images, None, weak)?;
    m.pre0 = pre0;
    for c in masked_halves(input_c1, gather, &pre1, 0)? {
        send_c1(ch, &c, weak)?;
    }
    Ok(())
}

/// Server, offline, the output: encrypts zero at `level` for every output ciphertext,
/// flooded with `flood_bits`, sends the c1 halves of `out + Enc(0)` and returns the c0
/// windows to add online.
pub(crate) fn server_output_offline(
    ch: &mut impl Channel,
    pk: &PublicKey,
    images: usize,
    out_c1: &[RnsPoly],
    level: usize,
    flood_bits: u32,
    weak: &Weakened,
) -> Result<Vec<RnsPoly>> {
    let (out0, out1) = encrypt_masks(pk, &[], out_c1.len(), level, images, Some(flood_bits), weak)?;
    for c in masked_halves(out_c1, &all(out_c1.len()), &out1, level)? {
        send_c1(ch, &c, weak)?;
    }
    Ok(out0)
}

/// Server, online: sends the c0 windows of `input[gather] + pre0` at `level` (an MPC step's
/// masked inputs at level 0, or the output with its flooding).
pub(crate) fn server_send(
    ch: &mut impl Channel,
    input: &[RnsPoly],
    gather: Option<&[u32]>,
    pre0: &[RnsPoly],
    level: usize,
) -> Result<()> {
    let every;
    let gather = match gather {
        Some(g) => g,
        None => {
            every = all(input.len());
            &every
        }
    };
    for c in &masked_halves(input, gather, pre0, level)? {
        wire::send_poly(ch, c)?;
    }
    ch.flush()?;
    Ok(())
}

fn all(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

/// Client, offline: receives the c1 halves of `count` ciphertexts at `level` and computes
/// c1·s over the first `images` coefficients, ready for the online c0 windows.
pub(crate) fn client_offline(
    ch: &mut impl Channel,
    sk: &SecretKey,
    params: &Arc<Params>,
    level: usize,
    count: usize,
    images: usize,
) -> Result<Vec<C1TimesS>> {
    let c1 = wire::recv_polys(ch, params, level, params.n(), count)?;
    c1.into_par_iter()
        .map(|c| Ok(sk.c1_times_s(&C1Half::new(c)?, images)?))
        .collect()
}

/// Client, online, an MPC step: receives the masked c0 windows and decrypts them into its
/// shares mod q0, one vector over the images per input value.
pub(crate) fn client_shares(
    ch: &mut impl Channel,
    sk: &SecretKey,
    params: &Arc<Params>,
    images: usize,
    c1_times_s: &[C1TimesS],
) -> Result<Vec<Vec<u64>>> {
    let windows = wire::recv_polys(ch, params, 0, images, c1_times_s.len())?;
    windows
        .into_par_iter()
        .zip(c1_times_s.par_iter())
        .map(|(c0, c1s)| Ok(sk.decrypt_halves_mod_q0(&C0Window::new(c0), c1s)?))
        .collect()
}

/// Client, online, the output: receives the flooded c0 windows at `level` and decrypts them
/// (centered), one vector over the images per output element.
pub(crate) fn client_output(
    ch: &mut impl Channel,
    sk: &SecretKey,
    params: &Arc<Params>,
    level: usize,
    images: usize,
    c1_times_s: &[C1TimesS],
) -> Result<Vec<Vec<i128>>> {
    let windows = wire::recv_polys(ch, params, level, images, c1_times_s.len())?;
    windows
        .into_par_iter()
        .zip(c1_times_s.par_iter())
        .map(|(c0, c1s)| sk.decrypt_halves(&C0Window::new(c0), c1s))
        .collect::<Result<_, _>>()
        .map_err(Into::into)
}
