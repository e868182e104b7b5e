//! Test and bench helpers: a small circuit builder with constant folding, an adder/comparator
//! and a representative ReLU-on-additive-shares circuit. (The production circuits come from the
//! compiler; these exist only to exercise the garbling.)
#![allow(dead_code)]

use mp2ml_ir::circuit::{Circuit, Gate, Wire};

/// A bit: a known constant or a wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bit {
    /// Constant (folded away; never garbled).
    Const(bool),
    /// A circuit wire.
    Wire(Wire),
}

/// Builds a [`Circuit`], folding constants so that no AND gate touches a known value.
pub struct Builder {
    gi: u32,
    ei: u32,
    gates: Vec<Gate>,
}

impl Builder {
    pub fn new(gi: u32, ei: u32) -> Self {
        Builder {
            gi,
            ei,
            gates: Vec::new(),
        }
    }

    pub fn garbler(&self, i: u32) -> Bit {
        assert!(i < self.gi);
        Bit::Wire(i)
    }

    pub fn evaluator(&self, j: u32) -> Bit {
        assert!(j < self.ei);
        Bit::Wire(self.gi + j)
    }

    pub fn garbler_word(&self, first: u32, width: u32) -> Vec<Bit> {
        (first..first + width).map(|i| self.garbler(i)).collect()
    }

    pub fn evaluator_word(&self, first: u32, width: u32) -> Vec<Bit> {
        (first..first + width).map(|j| self.evaluator(j)).collect()
    }

    fn push(&mut self, g: Gate) -> Bit {
        self.gates.push(g);
        Bit::Wire(self.gi + self.ei + self.gates.len() as u32 - 1)
    }

    pub fn xor(&mut self, a: Bit, b: Bit) -> Bit {
        match (a, b) {
            (Bit::Const(x), Bit::Const(y)) => Bit::Const(x ^ y),
            (Bit::Const(false), w) | (w, Bit::Const(false)) => w,
            (Bit::Const(true), w) | (w, Bit::Const(true)) => self.not(w),
            (Bit::Wire(x), Bit::Wire(y)) if x == y => Bit::Const(false),
            (Bit::Wire(x), Bit::Wire(y)) => self.push(Gate::Xor(x, y)),
        }
    }

    pub fn and(&mut self, a: Bit, b: Bit) -> Bit {
        match (a, b) {
            (Bit::Const(x), Bit::Const(y)) => Bit::Const(x & y),
            (Bit::Const(false), _) | (_, Bit::Const(false)) => Bit::Const(false),
            (Bit::Const(true), w) | (w, Bit::Const(true)) => w,
            (Bit::Wire(x), Bit::Wire(y)) if x == y => a,
            (Bit::Wire(x), Bit::Wire(y)) => self.push(Gate::And(x, y)),
        }
    }

    pub fn not(&mut self, a: Bit) -> Bit {
        match a {
            Bit::Const(x) => Bit::Const(!x),
            Bit::Wire(x) => self.push(Gate::Inv(x)),
        }
    }

    pub fn or(&mut self, a: Bit, b: Bit) -> Bit {
        let x = self.xor(a, b);
        let y = self.and(a, b);
        self.xor(x, y)
    }

    pub fn constant(v: u128, width: usize) -> Vec<Bit> {
        (0..width).map(|i| Bit::Const((v >> i) & 1 == 1)).collect()
    }

    /// Ripple-carry sum of two words of equal width, one AND per bit:
    /// `c_{i+1} = c_i ⊕ ((a_i ⊕ c_i) ∧ (b_i ⊕ c_i))`. Returns `width + 1` bits (carry last)
    /// if `carry_out`, else `width` bits (and the last carry is not built).
    pub fn add(&mut self, a: &[Bit], b: &[Bit], carry_out: bool) -> Vec<Bit> {
        assert_eq!(a.len(), b.len());
        let mut c = Bit::Const(false);
        let mut out = Vec::with_capacity(a.len() + 1);
        for i in 0..a.len() {
            let axc = self.xor(a[i], c);
            let s = self.xor(axc, b[i]);
            out.push(s);
            if i + 1 < a.len() || carry_out {
                let bxc = self.xor(b[i], c);
                let t = self.and(axc, bxc);
                c = self.xor(c, t);
            }
        }
        if carry_out {
            out.push(c);
        }
        out
    }

    /// `a ≥ k` for a constant `k < 2^width`: the carry out of `a + (2^width − k)`.
    pub fn ge_const(&mut self, a: &[Bit], k: u128) -> Bit {
        let w = a.len();
        if k == 0 {
            return Bit::Const(true);
        }
        let kk = Self::constant((1u128 << w) - k, w);
        let mut c = Bit::Const(false);
        for i in 0..w {
            let axc = self.xor(a[i], c);
            let bxc = self.xor(kk[i], c);
            let t = self.and(axc, bxc);
            c = self.xor(c, t);
        }
        c
    }

