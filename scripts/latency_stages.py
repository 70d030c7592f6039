#!/usr/bin/env python3
"""Where echo latency goes (issue 16): the open-loop run of scripts/latency.py twice per point:
once as it is (the end-to-end percentiles), once with the kernel's scheduler trace over the middle of
the window (`perf record -a -e sched:sched_switch,sched:sched_wakeup`, then `perf sched timehist` for
the server's process; tracing costs time, so its run's own percentiles are kept apart). Each time the server's thread runs is one wakeup; the trace gives, per
wakeup, the scheduling delay (woken until running: the kernel's share before the server sees the
bytes) and the run time (running until it sleeps again: reading, handling and writing every message
that woke it). With the end-to-end percentiles from the generator, the rest is the network path
(loopback, softirq) and the client.

Environment: RATES (messages/s, default "34000 100000"), SERVERS ("myriad fastwebsockets"), ROUNDS (2),
DURATION (6 s of load), PERF_SECONDS (3), CONNS (1000), SIZE (64), SERVER_CPU (0), LOAD_CPU (1),
SUFFIX. Needs perf (Debian's linux-perf) and root. Writes bench/results/latency-stages-<date><SUFFIX>.md.
"""

import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latency as lat  # noqa: E402

RATES = [int(r) for r in os.environ.get("RATES", "34000 100000").split()]
SERVERS = os.environ.get("SERVERS", "myriad fastwebsockets").split()
ROUNDS = int(os.environ.get("ROUNDS", 2))
DURATION = float(os.environ.get("DURATION", 6))
PERF_SECONDS = float(os.environ.get("PERF_SECONDS", 3))


def pct(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def stages(data, pid):
    """Per wakeup of the server's threads: scheduling delay and run time, in microseconds."""
    out = subprocess.run(["perf", "sched", "timehist", "-i", data, "-p", str(pid)],
                         capture_output=True, text=True, timeout=300).stdout
    delay, run = [], []
    for line in out.splitlines():
        parts = line.split()
        # time  [cpu]  task[tid]  wait  sch-delay  run
        if len(parts) < 6 or not parts[1].startswith("[") or "[%d" % pid not in line and "/%d]" % pid not in line:
            continue
        try:
            d, r = float(parts[-2]) * 1000, float(parts[-1]) * 1000
        except ValueError:
            continue
        delay.append(d)
        run.append(r)
    return delay, run


def one(server, rate, tag, trace):
    port = lat.free_port()
    proc = lat.start(server, port, tag)
    data = os.path.join(lat.OUT, tag + ".perf.data")
    try:
        load, _ = lat.start_load(port, ["--rate", str(rate)], DURATION)
        delay, run = [], []
        if trace:
            time.sleep(max(0.0, (DURATION - PERF_SECONDS) / 2))
            subprocess.run(["perf", "record", "-a", "-e", "sched:sched_switch", "-e", "sched:sched_wakeup",
                            "-o", data, "--", "sleep", str(PERF_SECONDS)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=PERF_SECONDS + 60)
        out, _ = load.communicate(timeout=DURATION + 120)
        rec = json.loads(out.strip().splitlines()[-1])
        if trace:
            delay, run = stages(data, proc.pid)
    finally:
        lat.stop(proc)
        if os.path.exists(data):
            os.remove(data)
    if not trace:
        return {"p50_us": rec["p50_us"], "p99_us": rec["p99_us"], "p999_us": rec["p999_us"]}
    wakeups = len(run) / PERF_SECONDS
    return {
        "server": server, "rate": rate, "traced_p50_us": rec["p50_us"], "traced_p99_us": rec["p99_us"],
        "wakeups_per_s": round(wakeups),
        "msgs_per_wakeup": round(rate / wakeups, 2) if wakeups else None,
        "delay_p50_us": round(pct(delay, 50), 1), "delay_p99_us": round(pct(delay, 99), 1),
        "delay_max_us": round(max(delay or [0]), 1), "run_p50_us": round(pct(run, 50), 1),
        "run_p99_us": round(pct(run, 99), 1), "run_max_us": round(max(run or [0]), 1),
        "busy": round(sum(run) / 1e6 / PERF_SECONDS, 3),
    }


def main():
    os.makedirs(lat.OUT, exist_ok=True)
    runs = []
    for rnd in range(1, ROUNDS + 1):
        for rate in RATES:
            order = SERVERS[rnd - 1:] + SERVERS[:rnd - 1] if rnd <= len(SERVERS) else SERVERS
            for server in order:
                tag = "stages-r%d-%d-%s" % (rnd, rate, server)
                r = one(server, rate, tag, True)
                r.update(one(server, rate, tag + "-plain", False))
                r["round"] = rnd
                runs.append(r)
                print("stages:", json.dumps(r), flush=True)
    lines = [
        "# Where echo latency goes: end to end, and the server's wakeups (issue 16)", "",
        "Command: `RATES=\"%s\" SERVERS=\"%s\" ROUNDS=%d DURATION=%g PERF_SECONDS=%g scripts/latency_stages.py` "
        "(run %s)" % (" ".join(map(str, RATES)), " ".join(SERVERS), ROUNDS, DURATION, PERF_SECONDS, lat.STAMP), "",
        "- %d connections x %d B, open loop (`myriad-load echo --rate`), server (one worker) on CPU %s, generator "
        "on CPU %s; latency from each message's scheduled send time, microseconds, medians over rounds; e2e: a "
        "run without tracing; traced: the run with the trace (tracing's own cost included)." % (
            lat.CONNS, lat.SIZE, lat.SERVER_CPU, lat.LOAD_CPU),
        "- Server stages from `perf sched timehist` over %g s in the middle of the window: each time the server's "
        "thread runs is one wakeup; delay = woken until running (the scheduler), run = running until it sleeps "
        "again (read, handle and write everything that woke it); busy = share of the window it ran." % PERF_SECONDS,
        "",
        "| rate | server | e2e p50 | e2e p99 | e2e p99.9 | traced p50 | traced p99 | wakeups/s | msgs/wakeup | "
        "delay p50 | delay p99 | delay max | run p50 | run p99 | run max | busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = ["p50_us", "p99_us", "p999_us", "traced_p50_us", "traced_p99_us", "wakeups_per_s", "msgs_per_wakeup",
            "delay_p50_us", "delay_p99_us", "delay_max_us", "run_p50_us", "run_p99_us", "run_max_us", "busy"]
    for rate in RATES:
        for server in SERVERS:
            g = [r for r in runs if r["rate"] == rate and r["server"] == server]
            if not g:
                continue
            vals = [statistics.median(r[k] or 0 for r in g) for k in keys]
            lines.append("| {:,}/s | {} | ".format(rate, server) + " | ".join("%g" % v for v in vals) + " |")
    lines += ["", "<details><summary>Runs</summary>", "", "```"] + [json.dumps(r) for r in runs] + ["```",
                                                                                            "</details>"]
    path = os.path.join(lat.ROOT, "bench/results", "latency-stages-%s%s.md" % (lat.DATE, lat.SUFFIX))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:9 + len(RATES) * len(SERVERS)]))
    print("stages: written to", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
