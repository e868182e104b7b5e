//! Affine maps kept by structure: sums of convolution terms over frontier tensors, so that an
//! ImageNet-size model's fused maps never exist as one row per output element.
//!
//! A [`SMap`] is the map of a `[O, OH, OW]` tensor: a per-channel bias plus [`STerm`]s, each a
//! convolution of one frontier tensor whose kernel rows land on chosen output channels. The
//! linear ops compose structurally (convolution after convolution, per-channel scalings, sums,
//! channel concatenations and permutations, average pools) whenever the result is exactly
//! weight-shared; otherwise the caller falls back to the expanded [`Affine`] rows (small maps)
//! or refuses. [`SMap::to_affine`] expands a map row by row (used only for small maps), and
//! [`SMap::for_each_row`] streams rows without holding them.

use std::sync::Arc;

use mp2ml_ir::layout::{Bias, ConvGeom, ConvTerm, StructuredMatrix};

use super::affine::{Affine, Row};

/// One convolution term over a frontier tensor `[C, H, W]` at global columns `col ..`.
#[derive(Clone, Debug, PartialEq)]
pub struct STerm {
    /// First global column of the input tensor.
    pub col: u32,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Strides.
    pub strides: [usize; 2],
    /// Padding at the top and left.
    pub pads: [usize; 2],
    /// Dilations.
    pub dilations: [usize; 2],
    /// Input channels each kernel row reads (`in_base[r] .. in_base[r] + cin`).
    pub cin: usize,
    /// First input channel of every kernel row.
    pub in_base: Vec<u32>,
    /// Output channel of every kernel row.
    pub out_ch: Vec<u32>,
    /// Weights `[rows, cin, kh, kw]`.
    pub w: Arc<Vec<f64>>,
}

impl STerm {
    /// The groups of this term as one grouped convolution onto all `o` output channels in
    /// order (its kernel is then stored as it is), or `None` when its rows land on a subset
    /// or a permutation of the channels (stored as a dense `[o, C, kh, kw]` kernel).
    fn groups_in_order(&self, o: usize) -> Option<usize> {
        let c = self.input[0];
        let in_order = self.out_ch.len() == o
            && self
                .out_ch
                .iter()
                .enumerate()
                .all(|(i, &ch)| ch as usize == i);
        // `c / cin` groups (none if `cin` is 0), each reading its own `cin` channels.
        c.checked_div(self.cin).filter(|&groups| {
            in_order
                && groups > 0
                && groups * self.cin == c
                && o.is_multiple_of(groups)
                && self
                    .in_base
                    .iter()
                    .enumerate()
                    .all(|(r, &b)| b as usize == (r / (o / groups)) * self.cin)
        })
    }

    /// The identity over a frontier tensor.
    pub fn identity(col: u32, input: [usize; 3]) -> STerm {
        let c = input[0];
        STerm {
            col,
            input,
            kernel: [1, 1],
            strides: [1, 1],
            pads: [0, 0],
            dilations: [1, 1],
            cin: 1,
            in_base: (0..c as u32).collect(),
            out_ch: (0..c as u32).collect(),
            w: Arc::new(vec![1.0; c]),
        }
    }

    /// Kernel rows.
    pub fn rows(&self) -> usize {
        self.out_ch.len()
    }

    fn per_row(&self) -> usize {
        self.cin * self.kernel[0] * self.kernel[1]
    }

    /// Whether the term reads output position `(y, x)` at input position `(y, x)` only.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.strides == [1, 1] && self.pads == [0, 0]
    }

    /// Input rows (or columns, `axis` 1) in bounds for tap `l` across `out` output positions.
    fn valid(&self, axis: usize, l: usize, out: usize) -> u64 {
        let (s, d, p, h) = (
            self.strides[axis],
            self.dilations[axis],
            self.pads[axis],
            self.input[axis + 1],
        );
        (0..out)
            .filter(|&i| (i * s + l * d).checked_sub(p).is_some_and(|y| y < h))
            .count() as u64
    }

    /// Stored entries of the expansion over an output plane `oh × ow` (nonzero weights at
    /// in-bounds taps).
    pub fn nnz(&self, oh: usize, ow: usize) -> u64 {
        let vy: Vec<u64> = (0..self.kernel[0]).map(|l| self.valid(0, l, oh)).collect();
        let vx: Vec<u64> = (0..self.kernel[1]).map(|m| self.valid(1, m, ow)).collect();
        let (kh, kw) = (self.kernel[0], self.kernel[1]);
        let mut n = 0u64;
        for (i, &v) in self.w.iter().enumerate() {
            if v != 0.0 {
                let (l, m) = ((i / kw) % kh, i % kw);
                n += vy[l] * vx[m];
            }
        }
        n
    }
}

