#!/usr/bin/env python3
"""The JSON pub/sub protocol of `myriad serve --mode pubsub`, driven by the Python `websockets`
client (issue 4), with two reactors so that subscribers spread over both.

Checks: every subscriber receives every publish exactly once and in publish order; unsubscribe and
close stop delivery; malformed JSON, unknown ops and missing fields get {"error": ...} without a
close; an over-limit message is closed with 1009; compression (the client's default offer) gives
the same messages. Every wait is bounded. Prints `python-pubsub: N passed, M failed` last.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MYRIAD_BIN", os.path.join(ROOT, "target/release/myriad"))
URL = None
TIMEOUT = 10


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def conn(**kw):
    kw.setdefault("proxy", None)
    kw.setdefault("max_size", 2 ** 22)
    return connect(URL, open_timeout=TIMEOUT, **kw)


async def request(ws, obj):
    await ws.send(json.dumps(obj))


async def expect(ws, want):
    got = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    check(got == want, "got %r, want %r" % (got, want))


async def sub(ws, topic):
    await request(ws, {"op": "sub", "topic": topic})
    await expect(ws, {"ok": "sub", "topic": topic})


async def quiet(ws, seconds=0.3):
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected message %r" % msg)


async def test_every_subscriber_gets_every_publish_once_in_order():
    subs = [await conn().__aenter__() for _ in range(8)]
    try:
        for s in subs:
            await sub(s, "prices")
        async with conn() as pub:
            for i in range(50):
                await request(pub, {"op": "pub", "topic": "prices", "data": {"seq": i, "px": [1.5, i]}})
            for s in subs:
                for i in range(50):
                    await expect(s, {"topic": "prices", "data": {"seq": i, "px": [1.5, i]}})
                await quiet(s)
    finally:
        for s in subs:
            await s.close()


async def test_unsubscribe_and_close_stop_delivery():
    async with conn() as a, conn() as b, conn() as pub:
        await sub(a, "t")
        await sub(b, "t")
        await request(pub, {"op": "pub", "topic": "t", "data": 1})
        await expect(a, {"topic": "t", "data": 1})
        await expect(b, {"topic": "t", "data": 1})
        await request(a, {"op": "unsub", "topic": "t"})
        await expect(a, {"ok": "unsub", "topic": "t"})
        await b.close()
        await asyncio.sleep(0.1)
        await request(pub, {"op": "pub", "topic": "t", "data": 2})
        await quiet(a)
        # The publisher is not subscribed: nothing comes back to it either.
        await quiet(pub)


async def test_publisher_that_subscribes_gets_its_own_message():
    async with conn() as a:
        await sub(a, "self")
        await request(a, {"op": "pub", "topic": "self", "data": "me"})
        await expect(a, {"topic": "self", "data": "me"})


async def test_errors_keep_the_connection_open():
    async with conn() as a:
        for bad, why in [
            ("{not json", "malformed JSON"),
            ('{"op":"dance","topic":"t"}', "unknown op"),
            ('{"op":"sub"}', "missing field: topic"),
            ('{"topic":"t"}', "missing field: op"),
            ('{"op":"pub","topic":"t"}', "missing field: data"),
            ("[1,2]", "expected a JSON object"),
        ]:
            await a.send(bad)
            await expect(a, {"error": why})
        await sub(a, "still-open")


async def test_message_over_the_limit_closes_1009():
    async with conn() as a:
        await a.send(json.dumps({"op": "pub", "topic": "t", "data": "x" * (2 ** 20 + 10)}))
        try:
            await asyncio.wait_for(a.recv(), TIMEOUT)
            raise AssertionError("expected a close")
        except ConnectionClosed:
            pass
        check(a.close_code == 1009, "close code %r" % a.close_code)


async def test_compressed_and_plain_subscribers_get_the_same():
    async with conn(compression=None) as plain, conn() as packed, conn() as pub:
        check(plain.response.headers.get("Sec-WebSocket-Extensions") is None, "plain negotiated")
        check("permessage-deflate" in packed.response.headers.get("Sec-WebSocket-Extensions", ""),
              "deflate not negotiated")
        await sub(plain, "big")
        await sub(packed, "big")
        data = {"rows": [{"id": i, "name": "row %d" % i} for i in range(200)]}
        await request(pub, {"op": "pub", "topic": "big", "data": data})
        await expect(plain, {"topic": "big", "data": data})
        await expect(packed, {"topic": "big", "data": data})


TESTS = [
    test_every_subscriber_gets_every_publish_once_in_order,
    test_unsubscribe_and_close_stop_delivery,
    test_publisher_that_subscribes_gets_its_own_message,
    test_errors_keep_the_connection_open,
    test_message_over_the_limit_closes_1009,
    test_compressed_and_plain_subscribers_get_the_same,
]


def main():
    global URL
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    URL = "ws://127.0.0.1:%d/" % port
    server = subprocess.Popen(
        [BIN, "serve", "--mode", "pubsub", "--listen", "127.0.0.1:%d" % port, "--workers", "2",
         "--max-message", str(2 ** 20), "--max-frame", str(2 ** 20)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    passed = failed = 0
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for t in TESTS:
            try:
                asyncio.run(asyncio.wait_for(t(), 60))
                passed += 1
                print("PASS", t.__name__)
            except Exception:
                failed += 1
                print("FAIL", t.__name__)
                traceback.print_exc()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    print("python-pubsub: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
