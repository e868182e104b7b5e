//! Shape and data-movement ops, plus the constant-only ops folded at import.

pub mod concat;
pub mod constant;
pub mod flatten;
pub mod fold;
pub mod identity;
pub mod pad;
pub mod reshape;
pub mod slice;
pub mod squeeze;
pub mod transpose;

use super::super::registry::OpRegister;

/// Registers the family.
pub fn register_all_ops(reg: &mut OpRegister) {
    reg.insert("Concat", concat::concat);
    reg.insert("Constant", constant::constant);
    reg.insert("Shape", constant::shape);
    reg.insert("Gather", constant::gather);
    reg.insert("Cast", constant::cast);
    reg.insert("ConstantOfShape", fold::constant_of_shape);
    reg.insert("Flatten", flatten::flatten);
    reg.insert("Slice", slice::slice);
    reg.insert("Identity", identity::identity);
    reg.insert("Dropout", identity::dropout);
    reg.insert("Pad", pad::pad);
    reg.insert("Reshape", reshape::reshape);
    reg.insert("Squeeze", squeeze::squeeze);
    reg.insert("Unsqueeze", squeeze::unsqueeze);
    reg.insert("Transpose", transpose::transpose);
}
