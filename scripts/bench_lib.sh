# bench_lib.sh: helpers shared by scripts/bench.sh and scripts/fanout.sh (sourced, not run).
# Expects SERVER_PID, LOAD_PID, DRAIN_PID, WATCHDOG, OUT and MAX_SECONDS set by the caller.

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
