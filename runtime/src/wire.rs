//! Messages of the protocol on top of a [`Channel`]: every message is a length-prefixed frame
//! whose size the channel bounds, and every decoder checks what it reads.

use std::sync::Arc;

use mp2ml_ckks::{Ciphertext, Params, PublicKey, SeededCiphertext};
use mp2ml_mpc::Channel;
use rayon::prelude::*;

use crate::error::{Result, RuntimeError};

/// Protocol version spoken by this runtime.
pub const PROTOCOL_VERSION: u32 = 1;

/// Magic opening the client's hello.
pub const HELLO_MAGIC: &[u8; 8] = b"MP2MLRUN";

/// The client's first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the client.
    pub version: u32,
    /// SHA-256 of the public plan, hex.
    pub plan_hash: String,
    /// Number of images in the session.
    pub images: u64,
}

impl Hello {
    /// Encodes the hello.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = HELLO_MAGIC.to_vec();
        v.extend_from_slice(&self.version.to_le_bytes());
        v.extend_from_slice(&self.images.to_le_bytes());
        v.extend_from_slice(self.plan_hash.as_bytes());
        v
    }

    /// Decodes a hello, checking its framing.
    pub fn from_bytes(b: &[u8]) -> Result<Hello> {
        let bad =
            || RuntimeError::Protocol("malformed hello (is the peer an mp2ml client?)".into());
        if b.get(..8) != Some(&HELLO_MAGIC[..]) || b.len() != 8 + 4 + 8 + 64 {
            return Err(bad());
        }
        let version = u32::from_le_bytes(b[8..12].try_into().map_err(|_| bad())?);
        let images = u64::from_le_bytes(b[12..20].try_into().map_err(|_| bad())?);
        let plan_hash = std::str::from_utf8(&b[20..])
            .map_err(|_| bad())?
            .to_string();
        if !plan_hash.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Hello {
            version,
            plan_hash,
            images,
        })
    }
}

/// Sends the server's verdict on the hello: empty = accepted, else the reason.
pub fn send_verdict(ch: &mut impl Channel, refusal: Option<&str>) -> Result<()> {
    ch.send_frame(refusal.unwrap_or("").as_bytes())?;
    ch.flush()?;
    Ok(())
}

/// Receives the server's verdict.
pub fn recv_verdict(ch: &mut impl Channel) -> Result<()> {
    let f = ch.recv_frame()?;
    if f.is_empty() {
        Ok(())
    } else {
        Err(RuntimeError::Refused(
            String::from_utf8_lossy(&f).into_owned(),
        ))
    }
}

/// Sends a ciphertext.
pub fn send_ct(ch: &mut impl Channel, ct: &Ciphertext) -> Result<()> {
    ch.send_frame(&ct.to_bytes())?;
    Ok(())
}

fn check_level(expected: usize, got: usize) -> Result<()> {
    if got != expected {
        return Err(RuntimeError::Protocol(format!(
            "expected a ciphertext at level {expected}, got level {got}"
        )));
    }
    Ok(())
}

/// Decodes a ciphertext frame at an expected level.
fn decode_ct(params: &Arc<Params>, level: usize, frame: &[u8]) -> Result<Ciphertext> {
    let ct = Ciphertext::from_bytes(params, frame)?;
    check_level(level, ct.level())?;
    Ok(ct)
}

/// Decodes a seeded-ciphertext frame at an expected level and expands it.
fn decode_seeded(params: &Arc<Params>, level: usize, frame: &[u8]) -> Result<Ciphertext> {
    let ct = SeededCiphertext::from_bytes(params, frame)?;
    check_level(level, ct.level())?;
    Ok(ct.expand())
}

/// Receives `count` frames, then decodes them in parallel.
fn recv_decoded(
    ch: &mut impl Channel,
    count: usize,
    decode: impl Fn(&[u8]) -> Result<Ciphertext> + Sync,
) -> Result<Vec<Ciphertext>> {
    let frames = (0..count)
        .map(|_| ch.recv_frame())
        .collect::<Result<Vec<_>, _>>()?;
    frames.par_iter().map(|f| decode(f)).collect()
}

/// Receives a ciphertext at an expected level.
pub fn recv_ct(ch: &mut impl Channel, params: &Arc<Params>, level: usize) -> Result<Ciphertext> {
    decode_ct(params, level, &ch.recv_frame()?)
}

/// Sends a seeded ciphertext (c0 and the seed of c1).
pub fn send_seeded(ch: &mut impl Channel, ct: &SeededCiphertext) -> Result<()> {
    ch.send_frame(&ct.to_bytes())?;
    Ok(())
}

/// Receives a seeded ciphertext at an expected level and expands it.
pub fn recv_seeded(
    ch: &mut impl Channel,
    params: &Arc<Params>,
    level: usize,
) -> Result<Ciphertext> {
    decode_seeded(params, level, &ch.recv_frame()?)
}

/// Receives `count` ciphertexts at an expected level: the frames first, then decoding in
/// parallel.
pub fn recv_cts(
    ch: &mut impl Channel,
    params: &Arc<Params>,
    level: usize,
    count: usize,
) -> Result<Vec<Ciphertext>> {
    recv_decoded(ch, count, |f| decode_ct(params, level, f))
}

/// Receives `count` seeded ciphertexts at an expected level and expands them (in parallel).
pub fn recv_seeded_many(
    ch: &mut impl Channel,
    params: &Arc<Params>,
    level: usize,
    count: usize,
) -> Result<Vec<Ciphertext>> {
    recv_decoded(ch, count, |f| decode_seeded(params, level, f))
}

/// Sends the client's public key.
pub fn send_pk(ch: &mut impl Channel, pk: &PublicKey) -> Result<()> {
    ch.send_frame(&pk.to_bytes())?;
    ch.flush()?;
    Ok(())
}

/// Receives the client's public key.
pub fn recv_pk(ch: &mut impl Channel, params: &Arc<Params>) -> Result<PublicKey> {
    let f = ch.recv_frame()?;
    Ok(PublicKey::from_bytes(params, &f)?)
}

/// Largest frame a plan needs: a full ciphertext at the top level plus headers, or the public
/// key.
pub fn max_frame(params: &Params) -> usize {
    2 * params.n() * (params.max_level() + 1) * 8 + 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_rejection() {
        let h = Hello {
            version: 1,
            plan_hash: "ab".repeat(32),
            images: 7,
        };
        assert_eq!(Hello::from_bytes(&h.to_bytes()).expect("decodes"), h);
        let mut b = h.to_bytes();
        b.pop();
        assert!(Hello::from_bytes(&b).is_err());
        assert!(Hello::from_bytes(b"GET / HTTP/1.1\r\n").is_err());
        let mut b = h.to_bytes();
        b[30] = b'z';
        assert!(Hello::from_bytes(&b).is_err());
    }
}
