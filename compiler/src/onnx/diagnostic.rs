//! Rendering of compiler errors as codespan-reporting diagnostics against the model listing.
//!
//! The "source file" of a diagnostic is the textual listing produced at import (one line per
//! node), so a label points at the offending node's line.

use std::fmt;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;

use crate::onnx::ImportError;

/// A set of import errors together with the listing they refer to.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    /// Name shown as the diagnostic's file (the model path).
    pub file_name: String,
    /// The textual listing of the model (may be empty when the file could not be decoded).
    pub listing: String,
    /// The errors, in discovery order (never empty).
    pub errors: Vec<ImportError>,
}

impl Diagnostics {
    /// Wraps one error.
    pub fn single(
        file_name: impl Into<String>,
        listing: impl Into<String>,
        error: ImportError,
    ) -> Self {
        Diagnostics {
            file_name: file_name.into(),
            listing: listing.into(),
            errors: vec![error],
        }
    }

    /// The codespan diagnostics, one per error.
    pub fn to_codespan(&self) -> Vec<Diagnostic<()>> {
        self.errors
            .iter()
            .map(|e| {
                let mut d = Diagnostic::error()
                    .with_code(e.code())
                    .with_message(e.to_string());
                if let Some(r) = e.line().and_then(|l| line_range(&self.listing, l)) {
                    d = d.with_labels(vec![Label::primary((), r).with_message(e.label())]);
                }
                d.with_notes(e.notes())
            })
            .collect()
    }

    /// Renders all diagnostics as plain text (no colors).
    pub fn render(&self) -> String {
        let file = SimpleFile::new(self.file_name.as_str(), self.listing.as_str());
        let config = term::Config::default();
        let mut out = String::new();
        for d in self.to_codespan() {
            match term::emit_into_string(&config, &file, &d) {
                Ok(s) => out.push_str(&s),
                Err(_) => {
                    out.push_str(&format!(
                        "error[{}]: {}\n",
                        d.code.unwrap_or_default(), // plain-text fallback
                        d.message
                    ));
                }
            }
        }
        out
    }
}

/// Byte range of 1-based `line` in `listing` (without its newline); `None` for line 0 or past
/// the end.
pub fn line_range(listing: &str, line: usize) -> Option<Range<usize>> {
    let mut start = 0;
    for (i, l) in listing.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let body = l.trim_end_matches('\n');
            return Some(start..start + body.len());
        }
        start += l.len();
    }
    None
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}
