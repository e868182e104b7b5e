//! A minimal reader for little-endian float32 `.npy` files (C order), for calibration and test
//! images.

use mp2ml_ir::tensor::Tensor;

/// Parses a `.npy` file holding `<f4` data in C order.
pub fn read_f32(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.get(..6) != Some(b"\x93NUMPY") {
        return Err("not a .npy file".into());
    }
    let major = *bytes.get(6).ok_or("truncated header")?;
    let (hlen, start) = if major == 1 {
        let b = bytes.get(8..10).ok_or("truncated header")?;
        (u16::from_le_bytes([b[0], b[1]]) as usize, 10)
    } else {
        let b = bytes.get(8..12).ok_or("truncated header")?;
        (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or("truncated header")?)
        .map_err(|_| "header is not text")?;
    if !header.contains("'<f4'") {
        return Err(format!(
            "only little-endian float32 arrays are supported (header: {})",
            header.trim()
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape_txt = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in header")?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension `{s}`"))
        })
        .collect::<Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let data_bytes = bytes.get(start + hlen..).ok_or("truncated data")?;
    if data_bytes.len() < n * 4 {
        return Err(format!(
            "expected {} data bytes, file has {}",
            n * 4,
            data_bytes.len()
        ));
    }
    let data = data_bytes
        .chunks_exact(4)
        .take(n)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::new(shape, data).ok_or_else(|| "shape does not match the data".to_string())
}
