#!/usr/bin/env python3
"""Batch-1 end-to-end figures of both packings (docs/BENCHMARKS.md, "Image packing").

For every bundled model: compile with `mp2mlc --packing batch|image` (calibrated on the
model's calibration digits), then run `mp2ml-run local --limit 1` RUNS times under
/usr/bin/time (wall time from process start to logits, peak RSS of the process, which holds
both parties) and print one Markdown row per model and packing: median wall time, the
session's online time, bytes, the HE seconds (server precompute + HE segments) and the
garbling/OT seconds (server offline garbling + MPC steps), and whether the image's class
matches its label, beside the report's per-image estimates of bytes and seconds (`mp2mlc
--report --report-format json`; MP2ML_NETWORK=RTT_ms:Mbit_s compiles for that network, e.g. a
loopback-like `0.02:40000`, default the compiler's `lan`). MP2ML_PACKINGS=image skips batch
packing. Needs release binaries (`cargo build --release -p mp2ml-compiler -p mp2ml-runtime
--bins`).

Usage: python3 scripts/bench_image.py [RUNS] [MODEL...]
"""

import json
import os
import subprocess
import sys

from bench_common import ROOT, each_plan, local_cmd, median

OUT = os.path.join(ROOT, "target", "bench-image")
MODELS = ["cryptonets_relu", "maxpool_cnn", "residual", "resnet20"]


def steps(report, prefix):
    return sum(s["seconds"] for s in report["steps"] if s["name"].startswith(prefix))


def run_once(plan, x, y):
    cmd = ["/usr/bin/time", "-f", "TIME %e %M", *local_cmd(plan, x, y, 1)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = [l for l in p.stderr.splitlines() if l.startswith("TIME ")][-1]
    wall, rss_kb = line.split()[1:3]
    v = json.loads(p.stdout)
    srv = v["server"]
    return {
        "wall": float(wall),
        "rss": int(rss_kb) * 1024,
        "online": v["online"]["seconds"],
        "bytes": v["bytes_total"],
        "he": steps(srv, "precompute") + steps(srv, "he:"),
        "gc": steps(srv, "offline[") + steps(srv, "mpc:"),
        "correct": v["accuracy"] == 1.0,
    }


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    models = sys.argv[2:] or MODELS
    network = os.environ.get("MP2ML_NETWORK")
    print("| model | packing | end to end (median of %d) | estimated s | online | traffic | estimated traffic | HE (server) | garbling + OT + conversions | peak RSS (both parties) | top-1 |" % runs)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    extra = ["--network", network] if network else []
    for m, packing, plan, rep, x, y in each_plan(models, OUT, extra=extra):
        rs = [run_once(plan, x, y) for _ in range(runs)]
        med = lambda k: median(rs, k)
        print("| %s | %s | %.3f s (%.3f–%.3f) | %.3f s | %.3f s | %.2f MB | %.2f MB | %.3f s | %.3f s | %.0f MB | %s |" % (
            m, packing, med("wall"), min(r["wall"] for r in rs), max(r["wall"] for r in rs),
            rep["seconds_per_image"], med("online"), med("bytes") / 1e6,
            rep["bytes_per_image"] / 1e6, med("he"), med("gc"), med("rss") / 1e6,
            "ok" if all(r["correct"] for r in rs) else "wrong"), flush=True)


if __name__ == "__main__":
    main()
