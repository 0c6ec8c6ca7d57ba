#!/usr/bin/env bash
# Crash safety of `retnet train` (docs/RELIABILITY.md):
# - kill -9 at random moments (CRASH_TRIALS of them, 40 by default; many land
#   inside a checkpoint write): every time, the latest checkpoint loads and
#   --resume continues from it, having lost at most the step in progress
#   (the checkpoint is at the last step the killed run reported, or the one
#   before), and the model file beside it loads; at the end, the run that was
#   killed and resumed again and again ends bit-identical to an uninterrupted
#   run of the same steps;
# - a full disk (a small tmpfs; skipped when mount is not permitted) makes the
#   checkpoint write fail with one clear line, leaving the previous
#   checkpoint intact and no temporary file;
# - a truncated or bit-flipped checkpoint is refused with one clear line.
set -u
cd "$(dirname "$0")/../.."
R=build/retnet
. tests/cli/lib.bash
tmp=$(mktemp -d)
mnt=""
cleanup() { [ -n "$mnt" ] && umount "$mnt" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
if [ ! -x "$R" ]; then echo "FAIL: $R not built (make tests)" >&2; echo "0 passed, 1 failed"; exit 1; fi
trials=${CRASH_TRIALS:-40}

for i in $(seq 1 300); do
  echo "The quick brown fox $i jumps over the lazy dog. A retentive network keeps a state of fixed size."
done > "$tmp/text.txt"
# Tiny and single-threaded (bit-exact); a checkpoint every step.
train=($R train --data "$tmp/text.txt" --dim 64 --layers 2 --heads 2 --seq 16 --batch 2 --steps 100000
       --ckpt-every 1 --eval-every 1000000 --eval-batches 1 --threads 1 --log-every 1)

# ------------------------------------------------------------- kill -9
run=$tmp/run
lo=0; hi=0      # the step the next resume must find is in [lo, hi]
during=0        # kills that left a checkpoint being written (a temporary file)
killed=0
for t in $(seq 1 "$trials"); do
  resume=(); [ -e "$run/checkpoint.safetensors" ] && resume=(--resume)
  "${train[@]}" "${resume[@]}" --out "$run" > "$tmp/out" 2> "$tmp/log" &
  pid=$!
  sleep "0.$(printf %03d $((RANDOM % 700 + 30)))"
  kill -9 $pid 2>/dev/null && killed=$((killed + 1))
  wait $pid 2>/dev/null
  k=$(sed -n 's/^resumed .* at step \([0-9]*\)$/\1/p' "$tmp/log")
  if [ ${#resume[@]} -gt 0 ] && [ -n "$k" ]; then
    check "[ $k -ge $lo ] && [ $k -le $hi ]" "trial $t: resumed at step $k, expected $lo..$hi"
    lo=$k; hi=$k
  fi
  # "step s/N" is printed before step s is checkpointed: the checkpoint is
  # now at s, or at s - 1 if the kill came during its write.
  s=$(sed -n 's/^step \([0-9]*\)\/.*/\1/p' "$tmp/log" | tail -n 1)
  [ -n "$s" ] && { lo=$((s - 1)); hi=$s; }
  ls "$run" 2>/dev/null | grep -q '\.tmp\.' && during=$((during + 1))
  rm -f "$run"/*.tmp.*
  [ -e "$run/checkpoint.safetensors" ] || continue
  # The model written beside the checkpoint loads too.
  $R info --model "$run/model.safetensors" > /dev/null 2> "$tmp/err"
  check "[ $? -eq 0 ]" "trial $t: model.safetensors does not load: $(cat "$tmp/err")"
done
last=$hi
echo "  kill -9: $killed kills in $trials trials, $during during a checkpoint write; last step $last"
check "[ $killed -ge $((trials * 3 / 4)) ]" "only $killed of $trials runs were still running when killed"
check "[ $last -ge 5 ]" "the killed runs made too little progress (step $last)"

# Killed and resumed == uninterrupted: finish the interrupted run at step
# last + 2 and compare with a fresh run stopped there.
stop=$((last + 2))
"${train[@]}" --resume --stop-at $stop --out "$run" > /dev/null 2> "$tmp/log"
check "[ $? -eq 0 ]" "final resume failed: $(tail -n 1 "$tmp/log")"
"${train[@]}" --stop-at $stop --out "$tmp/ref" > /dev/null 2> "$tmp/log"
check "[ $? -eq 0 ]" "reference run failed: $(tail -n 1 "$tmp/log")"
check "cmp -s '$run/checkpoint.safetensors' '$tmp/ref/checkpoint.safetensors'" \
  "the killed and resumed run differs from an uninterrupted one at step $stop"
check "cmp -s '$run/model.safetensors' '$tmp/ref/model.safetensors'" "model files differ at step $stop"

# ------------------------------------------------------------ full disk
# One error line, exit 1, the previous checkpoint intact and loadable, no
# temporary file left.
good=$tmp/ref
ck=$(wc -c < "$good/checkpoint.safetensors"); md=$(wc -c < "$good/model.safetensors")
full=$tmp/full
mkdir -p "$full"
# Room for one checkpoint, the model and the small files, not for a second
# checkpoint written beside the first.
size=$(( (ck + md + ck / 2 + 65536) / 4096 * 4096 ))
if mount -t tmpfs -o size=$size tmpfs "$full" 2>/dev/null; then
  mnt=$full
  "${train[@]}" --stop-at 20 --out "$full/run" > /dev/null 2> "$tmp/log"; rc=$?
  fullmsg=$(tail -n 1 "$tmp/log")
  errs=$(grep -c '^retnet' "$tmp/log")
  check "[ $rc -eq 1 ] && [ $errs -eq 1 ] && tail -n 1 '$tmp/log' | grep -q '^retnet: error: .*No space left on device'" \
    "full disk: exit $rc, $errs error lines: $(tail -n 2 "$tmp/log")"
  check "! ls '$full/run' | grep -q '\.tmp\.'" "full disk: a temporary file was left: $(ls "$full/run")"
  cp -r "$full/run" "$tmp/fullcopy"
  umount "$full"; mnt=""
  "${train[@]}" --resume --stop-at 3 --out "$tmp/fullcopy" > /dev/null 2> "$tmp/log"
  check "[ $? -eq 0 ] && grep -q 'resumed .* at step 1$' '$tmp/log'" \
    "full disk: the previous checkpoint does not resume: $(tail -n 2 "$tmp/log")"
  echo "  full disk: $fullmsg"
else
  echo "  full disk: SKIPPED (mounting a tmpfs is not permitted here)"
fi

# ------------------------------------------------- corrupted checkpoints
# refused CASE: --resume fails with exit 1 and exactly one line.
refused() {
  local what=$1
  rm -rf "$tmp/c"; mkdir "$tmp/c"; cp "$tmp/bad.safetensors" "$tmp/c/checkpoint.safetensors"
  "${train[@]}" --resume --out "$tmp/c" > /dev/null 2> "$tmp/log"; local rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l < "$tmp/log")" -eq 1 ] && grep -q '^retnet: error: cannot resume: ' "$tmp/log"; then
    ok
  else
    bad "$what: exit $rc: $(head -c 300 "$tmp/log")"
  fi
}
src=$good/checkpoint.safetensors
hlen=$(od -A n -t u8 -N 8 "$src" | tr -d ' ')
for n in 0 7 8 100 $((hlen + 8)) $((ck / 2)) $((ck - 1)); do
  head -c $n "$src" > "$tmp/bad.safetensors"; refused "truncated to $n bytes"
done
grep -q 'truncated' "$tmp/log" || bad "the truncation message does not say so: $(cat "$tmp/log")"
# Bit flips: in the length, all over the header, and in the data.
flip() {  # flip FILE OFFSET BIT
  local b; b=$(od -A n -t u1 -j "$2" -N 1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ (1 << $3))))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
nflip=0
for off in 0 3 7 $(seq 8 $(( (hlen + 8) / 24 )) $((hlen + 7))) $(for i in $(seq 1 12); do echo $((hlen + 8 + (RANDOM * 32768 + RANDOM) % (ck - hlen - 8))); done); do
  [ "$off" -lt "$ck" ] || continue
  cp "$src" "$tmp/bad.safetensors"
  flip "$tmp/bad.safetensors" "$off" $((RANDOM % 8))
  # a flip in the header's padding (spaces after the JSON) changes nothing
  if [ "$off" -ge 8 ] && [ "$off" -lt $((hlen + 8)) ] && [ "$(tail -c +$((off + 1)) "$src" | head -c 1)" = " " ] &&
     [ -z "$(head -c $((hlen + 8)) "$src" | tail -c +$((off + 1)) | tr -d ' ')" ]; then continue; fi
  refused "bit flipped at byte $off"
  nflip=$((nflip + 1))
done
echo "  corrupted checkpoints: 7 truncations and $nflip bit flips refused, e.g. $(cat "$tmp/log")"

# ------------------------------------------------- stale temporary files
# A writer killed mid-write leaves FILE.tmp.PID; the next successful write
# of FILE removes those whose process is gone and that have not changed for
# a minute, and nothing else.
st=$tmp/stale; mkdir -p "$st"
sleep 0 & dead=$!; wait $dead
for f in "model.safetensors.tmp.$dead" "model.safetensors.tmp.$$" "model.safetensors.tmp.x1" "other.safetensors.tmp.$dead"; do
  echo partial > "$st/$f"; touch -d '1 hour ago' "$st/$f"
done
echo partial > "$st/model.safetensors.tmp.$((dead + 1))"   # recent: perhaps still being written
(cd "$st" && "$OLDPWD/$R" init --preset torchscale --dim 32 --layers 1 --heads 2 --vocab 16 --out model.safetensors > /dev/null 2>&1)
check "[ -e '$st/model.safetensors' ] && [ ! -e '$st/model.safetensors.tmp.$dead' ]" "a dead writer's old temporary file was not removed"
check "[ -e '$st/model.safetensors.tmp.$$' ]" "a live process's temporary file was removed"
check "[ -e '$st/model.safetensors.tmp.$((dead + 1))' ]" "a recent temporary file was removed"
check "[ -e '$st/model.safetensors.tmp.x1' ] && [ -e '$st/other.safetensors.tmp.$dead' ]" "files that are not this file's temporaries were removed"

finish
