//! `.npy` input and output (float32 images and outputs, int64 labels), through
//! [`mp2ml_ir::files`] with the runtime's errors.

use std::path::Path;

use mp2ml_ir::files::{self, NpyError};

use crate::error::{Result, RuntimeError};

fn npy_err(path: &Path, e: NpyError) -> RuntimeError {
    match e {
        NpyError::Io(source) => RuntimeError::File {
            path: path.to_path_buf(),
            source,
        },
        other => RuntimeError::Input(format!("{}: {other}", path.display())),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RuntimeError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a float32 array; returns its shape and values (row-major).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    files::f32_from_bytes(&read(path)?).map_err(|e| npy_err(path, e))
}

/// Reads int64 labels (any shape; flattened).
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let (_, v) = files::i64_from_bytes(&read(path)?).map_err(|e| npy_err(path, e))?;
    Ok(v)
}

/// Writes a float32 array atomically (temporary file in the same folder, then rename).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes = files::f32_to_bytes(shape, data).map_err(|e| npy_err(path, e))?;
    files::write_atomic(path, &bytes).map_err(|e| npy_err(path, e.into()))
}
