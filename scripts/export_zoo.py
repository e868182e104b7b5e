#!/usr/bin/env python3
"""Export ImageNet-size torchvision architectures to ONNX for the compiler's scale benchmark.

Usage (Debian packages python3-torch, python3-torchvision, python3-onnx):

    /usr/bin/python3 scripts/export_zoo.py --out target/zoo [--only resnet50,densenet121]

Writes, for every model, `<name>.onnx` (input "input" float32 [batch, 3, 224, 224], output
"logits" [batch, 1000], dynamic batch axis, opset 13) and one shared calibration file
`zoo_calib.npy` (float32 [2, 3, 224, 224], uniform in [0, 1], numpy seed 0). The files are
large (up to ~100 MB) and are NOT committed: this script regenerates them bit for bit
(torch.manual_seed(0) before building each model; the weights are torchvision's random
initialization, no pretrained weights are downloaded: none can be on this machine). The
BatchNorm running statistics are then measured on random images (`--bn-batches`, default 2
batches of 4), as a trained network's are on its data, so activations keep their scale.

Models (torchvision 0.14 names):
    resnet50             ResNet-50 (He et al. 2016)
    densenet121          DenseNet-121 (Huang et al. 2017)
    inception_v3         Inception v3 (Szegedy et al. 2016), aux_logits=False,
                         transform_input=False; torchvision has no Inception v2 (BN-Inception)
    googlenet            GoogLeNet = Inception v1 (Szegedy et al. 2015), aux_logits=False,
                         transform_input=False
    shufflenet_v2_x1_0   ShuffleNet v2 1.0x (Ma et al. 2018)

The export is in eval mode with constant folding, so BatchNorm that directly follows a
convolution is folded into it and Dropout (identity at inference) disappears; DenseNet keeps
the BatchNormalization nodes that follow a Concat.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torchvision

MODELS = {
    "resnet50": lambda: torchvision.models.resnet50(weights=None),
    "densenet121": lambda: torchvision.models.densenet121(weights=None),
    "inception_v3": lambda: torchvision.models.inception_v3(
        weights=None, aux_logits=False, transform_input=False, init_weights=True),
    "googlenet": lambda: torchvision.models.googlenet(
        weights=None, aux_logits=False, transform_input=False, init_weights=True),
    "shufflenet_v2_x1_0": lambda: torchvision.models.shufflenet_v2_x1_0(weights=None),
}
CALIB_COUNT = 2
SIZE = 224


def set_bn_statistics(model, batches):
    """BatchNorm running statistics of the random-weight model on `batches` batches of uniform
    random images (train-mode forward passes, cumulative average), so activations stay O(1)
    layer after layer as in a trained network. With torchvision's initial statistics (mean 0,
    variance 1) Inception v3's activations grow by orders of magnitude with depth and need
    shares wider than a plan can hold."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or batches == 0:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(4, 3, SIZE, SIZE, generator=gen))
    model.eval()


def export(name, path, opset, bn_batches):
    import onnx
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    set_bn_statistics(model, bn_batches)
    dummy = torch.zeros(1, 3, SIZE, SIZE)
    torch.onnx.export(
        model, dummy, path, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset, training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    m = onnx.load(path)
    m.producer_name = "mp2ml scripts/export_zoo.py (torch %s, torchvision %s)" % (
        torch.__version__, torchvision.__version__)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    ops = [n.op_type for n in m.graph.node]
    params = sum(p.numel() for p in model.parameters())
    counts = ", ".join(f"{o} x{ops.count(o)}" for o in sorted(set(ops)))
    print(f"{name}: {params} parameters, {len(ops)} nodes ({counts}), "
          f"{os.path.getsize(path) / 1e6:.1f} MB", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bn-batches", type=int, default=2,
                    help="batches of 4 random images for the BatchNorm statistics (0: keep "
                         "torchvision's initial mean 0, variance 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in MODELS if not args.only or n in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(MODELS) - {""}
    if unknown:
        sys.exit(f"unknown models {sorted(unknown)}; known: {', '.join(MODELS)}")
    os.makedirs(args.out, exist_ok=True)
    calib = np.random.RandomState(0).uniform(0, 1, (CALIB_COUNT, 3, SIZE, SIZE))
    np.save(os.path.join(args.out, "zoo_calib.npy"), calib.astype(np.float32))
    for name in names:
        export(name, os.path.join(args.out, f"{name}.onnx"), args.opset, args.bn_batches)


if __name__ == "__main__":
    main()
