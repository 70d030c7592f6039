#!/usr/bin/env python3
"""The HTTP endpoints of `myriad serve` (issue 12), from outside, as a deployment uses them.

- /metrics is valid Prometheus text (checked by Prometheus' own `promtool check metrics`), and its
  counts match a known workload: N WebSocket connections (the Python `websockets` client) that
  send M messages each, all echoed.
- /healthz and /readyz answer 200 while serving; /readyz answers 503 during a graceful shutdown
  (asked on `--admin-listen`'s port, which outlives the WebSocket port's listener).
- /stats.json has the same totals; /dashboard is a page that names the `connections` element.
- A second SIGTERM during the graceful shutdown ends the process at once (issue 11).

Every wait is bounded. Prints `python-endpoints: N passed, M failed` last.
Environment: MYRIAD_BIN (default target/release/myriad), PROMTOOL (default: promtool).
"""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

from websockets.asyncio.client import connect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MYRIAD_BIN", os.path.join(ROOT, "target/release/myriad"))
TIMEOUT = 10
N, M = 20, 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("nothing listens on %d" % port)


def get(port, path):
    """(status, headers, body) of a GET."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def metric_sum(text, name):
    """The sum of every sample of `name` (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^%s(\{[^}]*\})? ([0-9.eE+-]+)$" % re.escape(name), line)
        if m:
            total += float(m.group(2))
    return total


def start(*extra):
    port = free_port()
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:%d" % port, "--workers", "2", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return proc, port


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def workload(port):
    """N connections, M echoed messages each; returns the open connections."""
    conns = []
    for _ in range(N):
        conns.append(await connect("ws://127.0.0.1:%d/" % port, proxy=None, open_timeout=TIMEOUT))
    for ws in conns:
        for i in range(M):
            await ws.send("message %d" % i)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(got == "message %d" % i, "echo mismatch: %r" % got)
    return conns


def test_metrics_are_valid_and_count_the_workload():
    proc, port = start()
    try:
        async def run():
            conns = await workload(port)
            # Counters are posted once per reactor loop iteration: give them one.
            deadline = time.time() + 5
            while True:
                status, headers, body = get(port, "/metrics")
                text = body.decode()
                if metric_sum(text, "myriad_messages_sent_total") >= N * M or time.time() > deadline:
                    break
                await asyncio.sleep(0.1)
            check(status == 200, "status %d" % status)
            check(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
                  "content type %r" % headers.get("Content-Type"))
            promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
            check(promtool is not None, "promtool not installed (scripts/test.sh installs prometheus)")
            lint = subprocess.run([promtool, "check", "metrics"], input=body,
                                  capture_output=True, timeout=30)
            check(lint.returncode == 0,
                  "promtool check metrics failed: %s %s" % (lint.stdout.decode(), lint.stderr.decode()))
            check(metric_sum(text, "myriad_connections") == N,
                  "myriad_connections %s, want %d" % (metric_sum(text, "myriad_connections"), N))
            check(metric_sum(text, "myriad_connections_opened_total") == N, "opened")
            check(metric_sum(text, "myriad_messages_received_total") == N * M,
                  "received %s, want %d" % (metric_sum(text, "myriad_messages_received_total"), N * M))
            check(metric_sum(text, "myriad_messages_sent_total") == N * M,
                  "sent %s, want %d" % (metric_sum(text, "myriad_messages_sent_total"), N * M))
            check(metric_sum(text, "myriad_bytes_received_total") > N * M * 9, "bytes received")
            check(metric_sum(text, "myriad_reactor_up") == 2, "two reactors up")
            check(metric_sum(text, "myriad_loop_iteration_seconds_count") > 0, "loop histogram")
            check(metric_sum(text, "process_resident_memory_bytes") > 1e6, "process RSS")
            check(metric_sum(text, "process_open_fds") >= N, "process fds")
            check('reactor="1"' in text, "per-reactor labels")
            # The JSON the dashboard reads has the same totals.
            status, _, body = get(port, "/stats.json")
            stats = json.loads(body)
            check(status == 200 and stats["connections"] == N, "stats.json %r" % stats)
            for ws in conns:
                await ws.close()
            deadline = time.time() + 5
            while time.time() < deadline:
                text = get(port, "/metrics")[2].decode()
                if metric_sum(text, "myriad_connections") == 0:
                    break
                await asyncio.sleep(0.1)
            check(metric_sum(text, "myriad_connections") == 0, "connections after close")
            closed = sum(float(v) for v in re.findall(
                r'^myriad_connections_closed_total\{code="1000",reactor="\d+"\} (\S+)$', text, re.M))
            check(closed == N, "closed with 1000: %s, want %d" % (closed, N))
        asyncio.run(asyncio.wait_for(run(), 60))
    finally:
        stop(proc)


def test_health_readiness_and_dashboard():
    proc, port = start()
    try:
        status, _, body = get(port, "/healthz")
        check(status == 200, "healthz %d %r" % (status, body))
        status, _, body = get(port, "/readyz")
        check(status == 200, "readyz %d %r" % (status, body))
        status, headers, body = get(port, "/dashboard")
        check(status == 200 and headers.get("Content-Type", "").startswith("text/html"),
              "dashboard %d" % status)
        check(b'id="connections"' in body, "dashboard names #connections")
        status, _, _ = get(port, "/no-such-page")
        check(status == 404, "unknown path %d" % status)
    finally:
        stop(proc)


def test_readyz_is_503_while_shutting_down():
    admin = free_port()
    proc, port = start("--admin-listen", "127.0.0.1:%d" % admin, "--shutdown-timeout", "4")
    try:
        wait_listening(admin)
        check(get(admin, "/readyz")[0] == 200, "ready before the shutdown")
        # The endpoints moved: the WebSocket port no longer answers them.
        check(get(port, "/metrics")[0] == 404, "/metrics on the WebSocket port with --admin-listen")
        # A client that never answers the server's Close keeps the shutdown going for a while.
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        check(s.recv(4096).startswith(b"HTTP/1.1 101"), "upgraded")
        proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 3
        seen = None
        while time.time() < deadline:
            seen = get(admin, "/readyz")[0]
            if seen == 503:
                break
            time.sleep(0.05)
        check(seen == 503, "readyz during the shutdown: %r" % seen)
        check(get(admin, "/healthz")[0] == 200, "healthz during the shutdown")
        s.close()
    finally:
        stop(proc)


def test_a_second_signal_forces_the_exit():
    """SIGTERM starts the graceful shutdown; a second one during it ends the process at once
    (issue 11: before, the second was ignored until the shutdown deadline)."""
    proc, port = start("--shutdown-timeout", "30")
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        check(s.recv(4096).startswith(b"HTTP/1.1 101"), "upgraded")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        check(proc.poll() is None, "still shutting down after the first signal")
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(5)
        check(time.time() - t0 < 2, "exit took %.1f s" % (time.time() - t0))
        check(code == 128 + signal.SIGTERM, "exit status %r" % code)
        s.close()
    finally:
        if proc.poll() is None:
            proc.kill()


TESTS = [
    test_metrics_are_valid_and_count_the_workload,
    test_health_readiness_and_dashboard,
    test_readyz_is_503_while_shutting_down,
    test_a_second_signal_forces_the_exit,
]


def main():
    passed = failed = 0
    for t in TESTS:
        try:
            t()
            passed += 1
            print("PASS", t.__name__)
        except Exception:
            failed += 1
            print("FAIL", t.__name__)
            traceback.print_exc()
    print("python-endpoints: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
