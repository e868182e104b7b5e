"""What the bench_*.py scripts share: where the repository and the binaries are, each bundled
model's calibration and test files, compiling a plan with its JSON report, and the command line
of one `mp2ml-run local` session.

MP2ML_BIN=DIR picks the binaries (default target/release; target/debug uses the dev profile,
whose runtime crates are built at opt-level 3).
"""

import json
import os
import statistics
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.path.join(ROOT, os.environ.get("MP2ML_BIN", os.path.join("target", "release")))

_MNIST = ("mnist_calib.npy", "mnist_test_x.npy", "mnist_test_y.npy")
_FMNIST32 = ("fmnist32_calib.npy", "fmnist32_test_x.npy", "fmnist32_test_y.npy")
# The bundled models and their (calibration images, test images, test labels) in models/.
MODEL_DATA = {
    "tiny": _MNIST,
    "cryptonets_relu": _MNIST,
    "maxpool_cnn": _MNIST,
    "residual": _MNIST,
    "resnet20": _FMNIST32,
}


def model_files(model):
    """The paths of `model`'s (calibration images, test images, test labels)."""
    return tuple(os.path.join(ROOT, "models", f) for f in MODEL_DATA[model])


def compile_with_report(model, packing, calib, plan, extra=()):
    """Compiles models/MODEL.onnx into `plan` with `--packing packing --calibration calib` and
    the `extra` arguments; returns the compiler's JSON report."""
    cmd = [os.path.join(BIN, "mp2mlc"), os.path.join(ROOT, "models", model + ".onnx"),
           "--packing", packing, "--calibration", calib, *extra, "-o", plan,
           "--report", "--report-format", "json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def local_cmd(plan, x, y, images):
    """`mp2ml-run local` on the first `images` images of `x` (labels `y`), JSON summary."""
    return [os.path.join(BIN, "mp2ml-run"), "local", plan, "--input", x, "--labels", y,
            "--limit", str(images), "--json", "--timeout", "600"]


def packings():
    """The packings to measure: MP2ML_PACKINGS (comma-separated), default batch and image."""
    return os.environ.get("MP2ML_PACKINGS", "batch,image").split(",")


def each_plan(models, out, suffix="", extra=()):
    """For every model and packing, compiles `out/MODEL.PACKING{suffix}.ron` (calibrated, with
    the `extra` compiler arguments) and yields (model, packing, plan, report, test images, test
    labels)."""
    os.makedirs(out, exist_ok=True)
    for m in models:
        calib, x, y = model_files(m)
        for packing in packings():
            plan = os.path.join(out, f"{m}.{packing}{suffix}.ron")
            yield m, packing, plan, compile_with_report(m, packing, calib, plan, extra), x, y


def median(runs, key):
    """The median of `key` over the runs' dicts."""
    return statistics.median(r[key] for r in runs)
