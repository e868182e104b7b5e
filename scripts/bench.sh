#!/usr/bin/env bash
# Regenerates docs/BENCHMARKS.md and the SVG plots (docs/bench_*.svg) with mp2ml-bench:
# MP2ML Table 2 and Table 3 figures for every bundled model, beside the plaintext model (tract)
# and the published anchors. Release build; both parties on loopback in one process, plus one
# two-process session (mp2ml-run --role server / --role client) per model and batch for the
# per-party peak memory. About 15 minutes on 2 idle cores: models above the AND-gate budget
# (--budget-ands, default 1e9 per session) use only their first test digits.
# Extra arguments go to mp2ml-bench (e.g. --repeats 9, --quick, --model cryptonets_relu,
# --budget-ands 3e9). The page's hand-written sections below the marker line are kept verbatim.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two builds: the tests package turns on the runtime's test-hooks feature, which the measured
# mp2ml-run must not carry (cargo unifies features within one invocation).
cargo build --release -p mp2ml-runtime --bin mp2ml-run
cargo build --release -p mp2ml-tests --bin mp2ml-bench
exec ./target/release/mp2ml-bench --out docs/BENCHMARKS.md --plots docs \
    --command "bash scripts/bench.sh${*:+ $*}" "$@"
