#!/usr/bin/env bash
# bench.sh: side-by-side echo benchmark of `myriad serve` against echo servers on tokio-tungstenite and
# on fastwebsockets (bench/peers/), all with one worker.
#
# For each point of {100, 1000} connections x {16, 1024}-byte messages, the servers run alternately
# (myriad, tungstenite, fastwebsockets, myriad, ...) for ROUNDS rounds. Each run: the server starts
# pinned to SERVER_CPU (taskset), `myriad-load echo` runs pinned to LOAD_CPU for DURATION seconds after
# its ramp, then the server is stopped.
#
# The deciding figure is server CPU microseconds per echoed message. The server's CPU time
# (utime+stime of all its threads, /proc/PID/stat, in CLK_TCK ticks) is sampled when the load generator
# reports "ramp done" on stderr and again shortly (MARGIN s) before its measuring window ends, so
# neither the handshakes nor the closing of the connections is counted. Over that window:
#     CPU us/msg = (server CPU seconds / wall seconds) / (messages/s of the load generator) * 1e6
# i.e. the server's CPU rate over the load generator's message rate, both steady over the window.
# The server's CPU utilisation over the window is reported too: well under 90% means the server
# was waiting for the load generator (or lost its core to other jobs), and the table says so.
# Each run also checks errors == 0 and opened == connections.
#
# Output: the table on stdout, and written with the machine's description to
# bench/results/echo-<UTC date>.md; raw per-run records and logs in target/bench/echo-<stamp>/.
# Exit status 1 if any run failed its checks or could not run.
#
# Environment: ROUNDS (default 3), DURATION (s after the ramp, default 5), CONNS ("100 1000"),
# SIZES ("16 1024"), PIPELINE (messages in flight per connection, default 1), PORT (first port,
# default 9600; each run uses a fresh one), SERVER_CPU (0), LOAD_CPU (1), MARGIN (s, default 0.25),
# MAX_SECONDS (watchdog for the whole script, default 1800), SKIP_BUILD=1 to use existing binaries,
# TUNGSTENITE_ARGS (extra flags for tungstenite-echo, e.g. "--read-buffer 8192"; default none: the
# crate's default configuration), RESULT (the report file; default bench/results/echo-<date>.md).
# TLS=1: the same over wss (TLS 1.3, a certificate made by openssl): myriad against
# tungstenite-echo over tokio-rustls (fastwebsockets has no TLS peer here), the load generator
# speaking rustls' client; myriad twice, in its default TLS mode and with --tls-record-handover
# (myriad-handover); results in bench/results/echo-wss-<date>.md.
# Traffic goes to 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-"100 1000"}
SIZES=${SIZES:-"16 1024"}
PIPELINE=${PIPELINE:-1}
PORT=${PORT:-9600}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MARGIN=${MARGIN:-0.25}
MAX_SECONDS=${MAX_SECONDS:-1800}
TUNGSTENITE_ARGS=${TUNGSTENITE_ARGS:-}
TLS=${TLS:-0}
SERVERS=(myriad tungstenite fastwebsockets)
[ "$TLS" = 1 ] && SERVERS=(myriad myriad-handover tungstenite)

SERVER_PID=""
LOAD_PID=""
DRAIN_PID=""
WATCHDOG=""
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
if [ "$TLS" = 1 ]; then bench_setup echo-wss; else bench_setup echo; fi
SERVER_TLS=()
LOAD_TLS=()
if [ "$TLS" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" >/dev/null 2>&1
  SERVER_TLS=(--tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem")
  LOAD_TLS=(--tls-ca "$OUT/cert.pem")
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "bench: building (release): myriad, then the bench workspace" >&2
  cargo build --release --bin myriad
  (cd bench && cargo build --release)
fi
MYRIAD_BIN=$ROOT/target/release/myriad
LOAD_BIN=$ROOT/bench/target/release/myriad-load
TUNG_BIN=$ROOT/bench/target/release/tungstenite-echo
FWS_BIN=$ROOT/bench/target/release/fastwebsockets-echo
for b in "$MYRIAD_BIN" "$LOAD_BIN" "$TUNG_BIN" "$FWS_BIN"; do
  [ -x "$b" ] || { echo "bench: $b missing (run without SKIP_BUILD=1)" >&2; exit 1; }
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_watchdog

FAILED=0
RUN_NO=0
# run_one SERVER CONNS SIZE ROUND: one measured run; appends a JSON record to $RUNS.
run_one() {
  local name=$1 c=$2 s=$3 round=$4
  next_port
  local port=$RUN_PORT
  local tag="c$c-s$s-r$round-$name"
  local slog=$OUT/$tag.server.log llog=$OUT/$tag.load.log ljson=$OUT/$tag.load.json
  local cmd
  case $name in
    myriad) cmd=("$MYRIAD_BIN" serve --listen "127.0.0.1:$port" --workers 1 "${SERVER_TLS[@]}") ;;
    myriad-handover)
      cmd=("$MYRIAD_BIN" serve --listen "127.0.0.1:$port" --workers 1 "${SERVER_TLS[@]}" --tls-record-handover) ;;
    tungstenite)
      # shellcheck disable=SC2206 # TUNGSTENITE_ARGS is a list of flags
      cmd=("$TUNG_BIN" --listen "127.0.0.1:$port" $TUNGSTENITE_ARGS "${SERVER_TLS[@]}") ;;
    fastwebsockets) cmd=("$FWS_BIN" --listen "127.0.0.1:$port") ;;
  esac
  if ! start_server "$port" "$slog" "${cmd[@]}"; then
    echo "bench: $tag: server did not start (see $slog)" >&2
    FAILED=1
    printf '{"point":"%s","conns":%d,"size":%d,"round":%d,"server":"%s","ok":false,"why":"server did not start"}\n' \
      "${c}c ${s}B" "$c" "$s" "$round" "$name" >>"$RUNS"
    return
  fi

  measure_load "$ljson" "$llog" echo --server "127.0.0.1:$port" -c "$c" -s "$s" \
    -d "$DURATION" --pipeline "$PIPELINE" --ramp-timeout 60 --in-flight 128 "${LOAD_TLS[@]}"
  stop_server

  PYTHONPATH="$ROOT/scripts" python3 - "$RUNS" "$ljson" "$name" "$c" "$s" "$round" "$RAMP" "$LRC" \
    "$W0" "$W1" "$C0" "$C1" "$L0" "$L1" "$CLK_TCK" "$K0" "$K1" <<'EOF' || FAILED=1
