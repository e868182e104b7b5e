//! Depth-optimized arithmetic for GMW, where every AND layer costs a round trip: carries by a
//! Sklansky parallel-prefix network (Sklansky 1960; Harris, "A taxonomy of parallel prefix
//! networks", 2003) instead of a ripple chain.
//!
//! Position `i` of `x + y` generates `g_i = x_i ∧ y_i` and propagates `p_i = x_i ⊕ y_i`. Groups
//! combine as `(G, P) ∘ (G', P') = (G ⊕ (P ∧ G'), P ∧ P')` for a high group over a low one (the
//! XOR replaces the OR because `G` and `P ∧ G'` are never both 1). The carry into position `i`
//! is the generate of the group `[cin, 0 .. i−1]`, with `cin` as a position that generates
//! `cin` and propagates nothing. Sklansky computes all prefixes in `⌈log2(n+1)⌉` levels, so
//! an `n`-bit adder has AND depth `1 + ⌈log2(n+1)⌉` instead of `n`; it costs about
//! `n·log2(n)` ANDs instead of `n`. Comparisons need only the last prefix: a balanced tree.

use super::builder::{Bit, Builder, Word};

/// Which arithmetic the [`Builder`]'s word-level primitives emit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Style {
    /// Fewest AND gates (ripple carries): best for Yao, where every AND costs 32 bytes and
    /// rounds are constant.
    #[default]
    Size,
    /// Logarithmic AND depth (parallel-prefix carries, balanced reduction trees): for GMW,
    /// where every AND layer costs a round.
    Depth,
}

impl Style {
    /// Short tag used in circuit names and reports (`size`, `depth`).
    pub fn tag(self) -> &'static str {
        match self {
            Style::Size => "size",
            Style::Depth => "depth",
        }
    }
}

impl Builder {
    /// `(G, P)` of a high group over a low one.
    fn combine(&mut self, hi: (Bit, Bit), lo: (Bit, Bit)) -> (Bit, Bit) {
        let t = self.and(hi.1, lo.0);
        let g = self.xor(hi.0, t);
        let p = self.and(hi.1, lo.1);
        (g, p)
    }

    /// `[(cin, 0), (g_0, p_0), …, (g_{m−1}, p_{m−1})]` for the first `m` positions of `x + y`.
    fn generate_propagate(&mut self, a: &[Bit], b: &[Bit], cin: Bit, m: usize) -> Vec<(Bit, Bit)> {
        let mut v = Vec::with_capacity(m + 1);
        v.push((cin, Bit::Const(false)));
        for i in 0..m {
            let x = a.get(i).copied().unwrap_or(Bit::Const(false));
            let y = b.get(i).copied().unwrap_or(Bit::Const(false));
            let g = self.and(x, y);
            let p = self.xor(x, y);
            v.push((g, p));
        }
        v
    }

    /// Sklansky prefix: afterwards `v[i].0` is the generate of the group `v[0 ..= i]`.
    fn sklansky(&mut self, v: &mut [(Bit, Bit)]) {
        let n = v.len();
        let mut d = 1;
        while d < n {
            for i in 0..n {
                if (i / d) % 2 == 1 {
                    // The last element of the lower half of i's block; not changed this level.
                    let j = (i / d) * d - 1;
                    v[i] = self.combine(v[i], v[j]);
                }
            }
            d *= 2;
        }
    }

    /// Generate of the whole group `v` by a balanced tree (the low half is the right operand).
    fn group_generate(&mut self, v: &[(Bit, Bit)]) -> (Bit, Bit) {
        match v.len() {
            0 => (Bit::Const(false), Bit::Const(true)),
            1 => v[0],
            n => {
                let (lo, hi) = v.split_at(n / 2);
                let lo = self.group_generate(lo);
                let hi = self.group_generate(hi);
                self.combine(hi, lo)
            }
        }
    }

    /// Parallel-prefix `a + b + cin` on `max(len)` bits with the carry out.
    pub(crate) fn add_with_carry_prefix(&mut self, a: &[Bit], b: &[Bit], cin: Bit) -> (Word, Bit) {
        let n = a.len().max(b.len());
        let mut v = self.generate_propagate(a, b, cin, n);
        let props: Vec<Bit> = v.iter().skip(1).map(|e| e.1).collect();
        self.sklansky(&mut v);
        let s = (0..n).map(|i| self.xor(props[i], v[i].0)).collect();
        (s, v[n].0)
    }

    /// Parallel-prefix `(a + b) mod 2^max(len)` (no carry out).
    pub(crate) fn add_trunc_prefix(&mut self, a: &[Bit], b: &[Bit]) -> Word {
        let n = a.len().max(b.len());
        if n == 0 {
            return Vec::new();
        }
        let mut v = self.generate_propagate(a, b, Bit::Const(false), n - 1);
        self.sklansky(&mut v);
        (0..n)
            .map(|i| {
                let x = a.get(i).copied().unwrap_or(Bit::Const(false));
                let y = b.get(i).copied().unwrap_or(Bit::Const(false));
                let p = self.xor(x, y);
                self.xor(p, v[i].0)
            })
            .collect()
    }

    /// `a ≥ b` (unsigned) as the carry out of `a + ¬b + 1`, by a balanced tree.
    pub(crate) fn ge_prefix(&mut self, a: &[Bit], b: &[Bit]) -> Bit {
        let n = a.len().max(b.len());
        let nb: Word = (0..n)
            .map(|i| {
                let y = b.get(i).copied().unwrap_or(Bit::Const(false));
                self.not(y)
            })
            .collect();
        let v = self.generate_propagate(a, &nb, Bit::Const(true), n);
        self.group_generate(&v).0
    }

    /// Sums words on `bits` bits by a balanced tree of additions (depth-style products).
    pub(crate) fn sum_tree(&mut self, rows: Vec<Word>, bits: u32) -> Word {
        // Every row on `bits` bits, so that no carry is lost below the top.
        let mut rows: Vec<Word> = rows.iter().map(|r| super::builder::pad(r, bits)).collect();
        if rows.is_empty() {
            return Builder::constant(0, bits);
        }
        while rows.len() > 1 {
            let mut next = Vec::with_capacity(rows.len().div_ceil(2));
            let mut it = rows.into_iter();
            while let Some(x) = it.next() {
                match it.next() {
                    Some(y) => next.push(super::builder::pad(&self.add_trunc(&x, &y), bits)),
                    None => next.push(x),
                }
            }
            rows = next;
        }
        super::builder::pad(&rows[0], bits)
    }
}

#[cfg(test)]
mod tests;
