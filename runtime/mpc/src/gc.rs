//! Half-gates garbling and evaluation of one circuit over a chunk of instances, gate by gate.
//!
//! Notation (Zahur, Rosulek, Evans, "Two halves make a whole", EUROCRYPT 2015): `R` is the
//! global free-XOR offset with lsb(R) = 1; wire `w` has labels `W_w^0` and `W_w^1 = W_w^0 ⊕ R`;
//! the permute bit of `w` is `p_w = lsb(W_w^0)`, and the evaluator, holding `W_w^x`, sees the
//! colour `s_w = lsb(W_w^x) = p_w ⊕ x`. H is the tweakable circular correlation-robust hash of
//! [`FixedKeyHash`].
//!
//! Layout: labels are wire-major, `labels[w * n + t]` for instance `t` of the `n` in the chunk.
//! The garbled tables of a chunk are gate-major: for the `k`-th AND gate, instance `t` owns
//! blocks `2 (k n + t)` (T_G) and `2 (k n + t) + 1` (T_E). The AND gate `k` of global instance
//! `T` uses gate id `g = T · ands + k` and tweaks `j = 2g`, `j' = 2g + 1`, unique per garbling.

use mp2ml_ir::circuit::{Circuit, Gate};

use crate::crypto::{lsb, mask, FixedKeyHash};
use crate::error::{MpcError, Result};

fn check_labels(c: &Circuit, n: usize, len: usize) -> Result<()> {
    c.validate()?;
    if Some(len) != (c.num_wires() as usize).checked_mul(n) {
        return Err(MpcError::Protocol(format!(
            "{len} labels for {n} instances of `{}`",
            c.name
        )));
    }
    Ok(())
}

/// Instances per hash batch inside a gate (4 blocks each when garbling).
const SUB: usize = 256;

/// Number of AND gates.
pub fn and_count(c: &Circuit) -> usize {
    c.gates
        .iter()
        .filter(|g| matches!(g, Gate::And(..)))
        .count()
}

/// Splits `labels` so that wire `out`'s slice is mutable and everything before it readable.
/// The circuit is validated, so gate inputs are below `out`.
#[inline(always)]
fn split(labels: &mut [u128], n: usize, out: usize) -> (&[u128], &mut [u128]) {
    let (before, after) = labels.split_at_mut(out * n);
    (before, &mut after[..n])
}

#[inline(always)]
fn wire(before: &[u128], n: usize, w: u32) -> &[u128] {
    &before[w as usize * n..(w as usize + 1) * n]
}

/// One chunk of a batch: `n` instances, the global instances `first .. first + n`. `first`
/// fixes the chunk's gate ids `g = T · ands + k` and with them its hash tweaks, so the garbler
/// and the evaluator must name a chunk alike, and chunks garbled under one R must not overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Global index of the chunk's first instance.
    pub first: u64,
    /// Instances in the chunk.
    pub n: usize,
}

/// Scratch space reused across gates and chunks.
#[derive(Default, Debug)]
pub struct Scratch {
    hashes: Vec<u128>,
    aes: Vec<u128>,
}

