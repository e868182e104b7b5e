//! Ops that exist only to compute constants and are folded at import: `Constant`, `Shape`,
//! `Gather` (constant operands), `Cast`.

use mp2ml_ir::op::Op;
use mp2ml_ir::shape::{norm_axis, numel};
use mp2ml_ir::tensor::Tensor;
use tract_onnx::pb::tensor_proto::DataType;

use super::super::super::context::{Ctx, NodeRef};
use super::super::super::error::ImportError;
use super::super::super::tensor::dtype_name;

/// Builds `Constant`.
pub fn constant(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let value = if let Some(t) = node.tensor("value")? {
        t
    } else if let Some(f) = node.float("value_float")? {
        Tensor::scalar(f)
    } else if let Some(i) = node.int("value_int")? {
        Tensor::scalar(i as f32)
    } else if let Some(a) = node.attr("value_floats") {
        Tensor {
            shape: vec![a.floats.len()],
            data: a.floats.clone(),
        }
    } else if let Some(v) = node.ints("value_ints")? {
        Tensor {
            shape: vec![v.len()],
            data: v.iter().map(|&x| x as f32).collect(),
        }
    } else {
        let what = node
            .pb
            .attribute
            .first()
            .map_or("(none)".to_string(), |a| a.name.clone());
        return Err(node.unsupported("attribute", what, "value, value_float(s), value_int(s)"));
    };
    if let Some(index) = value.first_non_finite() {
        return Err(ImportError::NonFinite {
            // The name only labels the error (an unnamed output shows as "").
            tensor: node.pb.output.first().cloned().unwrap_or_default(),
            line: Some(node.loc.line),
            index,
            value: value.data[index],
        });
    }
    ctx.bind_const(node, 0, value)
}

/// Builds `Shape` (always constant: every IR shape is concrete).
pub fn shape(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let s: Vec<f32> = ctx.shape(x).iter().map(|&d| d as f32).collect();
    let r = s.len() as i64;
    let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) } as usize;
    let start = clamp(node.int_or("start", 0)?);
    let end = clamp(node.int_or("end", r)?);
    let data = if start < end {
        s[start..end].to_vec()
    } else {
        vec![]
    };
    ctx.bind_const(
        node,
        0,
        Tensor {
            shape: vec![data.len()],
            data,
        },
    )
}

/// Builds `Gather` on constant operands.
pub fn gather(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let data = ctx
        .const_input(node, 0, "data (Gather is only folded on constants)")?
        .ok_or_else(|| node.invalid("missing data"))?;
    let idx = ctx
        .const_input(node, 1, "indices")?
        .ok_or_else(|| node.invalid("missing indices"))?;
    let shape_err = |source| ImportError::Shape {
        at: node.loc.clone(),
        source,
    };
    let axis = norm_axis(node.int_or("axis", 0)?, data.rank(), false).map_err(shape_err)?;
    let (outer, n, inner) = (
        numel(&data.shape[..axis]),
        data.shape[axis],
        numel(&data.shape[axis + 1..]),
    );
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in &idx.data {
            let i = i as i64;
            let j = if i < 0 { i + n as i64 } else { i };
            if j < 0 || j >= n as i64 {
                return Err(node.invalid(format!("index {i} out of range for axis of size {n}")));
            }
            out.extend_from_slice(&data.data[(o * n + j as usize) * inner..][..inner]);
        }
    }
    let mut shape = data.shape[..axis].to_vec();
    shape.extend_from_slice(&idx.shape);
    shape.extend_from_slice(&data.shape[axis + 1..]);
    ctx.bind_const(node, 0, Tensor { shape, data: out })
}

/// Builds `Cast`: folded on constants, an identity on float data when casting to float.
pub fn cast(ctx: &mut Ctx, node: &NodeRef) -> Result<(), ImportError> {
    let x = ctx.req_input(node, 0)?;
    let to = node
        .int("to")?
        .ok_or_else(|| node.invalid("missing attribute `to`"))?;
    let to_float = [DataType::Float as i64, DataType::Double as i64].contains(&to);
    if let Some(mut v) = ctx.graph.tensor(x).value.clone() {
        if !to_float {
            v.data.iter_mut().for_each(|e| *e = e.trunc());
        }
        return ctx.bind_const(node, 0, v);
    }
    if to != DataType::Float as i64 {
        return Err(node.unsupported("to", dtype_name(to as i32), "float (casts of data tensors)"));
    }
    ctx.emit(node, Op::Identity, vec![x])?;
    Ok(())
}
