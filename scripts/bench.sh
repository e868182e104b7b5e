#!/usr/bin/env bash
# Regenerates docs/BENCHMARKS.md and the SVG plots (docs/bench_*.svg) with mp2ml-bench:
# MP2ML Table 2 and Table 3 figures for every bundled model, beside the plaintext model (tract)
# and the published anchors. Release build; both parties on loopback in one process.
# Extra arguments go to mp2ml-bench (e.g. --repeats 9, --quick, --model cryptonets_relu).
# The page's hand-written sections below the marker line are kept verbatim.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mp2ml-tests --bin mp2ml-bench
exec ./target/release/mp2ml-bench --out docs/BENCHMARKS.md --plots docs \
    --command "bash scripts/bench.sh${*:+ $*}" "$@"
