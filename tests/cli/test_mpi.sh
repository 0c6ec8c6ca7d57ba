#!/usr/bin/env bash
# retnet train under mpirun (docs/DISTRIBUTED.md): 2 ranks with micro-batch
# B/2 equal 1 process with batch B (losses and weights to 1e-6) and 1 process
# with 2 accumulated micro-batches of B/2 (bit for bit); ZeRO-1 equals plain
# data parallelism; resume under MPI is exact; a resume with another number
# of ranks is refused; a rank that hangs stops the job after --mpi-timeout.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET_BIN:-build/retnet}
. tests/cli/lib.bash
if ! command -v mpirun >/dev/null; then
  echo "no mpirun (scripts/setup.sh test installs Open MPI): skipped"
  echo "0 passed, 0 failed"; exit 0
fi
if ! ldd "$R" | grep -q libmpi; then
  echo "FAIL: mpirun is here but $R was built without MPI (the build finds it with mpicc: mk/mpi.mk)"
  echo "0 passed, 1 failed"; exit 1
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mpi() { local n=$1; shift; mpirun --allow-run-as-root --oversubscribe -np "$n" "$@"; }

for i in $(seq 1 400); do
  echo "The quick brown fox $i jumps over the lazy dog. A retentive network keeps a state of fixed size."
  echo "She said that the $((i % 7)) rivers were cold in the morning, and the town was quiet."
done > "$tmp/text.txt"
# One thread per process: the bit-for-bit comparisons need the same
# arithmetic in every run, whatever the thread count.
common=(--data "$tmp/text.txt" --size tiny --seq 32 --steps 20 --eval-every 5 --eval-batches 3
        --ckpt-every 10 --threads 1 --quiet)

# Relative difference ||a - b|| / ||b|| of all tensors of two safetensors files.
reldiff() {
  python3 - "$1" "$2" <<'EOF'
import array, json, math, struct, sys
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: array.array({'F32': 'f', 'F64': 'd'}[v['dtype']], b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]])
            for k, v in h.items() if k != '__metadata__'}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys()
num = sum((x - y) ** 2 for k in a for x, y in zip(a[k], b[k]))
den = sum(y * y for k in b for y in b[k])
print('%.3g' % math.sqrt(num / den))
EOF
}
# Largest relative difference of the train and validation losses (metrics.csv columns 2 and 3).
lossdiff() {
  paste -d, "$1" "$2" | awk -F, 'NR > 1 { for (c = 2; c <= 3; c++) { a = $c; b = $(c + 5); if (a == "" && b == "") continue;
      if (a == "" || b == "") { m = 1; continue } d = (a - b) / b; if (d < 0) d = -d; if (d > m) m = d } }
      END { printf "%.3g\n", m + 0 }'
}
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

for mode in parallel chunkwise; do
  extra=(); [ $mode = chunkwise ] && extra=(--chunk 8)
  $R train "${common[@]}" "${extra[@]}" --batch 4 --out "$tmp/one_$mode" 2>"$tmp/log"
  check "[ $? -eq 0 ]" "$mode: 1 process, batch 4 failed: $(tail -1 "$tmp/log")"
  $R train "${common[@]}" "${extra[@]}" --batch 2 --accum 2 --out "$tmp/acc_$mode" 2>"$tmp/log"
  check "[ $? -eq 0 ]" "$mode: 1 process, batch 2 x accum 2 failed: $(tail -1 "$tmp/log")"
  mpi 2 $R train "${common[@]}" "${extra[@]}" --batch 2 --out "$tmp/dp_$mode" >"$tmp/log" 2>&1
  check "[ $? -eq 0 ]" "$mode: 2 ranks failed: $(tail -3 "$tmp/log")"
  mpi 2 $R train "${common[@]}" "${extra[@]}" --batch 2 --zero 1 --out "$tmp/z_$mode" >"$tmp/log" 2>&1
  check "[ $? -eq 0 ]" "$mode: 2 ranks with ZeRO-1 failed: $(tail -3 "$tmp/log")"

  w=$(reldiff "$tmp/dp_$mode/model.safetensors" "$tmp/one_$mode/model.safetensors")
  l=$(lossdiff "$tmp/dp_$mode/metrics.csv" "$tmp/one_$mode/metrics.csv")
  check "lt $w 1e-6" "$mode: 2 ranks x batch 2 vs 1 x batch 4: weights differ by $w (want <= 1e-6)"
  check "lt $l 1e-6" "$mode: 2 ranks x batch 2 vs 1 x batch 4: losses differ by $l (want <= 1e-6)"
  echo "  $mode, 20 steps: 2 ranks x batch 2 vs 1 process x batch 4: weights $w, losses $l (relative)"
  check "cmp -s '$tmp/dp_$mode/model.safetensors' '$tmp/acc_$mode/model.safetensors'" \
        "$mode: 2 ranks differ from 1 process with accum 2 (want bit for bit)"
  # (Their validation differs: 2 x 2 windows a batch against 2.)
  check "diff <(cut -d, -f1,2 '$tmp/dp_$mode/metrics.csv') <(cut -d, -f1,2 '$tmp/acc_$mode/metrics.csv') >/dev/null" \
        "$mode: 2 ranks' losses differ from accum 2"
  check "cmp -s '$tmp/z_$mode/model.safetensors' '$tmp/dp_$mode/model.safetensors'" "$mode: ZeRO-1 weights differ from plain"
  check "cmp -s '$tmp/z_$mode/checkpoint.safetensors' '$tmp/dp_$mode/checkpoint.safetensors'" \
        "$mode: ZeRO-1 checkpoint (gathered moments) differs from plain"
  check "diff <(cut -d, -f1-3 '$tmp/z_$mode/metrics.csv') <(cut -d, -f1-3 '$tmp/dp_$mode/metrics.csv') >/dev/null" \
        "$mode: ZeRO-1 losses differ from plain"
