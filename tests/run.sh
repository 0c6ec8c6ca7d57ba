#!/usr/bin/env bash
# Runs every test program (float32 and float64 builds) and the CLI tests,
# then prints the total as "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
run() {
    local name=$1; shift
    local log; log=$(mktemp)
    local t0=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    local p=0 f=0
    if [ -n "$line" ]; then
        p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
    fi
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        echo "FAIL $name ($p passed, $f failed, $((SECONDS - t0))s)"; sed 's/^/    /' "$log" | tail -n 40
    else
        echo "ok   $name ($p checks, $((SECONDS - t0))s)"
        [ -n "${VERBOSE:-}" ] && sed 's/^/    /' "$log"
    fi
    rm -f "$log"
}
for t in build/tests/test_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")" "$t"
done
for t in tests/cli/*.sh; do
    [ -f "$t" ] || continue
    run "$(basename "$t")" bash "$t"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
