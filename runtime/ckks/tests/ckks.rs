//! Property tests of the CKKS engine against plaintext integer arithmetic.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use std::sync::Arc;

use mp2ml_ckks::noise::{
    after_rescale, fresh_noise_bound, fresh_sk_noise_bound, linear_noise_bound, rescale_noise_bound,
};
use mp2ml_ckks::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// N = 2048, q0 of 50 bits, two 40-bit primes (Q ≈ 2^130: exercises the i128 limit).
fn params3() -> Arc<Params> {
    let q0 = ntt_primes(50, 2048, 1, &[]).expect("q0");
    let ps = ntt_primes(40, 2048, 2, &[]).expect("p");
    Params::new(2048, &[q0[0], ps[0], ps[1]]).expect("params")
}

fn keys(params: &Arc<Params>, seed: u64) -> (SecretKey, PublicKey, ChaCha20Rng) {
    let mut r = rng(seed);
    let sk = SecretKey::generate(params, &mut r);
    let pk = PublicKey::generate(&sk, &mut r);
    (sk, pk, r)
}

fn random_msg(r: &mut ChaCha20Rng, len: usize, bits: u32) -> Vec<i64> {
    (0..len)
        .map(|_| r.random_range(-(1i64 << bits)..(1i64 << bits)))
        .collect()
}

fn max_err(dec: &[i128], want: &[i128]) -> f64 {
    dec.iter()
        .zip(want)
        .map(|(a, b)| (a - b).unsigned_abs() as f64)
        .fold(0.0, f64::max)
}

fn widen(m: &[i64], n: usize) -> Vec<i128> {
    let mut v: Vec<i128> = m.iter().map(|&x| i128::from(x)).collect();
    v.resize(n, 0);
    v
}

#[test]
fn ntt_product_matches_schoolbook_negacyclic() {
    let mut r = rng(1);
    for &(n, bits) in &[(1024usize, 30u32), (1024, 61), (2048, 54)] {
        let primes = ntt_primes(bits, n, 2, &[]).expect("primes");
        let params = Params::new(n, &primes).expect("params");
        for (limb, &q) in primes.iter().enumerate() {
            let a: Vec<u64> = (0..n).map(|_| r.next_u64() % q).collect();
            let b: Vec<u64> = (0..n).map(|_| r.next_u64() % q).collect();
            let got = negacyclic_mul(&params, limb, &a, &b).expect("mul");
            let mut want = vec![0u128; n];
            let qq = u128::from(q);
            for i in 0..n {
                for k in 0..n {
                    let p = u128::from(a[i]) * u128::from(b[k]) % qq;
                    let idx = i + k;
                    if idx < n {
                        want[idx] = (want[idx] + p) % qq;
                    } else {
                        // x^N = −1
                        want[idx - n] = (want[idx - n] + qq - p) % qq;
                    }
                }
            }
            let want: Vec<u64> = want.into_iter().map(|x| x as u64).collect();
            assert_eq!(got, want, "n={n} q={q}");
        }
    }
}

#[test]
fn encrypt_decrypt_round_trip_every_level_pk_and_seeded() {
    let params = params3();
    let (sk, pk, mut r) = keys(&params, 2);
    let n = params.n();
    let bound_pk = fresh_noise_bound(&params);
    let bound_sk = fresh_sk_noise_bound(&params);
    for level in 0..=params.max_level() {
        for &len in &[0usize, 1, 100, n] {
            let m = random_msg(&mut r, len, 40);
            let want = widen(&m, n);
            let ct = pk.encrypt(&m, level, &mut r).expect("enc");
            assert_eq!(ct.level(), level);
            let dec = sk.decrypt(&ct).expect("dec");
            assert!(max_err(&dec, &want) <= bound_pk, "pk level {level}");
            // The exact residues mod q0 agree with the centered decryption.
            let q0 = params.q0();
            let r0 = sk.decrypt_mod_q0(&ct).expect("dec q0");
            for (a, &b) in dec.iter().zip(&r0) {
                assert_eq!(a.rem_euclid(i128::from(q0)) as u64, b);
            }
            let sct = sk.encrypt_seeded(&m, level, &mut r).expect("enc");
            let dec = sk.decrypt(&sct.expand()).expect("dec");
            assert!(max_err(&dec, &want) <= bound_sk, "sk level {level}");
            // An encryption of zero made ahead of time, plus the message added later.
            let mut zero = sk
                .encrypt_seeded::<i64, _>(&[], level, &mut r)
                .expect("enc");
            zero.add_plain(&m).expect("add");
            let dec = sk.decrypt(&zero.expand()).expect("dec");
            assert!(max_err(&dec, &want) <= bound_sk, "sk+plain level {level}");
            // i128 plaintexts too (above 2^64, still below Q_0/2 = 2^49 only at level ≥ 1).
            if level >= 1 {
                let big: Vec<i128> = (0..8).map(|i| (1i128 << 70) - i * 12345).collect();
                let ct = sk.encrypt(&big, level, &mut r).expect("enc");
                let dec = sk.decrypt(&ct).expect("dec");
                assert!(max_err(&dec[..8], &big) <= bound_sk);
            }
        }
    }
    assert!(matches!(
        pk.encrypt(&[1i64], 3, &mut r),
        Err(Error::InvalidLevel { level: 3, max: 2 })
    ));
    assert!(matches!(
        sk.encrypt_seeded(&vec![0i64; n + 1], 0, &mut r),
        Err(Error::LengthMismatch { .. })
    ));
}