done
echo "  bit for bit: 2 ranks = 1 process with accum 2, ZeRO-1 = plain (weights, moments, losses)"

# Three ranks (uneven ZeRO shards) with accumulation: close to one process
# with the whole batch (sums in another order over 20 AdamW steps: measured
# 0.8-1.2e-6 from run to run, hence the bound); ZeRO-1
# equals plain.
mpi 3 $R train "${common[@]}" --batch 2 --accum 2 --out "$tmp/dp3" >"$tmp/log" 2>&1
check "[ $? -eq 0 ]" "3 ranks failed: $(tail -3 "$tmp/log")"
mpi 3 $R train "${common[@]}" --batch 2 --accum 2 --zero 1 --out "$tmp/z3" >"$tmp/log" 2>&1
check "[ $? -eq 0 ]" "3 ranks with ZeRO-1 failed: $(tail -3 "$tmp/log")"
$R train "${common[@]}" --batch 6 --accum 2 --out "$tmp/one6" 2>"$tmp/log"
w=$(reldiff "$tmp/dp3/model.safetensors" "$tmp/one6/model.safetensors")
check "lt $w 3e-6" "3 ranks x batch 2 x accum 2 vs 1 x batch 6 x accum 2: weights differ by $w"
z=$(reldiff "$tmp/z3/model.safetensors" "$tmp/dp3/model.safetensors")
check "lt $z 1e-7" "3 ranks: ZeRO-1 weights differ from plain by $z"
echo "  3 ranks x batch 2 x accum 2 vs 1 process x batch 6 x accum 2: weights $w; ZeRO-1 vs plain: $z"

# Resume under MPI is exact (plain and ZeRO-1), also across the two.
for z in 0 1; do
  mpi 2 $R train "${common[@]}" --batch 2 --zero $z --stop-at 7 --out "$tmp/r$z" >"$tmp/log" 2>&1
  check "[ $? -eq 0 ] && grep -q 'stopped: checkpoint written' '$tmp/log'" "zero $z: interrupted run failed"
  mpi 2 $R train "${common[@]}" --batch 2 --zero $((1 - z)) --resume --out "$tmp/r$z" >"$tmp/log" 2>&1
  check "[ $? -eq 0 ]" "zero $z: resume failed: $(tail -3 "$tmp/log")"
  check "cmp -s '$tmp/r$z/model.safetensors' '$tmp/dp_parallel/model.safetensors'" "zero $z: resumed weights differ"
  check "cmp -s '$tmp/r$z/checkpoint.safetensors' '$tmp/dp_parallel/checkpoint.safetensors'" "zero $z: resumed checkpoint differs"
  check "diff <(cut -d, -f1,2 '$tmp/r$z/metrics.csv') <(cut -d, -f1,2 '$tmp/dp_parallel/metrics.csv') >/dev/null" \
        "zero $z: resumed losses differ"
done

# Another number of ranks: refused, saying how to resume.
$R train "${common[@]}" --batch 2 --resume --out "$tmp/r0" 2>"$tmp/log"; rc=$?
check "[ $rc -eq 1 ] && [ \$(wc -l < '$tmp/log') -eq 1 ] && grep -q 'mpirun -np 2' '$tmp/log'" \
      "1 process resuming a 2-rank checkpoint: rc $rc, $(cat "$tmp/log")"
mpi 3 $R train "${common[@]}" --batch 2 --resume --out "$tmp/r0" >"$tmp/log" 2>&1; rc=$?
check "[ $rc -ne 0 ] && grep -q 'written by 2 processes and this run has 3' '$tmp/log'" "3 ranks resuming a 2-rank checkpoint: rc $rc"

# A rank that hangs (stopped) makes the others abort after --mpi-timeout.
mpi 2 $R train "${common[@]}" --batch 2 --steps 1000000 --eval-every 1000000 --ckpt-every 1000000 --mpi-timeout 2 \
    --out "$tmp/hang" >"$tmp/log" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 100); do
  for p in $(pgrep -f "retnet train.*$tmp/hang"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$' && victim=$p
  done
  [ -n "$victim" ] && break
  sleep 0.1
done
sleep 0.5
t0=$SECONDS
[ -n "$victim" ] && kill -STOP "$victim"
( sleep 60; kill "$job" 2>/dev/null ) & guard=$!
wait $job; rc=$?
kill $guard 2>/dev/null; wait $guard 2>/dev/null
[ -n "$victim" ] && kill -CONT "$victim" 2>/dev/null
check "[ -n '$victim' ] && [ $rc -ne 0 ] && [ $((SECONDS - t0)) -lt 30 ]" "hung rank: rc $rc after $((SECONDS - t0))s"
check "grep -q 'waited 2 s for the other ranks: one has died or hangs' '$tmp/log'" "hung rank: no message: $(head -5 "$tmp/log")"

finish
