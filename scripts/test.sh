#!/usr/bin/env bash
# The project's whole test run (CI runs it through .ci/run):
#   1. deps           install missing system packages (Debian, only when needed)
#   2. py-venv        target/py-venv with tests/python/requirements.txt
#   3. build-release  cargo build --release --bins
#   4. cargo-test     cargo test (debug build: unit and integration tests)
#   5. python-echo    tests/python/test_echo.py against target/release/myriad (and
#      python-echo-wss  again over wss with a certificate made by openssl,
#      python-echo-wss-handover  and over wss with --tls-record-handover),
#      python-pubsub  and tests/python/test_pubsub.py against its --mode pubsub,
#      python-broker  tests/python/test_broker.py: three --broker nodes over a real
#                     redis-server (installs Debian's redis-server);
#      python-fallback  tests/python/test_fallback.py: the SSE and long-polling transports,
#                     spoken raw (the wire format of src/fallback/);
#      python-endpoints  tests/python/test_endpoints.py: /healthz, /readyz, /metrics checked
#                     by Prometheus' promtool (installs Debian's prometheus for it)
#   6. chromium       tests/browser/test_chromium.py: headless Chromium negotiates
#                     permessage-deflate with the release binary, over ws and wss (and
#                     wss with the record handover)
#                     (installs chromium);
#      dashboard      tests/browser/test_dashboard.py: /dashboard shows the live count
#      fallback       tests/browser/test_fallback.py: the browser client (/myriad.js) in
#                     Chromium behind three nginx configurations (tests/nginx/): it must pick
#                     WebSocket, SSE and long-polling, and echo and pub/sub must work over
#                     each (installs Debian's nginx-light);
#   7. autobahn       scripts/autobahn.sh, cases 1.* to 10.* (skipped, with a
#                     message, when no Python 2.7 interpreter exists)
#   8. autobahn-wss   every case above and 12.*/13.* over wss:// (AUTOBAHN_TLS=1);
#      autobahn-wss-handover  1.* to 10.*, 12.1.* and 13.1.* over wss:// with
#                     --tls-record-handover;
#      tls-handover   cargo test --test tls again with the record handover
#                     (MYRIAD_TLS_HANDOVER=1);
#      autobahn-deflate-MODE   cases 12.* and 13.* against --deflate-mode shared;
#                     13.* against inflate-window and dedicated (all of 12.* too
#                     with AUTOBAHN_DEFLATE_FULL=1)
# The end-to-end steps use the release binary: the Autobahn 9.* cases move
# large messages and run much faster against an optimised server.
#
# Environment: MYRIAD_BIN overrides the server binary of steps 5 and 6
# (default target/release/myriad). Every step runs under `timeout`; logs are in
# target/test-logs/. Exit status is non-zero if any step failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
LOGS=$ROOT/target/test-logs
mkdir -p "$LOGS"

export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export MYRIAD_BIN=${MYRIAD_BIN:-target/release/myriad}

STEPS=()     # "name|status|seconds"
FAILED=0

# run_step NAME TIMEOUT_S CMD...: runs CMD under timeout, output to the console
# and to target/test-logs/NAME.log; records PASS/FAIL (or SKIP when the step
# printed a line starting with "SKIP:" or autobahn's skip message).
run_step() {
  local name=$1 limit=$2 start rc=0 status
  shift 2
  echo
  echo "==== $name (limit ${limit}s): $*"
  start=$(date +%s)
  timeout -k 30 "$limit" "$@" </dev/null 2>&1 | tee "$LOGS/$name.log" || rc=$?
  if [ "$rc" -eq 0 ]; then
    status=PASS
    if grep -q -E '^(SKIP:|autobahn: no Python 2.7 found, skipping Autobahn)' "$LOGS/$name.log"; then
      status=SKIP
    fi
  else
    status=FAIL
    FAILED=$((FAILED + 1))
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "==== $name: timed out after ${limit}s"
    fi
  fi
  STEPS+=("$name|$status|$(( $(date +%s) - start ))")
  echo "==== $name: $status (exit $rc)"
  [ "$status" != FAIL ]
}

