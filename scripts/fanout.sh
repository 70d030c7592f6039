#!/usr/bin/env bash
# fanout.sh: server CPU per pub/sub delivery (issue 4), `myriad serve --mode pubsub --workers 1`
# pinned to one core, `myriad-load fanout` pinned to the other. For each point (subscribers x
# message size, plain and with permessage-deflate) it reads the server's utime+stime from
# /proc/PID/stat when the load generator reports every subscriber subscribed ("ramp done") and
# when it finishes, and divides by the deliveries counted by the subscribers.
#
# Environment: SUBS (default "1000 10000"), SIZES (default "64 1024"), RATE (publishes/s,
# default 200), DURATION (s, default 5), PORT (default 9401), SKIP_BUILD=1.
# Bounded: each run stops by itself; servers are stopped on exit. Traffic: 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SUBS=${SUBS:-"1000 10000"}
SIZES=${SIZES:-"64 1024"}
RATE=${RATE:-200}
DURATION=${DURATION:-5}
PORT=${PORT:-9401}
OUT=target/fanout
mkdir -p "$OUT"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --bin myriad >/dev/null
  (cd bench && cargo build --release --bin myriad-load >/dev/null)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TCK=$(getconf CLK_TCK)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '%-8s %-6s %-8s %12s %12s %10s %10s %14s %8s\n' subs size deflate deliveries deliv/s p50_us p99_us cpu_ns/deliv gaps
for subs in $SUBS; do
  for size in $SIZES; do
    for deflate in no yes; do
      taskset -c 0 target/release/myriad serve --mode pubsub --listen "127.0.0.1:$PORT" \
        --workers 1 --max-pending-handshakes 20000 >"$OUT/server.log" 2>&1 &
      SERVER_PID=$!
      for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
      flag=()
      [ "$deflate" = yes ] && flag=(--deflate)
      fifo=$OUT/stderr.fifo
      rm -f "$fifo"; mkfifo "$fifo"
      timeout 300 taskset -c 1 bench/target/release/myriad-load fanout --server "127.0.0.1:$PORT" \
        -c "$subs" -s "$size" --publish-rate "$RATE" -d "$DURATION" "${flag[@]}" \
        >"$OUT/result.json" 2>"$fifo" &
      LOAD=$!
      c0=
      while IFS= read -r line; do
        echo "$line" >>"$OUT/load.log"
        case "$line" in "ramp done"*) c0=$(ticks "$SERVER_PID") ;; esac
      done <"$fifo"
      wait "$LOAD" || true
      c1=$(ticks "$SERVER_PID")
      kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
      python3 - "$OUT/result.json" "${c0:-$c1}" "$c1" "$TCK" "$subs" "$size" "$deflate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c0, c1, tck = int(float(sys.argv[2])), int(float(sys.argv[3])), int(sys.argv[4])
d = max(r["messages"], 1)
ns = (c1 - c0) / tck * 1e9 / d
print("%-8s %-6s %-8s %12d %12.0f %10d %10d %14.0f %8d" % (
    sys.argv[5], sys.argv[6], sys.argv[7], r["messages"], r["messages_per_sec"],
    r["p50_us"], r["p99_us"], ns, r["errors"]))
PY
      sleep 1
    done
  done
done
