#!/usr/bin/env bash
# The retnet command line: --help for every command; usage errors (unknown
# command or flag, missing or bad values, missing required flags) exit 2
# with exactly one line on stderr; runtime failures (corrupt model, missing
# file, unwritable output) exit 1 with one line; init + info + logits in all
# three paradigms for the torchscale, seed and fla presets, with the three
# .npy outputs agreeing (relative error <= 1e-5, float32). Needs only bash,
# coreutils and awk (no python).
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}   # RETNET=build/asan/retnet runs it under the sanitizers
. tests/cli/lib.bash
cli_start

# expect RC WHAT CMD...: exit status RC, exactly one line on stderr (newline
# terminated, prefixed "retnet"), nothing on stdout.
expect() {
  local want=$1 what=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local n; n=$(wc -l < "$tmp/err")
  if [ $rc -eq "$want" ] && [ "$n" -eq 1 ] && [ "$(wc -c < "$tmp/err")" -gt 1 ] && [ ! -s "$tmp/out" ] &&
     head -c 6 "$tmp/err" | grep -q '^retnet'; then
    ok
  else
    bad "$what: exit $rc (want $want), $n stderr lines, $(wc -c < "$tmp/out") stdout bytes: $(head -c 300 "$tmp/err")"
  fi
}
usage_err() { expect 2 "$@"; }
runtime_err() { expect 1 "$@"; }

# ------------------------------------------------------------------ help
$R --help >"$tmp/out" 2>"$tmp/err"; rc=$?
check "[ $rc -eq 0 ] && [ ! -s '$tmp/err' ] && grep -q '^usage: retnet' '$tmp/out'" "retnet --help: exit $rc"
for h in -h help; do
  $R $h >"$tmp/out" 2>&1; check "[ $? -eq 0 ] && grep -q '^usage: retnet' '$tmp/out'" "retnet $h"
done
# Every listed command (so commands added later are covered too).
cmds=$($R --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }')
check "[ \$(echo '$cmds' | wc -w) -ge 3 ]" "retnet --help lists too few commands: $cmds"
for c in init info logits; do
  check "echo '$cmds' | grep -qx $c" "retnet --help does not list $c"
done
for c in $cmds; do
  for h in --help -h; do
    $R $c $h >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "[ $rc -eq 0 ] && [ ! -s '$tmp/err' ] && grep -q '^usage: retnet $c' '$tmp/out' && grep -q -- '--help' '$tmp/out'" \
      "retnet $c $h: exit $rc, $(head -c 200 "$tmp/err")"
  done
  # --help wins wherever it is, even after bad flags' values would be read
  $R $c --bogus-flag-before-help --help >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "[ $rc -eq 2 ] || [ $rc -eq 0 ]" "retnet $c --bogus --help: exit $rc"
  usage_err "retnet $c: unknown flag" $R $c --no-such-flag
  usage_err "retnet $c: positional argument" $R $c stray
  usage_err "retnet $c: single-dash flag" $R $c -x
done
$R >"$tmp/out" 2>"$tmp/err"; rc=$?
check "[ $rc -eq 2 ] && [ -s '$tmp/err' ] && [ ! -s '$tmp/out' ]" "retnet without a command: exit $rc"

# ---------------------------------------------------------- usage errors
m="$tmp/u.safetensors"
usage_err "unknown command" $R frobnicate
usage_err "unknown command that is a flag" $R --frobnicate
usage_err "init without --out" $R init
usage_err "init --out without value" $R init --out
usage_err "init --out empty" $R init --out ""
usage_err "init --out= empty" $R init --out=
usage_err "init --dim not a number" $R init --out "$m" --dim abc
usage_err "init --dim= empty" $R init --out "$m" --dim=
usage_err "init --dim fractional" $R init --out "$m" --dim 64.5
usage_err "init --dim with junk" $R init --out "$m" --dim 64x
usage_err "init --dim inf" $R init --out "$m" --dim inf
usage_err "init --dim nan" $R init --out "$m" --dim nan
usage_err "init --dim 0 (out of range)" $R init --out "$m" --dim 0
usage_err "init --dim too large" $R init --out "$m" --dim 1000000
usage_err "init --dim 2^64" $R init --out "$m" --dim 18446744073709551616
usage_err "init --layers negative" $R init --out "$m" --layers -1
usage_err "init --seed negative" $R init --out "$m" --seed -1
usage_err "init --seed 1e300" $R init --out "$m" --seed 1e300
usage_err "init --vocab 0" $R init --out "$m" --vocab 0
usage_err "init unknown preset" $R init --out "$m" --preset gpt2
usage_err "init unknown size" $R init --out "$m" --size enormous
usage_err "init seed preset with a torchscale-only size" $R init --out "$m" --preset seed --size 7b
usage_err "init heads not dividing dim" $R init --out "$m" --dim 64 --heads 3
usage_err "init odd head dim" $R init --out "$m" --dim 48 --heads 16
usage_err "init seed value dim not d or 2d" $R init --out "$m" --preset seed --dim 64 --value-dim 96
usage_err "info without --model" $R info
usage_err "info --model without value" $R info --model
usage_err "logits without flags" $R logits
usage_err "logits without --out" $R logits --model "$m" --tokens 1,2
usage_err "logits without --tokens" $R logits --model "$m" --out "$tmp/x.npy"
check "[ ! -e '$m' ]" "a usage error wrote a model file"

