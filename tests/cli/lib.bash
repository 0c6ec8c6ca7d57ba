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

# cli_start: $tmp, a temporary directory removed at exit; and $R, the
# retnet binary, which must have been built.
cli_start() {
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    if [ ! -x "$R" ]; then echo "FAIL: $R not built (make tests)" >&2; echo "0 passed, 1 failed"; exit 1; fi
}

# same_as_reference LABEL TOKENIZER REFDIR FILE...: each file's ids, ids
# with --special, and the decode of the ids, against what tests/node's
# reference.js wrote for the tokenizers library in REFDIR; one check per
# file; $same is the count of files identical in all three. Uses $R, $tmp.
same_as_reference() {
  local label=$1 t=$2 ref=$3 f b all; shift 3
  same=0
  for f in "$@"; do
    b=$ref/$(basename "$f") all=1
    "$R" tokenize --tokenizer "$t" --file "$f" >"$tmp/ids" 2>&1
    cmp -s "$tmp/ids" "$b.ids" || { all=0; bad "$label $f: ids differ from tokenizers'"; }
    "$R" tokenize --tokenizer "$t" --file "$f" --special >"$tmp/sids" 2>&1
    cmp -s "$tmp/sids" "$b.sids" || { all=0; bad "$label $f: ids with --special differ"; }
    "$R" tokenize --tokenizer "$t" --decode "@$b.ids" >"$tmp/dec" 2>&1
    cmp -s "$tmp/dec" "$b.dec" || { all=0; bad "$label $f: decode differs from tokenizers'"; }
    [ $all = 1 ] && { ok; same=$((same + 1)); }
  done
}
