//! Compact binary serialization.
//!
//! Layout (little endian): a 16-byte header `"MPCK"`, version (1), kind (1 = ciphertext,
//! 2 = seeded ciphertext, 3 = public key, 4 = RNS polynomial window), log2 N, level, 8-byte parameter fingerprint; then
//! the body. A polynomial at level ℓ is ℓ + 1 limbs, limb j packed LSB-first at the bit length
//! of q_j and padded to a byte. Ciphertext body: c0, c1. Seeded ciphertext: c0, 32-byte seed.
//! Public key (level L): b, 32-byte seed. RNS polynomial: 4-byte width w, then ℓ + 1 limbs of w
//! coefficients. Decoding checks every field and every residue and
//! returns an error on any malformed input; it never panics.

use std::sync::Arc;

use crate::ciphertext::{Ciphertext, SeededCiphertext};
use crate::error::{DecodeError, Result};
use crate::keys::PublicKey;
use crate::params::Params;
use crate::poly::RnsPoly;

const MAGIC: &[u8; 4] = b"MPCK";
const VERSION: u8 = 1;
const HEADER: usize = 16;
const KIND_CT: u8 = 1;
const KIND_SEEDED: u8 = 2;
const KIND_PK: u8 = 3;
const KIND_POLY: u8 = 4;

fn bits(q: u64) -> u32 {
    64 - q.leading_zeros()
}

/// Bytes of one packed polynomial at `level`.
fn poly_bytes(params: &Params, level: usize) -> usize {
    window_bytes(params, level, params.n())
}

/// Bytes of `width` packed coefficients per limb at `level`.
fn window_bytes(params: &Params, level: usize, width: usize) -> usize {
    params.moduli()[..=level]
        .iter()
        .map(|&q| (width * bits(q) as usize).div_ceil(8))
        .sum()
}

fn header(params: &Params, kind: u8, level: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.push(params.log_n() as u8);
    out.push(level as u8);
    out.extend_from_slice(&params.fingerprint().to_le_bytes());
}

fn pack(params: &Params, level: usize, poly: &[u64], out: &mut Vec<u8>) {
    pack_window(params, level, params.n(), poly, out);
}

fn pack_window(params: &Params, level: usize, n: usize, poly: &[u64], out: &mut Vec<u8>) {
    for (&q, limb) in params.moduli()[..=level].iter().zip(poly.chunks_exact(n)) {
        let w = bits(q);
        let mut buf: u128 = 0;
        let mut have = 0u32;
        for &x in limb {
            buf |= u128::from(x) << have;
            have += w;
            while have >= 8 {
                out.push(buf as u8);
                buf >>= 8;
                have -= 8;
            }
        }
        if have > 0 {
            out.push(buf as u8);
        }
    }
}

/// Unpacks one polynomial from `data` (exactly `poly_bytes` long), checking residues.
fn unpack(
    params: &Params,
    level: usize,
    data: &[u8],
) -> std::result::Result<Vec<u64>, DecodeError> {
    unpack_window(params, level, params.n(), data)
}

/// Unpacks `n` coefficients per limb, checking residues.
fn unpack_window(
    params: &Params,
    level: usize,
    n: usize,
    data: &[u8],
) -> std::result::Result<Vec<u64>, DecodeError> {
    let mut out = Vec::with_capacity((level + 1) * n);
    let mut pos = 0usize;
    for (limb, &q) in params.moduli()[..=level].iter().enumerate() {
        let w = bits(q);
        let limb_len = (n * w as usize).div_ceil(8);
        let bytes = data.get(pos..pos + limb_len).ok_or(DecodeError::Length {
            expected: pos + limb_len,
            actual: data.len(),
        })?;
        pos += limb_len;
        let mask = (1u128 << w) - 1;
        let mut buf: u128 = 0;
        let mut have = 0u32;
        let mut it = bytes.iter();
        for index in 0..n {
            while have < w {
                let b = it.next().ok_or(DecodeError::Length {
                    expected: limb_len,
                    actual: bytes.len(),
                })?;
                buf |= u128::from(*b) << have;
                have += 8;
            }
            let x = (buf & mask) as u64;
            buf >>= w;
            have -= w;
            if x >= q {
                return Err(DecodeError::ResidueOutOfRange { limb, index });
            }
            out.push(x);
        }
        // The padding bits of the limb's last byte must be zero: one encoding per value.
        if buf != 0 {
            return Err(DecodeError::NonZeroPadding { limb });
        }
    }
    Ok(out)
}

/// Checks the header and the total length; returns the level.
fn check_header(
    params: &Params,
    kind: u8,
    data: &[u8],
    body_len: impl Fn(usize) -> usize,
) -> std::result::Result<usize, DecodeError> {
    let head = data
        .get(..HEADER)
        .ok_or(DecodeError::ShortHeader { len: data.len() })?;
    if &head[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if head[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion { version: head[4] });
    }
    if head[5] != kind {
        return Err(DecodeError::WrongKind {
            expected: kind,
            found: head[5],
        });
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&head[8..16]);
    if u32::from(head[6]) != params.log_n() || u64::from_le_bytes(fp) != params.fingerprint() {
        return Err(DecodeError::ParamsMismatch);
    }
    let level = usize::from(head[7]);
    if level > params.max_level() {
        return Err(DecodeError::InvalidLevel {
            level,
            max: params.max_level(),
        });
    }
    let expected = HEADER + body_len(level);
    if data.len() != expected {
        return Err(DecodeError::Length {
            expected,
            actual: data.len(),
        });
    }
    Ok(level)
}

