//! Image packing (Cheetah, Huang et al., USENIX Security 2022, §3): one image's tensors in the
//! coefficients of a few polynomials, linear layers as products with kernel polynomials.
//!
//! - [`detect`]: convolution structure of a linear op's integer matrix (also what the weights
//!   file stores in both packings);
//! - [`conv`]: HomConv blockings; [`dense`]: HomFC blockings;
//! - [`PolyMap`]: a linear op as output polynomials = sums of input polynomials × kernel
//!   polynomials (or × integer scalars, for inputs packed straight into the output layout, as
//!   the skip path of a residual Add), with the bias at the output positions;
//! - [`cost`]: what a map costs (products, transforms, coefficients that move).

pub mod conv;
pub mod cost;
pub mod dense;
pub mod detect;
pub mod estimate;
pub mod plan;
pub mod traffic;

use mp2ml_ir::layout::{ConvTerm, Layout, StructuredMatrix};
use mp2ml_ir::weights::IntMatrix;

use conv::{ConvPacking, PackError};
use dense::DensePacking;

/// One term of an output polynomial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Product {
    /// `inputs[input].poly[poly] · kernels[kernel]`.
    Kernel {
        /// Linear-op input.
        input: u32,
        /// Polynomial of that input's layout.
        poly: u32,
        /// Kernel polynomial.
        kernel: u32,
    },
    /// `inputs[input].poly[poly] · value` (the input is laid out like the output).
    Scalar {
        /// Linear-op input.
        input: u32,
        /// Polynomial of that input's layout.
        poly: u32,
        /// Integer weight.
        value: i64,
    },
}

/// How a [`PolyMap`] was made (for the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// HomConv (with scaled copies added into its output layout).
    Conv,
    /// HomFC.
    Dense,
    /// Only scaled copies.
    Copy,
}

/// A linear op in image packing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolyMap {
    /// Ring dimension.
    pub n: usize,
    /// How it was made.
    pub kind: MapKind,
    /// Layout of every linear-op input (the client packs the input this way).
    pub inputs: Vec<Layout>,
    /// Kernel polynomials, sparse `(coefficient, value)`, coefficients increasing.
    pub kernels: Vec<Vec<(u32, i64)>>,
    /// Terms of every output polynomial.
    pub outputs: Vec<Vec<Product>>,
    /// Output layout (element order of the op's output tensor).
    pub output: Layout,
    /// Bias of every output element (added at its position).
    pub bias: Vec<i128>,
}

/// A 1×1 stride-1 depthwise term with one weight everywhere: a scaled copy.
fn copy_weight(t: &ConvTerm) -> Option<i64> {
    let g = &t.geom;
    let plain = g.kernel == [1, 1]
        && g.strides == [1, 1]
        && g.pads == [0, 0]
        && g.groups == g.input[0]
        && g.input == g.output;
    let w = *t.kernel.first()?;
    (plain && t.kernel.iter().all(|&k| k == w)).then_some(w)
}

/// The output polynomials' terms of HomConv blocking `p` for `kernel` read from linear-op
/// input `input`, pushing the kernel polynomials onto `kernels`.
pub fn conv_products(
    p: &ConvPacking,
    kernel: &[i64],
    input: u32,
    kernels: &mut Vec<Vec<(u32, i64)>>,
) -> Vec<Vec<Product>> {
    let mut outputs = vec![Vec::new(); p.out_groups() * p.row_blocks];
    let mut index = std::collections::BTreeMap::new();
    for (op, ip, key) in p.products() {
        let Some(poly) = p.kernel_poly(kernel, key.0, key.1) else {
            continue;
        };
        let kid = *index.entry(key).or_insert_with(|| {
            kernels.push(poly);
            kernels.len() - 1
        });
        outputs[op].push(Product::Kernel {
            input,
            poly: ip as u32,
            kernel: kid as u32,
        });
    }
    outputs
}

/// Which input (by column offset) a column belongs to.
fn input_of(offsets: &[usize], col: usize) -> usize {
    offsets.partition_point(|&o| o <= col).saturating_sub(1)
}

