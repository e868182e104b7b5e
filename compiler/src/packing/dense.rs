//! HomFC: a matrix-vector product in coefficient encoding (Cheetah, Huang et al. 2022, §3.2).
//!
//! The input vector sits in coefficients `0 .. n_c` of one polynomial per chunk of `n_c`
//! columns. Row r of the chunk becomes `Σ_j M[r][j]·X^(r'·n_c + n_c − 1 − j)` with
//! `r' = r mod R`, `R = ⌊N / n_c⌋` rows per product, so coefficient `r'·n_c + n_c − 1` of the
//! product is row r's dot product with the chunk: another term at that exponent would need
//! `(r' − r'')·n_c = j − j'` with `|j − j'| < n_c`. Exponents reach at most
//! `(R−1)·n_c + 2n_c − 2 < N + n_c − 1`, and a wrapped term lands below `n_c − 1`, below every
//! wanted position. Chunks of one row group sum into the same output polynomial.

use mp2ml_ir::layout::Layout;

/// A chosen HomFC blocking for a `rows × cols` matrix over inputs of the given lengths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DensePacking {
    /// Ring dimension.
    pub n: usize,
    /// Rows.
    pub rows: usize,
    /// Length of every input (columns are their concatenation).
    pub inputs: Vec<usize>,
    /// Columns per chunk (common to all inputs).
    pub chunk: usize,
    /// Rows per product.
    pub rows_per: usize,
}

impl DensePacking {
    /// Balanced chunks: as few as possible, then as even as possible.
    pub fn choose(rows: usize, inputs: &[usize], n: usize) -> DensePacking {
        // At least one column, so that the chunk arithmetic below never divides by zero.
        let longest = inputs.iter().copied().fold(1, usize::max);
        let chunks = longest.div_ceil(n);
        let chunk = longest.div_ceil(chunks);
        DensePacking {
            n,
            rows,
            inputs: inputs.to_vec(),
            chunk,
            rows_per: (n / chunk).max(1),
        }
    }

    /// The layout of every input, in order.
    pub fn input_layouts(&self) -> Vec<Layout> {
        self.inputs
            .iter()
            .map(|&len| Layout::Flat {
                len,
                chunk: self.chunk,
            })
            .collect()
    }

    /// Row groups (output polynomials).
    pub fn row_groups(&self) -> usize {
        self.rows.div_ceil(self.rows_per)
    }

    /// `(polynomial, coefficient)` of output row `r`.
    pub fn out_position(&self, r: usize) -> (u32, u32) {
        let (g, rl) = (r / self.rows_per, r % self.rows_per);
        (g as u32, (rl * self.chunk + self.chunk - 1) as u32)
    }

    /// The output layout.
    pub fn output_layout(&self) -> Layout {
        Layout::Scattered {
            polys: self.row_groups(),
            positions: (0..self.rows).map(|r| self.out_position(r)).collect(),
        }
    }

    /// Coefficient of the kernel polynomial for row `r` and chunk column `j`.
    pub fn kernel_exponent(&self, r: usize, j: usize) -> u32 {
        let rl = r % self.rows_per;
        (rl * self.chunk + self.chunk - 1 - j) as u32
    }
}
