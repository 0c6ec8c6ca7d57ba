# lib.bash: what the CLI test scripts share (sourced, not run: tests/run.sh
# runs tests/cli/*.sh). Counts checks; `finish` prints the closing line.
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
finish() {
    echo "$pass passed, $fail failed"
    [ $fail -eq 0 ]
}
