//! Linear maps stored by structure, and the coefficient layouts of image packing.
//!
//! A linear op's integer matrix is stored either as CSR or as a [`StructuredMatrix`]: a sum of
//! convolution terms (each a kernel over one input's column range, with its [`ConvGeom`]) plus
//! a short list of leftover entries, and a bias. A convolution is stored as its kernel, not as
//! its weight-shared expansion, so the weights file stays about the size of the model;
//! [`StructuredMatrix::to_csr`] expands it (batch packing does so at load time).
//!
//! Image packing (Cheetah, Huang et al., USENIX Security 2022, §3) puts one image's tensor in
//! the coefficients of a few polynomials; [`Layout`] records where each element sits.

use serde::{Deserialize, Serialize};

use crate::weights::{IntMatrix, WeightsError};

/// Geometry of a 2-D convolution of one image, `[C, H, W] → [O, OH, OW]`, over the columns
/// `col_offset .. col_offset + C·H·W` of a linear op's input concatenation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvGeom {
    /// First column of the convolution's input.
    pub col_offset: usize,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Output `[O, OH, OW]`.
    pub output: [usize; 3],
    /// Kernel `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Strides `[sh, sw]`.
    pub strides: [usize; 2],
    /// Padding at the top and left (bottom and right follow from the output size).
    pub pads: [usize; 2],
    /// Dilations `[dh, dw]`.
    pub dilations: [usize; 2],
    /// Groups (`C` and `O` divisible by it; `groups = C = O` is depthwise).
    pub groups: usize,
}

/// Largest dimension a stored geometry may have (guards the products below).
const MAX_DIM: usize = 1 << 20;

impl ConvGeom {
    /// A `kernel` convolution `input → output` reading from column 0 with stride 1, no
    /// padding, no dilation and one group; set other values with the struct update syntax
    /// (`ConvGeom { strides: [2, 2], ..ConvGeom::plain(input, output, kernel) }`).
    pub fn plain(input: [usize; 3], output: [usize; 3], kernel: [usize; 2]) -> ConvGeom {
        ConvGeom {
            col_offset: 0,
            input,
            output,
            kernel,
            strides: [1, 1],
            pads: [0, 0],
            dilations: [1, 1],
            groups: 1,
        }
    }

    /// Input elements `C·H·W`.
    pub fn in_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Output elements `O·OH·OW`.
    pub fn out_len(&self) -> usize {
        self.output.iter().product()
    }

    /// Input channels per group.
    pub fn group_in(&self) -> usize {
        self.input[0] / self.groups.max(1)
    }

    /// Output channels per group.
    pub fn group_out(&self) -> usize {
        self.output[0] / self.groups.max(1)
    }

