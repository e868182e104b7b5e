//! Linear algebra and elementwise arithmetic.

pub mod elementwise;
pub mod gemm;

use super::super::registry::OpRegister;

/// Registers the family.
pub fn register_all_ops(reg: &mut OpRegister) {
    reg.insert("Gemm", gemm::gemm);
    reg.insert("MatMul", gemm::matmul);
    reg.insert("Add", elementwise::add);
    reg.insert("Sub", elementwise::sub);
    reg.insert("Mul", elementwise::mul);
    reg.insert("Div", elementwise::div);
    reg.insert("Sum", elementwise::sum);
}
