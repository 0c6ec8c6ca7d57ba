#!/usr/bin/env bash
# bpe_vs_bytes.sh: the demo's model trained for the same time on the same
# corpus with the byte-level tokenizer and with byte-level BPE tokenizers
# learned from that corpus (`retnet tokenizer train`), each then scored by
# `retnet eval` in bits per byte of the same held-out text (the corpus's
# last EVAL_BYTES bytes, inside every run's validation split), so the
# tokenizers compare. Prints one table row per tokenizer.
#
# Usage: scripts/bpe_vs_bytes.sh [TIME_PER_RUN_S [VOCAB...]]
#        (default 120 s; vocabularies 512 1024 2048; "byte" is always run)
# Env:   DATA (data/brown.txt), OUT (runs/bpe_vs_bytes), EVAL_BYTES (60000),
#        TOGETHER=1: run the trainings at the same time, one thread each, so
#        that a machine shared with other work slows them alike (else one
#        after the other, on all cores); STEPS=N: the same number of steps
#        for each instead of the same time (when the machine's load varies
#        too much for time to be fair; a step costs nearly the same, the
#        larger output layer aside).
set -euo pipefail
cd "$(dirname "$0")/.."
TIME=${1:-120}
shift || true
VOCABS=${*:-512 1024 2048}
DATA=${DATA:-data/brown.txt}
OUT=${OUT:-runs/bpe_vs_bytes}
EVAL_BYTES=${EVAL_BYTES:-60000}
TOGETHER=${TOGETHER:-0}
budget=(--time "$TIME")
[ -n "${STEPS:-}" ] && budget=(--steps "$STEPS")
R=./build/retnet
[ -x $R ] || { echo "bpe_vs_bytes.sh: build first (make)" >&2; exit 1; }
[ -s "$DATA" ] || bash scripts/fetch_corpus.sh "$DATA"
mkdir -p "$OUT"
# The held-out text starts at a line.
tail -c "$EVAL_BYTES" "$DATA" | sed 1d >"$OUT/heldout.txt"
threads=()
[ "$TOGETHER" = 1 ] && threads=(--threads 1)
pids=()
for v in byte $VOCABS; do
  tok=()
  if [ "$v" != byte ]; then
    # Learning the tokenizer (about a second) is not counted in the budget.
    $R tokenizer train --data "$DATA" --vocab "$v" --out "$OUT/tok$v.json" --quiet 2>"$OUT/tok$v.log"
    tok=(--tokenizer "$OUT/tok$v.json")
  fi
  $R train --data "$DATA" "${tok[@]}" --out "$OUT/$v" --preset torchscale --size demo --seq 256 --batch 16 \
    --lr 3e-3 "${budget[@]}" --eval-every 200 --eval-batches 16 --seed 1 --quiet "${threads[@]}" \
    2>"$OUT/$v.log" &
  pids+=($!)
  [ "$TOGETHER" = 1 ] || wait "${pids[-1]}"
done
for p in "${pids[@]}"; do wait "$p"; done
printf '%-10s %8s %8s %10s %12s %12s %10s\n' tokenizer vocab steps seconds "val tokens" bytes/token bits/byte
for v in byte $VOCABS; do
  run=$OUT/$v
  $R eval --model "$run/model.safetensors" --data "$OUT/heldout.txt" --quiet >"$run.eval" 2>&1
  steps=$(tail -n 1 "$run/metrics.csv" | cut -d, -f1)
  secs=$(sed -n 's/^done: .* in \([0-9.]*\)s;.*/\1/p' "$run.log")
  ntok=$(awk '/^tokens:/ {print $2}' "$run.eval")
  bpb=$(awk '/^bits\/byte:/ {print $2}' "$run.eval")
  nbytes=$(wc -c <"$OUT/heldout.txt")
  printf '%-10s %8s %8s %10s %12s %12.2f %10s\n' "$v" "$([ $v = byte ] && echo 256 || echo $v)" "$steps" "$secs" "$ntok" \
    "$(awk "BEGIN {print $nbytes / $ntok}")" "$bpb"
done
