"""One benchmark run's checks and CPU window, shared by scripts/bench.sh and scripts/fanout.sh.

`measure_load` (scripts/bench_lib.sh) samples the server's and the load generator's CPU ticks and
the two pinned cores' busy and steal ticks at the start and end of the load generator's measuring
window; `run_window` turns those samples and the load generator's JSON line into the figures both
reports use, and lists why the run does not count, if it does not.
"""

import json


def run_window(ljson, ramp, lrc, w0, w1, c0, c1, l0, l1, tck, k0, k1):
    """Returns (load, why, window): the load generator's last JSON line (a dict, empty if there
    is none), the reasons the run failed (empty when it counts), and the window's figures (None
    when it failed). Arguments are the strings the shell passes."""
    why = []
    try:
        with open(ljson) as f:
            load = json.loads(f.read().strip().splitlines()[-1])
    except Exception as e:  # no JSON: the load generator failed
        load = {}
        why.append(f"no load JSON ({e.__class__.__name__})")
    if int(lrc) != 0:
        why.append(f"load generator exit {lrc}")
    if not int(ramp):
        why.append("ramp not done")
    if load:
        if load.get("errors", 1) != 0:
            why.append(f"errors={load.get('errors')}")
        if load.get("messages", 0) <= 0:
            why.append("no messages")
    w0, w1, c0, c1, l0, l1, tck = map(int, (w0, w1, c0, c1, l0, l1, tck))
    if min(c0, c1, l0, l1) < 0 or w1 <= w0:
        why.append("CPU samples missing")
    if why:
        return load, why, None
    # busy and steal ticks of the server's core, then of the load generator's core
    k0, k1 = [int(x) for x in k0.split()], [int(x) for x in k1.split()]
    wall = (w1 - w0) / 1e6
    cpu = (c1 - c0) / tck
    util = cpu / wall
    load_util = (l1 - l0) / tck / wall
    return load, why, {
        "window_s": round(wall, 3),
        "server_cpu_s": round(cpu, 3),
        "server_util": round(util, 3),
        "load_util": round(load_util, 3),
        # Busy time of each pinned core not spent in our two processes: other jobs.
        "others_server_core": round(max(0.0, (k1[0] - k0[0]) / tck / wall - util), 3),
        "others_load_core": round(max(0.0, (k1[2] - k0[2]) / tck / wall - load_util), 3),
        "steal": round(((k1[1] - k0[1]) + (k1[3] - k0[3])) / tck / wall, 3),
    }


def save_record(runs, rec, why):
    """Appends the run's record, marked ok or with why it failed, to the runs file; True if ok."""
    rec["ok"] = not why
    if why:
        rec["why"] = "; ".join(why)
    with open(runs, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return not why
