//! The crate's error type.

use std::time::Duration;

use mp2ml_ir::circuit::CircuitError;

/// Everything that can go wrong in a channel, an OT or a garbled-circuit run.
///
/// Data read from the peer is never trusted: malformed or inconsistent messages are reported as
/// [`MpcError::Protocol`] (or a more specific variant), never as a panic.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// The peer closed the connection (or dropped its end of an in-memory channel).
    #[error("peer closed the channel during phase `{phase}`")]
    Closed {
        /// Phase the channel was in.
        phase: String,
    },
    /// The peer sent nothing (or did not read) for longer than the configured timeout.
    #[error("peer stalled: no progress for {after:?} during phase `{phase}`")]
    Timeout {
        /// Phase the channel was in.
        phase: String,
        /// The configured timeout.
        after: Duration,
    },
    /// The phase did not finish by the deadline set with
    /// [`Channel::set_deadline`](crate::Channel::set_deadline), however steadily the peer
    /// trickled bytes.
    #[error("peer too slow: phase `{phase}` missed its deadline of {budget:?}")]
    Deadline {
        /// Phase the channel was in.
        phase: String,
        /// The time the phase was given.
        budget: Duration,
    },
    /// Any other I/O failure.
    #[error("i/o error during phase `{phase}`: {source}")]
    Io {
        /// Phase the channel was in.
        phase: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A frame's length prefix exceeds the channel's bound.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The circuit failed validation.
    #[error(transparent)]
    Circuit(#[from] CircuitError),
    /// Wrong number of input bits for the circuit and instance count.
    #[error("expected {expected} {who} input bits ({instances} instances), got {got}")]
    InputLength {
        /// `garbler` or `evaluator`.
        who: &'static str,
        /// Expected bit count.
        expected: usize,
        /// Given bit count.
        got: usize,
        /// Instance count.
        instances: usize,
    },
    /// The two parties disagree on the circuit or instance count.
    #[error("parties disagree on the computation: {0}")]
    Mismatch(String),
    /// A message from the peer is malformed (e.g. a point that does not decode).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The operating system's random generator failed.
    #[error("no operating-system randomness: {0}")]
    Entropy(String),
    /// A size computation overflowed (absurd instance count or circuit size).
    #[error("size overflow: {0}")]
    TooLarge(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = MpcError> = std::result::Result<T, E>;
