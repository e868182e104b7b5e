//! File formats and writes shared by the compiler, the runtime and the tests: `.npy` arrays
//! (float32 images and outputs, int64 labels; parsed by `ndarray-npy`) and atomic writes
//! (a temporary file in the same folder, then a rename, so a reader never sees half a file).

use std::io;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};

/// A `.npy` file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes are not a `.npy` array of the expected element type.
    #[error("{0} (expected a {1} .npy array)")]
    Format(String, &'static str),
    /// Shape and data disagree.
    #[error("shape {0:?} does not match {1} values")]
    Shape(Vec<usize>, usize),
}

fn format_err(e: ReadNpyError, what: &'static str) -> NpyError {
    match e {
        ReadNpyError::Io(e) => NpyError::Io(e),
        other => NpyError::Format(other.to_string(), what),
    }
}

/// Parses a float32 array (C or Fortran order); returns its shape and values in row-major order.
pub fn f32_from_bytes(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let a = ArrayD::<f32>::read_npy(bytes).map_err(|e| format_err(e, "float32"))?;
    Ok((a.shape().to_vec(), a.iter().copied().collect()))
}

/// Parses an int64 array; returns its shape and values in row-major order.
pub fn i64_from_bytes(bytes: &[u8]) -> Result<(Vec<usize>, Vec<i64>), NpyError> {
    let a = ArrayD::<i64>::read_npy(bytes).map_err(|e| format_err(e, "int64"))?;
    Ok((a.shape().to_vec(), a.iter().copied().collect()))
}

/// Parses a float32, float64 or int64 array as float32 values (test data of the ONNX
/// conformance suite comes in all three).
pub fn any_as_f32_from_bytes(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    if let Ok(a) = f32_from_bytes(bytes) {
        return Ok(a);
    }
    if let Ok(a) = ArrayD::<f64>::read_npy(bytes) {
        return Ok((a.shape().to_vec(), a.iter().map(|&x| x as f32).collect()));
    }
    let (shape, v) = i64_from_bytes(bytes)
        .map_err(|_| NpyError::Format("unsupported element type".into(), "f4, f8 or i8"))?;
    Ok((shape, v.into_iter().map(|x| x as f32).collect()))
}

/// Serializes a float32 array of `shape` as `.npy` bytes.
pub fn f32_to_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, NpyError> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), data.to_vec())
        .map_err(|_| NpyError::Shape(shape.to_vec(), data.len()))?;
    let mut out = Vec::new();
    a.write_npy(&mut out)
        .map_err(|e| NpyError::Format(e.to_string(), "float32"))?;
    Ok(out)
}

/// Writes `bytes` to a temporary file next to `path` (same folder, so a rename is atomic) and
/// returns its path; on error nothing is left behind.
pub fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    write_temp_with(path, |w| w.write_all(bytes))
}

/// Like [`write_temp`], with the contents written by `fill` through a buffered writer (so a
/// large file never exists in memory as a whole).
pub fn write_temp_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut w = io::BufWriter::new(std::fs::File::create(&tmp)?);
        fill(&mut w)?;
        io::Write::flush(&mut w)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(tmp)
}

/// Writes `bytes` to `path` atomically: a reader sees the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_refusals() {
        let bytes = f32_to_bytes(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).expect("write");
        let (shape, v) = f32_from_bytes(&bytes).expect("read");
        assert_eq!((shape, v), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]));
        assert!(matches!(
            f32_to_bytes(&[2, 2], &[1.0]),
            Err(NpyError::Shape(_, 1))
        ));
        assert!(matches!(
            f32_from_bytes(b"not an npy file"),
            Err(NpyError::Format(_, "float32"))
        ));
        assert!(matches!(
            i64_from_bytes(&bytes),
            Err(NpyError::Format(_, "int64"))
        ));
        for cut in [0, 5, 9, bytes.len() - 1] {
            assert!(f32_from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(any_as_f32_from_bytes(&bytes).expect("any").1[5], 6.5);
    }

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("mp2ml-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("x.bin");
        write_atomic(&p, b"first").expect("write");
        write_atomic(&p, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        assert!(write_atomic(&dir.join("missing/x.bin"), b"x").is_err());
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.bin")]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
