#!/usr/bin/env bash
# Training throughput of one process (one thread, then every core) against
# two MPI ranks with half the cores each, at the same global batch
# (docs/DISTRIBUTED.md). Prints a Markdown table: the median tokens/s over
# the steps after the first two.
# Usage: scripts/mpi_throughput.sh [DATA] [SIZES] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/brown.txt}
sizes=${2:-"small demo base"}
steps=${3:-12}
R=${RETNET_BIN:-build/retnet}
cores=$(nproc)
half=$((cores / 2 > 0 ? cores / 2 : 1))
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
common=(--data "$data" --seq 256 --steps "$steps" --eval-every 1000000 --eval-batches 1 --ckpt-every 1000000 --quiet)

# Median of metrics.csv's tokens/s (column 5) after step 2.
median() { awk -F, 'NR > 3 { print $5 }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "| size | parameters | global batch | 1 process x 1 thread | 1 process x $cores threads | 2 ranks x $half threads | 2 ranks vs 1 process | rank 0 waiting |"
echo "|---|---|---|---|---|---|---|---|"
for size in $sizes; do
  $R train "${common[@]}" --size "$size" --batch 8 --threads 1 --out "$tmp/single" 2>/dev/null
  $R train "${common[@]}" --size "$size" --batch 8 --threads "$cores" --out "$tmp/one" 2>"$tmp/one.log"
  # Each rank bound to half of the cores (its threads follow: cli/dist.c).
  mpirun --allow-run-as-root -np 2 --map-by "slot:PE=$half" $R train "${common[@]}" --size "$size" --batch 4 --out "$tmp/two" >"$tmp/two.log" 2>&1
  single=$(median "$tmp/single/metrics.csv"); one=$(median "$tmp/one/metrics.csv"); two=$(median "$tmp/two/metrics.csv")
  params=$(sed -n 's/.*: \([0-9.]*M\) parameters/\1/p' "$tmp/one.log")
  wait=$(sed -n 's/rank 0 waited [0-9.]*s (\([0-9]*%\)).*/\1/p' "$tmp/two.log")
  awk -v s="$size" -v p="$params" -v c="$single" -v a="$one" -v b="$two" -v w="$wait" \
    'BEGIN { printf "| %s | %s | 8 x 256 | %.0f tok/s | %.0f tok/s | %.0f tok/s | %.2f | %s |\n", s, p, c, a, b, b / a, w }'
done