#[test]
fn homomorphic_ops_match_plaintext_integers() {
    let params = params3();
    let (sk, pk, mut r) = keys(&params, 3);
    let n = params.n();
    let b = fresh_noise_bound(&params);
    for level in 0..=params.max_level() {
        let ma = random_msg(&mut r, n, 35);
        let mb = random_msg(&mut r, n, 35);
        let (wa, wb) = (widen(&ma, n), widen(&mb, n));
        let ca = pk.encrypt(&ma, level, &mut r).expect("enc");
        let cb = pk.encrypt(&mb, level, &mut r).expect("enc");

        let sum: Vec<i128> = wa.iter().zip(&wb).map(|(x, y)| x + y).collect();
        let dec = sk.decrypt(&ca.add(&cb).expect("add")).expect("dec");
        assert!(max_err(&dec, &sum) <= 2.0 * b);

        let diff: Vec<i128> = wa.iter().zip(&wb).map(|(x, y)| x - y).collect();
        let dec = sk.decrypt(&ca.sub(&cb).expect("sub")).expect("dec");
        assert!(max_err(&dec, &diff) <= 2.0 * b);

        let mut neg = ca.clone();
        neg.neg_assign();
        let want: Vec<i128> = wa.iter().map(|x| -x).collect();
        assert!(max_err(&sk.decrypt(&neg).expect("dec"), &want) <= b);

        // Plaintext on the first B coefficients only (i128 and i64).
        let batch = 77;
        let p: Vec<i128> = (0..batch)
            .map(|_| r.random_range(-(1i128 << 45)..(1i128 << 45)))
            .collect();
        let mut c = ca.clone();
        c.add_plain(&p).expect("add_plain");
        let mut want = wa.clone();
        for (w, x) in want.iter_mut().zip(&p) {
            *w += x;
        }
        assert!(max_err(&sk.decrypt(&c).expect("dec"), &want) <= b);
        let p64: Vec<i64> = p.iter().map(|&x| x as i64).collect();
        c.sub_plain(&p64).expect("sub_plain");
        assert!(max_err(&sk.decrypt(&c).expect("dec"), &wa) <= b);

        for &w in &[0i64, 1, -1, 3, -1000, 1 << 12] {
            let dec = sk.decrypt(&ca.mul_scalar(w)).expect("dec");
            let want: Vec<i128> = wa.iter().map(|x| x * i128::from(w)).collect();
            assert!(max_err(&dec, &want) <= b * w.unsigned_abs() as f64);
        }

        for to in 0..=level {
            let d = ca.mod_drop(to).expect("drop");
            assert_eq!(d.level(), to);
            assert!(max_err(&sk.decrypt(&d).expect("dec"), &wa) <= b);
        }
        assert!(matches!(
            ca.mod_drop(level + 1),
            Err(Error::InvalidLevel { .. })
        ));
    }
    let c0 = pk.encrypt(&[1i64], 0, &mut r).expect("enc");
    let c1 = pk.encrypt(&[1i64], 1, &mut r).expect("enc");
    assert_eq!(
        c0.add(&c1).unwrap_err(),
        Error::LevelMismatch { a: 0, b: 1 }
    );
    let other = Params::new(2048, &ntt_primes(30, 2048, 1, &[]).expect("p")).expect("params");
    let z = Ciphertext::zero(&other, 0).expect("zero");
    assert_eq!(c0.add(&z).unwrap_err(), Error::ParamsMismatch);
    assert_eq!(sk.decrypt(&z).unwrap_err(), Error::ParamsMismatch);
}

