#!/usr/bin/env python3
"""Cross-node fan-out over Redis (issue 15), beside the single-node figure from the same run.

Modes, alternated for ROUNDS rounds at each DEFLATE setting:
- single: one `myriad serve --mode pubsub` node, no broker; every subscriber on it.
- cross:  three nodes A, B, C with `--broker redis://...` (a redis-server started here); the
          subscribers spread over A, B and C in turn; the publisher is on A.
`myriad-load fanout` drives it: SUBS connections subscribe to one topic, one on A publishes SIZE-byte
messages, closed loop (at most WINDOW publishes not yet received by every subscriber), for DURATION
seconds after every connection subscribed. Every node has one worker and is pinned to CPU 0
(SERVER_CPU); the load generator and redis-server to CPU 1 (LOAD_CPU).

Figures: deliveries/s, publish-to-delivery p50 and p99 (the load generator's), and for each node its
CPU per delivery (its utime+stime over the window, as a rate, over the deliveries/s to its own
subscribers) and its compressions per publish (its reactor's and its broker bridge's compressions
over the publishes its reactor handled, from the logs each node writes as it stops). Each run checks
that every connection opened and subscribed and every subscriber got every publish in order.

Usage: scripts/broker_fanout.py (builds first). Environment: ROUNDS (2), SUBS (3000), SIZE (64),
DEFLATE ("no yes"), WINDOW (64), DURATION (4), SERVER_CPU (0), LOAD_CPU (1), SKIP_BUILD=1.
Writes bench/results/broker-fanout-<UTC date>.md; logs under target/bench/broker-fanout-<stamp>/.
Traffic stays on 127.0.0.1; every run ends by itself.
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_proc import free_port, wait_port, ticks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(os.environ.get("ROUNDS", 2))
SUBS = int(os.environ.get("SUBS", 3000))
SIZE = int(os.environ.get("SIZE", 64))
DEFLATE = os.environ.get("DEFLATE", "no yes").split()
WINDOW = int(os.environ.get("WINDOW", 64))
DURATION = float(os.environ.get("DURATION", 4))
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
MARGIN = 0.25
MYRIAD = os.path.join(ROOT, "target/release/myriad")
LOAD = os.path.join(ROOT, "bench/target/release/myriad-load")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STAMP = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
OUT = os.path.join(ROOT, "target/bench", "broker-fanout-" + STAMP)


def start_node(name, port, redis_port, tag):
    cmd = ["taskset", "-c", SERVER_CPU, MYRIAD, "serve", "--mode", "pubsub", "--listen",
           "127.0.0.1:%d" % port, "--workers", "1", "--max-pending-handshakes", "20000",
           "--max-pending-per-ip", "20000"]
    if redis_port:
        cmd += ["--broker", "redis://127.0.0.1:%d" % redis_port]
    log = os.path.join(OUT, "%s-%s.log" % (tag, name))
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, RUST_LOG="info"))
    if not wait_port(port, proc):
        raise RuntimeError("node %s did not start (see %s)" % (name, log))
    return proc, log


def node_counts(log):
    text = open(log).read()
    r = re.findall(r"reactor \d+: (\d+) publishes, (\d+) deliveries, (\d+) compressions", text)
    b = re.findall(r"broker bridge: stopped; (\d+) published, (\d+) received, (\d+) compressions", text)
    pubs = sum(int(x[0]) for x in r)
    comps = sum(int(x[2]) for x in r) + sum(int(x[2]) for x in b)
    return pubs, comps


def run(mode, deflate, rnd, redis_port):
    tag = "%s-%s-r%d" % (mode, "z" if deflate == "yes" else "p", rnd)
    names = ["A", "B", "C"] if mode == "cross" else ["A"]
    nodes = {}
    try:
        for n in names:
            port = free_port()
            proc, log = start_node(n, port, redis_port if mode == "cross" else None, tag)
            nodes[n] = (port, proc, log)
        time.sleep(0.3)  # the bridges connect
        args = ["taskset", "-c", LOAD_CPU, LOAD, "fanout", "--server", "127.0.0.1:%d" % nodes["A"][0],
                "-c", str(SUBS), "-s", str(SIZE), "--publish-window", str(WINDOW), "-d", str(DURATION),
                "--ramp-timeout", "60"]
        if len(names) > 1:
            args += ["--also-server", ",".join("127.0.0.1:%d" % nodes[n][0] for n in names[1:])]
        if deflate == "yes":
            args.append("--deflate")
        llog = open(os.path.join(OUT, tag + ".load.log"), "w")
        load = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ramp = False
        deadline = time.time() + 90
        while time.time() < deadline:
            line = load.stderr.readline()
            if not line:
                break
            llog.write(line)
            if line.startswith("ramp done"):
                ramp = True
                break
        t0 = time.time()
        c0 = {n: ticks(nodes[n][1].pid) for n in names}
        if ramp:
            time.sleep(max(0.1, DURATION - MARGIN))
        t1 = time.time()
        c1 = {n: ticks(nodes[n][1].pid) for n in names}
        out, err = load.communicate(timeout=120)
        llog.write(err)
        rec = json.loads(out.strip().splitlines()[-1])
    finally:
        for n, (_, proc, _) in nodes.items():
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    why = []
    if not ramp:
        why.append("no ramp")
    if rec.get("opened") != SUBS or rec.get("subscribed") != SUBS:
        why.append("opened %s subscribed %s of %d" % (rec.get("opened"), rec.get("subscribed"), SUBS))
    if rec.get("errors"):
        why.append("%s errors or gaps" % rec["errors"])
    dps = rec.get("messages_per_sec") or 0
    per_node = {}
    for i, n in enumerate(names):
        subs_here = len(range(i, SUBS, len(names)))
        node_dps = dps * subs_here / SUBS
        util = (c1[n] - c0[n]) / CLK_TCK / max(t1 - t0, 1e-9)
        pubs, comps = node_counts(nodes[n][2])
        per_node[n] = {
            "cpu_util": round(util, 3),
            "ns_per_delivery": round(util / node_dps * 1e9, 1) if node_dps else None,
            "publishes": pubs,
            "compressions_per_publish": round(comps / pubs, 3) if pubs else None,
        }
    r = {"mode": mode, "deflate": deflate, "round": rnd, "deliveries_per_sec": round(dps),
         "published": rec.get("published"), "p50_us": rec.get("p50_us"), "p99_us": rec.get("p99_us"),
         "nodes": per_node, "ok": not why, "why": why}
    with open(os.path.join(OUT, "runs.jsonl"), "a") as f:
        f.write(json.dumps(r) + "\n")
    print("broker-fanout: %-6s deflate=%-3s r%d  %8d deliveries/s  p50 %6s us  p99 %6s us  %s%s" % (
        mode, deflate, rnd, dps, r["p50_us"], r["p99_us"],
        "  ".join("%s %s ns/del %s comp/pub" % (n, v["ns_per_delivery"], v["compressions_per_publish"])
                  for n, v in per_node.items()),
        "" if r["ok"] else "  FAILED: " + "; ".join(why)), flush=True)
    return r


def main():
    os.makedirs(OUT, exist_ok=True)
    if os.environ.get("SKIP_BUILD") != "1":
        subprocess.run(["cargo", "build", "--release", "--bins", "-q"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "myriad-load"],
                       cwd=os.path.join(ROOT, "bench"), check=True)
    redis_port = free_port()
    redis = subprocess.Popen(["taskset", "-c", LOAD_CPU, "redis-server", "--port", str(redis_port),
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=open(os.path.join(OUT, "redis.log"), "wb"), stderr=subprocess.STDOUT)
    runs = []
    try:
        if not wait_port(redis_port, redis):
            print("broker-fanout: redis-server did not start")
            return 1
        for deflate in DEFLATE:
            for rnd in range(1, ROUNDS + 1):
                for mode in ("single", "cross"):
                    runs.append(run(mode, deflate, rnd, redis_port))
    finally:
        redis.kill()
        redis.wait(10)
    lines = [
        "# Cross-node fan-out over Redis: myriad, one node vs three (issue 15)", "",
        "Command: `ROUNDS=%d SUBS=%d SIZE=%d WINDOW=%d DURATION=%g scripts/broker_fanout.py` (run %s)" % (
            ROUNDS, SUBS, SIZE, WINDOW, DURATION, STAMP), "",
        "- Machine: %d cores online; nodes (one worker each) pinned to CPU %s, `myriad-load fanout` and "
        "redis-server to CPU %s; Redis %s." % (
            os.cpu_count(), SERVER_CPU, LOAD_CPU,
            subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]),
        "- single: every subscriber on one node, no broker. cross: nodes A, B, C with `--broker`, "
        "subscribers spread over them in turn, the publisher on A; publishes reach B and C through Redis.",
        "- Closed loop: at most %d publishes not yet received by every subscriber; latency from the publish "
        "to each delivery (the load generator's clock)." % WINDOW,
        "- Per node: CPU ns per delivery to its own subscribers; compressions per publish handled (its "
        "reactor's and its broker bridge's).", "",
        "| mode | deflate | deliveries/s (median) | p50 µs | p99 µs | per node: ns/delivery, compressions/publish | runs ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for deflate in DEFLATE:
        for mode in ("single", "cross"):
            g = [r for r in runs if r["mode"] == mode and r["deflate"] == deflate and r["ok"]]
            if not g:
                lines.append("| %s | %s | - | - | - | - | 0 |" % (mode, deflate))
                continue
            med = lambda k: statistics.median(r[k] for r in g)
            nodes = sorted(g[0]["nodes"])
            per = "; ".join("%s %.0f ns, %s" % (
                n, statistics.median(r["nodes"][n]["ns_per_delivery"] or 0 for r in g),
                statistics.median(r["nodes"][n]["compressions_per_publish"] or 0 for r in g))
                for n in nodes)
            lines.append("| %s | %s | %s | %s | %s | %s | %d of %d |" % (
                mode, deflate, "{:,}".format(round(med("deliveries_per_sec"))), med("p50_us"), med("p99_us"),
                per, len(g), ROUNDS))
    lines += ["", "<details><summary>Runs</summary>", "", "```"] + [json.dumps(r) for r in runs] + ["```", "</details>"]
    os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
    path = os.path.join(ROOT, "bench/results", "broker-fanout-%s.md" % time.strftime("%Y-%m-%d", time.gmtime()))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:12 + 2 * len(DEFLATE)]))
    print("broker-fanout: written to", path)
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
