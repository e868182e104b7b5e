//! `.npy` input and output (float32 images and outputs, int64 labels).

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{read_npy, ReadNpyError};

use crate::error::{Result, RuntimeError};

fn input_err(path: &Path, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Input(format!("{}: {e}", path.display()))
}

/// Reads a float32 array; returns its shape and values (row-major).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let a: ArrayD<f32> = read_npy(path).map_err(|e: ReadNpyError| match e {
        ReadNpyError::Io(source) => RuntimeError::File {
            path: path.to_path_buf(),
            source,
        },
        other => input_err(path, format!("{other} (expected a float32 .npy array)")),
    })?;
    let shape = a.shape().to_vec();
    Ok((shape, a.iter().copied().collect()))
}

/// Reads int64 labels (any shape; flattened).
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let a: ArrayD<i64> = read_npy(path).map_err(|e: ReadNpyError| match e {
        ReadNpyError::Io(source) => RuntimeError::File {
            path: path.to_path_buf(),
            source,
        },
        other => input_err(path, format!("{other} (expected an int64 .npy array)")),
    })?;
    Ok(a.iter().copied().collect())
}

/// Writes a float32 array atomically (temporary file in the same folder, then rename).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).map_err(|e| input_err(path, e))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let file_err = |source| RuntimeError::File {
        path: path.to_path_buf(),
        source,
    };
    {
        let f = std::fs::File::create(&tmp).map_err(file_err)?;
        let mut w = std::io::BufWriter::new(f);
        ndarray_npy::WriteNpyExt::write_npy(&a, &mut w).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            input_err(path, e)
        })?;
        std::io::Write::flush(&mut w).map_err(file_err)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_err(e)
    })
}
