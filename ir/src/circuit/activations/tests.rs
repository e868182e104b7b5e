//! Every circuit against its plaintext function: exhaustively at a small width, on random
//! inputs at full width.

use super::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// One instance: the centered input values and the server's output masks.
struct Instance {
    xs: Vec<i64>,
    masks: Vec<u128>,
}

/// Splits each value into shares, evaluates 64 instances at a time bitsliced, and returns
/// `z − r' − output_offset` for every output of every instance.
fn run(sc: &ShareCircuit, insts: &[Instance], rng: &mut StdRng) -> Vec<Vec<i128>> {
    sc.check_layout().expect("layout");
    let q0 = sc.q0;
    let w = sc.share_bits as usize;
    let mut results = Vec::with_capacity(insts.len());
    for chunk in insts.chunks(64) {
        let mut g = vec![0u64; sc.circuit.garbler_inputs as usize];
        let mut e = vec![0u64; sc.circuit.evaluator_inputs as usize];
        for (k, inst) in chunk.iter().enumerate() {
            for (i, &x) in inst.xs.iter().enumerate() {
                let a: u128 = rng.random_range(0..q0);
                let xm = (i128::from(x)).rem_euclid(q0 as i128) as u128;
                let b = (xm + q0 - a) % q0;
                let bt = (b + sc.input_offset) % q0;
                for bit in 0..w {
                    g[i * w + bit] |= (((bt >> bit) & 1) as u64) << k;
                    e[i * w + bit] |= (((a >> bit) & 1) as u64) << k;
                }
            }
            let base = inst.xs.len() * w;
            for (o, &m) in inst.masks.iter().enumerate() {
                for bit in 0..sc.mask_bits as usize {
                    g[base + o * sc.mask_bits as usize + bit] |= (((m >> bit) & 1) as u64) << k;
                }
            }
        }
        let out = sc.circuit.eval_bitsliced(&g, &e).expect("eval");
        let zb = sc.z_bits() as usize;
        for (k, inst) in chunk.iter().enumerate() {
            let ys = (0..sc.values_out as usize)
                .map(|o| {
                    let z: u128 = (0..zb).fold(0, |acc, bit| {
                        acc | (u128::from((out[o * zb + bit] >> k) & 1) << bit)
                    });
                    z as i128 - inst.masks[o] as i128 - sc.output_offset as i128
                })
                .collect();
            results.push(ys);
        }
    }
    results
}

fn masks(rng: &mut StdRng, sc: &ShareCircuit) -> Vec<u128> {
    (0..sc.values_out)
        .map(|_| rng.random::<u128>() & ((1u128 << sc.mask_bits) - 1))
        .collect()
}

fn small() -> CircuitParams {
    CircuitParams {
        q0: 97,
        trunc: 0,
        sigma: 3,
        style: Default::default(),
    }
}

fn full() -> CircuitParams {
    CircuitParams {
        q0: 2_147_483_647,
        trunc: 0,
        sigma: 40,
        style: Default::default(),
    }
}

/// All centered values, each with several random share splits.
fn exhaustive(sc: &ShareCircuit, f: impl Fn(i64) -> i64, rng: &mut StdRng) {
    let h = (sc.q0 / 2) as i64;
    let mut insts = Vec::new();
    for x in -h..=h {
        for _ in 0..40 {
            insts.push(Instance {
                xs: vec![x],
                masks: masks(rng, sc),
            });
        }
    }
    let got = run(sc, &insts, rng);
    for (inst, y) in insts.iter().zip(got) {
        assert_eq!(
            y[0],
            i128::from(f(inst.xs[0])),
            "{} at x = {}",
            sc.circuit.name,
            inst.xs[0]
        );
    }
}

fn random_full(sc: &ShareCircuit, bound: i64, f: impl Fn(i64) -> i64, rng: &mut StdRng) {
    let insts: Vec<Instance> = (0..1024)
        .map(|i| {
            let x = match i {
                0 => -bound,
                1 => bound,
                2 => 0,
                3 => -1,
                _ => rng.random_range(-bound..=bound),
            };
            Instance {
                xs: vec![x],
                masks: masks(rng, sc),
            }
        })
        .collect();
    let got = run(sc, &insts, rng);
    for (inst, y) in insts.iter().zip(got) {
        assert_eq!(
            y[0],
            i128::from(f(inst.xs[0])),
            "{} at x = {}",
            sc.circuit.name,
            inst.xs[0]
        );
    }
}

