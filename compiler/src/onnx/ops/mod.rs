//! Op builders, one file per operator or small family, grouped like tract's `onnx/src/ops`.

pub mod activation;
pub mod array;
pub mod math;
pub mod nn;

use super::registry::OpRegister;

/// Registers every supported ONNX operator.
pub fn register_all_ops(reg: &mut OpRegister) {
    activation::register_all_ops(reg);
    array::register_all_ops(reg);
    math::register_all_ops(reg);
    nn::register_all_ops(reg);
}
