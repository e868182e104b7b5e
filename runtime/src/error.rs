//! The runtime's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a plan or running the protocol.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A plan file is malformed, of another version, or inconsistent.
    #[error("plan {path}: {message}")]
    Plan {
        /// The plan file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Input data (an `.npy` file) is unusable.
    #[error("input: {0}")]
    Input(String),
    /// The parameters do not meet the required security level.
    #[error("refusing insecure parameters: {0}")]
    Insecure(String),
    /// The peer broke the protocol (wrong message, wrong size, mismatched plan).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer refused the session and said why.
    #[error("the server refused the session: {0}")]
    Refused(String),
    /// CKKS failure (level mismatch, corrupt ciphertext, ...).
    #[error("CKKS: {0}")]
    Ckks(#[from] mp2ml_ckks::Error),
    /// Garbled-circuit, OT or channel failure (including timeouts and disconnects).
    #[error("{0}")]
    Mpc(#[from] mp2ml_mpc::MpcError),
    /// Network setup failure (bind, connect).
    #[error("network: {0}")]
    Net(String),
}

/// Result alias.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
