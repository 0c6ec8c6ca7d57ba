#!/usr/bin/env bash
# retnet quantize (README "Low-bit inference"): for each type the file is
# read in place, info names every tensor's type and the bytes per token,
# generate / eval / logits / verify run on it; its logits are those of the
# dequantised model (convert back to f32) to float32 rounding in the
# parallel paradigm; the three paradigms agree; refusals are one line.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
. tests/cli/lib.bash
cli_start
PY=/usr/bin/python3

m=$tmp/m.safetensors
$R init --preset fla --dim 128 --layers 2 --heads 2 --value-dim 256 --ffn 256 --vocab 256 --seed 4 --out "$m" >/dev/null 2>"$tmp/err"
check "[ $? -eq 0 ]" "init: $(cat "$tmp/err")"
printf 'the quick brown fox jumps over the lazy dog. ' > "$tmp/text.txt"
for i in 1 2 3; do cat "$tmp/text.txt" "$tmp/text.txt" > "$tmp/t2"; mv "$tmp/t2" "$tmp/text.txt"; done
toks=1,5,9,200,3,3,7,100,42,17,255,0,64

$R quantize --help >"$tmp/help" 2>&1
check "[ $? -eq 0 ] && grep -q -- '--type' '$tmp/help' && grep -q -- '--keep-head' '$tmp/help'" "quantize --help"
f32_decode=$($R info --model "$m" | sed -n 's/^per token: *\([0-9.]*\) MB.*/\1/p')

for t in bf16 f16 q8_0 q4_0; do
  q=$tmp/m-$t.safetensors
  $R quantize --in "$m" --out "$q" --type $t >"$tmp/out" 2>"$tmp/err"
  check "[ $? -eq 0 ] && grep -q '^wrote' '$tmp/out'" "quantize $t: $(cat "$tmp/err")"
  $R info --model "$q" --tensors >"$tmp/info" 2>&1
  check "grep -q '^loading: *in place' '$tmp/info'" "info $t: not read in place: $(grep loading "$tmp/info")"
  check "grep -q \"^weights: .*$t\" '$tmp/info'" "info $t: no $t weights: $(grep weights "$tmp/info")"
  check "grep -Eq \"^wqkvg +0 +\\[768, 128\\] +$t \" '$tmp/info' && grep -Eq '^norm1.weight +0 .* f32 ' '$tmp/info'" \
        "info --tensors $t: $(grep -E 'wqkvg|norm1' "$tmp/info" | head -2)"
  dec=$(sed -n 's/^per token: *\([0-9.]*\) MB of.*/\1/p' "$tmp/info")
  check "$PY -c 'import sys; sys.exit(not ($dec <= $f32_decode * 0.56))'" "info $t: $dec MB per token (f32 $f32_decode)"
  $R verify --model "$q" >"$tmp/out" 2>&1
  check "[ $? -eq 0 ]" "verify $t: $(cat "$tmp/out")"
  $R generate --model "$q" --prompt "the quick" -n 8 --temperature 0 >"$tmp/gen" 2>"$tmp/err"
  check "[ $? -eq 0 ] && [ -s '$tmp/gen' ]" "generate $t: $(tail -1 "$tmp/err")"
  $R eval --model "$q" --data "$tmp/text.txt" >"$tmp/eval" 2>&1
  check "[ $? -eq 0 ] && grep -qi 'loss' '$tmp/eval'" "eval $t: $(tail -1 "$tmp/eval")"
  for mode in parallel chunkwise recurrent; do
    $R logits --model "$q" --tokens $toks --mode $mode --chunk 4 --out "$tmp/l-$t-$mode.npy" 2>"$tmp/err"
    check "[ $? -eq 0 ]" "logits $t $mode: $(cat "$tmp/err")"
  done
  # the dequantised model: convert back to f32
  $R convert --in "$q" --out "$tmp/d-$t.safetensors" >/dev/null 2>"$tmp/err"
  check "[ $? -eq 0 ]" "convert $t to f32: $(cat "$tmp/err")"
  $R logits --model "$tmp/d-$t.safetensors" --tokens $toks --out "$tmp/d-$t.npy" 2>/dev/null
  out=$($PY - "$tmp" $t <<'PY'
import sys, numpy as np
d, t = sys.argv[1], sys.argv[2]
p, c, r = (np.load(f"{d}/l-{t}-{m}.npy").astype(np.float64) for m in ("parallel", "chunkwise", "recurrent"))
ref = np.load(f"{d}/d-{t}.npy").astype(np.float64)
s = np.abs(ref).max()
# q8_0 / q4_0 products of up to 64 rows (these few tokens, in every mode)
# quantise activations to int8: the modes agree to float32 rounding, and
# the dequantised f32 model within the int8 bound (5% of the largest logit)
tol_q = 5e-2 if t.startswith("q") else 2e-5
ok = np.abs(p - ref).max() <= tol_q * s and np.abs(c - p).max() <= 2e-5 * s and np.abs(r - p).max() <= 2e-5 * s
print("ok" if ok else f"parallel-dequantised {np.abs(p-ref).max()/s:.2e} chunkwise {np.abs(c-p).max()/s:.2e} recurrent {np.abs(r-p).max()/s:.2e}")
PY
)
  check "[ '$out' = ok ]" "logits $t: $out"
done

# q4_0 with the head kept f32: the head is f32, the rest q4_0
$R quantize --in "$m" --out "$tmp/k.safetensors" --type q4_0 --keep-head f32 >/dev/null 2>&1
$R info --model "$tmp/k.safetensors" --tensors >"$tmp/info" 2>&1
check "grep -Eq '^lm_head +-1 .* f32 ' '$tmp/info' && grep -Eq '^embed +-1 .* q4_0 ' '$tmp/info'" "--keep-head f32: $(grep -E 'lm_head|^embed' "$tmp/info")"

# refusals: one line, exit 1 (2 for usage)
# (quantize's progress line comes before its error)
one_line() { [ "$1" -ne 0 ] && [ "$(grep -vc '^quantize: ' "$tmp/err")" -eq 1 ] && grep -q "$2" "$tmp/err"; }
$R quantize --in "$m" --out "$tmp/x.safetensors" --type q5_k >/dev/null 2>"$tmp/err"
check "one_line $? 'unknown --type'" "unknown type: $(cat "$tmp/err")"
$R init --dim 48 --layers 1 --heads 2 --value-dim 96 --ffn 96 --vocab 64 --out "$tmp/odd.safetensors" >/dev/null 2>&1
$R quantize --in "$tmp/odd.safetensors" --out "$tmp/x.safetensors" --type q8_0 >/dev/null 2>"$tmp/err"
check "one_line $? 'not a multiple of 32'" "odd widths: $(cat "$tmp/err")"
check "[ ! -e '$tmp/x.safetensors' ]" "a refused quantisation left a file"
$R grads --model "$tmp/m-q8_0.safetensors" --tokens 1,2,3 --targets 2,3,4 --out "$tmp/g.safetensors" >/dev/null 2>"$tmp/err"
check "one_line $? 'quantised'" "gradients of a quantised model: $(cat "$tmp/err")"
# a truncated file names the tensor cut
head -c $(( $(stat -c %s "$tmp/m-q8_0.safetensors") - 50 )) "$tmp/m-q8_0.safetensors" > "$tmp/cut.safetensors"
$R generate --model "$tmp/cut.safetensors" --prompt a -n 2 >/dev/null 2>"$tmp/err"
check "one_line $? \"tensor '.*truncated\"" "truncated file: $(cat "$tmp/err")"
finish
