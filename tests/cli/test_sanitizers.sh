#!/usr/bin/env bash
# The test programs (float32 builds) under AddressSanitizer +
# UndefinedBehaviorSanitizer + LeakSanitizer (make asan-f32, build/asan), with
# zero reports; then the CLI's train, resume, generate and eval on a tiny
# model under ASan, the server's test with the server under ASan, and train
# and generate under valgrind memcheck (make
# valgrind-build), with zero errors and no definite leaks.
# SAN_TESTS="test_io test_train" limits the programs (default: all).
set -u
cd "$(dirname "$0")/../.."
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if ! make -s -j2 asan-f32 > "$tmp/build" 2>&1; then
  echo "FAIL: make asan-f32" >&2; tail -n 20 "$tmp/build" >&2; echo "0 passed, 1 failed"; exit 1
fi
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
reports='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'

# san NAME CMD...: runs CMD, which must exit 0 without a sanitizer report.
san() {
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$tmp/log" 2>&1; local rc=$?
  if [ $rc -eq 0 ] && ! grep -Eq "$reports" "$tmp/log"; then
    ok; echo "  $name: clean ($((SECONDS - t0))s)"
  else
    bad "$name under sanitizers: exit $rc"; grep -E -A12 "$reports" "$tmp/log" | head -n 30 >&2
    [ $rc -ne 0 ] && tail -n 5 "$tmp/log" >&2
  fi
}

for t in ${SAN_TESTS:-$(ls tests/test_*.c | sed 's|tests/\(.*\)\.c|\1|')}; do
  san "$t" "build/asan/tests/$t"
done

# The CLI under ASan: train (chunkwise), resume, generate, eval.
for i in $(seq 1 60); do echo "The quick brown fox $i jumps over the lazy dog, said the retentive network."; done > "$tmp/text.txt"
A=build/asan/retnet
tiny=(--data "$tmp/text.txt" --dim 16 --layers 1 --heads 2 --seq 8 --batch 2 --eval-every 2 --eval-batches 1 --threads 2 --quiet)
san "asan: retnet train" $A train "${tiny[@]}" --chunk 3 --steps 3 --out "$tmp/a"
san "asan: retnet train --resume" $A train "${tiny[@]}" --chunk 3 --steps 5 --resume --out "$tmp/a"
san "asan: retnet generate" $A generate --model "$tmp/a/model.safetensors" --prompt "The " -n 12 --threads 2
san "asan: retnet eval" $A eval --model "$tmp/a/model.safetensors" --data "$tmp/text.txt" --chunk 7 --segment 50 --quiet
# The server's whole test (every endpoint, batching, disconnects, 1,200
# requests) with the server under ASan: its exit status holds LeakSanitizer's.
san "asan: retnet serve (tests/cli/test_serve.sh)" env RETNET=$A bash tests/cli/test_serve.sh

# valgrind memcheck: train, then generate from what it wrote.
if command -v valgrind > /dev/null; then
  if make -s -j2 valgrind-build > "$tmp/build" 2>&1; then
    V=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect)
    unset ASAN_OPTIONS UBSAN_OPTIONS
    san "valgrind: retnet train" "${V[@]}" build/valgrind/retnet train "${tiny[@]}" --threads 1 --steps 3 --out "$tmp/v"
    san "valgrind: retnet generate" "${V[@]}" build/valgrind/retnet generate --model "$tmp/v/model.safetensors" \
      --prompt "The " -n 12 --threads 1
  else
    bad "make valgrind-build"; tail -n 20 "$tmp/build" >&2
  fi
else
  bad "valgrind is not installed (scripts/setup.sh test installs it)"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
