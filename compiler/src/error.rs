//! Errors of the compiler after import (partition, parameters, plan writing), rendered as
//! codespan-reporting diagnostics against the import listing.
//!
//! A [`CompileError`] is a matchable [`Error`] (what went wrong, with its numbers) plus where
//! it happened (the node and its listing line) and notes, the way naga wraps its errors in a
//! span.

use std::fmt;

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use mp2ml_ir::graph::{Graph, NodeId};

use crate::onnx::diagnostic::line_range;

/// Kind of a compile error (its diagnostic code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// An op or operand combination the partition does not support (`C001`).
    Unsupported,
    /// Parameters that cannot meet the security level or the range (`C002`).
    Parameters,
    /// Bad options or input files (`C003`).
    Options,
    /// File system errors (`C004`).
    Io,
    /// A plan or weights file that does not check out (`C005`).
    Plan,
}

impl ErrorKind {
    /// Diagnostic code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Unsupported => "C001",
            ErrorKind::Parameters => "C002",
            ErrorKind::Options => "C003",
            ErrorKind::Io => "C004",
            ErrorKind::Plan => "C005",
        }
    }
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// A model construct the partition does not support.
    #[error("{0}")]
    Unsupported(String),
    /// A prime of the chain would exceed the cap that keeps `round(W·p)` in an i64 (or the
    /// fast-path cap); the search then raises the output level.
    #[error("level {level} needs a {want_bits:.1}-bit prime (more than {cap_bits} bits)")]
    PrimeTooLarge {
        /// Level of the prime.
        level: usize,
        /// Bits the constraints at that level need.
        want_bits: f64,
        /// The cap.
        cap_bits: f64,
    },
    /// The values shared into circuits need a share modulus wider than 62 bits.
    #[error("values need a {bits}-bit share modulus (more than 62 bits); lower --scale-bits or the input range")]
    ShareModulusTooWide {
        /// Bits needed.
        bits: u32,
    },
    /// No NTT-friendly prime in the searched range.
    #[error(
        "no NTT-friendly prime of at least 2^{bits:.1} (and the required bit length) for N = {n}"
    )]
    NoPrime {
        /// log2 of the lower bound.
        bits: f64,
        /// Ring dimension.
        n: usize,
    },
    /// A forced N whose security bound does not admit the modulus.
    #[error("N = {n} with log2 Q = {log_q} bits does not meet {security}-bit security (the HomomorphicEncryption.org bound is {})", max_log_q.map_or("undefined".to_string(), |m| format!("{m} bits")))]
    Insecure {
        /// Ring dimension.
        n: usize,
        /// Bits of Q.
        log_q: u32,
        /// Security bits.
        security: u32,
        /// The table's bound at `n` (none if `n` is not in the table).
        max_log_q: Option<u32>,
    },
    /// No ring dimension up to 2^15 admits the modulus.
    #[error(
        "log2 Q = {log_q} bits exceeds the {security}-bit security bound for every N up to 32768"
    )]
    ModulusTooLarge {
        /// Bits of Q.
        log_q: u32,
        /// Security bits.
        security: u32,
    },
    /// The output scale (flooding noise plus the output precision) exceeds what the runtime
    /// supports.
    #[error("the output scale 2^{out_scale_bits} (flooding noise 2^{flood_bits} plus the output precision) exceeds 2^120")]
    OutputPrecision {
        /// Output scale bits.
        out_scale_bits: u32,
        /// Flooding bits.
        flood_bits: u32,
    },
    /// An option outside its admissible range.
    #[error("{name} = {value} is outside {range}")]
    OptionRange {
        /// The option.
        name: &'static str,
        /// Its value.
        value: u32,
        /// The admissible range.
        range: &'static str,
    },
    /// The N / primes iteration did not settle.
    #[error("parameter search did not converge")]
    NoConvergence,
    /// Any other parameter failure.
    #[error("{0}")]
    Parameters(String),
    /// Bad options or input files.
    #[error("{0}")]
    Options(String),
    /// A file system error.
    #[error("{0}")]
    Io(String),
    /// A plan or weights file that does not check out.
    #[error("{0}")]
    Plan(String),
    /// An internal invariant of the compiler did not hold (a bug, reported instead of a
    /// silently wrong plan).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Its kind (diagnostic code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unsupported(_) | Error::Internal(_) => ErrorKind::Unsupported,
            Error::PrimeTooLarge { .. }
            | Error::ShareModulusTooWide { .. }
            | Error::NoPrime { .. }
            | Error::Insecure { .. }
            | Error::ModulusTooLarge { .. }
            | Error::OutputPrecision { .. }
            | Error::OptionRange { .. }
            | Error::NoConvergence
            | Error::Parameters(_) => ErrorKind::Parameters,
            Error::Options(_) => ErrorKind::Options,
            Error::Io(_) => ErrorKind::Io,
            Error::Plan(_) => ErrorKind::Plan,
        }
    }
}

/// A compile error, optionally located at a node of the listing.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileError {
    /// What went wrong.
    pub error: Error,
    /// Node name, when the error is about a node.
    pub node: Option<String>,
    /// 1-based listing line of that node (0 = unknown).
    pub line: usize,
    /// Extra notes.
    pub notes: Vec<String>,
}

impl From<Error> for CompileError {
    fn from(error: Error) -> Self {
        CompileError {
            error,
            node: None,
            line: 0,
            notes: Vec::new(),
        }
    }
}

impl CompileError {
    /// An error of `kind` with a free-text message and no location.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let m = message.into();
        Error::from_kind(kind, m).into()
    }

    /// An internal invariant that did not hold.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into()).into()
    }

    /// An "unsupported" error at node `n`.
    pub fn node(graph: &Graph, n: NodeId, message: String) -> Self {
        let (name, op, line) = match graph.get_node(n) {
            Some(x) => (x.name.clone(), x.onnx_op.clone(), x.line),
            None => (format!("#{}", n.index()), "?".into(), 0),
        };
        CompileError {
            error: Error::Unsupported(format!("node `{name}` ({op}): {message}")),
            node: Some(name),
            line,
            notes: Vec::new(),
        }
    }

    /// Its kind (diagnostic code).
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Renders the error as a codespan diagnostic against `listing` (plain text).
    pub fn render(&self, file_name: &str, listing: &str) -> String {
        let message = self.error.to_string();
        let mut d = Diagnostic::error()
            .with_code(self.kind().code())
            .with_message(&message);
        if let Some(r) = line_range(listing, self.line) {
            d = d.with_labels(vec![Label::primary((), r).with_message("here")]);
        }
        d = d.with_notes(self.notes.clone());
        let file = SimpleFile::new(file_name, listing);
        // Rendering into a string fails only on a label outside the listing: plain text then.
        term::emit_into_string(&term::Config::default(), &file, &d)
            .unwrap_or_else(|_| format!("error[{}]: {message}\n", self.kind().code()))
    }
}

impl Error {
    fn from_kind(kind: ErrorKind, m: String) -> Self {
        match kind {
            ErrorKind::Unsupported => Error::Unsupported(m),
            ErrorKind::Parameters => Error::Parameters(m),
            ErrorKind::Options => Error::Options(m),
            ErrorKind::Io => Error::Io(m),
            ErrorKind::Plan => Error::Plan(m),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.kind().code(), self.error)?;
        for n in &self.notes {
            write!(f, "\n  = {n}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}
