//! ONNX import of arbitrary bytes: must return a diagnostic or a graph, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mp2ml_compiler::onnx::{import_bytes, ImportOptions};

fuzz_target!(|data: &[u8]| {
    let _ = import_bytes(data, &ImportOptions::default());
});