    /// Kernel entries `O · C/groups · kh · kw` (`usize::MAX` if that overflows).
    pub fn kernel_len(&self) -> usize {
        [self.group_in(), self.kernel[0], self.kernel[1]]
            .iter()
            .try_fold(self.output[0], |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// Index of `w[o, c_local, l, m]` in the kernel.
    pub fn kernel_index(&self, o: usize, cl: usize, l: usize, m: usize) -> usize {
        ((o * self.group_in() + cl) * self.kernel[0] + l) * self.kernel[1] + m
    }

    /// Checks the geometry against a matrix of `rows × cols` (untrusted input).
    pub fn check(&self, rows: usize, cols: usize) -> Result<(), String> {
        let groups = [self.groups];
        let dims = self
            .input
            .iter()
            .chain(&self.output)
            .chain(&self.kernel)
            .chain(&self.strides)
            .chain(&self.dilations)
            .chain(&groups);
        if dims.clone().any(|&d| d == 0 || d > MAX_DIM) || self.pads.iter().any(|&p| p > MAX_DIM) {
            return Err(format!("convolution geometry out of range: {self:?}"));
        }
        let len = |v: &[usize]| {
            v.iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(usize::MAX)
        };
        if len(&self.input) > 1 << 24 || len(&self.output) > 1 << 24 {
            return Err("convolution tensors too large".into());
        }
        if !self.input[0].is_multiple_of(self.groups) || !self.output[0].is_multiple_of(self.groups)
        {
            return Err(format!(
                "groups {} do not divide {} input and {} output channels",
                self.groups, self.input[0], self.output[0]
            ));
        }
        if self.out_len() != rows {
            return Err(format!(
                "convolution output has {} elements, the matrix {rows} rows",
                self.out_len()
            ));
        }
        if self
            .col_offset
            .checked_add(self.in_len())
            .is_none_or(|e| e > cols)
        {
            return Err("convolution input runs past the matrix columns".into());
        }
        Ok(())
    }

    /// Input element (index within the convolution's input) of tap `(cl, l, m)` of output
    /// `(o, i, j)`, or `None` where the tap falls in the padding.
    pub fn tap(
        &self,
        o: usize,
        i: usize,
        j: usize,
        cl: usize,
        l: usize,
        m: usize,
    ) -> Option<usize> {
        let [_, h, w] = self.input;
        let c = (o / self.group_out()) * self.group_in() + cl;
        let y = (i * self.strides[0] + l * self.dilations[0]).checked_sub(self.pads[0])?;
        let x = (j * self.strides[1] + m * self.dilations[1]).checked_sub(self.pads[1])?;
        (y < h && x < w).then_some((c * h + y) * w + x)
    }

    /// The taps of output element `row` as `(column, kernel index)`, columns increasing.
    pub fn row_taps(&self, row: usize) -> Vec<(usize, usize)> {
        let [_, oh, ow] = self.output;
        let (o, i, j) = (row / (oh * ow), (row / ow) % oh, row % ow);
        let mut out = Vec::with_capacity(self.group_in() * self.kernel[0] * self.kernel[1]);
        for cl in 0..self.group_in() {
            for l in 0..self.kernel[0] {
                for m in 0..self.kernel[1] {
                    if let Some(e) = self.tap(o, i, j, cl, l, m) {
                        out.push((self.col_offset + e, self.kernel_index(o, cl, l, m)));
                    }
                }
            }
        }
        out
    }
}

/// One convolution term of a [`StructuredMatrix`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTerm {
    /// Geometry.
    pub geom: ConvGeom,
    /// Integer kernel `round(w·p)`, [`ConvGeom::kernel_index`] order.
    pub kernel: Vec<i64>,
}

/// Bias of a structured matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bias {
    /// One value per row.
    PerRow(Vec<i128>),
    /// One value per output channel (rows are channel-major, `rows / len` per channel).
    PerChannel(Vec<i128>),
}

/// An integer matrix as convolution terms plus leftover entries plus a bias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructuredMatrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Convolution terms, column ranges disjoint and increasing.
    pub convs: Vec<ConvTerm>,
    /// Leftover entries `(row, column, value)`, sorted by row then column.
    pub extra: Vec<(u32, u32, i64)>,
    /// Bias.
    pub bias: Bias,
}

impl StructuredMatrix {
    /// Checks every bound (the weights file is untrusted).
    pub fn check(&self) -> Result<(), WeightsError> {
        let bad = |m: String| Err(WeightsError::Corrupt(m));
        let mut end = 0usize;
        for t in &self.convs {
            if let Err(e) = t.geom.check(self.rows, self.cols) {
                return bad(e);
            }
            if t.geom.col_offset < end {
                return bad("convolution column ranges overlap".into());
            }
            end = t.geom.col_offset + t.geom.in_len();
            if t.kernel.len() != t.geom.kernel_len() {
                return bad("kernel length does not match its geometry".into());
            }
        }
        if self
            .extra
            .iter()
            .any(|&(r, c, _)| r as usize >= self.rows || c as usize >= self.cols)
            || self
                .extra
                .windows(2)
                .any(|w| (w[0].0, w[0].1) >= (w[1].0, w[1].1))
        {
            return bad("leftover entries out of range or unsorted".into());
        }
        match &self.bias {
            Bias::PerRow(b) if b.len() != self.rows => bad("bias count".into()),
            Bias::PerChannel(b) if b.is_empty() || !self.rows.is_multiple_of(b.len()) => {
                bad("per-channel bias count".into())
            }
            _ => Ok(()),
        }
    }