#[test]
fn relu_exhaustive_small_and_random_full() {
    let mut rng = StdRng::seed_from_u64(1);
    exhaustive(&relu(&small()), |x| x.max(0), &mut rng);
    let p = full();
    random_full(&relu(&p), (p.q0 / 2) as i64, |x| x.max(0), &mut rng);
}

#[test]
fn relu_and_count_within_bound() {
    for (q0, sigma) in [
        (2_147_483_647u128, 40u32),
        ((1u128 << 40) - 87, 40),
        (97, 3),
    ] {
        let p = CircuitParams {
            q0,
            trunc: 0,
            sigma,
            style: Default::default(),
        };
        let sc = relu(&p);
        let s = sc.circuit.stats();
        let w = u64::from(p.share_bits());
        println!(
            "relu w={w} sigma={sigma}: {} AND, depth {}",
            s.and, s.and_depth
        );
        assert!(
            s.and <= 6 * w + u64::from(sigma),
            "relu uses {} AND > 6w+σ = {}",
            s.and,
            6 * w + u64::from(sigma)
        );
    }
}

#[test]
fn clip_exhaustive_small_and_random_full() {
    let mut rng = StdRng::seed_from_u64(2);
    exhaustive(&clip(&small(), -5, 7), |x| x.clamp(-5, 7), &mut rng);
    exhaustive(&clip(&small(), 0, 30), |x| x.clamp(0, 30), &mut rng);
    let p = full();
    let (lo, hi) = (0, 6 << 16);
    random_full(
        &clip(&p, lo, hi),
        (p.q0 / 2) as i64,
        |x| x.clamp(lo, hi),
        &mut rng,
    );
}

fn leaky(x: i64, num: u64, shift: u32) -> i64 {
    if x >= 0 {
        x
    } else {
        let m = (x.unsigned_abs() * num + (1u64 << shift >> 1)) >> shift;
        -(m as i64)
    }
}

#[test]
fn leaky_relu_exhaustive_small_and_random_full() {
    let mut rng = StdRng::seed_from_u64(3);
    exhaustive(&leaky_relu(&small(), 26, 8), |x| leaky(x, 26, 8), &mut rng);
    let p = full();
    random_full(
        &leaky_relu(&p, 655, 16),
        (p.q0 / 2) as i64,
        |x| leaky(x, 655, 16),
        &mut rng,
    );
}

#[test]
fn square_exhaustive_small_and_random_full() {
    let mut rng = StdRng::seed_from_u64(4);
    let sq = |f: u32| move |x: i64| (x * x + ((1i64 << f) >> 1)) >> f;
    // q0 = 97: outputs must fit w − 1 = 6 bits, so |x| ≤ 15 with f = 2.
    let sc = square(&small(), 2);
    let insts: Vec<Instance> = (-15..=15)
        .flat_map(|x| (0..40).map(move |_| x))
        .map(|x| Instance {
            xs: vec![x],
            masks: vec![0],
        })
        .collect();
    let insts: Vec<Instance> = insts
        .into_iter()
        .map(|i| Instance {
            masks: masks(&mut rng, &sc),
            ..i
        })
        .collect();
    for (inst, y) in insts.iter().zip(run(&sc, &insts, &mut rng)) {
        assert_eq!(y[0], i128::from(sq(2)(inst.xs[0])), "x = {}", inst.xs[0]);
    }
    let p = full();
    random_full(&square(&p, 16), (1 << 23) - 1, sq(16), &mut rng);
}

/// Windows of a `k×k` pool with stride `s` over an `n×n` plane.
fn windows(n: u32, k: u32, s: u32) -> Vec<Vec<u32>> {
    let out = (n - k) / s + 1;
    let mut v = Vec::new();
    for oy in 0..out {
        for ox in 0..out {
            v.push(
                (0..k)
                    .flat_map(|dy| (0..k).map(move |dx| (oy * s + dy) * n + ox * s + dx))
                    .collect(),
            );
        }
    }
    v
}

fn check_maxpool(
    p: &CircuitParams,
    n: u32,
    k: u32,
    s: u32,
    relu: bool,
    count: usize,
    rng: &mut StdRng,
) {
    let wins = windows(n, k, s);
    let sc = maxpool(p, n * n, &wins, relu);
    let h = (p.q0 / 2) as i64;
    let insts: Vec<Instance> = (0..count)
        .map(|_| Instance {
            xs: (0..n * n).map(|_| rng.random_range(-h..=h)).collect(),
            masks: masks(rng, &sc),
        })
        .collect();
    for (inst, ys) in insts.iter().zip(run(&sc, &insts, rng)) {
        for (win, y) in wins.iter().zip(ys) {
            let m = win.iter().map(|&i| inst.xs[i as usize]).max().unwrap_or(0);
            let m = if relu { m.max(0) } else { m };
            assert_eq!(y, i128::from(m), "{}", sc.circuit.name);
        }
    }
}

