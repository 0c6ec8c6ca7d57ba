#!/usr/bin/env bash
# `retnet tokenizer train` against the reference, Hugging Face's
# `tokenizers` (Rust, Node binding, pinned in tests/node/package.json):
#   - the merges we learn are the library's own BpeTrainer's on the same
#     text (tests/node/train.js; the binding offers only its default
#     trainer, vocabulary 30,000 with the characters seen as alphabet, so
#     ours, trained to 30,000 with its larger alphabet, must be a prefix of
#     its merges: the same order of the same pairs. Our alphabet keeps the
#     relative order of its ids, except where a merge makes a token that is
#     one of sentencepiece-bpe's own (<s>, <0x41>: then it has that small
#     id, as upstream's trainer given them as special tokens would): texts
#     that write those are left out of that comparison);
#   - the files we write load in the library and encode and decode every
#     text of the test corpus exactly as we do;
#   - random bytes come back from the byte-level tokenizer's pieces;
#   - `retnet train --tokenizer` trains on it and stores it beside the
#     model, where generate finds it;
#   - bad input: one line, non-zero exit.
# Trains on data/brown.txt when fetched, else on the test corpus.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
. tests/cli/lib.bash
cli_start
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "FAIL: node and npm are needed (scripts/setup.sh test)" >&2; echo "0 passed, 1 failed"; exit 1
fi
N=tests/node
if [ ! -d $N/node_modules/tokenizers ]; then
  (cd $N && npm ci --silent --no-audit --no-fund >/dev/null 2>"$tmp/npm.err") ||
    { echo "FAIL: npm ci in $N: $(head -c 300 "$tmp/npm.err")" >&2; echo "0 passed, 1 failed"; exit 1; }
fi
corpus=(tests/data/tokenizer_corpus/*)
if [ -s data/brown.txt ]; then train=(data/brown.txt); else train=("${corpus[@]}"); fi
plain=()
for f in "${train[@]}"; do grep -qE '<s>|</s>|<unk>|<0x' "$f" || plain+=("$f"); done
texts=("${corpus[@]}")
[ -s data/brown.txt ] && texts+=(data/brown.txt)

# Merges as one JSON pair per line, from a tokenizer.json.
merges() { node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1])).model.merges;
  for (const x of m) console.log(JSON.stringify(Array.isArray(x) ? x : x.split(" ")));' "$1"; }

for kind in bytelevel sentencepiece-bpe; do
  # ------------------------------------------------ the library's own trainer
  src=("${train[@]}"); [ $kind = sentencepiece-bpe ] && src=("${plain[@]}")
  if RAYON_NUM_THREADS=1 node $N/train.js $kind "$tmp/hf-$kind.json" "${src[@]}" >/dev/null 2>"$tmp/err"; then
    "$R" tokenizer train --kind $kind --data "${src[@]}" --vocab 30000 --out "$tmp/ours-$kind.json" --quiet \
      2>"$tmp/err"
    check "[ -s '$tmp/ours-$kind.json' ]" "$kind: training to 30000 failed: $(cat "$tmp/err")"
    merges "$tmp/ours-$kind.json" >"$tmp/ours.m"; merges "$tmp/hf-$kind.json" >"$tmp/hf.m"
    n=$(wc -l <"$tmp/ours.m"); nh=$(wc -l <"$tmp/hf.m")
    check "[ $n -gt 100 ] && head -n $n '$tmp/hf.m' | cmp -s - '$tmp/ours.m'" \
      "$kind: our $n merges are not the first of tokenizers' $nh: first difference at line $(cmp "$tmp/ours.m" \
      <(head -n $n "$tmp/hf.m") 2>&1 | sed -n 's/.*line \([0-9]*\).*/\1/p')"
    echo "$kind: our $n merges vs the first $n of tokenizers' BpeTrainer ($nh) on ${#src[@]} file(s) ${src[0]} ..."
  else
    bad "$kind: tokenizers' trainer: $(head -c 300 "$tmp/err")"
  fi

  # -------------------------------- what we write, encoded by both, vocab 2048
  t="$tmp/$kind.json"
  extra=(); [ $kind = bytelevel ] && extra=(--special "<|endoftext|>" "<|pad|>")
  "$R" tokenizer train --kind $kind --data "${train[@]}" --vocab 2048 "${extra[@]}" --out "$t" 2>"$tmp/err"
  check "[ \$? -eq 0 ] && grep -q '^wrote ' '$tmp/err'" "$kind: training to 2048: $(tail -n 1 "$tmp/err")"
  ref="$tmp/ref-$kind"
  if ! node $N/reference.js "$t" "$ref" "${texts[@]}" 2>"$tmp/err"; then
    bad "$kind: the library does not load our file: $(head -c 300 "$tmp/err")"; continue
  fi
  same_as_reference "$kind" "$t" "$ref" "${texts[@]}"
  echo "$kind (2048): ${same}/${#texts[@]} texts identical to tokenizers (ids, special ids, decode)"
done

# ------------------------------------------------------------- lossless bytes
t="$tmp/bytelevel.json"
for i in 1 2 3; do
  case $i in
    1) head -c 3000 /dev/urandom >"$tmp/rand" ;;
    2) head -c 3000 /dev/urandom | tr '\000-\377' 'a-z \n\t\r\342\200-\277\360\237' >"$tmp/rand" ;;
    3) printf '<|endoftext|>\xff\xfe<|pad|>\x00 x' >"$tmp/rand" ;;
  esac
  "$R" tokenize --tokenizer "$t" --file "$tmp/rand" >"$tmp/rids" 2>&1 &&
    "$R" tokenize --tokenizer "$t" --decode "@$tmp/rids" --pieces >"$tmp/back" 2>&1
  check "cmp -s '$tmp/rand' '$tmp/back'" "byte-level: random bytes $i do not come back from the pieces"