#[test]
fn rescale_rounds_within_bound() {
    let params = params3();
    let (sk, pk, mut r) = keys(&params, 4);
    let n = params.n();
    for level in 1..=params.max_level() {
        let p = params.moduli()[level] as i128;
        // m ≈ value·p so that m / p is an integer-sized result (as after a weight product).
        let m: Vec<i128> = (0..n)
            .map(|_| r.random_range(-(1i128 << 30)..(1i128 << 30)) * p + r.random_range(-p..p))
            .collect();
        let ct = sk.encrypt(&m, level, &mut r).expect("enc");
        let ct = {
            let mut c = ct;
            c.rerandomize(&pk, &mut r).expect("rerand");
            c
        };
        let rs = ct.rescale().expect("rescale");
        assert_eq!(rs.level(), level - 1);
        let dec = sk.decrypt(&rs).expect("dec");
        let want: Vec<i128> = m
            .iter()
            .map(|&x| (x as f64 / p as f64).round() as i128)
            .collect();
        let bound = after_rescale(&params, level, fresh_noise_bound(&params) + 21.0);
        let err = max_err(&dec, &want);
        assert!(err <= bound, "rescale error {err} > bound {bound}");
    }
    let c = pk.encrypt(&[1i64], 0, &mut r).expect("enc");
    assert!(matches!(c.rescale(), Err(Error::InvalidLevel { .. })));
}

#[test]
fn fresh_and_linear_layer_noise_within_documented_bounds() {
    let params = params3();
    let (sk, pk, mut r) = keys(&params, 5);
    let n = params.n();
    let level = 2;
    let inputs_n = 40;
    let msgs: Vec<Vec<i64>> = (0..inputs_n).map(|_| random_msg(&mut r, n, 20)).collect();
    let cts: Vec<Ciphertext> = msgs
        .iter()
        .map(|m| pk.encrypt(m, level, &mut r).expect("enc"))
        .collect();
    // Measured fresh noise against the bound.
    let fresh = fresh_noise_bound(&params);
    let mut worst: f64 = 0.0;
    for (m, ct) in msgs.iter().zip(&cts) {
        worst = worst.max(max_err(&sk.decrypt(ct).expect("dec"), &widen(m, n)));
    }
    assert!(worst <= fresh, "fresh noise {worst} > {fresh}");
    assert!(
        worst >= fresh / 20.0,
        "bound {fresh} is far too loose for {worst}"
    );

    // Random sparse weights of magnitude up to 2^38 (≈ W·p_2 for |W| < 1), 9 per row.
    let rows = 20;
    let mut row_ptr = vec![0usize];
    let mut cols = Vec::new();
    let mut weights = Vec::new();
    for _ in 0..rows {
        for _ in 0..9 {
            cols.push(r.random_range(0..inputs_n as u32));
            weights.push(r.random_range(-(1i64 << 38)..(1i64 << 38)));
        }
        row_ptr.push(cols.len());
    }
    let m = CsrMatrix::new(row_ptr, cols, weights, inputs_n).expect("csr");
    let bias: Vec<i128> = (0..rows)
        .map(|_| r.random_range(-(1i128 << 60)..(1i128 << 60)))
        .collect();
    let batch = 100;
    let refs: Vec<&Ciphertext> = cts.iter().collect();
    let out = linear(
        &refs,
        &m,
        Some(RowBias {
            values: &bias,
            coeffs: batch,
            factor: None,
        }),
    )
    .expect("linear");
    let l1 = m.max_row_l1();
    let bound = linear_noise_bound(fresh, l1);
    let p = params.moduli()[level] as f64;
    let after = after_rescale(&params, level, bound);
    for (k, y) in out.iter().enumerate() {
        let (cs, ws) = m.row(k);
        let mut want = vec![0i128; n];
        for (&c, &w) in cs.iter().zip(ws) {
            for (acc, &x) in want.iter_mut().zip(&msgs[c as usize]) {
                *acc += i128::from(w) * i128::from(x);
            }
        }
        for x in &mut want[..batch] {
            *x += bias[k];
        }
        let dec = sk.decrypt(y).expect("dec");
        assert!(max_err(&dec, &want) <= bound);
        let rs = y.rescale().expect("rescale");
        let dec = sk.decrypt(&rs).expect("dec");
        let want_rs: Vec<i128> = want
            .iter()
            .map(|&x| (x as f64 / p).round() as i128)
            .collect();
        let err = max_err(&dec, &want_rs);
        assert!(err <= after, "post-layer noise {err} > bound {after}");
    }
    assert!(rescale_noise_bound(&params) < 300.0);

    // Column out of range, wrong input count, level mismatch are errors.
    assert!(matches!(
        CsrMatrix::new(vec![0, 1], vec![5], vec![1], 3),
        Err(Error::ColumnOutOfRange { .. })
    ));
    assert!(CsrMatrix::new(vec![0, 2], vec![0], vec![1], 3).is_err());
    let m2 = CsrMatrix::from_dense(1, 2, &[1, 2]).expect("dense");
    assert!(linear(&refs[..3], &m2, None).is_err());
    let low = cts[0].mod_drop(0).expect("drop");
    assert_eq!(
        linear(&[&cts[0], &low], &m2, None).unwrap_err(),
        Error::LevelMismatch { a: 2, b: 0 }
    );
}

