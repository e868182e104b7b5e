//! The textual listing of an ONNX model: one line per graph input, initializer, node and output.
//! Diagnostics point into it, and IR nodes record their line as a span.

use std::collections::HashMap;
use std::fmt::Write as _;

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{type_proto, AttributeProto, GraphProto, ModelProto, ValueInfoProto};

use super::tensor::dtype_name;

/// The listing text with line numbers of its entries (all 1-based).
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The text.
    pub text: String,
    /// Line of each node, by node index.
    pub node_lines: Vec<usize>,
    /// Line of each graph input, initializer and output, by name.
    pub value_lines: HashMap<String, usize>,
}

/// Formats a value-info type as `float32[N,1,28,28]`.
pub fn format_type(v: &ValueInfoProto) -> String {
    let Some(tp) = &v.r#type else {
        return "?".into();
    };
    let Some(type_proto::Value::TensorType(t)) = &tp.value else {
        return "non-tensor".into();
    };
    let dims: Vec<String> = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                        v.to_string()
                    }
                    Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                        p.clone()
                    }
                    None => "?".into(),
                })
                .collect()
        })
        .unwrap_or_default(); // listing text: no shape shows as `[]`
    format!("{}[{}]", dtype_name(t.elem_type), dims.join(","))
}

fn short_list<T: std::fmt::Display>(v: &[T]) -> String {
    let shown: Vec<String> = v.iter().take(8).map(|x| x.to_string()).collect();
    if v.len() > 8 {
        format!("[{},...({} total)]", shown.join(","), v.len())
    } else {
        format!("[{}]", shown.join(","))
    }
}

/// Formats an attribute value compactly.
pub fn format_attr(a: &AttributeProto) -> String {
    // Listing text only: an unknown type code shows as undefined.
    match AttributeType::try_from(a.r#type).unwrap_or(AttributeType::Undefined) {
        AttributeType::Float => a.f.to_string(),
        AttributeType::Int => a.i.to_string(),
        AttributeType::String => format!("{:?}", String::from_utf8_lossy(&a.s)),
        AttributeType::Floats => short_list(&a.floats),
        AttributeType::Ints => short_list(&a.ints),
        AttributeType::Tensor => match &a.t {
            Some(t) => format!("tensor<{}{:?}>", dtype_name(t.data_type), t.dims),
            None => "tensor<?>".into(),
        },
        AttributeType::Graph | AttributeType::Graphs => "<subgraph>".into(),
        other => format!("<{}>", other.as_str_name().to_lowercase()),
    }
}

/// Builds the listing of `model`.
pub fn build(model: &ModelProto, graph: &GraphProto) -> Listing {
    let mut l = Listing::default();
    let mut line = 0usize;
    let mut push = |text: &mut String, s: String| {
        line += 1;
        let _ = writeln!(text, "{s}");
        line
    };
    let opsets: Vec<String> = model
        .opset_import
        .iter()
        .map(|o| {
            format!(
                "{}={}",
                if o.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &o.domain
                },
                o.version
            )
        })
        .collect();
    push(
        &mut l.text,
        format!(
            "model {:?} producer={:?} ir_version={} opset {}",
            graph.name,
            format!("{} {}", model.producer_name, model.producer_version).trim(),
            model.ir_version,
            opsets.join(" ")
        ),
    );
    let inits: HashMap<&str, _> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for i in &graph.input {
        if inits.contains_key(i.name.as_str()) {
            continue;
        }
        let n = push(
            &mut l.text,
            format!("input  {}: {}", i.name, format_type(i)),
        );
        l.value_lines.insert(i.name.clone(), n);
    }
    for t in &graph.initializer {
        let n = push(
            &mut l.text,
            format!("init   {}: {}{:?}", t.name, dtype_name(t.data_type), t.dims),
        );
        l.value_lines.insert(t.name.clone(), n);
    }
    for (k, node) in graph.node.iter().enumerate() {
        let name = if node.name.is_empty() {
            format!("#{k}")
        } else {
            node.name.clone()
        };
        let op = if node.domain.is_empty() || node.domain == "ai.onnx" {
            node.op_type.clone()
        } else {
            format!("{}::{}", node.domain, node.op_type)
        };
        let attrs: Vec<String> = node
            .attribute
            .iter()
            .map(|a| format!("{}={}", a.name, format_attr(a)))
            .collect();
        let s = format!(
            "node   {name}: {op}({}) -> ({}){}{}",
            node.input.join(", "),
            node.output.join(", "),
            if attrs.is_empty() { "" } else { " " },
            attrs.join(" ")
        );
        let n = push(&mut l.text, s);
        l.node_lines.push(n);
    }
    for o in &graph.output {
        let n = push(
            &mut l.text,
            format!("output {}: {}", o.name, format_type(o)),
        );
        l.value_lines.entry(o.name.clone()).or_insert(n);
    }
    l
}