not_run() {
  STEPS+=("$1|FAIL (not run: $2)|0")
  FAILED=$((FAILED + 1))
}

summary() {
  local s name status secs passed=0 failed=0 skipped=0
  echo
  echo "==== summary"
  for s in "${STEPS[@]}"; do
    IFS='|' read -r name status secs <<<"$s"
    printf '  %-15s %-30s %5ss\n' "$name" "$status" "$secs"
    case "$status" in PASS) passed=$((passed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; *) failed=$((failed + 1)) ;; esac
  done
  echo "logs: $LOGS"
  if [ "$skipped" -gt 0 ]; then
    echo "test.sh: $passed passed, $failed failed, $skipped skipped"
  else
    echo "test.sh: $passed passed, $failed failed"
  fi
}

# --- 1. system packages -------------------------------------------------------
install_deps() {
  local pkgs=()
  command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install the Rust toolchain (rustup) first"; return 1; }
  command -v cc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)   # test certificates for wss
  if ! command -v python3 >/dev/null 2>&1; then
    pkgs+=(python3 python3-venv)
  elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    pkgs+=(python3-venv)   # Debian's python3 ships venv/ensurepip separately
  fi
  if [ "${#pkgs[@]}" -eq 0 ]; then
    echo "all needed commands present (cargo, cc, openssl, python3 with venv)"
  else
    [ "$(id -u)" = 0 ] || { echo "missing ${pkgs[*]} and not root: install them"; return 1; }
    echo "installing: ${pkgs[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${pkgs[@]}"
  fi
  # Debian's redis-server for the broker tests (tests/broker.rs, tests/python/test_broker.py),
  # which start their own on a loopback port; the package's own service is not started.
  command -v redis-server >/dev/null 2>&1 || install_redis
  python3 -c 'import sys; assert sys.version_info >= (3, 11), "websockets 17 needs Python >= 3.11, have " + sys.version' 
  echo "python3: $(command -v python3) ($(python3 --version 2>&1)); cargo: $(cargo --version)"
}

# --- 2. python venv -------------------------------------------------------------
setup_py_venv() {
  local venv=$ROOT/target/py-venv
  if ! "$venv/bin/python" -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1; then
    echo "creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q -r tests/python/requirements.txt
  "$venv/bin/python" -c 'import websockets; print("websockets", websockets.__version__)'
}

# Headless Chromium (Debian's package) for the browser test.
install_chromium() {
  [ "$(id -u)" = 0 ] || { echo "chromium missing and not root"; return 1; }
  echo "installing chromium"
  timeout 900 apt-get update -q >/dev/null && \
    timeout 900 apt-get install -y -q --no-install-recommends chromium >/dev/null
}

