//! HomConv: a convolution as products of input polynomials with kernel polynomials (Cheetah,
//! Huang et al. 2022, §3.1).
//!
//! Input block: channels `c < C_b`, padded rows `y < H_b`, columns `x < W_b` at coefficient
//! `c·H_b·W_b + y·W_b + x`. Kernel polynomial of output channel o over one block:
//! `K_o = Σ w[o,c,l,m]·X^(O − c·H_b·W_b − l·dh·W_b − m·dw)` with
//! `O = (C_b−1)·H_b·W_b + dh(kh−1)·W_b + dw(kw−1)`. Coefficient `O + y·W_b + x` of `x·K_o` is
//! the stride-1 output at `(y, x)` of the block, summed over the block's channels, whenever
//! the window fits the block (`y + dh(kh−1) < H_b`, `x + dw(kw−1) < W_b`): a product term of
//! exponent `O + y·W_b + x` with another input position would need a column (row) offset of
//! `±W_b` (`±H_b`), which the window cannot reach. Terms at exponents ≥ N wrap to exponent − N
//! with a sign flip and land below O, away from every wanted position, as long as
//! `C_b·H_b·W_b ≤ N`. Strides keep every s-th row and column of the wanted positions; the
//! plane is split into row blocks overlapping by the window's halo.
//!
//! Several output channels share one product when they fit: `X^(q·S)·K_{o_q}` for
//! `q < packs` with `S = max(C_b·H_b·W_b, O + H_b·W_b)` separates their outputs, and
//! `(packs−1)·S + O + C_b·H_b·W_b ≤ N` keeps every term below N (no wrap at all).
//!
//! A 1×1 unpadded convolution of any stride onto the same output (the strided shortcut of a
//! residual block) adds into a blocking's output polynomials ([`ConvPacking::embed`]): its
//! input element `(c, i·s_h, j·s_w)` sits where the blocking's input layout holds the first
//! tap `(l, m) = (0, 0)` of output `(i, j)` (coefficient `c_l·H_b·W_b + i_l·sh·W_b + j·sw`),
//! and its kernel polynomial has the one entry `w[o, c]` at `q·S + O − c_l·H_b·W_b`. That is
//! the blocking's own product with a kernel that is zero off that tap and an input block that
//! is zero off those positions, so every argument above holds as long as its channel blocks
//! are no larger (`c_l < C_b`); the elements no output reads are not packed.

use mp2ml_ir::layout::{ConvGeom, Layout, NOT_PACKED};

/// A chosen HomConv blocking for one convolution at ring dimension N.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvPacking {
    /// The convolution.
    pub geom: ConvGeom,
    /// Ring dimension.
    pub n: usize,
    /// Channels per input block.
    pub c_b: usize,
    /// Padded rows per block (halo included).
    pub h_b: usize,
    /// Padded columns per block (the whole padded row).
    pub w_b: usize,
    /// Output rows per row block.
    pub oh_b: usize,
    /// Row blocks.
    pub row_blocks: usize,
    /// Output channels per product.
    pub packs: usize,
    /// Coefficient distance between packed output channels.
    pub pack_stride: usize,
    /// The offset O of the first wanted coefficient.
    pub offset: usize,
}

/// Why a convolution cannot be image packed at this N.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PackError(pub String);

impl ConvPacking {
    /// Extent of the padded input a block of `oh_b` output rows reads.
    fn rows_for(g: &ConvGeom, oh_b: usize) -> usize {
        (oh_b - 1) * g.strides[0] + g.dilations[0] * (g.kernel[0] - 1) + 1
    }

