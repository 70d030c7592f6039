#!/usr/bin/env python3
"""The fallback transports in headless Chromium, behind three nginx configurations.

Two `myriad serve` processes run: an echo server (P1) and a `--mode pubsub` server (P2). For each
configuration in tests/nginx/ an nginx runs in front of them (/echo -> P1, /pubsub -> P2,
/myriad.js -> P1, everything else -> this test's page server, so the page, the client and the
fallback requests share one origin), and Chromium loads the page through it:

- upgrade.conf passes the WebSocket upgrade on: MyriadSocket must pick "websocket";
- default.conf is nginx's defaults (HTTP/1.0 upstream, no Upgrade, X-Accel-Buffering honoured):
  "sse";
- buffering.conf buffers and ignores X-Accel-Buffering (the SSE stream is held): "poll".

The page (i) opens a MyriadSocket to /echo, sends 20 messages of growing size (1 B to 40 KB:
text with non-ASCII characters, LF and CR, ArrayBuffers and a typed-array view) one after another
and compares every echo, then closes with 1000; (ii) opens a MyriadSocket to /pubsub through nginx
and a plain WebSocket straight to P2, subscribes both to one topic, publishes five messages from
each side (the MyriadSocket's back to back, so a fallback batches them into its POSTs), and records
what each received. It POSTs a JSON report to /report; this test checks it. Everything started is
stopped; every wait is bounded.

Environment: MYRIAD_BIN (default target/release/myriad), CHROMIUM (default: chromium),
NGINX (default: nginx). Prints `fallback: N passed, M failed` last.
"""

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from browser_lib import Checks, find_chromium, free_port, stop, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MYRIAD_BIN", os.path.join(ROOT, "target/release/myriad"))
CONFIGS = [("upgrade", "websocket"), ("default", "sse"), ("buffering", "poll")]
PAGE_WAIT = 40  # seconds for one page's report (the page gives up after 30)
PUBLISHES = 5   # per side

