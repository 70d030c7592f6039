#!/usr/bin/env python3
"""Attack probes against the release binary (issue 11): each starts `myriad serve` on a loopback
port, plays one attack, prints what the server did, and stops it. Figures for the closing note;
the tests in tests/limits.rs assert the same behaviour with wide margins.

    target/py-venv/bin/python scripts/probes.py [amplification|echo-hoard|topics|bombs|slowloris]...

amplification  60 subscribers that never read; one ~16 KB compressed publish that inflates to
               16 MiB: server RSS before and after.
echo-hoard     20 clients send 16 MiB messages and never read the echoes: RSS after 2 s, and
               after the write timeout (--write-timeout 5 here).
topics         two connections share 60,000 topics; one closes: the longest wait of a third
               connection's pings meanwhile.
bombs          100 connections echo 64-byte messages (p99 round trip over 8 s) while one client
               sends 16 KB frames that inflate to 16 MiB at about 1.3 MB/s (reconnecting when
               closed); beside the same run without the bomber.
slowloris      one address keeps 8,192 half-finished requests open (re-opening what is closed);
               25 legitimate clients from other addresses try to upgrade.

Every loop is bounded in time; traffic goes to 127.0.0.0/8 only. Environment: MYRIAD_BIN.
"""

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_proc import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MYRIAD_BIN", os.path.join(ROOT, "target/release/myriad"))
UPGRADE = (b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


class Server:
    def __init__(self, *args):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--workers", "1", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)

    def rss_mib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def frame(opcode, payload, rsv1=False):
    """A masked client frame."""
    b0 = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key = os.urandom(4)
    ints = int.from_bytes(payload, "little") if n else 0
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "little") if n else 0
    body = (ints ^ mask).to_bytes(n, "little") if n else b""
    return head + key + body


