//! Decryption to exact residues mod Q0 = q_0⋯q_{k−1} (shares spanning k primes) and masks given
//! as u128 values, checked against a big-integer reference at k = 1 and k = 2.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use mp2ml_ckks::*;
use num_bigint::{BigInt, BigUint};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// N = 1024; two 62-bit primes (Q0 of 124 bits at k = 2) and a 40-bit one above them.
fn params() -> Arc<Params> {
    let q = ntt_primes(62, 1024, 2, &[]).unwrap();
    let p = ntt_primes(40, 1024, 1, &q).unwrap();
    Params::new(1024, &[q[0], q[1], p[0]]).unwrap()
}

fn q0_big(params: &Params, k: usize) -> BigUint {
    params.moduli()[..k]
        .iter()
        .fold(BigUint::from(1u32), |a, &q| a * BigUint::from(q))
}

fn rand_u128(r: &mut ChaCha20Rng) -> u128 {
    (u128::from(r.next_u64()) << 64) | u128::from(r.next_u64())
}

/// Centered (x − y) mod Q in big integers.
fn centered_diff(x: u128, y: u128, q: &BigUint) -> BigInt {
    let q = BigInt::from(q.clone());
    let mut d = (BigInt::from(x) - BigInt::from(y)) % &q;
    if d < BigInt::from(0) {
        d += &q;
    }
    if &d * 2 > q {
        d -= &q;
    }
    d
}

#[test]
fn trivial_ciphertexts_decrypt_to_the_value_mod_q0() {
    let params = params();
    let mut r = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&params, &mut r);
    for k in 1..=2 {
        let q0 = q0_big(&params, k);
        assert_eq!(
            BigUint::from(params.modulus_product(k).unwrap()),
            q0,
            "Q0 at k = {k}"
        );
        // Any u128 (also above Q0): its residues per limb are added; the decryption must be
        // the value mod Q0, computed here in big integers.
        let m: Vec<u128> = (0..params.n()).map(|_| rand_u128(&mut r)).collect();
        for level in k - 1..=params.max_level() {
            let mut ct = Ciphertext::zero(&params, level).unwrap();
            ct.add_plain(&m).unwrap();
            let got = sk.decrypt_mod_prefix(&ct, k).unwrap();
            for (g, &x) in got.iter().zip(&m) {
                assert_eq!(BigUint::from(*g), BigUint::from(x) % &q0, "k = {k}");
            }
        }
    }
    let ct = Ciphertext::zero(&params, 0).unwrap();
    assert!(
        sk.decrypt_mod_prefix(&ct, 2).is_err(),
        "limbs above the level"
    );
    assert!(sk.decrypt_mod_prefix(&ct, 0).is_err());
}

#[test]
fn masked_encryptions_decrypt_to_value_plus_small_noise_mod_q0() {
    let params = params();
    let mut r = ChaCha20Rng::seed_from_u64(2);
    let sk = SecretKey::generate(&params, &mut r);
    let pk = PublicKey::generate(&sk, &mut r);
    for k in 1..=2 {
        let q0u = params.modulus_product(k).unwrap();
        let q0 = q0_big(&params, k);
        // Masks uniform below Q0, as the server draws them.
        let m: Vec<u128> = (0..params.n()).map(|_| rand_u128(&mut r) % q0u).collect();
        // Whole ciphertexts, secret-key (|e| ≤ 21) and public-key encryption.
        let ct = sk.encrypt(&m, k - 1, &mut r).unwrap();
        for (g, &x) in sk.decrypt_mod_prefix(&ct, k).unwrap().iter().zip(&m) {
            assert!(*g < q0u);
            assert!(centered_diff(*g, x, &q0).magnitude() <= &BigUint::from(21u32));
        }
        let bound = BigUint::from(noise::fresh_noise_bound(&params) as u64);
        // A mask added to a ciphertext one level up, then mod-dropped, as in HE→MPC.
        let top = params.max_level();
        let x = pk
            .encrypt(&m, top, &mut r)
            .unwrap()
            .mod_drop(k - 1)
            .unwrap();
        for (g, &v) in sk.decrypt_mod_prefix(&x, k).unwrap().iter().zip(&m) {
            assert!(centered_diff(*g, v, &q0).magnitude() <= &bound);
        }
        // The halves path used online: c0 window of B coefficients, c1·s offline.
        for width in [5usize, 64] {
            let (c0, c1) = pk
                .encrypt_halves(&m[..width], k - 1, width, &mut r)
                .unwrap();
            let c1s = sk.c1_times_s(&c1, width).unwrap();
            let got = sk.decrypt_halves_mod_prefix(&c0, &c1s, k).unwrap();
            assert_eq!(got.len(), width);
            for (g, &v) in got.iter().zip(&m) {
                assert!(*g < q0u);
                assert!(centered_diff(*g, v, &q0).magnitude() <= &bound);
            }
            // At k = 1 it agrees with the single-prime path.
            if k == 1 {
                let one = sk.decrypt_halves_mod_q0(&c0, &c1s).unwrap();
                assert_eq!(got, one.iter().map(|&x| u128::from(x)).collect::<Vec<_>>());
            }
            assert!(sk.decrypt_halves_mod_prefix(&c0, &c1s, k + 1).is_err());
        }
    }
}

#[test]
fn products_past_128_bits_are_refused() {
    let q = ntt_primes(62, 1024, 3, &[]).unwrap();
    let params = Params::new(1024, &q).unwrap();
    assert!(params.modulus_product(2).is_ok());
    assert!(params.modulus_product(3).is_err());
    assert!(params.modulus_product(0).is_err());
    let mut r = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&params, &mut r);
    let ct = Ciphertext::zero(&params, 2).unwrap();
    assert!(sk.decrypt_mod_prefix(&ct, 3).is_err());
}
