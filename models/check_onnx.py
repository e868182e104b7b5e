#!/usr/bin/env python3
"""Independent check of the bundled models with onnxruntime (no torch needed).

    python3 -m pip install onnxruntime numpy onnx     # any Python 3 with these
    python3 models/check_onnx.py [--dir models/]

For every <name>.onnx with a <name>.expected_logits.npy next to it: runs the model on its test
set (<set>_test_x.npy: mnist for the MNIST models, fmnist32 for resnet20), prints the accuracy
against <set>_test_y.npy and the max |difference| from
the PyTorch logits, and the graph's op list, opset and input. Exits non-zero on a mismatch
(max |diff| > 1e-3) or a failed onnx.checker run.
"""

import argparse
import glob
import os
import sys

import numpy as np

# model -> the prefix of its test set files (default "mnist")
TEST_SETS = {"resnet20": "fmnist32"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--tol", type=float, default=1e-3)
    args = ap.parse_args()
    import onnxruntime as ort
    try:
        import onnx
    except ImportError:
        onnx = None

    ok = True
    for path in sorted(glob.glob(os.path.join(args.dir, "*.onnx"))):
        name = os.path.basename(path)[:-5]
        exp_path = os.path.join(args.dir, name + ".expected_logits.npy")
        if not os.path.exists(exp_path):
            continue
        expected = np.load(exp_path)
        test_set = TEST_SETS.get(name, "mnist")
        x = np.load(os.path.join(args.dir, f"{test_set}_test_x.npy"))
        y = np.load(os.path.join(args.dir, f"{test_set}_test_y.npy"))
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        got = sess.run(None, {inp.name: x[: len(expected)]})[0]
        diff = float(np.abs(got - expected).max())
        acc = float((got.argmax(1) == y[: len(expected)]).mean())
        line = f"{name}: acc {acc * 100:.1f}% max|diff| {diff:.2e} input {inp.name} {inp.shape}"
        if onnx is not None:
            m = onnx.load(path)
            onnx.checker.check_model(m, full_check=True)
            ops = " ".join(n.op_type for n in m.graph.node)
            opset = ",".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in m.opset_import)
            line += f" opset {opset}\n    ops: {ops}"
        print(line)
        if diff > args.tol:
            ok = False
            print(f"  MISMATCH: {name} differs from the PyTorch logits by {diff}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
