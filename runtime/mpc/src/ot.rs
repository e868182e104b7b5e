//! Oblivious transfer: Chou–Orlandi base OT on ristretto255 and IKNP OT extension.
//!
//! * [`base_ot_send`] / [`base_ot_receive`]: the "simplest OT" (Chou, Orlandi, LATINCRYPT 2015),
//!   semi-honest. The sender draws `a`, sends `A = aG`; for choice `c_i` the receiver draws
//!   `b_i`, sends `B_i = b_i G + c_i A`; keys are `k_0 = H(i, A, B_i, a B_i)`,
//!   `k_1 = H(i, A, B_i, a (B_i − A))` and the receiver computes `k_{c_i} = H(i, A, B_i, b_i A)`
//!   (H = SHA-256 truncated to 128 bits).
//! * [`IknpSender`] / [`IknpReceiver`]: IKNP extension (Ishai, Kilian, Nissim, Petrank 2003) with
//!   κ = 128 base OTs in which the roles are reversed: the extension sender picks `s`, learns
//!   `k_i^{s_i}`. For `m` OTs the receiver with choice vector `r` sends the columns
//!   `u^i = G(k_i^0) ⊕ G(k_i^1) ⊕ r`; the sender sets `q^i = G(k_i^{s_i}) ⊕ s_i u^i`, so after the
//!   bit-matrix transpose row `q_j = t_j ⊕ r_j s`. Random OT pads are
//!   `(H(q_j, j), H(q_j ⊕ s, j))` for the sender and `H(t_j, j)` for the receiver, with H the
//!   correlation-robust fixed-key hash and `j` a global OT index (never reused for one `s`).
//! * [`derandomize_send`] / [`derandomize_receive`]: turn random OTs (offline) into chosen-message
//!   OTs (online): the receiver sends `d_j = c_j ⊕ r_j`, the sender sends
//!   `y_b = m_b ⊕ pad_{b ⊕ d_j}` for `b ∈ {0, 1}`, and the receiver outputs `y_{c_j} ⊕ pad_{r_j}`.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::crypto::{mask, pack_bits, transpose128, unpack_bits, FixedKeyHash, Prg};
use crate::error::{MpcError, Result};

/// Security parameter κ: number of base OTs and width of an IKNP row.
pub const KAPPA: usize = 128;

fn random_scalar(rng: &mut impl RngCore) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// Key `i` from the transcript and the shared point, given as `compress(2 P)` (computed in
/// batches with one field inversion; `P ↦ 2P` is injective on ristretto255).
fn key_hash(
    i: usize,
    a: &CompressedRistretto,
    b: &CompressedRistretto,
    p2: &CompressedRistretto,
) -> u128 {
    let mut h = Sha256::new();
    h.update(b"mp2ml simplest-OT v1");
    h.update((i as u64).to_le_bytes());
    h.update(a.as_bytes());
    h.update(b.as_bytes());
    h.update(p2.as_bytes());
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    u128::from_le_bytes(k)
}

fn decode_point(raw: [u8; 32]) -> Result<(CompressedRistretto, RistrettoPoint)> {
    let c = CompressedRistretto(raw);
    let p = c
        .decompress()
        .ok_or_else(|| MpcError::Protocol("base OT: invalid ristretto255 point".into()))?;
    Ok((c, p))
}

/// Base OT, sender side: returns `n` pairs of random 128-bit keys; the receiver learns one key
/// of each pair.
pub fn base_ot_send(
    ch: &mut impl Channel,
    rng: &mut impl RngCore,
    n: usize,
) -> Result<Vec<(u128, u128)>> {
    let a = random_scalar(rng);
    let big_a = RistrettoPoint::mul_base(&a);
    let ca = big_a.compress();
    ch.send(ca.as_bytes())?;
    ch.flush()?;
    let a_a = a * big_a;
    let mut bs = Vec::with_capacity(n);
    let mut shared = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let mut raw = [0u8; 32];
        ch.recv(&mut raw)?;
        let (cb, b) = decode_point(raw)?;
        // a B_i = a b_i G + c_i a A: equals b_i A if c_i = 0; a (B_i − A) equals b_i A if c_i = 1.
        let p = a * b;
        shared.push(p);
        shared.push(p - a_a);
        bs.push(cb);
    }
    let p2 = RistrettoPoint::double_and_compress_batch(&shared);
    Ok(bs
        .iter()
        .enumerate()
        .map(|(i, cb)| {
            (
                key_hash(i, &ca, cb, &p2[2 * i]),
                key_hash(i, &ca, cb, &p2[2 * i + 1]),
            )
        })
        .collect())
}

