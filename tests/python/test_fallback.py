#!/usr/bin/env python3
"""The fallback transports of `myriad serve` (Server-Sent Events down + POST up, and long-polling),
spoken raw, byte for byte, as the wire format defines them (src/fallback/: event.rs, uplink.rs, query.rs).

- SSE: the open's status and headers, the `s<sid>` event at once; POSTed frames echoed as `t`/`b`
  events in order (a text with CR as a `u` event, a multi-line text as several `data:` lines, empty
  messages); the heartbeat comment, and an open stream outliving --session-timeout-ms; a `c` frame
  ends the stream and the session (410 afterwards), and so does dropping the TCP connection.
- Long-polling: the open, ids 1..n in order, the empty answer after --poll-timeout-ms, a parked
  poll answered at once by a POST, nothing lost when a poll's answer is lost (the same ack gets the
  same messages again), a second poll displacing the first (409), a session expiring after
  --session-timeout-ms without a poll (410).
- Bad input: 404 for unknown session ids, 410 for closed ones, 413 over --max-body, 400 for
  malformed framing and for invalid UTF-8 in a `t` frame (and nothing of that body delivered), a
  flood of POSTs to a session that does not read (429 or drops, bounded memory, the server still
  answering WebSockets).
- Pub/sub (--mode pubsub) across an SSE session, a polling session and a WebSocket.
- An Origin that --allow-origin refuses is refused for SSE and long-polling as for WebSocket.
- GET /myriad.js serves the JavaScript client.

Every wait is bounded (socket timeouts, a per-test alarm, a budget for the whole file).
Prints `python-fallback: N passed, M failed` last. Standalone: no pytest.
Environment: MYRIAD_BIN (default target/release/myriad). Server output: target/test-logs/fallback-*.log.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

from websockets.sync.client import connect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MYRIAD_BIN", os.path.join(ROOT, "target/release/myriad"))
LOG_DIR = os.path.join(ROOT, "target", "test-logs")
TIMEOUT = 10
PATH = "/chat?room=lobby"  # every fallback request keeps the WebSocket URL's path and query
POLL_MS, SESSION_MS, HEARTBEAT_MS = 2000, 4000, 1000
FALLBACK_FLAGS = ["--poll-timeout-ms", str(POLL_MS), "--session-timeout-ms", str(SESSION_MS),
                  "--sse-heartbeat-ms", str(HEARTBEAT_MS), "--shutdown-timeout", "3"]
MAX_BODY = 65536  # the default of --max-body
FLOOD_BACKPRESSURE = 65536
GOOD_ORIGIN, EVIL_ORIGIN = "http://good.example", "http://evil.example"

# name -> extra arguments; each server is started on first use and stopped at the end.
CONFIGS = {
    "echo": FALLBACK_FLAGS,
    "flood-poll": FALLBACK_FLAGS[:2] + ["--session-timeout-ms", "60000"] + FALLBACK_FLAGS[4:]
    + ["--max-backpressure", str(FLOOD_BACKPRESSURE)],
    "flood-sse": FALLBACK_FLAGS + ["--max-backpressure", str(FLOOD_BACKPRESSURE)],
    "pubsub": FALLBACK_FLAGS + ["--mode", "pubsub"],
    "origin": FALLBACK_FLAGS + ["--allow-origin", GOOD_ORIGIN],
}
SERVERS = {}  # name -> (proc, port)


# --- servers -----------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def server(name):
    """(proc, port) of the server `name` of CONFIGS, started if it is not yet."""
    if name in SERVERS:
        proc, port = SERVERS[name]
        check(proc.poll() is None, "server %s exited with %r (log: %s)" % (name, proc.returncode, log_path(name)))
        return proc, port
    os.makedirs(LOG_DIR, exist_ok=True)
    port = free_port()
    with open(log_path(name), "wb") as log:
        proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % port, "--workers", "2", *CONFIGS[name]],
            stdout=log, stderr=subprocess.STDOUT)
    SERVERS[name] = (proc, port)
    deadline = time.monotonic() + 10
    while True:
        check(proc.poll() is None, "server %s exited at start with %r: %s" % (name, proc.returncode, log_tail(name)))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            check(time.monotonic() < deadline, "server %s: nothing listens on %d" % (name, port))
            time.sleep(0.05)


def port_of(name):
    return server(name)[1]


def log_path(name):
    return os.path.join(LOG_DIR, "fallback-%s.log" % name)


def log_tail(name, n=15):
    try:
        with open(log_path(name), "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no log)"


def stop_all():
    for proc, _ in SERVERS.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 8
    for proc, _ in SERVERS.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    SERVERS.clear()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


# --- small things ------------------------------------------------------------------

def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def short(x, n=80):
    r = repr(x)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(r)


def url(path=PATH, params=None):
    """`path` (which may have a query) with `params` added, `&` or `?` as needed."""
    if not params:
        return path
    return path + ("&" if "?" in path else "?") + urllib.parse.urlencode(params)


def session_url(sid, path=PATH, **more):
    return url(path, {"myriad-session": sid, **more})


def frame(msg):
    """One uplink frame: `t` for str, `b` for bytes; the length is the payload's byte count."""
    if isinstance(msg, str):
        data = msg.encode("utf-8")
        return b"t%d:" % len(data) + data
    return b"b%d:" % len(msg) + bytes(msg)


def frames(*msgs):
    return b"".join(frame(m) for m in msgs)


def close_frame(code, reason):
    payload = ("%d %s" % (code, reason)).encode()
    return b"c%d:" % len(payload) + payload


# --- raw HTTP ------------------------------------------------------------------------

