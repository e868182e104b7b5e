//! Truncating circuits (K > 0) against a plaintext model in u128/i128, at random Q0 of one and
//! two primes up to 125 bits, random K, both styles; the reconstruction front end on every share
//! pair at a small Q0; and the statistical property the share flood buys: with `f` uniform in
//! `[0, 2^K)` the output's law given X does not depend on the noise ε (positive control: without
//! `f` it does).

use super::*;
use crate::circuit::builder::Builder;
use crate::primes::is_prime;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn random_prime(rng: &mut StdRng, bits: u32) -> u64 {
    assert!((3..=63).contains(&bits));
    loop {
        let x = rng.random_range(1u64 << (bits - 1)..1u64 << bits) | 1;
        if is_prime(x) {
            return x;
        }
    }
}

/// A random Q0: one prime of 12..=62 bits, or the product of two primes, below 2^126.
fn random_q0(rng: &mut StdRng, primes: usize) -> u128 {
    if primes == 1 {
        let b = rng.random_range(12..=62);
        u128::from(random_prime(rng, b))
    } else {
        let b1 = rng.random_range(6..=62);
        let b2 = rng.random_range(6..=(125 - b1).min(62));
        u128::from(random_prime(rng, b1)) * u128::from(random_prime(rng, b2))
    }
}

fn bits(v: u128) -> u32 {
    128 - v.leading_zeros()
}

fn params(q0: u128, trunc: u32, style: Style) -> CircuitParams {
    CircuitParams {
        q0,
        trunc,
        sigma: 20,
        style,
    }
}

/// Evaluates `sc` on instances of signed input values `x` (full units, as the compiler's
/// range analysis sees them): the client's share is uniform, the server's is
/// `(x − a + input_offset + flood()) mod Q0`, the output masks are uniform. Returns
/// `z − r' = y + output_offset` of every output of every instance.
fn run(
    sc: &ShareCircuit,
    insts: &[Vec<i128>],
    flood: &mut dyn FnMut(&mut StdRng) -> u128,
    rng: &mut StdRng,
) -> Vec<Vec<u128>> {
    sc.check_layout().expect("layout");
    let q0 = sc.q0;
    let w = sc.share_bits as usize;
    let mb = sc.mask_bits as usize;
    let mut results = Vec::with_capacity(insts.len());
    for chunk in insts.chunks(64) {
        let mut g = vec![0u64; sc.circuit.garbler_inputs as usize];
        let mut e = vec![0u64; sc.circuit.evaluator_inputs as usize];
        let mut masks = Vec::new();
        for (k, xs) in chunk.iter().enumerate() {
            assert_eq!(xs.len(), sc.values_in as usize);
            for (i, &x) in xs.iter().enumerate() {
                let a: u128 = rng.random_range(0..q0);
                let xm = x.rem_euclid(q0 as i128) as u128;
                let f = flood(rng) % q0;
                let bt = ((xm + q0 - a) % q0 + sc.input_offset % q0) % q0;
                let bt = (bt + f) % q0;
                for bit in 0..w {
                    g[i * w + bit] |= (((bt >> bit) & 1) as u64) << k;
                    e[i * w + bit] |= (((a >> bit) & 1) as u64) << k;
                }
            }
            let base = xs.len() * w;
            let m: Vec<u128> = (0..sc.values_out)
                .map(|_| rng.random::<u128>() & ((1u128 << mb) - 1))
                .collect();
            for (o, &r) in m.iter().enumerate() {
                for bit in 0..mb {
                    g[base + o * mb + bit] |= (((r >> bit) & 1) as u64) << k;
                }
            }
            masks.push(m);
        }
        let out = sc.circuit.eval_bitsliced(&g, &e).expect("eval");
        let zb = sc.z_bits() as usize;
        for (k, m) in masks.iter().enumerate() {
            let ys = (0..sc.values_out as usize)
                .map(|o| {
                    let z: u128 = (0..zb).fold(0, |acc, bit| {
                        acc | (u128::from((out[o * zb + bit] >> k) & 1) << bit)
                    });
                    let y = z.checked_sub(m[o]).expect("z ≥ r'");
                    assert!(
                        y < 1u128 << sc.out_bits,
                        "{}: y + offset fits out_bits",
                        sc.circuit.name
                    );
                    y
                })
                .collect();
            results.push(ys);
        }
    }
    results
}

