//! Secure two-party computation for mp2ml's non-linear layers (see `docs/ARCHITECTURE.md`).
//!
//! * [`channel`]: the [`Channel`] trait, [`TcpChannel`] and [`MemChannel`], with per-phase
//!   byte counts, bounded frames and timeouts.
//! * [`ot`]: Chou–Orlandi base OT on ristretto255 and IKNP OT extension.
//! * [`yao`]: semi-honest half-gates Yao, vectorized over many instances of one circuit, with an
//!   offline/online split ([`Garbler::offline`], [`Garbler::online`], [`Evaluator::offline`],
//!   [`Evaluator::online`]) and a streaming variant ([`Garbler::run_streaming`],
//!   [`Evaluator::run_streaming`]).
//!
//! The server garbles, the client evaluates; only the client learns the outputs.

#![warn(missing_docs)]

pub mod channel;
pub mod crypto;
pub mod error;
pub mod gc;
pub mod ot;
pub mod yao;

pub use channel::{Channel, ChannelConfig, ChannelStats, MemChannel, PhaseStats, TcpChannel};
pub use error::{MpcError, Result};
pub use yao::{Evaluator, EvaluatorOffline, Garbler, GarblerOffline, GcConfig, PhaseReport};
