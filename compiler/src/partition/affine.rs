//! Sparse affine maps and their composition.
//!
//! A linear tensor is an affine function of *frontier* tensors (the graph input, the outputs of
//! MPC steps and, in unfused chains, cut tensors). Its elements are rows over the global column
//! space: the concatenation of the frontier tensors' elements. A [`LocalMap`] describes one op in
//! terms of its own operands; [`compose`] substitutes the operands' affine maps into it with a
//! dense accumulator per output row.

/// One output element: `Σ vals[i]·x[cols[i]] + bias`, columns strictly increasing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Columns (global frontier element indices), sorted.
    pub cols: Vec<u32>,
    /// Coefficients.
    pub vals: Vec<f64>,
    /// Constant term.
    pub bias: f64,
}

/// An affine map: one [`Row`] per output element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Affine {
    /// Rows in element order.
    pub rows: Vec<Row>,
}

impl Affine {
    /// The identity over columns `offset .. offset + len`.
    pub fn identity(offset: u32, len: usize) -> Affine {
        Affine {
            rows: (0..len as u32)
                .map(|i| Row {
                    cols: vec![offset + i],
                    vals: vec![1.0],
                    bias: 0.0,
                })
                .collect(),
        }
    }

    /// Stored coefficients (multiply-accumulates per image).
    pub fn nnz(&self) -> u64 {
        self.rows.iter().map(|r| r.cols.len() as u64).sum()
    }
}

/// One operand reference in a [`LocalMap`] term: `(operand, element, coefficient)`.
pub type Term = (u32, u32, f64);

/// An op's affine map in terms of its non-constant operands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalMap {
    /// Terms of each output element.
    pub rows: Vec<Vec<Term>>,
    /// Constant of each output element.
    pub bias: Vec<f64>,
}

impl LocalMap {
    /// Stored terms (MACs of this op alone).
    pub fn nnz(&self) -> u64 {
        self.rows.iter().map(|r| r.len() as u64).sum()
    }
}

/// Substitutes `args[operand]` into `local`. `ncols` is the size of the global column space.
pub fn compose(local: &LocalMap, args: &[&Affine], ncols: usize) -> Affine {
    let mut acc = vec![0.0f64; ncols];
    let mut hit = vec![false; ncols];
    let mut touched: Vec<u32> = Vec::new();
    let mut rows = Vec::with_capacity(local.rows.len());
    for (terms, &b) in local.rows.iter().zip(&local.bias) {
        let mut bias = b;
        for &(a, e, c) in terms {
            let Some(row) = args.get(a as usize).and_then(|m| m.rows.get(e as usize)) else {
                continue;
            };
            bias += c * row.bias;
            for (&col, &v) in row.cols.iter().zip(&row.vals) {
                let i = col as usize;
                if !hit[i] {
                    hit[i] = true;
                    touched.push(col);
                }
                acc[i] += c * v;
            }
        }
        touched.sort_unstable();
        let mut out = Row {
            cols: Vec::with_capacity(touched.len()),
            vals: Vec::with_capacity(touched.len()),
            bias,
        };
        for &col in &touched {
            let i = col as usize;
            if acc[i] != 0.0 {
                out.cols.push(col);
                out.vals.push(acc[i]);
            }
            acc[i] = 0.0;
            hit[i] = false;
        }
        touched.clear();
        rows.push(out);
    }
    Affine { rows }
}

/// Interval of every row given per-column intervals (exact for independent inputs); `None`
/// if a row reads a column without an interval.
pub fn intervals(map: &Affine, lo: &[f64], hi: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut out_lo = Vec::with_capacity(map.rows.len());
    let mut out_hi = Vec::with_capacity(map.rows.len());
    for r in &map.rows {
        let (mut l, mut h) = (r.bias, r.bias);
        for (&c, &v) in r.cols.iter().zip(&r.vals) {
            let (&a, &b) = (lo.get(c as usize)?, hi.get(c as usize)?);
            if v >= 0.0 {
                l += v * a;
                h += v * b;
            } else {
                l += v * b;
                h += v * a;
            }
        }
        out_lo.push(l);
        out_hi.push(h);
    }
    Some((out_lo, out_hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_sums_and_sorts() {
        let x = Affine::identity(0, 3);
        // y0 = 2 x2 + x0 + 1, y1 = x1 - x1
        let local = LocalMap {
            rows: vec![
                vec![(0, 2, 2.0), (0, 0, 1.0)],
                vec![(0, 1, 1.0), (0, 1, -1.0)],
            ],
            bias: vec![1.0, 0.0],
        };
        let y = compose(&local, &[&x], 3);
        assert_eq!(
            y.rows[0],
            Row {
                cols: vec![0, 2],
                vals: vec![1.0, 2.0],
                bias: 1.0
            }
        );
        assert!(y.rows[1].cols.is_empty());
        let (l, h) = intervals(&y, &[0.0, 0.0, -1.0], &[1.0, 1.0, 1.0]).expect("columns");
        assert_eq!((l[0], h[0]), (-1.0, 4.0));
    }
}
