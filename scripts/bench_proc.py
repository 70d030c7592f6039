"""Process helpers shared by the Python benchmark drivers (scripts/broker_fanout.py,
scripts/latency.py, scripts/probes.py): a free loopback port, waiting for a listener, and a
process's CPU ticks."""

import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, seconds=10):
    """Whether something listens on 127.0.0.1:`port` within `seconds`, while `proc` runs."""
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def ticks(pid):
    """utime + stime of process `pid` (all its threads), in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])
