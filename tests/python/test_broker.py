#!/usr/bin/env python3
"""Pub/sub across nodes over a real Redis (issue 15): a `redis-server` on a loopback port and three
`myriad serve --mode pubsub --broker redis://...` nodes, driven by the Python `websockets` client.

Checks: every subscriber on every node gets every publish exactly once, in order per publisher,
nothing twice on the publisher's node; a node subscribes to a topic's channel only while it has
subscribers (PUBSUB NUMSUB, asked of Redis itself); unsubscribe and close stop delivery; a message
published on the channel by another Redis client reaches the subscribers; Redis killed and
restarted: local pub/sub goes on, /readyz answers 503 while the broker is down, the nodes
reconnect and subscribe again by themselves, delivery resumes, drops and reconnects are counted
in /metrics; a node killed: the others notice nothing beyond their counters. Every wait is
bounded; everything started is stopped. Prints `python-broker: N passed, M failed` last.

Environment: MYRIAD_BIN (default target/release/myriad), REDIS_SERVER (default redis-server).
"""

import asyncio
import json
import os
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
REDIS = os.environ.get("REDIS_SERVER", "redis-server")
LOGS = os.path.join(ROOT, "target", "broker-test")
TIMEOUT = 10

REDIS_PORT = None
REDIS_PROC = None
NODES = {}  # name -> (port, process)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def redis(*args):
    """One command to Redis over a raw socket (RESP); the reply, parsed simply."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=5) as s:
        s.sendall(out)
        data = b""
        while not data.endswith(b"\r\n") or data.count(b"\r\n") < expected_lines(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def expected_lines(data):
    # *2\r\n$n\r\nname\r\n:k\r\n is 4 lines (NUMSUB of one channel); anything else is one.
    return 4 if data.startswith(b"*") else 1


def numsub(topic):
    reply = redis("PUBSUB", "NUMSUB", "myriad." + topic).split(b"\r\n")
    return int(reply[3][1:])


def until(cond, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting: " + what)


def start_redis():
    global REDIS_PROC
    log = open(os.path.join(LOGS, "redis.log"), "ab")
    REDIS_PROC = subprocess.Popen(
        [REDIS, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log, stderr=subprocess.STDOUT)
    check(wait_port(REDIS_PORT), "redis-server did not start (see %s)" % LOGS)


def start_node(name, extra=()):
    port = free_port()
    log = open(os.path.join(LOGS, "node-%s.log" % name), "ab")
    proc = subprocess.Popen(
        [BIN, "serve", "--mode", "pubsub", "--listen", "127.0.0.1:%d" % port, "--workers", "2",
         "--broker", "redis://127.0.0.1:%d" % REDIS_PORT] + list(extra),
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="info"))
    NODES[name] = (port, proc)
    check(wait_port(port), "node %s did not start" % name)


def http(name, path):
    port = NODES[name][0]
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics(name):
    status, text = http(name, "/metrics")
    check(status == 200, "/metrics answered %d" % status)
    out = {}
    for line in text.splitlines():
        if line.startswith("myriad_broker_"):
            k, v = line.split()
            out[k] = float(v)
    return out


def conn(name):
    return connect("ws://127.0.0.1:%d/" % NODES[name][0], open_timeout=TIMEOUT, proxy=None,
                   max_size=2 ** 22)


async def send(ws, obj):
    await ws.send(json.dumps(obj))


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def sub(ws, topic):
    await send(ws, {"op": "sub", "topic": topic})
    got = await recv(ws)
    check(got == {"ok": "sub", "topic": topic}, "sub answered %r" % got)


async def quiet(ws, seconds=0.5):
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected message %r" % msg)


async def wait_numsub(topic, n):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if numsub(topic) == n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("NUMSUB %s stayed %d, want %d" % (topic, numsub(topic), n))


async def test_every_subscriber_on_every_node_gets_every_publish_once_in_order():
    subs = []
    for name in "ABC":
        for _ in range(4):
            ws = await conn(name).__aenter__()
            await sub(ws, "prices")
            subs.append(ws)
    try:
        await wait_numsub("prices", 3)
        async with conn("A") as pa, conn("B") as pb:
            for i in range(50):
                await send(pa, {"op": "pub", "topic": "prices", "data": {"from": "A", "seq": i}})
                await send(pb, {"op": "pub", "topic": "prices", "data": {"from": "B", "seq": i}})
            for ws in subs:
                seen = {"A": [], "B": []}
                for _ in range(100):
                    m = await recv(ws)
                    check(m["topic"] == "prices", "topic %r" % m)
                    seen[m["data"]["from"]].append(m["data"]["seq"])
                for p in "AB":
                    check(seen[p] == list(range(50)), "from %s got %r" % (p, seen[p]))
                await quiet(ws)
    finally:
        for ws in subs:
            await ws.close()


async def test_a_publisher_that_subscribes_gets_its_own_message_once():
    async with conn("A") as a, conn("B") as b:
        await sub(a, "own")
        await sub(b, "own")
        await wait_numsub("own", 2)
        await send(a, {"op": "pub", "topic": "own", "data": 7})
        for ws in (a, b):
            check(await recv(ws) == {"topic": "own", "data": 7}, "delivery")
            await quiet(ws)


async def test_only_nodes_with_subscribers_subscribe():
    async with conn("C") as c:
        await sub(c, "lonely")
        await wait_numsub("lonely", 1)
        async with conn("C") as c2:
            await sub(c2, "lonely")
            await asyncio.sleep(0.2)
            check(numsub("lonely") == 1, "one channel subscription per node")
        # c2 closed: c still holds the topic on node C.
        await asyncio.sleep(0.2)
        check(numsub("lonely") == 1, "still subscribed while c is")
        await send(c, {"op": "unsub", "topic": "lonely"})
        check(await recv(c) == {"ok": "unsub", "topic": "lonely"}, "unsub answer")
        await wait_numsub("lonely", 0)


async def test_unsubscribe_and_close_stop_delivery():
    a = await conn("A").__aenter__()
    b = await conn("B").__aenter__()
    c = await conn("C").__aenter__()
    try:
        for ws in (a, b, c):
            await sub(ws, "news")
        await wait_numsub("news", 3)
        await send(b, {"op": "unsub", "topic": "news"})
        check(await recv(b) == {"ok": "unsub", "topic": "news"}, "unsub answer")
        await c.close()
        await wait_numsub("news", 1)
        async with conn("A") as p:
            await send(p, {"op": "pub", "topic": "news", "data": "only A"})
        check(await recv(a) == {"topic": "news", "data": "only A"}, "A's subscriber")
        await quiet(b)
    finally:
        for ws in (a, b):
            await ws.close()


async def test_another_redis_client_can_publish():
    async with conn("B") as b:
        await sub(b, "ext")
        await wait_numsub("ext", 1)
        redis("PUBLISH", "myriad.ext", "from a backend")
        got = await asyncio.wait_for(b.recv(), TIMEOUT)
        check(got == "from a backend", "got %r" % got)


async def test_redis_killed_and_restarted():
    before = {n: metrics(n) for n in "ABC"}
    a = await conn("A").__aenter__()
    b = await conn("B").__aenter__()
    c = await conn("C").__aenter__()
    try:
        for ws in (a, b, c):
            await sub(ws, "live")
        await wait_numsub("live", 3)
        REDIS_PROC.send_signal(signal.SIGKILL)
        REDIS_PROC.wait(10)
        until(lambda: http("A", "/readyz")[0] == 503, 10, "/readyz 503 on A")
        check(metrics("A")["myriad_broker_up"] == 0, "broker_up 0")
        # Local pub/sub goes on; node A's small broker queue fills and drops.
        async with conn("A") as p:
            for i in range(200):
                await send(p, {"op": "pub", "topic": "live", "data": {"outage": i, "pad": "x" * 100}})
        for i in range(200):
            check((await recv(a))["data"]["outage"] == i, "local delivery during the outage")
        until(lambda: metrics("A")["myriad_broker_dropped_total"] > before["A"]["myriad_broker_dropped_total"],
              10, "drops counted on A")
        # Back: every node reconnects and subscribes again by itself.
        start_redis()
        await wait_numsub("live", 3)
        for n in "ABC":
            until(lambda n=n: http(n, "/readyz")[0] == 200, 15, "/readyz 200 on " + n)
            m = metrics(n)
            check(m["myriad_broker_up"] == 1, n + " up")
            check(m["myriad_broker_reconnects_total"] >= before[n]["myriad_broker_reconnects_total"] + 1,
                  n + " reconnect counted")
        # What was queued within the limit may arrive at B and C now (at most once): skip it.
        await asyncio.sleep(0.5)
        for ws in (b, c):
            while True:
                try:
                    await asyncio.wait_for(ws.recv(), 0.2)
                except asyncio.TimeoutError:
                    break
        async with conn("A") as p:
            await send(p, {"op": "pub", "topic": "live", "data": "resumed"})
        for ws in (b, c):
            check(await recv(ws) == {"topic": "live", "data": "resumed"}, "delivery resumed")
    finally:
        for ws in (a, b, c):
            await ws.close()


async def test_a_node_killed_leaves_the_others_alone():
    before = {n: metrics(n) for n in "AB"}
    async with conn("A") as a, conn("B") as b, conn("C") as c:
        for ws in (a, b, c):
            await sub(ws, "after")
        await wait_numsub("after", 3)
        NODES["C"][1].send_signal(signal.SIGKILL)
        NODES["C"][1].wait(10)
        await wait_numsub("after", 2)
        await send(a, {"op": "pub", "topic": "after", "data": 1})
        for ws in (a, b):
            check(await recv(ws) == {"topic": "after", "data": 1}, "delivery after C died")
    for n in "AB":
        m = metrics(n)
        check(m["myriad_broker_up"] == 1, n + " still up")
        check(m["myriad_broker_reconnects_total"] == before[n]["myriad_broker_reconnects_total"],
              n + " did not reconnect")
        check(m["myriad_broker_published_total"] >= before[n]["myriad_broker_published_total"],
              n + " counts")
    if shutil.which("promtool"):
        status, text = http("A", "/metrics")
        r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        check(r.returncode == 0, "promtool: %s" % r.stdout.decode() + r.stderr.decode())


TESTS = [
    test_every_subscriber_on_every_node_gets_every_publish_once_in_order,
    test_a_publisher_that_subscribes_gets_its_own_message_once,
    test_only_nodes_with_subscribers_subscribe,
    test_unsubscribe_and_close_stop_delivery,
    test_another_redis_client_can_publish,
    test_redis_killed_and_restarted,
    test_a_node_killed_leaves_the_others_alone,
]


def main():
    global REDIS_PORT
    os.makedirs(LOGS, exist_ok=True)
    if not shutil.which(REDIS):
        print("FAIL redis-server not installed (scripts/test.sh installs Debian's redis-server)")
        print("python-broker: 0 passed, 1 failed")
        return 1
    REDIS_PORT = free_port()
    passed = failed = 0
    try:
        start_redis()
        # Node A keeps at most 8 KiB of publishes for the broker: the outage test fills it.
        start_node("A", ["--broker-max-queued", "8192"])
        start_node("B")
        start_node("C")
        for t in TESTS:
            try:
                asyncio.run(asyncio.wait_for(t(), 90))
                passed += 1
                print("PASS", t.__name__, flush=True)
            except Exception:
                failed += 1
                print("FAIL", t.__name__, flush=True)
                traceback.print_exc()
    finally:
        for _, proc in NODES.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if REDIS_PROC is not None and REDIS_PROC.poll() is None:
            REDIS_PROC.kill()
            REDIS_PROC.wait(10)
    print("python-broker: %d passed, %d failed (logs: %s)" % (passed, failed, LOGS))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
