//! Neural-network ops: convolution, pooling, batch normalization.

pub mod batch_norm;
pub mod conv;
pub mod pool;

use super::super::context::NodeRef;
use super::super::error::ImportError;
use super::super::listing::format_attr;
use super::super::registry::OpRegister;

/// Registers the family.
pub fn register_all_ops(reg: &mut OpRegister) {
    reg.insert("Conv", conv::conv);
    reg.insert("AveragePool", pool::average_pool);
    reg.insert("MaxPool", pool::max_pool);
    reg.insert("GlobalAveragePool", pool::global_average_pool);
    reg.insert("ReduceMean", pool::reduce_mean);
    reg.insert("BatchNormalization", batch_norm::batch_norm);
}

/// Normalized 2-D sliding-window attributes.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Strides.
    pub strides: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Dilations.
    pub dilations: [usize; 2],
}

fn positive_pair(node: &NodeRef, name: &str) -> Result<[usize; 2], ImportError> {
    match node.ints(name)? {
        None => Ok([1, 1]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
        Some(_) => Err(node.unsupported(
            name,
            node.attr(name).map(format_attr).unwrap_or_default(), // only the message
            "two positive values (2-D windows on [N,C,H,W])",
        )),
    }
}

/// The kernel size from `kernel_shape` (or `default`).
pub fn kernel(node: &NodeRef, default: Option<[usize; 2]>) -> Result<[usize; 2], ImportError> {
    match (node.ints("kernel_shape")?, default) {
        (Some(v), _) if v.len() == 2 && v.iter().all(|&x| x >= 1) => {
            Ok([v[0] as usize, v[1] as usize])
        }
        (Some(v), _) => Err(node.unsupported(
            "kernel_shape",
            format!("{v:?}"),
            "two positive values (2-D windows)",
        )),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(node.invalid("missing attribute `kernel_shape`")),
    }
}

/// Resolves strides, dilations, pads and `auto_pad` for input spatial size `hw`.
pub fn window(node: &NodeRef, hw: &[usize], kernel: [usize; 2]) -> Result<Window, ImportError> {
    let strides = positive_pair(node, "strides")?;
    let dilations = positive_pair(node, "dilations")?;
    let auto_pad = node.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into()); // the ONNX default
    let pads = match auto_pad.as_str() {
        "NOTSET" | "" => match node.ints("pads")? {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => {
                return Err(node.unsupported(
                    "pads",
                    format!("{p:?}"),
                    "four non-negative values [top,left,bottom,right]",
                ))
            }
        },
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = [0usize; 4];
            for a in 0..2 {
                let out = hw[a].div_ceil(strides[a]);
                let extent = dilations[a] * (kernel[a] - 1) + 1;
                let total = ((out - 1) * strides[a] + extent).saturating_sub(hw[a]);
                let small = total / 2;
                let (begin, end) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                p[a] = begin;
                p[a + 2] = end;
            }
            p
        }
        other => {
            return Err(node.unsupported(
                "auto_pad",
                format!("{other:?}"),
                "NOTSET, VALID, SAME_UPPER, SAME_LOWER",
            ))
        }
    };
    Ok(Window {
        strides,
        pads,
        dilations,
    })
}

/// Requires a 4-D `[N,C,H,W]` operand.
pub fn require_4d(node: &NodeRef, shape: &[usize]) -> Result<(), ImportError> {
    if shape.len() != 4 {
        return Err(node.unsupported(
            "input rank",
            format!("{} (shape {shape:?})", shape.len()),
            "4-D [N,C,H,W] inputs (2-D spatial windows)",
        ));
    }
    Ok(())
}