fn no_flood(_: &mut StdRng) -> u128 {
    0
}

/// `⌊x / 2^K⌋` (towards −∞).
fn floor_k(x: i128, k: u32) -> i128 {
    x >> k
}

/// `round(α·m)` for `m ≥ 0`, `α = num/2^shift ≤ 1`, without overflow.
fn scale_round(m: u128, num: u128, shift: u32) -> u128 {
    let (q, r) = (m >> shift, m & ((1u128 << shift) - 1));
    q * num + ((r * num + ((1u128 << shift) >> 1)) >> shift)
}

/// Random input values `x = s − h_K`, `s` uniform in `[0, Q0)`: the whole offset-form domain,
/// plus its ends.
fn offset_values(
    p: &CircuitParams,
    n: usize,
    values_in: usize,
    rng: &mut StdRng,
) -> Vec<Vec<i128>> {
    let off = p.offset() as i128;
    let q = p.q0;
    (0..n)
        .map(|t| {
            (0..values_in)
                .map(|_| {
                    let s = match t {
                        0 => 0,
                        1 => q - 1,
                        2 => p.offset(),
                        3 => p.offset() + (1u128 << p.trunc) - 1,
                        _ => rng.random_range(0..q),
                    };
                    s as i128 - off
                })
                .collect()
        })
        .collect()
}

/// Every activation, both styles, at `q0` and `k`, against the model.
fn check_all(q0: u128, k: u32, rng: &mut StdRng) {
    let n = 192;
    for style in [Style::Size, Style::Depth] {
        let p = params(q0, k, style);
        let (ht, top) = (p.trunc_half() as i128, p.trunc_top() as i128);
        let ctx = format!("q0 = {q0} ({} bits), K = {k}, {style:?}", p.share_bits());
        // Truncated value of an offset-form input.
        let xt = |x: i128| floor_k(x, k);

        // ReLU on the whole domain of v, against its rule: negative iff ⌊v/2^K⌋ > ⌊h/2^K⌋.
        let sc = relu(&p);
        assert_eq!(
            (sc.input_offset, sc.output_offset, sc.trunc),
            (0, 0, k),
            "{ctx}"
        );
        let xs: Vec<Vec<i128>> = (0..n)
            .map(|t| {
                let v = match t {
                    0 => 0,
                    1 => q0 - 1,
                    2 => p.half(),
                    3 => p.half() + 1,
                    4 => (p.trunc_half() + 1) << k,
                    5 => ((p.trunc_half() + 1) << k) - 1,
                    _ => rng.random_range(0..q0),
                };
                vec![v as i128]
            })
            .collect();
        for (x, y) in xs.iter().zip(run(&sc, &xs, &mut no_flood, rng)) {
            let v = x[0] as u128;
            let want = if (v >> k) > p.trunc_half() { 0 } else { v >> k };
            assert_eq!(y[0], want, "relu at v = {v}, {ctx}");
        }
        // ... which is max(x, 0) >> K wherever |x| + 2^K ≤ h (the range condition).
        let lim = p.half() as i128 - (1i128 << k);
        if lim > 0 {
            let xs: Vec<Vec<i128>> = (0..n)
                .map(|t| {
                    vec![match t {
                        0 => lim,
                        1 => -lim,
                        2 => 0,
                        3 => -1,
                        _ => rng.random_range(-lim..=lim),
                    }]
                })
                .collect();
            for (x, y) in xs.iter().zip(run(&sc, &xs, &mut no_flood, rng)) {
                assert_eq!(
                    y[0] as i128,
                    x[0].max(0) >> k,
                    "relu at x = {}, {ctx}",
                    x[0]
                );
            }
        }

        // Clip with bounds in truncated units.
        let span = ht.min(1 << 62) as i64;
        let (lo, hi) = {
            let a = rng.random_range(-span..=span);
            let b = rng.random_range(-span..=span);
            (a.min(b), a.max(b))
        };
        let sc = clip(&p, lo, hi);
        assert_eq!(
            (sc.input_offset, sc.output_offset),
            (p.offset(), p.trunc_half()),
            "{ctx}"
        );
        let xs = offset_values(&p, n, 1, rng);
        for (x, y) in xs.iter().zip(run(&sc, &xs, &mut no_flood, rng)) {
            let want = xt(x[0]).clamp(i128::from(lo), i128::from(hi)) + ht;
            assert_eq!(
                y[0] as i128,
                want.clamp(0, top),
                "clip [{lo}, {hi}] at x = {}, {ctx}",
                x[0]
            );
        }

        // LeakyReLU.
        let shift = rng.random_range(0..=8u32);
        let num = rng.random_range(0..=1u64 << shift);
        let sc = leaky_relu(&p, num, shift);
        let xs = offset_values(&p, n, 1, rng);
        for (x, y) in xs.iter().zip(run(&sc, &xs, &mut no_flood, rng)) {
            let t = xt(x[0]);
            let want = if t >= 0 {
                t
            } else {
                -(scale_round(t.unsigned_abs(), u128::from(num), shift) as i128)
            };
            assert_eq!(
                y[0] as i128,
                want + ht,
                "leaky {num}/2^{shift} at x = {}, {ctx}",
                x[0]
            );
        }

        // MaxPool over overlapping windows, with and without the fused ReLU.
        let wins = vec![vec![0, 1, 2], vec![2, 3], vec![1]];
        for fuse in [false, true] {
            let sc = maxpool(&p, 4, &wins, fuse);
            assert_eq!(
                (sc.input_offset, sc.output_offset),
                (p.offset(), p.trunc_half()),
                "{ctx}"
            );
            let xs = offset_values(&p, n / 2, 4, rng);
            for (x, ys) in xs.iter().zip(run(&sc, &xs, &mut no_flood, rng)) {
                for (win, y) in wins.iter().zip(ys) {
                    let m = win.iter().map(|&i| xt(x[i as usize])).max().unwrap_or(0);
                    let m = if fuse { m.max(0) } else { m };
                    assert_eq!(y as i128, m + ht, "maxpool (relu {fuse}) at {x:?}, {ctx}");
                }
            }
        }

        // Square: |x'| small enough that x'² >> f fits `w − 1 − K` bits and u128.
        let wt = p.trunc_bits();
        let f = rng.random_range(0..=wt.saturating_sub(2).min(20));
        let cap = (wt - 2 + f).min(124) / 2;
        let bound = ((1i128 << cap) - 1).min(ht - 2).max(0);
        let sc = square(&p, f);
        assert_eq!(
            (sc.input_offset, sc.output_offset),
            (p.offset(), 0),
            "{ctx}"
        );
        let xs: Vec<Vec<i128>> = (0..n)
            .map(|t| {
                let xp = match t {
                    0 => bound,
                    1 => -bound,
                    2 => 0,
                    _ => rng.random_range(-bound..=bound),
                };
                let low = rng.random_range(0..1i128 << k);
                vec![(xp << k) + low]
            })
            .collect();
        for (x, y) in xs.iter().zip(run(&sc, &xs, &mut no_flood, rng)) {
            let t = xt(x[0]).unsigned_abs();
            let want = (t * t + ((1u128 << f) >> 1)) >> f;
            assert_eq!(y[0], want, "square f = {f} at x = {}, {ctx}", x[0]);
        }
    }
}

