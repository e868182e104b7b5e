#!/usr/bin/env bash
# Scale-out on one machine: two `mp2ml-run --role server` replicas and HAProxy (deploy/haproxy.cfg)
# on 127.0.0.1, then 16 clients at once through the balancer. Checks every client's result
# against the model's PyTorch logits, that both replicas served sessions, and that both
# replicas drain and exit 0 on SIGTERM. Installs Debian's haproxy package if it is missing.
#
#   bash deploy/run_local.sh                 # tiny model, 16 clients
#   MODEL=cryptonets_relu CLIENTS=8 bash deploy/run_local.sh
#
# Binaries: $MP2ML_BIN (default target/release, built if missing). Ports: $MP2ML_PORT_BASE
# (default 7400): the balancer on BASE, replicas on BASE+1 and BASE+2, their metrics on
# BASE+11 and BASE+12. The work folder (logs, outputs) is removed on success unless
# MP2ML_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODEL=${MODEL:-tiny}
CLIENTS=${CLIENTS:-16}
BIN=${MP2ML_BIN:-$ROOT/target/release}
BASE=${MP2ML_PORT_BASE:-7400}
LB=$BASE
MAX_SESSIONS=${MAX_SESSIONS:-4}
TOL=${TOL:-0.05}

say() { echo "run_local: $*"; }
die() { echo "run_local: FAILED: $*" >&2; exit 1; }

# 1. HAProxy (Debian package).
HAPROXY=$(command -v haproxy || true)
[ -n "$HAPROXY" ] || [ ! -x /usr/sbin/haproxy ] || HAPROXY=/usr/sbin/haproxy
if [ -z "$HAPROXY" ]; then
    say "installing haproxy (apt-get)"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y haproxy >/dev/null 2>&1 ||
        { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y haproxy >/dev/null; }
    HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
fi
[ -x "$HAPROXY" ] || die "haproxy is not installed"
say "$("$HAPROXY" -v | head -1)"

# 2. Binaries and the plan.
if [ ! -x "$BIN/mp2ml-run" ] || [ ! -x "$BIN/mp2mlc" ]; then
    say "building the release binaries"
    cargo build --release -p mp2ml-runtime -p mp2ml-compiler
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mp2ml-deploy.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
"$BIN/mp2mlc" "models/$MODEL.onnx" -o "$WORK/$MODEL.ron" >/dev/null
say "work folder $WORK"

# 3. Two replicas: the same plan and weights, one port each (plus a metrics port).
REPLICAS=()
for i in 1 2; do
    "$BIN/mp2ml-run" --role server "$WORK/$MODEL.ron" --listen "127.0.0.1:$((BASE + i))" \
        --metrics "127.0.0.1:$((BASE + 10 + i))" --max-sessions "$MAX_SESSIONS" \
        --json-log "$WORK/r$i.jsonl" 2>"$WORK/r$i.err" &
    PIDS+=($!)
    REPLICAS+=($!)
done
for i in 1 2; do
    for _ in $(seq 200); do grep -q serving "$WORK/r$i.err" && break; sleep 0.05; done
    grep -q serving "$WORK/r$i.err" || die "replica $i did not start: $(cat "$WORK/r$i.err")"
done

# 4. HAProxy in front.
export MP2ML_LB_BIND=127.0.0.1:$LB MP2ML_MAX_SESSIONS=$MAX_SESSIONS
export MP2ML_R1=127.0.0.1:$((BASE + 1)) MP2ML_R1_HOST=127.0.0.1 MP2ML_R1_CHECK=$((BASE + 11))
export MP2ML_R2=127.0.0.1:$((BASE + 2)) MP2ML_R2_HOST=127.0.0.1 MP2ML_R2_CHECK=$((BASE + 12))
"$HAPROXY" -c -q -f deploy/haproxy.cfg || die "haproxy rejects deploy/haproxy.cfg"
"$HAPROXY" -db -f deploy/haproxy.cfg >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
sleep 1.5
kill -0 "${PIDS[-1]}" 2>/dev/null || die "haproxy did not start: $(cat "$WORK/haproxy.log")"