class Reader:
    """Buffered reads from a socket with deadlines (or from fixed bytes, for a poll body)."""

    def __init__(self, sock=None, data=b""):
        self.sock = sock
        self.buf = bytearray(data)
        self.pos = 0
        self.eof = sock is None

    def fill(self, deadline):
        """Reads more; False at EOF. Raises TimeoutError past the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += chunk
        return True

    def until(self, sep, deadline):
        """The bytes up to `sep` (consumed, not returned), or None at EOF before it."""
        while True:
            i = self.buf.find(sep, self.pos)
            if i >= 0:
                out = bytes(self.buf[self.pos:i])
                self.pos = i + len(sep)
                return out
            if not self.fill(deadline):
                return None

    def exact(self, n, deadline):
        while len(self.buf) - self.pos < n:
            if not self.fill(deadline):
                raise AssertionError("connection closed %d bytes short of a %d-byte body"
                                     % (n - (len(self.buf) - self.pos), n))
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def rest(self, deadline):
        while self.fill(deadline):
            pass
        out = bytes(self.buf[self.pos:])
        self.pos = len(self.buf)
        return out

    def head(self, deadline):
        """(status, headers with lower-case names) of a response."""
        raw = self.until(b"\r\n\r\n", deadline)
        check(raw is not None, "connection closed before a response head (had %s)" % short(bytes(self.buf)))
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        check(len(parts) >= 2 and parts[0].startswith("HTTP/1."), "bad status line %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = headers[name] + ", " + value if name in headers else value
        return int(parts[1]), headers

    def body(self, status, headers, method, deadline):
        if method == "HEAD" or status in (204, 304) or status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size = self.until(b"\r\n", deadline)
                check(size is not None, "connection closed in a chunked body")
                n = int(size.split(b";")[0], 16)
                if n == 0:
                    while self.until(b"\r\n", deadline):  # trailers
                        pass
                    return out
                out += self.exact(n, deadline)
                check(self.exact(2, deadline) == b"\r\n", "bad chunk end")
        if "content-length" in headers:
            return self.exact(int(headers["content-length"]), deadline)
        return self.rest(deadline)


def send_request(port, method, target, body=b"", headers=(), close=True, sock=None):
    """Sends a request (on `sock`, or a new connection, returned). A server that answers before
    reading the whole body (413) may reset the connection: what it answered is read after."""
    if sock is None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1:%d" % port]
    lines += ["%s: %s" % h for h in headers]
    if method == "POST" or body:
        lines.append("Content-Type: text/plain;charset=UTF-8")
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    try:
        sock.settimeout(TIMEOUT)
        sock.sendall(data)
    except OSError:
        pass
    return sock


def read_response(sock, method="GET", timeout=TIMEOUT):
    """(status, headers, body) of the response on `sock`."""
    deadline = time.monotonic() + timeout
    reader = Reader(sock)
    try:
        status, headers = reader.head(deadline)
        return status, headers, reader.body(status, headers, method, deadline)
    except TimeoutError:
        raise AssertionError("no whole response to a %s within %.1f s" % (method, timeout))


def http(port, method, target, body=b"", headers=(), timeout=TIMEOUT):
    sock = send_request(port, method, target, body, headers)
    try:
        return read_response(sock, method, timeout)
    finally:
        sock.close()


def post(port, sid, body, path=PATH):
    """The status of a POST of `body` to session `sid`."""
    return http(port, "POST", session_url(sid, path), body)[0]


def send(port, sid, *msgs, path=PATH):
    """POSTs `msgs` as one body; it must be delivered (204)."""
    status = post(port, sid, frames(*msgs), path)
    check(status == 204, "POST of %s: %d, want 204" % (short(msgs), status))


# --- events ------------------------------------------------------------------------

class Event:
    def __init__(self, data, id, event, raw):
        self.data = data    # the data lines joined with LF
        self.id = id        # the id field, or None
        self.event = event  # the event field (type), or None
        self.raw = raw      # the field lines as they came (str), comments left out

    def __repr__(self):
        return "Event(%s, id=%r)" % (short(self.data), self.id)


class EventStream:
    """An SSE parser (the EventSource rules for the lines the wire format uses). The server
    never writes CR in an event stream (texts with CR go base64), so a CR is an error here."""

    def __init__(self, reader):
        self.reader = reader
        self.comments = []  # (time, line)
        self._reset()

    def _reset(self):
        self._data, self._id, self._event, self._raw = [], None, None, []

    def next(self, timeout=TIMEOUT, allow_timeout=False):
        """The next event; None at the end of the stream (a partial event is dropped, as
        EventSource does); with allow_timeout, "timeout" when none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.reader.until(b"\n", deadline)
            except TimeoutError:
                if allow_timeout:
                    return "timeout"
                raise AssertionError("no SSE event within %.1f s" % timeout)
            if line is None:
                return None
            check(b"\r" not in line, "CR in an event stream line: %s" % short(line))
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise AssertionError("event stream line is not UTF-8: %s" % short(line))
            if text == "":
                if self._data:
                    ev = Event("\n".join(self._data), self._id, self._event, self._raw)
                    self._reset()
                    return ev
                self._reset()
                continue
            if text.startswith(":"):
                self.comments.append((time.monotonic(), text))
                continue
            self._raw.append(text)
            name, colon, value = text.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "id":
                self._id = value
            elif name == "event":
                self._event = value


def parse_events(body):
    stream = EventStream(Reader(data=body))
    out = []
    while True:
        ev = stream.next()
        if ev is None:
            check(stream.reader.pos == len(stream.reader.buf) and not stream._raw,
                  "body does not end with a blank line: %s" % short(body))
            return out
        out.append(ev)


def b64(s):
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except Exception as e:
        raise AssertionError("bad base64 %s: %s" % (short(s), e))


