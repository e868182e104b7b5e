//! Messages of the protocol on top of a [`Channel`]: every message is a length-prefixed frame
//! whose size the channel bounds, and every decoder checks what it reads.

use std::sync::Arc;

use mp2ml_ckks::{Params, PublicKey, RnsPoly};
use mp2ml_ir::plan::MpcBackend;
use mp2ml_mpc::Channel;
use rayon::prelude::*;

use crate::error::{ProtocolError, Result, RuntimeError};

/// Protocol version spoken by this runtime.
pub const PROTOCOL_VERSION: u32 = 2;

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
    /// The client's `--mpc` override (`None`: every step runs the plan's back end); the
    /// server refuses a session whose override differs from its own.
    pub mpc: Option<MpcBackend>,
}

impl Hello {
    /// Encodes the hello.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = HELLO_MAGIC.to_vec();
        v.extend_from_slice(&self.version.to_le_bytes());
        v.extend_from_slice(&self.images.to_le_bytes());
        v.push(match self.mpc {
            None => 0,
            Some(MpcBackend::Yao) => 1,
            Some(MpcBackend::Gmw) => 2,
        });
        v.extend_from_slice(self.plan_hash.as_bytes());
        v
    }

    /// Decodes a hello, checking its framing. A version-1 hello (no back-end byte) decodes
    /// too, so that the server can refuse it by its version.
    pub fn from_bytes(b: &[u8]) -> Result<Hello> {
        let bad = || RuntimeError::Protocol(ProtocolError::MalformedHello);
        if b.get(..8) != Some(&HELLO_MAGIC[..]) || b.len() < 20 {
            return Err(bad());
        }
        let version = u32::from_le_bytes(b[8..12].try_into().map_err(|_| bad())?);
        let images = u64::from_le_bytes(b[12..20].try_into().map_err(|_| bad())?);
        let (mpc, hash_at) = match (version, b.len()) {
            (1, 84) => (None, 20),
            (v, 85) if v != 1 => (
                match b[20] {
                    0 => None,
                    1 => Some(MpcBackend::Yao),
                    2 => Some(MpcBackend::Gmw),
                    _ => return Err(bad()),
                },
                21,
            ),
            _ => return Err(bad()),
        };
        let plan_hash = std::str::from_utf8(&b[hash_at..])
            .map_err(|_| bad())?
            .to_string();
        if !plan_hash.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Hello {
            version,
            plan_hash,
            images,
            mpc,
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

fn check_level(expected: usize, got: usize) -> Result<()> {
    if got != expected {
        return Err(ProtocolError::WrongLevel { expected, got }.into());
    }
    Ok(())
}

/// Seeds per frame in [`send_seeds`] (8 KiB: below the smallest frame limit).
pub const SEEDS_PER_FRAME: usize = 256;

/// Sends the seeds of seeded ciphertexts (c1 = a(seed)), [`SEEDS_PER_FRAME`] per frame.
pub fn send_seeds<'a>(
    ch: &mut impl Channel,
    seeds: impl ExactSizeIterator<Item = &'a [u8; 32]>,
) -> Result<()> {
    let seeds: Vec<&[u8; 32]> = seeds.collect();
    for chunk in seeds.chunks(SEEDS_PER_FRAME) {
        let frame: Vec<u8> = chunk.iter().flat_map(|s| s.iter().copied()).collect();
        ch.send_frame(&frame)?;
    }
    Ok(())
}

/// Receives `count` seeds sent by [`send_seeds`].
pub fn recv_seeds(ch: &mut impl Channel, count: usize) -> Result<Vec<[u8; 32]>> {
    let mut out = Vec::with_capacity(count.min(1 << 20));
    while out.len() < count {
        let want = (count - out.len()).min(SEEDS_PER_FRAME);
        let f = ch.recv_frame()?;
        if f.len() != 32 * want {
            return Err(ProtocolError::MalformedSeeds {
                bytes: f.len(),
                seeds: want,
            }
            .into());
        }
        for c in f.chunks_exact(32) {
            let mut s = [0u8; 32];
            s.copy_from_slice(c);
            out.push(s);
        }
    }
    Ok(out)
}

/// Sends one half of a ciphertext (a c1 offline, a c0 window online).
pub fn send_poly(ch: &mut impl Channel, p: &RnsPoly) -> Result<()> {
    ch.send_frame(&p.to_bytes())?;
    Ok(())
}

/// Receives `count` ciphertext halves at an expected level and width: the frames first, then
/// decoding in parallel.
pub fn recv_polys(
    ch: &mut impl Channel,
    params: &Arc<Params>,
    level: usize,
    width: usize,
    count: usize,
) -> Result<Vec<RnsPoly>> {
    let frames = (0..count)
        .map(|_| ch.recv_frame())
        .collect::<Result<Vec<_>, _>>()?;
    frames
        .par_iter()
        .map(|f| {
            let p = RnsPoly::from_bytes(params, f)?;
            check_level(level, p.level())?;
            if p.width() != width {
                return Err(ProtocolError::WrongWidth {
                    expected: width,
                    got: p.width(),
                }
                .into());
            }
            Ok(p)
        })
        .collect()
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

/// Largest frame a plan needs: a full ciphertext at the top level plus headers (more than a
/// public key or a polynomial half).
pub fn max_frame(params: &Params) -> usize {
    2 * params.n() * (params.max_level() + 1) * 8 + 4096
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp2ml_ckks::{ntt_primes, os_rng, SecretKey};
    use mp2ml_mpc::{ChannelConfig, MemChannel};

    fn pair() -> (MemChannel, MemChannel) {
        MemChannel::pair(ChannelConfig {
            read_timeout: std::time::Duration::from_millis(200),
            ..ChannelConfig::default()
        })
    }

    #[test]
    fn seeds_round_trip_across_frames_and_bad_frames_are_errors() {
        let seeds: Vec<[u8; 32]> = (0..SEEDS_PER_FRAME * 2 + 7)
            .map(|i| [(i % 251) as u8; 32])
            .collect();
        let (mut a, mut b) = pair();
        send_seeds(&mut a, seeds.iter()).expect("send");
        a.flush().expect("flush");
        assert_eq!(recv_seeds(&mut b, seeds.len()).expect("recv"), seeds);
        // A frame of the wrong length (here: one seed short) is refused.
        let (mut a, mut b) = pair();
        a.send_frame(&[0u8; 32 * 4]).expect("send");
        a.flush().expect("flush");
        assert!(recv_seeds(&mut b, 5).is_err());
        // Zero seeds read nothing.
        let (_a, mut b) = pair();
        assert!(recv_seeds(&mut b, 0).expect("recv").is_empty());
    }

    #[test]
    fn polys_are_checked_for_level_and_width() {
        let primes = ntt_primes(30, 1024, 2, &[]).expect("primes");
        let params = Params::new(1024, &primes).expect("params");
        let sk = SecretKey::generate(&params, &mut os_rng());
        let (_, w) = sk
            .encrypt_seeded_window(&[1i64, 2], 1, 3, &mut os_rng())
            .expect("encrypt");
        let w = w.into_poly();
        for (level, width, ok) in [(1, 3, true), (0, 3, false), (1, 4, false)] {
            let (mut a, mut b) = pair();
            send_poly(&mut a, &w).expect("send");
            a.flush().expect("flush");
            let got = recv_polys(&mut b, &params, level, width, 1);
            assert_eq!(got.is_ok(), ok, "level {level} width {width}");
        }
    }

    #[test]
    fn hello_round_trip_and_rejection() {
        let h = Hello {
            version: PROTOCOL_VERSION,
            plan_hash: "ab".repeat(32),
            images: 7,
            mpc: Some(MpcBackend::Gmw),
        };
        assert_eq!(Hello::from_bytes(&h.to_bytes()).expect("decodes"), h);
        // A version-1 hello decodes (to be refused by its version), without an override.
        let mut old = h.to_bytes();
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        old.remove(20);
        let o = Hello::from_bytes(&old).expect("decodes");
        assert_eq!((o.version, o.mpc, o.images), (1, None, 7));
        let mut b = h.to_bytes();
        b[20] = 3;
        assert!(Hello::from_bytes(&b).is_err());
        let mut b = h.to_bytes();
        b.pop();
        assert!(Hello::from_bytes(&b).is_err());
        assert!(Hello::from_bytes(b"GET / HTTP/1.1\r\n").is_err());
        let mut b = h.to_bytes();
        b[30] = b'z';
        assert!(Hello::from_bytes(&b).is_err());
    }
}