# 5. The clients, all at once: client k sends the first k digits (k = 1..CLIENTS).
say "$CLIENTS clients through 127.0.0.1:$LB"
START=$(date +%s.%N)
CPIDS=()
for k in $(seq "$CLIENTS"); do
    "$BIN/mp2ml-run" --role client "$WORK/$MODEL.client.ron" --connect "127.0.0.1:$LB" \
        --input models/mnist_test_x.npy --limit "$k" --output "$WORK/y$k.npy" \
        --retries 30 --json >"$WORK/c$k.json" 2>"$WORK/c$k.err" &
    CPIDS+=($!)
done
FAILED=0
for k in $(seq "$CLIENTS"); do
    wait "${CPIDS[$((k - 1))]}" || { FAILED=1; echo "client $k failed: $(tail -3 "$WORK/c$k.err")" >&2; }
done
END=$(date +%s.%N)
[ "$FAILED" = 0 ] || die "some clients failed"

# 6. Every result against the PyTorch logits (float32 .npy, read with od).
npy_floats() { # FILE -> one float per line
    local hlen
    hlen=$(od -A n -t u2 -j 8 -N 2 "$1" | tr -d ' ')
    od -A n -v -t f4 -j $((10 + hlen)) "$1" | tr -s ' ' '\n' | sed '/^$/d'
}
npy_floats "models/$MODEL.expected_logits.npy" >"$WORK/expected.txt"
for k in $(seq "$CLIENTS"); do
    npy_floats "$WORK/y$k.npy" >"$WORK/y$k.txt"
    n=$(wc -l <"$WORK/y$k.txt")
    [ "$n" = $((10 * k)) ] || die "client $k: $n outputs, expected $((10 * k))"
    sed -n "1,${n}p" "$WORK/expected.txt" >"$WORK/e$k.txt"
    worst=$(paste "$WORK/y$k.txt" "$WORK/e$k.txt" |
        awk '{d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d} END {printf "%.4f", m}')
    awk -v w="$worst" -v t="$TOL" 'BEGIN {exit !(w < t)}' ||
        die "client $k: max |secure - PyTorch| = $worst (tolerance $TOL)"
done
say "all $CLIENTS results match the PyTorch logits (max error < $TOL)"

# 7. Both replicas served; then drain with SIGTERM and expect exit 0.
S1=$(grep -c '"outcome":"ok"' "$WORK/r1.jsonl" || true)
S2=$(grep -c '"outcome":"ok"' "$WORK/r2.jsonl" || true)
B1=$(grep -c '"outcome":"refused"' "$WORK/r1.jsonl" || true)
B2=$(grep -c '"outcome":"refused"' "$WORK/r2.jsonl" || true)
say "replica 1 served $S1 sessions (refused $B1 as busy), replica 2 served $S2 (refused $B2)"
[ "$S1" -gt 0 ] && [ "$S2" -gt 0 ] || die "a replica served no session"
[ $((S1 + S2)) = "$CLIENTS" ] || die "$((S1 + S2)) sessions for $CLIENTS clients"
say "$(awk -v a="$START" -v b="$END" -v n="$CLIENTS" 'BEGIN {printf "%d sessions in %.2f s", n, b - a}')"
for p in "${REPLICAS[@]}"; do kill -TERM "$p"; done
for i in 1 2; do
    st=0
    wait "${REPLICAS[$((i - 1))]}" || st=$?
    [ "$st" = 0 ] || die "replica $i exited with $st after SIGTERM: $(tail -3 "$WORK/r$i.err")"
done
say "both replicas drained and exited 0"
[ -n "${MP2ML_KEEP:-}" ] || rm -rf "$WORK"
say "PASSED"
