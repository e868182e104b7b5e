//! The binary weights side file of a server plan.
//!
//! Layout: the magic `MP2MLW02`, then matrix sections back to back. A section (at the offset a
//! [`crate::plan::MatrixRef`] records) starts with its kind (`u64`, little-endian like
//! everything else):
//! - kind 0, CSR: `rows: u64, cols: u64, nnz: u64, row_ptr: (rows+1)×u64, col: nnz×u32,
//!   val: nnz×i64, bias: rows×i128`;
//! - kind 1, structured ([`StructuredMatrix`]: convolutions stored as kernels): `rows, cols,
//!   nnz (of the expansion), convs: u64`, per convolution 16 `u64` of geometry
//!   (`col_offset, input[3], output[3], kernel[2], strides[2], pads[2], dilations[2], groups`)
//!   and `kernel_len: u64, kernel: kernel_len×i64`; then `extra: u64` leftover entries
//!   `(row: u32, col: u32, val: i64)`; then `bias_kind: u64` (0 per row, 1 per channel),
//!   `bias_len: u64, bias: bias_len×i128`.
//!
//! Values are already integers: weights `round(W·p)` and biases `round(b·Δ·p)` for the prime
//! `p` the linear op rescales by. The file is untrusted input: [`WeightsFile::matrix`] checks
//! every bound. Files of the previous format (`MP2MLW01`, CSR sections without a kind) are read
//! too.

use crate::layout::{Bias, ConvGeom, ConvTerm, StructuredMatrix};
use crate::plan::MatrixRef;

