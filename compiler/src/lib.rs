//! `mp2ml-compiler`: ONNX import, passes, partition, parameters, circuits, plan writing, report.

pub mod circuits;
pub mod diagnostic;
pub mod onnx;
