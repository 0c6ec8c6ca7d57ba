#!/usr/bin/env bash
# BF16 / F16 checkpoints (README "Low-bit inference"): a Hugging Face
# directory whose tensors are BF16 or F16, in our order and sorted by name
# as Hugging Face's writer leaves them (q/k/v/g then not adjacent: copied),
# keeps its projections in the stored type: info says so and halves the
# bytes per token, the logits equal --f32's (widened at load) to float32
# rounding, the paradigms agree, generate / eval run, grads widens
# (the loss of the f32 conversion, exactly), quantize writes what it writes
# from the f32 conversion; a NaN in a kept projection is
# one line naming it; decoding a kept model peaks at well under the
# widened model's resident memory.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
. tests/cli/lib.bash
cli_start
PY=/usr/bin/python3
TIME=/usr/bin/time

m=$tmp/m.safetensors
$R init --preset fla --dim 128 --layers 2 --heads 2 --value-dim 256 --ffn 256 --vocab 256 --seed 4 --out "$m" >/dev/null 2>"$tmp/err"
check "[ $? -eq 0 ]" "init: $(cat "$tmp/err")"
printf 'the quick brown fox jumps over the lazy dog. ' > "$tmp/text.txt"
f32_decode=$($R info --model "$m" | sed -n 's/^per token: *\([0-9.]*\) MB.*/\1/p')
toks=1,5,9,200,3,3,7,100,42,17,255,0,64

# The tensors of a safetensors file rewritten in name order (no checksum,
# as PyTorch's writers leave them); with a NaN poked into one tensor.
resort() {  # in out [tensor-to-poison dtype]
  $PY - "$@" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.pop('__metadata__', {})
meta.pop('checksum_xxh3', None)
data, out, off = b[8 + n:], {'__metadata__': meta}, 0
chunks = []
for k in sorted(h):
    s, e = h[k]['data_offsets']
    c = bytearray(data[s:e])
    if len(sys.argv) > 3 and k == sys.argv[3]:
        c[6:8] = struct.pack('<H', 0x7fc0 if sys.argv[4] == 'bf16' else 0x7e00)  # a quiet NaN
    chunks.append(bytes(c))
    out[k] = dict(h[k], data_offsets=[off, off + len(c)])
    off += len(c)
js = json.dumps(out).encode()
js += b' ' * (-len(js) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(js)) + js + b''.join(chunks))
PY
}