    /// The bias of every row.
    pub fn row_bias(&self) -> Vec<i128> {
        match &self.bias {
            Bias::PerRow(b) => b.clone(),
            Bias::PerChannel(b) => {
                let per = self.rows / b.len().max(1);
                (0..self.rows)
                    .map(|r| b.get(r / per.max(1)).copied().unwrap_or(0))
                    .collect()
            }
        }
    }

    /// Expands to CSR: every row the sum of its convolution taps and leftover entries, zero
    /// sums dropped, columns increasing. Exact (integer) inverse of
    /// `mp2ml_compiler::packing::detect`.
    pub fn to_csr(&self) -> Result<IntMatrix, WeightsError> {
        self.check()?;
        let mut m = IntMatrix {
            rows: self.rows,
            cols: self.cols,
            row_ptr: Vec::with_capacity(self.rows + 1),
            bias: self.row_bias(),
            ..Default::default()
        };
        m.row_ptr.push(0);
        let mut extra = self.extra.iter().peekable();
        let mut row: Vec<(usize, i64)> = Vec::new();
        for r in 0..self.rows {
            row.clear();
            for t in &self.convs {
                for (col, k) in t.geom.row_taps(r) {
                    row.push((col, t.kernel[k]));
                }
            }
            while let Some(&&(er, ec, ev)) = extra.peek() {
                if er as usize != r {
                    break;
                }
                row.push((ec as usize, ev));
                extra.next();
            }
            row.sort_by_key(|&(c, _)| c);
            let mut k = 0;
            while k < row.len() {
                let c = row[k].0;
                let mut v = 0i64;
                while k < row.len() && row[k].0 == c {
                    v = v.checked_add(row[k].1).ok_or_else(|| {
                        WeightsError::Corrupt("entry sum overflows 64 bits".into())
                    })?;
                    k += 1;
                }
                if v != 0 {
                    m.col.push(c as u32);
                    m.val.push(v);
                }
            }
            m.row_ptr.push(m.col.len() as u64);
        }
        m.check()?;
        Ok(m)
    }

    /// Stored entries of the expansion (what [`crate::plan::MatrixRef::nnz`] records).
    pub fn expanded_nnz(&self) -> Result<usize, WeightsError> {
        Ok(self.to_csr()?.nnz())
    }
}

/// Where one image's tensor sits in the coefficients of its polynomials (image packing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// A `[C, H, W]` tensor in blocks of `c_b` channels × `h_b` rows × `w_b` columns of the
    /// zero-padded plane (rows `−pads[0] ..`, columns `−pads[1] ..`): block `(cb, rb)` is
    /// polynomial `cb·row_blocks + rb`, holding channels `cb·c_b ..`, padded rows
    /// `rb·row_step ..` (blocks overlap when `row_step < h_b`); element `(c, y, x)` of a block
    /// sits at coefficient `c_local·h_b·w_b + y_local·w_b + x_local`.
    Planes {
        /// Tensor shape `[C, H, W]`.
        shape: [usize; 3],
        /// Channels per block.
        c_b: usize,
        /// Rows per block (padded plane rows, halo included).
        h_b: usize,
        /// Columns per block (the whole padded row).
        w_b: usize,
        /// First padded row of block `rb` is `rb·row_step`.
        row_step: usize,
        /// Row blocks.
        row_blocks: usize,
        /// Zero rows/columns above and left of the plane.
        pads: [usize; 2],
    },
    /// A vector of `len` elements in chunks of `chunk`: element `e` at coefficient
    /// `e mod chunk` of polynomial `e / chunk`.
    Flat {
        /// Elements.
        len: usize,
        /// Elements per polynomial.
        chunk: usize,
    },
    /// Arbitrary positions (the output of a product): element `e` at `positions[e]`, or
    /// nowhere when its polynomial is [`NOT_PACKED`] (an input element no kernel reads, as
    /// the skipped rows and columns of a strided 1×1 shortcut).
    Scattered {
        /// Polynomials.
        polys: usize,
        /// `(polynomial, coefficient)` of each element.
        positions: Vec<(u32, u32)>,
    },
}