# ------------------------------------- init, info, logits for each preset
tokens="5,17,200,3,3,99,0,255,42,7"   # T = 10
T=10
printf '5 17\n200\t3,3\n99 0 255\n\n42 7\n' > "$tmp/tokens.txt"

# npy FILE: prints the data offset (10 + header length) after checking the
# magic, version, descr and shape (T, V).
npy_offset() {
  local f=$1 want_shape=$2
  [ "$(head -c 8 "$f" | od -A n -t x1 | tr -d ' \n')" = "934e554d50590100" ] || { echo "bad magic" >&2; return 1; }
  local hl; hl=$(od -A n -t u1 -j 8 -N 2 "$f" | awk '{ print $1 + 256 * $2 }')
  local hdr; hdr=$(head -c $((10 + hl)) "$f" | tail -c "$hl")
  case "$hdr" in *"'descr': '<f4'"*"'fortran_order': False"*"'shape': ($want_shape"*) ;; *) echo "bad header: $hdr" >&2; return 1 ;; esac
  [ $(((10 + hl) % 64)) -eq 0 ] || { echo "header not 64-aligned" >&2; return 1; }
  echo $((10 + hl))
}
npy_values() { od -A n -v -t f4 -j "$(npy_offset "$1" "$2")" "$1" | tr -s ' ' '\n' | grep -v '^$'; }
# rel_err A B: ||a - b|| / ||b|| and max |a - b| over two value lists.
rel_err() {
  paste "$1" "$2" | awk '{ d = $1 - $2; num += d * d; den += $2 * $2; if (d < 0) d = -d; if (d > m) m = d }
                         END { printf "%.3e %.3e\n", (den > 0 ? sqrt(num / den) : sqrt(num)), m }'
}