#[test]
fn linear_matches_scalar_ops_for_every_prime_size() {
    // 61-bit primes: lazy reduction must kick in (only 64 products fit in u128); 30-bit primes
    // take the 32-bit path; a mixed chain uses both. 40 rows cover several row tiles.
    for bits in [vec![61u32, 61], vec![30, 30], vec![50, 31]] {
        let mut primes = Vec::new();
        for &b in &bits {
            primes.push(ntt_primes(b, 1024, 1, &primes).expect("primes")[0]);
        }
        let params = Params::new(1024, &primes).expect("params");
        let (_sk, pk, mut r) = keys(&params, 6);
        let cts: Vec<Ciphertext> = (0..200)
            .map(|_| {
                pk.encrypt(&random_msg(&mut r, 1024, 20), 1, &mut r)
                    .expect("enc")
            })
            .collect();
        let rows = 40;
        let mut row_ptr = vec![0];
        let mut cols = Vec::new();
        let mut weights = Vec::new();
        for k in 0..rows {
            // Row 0 is dense over all 200 inputs; the others are sparse (row 1 empty).
            let nnz = match k {
                0 => 200,
                1 => 0,
                _ => (k * 7) % 23,
            };
            for t in 0..nnz {
                cols.push(if k == 0 {
                    t as u32
                } else {
                    r.random_range(0..200u32)
                });
                weights.push(r.random_range(-(1i64 << 50)..(1i64 << 50)));
            }
            row_ptr.push(cols.len());
        }
        let m = CsrMatrix::new(row_ptr, cols, weights, 200).expect("csr");
        let refs: Vec<&Ciphertext> = cts.iter().collect();
        let y = linear(&refs, &m, None).expect("linear");
        assert_eq!(y.len(), rows);
        for (k, yk) in y.iter().enumerate() {
            let mut acc = Ciphertext::zero(&params, 1).expect("zero");
            let (cs, ws) = m.row(k);
            for (&c, &w) in cs.iter().zip(ws) {
                acc.add_assign(&cts[c as usize].mul_scalar(w)).expect("add");
            }
            assert_eq!(yk, &acc, "bits {bits:?} row {k}");
        }
    }
}

#[test]
fn rerandomize_and_flood() {
    let params = params3();
    let (sk, pk, mut r) = keys(&params, 8);
    let n = params.n();
    let m = random_msg(&mut r, n, 30);
    let ct = pk.encrypt(&m, 1, &mut r).expect("enc");
    let mut c2 = ct.clone();
    c2.rerandomize(&pk, &mut r).expect("rerand");
    assert_ne!(c2.c1(), ct.c1());
    let b = fresh_noise_bound(&params);
    assert!(max_err(&sk.decrypt(&c2).expect("dec"), &widen(&m, n)) <= 2.0 * b);
    let bits = 50;
    c2.flood(bits, &mut r).expect("flood");
    let dec = sk.decrypt(&c2).expect("dec");
    let err = max_err(&dec, &widen(&m, n));
    assert!(err <= 2.0 * b + (1u64 << bits) as f64);
    assert!(err > (1u64 << (bits - 1)) as f64, "flooding noise missing");
    assert!(matches!(
        c2.flood(121, &mut r),
        Err(Error::FloodingTooWide { bits: 121 })
    ));
}

