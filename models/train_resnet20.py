#!/usr/bin/env python3
"""Train and export the bundled ResNet-20 (CIFAR-style) on Fashion-MNIST padded to 32x32.

Usage (from the repository root; Debian packages python3-torch, python3-onnx,
dataset-fashion-mnist):

    nice -n 15 /usr/bin/python3 models/train_resnet20.py --out models/

Options:
    --data DIR      folder with the four Fashion-MNIST idx .gz files
                    (default /usr/share/datasets/fashion-mnist, from `dataset-fashion-mnist`)
    --out DIR       where to write the files (default: the folder of this script)
    --seed N        seed (default 0; Python, NumPy and torch are all seeded)
    --threads N     torch intra-op threads (default 2)
    --epochs N      training epochs (default 2)
    --train-count N train on the first N training images (default 45000)
    --opset N       ONNX opset (default 13)

Architecture (He et al. 2016, section 4.2, the CIFAR-10 ResNet with n = 3): a 3x3 conv with 16
channels + BatchNorm + ReLU, then 3 stages of 3 basic blocks each (16, 32, 64 channels; the
first block of stages 2 and 3 has stride 2), each block conv3x3-BN-ReLU-conv3x3-BN + shortcut,
then ReLU; global average pool; a 64->10 linear layer. 19 ReLU layers, 20 weight layers
(counting the paper's way: 19 convs + 1 FC; the two shortcuts that change shape are 1x1
stride-2 convs with BN, the paper's option B). Input float32 [batch, 1, 32, 32], pixels in
[0, 1], the 28x28 image in the centre (2 zero pixels on each side), no normalization.

Data: Fashion-MNIST (Xiao et al. 2017), 60,000 training and 10,000 test images. The bundled
test set is the FIRST 1,000 images of the official test set (t10k), in file order; the
accuracy is also reported on all 10,000. No model selection uses the test set (fixed epochs).
Calibration set: 256 training images chosen with numpy.random.RandomState(seed) (sorted).

Training: SGD, momentum 0.9, Nesterov, weight decay 5e-4, batch 128, OneCycle learning rate
(max 0.2), cross-entropy; augmentation: random horizontal flip and random translation by up
to +-2 pixels (zero fill) within the 32x32 frame.

Outputs:
    resnet20.onnx                    input "input" [batch,1,32,32], output "logits" [batch,10]
    resnet20.expected_logits.npy     float32 [1000,10]  PyTorch outputs on fmnist32_test_x.npy
    fmnist32_test_x.npy              float32 [1000,1,32,32]
    fmnist32_test_y.npy              int64   [1000]
    fmnist32_calib.npy               float32 [256,1,32,32] training images (calibration)
"""

import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import check_with_onnx_runtimes, export_onnx, seed_all  # noqa: E402

BATCH = 128
TEST_COUNT = 1000
CALIB_COUNT = 256
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# ----------------------------------------------------------------------------- data

def read_idx(path):
    """Reads an idx1/idx3 file (gzip) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        sys.exit(f"{path}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        sys.exit(f"{path}: {data.size} bytes of data for dims {dims}")
    return data.reshape(dims)


def load_fashion_mnist(d):
    """Returns (train_x, train_y, test_x, test_y): float32 [n,1,32,32] in [0,1] / int64 [n]."""
    def images(name):
        x = read_idx(os.path.join(d, name)).astype(np.float32) / 255.0
        return np.ascontiguousarray(np.pad(x[:, None], ((0, 0), (0, 0), (2, 2), (2, 2))))

    def labels(name):
        return read_idx(os.path.join(d, name)).astype(np.int64)

    tx, ty = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    vx, vy = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    assert tx.shape == (60000, 1, 32, 32) and vx.shape == (10000, 1, 32, 32)
    return tx, ty, vx, vy


def augment(x, gen, max_shift=2):
    """Random horizontal flip and integer translation by up to max_shift pixels (zero fill)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    h, w = x.shape[2], x.shape[3]
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


# ----------------------------------------------------------------------------- model

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class ResNet20(nn.Module):
    def __init__(self, in_channels=1, classes=10, n=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(self.pool(x), 1))


# ----------------------------------------------------------------------------- training

def evaluate(model, x, y, chunk=500):
    model.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            outs.append(model(torch.from_numpy(x[s:s + chunk])))
    logits = torch.cat(outs).numpy().astype(np.float32)
    return logits, float((logits.argmax(1) == y).mean())


def train(model, epochs, x_np, y_np, seed):
    seed_all(seed)
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = torch.from_numpy(x_np), torch.from_numpy(y_np)
    n = len(x_all)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    steps = epochs * ((n + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for k, s in enumerate(range(0, n, BATCH)):
            idx = perm[s:s + BATCH]
            xb, yb = augment(x_all[idx], gen), y_all[idx]
            opt.zero_grad()
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            total += len(idx)
            if k % 50 == 0:
                print(f"    step {k} loss {float(loss):.3f} ({time.time() - t0:.0f}s)", flush=True)
        print(f"  epoch {epoch + 1}/{epochs} loss {loss_sum / total:.4f} "
              f"train acc {correct / total:.4f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-count", type=int, default=45000)
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    train_x, train_y, test_x, test_y = load_fashion_mnist(args.data)
    train_x, train_y = train_x[:args.train_count], train_y[:args.train_count]
    bundled_x, bundled_y = np.ascontiguousarray(test_x[:TEST_COUNT]), test_y[:TEST_COUNT]
    np.save(os.path.join(args.out, "fmnist32_test_x.npy"), bundled_x)
    np.save(os.path.join(args.out, "fmnist32_test_y.npy"), bundled_y)
    calib = np.random.RandomState(args.seed).choice(len(train_x), CALIB_COUNT, replace=False)
    np.save(os.path.join(args.out, "fmnist32_calib.npy"),
            np.ascontiguousarray(train_x[np.sort(calib)]))

    seed_all(args.seed)
    model = ResNet20()
    print(f"== resnet20: {sum(p.numel() for p in model.parameters())} parameters, "
          f"{args.epochs} epochs on {len(train_x)} images, batch {BATCH}, seed {args.seed}",
          flush=True)
    t0 = time.time()
    model = train(model, args.epochs, train_x, train_y, args.seed)
    train_s = time.time() - t0
    _, acc_full = evaluate(model, test_x, test_y)
    logits, acc = evaluate(model, bundled_x, bundled_y)
    path = os.path.join(args.out, "resnet20.onnx")
    m = export_onnx(model, path, args.opset, keep_bn=False, shape=(1, 1, 32, 32),
                    producer="models/train_resnet20.py")
    np.save(os.path.join(args.out, "resnet20.expected_logits.npy"), logits)
    checks = check_with_onnx_runtimes(path, bundled_x, logits)
    ops = [n.op_type for n in m.graph.node]
    print(f"resnet20: training {train_s:.0f}s; test acc {acc_full:.4f} on all 10000, "
          f"{acc:.4f} on the bundled first {TEST_COUNT}; {len(ops)} nodes "
          f"({', '.join(f'{o} x{ops.count(o)}' for o in sorted(set(ops)))}); checks {checks}; "
          f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
