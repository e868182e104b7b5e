//! The crate's error type.

use crate::params::SecurityLevel;

/// Everything that can go wrong in `mp2ml-ckks`. Variants carry the offending values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// N is not a power of two in 1024..=32768.
    #[error("ring dimension {n} is not a power of two in 1024..=32768")]
    InvalidRingDimension {
        /// The requested N.
        n: usize,
    },
    /// The moduli chain is empty.
    #[error("the moduli chain is empty")]
    NoModuli,
    /// More moduli than levels a header can address.
    #[error("{count} moduli given, at most {max} supported")]
    TooManyModuli {
        /// Number given.
        count: usize,
        /// Maximum supported.
        max: usize,
    },
    /// A modulus is not below 2^62.
    #[error("modulus {index} = {modulus} is not below 2^62")]
    ModulusTooLarge {
        /// Position in the chain.
        index: usize,
        /// The modulus.
        modulus: u64,
    },
    /// A modulus is not prime.
    #[error("modulus {index} = {modulus} is not prime")]
    NotPrime {
        /// Position in the chain.
        index: usize,
        /// The modulus.
        modulus: u64,
    },
    /// A modulus is not ≡ 1 mod 2N (no negacyclic NTT).
    #[error("modulus {index} = {modulus} is not 1 mod 2N = {two_n}")]
    NotNttFriendly {
        /// Position in the chain.
        index: usize,
        /// The modulus.
        modulus: u64,
        /// 2N.
        two_n: usize,
    },
    /// The same prime appears twice.
    #[error("modulus {modulus} appears more than once")]
    DuplicateModulus {
        /// The repeated prime.
        modulus: u64,
    },
    /// The parameters do not reach the requested security level.
    #[error(
        "insecure parameters: N = {n} with log2 Q = {log_q} bits exceeds the {security} maximum of {max_log_q} bits"
    )]
    Insecure {
        /// Ring dimension.
        n: usize,
        /// Total modulus bits (sum of the primes' bit lengths).
        log_q: u32,
        /// Table maximum for this N and level.
        max_log_q: u32,
        /// Requested level.
        security: SecurityLevel,
    },
    /// The security table has no entry for this N.
    #[error("no security table entry for N = {n}")]
    NoSecurityEntry {
        /// Ring dimension.
        n: usize,
    },
    /// Prime search failed.
    #[error("could not find {count} NTT-friendly primes of {bits} bits for N = {n}")]
    PrimeSearchExhausted {
        /// Requested size.
        bits: u32,
        /// Ring dimension.
        n: usize,
        /// Requested count.
        count: usize,
    },
    /// A prime bit size outside 2..=62 (or too small for 2N).
    #[error("invalid prime size {bits} bits")]
    InvalidPrimeBits {
        /// Requested size.
        bits: u32,
    },
    /// Two operands are at different levels.
    #[error("level mismatch: {a} vs {b}")]
    LevelMismatch {
        /// Left operand's level.
        a: usize,
        /// Right operand's level.
        b: usize,
    },
    /// A level outside 0..=max (or an operation that needs a level ≥ 1 / = 0).
    #[error("invalid level {level} (maximum {max})")]
    InvalidLevel {
        /// Requested level.
        level: usize,
        /// Highest level allowed here.
        max: usize,
    },
    /// Operands were made under different parameter sets.
    #[error("operands belong to different parameter sets")]
    ParamsMismatch,
    /// A vector has the wrong length.
    #[error("length mismatch: expected at most/exactly {expected}, got {actual}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Given length.
        actual: usize,
    },
    /// A decrypted coefficient does not fit in i128.
    #[error("decrypted coefficient {index} does not fit in i128")]
    DecodeOverflow {
        /// Coefficient index.
        index: usize,
    },
    /// The product of the first `limbs` primes does not fit in 128 bits.
    #[error("the product of the first {limbs} primes does not fit in 128 bits")]
    ModulusProductTooWide {
        /// Number of primes.
        limbs: usize,
    },
    /// Flooding width out of range.
    #[error("flooding width 2^{bits} not supported (at most 2^120)")]
    FloodingTooWide {
        /// Requested log2 width.
        bits: u32,
    },
    /// A CSR matrix is malformed.
    #[error("malformed CSR matrix: {reason}")]
    InvalidMatrix {
        /// What is wrong.
        reason: &'static str,
    },
    /// A CSR column index points past the inputs.
    #[error("CSR row {row} references input {col}, only {inputs} inputs given")]
    ColumnOutOfRange {
        /// Row.
        row: usize,
        /// Column index.
        col: u32,
        /// Number of inputs.
        inputs: usize,
    },
    /// Deserialization failed.
    #[error("deserialization: {0}")]
    Decode(#[from] DecodeError),
}

/// Reasons a serialized object is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Buffer shorter than the header.
    #[error("buffer of {len} bytes is shorter than the header")]
    ShortHeader {
        /// Buffer length.
        len: usize,
    },
    /// Wrong magic bytes.
    #[error("bad magic bytes")]
    BadMagic,
    /// Unknown format version.
    #[error("unsupported format version {version}")]
    UnsupportedVersion {
        /// Version byte found.
        version: u8,
    },
    /// The object kind byte does not match what was asked for.
    #[error("object kind {found} where {expected} was expected")]
    WrongKind {
        /// Expected kind byte.
        expected: u8,
        /// Kind byte found.
        found: u8,
    },
    /// Header's N or parameter fingerprint differ from the receiver's parameters.
    #[error("parameters differ from the receiver's")]
    ParamsMismatch,
    /// Header's level above the parameters' maximum.
    #[error("level {level} above maximum {max}")]
    InvalidLevel {
        /// Level found.
        level: usize,
        /// Maximum level.
        max: usize,
    },
    /// Body length differs from what the header implies.
    #[error("expected {expected} bytes, got {actual}")]
    Length {
        /// Expected total length.
        expected: usize,
        /// Actual total length.
        actual: usize,
    },
    /// A polynomial window wider than N or empty.
    #[error("polynomial window of {width} coefficients (must be 1..={n})")]
    Width {
        /// Width found.
        width: usize,
        /// Ring dimension.
        n: usize,
    },
    /// The padding bits at the end of a packed limb are not zero.
    #[error("non-zero padding bits after limb {limb}")]
    NonZeroPadding {
        /// Limb (prime index).
        limb: usize,
    },
    /// A residue is not below its prime.
    #[error("residue {index} of limb {limb} is not below its prime")]
    ResidueOutOfRange {
        /// Limb (prime index).
        limb: usize,
        /// Coefficient index.
        index: usize,
    },
}

/// Crate result alias.
pub type Result<T> = std::result::Result<T, Error>;
