#!/usr/bin/env bash
# scale.sh N: hold N idle WebSocket connections against `myriad serve`, pinged, then close them, and
# report what they cost.
#
# The work is split over processes because of the per-process open-files limit (20,000 here, and on
# the lent 16-core machine): enough `myriad serve` processes on one port (SO_REUSEPORT spreads the
# connections over their listeners) and enough `myriad-load hold` processes, each on its own source
# addresses in 127.0.0.0/8. Where the limit allows millions of files per process, one server process
# per core is used instead.
#
# Reports: connections held; user-space RSS per connection (anonymous RSS, i.e. heap and stacks
# without code pages, summed over the server processes, delta from before); kernel memory per connection (Slab and TCP buffer pages, both ends of each loopback
# connection counted, so also given per socket); server CPU while idle; pings answered; ramp rate;
# server RSS after the connections closed.
#
# Everything is bounded: the ramp (RAMP_TIMEOUT), the hold (HOLD), the whole run (a watchdog kills
# every process started here after MAX_SECONDS). Traffic goes to 127.0.0.1 only.
#
# Environment: HOLD (s, default 40), IDLE_TIMEOUT (server idle timeout, s, default 20: a ping every
# 10 s), PORT (default 9500), RATE (new connections/s per load process, default 5000),
# RAMP_TIMEOUT (s, default 300), MAX_SECONDS (default 900), PER_SERVER / PER_CLIENT (connections
# per process; default from the open-files limit), NO_TUNE=1 to skip scripts/tune.sh, SKIP_BUILD=1.
set -euo pipefail

N=${1:?usage: scripts/scale.sh N}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
HOLD=${HOLD:-40}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-20}
PORT=${PORT:-9500}
RATE=${RATE:-5000}
RAMP_TIMEOUT=${RAMP_TIMEOUT:-300}
MAX_SECONDS=${MAX_SECONDS:-900}
OUT=$ROOT/target/scale/$N
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.json

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --bin myriad >/dev/null
  (cd bench && cargo build --release --bin myriad-load >/dev/null)
fi
SERVER_BIN=$ROOT/target/release/myriad
LOAD_BIN=$ROOT/bench/target/release/myriad-load

if [ "${NO_TUNE:-0}" != 1 ] && [ -x scripts/tune.sh ]; then
  scripts/tune.sh both >"$OUT/tune.log" 2>&1 || echo "scale: tune.sh reported problems (see $OUT/tune.log)"
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
CORES=$(nproc)
# Headroom for the process's own files; the kernel's spread over listeners is not exactly even.
USABLE=$(( NOFILE > 1000 ? NOFILE - 500 : NOFILE / 2 ))
if [ -n "${PER_SERVER:-}" ]; then
  :
elif [ $(( USABLE * CORES )) -ge "$N" ] && [ "$USABLE" -ge 1000000 ]; then
  PER_SERVER=$(( (N + CORES - 1) / CORES ))
else
  PER_SERVER=$(( USABLE * 3 / 4 ))
fi
PER_CLIENT=${PER_CLIENT:-$(( USABLE < 15000 ? USABLE : 15000 ))}
SERVERS=$(( (N + PER_SERVER - 1) / PER_SERVER ))
CLIENTS=$(( (N + PER_CLIENT - 1) / PER_CLIENT ))
echo "scale: N=$N open-files limit=$NOFILE cores=$CORES -> $SERVERS server process(es), $CLIENTS load process(es)"

PIDS_SERVER=()
PIDS_CLIENT=()
cleanup() {
  for p in "${PIDS_CLIENT[@]}" "${PIDS_SERVER[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS_CLIENT[@]}" "${PIDS_SERVER[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null || true
}
trap cleanup EXIT
( sleep "$MAX_SECONDS"; echo "scale: watchdog: $MAX_SECONDS s passed, stopping"; kill -TERM $$ ) &
WATCHDOG=$!

