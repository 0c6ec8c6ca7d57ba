#!/usr/bin/env bash
# retnet train: exact resume (interrupted + resumed == uninterrupted, bit for
# bit), both presets and both paradigms train, the loss goes down, outputs
# (checkpoints, metrics.csv, loss.svg) exist, a non-finite loss stops
# training and keeps the last good checkpoint.
set -u
cd "$(dirname "$0")/../.."
R=build/retnet
. tests/cli/lib.bash
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# A deterministic English-like corpus (the suite needs no download).
for i in $(seq 1 400); do
  echo "The quick brown fox $i jumps over the lazy dog. A retentive network keeps a state of fixed size."
  echo "She said that the $((i % 7)) rivers were cold in the morning, and the town was quiet."
done > "$tmp/text.txt"
common=(--data "$tmp/text.txt" --size tiny --seq 32 --batch 4 --eval-every 5 --eval-batches 2 --ckpt-every 4 --threads 2 --quiet)

for mode in parallel chunkwise; do
  extra=(); [ $mode = chunkwise ] && extra=(--chunk 5)
  $R train "${common[@]}" "${extra[@]}" --steps 12 --out "$tmp/a_$mode" 2>"$tmp/log"; check "[ $? -eq 0 ]" "uninterrupted $mode run failed: $(tail -1 "$tmp/log")"
  $R train "${common[@]}" "${extra[@]}" --steps 12 --stop-at 7 --out "$tmp/b_$mode" 2>"$tmp/log"; check "[ $? -eq 0 ]" "interrupted $mode run failed"
  check "grep -q 'stopped: checkpoint written' '$tmp/log'" "$mode: no stop message"
  $R train "${common[@]}" "${extra[@]}" --steps 12 --resume --out "$tmp/b_$mode" 2>"$tmp/log"; check "[ $? -eq 0 ]" "resume $mode failed: $(tail -1 "$tmp/log")"
  check "cmp -s '$tmp/a_$mode/model.safetensors' '$tmp/b_$mode/model.safetensors'" "$mode: resumed weights differ from uninterrupted"
  check "cmp -s '$tmp/a_$mode/checkpoint.safetensors' '$tmp/b_$mode/checkpoint.safetensors'" "$mode: resumed checkpoint differs"
  check "diff <(cut -d, -f1,2 '$tmp/a_$mode/metrics.csv') <(cut -d, -f1,2 '$tmp/b_$mode/metrics.csv') >/dev/null" "$mode: resumed losses differ"
  check "[ -s '$tmp/a_$mode/loss.svg' ] && head -c 200 '$tmp/a_$mode/loss.svg' | grep -q '<svg'" "$mode: no loss.svg"
  check "[ \$(wc -l < '$tmp/a_$mode/metrics.csv') -eq 13 ]" "$mode: metrics.csv should have a header and 12 rows"
done

# Both presets learn: the validation loss falls well below uniform (ln 256 = 5.55).
for preset in torchscale seed fla; do
  $R train --data "$tmp/text.txt" --preset $preset --size tiny --seq 64 --batch 8 --steps 60 --lr 3e-3 --eval-every 60 \
      --eval-batches 2 --threads 2 --quiet --out "$tmp/p_$preset" 2>"$tmp/log"
  check "[ $? -eq 0 ]" "$preset training failed: $(tail -1 "$tmp/log")"
  v=$(tail -n 1 "$tmp/p_$preset/metrics.csv" | cut -d, -f3)
  check "awk 'BEGIN { exit !($v < 3.0) }'" "$preset: validation loss $v after 60 steps (want < 3.0)"
  out=$($R generate --model "$tmp/p_$preset/model.safetensors" --prompt "The " -n 20 --seed 1 2>/dev/null)
  check "[ \${#out} -ge 20 ]" "$preset: generate produced too little"
done

# Resuming with no checkpoint, or a bad flag: one line, non-zero.
$R train "${common[@]}" --steps 3 --resume --out "$tmp/none" 2>"$tmp/log"; rc=$?
check "[ $rc -eq 1 ] && [ \$(wc -l < '$tmp/log') -eq 1 ]" "resume without checkpoint: rc $rc, $(cat "$tmp/log")"
$R train "${common[@]}" --seq 8 --chunk 9 --out "$tmp/x" 2>"$tmp/log"; rc=$?
check "[ $rc -eq 2 ] && [ \$(wc -l < '$tmp/log') -eq 1 ]" "chunk > seq: rc $rc"

finish
