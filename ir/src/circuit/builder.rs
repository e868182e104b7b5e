//! A small circuit builder with constant folding and word-level arithmetic.
//!
//! Bits are either constants or wires; gates whose result is known at build time are never
//! emitted, so adding a constant or comparing with one costs only the AND gates it really needs.
//! Every word-level primitive below uses exactly one AND gate per non-constant bit position
//! (ripple-carry adders with the `c' = c ⊕ ((a ⊕ c) ∧ (b ⊕ c))` carry, as in the half-gates
//! literature), and XOR/INV are free under free-XOR garbling.

use super::prefix::Style;
use super::{Circuit, Gate, Wire};

/// A bit during construction: a known constant or a wire of the circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bit {
    /// A constant known at build time.
    Const(bool),
    /// A circuit wire.
    Wire(Wire),
}

/// A word, least significant bit first.
pub type Word = Vec<Bit>;

/// Builds a [`Circuit`] gate by gate.
pub struct Builder {
    name: String,
    garbler_inputs: u32,
    evaluator_inputs: u32,
    gates: Vec<Gate>,
    next: Wire,
    style: Style,
}

impl Builder {
    /// A builder for a circuit with the given input counts.
    pub fn new(name: impl Into<String>, garbler_inputs: u32, evaluator_inputs: u32) -> Self {
        Builder {
            name: name.into(),
            garbler_inputs,
            evaluator_inputs,
            gates: Vec::new(),
            next: garbler_inputs + evaluator_inputs,
            style: Style::Size,
        }
    }

    /// Selects the arithmetic of the word-level primitives (adders, comparisons, products).
    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// The arithmetic style in use.
    pub fn style(&self) -> Style {
        self.style
    }

    /// `bits` garbler input wires starting at garbler bit `offset`.
    pub fn garbler_word(&self, offset: u32, bits: u32) -> Word {
        debug_assert!(offset + bits <= self.garbler_inputs);
        (offset..offset + bits).map(Bit::Wire).collect()
    }

    /// `bits` evaluator input wires starting at evaluator bit `offset`.
    pub fn evaluator_word(&self, offset: u32, bits: u32) -> Word {
        debug_assert!(offset + bits <= self.evaluator_inputs);
        (offset..offset + bits)
            .map(|i| Bit::Wire(self.garbler_inputs + i))
            .collect()
    }

    fn push(&mut self, g: Gate) -> Bit {
        self.gates.push(g);
        let w = self.next;
        self.next += 1;
        Bit::Wire(w)
    }

    /// `a ⊕ b` (free).
    pub fn xor(&mut self, a: Bit, b: Bit) -> Bit {
        match (a, b) {
            (Bit::Const(x), Bit::Const(y)) => Bit::Const(x ^ y),
            (Bit::Const(false), w) | (w, Bit::Const(false)) => w,
            (Bit::Const(true), w) | (w, Bit::Const(true)) => self.not(w),
            (Bit::Wire(x), Bit::Wire(y)) if x == y => Bit::Const(false),
            (Bit::Wire(x), Bit::Wire(y)) => self.push(Gate::Xor(x, y)),
        }
    }

    /// `¬a` (free).
    pub fn not(&mut self, a: Bit) -> Bit {
        match a {
            Bit::Const(x) => Bit::Const(!x),
            Bit::Wire(x) => self.push(Gate::Inv(x)),
        }
    }

    /// `a ∧ b` (one AND gate unless folded).
    pub fn and(&mut self, a: Bit, b: Bit) -> Bit {
        match (a, b) {
            (Bit::Const(x), Bit::Const(y)) => Bit::Const(x & y),
            (Bit::Const(false), _) | (_, Bit::Const(false)) => Bit::Const(false),
            (Bit::Const(true), w) | (w, Bit::Const(true)) => w,
            (Bit::Wire(x), Bit::Wire(y)) if x == y => Bit::Wire(x),
            (Bit::Wire(x), Bit::Wire(y)) => self.push(Gate::And(x, y)),
        }
    }