#[test]
fn every_activation_matches_the_model_at_random_q0_and_k() {
    let mut rng = StdRng::seed_from_u64(0x7_2026);
    for primes in [1, 2] {
        for _ in 0..3 {
            let q0 = random_q0(&mut rng, primes);
            let w = bits(q0);
            // K = 0, a random K, and the largest K that leaves ReLU a valid domain.
            for k in [0, rng.random_range(1..=w - 4), w - 4] {
                check_all(q0, k, &mut rng);
            }
        }
    }
    // The widest: two primes with a 125-bit product.
    let q0 = loop {
        let q = u128::from(random_prime(&mut rng, 63)) * u128::from(random_prime(&mut rng, 63));
        if bits(q) == 125 {
            break q;
        }
    };
    check_all(q0, 71, &mut rng);
}

/// `⌊((a + b) mod Q0) / 2^K⌋` for every share pair at Q0 = 11·23, every K, both styles.
#[test]
fn reconstruct_high_on_every_share_pair() {
    let q0: u128 = 11 * 23;
    for style in [Style::Size, Style::Depth] {
        for k in 0..=6 {
            let p = params(q0, k, style);
            let w = p.share_bits();
            let mut b = Builder::new("rh", w, w).with_style(style);
            let (x, y) = (b.evaluator_word(0, w), b.garbler_word(0, w));
            let v = reconstruct_high(&mut b, &p, &x, &y);
            assert_eq!(v.len() as u32, w - k);
            let c = b.finish(&v);
            let pairs: Vec<(u128, u128)> =
                (0..q0).flat_map(|a| (0..q0).map(move |b| (a, b))).collect();
            for chunk in pairs.chunks(64) {
                let mut g = vec![0u64; w as usize];
                let mut e = vec![0u64; w as usize];
                for (lane, &(a, bb)) in chunk.iter().enumerate() {
                    for bit in 0..w as usize {
                        e[bit] |= (((a >> bit) & 1) as u64) << lane;
                        g[bit] |= (((bb >> bit) & 1) as u64) << lane;
                    }
                }
                let out = c.eval_bitsliced(&g, &e).expect("eval");
                for (lane, &(a, bb)) in chunk.iter().enumerate() {
                    let got = out.iter().enumerate().fold(0u128, |acc, (i, &o)| {
                        acc | (u128::from((o >> lane) & 1) << i)
                    });
                    assert_eq!(
                        got,
                        ((a + bb) % q0) >> k,
                        "a = {a}, b = {bb}, K = {k}, {style:?}"
                    );
                }
            }
        }
    }
}

