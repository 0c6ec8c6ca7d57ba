#!/usr/bin/env bash
# `retnet serve` (README "Serving"): every endpoint and error path with
# curl, greedy output equal to `retnet generate --temperature 0` (alone,
# from the prefix cache, and with concurrent requests), well-formed SSE,
# stop strings across token boundaries, a disconnect freeing its slot, 503
# on a full queue, and the official openai npm client. Responses are
# strict UTF-8 JSON. Servers listen on
# 127.0.0.1 on a port the kernel picks (--port 0) and are always stopped;
# every curl has a timeout.
set -u
cd "$(dirname "$0")/../.."
R=${RETNET:-build/retnet}
. tests/cli/lib.bash
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
if [ ! -x "$R" ]; then echo "FAIL: $R not built (make tests)" >&2; echo "0 passed, 1 failed"; exit 1; fi
CK="python3 tests/cli/serve_check.py"
KEY=test-key-123

m=$tmp/m.safetensors
$R init --vocab 256 --seed 5 --out "$m" >/dev/null 2>"$tmp/err"
check "[ $? -eq 0 ]" "init: $(cat "$tmp/err")"

# start_server NAME ARGS...: sets PORT; the server's stdout/stderr in $tmp/NAME.{out,err}
start_server() {
    local name=$1; shift
    : >"$tmp/$name.out"  # before the server starts: the loop below reads it at once
    $R serve --model "$m" --port 0 --threads 1 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids+=($!)
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/$name.out")
        # listening comes before loading: /health is 503 until the model is in
        [ -n "$PORT" ] && grep -q '^retnet serve: ready' "$tmp/$name.err" && return 0
        sleep 0.1
    done
    echo "FAIL: server $name did not start: $(cat "$tmp/$name.err")" >&2
    return 1
}