impl PolyMap {
    /// The image-packed form of the integer matrix `m` (structure `st` if it has one) over
    /// inputs of the given per-image shapes, at ring dimension `n`: HomConv when the matrix
    /// is one convolution plus scaled copies, HomFC otherwise.
    pub fn build(
        m: &IntMatrix,
        st: Option<&StructuredMatrix>,
        inputs: &[Vec<usize>],
        n: usize,
    ) -> Result<PolyMap, PackError> {
        let lens: Vec<usize> = inputs.iter().map(|s| s.iter().product()).collect();
        let mut offsets = Vec::with_capacity(lens.len());
        let mut acc = 0;
        for &l in &lens {
            offsets.push(acc);
            acc += l;
        }
        if acc != m.cols {
            return Err(PackError(format!(
                "inputs have {acc} elements, the matrix {} columns",
                m.cols
            )));
        }
        if let Some(st) = st.filter(|s| s.extra.is_empty()) {
            let (mut copies, mut convs) = (Vec::new(), Vec::new());
            for t in &st.convs {
                match copy_weight(t) {
                    Some(w) => copies.push((t, w)),
                    None => convs.push(t),
                }
            }
            if !(convs.is_empty() && copies.is_empty()) {
                if let Some(map) = Self::conv_map(st, &convs, &copies, &offsets, &lens, n)? {
                    return Ok(map);
                }
            }
        }
        Ok(Self::dense_map(m, &offsets, &lens, n))
    }

