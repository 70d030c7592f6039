#!/usr/bin/env python3
"""Kernel memory per idle loopback TCP connection, measured.

Opens N TCP connections over loopback to a listening socket in this same process (so
both ends of every connection live here), registers every socket with one epoll
instance (as the server and the load generator do), and reads /proc/meminfo,
/proc/net/sockstat and (when readable, i.e. as root) /proc/slabinfo before and after.

Phases of one round:
  base      nothing open but the listener and the epoll instance
  idle      N connections established, no byte sent
  unread    each client sent a handshake-sized request (200 bytes) that the server end
            has not read yet: one small message waiting in each server end's receive queue
  drained   each server end read it and answered (129 bytes), each client read the
            answer: every queue is empty again
  closed    every socket closed with SO_LINGER 0 (an RST: no TIME_WAIT, no orphan)

Every figure is a delta against `base`. One connection is two sockets here (client
end and server end), so the per-socket figure is the per-connection one divided by
two. Slab figures are noisy when other programs on the machine open or close files
and sockets at the same time: run several rounds (the median is printed) and compare
with the object-count estimate (objects added times object size), which is not
affected by partially filled slabs.

Stdlib only, loopback only, bounded: at most --connections socket pairs per round,
--rounds rounds, every recv loop bounded by a byte count and a timeout, and every
socket is closed before the next round and at exit (also on error or Ctrl-C).

    sudo python3 scripts/kernel_mem_per_socket.py              # 5,000 connections, 3 rounds
    python3 scripts/kernel_mem_per_socket.py -n 8000 --rounds 5 --json
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import select
import socket
import statistics
import struct
import sys
import time

# Slab caches a TCP socket held by a process touches: the socket itself (TCP), the
# inode+struct socket (sock_inode_cache), the struct file (filp), the pseudo dentry
# (dentry), the epoll item and its wait-queue hook (eventpoll_epi, eventpoll_pwq), and
# on the connecting side the local port's bind buckets (tcp_bind_bucket,
# tcp_bind2_bucket). The others are shown to see transient costs (skbs and their data,
# request and time-wait socks).
CACHES = (
    "TCP",
    "sock_inode_cache",
    "filp",
    "dentry",
    "eventpoll_epi",
    "eventpoll_pwq",
    "tcp_bind_bucket",
    "tcp_bind2_bucket",
    "skbuff_head_cache",
    "skbuff_fclone_cache",
    "skbuff_small_head",
    "request_sock_TCP",
    "tw_sock_TCP",
)
PER_SOCKET_CACHES = CACHES[:8]

PHASES = ("idle", "unread", "drained", "closed")
MAX_CONNECTIONS = 50_000  # hard cap whatever the command line says
MAX_ROUNDS = 20
REQUEST_BYTES = 200  # about a WebSocket upgrade request
RESPONSE_BYTES = 129  # about a 101 Switching Protocols answer
IO_TIMEOUT = 5.0


def read_meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, rest = line.split(":", 1)
            if key in ("Slab", "SReclaimable", "SUnreclaim", "MemFree"):
                out[key] = int(rest.split()[0])  # kB
    return out


def read_sockstat() -> dict[str, int]:
    out = {}
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()[1:]
                for k, v in zip(fields[::2], fields[1::2]):
                    out[k] = int(v)  # inuse, orphan, tw, alloc, mem (pages)
            elif line.startswith("sockets:"):
                out["sockets_used"] = int(line.split()[2])
    return out


def slab_aliases() -> dict[str, str]:
    """Cache name -> the /proc/slabinfo row that holds it (SLUB merges similar caches)."""
    rows = set()
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if not line.startswith(("slabinfo", "#")):
                    rows.add(line.split()[0])
    except OSError:
        return {}
    out = {}
    base = "/sys/kernel/slab"
    for name in CACHES:
        if name in rows:
            out[name] = name
            continue
        target = os.path.realpath(os.path.join(base, name))
        if not os.path.exists(target):
            continue
        for row in sorted(rows):
            if os.path.realpath(os.path.join(base, row)) == target:
                out[name] = row
                break
    return out


def merged_with(row: str) -> list[str]:
    """Every cache name SLUB merged into the same slab as `row` (from /sys/kernel/slab)."""
    base = "/sys/kernel/slab"
    try:
        target = os.path.realpath(os.path.join(base, row))
        names = sorted(os.listdir(base))
    except OSError:
        return [row]
    return [n for n in names if not n.startswith(":") and os.path.realpath(os.path.join(base, n)) == target]


def read_slabinfo(rows: set[str]) -> dict[str, tuple[int, int, int, int]]:
    """row -> (active objects, total objects, object size, bytes in slabs)."""
    out = {}
    if not rows:
        return out
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/slabinfo") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in rows:
                active, num, size, _per_slab, pages_per_slab = map(int, parts[1:6])
                num_slabs = int(parts[parts.index("slabdata") + 2])
                out[parts[0]] = (active, num, size, num_slabs * pages_per_slab * page)
    return out


def snapshot(rows: set[str]) -> dict:
    return {"meminfo": read_meminfo(), "sockstat": read_sockstat(), "slab": read_slabinfo(rows)}


def recv_exact(sock: socket.socket, n: int) -> None:
    got = 0
    deadline = time.monotonic() + IO_TIMEOUT
    while got < n:  # bounded: each pass reads >= 1 byte or raises
        if time.monotonic() > deadline:
            raise TimeoutError(f"recv: {got}/{n} bytes after {IO_TIMEOUT}s")
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError(f"recv: peer closed after {got}/{n} bytes")
        got += len(chunk)


def close_all(socks: list[socket.socket]) -> None:
    linger0 = struct.pack("ii", 1, 0)
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
        except OSError:
            pass
        s.close()
    socks.clear()


def one_round(host: str, n: int, rows: set[str], settle: float) -> dict:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    ep = select.epoll()
    clients: list[socket.socket] = []
    servers: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        listener.listen(128)
        addr = listener.getsockname()
        time.sleep(settle)
        snaps = {"base": snapshot(rows)}

        for _ in range(n):  # bounded: n connect/accept pairs
            c = socket.socket(family, socket.SOCK_STREAM)
            clients.append(c)
            c.settimeout(IO_TIMEOUT)
            c.connect(addr)
            listener.settimeout(IO_TIMEOUT)
            s, _ = listener.accept()
            servers.append(s)
            s.settimeout(IO_TIMEOUT)
            ep.register(c.fileno(), select.EPOLLIN)
            ep.register(s.fileno(), select.EPOLLIN)
        time.sleep(settle)
        snaps["idle"] = snapshot(rows)

        request = b"G" * REQUEST_BYTES
        response = b"H" * RESPONSE_BYTES
        for c in clients:  # bounded: n sends of 200 bytes, far below any socket buffer
            c.sendall(request)
        time.sleep(settle)
        snaps["unread"] = snapshot(rows)
        for c, s in zip(clients, servers):  # bounded: n exchanges
            recv_exact(s, REQUEST_BYTES)
            s.sendall(response)
            recv_exact(c, RESPONSE_BYTES)
        time.sleep(settle)
        snaps["drained"] = snapshot(rows)
    finally:
        close_all(clients)
        close_all(servers)
        ep.close()
        listener.close()
    time.sleep(settle)
    snaps["closed"] = snapshot(rows)
    return snaps


def deltas(snaps: dict, aliases: dict[str, str], n: int) -> dict:
    page = os.sysconf("SC_PAGE_SIZE")
    base = snaps["base"]
    out = {}
    for phase in PHASES:
        cur = snaps[phase]
        d = {
            "slab_bytes": (cur["meminfo"]["Slab"] - base["meminfo"]["Slab"]) * 1024,
            "sunreclaim_bytes": (cur["meminfo"]["SUnreclaim"] - base["meminfo"]["SUnreclaim"]) * 1024,
            "sreclaimable_bytes": (cur["meminfo"]["SReclaimable"] - base["meminfo"]["SReclaimable"])
            * 1024,
            "tcp_inuse": cur["sockstat"].get("inuse", 0) - base["sockstat"].get("inuse", 0),
            "tcp_mem_bytes": (cur["sockstat"].get("mem", 0) - base["sockstat"].get("mem", 0)) * page,
            "tcp_tw": cur["sockstat"].get("tw", 0) - base["sockstat"].get("tw", 0),
            "caches": {},
        }
        objects_bytes = 0
        seen_rows = set()
        for name, row in aliases.items():
            if row not in cur["slab"] or row not in base["slab"]:
                continue
            a1, _, size, b1 = cur["slab"][row]
            a0, _, _, b0 = base["slab"][row]
            d["caches"][name] = {
                "row": row,
                "objsize": size,
                "objects": a1 - a0,
                "objects_per_conn": (a1 - a0) / n,
                "slab_bytes": b1 - b0,
            }
            if name in PER_SOCKET_CACHES and row not in seen_rows:
                seen_rows.add(row)
                objects_bytes += (a1 - a0) * size
        d["objects_bytes"] = objects_bytes
        out[phase] = d
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--connections", type=int, default=5000, help="connections per round (default 5000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each snapshot (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()

    if not ipaddress.ip_address(args.host).is_loopback:
        ap.error("--host must be a loopback address")
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        ap.error(f"--connections must be 1..{MAX_CONNECTIONS}")
    if not 1 <= args.rounds <= MAX_ROUNDS:
        ap.error(f"--rounds must be 1..{MAX_ROUNDS}")
    if not 0 <= args.settle <= 30:
        ap.error("--settle must be 0..30")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    need = 2 * args.connections + 64
    if need > soft:
        ap.error(f"{args.connections} connections need {need} files; RLIMIT_NOFILE is {soft} "
                 f"(at most {(soft - 64) // 2} connections)")

    aliases = slab_aliases()
    rows = set(aliases.values())
    n = args.connections
    results = []
    for _ in range(args.rounds):  # bounded by MAX_ROUNDS
        snaps = one_round(args.host, n, rows, args.settle)
        results.append(deltas(snaps, aliases, n))

    def med(phase: str, key: str) -> float:
        return statistics.median(r[phase][key] for r in results)

    summary = {
        "connections": n,
        "rounds": args.rounds,
        "kernel": os.uname().release,
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "slabinfo_readable": bool(rows),
        "per_connection_bytes": {},
        "per_socket_bytes": {},
    }
    for phase in PHASES:
        for key in ("slab_bytes", "sunreclaim_bytes", "objects_bytes", "tcp_mem_bytes"):
            per_conn = med(phase, key) / n
            summary["per_connection_bytes"][f"{phase}.{key}"] = round(per_conn, 1)
            summary["per_socket_bytes"][f"{phase}.{key}"] = round(per_conn / 2, 1)
    summary["rounds_detail"] = results

    if args.json:
        print(json.dumps(summary, indent=1))
        return 0

    print(f"kernel {summary['kernel']}, {n} loopback connections (= {2 * n} sockets, both ends here), "
          f"{args.rounds} rounds, median shown")
    print("phase    what                          per connection   per socket (/2)")
    labels = {
        "slab_bytes": "Slab delta (/proc/meminfo)",
        "sunreclaim_bytes": "SUnreclaim delta",
        "objects_bytes": "socket objects x objsize",
        "tcp_mem_bytes": "sockstat TCP mem delta",
    }
    for phase in PHASES:
        for key, label in labels.items():
            if key == "objects_bytes" and not rows:
                continue
            v = summary["per_connection_bytes"][f"{phase}.{key}"]
            print(f"{phase:8} {label:29} {v:10.0f} B     {v / 2:10.0f} B")
    if rows:
        print("\nslab objects added per connection (median) x object size, per slabinfo row:")
        print(f"  {'row':18} {'idle':>6} {'unread':>7}   {'size':>7}   caches")
        done = set()
        for name in CACHES:
            row = aliases.get(name)
            if row is None or row in done:
                continue
            done.add(row)
            per = {
                phase: statistics.median(
                    r[phase]["caches"].get(name, {}).get("objects_per_conn", 0.0) for r in results
                )
                for phase in ("idle", "unread")
            }
            size = results[0]["idle"]["caches"].get(name, {}).get("objsize", 0)
            ours = [c for c in CACHES if aliases.get(c) == row]
            others = [m for m in merged_with(row) if m not in ours]
            note = ", ".join(ours) + (f" (merged with {', '.join(others)})" if others else "")
            print(f"  {row:18} {per['idle']:6.2f} {per['unread']:7.2f} x {size:5d} B   {note}")
    else:
        print("\n/proc/slabinfo not readable (run as root for the per-cache breakdown)")
    idle_tw = statistics.median(r["closed"]["tcp_tw"] for r in results)
    print(f"\nTIME_WAIT delta after close (median): {idle_tw:.0f} (ours: 0 with SO_LINGER 0; "
          "anything else is other programs' connections)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # output piped into head: the sockets are closed already
        sys.exit(0)
