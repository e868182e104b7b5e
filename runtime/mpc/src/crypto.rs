//! Symmetric primitives: the fixed-key-AES tweakable hash, an AES-CTR PRG, bit packing and the
//! 128×128 bit-matrix transpose.
//!
//! Blocks are `u128`; whenever a block meets AES or the wire it is read as 16 little-endian bytes.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128, Block};

/// How many blocks go to AES in one `encrypt_blocks` call (kept small enough for L1).
const BATCH: usize = 1024;

/// Least significant bit of a block (the point-and-permute colour bit).
#[inline(always)]
pub fn lsb(x: u128) -> bool {
    x & 1 == 1
}

/// All-ones if `b`, else zero (branch-free select).
#[inline(always)]
pub fn mask(b: bool) -> u128 {
    0u128.wrapping_sub(u128::from(b))
}

/// The linear orthomorphism σ(x_L ‖ x_R) = (x_L ⊕ x_R) ‖ x_L of Guo et al. (2020), with x_L the
/// high 64 bits.
#[inline(always)]
pub fn sigma(x: u128) -> u128 {
    let hi = (x >> 64) as u64;
    let lo = x as u64;
    (u128::from(hi ^ lo) << 64) | u128::from(hi)
}

/// Encrypts every block in place with AES (blocks read as 16 little-endian bytes).
#[inline]
pub(crate) fn encrypt_in_place(aes: &Aes128, blocks: &mut [u128]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: `Block` is `GenericArray<u8, U16>`, `#[repr(transparent)]` over `[u8; 16]`:
        // size 16, alignment 1, every bit pattern valid. A `u128` has size 16 and stricter
        // alignment, and on a little-endian target its bytes in memory are `to_le_bytes()`.
        // The slice length is unchanged and the borrow is exclusive for the call.
        let as_blocks: &mut [Block] = unsafe {
            std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<Block>(), blocks.len())
        };
        aes.encrypt_blocks(as_blocks);
    }
    #[cfg(not(target_endian = "little"))]
    {
        let mut tmp: Vec<Block> = blocks.iter().map(|&x| to_aes(x)).collect();
        aes.encrypt_blocks(&mut tmp);
        for (x, b) in blocks.iter_mut().zip(&tmp) {
            *x = from_aes(b);
        }
    }
}

const _: () = assert!(std::mem::size_of::<Block>() == 16 && std::mem::align_of::<Block>() == 1);

#[allow(dead_code)]
#[inline(always)]
fn to_aes(x: u128) -> Block {
    Block::from(x.to_le_bytes())
}

#[allow(dead_code)]
#[inline(always)]
fn from_aes(b: &Block) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(b.as_slice());
    u128::from_le_bytes(a)
}

/// The tweakable circular correlation-robust hash H(x, i) = π(σ(x) ⊕ i) ⊕ σ(x), with π AES-128
/// under a fixed public key (Guo, Katz, Wang, Yu, S&P 2020, §7.3).
#[derive(Clone)]
pub struct FixedKeyHash {
    aes: Aes128,
}

impl std::fmt::Debug for FixedKeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedKeyHash")
    }
}

impl Default for FixedKeyHash {
    fn default() -> Self {
        Self::new()
    }
}

/// The public fixed AES key (any constant works; this one is the first 16 bytes of
/// SHA-256("mp2ml fixed-key AES")).
const FIXED_KEY: [u8; 16] = [
    0x61, 0x0c, 0x4b, 0x5e, 0x93, 0x27, 0xd1, 0x8a, 0x3f, 0xe2, 0x70, 0x19, 0xc6, 0x5b, 0xa4, 0x08,
];

impl FixedKeyHash {
    /// The hash with the crate's fixed key.
    pub fn new() -> Self {
        FixedKeyHash {
            aes: Aes128::new(&FIXED_KEY.into()),
        }
    }

    /// Replaces every `xs[i]` by H(xs[i], tweak(i)), running AES over batches of blocks.
    #[inline]
    pub fn hash_many(
        &self,
        xs: &mut [u128],
        tweak: impl Fn(usize) -> u128,
        scratch: &mut Vec<u128>,
    ) {
        let mut base = 0;
        for chunk in xs.chunks_mut(BATCH) {
            scratch.clear();
            for (i, x) in chunk.iter_mut().enumerate() {
                let s = sigma(*x);
                *x = s;
                scratch.push(s ^ tweak(base + i));
            }
            encrypt_in_place(&self.aes, scratch);
            for (x, b) in chunk.iter_mut().zip(scratch.iter()) {
                *x ^= b;
            }
            base += chunk.len();
        }
    }

    /// H(x, tweak) for one block (tests and small uses).
    pub fn hash(&self, x: u128, tweak: u128) -> u128 {
        let mut v = [x];
        self.hash_many(&mut v, |_| tweak, &mut Vec::with_capacity(1));
        v[0]
    }
}

/// A PRG: AES-128 in counter mode under a secret key; block `i` of the stream is AES_k(i), so
/// any range can be produced independently.
#[derive(Clone)]
pub struct Prg {
    aes: Aes128,
}

impl std::fmt::Debug for Prg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prg(..)")
    }
}

impl Prg {
    /// The PRG keyed by `seed`.
    pub fn new(seed: u128) -> Self {
        Prg {
            aes: Aes128::new(&seed.to_le_bytes().into()),
        }
    }

    /// Writes stream blocks `start .. start + out.len()` to `out`.
    pub fn fill(&self, start: u64, out: &mut [u128]) {
        for (idx, x) in (u128::from(start)..).zip(out.iter_mut()) {
            *x = idx;
        }
        for chunk in out.chunks_mut(BATCH) {
            encrypt_in_place(&self.aes, chunk);
        }
    }
}

