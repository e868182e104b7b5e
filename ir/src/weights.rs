//! The binary weights side file of a server plan.
//!
//! Layout: the magic `MP2MLW01`, then matrix sections back to back. A section (at the offset a
//! [`crate::plan::MatrixRef`] records) is, all little-endian:
//! `rows: u64, cols: u64, nnz: u64, row_ptr: (rows+1)×u64, col: nnz×u32, val: nnz×i64,
//! bias: rows×i128`. Values are already integers: weights `round(W·p)` and biases
//! `round(b·Δ·p)` for the prime `p` the linear op rescales by. The file is untrusted input:
//! [`WeightsFile::matrix`] checks every bound.

use crate::plan::MatrixRef;

/// File magic.
pub const MAGIC: &[u8; 8] = b"MP2MLW01";

/// One integer matrix in CSR form with a bias per row.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IntMatrix {
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
    /// Row `r` holds entries `row_ptr[r] .. row_ptr[r+1]`.
    pub row_ptr: Vec<u64>,
    /// Column of each entry.
    pub col: Vec<u32>,
    /// Value of each entry.
    pub val: Vec<i64>,
    /// Bias of each row (at scale Δ·p).
    pub bias: Vec<i128>,
}

impl IntMatrix {
    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.col.len()
    }

    /// Checks the CSR invariants (sizes, monotone row pointers, columns in range).
    pub fn check(&self) -> Result<(), WeightsError> {
        let bad = |what: &str| Err(WeightsError::Corrupt(what.to_string()));
        if self.row_ptr.len() != self.rows + 1 || self.bias.len() != self.rows {
            return bad("row pointer or bias count does not match the row count");
        }
        if self.val.len() != self.col.len() {
            return bad("value and column counts differ");
        }
        if self.row_ptr.first() != Some(&0)
            || self.row_ptr.last().copied() != Some(self.col.len() as u64)
        {
            return bad("row pointers do not span the entries");
        }
        if self.row_ptr.windows(2).any(|w| w[0] > w[1]) {
            return bad("row pointers decrease");
        }
        if self.col.iter().any(|&c| c as usize >= self.cols) {
            return bad("column index out of range");
        }
        Ok(())
    }

    /// Entries of row `r` as `(column, value)` pairs (empty if `r` is out of range).
    pub fn row(&self, r: usize) -> impl Iterator<Item = (u32, i64)> + '_ {
        let (s, e) = match (self.row_ptr.get(r), self.row_ptr.get(r + 1)) {
            (Some(&s), Some(&e)) => (s as usize, e as usize),
            _ => (0, 0),
        };
        let cols = self.col.get(s..e).unwrap_or(&[]);
        let vals = self.val.get(s..e).unwrap_or(&[]);
        cols.iter().copied().zip(vals.iter().copied())
    }
}

/// A defect in a weights file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    /// Not a weights file.
    #[error("not an mp2ml weights file (bad magic)")]
    BadMagic,
    /// A section runs past the end of the file.
    #[error(
        "weights file truncated: section at byte {offset} needs {needed} bytes, file has {len}"
    )]
    Truncated {
        /// Section offset.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// File length.
        len: u64,
    },
    /// The section header disagrees with the plan.
    #[error("weights section at byte {offset}: plan says {expected}, file says {found}")]
    Mismatch {
        /// Section offset.
        offset: u64,
        /// What the plan records.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// Structurally invalid content.
    #[error("corrupt weights section: {0}")]
    Corrupt(String),
}

/// Builds a weights file in memory.
#[derive(Default)]
pub struct WeightsWriter {
    buf: Vec<u8>,
}

impl WeightsWriter {
    /// An empty file (magic only).
    pub fn new() -> Self {
        WeightsWriter {
            buf: MAGIC.to_vec(),
        }
    }

    /// Appends a matrix and returns its reference.
    pub fn push(&mut self, m: &IntMatrix) -> MatrixRef {
        let offset = self.buf.len() as u64;
        let b = &mut self.buf;
        b.extend_from_slice(&(m.rows as u64).to_le_bytes());
        b.extend_from_slice(&(m.cols as u64).to_le_bytes());
        b.extend_from_slice(&(m.nnz() as u64).to_le_bytes());
        for &p in &m.row_ptr {
            b.extend_from_slice(&p.to_le_bytes());
        }
        for &c in &m.col {
            b.extend_from_slice(&c.to_le_bytes());
        }
        for &v in &m.val {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for &v in &m.bias {
            b.extend_from_slice(&v.to_le_bytes());
        }
        MatrixRef {
            offset,
            rows: m.rows,
            cols: m.cols,
            nnz: m.nnz(),
        }
    }

    /// The file's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// A weights file read into memory.
pub struct WeightsFile {
    bytes: Vec<u8>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const K: usize>(&mut self) -> Option<[u8; K]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(K)?)?;
        self.pos += K;
        s.try_into().ok()
    }
}

