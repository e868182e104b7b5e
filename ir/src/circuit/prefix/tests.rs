//! Depth-optimized circuits against the size-optimal ones, bit for bit on the same inputs:
//! every share pair at q0 = 97, random pairs at 31 bits; and the depth they save.

use super::Style;
use crate::circuit::activations::{clip, leaky_relu, maxpool, relu, square, CircuitParams};
use crate::circuit::builder::Builder;
use crate::circuit::ShareCircuit;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn both(q0: u64, sigma: u32, f: impl Fn(&CircuitParams) -> ShareCircuit) -> [ShareCircuit; 2] {
    [Style::Size, Style::Depth].map(|style| {
        f(&CircuitParams {
            q0: u128::from(q0),
            trunc: 0,
            sigma,
            style,
        })
    })
}

type Make = Box<dyn Fn(&CircuitParams) -> ShareCircuit>;

fn all(frac: u32) -> Vec<(&'static str, Make)> {
    let wins = vec![vec![0, 1, 2, 3], vec![1, 3], vec![2]];
    let w2 = wins.clone();
    vec![
        ("relu", Box::new(relu)),
        ("maxpool", Box::new(move |p| maxpool(p, 4, &wins, false))),
        ("maxpool_relu", Box::new(move |p| maxpool(p, 4, &w2, true))),
        (
            "clip",
            Box::new(|p| clip(p, -((p.q0 / 5) as i64), (p.q0 / 7) as i64)),
        ),
        ("leaky_relu", Box::new(|p| leaky_relu(p, 26, 8))),
        ("square", Box::new(move |p| square(p, frac))),
    ]
}

/// Random garbler words (shares below q0, random masks) and evaluator words, 64 instances per
/// word; the share words of input `i` come from `pairs(t, i)`.
fn inputs(
    sc: &ShareCircuit,
    n: usize,
    pairs: &dyn Fn(usize, usize) -> (u64, u64),
    rng: &mut StdRng,
) -> Vec<(Vec<u64>, Vec<u64>)> {
    let w = sc.share_bits as usize;
    let mut out = Vec::new();
    for first in (0..n).step_by(64) {
        let mut g = vec![0u64; sc.circuit.garbler_inputs as usize];
        let mut e = vec![0u64; sc.circuit.evaluator_inputs as usize];
        for k in 0..(n - first).min(64) {
            for i in 0..sc.values_in as usize {
                let (a, b) = pairs(first + k, i);
                for bit in 0..w {
                    g[i * w + bit] |= ((b >> bit) & 1) << k;
                    e[i * w + bit] |= ((a >> bit) & 1) << k;
                }
            }
            let base = sc.values_in as usize * w;
            for o in 0..sc.values_out as usize {
                let m: u128 = rng.random::<u128>() & ((1u128 << sc.mask_bits) - 1);
                for bit in 0..sc.mask_bits as usize {
                    g[base + o * sc.mask_bits as usize + bit] |= (((m >> bit) & 1) as u64) << k;
                }
            }
        }
        out.push((g, e));
    }
    out
}

fn same_outputs(size: &ShareCircuit, depth: &ShareCircuit, words: &[(Vec<u64>, Vec<u64>)]) {
    assert_eq!(size.circuit.garbler_inputs, depth.circuit.garbler_inputs);
    assert_eq!(size.circuit.outputs.len(), depth.circuit.outputs.len());
    depth.check_layout().expect("layout");
    for (g, e) in words {
        let a = size.circuit.eval_bitsliced(g, e).expect("size");
        let b = depth.circuit.eval_bitsliced(g, e).expect("depth");
        assert_eq!(a, b, "{} vs {}", size.circuit.name, depth.circuit.name);
    }
}

#[test]
fn depth_variants_equal_size_variants_on_every_share_pair_at_q0_97() {
    let mut rng = StdRng::seed_from_u64(7);
    for (name, make) in all(2) {
        let [s, d] = both(97, 3, &make);
        assert!(d.circuit.name.ends_with("_depth"), "{name}");
        let q = 97u64;
        let words = if s.values_in == 1 {
            // All 97 × 97 share pairs.
            inputs(
                &s,
                (q * q) as usize,
                &|t, _| ((t as u64) / q, (t as u64) % q),
                &mut rng,
            )
        } else {
            let pairs: Vec<(u64, u64)> = (0..4 * 4096)
                .map(|_| (rng.random_range(0..q), rng.random_range(0..q)))
                .collect();
            inputs(&s, 4096, &|t, i| pairs[t * 4 + i], &mut rng)
        };
        same_outputs(&s, &d, &words);
    }
}

#[test]
fn depth_variants_equal_size_variants_at_31_bits_and_are_shallower() {
    let mut rng = StdRng::seed_from_u64(8);
    let q = 2_147_483_647u64;
    for (name, make) in all(16) {
        let [s, d] = both(q, 40, &make);
        let pairs: Vec<(u64, u64)> = (0..4 * 2048)
            .map(|_| (rng.random_range(0..q), rng.random_range(0..q)))
            .collect();
        let words = inputs(&s, 2048, &|t, i| pairs[t * 4 + i], &mut rng);
        same_outputs(&s, &d, &words);
        let (ss, ds) = (s.circuit.stats(), d.circuit.stats());
        println!(
            "{name}: size {} AND depth {}, depth-optimized {} AND depth {}",
            ss.and, ss.and_depth, ds.and, ds.and_depth
        );
        assert!(
            2 * ds.and_depth < ss.and_depth,
            "{name}: depth {} vs {}",
            ds.and_depth,
            ss.and_depth
        );
    }
}

#[test]
fn prefix_adder_and_comparator_match_integers() {
    let mut rng = StdRng::seed_from_u64(9);
    for n in [1u32, 2, 3, 7, 16, 33] {
        let mut b = Builder::new("t", n, n).with_style(Style::Depth);
        let x = b.garbler_word(0, n);
        let y = b.evaluator_word(0, n);
        let (sum, cout) = b.add_with_carry(&x, &y, super::Bit::Const(true));
        let tr = b.add_trunc(&x, &y);
        let ge = b.ge(&x, &y);
        let mut outs = sum.clone();
        outs.push(cout);
        outs.extend(tr);
        outs.push(ge);
        let c = b.finish(&outs);
        let mask = (1u128 << n) - 1;
        for _ in 0..200 {
            let (xv, yv) = (rng.random::<u128>() & mask, rng.random::<u128>() & mask);
            let bits = |v: u128| crate::circuit::to_bits(v, n);
            let o = c.eval(&bits(xv), &bits(yv)).expect("eval");
            let n = n as usize;
            let full = crate::circuit::from_bits(&o[..=n]);
            assert_eq!(full, xv + yv + 1);
            assert_eq!(
                crate::circuit::from_bits(&o[n + 1..2 * n + 1]),
                (xv + yv) & mask
            );
            assert_eq!(o[2 * n + 1], xv >= yv);
        }
        assert!(c.stats().and_depth <= 2 + 2 * (64 - u64::from(n + 1).leading_zeros()));
    }
}
