#!/usr/bin/env python3
"""End-to-end echo conversations against `myriad serve`, using the Python
`websockets` client (pinned in tests/python/requirements.txt, asyncio API).

Starts the server binary itself on a free 127.0.0.1 port:

    MYRIAD_BIN=target/release/myriad python3 tests/python/test_echo.py [-k SUBSTRING]

Environment: MYRIAD_BIN (default target/release/myriad), MYRIAD_WORKERS
(default 2), MYRIAD_TEST_TIMEOUT (seconds per conversation, default 20),
MYRIAD_TLS=1 (the same conversations over wss: a certificate for 127.0.0.1
and localhost is made with openssl, the server gets --tls-cert/--tls-key and
the client trusts that certificate only; plus a SIGHUP certificate reload),
MYRIAD_TLS_HANDOVER=1 (with MYRIAD_TLS=1: the server also gets
--tls-record-handover).

Prints one line per test and finally `python-websockets: N passed, M failed`;
exits non-zero if any test failed. Standalone: no pytest needed.
"""

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = float(os.environ.get("MYRIAD_TEST_TIMEOUT", "20"))
WORKERS = os.environ.get("MYRIAD_WORKERS", "2")
URI = None  # set once the server is up
TLS = os.environ.get("MYRIAD_TLS") == "1"
CERT_DIR = os.path.join(ROOT, "target", "python-tls")
SSL_CTX = None  # trusts the test certificate, when TLS
SERVER = None  # the server process


def ws_connect(**kwargs):
    # proxy=None: never route 127.0.0.1 through an http(s)_proxy from the env.
    # ping_interval=None: no keepalive pings of our own interleaved in tests.
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    if TLS:
        kwargs.setdefault("ssl", SSL_CTX)
    return connect(URI, **kwargs)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def short(x, n=60):
    r = repr(x)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(r)


async def echo_one(ws, msg):
    await ws.send(msg)
    got = await ws.recv()
    check(type(got) is type(msg), "sent %s, got %s back" % (type(msg).__name__, type(got).__name__))
    check(got == msg, "echo differs: sent %s, got %s" % (short(msg), short(got)))


# --- conversations ---------------------------------------------------------------

async def test_text_echo():
    async with ws_connect() as ws:
        for msg in ["hello", "", "h\u00e9llo w\u00f6rld \u2603 \U0001f600", "x" * 70000]:
            await echo_one(ws, msg)


async def test_binary_echo():
    async with ws_connect() as ws:
        for msg in [b"\x00\x01\x02\xff", b"", bytes(range(256)) * 300]:
            await echo_one(ws, msg)


async def test_many_messages_in_order():
    async with ws_connect() as ws:
        msgs = ["message %d" % i for i in range(200)]
        for m in msgs:  # pipelined: all sent before any is read
            await ws.send(m)
        got = [await ws.recv() for _ in msgs]
        check(got == msgs, "echoes out of order or altered")


async def test_fragmented_text():
    parts = ["Hello, ", "fragmented ", "w\u00f6rld", "!"]
    async with ws_connect() as ws:
        await ws.send(parts)  # an iterable is sent as one message in fragments
        got = await ws.recv()
        check(got == "".join(parts), "got %s" % short(got))


async def test_fragmented_binary_async_iterator():
    chunks = [os.urandom(n) for n in (1, 125, 126, 65535, 65536, 3)]

    async def fragments():
        for c in chunks:
            yield c
            await asyncio.sleep(0)

    async with ws_connect() as ws:
        await ws.send(fragments())
        got = await ws.recv()
        check(got == b"".join(chunks), "joined fragments differ (got %d bytes)" % len(got))


async def test_one_mib_binary():
    msg = os.urandom(1 << 20)
    async with ws_connect(max_size=4 << 20) as ws:
        await echo_one(ws, msg)


async def test_ping_pong():
    async with ws_connect() as ws:
        pong = await ws.ping(b"are you there")
        latency = await pong  # resolves when the matching pong arrives
        check(latency >= 0, "bad latency %r" % latency)
        pong = await ws.ping()  # random payload
        await pong
        await echo_one(ws, "still echoing after pings")


async def close_with(code, reason):
    async with ws_connect() as ws:
        await echo_one(ws, "before close")
        await ws.close(code, reason)
        # close() returns once the closing handshake and TCP close are done.
        sent = ws.close_exc.sent
        check(sent is not None and (sent.code, sent.reason) == (code, reason),
              "we did not send close %d %r (sent %r)" % (code, reason, sent))
        check(ws.close_exc.rcvd is not None, "server sent no close frame (close_code %s)" % ws.close_code)
        # websockets >= 14: ws.close_code / ws.close_reason are what the server sent.
        check(ws.close_code == code, "server answered close code %s, expected echo of %d" % (ws.close_code, code))
        # An echo server normally echoes the reason too; an empty reason is also valid RFC 6455.
        check(ws.close_reason in (reason, ""), "server answered close reason %r" % ws.close_reason)


async def test_close_1000_bye():
    await close_with(1000, "bye")


async def test_close_4001():
    await close_with(4001, "custom code")


async def test_no_compression():
    async with ws_connect(compression=None) as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        check(ext is None, "server negotiated %r although the client offered none" % ext)
        await echo_one(ws, "no compression " * 100)
        await echo_one(ws, b"\x00" * 10000)


async def test_default_compression_offer():
    # The client's default offer (permessage-deflate; client_max_window_bits): the server accepts
    # it in its default shared mode (RFC 7692; issue 3).
    async with ws_connect() as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        check(
            ext == "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "negotiated %r" % ext,
        )
        await echo_one(ws, "compressible " * 1000)
        await echo_one(ws, os.urandom(5000))
        await echo_one(ws, "")


