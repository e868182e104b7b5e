//! Activations and the post-processing ops (Softmax, ArgMax).

pub mod clip;
pub mod relu;
pub mod softmax;

use super::super::registry::OpRegister;

/// Registers the family.
pub fn register_all_ops(reg: &mut OpRegister) {
    reg.insert("Relu", relu::relu);
    reg.insert("LeakyRelu", relu::leaky_relu);
    reg.insert("Sigmoid", relu::sigmoid);
    reg.insert("Clip", clip::clip);
    reg.insert("Softmax", softmax::softmax);
    reg.insert("ArgMax", softmax::argmax);
}
