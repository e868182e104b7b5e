//! `mp2ml-bench cost`, HE part: the seconds per limb of one polynomial of each CKKS primitive
//! the runtime runs (the constants of `compiler/src/cost.rs`, `he`), and the loopback link
//! (`NetworkProfile::LOOPBACK`).
//!
//! Every primitive runs on `POLYS` polynomials at once with rayon (as the runtime does, so the
//! figure is this machine's throughput on all its cores) at `LIMBS` limbs, repeated; the median
//! of the repeats is divided by polynomials × limbs (and, for the products and MACs, by their
//! count). [`session_constants`] adds the wire's per-byte CPU and the key pair.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use mp2ml_ckks::{
    linear_polys, ntt_primes, os_rng, poly_dot, C1Half, CsrMatrix, NttPoly, Params, PublicKey,
    RnsPoly, SecretKey,
};
use rayon::prelude::*;

/// Polynomials per measurement: 256 polynomials of 4 limbs (64 MB at N = 2^13), a working
/// set above the caches and fresh allocations per repeat, as a batch-packed plan's thousands
/// of ciphertexts meet them (32 polynomials of 2 limbs stayed in the caches and priced
/// rescales and transforms 1.6–1.8× below this working set).
const POLYS: usize = 256;
/// Limbs per polynomial.
const LIMBS: usize = 4;

