//! Every CKKS message decoder on arbitrary bytes (first byte picks the decoder), and the
//! runtime's seed and polynomial-half receivers on a raw frame stream. Small,
//! non-secure parameters with three levels so that level and length checks are exercised.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mp2ml_ckks::{ntt_primes, Ciphertext, Params, PublicKey, RnsPoly, SeededCiphertext};
use mp2ml_mpc::{Channel, ChannelConfig, MemChannel};
use mp2ml_runtime::wire::{recv_polys, recv_seeds};

fn params() -> &'static Arc<Params> {
    static P: OnceLock<Arc<Params>> = OnceLock::new();
    P.get_or_init(|| {
        let primes = ntt_primes(30, 1024, 3, &[]).expect("primes");
        Params::new(1024, &primes).expect("params")
    })
}

/// A genuine 16-byte header (of a public key) so the fuzzer reaches the body decoders quickly.
fn header() -> Vec<u8> {
    let p = params();
    let sk = mp2ml_ckks::SecretKey::generate(p, &mut mp2ml_ckks::os_rng());
    let pk = PublicKey::generate(&sk, &mut mp2ml_ckks::os_rng());
    pk.to_bytes()[..16].to_vec()
}

fuzz_target!(|data: &[u8]| {
    let p = params();
    let Some((&sel, rest)) = data.split_first() else { return };
    // Half the time, splice a genuine header (magic, version, N, fingerprint) in front and let
    // the fuzzer choose kind, level and body.
    let owned;
    let bytes: &[u8] = if sel & 0x80 != 0 && rest.len() >= 2 {
        static H: OnceLock<Vec<u8>> = OnceLock::new();
        let mut h = H.get_or_init(header).clone();
        h[5] = rest[0] % 5;
        h[7] = rest[1] % 4;
        h.extend_from_slice(&rest[2..]);
        owned = h;
        &owned
    } else {
        rest
    };
    match sel % 5 {
        0 => {
            if let Ok(ct) = Ciphertext::from_bytes(p, bytes) {
                assert_eq!(ct.to_bytes(), bytes, "ciphertext re-encodes differently");
            }
        }
        1 => {
            if let Ok(ct) = SeededCiphertext::from_bytes(p, bytes) {
                let _ = ct.expand();
            }
        }
        2 => {
            let _ = PublicKey::from_bytes(p, bytes);
        }
        3 => {
            if let Ok(w) = RnsPoly::from_bytes(p, bytes) {
                assert_eq!(w.to_bytes(), bytes, "polynomial re-encodes differently");
                let _ = w.mod_drop(0);
            }
        }
        _ => {
            // Raw bytes as a frame stream: length prefixes are untrusted.
            let cfg = ChannelConfig {
                max_frame: 1 << 16,
                read_timeout: std::time::Duration::from_millis(1),
                ..Default::default()
            };
            let (mut a, mut b) = MemChannel::pair(cfg);
            if a.send(bytes).is_ok() && a.flush().is_ok() {
                drop(a);
                let _ = recv_seeds(&mut b, 300);
                let _ = recv_polys(&mut b, p, 1, 4, 2);
            }
        }
    }
});
