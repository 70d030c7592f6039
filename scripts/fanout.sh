#!/usr/bin/env bash
# fanout.sh: pub/sub fan-out benchmark (issue 4): server CPU per delivery of `myriad serve --mode
# pubsub` (topics: each publish framed once, compressed at most once, written to each subscriber
# in one writev per batch) beside `naive-pubsub` (bench/peers/naive-pubsub: the same protocol
# on the same library, but the handler loops over its subscribers and sends to each one).
#
# For each point of SUBS subscribers x SIZES-byte data x DEFLATE (no: plain; yes: every subscriber
# negotiates permessage-deflate), the servers run alternately (topics, naive, topics, ...) for
# ROUNDS rounds, each with one worker, pinned to SERVER_CPU; `myriad-load fanout` runs pinned to
# LOAD_CPU: every connection subscribes to one topic and the first also publishes to it, closed
# loop: at most WINDOW publishes not yet received by every subscriber. So the server runs as fast
# as it can deliver, and no subscriber is more than WINDOW messages behind.
#
# CPU ns/delivery = (server CPU seconds / wall seconds) / (deliveries/s), the server's utime+stime
# (/proc/PID/stat) sampled at the load generator's "ramp done" (every connection subscribed) and
# MARGIN s before its window ends, as in scripts/bench.sh. Compressions per publish come from the
# server's own counters, logged when it stops. Each run checks: every connection opened and
# subscribed, every subscriber received every publish in order (no gaps), and at least one
# delivery.
#
# Output: the table on stdout, and with the machine's description in bench/results/fanout-<UTC
# date>.md; per-run records and logs in target/bench/fanout-<stamp>/. Exit 1 if a run failed.
#
# Environment: ROUNDS (default 2), DURATION (s after the ramp, default 4), SUBS ("1000 10000"),
# SIZES ("64 1024"), DEFLATE ("no yes"), WINDOW (default 64), SERVERS ("topics naive"; also
# topics-coalesce: topics with --publish-coalesce-us COALESCE_US, default 1000), PORT
# (default 9700; a fresh port per run), SERVER_CPU (0), LOAD_CPU (1), MARGIN (s, default 0.25),
# MAX_SECONDS (watchdog, default 1800), SKIP_BUILD=1, RESULT (report file). WINDOW=0: open loop at
# PUBLISH_RATE publishes per second (default 1000) instead.
# Traffic goes to 127.0.0.1 only; every run stops by itself.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
SUBS=${SUBS:-"1000 10000"}
SIZES=${SIZES:-"64 1024"}
DEFLATE=${DEFLATE:-"no yes"}
WINDOW=${WINDOW:-64}
read -r -a SERVERS <<<"${SERVERS:-topics naive}"
PORT=${PORT:-9700}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MARGIN=${MARGIN:-0.25}
MAX_SECONDS=${MAX_SECONDS:-1800}

SERVER_PID=""
LOAD_PID=""
DRAIN_PID=""
WATCHDOG=""
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
bench_setup fanout

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "fanout: building (release): myriad, then the bench workspace" >&2
  cargo build --release --bin myriad
  (cd bench && cargo build --release --bin myriad-load --bin naive-pubsub)