#[test]
fn maxpool_small_and_full() {
    let mut rng = StdRng::seed_from_u64(5);
    // Overlapping 2×2 windows, stride 1, over 3×3; with and without fused ReLU.
    check_maxpool(&small(), 3, 2, 1, false, 2000, &mut rng);
    check_maxpool(&small(), 3, 2, 1, true, 2000, &mut rng);
    check_maxpool(&small(), 4, 2, 2, false, 2000, &mut rng);
    check_maxpool(&full(), 4, 2, 2, true, 256, &mut rng);
    check_maxpool(&full(), 4, 3, 1, false, 256, &mut rng);
}

#[test]
fn every_circuit_validates_and_has_consistent_layout() {
    let p = full();
    for sc in [
        relu(&p),
        clip(&p, -3, 3),
        leaky_relu(&p, 1, 1),
        square(&p, 8),
        maxpool(&p, 4, &windows(2, 2, 1), true),
    ] {
        sc.check_layout().expect("layout");
        // The export, read back by an independent Bristol Fashion interpreter, computes the
        // same function as the circuit on random inputs.
        let text = sc.circuit.to_bristol_fashion();
        let mut rng = StdRng::seed_from_u64(7);
        let (ng, ne) = (
            sc.circuit.garbler_inputs as usize,
            sc.circuit.evaluator_inputs as usize,
        );
        for _ in 0..16 {
            let g: Vec<bool> = (0..ng).map(|_| rng.random()).collect();
            let e: Vec<bool> = (0..ne).map(|_| rng.random()).collect();
            let want = sc.circuit.eval(&g, &e).expect("valid circuit");
            let got = eval_bristol(&text, &[&g, &e]).expect("well-formed Bristol Fashion");
            assert_eq!(got, want, "{}", sc.circuit.name);
        }
    }
}

/// Evaluates a Bristol Fashion circuit (header `gates wires`, input words, output words, then
/// one gate per line, outputs the last wires) on the given input words: written from the format's
/// description, sharing nothing with [`Circuit`].
fn eval_bristol(text: &str, inputs: &[&[bool]]) -> Result<Vec<bool>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut nums = |what: &str| -> Result<Vec<usize>, String> {
        let l = lines.next().ok_or(format!("missing {what} line"))?;
        l.split_whitespace()
            .map(|t| t.parse::<usize>().map_err(|e| format!("{what}: {t}: {e}")))
            .collect()
    };
    let head = nums("header")?;
    let [n_gates, n_wires] = head[..] else {
        return Err(format!("header {head:?}"));
    };
    let ins = nums("inputs")?;
    let outs = nums("outputs")?;
    if ins.first() != Some(&(ins.len() - 1)) || outs.first() != Some(&(outs.len() - 1)) {
        return Err("word counts".into());
    }
    if ins[1..].iter().zip(inputs).any(|(&w, v)| w != v.len()) || ins.len() - 1 != inputs.len() {
        return Err("input widths".into());
    }
    let mut w: Vec<Option<bool>> = vec![None; n_wires];
    for (i, &b) in inputs.iter().flat_map(|v| v.iter()).enumerate() {
        w[i] = Some(b);
    }
    let mut gates = 0;
    for l in lines {
        let t: Vec<&str> = l.split_whitespace().collect();
        let n = |k: usize| -> Result<usize, String> {
            t.get(k)
                .ok_or(format!("short gate {l}"))?
                .parse::<usize>()
                .map_err(|e| format!("{l}: {e}"))
        };
        let read = |w: &[Option<bool>], k: usize| -> Result<bool, String> {
            w.get(n(k)?)
                .copied()
                .flatten()
                .ok_or(format!("{l}: unset wire"))
        };
        let (out, v) = match t.last().copied() {
            Some("XOR") => (n(4)?, read(&w, 2)? ^ read(&w, 3)?),
            Some("AND") => (n(4)?, read(&w, 2)? & read(&w, 3)?),
            Some("INV") => (n(3)?, !read(&w, 2)?),
            _ => return Err(format!("gate {l}")),
        };
        *w.get_mut(out).ok_or(format!("{l}: wire out of range"))? = Some(v);
        gates += 1;
    }
    if gates != n_gates {
        return Err(format!("{gates} gates, header says {n_gates}"));
    }
    let n_out: usize = outs[1..].iter().sum();
    w[n_wires - n_out..]
        .iter()
        .map(|b| b.ok_or("unset output".to_string()))
        .collect()
}