import sys
from bench_window import run_window, save_record
runs, ljson, name, c, s, rnd = sys.argv[1:7]
c, s, rnd = int(c), int(s), int(rnd)
rec = {"point": f"{c}c {s}B", "conns": c, "size": s, "round": rnd, "server": name}
load, why, win = run_window(ljson, *sys.argv[7:])
if load and load.get("opened") != c:
    why.append(f"opened={load.get('opened')} of {c}")
rec.update({k: load.get(k) for k in ("opened", "errors", "messages", "seconds",
                                     "messages_per_sec", "p50_us", "p99_us", "p999_us")})
if not why:
    rec.update(win)
    rec["cpu_us_per_msg"] = round(win["server_util"] / load["messages_per_sec"] * 1e6, 4)
if not save_record(runs, rec, why):
    print(f"bench: {name} {c}c {s}B round {rnd}: FAILED: {rec['why']}", file=sys.stderr)
    sys.exit(1)
print(f"bench: {rec['point']:>12} r{rnd} {name:<15} {rec['cpu_us_per_msg']:8.3f} us/msg "
      f"{load['messages_per_sec']:>10.0f} msg/s  p99 {load['p99_us']} us  "
      f"server util {rec['server_util']:.2f}  load util {rec['load_util']:.2f}  "
      f"others {rec['others_server_core']:.2f}/{rec['others_load_core']:.2f}", file=sys.stderr)
EOF
}

echo "bench: rounds=$ROUNDS duration=${DURATION}s pipeline=$PIPELINE server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; logs in $OUT" >&2
for c in $CONNS; do
  for s in $SIZES; do
    for round in $(seq "$ROUNDS"); do
      for name in "${SERVERS[@]}"; do
        run_one "$name" "$c" "$s" "$round"
      done
    done
  done
done

# Machine description and versions for the report.
MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
VERS=$(cd bench && python3 - <<'EOF'
import re
lock = open("Cargo.lock").read()
out = []
for name in ("tokio", "tokio-tungstenite", "tungstenite", "fastwebsockets", "hyper"):
    m = re.search(r'\[\[package\]\]\nname = "%s"\nversion = "([^"]+)"' % re.escape(name), lock)
    if m:
        out.append(f"{name} {m.group(1)}")
print(", ".join(out))
EOF
)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || COMMIT="$COMMIT (+ uncommitted changes in src/ or Cargo.toml)"

rc=0
python3 - "$RUNS" "$RESULT" "${SERVERS[@]}" <<EOF || rc=$?
import json, shutil, statistics, sys
runs_path, result = sys.argv[1:3]
servers = sys.argv[3:]
tls = "$TLS" == "1"
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
points = []
for r in runs:
    if (r["conns"], r["size"]) not in points:
        points.append((r["conns"], r["size"]))
med = statistics.median
rows, notes = [], []
head = ["point", "server", "CPU µs/msg (median)", "per round", "msgs/s", "p50 µs", "p99 µs",
        "server CPU util", "load gen util", "others on cores", "myriad/this", "note"]