done

# ------------------------------------------------ retnet train --tokenizer T
out=$tmp/run
cat "${train[@]}" | head -c 200000 >"$tmp/small.txt"
# Its ids (2048, or fewer when a small corpus runs out of pairs).
nv=$(node -e 'const v = JSON.parse(require("fs").readFileSync(process.argv[1])).model.vocab;
  console.log(Math.max(...Object.values(v)) + 1)' "$t")
"$R" train --data "$tmp/small.txt" --tokenizer "$t" --out "$out" --steps 2 --seq 16 --batch 2 --threads 1 --quiet \
  >/dev/null 2>"$tmp/err"; rc=$?
check "[ $rc -eq 0 ] && cmp -s '$t' '$out/tokenizer.json' && [ -s '$out/tokenizer_config.json' ]" \
  "train --tokenizer: exit $rc, tokenizer.json not stored beside the model: $(tail -n 1 "$tmp/err")"
check "'$R' info --model '$out/model.safetensors' 2>&1 | grep -q '^vocab: *$nv$'" \
  "train --tokenizer: the model's vocabulary is not the tokenizer's $nv"
nt=$("$R" tokenize --tokenizer "$t" --text "The" | wc -w)
"$R" generate --model "$out/model.safetensors" --prompt "The" -n 4 --threads 1 >"$tmp/gen" 2>"$tmp/err"; rc=$?
check "[ $rc -eq 0 ] && [ $nt -lt 3 ] && grep -q 'prefill: $nt tokens' '$tmp/err'" \
  "generate did not use the stored tokenizer (\"The\" is $nt tokens): exit $rc, $(cat "$tmp/err")"
"$R" train --data "$tmp/small.txt" --tokenizer "$t" --vocab 1000 --out "$tmp/run2" --steps 1 --quiet >/dev/null \
  2>"$tmp/err"; rc=$?
check "[ $rc -eq 2 ] && grep -q 1000 '$tmp/err' && grep -q $nv '$tmp/err' && [ \$(wc -l <'$tmp/err') -eq 1 ]" \
  "train --vocab below the tokenizer's: exit $rc, $(cat "$tmp/err")"
# A later byte-level run in the same directory does not keep the old one.
"$R" train --data "$tmp/small.txt" --out "$out" --steps 1 --seq 16 --batch 2 --threads 1 --quiet >/dev/null 2>&1
check "[ ! -e '$out/tokenizer.json' ] && '$R' info --model '$out/model.safetensors' 2>&1 | grep -q '^vocab: *256$'" \
  "a byte-level run left the earlier run's tokenizer.json"

# ---------------------------------------------------------------- bad input
refused() {  # what, expected exit, needle, command...
  local what=$1 want=$2 needle=$3; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ $rc -eq "$want" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$needle" "$tmp/err"; then ok
  else bad "$what: exit $rc (want $want): $(head -c 300 "$tmp/err")"; fi
}
: >"$tmp/empty.txt"
refused "empty data" 1 "empty.txt" "$R" tokenizer train --data "$tmp/empty.txt" --vocab 300 --out "$tmp/x.json"
refused "a missing file" 1 "nope.txt" "$R" tokenizer train --data "$tmp/nope.txt" --vocab 300 --out "$tmp/x.json"
refused "a directory" 1 "$tmp" "$R" tokenizer train --data "$tmp" --vocab 300 --out "$tmp/x.json"
refused "vocab below the byte alphabet" 1 "256" "$R" tokenizer train --data "$tmp/small.txt" --vocab 200 --out "$tmp/x.json"
refused "vocab below the byte tokens" 1 "smaller than the base" \
  "$R" tokenizer train --kind sentencepiece-bpe --data "$tmp/small.txt" --vocab 300 --out "$tmp/x.json"
refused "an unknown kind" 2 "--kind" "$R" tokenizer train --kind wordpiece --data "$tmp/small.txt" --vocab 300 --out "$tmp/x.json"
refused "no --data" 2 "--data" "$R" tokenizer train --vocab 300 --out "$tmp/x.json"
refused "--data without a file" 2 "--data" "$R" tokenizer train --data --vocab 300 --out "$tmp/x.json"
refused "no --vocab" 2 "--vocab" "$R" tokenizer train --data "$tmp/small.txt" --out "$tmp/x.json"
refused "no subcommand" 2 "train" "$R" tokenizer
check "[ ! -e '$tmp/x.json' ]" "a refused training wrote its output"
"$R" tokenizer train --help >"$tmp/help" 2>&1
check "[ \$? -eq 0 ] && grep -q -- '--special' '$tmp/help' && grep -q -- '--min-frequency' '$tmp/help'" "tokenizer train --help"

finish
