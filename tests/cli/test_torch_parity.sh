#!/usr/bin/env bash
# retnet against an independent PyTorch implementation (tests/torch/ref.py), in
# every file format and both directions (tests/torch/parity.py does the PyTorch
# side):
# - PyTorch writes (ours, torchscale state dict + config.json, its Hugging Face
#   port in BF16, seed state dict, fla directory, fla shards in BF16, fla's older
#   layout, tied heads): retnet detects the format (retnet info), and its logits
#   in all three paradigms (and torchscale's abs_norm) match PyTorch's float64
#   logits to 1e-5 relative, its gradients of one step (parallel and chunkwise)
#   to 1e-4 per tensor.
# - retnet writes (init, convert to every format, f32, bf16 and f16): PyTorch loads
#   the files strictly (load_state_dict(strict=True), or ref.py's own reader),
#   with the same bounds.
# - retnet convert round trips: A -> retnet -> A keeps every tensor bit for bit;
#   retnet-written files come back byte-identical; f32 -> bf16 -> f32 is the bf16
#   rounding and f32 -> f16 -> f32 numpy's float16 rounding; bf16 -> f32 -> bf16
#   and f16 -> f32 -> f16 are byte-identical.
# - Malformed models (a shape against the config, an unknown, missing or
#   non-finite tensor, another preset's config, unsupported config values, an
#   index naming the wrong shard) fail with exit 1 and one line naming it.
# Skipped (not failed) only when /usr/bin/python3 cannot import torch.
# RETNET=build/asan/retnet runs the CLI under the sanitizers; KEEP_TMP=DIR keeps
# the files in DIR.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
PY=/usr/bin/python3
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
if [ ! -x "$R" ]; then echo "FAIL: $R not built (make tests)" >&2; echo "0 passed, 1 failed"; exit 1; fi
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "skipped: $PY cannot import torch and numpy (scripts/setup.sh test installs python3-torch)"
  echo "0 passed, 0 failed"
  exit 0
fi
# Tiny models: one thread is fastest, and immune to a busy machine.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
tmp=${KEEP_TMP:-$(mktemp -d)}; [ -n "${KEEP_TMP:-}" ] || trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/out" "$tmp/rt"
t0=$SECONDS

# run WHAT CMD...: a command that must succeed (its output kept in $tmp/log).
run() {
  local what=$1; shift
  if "$@" >"$tmp/log" 2>&1 </dev/null; then return 0; fi
  bad "$what: $(tail -n 3 "$tmp/log")"
  return 1
}
same() { if cmp -s "$1" "$2"; then ok; else bad "$3: $1 and $2 differ"; fi; }

run "parity.py write" "$PY" tests/torch/parity.py write "$tmp" || { echo "$pass passed, $fail failed"; exit 1; }

# ------------------------------------------------------- retnet writes
# add NAME PATH FORMAT DTYPE SOURCE: a model retnet wrote, for PyTorch to read.
add() { printf '%s\t%s\t%s\t%s\tretnet\t%s\n' "$@" >>"$tmp/manifest.tsv"; }
cv() { run "convert $*" $R convert "$@"; }
dims=(--dim 48 --heads 3 --value-dim 96 --ffn 80 --layers 2 --vocab 97)
for p in ts:torchscale seed:seed fla:fla; do
  run "init ${p#*:}" $R init --preset "${p#*:}" "${dims[@]}" --seed 11 --out "$tmp/r-${p%%:*}.safetensors"
done
add r-ts r-ts.safetensors retnet f32 -
cv --in "$tmp/r-ts.safetensors" --out "$tmp/r-ts-sd" --to torchscale && add r-ts-sd r-ts-sd torchscale f32 r-ts
cv --in "$tmp/r-ts.safetensors" --out "$tmp/r-ts-hf" --to torchscale-hf && add r-ts-hf r-ts-hf torchscale-hf f32 r-ts
mkdir -p "$tmp/r-ts-bf16"
cv --in "$tmp/r-ts.safetensors" --out "$tmp/r-ts-bf16/w.safetensors" --to torchscale --dtype bf16 &&
  add r-ts-bf16 r-ts-bf16/w.safetensors torchscale bf16 r-ts
