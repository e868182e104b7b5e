#!/usr/bin/env python3
"""Export the small ONNX graphs of `tests/zoo_lowering.rs`: one block of each ImageNet-size
architecture family whose lowering needed its own rule (see docs/BENCHMARKS.md, "ImageNet-size
models"), at toy sizes so the tests run in seconds.

Usage (Debian packages python3-torch, python3-onnx):

    /usr/bin/python3 scripts/export_zoo_mini.py --out tests/zoo_mini

Writes (input "input" float32 [batch, 3, 12, 12], output "logits" [batch, 5], dynamic batch
axis, opset 13, eval mode, weights from torch.manual_seed(0) with BatchNorm statistics drawn
from the same generator):

    inception_mini.onnx   GoogLeNet/Inception block: Concat of ReLU branches (1×1, 3×3 and
                          a MaxPool branch) read by a 3×3 convolution and by a MaxPool
    densenet_mini.onnx    DenseNet block: every layer BatchNorm→ReLU→1×1→ReLU→3×3 on the
                          Concat of all earlier features, a transition (BN, ReLU, 1×1,
                          AvgPool), a second block
    shufflenet_mini.onnx  ShuffleNet v2 units: channel split (Slice via chunk), depthwise
                          3×3, Concat, channel shuffle (Reshape/Transpose/Reshape), a
                          downsampling unit, conv5 and the mean over H, W (ReduceMean)
"""

import argparse
import os

import torch
from torch import nn


class Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.b1 = nn.Sequential(nn.Conv2d(6, 4, 1), nn.ReLU())
        self.b2 = nn.Sequential(nn.Conv2d(6, 3, 1), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1),
                                nn.ReLU())
        self.b3 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(6, 2, 1), nn.ReLU())
        self.post = nn.Sequential(nn.Conv2d(10, 6, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2, 2)
        self.fc = nn.Linear(6 * 6 * 6, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.b1(x), self.b2(x), self.b3(x)], 1)
        x = self.pool(self.post(x))
        return self.fc(torch.flatten(x, 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 2 * growth, 1),
                               nn.BatchNorm2d(2 * growth), nn.ReLU(),
                               nn.Conv2d(2 * growth, growth, 3, padding=1))

    def forward(self, feats):
        return self.f(torch.cat(feats, 1))


class Dense(nn.Module):
    def __init__(self, growth=3, layers=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.block1 = nn.ModuleList(DenseLayer(4 + i * growth, growth) for i in range(layers))
        c = 4 + layers * growth
        self.trans = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 6, 1),
                                   nn.AvgPool2d(2, 2))
        self.block2 = nn.ModuleList(DenseLayer(6 + i * growth, growth) for i in range(2))
        c = 6 + 2 * growth
        self.norm = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, 5)

    def forward(self, x):
        feats = [self.stem(x)]
        for layer in self.block1:
            feats.append(layer(feats))
        feats = [self.trans(torch.cat(feats, 1))]
        for layer in self.block2:
            feats.append(layer(feats))
        x = torch.relu(self.norm(torch.cat(feats, 1)))
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        bin_ = cin if stride > 1 else half
        if stride > 1:
            self.left = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin),
                                      nn.BatchNorm2d(cin), nn.Conv2d(cin, half, 1),
                                      nn.BatchNorm2d(half), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(bin_, half, 1), nn.BatchNorm2d(half), nn.ReLU(),
                                   nn.Conv2d(half, half, 3, stride, 1, groups=half),
                                   nn.BatchNorm2d(half), nn.Conv2d(half, half, 1),
                                   nn.BatchNorm2d(half), nn.ReLU())

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.right(b)), 1)
        else:
            out = torch.cat((self.left(x), self.right(x)), 1)
        return shuffle(out)


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.units = nn.Sequential(ShuffleUnit(8, 8, 1), ShuffleUnit(8, 12, 2),
                                   ShuffleUnit(12, 12, 1))
        self.conv5 = nn.Sequential(nn.Conv2d(12, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.conv5(self.units(self.stem(x)))
        return self.fc(x.mean([2, 3]))


MODELS = {"inception_mini": Inception, "densenet_mini": Dense, "shufflenet_mini": Shuffle}


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=gen)
            m.bias.data = torch.rand(c, generator=gen) - 0.5
            m.running_mean.data = torch.rand(c, generator=gen) - 0.5
            m.running_var.data = 0.5 + torch.rand(c, generator=gen)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import onnx
    for name, cls in MODELS.items():
        torch.manual_seed(0)
        model = cls().eval()
        randomize_bn(model, torch.Generator().manual_seed(1))
        path = os.path.join(args.out, f"{name}.onnx")
        torch.onnx.export(
            model, torch.zeros(1, 3, 12, 12), path, input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=13, training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
        m = onnx.load(path)
        m.producer_name = "mp2ml scripts/export_zoo_mini.py"
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, path)
        ops = sorted({n.op_type for n in m.graph.node})
        print(f"{name}: {len(m.graph.node)} nodes ({', '.join(ops)}), "
              f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
