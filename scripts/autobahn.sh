#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzingclient against the myriad echo server and
# compare the results to tests/autobahn/expected.json.
#
# Usage: scripts/autobahn.sh [CASES] [extra wstest args...]
#   CASES  comma-separated case patterns ("1.*,2.*,9.1.1") or a JSON array
#          ('["1.*","2.*"]'); empty or absent means 1.* .. 10.* (no 12.*/13.*
#          compression cases).
#   Any further arguments are passed to `wstest` as they are.
#
# Environment:
#   MYRIAD_BIN         server binary (default target/release/myriad)
#   MYRIAD_WORKERS     --workers for the server (default 2)
#   MYRIAD_SERVER_ARGS more server flags, e.g. "--deflate-mode dedicated"
#   AUTOBAHN_OUT       where reports and logs go (default target/autobahn)
#   AUTOBAHN_TIMEOUT   seconds allowed for the wstest run (default 1200; wstest
#                      writes its reports only at the end, so a run that hits
#                      this limit leaves no report and fails)
#   AUTOBAHN_PYTHON27  path to a Python 2.7 interpreter (otherwise searched for)
#   AUTOBAHN_REQUIRE=1 fail instead of skipping when no Python 2.7 is found
#   AUTOBAHN_TLS=1     test wss:// instead: a certificate for localhost is made
#                      with openssl in AUTOBAHN_OUT and the server started with
#                      --tls-cert/--tls-key (wstest does not verify it)
#
# Autobahn|Testsuite (wstest) only runs on Python 2.7. It is installed once
# into target/autobahn-venv (virtualenv 20.21.1 is the last virtualenv release
# that can create Python 2.7 environments; it runs from target/tools-venv).
# Without a Python 2.7 interpreter the Autobahn run is skipped (exit 0).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

