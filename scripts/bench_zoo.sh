#!/usr/bin/env bash
# Compile the ImageNet-size architectures (scripts/export_zoo.py) with calibration and record
# wall time, peak RSS, the plan sizes and the outcome of every compile; the report's per-image
# cost of both packings goes to $zoo/out/NAME.report.txt. The plans are deleted after each
# model (up to 1.7 GB each).
# Usage: bash scripts/bench_zoo.sh [ZOO_DIR] [MP2MLC] [extra mp2mlc flags...]
#        (default target/zoo, target/release/mp2mlc)
set -uo pipefail
cd "$(dirname "$0")/.."
zoo=${1:-target/zoo}
mp2mlc=${2:-target/release/mp2mlc}
shift 2 2>/dev/null || shift $#
[ -f "$zoo/zoo_calib.npy" ] || /usr/bin/python3 scripts/export_zoo.py --out "$zoo"
mkdir -p "$zoo/out"
mb() { [ -f "$1" ] && echo $(( $(stat -c %s "$1") / 1000000 )) || echo "-"; }
printf '| model | ONNX MB | wall s | peak RSS MB | plan / client / weights MB | outcome |\n|---|---|---|---|---|---|\n'
for m in resnet50 densenet121 inception_v3 googlenet shufflenet_v2_x1_0; do
  f="$zoo/$m.onnx"
  [ -f "$f" ] || continue
  log="$zoo/out/$m.report.txt"
  /usr/bin/time -f '%e %M' -o "$log.time" timeout 300 "$mp2mlc" "$f" \
    --calibration "$zoo/zoo_calib.npy" -o "$zoo/out/$m.ron" --report "$@" >"$log" 2>&1
  rc=$?
  read -r wall kb < <(tail -1 "$log.time")
  outcome=$( [ $rc -eq 0 ] && echo "compiled" || grep -m1 -E "error|Killed" "$log" | cut -c1-220)
  sizes="$(mb "$zoo/out/$m.ron") / $(mb "$zoo/out/$m.client.ron") / $(mb "$zoo/out/$m.weights.bin")"
  printf '| %s | %.1f | %s | %d | %s | %s |\n' "$m" "$(echo "$(stat -c %s "$f") / 1000000" | bc -l)" \
    "$wall" "$((kb / 1024))" "$sizes" "$outcome"
  rm -f "$zoo/out/$m.ron" "$zoo/out/$m.client.ron" "$zoo/out/$m.weights.bin" "$log.time"
done
