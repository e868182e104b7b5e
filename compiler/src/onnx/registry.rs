//! `op_type` → builder registry (one builder per ONNX operator), filled by each op family.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::context::{Ctx, NodeRef};
use super::error::ImportError;

/// Translates one ONNX node into IR nodes or constants.
pub type OpBuilder = fn(&mut Ctx, &NodeRef) -> Result<(), ImportError>;

/// The table of builders.
#[derive(Default)]
pub struct OpRegister(HashMap<&'static str, OpBuilder>);

impl OpRegister {
    /// Registers `builder` for `op_type`.
    pub fn insert(&mut self, op_type: &'static str, builder: OpBuilder) {
        self.0.insert(op_type, builder);
    }

    /// The builder for `op_type`.
    pub fn get(&self, op_type: &str) -> Option<OpBuilder> {
        self.0.get(op_type).copied()
    }
}

/// The process-wide registry with every family registered.
pub fn registry() -> &'static OpRegister {
    static REG: OnceLock<OpRegister> = OnceLock::new();
    REG.get_or_init(|| {
        let mut r = OpRegister::default();
        super::ops::register_all_ops(&mut r);
        r
    })
}

/// Sorted names of the supported ONNX operators.
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = registry().0.keys().copied().collect();
    v.sort_unstable();
    v
}
