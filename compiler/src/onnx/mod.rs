//! ONNX import: protobuf → validated [`mp2ml_ir::graph::Graph`].
//!
//! The model is decoded with tract-onnx's prost types, listed one line per node (the listing is
//! what diagnostics point at), and translated node by node through the op [`registry`]: each
//! ONNX operator has a builder in [`ops`] that normalizes attributes and either emits IR nodes or
//! folds constants (the Shape→Gather→Unsqueeze→Concat→Reshape chains exporters emit disappear
//! this way). Unsupported input never panics; it yields [`Diagnostics`].

pub mod context;
pub mod diagnostic;
pub mod error;
pub mod listing;
pub mod ops;
pub mod registry;
pub mod tensor;

use std::collections::HashMap;
use std::path::Path;

use mp2ml_ir::graph::Graph;
use mp2ml_ir::validate::{validate, GraphInfo};
use prost::Message;
use tract_onnx::pb::{type_proto, ModelProto, ValueInfoProto};

pub use diagnostic::Diagnostics;
pub use error::{ImportError, NodeLoc};

use context::{Ctx, NodeRef};
use tensor::{decode, dtype_name, is_float};

/// Oldest ai.onnx opset accepted.
pub const MIN_OPSET: i64 = 7;
/// Newest ai.onnx opset accepted.
pub const MAX_OPSET: i64 = 25;

/// Import settings.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Batch size written into axis 0 of every graph input. `None`: keep a fixed axis 0 and
    /// resolve a symbolic one to 1 (the crypto layer packs the batch, so the IR uses batch 1).
    pub batch: Option<usize>,
}

/// A successfully imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The validated graph.
    pub graph: Graph,
    /// What validation established (the topological order), for the later stages.
    pub info: GraphInfo,
    /// The textual listing whose line numbers the nodes' `line` fields refer to.
    pub listing: String,
    /// The ai.onnx opset of the model.
    pub opset: i64,
}

/// Imports the ONNX model at `path`.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Imported, Diagnostics> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostics::single(
            name.clone(),
            "",
            ImportError::Io {
                path: name.clone(),
                message: e.to_string(),
            },
        )
    })?;
    import_bytes_named(&bytes, &name, opts)
}

/// Imports an ONNX model from memory.
pub fn import_bytes(bytes: &[u8], opts: &ImportOptions) -> Result<Imported, Diagnostics> {
    import_bytes_named(bytes, "<model>", opts)
}

/// Imports an ONNX model from memory, naming it `file_name` in diagnostics.
pub fn import_bytes_named(
    bytes: &[u8],
    file_name: &str,
    opts: &ImportOptions,
) -> Result<Imported, Diagnostics> {
    let model = ModelProto::decode(bytes).map_err(|e| {
        Diagnostics::single(
            file_name,
            "",
            ImportError::Malformed {
                message: e.to_string(),
            },
        )
    })?;
    import_proto(&model, file_name, opts)
}

/// Imports an already decoded model.
pub fn import_proto(
    model: &ModelProto,
    file_name: &str,
    opts: &ImportOptions,
) -> Result<Imported, Diagnostics> {
    let Some(g) = &model.graph else {
        return Err(Diagnostics::single(file_name, "", ImportError::EmptyGraph));
    };
    let listing = listing::build(model, g);
    let fail = |errors: Vec<ImportError>| Diagnostics {
        file_name: file_name.to_string(),
        listing: listing.text.clone(),
        errors,
    };
    translate(model, g, &listing, opts)
        .map_err(fail)
        .map(|(graph, info, opset)| Imported {
            graph,
            info,
            listing: listing.text.clone(),
            opset,
        })
}

fn onnx_opset(model: &ModelProto) -> Result<i64, ImportError> {
    let v = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        // ir_version 3 models without opset_import predate opset 7.
        .ok_or(ImportError::UnsupportedOpset {
            domain: "ai.onnx".into(),
            version: 0,
        })?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&v) {
        return Err(ImportError::UnsupportedOpset {
            domain: "ai.onnx".into(),
            version: v,
        });
    }
    Ok(v)
}

