#!/usr/bin/env python3
"""Open-loop echo latency (issue 16): myriad, fastwebsockets and tokio-tungstenite, each with one
worker pinned to CPU 0 (SERVER_CPU), `myriad-load echo --rate R` pinned to CPU 1 (LOAD_CPU), as in
scripts/bench.sh.

1. Saturation: each server in closed loop (CONNS connections x SIZE bytes, PIPELINE messages in
   flight per connection) for SAT_DURATION s; the slowest server's messages/s is the reference.
2. Open loop at PCTS percent of that reference (default 25 50 75 90), servers alternated within each
   rate, ROUNDS rounds: R messages/s in all on a fixed schedule, latency from each message's scheduled
   send time (hdrhistogram: p50, p99, p99.9, max), the generator's lag behind its schedule (p99), the
   messages still unanswered at the end, and the server's CPU utilisation over the window.

Writes bench/results/latency-<UTC date>.md (the table, medians over rounds, with myriad's p99 over the
best peer's p99 at each rate) and, when gnuplot is installed, latency-<date>.png (p99 against rate).
Environment: ROUNDS (3), CONNS (1000), SIZE (64), PCTS ("25 50 75 90"), DURATION (5), SAT_DURATION (4),
PIPELINE (4), SERVERS ("myriad fastwebsockets tungstenite"), MYRIAD_ARGS (extra flags for myriad),
SUFFIX (added to the result files' names), SKIP_BUILD=1. Logs under target/bench/latency-<stamp>/. Traffic stays on 127.0.0.1; every run ends
by itself.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_proc import free_port, ticks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("ROUNDS", 3))
CONNS = int(os.environ.get("CONNS", 1000))
SIZE = int(os.environ.get("SIZE", 64))
PCTS = [int(p) for p in os.environ.get("PCTS", "25 50 75 90").split()]
DURATION = float(os.environ.get("DURATION", 5))
SAT_DURATION = float(os.environ.get("SAT_DURATION", 4))
PIPELINE = int(os.environ.get("PIPELINE", 4))
SERVERS = os.environ.get("SERVERS", "myriad fastwebsockets tungstenite").split()
MYRIAD_ARGS = os.environ.get("MYRIAD_ARGS", "").split()
SUFFIX = os.environ.get("SUFFIX", "")
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
MARGIN = 0.25
BIN = {
    "myriad": os.path.join(ROOT, "target/release/myriad"),
    "fastwebsockets": os.path.join(ROOT, "bench/target/release/fastwebsockets-echo"),
    "tungstenite": os.path.join(ROOT, "bench/target/release/tungstenite-echo"),
}
LOAD = os.path.join(ROOT, "bench/target/release/myriad-load")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STAMP = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
DATE = time.strftime("%Y-%m-%d", time.gmtime())
OUT = os.path.join(ROOT, "target/bench", "latency-" + STAMP)


def start(server, port, tag):
    if server.startswith("myriad"):
        cmd = [BIN[server], "serve", "--listen", "127.0.0.1:%d" % port, "--workers", "1"] + MYRIAD_ARGS
    else:
        cmd = [BIN[server], "--listen", "127.0.0.1:%d" % port]
    log = open(os.path.join(OUT, tag + ".server.log"), "wb")
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("%s did not start" % server)


def loop_iterations(port):
    """myriad's own loop-iteration histogram (whole run): how many iterations took over 100 us,
    1 ms and 10 ms (a long iteration delays every reply that waits behind it)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    le = {}
    for line in text.splitlines():
        if line.startswith("myriad_loop_iteration_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            le[bound] = le.get(bound, 0) + float(line.split()[-1])
    total = le.get("+Inf", 0)
    over = lambda b: int(total - le.get(b, total))
    return {"loop_iterations": int(total), "loops_over_100us": over("0.0001"),
            "loops_over_1ms": over("0.001"), "loops_over_10ms": over("0.01")}


def stop(proc):
    """Stops a server: SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_load(port, load_args, duration, log=None):
    """`myriad-load echo` against `port` (CONNS x SIZE, pinned to LOAD_CPU) with `load_args`; returns
    the process and whether its ramp finished (every connection open), once it has; its stderr up to
    there goes to `log`."""
    args = ["taskset", "-c", LOAD_CPU, LOAD, "echo", "--server", "127.0.0.1:%d" % port,
            "-c", str(CONNS), "-s", str(SIZE), "-d", str(duration), "--ramp-timeout", "60",
            "--in-flight", "128"] + load_args
    load = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = load.stderr.readline()
        if not line:
            return load, False
        if log is not None:
            log.write(line)
        if line.startswith("ramp done"):
            return load, True


def one(server, tag, load_args, duration):
    port = free_port()
    proc = start(server, port, tag)
    try:
        llog = open(os.path.join(OUT, tag + ".load.log"), "w")
        load, ramp = start_load(port, load_args, duration, llog)
        t0, c0 = time.time(), ticks(proc.pid)
        if ramp:
            time.sleep(max(0.1, duration - MARGIN))
        t1, c1 = time.time(), ticks(proc.pid)
        out, err = load.communicate(timeout=duration + 120)
        llog.write(err)
        rec = json.loads(out.strip().splitlines()[-1])
        if server.startswith("myriad"):
            rec.update(loop_iterations(port))
    finally:
        stop(proc)
    rec["server_util"] = round((c1 - c0) / CLK_TCK / max(t1 - t0, 1e-9), 3)
    rec["ok"] = ramp and rec.get("opened") == CONNS and not rec.get("errors")
    return rec


def plot_png(runs):
    """p99 against rate, one line per server (medians over rounds), when gnuplot is installed."""
    if not shutil.which("gnuplot"):
        print("latency: gnuplot not installed: no plot")
        return
    os.makedirs(OUT, exist_ok=True)
    servers = []
    for r in runs:
        if r["server"] not in servers:
            servers.append(r["server"])
    data = os.path.join(OUT, "p99.dat")
    with open(data, "w") as f:
        for server in servers:
            f.write("# %s\n" % server)
            for rate in sorted({r["target_rate"] for r in runs}):
                g = [r["p99_us"] for r in runs if r["server"] == server and r["target_rate"] == rate and r["ok"]]
                if g:
                    f.write("%d %g\n" % (rate, statistics.median(g)))
            f.write("\n\n")
    png = os.path.join(ROOT, "bench/results", "latency-%s%s.png" % (DATE, SUFFIX))
    script = ("set terminal png size 900,560; set output '%s'; set logscale y; "
              "set xlabel 'messages/s (open loop, %d connections x %d B)'; set ylabel 'p99 latency (us)'; "
              "set key top left; plot " % (png, CONNS, SIZE) +
              ", ".join("'%s' index %d with linespoints title '%s'" % (data, i, s) for i, s in enumerate(servers)))
    subprocess.run(["gnuplot", "-e", script], check=False)
    print("latency: plot", png)


def main():
    if sys.argv[1:2] == ["--plot"]:
        # Plot an earlier run again: scripts/latency.py --plot target/bench/latency-*/runs.jsonl
        plot_png([json.loads(l) for l in open(sys.argv[2]) if l.strip()])
        return 0
    os.makedirs(OUT, exist_ok=True)
    if os.environ.get("SKIP_BUILD") != "1":
        subprocess.run(["cargo", "build", "--release", "--bins", "-q"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "myriad-load", "-p", "tungstenite-echo",
                        "-p", "fastwebsockets-echo"], cwd=os.path.join(ROOT, "bench"), check=True)
    runs = []
    sat = {}
    for server in SERVERS:
        r = one(server, "sat-" + server, ["--pipeline", str(PIPELINE)], SAT_DURATION)
        sat[server] = r["messages_per_sec"]
        print("latency: saturation %-15s %10.0f msg/s (server util %.2f)" % (server, sat[server], r["server_util"]),
              flush=True)
    ref = min(sat.values())
    rates = [int(ref * p / 100) for p in PCTS]
    for rnd in range(1, ROUNDS + 1):
        for pct, rate in zip(PCTS, rates):
            order = SERVERS[rnd - 1:] + SERVERS[:rnd - 1]
            for server in order:
                tag = "r%d-%d-%s" % (rnd, pct, server)
                r = one(server, tag, ["--rate", str(rate)], DURATION)
                r.update({"server": server, "pct": pct, "target_rate": rate, "round": rnd})
                runs.append(r)
                with open(os.path.join(OUT, "runs.jsonl"), "a") as f:
                    f.write(json.dumps(r) + "\n")
                loops = ("  loops >100us/>1ms/>10ms %s/%s/%s of %s" % (
                    r["loops_over_100us"], r["loops_over_1ms"], r["loops_over_10ms"], r["loop_iterations"])
                    if "loop_iterations" in r else "")
                print("latency: r%d %3d%% %7d/s %-15s p50 %6s p99 %6s p99.9 %6s max %7s us  lag p99 %5s us  "
                      "unanswered %5s  util %.2f%s%s" % (
                          rnd, pct, rate, server, r["p50_us"], r["p99_us"], r["p999_us"], r.get("max_us"),
                          r.get("lag_p99_us"), r.get("unanswered"), r["server_util"], loops,
                          "" if r["ok"] else "  FAILED"),
                      flush=True)
    lines = [
        "# Open-loop echo latency: myriad vs fastwebsockets vs tokio-tungstenite (issue 16)", "",
        "Command: `ROUNDS=%d CONNS=%d SIZE=%d PCTS=\"%s\" DURATION=%g scripts/latency.py` (run %s)%s" % (
            ROUNDS, CONNS, SIZE, " ".join(map(str, PCTS)), DURATION, STAMP,
            "; myriad flags: `%s`" % " ".join(MYRIAD_ARGS) if MYRIAD_ARGS else ""), "",
        "- Machine: %d cores online; servers (one worker) pinned to CPU %s, `myriad-load echo --rate` to CPU %s "
        "(it spins on its core so that no send waits for a poll)." % (os.cpu_count(), SERVER_CPU, LOAD_CPU),
        "- Saturation (closed loop, %d in flight per connection): %s; rates are percents of the slowest." % (
            PIPELINE, ", ".join("%s %.0f msg/s" % (s, v) for s, v in sat.items())),
        "- Latency from each message's scheduled send time (open loop, no coordinated omission), microseconds, "
        "medians over rounds; generator lag: how late the generator sent against its schedule (p99).", "",
        "| rate | server | p50 | p99 | p99.9 | max | gen lag p99 | server util | myriad p99 / best peer p99 | runs ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    plot = []
    for pct, rate in zip(PCTS, rates):
        p99 = {}
        for server in SERVERS:
            g = [r for r in runs if r["pct"] == pct and r["server"] == server and r["ok"]]
            if not g:
                lines.append("| %d%% (%d/s) | %s | - | - | - | - | - | - | - | 0 |" % (pct, rate, server))
                continue
            med = lambda k: statistics.median(r.get(k) or 0 for r in g)
            p99[server] = med("p99_us")
            plot.append((rate, server, med("p99_us")))
            ratio = "{RATIO}" if server.startswith("myriad") else ""
            lines.append("| %d%% (%s/s) | %s | %g | %g | %g | %g | %g | %.2f | %s | %d of %d |" % (
                pct, "{:,}".format(rate), server, med("p50_us"), med("p99_us"), med("p999_us"), med("max_us"),
                med("lag_p99_us"), med("server_util"), ratio, len(g), ROUNDS))
        peers = [v for s, v in p99.items() if not s.startswith("myriad")]
        for i, l in enumerate(lines):
            for ours in ("myriad",):
                if l.startswith("| %d%% " % pct) and ("| %s |" % ours) in l:
                    ok = peers and ours in p99 and min(peers)
                    lines[i] = l.replace("{RATIO}", "%.2f" % (p99[ours] / min(peers)) if ok else "-")
    lines += ["", "<details><summary>Runs</summary>", "", "```"] + [json.dumps(r) for r in runs] + ["```", "</details>"]
    os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
    path = os.path.join(ROOT, "bench/results", "latency-%s%s.md" % (DATE, SUFFIX))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    plot_png(runs)
    print("\n".join(lines[:9 + len(PCTS) * len(SERVERS)]))
    print("latency: written to", path)
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
