//! Calibration and test images: a float32 `.npy` array as a [`Tensor`] (parsed by
//! [`mp2ml_ir::files`]).

use mp2ml_ir::tensor::Tensor;

/// Parses a `.npy` file holding float32 data.
pub fn read_f32(bytes: &[u8]) -> Result<Tensor, String> {
    let (shape, data) = mp2ml_ir::files::f32_from_bytes(bytes).map_err(|e| e.to_string())?;
    Tensor::new(shape, data).ok_or_else(|| "shape does not match the data".to_string())
}
