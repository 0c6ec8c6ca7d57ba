#!/usr/bin/env bash
# The main job: install what is needed, build, fetch the default corpus
# (the Brown Corpus), train the default small model for about 9 minutes on
# this machine's cores, then generate a sample from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
make -s -j"$(nproc)" all
bash scripts/fetch_corpus.sh data/brown.txt
OUT=${OUT:-runs/demo}
TIME=${TIME:-540}
./build/retnet train --data data/brown.txt --out "$OUT" --preset torchscale --size demo \
    --seq 256 --batch 16 --lr 3e-3 --time "$TIME" --eval-every 200 --eval-batches 16 --seed 1
echo
echo "=== sample (temperature 0.7) ==="
./build/retnet generate --model "$OUT/model.safetensors" --prompt "The " -n 600 --temperature 0.7 --top-p 0.95 --seed 7
echo
echo "model:        $OUT/model.safetensors"
echo "loss curve:   $OUT/loss.svg   metrics: $OUT/metrics.csv"
tail -n 1 "$OUT/metrics.csv" | awk -F, '{ printf "final validation loss: %s nats/byte (%.4f bits/byte)\n", $3, $3 / log(2) }'