# Prometheus' promtool (Debian's prometheus package) for the /metrics check. The package would
# start a Prometheus service where an init system runs; a policy-rc.d that says no keeps it off.
# apt_install_quietly PKG...: Debian packages without starting their services (a policy-rc.d
# for the time of the install): the tests start what they need on loopback ports themselves.
apt_install_quietly() {
  [ "$(id -u)" = 0 ] || { echo "$* missing and not root: install it"; return 1; }
  echo "installing $* (its service is kept from starting)"
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  { timeout 900 apt-get update -q >/dev/null && \
    timeout 900 apt-get install -y -q --no-install-recommends "$@" >/dev/null; } || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

install_redis() { apt_install_quietly redis-server; }

install_promtool() { apt_install_quietly prometheus; }

# nginx (Debian's nginx-light) for the fallback test, which runs its own on loopback ports.
install_nginx() { apt_install_quietly nginx-light; }

export -f install_deps apt_install_quietly install_redis setup_py_venv
export ROOT

if run_step deps 900 bash -c 'set -euo pipefail; install_deps'; then
  run_step py-venv 600 bash -c 'set -euo pipefail; setup_py_venv' || true
else
  not_run py-venv "deps failed"
fi

# --- 3./4. cargo ------------------------------------------------------------------
build_ok=0
run_step build-release 1800 cargo build --release --bins && build_ok=1
# tests/broker.rs needs redis-server (installed above): it must not skip here.
run_step cargo-test 1800 env MYRIAD_REQUIRE_REDIS=1 cargo test || true
run_step tls-handover 600 env MYRIAD_TLS_HANDOVER=1 cargo test --test tls || true

# --- 5./6. end to end -------------------------------------------------------------
if [ "$build_ok" = 1 ] || [ "$MYRIAD_BIN" != target/release/myriad ]; then
  if [ -x target/py-venv/bin/python ]; then
    run_step python-echo 600 target/py-venv/bin/python tests/python/test_echo.py || true
    run_step python-echo-wss 600 env MYRIAD_TLS=1 target/py-venv/bin/python tests/python/test_echo.py || true
    run_step python-echo-wss-handover 600 env MYRIAD_TLS=1 MYRIAD_TLS_HANDOVER=1 \
      target/py-venv/bin/python tests/python/test_echo.py || true
    run_step python-pubsub 600 target/py-venv/bin/python tests/python/test_pubsub.py || true
    run_step python-broker 600 target/py-venv/bin/python tests/python/test_broker.py || true
    run_step python-fallback 600 target/py-venv/bin/python tests/python/test_fallback.py || true
    if command -v promtool >/dev/null 2>&1 || install_promtool; then
      run_step python-endpoints 300 target/py-venv/bin/python tests/python/test_endpoints.py || true
    else
      not_run python-endpoints "could not install Debian's prometheus (promtool)"
    fi
  else
    not_run python-echo "no target/py-venv"
    not_run python-pubsub "no target/py-venv"
    not_run python-endpoints "no target/py-venv"
  fi
  if command -v chromium >/dev/null 2>&1 || install_chromium; then
    run_step chromium 300 python3 tests/browser/test_chromium.py || true
    run_step dashboard 300 python3 tests/browser/test_dashboard.py || true
    if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || install_nginx; then
      run_step fallback 300 python3 tests/browser/test_fallback.py || true
    else
      not_run fallback "could not install Debian's nginx-light"
    fi
  else
    not_run chromium "could not install Debian's chromium"
    not_run dashboard "could not install Debian's chromium"
    not_run fallback "could not install Debian's chromium"
  fi
  run_step autobahn 2400 bash scripts/autobahn.sh || true
  # permessage-deflate (RFC 7692; issue 3): Autobahn 12.* and 13.* against the default shared
  # mode; 13.* (every offer variant, context takeover both ways) against the opt-in modes, to keep
  # CI inside its time. AUTOBAHN_DEFLATE_FULL=1 runs 12.* too for every mode (about 15 minutes each).
  run_step autobahn-deflate-shared 1800 env MYRIAD_SERVER_ARGS="--deflate-mode shared" \
    AUTOBAHN_OUT="target/autobahn-shared" bash scripts/autobahn.sh "12.*,13.*" || true
  # wss: the whole suite over TLS (1.* to 10.*, and 12.*/13.* in the default deflate mode).
  run_step autobahn-wss 2400 env AUTOBAHN_TLS=1 AUTOBAHN_OUT="target/autobahn-wss" \
    bash scripts/autobahn.sh "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*,12.*,13.*" || true
  # The record handover: the same over its own record layer (the deflate cases only in part: the
  # record layer does not see compression, and 9.* already moves the large messages).
  run_step autobahn-wss-handover 1200 env AUTOBAHN_TLS=1 AUTOBAHN_OUT="target/autobahn-wss-handover" \
    MYRIAD_SERVER_ARGS="--tls-record-handover" \
    bash scripts/autobahn.sh "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*,12.1.*,13.1.*" || true
  optin_cases="13.*"
  [ "${AUTOBAHN_DEFLATE_FULL:-0}" = 1 ] && optin_cases="12.*,13.*"
  for mode in inflate-window dedicated; do
    run_step "autobahn-deflate-$mode" 1800 env MYRIAD_SERVER_ARGS="--deflate-mode $mode" \
      AUTOBAHN_OUT="target/autobahn-$mode" bash scripts/autobahn.sh "$optin_cases" || true
  done
else
  not_run python-echo "release build failed"
  not_run chromium "release build failed"
  not_run autobahn "release build failed"
fi

summary
[ "$FAILED" -eq 0 ]
