//! `mp2ml-compiler`: ONNX import, passes, partition, parameters, circuits, plan writing, report.
