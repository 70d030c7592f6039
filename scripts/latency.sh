#!/usr/bin/env bash
# Open-loop echo latency against the peers: see scripts/latency.py (same environment).
exec python3 "$(dirname "${BASH_SOURCE[0]}")/latency.py" "$@"
