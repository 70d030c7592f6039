#!/usr/bin/env python3
"""Where the server's CPU goes at a given open-loop echo rate (issue 16): `perf record -g` of the
server process (one worker, CPU 0) for PERF_SECONDS in the middle of a `myriad-load echo --rate`
window (generator on CPU 1), then the shares by binary (kernel, the server, libc, vdso) and the top
symbols. Sampling costs time: the run's own percentiles are printed as "traced".

Environment: RATES ("32000 96000"), SERVERS ("myriad fastwebsockets"), DURATION (6), PERF_SECONDS (2),
TOP (12), SUFFIX. Needs perf and root. Writes bench/results/latency-profile-<date><SUFFIX>.md.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latency as lat  # noqa: E402

RATES = [int(r) for r in os.environ.get("RATES", "32000 96000").split()]
SERVERS = os.environ.get("SERVERS", "myriad fastwebsockets").split()
DURATION = float(os.environ.get("DURATION", 6))
PERF_SECONDS = float(os.environ.get("PERF_SECONDS", 2))
TOP = int(os.environ.get("TOP", 12))


def report(data, sort):
    out = subprocess.run(["perf", "report", "-i", data, "--sort", sort, "--stdio", "--no-children", "-g", "none"],
                         capture_output=True, text=True, timeout=600).stdout
    return [" ".join(l.split()) for l in out.splitlines()
            if l.strip() and not l.startswith("#") and "%" in l]


def one(server, rate):
    tag = "profile-%s-%d" % (server, rate)
    port = lat.free_port()
    proc = lat.start(server, port, tag)
    data = os.path.join(lat.OUT, tag + ".perf.data")
    try:
        load, _ = lat.start_load(port, ["--rate", str(rate)], DURATION)
        time.sleep(max(0.0, (DURATION - PERF_SECONDS) / 2))
        subprocess.run(["perf", "record", "-F", "4999", "-g", "-p", str(proc.pid), "-o", data, "--", "sleep",
                        str(PERF_SECONDS)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=PERF_SECONDS + 60)
        out, _ = load.communicate(timeout=DURATION + 120)
        rec = json.loads(out.strip().splitlines()[-1])
    finally:
        lat.stop(proc)
    dso, sym = report(data, "dso"), report(data, "sym")[:TOP]
    os.remove(data)
    return rec, dso, sym


def main():
    os.makedirs(lat.OUT, exist_ok=True)
    lines = ["# Where the server's CPU goes under open-loop echo (issue 16)", "",
             "Command: `RATES=\"%s\" SERVERS=\"%s\" scripts/latency_profile.py` (run %s): %d connections x %d B, "
             "`perf record -F 4999 -g` of the server for %g s in the middle of a %g s window; server on CPU %s, "
             "generator on CPU %s." % (" ".join(map(str, RATES)), " ".join(SERVERS), lat.STAMP, lat.CONNS, lat.SIZE,
                                       PERF_SECONDS, DURATION, lat.SERVER_CPU, lat.LOAD_CPU), ""]
    for rate in RATES:
        for server in SERVERS:
            rec, dso, sym = one(server, rate)
            lines += ["## %s at %s messages/s" % (server, "{:,}".format(rate)), "",
                      "Traced run: p50 %s us, p99 %s us (sampling included)." % (rec["p50_us"], rec["p99_us"]), "",
                      "By binary: " + "; ".join(dso[:5]), "", "```"] + sym + ["```", ""]
            print("profile:", server, rate, "|", "; ".join(dso[:4]), flush=True)
    path = os.path.join(lat.ROOT, "bench/results", "latency-profile-%s%s.md" % (lat.DATE, lat.SUFFIX))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("profile: written to", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