/// Chi-square statistic of the homogeneity of the rows of `counts` (one row per ε, one column
/// per output value) and its degrees of freedom (empty columns left out).
fn chi_square(counts: &[Vec<u64>]) -> (f64, f64) {
    let cols = counts[0].len();
    let total: u64 = counts.iter().flatten().sum();
    let col_sum: Vec<u64> = (0..cols)
        .map(|j| counts.iter().map(|r| r[j]).sum())
        .collect();
    let mut chi = 0.0;
    for r in counts {
        let row: u64 = r.iter().sum();
        for j in 0..cols {
            let exp = row as f64 * col_sum[j] as f64 / total as f64;
            if exp > 0.0 {
                chi += (r[j] as f64 - exp).powi(2) / exp;
            }
        }
    }
    let used = col_sum.iter().filter(|&&c| c > 0).count();
    let df = ((counts.len() - 1) * used.saturating_sub(1)) as f64;
    (chi, df)
}

/// The χ² quantile of `df` degrees of freedom at the normal quantile `z` (Wilson–Hilferty).
fn chi_quantile(df: f64, z: f64) -> f64 {
    let c = 2.0 / (9.0 * df);
    df * (1.0 - c + z * c.sqrt()).powi(3)
}

/// The output of a truncating ReLU for the values `X + ε`, ε = −B..=B, `n` runs each, with or
/// without the share flood; returns the counts of `t − ⌊X/2^K⌋ ∈ {−1, 0, 1, 2}` per ε.
fn relu_law(
    sc: &ShareCircuit,
    x: i128,
    b: i128,
    n: usize,
    flood: bool,
    rng: &mut StdRng,
) -> Vec<Vec<u64>> {
    let k = sc.trunc;
    let m = x >> k;
    (-b..=b)
        .map(|eps| {
            let insts = vec![vec![x + eps]; n];
            let mut f = |r: &mut StdRng| {
                if flood {
                    r.random_range(0..1u128 << k)
                } else {
                    0
                }
            };
            let mut c = vec![0u64; 4];
            for y in run(sc, &insts, &mut f, rng) {
                let d = y[0] as i128 - m;
                assert!((-1..=2).contains(&d), "t = ⌊X/2^K⌋ + {d}");
                c[(d + 1) as usize] += 1;
            }
            c
        })
        .collect()
}

