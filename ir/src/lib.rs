//! `mp2ml-ir`: the data shared by the mp2ml compiler and runtime.
//!
//! - [`circuit`]: Boolean circuits (XOR/AND/INV over wires) and their plaintext evaluation.
//!
//! Nothing in this crate performs cryptography.

pub mod circuit;