def payload(ev):
    """The message an event carries: str (`t` or `u`) or bytes (`b`)."""
    check(ev.event is None, "event type %r: every event must be of the default type" % ev.event)
    kind, rest = ev.data[:1], ev.data[1:]
    if kind == "t":
        return rest
    if kind == "u":
        try:
            return b64(rest).decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError("u event is not UTF-8: %s" % short(rest))
    if kind == "b":
        return b64(rest)
    raise AssertionError("expected a message event (t, u or b), got %r" % ev)


def close_of(ev):
    """(code, reason) of a `c` event."""
    check(ev.data[:1] == "c", "expected a c event, got %r" % ev)
    code, sep, reason = ev.data[1:].partition(" ")
    check(sep == " " and code.isdigit(), "c event not `c<code> <reason>`: %r" % ev.data)
    return int(code), reason


def data_lines(ev):
    return [line for line in ev.raw if line.startswith("data")]


def expected_lines(kind, text):
    return ["data: " + (kind if i == 0 else "") + part for i, part in enumerate(text.split("\n"))]


class Sse:
    """An SSE stream: the request is sent and the head read at construction."""

    def __init__(self, port, path=PATH, headers=()):
        self.port = port
        sock = socket.socket()
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self.t0 = time.monotonic()
        sock.connect(("127.0.0.1", port))
        # What EventSource sends.
        send_request(port, "GET", path, headers=(("Accept", "text/event-stream"),
                                                  ("Cache-Control", "no-cache"), *headers),
                     close=False, sock=sock)
        self.reader = Reader(sock)
        try:
            self.status, self.headers = self.reader.head(time.monotonic() + TIMEOUT)
        except TimeoutError:
            raise AssertionError("no response head to the SSE open within %d s" % TIMEOUT)
        self.stream = EventStream(self.reader)
        self.sid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def open(self, timeout=TIMEOUT):
        """Expects 200 and the `s<sid>` event first; returns self."""
        check(self.status == 200, "SSE open: %d, want 200" % self.status)
        ev = self.stream.next(timeout)
        check(ev is not None, "SSE stream ended before the s event")
        check(ev.data.startswith("s") and len(ev.data) > 1, "first event %r, want s<sid>" % ev)
        check(data_lines(ev) == ["data: " + ev.data], "s event lines %r" % ev.raw)
        self.sid = ev.data[1:]
        return self

    def next(self, timeout=TIMEOUT):
        ev = self.stream.next(timeout)
        check(ev is not None, "SSE stream ended")
        return ev

    def messages(self, n, timeout=TIMEOUT):
        return [payload(self.next(timeout)) for _ in range(n)]

    def send(self, *msgs):
        send(self.port, self.sid, *msgs)


def sse_open(port, path=PATH):
    s = Sse(port, path)
    try:
        return s.open()
    except BaseException:
        s.close()
        raise


def poll_open(port, path=PATH, headers=()):
    status, h, body = http(port, "GET", url(path, {"myriad-transport": "poll"}), headers=headers)
    check(status == 200, "poll open: %d, want 200 (%s)" % (status, short(body)))
    events = parse_events(body)
    check(len(events) == 1 and events[0].data.startswith("s") and len(events[0].data) > 1,
          "poll open body %s, want data: s<sid>" % short(body))
    check(events[0].id is None and events[0].raw == ["data: " + events[0].data],
          "poll open body %s: the single line data: s<sid>" % short(body))
    return events[0].data[1:]


def poll_url(sid, ack, path=PATH):
    return session_url(sid, path, **{"myriad-ack": ack})


def poll(port, sid, ack, path=PATH, timeout=TIMEOUT + POLL_MS / 1000):
    """(status, headers, events) of a poll."""
    status, headers, body = http(port, "GET", poll_url(sid, ack, path), timeout=timeout)
    events = parse_events(body) if status == 200 else []
    return status, headers, events


def check_poll_answer(status, headers, events, first_id):
    """A 200 poll answer: no-store, Content-Length, ids first_id, first_id + 1, ... each on the
    event's first line. Returns the payloads."""
    check(status == 200, "poll: %d, want 200" % status)
    check("no-store" in headers.get("cache-control", ""), "poll Cache-Control %r" % headers.get("cache-control"))
    check("content-length" in headers, "poll answer without Content-Length")
    for i, ev in enumerate(events):
        check(ev.id == str(first_id + i), "event %d has id %r, want %d" % (i, ev.id, first_id + i))
        check(ev.raw[0] == "id: %d" % (first_id + i), "event %d does not start with its id line: %r" % (i, ev.raw))
    return [payload(ev) for ev in events]


def poll_messages(port, sid, ack, path=PATH):
    """The payloads of a poll that must answer 200 with events ack+1, ack+2, ..."""
    status, headers, events = poll(port, sid, ack, path)
    check(events, "poll with ack=%d: no events (status %d)" % (ack, status))
    return check_poll_answer(status, headers, events, ack + 1)


def ws_connect(port, path="/", **kw):
    return connect("ws://127.0.0.1:%d%s" % (port, path), proxy=None, open_timeout=TIMEOUT,
                   ping_interval=None, close_timeout=5, **kw)


def ws_echo_works(port):
    with ws_connect(port) as ws:
        for msg in ("still answering", b"\x00binary too"):
            ws.send(msg)
            got = ws.recv(timeout=TIMEOUT)
            check(got == msg, "WebSocket echo %s, want %s" % (short(got), short(msg)))


# --- SSE ---------------------------------------------------------------------------

def test_sse_open_headers_and_first_event():
    port = port_of("echo")
    with Sse(port) as s:
        check(s.status == 200, "SSE open: %d" % s.status)
        h = s.headers
        check(h.get("content-type", "").split(";")[0].strip() == "text/event-stream",
              "Content-Type %r" % h.get("content-type"))
        check("no-cache" in h.get("cache-control", ""), "Cache-Control %r" % h.get("cache-control"))
        check(h.get("x-accel-buffering") == "no", "X-Accel-Buffering %r" % h.get("x-accel-buffering"))
        check(h.get("connection", "").lower() == "close", "Connection %r" % h.get("connection"))
        check("content-length" not in h, "an SSE stream has no Content-Length")
        check("transfer-encoding" not in h, "an SSE stream is not chunked (%r)" % h.get("transfer-encoding"))
        s.open(timeout=1.0)
        took = time.monotonic() - s.t0
        check(took < 1.0, "s event after %.2f s" % took)
        with sse_open(port) as other:
            check(other.sid != s.sid, "two sessions share the id %r" % s.sid)


