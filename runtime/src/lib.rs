//! `mp2ml-runtime`: the two-party protocol that executes an mp2ml plan (MP2ML, Boemer et al.,
//! ARES 2020, with its gaps closed: exact masking mod q0, statistical output masks that never
//! wrap, MaxPool inside the circuit, re-randomized and noise-flooded ciphertexts).
//!
//! The cryptographic engines live in their own crates beside this one: `runtime/ckks`
//! (RNS-CKKS with coefficient packing) and `runtime/mpc` (channels, oblivious transfer,
//! garbled circuits). This crate holds the protocol:
//! - [`plan`]: loading and checking plans and weights (untrusted input);
//! - [`wire`]: the messages and the handshake's hello;
//! - [`session`]: what both parties agree on without talking (groups, offline-first);
//! - [`backend`]: each MPC step's Boolean back end (Yao or GMW) and its dispatch;
//! - [`server`] and [`client`]: the two sides of a session, each its steps in protocol order;
//! - `handshake`, `he2mpc`, `mpc2he`: both parties' halves of the handshake and of each
//!   conversion (the input is an MPC→HE conversion without a mask, the output an HE→MPC
//!   conversion without one);
//! - `image`: both parties' sides of an image-packed plan (Cheetah-style packing);
//! - [`phase`]: the phases of a session as the channel counts them;
//! - [`shares`]: bit layouts of shares, masks and circuit outputs;
//! - [`local`]: both parties in one process over loopback TCP;
//! - [`npy`]: `.npy` input and output;
//! - [`report`]: time and bytes per step;
//! - [`service`]: the server as a service (concurrent sessions, limits, deadlines, shutdown,
//!   metrics).

pub mod backend;
pub mod client;
pub mod error;
mod handshake;
mod he2mpc;
mod image;
pub mod local;
mod mpc2he;
pub mod npy;
pub mod phase;
pub mod plan;
#[cfg(feature = "test-hooks")]
pub mod probe;
pub mod report;
pub mod server;
pub mod service;
pub mod session;
pub mod shares;
pub mod wire;

pub use error::{Inconsistency, ProtocolError, Refusal, Result, RuntimeError};
