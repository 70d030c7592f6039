#!/usr/bin/env bash
# soak.sh: churn soak of `myriad serve --mode pubsub` (issue 11). For DURATION seconds,
# connections open and close without pause (each lives LIFETIME_MS, subscribed to the fan-out
# topic, so every publish also reaches connections that are about to leave), while a steady set
# of subscribers receives a publisher's messages at a fixed rate. Afterwards the server's RSS and
# open descriptors must come back to where they started: no leak of slots, buffers, topics or
# sockets.
#
#   bash scripts/soak.sh                  # 600 s, about a million connections opened
#   DURATION=60 CHURN=2000 bash scripts/soak.sh
#
# Environment: DURATION (s, default 600), CHURN (connections kept churning, default 2000),
# LIFETIME_MS (default 500), SUBSCRIBERS (steady ones, default 200), PUBLISH_RATE (per s,
# default 500), WORKERS (default 2), PORT (default 9700), RSS_SLACK_KB (allowed RSS growth,
# default 16384), SKIP_BUILD=1. Traffic goes to 127.0.0.1 only; every process is bounded in time.
# Output: a summary on stdout and target/soak-<stamp>/; exit status 1 if a check failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${DURATION:-600}
CHURN=${CHURN:-2000}
LIFETIME_MS=${LIFETIME_MS:-500}
SUBSCRIBERS=${SUBSCRIBERS:-200}
PUBLISH_RATE=${PUBLISH_RATE:-500}
WORKERS=${WORKERS:-2}
PORT=${PORT:-9700}
RSS_SLACK_KB=${RSS_SLACK_KB:-16384}
OUT=$ROOT/target/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --bin myriad || exit 1
  (cd bench && cargo build --release -p myriad-load) || exit 1
fi
SERVER=$ROOT/target/release/myriad
LOAD=$ROOT/bench/target/release/myriad-load
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

"$SERVER" serve --mode pubsub --listen "127.0.0.1:$PORT" --workers "$WORKERS" \
  --max-pending-per-ip 65536 >"$OUT/server.log" 2>&1 &
SRV=$!
trap 'kill -TERM $SRV 2>/dev/null; wait $SRV 2>/dev/null' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done
sleep 1
RSS0=$(rss_kb $SRV); FD0=$(fds $SRV)
echo "soak: server pid $SRV: RSS ${RSS0} kB, ${FD0} fds at start; ${DURATION}s of churn"

# A short warm-up run first, so that one-off growth (pools, slab, topic tables) is in the
# baseline, then the measured run.
timeout 60 "$LOAD" churn --server "127.0.0.1:$PORT" -c "$CHURN" --lifetime-ms "$LIFETIME_MS" \
  --subscribe -d 10 --connect-rate 20000 >"$OUT/warmup.json" 2>"$OUT/warmup.log"
sleep 3
RSS1=$(rss_kb $SRV); FD1=$(fds $SRV)
echo "soak: after warm-up: RSS ${RSS1} kB, ${FD1} fds"

timeout $((DURATION + 120)) "$LOAD" fanout --server "127.0.0.1:$PORT" -c "$SUBSCRIBERS" \
  --publish-rate "$PUBLISH_RATE" -d "$DURATION" >"$OUT/fanout.json" 2>"$OUT/fanout.log" &
FAN=$!
timeout $((DURATION + 120)) "$LOAD" churn --server "127.0.0.1:$PORT" -c "$CHURN" \
  --lifetime-ms "$LIFETIME_MS" --subscribe -d "$DURATION" --connect-rate 20000 \
  >"$OUT/churn.json" 2>"$OUT/churn.log" &
CH=$!
PEAK=0
while kill -0 $CH 2>/dev/null || kill -0 $FAN 2>/dev/null; do
  r=$(rss_kb $SRV); [ "${r:-0}" -gt "$PEAK" ] && PEAK=$r
  sleep 5
done
wait $FAN; FAN_RC=$?
wait $CH; CH_RC=$?
sleep 5
RSS2=$(rss_kb $SRV); FD2=$(fds $SRV)
curl -s "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics.txt" 2>/dev/null || true

FAILED=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; FAILED=$((FAILED + 1)); fi; }
echo "churn:  $(cat "$OUT/churn.json")"
echo "fanout: $(cat "$OUT/fanout.json")"
echo "soak: RSS start ${RSS0} kB, after warm-up ${RSS1} kB, peak ${PEAK} kB, end ${RSS2} kB; fds ${FD0} / ${FD1} / ${FD2}"
check "load processes ended cleanly" "[ $FAN_RC -eq 0 ] && [ $CH_RC -eq 0 ]"
check "churn opened connections" "grep -q '\"opened\":[1-9]' '$OUT/churn.json'"
check "no fan-out gaps or errors" "grep -q '\"errors\":0' '$OUT/fanout.json'"
check "descriptors back to the start" "[ $FD2 -le $((FD1 + 2)) ]"
check "RSS back within ${RSS_SLACK_KB} kB of the warm-up figure" "[ $RSS2 -le $((RSS1 + RSS_SLACK_KB)) ]"
check "server still running" "kill -0 $SRV"
echo "soak: logs in $OUT"
echo "soak: $(( 6 - FAILED )) passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