/// Base OT, receiver side: returns key `c_i` of the sender's pair `i`.
pub fn base_ot_receive(
    ch: &mut impl Channel,
    rng: &mut impl RngCore,
    choices: &[bool],
) -> Result<Vec<u128>> {
    let mut raw = [0u8; 32];
    ch.recv(&mut raw)?;
    let (ca, big_a) = decode_point(raw)?;
    // B_i = b_i G + c_i A is sent as compress(2 H_i) with H_i = (b_i / 2) G + c_i (A / 2), so
    // all the B_i are encoded with one inversion.
    let half = Scalar::from(2u8).invert();
    let half_a = half * big_a;
    let mut bs = Vec::with_capacity(choices.len());
    let mut hs = Vec::with_capacity(choices.len());
    for &c in choices {
        let b = random_scalar(rng);
        let mut h = RistrettoPoint::mul_base(&(half * b));
        if c {
            h += half_a;
        }
        hs.push(h);
        bs.push(b);
    }
    let cbs = RistrettoPoint::double_and_compress_batch(&hs);
    for cb in &cbs {
        ch.send(cb.as_bytes())?;
    }
    ch.flush()?;
    // The sender works on the B_i while we compute b_i A.
    let shared: Vec<RistrettoPoint> = bs.iter().map(|b| b * big_a).collect();
    let p2 = RistrettoPoint::double_and_compress_batch(&shared);
    Ok(cbs
        .iter()
        .zip(&p2)
        .enumerate()
        .map(|(i, (cb, p))| key_hash(i, &ca, cb, p))
        .collect())
}

/// Transposes the 128 columns (each `blocks` u128 long, bit `j` of the column = OT `j`) into
/// one 128-bit row per OT.
fn columns_to_rows(cols: &[Vec<u128>], blocks: usize) -> Vec<u128> {
    let mut rows = Vec::with_capacity(blocks * KAPPA);
    let mut m = [0u128; KAPPA];
    for b in 0..blocks {
        for (dst, col) in m.iter_mut().zip(cols) {
            *dst = col[b];
        }
        transpose128(&mut m);
        rows.extend_from_slice(&m);
    }
    rows
}

/// IKNP sender (the garbler): holds `s` and the seeds `k_i^{s_i}`.
#[derive(Debug)]
pub struct IknpSender {
    s: u128,
    prgs: Vec<Prg>,
    /// Blocks of each column PRG used so far.
    offset: u64,
    /// OTs extended so far (the hash tweak of the next one).
    index: u64,
    hash: FixedKeyHash,
}

/// IKNP receiver (the evaluator): holds both seeds of every base OT.
#[derive(Debug)]
pub struct IknpReceiver {
    prgs: Vec<(Prg, Prg)>,
    offset: u64,
    index: u64,
    hash: FixedKeyHash,
}

impl IknpSender {
    /// Runs the κ base OTs (as base-OT receiver with choice bits `s`).
    pub fn setup(ch: &mut impl Channel, rng: &mut impl RngCore) -> Result<Self> {
        let mut sb = [0u8; 16];
        rng.fill_bytes(&mut sb);
        let s = u128::from_le_bytes(sb);
        let choices: Vec<bool> = (0..KAPPA).map(|i| (s >> i) & 1 == 1).collect();
        let keys = base_ot_receive(ch, rng, &choices)?;
        Ok(IknpSender {
            s,
            prgs: keys.into_iter().map(Prg::new).collect(),
            offset: 0,
            index: 0,
            hash: FixedKeyHash::new(),
        })
    }

