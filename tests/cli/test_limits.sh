#!/usr/bin/env bash
# Hostile sizes and flags (docs/RELIABILITY.md):
# - files that ask for absurd sizes (a 2^62-element tensor, a billion layers,
#   a 100 GB header, a 7b config in a small file, a checkpoint asking for 2^64
#   tokens per step) are refused with one line, quickly and within a 1 GB
#   address space, i.e. before anything of that size is allocated;
# - the flags of train, generate and eval (init, info and logits are
#   test_cli.sh's): negative, zero and huge sizes, heads that do not divide,
#   a chunk longer than the sequence, missing values, unknown flags: one line
#   and exit 2; unusable files: one line and exit 1.
set -u
cd "$(dirname "$0")/../.."
R=build/retnet
. tests/cli/lib.bash
cli_start

# expect RC PATTERN WHAT CMD...: exit status RC, exactly one line on stderr
# matching PATTERN (grep -E), within 10 s.
expect() {
  local want=$1 pat=$2 what=$3; shift 3
  local t0=$SECONDS
  "$@" > "$tmp/out" 2> "$tmp/err"; local rc=$?
  if [ $rc -eq "$want" ] && [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -Eq "$pat" "$tmp/err" && [ $((SECONDS - t0)) -le 10 ]; then
    ok
  else
    bad "$what: exit $rc (want $want), $((SECONDS - t0))s: $(head -c 300 "$tmp/err")"
  fi
}
# In a 1 GB address space: an allocation of the absurd size would fail with
# "out of memory" instead of the format error expected.
small() { (ulimit -v 1048576; "$@"); }

# st FILE HEADER [DATA_BYTES]: a safetensors file with that header.
st() {
  local n=${#2}
  printf "$(printf '\\%03o' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)) 0 0 0 0)" > "$1"
  printf '%s' "$2" >> "$1"
  head -c "${3:-0}" /dev/zero >> "$1"
}
cfg() {  # a torchscale config as the escaped JSON string of __metadata__.retnet
  printf '{\\"preset\\":\\"torchscale\\",\\"decoder_embed_dim\\":%s,\\"decoder_value_embed_dim\\":%s,\\"decoder_retention_heads\\":%s,\\"decoder_ffn_embed_dim\\":%s,\\"decoder_layers\\":%s,\\"vocab_size\\":%s}' "$@"
}

# ------------------------------------------------------------ absurd files
f=$tmp/m.safetensors
st "$f" "{\"__metadata__\":{\"retnet\":\"$(cfg 4 8 2 8 1 8)\"},\"embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,16]}}" 16
expect 1 "embed_tokens.weight" "a 2^62-element tensor" small $R info --model "$f"
st "$f" "{\"__metadata__\":{\"retnet\":\"$(cfg 4 8 2 8 1 8)\"},\"embed_tokens.weight\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,16]}}" 16
expect 1 "embed_tokens.weight" "a 2^62-element vector" small $R info --model "$f"
st "$f" "{\"__metadata__\":{\"retnet\":\"$(cfg 4 8 2 8 1000000000 8)\"}}"
expect 1 "layers" "a billion layers" small $R info --model "$f"
st "$f" "{\"__metadata__\":{\"retnet\":\"$(cfg 4096 6912 16 6912 32 32000)\"},\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}" 16
expect 1 "parameters" "a 7b config in a small file" small $R info --model "$f"
# 100 GB of header: claimed by a small file, and held by a (sparse) 100 GB one.
printf '\x00\xe8\x76\x48\x17\x00\x00\x00{}' > "$f"
expect 1 "header length" "a 100 GB header in a small file" small $R info --model "$f"
if truncate -s 100000000008 "$tmp/huge.safetensors" 2>/dev/null; then
  printf '\x00\xe8\x76\x48\x17\x00\x00\x00{' | dd of="$tmp/huge.safetensors" conv=notrunc 2>/dev/null
  expect 1 "header length" "a 100 GB header in a 100 GB file" $R info --model "$tmp/huge.safetensors"
  rm -f "$tmp/huge.safetensors"
fi
# A checkpoint (the fuzzers' regression input) asking for 2^64 tokens per step.
for c in tokens-per-step-overflow batch-1e300 eps-infinite; do
  mkdir -p "$tmp/ck_$c"; cp "tests/fuzz/regress/checkpoint/$c.safetensors" "$tmp/ck_$c/checkpoint.safetensors"
  expect 1 "invalid training state" "checkpoint $c" small $R train --resume --out "$tmp/ck_$c" --data README.md
done

# fla value widths whose ratio to dim does not survive a naive round trip
# through JSON (14 * (61 / 14) = 60.99..., 4.34090909090909 for 191 / 44).
for dv in "14 61" "44 191"; do
  set -- $dv
  $R init --preset fla --dim "$1" --heads 1 --value-dim "$2" --layers 1 --vocab 16 --out "$tmp/fla.safetensors" > /dev/null 2>&1
  if $R info --model "$tmp/fla.safetensors" 2>&1 | grep -q "^value dim: *$2\$"; then ok; else bad "fla dim $1 value dim $2 does not load back"; fi
done

# ------------------------------------------------------------------ flags
for i in $(seq 1 100); do echo "The quick brown fox $i jumps over the lazy dog."; done > "$tmp/text.txt"
d=(--data "$tmp/text.txt" --out "$tmp/run" --threads 1 --quiet --steps 2)
u="\(see retnet (train|generate|eval) --help\)$"
for bad_flag in "--seq 0" "--seq -5" "--seq 2000000" "--batch 0" "--batch -1" "--accum 0" "--steps 0" "--lr 0" \
    "--lr 11" "--lr nan" "--warmup -1" "--val-frac 0" "--val-frac 0.9" "--heads 0" "--heads -2" "--dim 1" "--dim -64" \
    "--layers 0" "--layers 1025" "--vocab 0" "--ffn 0" "--value-dim 0" "--chunk 0" "--beta1 1" "--beta2 -0.1" "--clip -1" \
    "--weight-decay -1" "--threads 0" "--eval-every 0" "--ckpt-every 0" "--seed -1" "--time 0" "--stop-at 0" \
    "--schedule sideways" "--preset gpt" "--size huge" "--dim 64 --heads 3" "--dim 64 --heads 64" "--dim 36 --heads 4" \
    "--dim 64 --value-dim 65" "--preset seed --dim 64 --value-dim 96" "--seq 8 --chunk 9" "--seq" \
    "--steps 1e3x" "--steps 2.5" "--bogus" "stray" "--quiet=1" "--out"; do
  # shellcheck disable=SC2086
  expect 2 "^retnet train: .*$u" "train $bad_flag" $R train "${d[@]}" $bad_flag
done
[ -e "$tmp/run" ] && bad "a usage error created the run directory"
# (checked against the tokenizer, after the run directory is made)
expect 2 "^retnet train: .*$u" "train --vocab 100" $R train "${d[@]}" --vocab 100
for bad_flag in "-n -1" "--n 1e10" "--temperature -1" "--top-k -1" "--top-p 0" "--top-p 1.5" "--chunk 0" "--seed -3" \
    "--threads 0" "--prompt" "--prompt=" "--nope"; do
  # shellcheck disable=SC2086
  expect 2 "^retnet generate: .*$u" "generate $bad_flag" $R generate --model "$tmp/m.safetensors" $bad_flag
done
expect 2 "^retnet generate: .*$u" "generate without --model" $R generate
for bad_flag in "--chunk 0" "--window 0" "--window -1" "--segment 0" "--threads 0" "--data" "--nope"; do
  # shellcheck disable=SC2086
  expect 2 "^retnet eval: .*$u" "eval $bad_flag" $R eval --model "$tmp/m.safetensors" --data "$tmp/text.txt" $bad_flag
done
expect 2 "^retnet eval: .*$u" "eval without --data" $R eval --model "$tmp/m.safetensors"

# Unusable inputs: exit 1, one line.
$R init --size tiny --out "$tmp/tiny.safetensors" > /dev/null 2>&1
: > "$tmp/empty.txt"; printf 'ab' > "$tmp/two.txt"
expect 1 "^retnet: error: .*no/such" "train on a missing file" $R train "${d[@]}" --data "$tmp/no/such"
expect 1 "^retnet: error: .*empty" "train on an empty file" $R train "${d[@]}" --data "$tmp/empty.txt"
expect 1 "^retnet: error: .*two.txt" "train on 2 bytes" $R train "${d[@]}" --data "$tmp/two.txt"
expect 1 "^retnet: error: .*text.txt" "train with --seq longer than the data" $R train "${d[@]}" --seq 100000
expect 1 "^retnet: error: cannot create .*Not a directory" "train --out a file" $R train "${d[@]}" --out "$tmp/text.txt"
# A run directory whose parents do not exist yet (runs/latest in a fresh checkout).
$R train "${d[@]}" --size tiny --seq 16 --batch 1 --steps 1 --out "$tmp/runs/a/b" > /dev/null 2>&1
if [ $? -eq 0 ] && [ -s "$tmp/runs/a/b/checkpoint.safetensors" ]; then ok; else bad "train --out with missing parents"; fi
expect 1 "^retnet: error: .*no/such" "generate from a missing model" $R generate --model "$tmp/no/such"
expect 1 "^retnet: error: .*no/such" "generate from a missing prompt file" $R generate --model "$tmp/tiny.safetensors" --prompt-file "$tmp/no/such"
expect 1 "^retnet: error: " "eval of a corrupt model" $R eval --model "$tmp/m.safetensors" --data "$tmp/text.txt"
expect 1 "^retnet: error: .*needs at least 2 tokens" "eval of 1 byte" $R eval --model "$tmp/tiny.safetensors" --data <(printf a)
expect 1 "^retnet: error: .*empty.txt" "eval of an empty file" $R eval --model "$tmp/tiny.safetensors" --data "$tmp/empty.txt"

finish
