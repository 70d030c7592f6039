#!/usr/bin/env python3
"""The live dashboard of `myriad serve` (issue 12) in headless Chromium.

The test holds K WebSocket connections open (plain sockets that did the upgrade), lets Chromium
load /dashboard from the same port, and reads the page after its script ran: the element with id
`connections` must show K. A screenshot is saved as target/dashboard.png (an artifact of the run).
Every wait is bounded; everything started is stopped.

Environment: MYRIAD_BIN (default target/release/myriad), CHROMIUM (default: chromium).
Prints `dashboard: N passed, M failed` last.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from browser_lib import Checks, find_chromium, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("MYRIAD_BIN", os.path.join(ROOT, "target/release/myriad"))
SHOT = os.path.join(ROOT, "target", "dashboard.png")
K = 7

UPGRADE = (b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def main():
    check = Checks("dashboard")
    chromium = find_chromium()
    if not chromium:
        print("FAIL chromium not installed (scripts/test.sh installs Debian's chromium)")
        print("dashboard: 0 passed, 1 failed")
        return 1
    port = free_port()
    server = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="myriad-dashboard-")
    held = []
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(K):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(UPGRADE)
            head = s.recv(4096)
            check("upgrade", head.startswith(b"HTTP/1.1 101"), repr(head[:40]))
            held.append(s)
        url = f"http://127.0.0.1:{port}/dashboard"
        common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", f"--user-data-dir={profile}",
                  "--window-size=1100,700", "--virtual-time-budget=4000"]
        dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, timeout=90)
        page = dom.stdout.decode(errors="replace")
        m = re.search(r'id="connections"[^>]*>([^<]*)<', page)
        shown = m.group(1) if m else None
        check("the page shows the live connection count", shown == str(K),
              f"#connections is {shown!r}, want {K}")
        check("the page read /stats.json", "updated " in page, "no update line in the DOM")
        os.makedirs(os.path.dirname(SHOT), exist_ok=True)
        if os.path.exists(SHOT):
            os.remove(SHOT)
        subprocess.run(common + [f"--screenshot={SHOT}", url], capture_output=True, timeout=90)
        check("screenshot saved", os.path.exists(SHOT) and os.path.getsize(SHOT) > 1000, SHOT)
    finally:
        for s in held:
            s.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(profile, ignore_errors=True)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
