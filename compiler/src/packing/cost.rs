//! What an image-packed linear op costs per image: products, NTTs and moving coefficients.

use super::{PolyMap, Product};

/// Per-image operation counts of one [`PolyMap`] (one half; c0 and c1 cost the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCost {
    /// Pointwise products (one per kernel term and limb).
    pub products: usize,
    /// Scaled copies (one scalar multiplication per term and limb).
    pub scalars: usize,
    /// Forward transforms (input polynomials that meet a kernel).
    pub forward: usize,
    /// Inverse transforms (output polynomials).
    pub inverse: usize,
    /// Input polynomials the client encrypts (all layouts).
    pub input_polys: usize,
    /// Output polynomials.
    pub output_polys: usize,
}

impl MapCost {
    /// Counts for `m`.
    pub fn of(m: &PolyMap) -> MapCost {
        let mut fwd = std::collections::BTreeSet::new();
        let mut c = MapCost {
            input_polys: m.inputs.iter().map(|l| l.polys()).sum(),
            output_polys: m.outputs.len(),
            ..Default::default()
        };
        for terms in &m.outputs {
            for t in terms {
                match *t {
                    Product::Kernel { input, poly, .. } => {
                        c.products += 1;
                        fwd.insert((input, poly));
                    }
                    Product::Scalar { .. } => c.scalars += 1,
                }
            }
        }
        c.forward = fwd.len();
        c.inverse = m.outputs.iter().filter(|t| !t.is_empty()).count();
        c
    }
}