def test_sse_echo_text_and_binary_in_order():
    port = port_of("echo")
    first = ["hello", b"\x00\x01\xff", "h\u00e9llo w\u00f6rld \u2603 \U0001f600", bytes(range(256))]
    more = ["t5:not a frame", b"b3:abc", "x" * 5000, os.urandom(3000)]
    with sse_open(port) as s:
        s.send(*first)  # several frames in one body
        # One POST after another on one keep-alive connection (as fetch() does), where the server
        # keeps the connection open.
        sock = None
        try:
            for msg in more:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                send_request(port, "POST", session_url(s.sid), frame(msg), close=False, sock=sock)
                status, headers, _ = read_response(sock, "POST")
                check(status == 204, "POST %s: %d" % (short(msg), status))
                if headers.get("connection", "").lower() == "close":
                    sock.close()
                    sock = None
        finally:
            if sock is not None:
                sock.close()
        got = s.messages(len(first) + len(more))
        for want, have in zip(first + more, got):
            check(type(want) is type(have) and want == have, "echo %s, want %s" % (short(have), short(want)))


def test_sse_text_with_cr_is_a_u_event():
    port = port_of("echo")
    msgs = ["a\r\nb", "\r", "x\ry\n z", "caf\u00e9\r\n", "no carriage return"]
    with sse_open(port) as s:
        for m in msgs:
            s.send(m)
        for m in msgs:
            ev = s.next()
            want_kind = "u" if "\r" in m else "t"
            check(ev.data[:1] == want_kind, "%s came as %r, want a %s event" % (short(m), ev.data[:1], want_kind))
            check(payload(ev) == m, "got %s, want %s" % (short(payload(ev)), short(m)))
            if want_kind == "u":
                check(data_lines(ev) == ["data: " + ev.data], "u event on one line: %r" % ev.raw)


def test_sse_multiline_text():
    port = port_of("echo")
    msgs = ["line one\nline two", "a\n\nb", "\n", "x\n", "\nx", "  lead\n  indented\n",
            ":colon\n:start", "data: fake\n\nid: 9\nevent: x", "\u00e9\n\u2603\n\U0001f600"]
    with sse_open(port) as s:
        s.send(*msgs)
        for m in msgs:
            ev = s.next()
            check(ev.data[:1] == "t", "%s came as %r, want t" % (short(m), ev.data[:1]))
            check(data_lines(ev) == expected_lines("t", m),
                  "%s sent as %r, want %r" % (short(m), data_lines(ev), expected_lines("t", m)))
            check(payload(ev) == m, "got %s, want %s" % (short(payload(ev)), short(m)))


def test_sse_empty_messages():
    port = port_of("echo")
    with sse_open(port) as s:
        s.send("", b"", "after")
        for want, line in (("", "data: t"), (b"", "data: b"), ("after", "data: tafter")):
            ev = s.next()
            check(data_lines(ev) == [line], "empty message as %r, want %r" % (ev.raw, [line]))
            have = payload(ev)
            check(type(have) is type(want) and have == want, "got %s, want %s" % (short(have), short(want)))


def test_sse_heartbeat_and_open_stream_does_not_expire():
    port = port_of("echo")
    with sse_open(port) as s:
        t0 = time.monotonic()
        end = t0 + SESSION_MS / 1000 + 1.0  # past the polling session timeout
        while time.monotonic() < end:
            ev = s.stream.next(timeout=max(0.01, end - time.monotonic()), allow_timeout=True)
            check(ev == "timeout", "unexpected event %r" % ev)
        beats = s.stream.comments
        check(len(beats) >= 2, "%d heartbeat comments in %.1f s (--sse-heartbeat-ms %d)"
              % (len(beats), time.monotonic() - t0, HEARTBEAT_MS))
        check(beats[0][0] - t0 < 3 * HEARTBEAT_MS / 1000, "first heartbeat after %.1f s" % (beats[0][0] - t0))
        check(all(line == ":" for _, line in beats), "heartbeat lines %r, want ':'" % beats[:3])
        s.send("still open")
        check(s.messages(1) == ["still open"], "echo after the heartbeats")


def test_sse_close_frame_ends_stream_and_session():
    port = port_of("echo")
    with sse_open(port) as s:
        s.send("before")
        check(s.messages(1) == ["before"], "echo before the close")
        check(post(port, s.sid, close_frame(1000, "done")) == 204, "POST of the c frame")
        ev = s.stream.next()
        if ev is not None:
            code, _ = close_of(ev)
            check(code == 1000, "close event %r, want c1000" % ev.data)
            after = s.stream.next()
            check(after is None, "the stream goes on after the c event: %r" % after)
        status = post(port, s.sid, frame("after the close"))
        check(status == 410, "POST to the closed session: %d, want 410" % status)


def test_sse_dropped_connection_ends_session():
    port = port_of("echo")
    s = sse_open(port)
    sid = s.sid
    s.close()
    deadline = time.monotonic() + 5
    statuses = []
    while time.monotonic() < deadline:
        statuses.append(post(port, sid, frame("anyone there?")))
        if statuses[-1] == 410:
            return
        check(statuses[-1] == 204, "POST to a dropped SSE session: %d" % statuses[-1])
        time.sleep(0.2)
    raise AssertionError("the session of a closed SSE connection still takes POSTs after 5 s (%s)" % statuses[-3:])