async def test_concurrent_clients():
    async def client(i):
        async with ws_connect() as ws:
            for j in range(20):
                await echo_one(ws, "client %d message %d" % (i, j))
                await echo_one(ws, os.urandom(64 + i))

    await asyncio.gather(*(client(i) for i in range(16)))


async def test_server_closes_cleanly_after_peer_close():
    # After a close handshake, a fresh connection still works (server not wedged).
    async with ws_connect() as ws:
        await ws.close()
    async with ws_connect() as ws:
        await echo_one(ws, "after close")


def make_cert(name):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    os.makedirs(CERT_DIR, exist_ok=True)
    cert, key = os.path.join(CERT_DIR, name + ".pem"), os.path.join(CERT_DIR, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def trusting(cert):
    ctx = ssl.create_default_context(cafile=cert)
    return ctx


async def test_tls_version_and_sighup_reload():
    if not TLS:
        return
    async with ws_connect() as ws:
        version = ws.transport.get_extra_info("ssl_object").version()
        check(version == "TLSv1.3", "negotiated %s" % version)
        await echo_one(ws, "before the reload")
        # New files in place of the old ones, then SIGHUP: new connections get the new
        # certificate, this one goes on.
        old_ctx = SSL_CTX
        new_cert, new_key = make_cert("next")
        os.replace(new_cert, os.path.join(CERT_DIR, "server.pem"))
        os.replace(new_key, os.path.join(CERT_DIR, "server.key"))
        new_ctx = trusting(os.path.join(CERT_DIR, "server.pem"))
        SERVER.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            try:
                async with ws_connect(ssl=new_ctx) as fresh:
                    await echo_one(fresh, "after the reload")
                break
            except ssl.SSLCertVerificationError:
                check(time.monotonic() < deadline, "the new certificate never came")
                await asyncio.sleep(0.1)
        try:
            async with ws_connect(ssl=old_ctx):
                pass
            raise AssertionError("the old certificate is still served")
        except ssl.SSLCertVerificationError:
            pass
        await echo_one(ws, "the old connection still echoes")
        check(SERVER.poll() is None, "the server stopped on SIGHUP")


TESTS = [
    test_text_echo,
    test_binary_echo,
    test_many_messages_in_order,
    test_fragmented_text,
    test_fragmented_binary_async_iterator,
    test_one_mib_binary,
    test_ping_pong,
    test_close_1000_bye,
    test_close_4001,
    test_no_compression,
    test_default_compression_offer,
    test_concurrent_clients,
    test_server_closes_cleanly_after_peer_close,
    test_tls_version_and_sighup_reload,
]


# --- server process -------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, port, log, extra=()):
    cmd = [binary, "serve", "--listen", "127.0.0.1:%d" % port, "--workers", WORKERS] + list(extra)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s before listening" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError("server not listening on 127.0.0.1:%d after 10 s" % port)


def stop_server(proc):
    """SIGTERM, wait 10 s, then SIGKILL. True if it exited on SIGTERM."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


async def run_tests(tests):
    results = []
    for t in tests:
        name = t.__name__[len("test_"):]
        start = time.monotonic()
        try:
            await asyncio.wait_for(t(), TIMEOUT)
            ok, why = True, ""
        except asyncio.TimeoutError:
            ok, why = False, "timed out after %gs" % TIMEOUT
        except (AssertionError, ConnectionClosed, OSError) as e:
            ok, why = False, "%s: %s" % (type(e).__name__, e)
        except Exception as e:  # noqa: BLE001 - report anything as a failure
            ok, why = False, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
        ms = (time.monotonic() - start) * 1000
        print("%s %-40s %7.1f ms%s" % ("PASS" if ok else "FAIL", name, ms, ("  " + why) if why else ""), flush=True)
        results.append(ok)
    return results


def main():
    global URI, SSL_CTX, SERVER
    args = sys.argv[1:]
    tests = TESTS
    if len(args) == 2 and args[0] == "-k":
        tests = [t for t in TESTS if args[1] in t.__name__]
    elif args:
        print(__doc__)
        return 2

    binary = os.environ.get("MYRIAD_BIN", "target/release/myriad")
    if not os.path.isabs(binary):
        binary = os.path.join(ROOT, binary)
    if not os.access(binary, os.X_OK):
        print("server binary %s not found or not executable" % binary)
        print("python-websockets: 0 passed, 1 failed")
        return 1

    import websockets
    port = free_port()
    URI = "%s://127.0.0.1:%d/" % ("wss" if TLS else "ws", port)
    extra = []
    if TLS:
        cert, key = make_cert("server")
        SSL_CTX = trusting(cert)
        extra = ["--tls-cert", cert, "--tls-key", key]
        if os.environ.get("MYRIAD_TLS_HANDOVER") == "1":
            extra.append("--tls-record-handover")
    log_path = os.path.join(ROOT, "target", "python-tests-server%s.log" % ("-tls" if TLS else ""))
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    print("websockets %s; server %s on %s (log: %s)" % (websockets.__version__, binary, URI, log_path), flush=True)
    with open(log_path, "wb") as log:
        try:
            proc = start_server(binary, port, log, extra)
            SERVER = proc
        except RuntimeError as e:
            print("FAIL start_server  %s" % e)
            print("python-websockets: 0 passed, 1 failed")
            return 1
        try:
            results = asyncio.run(run_tests(tests))
        finally:
            graceful = stop_server(proc)
    print("%s %-40s  exit status %s" % ("PASS" if graceful else "FAIL", "server_exits_on_sigterm_within_10s",
                                        proc.returncode), flush=True)
    results.append(graceful)
    passed = sum(results)
    failed = len(results) - passed
    print("python-websockets: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
