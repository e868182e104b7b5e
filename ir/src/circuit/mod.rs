//! Boolean circuits over XOR, AND and INV gates.
//!
//! A [`Circuit`] is plain data: the compiler builds it, the plan stores it, the runtime garbles
//! and evaluates it, and tests run it in plaintext with [`Circuit::eval`] or, 64 instances at a
//! time, with [`Circuit::eval_bitsliced`]. [`builder`] constructs circuits with constant folding;
//! [`activations`] holds the production circuits of the non-linear layers (ReLU, MaxPool, Clip,
//! LeakyReLU, x·x) that the compiler writes into plans and the runtime tests garble.
//!
//! Wire numbering: wires `0 .. garbler_inputs` are the garbler's (server's) inputs, the next
//! `evaluator_inputs` wires are the evaluator's (client's) inputs, and gate `i` defines wire
//! `garbler_inputs + evaluator_inputs + i`. A gate may only read wires defined before it, so the
//! gate list is already in topological order. XOR and INV are free under free-XOR garbling;
//! only AND gates cost (two ciphertexts each with half-gates).

pub mod activations;
pub mod builder;
pub mod prefix;

pub use prefix::Style;

use serde::{Deserialize, Serialize};

/// Index of a wire in a [`Circuit`].
pub type Wire = u32;

/// One gate; its output is the next wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Gate {
    /// `a XOR b` (free).
    Xor(Wire, Wire),
    /// `a AND b` (two ciphertexts with half-gates).
    And(Wire, Wire),
    /// `NOT a` (free).
    Inv(Wire),
}

impl Gate {
    /// The wires this gate reads.
    pub fn inputs(&self) -> (Wire, Option<Wire>) {
        match *self {
            Gate::Xor(a, b) | Gate::And(a, b) => (a, Some(b)),
            Gate::Inv(a) => (a, None),
        }
    }
}

/// A Boolean circuit for one instance of a non-linear function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Circuit {
    /// Human-readable name, e.g. `relu_w32_s40`.
    pub name: String,
    /// Number of input bits supplied by the garbler (server).
    pub garbler_inputs: u32,
    /// Number of input bits supplied by the evaluator (client).
    pub evaluator_inputs: u32,
    /// Gates in topological order; gate `i` defines wire `inputs + i`.
    pub gates: Vec<Gate>,
    /// Output wires, least significant bit of each output word first (the layout is described by
    /// whoever built the circuit).
    pub outputs: Vec<Wire>,
}

/// Gate counts and depth of a circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitStats {
    /// AND gates (the only ones that cost communication).
    pub and: u64,
    /// XOR gates.
    pub xor: u64,
    /// INV gates.
    pub inv: u64,
    /// Largest number of AND gates on any input-to-output path.
    pub and_depth: u32,
    /// Number of wires.
    pub wires: u64,
}

/// A structural defect found by [`Circuit::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CircuitError {
    /// A gate reads a wire that is not defined before it.
    #[error("circuit `{name}`: gate {gate} reads wire {wire}, which is not defined before it")]
    ForwardWire {
        /// Circuit name.
        name: String,
        /// Gate index.
        gate: usize,
        /// Offending wire.
        wire: Wire,
    },
    /// An output names a wire that does not exist.
    #[error(
        "circuit `{name}`: output {index} names wire {wire}, but the circuit has {wires} wires"
    )]
    BadOutput {
        /// Circuit name.
        name: String,
        /// Output index.
        index: usize,
        /// Offending wire.
        wire: Wire,
        /// Number of wires.
        wires: u64,
    },
    /// The circuit has more wires than fit a `u32`.
    #[error("circuit `{name}` is too large ({wires} wires)")]
    TooLarge {
        /// Circuit name.
        name: String,
        /// Number of wires.
        wires: u64,
    },
    /// A [`ShareCircuit`]'s declared layout does not match its circuit.
    #[error("circuit `{name}`: its input/output counts do not match its declared share layout")]
    Layout {
        /// Circuit name.
        name: String,
    },
    /// Wrong number of input bits given to an evaluation.
    #[error("circuit `{name}` takes {expected} {who} input bits, got {got}")]
    InputLength {
        /// Circuit name.
        name: String,
        /// `garbler` or `evaluator`.
        who: &'static str,
        /// Expected bit count.
        expected: usize,
        /// Given bit count.
        got: usize,
    },
}