    /// `a ∨ b` = `¬(¬a ∧ ¬b)` (one AND gate unless folded).
    pub fn or(&mut self, a: Bit, b: Bit) -> Bit {
        let na = self.not(a);
        let nb = self.not(b);
        let t = self.and(na, nb);
        self.not(t)
    }

    /// A constant word of `bits` bits.
    pub fn constant(v: u128, bits: u32) -> Word {
        (0..bits).map(|i| Bit::Const((v >> i) & 1 == 1)).collect()
    }

    /// Full adder carry: `c' = c ⊕ ((a ⊕ c) ∧ (b ⊕ c))` = majority(a, b, c) with one AND.
    fn carry(&mut self, a: Bit, b: Bit, c: Bit) -> Bit {
        let ac = self.xor(a, c);
        let bc = self.xor(b, c);
        let t = self.and(ac, bc);
        self.xor(c, t)
    }

    /// `a + b + cin` on `max(len)` bits; returns the sum and the carry out. Shorter words are
    /// zero-extended.
    pub fn add_with_carry(&mut self, a: &[Bit], b: &[Bit], cin: Bit) -> (Word, Bit) {
        if self.style == Style::Depth {
            return self.add_with_carry_prefix(a, b, cin);
        }
        let n = a.len().max(b.len());
        let mut c = cin;
        let mut s = Vec::with_capacity(n);
        for i in 0..n {
            let x = a.get(i).copied().unwrap_or(Bit::Const(false));
            let y = b.get(i).copied().unwrap_or(Bit::Const(false));
            let xy = self.xor(x, y);
            s.push(self.xor(xy, c));
            // The last carry is only needed if the caller uses it; it is computed anyway
            // (one AND), callers that drop it should use `add_trunc`.
            c = self.carry(x, y, c);
        }
        (s, c)
    }

    /// `a + b` on `max(len)+1` bits (the carry becomes the top bit).
    pub fn add(&mut self, a: &[Bit], b: &[Bit]) -> Word {
        let (mut s, c) = self.add_with_carry(a, b, Bit::Const(false));
        s.push(c);
        s
    }

    /// `(a + b) mod 2^max(len)` without computing the final carry.
    pub fn add_trunc(&mut self, a: &[Bit], b: &[Bit]) -> Word {
        if self.style == Style::Depth {
            return self.add_trunc_prefix(a, b);
        }
        let n = a.len().max(b.len());
        let mut c = Bit::Const(false);
        let mut s = Vec::with_capacity(n);
        for i in 0..n {
            let x = a.get(i).copied().unwrap_or(Bit::Const(false));
            let y = b.get(i).copied().unwrap_or(Bit::Const(false));
            let xy = self.xor(x, y);
            s.push(self.xor(xy, c));
            if i + 1 < n {
                c = self.carry(x, y, c);
            }
        }
        s
    }

    /// `a − b mod 2^len(a)` and the flag `a ≥ b` (unsigned; `b` zero-extended, must not be
    /// longer than `a`). Computed as `a + ¬b + 1`, whose carry out is `a ≥ b`.
    pub fn sub(&mut self, a: &[Bit], b: &[Bit]) -> (Word, Bit) {
        let nb: Word = (0..a.len())
            .map(|i| {
                let y = b.get(i).copied().unwrap_or(Bit::Const(false));
                self.not(y)
            })
            .collect();
        self.add_with_carry(a, &nb, Bit::Const(true))
    }

    /// `a ≥ b` (unsigned) computing only the borrow chain: one AND per non-constant position.
    pub fn ge(&mut self, a: &[Bit], b: &[Bit]) -> Bit {
        if self.style == Style::Depth {
            return self.ge_prefix(a, b);
        }
        let n = a.len().max(b.len());
        let mut c = Bit::Const(true);
        for i in 0..n {
            let x = a.get(i).copied().unwrap_or(Bit::Const(false));
            let y = b.get(i).copied().unwrap_or(Bit::Const(false));
            let ny = self.not(y);
            c = self.carry(x, ny, c);
        }
        c
    }

    /// `a > b` (unsigned) = `¬(b ≥ a)`.
    pub fn gt(&mut self, a: &[Bit], b: &[Bit]) -> Bit {
        let t = self.ge(b, a);
        self.not(t)
    }