#[test]
fn decode_overflow_is_an_error() {
    let params = params3();
    let (sk, _pk, _r) = keys(&params, 9);
    let mut z = Ciphertext::zero(&params, 2).expect("zero");
    z.add_plain(&[i128::MAX, -5]).expect("add");
    z.add_plain(&[i128::MAX]).expect("add");
    assert_eq!(
        sk.decrypt(&z).unwrap_err(),
        Error::DecodeOverflow { index: 0 }
    );
    let mut z = Ciphertext::zero(&params, 2).expect("zero");
    z.add_plain(&[i128::MIN + 1, i128::MAX]).expect("add");
    let dec = sk.decrypt(&z).expect("dec");
    assert_eq!(&dec[..3], &[i128::MIN + 1, i128::MAX, 0]);
}

#[test]
fn serialization_round_trips_and_rejects_bad_buffers() {
    let params = params3();
    let (sk, pk, mut r) = keys(&params, 10);
    let n = params.n();
    let m = random_msg(&mut r, n, 30);
    for level in 0..=params.max_level() {
        let ct = pk.encrypt(&m, level, &mut r).expect("enc");
        let bytes = ct.to_bytes();
        assert_eq!(bytes.len(), ct.serialized_len());
        assert_eq!(Ciphertext::from_bytes(&params, &bytes).expect("de"), ct);
        let s = sk.encrypt_seeded(&m, level, &mut r).expect("enc");
        let sb = s.to_bytes();
        assert!(sb.len() * 2 <= bytes.len() + 80, "seeded not half size");
        let back = SeededCiphertext::from_bytes(&params, &sb).expect("de");
        assert_eq!(back, s);
        assert_eq!(back.expand(), s.expand());
        // Wrong kind.
        assert!(matches!(
            SeededCiphertext::from_bytes(&params, &bytes),
            Err(Error::Decode(DecodeError::WrongKind { .. }))
        ));
    }
    // Exact size: 16 + 2·N·(50 + 40 + 40)/8 at the top level.
    let ct = pk.encrypt(&m, 2, &mut r).expect("enc");
    assert_eq!(ct.serialized_len(), 16 + 2 * n * 130 / 8);

    let pkb = pk.to_bytes();
    let pk2 = PublicKey::from_bytes(&params, &pkb).expect("pk");
    let c = pk2.encrypt(&m, 2, &mut r).expect("enc");
    assert!(max_err(&sk.decrypt(&c).expect("dec"), &widen(&m, n)) <= fresh_noise_bound(&params));

    let bytes = ct.to_bytes();
    // Truncated at many lengths, oversized: errors, never panics.
    for cut in (0..bytes.len())
        .step_by(97)
        .chain([bytes.len() - 1, 15, 16, 17])
    {
        assert!(Ciphertext::from_bytes(&params, &bytes[..cut]).is_err());
        assert!(PublicKey::from_bytes(&params, &pkb[..cut.min(pkb.len() - 1)]).is_err());
        assert!(SeededCiphertext::from_bytes(&params, &bytes[..cut]).is_err());
    }
    let mut big = bytes.clone();
    big.push(0);
    assert!(matches!(
        Ciphertext::from_bytes(&params, &big),
        Err(Error::Decode(DecodeError::Length { .. }))
    ));
    // A residue ≥ its prime: set the first 50-bit field of limb 0 to all ones.
    let mut bad = bytes.clone();
    for b in &mut bad[16..22] {
        *b = 0xff;
    }
    bad[22] |= 0x03;
    assert_eq!(
        Ciphertext::from_bytes(&params, &bad).unwrap_err(),
        Error::Decode(DecodeError::ResidueOutOfRange { limb: 0, index: 0 })
    );
    // Bad magic, version, level, other parameters.
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(
        Ciphertext::from_bytes(&params, &bad).unwrap_err(),
        Error::Decode(DecodeError::BadMagic)
    );
    let mut bad = bytes.clone();
    bad[4] = 9;
    assert!(Ciphertext::from_bytes(&params, &bad).is_err());
    let mut bad = bytes.clone();
    bad[7] = 3;
    assert_eq!(
        Ciphertext::from_bytes(&params, &bad).unwrap_err(),
        Error::Decode(DecodeError::InvalidLevel { level: 3, max: 2 })
    );
    let other = Params::new(2048, &ntt_primes(50, 2048, 3, &[]).expect("p")).expect("params");
    assert_eq!(
        Ciphertext::from_bytes(&other, &bytes).unwrap_err(),
        Error::Decode(DecodeError::ParamsMismatch)
    );
    // Random garbage of many lengths never panics.
    for len in 0..200 {
        let mut g = vec![0u8; len];
        r.fill_bytes(&mut g);
        assert!(Ciphertext::from_bytes(&params, &g).is_err());
        assert!(PublicKey::from_bytes(&params, &g).is_err());
    }
}

