"""Generates the small malformed ONNX models used by tests/bad_input.rs.

Run from the repository root: python3 tests/bad_inputs/make.py (needs the `onnx` package).
The outputs are committed; the test does not need Python.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.dirname(os.path.abspath(__file__))


def model(nodes, inputs, outputs, inits=(), name="bad", check=True):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="mp2ml-tests")
    m.ir_version = 8
    if check:
        onnx.checker.check_model(m)
    return m


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def save(m, name):
    onnx.save(m, os.path.join(OUT, name))


def gemm(w, b=None, name="fc"):
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(w.astype(np.float32), f"{name}.w")]
    ins = ["x", f"{name}.w"]
    if b is not None:
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"{name}.b"))
        ins.append(f"{name}.b")
    return helper.make_node("Gemm", ins, ["y"], transB=1), inits


rng = np.random.default_rng(0)

# A valid reference: y = relu(W x + b), x [1, 8].
node, inits = gemm(rng.standard_normal((4, 8)), rng.standard_normal(4))
relu = helper.make_node("Relu", ["y"], ["z"])
save(model([node, relu], [vi("x", [1, 8])], [vi("z", [1, 4])], inits), "ok_small.onnx")

# Dangling input: the Relu reads a tensor nobody defines.
save(model([helper.make_node("Relu", ["ghost"], ["z"])], [vi("x", [1, 8])], [vi("z", [1, 8])], check=False),
     "dangling_input.onnx")

# Cycle: a = relu(b), b = relu(a).
save(model([helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Add", ["a", "x"], ["b"])],
           [vi("x", [1, 8])], [vi("b", [1, 8])], check=False), "cycle.onnx")

# Unsupported op.
save(model([helper.make_node("Sin", ["x"], ["z"])], [vi("x", [1, 8])], [vi("z", [1, 8])]), "unsupported_op.onnx")

# Unsupported attribute: MaxPool with dilations.
save(model([helper.make_node("MaxPool", ["x"], ["z"], kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 2])],
           [vi("x", [1, 1, 6, 6])], [vi("z", [1, 1, 4, 4])]), "maxpool_dilations.onnx")

# Zero-sized tensor: a Gemm weight with no rows.
node, inits = gemm(np.zeros((0, 8)))
save(model([node], [vi("x", [1, 8])], [vi("y", [1, 0])], inits, check=False), "zero_sized.onnx")

# NaN and Inf weights.
w = rng.standard_normal((4, 8)); w[1, 2] = np.nan
node, inits = gemm(w, np.zeros(4))
save(model([node], [vi("x", [1, 8])], [vi("y", [1, 4])], inits), "nan_weights.onnx")
w = rng.standard_normal((4, 8)); w[3, 0] = np.inf
node, inits = gemm(w, np.zeros(4))
save(model([node], [vi("x", [1, 8])], [vi("y", [1, 4])], inits), "inf_weights.onnx")

# Huge declared shapes: 2^40 input elements.
save(model([helper.make_node("Relu", ["x"], ["z"])], [vi("x", [1, 1, 1 << 20, 1 << 20])],
           [vi("z", [1, 1, 1 << 20, 1 << 20])]), "huge_shape.onnx")

# A dynamic non-batch axis.
save(model([helper.make_node("Relu", ["x"], ["z"])], [vi("x", [1, "width"])], [vi("z", [1, "width"])]),
     "dynamic_shape.onnx")
