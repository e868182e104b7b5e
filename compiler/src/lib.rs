//! `mp2ml-compiler`: ONNX import, passes, partition, parameters, circuits, plan writing, report.

pub mod circuits;
pub mod diagnostic;
pub mod onnx;
pub mod error;
pub mod params;
pub mod partition;
pub mod passes;
pub mod driver;
pub mod npy;
pub mod plan_writer;
pub mod simulate;
pub mod report;
