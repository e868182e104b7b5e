//! Decoding of ONNX `TensorProto`s into IR tensors (all numeric types become f32).

use mp2ml_ir::tensor::Tensor;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::TensorProto;

/// Name of an ONNX element type code.
pub fn dtype_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(t) => t.as_str_name().to_lowercase(),
        Err(_) => format!("type#{code}"),
    }
}

/// Whether a tensor of this element type is imported as data (float32) — other numeric types
/// are accepted only as compile-time constants (shapes, axes, indices).
pub fn is_float(code: i32) -> bool {
    code == DataType::Float as i32
}

fn chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

/// Decodes `t` to f32 values. Errors are plain messages; the caller attaches the location.
pub fn decode(t: &TensorProto) -> Result<Tensor, String> {
    if !t.external_data.is_empty() || t.data_location == Some(1) {
        return Err("external tensor data is not supported; embed the weights in the model".into());
    }
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("negative dimension {d}"));
        }
        shape.push(d as usize);
    }
    let n: usize = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    let raw = &t.raw_data;
    let dt = DataType::try_from(t.data_type)
        .map_err(|_| format!("unknown element type {}", t.data_type))?;
    let data: Vec<f32> = match dt {
        DataType::Float if !raw.is_empty() => chunks::<4>(raw).map(f32::from_le_bytes).collect(),
        DataType::Float => t.float_data.clone(),
        DataType::Double if !raw.is_empty() => chunks::<8>(raw)
            .map(|b| f64::from_le_bytes(b) as f32)
            .collect(),
        DataType::Double => t.double_data.iter().map(|&v| v as f32).collect(),
        DataType::Int64 if !raw.is_empty() => chunks::<8>(raw)
            .map(|b| i64::from_le_bytes(b) as f32)
            .collect(),
        DataType::Int64 => t.int64_data.iter().map(|&v| v as f32).collect(),
        DataType::Int32 if !raw.is_empty() => chunks::<4>(raw)
            .map(|b| i32::from_le_bytes(b) as f32)
            .collect(),
        DataType::Int16 if !raw.is_empty() => chunks::<2>(raw)
            .map(|b| i16::from_le_bytes(b) as f32)
            .collect(),
        DataType::Uint16 if !raw.is_empty() => chunks::<2>(raw)
            .map(|b| u16::from_le_bytes(b) as f32)
            .collect(),
        DataType::Int8 if !raw.is_empty() => raw.iter().map(|&b| b as i8 as f32).collect(),
        DataType::Uint8 | DataType::Bool if !raw.is_empty() => {
            raw.iter().map(|&b| b as f32).collect()
        }
        DataType::Int32
        | DataType::Int16
        | DataType::Uint16
        | DataType::Int8
        | DataType::Uint8
        | DataType::Bool => t.int32_data.iter().map(|&v| v as f32).collect(),
        DataType::Uint32 | DataType::Uint64 if raw.is_empty() => {
            t.uint64_data.iter().map(|&v| v as f32).collect()
        }
        DataType::Uint32 => chunks::<4>(raw)
            .map(|b| u32::from_le_bytes(b) as f32)
            .collect(),
        DataType::Uint64 => chunks::<8>(raw)
            .map(|b| u64::from_le_bytes(b) as f32)
            .collect(),
        other => {
            return Err(format!(
                "element type {} is not supported",
                other.as_str_name().to_lowercase()
            ))
        }
    };
    if data.len() != n {
        return Err(format!(
            "holds {} elements but its shape {shape:?} needs {n}",
            data.len()
        ));
    }
    Ok(Tensor { shape, data })
}