for c, s in points:
    by = {n: [r for r in runs if r["conns"] == c and r["size"] == s and r["server"] == n] for n in servers}
    ok = {n: [r for r in by[n] if r["ok"]] for n in servers}
    m_cpu = med([r["cpu_us_per_msg"] for r in ok["myriad"]]) if ok["myriad"] else None
    for n in servers:
        good = ok[n]
        bad = len(by[n]) - len(good)
        note = []
        if bad:
            note.append(f"{bad} run(s) FAILED")
        if not good:
            rows.append([f"{c} conns × {s} B", n] + ["-"] * 9 + ["; ".join(note)])
            continue
        cpu = med([r["cpu_us_per_msg"] for r in good])
        util = med([r["server_util"] for r in good])
        others = max(med([r["others_server_core"] for r in good]), med([r["others_load_core"] for r in good]))
        if util < 0.9:
            note.append(f"⚠ server util {util:.0%} < 90%: the load generator (or a neighbour) was the bottleneck")
        if others > 0.1:
            note.append(f"⚠ other jobs took {others:.0%} of a pinned core")
        ratio = "-" if n == "myriad" or m_cpu is None else f"{m_cpu / cpu:.2f}"
        rows.append([f"{c} conns × {s} B", n, f"{cpu:.3f}",
                     " / ".join(f"{r['cpu_us_per_msg']:.3f}" for r in good),
                     f"{med([r['messages_per_sec'] for r in good]):,.0f}",
                     f"{med([r['p50_us'] for r in good]):.0f}",
                     f"{med([r['p99_us'] for r in good]):.0f}",
                     f"{util:.0%}", f"{med([r['load_util'] for r in good]):.0%}",
                     f"{med([r['others_server_core'] for r in good]):.0%} / {med([r['others_load_core'] for r in good]):.0%}",
                     ratio, "; ".join(note)])
        if ratio != "-" and m_cpu / cpu > 1:
            notes.append(f"- myriad is BEHIND {n} at {c} conns × {s} B: {m_cpu:.3f} vs {cpu:.3f} µs/msg ({m_cpu / cpu:.2f}x).")
table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
table += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(table)
print(text)
if notes:
    print("\n".join(notes))
failed = [r for r in runs if not r["ok"]]
with open(result, "w") as f:
    title = ("wss echo benchmark: myriad vs tokio-tungstenite over tokio-rustls (TLS 1.3, rustls 0.23 with ring on both)"
             if tls else "Echo benchmark: myriad vs tokio-tungstenite vs fastwebsockets")
    f.write(f"""# {title}

Command: \`{"TLS=1 " if tls else ""}ROUNDS=$ROUNDS DURATION=$DURATION PIPELINE=$PIPELINE${TUNGSTENITE_ARGS:+ TUNGSTENITE_ARGS="$TUNGSTENITE_ARGS"} scripts/bench.sh\` (run $STAMP)

- Machine: $MODEL, $(nproc) cores online to this job ($(nproc --all) in all), kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')
- myriad commit $COMMIT; peers: $VERS; $(rustc --version); tungstenite-echo flags: ${TUNGSTENITE_ARGS:-none (crate defaults: 128 KiB read buffer)}
- One worker each: \`myriad serve --workers 1\`, tokio current-thread runtime for the peers; server pinned to CPU $SERVER_CPU,
  \`myriad-load echo\` pinned to CPU $LOAD_CPU; runs alternate myriad, tungstenite, fastwebsockets; $ROUNDS rounds of ${DURATION} s
  after the ramp; pipeline $PIPELINE (messages in flight per connection); the load generator opens at most 128
  connections at once.
- CPU µs/msg: the server's utime+stime (/proc/PID/stat) from the load generator's "ramp done" to ${MARGIN} s before its
  window ends, as a rate, over the load generator's messages/s; handshakes and connection close are excluded.
  myriad/this < 1: myriad spends less CPU per echoed message than that peer.
- Server CPU util: server CPU seconds over wall seconds in that window; well under 90% means the server waited for
  the load generator (or lost its core to other jobs on this shared machine), so its figure is less sure.
- Load gen util: the same for \`myriad-load\`. Others on cores: busy time of the server's / the load generator's core
  (/proc/stat) not spent in those two processes, i.e. other jobs on this shared machine.
- Every run checked: errors = 0 and opened = connections. Failed runs: {len(failed)}.

{text}
""")
    if notes:
        f.write("\n" + "\n".join(notes) + "\n")
    if failed:
        f.write("\nFailed runs:\n\n" + "\n".join(f"- {r['point']} round {r['round']} {r['server']}: {r.get('why')}" for r in failed) + "\n")
    f.write("\n<details><summary>Per-run records</summary>\n\n\`\`\`\n" + "".join(json.dumps(r) + "\n" for r in runs) + "\`\`\`\n</details>\n")
print(f"\nbench: written to {result}", file=sys.stderr)
shutil.copy(result, "$OUT/")
sys.exit(1 if failed else 0)
EOF
[ "$FAILED" = 0 ] || rc=1
exit $rc