for dt in bf16 f16; do
  hf=$tmp/hf-$dt
  $R convert --in "$m" --out "$hf" --to fla --dtype $dt >/dev/null 2>"$tmp/err"
  check "[ $? -eq 0 ]" "convert to fla $dt: $(cat "$tmp/err")"
  mkdir -p "$hf-sorted" && cp "$hf/config.json" "$hf-sorted/"
  resort "$hf/model.safetensors" "$hf-sorted/model.safetensors"
  for d in "$hf" "$hf-sorted"; do
    what="$dt $(basename "$d")"
    $R info --model "$d" --tensors >"$tmp/info" 2>&1
    check "grep -q \"^weights: .*$dt\" '$tmp/info' && grep -q '^loading: .*copied into memory' '$tmp/info'" \
          "info $what: $(grep -E 'weights|loading' "$tmp/info")"
    check "grep -Eq \"^wqkvg +0 +\\[768, 128\\] +$dt \" '$tmp/info' && grep -Eq '^fc1 +1 .* $dt ' '$tmp/info' && grep -Eq '^norm1.weight +0 .* f32 ' '$tmp/info'" \
          "info --tensors $what: $(grep -E 'wqkvg|^fc1|norm1' "$tmp/info" | head -3)"
    dec=$(sed -n 's/^per token: *\([0-9.]*\) MB of.*/\1/p' "$tmp/info")
    check "$PY -c 'import sys; sys.exit(not ($dec <= $f32_decode * 0.56))'" "info $what: $dec MB per token (f32 $f32_decode)"
    $R info --model "$d" --tensors --f32 >"$tmp/info" 2>&1
    check "grep -Eq '^wqkvg +0 +\\[768, 128\\] +f32 ' '$tmp/info'" "info --tensors --f32 $what: $(grep wqkvg "$tmp/info" | head -1)"
    for mode in parallel chunkwise recurrent; do
      $R logits --model "$d" --tokens $toks --mode $mode --chunk 4 --out "$tmp/l-$mode.npy" 2>"$tmp/err"
      check "[ $? -eq 0 ]" "logits $what $mode: $(cat "$tmp/err")"
    done
    $R logits --model "$d" --tokens $toks --f32 --out "$tmp/l-f32.npy" 2>/dev/null
    out=$($PY - "$tmp" <<'PY'
import sys, numpy as np
d = sys.argv[1]
p, c, r, w = (np.load(f"{d}/l-{m}.npy").astype(np.float64) for m in ("parallel", "chunkwise", "recurrent", "f32"))
s = np.abs(w).max()
e = [np.abs(p - w).max() / s, np.abs(c - p).max() / s, np.abs(r - p).max() / s]
print("ok" if e[0] <= 1e-5 and max(e[1:]) <= 2e-5 else "kept-f32 %.2e chunkwise %.2e recurrent %.2e" % tuple(e))
PY
)
    check "[ '$out' = ok ]" "logits $what: $out"
    $R generate --model "$d" --prompt "the quick" -n 8 --temperature 0 >"$tmp/gen" 2>"$tmp/err"
    check "[ $? -eq 0 ] && [ -s '$tmp/gen' ]" "generate $what: $(tail -1 "$tmp/err")"
    $R generate --model "$d" --prompt "the quick" -n 8 --temperature 0 --f32 >"$tmp/gen32" 2>/dev/null
    check "cmp -s '$tmp/gen' '$tmp/gen32'" "generate $what: greedy text differs from --f32's"
    $R eval --model "$d" --data "$tmp/text.txt" --quiet >"$tmp/eval" 2>&1
    check "[ $? -eq 0 ] && grep -qi 'loss' '$tmp/eval'" "eval $what: $(tail -1 "$tmp/eval")"
    # gradients widen the weights: the loss of the model converted to f32, to the last digit
    $R grads --model "$d" --tokens 1,2,3,4 --targets 2,3,4,5 --out "$tmp/g.safetensors" >"$tmp/loss" 2>"$tmp/err"
    check "[ $? -eq 0 ]" "grads $what: $(cat "$tmp/err")"
    $R convert --in "$d" --out "$tmp/w.safetensors" >/dev/null 2>&1
    $R grads --model "$tmp/w.safetensors" --tokens 1,2,3,4 --targets 2,3,4,5 --out "$tmp/g2.safetensors" >"$tmp/loss2" 2>/dev/null
    check "[ -s '$tmp/loss' ] && cmp -s '$tmp/loss' '$tmp/loss2'" "grads $what: loss $(cat "$tmp/loss") vs f32 $(cat "$tmp/loss2")"
    # quantize reads the kept weights: the file of the f32 conversion, byte for byte
    $R quantize --in "$d" --out "$tmp/q1.safetensors" --type q8_0 >/dev/null 2>&1
    $R quantize --in "$tmp/w.safetensors" --out "$tmp/q2.safetensors" --type q8_0 >/dev/null 2>&1
    check "[ -s '$tmp/q1.safetensors' ] && cmp -s '$tmp/q1.safetensors' '$tmp/q2.safetensors'" "quantize $what: not the f32 conversion's file"
  done
  # a NaN in a kept projection: one line naming it, exit 1
  bad=$tmp/bad-$dt && mkdir -p "$bad" && cp "$hf/config.json" "$bad/"
  resort "$hf/model.safetensors" "$bad/model.safetensors" model.layers.1.attn.k_proj.weight $dt
  $R generate --model "$bad" --prompt a -n 2 >/dev/null 2>"$tmp/err"; rc=$?
  check "[ $rc -eq 1 ] && [ \$(wc -l < '$tmp/err') -eq 1 ] && grep -q \"k_proj.weight.*non-finite\" '$tmp/err'" \
        "NaN in a $dt projection: exit $rc, $(cat "$tmp/err")"
done

# Resident memory: a model of about 100 MB in f32 as a sorted BF16
# checkpoint (50 MB) decodes in about the checkpoint's size, the widened
# model in about twice it.
big=$tmp/big.safetensors
$R init --preset fla --dim 512 --layers 8 --heads 4 --value-dim 1024 --ffn 1536 --vocab 8192 --seed 3 --out "$big" >/dev/null 2>&1
$R convert --in "$big" --out "$tmp/bighf" --to fla --dtype bf16 >/dev/null 2>&1
mkdir -p "$tmp/bigs" && cp "$tmp/bighf/config.json" "$tmp/bigs/"
resort "$tmp/bighf/model.safetensors" "$tmp/bigs/model.safetensors"
rm -rf "$big" "$tmp/bighf"
mb=$(( $(stat -c %s "$tmp/bigs/model.safetensors") / 1000000 ))
$TIME -f %M $R generate --model "$tmp/bigs" --prompt "ab" -n 4 >/dev/null 2>"$tmp/rss"
kept=$(tail -1 "$tmp/rss")
$TIME -f %M $R generate --model "$tmp/bigs" --prompt "ab" -n 4 --f32 >/dev/null 2>"$tmp/rss"
wide=$(tail -1 "$tmp/rss")
check "[ $kept -lt $(( mb * 1000 * 13 / 10 + 60000 )) ] && [ $(( kept * 10 )) -lt $(( wide * 8 )) ]" \
      "a $mb MB bf16 checkpoint: generate peaked at $kept KB kept, $wide KB widened"
echo "resident memory of generate on a $mb MB bf16 checkpoint: $kept KB kept, $wide KB widened (--f32)"
finish
