#!/usr/bin/env bash
# The libFuzzer targets (mk/fuzz.mk, docs/RELIABILITY.md) in short form:
# builds them (clang, ASan + UBSan), replays every seed and regression input
# (tests/fuzz/corpus, tests/fuzz/regress: each must pass), then fuzzes each
# target FUZZ_SHORT seconds (20 by default), two at a time, from a fresh
# corpus: no crash, leak, sanitizer report or failed property.
set -u
cd "$(dirname "$0")/../.."
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if ! command -v clang > /dev/null; then
  echo "FAIL: clang is not installed (scripts/setup.sh test installs it)" >&2; echo "0 passed, 1 failed"; exit 1
fi
if ! make -s -j2 fuzz-build > "$tmp/build" 2>&1; then
  echo "FAIL: make fuzz-build" >&2; tail -n 20 "$tmp/build" >&2; echo "0 passed, 1 failed"; exit 1
fi

# count LOG: one check per target line of scripts/fuzz.sh's summary.
count() {
  local p f
  p=$(grep -Ec '^[a-z_]+: (replayed|[0-9]+ executions)' "$1")
  f=$(grep -c 'FAILED' "$1")
  pass=$((pass + p - f)); fail=$((fail + f))
  sed 's/^/  /' "$1"
}

FUZZ_TIME=0 FUZZ_WORK=$tmp/replay bash scripts/fuzz.sh > "$tmp/replay.log" 2>&1
count "$tmp/replay.log"
FUZZ_TIME=${FUZZ_SHORT:-20} FUZZ_JOBS=2 FUZZ_WORK=$tmp/short bash scripts/fuzz.sh > "$tmp/short.log" 2>&1
count "$tmp/short.log"
if [ $fail -ne 0 ]; then
  for a in "$tmp"/short/artifacts/*; do
    [ -e "$a" ] || continue
    mkdir -p build/fuzz/found && cp "$a" build/fuzz/found/
    echo "  kept $(basename "$a") in build/fuzz/found/ (add it to tests/fuzz/regress/ once fixed)" >&2
  done
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