/// Packs bits, least significant bit of byte 0 first.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (byte, chunk) in out.iter_mut().zip(bits.chunks(8)) {
        for (i, &b) in chunk.iter().enumerate() {
            *byte |= u8::from(b) << i;
        }
    }
    out
}

/// Unpacks `n` bits packed by [`pack_bits`]; `None` if `bytes` has the wrong length.
pub fn unpack_bits(bytes: &[u8], n: usize) -> Option<Vec<bool>> {
    if bytes.len() != n.div_ceil(8) {
        return None;
    }
    Some(
        (0..n)
            .map(|i| bytes.get(i / 8).is_some_and(|b| (b >> (i % 8)) & 1 == 1))
            .collect(),
    )
}

/// Transposes a 128×128 bit matrix in place: afterwards bit `i` of `m[j]` is the former bit `j`
/// of `m[i]` (recursive block swaps, 7 rounds of 64 row pairs).
pub fn transpose128(m: &mut [u128; 128]) {
    let mut width = 64usize;
    let mut lo_mask: u128 = u128::from(u64::MAX);
    while width > 0 {
        let mut k = 0;
        while k < 128 {
            for r in k..k + width {
                // Swap the high `width`-bit halves of row r with the low halves of row r + width.
                let (a, b) = (m[r], m[r + width]);
                let t = ((a >> width) ^ b) & lo_mask;
                m[r] = a ^ (t << width);
                m[r + width] = b ^ t;
            }
            k += 2 * width;
        }
        width /= 2;
        lo_mask ^= lo_mask << width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn transpose_matches_naive() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut m = [0u128; 128];
        for r in m.iter_mut() {
            *r = rng.random();
        }
        let orig = m;
        transpose128(&mut m);
        for (i, row) in orig.iter().enumerate() {
            for (j, col) in m.iter().enumerate() {
                assert_eq!((col >> i) & 1, (row >> j) & 1, "bit ({i},{j})");
            }
        }
    }

    /// Rank over GF(2) of the 128×128 matrix whose columns are `cols` (Gaussian elimination).
    fn rank(mut cols: Vec<u128>) -> usize {
        let mut rank = 0;
        for bit in 0..128 {
            let Some(p) = (rank..cols.len()).find(|&i| (cols[i] >> bit) & 1 == 1) else {
                continue;
            };
            cols.swap(rank, p);
            let pivot = cols[rank];
            for (i, c) in cols.iter_mut().enumerate() {
                if i != rank && (*c >> bit) & 1 == 1 {
                    *c ^= pivot;
                }
            }
            rank += 1;
        }
        rank
    }

    /// The matrix of a GF(2)-linear map of 128-bit words: its images of the unit vectors.
    fn matrix(f: impl Fn(u128) -> u128) -> Vec<u128> {
        (0..128).map(|i| f(1u128 << i)).collect()
    }

    #[test]
    fn sigma_is_linear_orthomorphism() {
        // Linear: σ(a ⊕ b) = σ(a) ⊕ σ(b), so σ is its matrix.
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for _ in 0..100 {
            let (a, b): (u128, u128) = (rng.random(), rng.random());
            assert_eq!(sigma(a ^ b), sigma(a) ^ sigma(b));
        }
        // Orthomorphism (Guo et al. 2020, Def. 3): σ and x ↦ σ(x) ⊕ x are both permutations,
        // i.e. both matrices have full rank over GF(2)^128.
        assert_eq!(rank(matrix(sigma)), 128, "σ is not a permutation");
        assert_eq!(
            rank(matrix(|x| sigma(x) ^ x)),
            128,
            "σ ⊕ id is not a permutation"
        );
        // The rank test sees singular maps: x_L ‖ x_L has rank 64, and σ² ⊕ σ ⊕ id is zero
        // (σ acts on (x_L, x_R) as multiplication by a root of X² + X + 1).
        assert_eq!(rank(matrix(|x| (x >> 64) | ((x >> 64) << 64))), 64);
        assert_eq!(rank(matrix(|x| sigma(sigma(x)) ^ sigma(x) ^ x)), 0);
        assert_eq!(sigma(1u128 << 64), (1u128 << 64) | 1);
    }

    #[test]
    fn hash_batches_agree_with_single_calls_and_depend_on_tweak() {
        let h = FixedKeyHash::new();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let xs: Vec<u128> = (0..3000).map(|_| rng.random()).collect();
        let mut ys = xs.clone();
        h.hash_many(&mut ys, |i| i as u128 * 7, &mut Vec::new());
        for (i, (&x, &y)) in xs.iter().zip(&ys).enumerate() {
            assert_eq!(h.hash(x, i as u128 * 7), y);
        }
        assert_ne!(h.hash(5, 0), h.hash(5, 1));
        assert_ne!(h.hash(5, 0), 5);
    }

    #[test]
    fn prg_ranges_are_consistent() {
        let p = Prg::new(99);
        let mut all = vec![0u128; 2500];
        p.fill(0, &mut all);
        let mut part = vec![0u128; 700];
        p.fill(1800, &mut part);
        assert_eq!(&all[1800..], &part[..]);
        assert_ne!(all[0], all[1]);
        assert_ne!(Prg::new(98).fill_one(0), all[0]);
    }

    #[test]
    fn bit_packing_round_trips() {
        let bits: Vec<bool> = (0..77).map(|i| i % 3 == 0).collect();
        let p = pack_bits(&bits);
        assert_eq!(p.len(), 10);
        assert_eq!(unpack_bits(&p, 77), Some(bits));
        assert_eq!(unpack_bits(&p, 90), None);
    }

    impl Prg {
        fn fill_one(&self, i: u64) -> u128 {
            let mut v = [0u128];
            self.fill(i, &mut v);
            v[0]
        }
    }
}
