#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECS seconds each (default 600), one after another, from the
# seed corpus in fuzz/seeds/ (copied into fuzz/corpus/, which is not committed). Needs
# cargo-fuzz (`cargo install cargo-fuzz`); the stable toolchain works with RUSTC_BOOTSTRAP=1.
# No sanitizer (-s none): the code is safe Rust, so a finding is a panic, an overflow (release
# overflow checks are on in fuzz/Cargo.toml) or a timeout/OOM, which libFuzzer reports itself.
# Usage: bash fuzz/run_all.sh [SECS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(onnx_import plan_parse ckks_decode hello weights circuit)
fi
export RUSTC_BOOTSTRAP=1
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ -d "seeds/$t" ]; then cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true; fi
    echo "== $t: ${secs} s =="
    cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 \
        -timeout=30 -print_final_stats=1 2>&1 | tee "logs/$t.log" | grep -E "^(#[0-9]+ +DONE|Done|stat::|==[0-9]+== ERROR|SUMMARY)" || true
    if grep -q "SUMMARY\|panicked" "logs/$t.log"; then echo "$t: FINDING (see fuzz/logs/$t.log and fuzz/artifacts/$t/)"; fi
done
