//! Diagnostics for malformed and unsupported models.

use prost::Message;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::{
    type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

use super::{import_bytes, ImportError, ImportOptions};

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            denotation: String::new(),
            value: Some(dimension::Value::DimValue(d)),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: 1,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, input: &str, output: &str) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: vec![input.into()],
        output: vec![output.into()],
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            name: "t".into(),
            node: nodes,
            input: vec![value("x", &[1, 4])],
            output: vec![value("z", &[1, 4])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn imports_a_tiny_model() {
    let m = model(vec![
        node("r", "Relu", "x", "y"),
        node("s", "Sigmoid", "y", "z"),
    ]);
    let imported = import_bytes(&m, &ImportOptions::default()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(imported.graph.node_count(), 2);
}

#[test]
fn unsupported_op_names_the_node() {
    let m = model(vec![
        node("relu_1", "Relu", "x", "y"),
        node("my_erf", "Erf", "y", "z"),
    ]);
    let Err(d) = import_bytes(&m, &ImportOptions::default()) else {
        panic!("Erf accepted")
    };
    assert!(
        matches!(&d.errors[0], ImportError::UnsupportedOp { at } if at.name == "my_erf" && at.line == 4)
    );
    let text = d.render();
    let expected = format!(
        "error[E0100]: unsupported operator `Erf` in node `my_erf` (Erf, opset 13)
  ┌─ <model>:4:1
  │
4 │ node   my_erf: Erf(y) -> (z)
  │ ^^^^^^^^^^^^^^^^^^^^^^^^^^^^ `Erf` is not supported
  │
  = node `my_erf` uses `Erf` from domain `ai.onnx` at opset 13
  = supported ops (ai.onnx, opsets 7..=25): {}

",
        super::registry::supported_ops().join(", ")
    );
    assert_eq!(text, expected);
}

#[test]
fn truncated_file_is_a_diagnostic() {
    let m = model(vec![node("r", "Relu", "x", "z")]);
    let Err(d) = import_bytes(&m[..m.len() / 2], &ImportOptions::default()) else {
        panic!("accepted")
    };
    assert!(matches!(d.errors[0], ImportError::Malformed { .. }));
    assert!(d.render().contains("malformed ONNX file"));
}

#[test]
fn non_protobuf_file_is_a_diagnostic() {
    let Err(d) = import_bytes(b"\xff\xff\xff this is not onnx", &ImportOptions::default()) else {
        panic!("accepted")
    };
    assert!(d.render().contains("error[E0002]"));
}

#[test]
fn dangling_input_names_the_node() {
    let m = model(vec![node("reader", "Relu", "nowhere", "z")]);
    let Err(d) = import_bytes(&m, &ImportOptions::default()) else {
        panic!("accepted")
    };
    assert!(matches!(&d.errors[0], ImportError::Dangling { at, .. } if at.name == "reader"));
    assert!(d.render().contains("node `reader`"));
}

fn dropout_with_mask() -> NodeProto {
    NodeProto {
        name: "drop".into(),
        op_type: "Dropout".into(),
        input: vec!["x".into()],
        output: vec!["y".into(), "mask".into()],
        ..Default::default()
    }
}

#[test]
fn dropout_with_an_unused_mask_is_an_identity() {
    let m = model(vec![dropout_with_mask(), node("r", "Relu", "y", "z")]);
    let imported = import_bytes(&m, &ImportOptions::default()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(imported.graph.node_count(), 2);
}

#[test]
fn dropout_whose_mask_is_read_is_refused() {
    let m = model(vec![dropout_with_mask(), node("r", "Relu", "mask", "z")]);
    let Err(d) = import_bytes(&m, &ImportOptions::default()) else {
        panic!("a Dropout mask that a node reads was accepted")
    };
    assert!(
        matches!(&d.errors[0], ImportError::UnsupportedAttribute { at, .. } if at.name == "drop")
    );
    assert!(d.render().contains("mask `mask`"), "{}", d.render());
}
