//! The graph: a tensor arena plus a petgraph of op nodes.
//!
//! Tensors live in an arena indexed by [`TensorId`]; nodes live in a [`StableDiGraph`] whose
//! edges run producer → consumer and carry the [`TensorId`] that flows along them. Each node keeps
//! its ONNX name, ONNX op type and the line of the textual listing it came from (its "span").
//! Building a graph never panics on bad handles; [`crate::validate::validate`] reports them.

use std::fmt::Write as _;

use petgraph::algo::toposort;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;

use crate::op::Op;
use crate::shape::Shape;
use crate::tensor::{Tensor, TensorId, TensorInfo};

/// Handle of a node (a petgraph node index).
pub type NodeId = NodeIndex<u32>;

/// One operation with its operands.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// ONNX node name (synthesized when the model has none).
    pub name: String,
    /// ONNX `op_type` it was imported from.
    pub onnx_op: String,
    /// Normalized operation.
    pub op: Op,
    /// Operand tensors, in the op's order.
    pub inputs: Vec<TensorId>,
    /// Result tensors.
    pub outputs: Vec<TensorId>,
    /// 1-based line of the node in the import listing (0 when synthesized).
    pub line: usize,
}

/// A typed dataflow graph. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Model/graph name.
    pub name: String,
    tensors: Vec<TensorInfo>,
    producer: Vec<Option<NodeId>>,
    consumers: Vec<Vec<NodeId>>,
    graph: StableDiGraph<Node, TensorId>,
    inputs: Vec<TensorId>,
    outputs: Vec<TensorId>,
    /// Tensors that some node claimed as output while another already produced them.
    duplicate_producers: Vec<(TensorId, NodeId)>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// Adds a tensor to the arena.
    pub fn add_tensor(&mut self, info: TensorInfo) -> TensorId {
        let id = TensorId(self.tensors.len() as u32);
        self.tensors.push(info);
        self.producer.push(None);
        self.consumers.push(Vec::new());
        id
    }

    /// Adds a constant tensor.
    pub fn add_const(&mut self, name: impl Into<String>, value: Tensor) -> TensorId {
        self.add_tensor(TensorInfo {
            name: name.into(),
            shape: value.shape.clone(),
            value: Some(value),
        })
    }

    /// Adds an activation tensor with no value.
    pub fn add_value(&mut self, name: impl Into<String>, shape: Shape) -> TensorId {
        self.add_tensor(TensorInfo {
            name: name.into(),
            shape,
            value: None,
        })
    }

    /// Adds a graph input (a data tensor fed at run time).
    pub fn add_input(&mut self, name: impl Into<String>, shape: Shape) -> TensorId {
        let id = self.add_value(name, shape);
        self.inputs.push(id);
        id
    }

    /// Declares the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<TensorId>) {
        self.outputs = outputs;
    }

    /// Adds a node, wiring edges from the producers of its inputs and to existing consumers of
    /// its outputs. Out-of-range handles are kept (validation reports them) but get no edges.
    pub fn add_node(&mut self, node: Node) -> NodeId {
        let inputs = node.inputs.clone();
        let outputs = node.outputs.clone();
        let id = self.graph.add_node(node);
        for t in inputs {
            let Some(slot) = self.consumers.get_mut(t.index()) else {
                continue;
            };
            slot.push(id);
            if let Some(p) = self.producer[t.index()] {
                self.graph.add_edge(p, id, t);
            }
        }
        for t in outputs {
            let Some(slot) = self.producer.get_mut(t.index()) else {
                continue;
            };
            if slot.is_some() {
                self.duplicate_producers.push((t, id));
                continue;
            }
            *slot = Some(id);
            for &c in &self.consumers[t.index()] {
                self.graph.add_edge(id, c, t);
            }
        }
        id
    }

    /// The tensor arena.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// One tensor. Panics on a handle not from this graph; use [`Graph::get_tensor`] otherwise.
    pub fn tensor(&self, id: TensorId) -> &TensorInfo {
        &self.tensors[id.index()]
    }

    /// One tensor, if the handle is in range.
    pub fn get_tensor(&self, id: TensorId) -> Option<&TensorInfo> {
        self.tensors.get(id.index())
    }

    /// Mutable access to a tensor (e.g. to fold a constant).
    pub fn tensor_mut(&mut self, id: TensorId) -> &mut TensorInfo {
        &mut self.tensors[id.index()]
    }

    /// One node. Panics on a handle not from this graph.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    /// One node, if present.
    pub fn get_node(&self, id: NodeId) -> Option<&Node> {
        self.graph.node_weight(id)
    }

    /// Mutable access to a node's attributes. Changing its inputs/outputs here does not rewire
    /// edges; build a new graph for structural rewrites.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.graph[id]
    }

    /// All nodes in insertion order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> + '_ {
        self.graph.node_indices().map(move |i| (i, &self.graph[i]))
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Graph inputs (data fed at run time), in order.
    pub fn inputs(&self) -> &[TensorId] {
        &self.inputs
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> &[TensorId] {
        &self.outputs
    }

    /// The node producing `t`, if any (inputs and constants have none).
    pub fn producer(&self, t: TensorId) -> Option<NodeId> {
        self.producer.get(t.index()).copied().flatten()
    }

    /// The nodes reading `t`.
    pub fn consumers(&self, t: TensorId) -> &[NodeId] {
        self.consumers.get(t.index()).map_or(&[], Vec::as_slice)
    }

    /// Nodes feeding `n` (with the tensor), via graph edges.
    pub fn predecessors(&self, n: NodeId) -> impl Iterator<Item = (NodeId, TensorId)> + '_ {
        self.graph
            .edges_directed(n, petgraph::Direction::Incoming)
            .map(|e| (e.source(), *e.weight()))
    }

    /// Nodes fed by `n` (with the tensor).
    pub fn successors(&self, n: NodeId) -> impl Iterator<Item = (NodeId, TensorId)> + '_ {
        self.graph
            .edges_directed(n, petgraph::Direction::Outgoing)
            .map(|e| (e.target(), *e.weight()))
    }

    /// Tensors claimed by more than one producer (reported by validation).
    pub fn duplicate_producers(&self) -> &[(TensorId, NodeId)] {
        &self.duplicate_producers
    }

    /// The underlying petgraph (edges: producer → consumer, weight = tensor).
    pub fn petgraph(&self) -> &StableDiGraph<Node, TensorId> {
        &self.graph
    }

    /// Nodes in a topological order, or the node found on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        toposort(&self.graph, None).map_err(|c| c.node_id())
    }

    /// Whether `t` is a compile-time constant.
    pub fn is_const(&self, t: TensorId) -> bool {
        self.get_tensor(t).is_some_and(TensorInfo::is_const)
    }

    /// A human-readable listing: inputs, one line per node (topological order when acyclic),
    /// outputs.
    pub fn listing(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "graph {:?}", self.name);
        for &i in &self.inputs {
            let _ = writeln!(s, "  input  {}", self.describe(i));
        }
        let order = self
            .topo_order()
            .unwrap_or_else(|_| self.graph.node_indices().collect());
        for n in order {
            let node = &self.graph[n];
            let ins: Vec<String> = node.inputs.iter().map(|&t| self.short(t)).collect();
            let outs: Vec<String> = node.outputs.iter().map(|&t| self.describe(t)).collect();
            let _ = writeln!(
                s,
                "  n{:<4} {} = {}({})  # {} [{}]",
                n.index(),
                outs.join(", "),
                node.op,
                ins.join(", "),
                node.name,
                node.onnx_op
            );
        }
        for &o in &self.outputs {
            let _ = writeln!(s, "  output {}", self.describe(o));
        }
        s
    }

    fn short(&self, t: TensorId) -> String {
        match self.get_tensor(t) {
            Some(i) if i.is_const() => format!("{}:const{:?}", i.name, i.shape),
            Some(i) => i.name.clone(),
            None => format!("<bad {t}>"),
        }
    }

    fn describe(&self, t: TensorId) -> String {
        match self.get_tensor(t) {
            Some(i) => format!("{}: f32{:?}", i.name, i.shape),
            None => format!("<bad {t}>"),
        }
    }
}