/// A structured affine map of a `[O, OH, OW]` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct SMap {
    /// Output `[O, OH, OW]`.
    pub shape: [usize; 3],
    /// Convolution terms.
    pub terms: Vec<STerm>,
    /// Bias per output channel.
    pub bias: Vec<f64>,
}

/// A per-image shape as `[C, H, W]` (a vector `[n]` is `[n, 1, 1]`).
pub fn chw(shape: &[usize]) -> Option<[usize; 3]> {
    match shape {
        [c, h, w] => Some([*c, *h, *w]),
        [c] => Some([*c, 1, 1]),
        [] => Some([1, 1, 1]),
        _ => None,
    }
}

/// A convolution's geometry for [`SMap::conv`].
#[derive(Clone, Debug)]
pub struct ConvSpec<'a> {
    /// Output channels.
    pub out: usize,
    /// Kernel.
    pub kernel: [usize; 2],
    /// Strides.
    pub strides: [usize; 2],
    /// Top and left padding.
    pub pads: [usize; 2],
    /// Dilations.
    pub dilations: [usize; 2],
    /// Groups.
    pub groups: usize,
    /// Weights `[out, C/groups, kh, kw]`.
    pub w: &'a [f64],
    /// Bias per output channel.
    pub bias: Option<&'a [f64]>,
    /// Output plane.
    pub out_hw: [usize; 2],
}

