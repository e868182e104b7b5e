#!/usr/bin/env bash
# Compile the ImageNet-size architectures (scripts/export_zoo.py) with calibration and record
# wall time, peak RSS and the outcome of every compile.
# Usage: bash scripts/bench_zoo.sh [ZOO_DIR] [MP2MLC]   (default target/zoo, target/release/mp2mlc)
set -uo pipefail
cd "$(dirname "$0")/.."
zoo=${1:-target/zoo}
mp2mlc=${2:-target/release/mp2mlc}
[ -f "$zoo/zoo_calib.npy" ] || /usr/bin/python3 scripts/export_zoo.py --out "$zoo"
printf '| model | ONNX MB | wall s | peak RSS MB | outcome |\n|---|---|---|---|---|\n'
for m in resnet50 densenet121 inception_v3 googlenet shufflenet_v2_x1_0; do
  f="$zoo/$m.onnx"
  [ -f "$f" ] || continue
  log=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$log.time" timeout 300 "$mp2mlc" "$f" \
    --calibration "$zoo/zoo_calib.npy" -o "$zoo/out/$m.ron" >"$log" 2>&1
  rc=$?
  read -r wall kb < <(tail -1 "$log.time")
  outcome=$( [ $rc -eq 0 ] && echo "compiled" || head -1 "$log" | cut -c1-200)
  printf '| %s | %.1f | %s | %d | %s |\n' "$m" "$(echo "$(stat -c %s "$f") / 1000000" | bc -l)" \
    "$wall" "$((kb / 1024))" "$outcome"
  rm -f "$log" "$log.time"
done