    /// The blocking with the fewest products (ties: fewer polynomials) for ring dimension `n`.
    pub fn choose(geom: &ConvGeom, n: usize) -> Result<ConvPacking, PackError> {
        let [c, _, _] = geom.input;
        let [o, oh, ow] = geom.output;
        let w_b = (ow - 1) * geom.strides[1] + geom.dilations[1] * (geom.kernel[1] - 1) + 1;
        let mut best: Option<(usize, usize, ConvPacking)> = None;
        for oh_b in 1..=oh {
            let h_b = Self::rows_for(geom, oh_b);
            let plane = h_b * w_b;
            if plane > n {
                break;
            }
            let row_blocks = oh.div_ceil(oh_b);
            let c_max = (n / plane).min(c).max(1);
            // Only the largest block and the one sized for packing are worth trying.
            for c_b in [c_max, 1] {
                let block = c_b * plane;
                let offset = (c_b - 1) * plane
                    + geom.dilations[0] * (geom.kernel[0] - 1) * w_b
                    + geom.dilations[1] * (geom.kernel[1] - 1);
                let stride = block.max(offset + plane);
                let packs = if offset + block <= n {
                    (1 + (n - offset - block) / stride).min(o)
                } else {
                    1
                };
                let cblocks = c.div_ceil(c_b);
                let polys = cblocks * row_blocks;
                let cand = ConvPacking {
                    geom: geom.clone(),
                    n,
                    c_b,
                    h_b,
                    w_b,
                    oh_b,
                    row_blocks,
                    packs,
                    pack_stride: stride,
                    offset,
                };
                // With groups, a product is needed only for the blocks a pack reads.
                let products = cand.block_pairs() * row_blocks;
                if best
                    .as_ref()
                    .is_none_or(|(p, q, _)| (products, polys) < (*p, *q))
                {
                    best = Some((products, polys, cand));
                }
            }
        }
        best.map(|(_, _, p)| p).ok_or_else(|| {
            PackError(format!(
                "a padded row of {w_b} columns with a {}-row window exceeds N = {n}",
                geom.kernel[0]
            ))
        })
    }

    /// Channel blocks.
    pub fn channel_blocks(&self) -> usize {
        self.geom.input[0].div_ceil(self.c_b)
    }

    /// Output channel groups (one product per group, block and row block).
    pub fn out_groups(&self) -> usize {
        self.geom.output[0].div_ceil(self.packs)
    }

    /// The input layout.
    pub fn input_layout(&self) -> Layout {
        Layout::Planes {
            shape: self.geom.input,
            c_b: self.c_b,
            h_b: self.h_b,
            w_b: self.w_b,
            row_step: self.oh_b * self.geom.strides[0],
            row_blocks: self.row_blocks,
            pads: self.geom.pads,
        }
    }

    /// Output polynomial of output-channel group `og` and row block `rb`.
    pub fn out_poly(&self, og: usize, rb: usize) -> usize {
        og * self.row_blocks + rb
    }

    /// Input polynomial of channel block `cb` and row block `rb`.
    pub fn in_poly(&self, cb: usize, rb: usize) -> usize {
        cb * self.row_blocks + rb
    }

    /// `(polynomial, coefficient)` of output element `(o, i, j)`.
    pub fn out_position(&self, o: usize, i: usize, j: usize) -> (u32, u32) {
        let (og, q) = (o / self.packs, o % self.packs);
        let (rb, il) = (i / self.oh_b, i % self.oh_b);
        let coeff = q * self.pack_stride
            + self.offset
            + il * self.geom.strides[0] * self.w_b
            + j * self.geom.strides[1];
        (self.out_poly(og, rb) as u32, coeff as u32)
    }

    /// The output layout (channel-major element order).
    pub fn output_layout(&self) -> Layout {
        let [o, oh, ow] = self.geom.output;
        let mut positions = Vec::with_capacity(o * oh * ow);
        for oc in 0..o {
            for i in 0..oh {
                for j in 0..ow {
                    positions.push(self.out_position(oc, i, j));
                }
            }
        }
        Layout::Scattered {
            polys: self.out_groups() * self.row_blocks,
            positions,
        }
    }

    /// Kernel polynomial of output group `og` over channel block `cb` as sparse
    /// `(coefficient, value)` entries, or `None` when no output of the group reads the block.
    pub fn kernel_poly(&self, kernel: &[i64], og: usize, cb: usize) -> Option<Vec<(u32, i64)>> {
        let g = &self.geom;
        let plane = self.h_b * self.w_b;
        let mut out = Vec::new();
        let mut touches = false;
        for q in 0..self.packs {
            let o = og * self.packs + q;
            if o >= g.output[0] {
                break;
            }
            let base = (o / g.group_out()) * g.group_in();
            for cl in 0..self.c_b {
                let c = cb * self.c_b + cl;
                if c >= g.input[0] || c < base || c >= base + g.group_in() {
                    continue;
                }
                touches = true;
                for l in 0..g.kernel[0] {
                    for m in 0..g.kernel[1] {
                        let v = kernel.get(g.kernel_index(o, c - base, l, m)).copied();
                        let Some(v) = v.filter(|&v| v != 0) else {
                            continue;
                        };
                        let e = q * self.pack_stride + self.offset
                            - cl * plane
                            - l * g.dilations[0] * self.w_b
                            - m * g.dilations[1];
                        out.push((e as u32, v));
                    }
                }
            }
        }
        out.sort_unstable();
        touches.then_some(out)
    }