/// Garbles one [`Chunk`] of `n` instances of a circuit that passed [`Circuit::validate`].
///
/// `labels` holds `num_wires · n` blocks with the input wires' zero labels already set; on
/// return every wire's zero label is set. `tables` is cleared and filled with `2 · ands · n`
/// blocks. `delta` (R) must have lsb 1 and stay secret; chunks must not overlap under one
/// `delta` (they fix the hash tweaks).
///
/// # Errors
/// [`MpcError::Protocol`] if `labels` has the wrong length.
pub fn garble_chunk(
    c: &Circuit,
    hash: &FixedKeyHash,
    delta: u128,
    chunk: Chunk,
    labels: &mut [u128],
    tables: &mut Vec<u128>,
    scratch: &mut Scratch,
) -> Result<()> {
    let Chunk { first, n } = chunk;
    check_labels(c, n, labels.len())?;
    let ands = and_count(c) as u128;
    let base = c.num_inputs() as usize;
    tables.clear();
    tables.reserve(2 * and_count(c) * n);
    let mut k: u128 = 0;
    for (i, g) in c.gates.iter().enumerate() {
        let (before, out) = split(labels, n, base + i);
        match *g {
            Gate::Xor(a, b) => {
                for ((o, x), y) in out
                    .iter_mut()
                    .zip(wire(before, n, a))
                    .zip(wire(before, n, b))
                {
                    *o = x ^ y;
                }
            }
            Gate::Inv(a) => {
                // NOT flips the meaning of the labels: W_c^0 = W_a^1 = W_a^0 ⊕ R.
                for (o, x) in out.iter_mut().zip(wire(before, n, a)) {
                    *o = x ^ delta;
                }
            }
            Gate::And(a, b) => {
                let (wa, wb) = (wire(before, n, a), wire(before, n, b));
                let mut t0 = 0;
                while t0 < n {
                    let m = SUB.min(n - t0);
                    let h = &mut scratch.hashes;
                    h.clear();
                    for t in t0..t0 + m {
                        let (a0, b0) = (wa[t], wb[t]);
                        h.extend_from_slice(&[a0, a0 ^ delta, b0, b0 ^ delta]);
                    }
                    // Inputs 4u..4u+4 are (W_a^0, W_a^1, W_b^0, W_b^1) of instance t0 + u; the
                    // first two are hashed under j = 2g, the last two under j' = 2g + 1.
                    let g0 = (u128::from(first) + t0 as u128) * ands + k;
                    hash.hash_many(
                        h,
                        |idx| 2 * (g0 + (idx / 4) as u128 * ands) + ((idx >> 1) & 1) as u128,
                        &mut scratch.aes,
                    );
                    for (u, hs) in h.chunks_exact(4).enumerate() {
                        let t = t0 + u;
                        let (a0, b0) = (wa[t], wb[t]);
                        let (pa, pb) = (lsb(a0), lsb(b0));
                        // Generator half gate (garbler knows p_b):
                        //   T_G = H(W_a^0, j) ⊕ H(W_a^1, j) ⊕ p_b R
                        //   W_G^0 = H(W_a^0, j) ⊕ p_a T_G
                        let tg = hs[0] ^ hs[1] ^ (mask(pb) & delta);
                        let wg = hs[0] ^ (mask(pa) & tg);
                        // Evaluator half gate (evaluator knows b ⊕ p_b = s_b):
                        //   T_E = H(W_b^0, j') ⊕ H(W_b^1, j') ⊕ W_a^0
                        //   W_E^0 = H(W_b^0, j') ⊕ p_b (T_E ⊕ W_a^0)
                        let te = hs[2] ^ hs[3] ^ a0;
                        let we = hs[2] ^ (mask(pb) & (te ^ a0));
                        // W_c^0 = W_G^0 ⊕ W_E^0.
                        out[t] = wg ^ we;
                        tables.push(tg);
                        tables.push(te);
                    }
                    t0 += m;
                }
                k += 1;
            }
        }
    }
    Ok(())
}

/// Evaluates one [`Chunk`] of `n` instances garbled by [`garble_chunk`] as the same chunk.
///
/// `labels` holds `num_wires · n` blocks with the input wires' active labels set; on return
/// every wire's active label is set. `tables` holds the chunk's `2 · ands · n` blocks.
///
/// # Errors
/// [`MpcError::Protocol`] if `labels` or `tables` has the wrong length.
pub fn eval_chunk(
    c: &Circuit,
    hash: &FixedKeyHash,
    chunk: Chunk,
    labels: &mut [u128],
    tables: &[u128],
    scratch: &mut Scratch,
) -> Result<()> {
    let Chunk { first, n } = chunk;
    check_labels(c, n, labels.len())?;
    if tables.len() != 2 * and_count(c) * n {
        return Err(MpcError::Protocol(format!(
            "{} table blocks for {n} instances",
            tables.len()
        )));
    }
    let ands = and_count(c) as u128;
    let base = c.num_inputs() as usize;
    let mut k: u128 = 0;
    for (i, g) in c.gates.iter().enumerate() {
        let (before, out) = split(labels, n, base + i);
        match *g {
            Gate::Xor(a, b) => {
                for ((o, x), y) in out
                    .iter_mut()
                    .zip(wire(before, n, a))
                    .zip(wire(before, n, b))
                {
                    *o = x ^ y;
                }
            }
            // The garbler swapped the meaning of the labels; the active label is unchanged.
            Gate::Inv(a) => out.copy_from_slice(wire(before, n, a)),
            Gate::And(a, b) => {
                let (wa, wb) = (wire(before, n, a), wire(before, n, b));
                let mut t0 = 0;
                while t0 < n {
                    let m = SUB.min(n - t0);
                    let h = &mut scratch.hashes;
                    h.clear();
                    for t in t0..t0 + m {
                        h.extend_from_slice(&[wa[t], wb[t]]);
                    }
                    let g0 = (u128::from(first) + t0 as u128) * ands + k;
                    hash.hash_many(
                        h,
                        |idx| 2 * (g0 + (idx / 2) as u128 * ands) + (idx & 1) as u128,
                        &mut scratch.aes,
                    );
                    for (u, hs) in h.chunks_exact(2).enumerate() {
                        let t = t0 + u;
                        let (xa, xb) = (wa[t], wb[t]);
                        let row = 2 * (k as usize * n + t);
                        let (tg, te) = (tables[row], tables[row + 1]);
                        // W_G = H(W_a, j) ⊕ s_a T_G  and  W_E = H(W_b, j') ⊕ s_b (T_E ⊕ W_a);
                        // W_c = W_G ⊕ W_E = W_c^0 ⊕ (a ∧ b) R.
                        let wg = hs[0] ^ (mask(lsb(xa)) & tg);
                        let we = hs[1] ^ (mask(lsb(xb)) & (te ^ xa));
                        out[t] = wg ^ we;
                    }
                    t0 += m;
                }
                k += 1;
            }
        }
    }
    Ok(())
}