start_server main --slots 4 --queue 16 --chunk 32 --cache-mb 16 --max-tokens 4096 --api-key "$KEY"
check "[ -n '$PORT' ]" "server did not start"
U=http://127.0.0.1:$PORT
# req NAME METHOD PATH [BODY]: body in $tmp/NAME, prints the status
req() {
    local name=$1 method=$2 path=$3
    if [ $# -ge 4 ]; then
        curl -s -m 30 -o "$tmp/$name" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $KEY" \
            -H 'Content-Type: application/json' --data-binary "$4" "$U$path"
    else
        curl -s -m 30 -o "$tmp/$name" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $KEY" "$U$path"
    fi
}
errshape() { python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["type"] and e["message"]; assert sys.argv[2] in e["message"], e' "$tmp/$1" "$2" 2>/dev/null; }

# ---------------------------------------------------------------- endpoints
s=$(curl -s -m 10 -o "$tmp/h" -w '%{http_code}' "$U/health")
check "[ '$s' = 200 ] && grep -q '\"status\":\"ok\"' '$tmp/h'" "/health without a key: $s $(cat "$tmp/h")"
s=$(req models GET /v1/models)
check "[ '$s' = 200 ] && grep -q '\"object\":\"list\"' '$tmp/models' && grep -q '\"chat_template\":\"plain\",\"chat_template_source\":\"default\"' '$tmp/models' && grep -q '\"slots\":4' '$tmp/models'" "/v1/models: $s $(cat "$tmp/models")"
s=$(req tok POST /tokenize '{"content":"Hi!"}')
check "[ '$s' = 200 ] && grep -q '\"tokens\":\[72,105,33\]' '$tmp/tok'" "/tokenize: $s $(cat "$tmp/tok")"
s=$(req detok POST /detokenize '{"tokens":[72,105,33]}')
check "[ '$s' = 200 ] && grep -q '\"content\":\"Hi!\"' '$tmp/detok'" "/detokenize: $s $(cat "$tmp/detok")"

# Greedy completion equals `retnet generate --temperature 0` (same chunk).
P="The quick brown fox"
$R generate --model "$m" --prompt "$P" --n 24 --temperature 0 --chunk 32 --threads 1 >"$tmp/gen" 2>/dev/null
s=$(req c1 POST /v1/completions "{\"model\":\"m\",\"prompt\":\"$P\",\"max_tokens\":24,\"temperature\":0,\"user\":\"u\"}")
check "[ '$s' = 200 ] && $CK same '$tmp/c1' '$tmp/gen' '$P'" "greedy completion differs from generate ($s)"
check "python3 -c 'import json,sys; o=json.loads(open(sys.argv[1],\"rb\").read().decode(\"utf-8\")); u=o[\"usage\"]; assert o[\"object\"]==\"text_completion\" and u[\"prompt_tokens\"]==19 and u[\"completion_tokens\"]==24 and u[\"total_tokens\"]==43 and o[\"choices\"][0][\"finish_reason\"]==\"length\"' '$tmp/c1'" "completion shape/usage: $(head -c 400 "$tmp/c1")"
# a token-array prompt gives the same
ids=$(python3 -c "print(','.join(str(c) for c in b'$P'))")
s=$(req c2 POST /v1/completions "{\"prompt\":[$ids],\"max_tokens\":24,\"temperature\":0}")
check "[ '$s' = 200 ] && $CK same '$tmp/c2' '$tmp/gen' '$P'" "token-array prompt differs from generate ($s)"
# echo prepends the prompt
s=$(req c3 POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":3,\"temperature\":0,\"echo\":true}")
check "[ '$s' = 200 ] && $CK text '$tmp/c3' | head -c ${#P} | grep -q '^$P\$'" "echo: $(head -c 300 "$tmp/c3")"

# echo with logprobs scores the prompt (max_tokens 0: the prompt only), as
# lm-evaluation-harness asks: entry i is the first token's of the prompt's
# first i tokens; streamed the same.
s=$(req el POST /v1/completions "{\"prompt\":[$ids],\"max_tokens\":0,\"echo\":true,\"logprobs\":3}")
np=$(echo "$ids" | tr ',' '\n' | wc -l)
pre=()
for i in 1 5 $((np - 1)); do
    req "el$i" POST /v1/completions "{\"prompt\":[$(echo "$ids" | cut -d, -f1-$i)],\"max_tokens\":1,\"temperature\":0,\"logprobs\":3}" >/dev/null
    pre+=("$i=$tmp/el$i")
done
check "[ '$s' = 200 ] && $CK echolp '$tmp/el' 3 $np ${pre[*]}" "echo with logprobs, max_tokens 0 ($s): $(head -c 400 "$tmp/el")"
s=$(req el2 POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":4,\"temperature\":0,\"echo\":true,\"logprobs\":3}")
check "[ '$s' = 200 ] && $CK echolp '$tmp/el2' 3 $np ${pre[*]}" "echo with logprobs and tokens ($s): $(head -c 400 "$tmp/el2")"
curl -s -N -m 30 -H "Authorization: Bearer $KEY" "$U/v1/completions" \
    -d "{\"prompt\":\"$P\",\"max_tokens\":4,\"temperature\":0,\"echo\":true,\"logprobs\":3,\"stream\":true}" >"$tmp/el2s"
check "$CK ssen '$tmp/el2s' '$tmp/el2'" "streamed echo with logprobs: $(head -c 300 "$tmp/el2s")"

# An array of prompts: one job each, choices numbered prompt by prompt,
# each as its own request gives it; streamed the same.
MP="{\"prompt\":[\"$P\",[$ids],\"Hello\"],\"max_tokens\":8,\"temperature\":0,\"n\":2"
s=$(req mp POST /v1/completions "$MP}")
req mp0 POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":8,\"temperature\":0}" >/dev/null
req mp2 POST /v1/completions "{\"prompt\":\"Hello\",\"max_tokens\":8,\"temperature\":0}" >/dev/null
check "[ '$s' = 200 ] && $CK prompts '$tmp/mp' 2 '$tmp/mp0' '$tmp/mp0' '$tmp/mp2'" "array of prompts ($s): $(head -c 400 "$tmp/mp")"
curl -s -N -m 30 -H "Authorization: Bearer $KEY" "$U/v1/completions" -d "$MP,\"stream\":true}" >"$tmp/mps"
check "$CK ssen '$tmp/mps' '$tmp/mp'" "streamed array of prompts: $(head -c 300 "$tmp/mps")"

# A prompt of several chunks: a miss, then a hit from the prefix cache; both equal generate.
LP=$(python3 -c "print(('system: You are a helpful assistant. ' * 6) + 'user: hello')")
$R generate --model "$m" --prompt "$LP" --n 16 --temperature 0 --chunk 32 --threads 1 >"$tmp/genl" 2>/dev/null
s1=$(req l1 POST /v1/completions "{\"prompt\":\"$LP\",\"max_tokens\":16,\"temperature\":0}")
s2=$(req l2 POST /v1/completions "{\"prompt\":\"$LP\",\"max_tokens\":16,\"temperature\":0}")
check "[ '$s1' = 200 ] && $CK same '$tmp/l1' '$tmp/genl' \"\$LP\"" "long prompt (miss) differs from generate"
check "[ '$s2' = 200 ] && $CK same '$tmp/l2' '$tmp/genl' \"\$LP\"" "long prompt (cache hit) differs from generate"
check "grep -q '\"cached_tokens\":[1-9]' '$tmp/l2'" "second long prompt took nothing from the cache: $(grep -o 'usage.*' "$tmp/l2")"
# the same prompt again: its whole state and last logits come from the cache
check "python3 -c 'import json,sys; u=json.load(open(sys.argv[1]))[\"usage\"]; assert u[\"prompt_tokens_details\"][\"cached_tokens\"]==u[\"prompt_tokens\"]' '$tmp/l2'" "the repeated prompt was not taken whole from the cache: $(grep -o 'usage.*' "$tmp/l2")"
req met GET /metrics >/dev/null
check "grep -q '^retnet_cache_hits_total [1-9]' '$tmp/met' && grep -q '^retnet_cache_bytes [1-9]' '$tmp/met'" "metrics: no cache hit: $(grep cache "$tmp/met")"

# Stop strings (two bytes: always across token boundaries) are cut and not sent.
req full POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":64,\"temperature\":0}" >/dev/null
stop=$($CK stop "$tmp/full")
if [ -n "$stop" ]; then
    s=$(req cut POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":64,\"temperature\":0,\"stop\":[\"zzzz\",\"$stop\"]}")
    check "[ '$s' = 200 ] && $CK cut '$tmp/cut' '$stop' '$tmp/full'" "stop string '$stop'"
    curl -s -N -m 30 -H "Authorization: Bearer $KEY" "$U/v1/completions" \
        -d "{\"prompt\":\"$P\",\"max_tokens\":64,\"temperature\":0,\"stop\":\"$stop\",\"stream\":true}" >"$tmp/cuts"
    $CK text "$tmp/cut" >"$tmp/cut.txt"
    check "$CK sse '$tmp/cuts' '$tmp/cut.txt'" "streamed stop string '$stop'"
else
    ok
    ok
fi

# Streaming: well-formed SSE whose text is the non-streamed text.
curl -s -N -m 30 -H "Authorization: Bearer $KEY" "$U/v1/completions" \
    -d "{\"prompt\":\"$P\",\"max_tokens\":24,\"temperature\":0,\"stream\":true}" >"$tmp/s1"
$CK text "$tmp/c1" >"$tmp/c1.txt"
check "$CK sse '$tmp/s1' '$tmp/c1.txt'" "completion stream"
CHAT='{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"max_tokens":12,"temperature":0'
s=$(req ch POST /v1/chat/completions "$CHAT}")
check "[ '$s' = 200 ] && grep -q '\"object\":\"chat.completion\"' '$tmp/ch' && grep -q '\"role\":\"assistant\"' '$tmp/ch'" "chat: $s $(head -c 300 "$tmp/ch")"
# the plain template: the same as a completion of the rendered prompt (with the template's stop)
CP='system: Be brief.\nuser: Hello\nassistant:'
s=$(req chp POST /v1/completions "{\"prompt\":\"$CP\",\"max_tokens\":12,\"temperature\":0,\"stop\":\"\\nuser:\"}")
check "[ \"\$($CK text '$tmp/ch' | od -An -tx1)\" = \"\$($CK text '$tmp/chp' | od -An -tx1)\" ]" "chat is not the plain template's completion"
curl -s -N -m 30 -H "Authorization: Bearer $KEY" "$U/v1/chat/completions" -d "$CHAT,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" >"$tmp/chs"
$CK text "$tmp/ch" >"$tmp/ch.txt"
check "$CK sse '$tmp/chs' '$tmp/ch.txt' && grep -q '\"role\":\"assistant\"' '$tmp/chs' && grep -q '\"usage\"' '$tmp/chs'" "chat stream: $(head -c 300 "$tmp/chs")"

# ------------------------------------------------------------- logprobs, n
# Greedy: each token's logprob is the top one; chat's entries spell its text;
# the chat and the completion of its rendered prompt have the same logprobs.
s=$(req lp POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0,\"logprobs\":3}")
check "[ '$s' = 200 ] && $CK logprobs '$tmp/lp' 3" "completion logprobs: $s $(head -c 300 "$tmp/lp")"
s=$(req chlp POST /v1/chat/completions "$CHAT,\"logprobs\":true,\"top_logprobs\":2}")
check "[ '$s' = 200 ] && $CK chatlogprobs '$tmp/chlp' 2" "chat logprobs: $s $(head -c 300 "$tmp/chlp")"
s=$(req chplp POST /v1/completions "{\"prompt\":\"$CP\",\"max_tokens\":12,\"temperature\":0,\"stop\":\"\\nuser:\",\"logprobs\":2}")
check "[ '$s' = 200 ] && $CK lpsame '$tmp/chlp' '$tmp/chplp'" "chat and completion logprobs differ"
# n choices, each its own stream from the shared prompt state: choice 0 is
# the request with n = 1 (same seed), the others draw differently.
s=$(req n3 POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":16,\"temperature\":1,\"seed\":7,\"n\":3}")
req n1 POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":16,\"temperature\":1,\"seed\":7}" >/dev/null
check "[ '$s' = 200 ] && $CK choices '$tmp/n3' 3 16" "n = 3: $s $(head -c 300 "$tmp/n3")"
check "python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))[\"choices\"]; b=json.load(open(sys.argv[2]))[\"choices\"]; assert a[0][\"text\"]==b[0][\"text\"] and (a[1][\"text\"]!=a[0][\"text\"] or a[2][\"text\"]!=a[0][\"text\"])' '$tmp/n3' '$tmp/n1'" "n = 3: choice 0 is not the n = 1 request, or all choices are the same"
# streamed: several choices interleaved, each with its text, logprobs and finish
B2="{\"prompt\":\"$P\",\"max_tokens\":10,\"temperature\":0,\"n\":2,\"logprobs\":2"
req n2 POST /v1/completions "$B2}" >/dev/null
curl -s -N -m 30 -H "Authorization: Bearer $KEY" "$U/v1/completions" -d "$B2,\"stream\":true}" >"$tmp/n2s"
check "$CK ssen '$tmp/n2s' '$tmp/n2'" "streamed n = 2 with logprobs"
curl -s -N -m 30 -H "Authorization: Bearer $KEY" "$U/v1/chat/completions" -d "$CHAT,\"n\":2,\"stream\":true}" >"$tmp/chn2s"
req chn2 POST /v1/chat/completions "$CHAT,\"n\":2}" >/dev/null
check "$CK ssen '$tmp/chn2s' '$tmp/chn2'" "streamed chat n = 2"

# ----------------------------------------------------- continuous batching
# Six prompts of different lengths sent at once (more than the 4 slots):
# each joins the batch with the others at other positions, yet each equals
# `retnet generate --temperature 0` alone; the batched steps advanced more
# than one stream on average.
req met GET /metrics >/dev/null
st0=$(sed -n 's/^retnet_batch_steps_total //p' "$tmp/met"); ro0=$(sed -n 's/^retnet_batch_rows_total //p' "$tmp/met")
bodies=()
for i in $(seq 6); do
    BP[$i]="Batch $i $(printf 'ab%.0s' $(seq $((i * 7))))"
    $R generate --model "$m" --prompt "${BP[$i]}" --n 100 --temperature 0 --chunk 32 --threads 1 >"$tmp/bgen$i" 2>/dev/null
    bodies+=("{\"prompt\":\"${BP[$i]}\",\"max_tokens\":100,\"temperature\":0}")
done
$CK conc "$U/v1/completions" "$KEY" "$tmp/b" "${bodies[@]}"
good=0
for i in $(seq 6); do $CK same "$tmp/b$i" "$tmp/bgen$i" "${BP[$i]}" && good=$((good + 1)); done
check "[ $good = 6 ]" "batched at different positions: $good of 6 equal generate alone"
req met GET /metrics >/dev/null
st1=$(sed -n 's/^retnet_batch_steps_total //p' "$tmp/met"); ro1=$(sed -n 's/^retnet_batch_rows_total //p' "$tmp/met")
check "[ $(( (ro1 - ro0) * 10 )) -gt $(( (st1 - st0) * 15 )) ]" "batching: $((ro1 - ro0)) rows in $((st1 - st0)) steps (mean batch <= 1.5)"
echo "batching: 6 requests at once, $((ro1 - ro0)) rows in $((st1 - st0)) batched steps" >&2

# ------------------------------------------------------------------ errors
s=$(curl -s -m 10 -o "$tmp/e" -w '%{http_code}' "$U/v1/models")
check "[ '$s' = 401 ] && errshape e 'API key'" "no key: $s"
s=$(curl -s -m 10 -o "$tmp/e" -w '%{http_code}' -H 'Authorization: Bearer wrong-key-123' "$U/v1/completions" -d '{}')
check "[ '$s' = 401 ]" "wrong key: $s"
s=$(req e GET /nope); check "[ '$s' = 404 ] && errshape e 'unknown'" "unknown path: $s"
s=$(req e GET /v1/completions); check "[ '$s' = 405 ] && errshape e 'POST'" "wrong method: $s"
s=$(req e POST /health); check "[ '$s' = 405 ]" "POST /health: $s"
s=$(req e POST /v1/completions '{"prompt": "x",'); check "[ '$s' = 400 ] && errshape e 'JSON'" "malformed JSON: $s"
s=$(req e POST /v1/completions '[1,2]'); check "[ '$s' = 400 ]" "array body: $s"
s=$(req e POST /v1/completions '{"max_tokens":4}'); check "[ '$s' = 400 ] && errshape e prompt" "no prompt: $s"
for bad in '"max_tokens":"8"' '"max_tokens":-1' '"max_tokens":1e12' '"max_tokens":2.5' '"temperature":-1' \
           '"temperature":"hot"' '"top_p":0' '"top_p":1.5' '"top_k":-3' '"seed":-1' '"n":99' '"n":0' '"stream":"yes"' \
           '"stop":5' '"stop":["a","b","c","d","e"]' '"echo":1' '"logprobs":50' '"logprobs":true' '"prompt":[1,999999]' '"prompt":[]' \
           '"prompt":[["a"]]' '"prompt":["a",7]' '"model":3' '"user":{}'; do
    field=$(echo "$bad" | sed 's/^"\([a-z_]*\)".*/\1/')
    body="{\"prompt\":\"x\",$bad}"; [ "$field" = prompt ] && body="{$bad}"
    s=$(req e POST /v1/completions "$body")
    check "[ '$s' = 400 ] && errshape e '$field'" "{$bad}: $s $(cat "$tmp/e")"
done
for bad in '"messages":[]' '"messages":"hi"' '"messages":[{"content":"x"}]' '"messages":[{"role":"user","content":5}]'; do
    s=$(req e POST /v1/chat/completions "{$bad}")
    check "[ '$s' = 400 ] && errshape e messages" "chat {$bad}: $s $(cat "$tmp/e")"
done
for bad in '"top_logprobs":2' '"logprobs":true,"top_logprobs":21' '"logprobs":3'; do
    field=$(echo "$bad" | sed 's/.*"\([a-z_]*\)":[^"]*$/\1/')
    s=$(req e POST /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],$bad}")
    check "[ '$s' = 400 ] && errshape e '$field'" "chat {$bad}: $s $(cat "$tmp/e")"
done
s=$(req e POST /tokenize '{"content":5}'); check "[ '$s' = 400 ]" "tokenize wrong type: $s"
s=$(req e POST /detokenize '{"tokens":[1,300]}'); check "[ '$s' = 400 ]" "detokenize out of range: $s"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$tmp/big"
s=$(curl -s -m 10 -o "$tmp/e" -w '%{http_code}' -H "Authorization: Bearer $KEY" --data-binary @"$tmp/big" "$U/v1/completions")
check "[ '$s' = 413 ]" "body over 1 MiB: $s"
# max_tokens over --max-tokens is clamped
s=$(req e POST /v1/completions '{"prompt":"x","max_tokens":5000,"temperature":0}')
check "[ '$s' = 200 ] && grep -q '\"completion_tokens\":4096' '$tmp/e'" "max_tokens not clamped: $s $(grep -o 'usage.*' "$tmp/e")"
s=$(curl -s -m 10 -o "$tmp/h" -w '%{http_code}' "$U/health"); check "[ '$s' = 200 ]" "server not alive after the errors"

# ------------------------------------------------------------- concurrency
# 12 requests on 4 slots: all complete, each equal to the request alone.
cp_pids=()
for i in $(seq 12); do
    curl -s -m 60 -o "$tmp/p$i" -w '%{http_code}' -H "Authorization: Bearer $KEY" "$U/v1/completions" \
        -d "{\"prompt\":\"$P\",\"max_tokens\":24,\"temperature\":0$([ $((i % 2)) = 0 ] && echo ',"stream":true')}" >"$tmp/p$i.code" &
    cp_pids+=($!)
done
for p in "${cp_pids[@]}"; do wait "$p"; done
good=0
for i in $(seq 12); do
    if [ $((i % 2)) = 0 ]; then $CK sse "$tmp/p$i" "$tmp/c1.txt" && good=$((good + 1))
    else [ "$(cat "$tmp/p$i.code")" = 200 ] && $CK same "$tmp/p$i" "$tmp/gen" "$P" && good=$((good + 1)); fi
done
check "[ $good = 12 ]" "concurrent requests: $good of 12 complete and equal to the request alone"

# A client that disconnects frees its slot.
curl -s -N -m 1 -H "Authorization: Bearer $KEY" "$U/v1/completions" -d '{"prompt":"x","max_tokens":4000,"stream":true}' >/dev/null 2>&1
freed=0
for _ in $(seq 50); do
    req met GET /metrics >/dev/null
    grep -q '^retnet_slots_busy 0' "$tmp/met" && { freed=1; break; }
    sleep 0.1
done
check "[ $freed = 1 ]" "a disconnected stream kept its slot: $(grep busy "$tmp/met")"

# ------------------------------------------------------ the openai client
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    if [ ! -d tests/serve_node/node_modules/openai ]; then
        (cd tests/serve_node && timeout 300 npm ci --silent --no-audit --no-fund >/dev/null 2>&1)
    fi
    if [ -d tests/serve_node/node_modules/openai ]; then
        timeout 60 node tests/serve_node/client.mjs "$U/v1" "$KEY" >"$tmp/node" 2>&1
        check "[ $? -eq 0 ]" "openai client: $(grep -v '^ok' "$tmp/node")"
        check "[ \$(grep -c '^ok' '$tmp/node') -ge 10 ]" "openai client checks: $(cat "$tmp/node")"
    else
        bad "npm ci in tests/serve_node failed (no registry?)"
    fi
else
    echo "skip: node/npm not installed (the openai client checks)" >&2
fi

# ------------------------------------------------------------------ load
# 1,200 requests, 8 at a time, a third streamed: every one a 200 with all its
# tokens (the generated-token counter), and the server's RSS flat over the
# last 1,000 (no leak).
export K=$KEY URL=$U
load() {
    seq "$1" | xargs -P 8 -n 1 bash -c 's=false; [ $(($1 % 3)) = 0 ] && s=true
        curl -s -m 30 -o /dev/null -w "%{http_code}\n" -H "Authorization: Bearer $K" "$URL/v1/completions" \
            -d "{\"prompt\":\"request $1\",\"max_tokens\":8,\"temperature\":0.7,\"stream\":$s}"' _ >"$tmp/load.codes"
    grep -c '^200$' "$tmp/load.codes"
}
gen_total() { req met GET /metrics >/dev/null; sed -n 's/^retnet_generated_tokens_total //p' "$tmp/met"; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/${pids[0]}/status"; }
n=$(load 200)
check "[ '$n' = 200 ]" "load warm-up: $n of 200 answered 200 ($(sort "$tmp/load.codes" | uniq -c | tr '\n' ' '))"
r1=$(rss); g1=$(gen_total)
t0=$(date +%s%N)
n=$(load 1000)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
r2=$(rss); g2=$(gen_total)
check "[ '$n' = 1000 ]" "load: $n of 1000 answered 200 ($(sort "$tmp/load.codes" | uniq -c | tr '\n' ' '))"
check "[ $((g2 - g1)) = 8000 ]" "load: $((g2 - g1)) tokens generated for 1000 requests of 8"
# (under AddressSanitizer its quarantine holds freed memory: LeakSanitizer at
# the server's exit, checked below through its exit status, is the leak check)
if ldd "$R" 2>/dev/null | grep -q libasan; then ok; else
    check "[ $((r2 - r1)) -lt 8192 ]" "load: RSS grew from $r1 kB to $r2 kB over 1000 requests"
fi
echo "load: 1000 requests (8 concurrent, 8 tokens each) in $ms ms; RSS $r1 kB -> $r2 kB" >&2

# metrics, then a clean stop
req met GET /metrics >/dev/null
for name in retnet_requests_total retnet_prompt_tokens_total retnet_generated_tokens_total retnet_slots_busy \
            retnet_queue_length retnet_cache_misses_total; do
    check "grep -q '^$name' '$tmp/met'" "metrics: no $name"
done
check "grep -q 'retnet_requests_total{status=\"400\"} [1-9]' '$tmp/met'" "metrics: 400s not counted"
kill "${pids[0]}"; wait "${pids[0]}"; rc=$?
check "[ $rc = 0 ]" "server exit status $rc on SIGTERM: $(tail -3 "$tmp/main.err")"

# ------------------------------------------------------------- full queue
# One slot, a queue of one: a third concurrent request gets 503.
start_server small --slots 1 --queue 1 --max-tokens 100000 --timeout 1 --chat-template chatml
U=http://127.0.0.1:$PORT
# A client that sends half a request and waits (slowloris) is cut off by --timeout.
t0=$(date +%s%N)
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /health HTTP/1.1\r\nHost: x\r\n' >&3
timeout 10 cat <&3 >/dev/null
exec 3<&-
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "[ $ms -lt 5000 ]" "an idle half-sent request held its connection for $ms ms (--timeout 1)"
curl -s -N -m 4 "$U/v1/completions" -d '{"prompt":"x","max_tokens":100000,"stream":true}' >/dev/null 2>&1 &
b1=$!
sleep 0.5
curl -s -N -m 4 "$U/v1/completions" -d '{"prompt":"x","max_tokens":100000,"stream":true}' >/dev/null 2>&1 &
b2=$!
sleep 0.5
s=$(curl -s -m 10 -o "$tmp/e" -w '%{http_code}' "$U/v1/completions" -d '{"prompt":"x","max_tokens":2}')
check "[ '$s' = 503 ] && errshape e busy" "full queue: $s $(cat "$tmp/e")"
wait $b1 $b2
s=$(curl -s -m 20 -o "$tmp/e" -w '%{http_code}' "$U/v1/completions" -d '{"prompt":"x","max_tokens":2}')
check "[ '$s' = 200 ]" "after the queue drained: $s"
# --chat-template chatml: a chat is the completion of the rendered prompt, up to <|im_end|>.
curl -s -m 10 -o "$tmp/models2" "$U/v1/models"
check "grep -q '\"chat_template\":\"chatml\"' '$tmp/models2'" "/v1/models: $(cat "$tmp/models2")"
curl -s -m 30 -o "$tmp/cm" "$U/v1/chat/completions" -d "$CHAT}"
curl -s -m 30 -o "$tmp/cmp" "$U/v1/completions" -d '{"prompt":"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n","max_tokens":12,"temperature":0,"stop":"<|im_end|>"}'
check "[ -s '$tmp/cm' ] && [ \"\$($CK text '$tmp/cm' | od -An -tx1)\" = \"\$($CK text '$tmp/cmp' | od -An -tx1)\" ]" "chatml chat is not the template's completion: $(head -c 200 "$tmp/cm")"
# A non-streamed request whose client goes away is cancelled too.
curl -s -m 1 "$U/v1/completions" -d '{"prompt":"x","max_tokens":100000}' >/dev/null 2>&1
freed=0
for _ in $(seq 30); do
    curl -s -m 5 -o "$tmp/met" "$U/metrics"
    grep -q '^retnet_slots_busy 0' "$tmp/met" && { freed=1; break; }
    sleep 0.1
done
check "[ $freed = 1 ]" "a disconnected non-streamed request kept its slot: $(grep busy "$tmp/met")"
kill "${pids[1]}"; wait "${pids[1]}"

# ----------------------------------------------------------- chat templates
# tokenizer_config.json beside the model names the template: a known one
# (chatml, by its markers) is used; an unknown one falls back to plain, said
# on stderr; --chat-template overrides it.
mkdir -p "$tmp/tc"
cp "$m" "$tmp/tc/m.safetensors"
m0=$m; m=$tmp/tc/m.safetensors
cat >"$tmp/tc/tokenizer_config.json" <<'EOF2'
{"chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"}
EOF2
start_server tc
U=http://127.0.0.1:$PORT
curl -s -m 10 -o "$tmp/models3" "$U/v1/models"
check "grep -q '\"chat_template\":\"chatml\",\"chat_template_source\":\"tokenizer_config.json\"' '$tmp/models3'" "tokenizer_config.json chatml: $(cat "$tmp/models3")"
curl -s -m 30 -o "$tmp/cm3" "$U/v1/chat/completions" -d "$CHAT}"
check "[ -s '$tmp/cm3' ] && [ \"\$($CK text '$tmp/cm3' | od -An -tx1)\" = \"\$($CK text '$tmp/cmp' | od -An -tx1)\" ]" "the config's chatml is not --chat-template chatml: $(head -c 200 "$tmp/cm3")"
kill "${pids[2]}"; wait "${pids[2]}"
echo '{"chat_template": "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{% endfor %}"}' >"$tmp/tc/tokenizer_config.json"
start_server tc2
curl -s -m 10 -o "$tmp/models4" "http://127.0.0.1:$PORT/v1/models"
check "grep -q '\"chat_template\":\"plain\",\"chat_template_source\":\"default\"' '$tmp/models4' && grep -q 'none of chatml, llama2, mistral' '$tmp/tc2.err'" "unknown template: $(cat "$tmp/models4") $(cat "$tmp/tc2.err")"
kill "${pids[3]}"; wait "${pids[3]}"
start_server tc3 --chat-template llama2
curl -s -m 10 -o "$tmp/models5" "http://127.0.0.1:$PORT/v1/models"
check "grep -q '\"chat_template\":\"llama2\",\"chat_template_source\":\"--chat-template\"' '$tmp/models5'" "--chat-template over the config: $(cat "$tmp/models5")"
m=$m0

# A bf16 file: served as stored and with --f32 (widened), each greedy
# completion equal to `retnet generate` with the same flag.
m16=$tmp/m16.safetensors
$R convert --in "$m" --out "$m16" --dtype bf16 >/dev/null 2>"$tmp/err"
check "[ $? -eq 0 ]" "convert to bf16: $(cat "$tmp/err")"
m=$m16
for flag in "" --f32; do
    $R generate --model "$m" --prompt "$P" --n 24 --temperature 0 --chunk 32 --threads 1 $flag >"$tmp/gen16" 2>/dev/null
    start_server "s16$flag" $flag --chunk 32
    curl -s -m 30 -o "$tmp/c16" "http://127.0.0.1:$PORT/v1/completions" \
        -d "{\"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0}"
    check "$CK same '$tmp/c16' '$tmp/gen16' '$P'" "bf16 ${flag:-as stored}: serve differs from generate: $(head -c 200 "$tmp/c16")"
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null
done
m=$m0
finish
