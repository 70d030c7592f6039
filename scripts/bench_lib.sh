# shellcheck shell=bash
# bench_lib.sh: helpers shared by scripts/bench.sh and scripts/fanout.sh (sourced, not run).
# Expects ROOT, DURATION, MARGIN, SERVER_PID, LOAD_PID, DRAIN_PID, WATCHDOG, MAX_SECONDS, LOAD_BIN,
# LOAD_CPU, SERVER_CPU and PORT set by the caller.
# shellcheck disable=SC2153,SC2034 # inputs set by the caller; outputs read by the caller

# bench_setup NAME: the run's folders and files, for a script whose results are NAME-<date>.md:
# STAMP, OUT (target/bench/NAME-STAMP, for logs and per-run records), RESULT (unless set), RUNS
# (the per-run records, emptied); checks the tools; sets CLK_TCK and WINDOW_US (the CPU window:
# from "ramp done" to MARGIN s before the load generator stops, in microseconds).
bench_setup() {
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  OUT=$ROOT/target/bench/$1-$STAMP
  mkdir -p "$OUT" "$ROOT/bench/results"
  RESULT=${RESULT:-$ROOT/bench/results/$1-$(date -u +%Y-%m-%d).md}
  RUNS=$OUT/runs.jsonl
  : >"$RUNS"
  local tool
  for tool in taskset getconf python3 ss; do
    command -v "$tool" >/dev/null || { echo "$1: $tool not found" >&2; exit 1; }
  done
  CLK_TCK=$(getconf CLK_TCK)
  WINDOW_US=$(python3 -c "print(max(100000, int(($DURATION - $MARGIN) * 1e6)))")
}

# start_server PORT LOG CMD...: starts CMD pinned to SERVER_CPU (taskset execs it, so SERVER_PID
# is the server's own PID), output to LOG; fails (with the server stopped) if it does not listen
# on PORT within 10 s.
start_server() {
  local port=$1 log=$2
  shift 2
  taskset -c "$SERVER_CPU" "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  wait_listening "$port" "$SERVER_PID" && return 0
  stop_server
  return 1
}

# cpu_ticks PID: utime+stime of the whole process (all threads), in CLK_TCK ticks. Bash builtins
# only, so sampling costs no fork. Fields after the ")" of comm start at field 3 (state).
cpu_ticks() {
  local line f
  read -r line <"/proc/$1/stat" || return 1
  read -r -a f <<<"${line##*) }"
  echo $(( f[11] + f[12] ))
}
# core_ticks CPU: "busy steal" ticks of one core from /proc/stat (busy = user+nice+system+irq+softirq),
# to see how much of the pinned cores other jobs on this shared machine took during a window.
core_ticks() {
  local name rest
  while read -r name rest; do
    if [ "$name" = "cpu$1" ]; then
      read -r -a f <<<"$rest"
      echo "$(( f[0] + f[1] + f[2] + f[5] + f[6] )) ${f[7]}"
      return 0
    fi
  done </proc/stat
  return 1
}
now_us() { echo "${EPOCHREALTIME/./}"; }
# alive PID: running (a child that exited stays a zombie until waited for, and kill -0 succeeds on it).
alive() {
  local line
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  line=${line##*) }
  [ "${line:0:1}" != Z ]
}

# wait_listening PORT PID: until PID listens on PORT (no connection is made), at most 10 s, while PID
# lives.
wait_listening() {
  for _ in $(seq 200); do
    ss -Hltnp "sport = :$1" | grep -q "pid=$2," && return 0
    alive "$2" || return 1
    sleep 0.05
  done
  return 1
}

# stop_server: SIGTERM, then SIGKILL after 5 s.
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
  local p
  for p in "$LOAD_PID" "$DRAIN_PID" "$SERVER_PID"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  sleep 0.5
  for p in "$LOAD_PID" "$SERVER_PID"; do
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
  done
  [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null # it stops its own sleep
  rm -f "$OUT/stderr.fifo"
}

# start_watchdog: stops this script (SIGTERM) after MAX_SECONDS; cleanup runs from the EXIT trap.
start_watchdog() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  (
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$MAX_SECONDS" & sp=$!
    wait "$sp"
    echo "$(basename "$0"): watchdog: $MAX_SECONDS s passed, stopping" >&2
    kill -TERM $$
  ) &
  WATCHDOG=$!
}

# next_port: sets RUN_PORT to a fresh port from PORT on (one per run, so no run meets the
# TIME_WAIT sockets of the one before), skipping any that something else listens on.
next_port() {
  while :; do
    RUN_PORT=$(( PORT + RUN_NO % 200 ))
    RUN_NO=$(( RUN_NO + 1 ))
    ss -Hltn "sport = :$RUN_PORT" | grep -q . || break
  done
}

# measure_load LJSON LLOG ARGS...: runs `$LOAD_BIN ARGS...` pinned to LOAD_CPU, its stdout to LJSON
# and stderr to LLOG, and samples the CPU of the server (SERVER_PID) and of the load generator
# over its measuring window: from its "ramp done" line to MARGIN s before WINDOW_US has passed,
# so neither the handshakes nor the closing of the connections is counted. Sets RAMP (1 when the
# ramp was done), LRC (the load generator's exit status), W0 W1 (µs), C0 C1 (server ticks), L0 L1
# (load generator ticks), K0 K1 ("busy steal busy steal" of the two cores).
measure_load() {
  local ljson=$1 llog=$2
  shift 2
  # Its stderr comes through a FIFO so that "ramp done" is seen the moment it is written; after
  # that a background cat drains the rest into the log.
  local fifo=$OUT/stderr.fifo
  rm -f "$fifo"; mkfifo "$fifo"
  taskset -c "$LOAD_CPU" "$LOAD_BIN" "$@" >"$ljson" 2>"$fifo" &
  LOAD_PID=$!
  local fd line
  RAMP=0
  exec {fd}<"$fifo"
  while IFS= read -r -t 90 -u "$fd" line; do
    printf '%s\n' "$line" >>"$llog"
    case $line in
      "ramp done"*) RAMP=1; break ;;
      "ramp timeout"*) break ;;
    esac
  done
  W1=0; C1=0; L1=0; K1="0 0 0 0"
  W0=$(now_us); C0=$(cpu_ticks "$SERVER_PID" || echo -1); L0=$(cpu_ticks "$LOAD_PID" || echo -1)
  K0="$(core_ticks "$SERVER_CPU") $(core_ticks "$LOAD_CPU")"
  cat <&"$fd" >>"$llog" &
  DRAIN_PID=$!
  exec {fd}<&-
  if [ "$RAMP" = 1 ]; then
    # Its window began at its "ramp done", a moment before W0.
    local left=$(( W0 + WINDOW_US - $(now_us) ))
    if [ "$left" -gt 0 ]; then
      sleep "$(printf '%d.%06d' $(( left / 1000000 )) $(( left % 1000000 )))"
    fi
    W1=$(now_us); C1=$(cpu_ticks "$SERVER_PID" || echo -1); L1=$(cpu_ticks "$LOAD_PID" || echo -1)
    K1="$(core_ticks "$SERVER_CPU") $(core_ticks "$LOAD_CPU")"
  fi
  # It ends DURATION s after its ramp; bounded by the read timeout and its ramp timeout.
  LRC=0
  wait "$LOAD_PID" || LRC=$?
  LOAD_PID=""
  wait "$DRAIN_PID" 2>/dev/null || true
  DRAIN_PID=""
  rm -f "$fifo"
}
