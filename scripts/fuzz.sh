#!/usr/bin/env bash
# fuzz.sh: runs every cargo-fuzz target in tests/fuzz for a bounded time each (libFuzzer,
# nightly Rust): decoder, handshake, negotiation, inflate, session, fallback.
#
#   bash scripts/fuzz.sh            # 60 s per target
#   SECONDS_EACH=600 bash scripts/fuzz.sh decoder inflate
#
# Needs `cargo +nightly` and `cargo install cargo-fuzz`; without them it says so and exits 0 (the
# same bodies run on pseudo-random inputs in `cargo test`: tests/fuzz_smoke.rs). Crashes are kept
# under tests/fuzz/artifacts/TARGET/; the exit status is non-zero if any target found one.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EACH=${SECONDS_EACH:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(decoder handshake negotiation inflate session fallback)
if ! cargo +nightly --version >/dev/null 2>&1 || ! cargo +nightly fuzz --help >/dev/null 2>&1; then
  echo "SKIP: fuzz.sh needs nightly Rust and cargo-fuzz (rustup toolchain install nightly; cargo install cargo-fuzz)"
  exit 0
fi
failed=0
for t in "${TARGETS[@]}"; do
  echo "==== fuzz $t for ${EACH}s"
  if ! timeout -k 30 $((EACH + 120)) cargo +nightly fuzz run "$t" --fuzz-dir tests/fuzz -- \
      -max_total_time="$EACH" -rss_limit_mb=2048 -timeout=10; then
    echo "==== fuzz $t: FAILED (see tests/fuzz/artifacts/$t/)"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $(( ${#TARGETS[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