for preset in torchscale seed fla; do
  m="$tmp/$preset.safetensors"
  extra=(); [ $preset = torchscale ] && extra=(--size tiny)
  $R init --preset $preset "${extra[@]}" --seed 3 --out "$m" >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "[ $rc -eq 0 ] && [ -s '$m' ] && grep -q '$preset preset' '$tmp/out'" "$preset: init failed: $(cat "$tmp/err")"
  [ -s "$m" ] || continue
  nparams=$(sed -n 's/.*preset, \([0-9]*\) parameters.*/\1/p' "$tmp/out")
  $R init --preset $preset "${extra[@]}" --seed 3 --out "$tmp/again.safetensors" >/dev/null 2>&1
  check "cmp -s '$m' '$tmp/again.safetensors'" "$preset: init with the same seed is not reproducible"
  $R init --preset $preset "${extra[@]}" --seed 4 --out "$tmp/other.safetensors" >/dev/null 2>&1
  check "! cmp -s '$m' '$tmp/other.safetensors'" "$preset: init with another seed gives the same file"
  check "! ls '$tmp' | grep -q '\.tmp\.'" "$preset: init left a temporary file"

  $R info --model "$m" >"$tmp/info" 2>"$tmp/err"; rc=$?
  check "[ $rc -eq 0 ] && [ ! -s '$tmp/err' ]" "$preset: info failed: $(cat "$tmp/err")"
  check "grep -q '^preset: *$preset\$' '$tmp/info'" "$preset: info does not name the preset"
  check "grep -q '^dim: *64\$' '$tmp/info' && grep -q '^layers: *2\$' '$tmp/info' && grep -q '^vocab: *256\$' '$tmp/info'" \
    "$preset: info sizes: $(head -c 400 "$tmp/info")"
  check "grep -q '^parameters: *$nparams ' '$tmp/info'" "$preset: info and init disagree on the parameter count ($nparams)"
  case $preset in
    torchscale) key='"decoder_embed_dim":64' ;;
    seed) key='"hidden_dim":64' ;;
    fla) key='"hidden_size":64' ;;
  esac
  check "grep -q '^config: .*$key' '$tmp/info'" "$preset: info config lacks $key"

  for mode in parallel chunkwise recurrent; do
    $R logits --model "$m" --tokens "$tokens" --mode $mode --chunk 3 --out "$tmp/$preset.$mode.npy" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "[ $rc -eq 0 ] && [ -s '$tmp/$preset.$mode.npy' ] && [ ! -s '$tmp/out' ]" "$preset $mode: logits failed: $(cat "$tmp/err")"
    check "[ \$(wc -l < '$tmp/err') -le 1 ]" "$preset $mode: logits is chatty on stderr"
  done
  f=$tmp/$preset.parallel.npy
  off=$(npy_offset "$f" "$T, 256")
  check "[ -n '$off' ] && [ \$(wc -c < '$f') -eq \$(( ${off:-0} + $T * 256 * 4 ))  ]" "$preset: .npy size or header wrong"
  $R logits --model "$m" --tokens "$tokens" --out "$tmp/$preset.again.npy" 2>/dev/null
  check "cmp -s '$f' '$tmp/$preset.again.npy'" "$preset: parallel logits are not deterministic"
  $R logits --model "$m" --tokens "@$tmp/tokens.txt" --out "$tmp/$preset.file.npy" 2>/dev/null
  check "cmp -s '$f' '$tmp/$preset.file.npy'" "$preset: tokens from @file differ from the list"
  npy_values "$f" "$T, 256" > "$tmp/p.txt"
  check "[ \$(wc -l < '$tmp/p.txt') -eq $((T * 256)) ] && ! grep -qi 'nan\|inf' '$tmp/p.txt'" "$preset: parallel logits count or finiteness"
  check "[ \$(sort -u '$tmp/p.txt' | wc -l) -gt 100 ]" "$preset: parallel logits look constant"
  for mode in chunkwise recurrent; do
    npy_values "$tmp/$preset.$mode.npy" "$T, 256" > "$tmp/o.txt"
    read -r rel mx < <(rel_err "$tmp/o.txt" "$tmp/p.txt")
    check "[ \$(wc -l < '$tmp/o.txt') -eq $((T * 256)) ] && awk 'BEGIN { exit !($rel <= 1e-5) }'" \
      "$preset: $mode vs parallel relative error $rel (max abs $mx)"
    echo "  $preset $mode vs parallel: relative error $rel, max abs difference $mx"
  done
  # One token; chunk longer than the sequence.
  $R logits --model "$m" --tokens 9 --mode chunkwise --chunk 1000 --out "$tmp/one.npy" 2>/dev/null
  check "[ \$? -eq 0 ] && npy_offset '$tmp/one.npy' '1, 256' >/dev/null" "$preset: one-token logits"

  # Runtime errors on this model: exit 1, one line, no output file.
  runtime_err "$preset: token outside the vocabulary" $R logits --model "$m" --tokens 1,256 --out "$tmp/v.npy"
  check "[ ! -e '$tmp/v.npy' ]" "$preset: a failed logits run left its output"
  runtime_err "$preset: logits into a missing directory" $R logits --model "$m" --tokens 1,2 --out "$tmp/no/such/dir/x.npy"
  usage_err "$preset: logits unknown mode" $R logits --model "$m" --tokens 1,2 --out "$tmp/x.npy" --mode sideways
  usage_err "$preset: logits --chunk 0" $R logits --model "$m" --tokens 1,2 --out "$tmp/x.npy" --chunk 0
  usage_err "$preset: logits --chunk not a number" $R logits --model "$m" --tokens 1,2 --out "$tmp/x.npy" --chunk many
  usage_err "$preset: logits --abs-norm with a value" $R logits --model "$m" --tokens 1,2 --out "$tmp/x.npy" --abs-norm=1
  usage_err "$preset: logits bad token id" $R logits --model "$m" --tokens 1,x,3 --out "$tmp/x.npy"
  usage_err "$preset: logits negative token id" $R logits --model "$m" --tokens 1,-3 --out "$tmp/x.npy"
  usage_err "$preset: logits empty token list" $R logits --model "$m" --tokens , --out "$tmp/x.npy"
  check "[ ! -e '$tmp/x.npy' ]" "$preset: a usage error wrote an output"
