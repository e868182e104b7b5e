//! Bit layouts that turn additive shares and masks into circuit inputs, and circuit outputs
//! back into integers (the layout of [`ShareCircuit`]).
//!
//! Instances are numbered `n = i·B + j` for circuit instance `i` of one image and image `j` of
//! the group (B images). Ciphertext `k = i·values_in + v` carries input `v` of instance `i` for
//! all images (coefficient `j`); output `o = i·values_out + u` likewise.

use mp2ml_ir::circuit::ShareCircuit;
use rand::RngCore;

use crate::error::{Inconsistency, Result};

fn push_bits(out: &mut Vec<bool>, v: u128, bits: u32) {
    out.extend((0..bits).map(|b| (v >> b) & 1 == 1));
}

/// Uniform integer in `[0, 2^bits)`.
pub fn uniform_bits(rng: &mut impl RngCore, bits: u32) -> u128 {
    let v = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    if bits >= 128 {
        v
    } else {
        v & ((1u128 << bits) - 1)
    }
}

/// The server's circuit input bits: shares `b̃[k][j]` and output masks `r'[o][j]`.
pub fn garbler_bits(
    sc: &ShareCircuit,
    instances: usize,
    images: usize,
    shares: &[Vec<u64>],
    masks: &[Vec<u128>],
) -> Vec<bool> {
    let (vi, vo) = (sc.values_in as usize, sc.values_out as usize);
    let mut bits = Vec::with_capacity(instances * images * sc.circuit.garbler_inputs as usize);
    for i in 0..instances {
        for j in 0..images {
            for v in 0..vi {
                push_bits(&mut bits, u128::from(shares[i * vi + v][j]), sc.share_bits);
            }
            for u in 0..vo {
                push_bits(&mut bits, masks[i * vo + u][j], sc.mask_bits);
            }
        }
    }
    bits
}

/// The client's circuit input bits: its shares `a[k][j]`.
#[allow(
    clippy::needless_range_loop,
    reason = "(instance, image) indices mirror the layout"
)]
pub fn evaluator_bits(
    sc: &ShareCircuit,
    instances: usize,
    images: usize,
    shares: &[Vec<u64>],
) -> Vec<bool> {
    let vi = sc.values_in as usize;
    let mut bits = Vec::with_capacity(instances * images * sc.circuit.evaluator_inputs as usize);
    for i in 0..instances {
        for j in 0..images {
            for v in 0..vi {
                push_bits(&mut bits, u128::from(shares[i * vi + v][j]), sc.share_bits);
            }
        }
    }
    bits
}

/// Decodes the circuit outputs into `z[o][j]`.
#[allow(
    clippy::needless_range_loop,
    reason = "(instance, image) indices mirror the layout"
)]
pub fn decode_outputs(
    sc: &ShareCircuit,
    instances: usize,
    images: usize,
    out: &[bool],
) -> Result<Vec<Vec<u128>>> {
    let vo = sc.values_out as usize;
    let zb = sc.z_bits() as usize;
    let per = vo * zb;
    if out.len() != instances * images * per {
        return Err(Inconsistency::CircuitOutputs {
            step: "?".into(),
            got: out.len(),
            expected: instances * images * per,
        }
        .into());
    }
    let mut z = vec![vec![0u128; images]; instances * vo];
    for i in 0..instances {
        for j in 0..images {
            let base = (i * images + j) * per;
            for u in 0..vo {
                let w = &out[base + u * zb..base + (u + 1) * zb];
                z[i * vo + u][j] = w
                    .iter()
                    .enumerate()
                    .fold(0u128, |acc, (b, &x)| acc | (u128::from(x) << b));
            }
        }
    }
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp2ml_ir::circuit::{Circuit, Gate};

    /// A toy "circuit" with 1 input of 3 bits and 1 output of mask_bits+1 = 4 bits that copies
    /// the evaluator's share XOR the garbler's share into the low bits.
    fn toy() -> ShareCircuit {
        // garbler: b (3 bits) + mask (3 bits); evaluator: a (3 bits); out: 4 bits.
        let gates = vec![
            Gate::Xor(0, 6),
            Gate::Xor(1, 7),
            Gate::Xor(2, 8),
            Gate::Xor(3, 3),
        ];
        ShareCircuit {
            circuit: Circuit {
                name: "toy".into(),
                garbler_inputs: 6,
                evaluator_inputs: 3,
                gates,
                outputs: vec![9, 10, 11, 12],
            },
            q0: 7,
            share_bits: 3,
            values_in: 1,
            values_out: 1,
            input_offset: 0,
            out_bits: 2,
            mask_bits: 3,
            output_offset: 0,
            trunc: 0,
        }
    }

    #[test]
    fn layouts_round_trip_through_plaintext_eval() {
        let sc = toy();
        let (inst, imgs) = (2, 3);
        let b: Vec<Vec<u64>> = vec![vec![1, 2, 3], vec![4, 5, 6]];
        let a: Vec<Vec<u64>> = vec![vec![6, 5, 4], vec![3, 2, 1]];
        let r: Vec<Vec<u128>> = vec![vec![0; 3]; 2];
        let g = garbler_bits(&sc, inst, imgs, &b, &r);
        let e = evaluator_bits(&sc, inst, imgs, &a);
        let per_g = sc.circuit.garbler_inputs as usize;
        let per_e = sc.circuit.evaluator_inputs as usize;
        let mut out = Vec::new();
        for n in 0..inst * imgs {
            out.extend(
                sc.circuit
                    .eval(
                        &g[n * per_g..(n + 1) * per_g],
                        &e[n * per_e..(n + 1) * per_e],
                    )
                    .expect("eval"),
            );
        }
        let z = decode_outputs(&sc, inst, imgs, &out).expect("decode");
        for k in 0..2 {
            for j in 0..3 {
                assert_eq!(z[k][j], u128::from(a[k][j] ^ b[k][j]));
            }
        }
        assert!(decode_outputs(&sc, inst, imgs, &out[1..]).is_err());
    }
}
