//! The runtime's error type.

use std::path::PathBuf;

use mp2ml_ir::plan::{IndexError, StepRef, TensorRef};

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
    Protocol(#[from] ProtocolError),
    /// The plan is inconsistent with itself in a way its load-time check does not catch.
    #[error("inconsistent plan: {0}")]
    Inconsistent(#[from] Inconsistency),
    /// The server thread of a local (one-process) session panicked.
    #[error("the server thread panicked")]
    ServerPanicked,
    /// Some sessions of a server's accept loop failed (each was reported as it failed).
    #[error("{failed} of {served} sessions failed")]
    SessionsFailed {
        /// Failed sessions.
        failed: u64,
        /// Sessions served.
        served: u64,
    },
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

/// How the peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The first frame is not an mp2ml hello.
    #[error("malformed hello (is the peer an mp2ml client?)")]
    MalformedHello,
    /// The server refused the client's hello (and told the client why).
    #[error("refused the client: {0}")]
    RefusedClient(Refusal),
    /// A ciphertext half at another level than the protocol step expects.
    #[error("expected a ciphertext at level {expected}, got level {got}")]
    WrongLevel {
        /// Level of the step.
        expected: usize,
        /// Level received.
        got: usize,
    },
    /// A ciphertext half of another width than the protocol step expects.
    #[error("expected a polynomial of {expected} coefficients, got {got}")]
    WrongWidth {
        /// Width of the step (N for c1 halves, the batch for c0 windows).
        expected: usize,
        /// Width received.
        got: usize,
    },
    /// A frame of seeds of the wrong length.
    #[error("malformed seed frame: {bytes} bytes where {seeds} seeds were expected")]
    MalformedSeeds {
        /// Bytes received.
        bytes: usize,
        /// Seeds expected (32 bytes each).
        seeds: usize,
    },
}

/// Why the server refused a client's hello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another protocol version.
    #[error("protocol version {client} is not supported (server speaks {server})")]
    Version {
        /// The client's version.
        client: u32,
        /// The server's.
        server: u32,
    },
    /// The client's plan is not the public half of the server's.
    #[error(
        "the client's plan (hash {client}) does not belong to this server's plan (hash {server})"
    )]
    PlanHash {
        /// The client's public plan hash.
        client: String,
        /// The server's.
        server: String,
    },
    /// The server's admission policy turned the session away (busy, over budget); the reason
    /// is the policy's.
    #[error("{0}")]
    NotAdmitted(String),
    /// The parties' `--mpc` overrides differ (each MPC step must run one back end on both).
    #[error("the client runs {client}, the server {server}: both must use the same --mpc")]
    Backend {
        /// The client's override.
        client: String,
        /// The server's.
        server: String,
    },
    /// A batch size outside `1..=max`.
    #[error("batch of {images} images is outside 1..={max} (the plan's session limit)")]
    BatchSize {
        /// Images announced.
        images: u64,
        /// The plan's `session_images`, at most [`crate::session::MAX_IMAGES`].
        max: usize,
    },
}

/// A plan inconsistent with itself (a bug in the compiler or a plan edited past its check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// A segment refers to an MPC step the plan does not have.
    #[error("MPC step {step} out of range")]
    StepOutOfRange {
        /// The step.
        step: StepRef,
    },
    /// Two segments refer to the same MPC step.
    #[error("MPC step {step} used twice")]
    StepUsedTwice {
        /// The step.
        step: StepRef,
    },
    /// A tensor is read before the segment that writes it.
    #[error("tensor {tensor} is used before it is computed")]
    TensorNotComputed {
        /// The tensor.
        tensor: TensorRef,
    },
    /// An index of the plan out of range.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A linear op without loaded weights.
    #[error("no weights for `{op}`")]
    NoWeights {
        /// The op's name.
        op: String,
    },
    /// The plan's share modulus is not a product of 1..=chain primes below 2^126.
    #[error(
        "share modulus over {limbs} primes is not usable (0, above the chain or 2^126 or more)"
    )]
    ShareModulus {
        /// The plan's `share_limbs`.
        limbs: usize,
    },
    /// An MPC binding gathers another number of values than its step masks.
    #[error("{gathered} values gathered for {masks} masks")]
    GatherCount {
        /// Values gathered.
        gathered: usize,
        /// Masks of the step.
        masks: usize,
    },
    /// An MPC binding gathers a value outside its input tensor.
    #[error("gather index {index} outside the tensor of {len} values")]
    GatherIndex {
        /// The index.
        index: u32,
        /// Values of the tensor.
        len: usize,
    },
    /// A circuit's outputs do not match its step.
    #[error(
        "step `{step}`: the circuit produced {got} output values, the step expects {expected}"
    )]
    CircuitOutputs {
        /// The step's name (or `?` where it is not known).
        step: String,
        /// Output values (or bits) produced.
        got: usize,
        /// Expected.
        expected: usize,
    },
}

/// Result alias.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
