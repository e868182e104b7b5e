//! Secure two-party computation for mp2ml's non-linear layers (see `docs/ARCHITECTURE.md`).
//!
//! * [`channel`]: the [`Channel`] trait, [`TcpChannel`] and [`MemChannel`], with per-phase
//!   byte counts, bounded frames and timeouts.
//! * [`ot`]: Chou–Orlandi base OT on ristretto255 and IKNP OT extension.
//! * [`gmw`]: semi-honest two-party GMW on XOR shares with Beaver triples from IKNP random
//!   OTs, bit-sliced over the instances, one round per AND layer ([`GmwServer`], [`GmwClient`]).
//! * [`yao`]: semi-honest half-gates Yao, vectorized over many instances of one circuit, with an
//!   offline/online split ([`Garbler::offline`], [`Garbler::online`], [`Evaluator::offline`],
//!   [`Evaluator::online`]) and a streaming variant ([`Garbler::run_streaming`],
//!   [`Evaluator::run_streaming`]).
//!
//! The server garbles, the client evaluates; only the client learns the outputs.
//!
//! Bit vectors are instance-major in circuit input order (`garbler_bits[t * gi + i]`,
//! `evaluator_bits[t * ei + j]`, `outputs[t * no + o]`); see [`yao`].
//!
//! ```
//! use mp2ml_ir::circuit::{Circuit, Gate};
//! use mp2ml_mpc::{ChannelConfig, Evaluator, Garbler, MemChannel};
//!
//! // out = g0 AND e0, for 3 instances.
//! let c = Circuit {
//!     name: "and".into(),
//!     garbler_inputs: 1,
//!     evaluator_inputs: 1,
//!     gates: vec![Gate::And(0, 1)],
//!     outputs: vec![2],
//! };
//! let (server_ch, client_ch) = MemChannel::pair(ChannelConfig::default());
//! let c2 = c.clone();
//! let server = std::thread::spawn(move || -> mp2ml_mpc::Result<()> {
//!     let mut garbler = Garbler::from_os_rng(server_ch)?;
//!     let offline = garbler.offline(&c2, 3, &[true, true, false])?; // before the client's input
//!     garbler.online(offline)
//! });
//! let mut evaluator = Evaluator::from_os_rng(client_ch)?;
//! let offline = evaluator.offline(&c, 3)?;
//! let out = evaluator.online(offline, &[true, false, true])?;
//! assert_eq!(out, vec![true, false, false]);
//! server.join().expect("server thread")?;
//! # Ok::<(), mp2ml_mpc::MpcError>(())
//! ```

#![warn(missing_docs)]

pub mod channel;
pub mod crypto;
pub mod error;
pub mod gc;
pub mod gmw;
pub mod ot;
pub mod yao;

pub use channel::{Channel, ChannelConfig, ChannelStats, MemChannel, PhaseStats, TcpChannel};
pub use error::{MpcError, Result};
pub use gmw::{GmwClient, GmwConfig, GmwOffline, GmwServer};
pub use yao::{Evaluator, EvaluatorOffline, Garbler, GarblerOffline, GcConfig, PhaseReport};