impl SMap {
    /// The identity over a frontier tensor.
    pub fn identity(col: u32, shape: [usize; 3]) -> SMap {
        SMap {
            shape,
            terms: vec![STerm::identity(col, shape)],
            bias: vec![0.0; shape[0]],
        }
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the map has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stored entries of the expansion (terms over distinct inputs never share a column).
    pub fn nnz(&self) -> u64 {
        self.terms
            .iter()
            .map(|t| t.nnz(self.shape[1], self.shape[2]))
            .sum()
    }

    /// The single frontier tensor this map copies exactly, as its first column.
    pub fn as_identity(&self) -> Option<u32> {
        let [t] = self.terms.as_slice() else {
            return None;
        };
        let id = t.pointwise()
            && t.input == self.shape
            && t.cin == 1
            && t.out_ch.iter().enumerate().all(|(i, &c)| c as usize == i)
            && t.in_base.iter().enumerate().all(|(i, &c)| c as usize == i)
            && t.w.iter().all(|&v| v == 1.0)
            && self.bias.iter().all(|&b| b == 0.0);
        id.then_some(t.col)
    }

    /// `conv(self)`, when exactly weight-shared: the inner terms are pointwise (and the bias
    /// zero where the convolution pads), or the convolution has no padding.
    pub fn conv(&self, c: &ConvSpec) -> Option<SMap> {
        let [xc, _, _] = self.shape;
        let g = c.groups.max(1);
        let (gi, go) = (xc / g, c.out / g);
        if gi * g != xc
            || go * g != c.out
            || c.w.len() != c.out * gi * c.kernel[0] * c.kernel[1]
            || c.bias.is_some_and(|b| b.len() != c.out)
        {
            return None;
        }
        let padded = c.pads != [0, 0];
        if padded && self.bias.iter().any(|&b| b != 0.0) {
            return None;
        }
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let point = t.pointwise();
            if padded && !point {
                return None;
            }
            if !point && t.dilations != [1, 1] {
                return None;
            }
            // Geometry of the composition (see the module comment of `detect` for the
            // weight-sharing argument): pointwise terms take the convolution's geometry;
            // otherwise offsets l2·d·s_t + l1 on a dilation-1 grid.
            let (kernel, strides, pads, dil) = if point {
                (c.kernel, c.strides, c.pads, c.dilations)
            } else {
                let k = |a: usize| (c.kernel[a] - 1) * c.dilations[a] * t.strides[a] + t.kernel[a];
                (
                    [k(0), k(1)],
                    [c.strides[0] * t.strides[0], c.strides[1] * t.strides[1]],
                    t.pads,
                    [1, 1],
                )
            };
            // Rows of `t` by the channel of `self` they produce.
            let mut by_ch: Vec<Vec<usize>> = vec![Vec::new(); xc];
            for (r, &ch) in t.out_ch.iter().enumerate() {
                by_ch.get_mut(ch as usize)?.push(r);
            }
            // Input channel range of each output row.
            let mut rows: Vec<(u32, u32, u32)> = Vec::new(); // (out channel, lo, hi)
            for o in 0..c.out {
                let base = (o / go) * gi;
                let (mut lo, mut hi) = (u32::MAX, 0u32);
                for rs in by_ch.iter().skip(base).take(gi) {
                    for &r in rs {
                        lo = lo.min(t.in_base[r]);
                        hi = hi.max(t.in_base[r] + t.cin as u32);
                    }
                }
                if lo < hi {
                    rows.push((o as u32, lo, hi));
                }
            }
            if rows.is_empty() {
                continue;
            }
            let cin = rows.iter().map(|&(_, lo, hi)| (hi - lo) as usize).max()?;
            let cin = cin.min(t.input[0]);
            let (kh, kw) = (kernel[0], kernel[1]);
            let per = cin * kh * kw;
            let mut w = vec![0.0f64; rows.len() * per];
            let mut in_base = Vec::with_capacity(rows.len());
            let (tkh, tkw) = (t.kernel[0], t.kernel[1]);
            for (ri, &(o, lo, _)) in rows.iter().enumerate() {
                let lo = lo.min((t.input[0] - cin) as u32);
                in_base.push(lo);
                let o = o as usize;
                let base = (o / go) * gi;
                let dst = &mut w[ri * per..(ri + 1) * per];
                for (ch, rs) in by_ch.iter().enumerate().skip(base).take(gi) {
                    for &r in rs {
                        let src = &t.w[r * t.per_row()..(r + 1) * t.per_row()];
                        let off = (t.in_base[r] - lo) as usize;
                        for l2 in 0..c.kernel[0] {
                            for m2 in 0..c.kernel[1] {
                                let cw = c.w[(((o * gi) + ch - base) * c.kernel[0] + l2)
                                    * c.kernel[1]
                                    + m2];
                                if cw == 0.0 {
                                    continue;
                                }
                                for ci in 0..t.cin {
                                    for l1 in 0..tkh {
                                        for m1 in 0..tkw {
                                            let tv = src[(ci * tkh + l1) * tkw + m1];
                                            if tv == 0.0 {
                                                continue;
                                            }
                                            let (ty, tx) = if point {
                                                (l2, m2)
                                            } else {
                                                (
                                                    l2 * c.dilations[0] * t.strides[0] + l1,
                                                    m2 * c.dilations[1] * t.strides[1] + m1,
                                                )
                                            };
                                            dst[((off + ci) * kh + ty) * kw + tx] += cw * tv;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            terms.push(STerm {
                col: t.col,
                input: t.input,
                kernel,
                strides,
                pads,
                dilations: dil,
                cin,
                in_base,
                out_ch: rows.iter().map(|r| r.0).collect(),
                w: Arc::new(w),
            });
        }
        // No bias input is a zero bias (ONNX Conv's optional `B`).
        let mut bias: Vec<f64> = c.bias.map_or_else(|| vec![0.0; c.out], <[f64]>::to_vec);
        for (o, b) in bias.iter_mut().enumerate() {
            let base = (o / go) * gi;
            for ch in base..base + gi {
                let xb = self.bias[ch];
                if xb == 0.0 {
                    continue;
                }
                let k = c.kernel[0] * c.kernel[1];
                let s: f64 = c.w[((o * gi) + ch - base) * k..((o * gi) + ch - base + 1) * k]
                    .iter()
                    .sum();
                *b += s * xb;
            }
        }
        Some(SMap {
            shape: [c.out, c.out_hw[0], c.out_hw[1]],
            terms: merge(terms),
            bias,
        })
    }

    /// `s[c]·self + b[c]` per output channel.
    pub fn scale(&self, s: &[f64], b: &[f64]) -> SMap {
        let terms = self
            .terms
            .iter()
            .map(|t| {
                let per = t.per_row();
                let mut w = t.w.as_ref().clone();
                for (r, &ch) in t.out_ch.iter().enumerate() {
                    let f = s[ch as usize];
                    for v in &mut w[r * per..(r + 1) * per] {
                        *v *= f;
                    }
                }
                STerm {
                    w: Arc::new(w),
                    ..t.clone()
                }
            })
            .collect();
        SMap {
            shape: self.shape,
            terms,
            bias: self
                .bias
                .iter()
                .zip(s)
                .zip(b)
                .map(|((&x, &f), &c)| f * x + c)
                .collect(),
        }
    }

    /// `self + sign·other` (same shape).
    pub fn add(&self, other: &SMap, sign: f64) -> Option<SMap> {
        if self.shape != other.shape {
            return None;
        }
        let mut terms = self.terms.clone();
        for t in &other.terms {
            let mut t = t.clone();
            if sign != 1.0 {
                t.w = Arc::new(t.w.iter().map(|v| v * sign).collect());
            }
            terms.push(t);
        }
        Some(SMap {
            shape: self.shape,
            terms: merge(terms),
            bias: self
                .bias
                .iter()
                .zip(&other.bias)
                .map(|(a, b)| a + sign * b)
                .collect(),
        })
    }

    /// Channel remapping: output channel `c'` of the result is channel `src[c'].1` of map
    /// `src[c'].0`; every map has the plane `hw`.
    pub fn gather_channels(maps: &[&SMap], src: &[(usize, usize)], hw: [usize; 2]) -> Option<SMap> {
        let mut terms: Vec<STerm> = Vec::new();
        let mut bias = Vec::with_capacity(src.len());
        for &(k, c) in src {
            bias.push(*maps.get(k)?.bias.get(c)?);
        }
        for (k, m) in maps.iter().enumerate() {
            if m.shape[1..] != hw {
                return None;
            }
            for t in &m.terms {
                let per = t.per_row();
                let mut out_ch = Vec::new();
                let mut in_base = Vec::new();
                let mut w = Vec::new();
                for (r, &ch) in t.out_ch.iter().enumerate() {
                    for (cn, _) in src
                        .iter()
                        .enumerate()
                        .filter(|(_, &(sk, sc))| sk == k && sc == ch as usize)
                    {
                        out_ch.push(cn as u32);
                        in_base.push(t.in_base[r]);
                        w.extend_from_slice(&t.w[r * per..(r + 1) * per]);
                    }
                }
                if !out_ch.is_empty() {
                    terms.push(STerm {
                        out_ch,
                        in_base,
                        w: Arc::new(w),
                        ..t.clone()
                    });
                }
            }
        }
        Some(SMap {
            shape: [src.len(), hw[0], hw[1]],
            terms: merge(terms),
            bias,
        })
    }

    /// Zero padding of the plane (`[top, left, bottom, right]`), when exact: pointwise terms
    /// and a zero bias.
    pub fn pad(&self, p: [usize; 4]) -> Option<SMap> {
        if p == [0; 4] {
            // Exporters emit zero `Pad`s (torch before AvgPool).
            return Some(self.clone());
        }
        if self.bias.iter().any(|&b| b != 0.0) {
            return None;
        }
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            if t.kernel != [1, 1] || t.strides != [1, 1] {
                return None;
            }
            let mut t = t.clone();
            t.pads = [t.pads[0] + p[0], t.pads[1] + p[1]];
            terms.push(t);
        }
        Some(SMap {
            shape: [
                self.shape[0],
                self.shape[1] + p[0] + p[2],
                self.shape[2] + p[1] + p[3],
            ],
            terms,
            bias: self.bias.clone(),
        })
    }

    /// Largest |weight| of the expansion (terms over one input may add up).
    pub fn max_abs(&self) -> f64 {
        let mut by_col: std::collections::BTreeMap<u32, f64> = Default::default();
        for t in &self.terms {
            let m = t.w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            *by_col.entry(t.col).or_default() += m;
        }
        by_col.values().fold(0.0f64, |a, &v| a.max(v))
    }

    /// Calls `f(row, taps)` for every output element in order, with its `(column, weight)`
    /// taps (columns increasing, equal columns summed, zero sums dropped) and its bias.
    pub fn for_each_row(&self, mut f: impl FnMut(usize, &[(u32, f64)], f64)) {
        let [o, oh, ow] = self.shape;
        // Kernel rows of every output channel.
        let mut rows_of: Vec<Vec<(usize, usize)>> = vec![Vec::new(); o];
        for (ti, t) in self.terms.iter().enumerate() {
            for (r, &ch) in t.out_ch.iter().enumerate() {
                if let Some(v) = rows_of.get_mut(ch as usize) {
                    v.push((ti, r));
                }
            }
        }
        let mut taps: Vec<(u32, f64)> = Vec::new();
        let mut merged: Vec<(u32, f64)> = Vec::new();
        for (ch, rows) in rows_of.iter().enumerate() {
            for i in 0..oh {
                for j in 0..ow {
                    taps.clear();
                    for &(ti, r) in rows {
                        let t = &self.terms[ti];
                        let [_, h, w] = t.input;
                        let per = t.per_row();
                        let (kh, kw) = (t.kernel[0], t.kernel[1]);
                        for ci in 0..t.cin {
                            let c = t.in_base[r] as usize + ci;
                            for l in 0..kh {
                                let Some(y) = (i * t.strides[0] + l * t.dilations[0])
                                    .checked_sub(t.pads[0])
                                    .filter(|&y| y < h)
                                else {
                                    continue;
                                };
                                for m in 0..kw {
                                    let Some(x) = (j * t.strides[1] + m * t.dilations[1])
                                        .checked_sub(t.pads[1])
                                        .filter(|&x| x < w)
                                    else {
                                        continue;
                                    };
                                    let v = t.w[r * per + (ci * kh + l) * kw + m];
                                    if v != 0.0 {
                                        let col = t.col as usize + (c * h + y) * w + x;
                                        taps.push((col as u32, v));
                                    }
                                }
                            }
                        }
                    }
                    taps.sort_by_key(|&(c, _)| c);
                    merged.clear();
                    for &(c, v) in &taps {
                        match merged.last_mut() {
                            Some(last) if last.0 == c => last.1 += v,
                            _ => merged.push((c, v)),
                        }
                    }
                    merged.retain(|&(_, v)| v != 0.0);
                    f((ch * oh + i) * ow + j, &merged, self.bias[ch]);
                }
            }
        }
    }

    /// The expanded rows (small maps only).
    pub fn to_affine(&self) -> Affine {
        let mut rows = vec![Row::default(); self.len()];
        self.for_each_row(|r, taps, b| {
            rows[r] = Row {
                cols: taps.iter().map(|t| t.0).collect(),
                vals: taps.iter().map(|t| t.1).collect(),
                bias: b,
            };
        });
        Affine { rows }
    }

    /// Per output channel and frontier column range: Σ|w| over the full kernel rows (an upper
    /// bound of every row's L1 norm over that input, attained away from the padding), with
    /// the number of nonzero taps.
    pub fn channel_l1(&self) -> Vec<Vec<(u32, f64, usize)>> {
        let mut out: Vec<Vec<(u32, f64, usize)>> = vec![Vec::new(); self.shape[0]];
        for t in &self.terms {
            let per = t.per_row();
            for (r, &ch) in t.out_ch.iter().enumerate() {
                let row = &t.w[r * per..(r + 1) * per];
                let l1: f64 = row.iter().map(|v| v.abs()).sum();
                let nz = row.iter().filter(|&&v| v != 0.0).count();
                if let Some(v) = out.get_mut(ch as usize) {
                    match v.iter_mut().find(|e| e.0 == t.col) {
                        Some(e) => {
                            e.1 += l1;
                            e.2 += nz;
                        }
                        None => v.push((t.col, l1, nz)),
                    }
                }
            }
        }
        out
    }

    /// Moves every term's columns with `f` (frontier column → local column).
    pub fn remap_cols(&self, mut f: impl FnMut(u32) -> Option<u32>) -> Option<SMap> {
        let mut m = self.clone();
        for t in &mut m.terms {
            t.col = f(t.col)?;
        }
        Some(m)
    }
}

/// Largest kernel a term may need in the weights format (groups = 1 with zero rows), entries.
const MAX_KERNEL: usize = 1 << 26;

impl SMap {
    /// Kernel entries [`SMap::to_structured`] stores for this map (what the weights file and
    /// the writer hold of it, 8 bytes each), computed without building them.
    pub fn stored_kernel_entries(&self) -> u64 {
        let o = self.shape[0];
        let mut by_col: std::collections::BTreeMap<u32, Vec<STerm>> = Default::default();
        for t in &self.terms {
            by_col.entry(t.col).or_default().push(t.clone());
        }
        by_col
            .values()
            .map(|ts| {
                let c = ts[0].input[0] as u64;
                match ts.as_slice() {
                    [t] => match t.groups_in_order(o) {
                        Some(_) => t.w.len() as u64,
                        None => o as u64 * c * (t.kernel[0] * t.kernel[1]) as u64,
                    },
                    _ => union_extent(ts).map_or(0, |(_, e)| o as u64 * c * (e[0] * e[1]) as u64),
                }
            })
            .sum()
    }

    /// The integer structured matrix of the map over inputs of `cols` columns: weights
    /// `round(w·p)`, bias `round(b·Δ·p)` per channel; with its expanded entry count. Each term
    /// becomes one [`ConvTerm`] (groups read off its rows; otherwise groups = 1 with zero rows).
    pub fn to_structured(
        &self,
        cols: usize,
        p: f64,
        delta: f64,
    ) -> Result<(StructuredMatrix, usize), String> {
        let [o, oh, ow] = self.shape;
        let mut convs = Vec::with_capacity(self.terms.len());
        let mut nnz = 0u64;
        let round = |v: f64| -> Result<i64, String> {
            let w = (v * p).round();
            if w.abs() >= 2f64.powi(62) {
                return Err(format!("weight {v} does not fit 62 bits at p = {p}"));
            }
            Ok(w as i64)
        };
        let mut by_col: std::collections::BTreeMap<u32, Vec<STerm>> = Default::default();
        for t in &self.terms {
            by_col.entry(t.col).or_default().push(t.clone());
        }
        let mut terms = Vec::with_capacity(by_col.len());
        for (_, ts) in by_col {
            terms.push(if ts.len() == 1 {
                ts.into_iter().next().ok_or("no term")?
            } else {
                union_window(&ts, o)?
            });
        }
        for t in &terms {
            let [c, _, _] = t.input;
            let (kh, kw) = (t.kernel[0], t.kernel[1]);
            let k = kh * kw;
            let (groups, kernel) = if let Some(groups) = t.groups_in_order(o) {
                (
                    groups,
                    t.w.iter()
                        .map(|&v| round(v))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            } else {
                let len = o * c * k;
                if len > MAX_KERNEL {
                    return Err(format!(
                        "a convolution term would need a {len}-entry kernel in the weights file"
                    ));
                }
                let mut kernel = vec![0i64; len];
                let per = t.per_row();
                for (r, &ch) in t.out_ch.iter().enumerate() {
                    for ci in 0..t.cin {
                        let cc = t.in_base[r] as usize + ci;
                        for j in 0..k {
                            let v = round(t.w[r * per + ci * k + j])?;
                            let e = &mut kernel[(ch as usize * c + cc) * k + j];
                            *e = e.checked_add(v).ok_or("kernel entry overflows")?;
                        }
                    }
                }
                (1, kernel)
            };
            let geom = ConvGeom {
                col_offset: t.col as usize,
                input: t.input,
                output: self.shape,
                kernel: t.kernel,
                strides: t.strides,
                pads: t.pads,
                dilations: t.dilations,
                groups,
            };
            // Expanded entries: nonzero integer weights at in-bounds taps.
            let ints = STerm {
                w: Arc::new(kernel.iter().map(|&v| v as f64).collect()),
                cin: c / groups,
                in_base: (0..o)
                    .map(|r| ((r / (o / groups)) * (c / groups)) as u32)
                    .collect(),
                out_ch: (0..o as u32).collect(),
                ..t.clone()
            };
            nnz += ints.nnz(oh, ow);
            convs.push(ConvTerm { geom, kernel });
        }
        convs.sort_by_key(|t| t.geom.col_offset);
        let bias = Bias::PerChannel(
            self.bias
                .iter()
                .map(|&b| (b * delta * p).round() as i128)
                .collect(),
        );
        let m = StructuredMatrix {
            rows: self.len(),
            cols,
            convs,
            extra: Vec::new(),
            bias,
        };
        m.check().map_err(|e| e.to_string())?;
        Ok((m, nnz as usize))
    }
}

/// The union padding and kernel extent of terms over one input (same strides and dilations).
fn union_extent(ts: &[STerm]) -> Result<([usize; 2], [usize; 2]), String> {
    let t0 = ts.first().ok_or("no term")?;
    let mut pads = [0usize; 2];
    let mut ext = [0usize; 2];
    for t in ts {
        if t.strides != t0.strides || t.dilations != t0.dilations {
            return Err("two convolutions with different strides read one input".into());
        }
        for (a, p) in pads.iter_mut().enumerate() {
            let d = t.dilations[a];
            if (t.pads[a] % d) != (t0.pads[a] % d) {
                return Err("two convolution windows off the dilation grid read one input".into());
            }
            *p = (*p).max(t.pads[a]);
        }
    }
    for t in ts {
        for a in 0..2 {
            let d = t.dilations[a];
            // Last tap offset relative to the union padding, in dilation steps.
            ext[a] = ext[a].max((pads[a] - t.pads[a]) / d + t.kernel[a]);
        }
    }
    Ok((pads, ext))
}

/// Terms over one input with different windows as one dense term over the union window
/// (same strides and dilations; each term's taps shifted into the larger padding).
fn union_window(ts: &[STerm], o: usize) -> Result<STerm, String> {
    let t0 = &ts[0];
    let c = t0.input[0];
    let (pads, ext) = union_extent(ts)?;
    let (kh, kw) = (ext[0], ext[1]);
    let len = o * c * kh * kw;
    if len > MAX_KERNEL {
        return Err(format!(
            "merged convolution terms would need a {len}-entry kernel"
        ));
    }
    let mut w = vec![0.0f64; len];
    for t in ts {
        let sy = (pads[0] - t.pads[0]) / t.dilations[0];
        let sx = (pads[1] - t.pads[1]) / t.dilations[1];
        let per = t.per_row();
        let (tkh, tkw) = (t.kernel[0], t.kernel[1]);
        for (r, &ch) in t.out_ch.iter().enumerate() {
            for ci in 0..t.cin {
                let cc = t.in_base[r] as usize + ci;
                for l in 0..tkh {
                    for m in 0..tkw {
                        w[((ch as usize * c + cc) * kh + l + sy) * kw + m + sx] +=
                            t.w[r * per + (ci * tkh + l) * tkw + m];
                    }
                }
            }
        }
    }
    Ok(STerm {
        col: t0.col,
        input: t0.input,
        kernel: [kh, kw],
        strides: t0.strides,
        pads,
        dilations: t0.dilations,
        cin: c,
        in_base: vec![0; o],
        out_ch: (0..o as u32).collect(),
        w: Arc::new(w),
    })
}

/// Merges terms over the same input with the same geometry (so every input has one term per
/// geometry, as the weights file wants: column ranges disjoint).
fn merge(terms: Vec<STerm>) -> Vec<STerm> {
    let mut out: Vec<STerm> = Vec::with_capacity(terms.len());
    for t in terms {
        let same = out.iter_mut().find(|u| {
            u.col == t.col
                && u.input == t.input
                && u.kernel == t.kernel
                && u.strides == t.strides
                && u.pads == t.pads
                && u.dilations == t.dilations
                && u.cin == t.cin
        });
        match same {
            Some(u) => {
                let mut out_ch = u.out_ch.clone();
                let mut in_base = u.in_base.clone();
                let mut w = u.w.as_ref().clone();
                out_ch.extend_from_slice(&t.out_ch);
                in_base.extend_from_slice(&t.in_base);
                w.extend_from_slice(&t.w);
                u.out_ch = out_ch;
                u.in_base = in_base;
                u.w = Arc::new(w);
            }
            None => out.push(t),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain convolution by direct loops over a `[C, H, W]` input (independent reference).
    fn conv_ref(x: &[f64], xs: [usize; 3], c: &ConvSpec) -> Vec<f64> {
        let [oh, ow] = c.out_hw;
        let g = mp2ml_ir::layout::ConvGeom {
            strides: c.strides,
            pads: c.pads,
            dilations: c.dilations,
            groups: c.groups,
            ..ConvGeom::plain(xs, [c.out, oh, ow], c.kernel)
        };
        let mut y: Vec<f64> = (0..c.out * oh * ow)
            .map(|r| c.bias.map_or(0.0, |b| b[r / (oh * ow)]))
            .collect();
        crate::test_conv::conv_taps(&g, |row, col, k| y[row] += c.w[k] * x[col]);
        y
    }

    fn apply(a: &Affine, x: &[f64]) -> Vec<f64> {
        a.rows
            .iter()
            .map(|r| {
                r.bias
                    + r.cols
                        .iter()
                        .zip(&r.vals)
                        .map(|(&c, v)| v * x[c as usize])
                        .sum::<f64>()
            })
            .collect()
    }

    fn weights(n: usize, seed: u64) -> Vec<f64> {
        (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 23) as f64 - 11.0) / 8.0)
            .collect()
    }

    #[test]
    fn composed_convolutions_match_direct_loops() {
        // x [4, 9, 9] → conv 3×3 pad 1 groups 2 → per-channel scale → conv 2×2 stride 2
        // (no padding: composes into one term) and the sum with a copy of the input.
        let xs = [4, 9, 9];
        let x: Vec<f64> = weights(4 * 81, 5);
        let w1 = weights(6 * 2 * 9, 1);
        let b1 = weights(6, 2);
        let c1 = ConvSpec {
            out: 6,
            kernel: [3, 3],
            strides: [1, 1],
            pads: [1, 1],
            dilations: [1, 1],
            groups: 2,
            w: &w1,
            bias: Some(&b1),
            out_hw: [9, 9],
        };
        let id = SMap::identity(0, xs);
        let m1 = id.conv(&c1).expect("conv on the identity");
        let y1 = conv_ref(&x, xs, &c1);
        let got = apply(&m1.to_affine(), &x);
        assert!(got.iter().zip(&y1).all(|(a, b)| (a - b).abs() < 1e-9));
        let s: Vec<f64> = (0..6).map(|c| 0.5 + c as f64).collect();
        let b: Vec<f64> = (0..6).map(|c| c as f64 - 2.0).collect();
        let m2 = m1.scale(&s, &b);
        let w2 = weights(3 * 6 * 4, 3);
        let c2 = ConvSpec {
            out: 3,
            kernel: [2, 2],
            strides: [2, 2],
            pads: [0, 0],
            dilations: [1, 1],
            groups: 1,
            w: &w2,
            bias: None,
            out_hw: [4, 4],
        };
        let m3 = m2.conv(&c2).expect("unpadded conv composes");
        assert_eq!(m3.terms.len(), 1);
        let y2: Vec<f64> = y1
            .iter()
            .enumerate()
            .map(|(i, &v)| s[i / 81] * v + b[i / 81])
            .collect();
        let y3 = conv_ref(&y2, [6, 9, 9], &c2);
        let got = apply(&m3.to_affine(), &x);
        assert!(got.iter().zip(&y3).all(|(a, b)| (a - b).abs() < 1e-9));
        assert_eq!(m3.nnz(), m3.to_affine().nnz());
        // A padded convolution after a biased map is not weight-shared: refused.
        let c3 = ConvSpec {
            pads: [1, 1],
            out_hw: [5, 5],
            ..c2.clone()
        };
        assert!(m2.conv(&c3).is_none());
        // Channel concatenation with a copy of the input, then the plain sum.
        let cat = SMap::gather_channels(&[&m1, &id], &[(1, 3), (0, 0), (0, 5)], [9, 9])
            .expect("same plane");
        // The weights-file form expands to the rounded rows, with the entry count it records.
        for m in [&m1, &m3, &cat] {
            let (st, nnz) = m.to_structured(4 * 81, 1024.0, 8.0).expect("structured");
            let csr = st.to_csr().expect("valid");
            assert_eq!(csr.nnz(), nnz);
            let rows = m.to_affine();
            for (r, row) in rows.rows.iter().enumerate() {
                let want: Vec<(u32, i64)> = row
                    .cols
                    .iter()
                    .zip(&row.vals)
                    .map(|(&c, &v)| (c, (v * 1024.0).round() as i64))
                    .filter(|e| e.1 != 0)
                    .collect();
                assert_eq!(csr.row(r).collect::<Vec<_>>(), want, "row {r}");
                assert_eq!(csr.bias[r], (row.bias * 8.0 * 1024.0).round() as i128);
            }
        }
        let got = apply(&cat.to_affine(), &x);
        for (k, (src, ch)) in [(1usize, 3usize), (0, 0), (0, 5)].iter().enumerate() {
            for p in 0..81 {
                let want = if *src == 1 {
                    x[ch * 81 + p]
                } else {
                    y1[ch * 81 + p]
                };
                assert!((got[k * 81 + p] - want).abs() < 1e-9);
            }
        }
    }
}