    /// `s ? x : y`, bitwise: `y ⊕ s ∧ (x ⊕ y)`.
    pub fn mux(&mut self, s: Bit, x: &[Bit], y: &[Bit]) -> Vec<Bit> {
        x.iter()
            .zip(y)
            .map(|(&xi, &yi)| {
                let d = self.xor(xi, yi);
                let m = self.and(s, d);
                self.xor(yi, m)
            })
            .collect()
    }

    /// Unsigned `a < b` (words of equal width), one AND per bit.
    pub fn lt(&mut self, a: &[Bit], b: &[Bit]) -> Bit {
        // a < b  ⟺  no carry out of a + ¬b + 1.
        let nb: Vec<Bit> = b.iter().map(|&x| self.not(x)).collect();
        let mut c = Bit::Const(true);
        for i in 0..a.len() {
            let axc = self.xor(a[i], c);
            let bxc = self.xor(nb[i], c);
            let t = self.and(axc, bxc);
            c = self.xor(c, t);
        }
        self.not(c)
    }

    /// Finishes the circuit; constant outputs are materialised as `x ⊕ x` (and its negation).
    pub fn finish(mut self, name: &str, outputs: &[Bit]) -> Circuit {
        let mut outs = Vec::with_capacity(outputs.len());
        for &o in outputs {
            let w = match o {
                Bit::Wire(w) => w,
                Bit::Const(v) => {
                    let Bit::Wire(z) = self.push(Gate::Xor(0, 0)) else {
                        unreachable!()
                    };
                    if v {
                        match self.push(Gate::Inv(z)) {
                            Bit::Wire(w) => w,
                            Bit::Const(_) => unreachable!(),
                        }
                    } else {
                        z
                    }
                }
            };
            outs.push(w);
        }
        Circuit {
            name: name.into(),
            garbler_inputs: self.gi,
            evaluator_inputs: self.ei,
            gates: self.gates,
            outputs: outs,
        }
    }
}

/// Width of the shares in the ReLU circuit.
pub const W: u32 = 32;
/// Width of the server's output mask r' (k + σ = 32 + 40).
pub const MASK: u32 = 72;
/// An odd 32-bit modulus (a 31-bit NTT-friendly prime shape).
pub const Q0: u128 = 2_013_265_921;

/// ReLU on additive shares: client share `a` (evaluator inputs `0..32`), server share `b`
/// (garbler inputs `0..32`) and mask `r'` (garbler inputs `32..104`), all mod `q0`:
/// `t = a + b`, `v = t − q0 if t ≥ q0`, `y = v if v ≤ ⌊q0/2⌋ else 0`, output `z = y + r'`
/// (72 bits, least significant first).
pub fn relu_circuit() -> Circuit {
    let mut b = Builder::new(W + MASK, W);
    let a = b.evaluator_word(0, W);
    let s = b.garbler_word(0, W);
    let r = b.garbler_word(W, MASK);
    let t = b.add(&a, &s, true); // 33 bits
    let k = Builder::constant((1u128 << (W + 1)) - Q0, (W + 1) as usize);
    let u = b.add(&t, &k, true); // 34 bits; bit 33 = (t ≥ q0)
    let ge = u[(W + 1) as usize];
    let v = b.mux(ge, &u[..W as usize], &t[..W as usize]);
    let neg = b.ge_const(&v, (Q0 - 1) / 2 + 1);
    let keep = b.not(neg);
    // y ≤ ⌊q0/2⌋ < 2^31: its top bit is always zero.
    let mut y: Vec<Bit> = v[..(W - 1) as usize]
        .iter()
        .map(|&x| b.and(x, keep))
        .collect();
    y.resize(MASK as usize, Bit::Const(false));
    let z = b.add(&y, &r, false);
    b.finish("relu_shares_w32_q0_mask72", &z)
}

/// Plaintext reference of [`relu_circuit`].
pub fn relu_reference(a: u128, b: u128, r: u128) -> u128 {
    let v = (a + b) % Q0;
    let y = if v <= (Q0 - 1) / 2 { v } else { 0 };
    (y + r) & ((1u128 << MASK) - 1)
}

/// Instance-major bits of one ReLU instance: (garbler bits, evaluator bits).
pub fn relu_inputs(a: u128, b: u128, r: u128) -> (Vec<bool>, Vec<bool>) {
    let bits = |v: u128, w: u32| (0..w).map(move |i| (v >> i) & 1 == 1);
    (
        bits(b, W).chain(bits(r, MASK)).collect(),
        bits(a, W).collect(),
    )
}
