//! `mp2ml-ir`: the data shared by the mp2ml compiler and runtime.
//!
//! - [`circuit`]: Boolean circuits (XOR/AND/INV over wires) and their plaintext evaluation.
//! - [`plan`]: the execution plan written by the compiler (server and client views).
//!
//! Nothing in this crate performs cryptography.

pub mod circuit;
pub mod graph;
pub mod op;
pub mod plan;
pub mod reference;
pub mod shape;
pub mod tensor;
pub mod validate;

pub mod layout;
pub mod weights;