    /// `s ? a : b`, bitwise: `b ⊕ (s ∧ (a ⊕ b))`, one AND per position where `a ≠ b` may hold.
    pub fn mux(&mut self, s: Bit, a: &[Bit], b: &[Bit]) -> Word {
        let n = a.len().max(b.len());
        (0..n)
            .map(|i| {
                let x = a.get(i).copied().unwrap_or(Bit::Const(false));
                let y = b.get(i).copied().unwrap_or(Bit::Const(false));
                let d = self.xor(x, y);
                let t = self.and(s, d);
                self.xor(y, t)
            })
            .collect()
    }

    /// `a` if `keep`, else zero: one AND per bit.
    pub fn keep_if(&mut self, keep: Bit, a: &[Bit]) -> Word {
        a.iter().map(|&x| self.and(keep, x)).collect()
    }

    /// `a · c` for a constant `c`, on `bits` bits (shift-and-add; one adder per set bit of `c`
    /// after the first).
    pub fn mul_const(&mut self, a: &[Bit], c: u128, bits: u32) -> Word {
        let mut acc: Word = Self::constant(0, bits);
        let mut first = true;
        let mut rows = Vec::new();
        for shift in 0..bits.min(128) {
            if (c >> shift) & 1 == 0 {
                continue;
            }
            let mut shifted: Word = vec![Bit::Const(false); shift as usize];
            shifted.extend_from_slice(a);
            shifted.truncate(bits as usize);
            if self.style == Style::Depth {
                rows.push(shifted);
                continue;
            }
            acc = if first {
                pad(&shifted, bits)
            } else {
                self.add_trunc(&acc, &shifted)
            };
            first = false;
        }
        if self.style == Style::Depth && !rows.is_empty() {
            return self.sum_tree(rows, bits);
        }
        pad(&acc, bits)
    }

    /// `a · b` (unsigned, schoolbook) on `bits` bits; the depth style sums the partial
    /// products by a balanced tree.
    pub fn mul(&mut self, a: &[Bit], b: &[Bit], bits: u32) -> Word {
        let mut acc: Word = Self::constant(0, bits);
        let mut first = true;
        let mut rows = Vec::new();
        for (shift, &bj) in b.iter().enumerate() {
            if shift as u32 >= bits {
                break;
            }
            let mut row: Word = vec![Bit::Const(false); shift];
            for &ai in a {
                if row.len() as u32 >= bits {
                    break;
                }
                row.push(self.and(ai, bj));
            }
            if self.style == Style::Depth {
                rows.push(row);
                continue;
            }
            acc = if first {
                pad(&row, bits)
            } else {
                self.add_trunc(&acc, &row)
            };
            first = false;
        }
        if self.style == Style::Depth && !rows.is_empty() {
            return self.sum_tree(rows, bits);
        }
        pad(&acc, bits)
    }

    /// Turns a bit into a wire (constants become `x ⊕ x` / its inverse on input wire 0).
    fn materialize(&mut self, b: Bit) -> Wire {
        match b {
            Bit::Wire(w) => w,
            Bit::Const(v) => {
                let zero = match self.push(Gate::Xor(0, 0)) {
                    Bit::Wire(w) => w,
                    Bit::Const(_) => 0,
                };
                if v {
                    match self.push(Gate::Inv(zero)) {
                        Bit::Wire(w) => w,
                        Bit::Const(_) => 0,
                    }
                } else {
                    zero
                }
            }
        }
    }

    /// Finishes the circuit with the given output bits.
    pub fn finish(mut self, outputs: &[Bit]) -> Circuit {
        let outputs: Vec<Wire> = outputs.iter().map(|&b| self.materialize(b)).collect();
        Circuit {
            name: self.name,
            garbler_inputs: self.garbler_inputs,
            evaluator_inputs: self.evaluator_inputs,
            gates: self.gates,
            outputs,
        }
    }
}

/// Zero-extends or truncates `a` to `bits` bits.
pub fn pad(a: &[Bit], bits: u32) -> Word {
    let mut v: Word = a.iter().copied().take(bits as usize).collect();
    v.resize(bits as usize, Bit::Const(false));
    v
}
