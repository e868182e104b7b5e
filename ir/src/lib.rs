//! `mp2ml-ir`: the data shared by the mp2ml compiler and runtime.
//!
//! - [`circuit`]: Boolean circuits (XOR/AND/INV over wires) and their plaintext evaluation.
//! - [`plan`]: the execution plan written by the compiler (server and client views).
//!
//! - [`files`]: `.npy` arrays and atomic writes, one reader and one writer for every crate.
//! - [`security`], [`primes`]: the security table and the primality test, shared by the
//!   compiler's parameter choice and the runtime's CKKS checks.
//!
//! Nothing in this crate performs cryptography.

pub mod circuit;
pub mod files;
pub mod graph;
pub mod op;
pub mod plan;
pub mod primes;
pub mod reference;
pub mod security;
pub mod shape;
pub mod tensor;
pub mod validate;

pub mod layout;
pub mod weights;