    /// Extends to `m` random OTs: returns the sender's pads `(H(q_j, j), H(q_j ⊕ s, j))`.
    pub fn extend_random(&mut self, ch: &mut impl Channel, m: usize) -> Result<Vec<(u128, u128)>> {
        let blocks = m.div_ceil(KAPPA);
        let mut cols = Vec::with_capacity(KAPPA);
        let mut u = vec![0u128; blocks];
        for (i, prg) in self.prgs.iter().enumerate() {
            ch.recv_blocks(&mut u)?;
            let mut q = vec![0u128; blocks];
            prg.fill(self.offset, &mut q);
            // q^i = G(k_i^{s_i}) ⊕ s_i u^i = t^i ⊕ s_i r.
            let si = mask((self.s >> i) & 1 == 1);
            for (qv, uv) in q.iter_mut().zip(&u) {
                *qv ^= si & uv;
            }
            cols.push(q);
        }
        self.offset += blocks as u64;
        let mut q0 = columns_to_rows(&cols, blocks);
        q0.truncate(m);
        let mut q1: Vec<u128> = q0.iter().map(|q| q ^ self.s).collect();
        let base = u128::from(self.index);
        let mut scratch = Vec::new();
        self.hash
            .hash_many(&mut q0, |j| base + j as u128, &mut scratch);
        self.hash
            .hash_many(&mut q1, |j| base + j as u128, &mut scratch);
        self.index += m as u64;
        Ok(q0.into_iter().zip(q1).collect())
    }

    /// Chosen-message OT: the receiver (calling [`IknpReceiver::receive`]) learns `msgs[j].c_j`.
    pub fn send(&mut self, ch: &mut impl Channel, msgs: &[(u128, u128)]) -> Result<()> {
        let pads = self.extend_random(ch, msgs.len())?;
        let mut out = Vec::with_capacity(2 * msgs.len());
        for ((m0, m1), (p0, p1)) in msgs.iter().zip(&pads) {
            out.push(m0 ^ p0);
            out.push(m1 ^ p1);
        }
        ch.send_blocks(&out)?;
        ch.flush()
    }
}

impl IknpReceiver {
    /// Runs the κ base OTs (as base-OT sender).
    pub fn setup(ch: &mut impl Channel, rng: &mut impl RngCore) -> Result<Self> {
        let keys = base_ot_send(ch, rng, KAPPA)?;
        Ok(IknpReceiver {
            prgs: keys
                .into_iter()
                .map(|(k0, k1)| (Prg::new(k0), Prg::new(k1)))
                .collect(),
            offset: 0,
            index: 0,
            hash: FixedKeyHash::new(),
        })
    }

    /// Extends to random OTs with the given choice bits: returns `H(t_j, j)`, equal to the
    /// sender's pad number `choices[j]`.
    pub fn extend_random(&mut self, ch: &mut impl Channel, choices: &[bool]) -> Result<Vec<u128>> {
        let m = choices.len();
        let blocks = m.div_ceil(KAPPA);
        let mut r = vec![0u128; blocks];
        for (j, &c) in choices.iter().enumerate() {
            r[j / KAPPA] |= u128::from(c) << (j % KAPPA);
        }
        let mut cols = Vec::with_capacity(KAPPA);
        let mut g1 = vec![0u128; blocks];
        for (p0, p1) in &self.prgs {
            let mut t = vec![0u128; blocks];
            p0.fill(self.offset, &mut t);
            p1.fill(self.offset, &mut g1);
            // u^i = G(k_i^0) ⊕ G(k_i^1) ⊕ r.
            for ((gv, tv), rv) in g1.iter_mut().zip(&t).zip(&r) {
                *gv ^= tv ^ rv;
            }
            ch.send_blocks(&g1)?;
            cols.push(t);
        }
        ch.flush()?;
        self.offset += blocks as u64;
        let mut t = columns_to_rows(&cols, blocks);
        t.truncate(m);
        let base = u128::from(self.index);
        self.hash
            .hash_many(&mut t, |j| base + j as u128, &mut Vec::new());
        self.index += m as u64;
        Ok(t)
    }

