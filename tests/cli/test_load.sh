#!/usr/bin/env bash
# Loading (README "Loading big models"): `retnet info` reads headers only
# (it answers for a file whose data is damaged, and does not read the
# weights: its peak memory stays far below the file's size); float32 files
# in our layout are read in place, with resident memory about the file's
# size, not twice it; `retnet verify` and every load detect a flipped bit in
# the data (XXH3 checksum) and a non-finite value; bf16 files say what
# loading copies.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
. tests/cli/lib.bash
cli_start
TIME=/usr/bin/time

# A model of about 100 MB (f32), in our format, and its bf16 copy.
m=$tmp/m.safetensors
$R init --preset fla --dim 512 --layers 8 --heads 4 --value-dim 1024 --ffn 1536 --vocab 8192 --seed 3 --out "$m" >/dev/null 2>"$tmp/err"
check "[ $? -eq 0 ]" "init: $(cat "$tmp/err")"
mb=$(( $(stat -c %s "$m") / 1000000 ))
check "[ $mb -ge 60 ]" "the test model is only $mb MB"
$R convert --in "$m" --out "$tmp/b.safetensors" --dtype bf16 >/dev/null 2>&1

$R info --model "$m" >"$tmp/info" 2>&1
check "grep -q '^loading: *in place' '$tmp/info'" "info: f32 file not read in place: $(grep loading "$tmp/info")"
check "grep -q '^tensors: .*f32' '$tmp/info' && grep -q '^per token: ' '$tmp/info'" "info: no tensor types or bytes per token"
$R info --model "$tmp/b.safetensors" >"$tmp/info" 2>&1
# (its projections are kept bf16 in place, its vectors widened: copied)
check "grep -q '^loading: .*copied into memory, the rest in place' '$tmp/info' && grep -q '^tensors: .*bf16' '$tmp/info' && grep -q '^weights: .*bf16' '$tmp/info'" "info: bf16 file: $(grep -E 'loading|tensors|weights' "$tmp/info")"

# info reads no weights: its peak RSS is far below the file.
$TIME -f %M $R info --model "$m" >/dev/null 2>"$tmp/rss"
kb=$(tail -1 "$tmp/rss")
check "[ $kb -lt $(( mb * 1000 / 4 )) ]" "info peaked at $kb KB for a $mb MB file"

# Decoding from a file read in place: peak RSS about the file (not twice).
$TIME -f %M $R generate --model "$m" --prompt "ab" -n 4 --seed 1 >/dev/null 2>"$tmp/rss"
kb=$(tail -1 "$tmp/rss")
check "[ $kb -lt $(( mb * 1000 * 13 / 10 + 60000 )) ]" "generate peaked at $kb KB for a $mb MB file (want about the file size)"
check "[ $kb -ge $(( mb * 1000 * 8 / 10 )) ]" "generate peaked at only $kb KB: were the weights read at all?"

$R verify --model "$m" >"$tmp/out" 2>&1
check "[ $? -eq 0 ] && grep -q '^ok' '$tmp/out'" "verify of a sound model: $(cat "$tmp/out")"

# One bit flipped in the middle of the data.
cp "$m" "$tmp/flip.safetensors"
off=$(( $(stat -c %s "$m") / 2 ))
byte=$(dd if="$m" bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(( byte ^ 4 )))" | dd of="$tmp/flip.safetensors" bs=1 seek=$off conv=notrunc 2>/dev/null
check "! cmp -s '$m' '$tmp/flip.safetensors'" "the flip did not change the file"
for c in verify generate; do
  extra=""; [ $c = generate ] && extra="--prompt a -n 2"
  $R $c --model "$tmp/flip.safetensors" $extra >"$tmp/out" 2>"$tmp/err"; rc=$?
  check "[ $rc -eq 1 ] && [ \$(wc -l < '$tmp/err') -eq 1 ] && grep -q checksum '$tmp/err'" "$c of a flipped bit: exit $rc, $(cat "$tmp/err")"
done
$R info --model "$tmp/flip.safetensors" >/dev/null 2>&1
check "[ $? -eq 0 ]" "info (headers only) refused a file whose data is damaged"

# A NaN written with a valid checksum (no checksum: as PyTorch writes them)
# is found by the in-place check.
python3 - "$m" "$tmp/nan.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
del h['__metadata__']['checksum_xxh3']
name = 'model.layers.3.mlp.down_proj.weight'
start = h[name]['data_offsets'][0] + 40
js = json.dumps(h).encode()
js += b' ' * (-len(js) % 8)
data = bytearray(b[8 + n:])
data[start:start + 4] = struct.pack('<f', float('nan'))
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(js)) + js + bytes(data))
PY
$R verify --model "$tmp/nan.safetensors" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "[ $rc -eq 1 ] && grep -q 'down_proj.weight.*non-finite' '$tmp/err'" "a NaN in a mapped tensor: exit $rc, $(cat "$tmp/err")"
finish
