#!/usr/bin/env bash
# User-space memory per idle connection, ws and wss, myriad beside a tokio-rustls peer
# (bench/peers/tungstenite-echo: tokio-tungstenite over tokio-rustls, rustls' buffered
# ServerConnection), all held by the same client (myriad-load hold, rustls' client).
#
# For each server: start it (one reactor / one current-thread runtime), read its RssAnon, open N
# connections (TLS 1.3 where wss), wait until every one is upgraded, read RssAnon again, and
# report (held - before) / N. The client lives in its own process, so none of its memory counts.
#
# The ramp also gives the handshake cost: the server's CPU time (utime+stime, pinned to CPU 0;
# the client on CPU 1) from before the first connection to "ramp done", per connection opened:
# TCP accept, TLS handshake where wss, and the WebSocket upgrade, as connections per CPU-second.
#
# Usage: scripts/tls_memory.sh [N]        (default 10000; bounded: each hold lasts 3 s)
# Servers: myriad-ws, myriad-wss (the default TLS mode: rustls' unbuffered connection),
# myriad-wss-handover (--tls-record-handover: after the handshake, the keys alone), peer-ws,
# peer-wss.
# RssAnon is read SETTLE seconds (default 2) after the last connection opened (the hold lasts 3).
# Environment: SERVERS="myriad-ws myriad-wss peer-ws peer-wss" to choose; OUT (default
# target/tls-memory) for logs, the certificate and results.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
N=${1:-10000}
OUT=${OUT:-$ROOT/target/tls-memory}
SETTLE=${SETTLE:-2}
SERVERS=${SERVERS:-"myriad-ws myriad-wss myriad-wss-handover peer-ws peer-wss"}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --bins -q
(cd bench && cargo build --release -q -p myriad-load -p tungstenite-echo)
MYRIAD=$ROOT/target/release/myriad
LOAD=$ROOT/bench/target/release/myriad-load
PEER=$ROOT/bench/target/release/tungstenite-echo

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" >/dev/null 2>&1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_anon() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

SRV=
cleanup() { [ -n "$SRV" ] && kill -KILL "$SRV" 2>/dev/null || true; }
trap cleanup EXIT

results=$OUT/results.md
{
  echo "# Idle memory per connection, ws and wss ($(date -u +%F), N=$N, $(nproc) cores)"
  echo
  echo "| server | held | RssAnon before kB | held kB | bytes per idle connection | server CPU s for the opens | opens per CPU-second |"
  echo "|---|---|---|---|---|---|---|"
} >"$results"

for s in $SERVERS; do
  port=$(free_port)
  tls=()
  load_tls=()
  case $s in
    *-wss*) tls=(--tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem"); load_tls=(--tls-ca "$OUT/cert.pem") ;;
  esac
  [ "$s" = myriad-wss-handover ] && tls+=(--tls-record-handover)
  case $s in
    myriad-*)
      taskset -c 0 "$MYRIAD" serve --listen "127.0.0.1:$port" --workers 1 --no-http-endpoints \
        --max-pending-handshakes "$N" --max-pending-per-ip "$N" "${tls[@]}" >"$OUT/$s.server.log" 2>&1 &
      ;;
    peer-*)
      taskset -c 0 "$PEER" --listen "127.0.0.1:$port" "${tls[@]}" >"$OUT/$s.server.log" 2>&1 &
      ;;
  esac
  SRV=$!
  for _ in $(seq 100); do
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
    sleep 0.1
  done
  sleep 1
  before=$(rss_anon "$SRV")
  t0=$(cpu_ticks "$SRV")
  taskset -c 1 "$LOAD" hold --server "127.0.0.1:$port" -c "$N" --in-flight 128 --hold 3 "${load_tls[@]}" \
    >"$OUT/$s.load.json" 2>"$OUT/$s.load.log" &
  LOADPID=$!
  held_n=0
  for _ in $(seq 1200); do
    if grep -q '^ramp done' "$OUT/$s.load.log"; then
      held_n=$(sed -n 's/^ramp done: \([0-9]*\) open.*/\1/p' "$OUT/$s.load.log")
      break
    fi
    kill -0 "$LOADPID" 2>/dev/null || break
    sleep 0.1
  done
  t1=$(cpu_ticks "$SRV")
  sleep "$SETTLE"
  held=$(rss_anon "$SRV")
  wait "$LOADPID" || true
  kill -TERM "$SRV" 2>/dev/null || true
  wait "$SRV" 2>/dev/null || true
  SRV=
  per=$(python3 -c "print('%.0f' % (($held - $before) * 1024 / max($held_n, 1)))")
  cpu=$(python3 -c "print('%.2f' % (($t1 - $t0) / $CLK_TCK))")
  rate=$(python3 -c "print('%.0f' % ($held_n / max(($t1 - $t0) / $CLK_TCK, 1e-9)))")
  printf '%-12s held %6s  RssAnon before %7s kB  held %7s kB  -> %6s bytes per idle connection; opens: %s CPU s, %s per CPU-second\n' \
    "$s" "$held_n" "$before" "$held" "$per" "$cpu" "$rate"
  echo "| $s | $held_n | $before | $held | $per | $cpu | $rate |" >>"$results"
  [ "$held_n" = "$N" ] || { echo "$s: only $held_n of $N connections opened (see $OUT/$s.load.log)"; exit 1; }
done
echo "results: $results"