    /// Chosen-message OT: returns `msgs[j].choices[j]` of the sender's [`IknpSender::send`].
    pub fn receive(&mut self, ch: &mut impl Channel, choices: &[bool]) -> Result<Vec<u128>> {
        let pads = self.extend_random(ch, choices)?;
        let mut y = vec![0u128; 2 * choices.len()];
        ch.recv_blocks(&mut y)?;
        Ok(choices
            .iter()
            .zip(&pads)
            .zip(y.chunks_exact(2))
            .map(|((&c, p), y)| p ^ if c { y[1] } else { y[0] })
            .collect())
    }
}

/// Online half of a derandomized OT, sender side: receives the correction bits and sends
/// `y_b = msgs[j].b ⊕ pad_{b ⊕ d_j}` (two blocks per OT).
pub fn derandomize_send(
    ch: &mut impl Channel,
    pads: &[(u128, u128)],
    msgs: &[(u128, u128)],
) -> Result<()> {
    if pads.len() != msgs.len() {
        return Err(MpcError::Mismatch(format!(
            "{} random OTs for {} messages",
            pads.len(),
            msgs.len()
        )));
    }
    let mut raw = vec![0u8; msgs.len().div_ceil(8)];
    ch.recv(&mut raw)?;
    let d = unpack_bits(&raw, msgs.len())
        .ok_or_else(|| MpcError::Protocol("correction bits".into()))?;
    let mut y = Vec::with_capacity(2 * msgs.len());
    for ((&(m0, m1), &(p0, p1)), &dj) in msgs.iter().zip(pads).zip(&d) {
        let (pad_for_0, pad_for_1) = if dj { (p1, p0) } else { (p0, p1) };
        y.push(m0 ^ pad_for_0);
        y.push(m1 ^ pad_for_1);
    }
    ch.send_blocks(&y)?;
    ch.flush()
}