# --- long-polling --------------------------------------------------------------------

def test_poll_messages_come_with_ids_in_order():
    port = port_of("echo")
    sid = poll_open(port)
    msgs = ["one", b"\x02two", "three\nlines\n", "cr\r\nlf", "", b"", "\u00fcnicode \U0001f600"]
    send(port, sid, *msgs[:3])
    for m in msgs[3:]:
        send(port, sid, m)
    status, headers, events = poll(port, sid, 0)
    got = check_poll_answer(status, headers, events, 1)
    check(len(got) == len(msgs), "%d events, want %d: %r" % (len(got), len(msgs), events))
    for want, have in zip(msgs, got):
        check(type(want) is type(have) and want == have, "got %s, want %s" % (short(have), short(want)))
    check(data_lines(events[2]) == expected_lines("t", msgs[2]), "multi-line in a poll: %r" % events[2].raw)
    check(events[3].data[:1] == "u", "a text with CR in a poll: %r" % events[3])
    check(post(port, sid, close_frame(1000, "")) == 204, "close")


def test_poll_empty_answer_after_the_poll_timeout():
    port = port_of("echo")
    sid = poll_open(port)
    send(port, sid, "m")
    check(poll_messages(port, sid, 0) == ["m"], "first poll")
    t0 = time.monotonic()
    status, headers, events = poll(port, sid, 1)
    took = time.monotonic() - t0
    check(status == 200 and events == [], "poll with nothing new: %d %r" % (status, events))
    check(headers.get("content-length") == "0", "empty poll answer Content-Length %r" % headers.get("content-length"))
    check(POLL_MS / 1000 * 0.75 <= took <= POLL_MS / 1000 + 3,
          "empty poll answered after %.2f s (--poll-timeout-ms %d)" % (took, POLL_MS))
    send(port, sid, "n")
    check(poll_messages(port, sid, 1) == ["n"], "ids go on after an empty poll")


def test_poll_parked_is_answered_at_once():
    port = port_of("echo")
    sid = poll_open(port)
    parked = send_request(port, "GET", poll_url(sid, 0))
    try:
        time.sleep(0.4)
        t0 = time.monotonic()
        send(port, sid, "wake up")
        status, headers, body = read_response(parked, timeout=TIMEOUT)
        took = time.monotonic() - t0
        got = check_poll_answer(status, headers, parse_events(body), 1)
        check(got == ["wake up"], "parked poll got %r" % got)
        check(took < 1.0, "the parked poll was answered %.2f s after the POST (poll timeout %.1f s)"
              % (took, POLL_MS / 1000))
    finally:
        parked.close()


def test_poll_lost_answer_loses_nothing():
    port = port_of("echo")
    sid = poll_open(port)
    send(port, sid, "a", "b", "c")
    # The answer is lost: the connection drops before it is read.
    lost = send_request(port, "GET", poll_url(sid, 0))
    time.sleep(0.3)
    lost.close()
    check(poll_messages(port, sid, 0) == ["a", "b", "c"], "after a lost answer")
    # Read, but as if lost: the same ack gets the same again.
    check(poll_messages(port, sid, 0) == ["a", "b", "c"], "again with the same ack")
    check(poll_messages(port, sid, 1) == ["b", "c"], "ack=1")
    send(port, sid, "d")
    check(poll_messages(port, sid, 3) == ["d"], "after ack=3 the acked are gone")
    # A parked poll dropped before the message came: the message waits for the next poll.
    parked = send_request(port, "GET", poll_url(sid, 4))
    time.sleep(0.3)
    parked.close()
    time.sleep(0.1)
    send(port, sid, "e")
    check(poll_messages(port, sid, 4) == ["e"], "a message for a dropped parked poll")
    check(post(port, sid, close_frame(1000, "")) == 204, "close")


def test_poll_second_poll_displaces_the_first():
    port = port_of("echo")
    sid = poll_open(port)
    first = send_request(port, "GET", poll_url(sid, 0))
    second = None
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        second = send_request(port, "GET", poll_url(sid, 0))
        status, _, body = read_response(first, timeout=TIMEOUT)
        took = time.monotonic() - t0
        check(status == 409, "displaced poll: %d %s, want 409" % (status, short(body)))
        check(took < 1.0, "displaced poll answered after %.2f s" % took)
        send(port, sid, "for the second")
        status, headers, body = read_response(second, timeout=TIMEOUT)
        check(check_poll_answer(status, headers, parse_events(body), 1) == ["for the second"], "second poll")
    finally:
        first.close()
        if second is not None:
            second.close()


def test_poll_session_expires_without_polls():
    port = port_of("echo")
    sid = poll_open(port)
    send(port, sid, "x")
    check(poll_messages(port, sid, 0) == ["x"], "first poll")
    time.sleep(SESSION_MS / 1000 / 2)
    send(port, sid, "y")  # still there, half the timeout after the last poll
    check(poll_messages(port, sid, 1) == ["y"], "poll within the session timeout")
    time.sleep(SESSION_MS / 1000 + 1.5)
    status = post(port, sid, frame("too late"))
    check(status == 410, "POST %.1f s after the last poll: %d, want 410" % (SESSION_MS / 1000 + 1.5, status))
    status, _, _ = poll(port, sid, 2)
    check(status == 410, "poll of the expired session: %d, want 410" % status)


# --- bad input ---------------------------------------------------------------------