fi
MYRIAD_BIN=$ROOT/target/release/myriad
LOAD_BIN=$ROOT/bench/target/release/myriad-load
NAIVE_BIN=$ROOT/bench/target/release/naive-pubsub
for b in "$MYRIAD_BIN" "$LOAD_BIN" "$NAIVE_BIN"; do
  [ -x "$b" ] || { echo "fanout: $b missing (run without SKIP_BUILD=1)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

start_watchdog

FAILED=0
RUN_NO=0
# run_one SERVER SUBS SIZE DEFLATE ROUND: one measured run; appends a JSON record to $RUNS.
run_one() {
  local name=$1 n=$2 s=$3 z=$4 round=$5
  next_port
  local port=$RUN_PORT
  local tag="n$n-s$s-z$z-r$round-$name"
  local slog=$OUT/$tag.server.log llog=$OUT/$tag.load.log ljson=$OUT/$tag.load.json
  local cmd
  case $name in
    topics) cmd=("$MYRIAD_BIN" serve --mode pubsub --listen "127.0.0.1:$port" --workers 1
                 --max-pending-handshakes 20000 --max-pending-per-ip 20000) ;;
    naive) cmd=("$NAIVE_BIN" --listen "127.0.0.1:$port" --workers 1) ;;
    # The same as topics with a publish coalescing window of COALESCE_US (default 1000).
    topics-coalesce) cmd=("$MYRIAD_BIN" serve --mode pubsub --listen "127.0.0.1:$port" --workers 1
                 --max-pending-handshakes 20000 --max-pending-per-ip 20000
                 --publish-coalesce-us "${COALESCE_US:-1000}") ;;
  esac
  if ! start_server "$port" "$slog" "${cmd[@]}"; then
    echo "fanout: $tag: server did not start (see $slog)" >&2
    FAILED=1
    printf '{"subs":%d,"size":%d,"deflate":"%s","round":%d,"server":"%s","ok":false,"why":"server did not start"}\n' \
      "$n" "$s" "$z" "$round" "$name" >>"$RUNS"
    return
  fi
  local flag=()
  [ "$z" = yes ] && flag=(--deflate)
  measure_load "$ljson" "$llog" fanout --server "127.0.0.1:$port" -c "$n" -s "$s" \
    --publish-window "$WINDOW" --publish-rate "${PUBLISH_RATE:-1000}" -d "$DURATION" --ramp-timeout 60 "${flag[@]}"
  # Peak RSS of the server (VmHWM), then stop it: it logs its publish, delivery and compression
  # counts as it stops.
  local hwm
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
  stop_server

  PYTHONPATH="$ROOT/scripts" python3 - "$RUNS" "$ljson" "$slog" "$name" "$n" "$s" "$z" "$round" \
    "${hwm:-0}" "$RAMP" "$LRC" "$W0" "$W1" "$C0" "$C1" "$L0" "$L1" "$CLK_TCK" "$K0" "$K1" <<'PY' || FAILED=1
import re, sys
from bench_window import run_window, save_record
runs, ljson, slog, name, n, s, z, rnd, hwm = sys.argv[1:10]
n, s, rnd = int(n), int(s), int(rnd)
rec = {"subs": n, "size": s, "deflate": z, "round": rnd, "server": name}
load, why, win = run_window(ljson, *sys.argv[10:])
if load and (load.get("opened") != n or load.get("subscribed") != n):
    why.append(f"opened={load.get('opened')} subscribed={load.get('subscribed')} of {n}")
log = open(slog).read()
counts = re.findall(r"reactor \d+: (\d+) publishes, (\d+) deliveries, (\d+) compressions", log)
pubs = sum(int(c[0]) for c in counts)
comps = sum(int(c[2]) for c in counts)
rec.update({k: load.get(k) for k in ("opened", "subscribed", "errors", "messages", "published",
                                     "seconds", "messages_per_sec", "p50_us", "p99_us")})
rec["server_peak_rss_mb"] = round(int(hwm or 0) / 1024, 1)
rec["server_publishes"] = pubs
rec["compressions"] = comps
# The naive server publishes nothing through topics: it logs the publishes it handled.
naive = re.findall(r"naive-pubsub: (\d+) publishes handled", log)
per = pubs or sum(int(x) for x in naive)
rec["compressions_per_publish"] = round(comps / per, 3) if per else None
if not why:
    rec.update(win)
    rec["ns_per_delivery"] = round(win["server_util"] / load["messages_per_sec"] * 1e9, 1)
if not save_record(runs, rec, why):
    print(f"fanout: {name} {n} subs {s} B deflate={z} round {rnd}: FAILED: {rec['why']}",
          file=sys.stderr)
    sys.exit(1)
print(f"fanout: {n:>6} subs {s:>5} B deflate={z:<3} r{rnd} {name:<7} "
      f"{rec['ns_per_delivery']:8.1f} ns/delivery {load['messages_per_sec']:>11.0f} deliveries/s "
      f"p99 {load['p99_us']} us  server util {rec['server_util']:.2f} "
      f"load util {rec['load_util']:.2f}  compressions/publish {rec['compressions_per_publish']}",
      file=sys.stderr)
PY
}

echo "fanout: rounds=$ROUNDS duration=${DURATION}s window=$WINDOW server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; logs in $OUT" >&2
for n in $SUBS; do
  for s in $SIZES; do
    for z in $DEFLATE; do
      for round in $(seq "$ROUNDS"); do
        for name in "${SERVERS[@]}"; do
          run_one "$name" "$n" "$s" "$z" "$round"
        done
      done
    done
  done
done

MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml bench 2>/dev/null || COMMIT="$COMMIT (+ uncommitted changes)"
MACHINE="$MODEL, $(nproc) cores online to this job ($(nproc --all) in all), kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')"

rc=0
python3 - "$RUNS" "$RESULT" "$MACHINE" "$COMMIT" "$OUT" <<PY || rc=$?
import json, shutil, statistics, sys
runs_path, result, machine, commit, out = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
servers = []
points = []
for r in runs:
    if r["server"] not in servers:
        servers.append(r["server"])
    p = (r["subs"], r["size"], r["deflate"])
    if p not in points:
        points.append(p)