impl Circuit {
    /// Total number of input wires.
    pub fn num_inputs(&self) -> u64 {
        u64::from(self.garbler_inputs) + u64::from(self.evaluator_inputs)
    }

    /// Total number of wires (inputs plus one per gate).
    pub fn num_wires(&self) -> u64 {
        self.num_inputs() + self.gates.len() as u64
    }

    /// Checks that every gate reads only earlier wires and every output exists. Circuits read
    /// from a plan file are untrusted and must pass this before they are garbled or evaluated;
    /// after it, indexing wires by gate inputs cannot go out of bounds.
    pub fn validate(&self) -> Result<(), CircuitError> {
        let wires = self.num_wires();
        if wires > u64::from(u32::MAX) {
            return Err(CircuitError::TooLarge {
                name: self.name.clone(),
                wires,
            });
        }
        let base = self.num_inputs();
        for (i, g) in self.gates.iter().enumerate() {
            let defined = base + i as u64;
            let (a, b) = g.inputs();
            for w in std::iter::once(a).chain(b) {
                if u64::from(w) >= defined {
                    return Err(CircuitError::ForwardWire {
                        name: self.name.clone(),
                        gate: i,
                        wire: w,
                    });
                }
            }
        }
        for (index, &w) in self.outputs.iter().enumerate() {
            if u64::from(w) >= wires {
                return Err(CircuitError::BadOutput {
                    name: self.name.clone(),
                    index,
                    wire: w,
                    wires,
                });
            }
        }
        Ok(())
    }