def test_unknown_session_is_404():
    port = port_of("echo")
    for bad in ("nope", "0", "z" * 40, "../etc/passwd", "a b", "\u00e9"):
        status = post(port, bad, frame("x"))
        check(status == 404, "POST to session %r: %d, want 404" % (bad, status))
        status = http(port, "GET", poll_url(bad, 0))[0]
        check(status == 404, "poll of session %r: %d, want 404" % (bad, status))
    # A real id with its last character changed: unknown (404), or read as a closed one (410).
    sid = poll_open(port)
    last = sid[-1]
    other = ("1" if last != "1" else "2") if last.isdigit() else ("a" if last != "a" else "b")
    status = post(port, sid[:-1] + other, frame("x"))
    check(status in (404, 410), "POST to a changed id %r: %d" % (sid[:-1] + other, status))
    send(port, sid, "the real one still works")


def test_closed_session_is_410():
    port = port_of("echo")
    sid = poll_open(port)
    send(port, sid, "m")
    check(post(port, sid, close_frame(1000, "done")) == 204, "POST of the c frame")
    status, headers, events = poll(port, sid, 0)
    if status == 200:  # what was queued, then the close: nothing after it
        check(events and events[-1].data[:1] == "c", "poll after the close: %r" % events)
        check(close_of(events[-1])[0] == 1000, "close event %r" % events[-1])
        check([payload(ev) for ev in events[:-1]] in ([], ["m"]), "before the close: %r" % events)
        status, _, _ = poll(port, sid, int(events[-1].id))  # the close acknowledged
    check(status == 410, "poll of a closed session: %d, want 410" % status)
    check(post(port, sid, frame("x")) == 410, "POST to a closed session, want 410")


def test_body_over_max_body_is_413():
    port = port_of("echo")
    sid = poll_open(port)
    at_limit = b"t%d:" % (MAX_BODY - 7) + b"a" * (MAX_BODY - 7)
    check(len(at_limit) == MAX_BODY, "test body length")
    check(post(port, sid, at_limit) == 204, "a body of exactly --max-body")
    over = b"t%d:" % (MAX_BODY - 6) + b"b" * (MAX_BODY - 6)
    status = post(port, sid, over)
    check(status == 413, "a body one byte over --max-body: %d, want 413" % status)
    status = post(port, sid, frame("c" * (1 << 20)))
    check(status == 413, "a 1 MiB body: %d, want 413" % status)
    send(port, sid, "after")
    got = poll_messages(port, sid, 0)
    check(got == ["a" * (MAX_BODY - 7), "after"], "delivered: %s" % short(got))


def test_malformed_framing_is_400_and_delivers_nothing():
    port = port_of("echo")
    sid = poll_open(port)
    bad = [
        b"t2:hix3:abc",                 # bad type character
        b"T2:hi",                       # types are lower case
        b"t2:hitab:xyz",                # length not a number
        b"t:hi",                        # empty length
        b"t-2:hi",                      # negative length
        b"t+2:hi",                      # not plain decimal
        b"t2:hit10:abc",                # length past the end of the body
        b"t2:hit5hello",                # no colon
        b"t2:hit",                      # body ends in a frame header
        b"t99999999999999999999999:x",  # length overflows
        b"t2:hi\n",                     # a byte after the last frame
    ]
    for body in bad:
        status = post(port, sid, body)
        check(status == 400, "POST %r: %d, want 400" % (body, status))
    send(port, sid, "ok")
    got = poll_messages(port, sid, 0)
    check(got == ["ok"], "delivered %s, want only 'ok'" % short(got))


def test_invalid_utf8_in_a_text_frame_is_400():
    port = port_of("echo")
    sid = poll_open(port)
    bad = [
        b"t2:\xff\xfe",             # not UTF-8
        b"t2:ok" + b"t1:\xc3",      # a good frame, then a truncated sequence: nothing delivered
        b"t3:\xed\xa0\x80",         # a surrogate
        b"t2:\xc0\xaf",             # overlong
    ]
    for body in bad:
        status = post(port, sid, body)
        check(status == 400, "POST %r: %d, want 400" % (body, status))
    check(post(port, sid, b"t2:\xc3\xa9" + b"b2:\xff\xfe") == 204, "valid UTF-8, and any bytes in a b frame")
    got = poll_messages(port, sid, 0)
    check(got == ["\u00e9", b"\xff\xfe"], "delivered %s" % short(got))


def flood_body(seq, frames_per_body, size=1024):
    out = []
    for i in range(frames_per_body):
        head = "%08d:" % (seq + i)
        out.append(head + "x" * (size - len(head)))
    return frames(*out), seq + frames_per_body


def test_flood_of_posts_to_a_session_that_does_not_poll():
    proc, port = server("flood-poll")
    ws_echo_works(port)
    sid = poll_open(port)
    rss0 = rss_kib(proc.pid)
    statuses, accepted, seq = [], [], 0
    # 300 POSTs of one 1 KiB echo each, no poll: past --max-backpressure 64 KiB.
    for _ in range(300):
        body, nxt = flood_body(seq, 1)
        statuses.append(post(port, sid, body))
        if statuses[-1] == 204:
            accepted.append(seq)
        seq = nxt
    check(set(statuses) <= {204, 429}, "statuses %r" % sorted(set(statuses)))
    # More, 56 KiB bodies, 64 MiB and more in all: unbounded queueing would show in the RSS.
    deadline = time.monotonic() + 25
    big = 0
    while big < 1200 and time.monotonic() < deadline:
        body, nxt = flood_body(seq, 56)
        status = post(port, sid, body)
        statuses.append(status)
        check(status in (204, 429), "POST of the big flood: %d" % status)
        if status == 204:
            accepted.extend(range(seq, nxt))
        seq, big = nxt, big + 1
    grew = (rss_kib(proc.pid) - rss0) / 1024
    check(grew < 64, "RSS grew %.1f MiB over %d POSTs (%d KiB sent)" % (grew, len(statuses), seq))
    ws_echo_works(port)
    # What was queued comes in order, and nothing of a POST answered 429. With 429, what was
    # accepted (an echo that did not fit beside the queue may be dropped: one body's worth at
    # most); without, some was dropped.
    status, headers, events = poll(port, sid, 0)
    got = check_poll_answer(status, headers, events, 1)
    got_seqs = [int(m.split(":")[0]) for m in got]
    check(got_seqs == sorted(set(got_seqs)), "queued messages out of order or repeated")
    check(set(got_seqs) <= set(accepted), "a message of a POST answered 429 was delivered")
    if 429 in statuses:
        check(len(accepted) - len(got_seqs) <= 56, "%d accepted, %d delivered" % (len(accepted), len(got_seqs)))
    else:
        check(len(got_seqs) < seq, "no 429 and nothing dropped: all %d messages queued" % seq)
    check(len(got) * 1024 <= 4 * FLOOD_BACKPRESSURE, "%d KiB queued (--max-backpressure 64 KiB)" % len(got))
    print("  flood-poll: %d POSTs, %d answered 429, %d messages queued, RSS +%.1f MiB"
          % (len(statuses), statuses.count(429), len(got), grew))
    # Acknowledged (a poll with the last id, parked): the session takes messages again.
    parked = send_request(port, "GET", poll_url(sid, len(got)))
    try:
        time.sleep(0.3)
        deadline = time.monotonic() + 3
        while True:
            status = post(port, sid, frame("after"))
            if status == 204 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        check(status == 204, "POST after the queue was read and acknowledged: %d" % status)
        status, headers, body = read_response(parked, timeout=TIMEOUT)
        check(check_poll_answer(status, headers, parse_events(body), len(got) + 1) == ["after"],
              "the message after the queue was read")
    finally:
        parked.close()