PAGE = r"""<!doctype html>
<meta charset="utf-8">
<title>myriad fallback check</title>
<script src="/myriad.js"></script>
<script>
"use strict";
const CONFIG = "@CONFIG@", PUBSUB_PORT = @PUBSUB_PORT@, PUBLISHES = @PUBLISHES@;
const R = {config: CONFIG, transport: null, echoes: [], echoClose: null, pubsubTransport: null,
           subA: null, subB: null, a: [], b: [], errors: [], log: []};
const t0 = Date.now();
function note(s) { R.log.push((Date.now() - t0) + " ms " + s); }
let reported = false;
function report() {
  if (reported) return;
  reported = true;
  fetch("/report", {method: "POST", body: JSON.stringify(R)});
}
setTimeout(() => { R.errors.push("page deadline (30 s)"); report(); }, 30000);

// Messages of a socket, awaited one at a time.
function inbox(sock) {
  const items = [], waiters = [];
  sock.addEventListener("message", (ev) => {
    if (waiters.length) waiters.shift()(ev.data); else items.push(ev.data);
  });
  return {
    next(ms, what) {
      if (items.length) return Promise.resolve(items.shift());
      return new Promise((resolve, reject) => {
        const f = (d) => { clearTimeout(t); resolve(d); };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(f), 1);
          reject(new Error("no message within " + ms + " ms: " + what));
        }, ms);
        waiters.push(f);
      });
    },
  };
}
function event(sock, type, ms) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no " + type + " event within " + ms + " ms")), ms);
    sock.addEventListener(type, (ev) => { clearTimeout(t); resolve(ev); }, {once: true});
  });
}

// Message i of 20: sizes grow geometrically from 1 to 40000 (characters or bytes).
function makeCase(i) {
  const size = Math.round(Math.pow(40000, i / 19));
  const kinds = ["text non-ASCII+LF", "text CR", "arraybuffer", "text ASCII", "uint8array view"];
  const kind = kinds[i % 5];
  if (kind.startsWith("text")) {
    const pattern = kind === "text CR" ? "\rcr ✓ é\r\nline " : kind === "text ASCII" ? "plain ascii text " : "héllo wörld ✓ 😀\nünï ";
    const cps = Array.from(pattern);
    let s = "";
    for (let k = 0; s.length < size; k++) s += cps[k % cps.length];
    return {kind, size, value: s};
  }
  const bytes = new Uint8Array(size + 3);
  for (let k = 0; k < bytes.length; k++) bytes[k] = (k * 31 + i * 7 + 13) & 255;
  if (kind === "arraybuffer") return {kind, size, value: bytes.buffer.slice(0, size), expect: bytes.subarray(0, size)};
  return {kind, size, value: bytes.subarray(3), expect: bytes.subarray(3)};
}
function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

async function echoTest() {
  const s = new MyriadSocket("ws://" + location.host + "/echo");
  s.binaryType = "arraybuffer";
  const box = inbox(s);
  s.addEventListener("error", () => note("echo socket error"));
  await event(s, "open", 15000);
  R.transport = s.transport;
  note("echo open: " + s.transport);
  for (let i = 0; i < 20; i++) {
    const c = makeCase(i);
    s.send(c.value);
    const got = await box.next(10000, "echo " + i);
    let ok, detail = "";
    if (typeof c.value === "string") {
      ok = typeof got === "string" && got === c.value;
      if (!ok) detail = typeof got + " of length " + (got && got.length) + ", sent " + c.value.length;
    } else {
      ok = got instanceof ArrayBuffer && bytesEqual(new Uint8Array(got), c.expect);
      if (!ok) detail = String(got && got.constructor && got.constructor.name) + " " + (got && got.byteLength);
    }
    R.echoes.push({i, kind: c.kind, size: c.size, ok, detail});
  }
  const closing = event(s, "close", 10000);
  s.close(1000, "done");
  const ev = await closing;
  R.echoClose = {code: ev.code, reason: ev.reason, clean: ev.wasClean, readyState: s.readyState};
  note("echo closed " + ev.code);
}

async function pubsubTest() {
  const topic = "topic-" + CONFIG;
  const a = new MyriadSocket("ws://" + location.host + "/pubsub");
  const b = new WebSocket("ws://127.0.0.1:" + PUBSUB_PORT + "/pubsub");
  const boxA = inbox(a), boxB = inbox(b);
  await Promise.all([event(a, "open", 15000), event(b, "open", 15000)]);
  R.pubsubTransport = a.transport;
  note("pubsub open: " + a.transport);
  const sub = JSON.stringify({op: "sub", topic});
  a.send(sub);
  b.send(sub);
  R.subA = JSON.parse(await boxA.next(10000, "sub answer (MyriadSocket)"));
  R.subB = JSON.parse(await boxB.next(10000, "sub answer (WebSocket)"));
  async function collect(n) {
    for (let k = 0; k < n; k++) R.a.push(JSON.parse(await boxA.next(10000, "publish to MyriadSocket")));
    for (let k = 0; k < n; k++) R.b.push(JSON.parse(await boxB.next(10000, "publish to WebSocket")));
  }
  const pub = (from, k) => JSON.stringify({op: "pub", topic, data: {from, k, s: "ünï ✓ " + "x".repeat(k * 300)}});
  for (let k = 0; k < PUBLISHES; k++) a.send(pub("a", k));  // back to back
  await collect(PUBLISHES);
  for (let k = 0; k < PUBLISHES; k++) b.send(pub("b", k));
  await collect(PUBLISHES);
  a.close(1000, "done");
  b.close(1000, "done");
}

(async () => {
  try {
    if (typeof MyriadSocket !== "function") throw new Error("/myriad.js did not define MyriadSocket");
    await echoTest();
  } catch (e) {
    R.errors.push("echo: " + e.message);
  }
  try {
    await pubsubTest();
  } catch (e) {
    R.errors.push("pubsub: " + e.message);
  }
  report();
})();
</script>
"""


def expected_publishes(topic):
    out = []
    for side in ("a", "b"):
        for k in range(PUBLISHES):
            out.append({"topic": topic, "data": {"from": side, "k": k, "s": "ünï ✓ " + "x" * (k * 300)}})
    return out