/// One primitive's seconds per limb at one ring dimension.
pub struct HeConstant {
    /// The constant's name in `compiler/src/cost.rs`.
    pub name: &'static str,
    /// Seconds per limb (per coefficient MAC for `mac`, per pair and limb for `pmul`).
    pub seconds: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(repeats: usize, mut f: impl FnMut() -> T) -> f64 {
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Median seconds of `POLYS` runs of `encrypt` in parallel, each thread with its own rng
/// from `rng` ([`os_rng`]).
fn time_encryptions<R, T: Send>(
    repeats: usize,
    rng: fn() -> R,
    encrypt: impl Fn(&mut R) -> T + Sync + Send,
) -> f64 {
    time(repeats, || {
        (0..POLYS)
            .into_par_iter()
            .map_init(rng, |r, _| encrypt(r))
            .collect::<Vec<_>>()
    })
}

/// The HE constants at ring dimension `n`.
pub fn he_constants(n: usize, repeats: usize) -> Result<Vec<HeConstant>, String> {
    let e = |x: mp2ml_ckks::Error| x.to_string();
    let moduli = ntt_primes(30, n, LIMBS, &[]).map_err(e)?;
    let params = Params::new(n, &moduli).map_err(e)?;
    let mut rng = os_rng();
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng);
    let level = LIMBS - 1;
    let per = (POLYS * LIMBS) as f64;
    let seeds: Vec<[u8; 32]> = (0..POLYS).map(|i| [i as u8; 32]).collect();
    let polys: Vec<RnsPoly> = seeds
        .iter()
        .map(|s| RnsPoly::from_seed(&params, level, s))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let mut out = Vec::new();
    let mut push = |name, s: f64| out.push(HeConstant { name, seconds: s });

    push(
        "EXPAND",
        time(repeats, || {
            seeds
                .par_iter()
                .map(|s| RnsPoly::from_seed(&params, level, s).map(|p| p.data().len()))
                .collect::<Vec<_>>()
        }) / per,
    );
    for (name, width) in [("PK_ENC_FULL", n), ("PK_ENC_WINDOW", 1)] {
        let s = time_encryptions(repeats, os_rng, |r| {
            pk.encrypt_halves::<i64, _>(&[], level, width, r)
        });
        push(name, s / per);
    }
    for (name, width) in [("SK_ENC_FULL", n), ("SK_ENC_WINDOW", 1)] {
        let s = time_encryptions(repeats, os_rng, |r| {
            sk.encrypt_seeded_window::<i64, _>(&[], level, width, r)
        });
        push(name, s / per);
    }
    let halves: Vec<C1Half> = polys
        .iter()
        .map(|p| C1Half::new(p.clone()))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    for (name, width) in [("C1S_FULL", n), ("C1S_WINDOW", 1)] {
        push(
            name,
            time(repeats, || {
                halves
                    .par_iter()
                    .map(|h| sk.c1_times_s(h, width).map(|_| ()))
                    .collect::<Vec<_>>()
            }) / per,
        );
    }
    push(
        "NTT",
        time(repeats, || {
            polys.par_iter().map(NttPoly::from_half).collect::<Vec<_>>()
        }) / per,
    );
    // Products: POLYS outputs of `k` pairs each; the difference between 17 pairs and 1 pair is
    // 16 products, what remains of one pair is the inverse transform.
    let ntt: Vec<NttPoly> = polys
        .iter()
        .map(NttPoly::from_half)
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let dot = |k: usize| {
        time(repeats, || {
            (0..POLYS)
                .into_par_iter()
                .map(|o| {
                    let pairs: Vec<(u32, u32)> = (0..k)
                        .map(|j| (((o + j) % POLYS) as u32, (j % POLYS) as u32))
                        .collect();
                    poly_dot(&ntt, &ntt, &pairs).map(|p| p.width())
                })
                .collect::<Vec<_>>()
        })
    };
    let (one, many) = (dot(1), dot(17));
    let pmul = ((many - one) / 16.0).max(0.0);
    push("PMUL", pmul / per);
    push("INV_NTT", (one - pmul).max(0.0) / per);
    push(
        "RESCALE",
        time(repeats, || {
            polys
                .par_iter()
                .map(|p| {
                    let mut q = p.clone();
                    q.rescale_assign().map(|_| q.width())
                })
                .collect::<Vec<_>>()
        }) / per,
    );
    // MACs as a Linear meets them: 1024 input polynomials (a working set far above the
    // caches, like a layer's c1 halves), 64 rows of 256 entries spread over all of them.
    let wide: Vec<RnsPoly> = (0..1024u32)
        .map(|i| {
            let mut s = [0u8; 32];
            s[..4].copy_from_slice(&i.to_le_bytes());
            RnsPoly::from_seed(&params, level, &s)
        })
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let (rows, per_row) = (64usize, 256usize);
    let row_ptr: Vec<usize> = (0..=rows).map(|r| r * per_row).collect();
    let cols: Vec<u32> = (0..rows * per_row)
        .map(|i| ((i % per_row) * 4 + i / per_row % 4) as u32)
        .collect();
    let weights: Vec<i64> = (0..rows * per_row)
        .map(|i| (i as i64 % 2001) - 1000)
        .collect();
    let m = CsrMatrix::new(row_ptr, cols, weights, wide.len()).map_err(e)?;
    let refs: Vec<&RnsPoly> = wide.iter().collect();
    let macs = (rows * per_row * LIMBS * n) as f64;
    push(
        "MAC",
        time(repeats, || linear_polys(&refs, &m, None).map(|v| v.len())) / macs,
    );
    Ok(out)
}

/// The per-byte and per-session constants of the cost model at ring dimension `n`:
/// `WIRE_PACK` (seconds per byte to bit-pack a half for its frame, one thread, as
/// `wire::send_poly` runs), `WIRE_UNPACK` (per byte to decode received frames, in parallel as
/// `wire::recv_polys` does), `KEYGEN` (the client's secret and public key, one thread, per
/// limb of the modulus).
pub fn session_constants(n: usize, repeats: usize) -> Result<Vec<HeConstant>, String> {
    let e = |x: mp2ml_ckks::Error| x.to_string();
    let moduli = ntt_primes(30, n, LIMBS, &[]).map_err(e)?;
    let params = Params::new(n, &moduli).map_err(e)?;
    let polys: Vec<RnsPoly> = (0..POLYS as u32)
        .map(|i| {
            let mut s = [0u8; 32];
            s[..4].copy_from_slice(&i.to_le_bytes());
            RnsPoly::from_seed(&params, LIMBS - 1, &s)
        })
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let frames: Vec<Vec<u8>> = polys.iter().map(RnsPoly::to_bytes).collect();
    let bytes = frames.iter().map(Vec::len).sum::<usize>() as f64;
    let pack = time(repeats, || {
        polys.iter().map(|p| p.to_bytes().len()).sum::<usize>()
    });
    let unpack = time(repeats, || {
        frames
            .par_iter()
            .map(|f| RnsPoly::from_bytes(&params, f).map(|p| p.width()))
            .collect::<Vec<_>>()
    });
    let full = ntt_primes(30, n, 8, &[]).map_err(e)?;
    let kp = Params::new(n, &full).map_err(e)?;
    let mut rng = os_rng();
    let keygen = time(repeats, || {
        let sk = SecretKey::generate(&kp, &mut rng);
        PublicKey::generate(&sk, &mut rng)
    });
    let out = vec![
        HeConstant {
            name: "WIRE_PACK",
            seconds: pack / bytes,
        },
        HeConstant {
            name: "WIRE_UNPACK",
            seconds: unpack / bytes,
        },
        HeConstant {
            name: "KEYGEN",
            seconds: keygen / full.len() as f64,
        },
    ];
    Ok(out)
}

/// Loopback TCP: (round-trip milliseconds of a 1-byte ping-pong, Mbit/s of ciphertext halves
/// through the runtime's wire path: 30-bit residues bit-packed, framed on a `TcpChannel`,
/// received and decoded in parallel, the bytes counted as the traffic model counts them).
pub fn loopback(repeats: usize) -> Result<(f64, f64), String> {
    let io = |x: std::io::Error| x.to_string();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let pings = 2000;
    let peer = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        for _ in 0..pings * repeats {
            s.read_exact(&mut b)?;
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    let mut rtt = Vec::new();
    let mut b = [0u8; 1];
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..pings {
            s.write_all(&b).map_err(io)?;
            s.read_exact(&mut b).map_err(io)?;
        }
        rtt.push(t.elapsed().as_secs_f64() * 1e3 / pings as f64);
    }
    peer.join()
        .map_err(|_| "loopback peer panicked".to_string())?
        .map_err(io)?;

    let n = 8192;
    let e = |x: mp2ml_ckks::Error| x.to_string();
    let moduli = ntt_primes(30, n, LIMBS, &[]).map_err(e)?;
    let params = Params::new(n, &moduli).map_err(e)?;
    let count = 512;
    let polys: Vec<RnsPoly> = (0..count)
        .map(|i| RnsPoly::from_seed(&params, LIMBS - 1, &[i as u8; 32]))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let bytes: usize = polys.iter().map(|p| p.to_bytes().len()).sum();
    let (mut tx, mut rx, _) = crate::gmw::tcp_pair(None)?;
    let p2 = params.clone();
    let reader = std::thread::spawn(move || -> Result<(), String> {
        for _ in 0..repeats {
            mp2ml_runtime::wire::recv_polys(&mut rx, &p2, LIMBS - 1, n, count)
                .map_err(|x| x.to_string())?;
            mp2ml_mpc::Channel::send_frame(&mut rx, &[1]).map_err(|x| x.to_string())?;
            mp2ml_mpc::Channel::flush(&mut rx).map_err(|x| x.to_string())?;
        }
        Ok(())
    });
    let mut secs = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        for p in &polys {
            mp2ml_runtime::wire::send_poly(&mut tx, p).map_err(|x| x.to_string())?;
        }
        mp2ml_mpc::Channel::flush(&mut tx).map_err(|x| x.to_string())?;
        mp2ml_mpc::Channel::recv_frame(&mut tx).map_err(|x| x.to_string())?;
        secs.push(t.elapsed().as_secs_f64());
    }
    reader
        .join()
        .map_err(|_| "loopback reader panicked".to_string())??;
    Ok((median(rtt), bytes as f64 * 8.0 / 1e6 / median(secs)))
}