impl WeightsFile {
    /// Wraps file contents, checking the magic.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, WeightsError> {
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(WeightsError::BadMagic);
        }
        Ok(WeightsFile { bytes })
    }

    /// Reads and checks the matrix a plan refers to.
    pub fn matrix(&self, r: &MatrixRef) -> Result<IntMatrix, WeightsError> {
        let len = self.bytes.len() as u64;
        let needed = (|| {
            let rows = r.rows as u64;
            let nnz = r.nnz as u64;
            24u64
                .checked_add((rows.checked_add(1)?).checked_mul(8)?)?
                .checked_add(nnz.checked_mul(12)?)?
                .checked_add(rows.checked_mul(16)?)
        })()
        .unwrap_or(u64::MAX);
        let end = r.offset.saturating_add(needed);
        if r.offset < MAGIC.len() as u64 || end > len {
            return Err(WeightsError::Truncated {
                offset: r.offset,
                needed,
                len,
            });
        }
        let mut c = Cursor {
            bytes: &self.bytes,
            pos: r.offset as usize,
        };
        let trunc = || WeightsError::Truncated {
            offset: r.offset,
            needed,
            len,
        };
        let u64_ = |c: &mut Cursor| c.take::<8>().map(u64::from_le_bytes).ok_or_else(trunc);
        let (rows, cols, nnz) = (u64_(&mut c)?, u64_(&mut c)?, u64_(&mut c)?);
        if (rows, cols, nnz) != (r.rows as u64, r.cols as u64, r.nnz as u64) {
            return Err(WeightsError::Mismatch {
                offset: r.offset,
                expected: format!("{}×{} with {} entries", r.rows, r.cols, r.nnz),
                found: format!("{rows}×{cols} with {nnz} entries"),
            });
        }
        let mut m = IntMatrix {
            rows: r.rows,
            cols: r.cols,
            ..Default::default()
        };
        for _ in 0..=r.rows {
            m.row_ptr.push(u64_(&mut c)?);
        }
        for _ in 0..r.nnz {
            m.col
                .push(c.take::<4>().map(u32::from_le_bytes).ok_or_else(trunc)?);
        }
        for _ in 0..r.nnz {
            m.val
                .push(c.take::<8>().map(i64::from_le_bytes).ok_or_else(trunc)?);
        }
        for _ in 0..r.rows {
            m.bias
                .push(c.take::<16>().map(i128::from_le_bytes).ok_or_else(trunc)?);
        }
        m.check()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IntMatrix {
        IntMatrix {
            rows: 2,
            cols: 3,
            row_ptr: vec![0, 2, 3],
            col: vec![0, 2, 1],
            val: vec![5, -7, 1 << 50],
            bias: vec![-(1 << 70), 3],
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let mut w = WeightsWriter::new();
        let r = w.push(&sample());
        let bytes = w.into_bytes();
        let f = WeightsFile::from_bytes(bytes.clone()).expect("magic");
        assert_eq!(f.matrix(&r).expect("read"), sample());
        assert_eq!(
            f.matrix(&r).expect("read").row(0).collect::<Vec<_>>(),
            vec![(0, 5), (2, -7)]
        );
        // Truncated.
        let short = WeightsFile::from_bytes(bytes[..bytes.len() - 1].to_vec()).expect("magic");
        assert!(matches!(
            short.matrix(&r),
            Err(WeightsError::Truncated { .. })
        ));
        // Plan disagrees with the header.
        let wrong = MatrixRef {
            rows: 3,
            ..r.clone()
        };
        assert!(f.matrix(&wrong).is_err());
        // Column out of range.
        let mut bad = bytes.clone();
        let col0 = 8 + 24 + 3 * 8;
        bad[col0] = 9;
        assert!(matches!(
            WeightsFile::from_bytes(bad).expect("magic").matrix(&r),
            Err(WeightsError::Corrupt(_))
        ));
        assert!(WeightsFile::from_bytes(b"nope".to_vec()).is_err());
        // Absurd sizes do not allocate or panic.
        let huge = MatrixRef {
            rows: usize::MAX / 2,
            ..r
        };
        assert!(f.matrix(&huge).is_err());
    }
}