def scenario(name, want, chromium, nginx, echo_port, pubsub_port, check):
    scratch = tempfile.mkdtemp(prefix=f"myriad-fallback-{name}-")
    os.chmod(scratch, 0o755)  # nginx's workers (nobody, when run as root) use its temp paths
    nginx_port, page_port = free_port(), free_port()
    reports = []
    got = threading.Event()
    page = (PAGE.replace("@CONFIG@", name).replace("@PUBSUB_PORT@", str(pubsub_port))
            .replace("@PUBLISHES@", str(PUBLISHES)).encode())

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            reports.append(json.loads(self.rfile.read(n) or b"{}"))
            self.send_response(204)
            self.end_headers()
            got.set()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with open(os.path.join(ROOT, "tests", "nginx", name + ".conf")) as f:
        conf = f.read()
    for key, value in (("PREFIX", scratch), ("LISTEN", nginx_port), ("ECHO_PORT", echo_port),
                       ("PUBSUB_PORT", pubsub_port), ("PAGE_PORT", page_port)):
        conf = conf.replace(f"@{key}@", str(value))
    conf_path = os.path.join(scratch, "nginx.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    error_log = os.path.join(scratch, "error.log")
    proxy = browser = None
    try:
        stderr_path = os.path.join(scratch, "nginx.stderr")
        with open(stderr_path, "wb") as stderr:
            proxy = subprocess.Popen([nginx, "-p", scratch, "-c", conf_path, "-e", error_log, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=stderr)
        up = wait_port(nginx_port, 10)
        if not up:
            with open(stderr_path, errors="replace") as f:
                print(f.read().strip())
        check(f"{name}: nginx started", up)
        if not up:
            return
        profile = os.path.join(scratch, "profile")
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", f"--user-data-dir={profile}",
             f"http://127.0.0.1:{nginx_port}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        got.wait(PAGE_WAIT)
        check(f"{name}: page reported back", bool(reports), f"(no report within {PAGE_WAIT} s)")
        if not reports:
            return
        r = reports[0]
        summary = {k: r.get(k) for k in ("transport", "pubsubTransport", "echoClose", "errors", "log")}
        print(f"{name} report:", json.dumps(summary, ensure_ascii=False))
        check(f"{name}: no errors on the page", not r.get("errors"), repr(r.get("errors")))
        check(f"{name}: echo transport is {want}", r.get("transport") == want, repr(r.get("transport")))
        echoes = r.get("echoes", [])
        check(f"{name}: 20 echoes", len(echoes) == 20, f"{len(echoes)} of 20")
        bad = [e for e in echoes if e.get("ok") is not True]
        check(f"{name}: every echo equal and in order", echoes and not bad, repr(bad[:3]))
        close = r.get("echoClose") or {}
        check(f"{name}: close 1000, clean, CLOSED",
              close.get("code") == 1000 and close.get("clean") is True and close.get("readyState") == 3,
              repr(close))
        topic = f"topic-{name}"
        check(f"{name}: pubsub transport is {want}", r.get("pubsubTransport") == want, repr(r.get("pubsubTransport")))
        sub_ok = {"ok": "sub", "topic": topic}
        check(f"{name}: both subscribed", r.get("subA") == sub_ok and r.get("subB") == sub_ok,
              repr((r.get("subA"), r.get("subB"))))
        want_pubs = expected_publishes(topic)
        check(f"{name}: MyriadSocket got every publish in order", r.get("a") == want_pubs,
              f"{len(r.get('a') or [])} of {len(want_pubs)}")
        check(f"{name}: WebSocket got every publish in order", r.get("b") == want_pubs,
              f"{len(r.get('b') or [])} of {len(want_pubs)}")
    finally:
        stop(browser)
        stop(proxy)  # SIGTERM: nginx's fast shutdown, workers included
        httpd.shutdown()
        httpd.server_close()
        if proxy is not None and os.path.exists(error_log):
            with open(error_log, errors="replace") as f:
                errors = [line.rstrip() for line in f if "[emerg]" in line or "[alert]" in line or "[crit]" in line]
            for line in errors[:5]:
                print(f"{name} nginx: {line}")
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    check = Checks("fallback")
    chromium = find_chromium()
    nginx = os.environ.get("NGINX") or shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")
    missing = [what for what, path in (("chromium", chromium), ("nginx", nginx), ("myriad binary " + BIN, os.access(BIN, os.X_OK))) if not path]
    if missing:
        print(f"FAIL not installed: {', '.join(missing)} (scripts/test.sh installs Debian's chromium and nginx-light)")
        print("fallback: 0 passed, 1 failed")
        return 1
    echo_port, pubsub_port = free_port(), free_port()
    servers = []
    try:
        servers.append(subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{echo_port}", "--workers", "2"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        servers.append(subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{pubsub_port}", "--workers", "2",
                                         "--mode", "pubsub"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        up = wait_port(echo_port, 10) and wait_port(pubsub_port, 10)
        check("myriad servers started", up)
        if up:
            for name, want in CONFIGS:
                scenario(name, want, chromium, nginx, echo_port, pubsub_port, check)
    finally:
        for s in servers:
            stop(s)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
