//! `mp2ml-compiler`: ONNX import, passes, partition, parameters, circuits, plan writing, report.

pub mod circuits;
pub mod diagnostic;
pub mod driver;
pub mod error;
pub mod npy;
pub mod onnx;
pub mod packing;
pub mod params;
pub mod partition;
pub mod passes;
pub mod plan_writer;
pub mod report;
pub mod simulate;