/// The polynomial index of an element a [`Layout::Scattered`] does not pack.
pub const NOT_PACKED: u32 = u32::MAX;

impl Layout {
    /// Number of polynomials.
    pub fn polys(&self) -> usize {
        match self {
            Layout::Planes {
                shape,
                c_b,
                row_blocks,
                ..
            } => shape[0].div_ceil((*c_b).max(1)) * row_blocks,
            Layout::Flat { len, chunk } => len.div_ceil((*chunk).max(1)),
            Layout::Scattered { polys, .. } => *polys,
        }
    }

    /// Number of tensor elements.
    pub fn len(&self) -> usize {
        match self {
            Layout::Planes { shape, .. } => shape.iter().product(),
            Layout::Flat { len, .. } => *len,
            Layout::Scattered { positions, .. } => positions.len(),
        }
    }

    /// Whether the layout holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `(polynomial, coefficient, element)` the layout fills, polynomial-major (an
    /// element appears once per block that holds it).
    pub fn slots(&self) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        match self {
            Layout::Planes {
                shape,
                c_b,
                h_b,
                w_b,
                row_step,
                row_blocks,
                pads,
            } => {
                let [c, h, w] = *shape;
                for cb in 0..c.div_ceil((*c_b).max(1)) {
                    for rb in 0..*row_blocks {
                        let poly = (cb * row_blocks + rb) as u32;
                        for cl in 0..*c_b {
                            let ch = cb * c_b + cl;
                            if ch >= c {
                                break;
                            }
                            for yl in 0..*h_b {
                                let Some(y) = (rb * row_step + yl).checked_sub(pads[0]) else {
                                    continue;
                                };
                                if y >= h {
                                    continue;
                                }
                                for xl in 0..*w_b {
                                    let Some(x) = xl.checked_sub(pads[1]) else {
                                        continue;
                                    };
                                    if x >= w {
                                        continue;
                                    }
                                    let coeff = (cl * h_b * w_b + yl * w_b + xl) as u32;
                                    out.push((poly, coeff, ((ch * h + y) * w + x) as u32));
                                }
                            }
                        }
                    }
                }
            }
            Layout::Flat { len, chunk } => {
                let chunk = (*chunk).max(1);
                for e in 0..*len {
                    out.push(((e / chunk) as u32, (e % chunk) as u32, e as u32));
                }
            }
            Layout::Scattered { positions, .. } => {
                let mut v: Vec<(u32, u32, u32)> = positions
                    .iter()
                    .enumerate()
                    .filter(|(_, &(p, _))| p != NOT_PACKED)
                    .map(|(e, &(p, c))| (p, c, e as u32))
                    .collect();
                v.sort_unstable();
                out = v;
            }
        }
        out
    }

    /// Checks the layout against the ring dimension `n` (untrusted input): every coefficient
    /// below `n`, no two elements in one slot.
    pub fn check(&self, n: usize) -> Result<(), String> {
        if let Layout::Planes {
            c_b,
            h_b,
            w_b,
            row_blocks,
            ..
        } = self
        {
            let size = c_b
                .checked_mul(*h_b)
                .and_then(|v| v.checked_mul(*w_b))
                .unwrap_or(usize::MAX);
            if *c_b == 0 || *row_blocks == 0 || size > n {
                return Err(format!(
                    "plane blocks of {size} coefficients exceed N = {n}"
                ));
            }
        }
        if let Layout::Flat { chunk, .. } = self {
            if *chunk == 0 || *chunk > n {
                return Err(format!("flat chunks of {chunk} exceed N = {n}"));
            }
        }
        if self.len() > 1 << 26 || self.polys() > 1 << 20 {
            return Err("layout too large".into());
        }
        let mut s = self.slots();
        if s.iter()
            .any(|&(p, c, _)| c as usize >= n || p as usize >= self.polys())
        {
            return Err("layout position outside its polynomials".into());
        }
        s.sort_unstable();
        if s.windows(2).any(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1)) {
            return Err("two elements share one coefficient".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom() -> ConvGeom {
        ConvGeom {
            strides: [2, 2],
            pads: [1, 1],
            ..ConvGeom::plain([2, 4, 5], [2, 2, 3], [3, 3])
        }
    }

    #[test]
    fn taps_follow_the_convolution() {
        let g = geom();
        g.check(12, 40).expect("valid");
        // Output (0, 0, 0): rows -1..2, cols -1..2 of both channels; the padding drops taps.
        let t = g.row_taps(0);
        assert_eq!(t.len(), 2 * 2 * 2);
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(t[0], (0, g.kernel_index(0, 0, 1, 1)));
        let bad = ConvGeom { groups: 3, ..g };
        assert!(bad.check(12, 40).is_err());
    }

    #[test]
    fn structured_expansion_sums_and_drops_zeros() {
        let g = ConvGeom::plain([1, 3, 3], [1, 3, 3], [1, 1]);
        let s = StructuredMatrix {
            rows: 9,
            cols: 10,
            convs: vec![ConvTerm {
                geom: g,
                kernel: vec![4],
            }],
            extra: vec![(0, 0, -4), (0, 9, 1), (8, 9, 2)],
            bias: Bias::PerChannel(vec![7]),
        };
        let m = s.to_csr().expect("valid");
        assert_eq!(m.row(0).collect::<Vec<_>>(), vec![(9, 1)]);
        assert_eq!(m.row(8).collect::<Vec<_>>(), vec![(8, 4), (9, 2)]);
        assert_eq!(m.bias, vec![7; 9]);
        assert_eq!(m.nnz(), 1 + 7 + 2);
    }

    #[test]
    fn plane_layout_slots() {
        let l = Layout::Planes {
            shape: [3, 4, 4],
            c_b: 2,
            h_b: 4,
            w_b: 6,
            row_step: 2,
            row_blocks: 2,
            pads: [1, 1],
        };
        assert_eq!(l.polys(), 4);
        l.check(64).expect("fits");
        assert!(l.check(32).is_err());
        let s = l.slots();
        // Element (0, 0, 0) sits at padded (1, 1) of block (0, 0) and padded row 1 − 2 < 0 is
        // outside block (0, 1).
        assert!(s.contains(&(0, 7, 0)));
        assert!(s.iter().filter(|x| x.2 == 0).count() == 1);
        // Row 1 (padded 2) is in both row blocks (the halo).
        assert_eq!(s.iter().filter(|x| x.2 == 4).count(), 2);
    }

    #[test]
    fn scattered_elements_may_be_left_out() {
        let l = Layout::Scattered {
            polys: 1,
            positions: vec![(0, 3), (NOT_PACKED, 0), (0, 1), (NOT_PACKED, 0)],
        };
        l.check(8).expect("valid");
        assert_eq!(l.slots(), vec![(0, 1, 2), (0, 3, 0)]);
        // Any other polynomial past the last is refused.
        let bad = Layout::Scattered {
            polys: 1,
            positions: vec![(1, 0)],
        };
        assert!(bad.check(8).is_err());
    }
}