    /// Gate counts and AND depth.
    pub fn stats(&self) -> CircuitStats {
        let base = self.num_inputs() as usize;
        let mut depth = vec![0u32; base + self.gates.len()];
        let mut s = CircuitStats {
            wires: self.num_wires(),
            ..Default::default()
        };
        for (i, g) in self.gates.iter().enumerate() {
            let d = |w: Wire| depth.get(w as usize).copied().unwrap_or(0);
            let out = match *g {
                Gate::Xor(a, b) => {
                    s.xor += 1;
                    d(a).max(d(b))
                }
                Gate::And(a, b) => {
                    s.and += 1;
                    d(a).max(d(b)) + 1
                }
                Gate::Inv(a) => {
                    s.inv += 1;
                    d(a)
                }
            };
            if let Some(slot) = depth.get_mut(base + i) {
                *slot = out;
            }
        }
        s.and_depth = self
            .outputs
            .iter()
            .map(|&w| depth.get(w as usize).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        s
    }

    /// AND gates per AND layer, in depth order, empty layers left out: the rounds GMW runs
    /// (`runtime/mpc/src/gmw.rs` schedules every AND at its depth over all gates, not only the
    /// outputs' cones).
    pub fn and_layers(&self) -> Vec<usize> {
        let base = self.num_inputs() as usize;
        let mut depth = vec![0usize; base + self.gates.len()];
        let mut count: Vec<usize> = Vec::new();
        for (i, g) in self.gates.iter().enumerate() {
            let d = |w: Wire| depth.get(w as usize).copied().unwrap_or(0);
            let (a, b) = g.inputs();
            let din = d(a).max(b.map_or(0, d));
            let out = if matches!(g, Gate::And(..)) {
                if count.len() <= din {
                    count.resize(din + 1, 0);
                }
                count[din] += 1;
                din + 1
            } else {
                din
            };
            if let Some(slot) = depth.get_mut(base + i) {
                *slot = out;
            }
        }
        count.into_iter().filter(|&c| c > 0).collect()
    }

    /// Evaluates one instance in plaintext. `garbler` and `evaluator` are the input bits.
    pub fn eval(&self, garbler: &[bool], evaluator: &[bool]) -> Result<Vec<bool>, CircuitError> {
        let g: Vec<u64> = garbler.iter().map(|&b| u64::from(b)).collect();
        let e: Vec<u64> = evaluator.iter().map(|&b| u64::from(b)).collect();
        Ok(self
            .eval_bitsliced(&g, &e)?
            .into_iter()
            .map(|w| w & 1 == 1)
            .collect())
    }

    /// Evaluates 64 instances at once: bit `k` of every input word belongs to instance `k`.
    pub fn eval_bitsliced(
        &self,
        garbler: &[u64],
        evaluator: &[u64],
    ) -> Result<Vec<u64>, CircuitError> {
        self.validate()?;
        if garbler.len() != self.garbler_inputs as usize {
            return Err(CircuitError::InputLength {
                name: self.name.clone(),
                who: "garbler",
                expected: self.garbler_inputs as usize,
                got: garbler.len(),
            });
        }
        if evaluator.len() != self.evaluator_inputs as usize {
            return Err(CircuitError::InputLength {
                name: self.name.clone(),
                who: "evaluator",
                expected: self.evaluator_inputs as usize,
                got: evaluator.len(),
            });
        }
        let mut w: Vec<u64> = Vec::with_capacity(self.num_wires() as usize);
        w.extend_from_slice(garbler);
        w.extend_from_slice(evaluator);
        // After `validate`, every read index is below `w.len()`.
        for g in &self.gates {
            let v = match *g {
                Gate::Xor(a, b) => w[a as usize] ^ w[b as usize],
                Gate::And(a, b) => w[a as usize] & w[b as usize],
                Gate::Inv(a) => !w[a as usize],
            };
            w.push(v);
        }
        Ok(self.outputs.iter().map(|&o| w[o as usize]).collect())
    }

    /// Writes the circuit in Bristol Fashion (one garbler input word, one evaluator input word,
    /// one output word; an output that is not the last wire is copied by `XOR x 0` style
    /// gates so that outputs are the final wires, as the format requires).
    pub fn to_bristol_fashion(&self) -> String {
        let base = self.num_inputs();
        let mut gates: Vec<String> = Vec::with_capacity(self.gates.len() + self.outputs.len() + 1);
        let mut next = base;
        for (i, g) in self.gates.iter().enumerate() {
            let out = base + i as u64;
            gates.push(match *g {
                Gate::Xor(a, b) => format!("2 1 {a} {b} {out} XOR"),
                Gate::And(a, b) => format!("2 1 {a} {b} {out} AND"),
                Gate::Inv(a) => format!("1 1 {a} {out} INV"),
            });
            next = out + 1;
        }
        // Outputs must be the last wires: copy each output with two INV gates.
        let mut inv_tmp = Vec::new();
        for &o in &self.outputs {
            let t = next;
            inv_tmp.push((o, t));
            next += 1;
        }
        for &(o, t) in &inv_tmp {
            gates.push(format!("1 1 {o} {t} INV"));
        }
        for &(_, t) in &inv_tmp {
            gates.push(format!("1 1 {t} {next} INV"));
            next += 1;
        }
        let mut s = String::new();
        s.push_str(&format!("{} {}\n", gates.len(), next));
        s.push_str(&format!(
            "2 {} {}\n",
            self.garbler_inputs, self.evaluator_inputs
        ));
        s.push_str(&format!("1 {}\n\n", self.outputs.len()));
        for g in gates {
            s.push_str(&g);
            s.push('\n');
        }
        s
    }
}

/// A circuit together with the layout the protocol needs to feed it additive shares.
///
/// One *instance* consumes `values_in` secret values and produces `values_out` masked results.
/// Per instance, the garbler's input bits are: for each input value its share
/// `(b + input_offset) mod q0` on `share_bits` bits, then for each output its mask `r'` on
/// `mask_bits` bits. The evaluator's input bits are its shares `a` (`share_bits` bits each).
/// The circuit reconstructs `v = (a + b̃) mod q0` on the full share width and drops its `trunc`
/// low bits (`activations`, "Truncation"). Each output is `z = y + output_offset + r'` on
/// `mask_bits + 1` bits, where `y` is the function's value in the truncated units (scale Δ,
/// a signed integer) and `y + output_offset` lies in `[0, 2^out_bits)`; the sum never wraps.
/// All words are least significant bit first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareCircuit {
    /// The Boolean circuit for one instance.
    pub circuit: Circuit,
    /// The modulus Q0 of the additive shares (below 2^126).
    pub q0: u128,
    /// Bits per share (`ceil(log2 q0)`).
    pub share_bits: u32,
    /// Secret input values per instance.
    pub values_in: u32,
    /// Masked outputs per instance.
    pub values_out: u32,
    /// Constant the server adds to its share before it enters the circuit (mod q0).
    pub input_offset: u128,
    /// Bits of `y + output_offset`.
    pub out_bits: u32,
    /// Bits of the server's output mask `r'` (`out_bits + σ`).
    pub mask_bits: u32,
    /// Offset added to `y` inside the circuit, removed by the server with its mask (in the
    /// truncated units).
    pub output_offset: u128,
    /// Low bits K the circuit drops from each reconstructed value (0: none). Left out of the
    /// serialized form when 0, so plans without truncation read and write as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trunc: u32,
}

