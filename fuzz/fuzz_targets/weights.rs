//! The weights side file: arbitrary bytes with a matrix reference taken from the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mp2ml_ir::plan::MatrixRef;
use mp2ml_ir::weights::{WeightsFile, MAGIC};

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    // First 32 bytes: offset, rows, cols, nnz (small values mostly, to reach the body checks).
    let small = |v: u64| if v & (1 << 63) != 0 { v } else { v % 4096 };
    let r = MatrixRef {
        offset: small(u64_at(data, 0)),
        rows: small(u64_at(data, 8)) as usize,
        cols: small(u64_at(data, 16)) as usize,
        nnz: small(u64_at(data, 24)) as usize,
    };
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&data[32..]);
    if let Ok(w) = WeightsFile::from_bytes(file) {
        if let Ok(m) = w.matrix(&r) {
            assert!(m.check().is_ok());
            let _ = mp2ml_ckks::CsrMatrix::new(m.row_ptr.iter().map(|&p| p as usize).collect(), m.col, m.val, m.cols);
        }
    }
    let _ = WeightsFile::from_bytes(data.to_vec()).map(|w| w.matrix(&r));
});