med = statistics.median
head = ["subscribers × size", "deflate", "server", "CPU ns/delivery (median)", "per round",
        "deliveries/s", "publishes/s", "p50 ms", "p99 ms", "server util", "server peak RSS MB",
        "compressions/publish", "this/topics"]
rows, notes = [], []
for n, s, z in points:
    sel = lambda name: [r for r in runs if (r["subs"], r["size"], r["deflate"], r["server"]) == (n, s, z, name)]
    good = {name: [r for r in sel(name) if r["ok"]] for name in servers}
    t_ns = med([r["ns_per_delivery"] for r in good.get("topics", [])]) if good.get("topics") else None
    for name in servers:
        g = good[name]
        bad = len(sel(name)) - len(g)
        if not g:
            rows.append([f"{n} × {s} B", z, name] + ["-"] * 9 + [f"{bad} run(s) FAILED"])
            continue
        ns = med([r["ns_per_delivery"] for r in g])
        util = med([r["server_util"] for r in g])
        note = f"{ns / t_ns:.1f}x" if name != "topics" and t_ns else "-"
        if util < 0.9:
            notes.append(f"- {name} at {n} × {s} B deflate={z}: server util {util:.0%} < 90%: the load "
                         "generator was the bottleneck (it inflates and checks every delivery); the "
                         "server's CPU per delivery is what it spent, not saturated.")
        if bad:
            notes.append(f"- {name} at {n} × {s} B deflate={z}: {bad} run(s) FAILED.")
        rows.append([f"{n} × {s} B", z, name, f"{ns:.0f}",
                     " / ".join(f"{r['ns_per_delivery']:.0f}" for r in g),
                     f"{med([r['messages_per_sec'] for r in g]):,.0f}",
                     f"{med([r['published'] / r['seconds'] for r in g]):,.0f}",
                     f"{med([r['p50_us'] for r in g]) / 1000:.1f}",
                     f"{med([r['p99_us'] for r in g]) / 1000:.1f}",
                     f"{util:.0%}",
                     f"{max(r['server_peak_rss_mb'] for r in g):.1f}",
                     f"{med([r['compressions_per_publish'] or 0 for r in g]):g}",
                     note])
table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
table += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(table)
print(text)
if notes:
    print("\n".join(notes))
failed = [r for r in runs if not r["ok"]]
with open(result, "w") as f:
    f.write(f"""# Fan-out benchmark: topics vs a naive send loop

Command: \`ROUNDS=$ROUNDS DURATION=$DURATION WINDOW=$WINDOW scripts/fanout.sh\` (run $STAMP)

- Machine: {machine}
- myriad commit {commit}; $(rustc --version)
- topics: \`myriad serve --mode pubsub --workers 1\`; naive: \`naive-pubsub --workers 1\` (bench/peers/naive-pubsub: same
  protocol and library, the handler sends to each subscriber with \`Ws::send_to\`). Server pinned to CPU $SERVER_CPU,
  \`myriad-load fanout\` pinned to CPU $LOAD_CPU; every connection subscribes to one topic, the first also publishes,
  closed loop with at most $WINDOW publishes not yet received by every subscriber; $ROUNDS rounds of ${DURATION} s after
  the ramp, servers alternating.
- CPU ns/delivery: the server's utime+stime (/proc/PID/stat) over the window from "ramp done" to ${MARGIN} s before the
  end, as a rate, over deliveries/s counted by the subscribers. Compressions/publish: the server's own counters
  (logged at stop) over its publishes; with deflate=no no subscriber negotiated compression, so nothing is compressed.
  Server peak RSS: VmHWM at the end of the run (the highest of the rounds), connections and queued output included.
- Every run checked: all connections opened and subscribed, no gaps (each subscriber got every publish, in order).
  Failed runs: {len(failed)}.

{text}
""")
    if notes:
        f.write("\n" + "\n".join(notes) + "\n")
    if failed:
        f.write("\nFailed runs:\n\n" + "\n".join(f"- {r['subs']} × {r['size']} B deflate={r['deflate']} round {r['round']} {r['server']}: {r.get('why')}" for r in failed) + "\n")
    f.write("\n<details><summary>Per-run records</summary>\n\n\`\`\`\n" + "".join(json.dumps(r) + "\n" for r in runs) + "\`\`\`\n</details>\n")
print(f"\nfanout: written to {result}", file=sys.stderr)
shutil.copy(result, out)
sys.exit(1 if failed else 0)
PY
[ "$FAILED" = 0 ] || rc=1
exit $rc