fn is_zero(k: &u32) -> bool {
    *k == 0
}

impl ShareCircuit {
    /// Bits of each output word `z` (`mask_bits + 1`).
    pub fn z_bits(&self) -> u32 {
        self.mask_bits.saturating_add(1)
    }

    /// Checks that the circuit's input and output counts match the layout.
    pub fn check_layout(&self) -> Result<(), CircuitError> {
        self.circuit.validate()?;
        let g = u64::from(self.values_in) * u64::from(self.share_bits)
            + u64::from(self.values_out) * u64::from(self.mask_bits);
        let e = u64::from(self.values_in) * u64::from(self.share_bits);
        let o = u64::from(self.values_out) * (u64::from(self.mask_bits) + 1);
        let ok = u64::from(self.circuit.garbler_inputs) == g
            && u64::from(self.circuit.evaluator_inputs) == e
            && self.circuit.outputs.len() as u64 == o
            && self.share_bits >= 2
            && self.share_bits <= 126
            && self.q0 > 2
            && self.q0 <= (1u128 << self.share_bits)
            && self.q0 > (1u128 << (self.share_bits - 1))
            && u64::from(self.trunc) + 2 <= u64::from(self.share_bits)
            && self.out_bits <= self.share_bits - self.trunc
            && self.mask_bits > self.out_bits
            && self.mask_bits <= 126
            && self.input_offset < self.q0;
        if ok {
            Ok(())
        } else {
            Err(CircuitError::Layout {
                name: self.circuit.name.clone(),
            })
        }
    }
}

/// Packs the low `bits` bits of `v` into booleans, least significant first.
pub fn to_bits(v: u128, bits: u32) -> Vec<bool> {
    (0..bits).map(|i| (v >> i) & 1 == 1).collect()
}

/// Reads booleans (least significant first) as an integer; at most 128 bits are used.
pub fn from_bits(bits: &[bool]) -> u128 {
    bits.iter()
        .take(128)
        .enumerate()
        .fold(0u128, |acc, (i, &b)| acc | (u128::from(b) << i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn half_adder() -> Circuit {
        Circuit {
            name: "half_adder".into(),
            garbler_inputs: 1,
            evaluator_inputs: 1,
            gates: vec![Gate::Xor(0, 1), Gate::And(0, 1), Gate::Inv(3)],
            outputs: vec![2, 3, 4],
        }
    }

    #[test]
    fn eval_truth_table() {
        let c = half_adder();
        for a in [false, true] {
            for b in [false, true] {
                let out = c.eval(&[a], &[b]).expect("valid circuit");
                assert_eq!(out, vec![a ^ b, a & b, !(a & b)]);
            }
        }
        let s = c.stats();
        assert_eq!((s.and, s.xor, s.inv, s.and_depth), (1, 1, 1, 1));
    }

    #[test]
    fn validate_rejects_forward_wires() {
        let mut c = half_adder();
        c.gates[0] = Gate::Xor(0, 2);
        assert!(matches!(
            c.validate(),
            Err(CircuitError::ForwardWire {
                gate: 0,
                wire: 2,
                ..
            })
        ));
        let mut c = half_adder();
        c.outputs.push(99);
        assert!(matches!(c.validate(), Err(CircuitError::BadOutput { .. })));
        assert!(half_adder().eval(&[true, false], &[true]).is_err());
    }

    #[test]
    fn bristol_header() {
        let text = half_adder().to_bristol_fashion();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("9 11"));
        assert_eq!(lines.next(), Some("2 1 1"));
        assert_eq!(lines.next(), Some("1 3"));
    }

    #[test]
    fn layout_check_survives_extreme_widths() {
        // Found by the circuit fuzz loop: `mask_bits = u32::MAX` overflowed `z_bits`.
        for (share_bits, mask_bits) in [(u32::MAX, u32::MAX), (64, 3), (0, 0), (3, u32::MAX)] {
            let sc = ShareCircuit {
                circuit: half_adder(),
                q0: 7,
                share_bits,
                values_in: 1,
                values_out: 1,
                input_offset: 0,
                out_bits: 1,
                mask_bits,
                output_offset: 0,
                trunc: 0,
            };
            assert!(sc.check_layout().is_err());
        }
    }

    #[test]
    fn bits_round_trip() {
        assert_eq!(from_bits(&to_bits(0xdead_beef, 40)), 0xdead_beef);
    }
}
