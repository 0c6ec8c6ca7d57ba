#!/usr/bin/env bash
# retnet train --time on a machine whose speed changes: the run is pinned
# to one CPU, busy loops on that CPU slow it to a third from 3 s to 7 s,
# then it runs at full speed again (the case where re-planning the schedule
# from the measured speed used to move the learning rate back up). The
# learning rate in metrics.csv must never increase after its peak (the end
# of warm-up), and the run must end near its budget. Likewise without
# warm-up, when the first plan lengthens a short --steps.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET_BIN:-build/retnet}
. tests/cli/lib.bash
tmp=$(mktemp -d)
hogs=()
stop_hogs() { for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done; hogs=(); }
trap 'stop_hogs; rm -rf "$tmp"' EXIT

for i in $(seq 1 400); do
  echo "The quick brown fox $i jumps over the lazy dog. A retentive network keeps a state of fixed size."
done > "$tmp/text.txt"
pin=(); command -v taskset > /dev/null && pin=(taskset -c 0)
budget=12
t0=$SECONDS
"${pin[@]}" $R train --data "$tmp/text.txt" --size tiny --seq 32 --batch 4 --time $budget --eval-every 100000 \
    --threads 1 --quiet --out "$tmp/run" 2> "$tmp/log" &
train=$!
sleep 3
for k in 1 2; do "${pin[@]}" bash -c 'while :; do :; done' & hogs+=($!); done
sleep 4
stop_hogs
wait $train; rc=$?
wall=$((SECONDS - t0))
check "[ $rc -eq 0 ]" "--time run failed: $(tail -2 "$tmp/log")"
check "[ $wall -le $((budget + 4)) ]" "--time $budget took ${wall}s"
# columns: step,train_loss,val_loss,lr,tokens_per_s (row n is line n + 1)
res=$(awk -F, 'NR > 1 { n++; lr[n] = $4 + 0; tok[n] = $5 + 0; if (lr[n] > peak) { peak = lr[n]; at = n } }
  END { up = 0; for (i = at + 1; i <= n; i++) if (lr[i] > lr[i - 1]) { up++; if (!first) first = i }
        printf "%d %d %d %g %g %d\n", n, at, up, peak, lr[n], first }' "$tmp/run/metrics.csv")
read -r steps peak_at rises peak final first_rise <<< "$res"
check "[ $steps -ge 50 ]" "only $steps steps in ${budget}s"
rows=""; [ "$rises" -gt 0 ] && rows=$(sed -n "${first_rise},$((first_rise + 1))p" "$tmp/run/metrics.csv" | tr '\n' ' ')
check "[ $rises -eq 0 ]" "the learning rate rose $rises times after its peak (row $peak_at), first at row $first_rise: $rows"
check "awk 'BEGIN { exit !($final < 0.5 * $peak) }'" "the learning rate decayed only to $final from $peak"
plans=$(grep -c 'scheduling' "$tmp/log")
# No warm-up and a short --steps that the first plan lengthens: non-increasing from the first step.
$R train --data "$tmp/text.txt" --size tiny --seq 32 --batch 4 --time 4 --steps 30 --warmup 0 --eval-every 100000 \
    --threads 1 --quiet --out "$tmp/w0" 2> "$tmp/log0"
check "[ $? -eq 0 ]" "--time --warmup 0 run failed: $(tail -2 "$tmp/log0")"
up0=$(awk -F, 'NR > 2 && $4 + 0 > prev + 0 { n++ } NR > 1 { prev = $4 } END { print n + 0 }' "$tmp/w0/metrics.csv")
n0=$(($(wc -l < "$tmp/w0/metrics.csv") - 1))
check "[ $up0 -eq 0 ] && [ $n0 -gt 30 ]" "--time 4 --steps 30 --warmup 0: $n0 steps, the learning rate rose $up0 times"
echo "  --time ${budget}s slowed to a third for 4 s: $steps steps, $plans plans, lr peak $peak at step $peak_at," \
     "final $final, $rises rises after the peak"
finish