VIRTUALENV_VERSION=20.21.1
AUTOBAHN_VERSION=25.10.1
TOOLS_VENV=$ROOT/target/tools-venv
AB_VENV=$ROOT/target/autobahn-venv
OUT=${AUTOBAHN_OUT:-$ROOT/target/autobahn}
[[ $OUT = /* ]] || OUT=$ROOT/$OUT
MYRIAD_BIN=${MYRIAD_BIN:-target/release/myriad}
MYRIAD_WORKERS=${MYRIAD_WORKERS:-2}
AUTOBAHN_TIMEOUT=${AUTOBAHN_TIMEOUT:-1200}
CONSTRAINTS=$ROOT/tests/autobahn/py27-constraints.txt

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1

log() { printf 'autobahn: %s\n' "$*" >&2; }

# --- find a Python 2.7 interpreter ------------------------------------------
is_py27() {
  [ -n "$1" ] && [ -x "$1" ] &&
    timeout 20 "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1
}

find_py27() {
  local c v
  if [ -n "${AUTOBAHN_PYTHON27:-}" ]; then
    is_py27 "$AUTOBAHN_PYTHON27" && { echo "$AUTOBAHN_PYTHON27"; return 0; }
    log "AUTOBAHN_PYTHON27=$AUTOBAHN_PYTHON27 is not a working Python 2.7"
  fi
  # pyenv: ask it directly (works whatever the active version is).
  if command -v pyenv >/dev/null 2>&1; then
    for v in 2.7.18 $(pyenv versions --bare 2>/dev/null | grep -E '^2\.7(\.|$)' | sort -rV || true); do
      c=$(PYENV_VERSION=$v pyenv which python2.7 2>/dev/null || true)
      is_py27 "$c" && { echo "$c"; return 0; }
    done
  fi
  # pyenv install tree without the pyenv command on PATH.
  for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 /root/.pyenv/versions/2.7*/bin/python2.7; do
    is_py27 "$c" && { echo "$c"; return 0; }
  done
  # Plain commands (a pyenv shim only works if 2.7 is active, so verify).
  for c in python2.7 python2 /usr/bin/python2.7 /usr/local/bin/python2.7; do
    c=$(command -v "$c" 2>/dev/null || true)
    is_py27 "$c" && { echo "$c"; return 0; }
  done
  return 1
}

# --- set up the tools (idempotent) ------------------------------------------
ensure_tools_venv() {
  if [ -x "$TOOLS_VENV/bin/virtualenv" ] &&
     [ "$(cat "$TOOLS_VENV/.myriad-ready" 2>/dev/null)" = "virtualenv==$VIRTUALENV_VERSION" ]; then
    return 0
  fi
  log "creating $TOOLS_VENV (virtualenv==$VIRTUALENV_VERSION)"
  rm -rf "$TOOLS_VENV"
  if ! timeout 300 python3 -m venv "$TOOLS_VENV"; then
    rm -rf "$TOOLS_VENV"
    # Debian's own python3 needs python3-venv for `python3 -m venv`.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "python3 -m venv failed; installing python3-venv"
      timeout 600 apt-get update -q
      DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends python3-venv
      timeout 300 python3 -m venv "$TOOLS_VENV"
    else
      log "python3 -m venv failed (install python3-venv)"; return 1
    fi
  fi
  timeout 600 "$TOOLS_VENV/bin/python" -m pip install -q "virtualenv==$VIRTUALENV_VERSION"
  echo "virtualenv==$VIRTUALENV_VERSION" >"$TOOLS_VENV/.myriad-ready"
}

ensure_autobahn_venv() {
  local py27=$1 stamp
  stamp="autobahntestsuite==$AUTOBAHN_VERSION python=$py27 constraints=$(cksum <"$CONSTRAINTS")"
  if [ -x "$AB_VENV/bin/wstest" ] && [ "$(cat "$AB_VENV/.myriad-ready" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  ensure_tools_venv
  log "creating $AB_VENV with $py27 (autobahntestsuite==$AUTOBAHN_VERSION; takes a few minutes)"
  rm -rf "$AB_VENV"
  # --no-download: seed pip/setuptools/wheel from the wheels bundled in
  # virtualenv 20.21.1 (pip 20.3.4, setuptools 44.1.1: the last for 2.7).
  # The app-data cache lives under target/ so nothing in $HOME matters.
  VIRTUALENV_OVERRIDE_APP_DATA=$ROOT/target/virtualenv-app-data \
    timeout 300 "$TOOLS_VENV/bin/virtualenv" --no-periodic-update --no-download \
      -p "$py27" "$AB_VENV" >/dev/null
  # Autobahn pins most of its dependencies (Twisted 19.10, cryptography
  # 3.3.2, ...); the constraints file pins the rest. wsaccel and ujson
  # compile C code (gcc, with the interpreter's own headers).
  timeout 1200 "$AB_VENV/bin/python" -m pip install -q --no-cache-dir \
    -c "$CONSTRAINTS" "autobahntestsuite==$AUTOBAHN_VERSION"
  timeout 60 "$AB_VENV/bin/wstest" --help >/dev/null 2>&1 || {
    log "wstest does not start after install"; return 1; }
  echo "$stamp" >"$AB_VENV/.myriad-ready"
}

if ! PY27=$(find_py27); then
  if [ "${AUTOBAHN_REQUIRE:-0}" = 1 ]; then
    log "no Python 2.7 found and AUTOBAHN_REQUIRE=1"; exit 1
  fi
  echo "autobahn: no Python 2.7 found, skipping Autobahn"
  exit 0
fi
log "using Python 2.7 at $PY27"
ensure_autobahn_venv "$PY27"

# --- cases --------------------------------------------------------------------
CASES_ARG=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$CASES_ARG" ]; then
  CASES_JSON='["1.*","2.*","3.*","4.*","5.*","6.*","7.*","8.*","9.*","10.*"]'
elif [ "${CASES_ARG:0:1}" = "[" ]; then
  CASES_JSON=$CASES_ARG
else
  CASES_JSON=$(python3 -c 'import json,sys; print(json.dumps([c.strip() for c in sys.argv[1].split(",") if c.strip()]))' "$CASES_ARG")
fi

# --- start the server ---------------------------------------------------------
case "$MYRIAD_BIN" in /*) ;; *) MYRIAD_BIN=$ROOT/$MYRIAD_BIN ;; esac
if [ ! -x "$MYRIAD_BIN" ]; then
  log "server binary $MYRIAD_BIN not found (build it: cargo build --release)"; exit 1
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
rm -rf "$OUT"
mkdir -p "$OUT/reports"
SERVER_LOG=$OUT/server.log
SERVER_PID=

stop_server() {
  # SIGTERM, wait up to 10 s for a graceful exit, then SIGKILL. Returns 0 on a
  # graceful exit, 1 if the server had to be killed.
  [ -n "$SERVER_PID" ] || return 0
  local pid=$SERVER_PID
  SERVER_PID=
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}
trap 'stop_server || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r -a SERVER_ARGS <<<"${MYRIAD_SERVER_ARGS:-}"
SCHEME=ws
if [ "${AUTOBAHN_TLS:-0}" = 1 ]; then
  SCHEME=wss
  timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" >/dev/null 2>&1 ||
    { log "openssl could not make a test certificate"; exit 1; }
  SERVER_ARGS+=(--tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem")
fi
log "starting $MYRIAD_BIN serve --listen 127.0.0.1:$PORT --workers $MYRIAD_WORKERS ${SERVER_ARGS[*]} (log: $SERVER_LOG)"
"$MYRIAD_BIN" serve --listen "127.0.0.1:$PORT" --workers "$MYRIAD_WORKERS" "${SERVER_ARGS[@]}" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

up=0
for _ in $(seq 100); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "server exited before accepting connections; its log:"; cat "$SERVER_LOG" >&2; SERVER_PID=; exit 1
  fi
  if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
[ "$up" = 1 ] || { log "server not listening on 127.0.0.1:$PORT after 10 s"; exit 1; }

# --- run the fuzzing client ---------------------------------------------------
SPEC=$OUT/fuzzingclient.json
python3 - "$SPEC" "$PORT" "$CASES_JSON" "$OUT/reports" "$SCHEME" <<'EOF'
import json, sys
spec_path, port, cases, outdir, scheme = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
spec = {
    "options": {"failByDrop": False},
    "outdir": outdir,
    "servers": [{"agent": "myriad", "url": "%s://127.0.0.1:%s" % (scheme, port)}],
    "cases": cases,
    "exclude-cases": [],
    "exclude-agent-cases": {},
}
with open(spec_path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
log "cases: $CASES_JSON"

start=$(date +%s)
rc=0
# wstest writes its own progress to stdout; keep it in a log, print the tail.
(cd "$OUT" && timeout -k 30 "$AUTOBAHN_TIMEOUT" "$AB_VENV/bin/wstest" -m fuzzingclient -s "$SPEC" "$@") \
  >"$OUT/wstest.log" 2>&1 || rc=$?
elapsed=$(( $(date +%s) - start ))
if [ "$rc" -ne 0 ]; then
  tail -n 40 "$OUT/wstest.log" >&2
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    log "wstest timed out after ${AUTOBAHN_TIMEOUT}s, at: $(grep 'Running test case ID' "$OUT/wstest.log" | tail -n 1 || true)"
  fi
  log "wstest failed (exit $rc)"
fi
log "wstest ran ${elapsed}s (log: $OUT/wstest.log)"

shutdown_ok=1
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  shutdown_ok=0
  srv_rc=0; wait "$SERVER_PID" 2>/dev/null || srv_rc=$?
  SERVER_PID=
  log "server died during the run (exit status $srv_rc); last lines of $SERVER_LOG:"
  tail -n 20 "$SERVER_LOG" >&2
elif ! stop_server; then
  shutdown_ok=0
  log "server did not exit within 10 s of SIGTERM (killed)"
fi
if [ "$shutdown_ok" = 1 ]; then log "server shut down on SIGTERM"; fi

check_rc=0
python3 "$ROOT/scripts/autobahn_check.py" --report "$OUT/reports/index.json" || check_rc=$?

if [ "$rc" -ne 0 ] || [ "$check_rc" -ne 0 ] || [ "$shutdown_ok" != 1 ]; then
  exit 1
fi