/// Online half of a derandomized OT, receiver side: `random_choices` and `pads` come from
/// [`IknpReceiver::extend_random`]; returns message `choices[j]` of every pair.
pub fn derandomize_receive(
    ch: &mut impl Channel,
    random_choices: &[bool],
    pads: &[u128],
    choices: &[bool],
) -> Result<Vec<u128>> {
    if random_choices.len() != choices.len() || pads.len() != choices.len() {
        return Err(MpcError::Mismatch(format!(
            "{} random OTs for {} choices",
            pads.len(),
            choices.len()
        )));
    }
    let d: Vec<bool> = choices
        .iter()
        .zip(random_choices)
        .map(|(c, r)| c ^ r)
        .collect();
    ch.send(&pack_bits(&d))?;
    ch.flush()?;
    let mut y = vec![0u128; 2 * choices.len()];
    ch.recv_blocks(&mut y)?;
    Ok(choices
        .iter()
        .zip(pads)
        .zip(y.chunks_exact(2))
        .map(|((&c, p), y)| p ^ if c { y[1] } else { y[0] })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelConfig, MemChannel};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn base_ot_delivers_exactly_the_chosen_keys() {
        let (mut a, mut b) = MemChannel::pair(ChannelConfig::default());
        let choices: Vec<bool> = (0..128).map(|i| i % 3 == 1).collect();
        let c2 = choices.clone();
        let t = std::thread::spawn(move || {
            base_ot_receive(&mut b, &mut ChaCha20Rng::seed_from_u64(2), &c2)
        });
        let keys = base_ot_send(&mut a, &mut ChaCha20Rng::seed_from_u64(1), 128).expect("send");
        let got = t.join().expect("thread").expect("receive");
        for ((k0, k1), (g, c)) in keys.iter().zip(got.iter().zip(&choices)) {
            assert_ne!(k0, k1);
            assert_eq!(g, if *c { k1 } else { k0 });
            assert_ne!(g, if *c { k0 } else { k1 });
        }
    }

    #[test]
    fn base_ot_rejects_bad_points() {
        let (mut a, mut b) = MemChannel::pair(ChannelConfig::default());
        // 0xff.. is not a canonical ristretto255 encoding.
        a.send(&[0xff; 32]).expect("send");
        a.flush().expect("flush");
        let r = base_ot_receive(&mut b, &mut ChaCha20Rng::seed_from_u64(2), &[true]);
        assert!(matches!(r, Err(MpcError::Protocol(_))));
    }

    #[test]
    fn iknp_random_and_chosen_ots() {
        let (mut a, mut b) = MemChannel::pair(ChannelConfig::default());
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let choices: Vec<bool> = (0..1000).map(|_| rng.random()).collect();
        let more: Vec<bool> = (0..300).map(|_| rng.random()).collect();
        let msgs: Vec<(u128, u128)> = (0..300).map(|_| (rng.random(), rng.random())).collect();
        let (c1, c2, m2) = (choices.clone(), more.clone(), msgs.clone());
        let t = std::thread::spawn(move || -> Result<(Vec<u128>, Vec<u128>)> {
            let mut rng = ChaCha20Rng::seed_from_u64(9);
            let mut recv = IknpReceiver::setup(&mut b, &mut rng)?;
            let pads = recv.extend_random(&mut b, &c1)?;
            let chosen = recv.receive(&mut b, &c2)?;
            Ok((pads, chosen))
        });
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let mut send = IknpSender::setup(&mut a, &mut rng).expect("setup");
        let pads = send.extend_random(&mut a, 1000).expect("extend");
        send.send(&mut a, &m2).expect("send");
        let (rpads, chosen) = t.join().expect("thread").expect("receiver");
        for ((&(p0, p1), &r), &c) in pads.iter().zip(&rpads).zip(&choices) {
            assert_ne!(p0, p1);
            assert_eq!(r, if c { p1 } else { p0 });
            // The other pad is not the received one nor a fixed offset of it.
            assert_ne!(r, if c { p0 } else { p1 });
        }
        let offsets: std::collections::HashSet<u128> =
            pads.iter().map(|(p0, p1)| p0 ^ p1).collect();
        assert_eq!(
            offsets.len(),
            pads.len(),
            "pad pairs must not share a correlation"
        );
        for ((&(m0, m1), &c), &g) in msgs.iter().zip(&more).zip(&chosen) {
            assert_eq!(g, if c { m1 } else { m0 });
        }
    }

    #[test]
    fn derandomized_ots() {
        let (mut a, mut b) = MemChannel::pair(ChannelConfig::default());
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let n = 517;
        let rand_choices: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let choices: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let msgs: Vec<(u128, u128)> = (0..n).map(|_| (rng.random(), rng.random())).collect();
        let (rc, cc) = (rand_choices.clone(), choices.clone());
        let t = std::thread::spawn(move || -> Result<Vec<u128>> {
            let mut rng = ChaCha20Rng::seed_from_u64(19);
            let mut recv = IknpReceiver::setup(&mut b, &mut rng)?;
            let pads = recv.extend_random(&mut b, &rc)?;
            derandomize_receive(&mut b, &rc, &pads, &cc)
        });
        let mut send =
            IknpSender::setup(&mut a, &mut ChaCha20Rng::seed_from_u64(18)).expect("setup");
        let pads = send.extend_random(&mut a, n).expect("extend");
        derandomize_send(&mut a, &pads, &msgs).expect("derandomize");
        let got = t.join().expect("thread").expect("receiver");
        for ((&(m0, m1), &c), &g) in msgs.iter().zip(&choices).zip(&got) {
            assert_eq!(g, if c { m1 } else { m0 });
            assert_ne!(g, if c { m0 } else { m1 });
        }
    }
}
