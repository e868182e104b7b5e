#!/usr/bin/env bash
# ResNet-20 accuracy in image packing on the first IMAGES Fashion-MNIST test images (issue 12:
# secure top-1 equal to plaintext top-1 on at least 200 images).
#
# One session holding all images runs out of memory (a session's images run as one group), so
# the images run as several `mp2ml-run local` sessions of at most CHUNK images each (a session
# holds about 0.5 GB per image: 25 images passed 13 GB). For every
# chunk and in total it prints: secure top-1 against the labels, the f32 reference's top-1
# (models/resnet20.expected_logits.npy: PyTorch's logits, checked against onnxruntime in
# models/README.md), how many secure classes agree with the reference's, the largest
# |secure logit - reference logit|, wall time (process start to logits, both parties in one
# process over loopback TCP), traffic and peak RSS.
#
# Usage: bash scripts/bench_resnet20_accuracy.sh [IMAGES] [CHUNK] [BIN_DIR]
#        (default 200 10 target/release; build: cargo build --release -p mp2ml-compiler
#        -p mp2ml-runtime --bins)
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-200}
chunk=${2:-10}
bin=${3:-target/release}
py=/usr/bin/python3
out=target/bench-accuracy
mkdir -p "$out"

echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!target' || echo -dirty)," \
  "$(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/mp2mlc" models/resnet20.onnx --packing image --calibration models/fmnist32_calib.npy \
  -o "$out/resnet20.ron" >/dev/null

# Split the first $images test images (and labels, reference logits) into chunks.
"$py" - "$images" "$chunk" "$out" <<'EOF'
import sys, numpy as np
n, c, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
x = np.load("models/fmnist32_test_x.npy")
if n > len(x):
    sys.exit(f"only {len(x)} test images, {n} asked for")
for k, s in enumerate(range(0, n, c)):
    np.save(f"{out}/x{k}.npy", np.ascontiguousarray(x[s:min(s + c, n)]))
EOF

printf '| chunk | images | secure top-1 | reference top-1 | agree | max abs logit diff | wall s | traffic MB | peak RSS MB |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
nchunks=$(( (images + chunk - 1) / chunk ))
for k in $(seq 0 $((nchunks - 1))); do
  /usr/bin/time -f '%e %M' -o "$out/time$k" "$bin/mp2ml-run" local "$out/resnet20.ron" \
    --input "$out/x$k.npy" --output "$out/logits$k.npy" --json --timeout 600 >"$out/run$k.json"
  "$py" - "$k" "$chunk" "$out" <<'EOF'
import json, sys, numpy as np
k, c, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
got = np.load(f"{out}/logits{k}.npy")
s = k * c
y = np.load("models/fmnist32_test_y.npy")[s:s + len(got)]
ref = np.load("models/resnet20.expected_logits.npy")[s:s + len(got)]
run = json.load(open(f"{out}/run{k}.json"))
wall, kb = open(f"{out}/time{k}").read().split()[-2:]
sec, pl = got.argmax(1), ref.argmax(1)
row = dict(images=len(got), secure=int((sec == y).sum()), ref=int((pl == y).sum()),
           agree=int((sec == pl).sum()), diff=float(np.abs(got - ref).max()),
           wall=float(wall), bytes=run["bytes_total"], rss=int(kb) * 1024)
json.dump(row, open(f"{out}/row{k}.json", "w"))
print("| %d | %d–%d | %d/%d | %d/%d | %d/%d | %.4f | %.1f | %.1f | %.0f |" % (
    k, s, s + len(got) - 1, row["secure"], len(got), row["ref"], len(got), row["agree"], len(got),
    row["diff"], row["wall"], row["bytes"] / 1e6, row["rss"] / 1e6))
EOF
done

"$py" - "$nchunks" "$out" <<'EOF'
import json, sys
n, out = int(sys.argv[1]), sys.argv[2]
rows = [json.load(open(f"{out}/row{k}.json")) for k in range(n)]
t = lambda key: sum(r[key] for r in rows)
m = t("images")
print("| **total** | %d | **%d/%d (%.1f%%)** | %d/%d (%.1f%%) | **%d/%d** | %.4f | %.1f (%.2f per image) | %.1f (%.2f per image) | %.0f (largest) |" % (
    m, t("secure"), m, 100 * t("secure") / m, t("ref"), m, 100 * t("ref") / m, t("agree"), m,
    max(r["diff"] for r in rows), t("wall"), t("wall") / m, t("bytes") / 1e6, t("bytes") / 1e6 / m,
    max(r["rss"] for r in rows) / 1e6))
EOF
