#!/usr/bin/env bash
# Load table for docs/BENCHMARKS.md: K = 1, 2, 4, 8 concurrent clients, each running ROUNDS
# sessions back to back, at batch 1 and batch 64, against (a) one `mp2ml-run` server
# (--max-sessions 8) and (b) HAProxy with two replicas (--max-sessions 4 each), all on
# 127.0.0.1 of this machine: clients, servers and balancer share its cores. Prints a Markdown
# table: sessions per second (all sessions ÷ wall time of the K loops) and the p50/p95 of the
# clients' session latency (`seconds` of `mp2ml-run --role client --json`: connect to result,
# including any queueing and busy retries).
#
#   bash deploy/load_bench.sh                      # cryptonets_relu, ROUNDS=3
#   MODEL=tiny ROUNDS=2 bash deploy/load_bench.sh
#
# Binaries: $MP2ML_BIN (default target/release, built if missing). HAProxy: as in
# deploy/run_local.sh (skipped with a note if it is not installed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODEL=${MODEL:-cryptonets_relu}
ROUNDS=${ROUNDS:-3}
BIN=${MP2ML_BIN:-$ROOT/target/release}
BASE=${MP2ML_PORT_BASE:-7500}
CONCURRENCY=${CONCURRENCY:-"1 2 4 8"}
BATCHES=${BATCHES:-"1 64"}

if [ ! -x "$BIN/mp2ml-run" ] || [ ! -x "$BIN/mp2mlc" ]; then
    cargo build --release -p mp2ml-runtime -p mp2ml-compiler
fi
HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mp2ml-load.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
CAL=()
[ -f models/mnist_calib.npy ] && CAL=(--calibration models/mnist_calib.npy)
"$BIN/mp2mlc" "models/$MODEL.onnx" -o "$WORK/$MODEL.ron" "${CAL[@]}" >/dev/null

start_server() { # PORT MAX_SESSIONS [METRICS_PORT] -> pid on stdout
    local extra=()
    [ -n "${3:-}" ] && extra=(--metrics "127.0.0.1:$3")
    "$BIN/mp2ml-run" --role server "$WORK/$MODEL.ron" --listen "127.0.0.1:$1" \
        --max-sessions "$2" "${extra[@]}" >/dev/null 2>>"$WORK/server-$1.err" &
    echo $!
}
wait_serving() {
    for _ in $(seq 400); do grep -q serving "$WORK/server-$1.err" 2>/dev/null && return; sleep 0.05; done
    echo "server on $1 did not start" >&2
    exit 1
}

# One load point: K client loops of ROUNDS sessions at batch B against PORT.
# Prints "sessions/s p50 p95 sessions".
load() { # PORT K B
    local port=$1 k=$2 b=$3 lat="$WORK/lat-$1-$2-$3"
    : >"$lat"
    local t0 t1 pids=()
    t0=$(date +%s.%N)
    for c in $(seq "$k"); do
        (
            for r in $(seq "$ROUNDS"); do
                "$BIN/mp2ml-run" --role client "$WORK/$MODEL.client.ron" \
                    --connect "127.0.0.1:$port" --input models/mnist_test_x.npy --limit "$b" \
                    --retries 50 --json >"$WORK/c-$c-$r.json" 2>>"$WORK/clients.err" ||
                    { echo "client failed (see $WORK/clients.err)" >&2; exit 1; }
                grep -m1 '^  "seconds"' "$WORK/c-$c-$r.json" | tr -dc '0-9.\n' >>"$lat"
            done
        ) &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(date +%s.%N)
    sort -g "$lat" | awk -v t0="$t0" -v t1="$t1" '
        { v[NR] = $1 }
        END {
            p50 = v[int(0.5 * (NR - 1)) + 1]; p95 = v[int(0.95 * (NR - 1) + 0.999999) + 1];
            printf "%.2f %.3f %.3f %d\n", NR / (t1 - t0), p50, p95, NR
        }'
}

table() { # TITLE PORT
    echo
    echo "**$1**"
    echo
    echo "| clients | batch | sessions | sessions/s | images/s | latency p50 | latency p95 |"
    echo "|---|---|---|---|---|---|---|"
    for b in $BATCHES; do
        for k in $CONCURRENCY; do
            read -r sps p50 p95 n < <(load "$2" "$k" "$b")
            awk -v k="$k" -v b="$b" -v n="$n" -v s="$sps" -v p="$p50" -v q="$p95" \
                'BEGIN {printf "| %d | %d | %d | %.2f | %.1f | %.3f s | %.3f s |\n", k, b, n, s, s * b, p, q}'
        done
    done
}

echo "Load: \`$MODEL\`, $ROUNDS sessions per client, $(nproc) cores, binaries $BIN, $(date -u '+%Y-%m-%d %H:%M UTC'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)."

# (a) One server.
P=$(start_server "$BASE" 8)
PIDS+=("$P")
wait_serving "$BASE"
table "One server (--max-sessions 8)" "$BASE"
kill -TERM "$P"
while kill -0 "$P" 2>/dev/null; do sleep 0.1; done

# (b) HAProxy with two replicas.
if [ -z "$HAPROXY" ]; then
    echo
    echo "(HAProxy is not installed: run deploy/run_local.sh once to install it.)"
else
    R=()
    for i in 1 2; do
        P=$(start_server $((BASE + i)) 4 $((BASE + 10 + i)))
        PIDS+=("$P")
        R+=("$P")
        wait_serving $((BASE + i))
    done
    export MP2ML_LB_BIND=127.0.0.1:$((BASE + 20)) MP2ML_MAX_SESSIONS=4
    export MP2ML_R1=127.0.0.1:$((BASE + 1)) MP2ML_R1_HOST=127.0.0.1 MP2ML_R1_CHECK=$((BASE + 11))
    export MP2ML_R2=127.0.0.1:$((BASE + 2)) MP2ML_R2_HOST=127.0.0.1 MP2ML_R2_CHECK=$((BASE + 12))
    "$HAPROXY" -db -f deploy/haproxy.cfg >"$WORK/haproxy.log" 2>&1 &
    PIDS+=($!)
    sleep 1.5
    table "HAProxy (leastconn) in front of two replicas (--max-sessions 4 each), same machine" $((BASE + 20))
    for p in "${R[@]}"; do kill -TERM "$p"; done
    for p in "${R[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
fi
echo
echo "End: load average $(cut -d' ' -f1-3 /proc/loadavg). Command: \`bash deploy/load_bench.sh\`$( [ "$MODEL" = cryptonets_relu ] || echo " (MODEL=$MODEL)")."
