#!/usr/bin/env python3
"""CryptoNets-ReLU before and after the privacy fixes of issue 13 (docs/BENCHMARKS.md, "Cost of
the privacy fixes of issue 13").

Compiles models/cryptonets_relu.onnx with the `mp2mlc` in $MP2ML_BIN (calibrated on
models/mnist_calib.npy), in batch packing and, when that mp2mlc has it, image packing, and
prints one Markdown row per packing: N, primes (bits), AND gates per image (`mp2mlc inspect`),
the batch-1 wall time of `mp2ml-run local --limit 1` (median of RUNS, from
scripts/bench_image.py) and, for batch packing, the throughput of one session of THROUGHPUT
images (`--limit THROUGHPUT`, the default session size). Point MP2ML_BIN at the binaries of the
commit to measure (e.g. a temporary worktree of an older commit built into its own directory).

Usage: MP2ML_BIN=DIR python3 scripts/bench_privacy.py LABEL [RUNS] [THROUGHPUT]
"""

import json
import math
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_image  # noqa: E402
from bench_common import BIN, ROOT  # noqa: E402


def compile_plan(packing, out):
    model = os.path.join(ROOT, "models", "cryptonets_relu.onnx")
    calib = os.path.join(ROOT, "models", "mnist_calib.npy")
    cmd = [os.path.join(BIN, "mp2mlc"), model, "--calibration", calib, "-o", out]
    if packing != "batch":
        cmd += ["--packing", packing]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None
    r = subprocess.run([os.path.join(BIN, "mp2mlc"), "inspect", out, "--report-format", "json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def throughput(plan, images):
    x = os.path.join(ROOT, "models", "mnist_test_x.npy")
    cmd = [os.path.join(BIN, "mp2ml-run"), "local", plan, "--input", x, "--limit", str(images),
           "--json", "--timeout", "1800"]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def main():
    label = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    big = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    out = os.path.join(ROOT, "target", "bench-privacy", label)
    os.makedirs(out, exist_ok=True)
    x = os.path.join(ROOT, "models", "mnist_test_x.npy")
    y = os.path.join(ROOT, "models", "mnist_test_y.npy")
    for packing in ("batch", "image"):
        plan = os.path.join(out, f"cryptonets_relu.{packing}.ron")
        rep = compile_plan(packing, plan)
        if rep is None:
            print(f"| {label} | {packing} | not available at this commit |", flush=True)
            continue
        bits = sum(math.log2(q) for q in rep["moduli"])
        rs = [bench_image.run_once(plan, x, y) for _ in range(runs)]
        walls = [r["wall"] for r in rs]
        row = "| %s | %s | %d | %d (%.0f) | %d | %.3f s (%.3f–%.3f), online %.3f s, %.2f MB |" % (
            label, packing, rep["n"], len(rep["moduli"]), bits, rep["total_and"],
            statistics.median(walls), min(walls), max(walls),
            statistics.median(r["online"] for r in rs), statistics.median(r["bytes"] for r in rs) / 1e6)
        if packing == "batch" and big > 1:
            v = throughput(plan, big)
            secs = v["seconds"]
            row += " %d images in %.1f s: %.1f images/s, %.2f MB/image |" % (
                big, secs, big / secs, v["bytes_total"] / big / 1e6)
        else:
            row += " – |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