fn input_shape(
    v: &ValueInfoProto,
    line: Option<usize>,
    opts: &ImportOptions,
) -> Result<Vec<usize>, ImportError> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    let dynamic = |message: String| ImportError::DynamicShape {
        tensor: v.name.clone(),
        line,
        message,
    };
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(ImportError::UnsupportedType {
            tensor: v.name.clone(),
            line,
            dtype: "non-tensor".into(),
        });
    };
    if !is_float(t.elem_type) {
        return Err(ImportError::UnsupportedType {
            tensor: v.name.clone(),
            line,
            dtype: dtype_name(t.elem_type),
        });
    }
    let Some(shape) = &t.shape else {
        return Err(dynamic("the input has no declared shape".into()));
    };
    let mut out = Vec::with_capacity(shape.dim.len());
    for (axis, d) in shape.dim.iter().enumerate() {
        let fixed = match &d.value {
            Some(Value::DimValue(x)) if *x > 0 => Some(*x as usize),
            Some(Value::DimValue(x)) if *x == 0 => {
                return Err(ImportError::ZeroSized {
                    tensor: v.name.clone(),
                    line,
                    shape: vec![0],
                })
            }
            _ => None,
        };
        let dim = match (axis, fixed, opts.batch) {
            (0, _, Some(b)) => b,
            (0, Some(x), None) => x,
            (0, None, None) => 1,
            (_, Some(x), _) => x,
            (_, None, _) => {
                let what = match &d.value {
                    Some(Value::DimParam(p)) => format!("symbolic `{p}`"),
                    _ => "unknown".into(),
                };
                return Err(dynamic(format!(
                    "axis {axis} is {what}; only axis 0 (batch) may be symbolic"
                )));
            }
        };
        out.push(dim);
    }
    Ok(out)
}

fn translate(
    model: &ModelProto,
    g: &tract_onnx::pb::GraphProto,
    listing: &listing::Listing,
    opts: &ImportOptions,
) -> Result<(Graph, GraphInfo, i64), Vec<ImportError>> {
    let opset = onnx_opset(model).map_err(|e| vec![e])?;
    let reg = registry::registry();
    let locs: Vec<NodeLoc> = g
        .node
        .iter()
        .enumerate()
        .map(|(k, n)| NodeLoc {
            name: if n.name.is_empty() {
                format!("#{k}")
            } else {
                n.name.clone()
            },
            op_type: n.op_type.clone(),
            domain: n.domain.clone(),
            opset,
            line: listing.node_lines.get(k).copied().unwrap_or(0), // 0: no listing line
        })
        .collect();
    // Report every unsupported operator at once.
    let unsupported: Vec<ImportError> = g
        .node
        .iter()
        .zip(&locs)
        .filter(|(n, _)| {
            !(n.domain.is_empty() || n.domain == "ai.onnx") || reg.get(&n.op_type).is_none()
        })
        .map(|(_, at)| ImportError::UnsupportedOp {
            at: Box::new(at.clone()),
        })
        .collect();
    if !unsupported.is_empty() {
        return Err(unsupported);
    }
    if g.output.is_empty() {
        return Err(vec![ImportError::EmptyGraph]);
    }
    let one = |e| vec![e];
    let line_of = |n: &str| listing.value_lines.get(n).copied();
    let read = g
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(g.output.iter().map(|o| &o.name))
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
    let mut ctx = Ctx {
        graph: Graph::new(g.name.clone()),
        names: HashMap::new(),
        read,
    };
    for t in &g.initializer {
        let line = line_of(&t.name);
        let v = decode(t)
            .map_err(|message| ImportError::BadTensor {
                tensor: t.name.clone(),
                line,
                message,
            })
            .map_err(one)?;
        if let Some(index) = v.first_non_finite() {
            return Err(one(ImportError::NonFinite {
                tensor: t.name.clone(),
                line,
                index,
                value: v.data[index],
            }));
        }
        if v.is_empty() && is_float(t.data_type) {
            return Err(one(ImportError::ZeroSized {
                tensor: t.name.clone(),
                line,
                shape: v.shape,
            }));
        }
        let id = ctx.graph.add_const(t.name.clone(), v);
        ctx.names.insert(t.name.clone(), id);
    }
    for i in &g.input {
        if ctx.names.contains_key(&i.name) {
            continue; // old exporters list initializers as inputs: they are constants
        }
        let shape = input_shape(i, line_of(&i.name), opts).map_err(one)?;
        let id = ctx.graph.add_input(i.name.clone(), shape);
        ctx.names.insert(i.name.clone(), id);
    }
    for (n, loc) in g.node.iter().zip(locs) {
        let node = NodeRef {
            pb: n,
            loc: Box::new(loc),
        };
        let Some(build) = reg.get(&n.op_type) else {
            return Err(one(ImportError::UnsupportedOp { at: node.loc }));
        };
        build(&mut ctx, &node).map_err(one)?;
    }
    let mut outs = Vec::with_capacity(g.output.len());
    for o in &g.output {
        match ctx.names.get(&o.name) {
            Some(&t) => outs.push(t),
            None => {
                return Err(one(ImportError::UnknownOutput {
                    name: o.name.clone(),
                    line: line_of(&o.name),
                }))
            }
        }
    }
    ctx.graph.set_outputs(outs);
    let graph = ctx.graph;
    match validate(&graph) {
        Ok(info) => Ok((graph, info, opset)),
        Err(source) => {
            let line = source
                .node()
                .and_then(|n| graph.get_node(n))
                .map(|n| n.line);
            Err(one(ImportError::Validation {
                source: Box::new(source),
                line,
            }))
        }
    }
}

#[cfg(test)]
mod tests;