def test_flood_of_posts_to_a_stalled_sse_reader():
    proc, port = server("flood-sse")
    ws_echo_works(port)
    with Sse(port) as s:  # read, then not read: the socket buffers fill, then the server's queue
        s.open()
        rss0 = rss_kib(proc.pid)
        statuses, accepted, seq = [], [], 0
        deadline = time.monotonic() + 25
        while len(statuses) < 1200 and time.monotonic() < deadline:
            body, nxt = flood_body(seq, 56)
            status = post(port, s.sid, body)
            statuses.append(status)
            check(status in (204, 429, 410), "POST: %d" % status)
            if status == 204:
                accepted.extend(range(seq, nxt))
            seq = nxt
            if status == 410:  # closed for the backpressure (a c event is in the stream)
                break
        grew = (rss_kib(proc.pid) - rss0) / 1024
        check(grew < 64, "RSS grew %.1f MiB over %d POSTs (%d KiB sent)" % (grew, len(statuses), seq))
        ws_echo_works(port)
        # The reader catches up: what comes is in order, and nothing that got 429.
        got, closed = [], None
        deadline = time.monotonic() + 20
        end_sent = got_end = False
        while time.monotonic() < deadline:
            ev = s.stream.next(timeout=1.0, allow_timeout=True)
            if ev == "timeout":
                if closed is None and not end_sent and 410 not in statuses:
                    status = post(port, s.sid, frame("END"))
                    check(status in (204, 429), "POST END: %d" % status)
                    end_sent = status == 204
                continue
            if ev is None:
                break
            if ev.data[:1] == "c":
                closed = close_of(ev)
                continue
            m = payload(ev)
            if m == "END":
                got_end = True
                break
            got.append(int(m.split(":")[0]))
        check(got == sorted(set(got)), "SSE messages out of order or repeated")
        check(set(got) <= set(accepted), "a message that got 429 was delivered")
        if 410 in statuses:
            check(closed is not None and closed[0] in (1008, 1013), "closed for backpressure with %r" % (closed,))
        else:
            check(got_end, "the END message, POSTed once the reader caught up, never came (POSTed: %s)" % end_sent)
        print("  flood-sse: %d POSTs, %d answered 429, %d of %d messages delivered, RSS +%.1f MiB"
              % (len(statuses), statuses.count(429), len(got), seq, grew))


# --- pub/sub -------------------------------------------------------------------------

def sub_ok(topic):
    return {"ok": "sub", "topic": topic}


def json_messages(events_or_msgs):
    return [json.loads(m) for m in events_or_msgs]


def test_pubsub_websocket_publish_reaches_sse_and_websocket():
    port = port_of("pubsub")
    with sse_open(port, "/") as s, ws_connect(port) as ws:
        send(port, s.sid, json.dumps({"op": "sub", "topic": "news"}), path="/")
        check(json_messages(s.messages(1)) == [sub_ok("news")], "SSE sub answer")
        ws.send(json.dumps({"op": "sub", "topic": "news"}))
        check(json.loads(ws.recv(timeout=TIMEOUT)) == sub_ok("news"), "WebSocket sub answer")
        for i in range(20):
            ws.send(json.dumps({"op": "pub", "topic": "news", "data": {"seq": i, "s": "\u00e9\n"}}))
        want = [{"topic": "news", "data": {"seq": i, "s": "\u00e9\n"}} for i in range(20)]
        check(json_messages(ws.recv(timeout=TIMEOUT) for _ in range(20)) == want, "WebSocket subscriber")
        check(json_messages(s.messages(20)) == want, "SSE subscriber")


def test_pubsub_fallback_publish_reaches_everyone():
    port = port_of("pubsub")
    sid = poll_open(port, "/")
    with sse_open(port, "/") as s, ws_connect(port) as ws:
        sub = json.dumps({"op": "sub", "topic": "t2"})
        send(port, s.sid, sub, path="/")
        check(json_messages(s.messages(1)) == [sub_ok("t2")], "SSE sub answer")
        send(port, sid, sub, path="/")
        check(json_messages(poll_messages(port, sid, 0, "/")) == [sub_ok("t2")], "poll sub answer")
        ws.send(sub)
        check(json.loads(ws.recv(timeout=TIMEOUT)) == sub_ok("t2"), "WebSocket sub answer")
        pubs = [json.dumps({"op": "pub", "topic": "t2", "data": [i, "x\r\ny"]}) for i in range(10)]
        send(port, sid, *pubs, path="/")  # ten frames in one POST from the polling session
        want = [{"topic": "t2", "data": [i, "x\r\ny"]} for i in range(10)]
        check(json_messages(ws.recv(timeout=TIMEOUT) for _ in range(10)) == want, "WebSocket subscriber")
        check(json_messages(s.messages(10)) == want, "SSE subscriber")
        check(json_messages(poll_messages(port, sid, 1, "/")) == want, "polling subscriber (the publisher)")