done

# torchscale's row clamp runs in parallel mode (and is refused in another).
m="$tmp/torchscale.safetensors"
$R logits --model "$m" --tokens "$tokens" --abs-norm --out "$tmp/abs.npy" 2>"$tmp/err"
check "[ \$? -eq 0 ] && [ -s '$tmp/abs.npy' ]" "--abs-norm failed: $(cat "$tmp/err")"
check "npy_offset '$tmp/abs.npy' '$T, 256' >/dev/null" "--abs-norm output is not a [T, V] .npy"
$R logits --model "$m" --tokens "$tokens" --abs-norm --mode recurrent --out "$tmp/abs2.npy" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "[ $rc -ne 0 ] && [ \$(wc -l < '$tmp/err') -eq 1 ] && [ ! -e '$tmp/abs2.npy' ]" "--abs-norm in recurrent mode: exit $rc"

# --------------------------------------------- corrupt or missing models
good="$tmp/torchscale.safetensors"
size=$(wc -c < "$good")
runtime_err "logits on a missing model" $R logits --model "$tmp/nope.safetensors" --tokens 1 --out "$tmp/x.npy"
runtime_err "info on a missing model" $R info --model "$tmp/nope.safetensors"
runtime_err "logits on a directory" $R logits --model "$tmp" --tokens 1 --out "$tmp/x.npy"
: > "$tmp/empty.safetensors"
runtime_err "logits on an empty file" $R logits --model "$tmp/empty.safetensors" --tokens 1 --out "$tmp/x.npy"
head -c $((size / 2)) "$good" > "$tmp/half.safetensors"
runtime_err "logits on a truncated model" $R logits --model "$tmp/half.safetensors" --tokens 1 --out "$tmp/x.npy"
runtime_err "info on a truncated model" $R info --model "$tmp/half.safetensors"
head -c $((size - 1)) "$good" > "$tmp/short.safetensors"
runtime_err "logits on a model missing its last byte" $R logits --model "$tmp/short.safetensors" --tokens 1 --out "$tmp/x.npy"
head -c 4096 /dev/urandom > "$tmp/noise.safetensors"
runtime_err "logits on random bytes" $R logits --model "$tmp/noise.safetensors" --tokens 1 --out "$tmp/x.npy"
printf 'not a model at all, just some text\n' > "$tmp/text.safetensors"
runtime_err "logits on a text file" $R logits --model "$tmp/text.safetensors" --tokens 1 --out "$tmp/x.npy"
# One byte flipped in the data section (caught by the checksum).
cp "$good" "$tmp/flip.safetensors"
printf '\x55' | dd of="$tmp/flip.safetensors" bs=1 seek=$((size - 1000)) conv=notrunc 2>/dev/null
runtime_err "logits on a model with a flipped byte" $R logits --model "$tmp/flip.safetensors" --tokens 1 --out "$tmp/x.npy"
# The header's length field overwritten (2^63).
cp "$good" "$tmp/hlen.safetensors"
printf '\x00\x00\x00\x00\x00\x00\x00\x80' | dd of="$tmp/hlen.safetensors" bs=1 seek=0 conv=notrunc 2>/dev/null
runtime_err "logits on a model with a lying header length" $R logits --model "$tmp/hlen.safetensors" --tokens 1 --out "$tmp/x.npy"
check "[ ! -e '$tmp/x.npy' ]" "a failed logits run wrote an output"
runtime_err "logits with tokens from a missing file" $R logits --model "$good" --tokens "@$tmp/none.txt" --out "$tmp/x.npy"
runtime_err "init into a missing directory" $R init --out "$tmp/no/such/dir/m.safetensors"
check "! ls '$tmp' | grep -q '\.tmp\.'" "temporary files left behind"

# A config whose numbers need 17 digits (fla expand_v = 191/44) survives
# conversion to a Hugging Face directory.
$R init --preset fla --dim 44 --heads 1 --value-dim 191 --out "$tmp/fla44.safetensors" >/dev/null 2>&1
$R convert --in "$tmp/fla44.safetensors" --out "$tmp/fla44" --to fla >/dev/null 2>&1
check "$R info --model '$tmp/fla44' 2>/dev/null | grep -q 'value dim:  191'" "fla config with expand_v 191/44 did not round-trip"

finish