add r-seed r-seed.safetensors retnet f32 -
cv --in "$tmp/r-seed.safetensors" --out "$tmp/r-seed-sd.safetensors" --to seed && add r-seed-sd r-seed-sd.safetensors seed f32 r-seed
cv --in "$tmp/r-seed.safetensors" --out "$tmp/r-seed-f16.safetensors" --to seed --dtype f16 &&
  add r-seed-f16 r-seed-f16.safetensors seed f16 r-seed
add r-fla r-fla.safetensors retnet f32 -
cv --in "$tmp/r-fla.safetensors" --out "$tmp/r-fla-hf" --to fla && add r-fla-hf r-fla-hf fla f32 r-fla
cv --in "$tmp/r-fla.safetensors" --out "$tmp/r-fla-bf16" --to fla --dtype bf16 && add r-fla-bf16 r-fla-bf16 fla bf16 r-fla
# PyTorch's models, rewritten by retnet in another format
cv --in "$tmp/t-ts.safetensors" --out "$tmp/r-conv-ts-hf" --to torchscale-hf && add r-conv-ts-hf r-conv-ts-hf torchscale-hf f32 t-ts
cv --in "$tmp/t-fla-old" --out "$tmp/r-conv-fla" --to fla && add r-conv-fla r-conv-fla fla f32 t-fla-old
cv --in "$tmp/t-seed-sd.safetensors" --out "$tmp/r-conv-seed.safetensors" && add r-conv-seed r-conv-seed.safetensors retnet f32 t-seed-sd
cv --in "$tmp/t-ts-opts" --out "$tmp/r-conv-ts-opts" --to torchscale-hf && add r-conv-ts-opts r-conv-ts-opts torchscale-hf f32 t-ts-opts
cv --in "$tmp/t-fla-tied" --out "$tmp/r-conv-fla-tied.safetensors" && add r-conv-fla-tied r-conv-fla-tied.safetensors retnet f32 t-fla-tied

# --------------------------------------------- retnet reads everything
tok=@$tmp/tokens.txt; tgt=@$tmp/targets.txt
while IFS=$'\t' read -r name path fmt dtype writer source <&3; do
  m=$tmp/$path o=$tmp/out/$name
  if run "info $name" $R info --model "$m"; then
    if grep -qx "format: *$fmt" "$tmp/log"; then ok; else bad "$name: info says $(grep '^format' "$tmp/log"), want $fmt"; fi
  fi
  preset=$(awk '/^preset:/ { print $2 }' "$tmp/log")
  for mode in parallel chunkwise recurrent; do
    run "logits $name $mode" $R logits --model "$m" --tokens "$tok" --mode $mode --chunk 16 --out "$o.$mode.npy"
  done
  if [ "$preset" = torchscale ]; then
    run "logits $name abs-norm" $R logits --model "$m" --tokens "$tok" --abs-norm --out "$o.abs-norm.npy"
  fi
  for mode in parallel chunkwise; do
    if $R grads --model "$m" --tokens "$tok" --targets "$tgt" --mode $mode --chunk 16 \
      --out "$o.grads.$mode.safetensors" >"$o.loss.$mode" 2>"$tmp/log" </dev/null; then :
    elif grep -q "not supported in training" "$tmp/log"; then
      echo "note: $name: no gradients ($(cat "$tmp/log"))"  # parity.py skips them too
    else bad "grads $name $mode: $(cat "$tmp/log")"; fi
  done
  # A -> retnet -> A for PyTorch's files (tensors compared by parity.py)
  if [ "$writer" = torch ] && [ "$fmt" != retnet ]; then
    cv --in "$m" --out "$tmp/rt/$name.retnet.safetensors" --dtype "$dtype" &&
      cv --in "$tmp/rt/$name.retnet.safetensors" --out "$tmp/rt/$name" --to "$fmt" --dtype "$dtype"
  fi
done 3<"$tmp/manifest.tsv"