def upgrade(port, extra=b"", rcvbuf=None, src=None, timeout=10):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(UPGRADE + extra + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the upgrade: %r" % head)
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    return s


def deflate_raw(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def amplification():
    srv = Server("--mode", "pubsub", "--idle-timeout", "0")
    try:
        subs = []
        for _ in range(60):
            s = upgrade(srv.port, rcvbuf=4096)
            s.sendall(frame(1, json.dumps({"op": "sub", "topic": "t"}).encode()))
            subs.append(s)
        time.sleep(0.5)
        before = srv.rss_mib()
        p = upgrade(srv.port, b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        msg = b'{"op":"pub","topic":"t","data":"' + b"a" * (16 * 1024 * 1024 - 64) + b'"}'
        packed = deflate_raw(msg)
        p.sendall(frame(1, packed, rsv1=True))
        time.sleep(3)
        after = srv.rss_mib()
        print("amplification: publish of %d compressed bytes (%d inflated) to 60 non-readers: "
              "server RSS %.1f MiB before, %.1f MiB after (+%.1f MiB)"
              % (len(packed), len(msg), before, after, after - before))
        for s in subs + [p]:
            s.close()
    finally:
        srv.stop()


def echo_hoard():
    srv = Server("--write-timeout", "5", "--idle-timeout", "0")
    try:
        before = srv.rss_mib()
        clients = []
        big = frame(2, b"\x07" * (16 * 1024 * 1024))
        for _ in range(20):
            s = upgrade(srv.port, rcvbuf=4096)
            s.sendall(big)
            clients.append(s)
        time.sleep(2)
        held = srv.rss_mib()
        time.sleep(6)
        later = srv.rss_mib()
        print("echo-hoard: 20 non-readers of 16 MiB echoes: server RSS %.1f MiB before, %.1f MiB "
              "after 2 s, %.1f MiB after the 5 s write timeout" % (before, held, later))
        for s in clients:
            s.close()
    finally:
        srv.stop()


def topics():
    srv = Server("--mode", "pubsub", "--max-topics-per-connection", "100000", "--idle-timeout", "0")
    try:
        pair = []
        for _ in range(2):
            s = upgrade(srv.port, timeout=60)
            batch = b"".join(frame(1, json.dumps({"op": "sub", "topic": "t%d" % i}).encode())
                             for i in range(60000))
            s.sendall(batch)
            # Wait for the 60,000 acknowledgements.
            got = 0
            buf = b""
            deadline = time.time() + 60
            while got < 60000 and time.time() < deadline:
                buf += s.recv(1 << 20)
                got = buf.count(b'"ok":"sub"')
            pair.append(s)
        probe = upgrade(srv.port)
        probe.settimeout(10)
        worst = 0.0
        pair[0].close()
        t_end = time.time() + 1.5
        while time.time() < t_end:
            t0 = time.time()
            probe.sendall(frame(9, b"p"))
            probe.recv(64)
            worst = max(worst, time.time() - t0)
        print("topics: closing one of two connections sharing 60,000 topics: the longest ping "
              "round trip of another connection meanwhile: %.1f ms" % (worst * 1000))
        pair[1].close()
    finally:
        srv.stop()


async def echo_latencies(port, seconds):
    """100 connections, each a loop of 64-byte echo round trips; all round-trip times."""
    from websockets.asyncio.client import connect
    conns = [await connect("ws://127.0.0.1:%d/" % port, proxy=None, compression=None,
                           open_timeout=10) for _ in range(100)]
    samples = []
    deadline = time.time() + seconds

    async def loop(ws):
        msg = "x" * 64
        while time.time() < deadline:
            t0 = time.perf_counter()
            await ws.send(msg)
            await ws.recv()
            samples.append(time.perf_counter() - t0)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(loop(ws) for ws in conns))
    for ws in conns:
        await ws.close()
    samples.sort()
    return samples[int(len(samples) * 0.99)] * 1000, samples[len(samples) // 2] * 1000, len(samples)


def bomber(port, stop_at, counts):
    bomb = frame(2, deflate_raw(b"\x00" * (16 * 1024 * 1024 - 1)), rsv1=True)
    ext = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    while time.time() < stop_at:
        try:
            s = upgrade(port, ext)
            counts["connections"] += 1
            s.settimeout(0.01)
            while time.time() < stop_at:
                s.sendall(bomb)
                counts["bombs"] += 1
                time.sleep(len(bomb) / 1.3e6)
                try:
                    if not s.recv(4096):
                        break
                except socket.timeout:
                    pass
            s.close()
        except (OSError, ConnectionError):
            time.sleep(0.05)


def bombs():
    import threading
    srv = Server("--idle-timeout", "0")
    try:
        quiet = asyncio.run(echo_latencies(srv.port, 8))
        counts = {"connections": 0, "bombs": 0}
        stop_at = time.time() + 9
        t = threading.Thread(target=bomber, args=(srv.port, stop_at, counts))
        t.start()
        loud = asyncio.run(echo_latencies(srv.port, 8))
        t.join()
        print("bombs: p99 / p50 echo round trip of 100 connections: %.1f / %.1f ms quiet (%d "
              "samples), %.1f / %.1f ms with a bomber (%d bombs of 16 KB -> 16 MiB over %d "
              "connections, each closed by the inflate budget)"
              % (quiet[0], quiet[1], quiet[2], loud[0], loud[1], counts["bombs"],
                 counts["connections"]))
    finally:
        srv.stop()


def slowloris():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    srv = Server("--max-pending-handshakes", "8192", "--handshake-timeout", "10")
    try:
        attackers = []
        half = UPGRADE[:40]
        deadline = time.time() + 20
        for _ in range(8192):
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
                s.sendall(half)
                attackers.append(s)
            except OSError:
                break
        served = 0
        tried = 0
        for i in range(25):
            if time.time() > deadline:
                break
            tried += 1
            try:
                s = upgrade(srv.port, src="127.0.0.%d" % (i + 2), timeout=3)
                s.sendall(frame(1, b"hello"))
                if s.recv(64)[2:] == b"hello":
                    served += 1
                s.close()
            except (OSError, ConnectionError):
                pass
        print("slowloris: %d half-finished requests from 127.0.0.1; legitimate clients from other "
              "addresses served: %d of %d" % (len(attackers), served, tried))
        for s in attackers:
            s.close()
    finally:
        srv.stop()


PROBES = {"amplification": amplification, "echo-hoard": echo_hoard, "topics": topics,
          "bombs": bombs, "slowloris": slowloris}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(PROBES):
        PROBES[name]()
