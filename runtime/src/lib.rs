//! `mp2ml-runtime`: the two-party protocol that executes an mp2ml plan.
//!
//! The cryptographic engines live in their own crates beside this one:
//! `runtime/ckks` (RNS-CKKS with coefficient packing) and `runtime/mpc` (channels, oblivious
//! transfer, garbled circuits).