    /// Whether some output of group `og` reads channel block `cb`.
    fn reads(&self, og: usize, cb: usize) -> bool {
        let g = &self.geom;
        (0..self.packs).any(|q| {
            let o = og * self.packs + q;
            if o >= g.output[0] {
                return false;
            }
            let base = (o / g.group_out()) * g.group_in();
            let (lo, hi) = (cb * self.c_b, (cb + 1) * self.c_b);
            lo < base + g.group_in() && base < hi
        })
    }

    /// `(output group, channel block)` pairs that need a product (per row block).
    fn block_pairs(&self) -> usize {
        (0..self.out_groups())
            .map(|og| {
                (0..self.channel_blocks())
                    .filter(|&cb| self.reads(og, cb))
                    .count()
            })
            .sum()
    }

    /// Whether [`ConvPacking::embed`] can add convolution `t` into this blocking's output.
    pub fn embeds(&self, t: &ConvGeom) -> bool {
        t.kernel == [1, 1] && t.pads == [0, 0] && t.output == self.geom.output
    }

    /// Channels per block of an embedded convolution over `c` input channels.
    fn embed_c_b(&self, c: usize) -> usize {
        self.c_b.min(c).max(1)
    }

    /// The input layout of embedded convolution `t` ([`ConvPacking::embeds`]): element
    /// `(c, i·sh, j·sw)` at the first tap of output `(i, j)`, the others not packed.
    pub fn embed_layout(&self, t: &ConvGeom) -> Layout {
        let [c, h, w] = t.input;
        let [_, oh, ow] = t.output;
        let c_b = self.embed_c_b(c);
        let plane = self.h_b * self.w_b;
        let mut positions = vec![(NOT_PACKED, 0); c * h * w];
        for ch in 0..c {
            let (cb, cl) = (ch / c_b, ch % c_b);
            for i in 0..oh {
                let (rb, il) = (i / self.oh_b, i % self.oh_b);
                for j in 0..ow {
                    let (y, x) = (i * t.strides[0], j * t.strides[1]);
                    if y >= h || x >= w {
                        continue;
                    }
                    let coeff = cl * plane
                        + il * self.geom.strides[0] * self.w_b
                        + j * self.geom.strides[1];
                    positions[(ch * h + y) * w + x] =
                        ((cb * self.row_blocks + rb) as u32, coeff as u32);
                }
            }
        }
        Layout::Scattered {
            polys: c.div_ceil(c_b) * self.row_blocks,
            positions,
        }
    }

    /// The products of embedded convolution `t` with kernel `kernel`:
    /// `(output polynomial, input polynomial, kernel polynomial)`, the kernel polynomials
    /// (sparse, increasing) pushed onto `kernels`.
    pub fn embed_products(
        &self,
        t: &ConvGeom,
        kernel: &[i64],
        kernels: &mut Vec<Vec<(u32, i64)>>,
    ) -> Vec<(usize, usize, u32)> {
        let c = t.input[0];
        let c_b = self.embed_c_b(c);
        let plane = self.h_b * self.w_b;
        let mut out = Vec::new();
        for og in 0..self.out_groups() {
            for cb in 0..c.div_ceil(c_b) {
                let mut poly = Vec::new();
                for q in 0..self.packs {
                    let o = og * self.packs + q;
                    if o >= t.output[0] {
                        break;
                    }
                    let base = (o / t.group_out()) * t.group_in();
                    for cl in 0..c_b {
                        let ch = cb * c_b + cl;
                        if ch >= c || ch < base || ch >= base + t.group_in() {
                            continue;
                        }
                        let v = kernel.get(t.kernel_index(o, ch - base, 0, 0)).copied();
                        if let Some(v) = v.filter(|&v| v != 0) {
                            let e = q * self.pack_stride + self.offset - cl * plane;
                            poly.push((e as u32, v));
                        }
                    }
                }
                if poly.is_empty() {
                    continue;
                }
                poly.sort_unstable();
                kernels.push(poly);
                let k = (kernels.len() - 1) as u32;
                for rb in 0..self.row_blocks {
                    out.push((self.out_poly(og, rb), cb * self.row_blocks + rb, k));
                }
            }
        }
        out
    }

    /// Products: `(output polynomial, input polynomial, kernel (og, cb))` for every block pair
    /// some output reads.
    pub fn products(&self) -> Vec<(usize, usize, (usize, usize))> {
        let mut out = Vec::new();
        for og in 0..self.out_groups() {
            for cb in 0..self.channel_blocks() {
                if self.reads(og, cb) {
                    for rb in 0..self.row_blocks {
                        out.push((self.out_poly(og, rb), self.in_poly(cb, rb), (og, cb)));
                    }
                }
            }
        }
        out
    }
}