# ------------------------------------------- byte-identical round trips
for pair in r-ts-sd:r-ts r-ts-hf:r-ts r-seed-sd.safetensors:r-seed r-fla-hf:r-fla; do
  x=${pair%%:*} src=${pair##*:}
  cv --in "$tmp/$x" --out "$tmp/rt/$x.back.safetensors" && same "$tmp/$src.safetensors" "$tmp/rt/$x.back.safetensors" "$x -> retnet"
done
cv --in "$tmp/rt/r-ts-sd.back.safetensors" --out "$tmp/rt/r-ts-sd2" --to torchscale &&
  same "$tmp/r-ts-sd/model.safetensors" "$tmp/rt/r-ts-sd2/model.safetensors" "torchscale -> retnet -> torchscale" &&
  same "$tmp/r-ts-sd/config.json" "$tmp/rt/r-ts-sd2/config.json" "torchscale -> retnet -> torchscale config.json"
cv --in "$tmp/r-fla-bf16" --out "$tmp/rt/r-fla-bf16.f32" --to fla &&
  cv --in "$tmp/rt/r-fla-bf16.f32" --out "$tmp/rt/r-fla-bf16.again" --to fla --dtype bf16 &&
  same "$tmp/r-fla-bf16/model.safetensors" "$tmp/rt/r-fla-bf16.again/model.safetensors" "fla bf16 -> f32 -> bf16"
cv --in "$tmp/r-ts.safetensors" --out "$tmp/rt/r-ts.bf16.safetensors" --dtype bf16 &&
  cv --in "$tmp/rt/r-ts.bf16.safetensors" --out "$tmp/rt/r-ts.bf16.f32.safetensors" &&
  cv --in "$tmp/rt/r-ts.bf16.f32.safetensors" --out "$tmp/rt/r-ts.bf16.again.safetensors" --dtype bf16 &&
  same "$tmp/rt/r-ts.bf16.safetensors" "$tmp/rt/r-ts.bf16.again.safetensors" "retnet bf16 -> f32 -> bf16"
cv --in "$tmp/r-ts.safetensors" --out "$tmp/rt/r-ts.f16.safetensors" --dtype f16 &&
  cv --in "$tmp/rt/r-ts.f16.safetensors" --out "$tmp/rt/r-ts.f16.f32.safetensors" &&
  cv --in "$tmp/rt/r-ts.f16.f32.safetensors" --out "$tmp/rt/r-ts.f16.again.safetensors" --dtype f16 &&
  same "$tmp/rt/r-ts.f16.safetensors" "$tmp/rt/r-ts.f16.again.safetensors" "retnet f16 -> f32 -> f16"

# ------------------------------------------------------ malformed input
# expect_error WHAT NEEDLE CMD...: exit 1, exactly one line on stderr, naming NEEDLE.
expect_error() {
  local what=$1 needle=$2; shift 2
  "$@" >/dev/null 2>"$tmp/err" </dev/null; local rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$needle" "$tmp/err"; then ok
  else bad "$what: exit $rc, want 1 and one line naming '$needle': $(head -c 300 "$tmp/err")"; fi
}
while IFS=$'\t' read -r name needle <&3; do
  expect_error "malformed $name" "$needle" $R verify --model "$tmp/bad/$name"
done 3<"$tmp/bad/expect.tsv"
expect_error "convert to another preset's format" "fla" $R convert --in "$tmp/r-ts.safetensors" --out "$tmp/x" --to fla
expect_error "grads of a malformed model" "layers.1.ffn.gate.weight" \
  $R grads --model "$tmp/bad/missing" --tokens 1,2 --targets 2,3 --out "$tmp/x.safetensors"

# ------------------------------------------------- PyTorch reads all
"$PY" tests/torch/parity.py check "$tmp" >"$tmp/check.log" 2>&1
rc=$?
grep -v '^ok  ' "$tmp/check.log" | grep -Ev '^[0-9]+ passed, [0-9]+ failed$'
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/check.log" | tail -n 1)
if [ -n "$line" ]; then
  pass=$((pass + $(echo "$line" | awk '{ print $1 }')))
  fail=$((fail + $(echo "$line" | awk '{ print $3 }')))
fi
[ $rc -ne 0 ] && [ -z "$line" ] && bad "parity.py check: exit $rc: $(tail -n 5 "$tmp/check.log")"
echo "($((SECONDS - t0))s)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