    /// HomConv of the convolution with the largest window among `convs`, the others
    /// embedded into its output ([`ConvPacking::embed_layout`]), plus scaled `copies` (each
    /// with its [`copy_weight`]); `None` when they do not fit one output layout.
    fn conv_map(
        st: &StructuredMatrix,
        convs: &[&ConvTerm],
        copies: &[(&ConvTerm, i64)],
        offsets: &[usize],
        lens: &[usize],
        n: usize,
    ) -> Result<Option<PolyMap>, PackError> {
        let mut layouts: Vec<Option<Layout>> = vec![None; lens.len()];
        let mut kernels = Vec::new();
        let main = convs
            .iter()
            .enumerate()
            .max_by_key(|(i, t)| (t.geom.kernel[0] * t.geom.kernel[1], std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        let (output, mut outputs, kind) = match main {
            Some(mi) => {
                let t = convs[mi];
                let p = ConvPacking::choose(&t.geom, n)?;
                let k = input_of(offsets, t.geom.col_offset);
                layouts[k] = Some(p.input_layout());
                let mut outputs = conv_products(&p, &t.kernel, k as u32, &mut kernels);
                for (i, e) in convs.iter().enumerate() {
                    if i == mi {
                        continue;
                    }
                    let k = input_of(offsets, e.geom.col_offset);
                    if !p.embeds(&e.geom) || layouts[k].is_some() {
                        return Ok(None);
                    }
                    layouts[k] = Some(p.embed_layout(&e.geom));
                    for (op, ip, kid) in p.embed_products(&e.geom, &e.kernel, &mut kernels) {
                        outputs[op].push(Product::Kernel {
                            input: k as u32,
                            poly: ip as u32,
                            kernel: kid,
                        });
                    }
                }
                (p.output_layout(), outputs, MapKind::Conv)
            }
            None => {
                let out = Layout::Flat {
                    len: st.rows,
                    chunk: n,
                };
                (out, vec![Vec::new(); st.rows.div_ceil(n)], MapKind::Copy)
            }
        };
        for &(t, w) in copies {
            let k = input_of(offsets, t.geom.col_offset);
            if layouts[k].is_some() {
                return Ok(None);
            }
            layouts[k] = Some(output.clone());
            for (p, terms) in outputs.iter_mut().enumerate() {
                terms.push(Product::Scalar {
                    input: k as u32,
                    poly: p as u32,
                    value: w,
                });
            }
        }
        // An input no term reads (its columns are all zero) is uploaded flat: a layout
        // choice, not a value (no product reads it).
        let inputs = layouts
            .into_iter()
            .zip(lens)
            .map(|(l, &len)| l.unwrap_or(Layout::Flat { len, chunk: n }))
            .collect();
        Ok(Some(PolyMap {
            n,
            kind,
            inputs,
            kernels,
            outputs,
            output,
            bias: st.row_bias(),
        }))
    }

    fn dense_map(m: &IntMatrix, offsets: &[usize], lens: &[usize], n: usize) -> PolyMap {
        let p = DensePacking::choose(m.rows, lens, n);
        let chunks: Vec<usize> = lens.iter().map(|l| l.div_ceil(p.chunk)).collect();
        // Kernel polynomial of (row group, input, chunk), built row by row.
        let mut polys: std::collections::BTreeMap<(usize, usize, usize), Vec<(u32, i64)>> =
            Default::default();
        for r in 0..m.rows {
            let g = r / p.rows_per;
            for (col, v) in m.row(r) {
                let col = col as usize;
                let k = input_of(offsets, col);
                let e = col - offsets[k];
                let (chunk, j) = (e / p.chunk, e % p.chunk);
                polys
                    .entry((g, k, chunk))
                    .or_default()
                    .push((p.kernel_exponent(r, j), v));
            }
        }
        let mut kernels = Vec::with_capacity(polys.len());
        let mut outputs = vec![Vec::new(); p.row_groups()];
        for ((g, k, chunk), mut poly) in polys {
            poly.sort_unstable();
            kernels.push(poly);
            outputs[g].push(Product::Kernel {
                input: k as u32,
                poly: chunk as u32,
                kernel: (kernels.len() - 1) as u32,
            });
        }
        debug_assert!(chunks.iter().all(|&c| c <= p.n));
        PolyMap {
            n,
            kind: MapKind::Dense,
            inputs: p.input_layouts(),
            kernels,
            outputs,
            output: p.output_layout(),
            bias: m.bias.clone(),
        }
    }

    /// Products (kernel terms) per image.
    pub fn products(&self) -> usize {
        self.outputs
            .iter()
            .flatten()
            .filter(|p| matches!(p, Product::Kernel { .. }))
            .count()
    }

    /// The output polynomials of the map on plaintext integer polynomials modulo a prime `q`
    /// (independent of CKKS: naive negacyclic products), before the bias: packs `inputs` (one
    /// vector per linear-op input) into their layouts and multiplies.
    pub fn eval_polys_mod(&self, inputs: &[Vec<i64>], q: i64) -> Vec<Vec<i64>> {
        let n = self.n;
        let packed: Vec<Vec<Vec<i64>>> = self
            .inputs
            .iter()
            .zip(inputs)
            .map(|(l, x)| {
                let mut polys = vec![vec![0i64; n]; l.polys()];
                for (p, c, e) in l.slots() {
                    polys[p as usize][c as usize] = x[e as usize].rem_euclid(q);
                }
                polys
            })
            .collect();
        let mut outs: Vec<Vec<i64>> = Vec::with_capacity(self.outputs.len());
        for terms in &self.outputs {
            let mut acc = vec![0i128; n];
            for t in terms {
                match *t {
                    Product::Kernel {
                        input,
                        poly,
                        kernel,
                    } => {
                        let x = &packed[input as usize][poly as usize];
                        for &(e, w) in &self.kernels[kernel as usize] {
                            let e = e as usize;
                            for (i, &xi) in x.iter().enumerate() {
                                if xi == 0 {
                                    continue;
                                }
                                let v = i128::from(xi) * i128::from(w);
                                // X^N = −1: exponents ≥ N wrap with a sign flip.
                                if i + e < n {
                                    acc[i + e] += v;
                                } else {
                                    acc[i + e - n] -= v;
                                }
                            }
                        }
                    }
                    Product::Scalar { input, poly, value } => {
                        let x = &packed[input as usize][poly as usize];
                        for (a, &xi) in acc.iter_mut().zip(x) {
                            *a += i128::from(xi) * i128::from(value);
                        }
                    }
                }
                for a in acc.iter_mut() {
                    *a = a.rem_euclid(i128::from(q));
                }
            }
            outs.push(acc.iter().map(|&a| a as i64).collect());
        }
        outs
    }

    /// The map on plaintext polynomials modulo `q` ([`PolyMap::eval_polys_mod`]), plus the
    /// bias, read at the output positions, centered; an error if the bias does not have one
    /// entry per output element.
    pub fn eval_mod(&self, inputs: &[Vec<i64>], q: i64) -> Result<Vec<i64>, PackError> {
        if self.bias.len() != self.output.len() {
            return Err(PackError(format!(
                "{} biases for {} outputs",
                self.bias.len(),
                self.output.len()
            )));
        }
        let outs = self.eval_polys_mod(inputs, q);
        let half = q / 2;
        let mut y = vec![0i64; self.output.len()];
        for (p, c, e) in self.output.slots() {
            let b = self.bias[e as usize];
            let v = (i128::from(outs[p as usize][c as usize]) + b).rem_euclid(i128::from(q)) as i64;
            y[e as usize] = if v > half { v - q } else { v };
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests;