#[test]
fn security_check_refuses_weak_parameters() {
    let q = ntt_primes(60, 2048, 1, &[]).expect("p");
    assert!(matches!(
        Params::new_secure(2048, &q, SecurityLevel::Bits128),
        Err(Error::Insecure {
            n: 2048,
            log_q: 60,
            max_log_q: 54,
            ..
        })
    ));
    let q = ntt_primes(55, 4096, 2, &[]).expect("p");
    assert!(Params::new_secure(4096, &q, SecurityLevel::Bits128).is_err());
    let q = ntt_primes(54, 4096, 2, &[]).expect("p");
    assert!(Params::new_secure(4096, &q, SecurityLevel::Bits128).is_ok());
}

#[test]
fn polynomial_windows_round_trip_and_reject_bad_buffers() {
    let params = params3();
    let (sk, _pk, mut r) = keys(&params, 11);
    let n = params.n();
    let m = random_msg(&mut r, n, 30);
    for level in 0..=params.max_level() {
        let s = sk.encrypt_seeded(&m, level, &mut r).expect("enc");
        for width in [1, 7, n] {
            let w = s.c0_window(width).expect("window").into_poly();
            let b = w.to_bytes();
            assert_eq!(b.len(), w.serialized_len());
            assert_eq!(RnsPoly::from_bytes(&params, &b).expect("de"), w);
            // Wrong kind both ways.
            assert!(Ciphertext::from_bytes(&params, &b).is_err());
            for cut in (0..b.len()).step_by(13).chain([b.len() - 1]) {
                assert!(RnsPoly::from_bytes(&params, &b[..cut]).is_err());
            }
            let mut big = b.clone();
            big.push(0);
            assert!(RnsPoly::from_bytes(&params, &big).is_err());
        }
        let c1 = RnsPoly::from_seed(&params, level, s.seed()).expect("c1");
        assert_eq!(c1.data(), s.expand().c1());
    }
    // A set padding bit (width 1 at 50 + 40 bits leaves padding in each limb's last byte) is
    // refused: every value has one encoding (found by cargo-fuzz, `ckks_decode`).
    let w1 = sk
        .encrypt_seeded(&m, 0, &mut r)
        .expect("enc")
        .c0_window(1)
        .expect("w")
        .into_poly();
    let mut bad = w1.to_bytes();
    let last = bad.len() - 1;
    bad[last] |= 0x80;
    assert_eq!(
        RnsPoly::from_bytes(&params, &bad).unwrap_err(),
        Error::Decode(DecodeError::NonZeroPadding { limb: 0 })
    );
    // Width 0 and width > N are refused; so is a window relabelled wider than its body.
    let w = sk
        .encrypt_seeded(&m, 0, &mut r)
        .expect("enc")
        .c0_window(5)
        .expect("w")
        .into_poly();
    let b = w.to_bytes();
    for bad_width in [0u32, 6, n as u32 + 1, u32::MAX] {
        let mut bad = b.clone();
        bad[16..20].copy_from_slice(&bad_width.to_le_bytes());
        assert!(RnsPoly::from_bytes(&params, &bad).is_err(), "{bad_width}");
    }
    for len in 0..100 {
        let mut g = vec![0u8; len];
        r.fill_bytes(&mut g);
        assert!(RnsPoly::from_bytes(&params, &g).is_err());
    }
}

#[test]
fn split_decryption_equals_whole_decryption() {
    let params = params3();
    let (sk, pk, mut r) = keys(&params, 12);
    let n = params.n();
    let m = random_msg(&mut r, n, 30);
    for level in 0..=params.max_level() {
        let ct = pk.encrypt(&m, level, &mut r).expect("enc");
        let whole = sk.decrypt(&ct).expect("dec");
        let q0 = sk.decrypt_mod_q0(&ct).expect("dec");
        for width in [1, 3, n] {
            let (c0, c1) = ct.clone().into_halves(width).expect("split");
            let d = sk.c1_times_s(&c1, width).expect("c1 s");
            assert_eq!(sk.decrypt_halves(&c0, &d).expect("dec"), whole[..width]);
            assert_eq!(sk.decrypt_halves_mod_q0(&c0, &d).expect("dec"), q0[..width]);
        }
    }
}