# --- refused, and the client -----------------------------------------------------------

def test_refused_origin_is_refused_for_fallbacks_too():
    port = port_of("origin")
    ws_head = (("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"))
    sock = send_request(port, "GET", PATH, headers=ws_head + (("Origin", EVIL_ORIGIN),), close=False)
    try:
        refused = Reader(sock).head(time.monotonic() + TIMEOUT)[0]
    finally:
        sock.close()
    check(refused not in (101, 200), "the WebSocket upgrade from %s: %d" % (EVIL_ORIGIN, refused))
    with Sse(port, headers=(("Origin", EVIL_ORIGIN),)) as s:
        check(s.status == refused, "SSE open from a refused origin: %d, the upgrade got %d" % (s.status, refused))
    status = http(port, "GET", url(PATH, {"myriad-transport": "poll"}), headers=(("Origin", EVIL_ORIGIN),))[0]
    check(status == refused, "poll open from a refused origin: %d, the upgrade got %d" % (status, refused))
    with Sse(port, headers=(("Origin", GOOD_ORIGIN),)) as s:
        s.open()
        s.send("allowed")
        check(s.messages(1) == ["allowed"], "SSE from the allowed origin")
    poll_open(port, headers=(("Origin", GOOD_ORIGIN),))


def test_myriad_js_is_served():
    port = port_of("echo")
    status, headers, body = http(port, "GET", "/myriad.js")
    check(status == 200, "/myriad.js: %d" % status)
    ctype = headers.get("content-type", "")
    check("javascript" in ctype.split(";")[0].lower(), "Content-Type %r" % ctype)
    check(b"MyriadSocket" in body, "/myriad.js does not name MyriadSocket")
    node = shutil.which("node") or shutil.which("nodejs")
    if node:  # a syntax check, as a classic script or as a module
        with tempfile.TemporaryDirectory() as tmp:
            errors = []
            for name in ("myriad.js", "myriad.mjs"):
                path = os.path.join(tmp, name)
                with open(path, "wb") as f:
                    f.write(body)
                r = subprocess.run([node, "--check", path], capture_output=True, timeout=30)
                if r.returncode == 0:
                    break
                errors.append(r.stderr.decode("utf-8", "replace")[-800:])
            else:
                raise AssertionError("node --check /myriad.js: %s" % errors[0])


# --- running -----------------------------------------------------------------------

TESTS = [
    test_myriad_js_is_served,
    test_sse_open_headers_and_first_event,
    test_sse_echo_text_and_binary_in_order,
    test_sse_text_with_cr_is_a_u_event,
    test_sse_multiline_text,
    test_sse_empty_messages,
    test_sse_heartbeat_and_open_stream_does_not_expire,
    test_sse_close_frame_ends_stream_and_session,
    test_sse_dropped_connection_ends_session,
    test_poll_messages_come_with_ids_in_order,
    test_poll_empty_answer_after_the_poll_timeout,
    test_poll_parked_is_answered_at_once,
    test_poll_lost_answer_loses_nothing,
    test_poll_second_poll_displaces_the_first,
    test_poll_session_expires_without_polls,
    test_unknown_session_is_404,
    test_closed_session_is_410,
    test_body_over_max_body_is_413,
    test_malformed_framing_is_400_and_delivers_nothing,
    test_invalid_utf8_in_a_text_frame_is_400,
    test_flood_of_posts_to_a_session_that_does_not_poll,
    test_flood_of_posts_to_a_stalled_sse_reader,
    test_pubsub_websocket_publish_reaches_sse_and_websocket,
    test_pubsub_fallback_publish_reaches_everyone,
    test_refused_origin_is_refused_for_fallbacks_too,
]
TEST_LIMIT_S = {test_flood_of_posts_to_a_session_that_does_not_poll: 45,
                test_flood_of_posts_to_a_stalled_sse_reader: 45}
BUDGET_S = 115  # the whole file


class TestTimeout(Exception):
    pass


def on_alarm(signum, frame):
    raise TestTimeout("the test ran past its time limit")


def on_term(signum, frame):
    raise SystemExit("terminated (signal %d)" % signum)


def main():
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    start = time.monotonic()
    passed = failed = 0
    try:
        for t in TESTS:
            if only and only not in t.__name__:
                continue
            if time.monotonic() - start > BUDGET_S:
                failed += 1
                print("FAIL", t.__name__, "(not run: the file is past its %d s budget)" % BUDGET_S)
                continue
            t0 = time.monotonic()
            signal.alarm(TEST_LIMIT_S.get(t, 25))
            try:
                t()
                signal.alarm(0)
                passed += 1
                print("PASS %s (%.1f s)" % (t.__name__, time.monotonic() - t0))
            except Exception:
                signal.alarm(0)
                failed += 1
                print("FAIL %s (%.1f s)" % (t.__name__, time.monotonic() - t0))
                traceback.print_exc()
                for name, (proc, _) in list(SERVERS.items()):
                    if proc.poll() is not None:
                        print("  server %s exited with %r; its log ends:\n%s" % (name, proc.returncode, log_tail(name)))
                        del SERVERS[name]
            sys.stdout.flush()
    finally:
        signal.alarm(0)
        stop_all()
    print("python-fallback: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