/// With `f` uniform in `[0, 2^K)` on the server's share, the circuit's output given X has the
/// law of `⌊(X + f)/2^K⌋` whatever ε (|ε| ≤ B, B/2^K = 2^−12 here: far below what 2,560
/// samples per ε resolve); without `f` it is `⌊(X + ε)/2^K⌋`, which near a rounding boundary
/// moves with ε (the positive control).
#[test]
fn share_flood_makes_the_output_law_independent_of_the_noise() {
    let mut rng = StdRng::seed_from_u64(13);
    let q0 = u128::from(random_prime(&mut rng, 30)) * u128::from(random_prime(&mut rng, 30));
    let (k, b, n) = (16u32, 16i128, 2560usize);
    let sc = relu(&params(q0, k, Style::Size));
    // z = 4.5: a false alarm has probability about 3·10⁻⁶.
    let z = 4.5;
    for low in [1i128 << (k - 1), (1 << k) - 8, 5] {
        let x = (12345i128 << k) + low;
        let flooded = relu_law(&sc, x, b, n, true, &mut rng);
        let (chi, df) = chi_square(&flooded);
        println!("flooded, X mod 2^K = {low}: χ² = {chi:.1}, df {df}");
        assert!(
            chi < chi_quantile(df, z),
            "flooded, X mod 2^K = {low}: χ² = {chi:.1} (df {df}) says the law depends on ε"
        );
        // And it is the stochastic rounding of X: E[t] − ⌊X/2^K⌋ = (X mod 2^K)/2^K.
        let total = (n as f64) * (2 * b + 1) as f64;
        let mean = flooded
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(j, &c)| (j as f64 - 1.0) * c as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / total;
        let p = low as f64 / f64::from(1u32 << k);
        let se = (p * (1.0 - p) / total).sqrt().max(1.0 / total);
        assert!(
            (mean - p).abs() < 6.0 * se + b as f64 / f64::from(1u32 << k),
            "E[t − ⌊X/2^K⌋] = {mean} vs {p}"
        );
        // Positive control: no flood, X near a boundary.
        if low == (1 << k) - 8 {
            let bare = relu_law(&sc, x, b, n / 8, false, &mut rng);
            let (chi, df) = chi_square(&bare);
            println!("unflooded, X mod 2^K = {low}: χ² = {chi:.1}, df {df}");
            assert!(
                chi > 10.0 * chi_quantile(df, z),
                "unflooded: χ² = {chi:.1} (df {df}) does not see ε"
            );
        }
    }
}

/// ReLU with truncation the plain way, for the count below: the whole reconstruction, the sign
/// from all `w` bits, then the shift.
fn relu_naive(p: &CircuitParams) -> ShareCircuit {
    let (w, k) = (p.share_bits(), p.trunc);
    let out_bits = w - 1 - k;
    let (lay, mut bld) = one_value(p, "relu_naive".into(), out_bits);
    let (a, b) = (lay.a(&bld, 0), lay.b(&bld, 0));
    let v = reconstruct(&mut bld, p, &a, &b);
    let h = Builder::constant(p.half(), w);
    let neg = bld.gt(&v, &h);
    let pos = bld.not(neg);
    let y = bld.keep_if(pos, &v[k as usize..(w - 1) as usize]);
    finish_one_value(bld, p, &lay, &y, out_bits, 0, 0)
}

/// AND gates per ReLU: today's (K = 0, one 31-bit prime), and a two-prime Q0 of 110 bits with
/// K = 71 and σ_v = 64, computed the plain way and with the high-bits front end. The printed
/// figures are those in docs/ARCHITECTURE.md ("Flood the share, truncate in the circuit").
#[test]
fn truncating_relu_and_count() {
    let mut rng = StdRng::seed_from_u64(5);
    let q110 = loop {
        let q = u128::from(random_prime(&mut rng, 55)) * u128::from(random_prime(&mut rng, 56));
        if bits(q) == 110 {
            break q;
        }
    };
    let sv = 64;
    let at = |q0: u128, trunc: u32, style: Style| CircuitParams {
        q0,
        trunc,
        sigma: sv,
        style,
    };
    for style in [Style::Size, Style::Depth] {
        let today = relu(&at(1_073_872_897, 0, style)).circuit.stats();
        let wide = relu(&at(q110, 0, style)).circuit.stats();
        let naive = relu_naive(&at(q110, 71, style)).circuit.stats();
        let cheap = relu(&at(q110, 71, style)).circuit.stats();
        println!(
            "{style:?}: w=31 K=0 {} AND (depth {}); w=110 K=0 {} AND; w=110 K=71 plain {} AND (depth {}), high-bits {} AND (depth {})",
            today.and, today.and_depth, wide.and, naive.and, naive.and_depth, cheap.and, cheap.and_depth
        );
        assert!(
            cheap.and < naive.and,
            "{style:?}: the front end saves gates"
        );
        if style == Style::Size {
            // 6w − 4K + σ_v (w = 110, K = 71): the low K bits cost 2K, the high ones 6 each.
            assert!(
                cheap.and <= 6 * 110 - 4 * 71 + u64::from(sv),
                "{}",
                cheap.and
            );
            assert!(
                naive.and <= 6 * 110 - 2 * 71 + u64::from(sv),
                "{}",
                naive.and
            );
        }
    }
}
