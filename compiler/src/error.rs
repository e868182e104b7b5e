//! Errors of the compiler after import (partition, parameters, plan writing), rendered as
//! codespan-reporting diagnostics against the import listing.

use std::fmt;

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use mp2ml_ir::graph::{Graph, NodeId};

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

/// A compile error, optionally located at a node of the listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    /// What kind.
    pub kind: ErrorKind,
    /// Message.
    pub message: String,
    /// Node name, when the error is about a node.
    pub node: Option<String>,
    /// 1-based listing line of that node (0 = unknown).
    pub line: usize,
    /// Extra notes.
    pub notes: Vec<String>,
}

impl CompileError {
    /// An error without location.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CompileError {
            kind,
            message: message.into(),
            node: None,
            line: 0,
            notes: Vec::new(),
        }
    }

    /// An "unsupported" error at node `n`.
    pub fn node(graph: &Graph, n: NodeId, message: String) -> Self {
        let (name, op, line) = graph
            .get_node(n)
            .map(|x| (x.name.clone(), x.onnx_op.clone(), x.line))
            .unwrap_or_default();
        CompileError {
            kind: ErrorKind::Unsupported,
            message: format!("node `{name}` ({op}): {message}"),
            node: Some(name),
            line,
            notes: Vec::new(),
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Renders the error as a codespan diagnostic against `listing` (plain text).
    pub fn render(&self, file_name: &str, listing: &str) -> String {
        let mut d = Diagnostic::error()
            .with_code(self.kind.code())
            .with_message(&self.message);
        if self.line > 0 {
            let mut start = 0;
            for (i, l) in listing.split_inclusive('\n').enumerate() {
                if i + 1 == self.line {
                    let r = start..start + l.trim_end_matches('\n').len();
                    d = d.with_labels(vec![Label::primary((), r).with_message("here")]);
                    break;
                }
                start += l.len();
            }
        }
        d = d.with_notes(self.notes.clone());
        let file = SimpleFile::new(file_name, listing);
        term::emit_into_string(&term::Config::default(), &file, &d)
            .unwrap_or_else(|_| format!("error[{}]: {}\n", self.kind.code(), self.message))
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.kind.code(), self.message)?;
        for n in &self.notes {
            write!(f, "\n  = {n}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}