fn seed_at(data: &[u8]) -> std::result::Result<[u8; 32], DecodeError> {
    let start = data.len().saturating_sub(32);
    let mut seed = [0u8; 32];
    let src = data
        .get(start..)
        .filter(|s| s.len() == 32)
        .ok_or(DecodeError::Length {
            expected: 32,
            actual: data.len(),
        })?;
    seed.copy_from_slice(src);
    Ok(seed)
}

impl Ciphertext {
    /// Serialized size in bytes.
    pub fn serialized_len(&self) -> usize {
        HEADER + 2 * poly_bytes(&self.params, self.level)
    }

    /// Serializes (header, c0, c1 bit-packed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_len());
        header(&self.params, KIND_CT, self.level, &mut out);
        pack(&self.params, self.level, &self.c0, &mut out);
        pack(&self.params, self.level, &self.c1, &mut out);
        out
    }

    /// Deserializes and validates a ciphertext for `params`.
    pub fn from_bytes(params: &Arc<Params>, data: &[u8]) -> Result<Ciphertext> {
        let level = check_header(params, KIND_CT, data, |l| 2 * poly_bytes(params, l))?;
        let pb = poly_bytes(params, level);
        let c0 = unpack(params, level, &data[HEADER..HEADER + pb])?;
        let c1 = unpack(params, level, &data[HEADER + pb..])?;
        Ok(Ciphertext {
            params: params.clone(),
            level,
            c0,
            c1,
        })
    }
}

impl SeededCiphertext {
    /// Serialized size in bytes (about half a [`Ciphertext`]).
    pub fn serialized_len(&self) -> usize {
        HEADER + poly_bytes(&self.params, self.level) + 32
    }

    /// Serializes (header, c0 bit-packed, seed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_len());
        header(&self.params, KIND_SEEDED, self.level, &mut out);
        pack(&self.params, self.level, &self.c0, &mut out);
        out.extend_from_slice(&self.seed);
        out
    }

    /// Deserializes and validates a seeded ciphertext for `params`.
    pub fn from_bytes(params: &Arc<Params>, data: &[u8]) -> Result<SeededCiphertext> {
        let level = check_header(params, KIND_SEEDED, data, |l| poly_bytes(params, l) + 32)?;
        let pb = poly_bytes(params, level);
        let c0 = unpack(params, level, &data[HEADER..HEADER + pb])?;
        let seed = seed_at(data)?;
        Ok(SeededCiphertext {
            params: params.clone(),
            level,
            c0,
            seed,
        })
    }
}

impl PublicKey {
    /// Serialized size in bytes.
    pub fn serialized_len(&self) -> usize {
        HEADER + poly_bytes(&self.params, self.params.max_level()) + 32
    }

    /// Serializes (header, b bit-packed, seed of a).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_len());
        let top = self.params.max_level();
        header(&self.params, KIND_PK, top, &mut out);
        pack(&self.params, top, &self.b, &mut out);
        out.extend_from_slice(&self.seed);
        out
    }

    /// Deserializes and validates a public key for `params` (must be at the top level).
    pub fn from_bytes(params: &Arc<Params>, data: &[u8]) -> Result<PublicKey> {
        let level = check_header(params, KIND_PK, data, |l| poly_bytes(params, l) + 32)?;
        if level != params.max_level() {
            return Err(DecodeError::InvalidLevel {
                level,
                max: params.max_level(),
            }
            .into());
        }
        let pb = poly_bytes(params, level);
        let b = unpack(params, level, &data[HEADER..HEADER + pb])?;
        let seed = seed_at(data)?;
        Ok(PublicKey::from_parts(params.clone(), seed, b))
    }
}

impl RnsPoly {
    /// Serialized size in bytes.
    pub fn serialized_len(&self) -> usize {
        HEADER + 4 + window_bytes(&self.params, self.level, self.width)
    }

    /// Serializes (header, width, limbs bit-packed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_len());
        header(&self.params, KIND_POLY, self.level, &mut out);
        out.extend_from_slice(&(self.width as u32).to_le_bytes());
        pack_window(&self.params, self.level, self.width, &self.data, &mut out);
        out
    }

    /// Deserializes and validates a polynomial window for `params` (1 ≤ width ≤ N).
    pub fn from_bytes(params: &Arc<Params>, data: &[u8]) -> Result<RnsPoly> {
        let width = data
            .get(HEADER..HEADER + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or(DecodeError::Length {
                expected: HEADER + 4,
                actual: data.len(),
            })? as usize;
        if width == 0 || width > params.n() {
            return Err(DecodeError::Width {
                width,
                n: params.n(),
            }
            .into());
        }
        let level = check_header(params, KIND_POLY, data, |l| {
            4 + window_bytes(params, l, width)
        })?;
        let body = unpack_window(params, level, width, &data[HEADER + 4..])?;
        Ok(RnsPoly::from_raw(params, level, width, body))
    }
}
