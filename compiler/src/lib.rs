//! `mp2ml-compiler`: ONNX import, passes, partition, parameters, plan writing, report.

pub mod activations;
pub mod budget;
pub mod cost;
pub mod driver;
pub mod error;
pub mod npy;
pub mod onnx;
pub mod packing;
pub mod params;
pub mod partition;
pub mod passes;
pub mod phases;
pub mod plan_writer;
pub mod report;
pub mod simulate;
#[cfg(test)]
mod test_conv;