/// File magic.
pub const MAGIC: &[u8; 8] = b"MP2MLW02";
/// Magic of the previous format (CSR sections only, no kind word).
pub const MAGIC_V1: &[u8; 8] = b"MP2MLW01";
/// Section kind: CSR.
const KIND_CSR: u64 = 0;
/// Section kind: structured.
const KIND_STRUCTURED: u64 = 1;
/// Most convolution terms a structured section may hold.
const MAX_CONVS: u64 = 1 << 10;

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
        b.extend_from_slice(&KIND_CSR.to_le_bytes());
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

    /// Appends a structured matrix whose expansion has `nnz` entries and returns its reference.
    pub fn push_structured(&mut self, m: &StructuredMatrix, nnz: usize) -> MatrixRef {
        let offset = self.buf.len() as u64;
        let b = &mut self.buf;
        let u = |b: &mut Vec<u8>, v: usize| b.extend_from_slice(&(v as u64).to_le_bytes());
        b.extend_from_slice(&KIND_STRUCTURED.to_le_bytes());
        u(b, m.rows);
        u(b, m.cols);
        u(b, nnz);
        u(b, m.convs.len());
        for t in &m.convs {
            let g = &t.geom;
            for v in std::iter::once(g.col_offset)
                .chain(g.input)
                .chain(g.output)
                .chain(g.kernel)
                .chain(g.strides)
                .chain(g.pads)
                .chain(g.dilations)
                .chain([g.groups])
            {
                u(b, v);
            }
            u(b, t.kernel.len());
            for &k in &t.kernel {
                b.extend_from_slice(&k.to_le_bytes());
            }
        }
        u(b, m.extra.len());
        for &(r, c, v) in &m.extra {
            b.extend_from_slice(&r.to_le_bytes());
            b.extend_from_slice(&c.to_le_bytes());
            b.extend_from_slice(&v.to_le_bytes());
        }
        let (kind, bias) = match &m.bias {
            Bias::PerRow(v) => (0, v),
            Bias::PerChannel(v) => (1, v),
        };
        u(b, kind);
        u(b, bias.len());
        for &v in bias {
            b.extend_from_slice(&v.to_le_bytes());
        }
        MatrixRef {
            offset,
            rows: m.rows,
            cols: m.cols,
            nnz,
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
    /// Whether sections carry a kind word (format 2).
    tagged: bool,
}

/// A section as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    /// CSR.
    Csr(IntMatrix),
    /// Convolutions as kernels, plus leftovers.
    Structured(StructuredMatrix),
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

/// The `(rows, cols, nnz)` header of a section against what the plan's reference `r` says.
fn check_header(r: &MatrixRef, (rows, cols, nnz): (u64, u64, u64)) -> Result<(), WeightsError> {
    if (rows, cols, nnz) != (r.rows as u64, r.cols as u64, r.nnz as u64) {
        return Err(WeightsError::Mismatch {
            offset: r.offset,
            expected: format!("{}×{} with {} entries", r.rows, r.cols, r.nnz),
            found: format!("{rows}×{cols} with {nnz} entries"),
        });
    }
    Ok(())
}

impl WeightsFile {
    /// Wraps file contents, checking the magic.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, WeightsError> {
        let tagged = match bytes.get(..MAGIC.len()) {
            Some(m) if m == &MAGIC[..] => true,
            Some(m) if m == &MAGIC_V1[..] => false,
            _ => return Err(WeightsError::BadMagic),
        };
        Ok(WeightsFile { bytes, tagged })
    }

    /// Reads and checks the matrix a plan refers to, expanded to CSR.
    pub fn matrix(&self, r: &MatrixRef) -> Result<IntMatrix, WeightsError> {
        match self.section(r)? {
            Section::Csr(m) => Ok(m),
            Section::Structured(s) => {
                let m = s.to_csr()?;
                if m.nnz() != r.nnz {
                    return Err(WeightsError::Mismatch {
                        offset: r.offset,
                        expected: format!("{} entries", r.nnz),
                        found: format!("{} entries after expansion", m.nnz()),
                    });
                }
                Ok(m)
            }
        }
    }

    /// Reads and checks the section a plan refers to, as stored.
    pub fn section(&self, r: &MatrixRef) -> Result<Section, WeightsError> {
        if !self.tagged {
            return self.csr(r, r.offset).map(Section::Csr);
        }
        let kind = self
            .bytes
            .get(r.offset as usize..)
            .and_then(|b| b.get(..8))
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .filter(|_| r.offset >= MAGIC.len() as u64)
            .ok_or(WeightsError::Truncated {
                offset: r.offset,
                needed: 8,
                len: self.bytes.len() as u64,
            })?;
        match kind {
            KIND_CSR => self.csr(r, r.offset + 8).map(Section::Csr),
            KIND_STRUCTURED => self.structured(r).map(Section::Structured),
            k => Err(WeightsError::Corrupt(format!(
                "unknown section kind {k} at byte {}",
                r.offset
            ))),
        }
    }

    fn structured(&self, r: &MatrixRef) -> Result<StructuredMatrix, WeightsError> {
        let len = self.bytes.len() as u64;
        let trunc = || WeightsError::Truncated {
            offset: r.offset,
            needed: len.saturating_sub(r.offset).saturating_add(1),
            len,
        };
        let mut c = Cursor {
            bytes: &self.bytes,
            pos: r.offset as usize + 8,
        };
        let u64_ = |c: &mut Cursor| c.take::<8>().map(u64::from_le_bytes).ok_or_else(trunc);
        // A count that claims more items of `size` bytes than the file has left is refused
        // before anything is allocated.
        let count = |c: &mut Cursor, size: u64| -> Result<usize, WeightsError> {
            let n = u64_(c)?;
            let left = (c.bytes.len() - c.pos.min(c.bytes.len())) as u64;
            if n.checked_mul(size).is_none_or(|b| b > left) {
                return Err(trunc());
            }
            Ok(n as usize)
        };
        check_header(r, (u64_(&mut c)?, u64_(&mut c)?, u64_(&mut c)?))?;
        let nconv = u64_(&mut c)?;
        if nconv > MAX_CONVS {
            return Err(WeightsError::Corrupt(format!("{nconv} convolution terms")));
        }
        let mut convs = Vec::new();
        for _ in 0..nconv {
            let mut g = [0usize; 16];
            for v in &mut g {
                *v = usize::try_from(u64_(&mut c)?).unwrap_or(usize::MAX);
            }
            let geom = ConvGeom {
                col_offset: g[0],
                input: [g[1], g[2], g[3]],
                output: [g[4], g[5], g[6]],
                kernel: [g[7], g[8]],
                strides: [g[9], g[10]],
                pads: [g[11], g[12]],
                dilations: [g[13], g[14]],
                groups: g[15],
            };
            geom.check(r.rows, r.cols).map_err(WeightsError::Corrupt)?;
            let k = count(&mut c, 8)?;
            let mut kernel = Vec::with_capacity(k);
            for _ in 0..k {
                kernel.push(c.take::<8>().map(i64::from_le_bytes).ok_or_else(trunc)?);
            }
            convs.push(ConvTerm { geom, kernel });
        }
        let ne = count(&mut c, 16)?;
        let mut extra = Vec::with_capacity(ne);
        for _ in 0..ne {
            let row = c.take::<4>().map(u32::from_le_bytes).ok_or_else(trunc)?;
            let col = c.take::<4>().map(u32::from_le_bytes).ok_or_else(trunc)?;
            let val = c.take::<8>().map(i64::from_le_bytes).ok_or_else(trunc)?;
            extra.push((row, col, val));
        }
        let bias_kind = u64_(&mut c)?;
        let nb = count(&mut c, 16)?;
        let mut bias = Vec::with_capacity(nb);
        for _ in 0..nb {
            bias.push(c.take::<16>().map(i128::from_le_bytes).ok_or_else(trunc)?);
        }
        let bias = match bias_kind {
            0 => Bias::PerRow(bias),
            1 => Bias::PerChannel(bias),
            k => return Err(WeightsError::Corrupt(format!("unknown bias kind {k}"))),
        };
        let m = StructuredMatrix {
            rows: r.rows,
            cols: r.cols,
            convs,
            extra,
            bias,
        };
        m.check()?;
        Ok(m)
    }

    fn csr(&self, r: &MatrixRef, start: u64) -> Result<IntMatrix, WeightsError> {
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
        let end = start.saturating_add(needed);
        if r.offset < MAGIC.len() as u64 || end > len {
            return Err(WeightsError::Truncated {
                offset: r.offset,
                needed,
                len,
            });
        }
        let mut c = Cursor {
            bytes: &self.bytes,
            pos: start as usize,
        };
        let trunc = || WeightsError::Truncated {
            offset: r.offset,
            needed,
            len,
        };
        let u64_ = |c: &mut Cursor| c.take::<8>().map(u64::from_le_bytes).ok_or_else(trunc);
        check_header(r, (u64_(&mut c)?, u64_(&mut c)?, u64_(&mut c)?))?;
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
        let col0 = 8 + 8 + 24 + 3 * 8;
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
