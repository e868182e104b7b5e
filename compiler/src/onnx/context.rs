//! The import context handed to op builders: value table, attribute helpers, and `emit`, which
//! infers shapes and either adds an IR node or constant-folds it.

use std::collections::{HashMap, HashSet};

use mp2ml_ir::graph::{Graph, Node};
use mp2ml_ir::op::Op;
use mp2ml_ir::reference;
use mp2ml_ir::shape::infer;
use mp2ml_ir::tensor::{Tensor, TensorId};
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, NodeProto};

use super::error::{ImportError, NodeLoc};
use super::listing::format_attr;
use super::tensor::decode;

/// One ONNX node being imported, with its location and attribute accessors.
pub struct NodeRef<'a> {
    /// The protobuf node.
    pub pb: &'a NodeProto,
    /// Location for diagnostics.
    pub loc: Box<NodeLoc>,
}

impl NodeRef<'_> {
    /// Opset version in force.
    pub fn opset(&self) -> i64 {
        self.loc.opset
    }

    /// An attribute by name.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.pb.attribute.iter().find(|a| a.name == name)
    }

    fn typed(&self, name: &str, ty: AttributeType) -> Result<Option<&AttributeProto>, ImportError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if a.r#type == ty as i32 || a.r#type == 0 => Ok(Some(a)),
            Some(a) => Err(self.invalid(format!(
                "attribute `{name}` has type {}, expected {}",
                AttributeType::try_from(a.r#type).map_or("?", |t| t.as_str_name()),
                ty.as_str_name()
            ))),
        }
    }

    /// An integer attribute.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.typed(name, AttributeType::Int)?.map(|a| a.i))
    }

    /// An integer attribute with a default (the op's ONNX default, which the caller names).
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// A float attribute.
    pub fn float(&self, name: &str) -> Result<Option<f32>, ImportError> {
        Ok(self.typed(name, AttributeType::Float)?.map(|a| a.f))
    }

    /// A list-of-ints attribute.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    /// A string attribute.
    pub fn string(&self, name: &str) -> Result<Option<String>, ImportError> {
        Ok(self
            .typed(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    /// A tensor attribute, decoded.
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>, ImportError> {
        match self.typed(name, AttributeType::Tensor)? {
            Some(a) => match &a.t {
                Some(t) => decode(t)
                    .map(Some)
                    .map_err(|m| self.invalid(format!("attribute `{name}`: {m}"))),
                None => Err(self.invalid(format!("attribute `{name}` has no tensor"))),
            },
            None => Ok(None),
        }
    }

    /// Number of ONNX inputs (including empty optional slots).
    pub fn n_inputs(&self) -> usize {
        self.pb.input.len()
    }

    /// An [`ImportError::InvalidNode`] at this node.
    pub fn invalid(&self, message: impl Into<String>) -> ImportError {
        ImportError::InvalidNode {
            at: self.loc.clone(),
            message: message.into(),
        }
    }

    /// An [`ImportError::UnsupportedAttribute`] at this node, showing the attribute's value.
    pub fn unsupported(
        &self,
        attribute: &str,
        value: impl Into<String>,
        supported: &str,
    ) -> ImportError {
        ImportError::UnsupportedAttribute {
            at: self.loc.clone(),
            attribute: attribute.to_string(),
            value: value.into(),
            supported: supported.to_string(),
        }
    }

    /// Refuses an attribute whose value differs from the one supported value.
    pub fn require_int(&self, name: &str, ok: &[i64], supported: &str) -> Result<(), ImportError> {
        if let Some(a) = self.attr(name) {
            if !ok.contains(&a.i) {
                return Err(self.unsupported(name, format_attr(a), supported));
            }
        }
        Ok(())
    }
}

/// The state of one import.
pub struct Ctx {
    /// The graph under construction.
    pub graph: Graph,
    /// ONNX value name → tensor.
    pub names: HashMap<String, TensorId>,
    /// Every value name that something reads: a node input or a graph output. Lets builders
    /// accept optional outputs nobody uses (e.g. Dropout's `mask`).
    pub read: HashSet<String>,
}

impl Ctx {
    /// Whether output `k` of `node` is named and read by a node or listed as a graph output.
    pub fn output_is_read(&self, node: &NodeRef, k: usize) -> bool {
        node.pb
            .output
            .get(k)
            .is_some_and(|o| !o.is_empty() && self.read.contains(o))
    }

    /// The tensor bound to input slot `i`, `None` when absent or empty (optional input).
    pub fn input(&self, node: &NodeRef, i: usize) -> Result<Option<TensorId>, ImportError> {
        match node.pb.input.get(i) {
            None => Ok(None),
            Some(n) if n.is_empty() => Ok(None),
            Some(n) => self
                .names
                .get(n)
                .copied()
                .map(Some)
                .ok_or_else(|| ImportError::Dangling {
                    at: node.loc.clone(),
                    input: n.clone(),
                }),
        }
    }

    /// A required input.
    pub fn req_input(&self, node: &NodeRef, i: usize) -> Result<TensorId, ImportError> {
        self.input(node, i)?
            .ok_or_else(|| node.invalid(format!("missing required input #{i}")))
    }

    /// The value of input `i` if present; an error if present but not constant.
    pub fn const_input(
        &self,
        node: &NodeRef,
        i: usize,
        what: &'static str,
    ) -> Result<Option<Tensor>, ImportError> {
        let Some(t) = self.input(node, i)? else {
            return Ok(None);
        };
        match &self.graph.tensor(t).value {
            Some(v) => Ok(Some(v.clone())),
            None => Err(ImportError::NonConstant {
                at: node.loc.clone(),
                input: node.pb.input[i].clone(),
                what,
            }),
        }
    }

    /// Input `i` as integers (for shapes, axes, pads).
    pub fn const_ints(
        &self,
        node: &NodeRef,
        i: usize,
        what: &'static str,
    ) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .const_input(node, i, what)?
            .map(|t| t.data.iter().map(|&v| v as i64).collect()))
    }

    /// Shape of a tensor.
    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.graph.tensor(t).shape
    }

    /// Binds the node's output `k` to a constant.
    pub fn bind_const(
        &mut self,
        node: &NodeRef,
        k: usize,
        value: Tensor,
    ) -> Result<(), ImportError> {
        let name = node
            .pb
            .output
            .get(k)
            .ok_or_else(|| node.invalid(format!("missing output #{k}")))?
            .clone();
        let id = self.graph.add_const(name.clone(), value);
        self.names.insert(name, id);
        Ok(())
    }

    /// Adds `op` applied to `inputs`, binding its outputs to the node's first outputs. If every
    /// input is constant the op is evaluated now and its results become constants. Any further
    /// ONNX outputs (e.g. Dropout's mask) are left unbound, so a reader of them gets a diagnostic.
    pub fn emit(
        &mut self,
        node: &NodeRef,
        op: Op,
        inputs: Vec<TensorId>,
    ) -> Result<Vec<TensorId>, ImportError> {
        let out_names: Vec<String> = node.pb.output.clone();
        self.emit_named(node, op, inputs, &out_names)
    }

    /// Like [`Ctx::emit`] with explicit output names (for expansions into several IR ops).
    pub fn emit_named(
        &mut self,
        node: &NodeRef,
        op: Op,
        inputs: Vec<TensorId>,
        out_names: &[String],
    ) -> Result<Vec<TensorId>, ImportError> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&t| self.shape(t)).collect();
        let out_shapes = infer(&op, &shapes).map_err(|source| ImportError::Shape {
            at: node.loc.clone(),
            source,
        })?;
        if out_names.len() < out_shapes.len()
            || out_names
                .iter()
                .take(out_shapes.len())
                .any(String::is_empty)
        {
            return Err(node.invalid("missing output name"));
        }
        let mut outs = Vec::with_capacity(out_shapes.len());
        if inputs.iter().all(|&t| self.graph.is_const(t)) {
            let args: Vec<&Tensor> = inputs
                .iter()
                .filter_map(|&t| self.graph.tensor(t).value.as_ref())
                .collect();
            let values = reference::eval(&op, &args, 1).map_err(|source| ImportError::Shape {
                at: node.loc.clone(),
                source,
            })?;
            for (v, name) in values.into_iter().zip(out_names) {
                let id = self.graph.add_const(name.clone(), v);
                self.names.insert(name.clone(), id);
                outs.push(id);
            }
            return Ok(outs);
        }
        for (s, name) in out_shapes.into_iter().zip(out_names) {
            let id = self.graph.add_value(name.clone(), s);
            self.names.insert(name.clone(), id);
            outs.push(id);
        }
        self.graph.add_node(Node {
            name: node.loc.name.clone(),
            onnx_op: node.loc.op_type.clone(),
            op,
            inputs,
            outputs: outs.clone(),
            line: node.loc.line,
        });
        Ok(outs)
    }
}
