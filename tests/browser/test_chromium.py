#!/usr/bin/env python3
"""Headless Chromium against `myriad serve`: permessage-deflate negotiated by a real browser, over
ws and over wss.

The test serves a page over HTTP on 127.0.0.1, Chromium loads it, and the page opens a WebSocket to
myriad: first ws://, then wss:// to a server started with a certificate made here by openssl
(Chromium runs with --ignore-certificate-errors for it), then wss:// again with the record
handover (--tls-record-handover). It records `ws.extensions` (the server's Sec-WebSocket-Extensions answer), then sends text,
binary and large compressible messages, checks every echo, and POSTs a report back. The test
asserts the negotiated extension and the report. It stops everything it started; every wait is
bounded.

Environment: MYRIAD_BIN (default target/release/myriad), CHROMIUM (default: chromium).
Prints `chromium: N passed, M failed` last.
"""

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from browser_lib import Checks, find_chromium, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MYRIAD_BIN", os.path.join(ROOT, "target/release/myriad"))

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>myriad deflate check</title>
<script>
const report = {extensions: null, protocol: null, results: [], error: null};
function send(r) {
  fetch("/report", {method: "POST", body: JSON.stringify(r)});
}
function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
const big = JSON.stringify(Array.from({length: 400}, (_, i) => ({id: i, name: "item " + i, ok: true})));
const bin = new Uint8Array(4096);
for (let i = 0; i < bin.length; i++) bin[i] = (i * 31 + 7) & 255;
const small = new Uint8Array([0, 1, 2, 255]);
const cases = [
  ["text", "héllo, wörld ✓"],
  ["short text", "hi"],
  ["big json", big],
  ["binary 4 KiB", bin],
  ["small binary", small],
];
let i = 0;
const ws = new WebSocket("SCHEME://127.0.0.1:WSPORT/chat");
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  report.extensions = ws.extensions;
  report.protocol = ws.protocol;
  ws.send(cases[0][1]);
};
ws.onmessage = (ev) => {
  const [name, sent] = cases[i];
  let ok;
  if (typeof sent === "string") ok = (typeof ev.data === "string") && ev.data === sent;
  else ok = (ev.data instanceof ArrayBuffer) && bytesEqual(new Uint8Array(ev.data), sent);
  report.results.push({name: name, ok: ok, size: (typeof sent === "string") ? sent.length : sent.length});
  i += 1;
  if (i < cases.length) ws.send(cases[i][1]);
  else ws.close(1000, "done");
};
ws.onclose = (ev) => { report.close = {code: ev.code, reason: ev.reason, clean: ev.wasClean}; send(report); };
ws.onerror = () => { report.error = "websocket error"; };
</script>
"""


def make_cert(dirname):
    cert, key = os.path.join(dirname, "cert.pem"), os.path.join(dirname, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def scenario(chromium, scheme, check):
    """One page load against a fresh server; every result goes through `check`."""
    ws_port, http_port = free_port(), free_port()
    scratch = tempfile.mkdtemp(prefix="myriad-chromium-")
    cmd = [BIN, "serve", "--listen", f"127.0.0.1:{ws_port}", "--workers", "1"]
    flags = []
    if scheme.startswith("wss"):
        cert, key = make_cert(scratch)
        cmd += ["--tls-cert", cert, "--tls-key", key]
        if scheme == "wss-handover":
            cmd += ["--tls-record-handover"]
        flags = ["--ignore-certificate-errors"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reports = []
    got = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = PAGE.replace("WSPORT", str(ws_port)).replace("SCHEME", scheme[:3]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            reports.append(json.loads(self.rfile.read(n) or b"{}"))
            self.send_response(204)
            self.end_headers()
            got.set()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    profile = os.path.join(scratch, "profile")
    browser = None
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", ws_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", f"--user-data-dir={profile}", *flags,
             f"http://127.0.0.1:{http_port}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        got.wait(60)
        check(f"{scheme}: page reported back", bool(reports), "(no report within 60 s)")
        if reports:
            r = reports[0]
            print(f"{scheme} report:", json.dumps(r))
            ext = r.get("extensions") or ""
            check(f"{scheme}: permessage-deflate negotiated", ext.startswith("permessage-deflate"), repr(ext))
            check(f"{scheme}: shared mode: no context takeover both ways",
                  "server_no_context_takeover" in ext and "client_no_context_takeover" in ext, repr(ext))
            check(f"{scheme}: no websocket error", r.get("error") is None, repr(r.get("error")))
            results = r.get("results", [])
            check(f"{scheme}: every message echoed", len(results) == 5, f"{len(results)} of 5")
            for res in results:
                check(f"{scheme}: echo {res['name']}", res.get("ok") is True)
            close = r.get("close") or {}
            check(f"{scheme}: clean close 1000", close.get("code") == 1000 and close.get("clean") is True,
                  repr(close))
    finally:
        if browser is not None:
            browser.terminate()
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                browser.kill()
        httpd.shutdown()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    check = Checks("chromium")
    chromium = find_chromium()
    if not chromium:
        print("FAIL chromium not installed (scripts/test.sh installs Debian's chromium)")
        print("chromium: 0 passed, 1 failed")
        return 1
    # wss-handover: wss with --tls-record-handover (after the TLS 1.3 handshake the reactor
    # seals and opens the records itself).
    for scheme in ("ws", "wss", "wss-handover"):
        scenario(chromium, scheme, check)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
