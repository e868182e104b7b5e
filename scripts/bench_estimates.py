#!/usr/bin/env python3
"""The report's per-image estimates beside measured sessions (docs/BENCHMARKS.md, "The report's
estimates against measured sessions"; issue 12 item 8: within 1.5x).

For every bundled model and both packings: compile with `mp2mlc --packing P --calibration C
--network loopback --report --report-format json` (the loopback profile: both parties on this
machine), run `mp2ml-run local PLAN --limit IMAGES --json` RUNS times (plans compiled with
`--batch IMAGES`) and print one Markdown row: the report's bytes and seconds per image beside the
measured ones (median session seconds from the JSON, i.e. from the handshake to the logits, both
parties in one process; the process's wall time, which adds loading the plan, is shown apart),
with the ratios estimate / measured. Needs release binaries (`cargo build --release -p
mp2ml-compiler -p mp2ml-runtime --bins`); run it through /work/locks/cg on a quiet machine.

Usage: python3 scripts/bench_estimates.py [RUNS] [IMAGES] [MODEL...]
       MP2ML_PACKINGS=image limits the packings, MP2ML_BIN=DIR the binaries.
"""

import json
import os
import subprocess
import sys
import time

from bench_common import MODEL_DATA, ROOT, each_plan, local_cmd, median

OUT = os.path.join(ROOT, "target", "bench-estimates")
MODELS = list(MODEL_DATA)


def run_once(plan, x, y, images):
    t = time.monotonic()
    p = subprocess.run(local_cmd(plan, x, y, images), capture_output=True, text=True, check=True)
    wall = time.monotonic() - t
    v = json.loads(p.stdout)
    return {"wall": wall / images, "seconds": v["seconds"] / images,
            "bytes": v["bytes_per_image"], "accuracy": v["accuracy"]}


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    images = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    models = sys.argv[3:] or MODELS
    print("| model | packing | images | estimated bytes | measured bytes | ratio | estimated s | measured s (session, median of %d) | ratio | wall s (process) | top-1 |" % runs)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    extra = ["--batch", str(images), "--network", "loopback"]
    for m, packing, plan, rep, x, y in each_plan(models, OUT, f".b{images}", extra):
        rs = [run_once(plan, x, y, images) for _ in range(runs)]
        eb, es = rep["bytes_per_image"], rep["seconds_per_image"]
        mb, ms = median(rs, "bytes"), median(rs, "seconds")
        print("| %s | %s | %d | %.2f MB | %.2f MB | %.2f | %.3f | %.3f (%.3f–%.3f) | %.2f | %.3f | %s |" % (
            m, packing, images, eb / 1e6, mb / 1e6, eb / mb, es, ms,
            min(r["seconds"] for r in rs), max(r["seconds"] for r in rs), es / ms,
            median(rs, "wall"), "%.0f%%" % (100 * rs[0]["accuracy"]) if rs[0]["accuracy"] is not None else "-"),
            flush=True)
        for f in (plan, plan.replace(".ron", ".client.ron"), plan.replace(".ron", ".weights.bin")):
            if os.path.exists(f):
                os.remove(f)


if __name__ == "__main__":
    main()