rss_kb() { # sum of RssAnon (heap and stacks; code pages excluded) over the given pids
  local total=0 p v
  for p in "$@"; do
    v=$(awk '/^RssAnon:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}
cpu_ticks() { # utime+stime over the given pids
  local total=0 p v
  for p in "$@"; do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}
slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
tcp_inuse() { awk '/^TCP:/ {print $3}' /proc/net/sockstat; }
tcp_mem_pages() { awk '/^TCP:/ {for (i=1;i<=NF;i++) if ($i=="mem") print $(i+1)}' /proc/net/sockstat; }

SLAB0=$(slab_kb); TCP0=$(tcp_inuse); TCPMEM0=$(tcp_mem_pages)
for i in $(seq 1 "$SERVERS"); do
  "$SERVER_BIN" serve --listen "127.0.0.1:$PORT" --reuse-port --workers 1 --idle-timeout "$IDLE_TIMEOUT" \
    --handshake-timeout 60 --max-pending-handshakes 65536 --max-pending-per-ip 65536 >"$OUT/server-$i.log" 2>&1 &
  PIDS_SERVER+=($!)
done
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
# Warm-up: a few connections through every code path (handshake, ping, close) first, so that the
# baseline already holds the stacks and buffers any server touches once, whatever its load.
"$LOAD_BIN" hold --server "127.0.0.1:$PORT" -c $(( SERVERS * 50 )) --hold 1 >/dev/null 2>&1 || true
sleep 2
RSS0=$(rss_kb "${PIDS_SERVER[@]}")
echo "scale: servers up (pids ${PIDS_SERVER[*]}), RSS ${RSS0} kB total"

T0=$(date +%s.%N)
left=$N
for i in $(seq 1 "$CLIENTS"); do
  n=$(( left < PER_CLIENT ? left : PER_CLIENT ))
  left=$(( left - n ))
  # Own source addresses per load process: 10,000 connections per address keeps well inside the
  # ephemeral port range of one address.
  naddr=$(( (n + 9999) / 10000 ))
  first=$(( (i - 1) * 8 + 1 ))
  last=$(( first + naddr - 1 ))
  src="127.1.$(( first / 250 )).$(( first % 250 + 1 ))-127.1.$(( last / 250 )).$(( last % 250 + 1 ))"
  "$LOAD_BIN" hold --server "127.0.0.1:$PORT" -c "$n" --sources "$src" --connect-rate "$RATE" \
    --ramp-timeout "$RAMP_TIMEOUT" --hold "$HOLD" >"$OUT/load-$i.json" 2>"$OUT/load-$i.log" &
  PIDS_CLIENT+=($!)
done

open_total() {
  local total=0 f v
  for f in "$OUT"/load-*.log; do
    v=$(grep -o 'open=[0-9]*' "$f" 2>/dev/null | tail -1 | cut -d= -f2 || true)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

# Ramp: wait until every load process reports its connections open (or gives up).
while :; do
  sleep 2
  held=$(open_total)
  now=$(date +%s.%N)
  echo "scale: t=$(awk -v a="$now" -v b="$T0" 'BEGIN {printf "%.0f", a - b}')s open=$held of $N"
  ramped=$(grep -l -E '^(ramp done|ramp timeout)' "$OUT"/load-*.log 2>/dev/null | wc -l || true)
  [ "$ramped" -ge "$CLIENTS" ] && break
  alive=0
  for p in "${PIDS_CLIENT[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" -eq 0 ] && break
done
T1=$(date +%s.%N)
sleep 3
HELD=$(open_total)
RSS1=$(rss_kb "${PIDS_SERVER[@]}")
SLAB1=$(slab_kb); TCP1=$(tcp_inuse); TCPMEM1=$(tcp_mem_pages)
CPU0=$(cpu_ticks "${PIDS_SERVER[@]}")
IDLE_WINDOW=$(( HOLD > 25 ? HOLD - 10 : HOLD / 2 ))
sleep "$IDLE_WINDOW"
CPU1=$(cpu_ticks "${PIDS_SERVER[@]}")
HELD2=$(open_total)
echo "scale: held $HELD (still $HELD2 after ${IDLE_WINDOW}s idle); waiting for the load processes to close"
for p in "${PIDS_CLIENT[@]}"; do wait "$p" || true; done
PIDS_CLIENT=()
# Connections are closed by the load processes' exit; give the servers time to notice.
for _ in $(seq 1 60); do
  [ "$(tcp_inuse)" -le $(( TCP0 + SERVERS + 10 )) ] && break
  sleep 0.5
done
sleep 2
RSS2=$(rss_kb "${PIDS_SERVER[@]}")
TCP2=$(tcp_inuse)
sum_field() { { cat "$OUT"/load-*.json 2>/dev/null | grep -o "\"$1\":[0-9]*" || true; } | cut -d: -f2 | awk '{s += $1} END {print s + 0}'; }
PINGS=$(sum_field pings)
FAILED=$(sum_field failed)
CLOSED=$(sum_field closed_by_server)
TCK=$(getconf CLK_TCK)

python3 - "$OUT/result.json" <<PY
import json, sys
N, held, held2 = $N, $HELD, $HELD2
rss0, rss1, rss2 = $RSS0, $RSS1, $RSS2
slab0, slab1 = $SLAB0, $SLAB1
tcp0, tcp1, tcp2 = $TCP0, $TCP1, $TCP2
mem0, mem1 = $TCPMEM0, $TCPMEM1
ramp_s = $T1 - $T0
cpu_s = ($CPU1 - $CPU0) / $TCK
window = $IDLE_WINDOW
h = max(held, 1)
r = {
  "requested": N, "held": held, "held_after_idle_window": held2,
  "server_processes": $SERVERS, "load_processes": $CLIENTS,
  "ramp_seconds": round(ramp_s, 2), "connections_per_second": round(held / max(ramp_s, 1e-9)),
  "server_rss_kb_before": rss0, "server_rss_kb_held": rss1, "server_rss_kb_after_close": rss2,
  "user_bytes_per_connection": round((rss1 - rss0) * 1024 / h, 1),
  "kernel_slab_bytes_per_connection_pair": round((slab1 - slab0) * 1024 / h, 1),
  "kernel_slab_bytes_per_socket": round((slab1 - slab0) * 1024 / h / 2, 1),
  "tcp_buffer_bytes_per_socket": round((mem1 - mem0) * 4096 / max(tcp1 - tcp0, 1), 1),
  "tcp_sockets_before_held_after": [tcp0, tcp1, tcp2],
  "server_cpu_seconds_idle_window": round(cpu_s, 3), "idle_window_seconds": window,
  "server_cpu_percent_idle": round(100 * cpu_s / window, 2),
  "pings_answered": $PINGS, "failed": $FAILED, "closed_by_server": $CLOSED,
  "rss_returned_kb": rss1 - rss2,
}
json.dump(r, open(sys.argv[1], "w"), indent=1)
for k, v in r.items():
    print(f"  {k:40} {v}")
PY
echo "scale: result in $OUT/result.json"
[ "$HELD" -ge "$N" ]
