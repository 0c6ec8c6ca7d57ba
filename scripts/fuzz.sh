#!/usr/bin/env bash
# Runs the libFuzzer targets built by `make fuzz-build` (see mk/fuzz.mk):
# each for FUZZ_TIME seconds, FUZZ_JOBS at a time, from the seed corpus
# (tests/fuzz/corpus/T) and the regression inputs (tests/fuzz/regress/T),
# adding what it finds to FUZZ_WORK/corpus/T. Prints one line per target
# (executions, speed, corpus, crashes), appends it to FUZZ_DIR/history.tsv,
# and fails if any target crashed (the input is saved in FUZZ_WORK/artifacts).
# FUZZ_TIME=0 only replays the seed and regression inputs.
set -u
cd "$(dirname "$0")/.."
time=${FUZZ_TIME:-60}
jobs=${FUZZ_JOBS:-2}
targets=${FUZZ_TARGETS:-model model_dir config checkpoint tokens dataset shards tokenizer}
dir=${FUZZ_DIR:-build/fuzz}
work=${FUZZ_WORK:-$dir/work}
mkdir -p "$work/logs" "$work/artifacts"

# Options per target: input size, dictionary, leak checking.
opts() {
  case $1 in
    model|model_dir|checkpoint) echo "-max_len=16384 -dict=tests/fuzz/retnet.dict" ;;
    config) echo "-max_len=2048 -dict=tests/fuzz/retnet.dict" ;;
    tokens) echo "-max_len=512" ;;
    dataset) echo "-max_len=2048" ;;
    shards) echo "-max_len=8192" ;;
    serve) echo "-max_len=4096 -dict=tests/fuzz/serve.dict" ;;
  esac
}

run() {
  local t=$1 bin=$dir/fuzz_$1 log=$work/logs/$1.log start=$SECONDS
  local dirs=("$work/corpus/$t")
  mkdir -p "$work/corpus/$t"
  for d in tests/fuzz/corpus/$t tests/fuzz/regress/$t; do [ -d "$d" ] && dirs+=("$d"); done
  if [ "$time" = 0 ]; then
    local files; files=$(find "${dirs[@]:1}" -type f | sort)
    # shellcheck disable=SC2086
    "$bin" $(opts "$t") -runs=1 $files >"$log" 2>&1
  else
    # shellcheck disable=SC2046
    "$bin" $(opts "$t") -max_total_time="$time" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$t-" "${dirs[@]}" >"$log" 2>&1
  fi
  echo $? > "$work/logs/$t.rc"
  echo $((SECONDS - start)) > "$work/logs/$t.secs"
}

t0=$SECONDS
for t in $targets; do
  [ -x "$dir/fuzz_$t" ] || { echo "fuzz: $dir/fuzz_$t is not built (make fuzz-build)" >&2; exit 2; }
  run "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
done
wait

failed=0
for t in $targets; do
  log=$work/logs/$t.log
  rc=$(cat "$work/logs/$t.rc")
  secs=$(cat "$work/logs/$t.secs")
  if [ "$time" = 0 ]; then
    n=$(grep -c '^Running: ' "$log")
    line="$t: replayed $n inputs"
  else
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    units=$(find "$work/corpus/$t" -type f | wc -l)
    line="$t: ${execs:-?} executions in ${secs}s (${speed:-?}/s), corpus $units, peak RSS ${rss:-?} MB"
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$secs" "${execs:-0}" "$rc" >> "$dir/history.tsv"
  fi
  if [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
    echo "$line: FAILED (exit $rc), see $log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz property failed|.*runtime error)' "$log" | head -n 5 | sed 's/^/    /'
    ls "$work/artifacts/$t-"* 2>/dev/null | head -n 3 | sed 's/^/    input: /'
  else
    echo "$line"
  fi
done
echo "fuzz: $((SECONDS - t0))s, $failed of $(echo "$targets" | wc -w) targets failed"
[ $failed -eq 0 ]
